"""`python -m raysurr.experiment`: the same as `raysurr experiment` (raysurr/commands/experiment.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("experiment", prog="raysurr.experiment"))
