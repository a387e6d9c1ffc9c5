"""An experiment's life outside Ray's own files: created whole with its plan, marked when a Ctrl-C
stopped it, cleared for a fresh start when its driver was killed before Ray stored any state, and the
rung decisions of its synchronous scheduler (search/sync_halving.py), which a resume goes on with.

Each leaves the folder, at any moment a kill may stop it, in a state the next driver handles: no
folder, or a folder with its whole plan (a clear cut short is cleared again by the next `--resume`);
the mark is one whole file.
"""

from __future__ import annotations

import json
import os
import time
import uuid

from pyarrow import fs as pafs

from store.experiment import PLAN_FILE, ExperimentFolder, NotAnExperiment
from store.fs import Location, StorageError
from store.lease import LEASE_FILE

INTERRUPTED_FILE = "tunelab_interrupted.json"
"""Written when a Ctrl-C stopped the search: when, and the `--resume` command that continues it. The
resume removes it as it starts, so a folder holding it is an interrupted search, never a finished one."""

RUNGS_FILE = "tunelab_rungs.jsonl"
"""The rung decisions of `--scheduler halving` and `significance`: a version line, then one JSON line per
decided rung, written whole (store/fs.py: a rename or one PUT) before any trial acts on the decision.
Not `.json`: Ray's restore copies every top-level .json and .pkl file of the experiment into its
driver's staging folder and uploads them back from there as the search runs, which would put back the
decisions as they stood at the restore."""
RUNG_KEYS = {"rung": int, "rule": str, "quota": int, "kept": list, "stopped": dict, "signal": dict}


def create(folder: ExperimentFolder, record: dict) -> Location:
    """Creates the experiment with its plan `record` as the first thing in it, whole, so that a driver
    killed at any moment leaves either nothing or a search `--resume` runs. On a local or NFS folder the
    plan goes into a hidden folder beside it, renamed into place (rename(2): atomic, and refused when
    another driver made the folder meanwhile); on an object store the plan's PUT makes the folder.
    StorageError, nothing written, when the experiment exists."""
    taken = StorageError(f"experiment {folder} already exists; pick another --name")
    if folder.loc.exists():
        raise taken
    if not folder.loc.local:
        return folder.save_plan(record)
    hidden = ExperimentFolder(folder.storage / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    hidden.save_plan(record)
    try:
        folder.loc.fs.move(hidden.loc.path, folder.loc.path)
    except OSError:
        hidden.loc.fs.delete_dir(hidden.loc.path)
        raise taken from None
    return folder.loc / PLAN_FILE


def clear_for_restart(folder: ExperimentFolder) -> list[str]:
    """Removes what a driver killed before Ray stored its experiment state left beside the plan and the
    lease (Ray's `tuner.pkl`, a trial's first files or checkpoints): Ray cannot resume any of it, and a
    fresh start must not find trials of another run. Returns the names removed."""
    removed = []
    for info in folder.loc.children():
        if info.base_name in (PLAN_FILE, LEASE_FILE):
            continue
        if info.type == pafs.FileType.Directory:
            folder.loc.fs.delete_dir(info.path)
        else:
            folder.loc.fs.delete_file(info.path)
        removed.append(info.base_name)
    return sorted(removed)


def mark_interrupted(folder: ExperimentFolder, command: str) -> None:
    """Records that a Ctrl-C stopped the search, and the command that continues it."""
    (folder.loc / INTERRUPTED_FILE).write_text(json.dumps(
        {"interrupted": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resume": command}) + "\n")


def interruption(folder: ExperimentFolder) -> dict | None:
    """The mark of a search a Ctrl-C stopped ({"interrupted": when, "resume": command}; {} when it is
    unreadable); None when there is none (a finished search, one still running, or one killed without the
    chance to say so)."""
    file = folder.loc / INTERRUPTED_FILE
    if not file.is_file():
        return None
    try:
        found = json.loads(file.read_text())
    except json.JSONDecodeError:
        return {}
    return found if isinstance(found, dict) else {}


def clear_interrupted(folder: ExperimentFolder) -> None:
    """Removes the mark: the resume that continues the search starts."""
    file = folder.loc / INTERRUPTED_FILE
    if file.is_file():
        file.delete()


def save_rung_decisions(folder: ExperimentFolder, decisions: list[dict]) -> None:
    lines = [{"version": 1}, *decisions]
    (folder.loc / RUNGS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))


def rung_decisions(folder: ExperimentFolder) -> list[dict]:
    """The stored rung decisions, in rung order ([] before the first); NotAnExperiment (one line) when
    the file is damaged or of another version, so that `--resume` refuses before writing anything."""
    file = folder.loc / RUNGS_FILE
    if not file.is_file():
        return []
    try:
        header, *decisions = [json.loads(line) for line in file.read_text().splitlines()]
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise NotAnExperiment(f"{file} is not valid JSON lines (damaged): the rung decisions cannot be "
                              "restored") from None
    if header != {"version": 1} or not all(
            isinstance(d, dict) and all(isinstance(d.get(k), t) for k, t in RUNG_KEYS.items())
            for d in decisions):
        raise NotAnExperiment(f"{file} is not a version-1 record of rung decisions (damaged, or written by "
                              "another tunelab): the rung decisions cannot be restored")
    return decisions
