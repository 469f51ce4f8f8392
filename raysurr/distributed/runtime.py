"""Connecting to Ray: a local cluster by default, or a running one with `--address`."""

from __future__ import annotations

import contextlib
import logging
import os
import socket

import ray

from raysurr.errors import ConfigError, ResourceError
from raysurr.progress import MODE, bars_wanted

AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
# Ray Data's warnings that say nothing to a raysurr user: "the cluster currently does not have any available
# CPUs ... will hang" when a Dataset starts while the previous one's actors are still being released (it does not
# hang: raysurr checks that every stage fits the cluster before a run), and "operator progress bars disabled".
QUIET_RAY_DATA = ("ray.data.dataset", "ray.data._internal.progress")
# One BLAS/OpenMP thread per worker unless a stage asks for more: oversubscribed threads on a
# small machine slow everything several times over.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def connect(address: str | None = None, num_cpus: int | None = None, dashboard: bool | None = None) -> None:
    """Initialise Ray once per process.

    Args:
        address: "auto", an address or "ray://..." joins a running cluster; None joins the one RAY_ADDRESS names
            (as a `ray job submit` entrypoint has it), else starts a local Ray (dashboard on 127.0.0.1:8265),
            even where `ray start` left one running on this machine, which Ray itself would join.
        num_cpus: CPUs of a local Ray; None uses the machine's.
        dashboard: start the dashboard with a local Ray; None reads RAYSURR_DASHBOARD (default on).
    """
    if ray.is_initialized():
        return
    os.environ[MODE] = "bars" if bars_wanted() else "lines"  # decided by this command's terminal, for every worker
    quiet_ray_data()
    runtime_env = {"env_vars": {**WORKER_ENV, MODE: os.environ[MODE]}}
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
        try:
            ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({_first_line(exc)}); {_START}") from None
        return
    if dashboard is None:
        dashboard = os.environ.get("RAYSURR_DASHBOARD", "1") != "0"
    # Ray 2.60 turns token authentication on for a new local cluster and warns that it did, on every run. It stays
    # on (README: "Token authentication"); naming the mode instead (RAY_AUTH_MODE=token) would silence it too, but
    # Ray reads that once, when it is imported.
    logging.getLogger(AUTH_LOGGER).setLevel(logging.ERROR)
    ray.init(
        address="local",
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        runtime_env=runtime_env,
        logging_level="WARNING",
    )


_START = "start one (ray start --head, or ray up cluster.yaml) or leave out --address for a local Ray"


def _check_reachable(address: str) -> None:
    """A HOST:PORT that refuses connections fails in seconds, not after Ray's minutes of retries."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); {_START}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def quiet_ray_data() -> None:
    """raysurr prints its own progress lines; Ray Data's per-operator logs would drown them. Its progress bars
    show where the command's output is a terminal (`progress.bars_wanted`), not in a log file."""
    import ray.data  # here, not at the top: Ray Data loads slowly, and only the processes that use it need it

    context = ray.data.DataContext.get_current()
    context.print_on_execution_start = False
    # Without bars, Ray Data logs its progress at INFO level (hidden below) instead of sending bars to the terminal;
    # with them, one bar per Dataset, not one per internal operator (a union, a repartition).
    context.use_ray_tqdm = bars_wanted()
    context.enable_operator_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    for name in QUIET_RAY_DATA:
        logging.getLogger(name).setLevel(logging.ERROR)


def thread_env(cpus: float) -> dict[str, str]:
    """Environment for a worker that holds `cpus` CPUs: as many BLAS threads, at least one."""
    threads = str(max(1, int(cpus)))
    return {name: threads for name in WORKER_ENV}


def node_shapes() -> list[dict[str, float]]:
    """The resources of every alive node and of every node type the autoscaler may still launch."""
    shapes = [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
    return shapes + [dict(group.resources) for group in autoscaling_groups()]


def autoscaling_groups() -> list:
    """The node types an autoscaling cluster may launch (each with `resources` and `max_count`); none elsewhere.

    Autoscaling clusters publish them through a private API: a best effort, and without it the callers rest on
    the nodes that are up."""
    with contextlib.suppress(Exception):
        from ray._private.state import state

        config = state.get_cluster_config()
        return list(config.node_group_configs) if config else []
    return []


def cluster_capacity() -> tuple[dict[str, float], bool]:
    """The resources the cluster can hold at once: its alive nodes', or, on an autoscaling cluster, every node type
    at its `max_workers` (the larger of the two per resource); and whether that counts nodes not started yet.

    On `ray up cluster.yaml` the workers start at zero: sizing by the alive nodes alone would give one actor."""
    alive = dict(ray.cluster_resources())
    declared: dict[str, float] = {}
    for group in autoscaling_groups():
        for key, value in dict(group.resources).items():
            declared[key] = declared.get(key, 0.0) + value * max(0, int(group.max_count))
    capacity = {key: max(alive.get(key, 0.0), declared.get(key, 0.0)) for key in alive.keys() | declared.keys()}
    return capacity, any(capacity[key] > alive.get(key, 0.0) for key in capacity)


def resource_known(name: str) -> bool:
    """Whether some node has, or some launchable node type would have, the custom resource `name`."""
    return any(shape.get(name, 0) > 0 for shape in node_shapes())


def check_fits(per_unit: dict[str, float], what: str, fix: str) -> None:
    """Fail fast, instead of waiting forever, when no node can ever hold one unit of a request.

    Args:
        per_unit: the resources one actor or worker asks for, e.g. {"CPU": 1, "GPU": 2}.
        what: the request in the user's words ("each training worker").
        fix: the config keys to change.
    """
    wanted = {key: value for key, value in per_unit.items() if value}
    shapes = node_shapes()
    if any(all(shape.get(key, 0) >= value for key, value in wanted.items()) for shape in shapes):
        return
    largest = {key: max((shape.get(key, 0) for shape in shapes), default=0) for key in wanted}
    raise ResourceError(f"{what} asks for {_show(wanted)}, but no node of this cluster has that much (the most any "
                        f"node offers: {_show(largest)}); {fix}")  # fmt: skip


def _show(resources: dict[str, float]) -> str:
    return ", ".join(f"{value:g} {key}" for key, value in resources.items())
