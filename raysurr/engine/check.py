"""`python -m raysurr check DIR`: verify a run, experiment, dataset or evaluation cache on disk.

It reads everything the folder holds, as a resume or a reader would, and prints one line per
check: `ok` or `problem`, each problem naming the file and what to do. Exit status 0 when all is
well, 1 when something is wrong. It never changes the folder.

Example:
    python -m raysurr check runs/quickstart-20261123-101500
    python -m raysurr check data/d1k
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from raysurr.config import load_config
from raysurr.data.dataset import MANIFEST, open_dataset
from raysurr.data.labels import LabelStore
from raysurr.data.store import PartStore
from raysurr.engine.run_folder import RunFolder, evaluation_dir
from raysurr.errors import ConfigError, RaysurrError, StoreError
from raysurr.simulators import build_simulator


def check(folder: Path) -> list[tuple[str, str | None]]:
    """[(what was checked, None if fine or the problem)] for every check the folder's kind calls for."""
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder")
    if (folder / MANIFEST).is_file():
        return check_dataset(folder)
    if (folder / "runs").is_dir() and (folder / "config.yaml").is_file():
        return [result for run in sorted((folder / "runs").iterdir()) if run.is_dir() for result in check_run(run)]
    if (folder / "config.yaml").is_file():
        return check_run(folder)
    raise ConfigError(f"{str(folder)!r} is not a raysurr run, experiment or dataset folder (no config.yaml or "
                      f"{MANIFEST})")  # fmt: skip


def check_run(root: Path) -> list[tuple[str, str | None]]:
    folder = RunFolder(root)
    results = [_attempt(f"{root}: state", folder.read_state)]
    config = load_config(root / "config.yaml")
    simulator = build_simulator(config.simulator)
    results.append(_attempt(f"{root}: label store", lambda: folder.store.verify(simulator.input_shape,
                                                                                 simulator.output_shape)))  # fmt: skip
    if results[0][1] is None and folder.state_file.exists():
        results.append(_attempt(f"{root}: every label was selected", lambda: _all_selected(folder)))
    eval_dir = evaluation_dir(config, folder.root)
    if (eval_dir / MANIFEST).is_file():
        results += check_dataset(eval_dir)
    return results


def check_dataset(root: Path) -> list[tuple[str, str | None]]:
    results = []
    results.append(_attempt(f"{root}: manifest", lambda: open_dataset(root)))
    if results[-1][1] is not None:
        return results
    dataset = open_dataset(root)
    for split, size in dataset.splits.items():

        def verify(split: str = split, size: int = size) -> None:
            directory = dataset.split_dir(split)
            store = LabelStore(directory, root / "failures")
            n = store.verify(dataset.input_shape, dataset.output_shape)
            if n != size:
                raise RaysurrError(f"split {split!r} holds {n} samples, but {MANIFEST} says {size}; a part is "
                                   "missing or was added: restore the folder or write the dataset again")  # fmt: skip

        results.append(_attempt(f"{root}: split {split}", verify))
    results.append(_attempt(f"{root}: failures", lambda: PartStore(root / "failures").check(checksums=True)))
    return results


def _all_selected(folder: RunFolder) -> None:
    """Every labelled id is one that a round selected, as state.json records it."""
    unselected = folder.store.labeled_ids() - folder.read_state().selected_in().keys()
    if unselected:
        raise StoreError(f"{len(unselected)} labels no round selected (e.g. sample {min(unselected)}): state.json "
                         "and the label store disagree; restore state.json from a backup")  # fmt: skip


def _attempt(what: str, check: Callable[[], object]) -> tuple[str, object]:
    try:
        check()
        return what, None
    except RaysurrError as exc:
        return what, str(exc)
