"""Successive halving as a pure function of learning curves: the rung decision the scheduler makes,
and the same decision replayed on a full grid's curves (bench/bench_asha_fidelity.py).

A decision is synchronous: at each rung every configuration still alive has reported, and the top
1/reduction_factor of them by the signal go on (among equal signals the later curve, as Ray's bracket
keeps the later-created trial). It therefore depends only on the
curves, never on the order in which trials reach the rung, so replaying it on FIFO curves gives
exactly the choices a scheduler with the same rule makes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler
from ray.tune.schedulers.hyperband import _Bracket


def smoothed(values: Sequence[float], smoothing: float) -> list[float]:
    """Exponential moving average: s_t = (1 - smoothing) · v_t + smoothing · s_{t-1}, s_1 = v_1.
    smoothing 0 is the raw curve; it must lie in [0, 1)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    out: list[float] = []
    for v in values:
        out.append(float(v) if not out else (1 - smoothing) * float(v) + smoothing * out[-1])
    return out


def rungs(grace_period: int, reduction_factor: int, max_t: int) -> list[int]:
    """grace_period × reduction_factor^k below max_t: the reports at which trials are compared."""
    found, rung = [], grace_period
    while rung < max_t:
        found.append(rung)
        rung *= reduction_factor
    return found


def top(scores: dict, count: int, mode: str = "max") -> set:
    """The `count` best keys by score; among equal scores the later key, as Ray's HyperBand bracket
    (a stable sort of its trials in creation order) keeps them."""
    ranked = sorted(scores, key=lambda k: scores[k] if mode == "max" else -scores[k])
    return set(ranked[-count:]) if count > 0 else set()


def is_baseline(config: dict, baselines: Sequence[dict]) -> bool:
    """Whether a trial's config is one of a space's baseline arms (every key of one of them matches)."""
    return any(all(config.get(k) == v for k, v in b.items()) for b in baselines)


@dataclass
class Halving:
    stopped_at: dict
    """config -> the report after which it was stopped (max_t for those that ran to the end)."""
    max_t: int

    @property
    def finished(self) -> list:
        return [c for c, t in self.stopped_at.items() if t >= self.max_t]

    @property
    def reports(self) -> int:
        return sum(self.stopped_at.values())


def successive_halving(curves: dict, grace_period: int, reduction_factor: int, max_t: int,
                       smoothing: float = 0.0, mode: str = "max", baselines: frozenset = frozenset()
                       ) -> Halving:
    """curves: config -> its metric per report (at least max_t values; for lockstep seeds, the mean
    over seeds). Each rung compares the smoothed signal at that report and keeps the top
    n ← ceil(n / reduction_factor) of them (n starts at the number of curves), as Ray's bracket counts;
    the `baselines` among the curves go on whatever their rank (KeepsBaselines)."""
    alive, n = list(curves), len(curves)  # a list: ties break by the curves' order, never by hashing
    stopped_at = {}
    for rung in rungs(grace_period, reduction_factor, max_t):
        n = math.ceil(n / reduction_factor)
        scores = {c: smoothed(curves[c][:rung], smoothing)[-1] for c in alive}
        keep = top(scores, n, mode) | (set(alive) & baselines)
        stopped_at.update({c: rung for c in alive if c not in keep})
        alive = [c for c in alive if c in keep]
    stopped_at.update({c: max_t for c in alive})
    return Halving(stopped_at, max_t)


def trial_count(grid: dict[str, list], baselines: tuple[dict, ...], num_samples: int) -> int:
    """Trials a grid search runs: every cell, and each baseline once per combination of the grid
    axes it leaves open, all num_samples times."""
    def cells(axes: dict[str, list]) -> int:
        return math.prod(len(v) for v in axes.values())

    open_axes = [cells({k: v for k, v in grid.items() if k not in b}) for b in baselines]
    return num_samples * (cells(grid) + sum(open_axes))


class Smoothed:
    """Mixin for a Ray scheduler: it decides on each trial's exponential moving average of the metric
    (`smoothed` above) instead of the raw value; results on disk keep the raw value."""

    smoothing = 0.0

    def on_trial_result(self, tune_controller, trial, result):
        if self._metric in result and self.smoothing > 0:
            signal = self.__dict__.setdefault("_signal", {})
            value, last = float(result[self._metric]), signal.get(trial.trial_id)
            if last is not None:
                value = (1 - self.smoothing) * value + self.smoothing * last
            signal[trial.trial_id] = value
            result = {**result, self._metric: value}  # Ray's own dict stays raw
        return super().on_trial_result(tune_controller, trial, result)


class KeepsBaselines:
    """Mixin for a Ray scheduler: a baseline arm's trials (a Space's `baselines`) are never stopped
    early. A table's Δ compares a row with the baseline at the same budget, so a baseline cut at a
    rung would leave every full-budget row with nothing to compare against (the kd demo with
    --seeds 3 lost its baseline at epoch 2 that way). Its results still count at the rungs."""

    baselines: tuple[dict, ...] = ()

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == self.STOP and is_baseline(trial.config, self.baselines)
                and result.get(self._time_attr, 0) < self._max_t):
            return self.CONTINUE  # ASHA's rung said stop; the trainable still ends at max_t itself
        return decision


class SmoothedASHA(KeepsBaselines, Smoothed, ASHAScheduler):
    """Ray's asynchronous ASHA deciding on the smoothed metric, baselines kept."""


class _BaselineBracket(_Bracket):
    """Ray's HyperBand bracket whose halving moves the baselines from the stopped to the kept."""

    baselines: tuple[dict, ...] = ()

    def successive_halving(self, metric, metric_op):
        good, bad = super().successive_halving(metric, metric_op)
        kept = [t for t in bad if is_baseline(t.config, self.baselines)]
        return good + kept, [t for t in bad if t not in kept]


class SyncHalving(Smoothed, HyperBandScheduler):
    """Ray's HyperBandScheduler reduced to one bracket that holds all `trials`: a trial reaching a
    rung pauses (its checkpoint kept) until every live trial has reached it, then the top
    ceil(n / reduction_factor) by the smoothed metric resume, with any baseline arm, and the others
    stop. No trial goes on because it arrived first, and the decision is `successive_halving`'s, which
    the benchmark replays."""

    baselines: tuple[dict, ...] = ()

    def __init__(self, trials: int, grace_period: int, reduction_factor: int, max_t: int):
        super().__init__(time_attr="training_iteration", max_t=max_t, reduction_factor=reduction_factor)
        self._trials, self._grace = trials, grace_period
        self._halvings = len(rungs(grace_period, reduction_factor, max_t))

    def _create_bracket(self, s):
        bracket = _BaselineBracket(time_attr=self._time_attr, max_trials=self._trials,
                                   init_t_attr=self._grace, max_t_attr=self._max_t_attr, eta=self._eta,
                                   s=self._halvings, stop_last_trials=self._stop_last_trials)
        bracket.baselines = self.baselines
        return bracket


def asha(grace_period: int, reduction_factor: int, max_t: int, smoothing: float = 0.0,
         baselines: tuple[dict, ...] = ()) -> SmoothedASHA:
    scheduler = SmoothedASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                             reduction_factor=reduction_factor)
    scheduler.smoothing, scheduler.baselines = smoothing, baselines
    return scheduler


def sync_halving(trials: int, grace_period: int, reduction_factor: int, max_t: int,
                 smoothing: float = 0.0, baselines: tuple[dict, ...] = ()) -> SyncHalving:
    scheduler = SyncHalving(trials, grace_period, reduction_factor, max_t)
    scheduler.smoothing, scheduler.baselines = smoothing, baselines
    return scheduler
