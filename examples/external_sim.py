"""A stand-in for an external simulation code, driven by raysurr's `command` simulator.

Reads parameter sets from a .npy file ([n, 2]: amplitude, width), writes a Gaussian bump per set
to OUTPUTS.npz (key `outputs`, [n, 1, 32, 32], plus the extra `peak`). Misbehaves on request so the
failure handling can be seen: amplitude < 0 exits with an error.

    python examples/external_sim.py --in params.npy --out outputs
"""

import argparse
import sys

import numpy as np

parser = argparse.ArgumentParser()
parser.add_argument("--in", dest="inp", required=True)
parser.add_argument("--out", required=True)
args = parser.parse_args()

params = np.load(args.inp)
if (params[:, 0] < 0).any():
    print(f"negative amplitude in {params[:, 0].tolist()}", file=sys.stderr)
    sys.exit(4)
i, j = np.mgrid[0:32, 0:32]
r2 = (i - 15.5) ** 2 + (j - 15.5) ** 2
fields = params[:, 0, None, None] * np.exp(-r2 / (2 * params[:, 1, None, None] ** 2))
np.savez(args.out + ".npz", outputs=fields[:, None].astype(np.float32), peak=fields.max(axis=(1, 2)))
