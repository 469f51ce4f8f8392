"""`command`: a user's external program as a simulator (Julia, Fortran, a container, ...).

For each chunk it writes the parameter sets to `params.npy` ([n, P] float64, columns in the
declared order), runs the command template with `{params}` and `{outputs}` filled in, waits up to
`timeout_s` per sample (the program runs in its own process group, and all of that group is killed
at the limit), and reads back `{outputs}.npy` ([n, *output_shape]), `{outputs}.npz` (key
`outputs`, plus one [n] array per declared extra), or an .npy/.npz file written at exactly
`{outputs}`. A non-zero exit, a missing or malformed output file, or a timeout raises
`SimulationError` with the exit code and the tail of stderr.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from raysurr.errors import ParameterError, SimulationError
from raysurr.simulators.base import AbstractSimulator, Parameter, Simulation, register_simulator


@register_simulator("command")
class CommandSimulator(AbstractSimulator):
    """Runs an external program per chunk: parameters to .npy in, outputs from .npy/.npz back.

    Args:
        command: a template, e.g. `julia sim.jl --in {params} --out {outputs}`; split like a shell
            command line (no shell is involved).
        parameters: `[{name, low, high, integer}]`.
        output_shape: `[C, H, W]` of one output.
        extras: names of per-sample scalars the program writes into outputs.npz.
        timeout_s: limit per sample: a run of the command on n samples may take n * timeout_s.
        workdir: where the command runs (default: the current directory).
        fidelity: a label recorded with every sample.

    The network input is the parameter vector as constant channels scaled to [0, 1] by the ranges:
    `[P, H, W]`.
    """

    def __init__(
        self,
        command: str,
        parameters: Sequence[Mapping[str, Any]],
        output_shape: Sequence[int],
        extras: Sequence[str] = (),
        timeout_s: float = 3600.0,
        workdir: str | None = None,
        fidelity: str = "command",
    ) -> None:
        if "{params}" not in command or "{outputs}" not in command:
            raise ParameterError(f"command {command!r} must contain {{params}} and {{outputs}} placeholders")
        try:
            argv = shlex.split(command)
            [a.format(params="p", outputs="o") for a in argv]
        except (ValueError, KeyError, IndexError) as exc:
            raise ParameterError(
                f"command {command!r} is not a valid template ({type(exc).__name__}: {exc}); only "
                "{params} and {outputs} may stand in braces (write {{ and }} for a brace)"
            ) from None
        if not timeout_s or timeout_s <= 0:
            raise ParameterError(f"timeout_s must be a positive number of seconds per sample, got {timeout_s!r}")
        if len(output_shape) != 3 or min(output_shape) < 1:
            raise ParameterError(f"output_shape must be [C, H, W] of positive sizes, got {list(output_shape)}")
        try:
            self.parameters = tuple(Parameter(**dict(p)) for p in parameters)
        except TypeError as exc:
            raise ParameterError(
                f"parameters: each entry needs name, low, high (optional integer, doc): {exc}"
            ) from None
        if not self.parameters:
            raise ParameterError("parameters must list at least one parameter")
        self.command, self.timeout_s, self.workdir, self.fidelity = command, timeout_s, workdir, fidelity
        self.output_shape = tuple(int(s) for s in output_shape)
        self.input_shape = (len(self.parameters), *self.output_shape[1:])
        self.extras = tuple(extras)

    def render(self, params: np.ndarray) -> np.ndarray:
        scaled = self.embed(params).astype(np.float32)
        return np.broadcast_to(scaled[:, :, None, None], (len(params), *self.input_shape)).copy()

    def simulate(self, params: np.ndarray) -> Simulation:
        with tempfile.TemporaryDirectory(prefix="raysurr-cmd-") as tmp:
            params_path, outputs_stem = Path(tmp) / "params.npy", Path(tmp) / "outputs"
            np.save(params_path, np.asarray(params, dtype=np.float64))
            argv = [a.format(params=params_path, outputs=outputs_stem) for a in shlex.split(self.command)]
            self._run(argv, self.timeout_s * len(params))
            return self._read(outputs_stem, len(params))

    def _run(self, argv: list[str], timeout_s: float) -> None:
        start = time.perf_counter()
        try:
            # Its own session: at the limit the whole process group goes, grandchildren included.
            proc = subprocess.Popen(argv, cwd=self.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    start_new_session=True)  # fmt: skip
        except OSError as exc:
            raise SimulationError(f"command could not start ({exc}): {shlex.join(argv)}") from None
        with proc:  # closes the pipes however this ends
            try:
                _, stderr = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise SimulationError(f"command timed out after {timeout_s:g}s: {shlex.join(argv)}") from None
            finally:  # whatever it left running (or all of it, if the actor is being stopped)
                _kill_group(proc)
        if proc.returncode != 0:
            tail = " | ".join(stderr.strip().splitlines()[-10:])[-1500:]
            raise SimulationError(
                f"command exited with code {proc.returncode} after {time.perf_counter() - start:.1f}s; "
                f"stderr: {tail or '(empty)'}"
            )

    def _read(self, stem: Path, n: int) -> Simulation:
        npy, npz = stem.with_suffix(".npy"), stem.with_suffix(".npz")
        if npz.exists():
            with np.load(npz) as data:
                if "outputs" not in data:
                    raise SimulationError(f"{npz.name} has no 'outputs' array (it has {sorted(data.files)})")
                missing = [e for e in self.extras if e not in data]
                if missing:
                    raise SimulationError(f"{npz.name} lacks the declared extras {missing}")
                return Simulation(data["outputs"].astype(np.float32), {e: data[e] for e in self.extras})
        if npy.exists():
            return Simulation(np.load(npy).astype(np.float32))
        if stem.exists():  # written at exactly {outputs}: np.load tells .npy from .npz by content
            try:
                loaded = np.load(stem)
            except (ValueError, OSError) as exc:
                raise SimulationError(f"{stem} is neither .npy nor .npz ({exc})") from None
            if isinstance(loaded, np.lib.npyio.NpzFile):
                loaded.close()
                os.replace(stem, npz)
                return self._read(stem, n)
            return Simulation(loaded.astype(np.float32))
        raise SimulationError(f"command wrote no output: expected {npy} or {npz} (the {{outputs}} path plus .npy "
                              "or .npz)")  # fmt: skip


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
