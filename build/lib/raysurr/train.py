"""`python -m raysurr.train`: the same as `raysurr train` (raysurr/commands/train.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("train", prog="raysurr.train"))
