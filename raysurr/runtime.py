"""Connecting to Ray: a local cluster by default, or a running one with `--address`."""

from __future__ import annotations

import logging
import os

import ray

# One BLAS/OpenMP thread per worker unless a stage asks for more: oversubscribed threads on a
# small machine slow everything several times over.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def connect(address: str | None = None, num_cpus: int | None = None, dashboard: bool | None = None) -> None:
    """Initialise Ray once per process.

    Args:
        address: None starts a local Ray (dashboard on 127.0.0.1:8265); "auto" or "ray://..."
            joins a running cluster.
        num_cpus: CPUs of a local Ray; None uses the machine's.
        dashboard: start the dashboard with a local Ray; None reads RAYSURR_DASHBOARD (default on).
    """
    if ray.is_initialized():
        return
    quiet_ray_data()
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address:
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
        return
    if dashboard is None:
        dashboard = os.environ.get("RAYSURR_DASHBOARD", "1") != "0"
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        runtime_env=runtime_env,
        logging_level="WARNING",
    )


def quiet_ray_data() -> None:
    """raysurr prints its own progress lines; Ray Data's per-operator logs would drown them."""
    import ray.data

    ray.data.DataContext.get_current().print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def thread_env(cpus: float) -> dict[str, str]:
    """Environment for a worker that holds `cpus` CPUs: as many BLAS threads, at least one."""
    threads = str(max(1, int(cpus)))
    return {name: threads for name in WORKER_ENV}
