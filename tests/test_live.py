"""The live report: while a real smoke search runs, the driver rewrites its page and serves it on
127.0.0.1 (`--report-serve`); the page changes between loads and reloads itself, and its last state
is the page `analysis/report.py` writes afterwards, byte for byte. A taken or malformed port is bad
input: one line, exit status 2, before Ray starts.

The search here is the one tests/test_page.py opens in Chromium (the `live_search` fixture)."""

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

from tests.conftest import OFFLINE_ENV, ROOT

pytestmark = pytest.mark.slow
NAME = "live"
# Two depths × plain/skip (two knobs: the page draws parallel coordinates), two seeds in lockstep,
# two epochs under the space's significance halving (its rung at epoch 1 stops some), so the page has
# every kind of curve end and reports arrive over some 40 s.
SEARCH = ("--space", "degradation", "--profile", "smoke", "--seeds", "2", "--set", "num_blocks=1,5")
RELOAD = b'http-equiv="refresh"'


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
    last_served: bytes
    output: str
    returncode: int


@pytest.fixture(scope="session")
def live_search(tmp_path_factory) -> LiveSearch:
    root = tmp_path_factory.mktemp("live")
    port = free_port()
    log = root / "driver.log"
    env = {**os.environ, **OFFLINE_ENV, "TUNELAB_REPORT": str(root / "report")}
    with log.open("w") as out:
        driver = subprocess.Popen([sys.executable, str(ROOT / "search" / "run.py"), *SEARCH, "--storage",
                                   str(root / "results"), "--name", NAME, "--report-serve", str(port)],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}/{NAME}/index.html"
    pages: list[bytes] = []
    last = b""
    try:
        deadline = time.time() + 400
        while driver.poll() is None and time.time() < deadline:
            page = fetch(url)
            if page:
                last = page
                if RELOAD in page and (not pages or page != pages[-1]):
                    pages.append(page)
            time.sleep(0.5)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, 9)
        driver.wait()
    return LiveSearch(root / "results" / NAME, root / "report", root / "report" / NAME / "index.html", pages,
                      last, log.read_text(), driver.returncode)


def test_the_page_of_a_running_search_changes_and_reloads_itself(live_search):
    assert live_search.returncode == 0, live_search.output[-3000:]
    assert "live report served at http://127.0.0.1:" in live_search.output
    assert len(live_search.live_pages) >= 2, "the served page never changed while the search ran"
    first, later = live_search.live_pages[0], live_search.live_pages[-1]
    assert first.count(b'class="trace"') <= later.count(b'class="trace"')
    assert b"Live: the search is running" in later


def test_the_last_page_is_the_report_written_afterwards_without_reload(live_search, tmp_path):
    final = live_search.page.read_bytes()
    assert RELOAD not in final and b"Live:" not in final
    assert live_search.last_served == final, "the tab's last load is not the final page"
    from analysis import report

    assert report.main([str(live_search.experiment), "--out", str(tmp_path)]) == 0
    assert (tmp_path / NAME / "index.html").read_bytes() == final


def test_report_serve_on_a_taken_port_is_one_line_and_exit_2_before_ray(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "search" / "run.py"), *SEARCH, "--storage",
                                 str(tmp_path / "results"), "--name", "x", "--report-serve", str(port)],
                                cwd=ROOT, capture_output=True, text=True, timeout=120,
                                env={**os.environ, **OFFLINE_ENV, "TUNELAB_REPORT": str(tmp_path / "r")})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: --report-serve: port {port} on 127.0.0.1 is not free (Address already in use)"]
    assert "Ray" not in result.stdout and not (tmp_path / "results" / "x").exists()


@pytest.mark.parametrize("value", ["abc", "0", "-1", "65536", "99999999999999999999", "nan", "inf", "",
                                   "../8000"])
def test_report_serve_with_a_malformed_port_is_one_line_and_exit_2(value, tmp_path, capsys):
    from search import run

    code = run.main([*SEARCH, "--storage", str(tmp_path / "results"), "--name", "x", "--report-serve", value])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: --report-serve expects a port number in 1..65535, got")
    assert not (tmp_path / "results" / "x").exists()
