"""An experiment's life outside Ray's own files: created whole with its plan, marked when a Ctrl-C
stopped it, cleared for a fresh start when its driver was killed before Ray stored any state.

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

from store.experiment import PLAN_FILE, ExperimentFolder
from store.fs import Location, StorageError
from store.lease import LEASE_FILE

INTERRUPTED_FILE = "tunelab_interrupted.json"
"""Written when a Ctrl-C stopped the search: when, and the `--resume` command that continues it. The
resume removes it as it starts, so a folder holding it is an interrupted search, never a finished one."""


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
