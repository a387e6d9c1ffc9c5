"""`--scheduler pbt`: Ray's PopulationBasedTraining over a Space's perturbable keys (`Space.perturb`),
and the schedules it leaves behind.

A population of `--num-samples` members (the space's `population` by default) trains one
configuration; only the perturbable keys differ. Member i starts at the i-th of n log-spaced points of
each key's range, the keys' orders shuffled by the config's seed (a Latin hypercube on the log scale):
diverse and reproducible. After every report, a member in the bottom quarter of the population's latest
scores exploits one of the top quarter: it takes that member's exact checkpoint (model, optimizer, LR
schedule, RNG: trainables/loop.py, trainables/finetune.py) and its config, then explores: each key is
multiplied by 0.8 or 1.2, or resampled log-uniformly with probability 0.25, and clamped into its range.
The trainable restarts from the copied state with the explored config: its rates are made the restored
schedule's base rates (trainables.loop.rebase_rates), the KD loss is built from the new temperature
and w_st. Which member is cloned and how values move are Ray's draws: each round draws them from a
generator seeded by the search's seed and the round's report, over the members in the order the
search created them (`SyncedPBT`), so a search run twice makes the same exploits, whichever member
reported last, and a resumed one makes the round the kill interrupted as the unkilled search did.

The record: every result row carries the config the member trained that report with (Ray's
`config` in result.json), and Ray's `pbt_global.txt` lists every exploit; analysis/lineage.py reads
both through store/experiment.py and tells each member's schedule.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.experiment import Trial
from ray.tune.schedulers import PopulationBasedTraining

from analysis.lineage import schedule_lines
from raycompat import (
    StoresStoppedPausedTrials,
    next_pbt_round,
    pbt_last_report,
    pbt_reported,
    pbt_standing,
    require,
    set_next_pbt_round,
    showing_filed_results,
    store_with_next_state,
)
from search.halving import creation_order
from search.plan import PBT_SETTINGS, SearchPlan
from store.experiment import ExperimentFolder
from store.lifecycle import DecisionLog


def initial_population(perturb: dict[str, tuple[float, float]], members: int, seed: int) -> list[dict]:
    """Each member's starting values: per key, a permutation (by `seed`; the first key in order) of the
    `members` points lo·(hi/lo)^((j + 0.5)/members), j = 0..members-1."""
    rng = random.Random(seed)
    orders = {}
    for n, key in enumerate(perturb):
        order = list(range(members))
        if n:
            rng.shuffle(order)
        orders[key] = order
    return [{key: lo * (hi / lo) ** ((orders[key][i] + 0.5) / members) for key, (lo, hi) in perturb.items()}
            for i in range(members)]


@dataclass(frozen=True)
class Clamp:
    """PBT's custom_explore_fn: Ray's ×0.8/×1.2 may leave a key's range; the value is put back at the
    nearest bound. (A class, not a closure: Ray pickles the scheduler with the search.)"""

    ranges: dict[str, tuple[float, float]]

    def __call__(self, config: dict) -> dict:
        for key, (lo, hi) in self.ranges.items():
            config[key] = min(max(float(config[key]), lo), hi)
        return config


@dataclass(frozen=True)
class LogUniform:
    """A key's resample distribution, log-uniform over [lo, hi]: drawn from the module `random`, which
    a round seeds (`seeded`); Ray's own loguniform draws from numpy's global generator instead."""

    lo: float
    hi: float

    def __call__(self) -> float:
        return math.exp(random.uniform(math.log(self.lo), math.log(self.hi)))


@contextmanager
def seeded(seed: str):
    """The module `random` seeded with `seed` inside, its state as it was outside. Ray's PBT draws whom
    to clone and how to explore from it, on the driver's thread."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


class SyncedPBT(StoresStoppedPausedTrials, require("PopulationBasedTraining")):
    """Ray's synchronous PBT that uploads the experiment before it restarts a paused member, and leaves
    the last report alone. PBT pauses every member at every report; a restarted member's logger copies
    its result.json back from the storage (docs/storage.md §4), so rows written since the last upload
    were lost (a fast lora smoke member lost its first row). A pbt search keeps every checkpoint (a
    clone may take a checkpoint its parent has left behind: search/tuner.py), so Ray's own upload after
    each checkpoint, which CheckpointConfig(num_to_keep=1) gives the other schedulers, is off. A member
    stopped while paused is stored as TERMINATED (raycompat.StoresStoppedPausedTrials)."""

    last_report = 0
    """The budget's last report: a member that makes it ends there, so it neither exploits nor is ranked
    (an exploit then would give it a config it never trains with, which its params.json would show)."""

    seed = 0
    """The search's seed: a round at report r draws from `random` seeded by (seed, r)."""

    def on_trial_result(self, tune_controller, trial, result):
        report = result.get("training_iteration", 0)
        if self.last_report and report >= self.last_report:
            return self.CONTINUE
        # The round runs inside the call of the member that reports last: its draws depend only on the
        # round, and the members' order (_quantiles) only on the order the search created them.
        with seeded(f"tunelab-pbt/{self.seed}/{report}"):
            return super().on_trial_result(tune_controller, trial, result)

    def _quantiles(self):
        # Ray ranks the members with a stable sort of its own table, built in the order trials were
        # added (a restore adds them newest first): ties, and so the draws, follow creation order.
        self._trial_state = dict(sorted(self._trial_state.items(), key=lambda kv: creation_order(kv[0])))
        return super()._quantiles()

    log: DecisionLog | None = None
    """Where each exploit is recorded (store/lifecycle.py), before the member clones the other."""

    def _exploit(self, tune_controller, trial, trial_to_clone):
        if self.log is not None:
            report, bottom, top, scores = pbt_standing(self, trial)
            self.log.add({"rung": report, "rule": "pbt", "trial": trial.trial_id,
                          "clone": trial_to_clone.trial_id, "kept": [], "stopped": {}, "signal": scores,
                          "bottom": bottom, "top": top, "settings": PBT_SETTINGS})
        return super()._exploit(tune_controller, trial, trial_to_clone)

    def _log_config_on_step(self, trial_state, new_state, trial, trial_to_clone, new_config):
        # The record names both members' reports as the round filed them, whichever member reported
        # last: analysis/lineage.py matches a clone's segment to its parent's report by them.
        with showing_filed_results(self, trial, trial_to_clone):
            super()._log_config_on_step(trial_state, new_state, trial, trial_to_clone, new_config)

    waiting: dict | None = None
    """A resume's members that Ray resumes after the report of the round it goes on with: trial id ->
    their result there (the stored state's last result). Each waits PAUSED, filed with that report,
    for the members behind it; when none is behind (the kill came after the round's last report,
    before its exploits were stored), the round is made on the driver's first step, as the unkilled
    search made it."""

    def on_trial_add(self, tune_controller, trial):
        super().on_trial_add(tune_controller, trial)
        row = (self.waiting or {}).get(trial.trial_id)
        if row is not None and trial.status in (Trial.PENDING, Trial.PAUSED):
            pbt_reported(self, trial, row)
            trial.set_status(Trial.PAUSED)  # Ray starts every PENDING trial; this one waits for the round

    def choose_trial_to_run(self, tune_controller):
        live = tune_controller.get_live_trials()
        # A member paused at a round was stored without the checkpoint of that report (Ray stores a
        # trial's change only while it has an actor), and a resume would find no checkpoint to clone.
        store_with_next_state(tune_controller, [t for t in live if t.status == Trial.PAUSED])
        due = next_pbt_round(self)
        if self.waiting and live and all(t.status == Trial.PAUSED and pbt_last_report(self, t)[0] >= due
                                         for t in live):
            # Every member stands at the round and none reports again before it: make it now, as the
            # member that reported last would have (the round ranks and draws the same whoever it is).
            last = max(live, key=creation_order)
            self.on_trial_result(tune_controller, last, pbt_last_report(self, last)[1])
            self.waiting = None
        chosen = super().choose_trial_to_run(tune_controller)
        if chosen is not None and chosen.status == Trial.PAUSED:
            tune_controller.checkpoint(force=True, wait=True)
        return chosen


def pbt_scheduler(plan: SearchPlan, resumes_after: dict[str, dict] | None = None) -> PopulationBasedTraining:
    """Exploit and explore after every report (half an epoch for lora, an epoch for kd), once the whole
    population has made it. `resumes_after`: a resume's scheduler, given the result each member
    resumes after (search/resume.py); its first round is at the furthest member's report (before the
    budget's last), which the members there wait at (SyncedPBT.waiting)."""
    perturb = plan.space.perturb
    scheduler = SyncedPBT(
        time_attr="training_iteration",
        perturbation_interval=PBT_SETTINGS["perturbation_interval"],
        hyperparam_mutations={k: LogUniform(lo, hi) for k, (lo, hi) in perturb.items()},
        quantile_fraction=PBT_SETTINGS["quantile_fraction"],
        resample_probability=PBT_SETTINGS["resample_probability"],
        perturbation_factors=tuple(PBT_SETTINGS["perturbation_factors"]),
        custom_explore_fn=Clamp(dict(perturb)),
        # Synchronous: every member reaches the report, then the bottom quarter exploits the top one.
        # Ray's asynchronous PBT ranks each member's latest report against the others' latest, which
        # may be of other epochs (unequal budgets ranked as equals), and a top member that was not on
        # top when it last reported has no checkpoint to clone, so exploits depend on arrival order.
        synch=True,
    )
    scheduler.last_report, scheduler.seed = plan.max_t, int(plan.config.get("seed", 0))
    scheduler.log = DecisionLog(plan.experiment_dir)
    if resumes_after:
        scheduler.log.load(ExperimentFolder(plan.experiment_dir))
        # In a synchronous population no member passes a report before the round there is made, so the
        # furthest member's report is the round to make: those there wait for the others. Ray's round
        # is due at _next_perturbation_sync (a fresh scheduler's is 1).
        furthest = max(int(row["training_iteration"]) for row in resumes_after.values())
        if furthest < plan.max_t:
            scheduler.waiting = {t: row for t, row in resumes_after.items()
                                 if row["training_iteration"] == furthest}
            set_next_pbt_round(scheduler, furthest)
        else:  # the budget's last report makes no round
            set_next_pbt_round(scheduler, furthest + 1)
    return scheduler


def pbt_searcher(plan: SearchPlan):
    """Hands member i its starting values (initial_population), one member per sample."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    start = initial_population(plan.space.perturb, plan.num_samples, int(plan.config.get("seed", 0)))
    return BasicVariantGenerator(points_to_evaluate=start)


def pbt_param_space(plan: SearchPlan) -> dict[str, Any]:
    """The plan's config and grid with every perturbable key as its range; the searcher's points set
    each member's start."""
    return {**plan.param_space(),
            **{k: tune.loguniform(lo, hi) for k, (lo, hi) in plan.space.perturb.items()}}


def summary_lines(plan: SearchPlan, crowned: tuple[str, int, float] | None) -> list[str]:
    """The closing summary's PBT part (analysis/lineage.py), ending with the `crowned` member."""
    space = plan.space
    return schedule_lines(plan.experiment_dir, list(space.perturb), space.metric, space.mode,
                          space.reports_per_epoch, crowned)
