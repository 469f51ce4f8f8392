"""Surrogate architectures: shapes at any size, the study's sizes, the absorbing padding."""

from __future__ import annotations

import copy

import pytest
import torch

from raysurr.config import ModelConfig
from raysurr.errors import ConfigError, RegistryError
from raysurr.models import FNO, MODELS, Autoencoder, UNet, build_model, count_parameters
from raysurr.models.layers import absorbing_pad, has_dropout, mc_dropout

SMALL = {"unet": {"base_channels": 4}, "autoencoder": {"base_channels": 4},
         "fno": {"base_channels": 4, "depth": 2, "modes": 4}}  # fmt: skip


def test_every_registered_model_has_a_small_variant_here():
    assert set(SMALL) == set(MODELS.names())


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("grid", [100, 64, 37, 33])
def test_forward_keeps_the_grid(name, grid):
    model = build_model(ModelConfig(name=name, options=SMALL[name]), in_channels=1, out_channels=1)
    assert model(torch.randn(2, 1, grid, grid)).shape == (2, 1, grid, grid)


@pytest.mark.parametrize("name", MODELS.names())
def test_channels_come_from_the_simulator(name):
    model = build_model(ModelConfig(name=name, options=SMALL[name]), in_channels=2, out_channels=3)
    assert model(torch.randn(1, 2, 48, 48)).shape == (1, 3, 48, 48)


def test_unet_pools_like_the_study():
    sizes = []
    model = UNet(base_channels=2)
    for level in model.down:
        level.register_forward_hook(lambda module, args, out: sizes.append(out.shape[-1]))
    model(torch.zeros(1, 1, 100, 100))
    assert sizes == [100, 50, 25, 12, 6]


def test_unet_goes_up_to_an_odd_size_with_a_strided_transposed_conv_like_the_study():
    """12 -> 25 on the study's grid: the halving kernel as a stride-2 transposed conv at 12x12; 25 -> 50
    as nearest up-sampling and the same kind of kernel as a conv."""
    up_odd, up_even = UNet(base_channels=2).up[1], UNet(base_channels=2).up[2]
    x, skip = torch.randn(1, 16, 12, 12), torch.randn(1, 8, 25, 25)
    convt = torch.nn.ConvTranspose2d(16, 8, 3, stride=2)
    convt.weight.data = up_odd.reduce.weight.detach().transpose(0, 1).flip(-2, -1)
    convt.bias.data = up_odd.reduce.bias.detach()
    seen = []
    up_odd.block.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 8:]))
    up_odd(x, skip)
    torch.testing.assert_close(seen[0], convt(x))

    x, skip = torch.randn(1, 8, 25, 25), torch.randn(1, 4, 50, 50)
    up_even.block.register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 4:]))
    up_even(x, skip)
    torch.testing.assert_close(seen[1], up_even.reduce(torch.nn.functional.interpolate(x, size=(50, 50))))


@pytest.mark.parametrize(("cls", "expected"), [(UNet, 34.5e6), (Autoencoder, 50.3e6)])
def test_study_widths_have_the_studys_size(cls, expected):
    assert abs(count_parameters(cls()) - expected) / expected < 0.01


@pytest.mark.parametrize("name", ["unet", "autoencoder"])
def test_too_small_input_is_a_clear_error(name):
    model = build_model(ModelConfig(name=name, options=SMALL[name]), 1, 1)
    with pytest.raises(ValueError, match=r"needs inputs of at least .* lower model.depth"):
        model(torch.zeros(1, 1, 8, 8))


def test_depth_option_changes_the_network():
    assert count_parameters(UNet(base_channels=4, depth=3)) < count_parameters(UNet(base_channels=4, depth=4))
    assert UNet(base_channels=4, depth=2)(torch.zeros(1, 1, 17, 17)).shape == (1, 1, 17, 17)


def test_absorbing_pad_is_odd_about_the_edge():
    x = torch.randn(2, 3, 7, 9)
    padded = absorbing_pad(x, 2)
    assert torch.equal(padded[..., 2:-2, 2:-2], x)
    for k in (1, 2):  # the pad cell k before the edge cell is minus the cell k after it
        assert torch.equal(padded[..., 2 - k, 2:-2], -x[..., k, :])
        assert torch.equal(padded[..., -3 + k, 2:-2], -x[..., -1 - k, :])
        assert torch.equal(padded[..., 2:-2, 2 - k], -x[..., :, k])
    assert torch.equal(padded[..., 0, 0], x[..., 2, 2])  # corners: two flips


def test_absorbing_padding_keeps_an_odd_field_odd():
    """A conv over the padded field equals the conv over the explicit odd extension."""
    conv = torch.nn.Conv2d(1, 1, 3, padding=0, bias=False)
    x = torch.randn(1, 1, 6, 6)
    big = absorbing_pad(x, 3)  # the odd extension, wide enough that a 1-pad of it stays exact
    expected = conv(big)[..., 2:-2, 2:-2]
    assert torch.allclose(conv(absorbing_pad(x, 1)), expected, atol=1e-6)


def test_unknown_model_and_option():
    with pytest.raises(RegistryError, match="unknown model 'resnet'; registered: autoencoder, fno, unet"):
        build_model(ModelConfig(name="resnet"), 1, 1)
    with pytest.raises(ConfigError, match="unknown option 'width'; allowed: in_channels, out_channels, base_channels"):
        build_model(ModelConfig(name="unet", options={"width": 3}), 1, 1)


def test_autoencoder_decodes_at_the_low_resolutions_like_the_study():
    """The study's order: two transposed convs at the code's 3x3, then each one level up (6 .. 50)."""
    sizes = []
    model = Autoencoder(base_channels=2)
    for level in model.decoder:
        level.register_forward_hook(lambda module, args, out: sizes.append(out.shape[-1]))
    assert model(torch.zeros(1, 1, 100, 100)).shape == (1, 1, 100, 100)
    assert sizes == [3, 3, 6, 12, 25, 50]


def test_fno_keeps_only_the_low_modes():
    """A field made of one high frequency passes through the spectral layer as zero; a low one does not."""
    layer = FNO(base_channels=1, depth=1, modes=4).spectral[0]
    rows = torch.arange(32.0).view(32, 1).expand(32, 32)
    high, low = torch.cos(torch.pi * rows)[None, None], torch.cos(2 * torch.pi * rows / 32)[None, None]
    assert layer(high).abs().max() < 1e-5
    assert layer(low).abs().max() > 1e-3


def test_fno_is_sized_by_width_depth_and_modes():
    base = count_parameters(FNO(base_channels=8, depth=2, modes=4))
    assert count_parameters(FNO(base_channels=8, depth=2, modes=6)) > base
    assert count_parameters(FNO(base_channels=8, depth=3, modes=4)) > base
    assert FNO(base_channels=8, depth=2, modes=4).features(torch.zeros(3, 1, 20, 20)).shape == (3, 8)


@pytest.mark.parametrize("name", MODELS.names())
def test_mc_dropout_randomises_only_when_the_model_has_dropout(name):
    options = {**SMALL[name], "dropout": 0.3}
    model = mc_dropout(build_model(ModelConfig(name=name, options=options), 1, 1))
    x = torch.randn(2, 1, 32, 32)
    assert has_dropout(model) and not torch.equal(model(x), model(x))
    plain = build_model(ModelConfig(name=name, options={**options, "dropout": 0.0}), 1, 1)
    assert not has_dropout(plain)


@pytest.mark.parametrize("name", MODELS.names())
def test_convolutional_families_are_laid_out_channels_last_and_compute_the_same(name):
    model = build_model(ModelConfig(name=name, options=SMALL[name]), in_channels=2, out_channels=1).eval()
    kernels = [p for p in model.parameters() if p.dim() == 4]
    if name == "fno":  # its spectral layers run FFTs over the default layout (channels-last: 0.92-1.0x on a CPU)
        assert all(p.is_contiguous() for p in model.parameters())
    else:
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels)
        assert not all(p.is_contiguous() for p in kernels)
    default = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = torch.randn(3, 2, 37, 37)
    with torch.no_grad():
        assert torch.allclose(model(x), default(x), atol=1e-5)


def test_the_studys_wide_autoencoder_stays_in_the_default_layout():
    """Channels-last costs the autoencoder at base 64 (0.87x on a CPU); narrow ones gain from it."""
    assert not build_model(ModelConfig("autoencoder", {"base_channels": 64}), 1, 1).channels_last
    assert build_model(ModelConfig("autoencoder", {"base_channels": 32}), 1, 1).channels_last


def built_on(monkeypatch) -> list[str]:
    """The device of every network `check_model` builds, in order."""
    import raysurr.models as models

    devices, build = [], models.build_model

    def spy(*args, **kwargs):
        model = build(*args, **kwargs)
        devices.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(models, "build_model", spy)
    return devices


def test_a_model_too_deep_for_the_grid_is_refused_without_allocating_its_weights(monkeypatch):
    import resource

    from raysurr.models import check_model

    devices = built_on(monkeypatch)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = ModelConfig(name="autoencoder", options={"base_channels": 8, "depth": 12})  # 3.2 G parameters
    with pytest.raises(ConfigError, match=r"cannot take the simulator's \[1, 32, 32\] inputs: .*at least 2048 cells"):
        check_model(config, (1, 32, 32), (1, 32, 32))
    assert devices == ["meta"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kb < 1_000_000  # 13 GB if built on the CPU


def test_large_models_are_checked_on_the_meta_device_and_small_ones_on_the_cpu(monkeypatch):
    from raysurr.models import META_CHECK_PARAMETERS, check_model

    large = ModelConfig(name="autoencoder", options={"base_channels": 128})
    with torch.device("meta"):
        assert count_parameters(build_model(large, 2, 1)) > META_CHECK_PARAMETERS
    devices = built_on(monkeypatch)
    check_model(large, (2, 48, 48), (1, 48, 48))
    check_model(ModelConfig(name="unet", options=SMALL["unet"]), (2, 48, 48), (1, 48, 48))
    assert devices == ["meta", "meta", "cpu"]
    with pytest.raises(ConfigError, match=r"maps \[2, 48, 48\] inputs to \[1, 48, 48\], but the simulator's outputs"):
        check_model(large, (2, 48, 48), (1, 40, 40))
