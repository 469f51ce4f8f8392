"""`python -m raysurr.drive`: the same as `raysurr drive` (raysurr/commands/drive.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("drive", prog="raysurr.drive"))
