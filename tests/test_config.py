"""Config: defaults, YAML, overrides, and one-line errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raysurr.config import Config, apply_overrides, load_config
from raysurr.errors import ConfigError
from raysurr.simulators import build_simulator


def test_defaults_are_the_studys():
    cfg = Config()
    assert (cfg.training.lr, cfg.training.batch_size, cfg.training.epochs) == (1e-4, 128, 500)
    assert (cfg.training.loss_w, cfg.training.loss_w2) == (1.0, 2000.0)
    assert (cfg.pool.size, cfg.pool.initial, cfg.loop.batch_size) == (16000, 1000, 1000)


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("simulator: {name: diffusion2d, grid: 64, solver: transient}\ntraining: {lr: 1e-3}\nseed: 3\n")
    cfg = load_config(path)
    assert cfg.simulator.options == {"grid": 64, "solver": "transient"}
    assert cfg.training.lr == 1e-3 and cfg.seed == 3
    assert Config.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_overrides_parse_yaml_values():
    data = apply_overrides({}, ["simulator.grid=64", "plugins=[a, b]", "loop.label_budget=null", "name=x"])
    assert data == {"simulator": {"grid": 64}, "plugins": ["a", "b"], "loop": {"label_budget": None}, "name": "x"}
    cfg = Config.from_dict(data)
    assert cfg.plugins == ("a", "b")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainig.lr=1"], "unknown key 'trainig' in top level of the config; allowed: name, seed"),
        (["training.rate=1"], "unknown key 'rate' in section 'training'; allowed: epochs, lr"),
        (["training.lr=-1"], "training.lr must be > 0, got -1.0"),
        (["training.lr=fast"], "training.lr must be a number, got 'fast'"),
        (["training.epochs=2.5"], "training.epochs must be an integer, got 2.5"),
        (["training.reinit=3"], "training.reinit must be a bool, got 3"),
        (["training.finetune_lr_factor=0"], "training.finetune_lr_factor must be > 0, got 0.0"),
        (["training.augment=flips"], "training.augment must be 'auto' or 'none', got 'flips'"),
        (["pool.initial=20", "pool.size=10"], "pool.initial must be <= pool.size \\(10\\), got 20"),
        (["training=3"], "training must be a mapping of keys, got 3"),
        (["seed=-1"], "seed must be >= 0"),
        (["plugins=mod"], "plugins must be a list"),
        (["trainingepochs"], "must look like section.key=value"),
        (["simulator.name="], "simulator.name must be a non-empty string"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {lr: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML at line"):
        load_config(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        load_config(listy)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    build_simulator(config.simulator)


def test_layered_files_merge_key_by_key_and_a_new_name_replaces_its_section(tmp_path):
    """quickstart + a file that sets only training.epochs keeps the quickstart's lr, batch size and schedule; a
    best.yaml naming another model family brings none of the old family's options."""
    quickstart = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    extra = tmp_path / "extra.yaml"
    extra.write_text("training: {epochs: 20}\nmodel: {depth: 3}\n")
    config = load_config([quickstart, extra])
    assert (config.training.epochs, config.training.lr, config.training.batch_size) == (20, 2e-3, 16)
    assert config.training.schedule == "cosine" and config.model.options == {"base_channels": 8, "depth": 3,
                                                                             "dropout": 0.0}  # fmt: skip
    best = tmp_path / "best.yaml"
    best.write_text("model: {name: fno, base_channels: 16, modes: 8}\ntraining: {lr: 5.0e-3}\n")
    swapped = load_config([quickstart, best])
    assert swapped.model.name == "fno" and swapped.model.options == {"base_channels": 16, "modes": 8}
    assert (swapped.training.lr, swapped.training.epochs) == (5e-3, 8)  # every key best.yaml names wins, the rest stay
    same = tmp_path / "same.yaml"
    same.write_text("model: {name: unet, depth: 2}\n")
    assert load_config([quickstart, same]).model.options == {"base_channels": 8, "depth": 2, "dropout": 0.0}


def test_raysurr_config_prints_the_resolved_configuration(tmp_path, capsys):
    from raysurr.commands import run_command

    quickstart = str(Path(__file__).parents[1] / "configs" / "quickstart.yaml")
    extra = tmp_path / "extra.yaml"
    extra.write_text("training: {epochs: 20}\n")
    assert run_command("config", ["--config", quickstart, "--config", str(extra), "--set", "seed=7"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 7 and printed["training"]["epochs"] == 20 and printed["training"]["lr"] == 2e-3
    assert Config.from_dict(printed) == load_config([quickstart, extra], ["seed=7"])
    assert run_command("config", ["--set", "training.lr=fast"]) == 2
    assert "training.lr must be a number, got 'fast'" in capsys.readouterr().err


def test_renamed_loop_keys_are_read_with_a_one_line_notice():
    with pytest.warns(FutureWarning) as caught:
        cfg = Config.from_dict({"loop": {"mode": "async", "retrain_every": 16, "queue": 40}})
    assert [str(w.message).split(";")[0] for w in caught] == ["loop.retrain_every is now loop.retrain_after",
                                                              "loop.queue is now loop.queue_size"]  # fmt: skip
    assert all("\n" not in str(w.message) for w in caught)
    assert (cfg.loop.retrain_after, cfg.loop.queue_size) == (16, 40)
    assert "retrain_every" not in cfg.to_yaml() and Config.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
    with pytest.raises(ConfigError, match="loop.queue and loop.queue_size are the same key"):
        Config.from_dict({"loop": {"queue": 40, "queue_size": 20}})
    defaults = Config.from_dict({"loop": {"batch_size": 8}}).loop
    assert (defaults.labels_per_checkpoint, defaults.min_queue) == (8, 16)
