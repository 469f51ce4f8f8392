"""`raysurr predict`: the trained surrogate's fields for a file of parameter sets, on Ray Data.

Examples:
    raysurr predict --run runs/quickstart-20261207-101500 --params my_params.csv --out fields.parquet
    raysurr predict --run runs/ensemble-run --params big.parquet --out fields.parquet --std --strict

`--params` is a Parquet or CSV file with exactly the simulator's parameter columns (`raysurr list` and the
run's config name them). OUT gets one row per parameter set, in the file's order: the parameters, the
prediction as a tensor column (`prediction`, [C, H, W] float32 in the units of the simulator's targets) and,
with `--std`, the spread of an ensemble's members (or of MC-dropout passes) as `std`. Workers load the model
once (actors on GPUs, tasks in reused processes on CPUs). A parameter outside the range the training labels
covered is named in a warning (`--strict`: an error); a missing, extra or non-numeric column is a one-line
error, and nothing is written.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from raysurr.commands.common import Parser, add_address_argument, add_config_arguments, config_from_args
from raysurr.config import ResourcesConfig
from raysurr.data.store import COMPRESSION, staged_file, tensor_array
from raysurr.distributed.runtime import connect
from raysurr.distributed.scoring import predict_table
from raysurr.errors import ConfigError, ParameterError
from raysurr.predictor import ExtrapolationWarning, Predictor, as_array, load
from raysurr.progress import Progress, say


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(prog="python -m raysurr.predict", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--run", type=Path, required=True, help="a run folder (its last finished round) or a checkpoint"
    )
    parser.add_argument("--round", type=int, help="the run's round whose model predicts (default: the last finished)")
    parser.add_argument("--params", type=Path, required=True, help="Parquet or CSV file of parameter sets")
    parser.add_argument("--out", type=Path, required=True, help="the Parquet file to write")
    parser.add_argument("--std", action="store_true", help="also the spread of an ensemble's members (or MC dropout)")
    parser.add_argument("--strict", action="store_true", help="refuse parameters outside the training labels' range")
    parser.add_argument("--batch-size", type=int, default=256, help="parameter sets per forward pass (default 256)")
    add_config_arguments(parser)  # resources.score_actors, resources.use_gpu, ...
    add_address_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    resources = config_from_args(args).resources if (args.config or args.overrides) else ResourcesConfig(score_actors=2)
    predictor = load(args.run, device="cpu", round=args.round)
    table = read_params(args.params, predictor, args.strict)
    if args.out.exists() and not args.out.is_file():
        raise ConfigError(f"--out {str(args.out)!r} is not a file path; give a .parquet file to write")
    if args.std:
        predictor.predict(table.slice(0, 1), return_std=True)  # one line now if the model has no spread to give
    model = type(predictor.network.model).__name__
    say(f"plan: {table.num_rows} parameter sets through {predictor.source} ({model}, {predictor.labels} training "
        f"labels) on {resources.score_actors} workers")  # fmt: skip
    connect(args.address)
    start = time.perf_counter()
    write(args.out, table, predictor, args, resources)
    elapsed = time.perf_counter() - start
    print(f"wrote {table.num_rows} predictions to {args.out} in {elapsed:.1f}s ({table.num_rows / elapsed:.0f}/s)")
    return 0


def read_params(path: Path, predictor: Predictor, strict: bool) -> pa.Table:
    """The parameter sets of a Parquet or CSV file as a float64 table in the simulator's column order, checked: the
    columns, numbers, the simulator's ranges (errors), the training labels' (a warning; `--strict`: an error)."""
    if not path.is_file():
        raise ConfigError(f"--params {str(path)!r} is not a file")
    try:
        table = pacsv.read_csv(path) if path.suffix.lower() == ".csv" else pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"--params {str(path)!r} cannot be read as {'CSV' if path.suffix == '.csv' else 'Parquet'} "
                          f"({str(exc).splitlines()[0][:200]})") from None  # fmt: skip
    names = predictor.parameter_names
    try:
        params = as_array(table, names)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExtrapolationWarning)
            params = predictor.check(params, strict=strict)
        for warning in caught:
            say(f"warning: {warning.message}")
    except ParameterError as exc:
        raise ParameterError(f"--params {str(path)!r}: {exc}") from None
    return pa.table({name: params[:, j] for j, name in enumerate(names)})


def write(out: Path, table: pa.Table, predictor: Predictor, args: argparse.Namespace,
          resources: ResourcesConfig) -> None:  # fmt: skip
    """Predict on Ray Data and stream the rows to OUT in the file's order (memory: a batch), atomically: a staged
    file, renamed when complete."""
    members = sorted(predictor.source.parent.glob(f"{predictor.source.name}_member*")) if args.std else []
    progress = Progress("predict", total=table.num_rows, failures=False)
    writer = None
    with staged_file(out) as stage:
        try:
            for batch in predict_table(table, predictor.source, members, args.std, resources, args.batch_size):
                columns = {name: pa.array(batch[name]) for name in predictor.parameter_names}
                columns |= {name: tensor_array(batch[name]) for name in ("prediction", "std") if name in batch}
                part = pa.table(columns)
                writer = writer or pq.ParquetWriter(stage, part.schema, compression=COMPRESSION)
                writer.write_table(part)
                progress.update(done=part.num_rows)
        finally:
            if writer is not None:
                writer.close()
    progress.close()
