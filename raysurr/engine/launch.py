"""Starting AL runs on Ray: what `drive` and `experiment` check before a run folder changes, and the
driver actor that runs it."""

from __future__ import annotations

import os
from pathlib import Path

import ray
from ray.exceptions import RayActorError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from raysurr.acquisition import build_acquisition
from raysurr.config import Config, ResourcesConfig
from raysurr.data.imported import read_labelled
from raysurr.data.store import write_config
from raysurr.distributed.labeling import check_simulator_fit, simulator_actor_count
from raysurr.distributed.runtime import connect
from raysurr.distributed.scoring import check_score_fit
from raysurr.distributed.training import scaling_config
from raysurr.engine.datasets import evaluation_files
from raysurr.engine.driver import ALDriver
from raysurr.engine.folders import claim_new_folder, output_folder, remote_error
from raysurr.engine.plan import announce, check_scale
from raysurr.engine.run_folder import RunFolder, read_candidates
from raysurr.errors import ConfigError
from raysurr.models import check_model
from raysurr.progress import say
from raysurr.simulators import build_simulator
from raysurr.tracking import check_tracking


def check_config(config: Config) -> None:
    """Everything about a run that can be checked without Ray: the names, that the model takes the
    simulator's inputs and gives its outputs, and the candidate pool (the config's plugins are loaded)."""
    simulator = build_simulator(config.simulator)
    acquisition = build_acquisition(config.acquisition)
    acquisition.bind(simulator)  # refuses a simulator without what the function needs
    if acquisition.needs.truth:
        say(f"note: acquisition {config.acquisition.name} simulates every unlabelled candidate every round (up to "
            f"{config.pool.size} simulator runs a round, with the simulator's evaluation settings): a benchmark's "
            "hindsight bound, not a way to save simulator runs")  # fmt: skip
    if config.training.physics_weight and simulator.residual is None:
        raise ConfigError(f"training.physics_weight needs the simulator's residual, and simulator "
                          f"{config.simulator.name!r} has none; give it one (docs/simulators.md) or set 0")  # fmt: skip
    check_model(config.model, simulator.input_shape, simulator.output_shape)
    read_candidates(config, simulator)
    if config.pool.initial_from:  # the user's own labelled samples: checked now, before any folder exists
        read_labelled(config.pool.initial_from, simulator, "pool.initial_from", "train")
    evaluation_files(config)
    check_tracking(config)


def check_resources(config: Config) -> None:
    """One line now, not after a round of labelling, if no node of the connected cluster can hold a
    simulator actor, a training worker or a scoring worker."""
    check_simulator_fit(config.resources)
    scaling_config(config.resources)
    check_score_fit(config.resources)
    if config.loop.is_async:
        check_async_fit(config.resources)


def check_async_fit(resources: ResourcesConfig) -> None:
    """In the async loop the simulator actors hold their CPUs while training runs: both must fit at once."""
    total = ray.cluster_resources().get("CPU", 0.0)
    actors = simulator_actor_count(resources)
    simulators = actors * resources.cpus_per_simulator
    training = resources.train_workers * resources.cpus_per_train_worker
    if simulators + max(training, 1.0) > total:
        raise ConfigError(f"loop.mode async keeps {actors} simulator actors ({simulators:g} CPUs) busy while "
                          f"training takes {training:g} CPUs, and the cluster has {total:g}: lower "
                          "resources.simulators or cpus_per_train_worker (cpus_per_simulator 0 for a simulator "
                          "that only waits)")  # fmt: skip


def driver_name(run_name: str) -> str:
    return f"raysurr-driver-{run_name}"


def start_driver(run_dir, config: Config) -> ray.actor.ActorHandle:
    """The run's ALDriver as a named actor (the name keeps two drivers off one run); call `.run.remote()`.

    It runs on this process's node, where `run_dir` is: its workers get data through Ray, not the disk.
    """
    context = ray.get_runtime_context()
    here = NodeAffinitySchedulingStrategy(context.get_node_id(), soft=False)
    # This cluster's address for Ray's own lookups in the driver and what it starts (Ray Train's placement-group
    # cleaner asks the state API, which otherwise finds the last cluster `ray start` began on this machine).
    own = {"env_vars": {"RAY_ADDRESS": context.gcs_address}}
    actor = ray.remote(ALDriver).options(name=driver_name(config.name), num_cpus=0, max_concurrency=1,
                                         scheduling_strategy=here, runtime_env=own)  # fmt: skip
    try:
        return actor.remote(str(Path(run_dir).resolve()), config.to_dict(), owner=os.getpid(), cwd=os.getcwd())
    except ValueError:  # Ray refuses a second actor of the same name
        raise ConfigError(
            f"a run named {config.name!r} is already running on this cluster; give this one another name "
            "(--set name=...)"
        ) from None


def new_run(config: Config, out: Path | None = None, address: str | None = None,
            given: set[str] | None = None) -> tuple[Path, dict]:  # fmt: skip
    """Check `config`, say its plan, create its run folder (`out`, or runs/NAME-TIME) and drive it; the folder and
    the driver's result. `given`: the keys the user set (a plugin simulator at default sizes is refused; None: no
    check). Nothing is created before every check has passed."""
    check_config(config)
    if given is not None:
        check_scale(config, given)
    folder = output_folder(out, config.name, "run")
    connect(address)
    check_resources(config)
    announce(config)
    with claim_new_folder(folder, "run"):
        write_config(config, folder)
        return folder, drive(folder, config)


def drive(folder: Path, config: Config) -> dict:
    """Run the loop of the run in `folder` in its ALDriver actor (Ray connected, the folder claimed); the result
    (`stopped`: why it stopped). An error inside it comes back as one line, its traceback in the folder's log."""
    say(f"run folder: {folder}")
    driver = start_driver(folder, config)
    try:
        return ray.get(driver.run.remote())
    except (RayTaskError, RayActorError) as exc:
        raise remote_error(exc, RunFolder(folder).error_log) from None
    finally:
        ray.kill(driver)
