"""The one module that reads and writes an experiment folder, local or on a URI.

An experiment folder is what Ray Tune writes under `<storage>/<name>/`, plus the driver's plan:

    tunelab_plan.json                      the search (space, profile, config, grid...): search/resume.py
    <trial>/params.json                    the trial's config
    <trial>/result.json                    one JSON line per report (metrics, epoch, checkpoint_dir_name)
    <trial>/checkpoint_NNNNNN/state.pt     the kept checkpoints: the best by the space's metric, and the
                                           latest (CheckpointConfig(num_to_keep=1) keeps both until the
                                           latest is the best); every one under --scheduler pbt
    pbt_global.txt                         --scheduler pbt: Ray's record of every exploit (search/pbt.py)

Resume, the kd teacher lookup, the teacher-logit cache, the report, evaluate and the notebooks all
read through here, so "the best checkpoint" means the same everywhere: the kept checkpoint whose
reported metric is best, matched by the checkpoint_dir_name Ray records in the result row.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from store.alignment import align_csv, align_json_lines
from store.fs import Location, StorageError, locate

PLAN_FILE = "tunelab_plan.json"
"""The driver's record of the search (search/resume.py): space, profile, config, grid, searcher."""
STATE_FILE = "state.pt"
"""A checkpoint's state (trainables/reporting.py writes it): model, optimizer, RNG state, config."""
PBT_GLOBAL_FILE = "pbt_global.txt"
"""Ray's PopulationBasedTraining record of every exploit, one JSON list per line (search/pbt.py)."""
METRICS_FILE = "metrics.json"
"""Beside it: the metrics the trial reported with it, so a checkpoint whose result row never reached
the store still says which report it is (store/recovery.py)."""


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

    def trial_id(self, rows: list[dict] | None = None) -> str:
        """Ray's trial id: from its result rows (`rows`, else read), else from the folder name
        (<trainable>_<id>_<n>_<params>_<date>) of a trial that has not reported yet or whose rows
        store/recovery.py rebuilt from a checkpoint's own metrics."""
        rows = self.results() if rows is None else rows
        found = next((str(r["trial_id"]) for r in rows if r.get("trial_id")), None)
        named = re.search(r"_([0-9a-f]{5}_\d{5})_", self.name)
        return found or (named.group(1) if named else self.name)

    def schedule(self, keys: list[str]) -> list[tuple[int, dict]]:
        """(report, {key: value}) per result row, in the order written: the config values the trial
        trained each report with (Ray stores the config in every row; PBT changes it mid-trial)."""
        return [(int(row.get("training_iteration", n)), {k: (row.get("config") or {}).get(k) for k in keys})
                for n, row in enumerate(self.results(), 1)]

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

    @classmethod
    def open(cls, where: str | Path | Location) -> ExperimentFolder:
        """The existing folder at `where`: NotAnExperiment, in one line, when the store does not
        answer, or nothing is there, or it is a file (the report, evaluate, the notebooks and --resume
        all open an experiment this way)."""
        try:
            folder = cls(where)
            folder.loc.check_reachable()
            if not folder.loc.is_dir():
                raise NotAnExperiment(f"{folder} is not a folder")
        except StorageError as err:
            raise NotAnExperiment(str(err)) from None
        return folder

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

    def _state_trials(self) -> list[tuple[dict, dict]]:
        """(trial, run metadata) per trial of the newest experiment_state file; [] without one."""
        states = sorted((f for f in self.loc.list_files() if f.name.startswith("experiment_state-")),
                        key=lambda f: f.name)  # experiment_state-<time>.json: by name is by time
        if not states:
            return []
        try:
            found = [tuple(json.loads(x) if isinstance(x, str) else x for x in t[:2])
                     for t in json.loads(states[-1].read_text()).get("trial_data", [])]
        except (json.JSONDecodeError, AttributeError, TypeError, OSError):
            return []
        return [(t, m) for t, m in found if isinstance(t, dict) and isinstance(m, dict)]

    def pbt_exploits(self) -> list[dict]:
        """Ray's PBT record (pbt_global.txt), one dict per exploit in the order they happened: `trial_id`
        went on from `parent_id`'s checkpoint of report `parent_report`, with `config`; `report` is
        the target's report at that round (search/pbt.py has Ray's record name both members' reports
        as the round filed them).
        Ray's line names trials by experiment tag, whose leading number is the index that ends the
        trial id (<prefix>_<index:05d>). [] for a search without exploits."""
        earlier = sorted((f for f in self.loc.list_files() if re.fullmatch(r"pbt_global\.\d+\.txt", f.name)),
                         key=lambda f: int(f.name.split(".")[1]))
        files = earlier + [f for f in [self.loc / PBT_GLOBAL_FILE] if f.is_file()]
        if not files:
            return []
        ids = {}
        for trial in self.trials():
            rows = trial.results()
            if rows and "trial_id" in rows[0]:
                ids[int(str(rows[0]["trial_id"]).rsplit("_", 1)[-1])] = str(rows[0]["trial_id"])
        events = []
        for file in files:
            for n, line in enumerate(file.read_text().splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    # A tag is "<index>_<values>", or "<index>@perturbed[...]" once a search is resumed.
                    target, parent, report, parent_report, _, config = json.loads(line)
                    target_index = int(re.match(r"\d+", target).group())
                    parent_index = int(re.match(r"\d+", parent).group())
                except (json.JSONDecodeError, ValueError, TypeError, AttributeError):
                    raise NotAnExperiment(f"{file} line {n} is not a PBT record") from None
                events.append({"trial_id": ids.get(target_index, target), "report": int(report),
                               "parent_id": ids.get(parent_index, parent),
                               "parent_report": int(parent_report), "config": config})
        # A resume makes again a round whose exploits the killed driver had made but no member had
        # reported after (search/pbt.py SyncedPBT.waiting): the same exploits, listed twice.
        seen, once = set(), []
        for event in events:
            if (event["trial_id"], event["parent_report"]) not in seen:
                seen.add((event["trial_id"], event["parent_report"]))
                once.append(event)
        return once

    def keep_pbt_record(self) -> str | None:
        """Before a resume: a resumed driver starts Ray's pbt_global.txt afresh and its upload replaces
        the stored one, so the killed driver's record moves to pbt_global.<n>.txt (n = 1, 2, ...), which
        pbt_exploits reads first. Returns the new name, or None when there was no record."""
        file = self.loc / PBT_GLOBAL_FILE
        if not file.is_file():
            return None
        n = 1
        while (self.loc / f"pbt_global.{n}.txt").exists():
            n += 1
        kept = self.loc / f"pbt_global.{n}.txt"
        kept.write_text(file.read_text())
        file.delete()
        return kept.name

    def trial_statuses(self) -> dict[str, str]:
        """trial_id -> Ray's status (TERMINATED, ERROR, PAUSED, RUNNING, PENDING) from the newest
        experiment_state file; {} without one. A trial a synchronous scheduler stopped while it was
        paused at a rung wrote no final `done` result: only this status says it ended."""
        return {str(t.get("trial_id")): str(t.get("status")) for t, _ in self._state_trials()}

    def missing_checkpoints(self) -> list[tuple[str, str]]:
        """(trial folder, checkpoint) for each unfinished trial whose checkpoint the newest state would
        resume it from is not on the storage. Every tunelab report carries a checkpoint, so that is
        the one its last result names."""
        missing = []
        for trial, meta in self._state_trials():
            folder = trial.get("relative_logdir")
            name = (meta.get("last_result") or {}).get("checkpoint_dir_name")
            ended = trial.get("status") == "TERMINATED"
            if folder and name and not ended and not (self.loc / folder / name / STATE_FILE).is_file():
                missing.append((folder, name))
        return missing

    def align_results_with_state(self) -> list[str]:
        """Makes each trial's result.json and progress.csv end at the report the experiment state
        resumes it from; returns one line per trial whose earlier reports are lost for good.

        Ray uploads the driver's files one by one in the background (docs/storage.md §4), so a driver
        killed mid-upload can leave a state at report N beside a result file that ends at N-1 (the
        resumed trial would go on at N+1 and N would be missing) or at N+1 (re-run from N's checkpoint,
        it would appear twice). Every tunelab report carries a checkpoint, so the state's last result
        is the one the trial resumes after: later rows are dropped, and a missing row N is written back
        from the state's own copy of it. Call it before `Tuner.restore`, after
        store.recovery.repair_missing_checkpoints (a state naming a deleted checkpoint is repaired
        first, so its last result is the report the trial really resumes after)."""
        lost = []
        for trial, meta in self._state_trials():
            last, folder = meta.get("last_result") or {}, trial.get("relative_logdir")
            if not folder or not isinstance(last.get("training_iteration"), int):
                continue
            # As Ray's loggers wrote it: the state's copy turns `done` True as the trial ends, and
            # carries the experiment_tag the logged rows lack.
            last = {**{k: v for k, v in last.items() if k != "experiment_tag"}, "done": False}
            for file, align in (("result.json", align_json_lines), ("progress.csv", align_csv)):
                loc = self.loc / folder / file
                text = loc.read_text() if loc.is_file() else ""
                aligned, missing = align(text, last)
                if aligned != text:
                    loc.write_text(aligned)
                if missing:
                    reports = ", ".join(map(str, missing))
                    lost.append(f"{folder}/{file}: reports {reports} were lost with the killed driver's "
                                "upload (its checkpoints are intact)")
        return lost

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
    found = [ExperimentFolder(d) for d in loc.list_dirs()
             if not d.name.startswith(".")]  # a new experiment's plan in the making (store/lifecycle.py)
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
