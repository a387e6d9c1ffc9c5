"""The Ray schedulers behind `--scheduler`: Ray's ASHA, and two synchronous brackets whose rung
decisions are the pure rules of analysis/rungs.py (successive halving, significance halving), so the
benchmark's replay of a rule on stored curves makes exactly the scheduler's choices.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

from analysis.rungs import check_alpha, decide_rung, is_kept, rungs
from raycompat import StoresStoppedPausedTrials, private

Bracket = private("Bracket")  # Ray's HyperBand bracket (private): raycompat says why


class Smoothed:
    """Mixin for a Ray scheduler: it decides on each trial's exponential moving average of the metric
    (analysis.rungs.smoothed) instead of the raw value; results on disk keep the raw value."""

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


class KeepsArms:
    """Mixin for a Ray scheduler: the trials of a kept arm (a Space's baselines and every arm of a
    study question: SearchPlan.kept) are never stopped early. A question compares two arms at the
    budget, so an arm cut at a rung leaves the question without its evidence (the degradation demo
    once cut every plain net at epoch 1, and the kd demo its baseline at epoch 2). Their results
    still count at the rungs."""

    kept: tuple[dict, ...] = ()

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == self.STOP and is_kept(trial.config, self.kept)
                and result.get(self._time_attr, 0) < self._max_t):
            return self.CONTINUE  # ASHA's rung said stop; the trainable still ends at max_t itself
        return decision


class SmoothedASHA(KeepsArms, Smoothed, ASHAScheduler):
    """Ray's asynchronous ASHA deciding on the smoothed metric, the kept arms kept."""


class _OneBracket(StoresStoppedPausedTrials, HyperBandScheduler):
    """Ray's HyperBandScheduler reduced to one bracket that holds all `trials`: a trial reaching a
    rung pauses (its checkpoint kept) until every live trial has reached it; then the bracket's
    `successive_halving` decides which resume and which stop. No trial goes on because it arrived
    first, so the decision is the pure rule's, which the benchmark replays. A trial the bracket stops
    while paused is stored as TERMINATED (raycompat.StoresStoppedPausedTrials)."""

    bracket_class: type[Bracket] = Bracket

    def __init__(self, trials: int, grace_period: int, reduction_factor: int, max_t: int):
        super().__init__(time_attr="training_iteration", max_t=max_t, reduction_factor=reduction_factor)
        self._trials, self._grace = trials, grace_period
        self._halvings = len(rungs(grace_period, reduction_factor, max_t))

    def _create_bracket(self, s):
        bracket = self.bracket_class(time_attr=self._time_attr, max_trials=self._trials,
                                     init_t_attr=self._grace, max_t_attr=self._max_t_attr, eta=self._eta,
                                     s=self._halvings, stop_last_trials=self._stop_last_trials)
        bracket.scheduler = self
        return bracket

    def debug_string(self) -> str:
        # Ray's line ("Using HyperBand: num_stopped=...") counts every trial the bracket ends, those
        # that ran to max_t included; tunelab's closing summary says what early stopping did.
        return ""


class _KeptBracket(Bracket):
    """Ray's HyperBand bracket whose halving moves the kept arms from the stopped to the kept."""

    def successive_halving(self, metric, metric_op):
        good, bad = super().successive_halving(metric, metric_op)
        kept = [t for t in bad if is_kept(t.config, self.scheduler.kept)]
        return good + kept, [t for t in bad if t not in kept]


class SyncHalving(Smoothed, _OneBracket):
    """Synchronous successive halving: at each rung the top ceil(n / reduction_factor) by the smoothed
    metric resume, with every kept arm (analysis.rungs.successive_halving)."""

    kept: tuple[dict, ...] = ()
    bracket_class = _KeptBracket


class _SignificanceBracket(Bracket):
    """Ray's HyperBand bracket whose rung decision is analysis.rungs.decide_rung on the per-seed
    curves the scheduler recorded; Ray's own halving only moves the bracket on (n ← ceil(n / eta),
    the next rung)."""

    def successive_halving(self, metric, metric_op):
        rung = self._cumul_r
        super().successive_halving(metric, metric_op)
        trials = list(self._live_trials)  # creation order: ties break as in the replay
        keep = self.scheduler.decide(trials, rung, self._n)
        return [t for t in trials if t in keep], [t for t in trials if t not in keep]


class SignificanceHalving(_OneBracket):
    """Synchronous significance halving (analysis.rungs.significance_halving): a trial stops at a rung
    only when its mean over seeds is significantly below the quota's cutoff or the leader.

    What a trial does when it reaches a rung before its peers: it pauses there, its checkpoint kept,
    until every live trial has reached the rung (the noise estimate and the cutoff need all of them);
    then it resumes or stops. It is never judged on a partial cohort."""

    bracket_class = _SignificanceBracket

    def __init__(self, trials: int, grace_period: int, reduction_factor: int, max_t: int, alpha: float,
                 smoothing: float = 0.0, kept: tuple[dict, ...] = ()):
        super().__init__(trials, grace_period, reduction_factor, max_t)
        self.alpha, self.smoothing, self.kept = check_alpha(alpha), smoothing, kept
        self.curves: dict[str, dict[int, list[float]]] = {}
        """trial id -> report -> the metric of each seed at that report."""

    def on_trial_result(self, tune_controller, trial, result):
        if self._metric in result:
            self.curves.setdefault(trial.trial_id, {})[int(result[self._time_attr])] = seed_values(
                result, self._metric)
        return super().on_trial_result(tune_controller, trial, result)

    def decide(self, trials: list, rung: int, quota: int) -> set:
        def per_seed(trial) -> list[list[float]]:
            reports = self.curves.get(trial.trial_id, {})
            rows = [reports[r] for r in sorted(reports) if r <= rung]
            return [list(column) for column in zip(*rows, strict=True)]

        curves = {t: per_seed(t) for t in trials}
        kept = frozenset(t for t in trials if is_kept(t.config, self.kept))
        keep, _, _ = decide_rung(curves, rung, quota, self.alpha, self.smoothing,
                                 "max" if self._metric_op > 0 else "min", kept)
        return keep


def seed_values(result: dict, metric: str) -> list[float]:
    """A report's metric for each seed: a lockstep trial's `<metric>_seed<s>` values, else the metric."""
    prefix = f"{metric}_seed"
    seeds = sorted(int(k[len(prefix):]) for k in result if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [float(result[f"{prefix}{s}"]) for s in seeds] if seeds else [float(result[metric])]


def asha(grace_period: int, reduction_factor: int, max_t: int, smoothing: float = 0.0,
         kept: tuple[dict, ...] = ()) -> SmoothedASHA:
    scheduler = SmoothedASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                             reduction_factor=reduction_factor)
    scheduler.smoothing, scheduler.kept = smoothing, kept
    return scheduler


def sync_halving(trials: int, grace_period: int, reduction_factor: int, max_t: int,
                 smoothing: float = 0.0, kept: tuple[dict, ...] = ()) -> SyncHalving:
    scheduler = SyncHalving(trials, grace_period, reduction_factor, max_t)
    scheduler.smoothing, scheduler.kept = smoothing, kept
    return scheduler


def significance(trials: int, grace_period: int, reduction_factor: int, max_t: int, alpha: float,
                 smoothing: float = 0.0, kept: tuple[dict, ...] = ()) -> SignificanceHalving:
    return SignificanceHalving(trials, grace_period, reduction_factor, max_t, alpha, smoothing, kept)
