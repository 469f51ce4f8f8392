"""`python -m raysurr.tune`: the same as `raysurr tune` (raysurr/commands/tune.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("tune", prog="raysurr.tune"))
