"""Reads a finished, running or killed experiment folder, local or on a URI, into tidy pandas frames.

Only stored files are read, through store/experiment.py (the driver's tunelab_plan.json, each trial's
params.json and result.json); nothing is trained or started. A trial's rows appear as soon as it has
reported once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.rungs import rungs
from store import Location, locate
from store.experiment import PLAN_FILE, ExperimentFolder, NotAnExperiment, read_results
from store.lifecycle import interruption, rung_decisions

__all__ = ["PLAN_FILE", "Experiment", "NotAnExperiment", "load_experiment", "open_experiment", "read_results"]


@dataclass
class Experiment:
    path: Location
    """The experiment folder (`str(path)` is its local path or URI)."""
    trials: pd.DataFrame
    """One row per trial: config columns, `best_*` and `final_*` metrics, epochs, flags."""
    epochs: pd.DataFrame
    """One row per (trial, report): the learning curves."""
    config_keys: list[str]
    metric_keys: list[str]
    space: str | None = None
    """Name of the Space that made the folder (None when it cannot be told)."""
    plan: dict = field(default_factory=dict)
    """The driver's record of the search; empty for a folder made some other way."""
    metric: str = "val_acc"
    mode: str = "max"
    max_t: int | None = None
    reports_per_epoch: int = 1
    rungs: list[int] = field(default_factory=list)
    """ASHA's milestones (reports) at which it may stop a trial; empty for FIFO or unknown."""
    interrupted: dict | None = None
    """The mark a Ctrl-C left ({"interrupted": when, "resume": command}; store/lifecycle.py): partial
    results, no winner yet. None when the folder holds none."""
    decisions: list[dict] = field(default_factory=list)
    """The rung decisions the early-stopping scheduler recorded as it made them (store/lifecycle.py):
    what every reader says about a stop; empty for FIFO and PBT."""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def incomplete(self) -> list[str]:
        return self.trials.loc[~self.trials["complete"], "trial_id"].tolist()

    @property
    def seeds(self) -> int:
        """Seeds per configuration: distinct seeds across trials (1 when no trial sets one), times the
        seeds each trial trains in lockstep (its `seeds` key)."""
        distinct = int(self.trials["seed"].nunique()) if "seed" in self.trials else 1
        lockstep = int(self.trials["seeds"].max()) if "seeds" in self.trials else 1
        return distinct * lockstep

    def varied_keys(self) -> list[str]:
        """Config keys whose value differs between trials (the searched axes), seed excluded; under
        --scheduler pbt also `trial_id`: a member's config is a schedule (search/pbt.py), so every
        member is its own row, never averaged with another that happens to end on the same values."""
        keys = [k for k in self.config_keys if k != "seed" and k in self.trials
                and self.trials[k].astype(str).nunique() > 1]
        return keys + (["trial_id"] if self.plan.get("scheduler") == "pbt" else [])


def read_plan(path: str | Path | Location) -> dict:
    return ExperimentFolder(path).plan()


def load_experiment(path: str | Path | Location, metric: str = "val_acc", mode: str = "max",
                    max_t: int | None = None) -> Experiment:
    """`max_t`, when given, tells trials ASHA stopped (done before max_t) from running/killed ones."""
    folder = ExperimentFolder.open(path)
    trials = folder.trials()
    if not trials:
        kind = "an empty experiment" if folder.has_tune_state() else "not an experiment"
        raise NotAnExperiment(f"{folder} is {kind}: no trial folder with params.json")
    trial_rows, epoch_rows, config_keys, metric_keys = [], [], [], []
    statuses = folder.trial_statuses()
    # A synchronous scheduler stops losers while they wait, paused, at a rung. Experiments stored before
    # it stored them as TERMINATED (raycompat.StoresStoppedPausedTrials) keep them PAUSED, with no final
    # result: once nothing runs or waits to run, the search is over and a paused trial is one the
    # scheduler stopped (a killed search leaves trials RUNNING or PENDING).
    search_over = bool(statuses) and not {"RUNNING", "PENDING"} & set(statuses.values())
    # The synchronous schedulers record each stop as they make it (search/sync_halving.py), before
    # Ray's state says TERMINATED: a live page shows a stopped trial as stopped from that moment.
    decisions = _rung_decisions(folder)
    stopped = {t for decision in decisions for t in decision["stopped"]}
    for trial in trials:
        params = trial.params()
        results = trial.results()
        config_keys += [k for k in params if k not in config_keys]
        row = {"trial_id": trial.trial_id(results),
               "trial_dir": str(trial.loc), **params, "epochs_run": len(results)}
        for result in results:
            epoch_rows.append({"trial_id": row["trial_id"], **params,
                               **{k: v for k, v in result.items() if not isinstance(v, dict)}})
        if results:
            numeric = {k for k, v in results[-1].items() if isinstance(v, int | float)
                       and not isinstance(v, bool)}
            metric_keys += [k for k in sorted(numeric) if k not in metric_keys]
            best = (max if mode == "max" else min)(results, key=lambda r: r.get(metric, float("nan")))
            row.update({f"best_{k}": best[k] for k in numeric if k in best})
            row.update({f"final_{k}": results[-1][k] for k in numeric})
            status = statuses.get(row["trial_id"])
            ended = status == "TERMINATED" or (status == "PAUSED" and search_over)
            row["done"] = bool(results[-1].get("done", False)) or ended or row["trial_id"] in stopped
        else:
            row["done"] = False
        row["errored"] = statuses.get(row["trial_id"]) == "ERROR"
        trial_rows.append(row)
    if not epoch_rows:
        raise NotAnExperiment(f"{folder} is an empty experiment: none of its {len(trials)} trials "
                              "has reported")
    exp = Experiment(folder.loc, pd.DataFrame(trial_rows), pd.DataFrame(epoch_rows), config_keys, metric_keys,
                     metric=metric, mode=mode, interrupted=interruption(folder), decisions=decisions)
    mark_budget(exp, max_t)
    return exp


def mark_budget(exp: Experiment, max_t: int | None) -> None:
    """Flags each trial complete (done, or reached max_t) and, knowing max_t, stopped early by ASHA."""
    trials = exp.trials
    exp.max_t = max_t
    trials["complete"] = trials["done"] | (max_t is not None and trials["epochs_run"] >= (max_t or 0))
    # Ray marks the last result of a trial the scheduler stopped as done; a killed one is not.
    trials["stopped_early"] = trials["done"] & (max_t is not None and trials["epochs_run"] < (max_t or 0))


def open_experiment(path: str | Path | Location) -> Experiment:
    """load_experiment with the metric, mode and ASHA budget of the Space that made the folder.

    The Space comes from the driver's plan file, else from the default folder name
    `<space>__<profile>__<time>`, else from the trainable and the searched axes; failing all three,
    the folder is read as a generic val_acc search.
    """
    path = ExperimentFolder.open(path).loc
    plan = read_plan(path)
    exp = load_experiment(path)  # bad input fails here, before the registry imports Ray and torch
    from spaces import SPACES

    space = SPACES.get(plan.get("space") or path.name.split("__")[0]) or _guess_space(exp, SPACES.values())
    if space is not None and (space.metric, space.mode) != (exp.metric, exp.mode):
        exp = load_experiment(path, space.metric, space.mode)
    exp.plan = plan
    if space is None:
        return exp
    exp.space, exp.reports_per_epoch = space.name, space.reports_per_epoch
    epochs = plan.get("config", {}).get("epochs") or (
        exp.trials["epochs"].max() if "epochs" in exp.trials else getattr(space.config_cls(), "epochs", None))
    if epochs is not None:
        mark_budget(exp, int(epochs) * space.reports_per_epoch)
        exp.rungs = stored_rungs(plan) if "scheduler_settings" in plan else \
            _rungs_of_todays_space(plan, space, path, exp.max_t)
    return exp


def stored_rungs(plan: dict) -> list[int]:
    """The rungs (in reports) the search's scheduler ran with, as its plan stored them
    (SearchPlan.scheduler_settings); none for FIFO and PBT, which stop nothing at rungs."""
    settings = plan["scheduler_settings"]
    if "grace_period" not in settings:
        return []
    return rungs(settings["grace_period"], settings["reduction_factor"], settings["max_t"])


def _rungs_of_todays_space(plan: dict, space, path: Location, max_t: int) -> list[int]:
    """An experiment stored before its plan held the scheduler's settings: the rungs its profile has
    today."""
    profile = space.profiles.get(plan.get("profile") or (path.name.split("__") + [""])[1])
    if plan.get("scheduler", "asha") in ("fifo", "pbt") or profile is None:
        return []
    return rungs(min(profile.grace_period, max_t), space.reduction_factor, max_t)


def _rung_decisions(folder: ExperimentFolder) -> list[dict]:
    """The stored rung decisions; none when the record is damaged (`--resume` refuses it, a reader
    goes on with Ray's state alone)."""
    try:
        return rung_decisions(folder)
    except NotAnExperiment:
        return []


def _guess_space(exp: Experiment, spaces):
    """The one Space whose trainable wrote these trial folders and whose grid axes were searched."""
    folder = locate(exp.trials["trial_dir"].iloc[0]).name
    varied = set(exp.varied_keys())
    candidates = [s for s in spaces if folder.startswith(s.trainable.split(":")[1] + "_")
                  and set(s.grid) - {"seed"} <= varied]
    return candidates[0] if len(candidates) == 1 else None
