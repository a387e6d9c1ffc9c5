"""Killing a driver at a stored-state moment, as the kill-and-resume tests and bench/bench_kill_sweep.py do.

A moment is a condition on what the storage holds (the experiment state and the trials' progress.csv
rows), never a wall-clock delay, so a loaded machine moves the kill but never lets it miss its case.
The driver runs in its own session (setsid); the kill ends that session and only it: the driver, the
local Ray it started and every Ray worker of that Ray (they keep the driver's session id).
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.env import KILL_TEST_ENV, OFFLINE_ENV, ROOT
from store.experiment import ExperimentFolder


def start_driver(*args: str, env: dict | None = None, log: Path | None = None) -> subprocess.Popen:
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, str(ROOT / "search" / "run.py"), *args], cwd=ROOT,
                            env={**os.environ, **OFFLINE_ENV, **KILL_TEST_ENV, **(env or {})},
                            start_new_session=True, stdout=out, stderr=subprocess.STDOUT)


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def kill_session(sid: int) -> None:
    """SIGKILLs every process of the session `sid` (a driver started by start_driver), and only those."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


LEFT_GRACE_S = 45.0
"""How long a killed search's Ray processes may take to notice and end. Most end within a second or
two; the slowest is a worker its raylet launched just before the kill: it finishes its imports, then
tries the killed GCS for 15 s (Ray's GCS client) before it gives up, some 20-25 s on a loaded 2-core
machine (py-spy showed it waiting in ray._private.node.Node.__init__)."""


def kill_driver(driver: subprocess.Popen) -> list[str]:
    """SIGKILL of the driver's process group, as a user's kill -9 -PGID; returns what of its session
    still ran LEFT_GRACE_S later (its local Ray's processes are in groups of their own), and SIGKILLs
    that, so that nothing of it runs on while the test resumes the experiment."""
    try:
        os.killpg(driver.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    driver.wait()
    deadline = time.monotonic() + LEFT_GRACE_S
    while session_pids(driver.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = []
    for pid in session_pids(driver.pid):
        try:
            left.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200])
        except OSError:
            pass
    kill_session(driver.pid)
    return [name for name in left if name]  # a zombie's cmdline is empty: it has ended


def stored_rows(folder: ExperimentFolder) -> dict[str, list[dict]]:
    """progress.csv rows of each trial as the storage holds them now (a file being written: its
    complete lines)."""
    rows = {}
    for trial in folder.trials():
        try:
            text = (trial.loc / "progress.csv").read_text()
        except OSError:
            continue
        lines = text.splitlines(keepends=True)
        complete = "".join(line for line in lines if line.endswith("\n"))
        rows[trial.name] = list(csv.DictReader(io.StringIO(complete)))
    return rows


def unfinished(folder: ExperimentFolder) -> list[str]:
    """Trial ids the stored experiment state does not record as TERMINATED."""
    return [tid for tid, status in folder.trial_statuses().items() if status != "TERMINATED"]


def newest_state_name(folder: ExperimentFolder) -> str | None:
    """The newest experiment_state file's name: a restored search saves its state under a new one."""
    from store.recovery import newest_state

    state = newest_state(folder) if folder.loc.exists() else None
    return state.name if state is not None else None


def kill_at(driver: subprocess.Popen, folder: ExperimentFolder, rows: int, after: str | None = None,
            timeout: float = 300, ctrl_c: bool = False) -> tuple[int, list[str]]:
    """Kills the driver as soon as the storage holds a Ray state newer than `after` (a state file
    name: for a resumed driver, the one it started from) with an unfinished trial, and at least `rows`
    progress rows in all; returns the rows stored at the kill and what of the killed search still ran
    after the grace (kill_driver). `ctrl_c`: a terminal's Ctrl-C instead (SIGINT to the driver's
    process group), after which the driver is given 120 s to stop the search itself. AssertionError
    when the driver ends first or the moment never comes."""
    deadline = time.time() + timeout
    stored = None
    try:
        while stored is None and time.time() < deadline and driver.poll() is None:
            state = newest_state_name(folder)
            if state is not None and state != after and unfinished(folder):
                rows_now = sum(len(r) for r in stored_rows(folder).values())
                stored = rows_now if rows_now >= rows else None
            time.sleep(0.05 if stored is None else 0)
        if stored is not None and ctrl_c:
            os.killpg(driver.pid, signal.SIGINT)
            driver.wait(timeout=120)
    finally:
        left = kill_driver(driver)
    if stored is None:
        raise AssertionError(f"the moment '{rows} rows stored' never came "
                             f"(driver status {driver.returncode})")
    return stored, left


def fake_upload_window(folder: ExperimentFolder, restart: bool) -> str | None:
    """Leaves the storage as a driver killed inside Ray's upload window does (docs/storage.md §4), for
    one unfinished trial: its stored state names a checkpoint that is gone. `restart` False: the state
    and the result files are one report behind, naming the previous checkpoint, deleted; the newer
    checkpoint is stored, its row is not. `restart` True: every checkpoint of the trial is deleted.
    Returns the trial's folder; None when no unfinished trial has the reports for it now."""
    import json

    from store.experiment import Trial
    from store.recovery import _pickle, _unpickle, newest_state

    state_file = newest_state(folder)
    state = json.loads(state_file.read_text())
    for entry in state["trial_data"]:
        trial_json, meta = json.loads(entry[0]), json.loads(entry[1])
        trial = Trial(folder.loc / trial_json["relative_logdir"])
        last, kept = meta.get("last_result") or {}, {c.name: c for c in trial.checkpoints()}
        rows = {r.get("training_iteration"): r for r in trial.results()}
        n = last.get("training_iteration") or 0
        if trial_json["status"] == "TERMINATED" or not last.get("checkpoint_dir_name"):
            continue
        if restart:
            for checkpoint in kept.values():
                checkpoint.fs.delete_dir(checkpoint.path)
            return trial.name
        if n < 2 or n - 1 not in rows or last["checkpoint_dir_name"] not in kept:
            continue
        from ray.train import Checkpoint
        from ray.train._internal.session import _TrainingResult

        manager, storage = _unpickle(meta["checkpoint_manager"]), _unpickle(trial_json["storage"])
        latest, previous = manager._latest_checkpoint_result, rows[n - 1]
        path = f"{latest.checkpoint.path.rstrip('/').rsplit('/', 1)[0]}/{previous['checkpoint_dir_name']}"
        stale = _TrainingResult(Checkpoint(path, filesystem=latest.checkpoint.filesystem), previous)
        manager._checkpoint_results = [stale if r is latest else r for r in manager._checkpoint_results]
        manager._latest_checkpoint_result = stale
        storage.current_checkpoint_index -= 1
        meta["last_result"] = previous
        meta["checkpoint_manager"], trial_json["storage"] = _pickle(manager), _pickle(storage)
        entry[0], entry[1] = json.dumps(trial_json), json.dumps(meta)
        if previous["checkpoint_dir_name"] in kept:  # the best one: gone too, as in the window
            kept[previous["checkpoint_dir_name"]].fs.delete_dir(kept[previous["checkpoint_dir_name"]].path)
        # The result files travel with the state: they end at the same report, so the newer
        # checkpoint's row is not stored (only the checkpoint's own metrics.json says which report it is).
        for file, keep in (("result.json", n - 1), ("progress.csv", n)):
            lines = (trial.loc / file).read_text().splitlines(keepends=True)
            (trial.loc / file).write_text("".join(lines[:keep]))
        state_file.write_text(json.dumps(state))
        return trial.name
    return None


def fake_state_behind_results(folder: ExperimentFolder) -> list[str]:
    """Leaves the storage as a kill leaves an object store whose upload of Ray's state lags behind the
    result files and checkpoints (docs/storage.md §4): the state is one from before any unfinished
    trial reported (no report, no checkpoint, the config it was created with: a PBT member's first
    row's), so Ray restarts each from scratch, while its rows and checkpoints stay stored. Returns the
    trials' folders."""
    import json

    from store.experiment import Trial
    from store.recovery import _pickle, _repoint, _unpickle, newest_state

    state_file = newest_state(folder)
    state, behind = json.loads(state_file.read_text()), []
    for entry in state["trial_data"]:
        trial_json, meta = json.loads(entry[0]), json.loads(entry[1])
        if trial_json["status"] == "TERMINATED":
            continue
        trial = Trial(folder.loc / trial_json["relative_logdir"])
        manager, storage = _unpickle(meta["checkpoint_manager"]), _unpickle(trial_json["storage"])
        _repoint(manager, storage, trial, None)
        meta["last_result"] = {}
        rows = trial.results()
        if rows and isinstance(rows[0].get("config"), dict):  # an exploit since has changed it
            trial_json["config"] = rows[0]["config"]
            trial_json["experiment_tag"] = re.match(r"\d*", trial_json["experiment_tag"]).group()
        meta["checkpoint_manager"], trial_json["storage"] = _pickle(manager), _pickle(storage)
        entry[0], entry[1] = json.dumps(trial_json), json.dumps(meta)
        behind.append(trial_json["relative_logdir"])
    state_file.write_text(json.dumps(state))
    return behind


def wait_for_line(log: Path, text: str, driver: subprocess.Popen, timeout: float = 300) -> bool:
    """Whether a `resume: <text>...` line appears in the driver's log before it ends or the timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = driver.poll() is not None
        if any(line.startswith("resume: ") and text in line for line in log.read_text().splitlines()):
            return True
        if done:
            return False
        time.sleep(0.2)
    return False
