"""What a run will ask of the simulator and the trainer, told before any work: one line, and a refusal where the
defaults (the study's full scale) would spend a plugin simulator's runs by the ten thousand unasked.

Example:
    >>> from raysurr.config import Config
    >>> plan = plan_of(Config.from_dict({"pool": {"size": 500, "initial": 50, "val": 20, "test": 30},
    ...                                  "loop": {"batch_size": 100, "rounds": 3}}))
    >>> print(plan.line()[:86])
    plan: 250 labels (50 initial + 100 a round x 2 rounds) + 20 validation + 30 test = 300
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from raysurr.acquisition import build_acquisition
from raysurr.config import Config
from raysurr.engine.rounds import RoundRecord
from raysurr.errors import ConfigError
from raysurr.progress import say
from raysurr.simulators import SIMULATORS

SCALE_LIMIT = 10_000  # simulator runs a plugin's run may make with default sizes before it is refused
SIZE_KEYS = ("pool.size", "pool.initial", "pool.val", "pool.test", "loop.batch_size", "loop.rounds")


@dataclass(frozen=True)
class Plan:
    """A run's simulator runs and training, from its config."""

    initial: int
    added: tuple[int, ...]  # labels each round after the first adds
    val: int
    test: int
    epochs: int
    min_steps: int | None
    model: str
    reinit: bool
    hindsight: int  # simulator runs a hindsight oracle spends scoring the pool

    @property
    def labels(self) -> int:
        return self.initial + sum(self.added)

    @property
    def rounds(self) -> int:
        return 1 + len(self.added)

    @property
    def simulator_runs(self) -> int:
        return self.labels + self.val + self.test + self.hindsight

    def steps(self, labels: int, batch_size: int) -> int:
        """Optimizer steps a round on `labels` labels makes (an epoch of a small set cycles to `min_steps`)."""
        per_epoch = max(math.ceil(labels / batch_size), math.ceil((self.min_steps or 0) / self.epochs))
        return self.epochs * per_epoch

    def seconds_left(self, first: RoundRecord, batch_size: int) -> float:
        """The rest of the run's seconds, from round 0's: labelling per label, training per optimizer step,
        evaluation and scoring per round as round 0 took them."""
        per_label = first.label_s / max(1, self.initial)
        per_step = first.train_s / max(1, self.steps(self.initial, batch_size))
        labels, left = self.initial, 0.0
        for added in self.added:
            labels += added
            left += per_label * added + per_step * self.steps(labels, batch_size) + first.eval_s + first.score_s
        return left

    def line(self) -> str:
        if len(set(self.added)) <= 1:
            growth = f"{self.added[0]} a round x {len(self.added)} rounds" if self.added else "no more rounds"
        else:
            growth = f"{', '.join(map(str, self.added))} in the next rounds"
        oracle = f" + {self.hindsight} hindsight (the oracle)" if self.hindsight else ""
        steps = f", at least {self.min_steps} steps" if self.min_steps else ""
        start = "each from scratch" if self.reinit else "each fine-tuning the last"
        return (f"plan: {self.labels} labels ({self.initial} initial + {growth}) + {self.val} validation + {self.test} "
                f"test{oracle} = {self.simulator_runs} simulator runs; {self.rounds} rounds of {self.epochs} epochs"
                f"{steps} ({self.model}), {start}")  # fmt: skip


def duration(seconds: float) -> str:
    """A rough human duration.

    Example:
        >>> duration(42), duration(600), duration(8000)
        ('42 s', '10 min', '2.2 h')
    """
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def plan_of(config: Config) -> Plan:
    """The plan of a run of `config` (at most; a target error may stop it sooner)."""
    loop, pool = config.loop, config.pool
    if loop.sizes:
        added = tuple(b - a for a, b in zip(loop.sizes, loop.sizes[1:], strict=False))
    else:
        budget = min(loop.label_budget or math.inf, pool.size)
        added, total = [], pool.initial
        while len(added) + 1 < loop.rounds and total < budget:
            step = int(min(loop.batch_size, budget - total))
            added.append(step)
            total += step
        added = tuple(added)
    truth = build_acquisition(config.acquisition).needs.truth
    hindsight = sum(pool.size - pool.initial - sum(added[:r]) for r in range(len(added))) if truth else 0
    training = config.training
    return Plan(pool.initial, added, pool.val, pool.test, training.epochs, training.min_steps, config.model.name,
                training.reinit, hindsight)  # fmt: skip


def check_scale(config: Config, given: set[str], limit: int = SCALE_LIMIT) -> None:
    """Refuse a run of a plugin simulator that would make more than `limit` simulator runs at sizes the user never
    set (the defaults are the study's: 16,000 candidates, 8,000 evaluation runs, 15 rounds of 1,000)."""
    if SIMULATORS.get(config.simulator.name).__module__.startswith("raysurr.simulators.diffusion2d"):
        return  # the built-in problem is cheap enough that its defaults are a deliberate choice
    runs = plan_of(config).simulator_runs
    unset = [key for key in SIZE_KEYS if key not in given and not (key.startswith("loop.") and "loop.sizes" in given)]
    if runs > limit and unset:
        raise ConfigError(f"this run would call simulator {config.simulator.name!r} {runs:,} times at default sizes "
                          f"(the study's full scale); set {', '.join(unset)} in the config (or give them with --set) "
                          "to say how many runs you mean")  # fmt: skip


def announce(config: Config, runs: int = 1) -> None:
    """Say, once every check has passed and before any work, what the run (each of `runs`) will ask of the
    simulator and the trainer."""
    say(plan_of(config).line() + (f"; {runs} runs" if runs > 1 else ""))
