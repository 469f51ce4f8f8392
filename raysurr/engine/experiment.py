"""An experiment: a grid of active-learning runs (architectures x acquisition functions x seeds), `parallel` at a
time on the cluster, each an ALDriver actor in its own run folder, and the report rewritten after each.

Every run is the base config with one model section, one acquisition section and one seed (the config's
`experiment` section). Runs of one seed share the candidate pool and the initial labelled set; every run shares
the validation and test sets (`pool.eval_seed`, cached in `FOLDER/.eval-cache`). Each run is resumable on its
own: `run_experiment` on a folder skips the finished ones.
"""

from __future__ import annotations

import contextlib
import csv
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray.exceptions import RayActorError, RayTaskError

from raysurr.acquisition import build_acquisition
from raysurr.config import AcquisitionConfig, Config, ModelConfig
from raysurr.data.lock import FolderLock
from raysurr.data.store import write_config
from raysurr.distributed.runtime import connect
from raysurr.engine.folders import claim_new_folder, output_folder, remote_error
from raysurr.engine.launch import check_config, check_resources, start_driver
from raysurr.engine.plan import announce, check_scale
from raysurr.engine.report import KEYS, read_summary, write_report
from raysurr.engine.run_folder import RunFolder
from raysurr.errors import ConfigError, RaysurrError
from raysurr.progress import say
from raysurr.tracking import Tracker, open_tracker

Key = tuple[str, str, int]  # (model, acquisition, seed)
T = TypeVar("T")


def check_empty(config: Config) -> None:
    if not config.experiment.acquisitions:
        raise ConfigError("experiment.acquisitions is empty: name the functions to compare, e.g. {random: {}, tod: {}}")


def start_grid(config: Config, out: Path | None, kind: str, address: str | None,
               run: Callable[[Path, Config], T], given: set[str] | None = None) -> T:  # fmt: skip
    """Check a grid, say its plan, then create its folder (`out`, or runs/KIND-NAME-TIME) with its config and `run`
    it. `given`: the keys the user set (a plugin simulator's grid at default sizes is refused; None: no check)."""
    check_grid(config)  # before the folder exists: a mistake leaves nothing behind
    runs = plan(config)
    if given is not None:
        check_scale(next(iter(runs.values())), given)
    folder = output_folder(out, f"{kind}-{config.name}", kind)
    connect(address)
    check_grid_resources(config)
    announce(next(iter(runs.values())), len(runs))
    with claim_new_folder(folder, kind):
        write_config(config, folder)
        return run(folder, config)


def run_experiment(folder: Path, config: Config) -> int:
    """Run every unfinished run of the grid in `folder` (its config written there, Ray connected) and rewrite the
    report; the number of runs."""
    runs = plan(config)
    say(f"experiment: {len(runs)} runs, {config.experiment.parallel} side by side; folder {folder}")
    start = time.perf_counter()
    tracker = open_tracker(config, folder)
    try:
        execute(folder, config, tracked(runs, config, tracker), tracker)
    except BaseException:
        with contextlib.suppress(Exception):  # the grid's own error is the one to report
            tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED", [folder / "config.yaml"])
    say(f"experiment: {len(runs)} runs in {time.perf_counter() - start:.0f}s; report: {folder / 'report.md'}")
    return len(runs)


def plan(config: Config) -> dict[Key, Config]:
    """{(model, acquisition, seed): the run's config}, seed-major so that an early stop leaves whole seeds."""
    grid = config.experiment
    models = grid.sections("models") or {config.model.name: config.model.to_dict()}
    runs = {}
    for seed in grid.seeds:
        for model, model_section in models.items():
            for acquisition, acquisition_section in grid.sections("acquisitions").items():
                run = replace(config, name=f"{config.name}-{model}-{acquisition}-s{seed}", seed=seed,
                              pool=replace(config.pool, eval_seed=config.seed),
                              model=ModelConfig.from_dict(model_section),
                              acquisition=AcquisitionConfig.from_dict(acquisition_section))  # fmt: skip
                if acquisition == grid.reference and grid.reference_budget:
                    run = replace(run, loop=replace(run.loop, **reference_loop(config, grid.reference_budget)))
                runs[(model, acquisition, seed)] = run
    return runs


def reference_loop(config: Config, budget: int) -> dict[str, Any]:
    """The `loop` keys of the reference's runs, which go on to `budget` labels: its label budget, enough rounds,
    and `loop.sizes` continued at their last ratio (the last size `budget`)."""
    loop = config.loop
    if not loop.sizes:
        rounds = math.ceil((budget - config.pool.initial) / loop.batch_size) + 1
        return {"label_budget": budget, "rounds": max(loop.rounds, rounds)}
    sizes, ratio = list(loop.sizes), loop.sizes[-1] / loop.sizes[-2] if len(loop.sizes) > 1 else 2.0
    while sizes[-1] < budget:
        sizes.append(min(budget, max(sizes[-1] + 1, round(sizes[-1] * ratio))))
    return {"label_budget": budget, "sizes": tuple(sizes)}


def check_reference_budget(config: Config) -> None:
    """`experiment.reference_budget` lets the reference go on past the others' last label count."""
    loop, reference = config.loop, config.experiment.reference_budget
    budget = loop.sizes[-1] if loop.sizes else loop.label_budget
    if reference is not None and (budget is None or reference <= budget):
        raise ConfigError(f"experiment.reference_budget ({reference}) is where the reference's runs stop, past the "
                          f"others' last label count (loop.sizes or loop.label_budget: {budget}); set it above "
                          "that")  # fmt: skip


def oracle_label(config: Config) -> str | None:
    """The label of the grid's hindsight oracle arm (a function that reads the true outputs), if it has one."""
    for label, section in config.experiment.sections("acquisitions").items():
        if build_acquisition(section).needs.truth:
            return label
    return None


def check_grid(config: Config) -> None:
    """Every architecture and acquisition function of the grid exists and builds."""
    check_reference_budget(config)
    for run_config in {(c.model.name, c.acquisition.name): c for c in plan(config).values()}.values():
        check_config(run_config)


def check_grid_resources(config: Config) -> None:
    for run_config in {(c.model.name, c.acquisition.name): c for c in plan(config).values()}.values():
        check_resources(run_config)


def run_dir(folder: Path, key: Key) -> Path:
    model, acquisition, seed = key
    return folder / "runs" / f"{model}-{acquisition}-s{seed}"


def tracked(runs: dict[Key, Config], config: Config, tracker: Tracker) -> dict[Key, Config]:
    """With tracking on, every run recorded as a child of the grid's run."""
    return {key: tracker.child(config, c) for key, c in runs.items()}


def execute(folder: Path, config: Config, runs: dict[Key, Config], tracker: Tracker) -> None:
    """Run every unfinished run, `parallel` at a time; rewrite the summary (and log it to `tracker`) after each."""
    if config.pool.eval_cache is None:  # one cache for the whole experiment, inside its folder
        runs = {key: _with_cache(c, folder / ".eval-cache") for key, c in runs.items()}
    todo = [key for key in runs if not RunFolder(run_dir(folder, key)).finished()]
    say(f"{len(runs) - len(todo)} runs already finished; {len(todo)} to go")
    active: dict[ray.ObjectRef, tuple[Key, ray.actor.ActorHandle, FolderLock]] = {}
    done, failed = len(runs) - len(todo), []
    try:
        while todo or active:
            while todo and len(active) < config.experiment.parallel:
                key = todo.pop(0)
                path = run_dir(folder, key)
                path.mkdir(parents=True, exist_ok=True)
                lock = FolderLock(path, "run folder").acquire()  # as a `drive` of it would: one writer
                write_config(runs[key], path)
                driver = start_driver(path, runs[key])
                active[driver.run.remote()] = (key, driver, lock)
                say(f"started {path.name}")
            ready, _ = ray.wait(list(active), num_returns=1)
            key, driver, lock = active.pop(ready[0])
            name = run_dir(folder, key).name
            try:
                result = ray.get(ready[0])
            except (RayTaskError, RayActorError) as exc:  # one broken run must not stop a grid of hours
                failed.append(name)
                error = remote_error(exc, RunFolder(run_dir(folder, key)).error_log)
                say(f"run {name} failed ({error}); the others go on, --resume retries it")
                continue
            finally:
                ray.kill(driver)
                lock.release()
            done += 1
            say(f"finished {name} ({result['stopped']}); {done}/{len(runs)} runs done")
            summarize(folder, config)
            tracker.rounds([], [folder / "report.md", folder / "summary.csv", *sorted(folder.glob("*.png"))])
    finally:
        for _, driver, lock in active.values():
            ray.kill(driver)
            lock.release()
    if failed:
        raise RaysurrError(f"{len(failed)} runs failed ({', '.join(failed)}); see their errors above and continue "
                           f"with --resume {folder}")  # fmt: skip


def _with_cache(config: Config, cache: Path) -> Config:
    return replace(config, pool=replace(config.pool, eval_cache=str(cache.resolve())))


def summarize(folder: Path, config: Config) -> None:
    """summary.csv from every finished run's rounds.csv, then report.md and the figures."""
    rows, columns = [], {}
    for key in plan(config):
        run = RunFolder(run_dir(folder, key))
        if not run.finished():
            continue
        with run.rounds_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({**dict(zip(KEYS, key, strict=True)), "run": run.root.name, **row})
                columns.update(dict.fromkeys(row))
    if not rows:
        return
    with (folder / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*KEYS, "run", *columns])
        writer.writeheader()
        writer.writerows(rows)
    grid = config.experiment
    write_report(read_summary(folder / "summary.csv"), folder, grid.reference, grid.budgets, oracle_label(config),
                 grid.confidence)  # fmt: skip
