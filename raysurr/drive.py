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
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysurr.cli import (
    Parser,
    add_address_argument,
    add_config_arguments,
    claim_folder,
    claim_new_folder,
    config_from_args,
    output_folder,
    remote_error,
    run,
    write_resolved_config,
)
from raysurr.config import Config, load_config
from raysurr.driver import ALDriver, RunFolder, RunState, driver_name, read_candidates
from raysurr.errors import ConfigError
from raysurr.runtime import connect

# What `--resume --set` may change: how long the run goes on and how it uses the cluster, never what
# the rounds already run mean (the seed, the model, the acquisition function, the simulator, ...).
RESUMABLE = ("loop.rounds", "loop.label_budget", "loop.target_val_wmae", "loop.target_test_wmae", "resources.",
             "labeling.")  # fmt: skip


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
    check_run(config)
    run_dir = output_folder(args.run_dir, config.name, "run")
    connect(args.address)
    check_resources(config)
    with claim_new_folder(run_dir, "run"):  # every check has passed: only now does the folder exist
        write_resolved_config(config, run_dir)
        return drive(run_dir, config)


def resume(args: argparse.Namespace) -> int:
    if args.config or args.run_dir:
        raise ConfigError("--resume takes the run's own config.yaml; drop --config and --run-dir")
    folder = RunFolder(args.resume)
    with claim_folder(args.resume, "run"):
        stored = load_config(args.resume / "config.yaml")
        config = load_config(args.resume / "config.yaml", args.overrides)
        changes = resume_changes(stored, config)
        check_run(config)
        state = folder.read_state()
        if state.phase != "prepare":
            folder.store.verify()
        connect(args.address)
        check_resources(config)
        if changes or args.retry_failed:  # validated: now the folder may change
            record_resume(folder, state, config, changes, args.retry_failed)
        return drive(args.resume, config)


def drive(run_dir: Path, config: Config) -> int:
    """Run the loop in the ALDriver actor; an error inside it reaches the user as one line."""
    print(f"run folder: {run_dir}", file=sys.stderr)
    driver = start_driver(run_dir, config)
    try:
        result = ray.get(driver.run.remote())
    except (RayTaskError, RayActorError) as exc:
        raise remote_error(exc, run_dir / "error.log") from None
    finally:
        ray.kill(driver)
    print(f"done ({result['stopped']}); rounds: {run_dir / 'rounds.csv'}")
    return 0


def start_driver(run_dir: Path, config: Config) -> ray.actor.ActorHandle:
    """The run's ALDriver as a named actor (the name keeps two drivers off one run); call `.run.remote()`.

    It runs on this process's node, where `run_dir` is: its workers get data through Ray, not the disk.
    """
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor = ray.remote(ALDriver).options(name=driver_name(config.name), num_cpus=0, max_concurrency=1,
                                         scheduling_strategy=here)  # fmt: skip
    try:
        return actor.remote(str(run_dir), config.to_dict())
    except ValueError:  # Ray refuses a second actor of the same name
        raise ConfigError(
            f"a run named {config.name!r} is already running on this cluster; give this one another name "
            "(--set name=...)"
        ) from None


def check_run(config: Config) -> None:
    """Everything about a run that can be checked without Ray: the names, that the model takes the
    simulator's inputs and gives its outputs, and the candidate pool (the config's plugins are loaded)."""
    from raysurr.acquisition import build_acquisition
    from raysurr.models import check_model
    from raysurr.simulators import build_simulator

    simulator = build_simulator(config.simulator)
    build_acquisition(config.acquisition)
    check_model(config.model, simulator.input_shape, simulator.output_shape)
    read_candidates(config, simulator)


def check_resources(config: Config) -> None:
    """One line now, not after a round of labelling, if no node of the connected cluster can hold a
    simulator actor, a training worker or a scoring worker."""
    from raysurr.labeling import check_simulator_fit
    from raysurr.scoring import check_score_fit
    from raysurr.training import scaling_config

    check_simulator_fit(config.resources)
    scaling_config(config.resources)
    check_score_fit(config.resources)


def resume_changes(stored: Config, config: Config, also: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """The (key, old, new) that `--set` changes on resume; ConfigError if one may not change.

    Args:
        also: keys (or `section.` prefixes) the caller allows besides `RESUMABLE`.
    """
    allowed = (*RESUMABLE, *also)
    old, new = _flat(stored.to_dict()), _flat(config.to_dict())
    changes = [(key, old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
               if old.get(key) != new.get(key)]  # fmt: skip
    for key, before, after in changes:
        if not key.startswith(allowed):
            raise ConfigError(f"--resume cannot change {key} ({before!r} -> {after!r}): the rounds already run would "
                              f"no longer match the config; start a new run instead. On resume only "
                              f"{', '.join(k.rstrip('.') + ('.*' if k.endswith('.') else '') for k in allowed)} "
                              "may change")  # fmt: skip
    return changes


def record_resume(folder: RunFolder, state: RunState, config: Config, changes: list, retry_failed: bool) -> None:
    """Write the changed config, note each change with the round it takes effect in, queue failed ids."""
    now = time.time()
    for key, before, after in changes:
        state.changes.append({"round": state.round, "phase": state.phase, "key": key, "old": before, "new": after,
                              "at": now})  # fmt: skip
        print(f"resume: {key} {before!r} -> {after!r} from round {state.round} ({state.phase})", file=sys.stderr)
    if retry_failed:
        failed = sorted(folder.store.failed_ids())
        state.retry = sorted({*state.retry, *failed})
        print(f"resume: {len(failed)} failed samples will be simulated again", file=sys.stderr)
    state.save(folder.state)  # the retry list is saved before the records are set aside: nothing is lost between
    if retry_failed:
        folder.store.set_failures_aside(f"retried-{time.strftime('%Y%m%d-%H%M%S')}")
    write_resolved_config(config, folder.root)


def _flat(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key not in ("options",):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


if __name__ == "__main__":
    run(main, "raysurr.drive")
