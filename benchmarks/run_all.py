"""Run every benchmark in this folder and write their figures, with the machine's description, to one JSON file.

Each benchmark runs as its own process (its own local Ray), in a fixed order; its JSON lines are
collected as they are printed and its stderr goes to the terminal. A benchmark that fails is
recorded with its exit status and the rest still run.

Usage:
    python benchmarks/run_all.py                       # everything at full size (about an hour on 2 cores)
    python benchmarks/run_all.py --quick               # every benchmark's --quick variant (minutes)
    python benchmarks/run_all.py --gpu                 # add gpu.py and the GPU variants of training and scoring
    python benchmarks/run_all.py --only scoring,training --out runs/bench.json

The output: {"machine": {...}, "started": ..., "benchmarks": {name: {"argv": [...], "returncode": 0,
"wall_s": ..., "records": [one object per JSON line]}}}. benchmarks/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["simulator", "labeling", "faults", "training", "peers", "learning", "scoring", "round_overhead", "async_loop",
         "gpu"]  # fmt: skip
GPU_FLAGS = {"training": ["--gpu"], "scoring": ["--gpu"]}
GPU_ONLY = {"gpu"}  # needs a CUDA device: run with --gpu (or named in --only)


def machine() -> dict:
    """What the figures were measured on."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}  # fmt: skip
    try:
        import ray
        import torch

        info.update(torch=torch.__version__, ray=ray.__version__, cuda=torch.cuda.is_available())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True)
    info["commit"] = commit.stdout.strip() or None
    return info


def run_one(name: str, flags: list[str]) -> dict:
    argv = [sys.executable, str(HERE / f"{name}.py"), *flags]
    print(f"== {name} {' '.join(flags)}", file=sys.stderr, flush=True)
    start, records = time.perf_counter(), []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE.parent) as proc:
        for line in proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
                print(line, flush=True)
    return {"argv": argv[1:], "returncode": proc.returncode, "wall_s": round(time.perf_counter() - start, 1),
            "records": records}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each benchmark's --quick variant")
    parser.add_argument("--gpu", action="store_true", help="add gpu.py and the GPU variants (training, scoring)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(ORDER)}")
    parser.add_argument("--out", type=Path, help="output file (default: runs/benchmarks-YYYYmmdd-HHMMSS.json)")
    args = parser.parse_args()
    names = (
        [n for n in ORDER if args.gpu or n not in GPU_ONLY]
        if not args.only
        else [n.strip() for n in args.only.split(",")]
    )
    unknown = [n for n in names if n not in ORDER]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {', '.join(ORDER)}")
    out = args.out or Path("runs") / f"benchmarks-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "benchmarks": {}}
    for name in names:
        flags = (["--quick"] if args.quick else []) + (GPU_FLAGS.get(name, []) if args.gpu else [])
        result["benchmarks"][name] = run_one(name, flags)
        out.write_text(json.dumps(result, indent=1))  # after each: a stopped run keeps what it measured
    failed = [n for n, r in result["benchmarks"].items() if r["returncode"] != 0]
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
