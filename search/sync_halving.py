"""`--scheduler halving` and `--scheduler significance`: one synchronous bracket whose rung decisions
are the pure rules of analysis/rungs.py, kept as data with the experiment so that a resumed search
goes on with them.

A trial that reaches a rung pauses there (its checkpoint kept) until every trial of the rung's cohort
has reached it: the first rung's cohort is every trial of the search, a later rung's is what the rung
before kept. Then the rule decides at once for the whole cohort, in the trials' creation order (ties
break as in the replay of bench/bench_asha_fidelity.py), and the decision is written to the
experiment folder (store/lifecycle.py, `tunelab_rungs.json`) before any trial is stopped or resumed.
No trial goes on because it arrived first, so the decisions are the pure rule's.

The scheduler's whole state is the trials' curves and those decisions. `--resume` rebuilds it from
what the experiment stored (`resume_from`): the rungs decided stay decided, a trial they stopped
stays stopped, a trial that had reached a rung still open waits there for its cohort again, and a
rung whose cohort had all reported when the driver was killed is decided on the first step. So a
resumed search makes exactly the unkilled search's decisions (training is deterministic).
"""

from __future__ import annotations

import math

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from analysis.rungs import check_alpha, decide_rung, is_kept, rungs, smoothed, top
from raycompat import StoresStoppedPausedTrials
from store.experiment import ExperimentFolder
from store.fs import Location
from store.lifecycle import rung_decisions, save_rung_decisions

Curves = dict[str, dict[int, tuple[float, list[float]]]]
"""trial id -> report -> (the reported metric, the metric of each seed: one value for a single seed)."""


def seed_values(result: dict, metric: str) -> list[float]:
    """A report's metric for each seed: a lockstep trial's `<metric>_seed<s>` values, else the metric."""
    prefix = f"{metric}_seed"
    seeds = sorted(int(k[len(prefix):]) for k in result if k.startswith(prefix) and k[len(prefix):].isdigit())
    return [float(result[f"{prefix}{s}"]) for s in seeds] if seeds else [float(result[metric])]


class DecidingScheduler(StoresStoppedPausedTrials, FIFOScheduler):
    """What tunelab's own deciding schedulers (SyncRungs, search/wilcoxon.py) share: they stop and pause
    trials themselves, on the values of one metric, seed by seed, that the trials report."""

    _supports_buffered_results = False  # a trial must stop at the report decided, not a few reports later

    def __init__(self, metric: str | None, mode: str):
        super().__init__()
        self._metric, self._mode = metric, mode
        self.configs: dict[str, dict] = {}
        """trial id -> config, of every trial added (a restored one too)."""
        self.gone: set[str] = set()
        """Trials that ended in ERROR: out of every decision still open."""

    def set_search_properties(self, metric: str | None, mode: str | None, **spec) -> bool:
        if metric and self._metric and metric != self._metric:
            return False
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self.configs[trial.trial_id] = dict(trial.config)
        self.gone.discard(trial.trial_id)  # a trial Ray retries after an error comes back

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self.gone.add(trial.trial_id)

    def debug_string(self) -> str:
        return ""  # tunelab's closing summary says what early stopping did


class SyncRungs(DecidingScheduler):
    """One synchronous bracket over `trials` trials at the rungs grace_period × reduction_factor^k below
    max_t; `rule` names the decision (halving or significance). The kept arms (a Space's baselines and
    every arm of a study question: SearchPlan.kept) always go on; their results still count."""

    def __init__(self, rule: str, trials: int, grace_period: int, reduction_factor: int, max_t: int,
                 alpha: float | None = None, smoothing: float = 0.0, kept: tuple[dict, ...] = (),
                 record: Location | None = None, metric: str | None = None, mode: str = "max"):
        super().__init__(metric, mode)
        if rule not in ("halving", "significance"):
            raise ValueError(f"unknown rung rule {rule!r}")
        self.rule, self.trials, self.max_t = rule, trials, max_t
        self.grace_period, self.reduction_factor = grace_period, reduction_factor
        self.alpha = check_alpha(alpha) if rule == "significance" else None
        self.smoothing, self.kept = smoothing, kept
        self.rungs = rungs(grace_period, reduction_factor, max_t)
        self.record = record
        """The experiment folder the decisions are written to (None: kept in memory only)."""
        self.curves: Curves = {}
        self.decisions: list[dict] = []
        """One record per decided rung, in rung order (see `_decide`)."""
        self._stopped: dict[str, int] = {}
        self._stopped_at = 0
        self._unsettled = True
        """Whether a decision (or a restore) may have left a paused or pending trial to stop."""

    # --- the state, as data ---------------------------------------------------------------------

    def stopped(self) -> dict[str, int]:
        """trial id -> the rung a decision stopped it at (kept up to date as decisions are added: the
        driver asks on every step)."""
        if self._stopped_at != len(self.decisions):  # decisions are only ever appended
            self._stopped_at = len(self.decisions)
            self._stopped = {t: d["rung"] for d in self.decisions for t in d["stopped"]}
        return self._stopped

    def cohort(self, index: int) -> list[str] | None:
        """The trials the rung `index` decides over, in creation order (trial ids sort so); None while the
        first rung's cohort is not yet all added."""
        if index == 0:
            return sorted(self.configs) if len(self.configs) >= self.trials else None
        return list(self.decisions[index - 1]["kept"])

    def waiting_at(self, trial_id: str) -> int | None:
        """The undecided rung the trial has reached and waits at, None when it may train on."""
        reports = self.curves.get(trial_id)
        last = max(reports) if reports else 0
        return last if last in self.rungs[len(self.decisions):] else None

    def resume_from(self, folder: ExperimentFolder) -> None:
        """The state of the search stored in `folder`: its decisions and every trial's stored reports
        (after store/recovery.py aligned the result files with Ray's state)."""
        self.decisions = rung_decisions(folder)
        self._unsettled = True
        for trial in folder.trials():
            rows = trial.results()
            trial_id = trial.trial_id(rows)
            for row in rows:
                if self._metric in row and isinstance(row.get("training_iteration"), int):
                    self.curves.setdefault(trial_id, {})[row["training_iteration"]] = \
                        (float(row[self._metric]), seed_values(row, self._metric))

    # --- Ray's calls ----------------------------------------------------------------------------

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        if trial.status == Trial.PENDING and (self.waiting_at(trial.trial_id) is not None
                                             or trial.trial_id in self.stopped()):
            # A restored trial that had reached an open rung, or that a decision stopped after the
            # state was stored: Ray starts every PENDING trial, so it waits PAUSED for the decision
            # (Ray files the trial under its status after this call).
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        if self._metric not in result:
            return self.CONTINUE
        at = int(result["training_iteration"])
        self.curves.setdefault(trial.trial_id, {})[at] = (float(result[self._metric]),
                                                          seed_values(result, self._metric))
        if trial.trial_id in self.stopped():
            return self.STOP
        if at not in self.rungs:
            return self.CONTINUE
        self._settle(tune_controller, reporting=trial)
        if trial.trial_id in self.stopped():
            return self.STOP
        return self.PAUSE if self.waiting_at(trial.trial_id) is not None else self.CONTINUE

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        # A rung whose cohort had all reported before a restore (or before a trial of it errored) is
        # decided here, on the driver's next step.
        self._settle(tune_controller)
        stopped = self.stopped()
        ready = [t for t in tune_controller.get_trials() if t.status in (Trial.PENDING, Trial.PAUSED)
                 and t.trial_id not in stopped and self.waiting_at(t.trial_id) is None]
        # PENDING before PAUSED, each in creation order
        return min(ready, key=lambda t: (t.status != Trial.PENDING, t.trial_id), default=None)

    # --- decisions ------------------------------------------------------------------------------

    def _settle(self, tune_controller, reporting: Trial | None = None) -> None:
        """Decides every rung whose cohort has all reported, then stops every paused or pending trial a
        decision stopped (the reporting trial gets STOP from on_trial_result instead)."""
        while len(self.decisions) < len(self.rungs):
            cohort = self.cohort(len(self.decisions))
            rung = self.rungs[len(self.decisions)]
            alive = [t for t in cohort or [] if t not in self.gone]
            if cohort is None or not all(rung in self.curves.get(t, {}) for t in alive):
                break
            self.decisions.append(self._decide(rung, alive))
            self._unsettled = True
            if self.record is not None:  # written before any trial acts on it
                save_rung_decisions(ExperimentFolder(self.record), self.decisions)
        if not self._unsettled:
            return
        self._unsettled = False
        stopped = self.stopped()
        for trial in tune_controller.get_trials():
            if trial is not reporting and trial.trial_id in stopped and trial.status in (Trial.PAUSED,
                                                                                         Trial.PENDING):
                tune_controller.stop_trial(trial)

    def _decide(self, rung: int, alive: list[str]) -> dict:
        """The rule's decision at `rung` over the trials `alive` (creation order), as the record kept
        with the experiment: the quota, the signal each trial was judged on, what went on and what
        stopped (with why), and for significance the noise estimate."""
        quota = self.trials
        for _ in range(len(self.decisions) + 1):
            quota = math.ceil(quota / self.reduction_factor)  # as successive halving counts it
        kept = frozenset(t for t in alive if is_kept(self.configs.get(t, {}), self.kept))
        reports = {t: [self.curves[t][r] for r in sorted(self.curves[t]) if r <= rung] for t in alive}
        record = {"rung": rung, "rule": self.rule, "quota": quota, "smoothing": self.smoothing}
        if self.rule == "significance":
            per_seed = {t: [list(c) for c in zip(*(seeds for _, seeds in reports[t]), strict=True)]
                        for t in alive}
            keep, stopped, noise = decide_rung(per_seed, rung, quota, self.alpha, self.smoothing, self._mode,
                                               kept)
            signal = {t: sum(smoothed(s, self.smoothing)[-1] for s in per_seed[t]) / len(per_seed[t])
                      for t in alive}
            sigma = noise.sigma if math.isfinite(noise.sigma) else None  # JSON has no NaN
            record.update(alpha=self.alpha, noise={"sigma": sigma, "df": noise.df, "source": noise.source})
        else:  # successive halving ranks the reported metric (a lockstep trial's mean over seeds)
            signal = {t: smoothed([value for value, _ in reports[t]], self.smoothing)[-1] for t in alive}
            keep = top(signal, quota, self._mode) | kept
            stopped = {t: "quota" for t in alive if t not in keep}
        record.update(signal=signal, kept=[t for t in alive if t in keep], stopped=stopped,
                      protected=sorted(kept))
        return record


def sync_halving(trials: int, grace_period: int, reduction_factor: int, max_t: int, smoothing: float = 0.0,
                 kept: tuple[dict, ...] = (), **where) -> SyncRungs:
    """Synchronous successive halving: at each rung the top ceil(n / reduction_factor) by the smoothed
    metric go on, with every kept arm (analysis.rungs.successive_halving). `where`: SyncRungs' record,
    metric and mode."""
    return SyncRungs("halving", trials, grace_period, reduction_factor, max_t, None, smoothing, kept, **where)


def significance(trials: int, grace_period: int, reduction_factor: int, max_t: int, alpha: float,
                 smoothing: float = 0.0, kept: tuple[dict, ...] = (), **where) -> SyncRungs:
    """Synchronous significance halving (analysis.rungs.significance_halving): a trial stops at a rung
    only when its mean over seeds is significantly below the quota's cutoff or the leader."""
    return SyncRungs("significance", trials, grace_period, reduction_factor, max_t, alpha, smoothing, kept,
                     **where)
