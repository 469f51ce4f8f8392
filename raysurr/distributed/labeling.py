"""The labelling service: a fault-tolerant pool of simulator actors.

Each `SimulatorActor` builds its simulator once (expensive set-up happens once per actor) and
labels chunks of parameter sets. A simulator exception or a non-finite output fails only the
offending samples: the actor re-runs a failing chunk one sample at a time to isolate them.

The `Labeler` keeps a bounded number of chunks in flight per actor, takes results as they finish,
and writes each one to the `LabelStore` before anything else sees it. It replaces an actor whose
process died (and retries its chunk, split in halves so a sample that kills its process ends up
alone), kills and replaces an actor that runs past the per-sample timeout (with a timeout, each
call holds one sample, so a hang costs exactly the timeout), retries a failed sample after a
growing pause as often as `labeling.retries` allows for its kind of failure, and never simulates
a sample id that the store already holds (labelled or failed), so a restarted run resumes.
"""

from __future__ import annotations

import math
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import ray
from ray.exceptions import RayActorError, RayTaskError

from raysurr.config import LabelingConfig, ResourcesConfig, SimulatorConfig, load_plugins
from raysurr.data.labels import LabelStore
from raysurr.data.records import ChunkResult, FailureRecord
from raysurr.data.store import samples_table
from raysurr.distributed.runtime import check_fits, cluster_capacity, resource_known, thread_env
from raysurr.errors import SimulationError
from raysurr.progress import Progress
from raysurr.simulators import AbstractSimulator, build_simulator
from raysurr.simulators.base import check_shapes, finite_rows

Selected = dict[int, tuple[int, float]]  # {sample id: (the checkpoint that selected it, -1 for none; when)}


class SimulatorActor:
    """Holds one simulator instance and labels chunks of parameter sets with it."""

    def __init__(self, config: SimulatorConfig, plugins: Sequence[str]) -> None:
        load_plugins(plugins)
        self.simulator: AbstractSimulator = build_simulator(config)
        self.node = socket.gethostname()
        actor_id = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
        self.actor_id = (actor_id or "local")[:12]

    def label(self, sample_ids: np.ndarray, params: np.ndarray, attempt: int = 1) -> ChunkResult:
        """Simulate a chunk; returns the labelled rows and a failure record per failed sample."""
        start = time.perf_counter()
        try:
            checked = self.simulator.check_parameters(params)
            result = self.simulator.simulate(checked)
            check_shapes(self.simulator, result, sample_ids)
        except Exception as exc:  # any simulator error: isolate it rather than fail the chunk
            if len(sample_ids) > 1:  # each sample runs again, alone: its next attempt
                return self._one_by_one(sample_ids, params, attempt + 1)
            return ChunkResult(None, [self._failure(sample_ids[0], "exception", exc, attempt, start)])
        good = finite_rows(result)
        wall = (time.perf_counter() - start) / len(sample_ids)
        failures = [
            self._failure(sample_ids[i], "non_finite", ValueError("non-finite output"), attempt, start)
            for i in np.flatnonzero(~good)
        ]
        if not good.any():
            return ChunkResult(None, failures)
        kept = type(result)(result.outputs[good], {k: np.asarray(v)[good] for k, v in result.extras.items()})
        n = int(good.sum())
        provenance = {
            "fidelity": [self.simulator.fidelity] * n,
            "wall_s": np.full(n, wall),
            "attempts": np.full(n, attempt, dtype=np.int64),
            "node": [self.node] * n,
            "actor": [self.actor_id] * n,
            "labeled_at": np.full(n, time.time()),
        }
        inputs = self.simulator.render(checked[good])
        return ChunkResult(samples_table(self.simulator, sample_ids[good], checked[good], inputs, kept, provenance),
                           failures)  # fmt: skip

    def _one_by_one(self, sample_ids: np.ndarray, params: np.ndarray, attempt: int) -> ChunkResult:
        parts = [self.label(sample_ids[i : i + 1], params[i : i + 1], attempt) for i in range(len(sample_ids))]
        tables = [p.table for p in parts if p.table is not None]
        return ChunkResult(pa.concat_tables(tables) if tables else None, [f for p in parts for f in p.failures])

    def _failure(self, sample_id, reason: str, exc: BaseException, attempt: int, start: float) -> FailureRecord:
        message = str(exc).strip().replace("\n", " | ")[-2000:] or type(exc).__name__
        return FailureRecord(int(sample_id), reason, type(exc).__name__, message, attempt, self.node, self.actor_id,
                             time.perf_counter() - start, time.time())  # fmt: skip

    def ping(self) -> tuple[str, str]:
        """(node, actor id): where this actor runs, for the failure records the Labeler writes itself."""
        return self.node, self.actor_id


def simulator_actor_count(resources: ResourcesConfig) -> int:
    """The configured actor count, or as many as the cluster's CPUs (and `simulator` slots) allow, counting the
    nodes an autoscaling cluster may still start (`runtime.cluster_capacity`)."""
    if resources.simulators is not None:
        return resources.simulators
    total, _ = cluster_capacity()
    count = int(total.get("CPU", 1) // resources.cpus_per_simulator)
    if resources.simulator_resource and resources.simulator_resource in total:
        count = min(count, int(total[resources.simulator_resource]))
    return max(1, count)


def check_simulator_fit(resources: ResourcesConfig) -> None:
    """One-line error now, rather than actors pending forever, if no node can host a simulator actor."""
    options = actor_options(resources)
    check_fits({"CPU": options["num_cpus"], "GPU": options["num_gpus"], **options.get("resources", {})},
               "each simulator actor", "lower resources.cpus_per_simulator or gpus_per_simulator, or add nodes "
               "that have them")  # fmt: skip


def actor_options(resources: ResourcesConfig) -> dict:
    """Ray options of one simulator actor: CPUs, GPUs, threads, and the simulator resource if defined."""
    options = {
        "num_cpus": resources.cpus_per_simulator,
        "num_gpus": resources.gpus_per_simulator,
        "runtime_env": {"env_vars": thread_env(resources.cpus_per_simulator)},
    }
    if resources.simulator_resource and resource_known(resources.simulator_resource):
        options["resources"] = {resources.simulator_resource: 1}  # only nodes that offer it (or will)
    return options


@dataclass
class _Chunk:
    sample_ids: np.ndarray
    params: np.ndarray
    attempt: int = 1  # the run of these samples this is (1: the first)
    retried: dict[str, int] = field(default_factory=dict)  # retries used so far, per failure kind
    not_before: float = 0.0  # monotonic time before which it must not run (back-off)

    def halves(self) -> list[_Chunk]:
        middle = len(self.sample_ids) // 2
        return [replace(self, sample_ids=self.sample_ids[s], params=self.params[s], attempt=self.attempt + 1)
                for s in (slice(0, middle), slice(middle, None))]  # fmt: skip

    def singles(self) -> list[_Chunk]:
        return [replace(self, sample_ids=self.sample_ids[i : i + 1], params=self.params[i : i + 1])
                for i in range(len(self))]  # fmt: skip

    def __len__(self) -> int:
        return len(self.sample_ids)


@dataclass
class _Slot:
    """One actor, where it runs, and the chunks it has been sent, in the order it runs them."""

    actor: ray.actor.ActorHandle
    node: str
    actor_id: str
    queue: deque = field(default_factory=deque)  # of (ref, chunk)
    started: float = 0.0  # when the head of the queue began to run
    busy_since: float | None = None  # when the queue last went from empty to not; None while it is empty
    busy_s: float = 0.0  # seconds with a non-empty queue before busy_since

    def idle_from(self, now: float) -> None:
        if self.busy_since is not None:
            self.busy_s += now - self.busy_since
            self.busy_since = None


@dataclass
class LabelStep:
    """What one `Labeler.step` stored: the ids labelled and failed, and how many runs it retried."""

    labeled_ids: list[int] = field(default_factory=list)
    failed_ids: list[int] = field(default_factory=list)
    retried: int = 0

    @property
    def ids(self) -> list[int]:
        return self.labeled_ids + self.failed_ids


class Labeler:
    """Labels samples on a pool of `SimulatorActor`s, writing each finished chunk to a `LabelStore`.

    Build it once (the actors start then), call `label` for each batch of samples, and `close`
    to stop the actors. Needs a connected Ray (`raysurr.distributed.runtime.connect`).
    """

    def __init__(
        self,
        simulator: SimulatorConfig,
        plugins: Sequence[str],
        labeling: LabelingConfig,
        resources: ResourcesConfig,
        actors: int | None = None,
    ) -> None:
        self.labeling = labeling
        check_simulator_fit(resources)
        self._remote = ray.remote(SimulatorActor).options(**actor_options(resources))
        self._args = (simulator, tuple(plugins))
        count = actors if actors is not None else simulator_actor_count(resources)
        self.slots = self._start(count)
        self.replaced = 0
        self.waiting: deque[_Chunk] = deque()  # chunks no actor holds yet, retries included
        self.selected: Selected = {}  # {sample id: (selected_by, selected_at)} from `submit`
        self.sent_at: dict[int, float] = {}  # {sample id: when `submit` took it}, for the labels of an AL run
        self.finished = 0  # sample runs that came back, labelled or failed (with busy_s: the time a sample takes)

    def _start(self, count: int) -> list[_Slot]:
        """Start actors and wait until each has built its simulator, so that set-up time never
        counts against a sample's timeout and a simulator that cannot be built fails here."""
        actors = [self._remote.remote(*self._args) for _ in range(count)]
        try:
            where = ray.get([actor.ping.remote() for actor in actors])
        except (RayTaskError, RayActorError) as exc:
            for actor in actors:
                ray.kill(actor)
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            raise SimulationError(f"simulator actors could not start: {lines[-1] if lines else exc!r}") from None
        return [_Slot(actor, node, actor_id) for actor, (node, actor_id) in zip(actors, where, strict=True)]

    @property
    def actors(self) -> list:
        return [slot.actor for slot in self.slots]

    def label(
        self,
        sample_ids: np.ndarray,
        params: np.ndarray,
        store: LabelStore,
        phase: str = "label",
        selected: Selected | None = None,
    ) -> dict:
        """Label every sample not yet in the store.

        Args:
            sample_ids: [n] int64.
            params: [n, P] float64 parameter sets in the simulator's column order.
            store: where each finished chunk goes, before anything else sees it.
            selected: {sample id: (selected_by, selected_at)}, written with each label (an AL run's).

        Returns:
            {"labeled": newly labelled, "failed": new failure records, "skipped": already stored,
            "retried": retries scheduled (a sample retried twice counts twice)}.
        """
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        known = store.labeled_ids() | store.failed_ids()
        todo = np.array([i not in known for i in sample_ids.tolist()], dtype=bool)
        self.submit(sample_ids[todo], np.asarray(params)[todo], selected)
        progress = Progress(phase, total=int(todo.sum()))
        counts = {"labeled": 0, "failed": 0, "skipped": int((~todo).sum()), "retried": 0}
        while not self.idle:
            arrived = self.step(store)
            counts["labeled"] += len(arrived.labeled_ids)
            counts["failed"] += len(arrived.failed_ids)
            counts["retried"] += arrived.retried
            if arrived.ids:
                progress.update(done=len(arrived.labeled_ids), failed=len(arrived.failed_ids),
                                in_flight=self._in_flight())  # fmt: skip
        progress.close()
        return counts

    def submit(self, sample_ids: np.ndarray, params: np.ndarray, selected: Selected | None = None) -> None:
        """Queue samples for the actors (the caller leaves out what the store holds); `step` runs them."""
        sample_ids = np.asarray(sample_ids, dtype=np.int64)
        if selected:
            self.selected.update(selected)
            now = time.time()
            self.sent_at.update((int(i), now) for i in sample_ids)
        # With a timeout a call holds one sample: a hang then costs one timeout, not a chunk's worth.
        size = 1 if self.labeling.timeout_s is not None else self.labeling.chunk_size
        params = np.asarray(params)
        self.waiting.extend(_Chunk(sample_ids[i : i + size], params[i : i + size])
                            for i in range(0, len(sample_ids), size))  # fmt: skip

    def step(self, store: LabelStore, max_wait_s: float | None = None) -> LabelStep:
        """Send waiting chunks to free actors, wait (at most `max_wait_s`) for the next finished one, and write
        what finished to the store before returning what it stored."""
        self._dispatch(self.waiting)
        step = LabelStep()
        for result, chunk in self._collect(self.waiting, max_wait_s):
            self.finished += result.done + len(result.failures)
            failures = self._retry_or_keep(result.failures, chunk, self.waiting)
            store.write(self._with_selection(result.table), failures)
            step.retried += len(result.failures) - len(failures)
            if result.table is not None:
                step.labeled_ids += result.table.column("sample_id").to_pylist()
            step.failed_ids += [f.sample_id for f in failures]
        return step

    @property
    def idle(self) -> bool:
        """Nothing waits and nothing runs."""
        return not self.waiting and not any(slot.queue for slot in self.slots)

    def free_slots(self) -> int:
        """Chunks the actors could take now beyond those waiting (what keeps each `in_flight_per_actor` deep)."""
        room = sum(max(0, self.labeling.in_flight_per_actor - len(slot.queue)) for slot in self.slots)
        return max(0, room - len(self.waiting))

    @property
    def chunk(self) -> int:
        """Samples per actor call."""
        return 1 if self.labeling.timeout_s is not None else self.labeling.chunk_size

    def pending_ids(self) -> set[int]:
        """Sample ids sent to an actor or waiting for one (retries included), not yet stored."""
        chunks = [*self.waiting, *(chunk for slot in self.slots for _, chunk in slot.queue)]
        return {int(i) for chunk in chunks for i in chunk.sample_ids}

    def busy_s(self) -> float:
        """Actor-seconds spent with a chunk sent (running or queued on the actor) since the actors started."""
        now = time.monotonic()
        return sum(slot.busy_s + (0.0 if slot.busy_since is None else now - slot.busy_since) for slot in self.slots)

    def _in_flight(self) -> int:
        return sum(len(chunk.sample_ids) for slot in self.slots for _, chunk in slot.queue)

    def _with_selection(self, table: pa.Table | None) -> pa.Table | None:
        """The labels with `selected_by`, `selected_at` and `sent_at` (when the loop handed them to the simulators)
        when the caller said who selected them."""
        if table is None or not self.selected:
            return table
        ids = table.column("sample_id").to_pylist()
        tags = [self.selected.get(i, (-1, math.nan)) for i in ids]
        table = table.append_column("selected_by", pa.array([int(by) for by, _ in tags], pa.int64()))
        table = table.append_column("selected_at", pa.array([float(at) for _, at in tags], pa.float64()))
        return table.append_column("sent_at", pa.array([self.sent_at.get(i, math.nan) for i in ids], pa.float64()))

    def _retry_or_keep(self, failures: list[FailureRecord], chunk: _Chunk, waiting: deque) -> list[FailureRecord]:
        """Queue a retry for each failure whose kind has retries left; return the failures to record."""
        keep = []
        rows = {int(i): k for k, i in enumerate(chunk.sample_ids)}
        for failure in failures:
            used = chunk.retried.get(failure.reason, 0)
            if used >= self.labeling.retries_for(failure.reason):
                keep.append(failure)
                continue
            k = rows[failure.sample_id]
            pause = min(60.0, self.labeling.backoff_s * 2 ** sum(chunk.retried.values()))
            waiting.append(_Chunk(chunk.sample_ids[k : k + 1], chunk.params[k : k + 1], failure.attempts + 1,
                                  {**chunk.retried, failure.reason: used + 1}, time.monotonic() + pause))  # fmt: skip
        return keep

    def _dispatch(self, waiting: deque) -> None:
        for slot in self.slots:
            while len(slot.queue) < self.labeling.in_flight_per_actor:
                chunk = _next_ready(waiting)
                if chunk is None:
                    return
                if not slot.queue:
                    slot.started = time.monotonic()
                    slot.busy_since = slot.started
                slot.queue.append((slot.actor.label.remote(chunk.sample_ids, chunk.params, chunk.attempt), chunk))

    def _collect(self, waiting: deque, max_wait_s: float | None = None) -> list[tuple[ChunkResult, _Chunk]]:
        """Wait for the next finished chunk (or the next deadline or retry, or `max_wait_s`) and handle what
        happened."""
        heads = {slot.queue[0][0]: slot for slot in self.slots if slot.queue}
        if not heads:  # nothing sent: only retries that wait out their back-off, or nothing at all
            until = min((c.not_before for c in waiting), default=math.inf) - time.monotonic()
            time.sleep(max(0.0, min(until, math.inf if max_wait_s is None else max_wait_s)))
            return []
        wait_s = self._wait_s(waiting)
        if max_wait_s is not None:
            wait_s = max_wait_s if wait_s is None else min(wait_s, max_wait_s)
        ready, _ = ray.wait(list(heads), num_returns=1, timeout=wait_s)
        if not ready:
            return self._expire_overdue(waiting)
        slot = heads[ready[0]]
        ref, chunk = slot.queue.popleft()
        slot.started = time.monotonic()
        if not slot.queue:
            slot.idle_from(slot.started)
        try:
            return [(ray.get(ref), chunk)]
        except RayActorError:
            return self._actor_died(slot, chunk, waiting)

    def _wait_s(self, waiting: deque) -> float | None:
        """Until the next deadline of a running chunk, or the next retry that an idle actor could take."""
        times = []
        if self.labeling.timeout_s is not None:
            times += [self._deadline(slot) for slot in self.slots if slot.queue]
        if waiting and any(len(slot.queue) < self.labeling.in_flight_per_actor for slot in self.slots):
            times.append(min(chunk.not_before for chunk in waiting))
        return max(0.0, min(times) - time.monotonic()) if times else None

    def _deadline(self, slot: _Slot) -> float:
        return slot.started + self.labeling.timeout_s * len(slot.queue[0][1].sample_ids)

    def _expire_overdue(self, waiting: deque) -> list[tuple[ChunkResult, _Chunk]]:
        """Kill actors whose running chunk is past its deadline; isolate the slow samples."""
        results = []
        for slot in self.slots:
            if self.labeling.timeout_s is None or not slot.queue or time.monotonic() < self._deadline(slot):
                continue
            _, chunk = slot.queue.popleft()
            failure = _driver_failure(chunk, "timeout", TimeoutError(
                f"ran past the per-sample timeout of {self.labeling.timeout_s}s; actor replaced"), slot)  # fmt: skip
            self._replace(slot, waiting)
            if len(chunk.sample_ids) > 1:  # one at a time: each slow sample then costs one timeout
                waiting.extendleft(reversed(chunk.singles()))
            else:
                results.append((ChunkResult(None, [failure]), chunk))
        return results

    def _actor_died(self, slot: _Slot, chunk: _Chunk, waiting: deque) -> list[tuple[ChunkResult, _Chunk]]:
        """The running chunk's process died: retry it in halves on a fresh actor; a lone sample is a failure
        (retried as often as `labeling.retries.crash` allows)."""
        failure = _driver_failure(chunk, "crash", RuntimeError("the simulator process died"), slot)
        self._replace(slot, waiting)
        if len(chunk.sample_ids) > 1:
            waiting.extendleft(reversed(chunk.halves()))
            return []
        return [(ChunkResult(None, [failure]), chunk)]

    def _replace(self, slot: _Slot, waiting: deque) -> None:
        """Kill a slot's actor, requeue the chunks that had not started, and start a fresh actor."""
        ray.kill(slot.actor, no_restart=True)
        waiting.extendleft(reversed([chunk for _, chunk in slot.queue]))
        slot.idle_from(time.monotonic())  # the fresh actor starts idle
        slot.queue.clear()
        (fresh,) = self._start(1)
        slot.actor, slot.node, slot.actor_id = fresh.actor, fresh.node, fresh.actor_id
        self.replaced += 1

    def close(self) -> None:
        for slot in self.slots:
            ray.kill(slot.actor, no_restart=True)
        self.slots = []


def _next_ready(waiting: deque) -> _Chunk | None:
    """Take the first chunk whose back-off is over (most are at the front)."""
    now = time.monotonic()
    for i, chunk in enumerate(waiting):
        if chunk.not_before <= now:
            del waiting[i]
            return chunk
    return None


def _driver_failure(chunk: _Chunk, reason: str, error: BaseException, slot: _Slot) -> FailureRecord:
    """A failure the Labeler saw itself (a timeout, a dead process), with where it happened."""
    return FailureRecord(int(chunk.sample_ids[0]), reason, type(error).__name__, str(error), chunk.attempt,
                         slot.node, slot.actor_id, time.monotonic() - slot.started, time.time())  # fmt: skip
