"""`raysurr check FOLDER`: verify a run, experiment, dataset or evaluation cache on disk, one line per check.

Example:
    raysurr check runs/quickstart-20261123-101500

Exits 1 if any check finds a problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from raysurr.commands.common import Parser
from raysurr.engine.check import check
from raysurr.progress import say


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="raysurr check", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the folder to verify")
    results = check(parser.parse_args(argv).folder)
    for what, problem in results:
        print(f"ok       {what}" if problem is None else f"problem  {what}: {problem}")
    problems = sum(problem is not None for _, problem in results)
    say(f"{len(results)} checks, {problems} problems")
    return 1 if problems else 0
