"""`python -m raysurr.dataset`: the same as `raysurr dataset` (raysurr/commands/dataset.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("dataset", prog="raysurr.dataset"))
