"""Resuming a killed search: the plan is stored with the experiment, and a resume must not change it.

A search is identified by its space, profile, fixed config, grid and searcher. `--resume` continues
exactly that search with `Tuner.restore`: finished trials are kept as they are, unfinished and
errored ones continue from their last checkpoint. Changing the search is a new experiment. The
experiment may be a local folder or a URI (`--resume s3://bucket/prefix/<name>?…`): the plan is read
and written through store/experiment.py, and Ray restores from the same address.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from analysis.rungs import trial_count
from cli import UsageError
from raycompat import restored_run_config, restored_tune_config
from search.checks import format_objectives
from search.plan import SearchPlan
from spaces import get_space
from store import Location, StorageError, locate
from store.experiment import PLAN_FILE, ExperimentFolder, NotAnExperiment
from store.lease import Lease
from store.lifecycle import clear_for_restart, clear_interrupted, create, mark_interrupted
from store.recovery import (
    OPTUNA_STATE,
    check_resumable,
    cut_searcher_state,
    repair_missing_checkpoints,
    repair_searcher_state,
    resume_summary,
)

# The fields that define *which* search runs; resources, storage and name may differ on resume.
IDENTITY = ("space", "profile", "config", "grid", "scheduler", "smoothing", "alpha", "search", "num_samples",
            "objectives", "questions", "space_questions")
NOT_STORED = ("callbacks", "storage", "name", "max_concurrent")


def plan_record(plan: SearchPlan) -> dict[str, Any]:
    """The plan as plain JSON data (the space by name), with the rule and every setting its scheduler
    runs with (SearchPlan.scheduler_settings)."""
    record = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan) if f.name not in NOT_STORED}
    record["space"] = plan.space.name
    record["scheduler_settings"] = plan.scheduler_settings()
    return json.loads(json.dumps(record))


def stored_plan(plan: SearchPlan, provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan as stored: with the space's metric and mode so that readers below the spaces layer
    (store/experiment.py: the best checkpoint) rank trials as the search did, and the run's
    provenance (search/provenance.py: code, packages, nodes) when given."""
    record = {**plan_record(plan), "metric": plan.space.metric, "mode": plan.space.mode}
    if provenance is not None:
        record["provenance"] = provenance
    return json.loads(json.dumps(record))


def start_search(plan: SearchPlan, provenance: dict[str, Any], lease: Lease) -> str | None:
    """A new search's first writes: its plan, whole, as the first thing in its folder
    (store/lifecycle.py), so that a driver killed from then on leaves a search `--resume` runs; then
    the lease (store/lease.py), whose line it returns. On an object store two drivers that start at
    the same moment may both write a plan before the lease decides between them: the one that goes
    on writes its own again."""
    record = stored_plan(plan, provenance)
    folder = ExperimentFolder(plan.experiment_dir)
    create(folder, record)
    took_over = lease.acquire()
    if folder.plan() != record:
        folder.save_plan(record)
    return took_over


def load_plan(experiment: str | Location) -> SearchPlan:
    """The stored plan of an experiment folder; UsageError when the folder is not a tunelab experiment."""
    try:
        folder = ExperimentFolder.open(experiment)
        if not folder.has_plan():
            raise UsageError(f"--resume: {folder} is not a tunelab experiment (no {PLAN_FILE})")
        text = (folder.loc / PLAN_FILE).read_text()
        check_resumable(folder, json.loads(text))
    except (StorageError, OSError, NotAnExperiment) as err:
        raise UsageError(f"--resume: {err}") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"--resume: {folder.loc / PLAN_FILE} is unreadable ({err})") from None
    try:
        record = json.loads(text)
        record["space"] = get_space(record["space"])
        # The plan also records facts about the run (metric, provenance) that are not SearchPlan fields.
        known = {f.name for f in dataclasses.fields(SearchPlan)} - set(NOT_STORED)
        record = {k: v for k, v in record.items() if k in known}
        return SearchPlan(**record, storage=folder.storage, name=folder.name)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UsageError(f"--resume: {folder.loc / PLAN_FILE} is unreadable ({err})") from None


# Flags that say where and how a search runs, not which search it is.
NOT_THE_SEARCH = {"resume", "dashboard", "wandb", "ray_temp_dir", "address", "storage", "name",
                  "cpus_per_trial", "gpus_per_trial", "list", "view", "report_serve"}


def changes_search(args: argparse.Namespace) -> bool:
    """Whether the command line names anything about the search beyond `--resume` (flags it gives, not
    the parser's defaults: `--profile demo` is a choice even though demo is the default)."""
    return bool(set(args.given) - NOT_THE_SEARCH)


def _named(record: dict[str, Any], key: str) -> Any:
    """A plan record's value of what a flag names: a plan field, the seeds, or a config key."""
    if key in IDENTITY:
        return record[key]
    if key == "seeds":  # an axis of trials, or seeds trained together in one trial (none: one seed)
        return record["grid"].get("seed"), record["config"].get("seeds") or 1
    return record["grid"].get(key, record["config"].get(key))


def resume_plan(args: argparse.Namespace) -> SearchPlan:
    """The stored plan, after checking that the command line (if it names a search) asks for the same."""
    from search.options import build_plan

    try:
        stored = load_plan(locate(args.resume))
    except StorageError as err:
        raise UsageError(f"--resume: {err}") from None
    if not changes_search(args):
        return stored
    # What the command line does not name is the stored search's, not the parser's default; the
    # command line itself stays as given.
    stored_values = {"space": stored.space.name, "profile": stored.profile, "scheduler": stored.scheduler,
                     "search": stored.search, "num_samples": stored.num_samples,
                     "objectives": format_objectives(stored.objectives), "questions": stored.questions,
                     "space_questions": stored.space_questions,
                     "seeds": stored.config.get("seeds") or len(stored.grid.get("seed", [0]))}
    asked_args = argparse.Namespace(**{**vars(args), **{k: v for k, v in stored_values.items()
                                                          if k not in args.given}})
    asked_args.storage = str(stored.storage)  # Space.prepare may resolve paths against the storage
    asked_plan = build_plan(asked_args)
    asked = plan_record(asked_plan)
    kept = plan_record(stored)
    for record in (asked, kept):  # the trial's threads follow --cpus-per-trial, which may change
        record["config"].pop("cpus", None)
    named = [k for k in (*IDENTITY, "seeds") if k in args.given] + asked_plan.pinned
    for key in named:
        mine, theirs = _named(asked, key), _named(kept, key)
        if mine != theirs:
            what = f"grid axis {key}" if key in asked["grid"] or key in kept["grid"] else key
            raise UsageError(f"--resume: {what} differs from the experiment's ({_short(mine)} vs "
                             f"{_short(theirs)}); change the search in a new experiment (--name)")
    return stored


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def unfinished_search(plan: SearchPlan) -> str | None:
    """After `fit()` returned: the `--resume` command that continues the search when it did not finish
    (a Ctrl-C stopped it: the stored experiment state holds a trial neither TERMINATED nor ERROR, or
    fewer trials than the plan asks for), once recorded in its folder (store/lifecycle.py) for the
    summary and the report; None when every trial finished."""
    folder = ExperimentFolder(plan.experiment_dir)
    statuses = folder.trial_statuses()
    planned = planned_trials(plan)
    if len(statuses) >= planned and set(statuses.values()) <= {"TERMINATED", "ERROR"}:
        return None
    command = f"python search/run.py --resume {plan.experiment_dir.uri}"
    mark_interrupted(folder, command)
    return command


def planned_trials(plan: SearchPlan) -> int:
    """How many trials the search makes: one per sample for Optuna and PBT, else the grid's cells
    and baselines, num_samples times."""
    return (plan.num_samples if plan.search == "optuna" or plan.scheduler == "pbt"
            else trial_count(plan.grid, plan.space.baselines, plan.num_samples))


def repair_optuna_state(folder: ExperimentFolder, plan: SearchPlan) -> list[str]:
    """Rebuilds an Optuna search's searcher state when a kill inside Ray's upload cut it short, once the
    stored state holds every one of its trials (store/recovery.py cut_searcher_state): the plan's
    searcher, having proposed each stored trial's config in the order they were made and been told
    the result of each that ended, is what was lost (no proposal is left to make). Returns the line
    that says so ([] when nothing was cut)."""
    from raycompat import rebuilt_optuna_state
    from search.tuner import make_searcher

    cut = cut_searcher_state(folder, OPTUNA_STATE, plan.num_samples)
    if cut is None:
        return []
    def made(trial: dict) -> int:  # Ray's experiment tag starts with the trial's number
        return int(str(trial.get("experiment_tag", "0")).split("_")[0])

    stored = sorted(folder._state_trials(), key=lambda tm: made(tm[0]))
    trials = [(str(t["trial_id"]), t["config"], str(t.get("status")), m.get("last_result") or {})
              for t, m in stored]
    names = [name for name, _ in plan.objectives] or plan.space.metric
    modes = [mode for _, mode in plan.objectives] or plan.space.mode
    cut.write_bytes(rebuilt_optuna_state(make_searcher(plan), plan.param_space(), names, modes, trials))
    return [f"{cut.name} (the Optuna searcher's state) was cut short by the kill; rebuilt from the "
            f"{len(trials)} trials it had proposed"]


def restore_tuner(plan: SearchPlan, shipment: Any = None):
    """`Tuner.restore` of the plan's experiment: keeps finished trials, resumes the rest. Every trial
    requests the plan's resources, which `--cpus-per-trial`/`--gpus-per-trial` may have changed
    (search/resources.py); restored trials take them, and the data `shipment`, from the trainable
    given here. First a trial whose stored state names a checkpoint Ray already deleted is pointed at
    the newest one that survives (or restarts from scratch), then each trial's result files are cut
    back to, or completed up to, the report the state resumes it from (a driver killed during Ray's
    upload leaves them a report apart; docs/storage.md §4). A search stopped before Ray stored any
    state starts from the beginning, in the same folder, as a new one."""
    from ray import tune

    from search.halving import SmoothedASHA
    from search.mo_halving import MultiObjectiveHalving
    from search.pbt import pbt_scheduler
    from search.status import progress_reporter
    from search.sync_halving import SyncRungs
    from search.tuner import build_tuner, make_scheduler, trainable_for
    from search.wilcoxon import WilcoxonStopping

    folder = ExperimentFolder(plan.experiment_dir)
    try:  # first: a searcher state that cannot be rebuilt is refused before anything is written
        searcher = [] if not folder.has_tune_state() else repair_optuna_state(folder, plan) \
            if plan.search == "optuna" else repair_searcher_state(folder, planned_trials(plan))
    except NotAnExperiment as err:
        raise UsageError(f"--resume: {err}") from None
    clear_interrupted(folder)  # from here on it is running again
    if not folder.has_tune_state():  # killed before Ray stored a state: there is nothing to restore
        removed = clear_for_restart(folder)
        print("resume: the search was stopped before Ray stored its state; it starts from the beginning"
              + (f" (removed what it left: {', '.join(removed)})" if removed else ""), flush=True)
        return build_tuner(plan, shipment)
    if plan.scheduler == "pbt" and (kept := folder.keep_pbt_record()):
        print(f"resume: the exploits so far stay in {kept} (Ray starts pbt_global.txt afresh)", flush=True)
    for line in searcher + repair_missing_checkpoints(folder) + folder.align_results_with_state():
        print(f"resume: {line}", file=sys.stderr, flush=True)
    for line in resume_summary(folder):
        print(f"resume: {line}", flush=True)
    tuner = tune.Tuner.restore(plan.experiment_dir.uri, trainable_for(plan, shipment), resume_unfinished=True,
                               resume_errored=True)
    # The status table of a fresh run (grid columns, no config and result box per trial, no TensorBoard
    # line into Ray's temp folder): Ray restores the RunConfig from tuner.pkl, but the output engine
    # it picks is read from the environment at fit(), which progress_reporter sets.
    restored_run_config(tuner).progress_reporter = progress_reporter(plan)
    scheduler = make_scheduler(plan)
    if isinstance(scheduler, MultiObjectiveHalving):  # Ray would restore it with empty rungs
        scheduler.resume_from(folder)
        restored_tune_config(tuner).scheduler = scheduler
        recorded = ", ".join(f"epoch {r}: {len(points)}" for r, points in scheduler.recorded.items())
        print(f"resume: moasha's rungs go on with the reports stored there ({recorded})", flush=True)
    if isinstance(scheduler, SmoothedASHA):  # likewise
        counts = scheduler.resume_from(folder, plan.space.metric, plan.space.mode)
        restored_tune_config(tuner).scheduler = scheduler
        per = plan.space.reports_per_epoch
        rungs = ", ".join(f"epoch {m / per:g}: {n}" for m, n in sorted(counts.items()))
        print(f"resume: asha's rungs go on with the reports stored there ({rungs})", flush=True)
    if isinstance(scheduler, SyncRungs):
        # Ray restores the scheduler pickled at the start, without its rungs: a fresh one goes on from
        # the decisions and curves the experiment stored, so paused trials wait for the same cohorts.
        scheduler.resume_from(folder)
        restored_tune_config(tuner).scheduler = scheduler
        decided = ", ".join(f"epoch {d['rung']}: {len(d['stopped'])} stopped" for d in scheduler.decisions)
        print(f"resume: {plan.scheduler}'s rungs go on from what was stored "
              f"({decided or 'none decided yet'})", flush=True)
    if isinstance(scheduler, WilcoxonStopping):  # likewise: Ray's pickle holds no reports
        reached = scheduler.resume_from(folder)
        restored_tune_config(tuner).scheduler = scheduler
        print(f"resume: wilcoxon judges again from the reports stored there ({reached} trial(s) reached "
              f"the budget; waves of {scheduler.wave})", flush=True)
    if plan.scheduler == "pbt":
        # The same trap for synchronous PBT (every member PAUSED, waiting for a round that never comes):
        # a fresh one takes over, filed with the report each member resumes after: the state's last
        # result, with its checkpoint (repaired and aligned above). Not the stored rows' last: on S3 a
        # row can reach the store before the state that names its checkpoint, and a member Ray restarts
        # from scratch, filed as standing at the round, had no checkpoint to be cloned from.
        resumes_after = {str(t["trial_id"]): m["last_result"] for t, m in folder._state_trials()
                         if isinstance((m.get("last_result") or {}).get("training_iteration"), int)
                         and m["last_result"].get("checkpoint_dir_name")}
        scheduler = restored_tune_config(tuner).scheduler = pbt_scheduler(plan, resumes_after)
        if scheduler.waiting:
            report = next(iter(scheduler.waiting.values()))["training_iteration"]
            print(f"resume: pbt goes on with its round at report {report}, where {len(scheduler.waiting)} "
                  f"member(s) stood at the kill and wait for the others", flush=True)
    return tuner
