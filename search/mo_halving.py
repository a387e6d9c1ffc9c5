"""`--scheduler moasha`: asynchronous successive halving on two objectives, the rung rule of
analysis/pareto.py (MOASHA's non-dominated sorting) in a Ray scheduler.

Like ASHA it is asynchronous: a trial reaching a rung is judged at once against every trial that
reported at that rung before it (no pausing for peers, so it suits a sampler that proposes trials one
by one). It goes on when it is on the first front of that rung or within the top
ceil(n / reduction_factor) by (front, crowding distance); otherwise it stops. A parameter count is
fixed at the start and every trainable reports it in each result (trainables/finetune.py
`trainable_params`, trainables/cnn.py `params`), so the rule weighs it from the first rung on.
"""

from __future__ import annotations

import math

from ray.tune.schedulers import FIFOScheduler

from analysis.pareto import Objective, mo_rung_decision
from analysis.rungs import is_kept, rungs
from search.halving import InCreationOrder
from store.experiment import ExperimentFolder
from store.fs import Location
from store.lifecycle import DecisionLog


class MultiObjectiveHalving(InCreationOrder, FIFOScheduler):
    """MOASHA on `objectives` at the rungs of grace_period × reduction_factor^k; kept go on. Each judgement
    is recorded with the experiment folder `record` (store/lifecycle.py DecisionLog; None: in memory)
    with its evidence: every point the rung held, the quota, what was decided."""

    def __init__(self, objectives: list[Objective], grace_period: int, reduction_factor: int, max_t: int,
                 kept: tuple[dict, ...] = (), record: Location | None = None):
        super().__init__()
        self.grace_period = grace_period
        self.log = DecisionLog(record)
        self.objectives = [tuple(o) for o in objectives]
        self.reduction_factor, self.max_t, self.kept = reduction_factor, max_t, kept
        self.rungs = rungs(grace_period, reduction_factor, max_t)
        self.recorded: dict[int, dict[str, tuple[float, ...]]] = {r: {} for r in self.rungs}
        """rung -> trial id -> its objectives there, in the order the trials arrived."""
        self.stopped: dict[str, int] = {}
        """trial id -> the rung it was stopped at."""

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are the scheduler's own; TuneConfig's single metric is unused

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        at = int(result.get("training_iteration", 0))
        if at not in self.recorded or any(name not in result for name, _ in self.objectives):
            return self.CONTINUE
        points = self.recorded[at]
        recorded = len(points)
        points[trial.trial_id] = tuple(float(result[name]) for name, _ in self.objectives)
        if at >= self.max_t:
            return self.CONTINUE
        keep, stopped = mo_rung_decision(points, [mode for _, mode in self.objectives], self.reduction_factor)
        protected = is_kept(trial.config, self.kept)
        went_on = protected or trial.trial_id in keep
        self.log.add({"rung": at, "rule": "moasha", "trial": trial.trial_id, "recorded": recorded,
                      "signal": {t: list(p) for t, p in points.items()}, "objectives": self.objectives,
                      "quota": math.ceil(len(points) / self.reduction_factor),
                      "kept": [trial.trial_id] if went_on else [],
                      "stopped": {} if went_on else {trial.trial_id: stopped[trial.trial_id]},
                      "protected": protected and trial.trial_id not in keep,
                      "settings": {"grace_period": self.grace_period,
                                   "reduction_factor": self.reduction_factor, "max_t": self.max_t}})
        if went_on:
            return self.CONTINUE
        self.stopped[trial.trial_id] = at
        return self.STOP

    def debug_string(self) -> str:
        return f"MOASHA: {len(self.stopped)} stopped at a rung" if self.stopped else ""

    def resume_from(self, folder: ExperimentFolder) -> None:
        """The rungs as the experiment stored them: each trial's objectives at every rung it reported,
        in the order the reports were made (Ray's `timestamp`; a row rebuilt from a checkpoint's own
        metrics by store/recovery.py has none and counts last). A trial that reaches a rung after the
        resume is judged against all of them, as it would have been against those that came before it;
        the rule is asynchronous, so which came first is the only thing a resume can change. The
        judgements recorded so far go on too."""
        self.log.load(folder)
        found = []
        for trial in folder.trials():
            rows = trial.results()
            trial_id = trial.trial_id(rows)
            for row in rows:
                at, values = row.get("training_iteration"), [row.get(n) for n, _ in self.objectives]
                if at in self.recorded and all(isinstance(v, int | float) for v in values):
                    when = row.get("timestamp", float("inf"))
                    found.append((when, at, trial_id, tuple(map(float, values))))
        for _, at, trial_id, point in sorted(found, key=lambda f: (f[0], f[2])):
            self.recorded[at][trial_id] = point


def moasha(objectives: list[Objective], grace_period: int, reduction_factor: int, max_t: int,
           kept: tuple[dict, ...] = (), record: Location | None = None) -> MultiObjectiveHalving:
    return MultiObjectiveHalving(objectives, grace_period, reduction_factor, max_t, kept, record)


def optuna_searcher(objectives: list[list[str]], seed: int, num_samples: int):
    """Ray's OptunaSearch on both objectives (metric and mode lists) with Optuna's multi-objective TPE
    (docs/tradeoffs.md says why TPE, not NSGA-II): multivariate, so it models rank and rate together, and
    random for the first third of the budget (at most Optuna's default 10) instead of the first 10, so a
    budget of a dozen trials still gets modelled proposals."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                         n_startup_trials=max(2, min(10, num_samples // 3)))
    return OptunaSearch(sampler=sampler, metric=[name for name, _ in objectives],
                        mode=[mode for _, mode in objectives])
