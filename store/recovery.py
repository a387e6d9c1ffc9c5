"""Repairs Ray's stored experiment state where a killed driver left it naming a deleted checkpoint.

Ray deletes a trial's superseded checkpoint on the storage as soon as it registers the next one, but
uploads the state that stops naming it later, in the background (docs/storage.md §4). A driver killed
in between leaves a state that resumes the trial from a checkpoint that is gone, and `Tuner.restore`
fails that trial ("Could not recover from checkpoint as it does not exist on storage anymore"). Before
restoring, `repair_missing_checkpoints` points each such trial at the newest checkpoint that survives on
the storage and whose report is known (its row in the trial's stored result.json; a row is only logged
after its checkpoint was fully uploaded, so such a checkpoint is whole), or at no checkpoint at all, so
that the trial starts again from scratch. Training is deterministic, so either way it ends as an
unkilled run would.

Ray keeps a trial's checkpoint bookkeeping (`_CheckpointManager`) and its storage context (the next
checkpoint's index) cloudpickled inside the state's JSON. This module unpickles both, which is what
`Tuner.restore` itself does with the same bytes a moment later: it trusts the experiment's prefix
exactly as much as Ray does (docs/storage.md §7).
"""

from __future__ import annotations

import json
import re
from typing import Any

from raycompat import check_state, finished_grid_searcher_state, private
from store.experiment import METRICS_FILE, STATE_FILE, ExperimentFolder, NotAnExperiment, Trial, read_results
from store.fs import Location
from store.lifecycle import rung_decisions

ZIP_END = b"PK\x05\x06"  # a zip archive's last record (22 bytes long without a comment)
PICKLED = "CLOUDPICKLE_FALLBACK"  # how Ray's TuneFunctionEncoder embeds an object JSON cannot hold


def _unpickle(field: Any) -> Any:
    from ray import cloudpickle

    hex_to_binary = private("hex_to_binary")
    if not (isinstance(field, dict) and field.get("_type") == PICKLED):
        raise ValueError("not a pickled field")
    return cloudpickle.loads(hex_to_binary(field["value"]))


def _pickle(obj: Any) -> dict:
    from ray import cloudpickle

    binary_to_hex = private("binary_to_hex")
    return {"_type": PICKLED, "value": binary_to_hex(cloudpickle.dumps(obj))}


def newest_state(folder: ExperimentFolder) -> Location | None:
    """The experiment_state-<time>.json file Ray restores from (by name is by time); None without one."""
    states = [f for f in folder.loc.list_files() if f.name.startswith("experiment_state-")]
    return max(states, key=lambda f: f.name) if states else None


def _whole(checkpoint: Location) -> bool:
    """Whether the checkpoint's state.pt ends as a zip archive does (torch.save's format): a copy a
    kill cut short on a local store does not."""
    file = checkpoint / STATE_FILE
    try:
        with file.fs.open_input_file(file.path) as stream:
            size = stream.size()
            return size > len(ZIP_END) and stream.read_at(len(ZIP_END), size - 22) == ZIP_END
    except OSError:
        return False


def _own_row(trial: Trial, checkpoint: Location) -> dict | None:
    """The report a checkpoint carries in its metrics.json, as the row Ray would have logged for it:
    with the trial's config (Ray's status table reads it there) and its iteration (every tunelab report
    carries a checkpoint, so checkpoint_NNNNNN is report NNNNNN + 1)."""
    try:
        metrics = json.loads((checkpoint / METRICS_FILE).read_text())
        index = int(checkpoint.name.rsplit("_", 1)[-1])
        config = trial.params()
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or not _whole(checkpoint):
        return None
    return {**metrics, "training_iteration": index + 1, "checkpoint_dir_name": checkpoint.name,
            "config": config}


def _stored_rows(trial: Trial) -> dict[str, dict]:
    """The stored result.json's rows by the checkpoint they reported (after a retry, the later row; a
    PBT member that has exploited another numbers its next checkpoint after the one it took, so it
    can name one of its own again: the later row)."""
    rows = {}
    for row in read_results(trial.loc / "result.json"):
        if row.get("checkpoint_dir_name") and isinstance(row.get("training_iteration"), int):
            rows[row["checkpoint_dir_name"]] = row
    return rows


def _reported(trial: Trial) -> set[int]:
    """Every report the stored result.json holds."""
    return {row["training_iteration"] for row in read_results(trial.loc / "result.json")
            if isinstance(row.get("training_iteration"), int)}


def _surviving(trial: Trial) -> tuple[str, dict] | None:
    """(checkpoint folder name, the row that reported it) of the newest checkpoint kept on the storage
    whose report is known (its row in the stored result.json, logged only after the checkpoint was
    uploaded whole, else its own metrics.json) and every report before which is stored, so that
    continuing from it loses no row; None when there is none (the trial restarts from scratch)."""
    rows, have = _stored_rows(trial), _reported(trial)
    for checkpoint in sorted(trial.checkpoints(), key=lambda c: c.name, reverse=True):  # newest first
        row = rows.get(checkpoint.name) or _own_row(trial, checkpoint)
        if row is not None and all(i in have for i in range(1, row["training_iteration"])):
            return checkpoint.name, row
    return None


def _resumed_from(manager: Any) -> tuple[str | None, dict]:
    """(checkpoint folder name, its report) that Ray restores a trial from: its checkpoint manager's
    latest, which can be a report behind the state's last result (a state saved between the two)."""
    latest = manager._latest_checkpoint_result if manager is not None else None
    if latest is None:
        return None, {}
    return latest.checkpoint.path.rstrip("/").rsplit("/", 1)[-1], dict(latest.metrics)


def _needs_repair(folder: ExperimentFolder, trial: dict, name: str | None, n: Any) -> str | None:
    """Why an unfinished trial cannot resume from the checkpoint Ray would restore, or None: the
    checkpoint is gone, or reports before it never reached the store (they would be missing for good)."""
    folder_name = trial.get("relative_logdir")
    if trial.get("status") == "TERMINATED" or not name or not folder_name or not isinstance(n, int):
        return None
    if not (folder.loc / folder_name / name / STATE_FILE).is_file():
        return f"its checkpoint {name} was deleted before the state that stops naming it was stored"
    have = _reported(Trial(folder.loc / folder_name))
    lost = [i for i in range(1, n) if i not in have]
    if lost:
        return f"reports {', '.join(map(str, lost))} before its checkpoint {name} never reached the store"
    return None


def _repoint(manager: Any, storage: Any, trial: Trial, found: tuple[str, dict] | None) -> None:
    """Makes Ray's checkpoint manager resume from `found` (or from nothing) and the storage context
    number the next checkpoint after it, as an unkilled run would."""
    from ray.train import Checkpoint

    insert_into_sorted_list, training_result = private("insert_into_sorted_list"), private("TrainingResult")

    survivors = [r for r in manager._checkpoint_results
                 if (trial.loc / r.checkpoint.path.rstrip("/").rsplit("/", 1)[-1] / STATE_FILE).is_file()]
    if found is None:
        manager._checkpoint_results, manager._latest_checkpoint_result = [], None
        storage.current_checkpoint_index = -1  # the first checkpoint is then checkpoint_000000
        return
    name, row = found
    latest = next((r for r in survivors if r.checkpoint.path.rstrip("/").endswith(f"/{name}")), None)
    if latest is None:
        checkpoint = Checkpoint(f"{storage.trial_fs_path}/{name}", filesystem=storage.storage_filesystem)
        latest = training_result(checkpoint=checkpoint, metrics=row)
        insert_into_sorted_list(survivors, latest, key=manager._get_checkpoint_score)
    manager._checkpoint_results, manager._latest_checkpoint_result = survivors, latest
    storage.current_checkpoint_index = int(name.rsplit("_", 1)[-1])


def repair_missing_checkpoints(folder: ExperimentFolder) -> list[str]:
    """Repoints every unfinished trial whose stored state names a checkpoint missing on the storage, or
    one that reports before it never reached; returns one line per repaired trial. A trial restarted
    from scratch also loses its stored result files, so that no row of the killed run survives beside
    the new ones."""
    state_file = newest_state(folder)
    if state_file is None:
        return []
    state = json.loads(state_file.read_text())
    from ray.tune.utils import date_str

    # One time names every driver-side staging folder of the resumed run: the restored trials', the
    # experiment's (Ray takes the first restored trial's) and those of trials created afterwards.
    lines, changed, now = [], False, date_str()
    for entry in state.get("trial_data", []):
        trial_json, meta = json.loads(entry[0]), json.loads(entry[1])
        # Each trial's driver-side staging folder is named by the time its storage context was made,
        # which the state keeps: on a `ray start` cluster every resume would share the first driver's
        # folder in the head's session, and Ray's loggers would append to that driver's files.
        storage = check_state("StorageContext", _unpickle(trial_json["storage"]))
        storage._timestamp = now
        trial_json["storage"], changed = _pickle(storage), True
        entry[0] = json.dumps(trial_json, indent=2)
        manager = check_state("CheckpointManager", _unpickle(meta["checkpoint_manager"]))
        named, report = _resumed_from(manager)
        why = _needs_repair(folder, trial_json, named, report.get("training_iteration"))
        last = meta.get("last_result") or {}
        if why is None:
            if named and trial_json.get("status") != "TERMINATED" and \
                    last.get("training_iteration") != report.get("training_iteration"):
                # The result files are aligned to the report Ray resumes after, not to a later one.
                meta["last_result"] = {**report, "done": False}
                entry[1], changed = json.dumps(meta, indent=2), True
            continue
        name = trial_json["relative_logdir"]
        trial = Trial(folder.loc / name)
        found = _surviving(trial)
        _repoint(manager, storage, trial, found)
        meta["checkpoint_manager"], trial_json["storage"] = _pickle(manager), _pickle(storage)
        if found is None:
            meta["last_result"] = {}
            for file in ("result.json", "progress.csv"):
                if (trial.loc / file).is_file():
                    (trial.loc / file).delete()
            lines.append(f"{name}: {why}, and no earlier checkpoint survives with every report before it: "
                         "restarts from scratch")
        else:
            meta["last_result"] = {**found[1], "done": False}
            epoch = found[1].get("epoch", "?")
            lines.append(f"{name}: {why}: continues from {found[0]} (epoch {epoch}), the newest one kept "
                         "with every report before it stored")
        entry[0], entry[1] = json.dumps(trial_json, indent=2), json.dumps(meta, indent=2)
    if lines or changed:
        state_file.write_text(json.dumps(state))
    retime_trial_generators(folder, now)
    return lines


GENERATOR_STATES = ("search_gen_state-", "basic-variant-state-")
"""Ray's stored trial generators (an Optuna search's, a grid's), each cloudpickled whole: both keep the
experiment's StorageContext that every trial they create after the restore is given."""


def retime_trial_generators(folder: ExperimentFolder, now: str) -> None:
    """Names the driver-side staging folder of the trials the stored generators create after the restore
    by `now`, as repair_missing_checkpoints names the restored ones' (and Ray the experiment's, after
    them). Left at the first run's time, a trial created after the resume logged its result files into
    a folder that is never uploaded: a resumed Optuna search lost the results of every trial it went on
    to create. A generator state that cannot be read is left as it is (repair_searcher_state and Ray
    say what is wrong with it)."""
    from ray import cloudpickle

    for prefix in GENERATOR_STATES:
        files = [f for f in folder.loc.list_files() if f.name.startswith(prefix)]
        if not files:
            continue
        newest = max(files, key=lambda f: f.name)
        try:
            state = cloudpickle.loads(newest.read_bytes())
        except Exception:  # noqa: BLE001 (a cut pickle raises EOFError, UnpicklingError or others)
            continue
        if _retime(state, now, set()):
            newest.write_bytes(cloudpickle.dumps(state))


def _retime(obj: Any, now: str, seen: set[int], depth: int = 0) -> bool:
    """Sets `_timestamp` of every StorageContext reachable from `obj` (dicts, lists, tuples, objects'
    attributes, down to 10 levels: a grid's unmade trials keep one each, in specs 7 levels down) to
    `now`; whether it found one."""
    if id(obj) in seen or depth > 10 or isinstance(obj, str | bytes | int | float | bool | type(None)):
        return False
    seen.add(id(obj))
    if type(obj).__name__ == "StorageContext":
        check_state("StorageContext", obj)._timestamp = now
        return True
    if isinstance(obj, dict):
        children = list(obj.values())
    elif isinstance(obj, list | tuple | set):
        children = list(obj)
    else:
        children = list(getattr(obj, "__dict__", {}).values())
    return any([_retime(child, now, seen, depth + 1) for child in children])


def resume_summary(folder: ExperimentFolder) -> list[str]:
    """One line per trial of the stored state: what `Tuner.restore` will do with it (call it after the
    repair and alignment, which decide that)."""
    lines = []
    for trial, meta in folder._state_trials():
        name, status = trial.get("relative_logdir", "?"), trial.get("status")
        last = meta.get("last_result") or {}
        epoch = last.get("epoch", last.get("training_iteration"))
        if status == "TERMINATED":
            lines.append(f"{name}: finished (epoch {epoch}), kept as it is")
        elif last.get("checkpoint_dir_name"):
            again = " after its error" if status == "ERROR" else ""
            lines.append(f"{name}: continues{again} from epoch {epoch} ({last['checkpoint_dir_name']})")
        else:
            lines.append(f"{name}: starts from scratch (no checkpoint yet)")
    return lines


TORCH_ZIP = b"PK\x03\x04"  # torch.save writes a zip archive; anything else is not a checkpoint


def check_resumable(folder: ExperimentFolder, plan: dict) -> None:
    """NotAnExperiment (one line) when `Tuner.restore` could not resume the experiment as it is, checked
    before anything is written: a Ray state by another Ray version or unreadable, a result.json with a
    damaged line (a last line cut without its newline is a write the kill interrupted, which resume
    repairs), damaged rung decisions (store/lifecycle.py), a checkpoint that a trial would resume from
    holding no torch checkpoint."""
    import ray

    made_by = (plan.get("provenance") or {}).get("packages", {}).get("ray")
    if made_by and made_by != ray.__version__:
        raise NotAnExperiment(f"{folder} was written by Ray {made_by}; this is Ray {ray.__version__}, and "
                              f"Ray's state is pickled Ray objects: resume it with Ray {made_by}")
    state = newest_state(folder)
    try:
        entries = json.loads(state.read_text())["trial_data"] if state is not None else []
        for entry in entries:
            trial_json, meta = json.loads(entry[0]), json.loads(entry[1])
            check_state("CheckpointManager", _unpickle(meta["checkpoint_manager"]))
            check_state("StorageContext", _unpickle(trial_json["storage"]))
    except Exception as err:  # whatever Ray's unpickling raises: the state is not this Ray's
        line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise NotAnExperiment(f"{state} cannot be read by Ray {ray.__version__} (written by another Ray "
                              f"version, or damaged: {line[:160]})") from None
    for trial in folder.trials():
        trial.results()  # NotAnExperiment for a damaged line
    rung_decisions(folder)  # NotAnExperiment for a damaged record
    for name, meta in ((t.get("relative_logdir"), m) for t, m in folder._state_trials()
                       if t.get("status") != "TERMINATED"):
        checkpoint = (meta.get("last_result") or {}).get("checkpoint_dir_name")
        file = folder.loc / str(name) / str(checkpoint) / STATE_FILE
        if name and checkpoint and file.is_file():
            with file.fs.open_input_file(file.path) as stream:
                if stream.read(len(TORCH_ZIP)) != TORCH_ZIP:
                    raise NotAnExperiment(f"{file} is not a torch checkpoint (damaged); the trial cannot "
                                          "resume from it")


SEARCHER_STATE = re.compile(r"basic-variant-state-.*\.json")
OPTUNA_STATE = re.compile(r"searcher-state-.*\.pkl")
"""An Optuna search's searcher (Ray's OptunaSearch, pickled whole: the study and its sampler)."""
"""Ray's grid searcher state, one file per driver session; Ray's restore reads only the newest."""


def cut_searcher_state(folder: ExperimentFolder, pattern: re.Pattern, planned: int) -> Location | None:
    """The newest searcher state file matching `pattern` when a kill inside Ray's upload left it cut
    short (it does not unpickle, and Ray cannot restore the search from it); None when it is whole or
    there is none. NotAnExperiment (one line, nothing written) when the stored state holds fewer than
    the `planned` trials: the searcher's choices of the trials still to come were lost with it."""
    import ray.cloudpickle as cloudpickle

    files = [f for f in folder.loc.list_files() if pattern.fullmatch(f.name)]
    if not files:
        return None
    newest = max(files, key=lambda f: f.name)
    try:
        cloudpickle.loads(newest.read_bytes())
        return None
    except Exception:  # noqa: BLE001 (a cut pickle raises EOFError, UnpicklingError or others)
        pass
    created = len(folder._state_trials())
    if created < planned:
        raise NotAnExperiment(f"{newest} was cut short by a kill while Ray uploaded it, before the search "
                              f"had created all its {planned} trials ({created}): Ray cannot restore it")
    return newest


def repair_searcher_state(folder: ExperimentFolder, planned: int) -> list[str]:
    """Rebuilds the newest grid searcher state when a kill cut it short (cut_searcher_state): the
    searcher had created every trial, and a generator that has is exactly what was lost. Returns the
    line that says so ([] when nothing was cut)."""
    newest = cut_searcher_state(folder, SEARCHER_STATE, planned)
    if newest is None:
        return []
    ids = sorted(str(t["trial_id"]) for t, _ in folder._state_trials())
    newest.write_bytes(finished_grid_searcher_state(ids[0].rsplit("_", 1)[0] + "_", len(ids)))
    return [f"{newest.name} (the grid searcher's state) was cut short by the kill; rebuilt as a searcher "
            f"that has created all {len(ids)} trials"]
