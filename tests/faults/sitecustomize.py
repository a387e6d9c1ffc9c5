"""Test-only fault injection, so that production code carries no hook. A test puts this folder on
PYTHONPATH; Python then imports this file at start-up in every process of the search it runs (the
driver and Ray's workers, which inherit the environment). With TUNELAB_CRASH_AT_EPOCH=N set, the
first trial to finish epoch N raises before reporting it. The marker file TUNELAB_CRASH_MARKER
(created atomically) makes it one crash per search, so the retry from the last checkpoint runs
through; without a marker every trial raises there every time, so it ends in ERROR once its retries
are spent. With TUNELAB_HOLD_AFTER_REPORT_S=S set, every trial waits S seconds after each report, so
a test that watches a running search (tests/live_search.py) sees each report's effect before the
trial goes on or ends, on a fast machine as on a slow one. It wraps
trainables.reporting.TuneReporter.report when that module is first imported. With
TUNELAB_KILL_AT_EXPLOIT=N set, the driver SIGKILLs itself as its pbt scheduler begins the N-th
exploit, before anything of it is recorded: a kill inside a round, after its last report
(search.pbt.SyncedPBT._exploit, wrapped when search.pbt is first imported)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import signal
import sys
import time


def crash_once_if_asked(epoch) -> None:
    if not os.environ.get("TUNELAB_CRASH_AT_EPOCH"):
        return
    at, marker = os.environ["TUNELAB_CRASH_AT_EPOCH"], os.environ.get("TUNELAB_CRASH_MARKER")
    if epoch != int(at):
        return
    try:
        if marker:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    raise RuntimeError(f"TUNELAB_CRASH_AT_EPOCH={at}: crash injected before epoch {epoch} was reported")


def wrap(module) -> None:
    reporter = module.TuneReporter
    report = reporter.report

    def crashing_report(self, metrics, state):
        crash_once_if_asked(metrics.get("epoch"))
        reported = report(self, metrics, state)
        time.sleep(float(os.environ.get("TUNELAB_HOLD_AFTER_REPORT_S", 0)))
        return reported

    reporter.report = crashing_report


def wrap_pbt(module) -> None:
    scheduler = module.SyncedPBT
    exploit, made = scheduler._exploit, []

    def killing_exploit(self, tune_controller, trial, trial_to_clone):
        made.append(trial.trial_id)
        if len(made) == int(os.environ["TUNELAB_KILL_AT_EXPLOIT"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return exploit(self, tune_controller, trial, trial_to_clone)

    scheduler._exploit = killing_exploit


TARGETS = {"trainables.reporting": wrap, "search.pbt": wrap_pbt}


class WrapOnImport(importlib.abc.MetaPathFinder):
    """Finds a module of TARGETS as usual, then wraps what it names once the module has run."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, name, path, target=None):
        if name != self.name:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        run = spec.loader.exec_module

        def exec_and_wrap(module):
            run(module)
            TARGETS[name](module)

        spec.loader.exec_module = exec_and_wrap
        return spec


if os.environ.get("TUNELAB_CRASH_AT_EPOCH") or os.environ.get("TUNELAB_HOLD_AFTER_REPORT_S"):
    sys.meta_path.insert(0, WrapOnImport("trainables.reporting"))
if os.environ.get("TUNELAB_KILL_AT_EXPLOIT"):
    sys.meta_path.insert(0, WrapOnImport("search.pbt"))
