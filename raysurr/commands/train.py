"""`python -m raysurr.train`: the passive baseline — train a surrogate on a labelled dataset.

Example:
    python -m raysurr.dataset --split 1600,200,200 --out runs/data
    python -m raysurr.train --data runs/data --out runs/unet-small --set model.base_channels=8 --set training.epochs=20

Writes to --out: `checkpoint/` (surrogate.pt, history.json), `metrics.json` (test weighted MAE and
region MAEs), `predictions.png`, and the resolved `config.yaml`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from raysurr.commands.common import (
    Parser,
    add_address_argument,
    add_config_arguments,
    config_from_args,
)
from raysurr.config import Config
from raysurr.data.dataset import DatasetInfo, open_dataset
from raysurr.data.labels import parameter_ranges
from raysurr.data.store import staged_directory, write_config
from raysurr.distributed.runtime import connect
from raysurr.distributed.scoring import evaluate, read_samples
from raysurr.distributed.training import fit
from raysurr.engine.datasets import dataset_simulator, refuse_physics_term
from raysurr.errors import DatasetError
from raysurr.models import build_model, count_parameters
from raysurr.models.fitting import FitSpec
from raysurr.models.losses import error_metrics
from raysurr.plots import plot_checkpoint
from raysurr.progress import say
from raysurr.seeding import child_seed
from raysurr.simulators import build_simulator

SPLITS = ("train", "val", "test")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.train", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="a dataset written by raysurr.dataset --split")
    parser.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def check_dataset(info: DatasetInfo) -> None:
    missing = [name for name in SPLITS if name not in info.splits]
    if missing:
        raise DatasetError(
            f"{str(info.root)!r} has splits {list(info.splits)} but training needs train, val and test; "
            "write it with python -m raysurr.dataset --split TRAIN,VAL,TEST"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args)
    refuse_physics_term(config, "train")
    info = open_dataset(args.data)
    check_dataset(info)
    config = replace(config, simulator=dataset_simulator(info))  # its region of interest scores the test set
    channels = (info.input_shape[0], info.output_shape[0])
    size = count_parameters(build_model(config.model, *channels))  # also validates the model section
    say(
        f"plan: model {config.model.name} ({size:,} parameters) trained up to {config.training.epochs} epochs on "
        f"{info.splits['train']} samples, evaluated on {info.splits.get('test', 0)}"
    )
    with staged_directory(args.out, overwrite=args.overwrite) as stage:
        connect(args.address)
        metrics = train_and_evaluate(config, info, channels, stage)
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2))
        write_config(config, stage)
        plot_checkpoint(stage / "checkpoint", info, stage / "predictions.png")
    regions = build_simulator(config.simulator).regions
    print(json.dumps({f"test_{name}": metrics[f"test_{name}"] for name in error_metrics(regions)}))
    say(f"wrote {args.out} ({metrics['epochs_run']} epochs, best {metrics['best_epoch']}, {metrics['train_s']:.0f}s)")
    return 0


def train_and_evaluate(config: Config, info: DatasetInfo, channels: tuple[int, int], out: Path) -> dict:
    datasets = {
        name: read_samples(info.split_dir(name), ["input", "target"]).materialize() for name in ["train", "val"]
    }
    ranges, count = parameter_ranges(info.split_dir("train"), info.parameters)
    meta = {"simulator": info.simulator, "plugins": list(config.plugins), "dataset": str(info.root),
            "n_train": info.splits["train"], "ranges": ranges, "labels": count}  # fmt: skip
    spec = FitSpec.of(
        config.model,
        channels,
        config.training,
        child_seed(config.seed, "train"),
        threads=max(1, int(config.resources.cpus_per_train_worker)),
        meta=meta,
        plugins=tuple(config.plugins),
        symmetries=tuple(build_simulator(config.simulator).symmetries),
    )
    result = fit(spec, datasets, config.resources, out / "checkpoint")
    start = time.perf_counter()
    test = evaluate(result.checkpoint, read_samples(info.split_dir("test")), config)
    return {
        **{f"test_{k}": v for k, v in test.items() if k != "n"},
        "n_test": test["n"],
        "best_val_wmae": result.best_val_wmae,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "train_s": result.wall_s,
        "eval_s": time.perf_counter() - start,
    }
