"""On a GPU: what bf16 autocast, channels-last weights and torch.compile buy each model family, and what bf16 costs.

Every variant trains the same network from the same weights with raysurr's own epoch
(`Fit.train_epoch`, batch 128 as `training.batch_size` defaults to) on the same diffusion2d samples
at N = 100, and infers in batches of 256 (eval mode, no grad). Variants:

- `fp32`, `fp32_cl`: autocast off, in torch's default layout and in channels-last
- `bf16`, `bf16_cl`: bf16 autocast (what `Fit` does on a GPU), in either layout
- `bf16_sync`: the layout raysurr picks, with a device synchronisation after every optimizer step,
  as raysurr's epoch had before it kept the batch order and the loss sum on the device
- `eager` and `compile` (last, `gpu_compile_ratio`): bf16 in the layout raysurr picks, the network as it is
  and through `torch.compile` (`compile_s`: the first epoch's extra time, spent compiling)
- `cpu`: raysurr's setting on the CPU with all its threads (256 samples, one timed epoch), for scale

Rates are medians over `--epochs` timed epochs after a warm-up epoch. `gpu_accuracy` trains the
quickstart's U-Net (without dropout) in fp32 and in bf16 for the same epochs from the same seed and
reports the validation weighted MAE of each, with its skill against predicting zero and the mean field.

Prints one JSON object per line:
    {"bench": "gpu", "model": "unet", "base_channels": 8, "variant": "bf16_cl", "train_samples_per_s": ...,
     "infer_samples_per_s": ...}
    {"bench": "gpu_ratio", "model": "unet", "base_channels": 8, "bf16_over_fp32": ..., "cl_over_contiguous_bf16": ...,
     "async_over_sync": ..., "gpu_over_cpu": ...}
    {"bench": "gpu_compile_ratio", "model": "unet", "compile_s": ..., "train_compile_over_eager": ...}
    {"bench": "gpu_accuracy", "model": "unet", "precision": "bf16", "val_wmae": ..., "skill_zero": ..., ...}

Usage (where a CUDA device is present; `--device cpu` runs it through on a CPU as a smoke test):
    python benchmarks/gpu.py                 # every family at small and study widths (a few minutes on one GPU)
    python benchmarks/gpu.py --quick         # the small widths, fewer samples, no compile
    python benchmarks/gpu.py --compile-only --device cpu --samples 256   # does torch.compile pay on this CPU?
    python benchmarks/gpu.py --accuracy-only --device cpu --samples 512 --accuracy-epochs 12   # bf16's accuracy
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch
from common import emit

from raysurr.config import ModelConfig, TrainingConfig
from raysurr.models import build_model, count_parameters
from raysurr.models.fitting import Fit
from raysurr.models.losses import weighted_mae
from raysurr.simulators import Diffusion2D

GRID, BATCH = 100, 128


def dataset(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    sim = Diffusion2D(grid=GRID)
    params = sim.sample(n, np.random.default_rng(seed))
    return torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run_variant(base: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor], device: str, bf16: bool,
                layout: torch.memory_format, compiled: bool, sync_steps: bool, epochs: int) -> dict:  # fmt: skip
    """Per-epoch training and inference samples/s of one variant; the network is a copy of `base`."""
    torch.manual_seed(0)
    model = copy.deepcopy(base).to(device=device, memory_format=layout)
    x, y = (t.to(device) for t in data)
    net = torch.compile(model) if compiled else model
    run = Fit(net, (x, y), (x[:0], y[:0]), TrainingConfig(batch_size=BATCH, normalize="none"),
              torch.Generator().manual_seed(0))  # fmt: skip
    run.autocast = bf16
    if sync_steps:
        run.optimizer.register_step_post_hook(lambda *_: sync(device))
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        net.train()
        run.train_epoch()
        sync(device)
        times.append(time.perf_counter() - start)
    steps_samples = run.steps * run.batch
    record = {"train_samples_per_s": steps_samples / float(np.median(times[1:]))}
    if compiled:
        record["compile_s"] = times[0] - float(np.median(times[1:]))
    net.eval()
    rates = []
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
        for _ in range(3):  # the first warms up (and compiles the eval graph)
            start = time.perf_counter()
            for i in range(0, len(x), 256):
                net(x[i : i + 256])
            sync(device)
            rates.append(len(x) / (time.perf_counter() - start))
    record["infer_samples_per_s"] = float(np.median(rates[1:]))
    return record


def network(name: str, width: int) -> tuple[torch.nn.Module, torch.memory_format, dict]:
    """The family's network without dropout (in torch's default layout), the layout raysurr picks for it, and the
    fields every record of it carries."""
    torch.manual_seed(0)
    base = build_model(ModelConfig(name=name, options={"base_channels": width, "dropout": 0.0}), 1, 1)
    picked = torch.channels_last if getattr(base, "channels_last", False) else torch.contiguous_format
    fields = {"model": name, "base_channels": width, "params": count_parameters(base),
              "raysurr_layout": "channels_last" if picked == torch.channels_last else "contiguous"}  # fmt: skip
    return base.to(memory_format=torch.contiguous_format), picked, fields


def timed(fields: dict, variant: str, *args: object) -> dict | None:
    """`run_variant(*args)`, emitted; a variant that fails (a compile error, say) is reported, not fatal."""
    try:
        rates = run_variant(*args)
    except Exception as error:
        emit(bench="gpu", **fields, variant=variant, error=f"{type(error).__name__}: {str(error)[:300]}")
        return None
    emit(bench="gpu", **fields, variant=variant, **rates)
    return rates


def bench(name: str, width: int, data: tuple[torch.Tensor, torch.Tensor], epochs: int, device: str) -> None:
    base, picked, fields = network(name, width)
    fields["samples"] = len(data[0])
    variants = {"fp32": (False, torch.contiguous_format, False),
                "fp32_cl": (False, torch.channels_last, False),
                "bf16": (True, torch.contiguous_format, False),
                "bf16_cl": (True, torch.channels_last, False),
                "bf16_sync": (True, picked, True)}  # fmt: skip
    if device == "cpu":  # the smoke test: bf16 autocast on a CPU takes ~8x fp32's time, not worth timing
        variants = {key: value for key, value in variants.items() if not value[0]}
    rates = {variant: timed(fields, variant, base, data, device, bf16, layout, False, sync_steps, epochs)
             for variant, (bf16, layout, sync_steps) in variants.items()}  # fmt: skip
    cpu_data = tuple(t[:256] for t in data)
    rates["cpu"] = timed({**fields, "samples": 256}, "cpu", base, cpu_data, "cpu", False, picked, False, False, 1)

    def ratio(a: str, b: str, key: str = "train_samples_per_s") -> float | None:
        return rates[a][key] / rates[b][key] if rates.get(a) and rates.get(b) else None

    chosen = "bf16_cl" if picked == torch.channels_last else "bf16"
    emit(bench="gpu_ratio", model=name, base_channels=width,
         bf16_over_fp32=ratio(chosen, "fp32_cl" if chosen == "bf16_cl" else "fp32"),
         cl_over_contiguous_bf16=ratio("bf16_cl", "bf16"), cl_over_contiguous_fp32=ratio("fp32_cl", "fp32"),
         infer_bf16_over_fp32=ratio("bf16", "fp32", "infer_samples_per_s"),
         infer_cl_over_contiguous_bf16=ratio("bf16_cl", "bf16", "infer_samples_per_s"),
         async_over_sync=ratio(chosen, "bf16_sync"), gpu_over_cpu=ratio(chosen, "cpu"))  # fmt: skip


def bench_compile(name: str, width: int, data: tuple[torch.Tensor, torch.Tensor], epochs: int, device: str) -> None:
    """raysurr's setting (its layout; bf16 on a GPU) eager and through `torch.compile`, one after the other."""
    base, picked, fields = network(name, width)
    fields.update(samples=len(data[0]), device=device, threads=torch.get_num_threads())
    bf16 = device == "cuda"
    eager = timed(fields, "eager", base, data, device, bf16, picked, False, False, epochs)
    compiled = timed(fields, "compile", base, data, device, bf16, picked, True, False, epochs)
    if eager and compiled:
        emit(bench="gpu_compile_ratio", model=name, base_channels=width, device=device, compile_s=compiled["compile_s"],
             train_compile_over_eager=compiled["train_samples_per_s"] / eager["train_samples_per_s"],
             infer_compile_over_eager=compiled["infer_samples_per_s"] / eager["infer_samples_per_s"])  # fmt: skip


def accuracy(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor], epochs: int,
             device: str) -> None:  # fmt: skip
    """The quickstart's U-Net without dropout, trained in fp32 and in bf16 from the same seed, beside the two
    trivial models: predicting zero and the training set's mean field."""
    cfg = ModelConfig(name="unet", options={"base_channels": 8, "dropout": 0.0})
    settings = TrainingConfig(batch_size=32, lr=1e-3, epochs=epochs)
    zero = float(weighted_mae(torch.zeros_like(val[1]), val[1], settings.loss_w, settings.loss_w2))
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build_model(cfg, 1, 1).to(device)
        run = Fit(model, tuple(t.to(device) for t in train), tuple(t.to(device) for t in val), settings,
                  torch.Generator().manual_seed(0))  # fmt: skip
        run.autocast = precision == "bf16"  # on a CPU too: slow, but the same bf16 arithmetic with fp32 sums
        start = time.perf_counter()
        while not run.done:
            run.step()
        mean = float(weighted_mae(run.mean_target.expand_as(val[1]).cpu(), val[1], settings.loss_w, settings.loss_w2))
        emit(bench="gpu_accuracy", model="unet", base_channels=8, precision=precision, labels=len(train[0]),
             epochs=epochs, val_wmae=run.best, best_epoch=run.best_epoch, zero_wmae=zero, mean_wmae=mean,
             skill_zero=1 - run.best / zero, skill_mean=1 - run.best / mean,
             train_s=time.perf_counter() - start)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small widths, 512 samples, no torch.compile")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to run it through without a GPU")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per variant")
    parser.add_argument("--accuracy-epochs", type=int, default=30, help="epochs of the fp32/bf16 accuracy runs")
    parser.add_argument("--compile-only", action="store_true", help="only eager against torch.compile (any device)")
    parser.add_argument("--accuracy-only", action="store_true", help="only the fp32/bf16 accuracy runs (any device)")
    parser.add_argument("--samples", type=int, help="training samples (default 2,048; --quick 512)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu.py: no CUDA device here; run it on a GPU machine, or pass --device cpu as a smoke test")
    torch.set_num_threads(os.cpu_count() or 1)  # the `cpu` variant's scale: every thread of this machine
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    emit(bench="machine", cpus=os.cpu_count(), torch=torch.__version__, gpu=gpu)
    n = args.samples or (512 if args.quick else 2048)
    data = dataset(n, 0)
    compiled = [("unet", 8), ("unet", 64), ("fno", 32)] if args.device == "cuda" else [("unet", 8), ("fno", 16)]
    if args.accuracy_only:
        accuracy(data, dataset(256, 1), args.accuracy_epochs, args.device)
        return
    if args.compile_only:
        for name, width in compiled:
            bench_compile(name, width, data, args.epochs, args.device)
        return
    cases = [("unet", 8), ("autoencoder", 8), ("fno", 16)]
    if not args.quick:
        cases += [("unet", 64), ("autoencoder", 64), ("fno", 32)]
    for name, width in cases:
        bench(name, width, data, args.epochs, args.device)
    if args.device == "cuda":  # bf16 on a CPU takes ~8x fp32's time: there, ask for --accuracy-only
        accuracy(data, dataset(256, 1), 5 if args.quick else args.accuracy_epochs, args.device)
    if args.device == "cuda" and not args.quick:  # last: each compile costs tens of seconds
        for name, width in compiled:
            bench_compile(name, width, data, args.epochs, args.device)


if __name__ == "__main__":
    main()
