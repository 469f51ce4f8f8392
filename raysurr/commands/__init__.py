"""The commands, apart from the library: one module per command, `common` for what they share.

`raysurr COMMAND ...` (the console script), `python -m raysurr COMMAND ...` and
`python -m raysurr.COMMAND ...` all run the command module's `main`. No library module imports a
command.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from raysurr.commands.common import INVOKED_AS, invoke

# command -> (module, what it does), in the order `raysurr --help` lists them
COMMANDS = {
    "drive": ("drive", "run (or resume) an active-learning loop: the main job"),
    "dataset": ("dataset", "label sampled parameter sets into a Parquet dataset"),
    "train": ("train", "train a surrogate on a labelled dataset (the passive baseline)"),
    "tune": ("tune", "sweep surrogate architectures on Ray Tune"),
    "experiment": ("experiment", "a grid of AL runs (models x acquisition functions x seeds) and its report"),
    "export": ("export", "the trained surrogate as TorchScript, ONNX or a torch.export program"),
    "predict": ("predict", "the trained surrogate's fields for a file of parameter sets (Ray Data)"),
    "headroom": ("headroom", "how much active learning could save on a problem, before a budget is spent"),
    "config": ("config", "print the resolved configuration of --config files and --set overrides"),
    "list": ("registered", "every registered simulator, solver, model and acquisition function"),
    "check": ("check", "verify a run, experiment, dataset or evaluation cache on disk"),
}


def usage() -> str:
    lines = ["usage: raysurr COMMAND [options]   (raysurr COMMAND --help for its options)", "", "commands:"]
    return "\n".join([*lines, *(f"  {name:<11} {text}" for name, (_, text) in COMMANDS.items())])


def main(argv: Sequence[str] | None = None) -> int:
    """Run `raysurr COMMAND ...`; returns the exit status (2 for an unknown command)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"raysurr: error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return run_command(argv[0], argv[1:])


def run_command(name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """One command's `main` with raysurr's one-line errors (see `common.invoke`), which start with `prog`
    (default: `raysurr NAME`; `python -m raysurr.NAME` gives `raysurr.NAME`, as the user typed it)."""
    module = importlib.import_module(f"raysurr.commands.{COMMANDS[name][0]}")
    typed = prog is None  # as `raysurr NAME`: its usage lines say so too, not `python -m raysurr.NAME`
    token = INVOKED_AS.set(f"raysurr {name}" if typed else None)
    try:
        return invoke(module.main, prog or f"raysurr {name}", argv)
    finally:
        INVOKED_AS.reset(token)


def console() -> None:
    """The `raysurr` console script."""
    sys.exit(main())
