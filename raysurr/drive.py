"""`python -m raysurr.drive`: run (or resume) an active-learning loop, the product's main job.

Example:
    python -m raysurr.drive --config configs/quickstart.yaml
    python -m raysurr.drive --resume runs/quickstart-20261122-120000
    python -m raysurr.drive --config configs/study-unet.yaml --address auto   # on a running cluster

The run folder holds the resolved config, `state.json`, the candidate pool, the label store
(`labels/`, `failures/`), `checkpoints/round_NNN/`, `rounds.csv`, `learning_curve.png` and
`predictions.png`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysurr.cli import (
    add_address_argument,
    add_config_arguments,
    config_from_args,
    new_output_folder,
    run,
    write_resolved_config,
)
from raysurr.config import Config, load_config
from raysurr.driver import ALDriver, driver_name
from raysurr.errors import ConfigError
from raysurr.runtime import connect


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m raysurr.drive", description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", type=Path, help="run folder (default: runs/NAME-YYYYmmdd-HHMMSS)")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run where it stopped")
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def prepare_run_dir(args: argparse.Namespace):
    """The run folder and its config: a new folder with the resolved config, or a resumed one's."""
    if args.resume:
        if args.config or args.run_dir:
            raise ConfigError("--resume takes the run's own config.yaml; drop --config and --run-dir")
        if not (args.resume / "config.yaml").is_file():
            raise ConfigError(f"--resume {str(args.resume)!r} is not a run folder (no config.yaml)")
        return args.resume, load_config(args.resume / "config.yaml", args.overrides)
    config = config_from_args(args)
    check_names(config)  # before the folder exists: a mistake leaves nothing behind
    run_dir = new_output_folder(args.run_dir, config.name, "run", config)
    return run_dir, config


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run_dir, config = prepare_run_dir(args)
    if args.resume:
        check_names(config)
    if args.resume and args.overrides:
        write_resolved_config(config, run_dir)
    print(f"run folder: {run_dir}", file=sys.stderr)
    connect(args.address)
    driver = start_driver(run_dir, config)
    try:
        result = ray.get(driver.run.remote())
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


def check_names(config: Config) -> None:
    """Fail before Ray starts on names that are not registered (the config's plugins are loaded)."""
    from raysurr.acquisition import build_acquisition
    from raysurr.models import build_model
    from raysurr.simulators import build_simulator

    simulator = build_simulator(config.simulator)
    build_acquisition(config.acquisition)
    build_model(config.model, simulator.input_shape[0], simulator.output_shape[0])


if __name__ == "__main__":
    run(main, "raysurr.drive")
