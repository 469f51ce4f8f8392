"""`python -m raysurr.predict`: the same as `raysurr predict` (raysurr/commands/predict.py)."""

import sys

from raysurr.commands import run_command

if __name__ == "__main__":
    sys.exit(run_command("predict", prog="raysurr.predict"))
