"""`python -m raysurr.drive`: run (or resume) an active-learning loop, the product's main job.

Example:
    python -m raysurr.drive --config configs/quickstart.yaml
    python -m raysurr.drive --resume runs/quickstart-20261122-120000
    python -m raysurr.drive --resume runs/quickstart-20261122-120000 --set loop.rounds=10 --retry-failed
    python -m raysurr.drive --config configs/study-unet.yaml --address auto   # on a running cluster

The run folder holds the resolved config, `state.json`, the candidate pool, the label store
(`labels/`, `failures/`), `checkpoints/round_NNN/`, `rounds.csv`, `learning_curve.png` and
`predictions.png`. The command locks the folder while it runs; everything it checks (the config,
the model against the simulator's shapes, the candidates, what the cluster can give) is checked
before the folder is created or changed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from raysurr.commands.common import (
    Parser,
    add_address_argument,
    add_config_arguments,
    config_from_args,
    given_keys,
)
from raysurr.config import Config, load_config
from raysurr.data.store import write_config
from raysurr.distributed.runtime import connect
from raysurr.engine import run_folder
from raysurr.engine.folders import claim_folder, resume_changes
from raysurr.engine.launch import check_config, check_resources, drive, new_run
from raysurr.engine.run_folder import RunFolder, RunState
from raysurr.errors import ConfigError
from raysurr.progress import say


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.drive", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/NAME-YYYYmmdd-HHMMSS)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run where it stopped")
    parser.add_argument("--retry-failed", action="store_true",
                        help="with --resume: simulate the samples recorded as failed again")  # fmt: skip
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.retry_failed and not args.resume:
        raise ConfigError("--retry-failed continues a run; give it with --resume RUN_DIR")
    if args.resume:
        return resume(args)
    config = config_from_args(args)
    folder, result = new_run(config, args.run_dir, args.address, given_keys(args))
    print(f"done ({result['stopped']}); rounds: {folder / 'rounds.csv'}")
    return 0


def resume(args: argparse.Namespace) -> int:
    if args.config or args.run_dir:
        raise ConfigError("--resume takes the run's own config.yaml; drop --config and --run-dir")
    folder = RunFolder(args.resume)
    with claim_folder(args.resume, "run"):
        stored = load_config(args.resume / "config.yaml")
        config = load_config(args.resume / "config.yaml", args.overrides)
        changes = resume_changes(stored, config)
        check_config(config)
        state = folder.read_state()
        if state.phase != "prepare":
            folder.store.verify()
        connect(args.address)
        check_resources(config)
        if changes or args.retry_failed:  # validated: now the folder may change
            record_resume(folder, state, config, changes, args.retry_failed)
        result = drive(args.resume, config)
    print(f"done ({result['stopped']}); rounds: {args.resume / 'rounds.csv'}")
    return 0


def record_resume(folder: RunFolder, state: RunState, config: Config, changes: list, retry_failed: bool) -> None:
    """Say what the resume changes, record it in the state, write the changed config."""
    for key, before, after in changes:
        say(f"resume: {key} {before!r} -> {after!r} from round {state.round} ({state.phase})")
    if retry_failed:
        say(f"resume: {len(folder.store.failed_ids())} failed samples will be simulated again")
    run_folder.record_resume(folder, state, changes, retry_failed)
    write_config(config, folder.root)
