"""The installed `tunelab` command: each subcommand is the script the docs name, with its arguments
unchanged, so both spellings give the same output and the same one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from search.tunelab import COMMANDS
from tests.conftest import OFFLINE_ENV, ROOT

TUNELAB = ROOT / ".venv" / "bin" / "tunelab"


def tunelab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TUNELAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **OFFLINE_ENV})


def test_make_install_puts_the_tunelab_command_in_the_venv():
    assert TUNELAB.is_file(), "make install did not install the [project.scripts] entry point"
    done = tunelab("--help")
    assert done.returncode == 0
    assert all(f"  {name} " in done.stdout for name in COMMANDS)


@pytest.mark.parametrize("command", ["run", "report", "evaluate", "reproduce"])
def test_every_subcommand_answers_help_with_its_scripts_options(command):
    done = tunelab(command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ") and "--" in done.stdout


def test_tunelab_list_prints_what_the_driver_script_prints():
    script = subprocess.run([sys.executable, "search/run.py", "--list"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, **OFFLINE_ENV})
    listed = tunelab("list")
    assert listed.returncode == script.returncode == 0
    assert listed.stdout == script.stdout and "degradation" in listed.stdout


def test_tunelab_view_prints_each_models_size_without_training():
    done = tunelab("view", "--space", "degradation", "--profile", "smoke")
    assert done.returncode == 0, done.stderr
    assert "num_blocks=7, skip=True" in done.stdout and "params" in done.stdout


@pytest.mark.parametrize("args", [[], ["bogus"], ["report", "--no-such-flag"], ["evaluate", "/nonexistent"],
                                  ["run", "--profile", "nope"]])
def test_bad_subcommands_and_arguments_get_one_line_and_status_2(args):
    done = tunelab(*args)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
