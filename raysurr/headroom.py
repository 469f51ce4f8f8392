"""`python -m raysurr.headroom`: the same as `raysurr headroom` (raysurr/commands/headroom.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("headroom", prog="raysurr.headroom"))
