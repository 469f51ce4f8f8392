"""Labelled datasets: sample parameter sets, label them on the connected Ray, write splits and a manifest.

`python -m raysurr.dataset` writes one; an AL run writes its validation and test sets with it, and a
sweep its training data.
"""

from __future__ import annotations

import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import raysurr
from raysurr.config import Config, SimulatorConfig
from raysurr.data.dataset import FORMAT_VERSION, MANIFEST, WHOLE, DatasetInfo, open_dataset, write_manifest
from raysurr.data.imported import Labelled, read_labelled, store_labelled
from raysurr.data.labels import LabelStore
from raysurr.data.store import staged_directory, write_config
from raysurr.distributed.labeling import Labeler
from raysurr.engine.run_folder import evaluation_seed, evaluation_simulator
from raysurr.errors import ConfigError, DatasetError, RegistryError
from raysurr.progress import say
from raysurr.seeding import generator
from raysurr.simulators import build_simulator


def evaluation_files(config: Config) -> dict[str, Labelled]:
    """The validation and test sets the user brought (`evaluation.val_from`, `evaluation.test_from`), checked."""
    simulator = build_simulator(config.simulator)
    sources = {"val": config.evaluation.val_from, "test": config.evaluation.test_from}
    return {name: read_labelled(path, simulator, f"evaluation.{name}_from", name)
            for name, path in sources.items() if path}  # fmt: skip


def evaluation_sets(config: Config, folder: Path, run_root: Path) -> DatasetInfo:
    """A run's validation and test sets: labelled once into `folder` (the shared cache), or found there.

    They come from the run's evaluation seed and the simulator's `evaluation_options` (e.g. an exact
    solver). Runs side by side may both label them; the first to finish is kept.

    Raises:
        IncompleteDataset: samples failed; nothing is cached, and the message says to resume `run_root`.
    """
    if (folder / MANIFEST).exists():
        say(f"evaluation sets: cached at {folder}")
        return open_dataset(folder)
    config = replace(config, seed=evaluation_seed(config), simulator=evaluation_simulator(config))
    brought = evaluation_files(config)
    try:
        with staged_directory(folder) as stage:  # an incomplete set raises here and is never cached
            sizes = {name: size for name, size in (("val", config.pool.val), ("test", config.pool.test))
                     if name not in brought}  # fmt: skip
            write_dataset(config, sizes, stage, "eval", brought=brought)
    except IncompleteDataset as exc:
        raise IncompleteDataset(f"evaluation sets: {exc}; nothing was cached: fix the simulator and resume "
                                f"(--resume {run_root})") from None  # fmt: skip
    except DatasetError:
        if not (folder / MANIFEST).exists():
            raise
    return open_dataset(folder)  # ours, or another run's that finished first


class IncompleteDataset(DatasetError):
    """More samples failed than the caller accepts; the folder holds the labels but no manifest."""

    exit_code = 1


def write_dataset(
    config: Config,
    sizes: dict[str, int],
    folder: Path,
    phase: str,
    allow_failures: float = 0.0,
    brought: dict[str, Labelled] | None = None,
) -> DatasetInfo:
    """Sample, label (on the connected Ray) and write a dataset's splits, manifest and config into `folder`.

    The parameter sets come from `generator(config.seed, phase)`; sample ids are 0..total-1 in
    split order. `brought`: splits the user's own labelled samples make instead (ids after the simulated ones).

    Raises:
        IncompleteDataset: a split lost more than `allow_failures` of its samples (no manifest is written).
    """
    simulator = build_simulator(config.simulator)
    total = sum(sizes.values())
    params = simulator.check_parameters(simulator.sample(total, generator(config.seed, phase)))
    sample_ids = np.arange(total, dtype=np.int64)
    offset, labeled, failed = 0, {}, 0
    if total:
        labeler = Labeler(config.simulator, config.plugins, config.labeling, config.resources)
        say(f"labelling {total} samples with {config.simulator.name} on {len(labeler.actors)} actors")
        try:
            for name, size in sizes.items():
                part = slice(offset, offset + size)
                store = LabelStore(folder if name == WHOLE else folder / name, folder / "failures")
                counts = labeler.label(sample_ids[part], params[part], store, name)
                labeled[name], failed = counts["labeled"], failed + counts["failed"]
                offset += size
        finally:
            labeler.close()
    for name, samples in (brought or {}).items():
        ids = np.arange(offset, offset + len(samples), dtype=np.int64)
        store_labelled(LabelStore(folder / name, folder / "failures"), simulator, ids, samples)
        labeled[name], offset = len(samples), offset + len(samples)
        sizes = {**sizes, name: len(samples)}
    if failed:
        say(f"{failed} samples failed; their records are in the dataset's failures/ folder")
    short = {name: (labeled[name], size) for name, size in sizes.items() if labeled[name] < size * (1 - allow_failures)}
    if short:
        counts = ", ".join(f"{name}: {n} of {size} samples labelled" for name, (n, size) in short.items())
        for first in store.read_failures().to_pylist()[:1]:
            counts += f" (e.g. sample {first['sample_id']}: {first['reason']}, {first['message'][:200]})"
        raise IncompleteDataset(counts)
    info = _info(config, simulator, folder, labeled, {"requested": sizes, "failed": failed, "phase": phase})
    write_manifest(info, folder)
    write_config(config, folder)
    return info


def _info(config: Config, simulator, folder: Path, splits: dict[str, int], meta: dict) -> DatasetInfo:
    """The manifest of a dataset the simulator labelled: what and who made it, and when."""
    return DatasetInfo(
        root=folder,
        simulator=config.simulator.to_dict(),
        parameters=list(simulator.parameter_names),
        input_shape=list(simulator.input_shape),
        output_shape=list(simulator.output_shape),
        extras=list(simulator.extras),
        splits=splits,
        seed=config.seed,
        format_version=FORMAT_VERSION,
        meta={"raysurr": raysurr.__version__, "host": platform.node(), "created": time.time(), **meta},
    )


def refuse_physics_term(config: Config, command: str) -> None:
    """`training.physics_weight` learns from a run's unlabelled pool, which `train` and `tune` do not have."""
    if config.training.physics_weight:
        raise ConfigError(f"training.physics_weight learns from an active-learning run's unlabelled pool, which "
                          f"raysurr {command} does not have; set training.physics_weight=0")  # fmt: skip


def dataset_simulator(info: DatasetInfo) -> SimulatorConfig:
    """The simulator that labelled a dataset, checked to be buildable here (its plugin loaded)."""
    section = SimulatorConfig.from_dict(info.simulator)
    try:
        build_simulator(section)
    except RegistryError:
        raise ConfigError(f"the dataset {str(info.root)!r} was labelled by simulator {section.name!r}, which is not "
                          "registered here; load its plugin with --set 'plugins=[your_module]'") from None  # fmt: skip
    return section
