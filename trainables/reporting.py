"""The one place that talks to Ray's reporting API (renamed often across Ray releases).

A trainable gets a Reporter: `TuneReporter` inside a Ray Tune trial, `MemoryReporter` in tests and
benchmarks. Both hand back the last saved state on restore, so resume logic is exercised either way.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from typing import Any, Protocol

import torch

from store.experiment import METRICS_FILE, STATE_FILE


class Reporter(Protocol):
    def restore(self) -> dict | None: ...

    def report(self, metrics: dict[str, Any], state: dict) -> None: ...


def load_state(checkpoint_dir: str) -> dict:
    # weights_only: a checkpoint is data; unpickling arbitrary objects from disk runs code.
    return torch.load(os.path.join(checkpoint_dir, STATE_FILE), map_location="cpu", weights_only=True)


_WATCHING: list[int] = []  # the parent this process watches (one watcher per process)


def exit_with_parent(period_s: float = 0.5) -> None:
    """Ends this trial's process as soon as its parent (the node's raylet) is gone. A driver killed
    with its local Ray leaves the trial actors orphaned, and they trained on, some for 20 s or more,
    writing checkpoints into an experiment that a `--resume` may already be running."""
    if _WATCHING:
        return
    _WATCHING.append(os.getppid())

    def watch() -> None:
        while os.getppid() == _WATCHING[0]:
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=watch, name="tunelab-exit-with-raylet", daemon=True).start()


class TuneReporter:
    def restore(self) -> dict | None:
        from ray import tune

        exit_with_parent()  # every trial starts here
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return load_state(folder)

    def report(self, metrics: dict[str, Any], state: dict) -> None:
        from ray import tune

        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, os.path.join(folder, STATE_FILE))
            with open(os.path.join(folder, METRICS_FILE), "w") as out:
                json.dump(metrics, out)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


class MemoryReporter:
    """Keeps every report in memory; `stop_after` ends the run early, as a killed trial would."""

    class Stop(Exception):
        pass

    def __init__(self, state: dict | None = None, stop_after: int | None = None):
        self.state, self.stop_after = state, stop_after
        self.history: list[dict[str, Any]] = []

    def restore(self) -> dict | None:
        return self.state

    def report(self, metrics: dict[str, Any], state: dict) -> None:
        self.history.append(dict(metrics))
        self.state = state
        if self.stop_after is not None and len(self.history) >= self.stop_after:
            raise MemoryReporter.Stop


def trial_cpus(configured: int) -> int:
    """The CPUs Ray granted this trial, else `configured`: a resumed search may grant other CPUs than
    the trial's stored config says (`--resume --cpus-per-trial`), and the torch threads follow the grant."""
    import ray

    if not ray.is_initialized():
        return configured
    context = ray.get_runtime_context()
    if context.worker.mode != ray.WORKER_MODE:  # a driver that calls a trainable itself has no grant
        return configured
    cpus = context.get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else configured


def granted_gpus() -> list[str]:
    """Ids of the GPUs Ray granted this trial (none outside Ray); trainables.loop maps them to devices."""
    import ray

    return [str(i) for i in ray.get_gpu_ids()] if ray.is_initialized() else []
