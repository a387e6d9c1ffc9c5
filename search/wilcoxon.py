"""`--scheduler wilcoxon`: Optuna's WilcoxonPruner as a Ray scheduler, deciding by analysis/wilcoxon.py's
pure rule. At every report a trial is compared, seed by seed and report by report, with the best trial
that has completed the budget so far; it stops when a one-sided Wilcoxon signed-rank test says it is
worse at p < --alpha (default 0.2) once it has 3 pairs or more. The kept arms (a Space's baselines and
every arm of a study question) always go on.

Each judgement is recorded with the experiment before the trial acts on it (store/lifecycle.py
DecisionLog): the report, the trial, the completed trial it was compared with, the pairs, p, the
settings, and what was decided. The rule is asynchronous: which trials have completed when a trial is
judged depends on the order trials run in. With one trial at a time (each taking every CPU) it is the
order the search created them, killed or not, and the decisions are those of
`analysis.wilcoxon.wilcoxon_replay` on the same curves, which are Optuna's own (bench/fidelity_optuna.py).
`--resume` rebuilds the state from what was stored (`resume_from`): every trial's reports, and which
trials completed.
"""

from __future__ import annotations

from types import SimpleNamespace

from ray.tune.schedulers import FIFOScheduler

from analysis.rungs import SIGNIFICANT, is_kept
from analysis.wilcoxon import N_STARTUP_STEPS, WILCOXON, full_budget, instances, judge
from search.halving import InCreationOrder, creation_order
from search.sync_halving import seed_values
from store.experiment import ExperimentFolder
from store.fs import Location
from store.lifecycle import DecisionLog


class WilcoxonStopping(InCreationOrder, FIFOScheduler):
    """Stops a trial that is significantly worse, pair by pair, than the best completed trial."""

    _supports_buffered_results = False  # a trial must stop at the report judged, not a few reports later

    def __init__(self, max_t: int, p_threshold: float, n_startup_steps: int = N_STARTUP_STEPS,
                 kept: tuple[dict, ...] = (), record: Location | None = None, metric: str | None = None,
                 mode: str = "max"):
        super().__init__()
        self.max_t, self.p_threshold, self.n_startup_steps = max_t, p_threshold, n_startup_steps
        self.kept = kept
        self._metric, self._mode = metric, mode
        self.log = DecisionLog(record)
        self.curves: dict[str, dict[int, list[float]]] = {}
        """trial id -> report -> the metric of each seed."""
        self.completed: list[str] = []
        """Trials that trained the budget without a stop, in the order they completed."""

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if metric and self._metric and metric != self._metric:
            return False
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def per_seed(self, trial_id: str, reports: int) -> list[list[float]]:
        """The trial's first `reports` reports as one curve per seed."""
        by_report = self.curves[trial_id]
        return [list(c) for c in zip(*(by_report[r] for r in range(1, reports + 1)), strict=True)]

    def best(self) -> str | None:
        """The completed trial with the best value (the best report of its mean over seeds); among
        equals the first to complete, as Optuna's best trial."""
        best, value = None, None
        for trial_id in self.completed:
            v = full_budget(self.per_seed(trial_id, self.max_t), self.max_t, self._mode)
            if value is None or (v > value if self._mode == "max" else v < value):
                best, value = trial_id, v
        return best

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._metric not in result:
            return self.CONTINUE
        report = int(result["training_iteration"])
        self.curves.setdefault(trial.trial_id, {})[report] = seed_values(result, self._metric)
        best = self.best()
        mine = instances(self.per_seed(trial.trial_id, report), report)
        reference = {} if best is None else instances(self.per_seed(best, self.max_t), self.max_t)
        stop, p, pairs = judge(mine, reference, self.p_threshold, self.n_startup_steps, self._mode)
        protected = stop and is_kept(trial.config, self.kept)  # a kept arm goes on whatever p says
        worse = stop and not protected
        # Judged worse at the budget's report, a trial has nothing left to stop, but it did not
        # complete in Optuna's sense: it never becomes the trial the others are compared with.
        stop = worse and report < self.max_t
        if p is not None:  # recorded before the trial acts on it
            self.log.add({"rung": report, "rule": WILCOXON, "trial": trial.trial_id, "reference": best,
                          "pairs": pairs, "p": p, "signal": {trial.trial_id: sum(mine.values()) / len(mine)},
                          "worse": worse, "kept": [] if stop else [trial.trial_id],
                          "stopped": {trial.trial_id: SIGNIFICANT} if stop else {},
                          "protected": protected, "settings": self.settings()})
        if not worse and report >= self.max_t and trial.trial_id not in self.completed:
            self.completed.append(trial.trial_id)
        return self.STOP if stop else self.CONTINUE

    def settings(self) -> dict:
        return {"max_t": self.max_t, "p_threshold": self.p_threshold, "n_startup_steps": self.n_startup_steps}

    def resume_from(self, folder: ExperimentFolder) -> list[str]:
        """The state of the search stored in `folder`: its judgements, every trial's stored reports, and
        the trials that completed (those that reached the budget and were not judged worse there, in
        creation order). Returns those."""
        self.log.load(folder)
        worse = {(d["trial"], d["rung"]) for d in self.log.decisions if d["worse"]}
        for trial in folder.trials():
            rows = [r for r in trial.results()
                    if self._metric in r and isinstance(r.get("training_iteration"), int)]
            for row in rows:
                reports = self.curves.setdefault(trial.trial_id(rows), {})
                reports[row["training_iteration"]] = seed_values(row, self._metric)
        done = [t for t, reports in self.curves.items()
                if self.max_t in reports and (t, self.max_t) not in worse]
        self.completed = sorted(done, key=lambda t: creation_order(SimpleNamespace(trial_id=t)))
        return list(self.completed)

    def debug_string(self) -> str:
        return ""  # tunelab's closing summary says what early stopping did
