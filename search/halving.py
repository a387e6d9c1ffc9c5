"""`--scheduler asha`: Ray's asynchronous ASHA, deciding on the smoothed metric and never stopping a
kept arm. The synchronous rules (halving, significance) are search/sync_halving.py.
"""

from __future__ import annotations

import re

from ray.tune.experiment import Trial
from ray.tune.schedulers import ASHAScheduler

from analysis.rungs import CUTOFF, is_kept, smoothed
from raycompat import asha_cutoff, asha_rungs
from store.experiment import ExperimentFolder
from store.fs import Location
from store.lifecycle import DecisionLog


def creation_order(trial) -> tuple[int, str]:
    """A trial's place in the order the search created it. Ray's experiment tag starts with the
    searcher's count of the trials it had made (`3_num_blocks=...`, `3@perturbed[...]` once PBT has
    explored), a grid's and Optuna's alike; a grid's trial id also ends with it (`<experiment>_00003`),
    an Optuna trial's is random. A restored trial keeps both."""
    count = re.match(r"\d+", getattr(trial, "experiment_tag", "") or "")
    if count:
        return int(count.group()), trial.trial_id
    index = trial.trial_id.rsplit("_", 1)[-1]  # a trial without a tag: a grid's id ends with the count
    return (int(index) if index.isdigit() else -1), trial.trial_id


class InCreationOrder:
    """Mixin for an asynchronous rung scheduler: the next trial to start is the earliest created one that
    waits (PENDING first, then PAUSED), as Ray's FIFOScheduler picks from its trial list. Ray's restore
    builds that list in another order, and an asynchronous rule judges each trial against the trials
    that reached its rung before it: a resumed search ran its trials in another order than the same
    search left alone, and judged them against other cutoffs."""

    def choose_trial_to_run(self, tune_controller):
        trials = sorted(tune_controller.get_trials(), key=creation_order)
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in trials:
                if trial.status == status:
                    return trial
        return None


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


class RecordsJudgements:
    """Mixin for SmoothedASHA, outermost: each judgement Ray's bracket makes as a trial reaches a rung is
    recorded with the experiment (store/lifecycle.py DecisionLog) before the trial acts on it, with its
    evidence: the (smoothed) value judged, the rung's cutoff (Ray's 1 - 1/reduction_factor quantile of
    the values the rung had recorded before), how many those were, the scheduler's settings, and what
    was decided (a kept arm goes on whatever the cutoff says: `protected`)."""

    log: DecisionLog
    grace_period = reduction_factor = 0
    sign = 1.0
    """The rungs hold the metric times this: -1 for a metric to minimise."""

    def set_search_properties(self, metric, mode, **spec) -> bool:
        self.sign = -1.0 if mode == "min" else 1.0 if mode == "max" else self.sign
        return super().set_search_properties(metric, mode, **spec)

    def on_trial_result(self, tune_controller, trial, result):
        # Only which rungs already held the trial, not their values: the rung it is newly recorded at
        # held, before it, everything but it.
        held = [trial.trial_id in recorded for _, recorded in asha_rungs(self)]
        decision = super().on_trial_result(tune_controller, trial, result)
        for was_held, (milestone, recorded) in zip(held, asha_rungs(self), strict=True):
            if trial.trial_id in recorded and not was_held:
                before = {t: v for t, v in recorded.items() if t != trial.trial_id}
                self.log.add(self._judgement(trial, milestone, before, recorded[trial.trial_id], decision))
        return decision

    def _judgement(self, trial, milestone: int, before: dict, value: float, decision: str) -> dict:
        sign, cutoff = self.sign, asha_cutoff(self, before)
        went_on = decision == self.CONTINUE
        return {"rung": milestone, "rule": "asha", "trial": trial.trial_id, "recorded": len(before),
                "signal": {trial.trial_id: sign * value}, "cutoff": None if cutoff is None else sign * cutoff,
                "quantile": 1 - 1 / self.reduction_factor, "kept": [trial.trial_id] if went_on else [],
                "stopped": {} if went_on else {trial.trial_id: CUTOFF},
                "protected": went_on and cutoff is not None and value < cutoff,
                "settings": {"grace_period": self.grace_period, "reduction_factor": self.reduction_factor,
                             "max_t": self.max_t, "smoothing": self.smoothing}}


class SmoothedASHA(InCreationOrder, RecordsJudgements, KeepsArms, Smoothed, ASHAScheduler):
    """Ray's asynchronous ASHA deciding on the smoothed metric, the kept arms kept, each judgement
    recorded."""

    def resume_from(self, folder: ExperimentFolder, metric: str, mode: str) -> dict[int, int]:
        """The rungs as the experiment stored them: each trial's (smoothed) metric at every milestone it
        reached, recorded in the order the reports were made (Ray's `timestamp`; a row rebuilt from a
        checkpoint's own metrics by store/recovery.py has none and counts last), and each trial's
        smoothed value so far. A trial that reaches a rung after the resume is judged against all of
        them, as it would have been against those that reached it before: the rule is asynchronous, so
        which came first is the only thing a resume can change. Returns {milestone: trials recorded}.
        `metric` and `mode` are the search's (Tune gives them to the scheduler only when it runs)."""
        self.log.load(folder)
        rungs, sign = asha_rungs(self), 1.0 if mode == "max" else -1.0
        milestones = {milestone: recorded for milestone, recorded in rungs}
        found = []
        for trial in folder.trials():
            rows = [r for r in trial.results() if isinstance(r.get(metric), int | float)]
            trial_id = trial.trial_id(rows) if rows else None
            values = smoothed([float(r[metric]) for r in rows], self.smoothing)
            for row, value in zip(rows, values, strict=True):
                if row.get("training_iteration") in milestones:
                    found.append((row.get("timestamp", float("inf")), row["training_iteration"], trial_id,
                                  value))
            if rows and self.smoothing > 0:
                self.__dict__.setdefault("_signal", {})[trial_id] = values[-1]
        for _, at, trial_id, value in sorted(found, key=lambda f: (f[0], f[2])):
            milestones[at][trial_id] = sign * value
        return {milestone: len(recorded) for milestone, recorded in rungs}


def asha(grace_period: int, reduction_factor: int, max_t: int, smoothing: float = 0.0,
         kept: tuple[dict, ...] = (), record: Location | None = None) -> SmoothedASHA:
    """`record`: the experiment folder its judgements are written to (None: kept in memory only)."""
    scheduler = SmoothedASHA(time_attr="training_iteration", max_t=max_t, grace_period=grace_period,
                             reduction_factor=reduction_factor)
    scheduler.smoothing, scheduler.kept, scheduler.max_t = smoothing, kept, max_t
    scheduler.grace_period, scheduler.reduction_factor = grace_period, reduction_factor
    scheduler.log = DecisionLog(record)
    return scheduler
