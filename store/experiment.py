"""The one module that reads and writes an experiment folder, local or on a URI.

An experiment folder is what Ray Tune writes under `<storage>/<name>/`, plus the driver's plan:

    tunelab_plan.json                      the search (space, profile, config, grid...): search/resume.py
    <trial>/params.json                    the trial's config
    <trial>/result.json                    one JSON line per report (metrics, epoch, checkpoint_dir_name)
    <trial>/checkpoint_NNNNNN/state.pt     the kept checkpoints: the best by the space's metric, and the
                                           latest (CheckpointConfig(num_to_keep=1) keeps both until the
                                           latest is the best)

Resume, the kd teacher lookup, the teacher-logit cache, the report, evaluate and the notebooks all
read through here, so "the best checkpoint" means the same everywhere: the kept checkpoint whose
reported metric is best, matched by the checkpoint_dir_name Ray records in the result row.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from store.fs import Location, locate

PLAN_FILE = "tunelab_plan.json"
"""The driver's record of the search (search/resume.py): space, profile, config, grid, searcher."""
STATE_FILE = "state.pt"
"""A checkpoint's one file (trainables/report.py writes it): model, optimizer, RNG state, config."""


class NotAnExperiment(ValueError):
    """The folder is not a Ray Tune experiment, is empty, or holds a corrupt file."""


def read_results(loc: Location) -> list[dict]:
    """One dict per report. A last line without its newline is a report being written right now
    (or cut by a kill) and is left out; any other line that is not JSON makes the file corrupt."""
    if not loc.is_file():
        return []
    text = loc.read_text()
    lines = text.splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) and not text.endswith("\n"):
                break
            raise NotAnExperiment(f"{loc} line {n} is not valid JSON (corrupt result file)") from None
        if not isinstance(row, dict):
            raise NotAnExperiment(f"{loc} line {n} is not a result object (corrupt result file)")
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Trial:
    loc: Location

    @property
    def name(self) -> str:
        return self.loc.name

    def params(self) -> dict:
        try:
            return json.loads((self.loc / "params.json").read_text())
        except json.JSONDecodeError:
            raise NotAnExperiment(f"{self.loc / 'params.json'} is not valid JSON") from None

    def results(self) -> list[dict]:
        return read_results(self.loc / "result.json")

    def checkpoints(self) -> list[Location]:
        """The kept checkpoint folders that hold a state.pt."""
        return [d for d in self.loc.list_dirs()
                if d.name.startswith("checkpoint_") and (d / STATE_FILE).is_file()]

    def best_checkpoint(self, metric: str = "val_acc", mode: str = "max",
                        results: list[dict] | None = None) -> tuple[float, Location, dict] | None:
        """(metric, folder, result row) of the best kept checkpoint; None when none is kept or reported.

        Each kept folder is matched to the row that reported it (Ray's checkpoint_dir_name; after a
        retry the later row). Among equal metrics the later report wins, as Ray's manager keeps it."""
        rows = {r["checkpoint_dir_name"]: r for r in (results if results is not None else self.results())
                if r.get("checkpoint_dir_name") and isinstance(r.get(metric), int | float)}
        kept = [(rows[c.name][metric], rows[c.name].get("training_iteration", 0), c)
                for c in self.checkpoints() if c.name in rows]
        if not kept:
            return None
        sign = 1 if mode == "max" else -1
        value, _, folder = max(kept, key=lambda k: (sign * k[0], k[1]))
        return value, folder, rows[folder.name]


class ExperimentFolder:
    """`<storage>/<name>` on any store; nothing is read until asked."""

    def __init__(self, where: str | Path | Location):
        self.loc = locate(where)

    def __str__(self) -> str:
        return self.loc.uri

    @property
    def name(self) -> str:
        return self.loc.name

    @property
    def storage(self) -> Location:
        return self.loc.parent

    def plan(self) -> dict:
        """The driver's plan ({} for a folder made some other way)."""
        file = self.loc / PLAN_FILE
        if not file.is_file():
            return {}
        try:
            plan = json.loads(file.read_text())
        except json.JSONDecodeError:
            raise NotAnExperiment(f"{file} is not valid JSON") from None
        return plan if isinstance(plan, dict) else {}

    def has_plan(self) -> bool:
        return (self.loc / PLAN_FILE).is_file()

    def save_plan(self, record: dict) -> Location:
        file = self.loc / PLAN_FILE
        file.write_text(json.dumps(record, indent=2) + "\n")
        return file

    def space(self) -> str | None:
        """The space that made it: by its plan, else by the default name <space>__<profile>__<time>."""
        try:
            return self.plan().get("space") or self.name.split("__")[0]
        except NotAnExperiment:
            return None

    def trials(self) -> list[Trial]:
        """The trial folders (those holding params.json), by name."""
        return [Trial(d) for d in self.loc.list_dirs() if (d / "params.json").is_file()]

    def has_tune_state(self) -> bool:
        return any(f.name.startswith("experiment_state-") for f in self.loc.list_files())

    def trial_statuses(self) -> dict[str, str]:
        """trial_id -> Ray's status (TERMINATED, ERROR, PAUSED, RUNNING, PENDING) from the newest
        experiment_state file; {} without one. A trial a synchronous scheduler stopped while it was
        paused at a rung wrote no final `done` result: only this status says it ended."""
        states = sorted((f for f in self.loc.list_files() if f.name.startswith("experiment_state-")),
                        key=lambda f: f.name)  # experiment_state-<time>.json: by name is by time
        if not states:
            return {}
        try:
            trials = json.loads(states[-1].read_text()).get("trial_data", [])
            found = [json.loads(t[0]) if isinstance(t[0], str) else t[0] for t in trials]
        except (json.JSONDecodeError, AttributeError, IndexError, TypeError, OSError):
            return {}
        return {str(t.get("trial_id")): str(t.get("status")) for t in found if isinstance(t, dict)}

    def last_write(self) -> float:
        """When anything in it was last written: its plan or a trial's results (object stores keep
        times on files only)."""
        files = [self.loc / PLAN_FILE] + [t.loc / "result.json" for t in self.trials()]
        times = [t for t in (f.mtime() for f in files if f.exists()) if t is not None]
        own = self.loc.mtime()
        return max(times + ([own] if own is not None else []), default=0.0)

    def best_checkpoint(self, metric: str | None = None, mode: str | None = None,
                        accept: Callable[[dict], bool] | None = None
                        ) -> tuple[float, Location, Trial, dict] | None:
        """(metric, checkpoint folder, trial, result row) of the best kept checkpoint of every trial
        whose params `accept` takes; metric and mode default to the plan's space's (else val_acc, max)."""
        if metric is None:
            metric, mode = self.plan().get("metric", "val_acc"), self.plan().get("mode", "max")
        mode = mode or "max"
        best = None
        for trial in self.trials():
            try:
                if accept is not None and not accept(trial.params()):
                    continue
                found = trial.best_checkpoint(metric, mode)
            except (OSError, NotAnExperiment):
                continue  # a trial being written, killed before its first checkpoint, or corrupt
            if found is None:
                continue
            better = best is None or (found[0] > best[0] if mode == "max" else found[0] < best[0])
            if better:
                best = (found[0], found[1], trial, found[2])
        return best


def experiments(storage: str | Path | Location, space: str | None = None) -> list[ExperimentFolder]:
    """The experiment folders in a storage (of one space, when given), the most recently written first."""
    loc = locate(storage)
    found = [ExperimentFolder(d) for d in loc.list_dirs()]
    found = [e for e in found if space is None or e.space() == space]
    return sorted(found, key=lambda e: e.last_write(), reverse=True)


def checkpoint_folder(where: str | Path | Location) -> Location:
    """The folder holding state.pt, given that folder, the state.pt file, or a trial folder (its best
    kept checkpoint by the experiment's metric). FileNotFoundError when there is none."""
    loc = locate(where)
    if loc.name == STATE_FILE and loc.is_file():
        return loc.parent
    if (loc / STATE_FILE).is_file():
        return loc
    if (loc / "params.json").is_file():
        plan = ExperimentFolder(loc.parent).plan()
        best = Trial(loc).best_checkpoint(plan.get("metric", "val_acc"), plan.get("mode", "max"))
        if best is not None:
            return best[1]
    raise FileNotFoundError(f"no checkpoint ({STATE_FILE}) at {loc}")


def local_checkpoint(where: str | Path | Location) -> Path:
    """A local folder with the checkpoint's state.pt: the folder itself on a local store; on a URI, a
    copy downloaded once per machine into the temp folder (keyed by the URI and the file's mtime)."""
    folder = checkpoint_folder(where)
    if folder.local:
        return Path(folder.path)
    key = hashlib.sha256(f"{folder.base}@{(folder / STATE_FILE).mtime()}".encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "tunelab-checkpoints" / key
    if not (target / STATE_FILE).is_file():
        partial = target.with_name(f"{key}.{os.getpid()}.tmp")
        partial.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(folder.path, str(partial), source_filesystem=folder.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        try:
            os.replace(partial, target)
        except OSError:  # another process put the same copy there first
            shutil.rmtree(partial, ignore_errors=True)
    return target
