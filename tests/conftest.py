"""Shared test setup: nothing leaves the machine, and each test session gets its own results folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.env import KILL_TEST_ENV, OFFLINE_ENV, ROOT  # noqa: E402, F401 (the constants every test imports from here)
from harness.teacher import make_teacher  # noqa: E402, F401 (the kd tests import it from here)

os.environ.update(OFFLINE_ENV)
# Searches end in a report; tests must not leave report folders in the checkout.
os.environ.setdefault("TUNELAB_REPORT", tempfile.mkdtemp(prefix="tunelab-report-"))


def run_cli(*args: str, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `python search/run.py ARGS` as a user would, in a subprocess."""
    return subprocess.run(
        [sys.executable, str(ROOT / "search" / "run.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **OFFLINE_ENV, **(env or {})},
    )

def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    """The house rule for bad input: exit status 2, one `error:` line on stderr naming `needles`, no
    traceback anywhere."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert "Traceback" not in result.stderr + (result.stdout or "")
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_refused_in_process(args: list[str], tmp_path: Path, capsys) -> None:
    """`search/run.py` `main` with `args` and a fresh storage: exit status 2, one `error:` line, and
    nothing written to the storage."""
    from search.run import main

    assert main([*args, "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def plan_for(tmp_path: Path, space: str, *args: str):
    """A smoke plan of `space` with its own experiment name under `tmp_path` (building a Tuner creates
    the experiment's folder, so each plan needs a fresh name)."""
    from search.options import build_plan, parse_args

    name = f"plan{len(list(tmp_path.iterdir()))}"
    return build_plan(parse_args(["--space", space, "--profile", "smoke", "--storage", str(tmp_path),
                                  "--name", name, *args]))


def stored_statuses(experiment: Path) -> list[str]:
    """Each trial's status as plain Ray reads the stored experiment (`tune.ExperimentAnalysis`), sorted."""
    from ray import tune

    return sorted(trial.status for trial in tune.ExperimentAnalysis(str(experiment)).trials)




def ended_trials(experiment, reports: int) -> dict[str, bytes]:
    """progress.csv of each trial of `experiment` (an ExperimentFolder, local or on a bucket) that holds
    `reports` rows and that the stored experiment state records as TERMINATED, once that state names
    only checkpoints that exist. A kill-and-resume test kills the driver only then: Ray uploads the
    state and the result files separately, a trial whose rows are stored before the state saying it
    ended is rightly resumed from its last checkpoint, i.e. re-run, and a state naming a checkpoint Ray
    has already deleted cannot resume that trial (docs/storage.md §4)."""
    if experiment.missing_checkpoints():
        return {}
    ended = [tid for tid, status in experiment.trial_statuses().items() if status == "TERMINATED"]
    done = {}
    for trial in experiment.trials():
        if not any(tid in trial.name for tid in ended):
            continue
        try:
            data = (trial.loc / "progress.csv").read_bytes()
        except OSError:
            continue
        if data.count(b"\n") - 1 >= reports:
            done[trial.name] = data
    return done


def train_image(reporter, **config):
    """`fit_image_model` on a MemoryReporter, run until it ends or the reporter's `stop_after`."""
    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.reporting import MemoryReporter

    try:
        fit_image_model(ImageConfig(**config), reporter)
    except MemoryReporter.Stop:
        pass
    return reporter


@pytest.fixture(scope="session")
def storage(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A real local S3 server (moto_server on 127.0.0.1) with a fresh bucket; stopped after the module.

    `s3.uri(path)` is the URI to pass as --storage, `s3.env` the AWS_* variables a subprocess needs,
    `s3.fs` a pyarrow filesystem on it, `s3.keys(prefix)` the objects in the bucket."""
    from harness.s3server import S3Server

    server = S3Server(log=tmp_path_factory.mktemp("moto") / "moto_server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()



# Tallies a test wants in CI's output (the kill sweep's), printed in pytest's closing summary. They
# travel as the test report's user_properties: under `-n 2` (pytest-xdist) a test runs in a worker
# process, and only its reports reach the process that prints the summary.
TALLIES: list[str] = []


@pytest.fixture
def tally(request):
    """`tally(line)` prints `line` now and again at the end of the run, where CI's log shows it."""

    def record(line: str) -> None:
        print(line, flush=True)
        request.node.user_properties.append(("tally", line))

    return record


def pytest_runtest_logreport(report) -> None:
    if report.when == "call":
        TALLIES.extend(value for name, value in report.user_properties if name == "tally")


def pytest_terminal_summary(terminalreporter, config) -> None:
    for line in TALLIES:
        terminalreporter.write_line(line)


# `make test` runs the suite in two processes (pytest-xdist, `--dist loadfile`): a search spends about
# 40% of its wall time waiting (Ray's start, its polling, the tests' holds), so two at once fill the two
# cores. Each module goes to one process, so its module and session fixtures (its searches) run once;
# the live page's and the browser's tests go together, as they share one search. This scheduler does it
# rather than `--dist loadgroup`: on pytest 9.2 xdist's group marks are silently ignored (pytest-xdist
# issue 1386), and every module's searches ran in both processes.
SHARED_MODULES = {"tests/test_live.py": "live_search", "tests/test_page.py": "live_search"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ModuleScheduling(LoadFileScheduling):
        """xdist's `loadfile`, with the modules of SHARED_MODULES as one unit."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SHARED_MODULES.get(module, module)

    return ModuleScheduling(config, log)


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    """The report page of each kind of experiment (tests/test_page_kinds.py), built from small
    constructed experiment folders (bench/page_experiments.py), no search run."""
    from analysis.compare import run
    from analysis.page import write_page
    from analysis.report import write_report
    from analysis.results import open_experiment
    from bench import page_experiments as made

    root = tmp_path_factory.mktemp("kinds")
    folders = {"degradation": made.degradation(root / "degradation"), "kd": made.kd(root / "kd"),
               "optuna": made.optuna_search(root / "optuna", trials=16),
               "pbt": made.pbt(root / "pbt"), "mnist": made.mnist(root / "mnist"),
               "teachers": made.teachers(root / "teachers"), "lora": made.lora(root / "lora"),
               "extract": made.extract(root / "extract"),
               "interrupted": made.interrupted(root / "interrupted"),
               "seeds as trials": made.seeds_as_trials(root / "seeds_as_trials")}
    other = made.degradation(root / "degradation_again", seeds=2)
    found = {kind: write_page(open_experiment(folder), root / "report" / kind)
             for kind, folder in folders.items()}
    found["comparison"] = run([str(folders["degradation"]), str(other)], root / "report") / "index.html"
    # a front is a picture the report draws (analysis/report.py), so this page is the whole report's
    found["lora_front"] = write_report(open_experiment(made.lora_front(root / "lora_front")),
                                       root / "report") / "index.html"
    return found


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium at the width the page tests read the page at (tests/page_browser.py)."""
    from bench.bench_page import chromium
    from tests.page_browser import WIDTH

    browser = chromium(WIDTH, 900)
    yield browser
    browser.quit()


# One smoke search watched while it runs: the live page's tests and the page's browser tests share it.
from tests.live_search import live_search  # noqa: E402, F401


def unkilled(storage: Path, search: list[str], name: str) -> dict[str, list[tuple]]:
    """The per-epoch metrics (harness/kill_sweep.py curves) of `search` run to its end, unkilled, in
    `storage`/`name`: the twin a kill sweep compares with."""
    from harness.kill_sweep import curves
    from store.experiment import ExperimentFolder

    result = run_cli(*search, "--storage", str(storage), "--name", name)
    assert result.returncode == 0, result.stderr[-3000:]
    return curves(ExperimentFolder(storage / name))
