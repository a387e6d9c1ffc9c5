"""A smoke search with `--search optuna --wandb`: TPE proposes N distinct trials under ASHA, and W&B
mirrors each trial as one offline run, grouped by experiment, without ever writing the API key."""

from __future__ import annotations

import csv
import json
import os
import struct
import subprocess
from pathlib import Path

import pytest

from raycompat import private
from search.wandb_setup import waiting_for_the_service, wandb_callback
from tests.conftest import run_cli

# Shaped like a real key (40 characters) so any place that would store a key stores this one.
FAKE_KEY = "tunelabfakekey" + "0123456789abcdefghijklmnop"


def test_without_an_api_key_wandb_goes_offline(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login either
    callback = wandb_callback(tmp_path / "exp", "exp", "tunelab-test")
    assert os.environ["WANDB_MODE"] == "offline" and callback.kwargs["mode"] == "offline"
    assert callback.group == "exp" and callback.kwargs["dir"] == str(tmp_path / "exp")


def test_a_logging_actor_returns_only_once_the_service_has_written_its_run(tmp_path: Path, monkeypatch):
    """Ray kills a logging actor and its children (W&B's service) as soon as its run returns, so the run
    must be on disk by then. Driven in this process, without Ray: when run() returns, the service
    process has exited and the file holds every logged row."""
    import queue

    import psutil
    from ray.air.integrations.wandb import WandbLoggerCallback

    monkeypatch.chdir(tmp_path)  # the actor chdirs into its log folder; this restores ours afterwards
    monkeypatch.setenv("WANDB_START_METHOD", "thread")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    item = private("WandbQueueItem")
    results: queue.Queue = queue.Queue()
    for epoch, acc in enumerate([0.25, 0.5], 1):
        results.put((item.RESULT, {"val_acc": acc, "training_iteration": epoch}))
    results.put((item.END, None))
    actor_cls = waiting_for_the_service(WandbLoggerCallback._logger_actor_cls)
    actor = actor_cls(str(tmp_path), results, [], [], project="p", group="g", dir=str(tmp_path),
                      mode="offline", settings={"quiet": True})
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    actor.run()
    services = [c for c in psutil.Process().children(recursive=True)
                if c.pid not in before and "wandb" in " ".join(c.cmdline())]
    assert services == [], "W&B's service still runs after the logging actor's run returned"
    [run] = offline_runs(tmp_path)
    assert [row["val_acc"] for row in run["history"]] == ["0.25", "0.5"]


def wandb_records(run_file: Path) -> list[bytes]:
    """The records of a .wandb file: W&B's transaction log uses the LevelDB log format (a 7-byte file
    header, then 32 KiB blocks of chunks, each with a 7-byte crc/length/type header)."""
    data, block, pos = run_file.read_bytes(), 32 * 1024, 7
    assert data[:4] == b":W&B", f"{run_file} is not a W&B transaction log"
    records, pending = [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (length == 0 and kind == 0):  # the rest of the block is padding
            pos += left
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST chunk: a record is complete
            records.append(pending)
            pending = b""
    return records


def offline_runs(experiment: Path) -> list[dict]:
    """Each offline run's project, group and logged history rows."""
    from wandb.proto import wandb_internal_pb2

    runs = []
    for run_file in sorted(experiment.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"history": []}
        for data in wandb_records(run_file):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(data)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                run["history"].append({i.key or "/".join(i.nested_key): i.value_json
                                       for i in record.history.item})
            elif kind == "run":
                run.update(id=record.run.run_id, group=record.run.run_group, project=record.run.project)
        runs.append(run)
    return runs


@pytest.fixture(scope="module")
def tpe_search(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One smoke search serves both features: Optuna's TPE under ASHA, mirrored to W&B offline."""
    storage = tmp_path_factory.mktemp("tpe")
    result = run_cli("--space", "degradation", "--profile", "smoke", "--search", "optuna",
                     "--num-samples", "3", "--set", "train_subset=256", "--set", "val_subset=128",
                     "--wandb", "tunelab-test", "--storage", str(storage), "--name", "tpe",
                     env={"WANDB_API_KEY": FAKE_KEY})
    assert result.returncode == 0, result.stderr[-3000:]
    return storage / "tpe", result


@pytest.mark.slow
def test_optuna_smoke_search_runs_num_samples_distinct_trials(tpe_search):
    experiment, _ = tpe_search
    params = [json.loads(p.read_text()) for p in sorted(experiment.glob("*/params.json"))]
    assert len(params) == 3
    assert all(1e-3 <= p["lr"] <= 0.3 and 1 <= p["num_blocks"] <= 7 for p in params)
    assert len({p["lr"] for p in params}) == 3
    assert any(experiment.glob("searcher-state-*.pkl")), "OptunaSearch state is saved for resume"


@pytest.mark.slow
def test_wandb_mirrors_every_trial_offline_and_never_writes_the_key(tpe_search):
    experiment, result = tpe_search
    assert "wandb sync" in result.stdout
    runs = {run["id"]: run for run in offline_runs(experiment)}
    trials = {row[-1]["trial_id"]: row for row in (list(csv.DictReader(p.open()))
                                                   for p in experiment.glob("*/progress.csv"))}
    assert set(runs) == set(trials) and len(runs) == 3, "one offline run per trial"
    for trial_id, rows in trials.items():
        run = runs[trial_id]
        assert run["group"] == "tpe" and run["project"] == "tunelab-test"
        logged = [float(row["val_acc"]) for row in run["history"]]
        assert logged == pytest.approx([float(row["val_acc"]) for row in rows])
    leaks = [p for p in experiment.parent.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == [] and FAKE_KEY not in result.stdout + result.stderr
