"""`--scheduler wilcoxon`: Optuna's WilcoxonPruner as a Ray scheduler, deciding by analysis/wilcoxon.py's
pure rule. At every report a trial is compared, seed by seed and report by report, with the best trial
that has completed the budget; it stops when a one-sided Wilcoxon signed-rank test says it is worse at
p < --alpha (default 0.2) once it has 3 pairs or more. The kept arms (a Space's baselines and every arm
of a study question) are never judged: they train the budget.

Which trials have completed when a trial is judged must not depend on the order trials happen to run
in, or a search run twice, or killed and resumed, would decide otherwise. So the trials are taken in
waves of `wave` consecutive trials in creation order (the plan's `wave`: the trials the cluster runs at
once when the search starts, kept with the plan): a trial is judged against the best trial completed in
the waves before its own, and a report that needs that judgement waits, the trial PAUSED there with its
checkpoint, until every trial of those waves has completed or stopped. The decisions are then
`analysis.wilcoxon.wilcoxon_replay(..., wave=wave)` on the same curves, however many trials run at once;
at wave 1 they are those of Optuna's own sequential study (bench/fidelity_optuna.py).

Each judgement is recorded with the experiment before the trial acts on it (store/lifecycle.py
DecisionLog): the report, the trial, the completed trial it was compared with, the pairs, p, the
settings, and what was decided. The state is the trials' stored reports; `--resume` rebuilds it from
them (`resume_from`) and judges again what was judged before, to the same decisions.
"""

from __future__ import annotations

from ray.tune.experiment import Trial

from analysis.rungs import SIGNIFICANT, is_kept
from analysis.wilcoxon import N_STARTUP_STEPS, WILCOXON, full_budget, instances, judge
from search.halving import creation_order
from search.sync_halving import DecidingScheduler, seed_values
from store.experiment import ExperimentFolder
from store.fs import Location
from store.lifecycle import DecisionLog

STOPPED, WORSE, COMPLETED = "stopped", "worse", "completed"
"""A trial's verdict: stopped before the budget; judged worse at the budget's report (it trained the
budget but is never the reference); completed."""


class WilcoxonStopping(DecidingScheduler):
    """Stops a trial that is significantly worse, pair by pair, than the best trial completed in the
    waves before its own."""

    def __init__(self, max_t: int, p_threshold: float, n_startup_steps: int = N_STARTUP_STEPS, wave: int = 1,
                 kept: tuple[dict, ...] = (), record: Location | None = None, metric: str | None = None,
                 mode: str = "max"):
        super().__init__(metric, mode)
        self.max_t, self.p_threshold, self.n_startup_steps = max_t, p_threshold, n_startup_steps
        self.wave, self.kept = max(1, wave), kept
        self.log = DecisionLog(record)
        self.curves: dict[str, dict[int, list[float]]] = {}
        """trial id -> report -> the metric of each seed."""
        self.created: dict[str, tuple[int, str]] = {}
        """trial id -> its place in the order the search created it (search.halving.creation_order)."""
        self.verdicts: dict[str, tuple[str, int]] = {}
        """trial id -> (STOPPED, WORSE or COMPLETED, the report it was decided at)."""
        self.judged: dict[str, int] = {}
        """trial id -> the last report judged."""

    def settings(self) -> dict:
        return {"max_t": self.max_t, "p_threshold": self.p_threshold, "n_startup_steps": self.n_startup_steps,
                "wave": self.wave}

    # --- the state, as data ---------------------------------------------------------------------

    def per_seed(self, trial_id: str, reports: int) -> list[list[float]]:
        """The trial's first `reports` reports as one curve per seed."""
        by_report = self.curves[trial_id]
        return [list(c) for c in zip(*(by_report[r] for r in range(1, reports + 1)), strict=True)]

    def stopped(self, trial_id: str) -> bool:
        return self.verdicts.get(trial_id, ("",))[0] == STOPPED

    def settled(self, trial_id: str) -> bool:
        return trial_id in self.verdicts or trial_id in self.gone

    def waiting(self, trial_id: str) -> bool:
        """Whether the trial has a report before the budget's that waits for its judgement."""
        last = max(self.curves.get(trial_id, {0: []}))
        return not self.settled(trial_id) and self.judged.get(trial_id, 0) < last < self.max_t

    def advance(self) -> None:
        """Judges, wave by wave in creation order, every stored report that can be judged now: a trial's
        reports while its pairs are too few for the test (whatever it is compared with), then, once
        every trial of the waves before its own has settled, each report against the best of them
        that completed (the first created among equals, as Optuna's best trial). A searcher creates
        trials in order, so the trials added so far are the first ones (a restore adds them all
        before anything is judged)."""
        trials = sorted(self.configs, key=self.created.__getitem__)
        reference, best_value, settled = None, None, True
        for start in range(0, len(trials), self.wave):
            members = trials[start:start + self.wave]
            for trial_id in members:
                self._judge(trial_id, reference if settled else None, settled)
            for trial_id in members:  # the reference of the next wave, as the replay takes it
                if self.verdicts.get(trial_id, ("",))[0] == COMPLETED:
                    value = full_budget(self.per_seed(trial_id, self.max_t), self.max_t, self._mode)
                    if best_value is None or (value > best_value if self._mode == "max"
                                              else value < best_value):
                        reference, best_value = trial_id, value
            settled = settled and all(self.settled(t) for t in members)

    def _judge(self, trial_id: str, reference: str | None, known: bool) -> None:
        """Judges the trial's unjudged reports in order; `known`: whether `reference` is the trial's
        reference for good (every earlier wave settled), else only reports too short to test pass."""
        reports = self.curves.get(trial_id, {})
        if self.settled(trial_id) or not reports:
            return
        if is_kept(self.configs[trial_id], self.kept):  # a kept arm is never judged: it trains the budget
            self.judged[trial_id] = max(reports)
            if self.max_t in reports:
                self.verdicts[trial_id] = (COMPLETED, self.max_t)
            return
        best = {} if reference is None else instances(self.per_seed(reference, self.max_t), self.max_t)
        for report in range(self.judged.get(trial_id, 0) + 1, max(reports) + 1):
            mine = instances(self.per_seed(trial_id, report), report)
            if not known and len(mine) >= max(2, self.n_startup_steps):
                return  # waits for the waves before it
            stop, p, pairs = judge(mine, best, self.p_threshold, self.n_startup_steps, self._mode)
            self.judged[trial_id] = report
            # A resume judges again what the killed driver recorded; the record keeps the first.
            if p is not None and not self.log.has(trial_id, report):
                self.log.add({"rung": report, "rule": WILCOXON, "trial": trial_id, "reference": reference,
                              "pairs": pairs, "p": p,
                              "signal": {trial_id: sum(mine.values()) / len(mine)}, "worse": stop,
                              "kept": [] if stop and report < self.max_t else [trial_id],
                              "stopped": {trial_id: SIGNIFICANT} if stop and report < self.max_t else {},
                              "settings": self.settings()})
            if stop or report >= self.max_t:
                self.verdicts[trial_id] = (WORSE if stop and report >= self.max_t else STOPPED if stop
                                           else COMPLETED, report)
                return

    def resume_from(self, folder: ExperimentFolder) -> int:
        """The state of the search stored in `folder`: its judgements and every trial's stored reports
        (judged again as the trials are added back). Returns how many trials reached the budget."""
        self.log.load(folder)
        for trial in folder.trials():
            rows = [r for r in trial.results()
                    if self._metric in r and isinstance(r.get("training_iteration"), int)]
            for row in rows:
                reports = self.curves.setdefault(trial.trial_id(rows), {})
                reports[row["training_iteration"]] = seed_values(row, self._metric)
        return sum(self.max_t in reports for reports in self.curves.values())

    # --- Ray's calls ----------------------------------------------------------------------------

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self.created[trial.trial_id] = creation_order(trial)
        reports = self.curves.get(trial.trial_id, {})
        if trial.status == Trial.PENDING and reports and max(reports) < self.max_t:
            # A restored trial part way: it may wait for its judgement or have been stopped after the
            # state was stored, which is judged once every restored trial is added. Ray starts every
            # PENDING trial, so it waits PAUSED (choose_trial_to_run decides, and stops or starts it).
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if self._metric not in result:
            return self.CONTINUE
        report = int(result["training_iteration"])
        self.curves.setdefault(trial.trial_id, {})[report] = seed_values(result, self._metric)
        self._stop_waiting(tune_controller, reporting=trial)
        if self.stopped(trial.trial_id):
            return self.STOP
        return self.PAUSE if self.waiting(trial.trial_id) else self.CONTINUE

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._stop_waiting(tune_controller)
        ready = [t for t in tune_controller.get_trials() if t.status in (Trial.PENDING, Trial.PAUSED)
                 and not self.stopped(t.trial_id) and not self.waiting(t.trial_id)]
        return min(ready, key=creation_order, default=None)  # the earliest first: it unblocks the others

    def _stop_waiting(self, tune_controller, reporting: Trial | None = None) -> None:
        """Judges what can be judged now, then stops every paused or pending trial that a judgement
        stopped (the reporting trial gets STOP from on_trial_result instead)."""
        self.advance()
        for trial in tune_controller.get_trials():
            if (trial is not reporting and trial.status in (Trial.PAUSED, Trial.PENDING)
                    and self.stopped(trial.trial_id)):
                tune_controller.stop_trial(trial)
