"""The Space: the single declaration of a study. The driver, analysis and tests all read it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli import UsageError
from spaces.questions import Question
from store import Location
from trainables.config import ConfigError, check_value

PROFILES = ("smoke", "demo", "paper")
ALPHA = 0.2
"""--scheduler significance's level, the one default every layer reads (BENCHMARKS (c) measured it)."""


def distribution(kind: str, *args: Any) -> Callable[[], Any]:
    """A `Space.continuous` entry: makes `ray.tune.<kind>(*args)` (loguniform, choice, ...) when a search
    asks for it; Ray is not imported when the spaces are read (a command line is checked without it)."""

    def make() -> Any:
        from ray import tune

        return getattr(tune, kind)(*args)

    return make


@dataclass(frozen=True)
class Profile:
    """One budget of a study: `config` overrides the trainable's defaults (data subset, epochs)."""

    config: dict[str, Any]
    grace_period: int
    """ASHA: reports every trial gets before it may be stopped."""


@dataclass(frozen=True)
class Space:
    name: str
    doc: str
    trainable: str
    """`module:function` of the trainable; imported only when a search starts."""
    config_cls: type
    """The trainable's config dataclass: types, ranges and defaults of every key."""
    grid: dict[str, list]
    """Axes searched exhaustively (grid search); every other key is fixed."""
    profiles: dict[str, Profile]
    fixed: dict[str, Any] = field(default_factory=dict)
    """Values of this study that differ from the trainable's defaults, for every profile."""
    baselines: tuple[dict[str, Any], ...] = ()
    """Reference cells trained beside the grid's product with the same budget and seeds (e.g. the
    KD student without a teacher); each fixes some grid axes. The summary reports Δ to the first."""
    metric: str = "val_acc"
    mode: str = "max"
    reduction_factor: int = 3
    """ASHA keeps the top 1/reduction_factor of trials at each rung."""
    smoothing: float = 0.0
    """The scheduler's default --smoothing: it decides on an EMA of the metric with this weight on
    the past (0: the raw value; bench/bench_asha_fidelity.py measures the choice)."""
    scheduler: str = "asha"
    """The default --scheduler (search/wilcoxon.py, search/sync_halving.py, search/halving.py;
    bench/bench_asha_fidelity.py measures the choice)."""
    alpha: float = ALPHA
    """The default --alpha of --scheduler significance: a stop needs its one-sided t-test's p < alpha."""
    reports_per_epoch: int = 1
    """Results a trial reports per epoch; ASHA's max_t is epochs × this."""
    progress: tuple[str, ...] = ("epoch", "train_loss", "val_acc")
    """The metric columns of Tune's status table while the search runs (beside the grid's values)."""
    objectives: tuple[str, ...] = ()
    """Metrics `--objective` may name beside `metric`: every result of a trial carries them (a parameter
    count from the first result on, so a multi-objective rung rule weighs it from the first rung)."""
    cpus: int = 1
    gpu: float = 0.25
    """GPU fraction per trial when CUDA is present (small CNNs share a GPU)."""
    continuous: dict[str, Callable[[], Any]] = field(default_factory=dict)
    """Optuna's counterpart of the grid: key -> factory of a ray.tune distribution."""
    perturb: dict[str, tuple[float, float]] = field(default_factory=dict)
    """`--scheduler pbt`: the keys population-based training changes while a trial trains, each with
    the range (lo, hi) its values stay in (search/pbt.py: members start log-spread over it, explore
    multiplies by 0.8 or 1.2 or resamples, then clamps into it). Empty: the space cannot run pbt."""
    population: int = 4
    """`--scheduler pbt`: members of the population when --num-samples is not given."""
    prepare: Callable[[dict, Location], dict] | None = None
    """Checks (and may complete) the fixed config before Ray starts, e.g. that the data exist; gets
    the search's storage (a folder or URI, store/fs.py).
    Raises UsageError with a one-line message when the run cannot work."""
    ship: Callable[[list[dict]], Any] | None = None
    """Loads, once in the driver, the data the trials of these configs read (a
    trainables.data.shipped.Shipment); Ray's object store hands it to every trial, so worker nodes need
    no data of their own."""
    describe: Callable[[dict], dict[str, Any]] | None = None
    """For `--view`: the model a config builds, as {"params": ..., "layers": ...}, without training."""
    questions: tuple[Question, ...] = ()
    """The study's own questions (spaces/questions.py): comparisons between arms of the grid, each
    answered with its evidence by every view, and whose arms no scheduler stops before the budget."""

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics a question may name: the space's metric, its objectives and progress columns."""
        named = (self.metric, *self.objectives, *self.progress)
        return tuple(dict.fromkeys(m for m in named if m != "epoch"))

    def base_config(self, profile: str) -> dict[str, Any]:
        if profile not in self.profiles:
            raise UsageError(f"unknown profile '{profile}' (known: {', '.join(self.profiles)})")
        return {**self.fixed, **self.profiles[profile].config}

    def load_trainable(self) -> Callable[[dict], None]:
        module, function = self.trainable.split(":")
        return getattr(importlib.import_module(module), function)

    def check(self, key: str, value: Any) -> None:
        try:
            check_value(self.config_cls, key, value)
        except ConfigError as err:
            raise UsageError(str(err)) from None
