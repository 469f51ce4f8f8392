"""`raysurr export`: the trained surrogate as a file that needs neither raysurr nor the run folder to run.

Examples:
    raysurr export --run runs/quickstart-20261207-101500 --format torchscript --out surrogate.pt
    raysurr export --run runs/quickstart-20261207-101500 --format onnx --out surrogate.onnx  # raysurr[onnx]
    raysurr export --run runs/quickstart-20261207-101500 --format exported --out surrogate.pt2

The file maps rendered inputs [n, C, H, W] to fields in the units of the simulator's targets (the scaling raysurr
trained with is folded in); `OUT.json` beside it records the simulator section that renders the inputs, the
parameter names and the ranges the training labels covered, and the test metrics. The FNO's complex FFTs have no
ONNX form: export it as torchscript or exported. docs/use.md shows how to load each.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from raysurr.commands.common import Parser
from raysurr.exporting import FORMATS, export
from raysurr.predictor import load


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m raysurr.export", description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a run folder (its last finished round), a checkpoint")
    parser.add_argument("--round", type=int, help="the run's round to export (default: the last finished)")
    parser.add_argument("--format", choices=FORMATS, required=True, help="torchscript, onnx or exported")
    parser.add_argument("--out", type=Path, required=True, help="the file to write (.pt, .onnx or .pt2)")
    args = parser.parse_args(argv)
    out, sidecar = export(load(args.run, device="cpu", round=args.round), args.format, args.out)
    print(f"wrote {out} and {sidecar}")
    return 0
