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
"""The rung decisions of the early-stopping schedulers: a version line, then one JSON line per decision,
the file written whole (store/fs.py: a rename or one PUT) before any trial acts on the decision.
`halving` and `significance` decide a whole rung at once (one line per rung); `asha` and `moasha`
judge each trial as it reaches a rung (one line per trial and rung, with the evidence it was judged
on). Not `.json`: Ray's restore copies every top-level .json and .pkl file of the experiment into its
driver's staging folder and uploads them back from there as the search runs, which would put back the
decisions as they stood at the restore."""
RUNG_KEYS = {"rung": int, "rule": str, "kept": list, "stopped": dict, "signal": dict}
"""Every decision's keys: the rung (in reports), the rule, the trials that went on, those stopped (trial
id -> why), and the value each trial was judged on."""
RULE_KEYS = {"halving": {"quota": int}, "significance": {"quota": int},
             "asha": {"trial": str, "recorded": int}, "moasha": {"trial": str, "recorded": int},
             "pbt": {"trial": str, "clone": str, "bottom": list, "top": list},
             "wilcoxon": {"trial": str, "pairs": int, "p": float, "worse": bool}}
"""What each rule adds: a synchronous rule the quota of its rung; an asynchronous one the trial it judged
and how many trials the rung had recorded before it; pbt, for each exploit at a report (`rung`), the
member that exploited, the member it cloned, and the bottom and top members it was ranked among (each
member's last score in `signal`); wilcoxon, the trial judged at a report, the pairs it was compared on
with the best completed trial (`reference`) and the test's p."""


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
    """Writes the decisions whole, replacing the record."""
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
            isinstance(d, dict) and d.get("rule") in RULE_KEYS
            and all(isinstance(d.get(k), t) for k, t in {**RUNG_KEYS, **RULE_KEYS[d["rule"]]}.items())
            for d in decisions):
        raise NotAnExperiment(f"{file} is not a version-1 record of rung decisions (damaged, or written by "
                              "another tunelab): the rung decisions cannot be restored")
    return decisions


class DecisionLog:
    """An asynchronous rule's judgements, kept with the experiment as they are made: one per trial and
    rung (a judgement made again after a resume replaces the one before), the record written whole
    after each, before the trial acts on it. `record` is the experiment folder (None: kept in memory
    only); a Location, as the scheduler that holds the log is pickled with the search."""

    def __init__(self, record: Location | None = None):
        self.record = record
        self.decisions: list[dict] = []

    def load(self, folder: ExperimentFolder) -> None:
        """Goes on with the judgements `folder` stored (NotAnExperiment when they are damaged)."""
        self.decisions = rung_decisions(folder)

    def has(self, trial: str, rung: int) -> bool:
        """Whether a judgement of `trial` at `rung` is kept."""
        return any(d.get("trial") == trial and d["rung"] == rung for d in self.decisions)

    def add(self, decision: dict) -> None:
        self.decisions = [d for d in self.decisions
                          if (d.get("trial"), d["rung"]) != (decision["trial"], decision["rung"])]
        self.decisions.append(decision)
        if self.record is not None:
            save_rung_decisions(ExperimentFolder(self.record), self.decisions)
