"""`python -m raysurr.export`: the same as `raysurr export` (raysurr/commands/export.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("export", prog="raysurr.export"))
