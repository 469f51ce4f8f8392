"""The training loop itself, in plain torch: Ray Train workers and Ray Tune trials both run it.

`Fit` trains one model with Adam on the study's weighted MAE, one epoch per `step()`, validates
after each, keeps the best-validation weights and stops after `patience` epochs without
improvement. With `training.normalize: auto` it first divides inputs and targets by their largest
magnitude per channel over the training set (`inputs`, `targets`: stored in the checkpoint), so
the network sees values of order 1 whatever the simulator's units, and the weighted MAE it
minimises is relative to the training targets' scale s: mean((1 + w2 tanh(w |y| / s)) |ŷ - y|) / s;
the one it reports (validation) is the same formula with the validation targets' scale, which stays
put while the training set grows. Targets already scaled to a maximum of 1 (diffusion2d's) give
s = 1 for both: the study's loss, unchanged. With `training.physics_weight` each step also fits a batch
of unlabelled inputs to the simulator's equations (`Physics`: its `residual` on the predictions).
With `training.augment: auto` each mini-batch is mirrored and transposed per sample as far as the
simulator declares its problem symmetric (`symmetries`).
Under DDP (an initialised process group) every rank runs the same number of mini-batches and the
losses and validation errors are all-reduced; alone it is a plain loop.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from raysurr.config import ModelConfig, SimulatorConfig, TrainingConfig, load_plugins
from raysurr.errors import ConfigError
from raysurr.models.checkpoint import SurrogateSpec, TargetTransform, read_checkpoint
from raysurr.models.layers import has_dropout, mc_dropout
from raysurr.models.losses import weighted_mae
from raysurr.seeding import child_seed
from raysurr.simulators import build_simulator

# The grid symmetries a simulator may declare (raysurr.simulators.SYMMETRIES), on [n, C, H, W] tensors.
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "flip_rows": lambda t: t.flip(-2),
    "flip_cols": lambda t: t.flip(-1),
    "transpose": lambda t: t.transpose(-2, -1),
}


@dataclass(frozen=True)
class Physics:
    """Unlabelled inputs for the physics-informed term: parameter sets the simulator renders where the
    training runs (each rank its share), and whose `residual` on the predictions is the term."""

    simulator: SimulatorConfig
    params: np.ndarray  # [m, P]

    def inputs(self, rank: int, world: int) -> tuple[torch.Tensor, Callable[..., torch.Tensor]]:
        simulator = build_simulator(self.simulator)
        if simulator.residual is None:
            raise ConfigError("training.physics_weight needs a simulator with a residual; this one has none")
        return torch.tensor(simulator.render(self.params[rank::world])), simulator.residual


def compiled(net: nn.Module) -> nn.Module:
    """`torch.compile(net)`, where the submodules that say `compile_eager = True` run eagerly.

    They say so with an attribute rather than `@torch.compiler.disable`, which imports torch._dynamo (~2 s on
    these 2 cores) in every process that imports the model, compiled or not.
    """
    for module in net.modules():
        if getattr(module, "compile_eager", False):
            module.forward = torch.compiler.disable(module.forward)
    return torch.compile(net)


@dataclass(frozen=True)
class FitSpec:
    """One training run's setup besides its data, and the one factory of its `Fit`: small and picklable,
    what a Ray Train worker, the one-worker task and a Tune trial each receive.

    The initial weights come from `seed` (the same on every rank, at every training-set size), or
    from `warm_start`, a previous checkpoint's contents, whose scaling fine-tuning keeps.
    """

    model: str
    init: dict[str, Any]  # the model's constructor options, channels included
    training: dict[str, Any]  # the `training` section, as a dict
    seed: int
    threads: int = 1
    warm_start: bytes | None = None  # bytes, not a path: the worker may be on a node without the driver's disk
    meta: dict[str, Any] = field(default_factory=dict)
    plugins: tuple[str, ...] = ()  # modules that register the user's models, imported where the run happens
    physics: Physics | None = None  # the unlabelled inputs of `training.physics_weight`
    symmetries: tuple[str, ...] = ()  # the simulator's: what `training.augment: auto` draws from

    @classmethod
    def of(cls, model: ModelConfig, channels: tuple[int, int], training: TrainingConfig, seed: int,
           **options: Any) -> FitSpec:  # fmt: skip
        init = {"in_channels": channels[0], "out_channels": channels[1], **model.options}
        return cls(model.name, init, asdict(training), seed, **options)

    def surrogate(self) -> tuple[nn.Module, SurrogateSpec]:
        """The network to train and the spec its checkpoint will carry (with the warm start's scaling)."""
        load_plugins(self.plugins)
        torch.set_num_threads(self.threads)
        torch.manual_seed(child_seed(self.seed, "init"))
        spec = SurrogateSpec(self.model, self.init, meta=self.meta)
        net = spec.build()
        if self.warm_start:
            previous, weights = read_checkpoint(self.warm_start)
            net.load_state_dict(weights)
            spec = SurrogateSpec(self.model, self.init, previous.transform, self.meta, previous.inputs)
        return net, spec

    def start(
        self,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        device: torch.device,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
        rank: int = 0,
        world: int = 1,
        stream: int | None = None,
    ) -> tuple[Fit, SurrogateSpec]:
        """The `Fit` of this run on `device` (its network passed through `wrap`, e.g. Ray Train's DDP).

        Args:
            stream: which shuffling stream (default: the rank's); a sweep trains one per training-set size.
        """
        net, spec = self.surrogate()
        settings = TrainingConfig(**self.training)
        if settings.compile:  # lazy: compiles on the first step; `Fit.network` is the bare network still
            net = compiled(net)
        net = wrap(net) if wrap is not None else net.to(device)
        order = torch.Generator().manual_seed(child_seed(self.seed, "order", rank if stream is None else stream))
        warm = (spec.inputs, spec.transform) if self.warm_start else None
        physics = None
        if self.physics is not None:
            inputs, residual = self.physics.inputs(rank, world)
            physics = (inputs.to(device), residual)
        fit = Fit(net, train, val, settings, order, world, warm_start=warm, physics=physics, symmetries=self.symmetries)
        return fit, spec


class Fit:
    """One model's training run, advanced an epoch at a time.

    Args:
        model: the network (DDP-wrapped under Ray Train); its parameters are trained in place.
        train, val: (inputs, targets) tensors on the model's device, [n, C, H, W] each.
        settings: the `training` section (epochs, lr, batch_size, patience, loss weights).
        order: the generator that shuffles the mini-batches (seed it per rank and run).
        world: how many ranks share the global batch.
        warm_start: the (inputs, targets) scaling the model's current weights were trained at, when
            they are a previous round's: fine-tuning keeps that scaling (new scales would change
            what the weights mean), and the starting weights are the first candidate for the best,
            so a round that cannot improve on them keeps them. It trains at lr x `finetune_lr_factor`.
        physics: (unlabelled inputs [m, C, H, W] in the data's units, the simulator's `residual`), for
            `settings.physics_weight` > 0: every step adds weight * mean(residual(x, f(x))^2) over a batch
            of them, in the data's units, to the weighted MAE of the labelled batch (one forward for both).
        symmetries: the simulator's declared grid symmetries (`SYMMETRIES`). With `settings.augment`
            "auto", each one is applied to each sample of every mini-batch, input and target alike, with
            probability 1/2 (drawn from `order`): the network learns the symmetry instead of needing a
            label for every orientation. Validation sees the data as it is.
    """

    def __init__(
        self,
        model: nn.Module,
        train: tuple[torch.Tensor, torch.Tensor],
        val: tuple[torch.Tensor, torch.Tensor],
        settings: TrainingConfig,
        order: torch.Generator,
        world: int = 1,
        warm_start: tuple[TargetTransform, TargetTransform] | None = None,
        physics: tuple[torch.Tensor, Callable[..., torch.Tensor]] | None = None,
        symmetries: tuple[str, ...] = (),
    ) -> None:
        if settings.physics_weight and physics is None:
            raise ConfigError("training.physics_weight > 0 needs unlabelled inputs and the simulator's residual, "
                              "which only raysurr drive has; set it to 0 here")  # fmt: skip
        self.model, self.settings, self.order = model, settings, order
        self.symmetries = tuple(symmetries) if settings.augment == "auto" else ()  # checked by build_simulator
        self.device = next(model.parameters()).device
        self.inputs, self.targets = TargetTransform(), TargetTransform()
        if warm_start is not None:
            self.inputs, self.targets = warm_start
        elif settings.normalize == "auto":
            self.inputs, self.targets = self._max_abs(train[0]), self._max_abs(train[1])
        self.mean_target = self._mean(train[1])  # the trivial model whose error skill is measured against
        # The weighted MAE reported is relative to the validation targets' scale: the validation set is fixed for a
        # run (the training set grows, and its scale with it), so every round's error is on the same scale.
        self.metric = self._max_abs(val[1]) if settings.normalize == "auto" else TargetTransform()
        self.train_x, self.train_y = self.inputs.forward(train[0]), self.targets.forward(train[1])
        self.val_x, self.val_y = self.inputs.forward(val[0]), self.targets.forward(val[1])
        self.physics_x, self.residual, self.train_residual = None, None, math.nan
        if physics is not None and settings.physics_weight:
            self.physics_x, self.residual = self.inputs.forward(physics[0]), physics[1]
        lr = settings.lr * (settings.finetune_lr_factor if warm_start is not None else 1.0)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.batch = max(1, settings.batch_size // world)
        largest = self._all_reduce(float(len(self.train_x)), dist.ReduceOp.MAX)
        # `min_steps`: an epoch of a small training set cycles through it until the round has made that many steps,
        # so that its model converges as a large one's does, and is validated as often
        passes = math.ceil((settings.min_steps or 0) / settings.epochs)
        self.steps = max(math.ceil(largest / self.batch), passes) if largest else 0
        self.planned = settings.epochs  # cut, after each epoch, to what `budget_s` allows
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._cosine)
                          if settings.schedule == "cosine" else None)  # fmt: skip
        self.autocast = self.device.type == "cuda"  # bf16 on GPUs; CPUs stay in float32
        self.history: list[dict[str, float]] = []
        self.best, self.best_state, self.stale = math.inf, None, 0
        self.best_epoch = -1  # -1: the starting weights (a warm start no epoch improved on)
        if warm_start is not None:
            self.best, self.best_state = self.validate(), copy.deepcopy(self.network.state_dict())

    @property
    def done(self) -> bool:
        """All planned epochs run, or `patience` epochs without a better validation error."""
        patience = self.settings.patience
        return len(self.history) >= self.planned or (patience is not None and self.stale >= patience)

    def _cosine(self, epoch: int) -> float:
        """The learning rate's factor: cosine from 1 to 1/100 over the planned epochs."""
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(epoch, self.planned) / self.planned))

    @property
    def network(self) -> nn.Module:
        """The bare network (inside DDP's `module` and torch.compile's wrapper, where present): what
        validation runs and checkpoints save."""
        net = getattr(self.model, "module", self.model)
        return getattr(net, "_orig_mod", net)

    def step(self) -> dict[str, float]:
        """Train one epoch and validate; returns this epoch's record (also appended to `history`)."""
        start, cpu_start = time.perf_counter(), time.process_time()
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss = self.train_epoch()
        if self.scheduler is not None:
            self.scheduler.step()
        train_seconds, train_cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        val_wmae = self.validate()
        extra = {"val_wmae_dropout": self.validate(dropout=True)} if has_dropout(self.network) else {}
        if self.physics_x is not None:  # the unweighted physics term, for the history
            extra["train_residual"] = self.train_residual
        if val_wmae < self.best:
            self.best, self.best_state, self.stale = val_wmae, copy.deepcopy(self.network.state_dict()), 0
            self.best_epoch = len(self.history)
        else:
            self.stale += 1
        record = {"epoch": len(self.history), "train_loss": train_loss, "val_wmae": val_wmae, **extra, "lr": lr,
                  "train_samples": len(self.train_x),  # this rank's: a DDP worker's shard
                  "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
                  "seconds": time.perf_counter() - start}  # fmt: skip
        self.history.append(record)
        if self.settings.budget_s is not None:  # every rank plans on the slowest
            elapsed = self._all_reduce(sum(r["seconds"] for r in self.history), dist.ReduceOp.MAX)
            self.plan(elapsed, self._all_reduce(record["seconds"], dist.ReduceOp.MAX))
        return record

    def plan(self, elapsed_s: float, epoch_s: float) -> None:
        """Plan as many more epochs as the rest of `budget_s` holds at `epoch_s` each (at most `epochs`
        in all). Re-planned after every epoch, so a slow first epoch (allocator and cache warm-up)
        does not cut the round short."""
        more = int(max(0.0, (self.settings.budget_s or math.inf) - elapsed_s) // max(epoch_s, 1e-9))
        self.planned = max(1, min(self.settings.epochs, len(self.history) + more))
        if self.scheduler is not None:  # the next epoch's rate on the new plan
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
                group["lr"] = base * self._cosine(self.scheduler.last_epoch)

    def best_network(self) -> nn.Module:
        """The bare network with its best-validation weights loaded."""
        if self.best_state is not None:
            self.network.load_state_dict(self.best_state)
        return self.network

    @torch.no_grad()
    def validate(self, dropout: bool = False) -> float:
        """Validation weighted MAE over every rank's shard (a sample-weighted mean).

        In eval mode, as the model is deployed; with `dropout`, on the first 256 samples of each shard
        with the dropout layers on, as the model is trained (`val_wmae_dropout` in the history: a
        value far below `val_wmae` means the deployed network is worse than the one being trained).
        The dropout masks come from a forked, fixed seed: training's random stream is left as it was.
        """
        x_all, y_all = (self.val_x[:256], self.val_y[:256]) if dropout else (self.val_x, self.val_y)
        error_sum = 0.0
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(0)
            if dropout:
                mc_dropout(self.network)
            else:
                self.model.eval()
            for start in range(0, len(x_all), 256):
                x, y = x_all[start : start + 256], y_all[start : start + 256]
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    pred = self.network(x).float()
                pred, y = (self.metric.forward(self.targets.inverse(t)) for t in (pred, y))
                error_sum += float(weighted_mae(pred, y, self.settings.loss_w, self.settings.loss_w2)) * len(pred)
        count = self._all_reduce(float(len(x_all)))
        return self._all_reduce(error_sum) / count if count else math.nan

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (tensors and plain Python only).

        Includes the process's torch RNG state, which dropout draws from: restore it in a process
        that trains nothing else meanwhile.
        """
        cuda = self.device.type == "cuda"
        return {"model": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "order": self.order.get_state(), "history": self.history, "best": self.best,
                "best_state": self.best_state, "stale": self.stale, "best_epoch": self.best_epoch,
                "planned": self.planned, "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.order.set_state(state["order"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.history, self.best, self.best_state, self.stale = (
            list(state["history"]),
            float(state["best"]),
            state["best_state"],
            int(state["stale"]),
        )
        self.planned = int(state.get("planned", self.settings.epochs))  # absent from trials saved before budgets
        errors = [r["val_wmae"] for r in self.history]
        self.best_epoch = int(state.get("best_epoch", errors.index(min(errors)) if errors else -1))

    def train_epoch(self) -> float:
        """`steps` mini-batches (the same count on every rank, cycling a shuffled shard: several passes where
        `min_steps` asks for more steps than one holds); the mean loss."""
        if self.steps == 0:
            return math.nan
        n, batch = len(self.train_x), self.batch
        rounds = math.ceil(self.steps * batch / max(n, 1))
        # One copy of the order to the device and the losses summed there: a per-step copy from pageable
        # memory or `float(loss)` waits for the GPU, which then idles while Python launches the next step.
        perm = torch.cat([torch.randperm(n, generator=self.order) for _ in range(rounds)]).to(self.device)
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        residual = torch.zeros((), dtype=torch.float64, device=self.device)
        for step in range(self.steps):
            index = perm[step * batch : (step + 1) * batch]
            x, y = self.augment(self.train_x[index], self.train_y[index])
            if self.physics_x is not None:  # the unlabelled batch rides along in the same forward
                free = torch.randint(len(self.physics_x), (len(index),), generator=self.order).to(self.device)
                x = torch.cat([x, self.physics_x[free]])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                pred = self.model(x).float()
            loss = weighted_mae(pred[: len(index)], y, self.settings.loss_w, self.settings.loss_w2)
            if self.physics_x is not None:
                physics = self.physics_loss(x[len(index) :], pred[len(index) :])
                loss = loss + self.settings.physics_weight * physics
                residual += physics.detach()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        self.train_residual = self._all_reduce(float(residual) / self.steps) / self._all_reduce(1.0)
        return self._all_reduce(float(total) / self.steps) / self._all_reduce(1.0)

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each symmetry applied to each sample (input and target alike) with probability 1/2."""
        for name in self.symmetries:
            pick = (torch.rand(len(x), generator=self.order) < 0.5).to(self.device).view(-1, 1, 1, 1)
            x, y = (torch.where(pick, TRANSFORMS[name](t), t) for t in (x, y))
        return x, y

    def physics_loss(self, x: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
        """Mean squared residual of the simulator's equations on predictions, both in the data's units."""
        return self.residual(self.inputs.inverse(x), self.targets.inverse(pred)).pow(2).mean()

    def _mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean over samples of every rank's shard: [C, H, W]."""
        total = values.detach().sum(dim=0, dtype=torch.float64)
        count = torch.tensor(float(len(values)), dtype=torch.float64, device=total.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        return (total / count.clamp(min=1)).float()

    def _max_abs(self, values: torch.Tensor) -> TargetTransform:
        """Per-channel scale over every rank's shard (ranks must agree on one)."""
        return TargetTransform.max_abs(values, lambda s: self._all_reduce(s, dist.ReduceOp.MAX))

    def _all_reduce(self, value: float, op: dist.ReduceOp = dist.ReduceOp.SUM) -> float:
        if not (dist.is_available() and dist.is_initialized()):
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=op)
        return float(tensor.item())
