"""`python -m raysurr.dataset`: sample parameter sets, label them on Ray, write a Parquet dataset.

Example:
    python -m raysurr.dataset --simulator diffusion2d --n 1000 --seed 0 --out data/d1k
    python -m raysurr.dataset --n 24000 --split 16000,4000,4000 --out data/study --set simulator.grid=64
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from raysurr.commands.common import Parser, add_address_argument, add_config_arguments, config_from_args
from raysurr.data.dataset import WHOLE
from raysurr.data.store import staged_directory
from raysurr.distributed.runtime import connect
from raysurr.engine.datasets import IncompleteDataset, write_dataset
from raysurr.errors import ConfigError
from raysurr.progress import say
from raysurr.simulators import build_simulator

SPLIT_NAMES = ("train", "val", "test")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.dataset", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (must be absent or empty)")
    parser.add_argument("--n", type=int, help="number of samples (may be left out with --split)")
    parser.add_argument("--split", help="sizes of train,val,test (or fewer), e.g. 16000,4000,4000")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's seed)")
    parser.add_argument("--simulator", help="simulator name (default: the config's, diffusion2d)")
    parser.add_argument("--solver", help="shorthand for --set simulator.solver=NAME")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--allow-failures", type=float, default=0.0, metavar="FRACTION",
                        help="accept a dataset where up to this fraction of a split failed (default 0)")  # fmt: skip
    add_config_arguments(parser)
    add_address_argument(parser)
    return parser.parse_args(argv)


def split_sizes(n: int | None, split: str | None) -> dict[str, int]:
    """{split name: size}; without --split, the one split `all` of size n."""
    if split is None:
        if n is None or n <= 0:
            raise ConfigError(f"--n must be a positive integer, got {n}")
        return {WHOLE: n}
    try:
        sizes = [int(part) for part in split.split(",")]
    except ValueError:
        raise ConfigError(f"--split must be comma-separated integers like 16000,4000,4000, got {split!r}") from None
    if not 1 <= len(sizes) <= len(SPLIT_NAMES) or min(sizes) <= 0:
        raise ConfigError(f"--split needs 1 to 3 positive sizes (train,val,test), got {split!r}")
    if n is not None and n != sum(sizes):
        raise ConfigError(f"--n {n} does not equal the sum of --split {split} ({sum(sizes)}); drop --n or fix it")
    return dict(zip(SPLIT_NAMES, sizes, strict=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    extra = [f"simulator.name={args.simulator}"] if args.simulator else []
    extra += [f"simulator.solver={args.solver}"] if args.solver else []
    extra += [f"seed={args.seed}"] if args.seed is not None else []
    config = config_from_args(args, extra)
    sizes = split_sizes(args.n, args.split)
    if not 0 <= args.allow_failures < 1:
        raise ConfigError(f"--allow-failures must be a fraction in [0, 1), got {args.allow_failures}")
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {str(args.out)!r} is a file; choose a folder")
    build_simulator(config.simulator)  # validates options before Ray starts
    say(
        f"plan: {sum(sizes.values())} simulator runs of {config.simulator.name} ("
        + ", ".join(f"{name} {size}" for name, size in sizes.items())
        + ")"
    )
    connect(args.address)
    start = time.perf_counter()
    short = None
    with staged_directory(args.out, overwrite=args.overwrite) as stage:
        try:
            info = write_dataset(config, sizes, stage, "dataset", args.allow_failures)
        except IncompleteDataset as exc:  # keep what was labelled, without a manifest: no reader takes it
            short = exc
    if short is not None:
        raise IncompleteDataset(f"{args.out}: {short}; what was labelled is kept there without a manifest (readers "
                                "refuse it); fix the simulator and run again with --overwrite, or accept the "
                                "shortfall with --allow-failures FRACTION") from None  # fmt: skip
    elapsed = time.perf_counter() - start
    total = sum(info.splits.values())
    print(f"wrote {total} samples to {args.out} in {elapsed:.1f}s ({total / elapsed:.0f} samples/s)")
    return 0
