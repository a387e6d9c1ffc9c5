"""An experiment's life outside Ray's own files: created whole with its plan, cleared for a fresh
start when its driver was killed before Ray stored any state.

Both leave the folder, at any moment a kill may stop them, in a state the next driver handles: no
folder, or a folder with its whole plan (a clear cut short is cleared again by the next `--resume`).
"""

from __future__ import annotations

import os
import uuid

from pyarrow import fs as pafs

from store.experiment import PLAN_FILE, ExperimentFolder
from store.fs import Location, StorageError
from store.lease import LEASE_FILE


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

