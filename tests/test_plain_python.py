"""The scripts run by a Python without the project's packages: re-executed with the checkout's .venv,
or one line saying to run `make install`, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ("search/run.py", "analysis/report.py", "analysis/evaluate.py")


def bare_python() -> str:
    """An interpreter that lacks ray, torch and pandas (the system one, else the venv's base Python)."""
    for candidate in ("/usr/bin/python3", str(Path(sys.base_prefix) / "bin" / "python3")):
        if Path(candidate).is_file() and subprocess.run(
                [candidate, "-c", "import ray"], capture_output=True, env={}).returncode != 0:
            return candidate
    pytest.skip("no Python without the packages on this machine")


def run_bare(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # env -i: no PATH, no PYTHONPATH, no VIRTUAL_ENV; only what a fresh shell would not even have
    return subprocess.run(["env", "-i", bare_python(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_plain_python_driver_reexecutes_with_the_checkouts_venv():
    assert (ROOT / ".venv" / "bin" / "python").is_file(), "this test needs `make install`"
    out = run_bare(str(ROOT / "search" / "run.py"), "--space", "degradation", "--profile", "smoke",
                   "--view", cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "num_blocks=7, skip=True" in out.stdout  # the model view: torch built every model
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_plain_python_scripts_reexecute_and_answer_bad_input_in_one_line(script, tmp_path):
    out = run_bare(str(ROOT / script), str(tmp_path / "not-an-experiment"), cwd=tmp_path)
    if script == "search/run.py":  # the driver takes no positional argument: argparse's one line
        assert "unrecognized arguments" in out.stderr
    else:
        assert "not-an-experiment" in out.stderr
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "make install" not in out.stderr  # the venv ran it


def copy_checkout(dest: Path) -> Path:
    for package in ("cli", "search", "analysis", "spaces", "trainables"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.mark.parametrize("script", SCRIPTS)
def test_plain_python_without_venv_says_make_install_in_one_line(script, tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")  # a checkout before `make install`: no .venv
    out = run_bare(str(checkout / script), "--help", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `make install`" in lines[0], out.stderr


def test_plain_python_with_a_venv_lacking_the_packages_stops_after_one_reexecution(tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    (checkout / ".venv" / "bin").mkdir(parents=True)
    # A venv whose interpreter has none of the packages (an interrupted `make install`).
    (checkout / ".venv" / "bin" / "python").symlink_to(bare_python())
    out = run_bare(str(checkout / "search" / "run.py"), "--list", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `make install`" in lines[0], out.stderr
