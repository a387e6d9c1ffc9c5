"""Resuming a killed search: the plan is stored with the experiment, and a resume must not change it.

A search is identified by its space, profile, fixed config, grid and searcher. `--resume` continues
exactly that search with `Tuner.restore`: finished trials are kept as they are, unfinished and
errored ones continue from their last checkpoint. Changing the search is a new experiment.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from search.tuner import SearchPlan
from spaces import UsageError, get_space

PLAN_FILE = "tunelab_plan.json"
# The fields that define *which* search runs; resources, storage and name may differ on resume.
IDENTITY = ("space", "profile", "config", "grid", "scheduler", "search", "num_samples")
NOT_STORED = ("callbacks", "storage", "name")


def plan_record(plan: SearchPlan) -> dict[str, Any]:
    """The plan as plain JSON data (the space by name)."""
    record = {f.name: getattr(plan, f.name) for f in dataclasses.fields(plan) if f.name not in NOT_STORED}
    record["space"] = plan.space.name
    return json.loads(json.dumps(record))


def save_plan(plan: SearchPlan) -> Path:
    plan.experiment_dir.mkdir(parents=True, exist_ok=True)
    path = plan.experiment_dir / PLAN_FILE
    path.write_text(json.dumps(plan_record(plan), indent=2) + "\n")
    return path


def load_plan(experiment: Path) -> SearchPlan:
    """The stored plan of an experiment folder; UsageError when the folder is not a tunelab experiment."""
    from ray import tune

    if not experiment.is_dir():
        raise UsageError(f"--resume: {experiment} is not a folder")
    if not (experiment / PLAN_FILE).is_file():
        raise UsageError(f"--resume: {experiment} is not a tunelab experiment (no {PLAN_FILE})")
    if not tune.Tuner.can_restore(str(experiment)):
        raise UsageError(f"--resume: {experiment} holds no Ray Tune state (stopped before it started); "
                         "start a new experiment")
    try:
        record = json.loads((experiment / PLAN_FILE).read_text())
        record["space"] = get_space(record["space"])
        return SearchPlan(**record, storage=experiment.parent, name=experiment.name)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise UsageError(f"--resume: {experiment / PLAN_FILE} is unreadable ({err})") from None


# Flags that say where and how a search runs, not which search it is.
NOT_THE_SEARCH = {"resume", "dashboard", "wandb", "ray_temp_dir", "address", "storage", "name",
                  "cpus_per_trial", "gpus_per_trial", "list", "view"}


def changes_search(args: argparse.Namespace) -> bool:
    """Whether the command line says anything about the search beyond `--resume`."""
    from search.options import make_parser

    parser = make_parser()
    return any(value != parser.get_default(key) for key, value in vars(args).items()
               if key not in NOT_THE_SEARCH)


def resume_plan(args: argparse.Namespace) -> SearchPlan:
    """The stored plan, after checking that the command line (if it names a search) asks for the same."""
    from search.options import build_plan

    stored = load_plan(Path(args.resume).resolve())
    if not changes_search(args):
        return stored
    if not args.space:
        args.space = stored.space.name
    args.storage = str(stored.storage)  # Space.prepare may resolve paths against the storage
    asked = plan_record(build_plan(args))
    kept = plan_record(stored)
    for key in IDENTITY:
        if asked[key] != kept[key]:
            raise UsageError(f"--resume: {key} differs from the experiment's ({_short(asked[key])} vs "
                             f"{_short(kept[key])}); change the search in a new experiment (--name)")
    return stored


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def restore_tuner(plan: SearchPlan):
    """`Tuner.restore` of the plan's experiment: keeps finished trials, resumes the rest."""
    from ray import tune

    trainable = tune.with_resources(plan.space.load_trainable(), {"cpu": plan.cpus, "gpu": plan.gpus})
    return tune.Tuner.restore(str(plan.experiment_dir), trainable, resume_unfinished=True,
                              resume_errored=True)
