"""`python search/study.py --profile smoke`: the whole chain of studies on one Ray head (its --address
passed through), its index page linking every study's report, a second run that starts nothing, the
state each experiment folder is read as, a failing study stopping the chain, and bad flags refused."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from search import study
from store import locate
from store.experiment import ExperimentFolder
from tests.conftest import OFFLINE_ENV, ROOT

pytestmark = pytest.mark.slow

# Each study of the chain shrunk to one or two trials of one epoch (lora: two settings, so its Pareto
# picture has an axis to group by).
TINY = ("mnist:model=mlp", "mnist:epochs=1", "degradation:num_blocks=1", "degradation:skip=true",
        "degradation:epochs=1", "teachers:model=resnet8", "kd:temperature=1", "kd:w_st=1", "kd:epochs=1",
        "extract:pooling=mean", "lora:setting=q8,q16")
SETS = [part for setting in TINY for part in ("--set", setting)]


def run_study(*args: str, env: dict, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "search" / "study.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**OFFLINE_ENV, **env})


def snapshot(storage: Path) -> dict[str, bytes]:
    """Every experiment's trial folders and their result files, by path."""
    return {str(p.relative_to(storage)): p.read_bytes() for p in sorted(storage.glob("*/*/result.json"))}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """(storage, report root, first run, second run) of the smoke chain run twice on one Ray head."""
    from harness.cluster import TwoNodeCluster

    root = tmp_path_factory.mktemp("study")
    storage, reports = root / "results", root / "report"
    with TwoNodeCluster(root, head_only=True, cpus=2) as head:
        env = {**head.env, "TUNELAB_REPORT": str(reports)}
        args = ["--profile", "smoke", "--storage", str(storage), "--address", head.address, *SETS]
        first = run_study(*args, env=env)
        assert first.returncode == 0, first.stderr[-3000:]
        before = snapshot(storage)
        second = run_study(*args, env=env)
        assert second.returncode == 0, second.stderr[-3000:]
    return storage, reports, first, second, before


def test_every_study_runs_once_and_the_index_links_each_report(chain):
    storage, reports, first, _, _ = chain
    experiments = sorted(p.name for p in storage.iterdir() if (p / "tunelab_plan.json").is_file())
    assert sorted(name.split("__")[0] for name in experiments) == sorted(study.CHAIN)
    assert all(re.search(rf"^study {s}: started ", first.stdout, re.M) for s in study.CHAIN)
    index = reports / "reproduce__smoke.html"
    links = re.findall(r"<a href='([^']+)'>", index.read_text())
    assert len(links) == len(study.CHAIN)
    for space, link in zip(study.CHAIN, links, strict=True):
        page = reports / link
        assert page.name == "index.html" and page.is_file(), link
        reported = (page.parent / ".experiment").read_text().strip()
        assert locate(reported).name.split("__")[0] == space and locate(reported).parent.path == str(storage)
    assert (reports / "reproduce__smoke.md").read_text().count("index.html](") == len(study.CHAIN)


def test_kd_distils_the_best_checkpoint_of_the_chains_teachers(chain):
    storage = chain[0]
    teachers = next(storage.glob("teachers__smoke__study*"))
    kd = next(storage.glob("kd__smoke__study*"))
    best = ExperimentFolder(teachers).best_checkpoint()
    assert json.loads((kd / "tunelab_plan.json").read_text())["config"]["teacher"] == best[1].uri


def test_a_second_run_starts_nothing(chain):
    storage, _, _, second, before = chain
    assert snapshot(storage) == before
    assert second.stdout.count("finished before") == len(study.CHAIN)
    assert "started (" not in second.stdout and "resumed (" not in second.stdout
    assert "this run started 0 and resumed 0," in (chain[1] / "reproduce__smoke.md").read_text()


def test_experiment_state_is_read_as_new_finished_or_unfinished(chain, tmp_path):
    finished = next(chain[0].glob("mnist__smoke__study*"))
    copy = tmp_path / finished.name
    shutil.copytree(finished, copy)
    state_file = max(copy.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    trial = json.loads(state["trial_data"][0][0])
    state["trial_data"][0][0] = json.dumps({**trial, "status": "RUNNING"})  # as a killed driver leaves it
    state_file.write_text(json.dumps(state))
    assert study.state(locate(finished)) == study.FINISHED
    assert study.state(locate(copy)) == study.UNFINISHED
    assert study.state(locate(tmp_path / "nowhere")) == study.NEW
    step = study.Step("mnist", locate(copy), study.UNFINISHED)
    args = study.parse_args(["--storage", str(tmp_path), "--address", "127.0.0.1:1"])
    assert study.command(step, {}, args)[2:] == ["--resume", locate(copy).uri, "--address", "127.0.0.1:1"]


def test_a_failing_study_stops_the_chain_with_one_line_naming_it(tmp_path):
    storage = tmp_path / "results"
    storage.mkdir()
    (storage / "mnist__smoke__study").write_text("not an experiment")  # resumed, and refused by run.py
    done = run_study("--profile", "smoke", "--storage", str(storage), env={"TUNELAB_REPORT": str(tmp_path)},
                     timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: study mnist (") and "exited with status 2" in last
    assert [p.name for p in storage.iterdir()] == ["mnist__smoke__study"]
    assert not list(tmp_path.glob("reproduce__*"))


@pytest.mark.parametrize("flags, message", [
    (["--profile", "huge"], "--profile must be one of"),
    (["--profile", ""], "--profile must be one of"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--seeds", "-2"], "--seeds must be >= 1"),
    (["--seeds", "nan"], "invalid int value"),
    (["--seeds", "100000000000000000000"], "out of range"),
    (["--set", "degradation"], "STUDY:KEY=VALUE"),
    (["--set", "resnet:lr=0.1"], "STUDY:KEY=VALUE"),
    (["--set", "mnist:bogus=1"], "unknown key 'bogus'"),
    (["--set", "mnist:epochs=-1"], "out of range"),
    (["--set", "degradation:num_blocks=inf"], "not a valid int"),
    (["--set", "kd:temperature=1e400"], "temperature=inf is not a finite number"),
    (["--set", "lora:setting=../../x"], "does not name a known setting"),
    (["--storage", ""], "--storage is empty"),
    (["--address", " "], "--address is empty"),
])
def test_bad_flags_are_one_line_exit_2_and_nothing_written(flags, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TUNELAB_REPORT", str(tmp_path / "report"))
    storage = tmp_path / "results"
    args = ["--storage", str(storage), *flags] if "--storage" not in flags else flags
    assert study.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_file_as_storage_is_refused_from_the_shell(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    done = run_study("--profile", "smoke", "--storage", str(file), env={"TUNELAB_REPORT": str(tmp_path)},
                     timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "not writable" in done.stderr
    assert file.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_make_reproduce_passes_profile_storage_address_and_seeds():
    given = ["PROFILE=smoke", "STORAGE=/s", "ADDRESS=h:1", "SEEDS=2"]
    done = subprocess.run(["make", "-n", "reproduce", *given], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    command = " ".join(done.stdout.replace("\\\n", " ").split())
    assert "search/study.py --profile 'smoke' --storage '/s' --address 'h:1' --seeds '2'" in command, command
