"""Copy a finished experiment's or headroom run's results into docs/results/NAME/, with where they came from.

    python scripts/publish_results.py runs/headroom-study32 docs/results/headroom-study32 \
        --command "raysurr headroom --config configs/headroom/study32.yaml --sizes 125,250,500,1000 --seeds 3 ..."

Copies report.md, summary.csv, the learning-curve figures, headroom.json and headroom.md (where present) and the
resolved config.yaml, and writes SOURCE.md: the command, the commit of the code that ran it, the machine and the
dates of the runs. The figures in docs/ and the README come from these files.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import time
from pathlib import Path

FILES = ("report.md", "summary.csv", "headroom.json", "headroom.md", "config.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="the experiment or headroom folder")
    parser.add_argument("out", type=Path, help="docs/results/NAME")
    parser.add_argument("--command", required=True, help="the command that produced the folder")
    parser.add_argument("--commit", help="the commit of the code that ran (default: the folder's git HEAD)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in [*(args.folder / name for name in FILES), *sorted(args.folder.glob("learning_curve-*.png"))]:
        if path.exists():
            shutil.copy2(path, args.out / path.name)
            copied.append(path.name)
    commit = args.commit or subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.folder, capture_output=True,
                                           text=True).stdout.strip()  # fmt: skip
    ended = sorted(p.stat().st_mtime for p in (args.folder / "runs").glob("*/rounds.csv"))
    span = [time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) for t in (ended[0], ended[-1])] if ended else []
    lines = [f"# {args.out.name}", "", "Produced by", "", "```bash", args.command, "```", "",
             f"at commit `{commit}` on {platform.node() or 'a machine'} ({os.cpu_count()} CPUs, {platform.machine()}, "
             f"Python {platform.python_version()}); runs finished {' to '.join(span) or 'at an unknown time'} UTC.",
             "", "Files: " + ", ".join(f"`{name}`" for name in copied) + "."]  # fmt: skip
    (args.out / "SOURCE.md").write_text("\n".join(lines) + "\n")
    print(f"published {len(copied)} files to {args.out}")


if __name__ == "__main__":
    main()
