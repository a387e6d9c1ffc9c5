"""`--scheduler asha`: Ray's asynchronous ASHA, deciding on the smoothed metric and never stopping a
kept arm. The synchronous rules (halving, significance) are search/sync_halving.py.
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler

from analysis.rungs import is_kept


class Smoothed:
    """Mixin for a Ray scheduler: it decides on each trial's exponential moving average of the metric
    (analysis.rungs.smoothed) instead of the raw value; results on disk keep the raw value."""

    smoothing = 0.0

    def on_trial_result(self, tune_controller, trial, result):
        if self.metric in result and self.smoothing > 0:
            signal = self.__dict__.setdefault("_signal", {})
            value, last = float(result[self.metric]), signal.get(trial.trial_id)
            if last is not None:
                value = (1 - self.smoothing) * value + self.smoothing * last
            signal[trial.trial_id] = value
            result = {**result, self.metric: value}  # Ray's own dict stays raw
        return super().on_trial_result(tune_controller, trial, result)


class KeepsArms:
    """Mixin for a Ray scheduler: the trials of a kept arm (a Space's baselines and every arm of a
    study question: SearchPlan.kept) are never stopped early. A question compares two arms at the
    budget, so an arm cut at a rung leaves the question without its evidence (the degradation demo
    once cut every plain net at epoch 1, and the kd demo its baseline at epoch 2). Their results
    still count at the rungs."""

    kept: tuple[dict, ...] = ()
    max_t = 0
    """The budget in reports (training_iteration)."""

    def on_trial_result(self, tune_controller, trial, result):
        decision = super().on_trial_result(tune_controller, trial, result)
        if (decision == self.STOP and is_kept(trial.config, self.kept)
                and result.get("training_iteration", 0) < self.max_t):
            return self.CONTINUE  # ASHA's rung said stop; the trainable still ends at max_t itself
        return decision


class SmoothedASHA(KeepsArms, Smoothed, ASHAScheduler):
    """Ray's asynchronous ASHA deciding on the smoothed metric, the kept arms kept."""


def asha(grace_period: int, reduction_factor: int, max_t: int, smoothing: float = 0.0,
         kept: tuple[dict, ...] = ()) -> SmoothedASHA:
    scheduler = SmoothedASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                             reduction_factor=reduction_factor)
    scheduler.smoothing, scheduler.kept, scheduler.max_t = smoothing, kept, max_t
    return scheduler
