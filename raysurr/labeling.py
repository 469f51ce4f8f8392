"""Labelling on Ray: a pool of simulator actors fed chunks of parameter sets.

Each `SimulatorActor` builds its simulator once (expensive set-up happens once per actor) and
labels chunks. The `Labeler` keeps a bounded number of chunks in flight per actor, takes results in
the order they finish, and writes each finished chunk to the store before anything else sees it.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import ray

from raysurr.config import LabelingConfig, ResourcesConfig, SimulatorConfig, load_plugins
from raysurr.data.store import PartStore, samples_table
from raysurr.progress import Progress
from raysurr.runtime import thread_env
from raysurr.simulators import AbstractSimulator, build_simulator, run_simulation


class SimulatorActor:
    """Holds one simulator instance and labels chunks of parameter sets with it."""

    def __init__(self, config: SimulatorConfig, plugins: Sequence[str]) -> None:
        load_plugins(plugins)
        self.simulator: AbstractSimulator = build_simulator(config)
        self.node = socket.gethostname()
        self.actor_id = ray.get_runtime_context().get_actor_id() or "local"

    def label(self, sample_ids: np.ndarray, params: np.ndarray):
        """Render and simulate a chunk; returns a samples table with provenance columns."""
        start = time.perf_counter()
        simulation = run_simulation(self.simulator, params, sample_ids)
        inputs = self.simulator.render(params)
        n = len(sample_ids)
        provenance = {
            "fidelity": [self.simulator.fidelity] * n,
            "wall_s": np.full(n, (time.perf_counter() - start) / max(n, 1)),
            "node": [self.node] * n,
            "labeled_at": np.full(n, time.time()),
        }
        return samples_table(self.simulator, sample_ids, params, inputs, simulation, provenance)


def simulator_actor_count(resources: ResourcesConfig) -> int:
    """The configured actor count, or as many as the cluster's CPUs (and `simulator` slots) allow."""
    if resources.simulators is not None:
        return resources.simulators
    total = ray.cluster_resources()
    count = int(total.get("CPU", 1) // resources.cpus_per_simulator)
    if resources.simulator_resource and resources.simulator_resource in total:
        count = min(count, int(total[resources.simulator_resource]))
    return max(1, count)


def actor_options(resources: ResourcesConfig) -> dict:
    """Ray options of one simulator actor: CPUs, GPUs, threads, and the simulator resource if defined."""
    options = {
        "num_cpus": resources.cpus_per_simulator,
        "num_gpus": resources.gpus_per_simulator,
        "runtime_env": {"env_vars": thread_env(resources.cpus_per_simulator)},
    }
    if resources.simulator_resource and resources.simulator_resource in ray.cluster_resources():
        options["resources"] = {resources.simulator_resource: 1}
    return options


class Labeler:
    """Labels samples on a pool of `SimulatorActor`s and writes each finished chunk to a store.

    Build it once (the actors start then) and call `label` per batch of samples; `close` stops
    the actors. Needs a connected Ray (`raysurr.runtime.connect`).
    """

    def __init__(
        self,
        simulator: SimulatorConfig,
        plugins: Sequence[str],
        labeling: LabelingConfig,
        resources: ResourcesConfig,
    ) -> None:
        self.labeling = labeling
        remote = ray.remote(SimulatorActor).options(**actor_options(resources))
        self.actors = [remote.remote(simulator, tuple(plugins)) for _ in range(simulator_actor_count(resources))]

    def label(self, sample_ids: np.ndarray, params: np.ndarray, store: PartStore, phase: str = "label") -> int:
        """Label every sample; returns how many were written.

        Args:
            sample_ids: [n] int64.
            params: [n, P] float64 parameter sets in the simulator's column order.
            store: where each finished chunk is written, before this returns anything.
        """
        size = self.labeling.chunk_size
        chunks = deque((sample_ids[i : i + size], params[i : i + size]) for i in range(0, len(sample_ids), size))
        capacity = {i: self.labeling.in_flight_per_actor for i in range(len(self.actors))}
        pending: dict[ray.ObjectRef, tuple[int, int]] = {}  # ref -> (actor index, samples)
        progress = Progress(phase, total=len(sample_ids))
        written = 0
        while chunks or pending:
            for index in capacity:
                while capacity[index] > 0 and chunks:
                    ids, chunk_params = chunks.popleft()
                    pending[self.actors[index].label.remote(ids, chunk_params)] = (index, len(ids))
                    capacity[index] -= 1
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            capacity[pending.pop(ready)[0]] += 1
            table = ray.get(ready)
            store.write(table)
            written += table.num_rows
            progress.update(done=table.num_rows, in_flight=sum(n for _, n in pending.values()))
        progress.close()
        return written

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
