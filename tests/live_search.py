"""One real smoke search watched while it runs, shared by tests/test_live.py (the live page) and
tests/test_page.py (the page in Chromium): conftest.py provides `live_search` once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.env import OFFLINE_ENV, ROOT

NAME = "live"
# Two depths × plain/skip (two knobs: the page draws parallel coordinates), two seeds in lockstep,
# two epochs under the space's default rule, which keeps every arm of the degradation
# questions this grid holds (all four configurations), so reports arrive over some 40 s and the page
# answers the questions.
SEARCH = ("--space", "degradation", "--profile", "smoke", "--seeds", "2", "--set", "num_blocks=1,5")
RELOAD = b'http-equiv="refresh"'
# Each trial waits this long after each report (tests/faults/sitecustomize.py), longer than the live
# page waits between rewrites (search/live.py: 3 s, or ten times a rewrite's CPU time, some 0.4 s): the
# page follows every epoch's reports before the trials go on or end, on a machine fast enough to run
# the whole search in 13 s as on a slow one.
HOLD_AFTER_REPORT_S = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except OSError:
        return None


@dataclass
class LiveSearch:
    experiment: Path
    reports: Path
    """The report root the driver wrote into ($TUNELAB_REPORT)."""
    page: Path
    """The report folder's index.html."""
    live_pages: list[bytes]
    """Each distinct page served while the search ran, in order."""
    changed_at: list[float]
    """When each of them was first served, in seconds since the driver started."""
    last_served: bytes
    output: str
    returncode: int


@pytest.fixture(scope="session")
def live_search(tmp_path_factory) -> LiveSearch:

    root = tmp_path_factory.mktemp("live")
    port = free_port()
    log = root / "driver.log"
    env = {**os.environ, **OFFLINE_ENV, "TUNELAB_REPORT": str(root / "report"),
           "TUNELAB_HOLD_AFTER_REPORT_S": str(HOLD_AFTER_REPORT_S),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "faults"),
                                                       os.environ.get("PYTHONPATH")]))}
    with log.open("w") as out:
        driver = subprocess.Popen([sys.executable, str(ROOT / "search" / "run.py"), *SEARCH, "--storage",
                                   str(root / "results"), "--name", NAME, "--report-serve", str(port)],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}/{NAME}/index.html"
    pages: list[bytes] = []
    changed_at: list[float] = []
    last = b""
    started = time.time()
    try:
        deadline = time.time() + 400
        while driver.poll() is None and time.time() < deadline:
            page = fetch(url)
            if page:
                last = page
                if RELOAD in page and (not pages or page != pages[-1]):
                    pages.append(page)
                    changed_at.append(round(time.time() - started, 1))
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
        driver.wait()
    return LiveSearch(root / "results" / NAME, root / "report", root / "report" / NAME / "index.html", pages,
                      changed_at, last, log.read_text(), driver.returncode)
