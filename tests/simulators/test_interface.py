"""The simulator interface, exercised with the documented plugin that lives outside the package."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from raysurr.config import SimulatorConfig, load_config
from raysurr.errors import ConfigError, ParameterError, SimulationError
from raysurr.simulators import SIMULATORS, AbstractSimulator, Parameter, Simulation, build_simulator, run_simulation

DOC = Path(__file__).resolve().parents[2] / "docs" / "simulators.md"


def documented_plugin() -> str:
    """The example module of docs/simulators.md, exactly as a user would copy it."""
    return re.findall(r"```python file=my_simulators.py\n(.*?)```", DOC.read_text(), flags=re.S)[0]


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "my_simulators.py").write_text(documented_plugin())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(SIMULATORS, "_entries", dict(SIMULATORS._entries))  # the plugin's registration leaves no trace
    yield tmp_path
    sys.modules.pop("my_simulators", None)


def test_plugin_registers_through_the_config(plugin_dir):
    config = load_config(overrides=["plugins=[my_simulators]", "simulator.name=plume"])
    sim = build_simulator(config.simulator)
    assert not type(sim).__module__.startswith("raysurr")
    params = sim.sample(6, np.random.default_rng(0))
    assert params.shape == (6, 4)
    inputs = sim.render(params)
    assert inputs.shape == (6, 2, 48, 48) and inputs.dtype == np.float32
    result = run_simulation(sim, params, range(6))
    assert result.outputs.shape == (6, 1, 48, 48)
    assert np.all((result.outputs >= 0) & (result.outputs < 1e-2))  # kg/m³: far from order 1, as the guide says


def test_a_taken_name_is_refused_unless_replaced_and_a_reimport_is_no_conflict(monkeypatch):
    from raysurr.errors import RegistryError

    monkeypatch.setattr(SIMULATORS, "_entries", dict(SIMULATORS._entries))  # leave no trace
    with pytest.raises(RegistryError, match=r"simulator 'diffusion2d' is already registered "
                       r"\(raysurr.simulators.diffusion2d.simulator.Diffusion2D\); register .*Mine under another "
                       r"name, or pass replace=True"):  # fmt: skip

        @SIMULATORS.register("diffusion2d")
        class Mine(Square):
            pass

    assert SIMULATORS.get("diffusion2d").__name__ == "Diffusion2D"  # the built-in is untouched
    SIMULATORS.register("diffusion2d", replace=True)(Square)
    assert SIMULATORS.get("diffusion2d") is Square
    SIMULATORS.register("square")(Square)
    again = type("Square", (Square,), {"__module__": Square.__module__, "__qualname__": Square.__qualname__})
    SIMULATORS.register("square")(again)  # the same definition imported again (a notebook's reload): no conflict
    assert SIMULATORS.get("square") is again


def test_an_installed_package_registers_through_its_entry_point(tmp_path, monkeypatch):
    """A package that declares a `raysurr.plugins` entry point needs no `plugins:` line in the config."""
    from raysurr import config as config_module

    (tmp_path / "plume_package.py").write_text(documented_plugin())
    info = tmp_path / "plume_package-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plume-package\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[raysurr.plugins]\nplume = plume_package\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(SIMULATORS, "_entries", dict(SIMULATORS._entries))
    monkeypatch.setattr(config_module, "_entry_points_loaded", False)
    try:
        config = load_config(overrides=["simulator.name=plume"])  # no plugins key
        assert build_simulator(config.simulator).input_shape == (2, 48, 48)
        (info / "entry_points.txt").write_text("[raysurr.plugins]\nbroken = no_such_plume_module\n")
        monkeypatch.setattr(config_module, "_entry_points_loaded", False)
        with pytest.raises(ConfigError, match="the entry point 'broken' of package 'plume-package': cannot import "
                           "'no_such_plume_module'"):  # fmt: skip
            load_config()
    finally:
        sys.modules.pop("plume_package", None)


def test_unknown_plugin_module_is_one_clear_line():
    with pytest.raises(ConfigError, match="plugins: cannot import 'no_such_module_xyz'"):
        load_config(overrides=["plugins=[no_such_module_xyz]"])


class Square(AbstractSimulator):
    """Outputs the square of a constant image."""

    parameters = (Parameter("a", -2.0, 2.0), Parameter("k", 1, 3, integer=True))
    input_shape = output_shape = (1, 4, 4)

    def render(self, params):
        return np.broadcast_to(params[:, :1, None, None], (len(params), 1, 4, 4)).astype(np.float32)

    def simulate(self, params):
        return Simulation(outputs=self.render(params) ** 2)


def test_default_sampling_covers_declared_ranges():
    params = Square().sample(4000, np.random.default_rng(0))
    assert -2.0 <= params[:, 0].min() < -1.9 and 1.9 < params[:, 0].max() <= 2.0
    assert set(params[:, 1]) == {1.0, 2.0, 3.0}


def test_default_embedding_scales_to_unit_range():
    emb = Square().embed(np.array([[-2.0, 1], [2.0, 3]]))
    assert emb.tolist() == [[0.0, 0.0], [1.0, 1.0]]


def test_default_region_of_interest_is_where_the_first_input_channel_is_nonzero():
    inputs = np.zeros((2, 2, 3, 3), np.float32)
    inputs[0, 0, 1, 1], inputs[1, 0, 0, 2], inputs[1, 1] = -0.5, 2.0, 7.0  # channel 1 does not count
    region = Square().region_of_interest(inputs)
    assert region.shape == (2, 3, 3) and region.sum() == 2 and region[0, 1, 1] and region[1, 0, 2]


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (np.zeros((2, 1, 4, 4)), "float64 .* expected float32 \\[2, 1, 4, 4\\]"),
        (np.zeros((2, 1, 4, 5), np.float32), "float32 \\[2, 1, 4, 5\\]"),
        ([[0.0]], "list"),
    ],
)
def test_malformed_outputs_are_refused(outputs, message):
    class Bad(Square):
        def simulate(self, params):
            return Simulation(outputs=outputs)

    with pytest.raises(SimulationError, match=message) as info:
        run_simulation(Bad(), np.array([[0.0, 1], [1.0, 2]]), [7, 8])
    assert info.value.sample_ids == (7, 8)


def test_undeclared_extras_are_refused():
    class Extra(Square):
        def simulate(self, params):
            return Simulation(outputs=self.render(params), extras={"peak": np.ones(len(params))})

    with pytest.raises(SimulationError, match="extras \\['peak'\\], declared \\[\\]"):
        run_simulation(Extra(), np.array([[0.0, 1]]), [0])


@pytest.mark.parametrize(
    ("symmetries", "shape", "message"),
    [
        (("flip_rows", "rotate90"), (1, 4, 4), r"Odd.symmetries names \['rotate90'\]; the grid transforms are flip_"),
        (("transpose",), (1, 4, 6), r"'transpose', which needs a square grid; its inputs and outputs are \[\(4, 6\)\]"),
    ],
)
def test_declared_symmetries_are_checked_when_the_simulator_is_built(symmetries, shape, message):
    class Odd(Square):
        pass

    Odd.symmetries, Odd.input_shape, Odd.output_shape = symmetries, shape, shape
    SIMULATORS.register("odd-test")(Odd)
    try:
        with pytest.raises(ParameterError, match=message):
            build_simulator(SimulatorConfig(name="odd-test"))
        Odd.symmetries = ("flip_rows", "flip_cols")  # any grid may be mirrored
        assert build_simulator(SimulatorConfig(name="odd-test")).symmetries == ("flip_rows", "flip_cols")
    finally:
        SIMULATORS._entries.pop("odd-test")


def test_registration_by_decorator():
    SIMULATORS.register("square-test")(Square)
    try:
        assert isinstance(build_simulator(SimulatorConfig(name="square-test")), Square)
        assert SIMULATORS.summary("square-test") == "Outputs the square of a constant image."
    finally:
        SIMULATORS._entries.pop("square-test")


def test_plugin_module_is_importable_by_name(plugin_dir):
    module = importlib.import_module("my_simulators")
    assert SIMULATORS.get("plume") is module.Plume
