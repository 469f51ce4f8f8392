"""Accuracy per CPU-minute: test weighted MAE and skill of `unet`, `autoencoder` and `fno` at N = 100.

Each family trains on random diffusion2d samples (the exact solver) at fixed label counts, with the
quickstart's recipe (Adam, cosine schedule within the budget, best-validation weights kept, no
dropout) and a fixed wall-clock budget (`training.budget_s`: the epochs that fit, re-planned after
each), in this process on every core, the loop `fit` runs in a Ray task. Errors are on a
held-out test set, next to the two trivial models: predicting zero and predicting the training
set's mean field (`skill = 1 - error / baseline error`).

Prints one JSON object per line:
    {"bench": "learning", "model": "fno", "labels": 2000, "budget_s": 480, "epochs": 52, "test_wmae": ...,
     "skill_zero": ..., "skill_mean": ..., "test_mae_source": ..., "train_s": ..., "cpu_minutes": ...}

`--dropout` instead measures what MC dropout costs and buys in the U-Net (the quickstart's width,
500 labels, 8 epochs): per dropout rate, the deployed (eval-mode) test error, the gap to the same
weights with dropout on, and how well the MC-dropout score (`entropy`, 8 passes) ranks the test
samples by their true error (Spearman's rho; 0: the score says nothing about where the model errs).
    {"bench": "dropout", "dropout": 0.1, "test_wmae": ..., "test_wmae_dropout_on": ..., "spearman_score_error": ...}

Usage:
    python benchmarks/learning.py            # 500 and 2,000 labels, 2 and 8 min each (~35 min on 2 cores)
    python benchmarks/learning.py --quick    # 100 labels at N = 32, 20 s each
    python benchmarks/learning.py --dropout  # dropout 0, 0.1, 0.2, 0.4 (~8 min)
    python benchmarks/learning.py --physics 0.01,0.1  # training.physics_weight 0, 0.01, 0.1 at 250/500/1000 labels
    python benchmarks/learning.py --models unet --labels 2000 --budget-scale 1.875 --seeds 3
                                             # one case over 3 seeds, then {"bench": "learning_seeds", mean, std}
    python benchmarks/learning.py --models unet --labels 2000 --budget-scale 1.875 --base-channels 8 --lr 2e-3 \
        --batch-size 8                       # the best recipe so far: 2,000 labels, 15 minutes (README)
    python benchmarks/learning.py --augment both ...  # each case with training.augment auto and none, side by side
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from common import emit

from raysurr.acquisition.functions import Entropy
from raysurr.config import ModelConfig, TrainingConfig
from raysurr.models import build_model, count_parameters
from raysurr.models.fitting import Fit
from raysurr.models.layers import mc_dropout
from raysurr.models.losses import weighted_mae
from raysurr.simulators import Diffusion2D

FAMILIES = {
    "unet": {"base_channels": 16, "depth": 4, "dropout": 0.0},
    "autoencoder": {"base_channels": 16, "depth": 6, "dropout": 0.0},
    "fno": {"base_channels": 16, "depth": 4, "modes": 12, "dropout": 0.0},  # width 32: 1 epoch in 8 min at 2,000
}


def dataset(sim: Diffusion2D, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    params = sim.sample(n, np.random.default_rng(seed))
    return torch.tensor(sim.render(params)), torch.tensor(sim.simulate(params).outputs)


def source_mae(pred: torch.Tensor, target: torch.Tensor) -> float:
    """MAE over the source cells (where the field is above half its maximum), the study's region."""
    mask = target > 0.5 * target.amax(dim=(-2, -1), keepdim=True)
    return float((pred - target).abs()[mask].mean())


def run(name: str, options: dict, train, val, test, settings: TrainingConfig, seed: int, threads: int,
        physics=None, symmetries: tuple[str, ...] = ()) -> dict:  # fmt: skip
    torch.manual_seed(seed)
    model = build_model(ModelConfig(name, options), train[0].shape[1], train[1].shape[1])
    fit = Fit(model, train, val, settings, torch.Generator().manual_seed(seed), physics=physics, symmetries=symmetries)
    start = time.perf_counter()
    while not fit.done:
        fit.step()
    train_s = time.perf_counter() - start
    net = fit.best_network().eval()

    def predict(x: torch.Tensor) -> torch.Tensor:
        return fit.targets.inverse(net(fit.inputs.forward(x)))

    with torch.no_grad():
        pred = torch.cat([predict(x) for x in test[0].split(64)])
    y = test[1]
    errors = {"model": float(weighted_mae(pred, y)), "zero": float(weighted_mae(torch.zeros_like(y), y)),
              "mean": float(weighted_mae(fit.mean_target.expand_as(y), y))}  # fmt: skip
    return {"model": name, "params": count_parameters(model), "labels": len(train[0]), "seed": seed,
            "budget_s": settings.budget_s, "lr": settings.lr, "batch_size": settings.batch_size,
            "augment": settings.augment if symmetries else "none",
            "epochs": len(fit.history), "best_epoch": fit.best_epoch, "test_wmae": errors["model"],
            "last_train_loss": fit.history[-1]["train_loss"], "last_val_wmae": fit.history[-1]["val_wmae"],
            "skill_zero": 1 - errors["model"] / errors["zero"], "skill_mean": 1 - errors["model"] / errors["mean"],
            "test_mae_source": source_mae(pred, y), "train_s": train_s,
            "cpu_minutes": train_s * threads / 60, "_predict": predict}  # fmt: skip


def per_sample_wmae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.stack([weighted_mae(p[None], t[None]) for p, t in zip(pred, target, strict=True)])


def ranks(values: torch.Tensor) -> torch.Tensor:
    return values.argsort().argsort().double()


def dropout_study(train, val, test, rates: list[float], epochs: int) -> None:
    """Per dropout rate: deployed error, the train-mode gap, and whether MC dropout points at the errors."""
    for rate in rates:
        torch.manual_seed(0)
        model = build_model(ModelConfig("unet", {"base_channels": 8, "depth": 4, "dropout": rate}), 1, 1)
        settings = TrainingConfig(epochs=epochs, lr=1e-3, batch_size=32, schedule="cosine")
        fit = Fit(model, train, val, settings, torch.Generator().manual_seed(0))
        while not fit.done:
            fit.step()
        net = fit.best_network()
        x, y = fit.inputs.forward(test[0]), fit.targets.forward(test[1])
        with torch.no_grad():
            deployed = torch.cat([net.eval()(b) for b in x.split(64)])
            torch.manual_seed(1)
            trained = torch.cat([mc_dropout(net)(b) for b in x.split(64)])
            scores = torch.cat([Entropy(passes=8).score_batch([net], b) for b in x.split(64)]) if rate else None
        errors = per_sample_wmae(deployed, y)
        rho = float(torch.corrcoef(torch.stack([ranks(scores), ranks(errors)]))[0, 1]) if rate else None
        emit(bench="dropout", dropout=rate, labels=len(train[0]), epochs=len(fit.history),
             test_wmae=float(weighted_mae(deployed, y)), test_wmae_dropout_on=float(weighted_mae(trained, y)),
             spearman_score_error=rho)  # fmt: skip


def physics_study(sim: Diffusion2D, pool, val, test, weights: list[float], label_counts: list[int], epochs: int,
                  seeds: int, threads: int) -> None:  # fmt: skip
    """What the physics-informed term buys: the quickstart's U-Net at fixed epochs, with and without the
    residual of 2,000 unlabelled inputs in the loss, per label count and seed."""
    free = torch.tensor(sim.render(sim.sample(2000, np.random.default_rng(3))))
    for labels in label_counts:
        for weight in weights:
            settings = TrainingConfig(epochs=epochs, lr=1e-3, batch_size=32, schedule="cosine", physics_weight=weight)
            rows = []
            for seed in range(seeds):
                train = pool[0][seed * labels : (seed + 1) * labels], pool[1][seed * labels : (seed + 1) * labels]
                options = {"base_channels": 8, "depth": 4, "dropout": 0.0}
                rows.append(run("unet", options, train, val, test, settings, seed, threads,
                                physics=(free, sim.residual) if weight else None))  # fmt: skip
                with torch.no_grad():  # the residual of the deployed model on the test inputs
                    rows[-1]["test_residual"] = test_residual(rows[-1].pop("_predict"), sim, test)
                emit(bench="physics", physics_weight=weight, **rows[-1])
            if seeds > 1:
                emit(bench="physics_seeds", physics_weight=weight, labels=labels, seeds=seeds,
                     **spread(rows, "test_wmae"), **spread(rows, "test_residual"))  # fmt: skip


def test_residual(predict, sim: Diffusion2D, test) -> float:
    return float(torch.cat([sim.residual(x, predict(x)).pow(2).flatten(1).mean(1) for x in test[0].split(64)]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 labels at N = 32, 20 s per model")
    parser.add_argument("--models", default=",".join(FAMILIES), help="comma-separated subset of the families")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every training budget")
    seeds_help = "repeat each case over this many seeds (training draw, initial weights), then their mean and spread"
    parser.add_argument("--seeds", type=int, default=1, help=seeds_help)
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (to add seeds to an earlier run)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's peak learning rate")
    parser.add_argument("--base-channels", type=int, help="the families' width instead of their default")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--labels", help="comma-separated label counts instead of 500,2000 (budgets scale with them)")
    parser.add_argument("--depth", type=int, help="the families' depth instead of their default")
    epochs_help = "at most this many epochs (with the budget: whichever ends first; the cosine follows the shorter)"
    parser.add_argument("--epochs", type=int, default=10_000, help=epochs_help)
    augment_help = "training.augment: auto (diffusion2d's mirror and transpose symmetries), none, or both side by side"
    parser.add_argument("--augment", choices=["auto", "none", "both"], default="auto", help=augment_help)
    parser.add_argument("--dropout", action="store_true", help="the dropout study instead")
    parser.add_argument("--physics", metavar="WEIGHTS", help="the physics-term study instead: training.physics_weight "
                        "0 against each of WEIGHTS (comma-separated) at 250, 500, 1000 labels, 12 epochs")  # fmt: skip
    args = parser.parse_args()
    threads = os.cpu_count() or 2
    torch.set_num_threads(threads)
    grid, cases = (32, [(100, 20.0)]) if args.quick else (100, [(500, 120.0), (2000, 480.0)])
    if args.labels:
        cases = [(int(n), 0.24 * int(n)) for n in args.labels.split(",")]
    if args.physics is not None:
        cases = [(50, 0.0), (100, 0.0)] if args.quick else [(250, 0.0), (500, 0.0), (1000, 0.0)]
    sim = Diffusion2D(grid=grid)
    val, test = dataset(sim, 200, 1), dataset(sim, 500, 2)
    pool = dataset(sim, (args.first_seed + args.seeds) * max(n for n, _ in cases), 0)
    emit(bench="machine", cpus=threads, torch=torch.__version__, grid=grid, val=len(val[0]), test=len(test[0]))
    if args.physics is not None:
        weights = [0.0, *(float(w) for w in args.physics.split(","))]
        physics_study(sim, pool, val, test, weights, [n for n, _ in cases], 3 if args.quick else 12, args.seeds,
                      threads)  # fmt: skip
        return
    if args.dropout:
        labels = 100 if args.quick else 500
        dropout_study((pool[0][:labels], pool[1][:labels]), val, test, [0.0, 0.1, 0.2, 0.4],
                      2 if args.quick else 8)  # fmt: skip
        return
    augments = ["auto", "none"] if args.augment == "both" else [args.augment]
    for labels, budget in cases:
        for name in args.models.split(","):
            options = FAMILIES[name] if not args.quick else {**FAMILIES[name], "depth": 3}
            options = {**options, "base_channels": args.base_channels or options["base_channels"],
                       "depth": args.depth or options["depth"]}  # fmt: skip
            rows: dict[str, list[dict]] = {augment: [] for augment in augments}
            # seed s trains on the s-th disjoint draw of `labels` samples, with and without augmentation in turn
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                train = pool[0][seed * labels : (seed + 1) * labels], pool[1][seed * labels : (seed + 1) * labels]
                for augment in augments:
                    settings = TrainingConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                                              schedule="cosine", budget_s=budget * args.budget_scale,
                                              augment=augment)  # fmt: skip
                    row = run(name, options, train, val, test, settings, seed, threads, symmetries=sim.symmetries)
                    row.pop("_predict")
                    rows[augment].append(row)
                    emit(bench="learning", grid=grid, **row)
            for augment, done in rows.items():
                if len(done) > 1:
                    emit(bench="learning_seeds", grid=grid, model=name, labels=labels, seeds=len(done),
                         augment=augment, budget_s=budget * args.budget_scale, **spread(done, "test_wmae"),
                         **spread(done, "skill_zero"))  # fmt: skip


def spread(rows: list[dict], key: str) -> dict:
    """Mean, sample standard deviation, min and max of one figure over seeds."""
    values = np.array([row[key] for row in rows])
    return {f"{key}_mean": values.mean(), f"{key}_std": values.std(ddof=1), f"{key}_min": values.min(),
            f"{key}_max": values.max()}  # fmt: skip


if __name__ == "__main__":
    main()
