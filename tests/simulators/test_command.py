"""The `command` simulator: an external program per chunk, and its failure records."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from raysurr.config import SimulatorConfig
from raysurr.distributed.labeling import SimulatorActor
from raysurr.errors import ParameterError, SimulationError
from raysurr.simulators import build_simulator, run_simulation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "external_sim.py"
PARAMETERS = [{"name": "amplitude", "low": -1.0, "high": 2.0}, {"name": "width", "low": 1.0, "high": 8.0}]


def command_config(command: str, **options) -> SimulatorConfig:
    base = {"command": command, "parameters": PARAMETERS, "output_shape": [1, 32, 32], "extras": ["peak"]}
    return SimulatorConfig(name="command", options={**base, **options})


EXAMPLE_COMMAND = f"{sys.executable} {EXAMPLE} --in {{params}} --out {{outputs}}"


def test_success_reads_outputs_and_extras():
    sim = build_simulator(command_config(EXAMPLE_COMMAND))
    params = np.array([[1.0, 2.0], [0.5, 4.0]])
    result = run_simulation(sim, params, [0, 1])
    assert result.outputs.shape == (2, 1, 32, 32)
    assert np.allclose(result.extras["peak"], result.outputs.max(axis=(1, 2, 3)), rtol=1e-6)
    assert sim.render(params).shape == (2, 2, 32, 32)  # the parameters as constant channels


def test_non_zero_exit_is_isolated_to_the_bad_sample():
    actor = SimulatorActor(command_config(EXAMPLE_COMMAND), ())
    result = actor.label(np.array([10, 11, 12]), np.array([[1.0, 2.0], [-0.5, 2.0], [0.3, 3.0]]))
    assert result.table.column("sample_id").to_pylist() == [10, 12]
    (failure,) = result.failures
    assert failure.sample_id == 11 and failure.reason == "exception"
    assert "exited with code 4" in failure.message and "negative amplitude in [-0.5]" in failure.message


def test_missing_output_file():
    sim = build_simulator(command_config(f"{sys.executable} -c pass {{params}} {{outputs}}"))
    with pytest.raises(SimulationError, match=r"command wrote no output: expected \S*outputs.npy or \S*outputs.npz"):
        sim.simulate(np.array([[1.0, 2.0]]))


def test_timeout():
    sleeper = f"{sys.executable} -c 'import time; time.sleep(30)' {{params}} {{outputs}}"
    sim = build_simulator(command_config(sleeper, timeout_s=0.5))
    with pytest.raises(SimulationError, match="command timed out after 0.5s"):
        sim.simulate(np.array([[1.0, 2.0]]))


def test_program_that_cannot_start():
    sim = build_simulator(command_config("/no/such/program {params} {outputs}"))
    with pytest.raises(SimulationError, match="command could not start"):
        sim.simulate(np.array([[1.0, 2.0]]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"command": "run.sh"}, "must contain {params} and {outputs}"),
        ({"output_shape": [32, 32]}, r"output_shape must be \[C, H, W\]"),
        ({"parameters": [{"name": "a"}]}, "each entry needs name, low, high"),
        ({"parameters": []}, "at least one parameter"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ParameterError, match=message):
        build_simulator(SimulatorConfig(name="command", options={**command_config("x {params} {outputs}").options,
                                                                  **options}))  # fmt: skip


def test_timeout_kills_the_whole_process_group(tmp_path):
    """A program that leaves a grandchild running: at the limit the grandchild goes too."""
    pid_file = tmp_path / "grandchild.pid"
    script = tmp_path / "spawn.py"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    sim = build_simulator(command_config(f"{sys.executable} {script} {{params}} {{outputs}}", timeout_s=1.0))
    with pytest.raises(SimulationError, match="command timed out after 1s"):
        sim.simulate(np.array([[1.0, 2.0]]))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # reaped by init once its group was killed, or about to be
        for _ in range(50):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_output_written_at_exactly_the_outputs_path(tmp_path):
    writer = tmp_path / "write.py"
    writer.write_text("import sys, numpy as np\nnp.save(open(sys.argv[2], 'wb'), np.ones((1, 1, 4, 4)))\n")
    sim = build_simulator(command_config(f"{sys.executable} {writer} {{params}} {{outputs}}"))
    assert sim.simulate(np.array([[1.0, 2.0]])).outputs.shape == (1, 1, 4, 4)


@pytest.mark.parametrize("template", ["run {params} {outputs} {other}", "run {params} {outputs} {", "run {params} {0}"])
def test_templates_with_other_braces_are_refused(template):
    with pytest.raises(ParameterError, match="placeholders|is not a valid template"):
        build_simulator(command_config(template))
