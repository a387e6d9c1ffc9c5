"""Ctrl-C at the moments the first Ctrl-C test (tests/test_ops_resume.py) does not reach: before Tune
runs, and a second one while the first stops the search. Under the default scheduler."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from harness.killing import kill_driver, start_driver, stored_rows
from store.experiment import PLAN_FILE, ExperimentFolder
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
# No --scheduler: the space's default; the two configurations are arms of its questions, so each
# trains the 3 epochs.
SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", "3", "--set", "num_blocks=1"]


@pytest.mark.parametrize("when", ["before the search starts", "twice"])
def test_a_ctrl_c_before_tune_runs_or_a_second_one_ends_at_once_in_one_line(tmp_path: Path, when):
    """SIGINT to the driver's process group as its data is loaded (before any Ray state), or twice half a
    second apart once a result is stored (the second one while the first stops the search): exit 130
    at once, no traceback, and the last line says how to go on; where a plan was written, that resume
    finishes the search."""
    experiment, log = tmp_path / "cc", tmp_path / "driver.log"
    driver = start_driver(*SEARCH, "--storage", str(tmp_path), "--name", "cc", log=log)
    try:
        deadline = time.time() + 300
        if when == "twice":
            while driver.poll() is None and time.time() < deadline and not (
                    experiment.exists() and any(stored_rows(ExperimentFolder(experiment)).values())):
                time.sleep(0.05)
            os.killpg(driver.pid, signal.SIGINT)
            time.sleep(0.5)
        else:
            while driver.poll() is None and time.time() < deadline and \
                    "data for the trials" not in (log.read_text() if log.exists() else ""):
                time.sleep(0.05)
        os.killpg(driver.pid, signal.SIGINT)
        driver.wait(timeout=120)
    finally:
        kill_driver(driver)
    out = log.read_text()
    assert driver.returncode == 130 and "Traceback" not in out, out[-3000:]
    last = out.strip().splitlines()[-1]
    if not (experiment / PLAN_FILE).exists():
        assert last == "interrupted: stopped before the search started; nothing was written", out[-3000:]
        assert not experiment.exists()
        return
    command = f"python search/run.py --resume {experiment}"
    assert last.startswith("interrupted: ") and last.endswith(f"continue it with `{command}`"), out[-3000:]
    resumed = run_cli("--resume", str(experiment))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = stored_rows(ExperimentFolder(experiment))
    assert len(rows) == 2 and all(len(r) == 3 for r in rows.values()), rows


def test_a_ctrl_c_inside_a_finalizer_comes_again_just_after_it_and_prints_no_traceback(monkeypatch):
    """Python runs the SIGINT handler wherever the main thread is, a finalizer too, which would print
    the KeyboardInterrupt with its traceback and drop it: inside a finalizer the driver's handler
    raises nothing, remembers the Ctrl-C, and the signal comes again a moment later, outside
    (search/run.py CtrlC); its next step (ship the data, start Tune) raises it too."""
    from search.run import CtrlC

    dropped = []
    monkeypatch.setattr(sys, "unraisablehook", dropped.append)
    ctrl_c = CtrlC()
    previous = signal.signal(signal.SIGINT, ctrl_c)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # bytecodes, between which the handler runs
                pass

    try:
        with pytest.raises(KeyboardInterrupt):
            Finalized()  # its __del__ runs here
            assert ctrl_c.pressed and not dropped
            time.sleep(5)  # the signal again, outside the finalizer
        assert not dropped
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    finally:
        signal.signal(signal.SIGINT, previous)
