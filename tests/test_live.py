"""The live report: while a real smoke search runs, the driver rewrites its page and serves it on
127.0.0.1 (`--report-serve`); the page changes between loads and reloads itself, and its last state
is the page `analysis/report.py` writes afterwards, byte for byte. A taken or malformed port is bad
input: one line, exit status 2, before Ray starts.

The search is the one tests/test_page.py opens in Chromium (tests/live_search.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import OFFLINE_ENV, ROOT, stored_statuses
from tests.live_search import NAME, RELOAD, SEARCH

pytestmark = pytest.mark.slow


def test_the_page_of_a_running_search_changes_and_reloads_itself(live_search):
    assert live_search.returncode == 0, live_search.output[-3000:]
    assert "live report served at http://127.0.0.1:" in live_search.output
    assert "live page not rewritten" not in live_search.output  # no rewrite failed
    assert len(live_search.live_pages) >= 3, (  # the starting page, then the study page changing
        f"the served page never changed while the search ran (pages at {live_search.changed_at} s; "
        f"driver: {live_search.output[-1500:]})")
    first, later = live_search.live_pages[0], live_search.live_pages[-1]
    # The printed address answers at once: a page that says the search is starting, until a trial reports.
    assert b"Starting: the search is running and no trial has reported yet" in first
    assert live_search.live_pages[1].count(b'class="trace"') <= later.count(b'class="trace"')
    assert b"Live: the search is running" in later


def test_the_last_page_is_the_report_written_afterwards_without_reload(live_search, tmp_path):
    final = live_search.page.read_bytes()
    assert RELOAD not in final and b"Live:" not in final
    assert live_search.last_served == final, "the tab's last load is not the final page"
    from analysis import report

    assert report.main([str(live_search.experiment), "--out", str(tmp_path)]) == 0
    assert (tmp_path / NAME / "index.html").read_bytes() == final


def test_the_finished_search_is_stored_as_finished(live_search):
    """Plain Ray reads every trial of the ended search as TERMINATED (a synchronous scheduler stores the
    trials it stops while they wait paused at a rung as TERMINATED: raycompat.StoresStoppedPausedTrials)."""
    assert live_search.returncode == 0, live_search.output[-3000:]
    assert stored_statuses(live_search.experiment) == ["TERMINATED"] * 4


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
