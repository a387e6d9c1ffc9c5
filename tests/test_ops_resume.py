"""Fault tolerance: a crashing trial is retried from its checkpoint, a killed search resumes, and the
bad inputs around resuming fail in one line with exit status 2."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.killing import kill_driver, kill_session, start_driver
from search.options import parse_args
from search.resume import resume_plan
from search.run import main
from store.experiment import PLAN_FILE, ExperimentFolder
from tests.conftest import KILL_TEST_ENV, OFFLINE_ENV, ROOT, assert_one_line_error, ended_trials, run_cli

pytestmark = pytest.mark.slow
SMOKE = ["--space", "degradation", "--profile", "smoke", "--scheduler", "fifo", "--max-epochs", "3"]
# tests/faults/sitecustomize.py crashes a trial where TUNELAB_CRASH_AT_EPOCH says, in every process of
# the search (Ray's workers inherit the driver's environment); production code carries no such hook.
CRASH_HOOK = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "faults"),
                                                           os.environ.get("PYTHONPATH")]))}
EPOCHS = 3


def progress(trial: Path) -> list[dict]:
    file = trial / "progress.csv"
    return list(csv.DictReader(file.open())) if file.is_file() else []


def trials(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.glob("*") if (p / "params.json").is_file())


def run_main(capsys, *argv: str) -> subprocess.CompletedProcess:
    """The driver's main() in this process (no interpreter start-up), as a CompletedProcess."""
    status = main(list(argv))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(argv, status, out.out, out.err)


@pytest.fixture(scope="module")
def crashed_experiment(storage: Path) -> Path:
    """Two identical trials; the first to finish epoch 2 crashes once, the other is its twin."""
    marker = storage / "crash.marker"
    result = run_cli(*SMOKE, "--set", "num_blocks=1", "--set", "skip=true", "--num-samples", "2",
                     "--storage", str(storage), "--name", "crashed",
                     env={**CRASH_HOOK, "TUNELAB_CRASH_AT_EPOCH": "2", "TUNELAB_CRASH_MARKER": str(marker)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.is_file(), "the crash hook never fired"
    return storage / "crashed"


def test_crashed_trial_is_retried_to_the_same_metrics_as_its_twin(crashed_experiment: Path):
    crashed = [t for t in trials(crashed_experiment) if (t / "error.txt").is_file()]
    twins = [t for t in trials(crashed_experiment) if not (t / "error.txt").is_file()]
    assert len(crashed) == 1 and len(twins) == 1
    assert "crash injected" in (crashed[0] / "error.txt").read_text()
    # Retried from the epoch-1 checkpoint: every epoch reported exactly once.
    assert [int(r["epoch"]) for r in progress(crashed[0])] == list(range(1, EPOCHS + 1))
    final, twin_final = progress(crashed[0])[-1], progress(twins[0])[-1]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert float(final[key]) == pytest.approx(float(twin_final[key]), rel=1e-6, abs=1e-7), key


def test_resume_aligns_result_files_cut_by_a_killed_upload_with_the_state(crashed_experiment: Path, tmp_path):
    """Ray uploads the state and each trial's result files one by one (docs/storage.md §4): a kill in
    between leaves a state at report N beside files that end at N-1 (or N+1). Before restoring, the
    result files are cut back to the state's report, and a missing last report is written back from
    the state's copy, exactly as Ray's loggers wrote it."""
    experiment = tmp_path / "crashed"
    shutil.copytree(crashed_experiment, experiment)
    twin = next(t for t in trials(experiment) if not (t / "error.txt").is_file())
    files = {name: (twin / name).read_text() for name in ("result.json", "progress.csv")}

    def cut(keep: int) -> None:
        for name, text in files.items():
            lines = text.splitlines(keepends=True)
            (twin / name).write_text("".join(lines[:keep + (name == "progress.csv")]))

    cut(EPOCHS - 1)  # the upload carried the state of report 3 but the files of report 2
    assert ExperimentFolder(experiment).align_results_with_state() == []
    assert {name: (twin / name).read_text() for name in files} == files

    cut(EPOCHS - 2)  # reports 2 and 3 missing: 3 comes back from the state, 2 is lost and said so
    lost = ExperimentFolder(experiment).align_results_with_state()
    assert len(lost) == 2 and all("reports 2 were lost" in line and twin.name in line for line in lost)
    assert [int(r["epoch"]) for r in progress(twin)] == [1, 3]

    # The state a step behind the files: the report after it is dropped (it re-runs from checkpoint 2).
    state = max(experiment.glob("experiment_state-*.json"))
    saved = json.loads(state.read_text())
    for entry in saved["trial_data"]:
        meta = json.loads(entry[1])
        if meta["last_result"]["trial_id"] in twin.name:
            meta["last_result"] = json.loads(files["result.json"].splitlines()[1])
            entry[1] = json.dumps(meta)
    state.write_text(json.dumps(saved))
    cut(EPOCHS)
    assert ExperimentFolder(experiment).align_results_with_state() == []
    assert [int(r["epoch"]) for r in progress(twin)] == [1, 2]
    assert (twin / "result.json").read_text() == "".join(files["result.json"].splitlines(keepends=True)[:2])


def test_resume_refuses_a_different_space(crashed_experiment: Path, capsys):
    result = run_main(capsys, "--resume", str(crashed_experiment), "--space", "mnist")
    assert_one_line_error(result, "space", "new experiment")


def test_resume_refuses_a_different_grid(crashed_experiment: Path, capsys):
    result = run_main(capsys, "--resume", str(crashed_experiment), *SMOKE, "--set", "num_blocks=1,5",
                      "--set", "skip=true", "--num-samples", "2")
    assert_one_line_error(result, "grid")


def test_resume_refuses_a_profile_the_user_names_even_the_default(crashed_experiment: Path, capsys):
    result = run_main(capsys, "--resume", str(crashed_experiment), "--profile", "demo")
    assert_one_line_error(result, "profile", '"demo" vs "smoke"')


@pytest.mark.parametrize("flags", [
    ["--space", "degradation"],
    ["--max-epochs", "3"],
    ["--set", "num_blocks=1"],
    ["--scheduler", "fifo", "--seeds", "1"],
    [*SMOKE, "--set", "num_blocks=1", "--set", "skip=true", "--num-samples", "2"],
])
def test_resume_accepts_flags_that_repeat_the_stored_search(crashed_experiment: Path, flags):
    args = parse_args(["--resume", str(crashed_experiment), *flags])
    given = dict(vars(args))
    plan = resume_plan(args)
    assert (plan.profile, plan.config["epochs"]) == ("smoke", EPOCHS)  # the profile nobody named
    assert vars(args) == given  # the plan is a value: the command line is read, never patched


@pytest.mark.parametrize(("flags", "named"), [
    (["--max-epochs", "2"], "epochs"),
    (["--set", "num_blocks=3"], "num_blocks"),
    (["--scheduler", "asha"], "scheduler"),
    (["--seeds", "2"], "seeds"),
])
def test_resume_refuses_a_flag_that_changes_the_stored_search(crashed_experiment: Path, capsys, flags, named):
    result = run_main(capsys, "--resume", str(crashed_experiment), *flags)
    assert_one_line_error(result, named, "new experiment")


def test_resume_refuses_a_folder_that_is_not_an_experiment(tmp_path: Path, capsys):
    result = run_main(capsys, "--resume", str(tmp_path))
    assert_one_line_error(result, "not a tunelab experiment")
    assert list(tmp_path.iterdir()) == []


def test_a_search_killed_as_its_folder_appears_resumes_from_the_beginning(tmp_path: Path):
    """SIGKILLed the moment its folder appears, before Ray stores anything, a search leaves its whole
    plan (the folder's first file), and `--resume` runs it from the beginning to the end."""
    experiment = tmp_path / "early"
    driver = start_driver(*SMOKE, "--max-epochs", "2", "--set", "num_blocks=1", "--set", "skip=true",
                          "--set", "train_subset=256", "--set", "val_subset=128", "--storage", str(tmp_path),
                          "--name", "early")
    deadline = time.time() + 300
    try:
        while not experiment.exists() and time.time() < deadline and driver.poll() is None:
            time.sleep(0.01)
    finally:
        kill_driver(driver)
    assert json.loads((experiment / PLAN_FILE).read_text())["space"] == "degradation"
    assert not ExperimentFolder(experiment).has_tune_state(), "killed too late: Ray had stored its state"
    result = run_cli("--resume", str(experiment))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resume: the search was stopped before Ray stored its state" in result.stdout
    resumed = trials(experiment)
    assert len(resumed) == 1 and [int(r["epoch"]) for r in progress(resumed[0])] == [1, 2]


def test_a_resumed_optuna_search_keeps_the_results_of_the_trials_it_creates_after_the_resume(tmp_path: Path):
    """Optuna proposes a trial as a slot frees (one at a time here: each takes every CPU). Killed at its
    first stored report, the search creates its second trial after the resume. Ray gave that trial the
    first run's driver-side staging folder, which the resumed run never uploads: its results were lost,
    the summary counted one trial fewer and the report said one never started
    (store/recovery.py retime_trial_generators). The resume is killed in turn once the second trial
    has reported, and the Optuna searcher's state cut in half, as a kill inside Ray's upload of it
    leaves it: the last resume rebuilds it from the stored trials and says so. Every trial ends with
    every epoch stored."""
    from harness.killing import kill_at, newest_state_name

    folder = ExperimentFolder(tmp_path / "tpe")
    driver = start_driver(*SMOKE, "--search", "optuna", "--num-samples", "2", "--cpus-per-trial",
                          str(os.cpu_count() or 1), "--set", "train_subset=256", "--set", "val_subset=128",
                          "--storage", str(tmp_path), "--name", "tpe", log=tmp_path / "killed.log")
    kill_at(driver, folder, 1)
    assert len(trials(tmp_path / "tpe")) == 1, "the kill came after the second trial was created"
    after = newest_state_name(folder)
    driver = start_driver("--resume", str(tmp_path / "tpe"), log=tmp_path / "resumed.log")
    kill_at(driver, folder, EPOCHS + 1, after=after)
    assert len(trials(tmp_path / "tpe")) == 2
    searcher = max(tmp_path.glob("tpe/searcher-state-*.pkl"))
    searcher.write_bytes(searcher.read_bytes()[:searcher.stat().st_size // 2])
    result = run_cli("--resume", str(tmp_path / "tpe"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{searcher.name} (the Optuna searcher's state) was cut short by the kill; rebuilt from the 2 " \
        "trials it had proposed" in result.stderr, result.stderr[-3000:]
    assert "degradation / smoke: 2 trials" in result.stdout, result.stdout[-3000:]
    ended = trials(tmp_path / "tpe")
    assert len(ended) == 2 and all([int(r["epoch"]) for r in progress(t)] == [1, 2, 3] for t in ended)


def test_address_without_a_cluster_fails_fast_in_one_line(tmp_path: Path):
    started = time.time()
    result = run_cli(*SMOKE, "--address", "127.0.0.1:9", "--storage", str(tmp_path), timeout=120)
    assert_one_line_error(result, "--address")
    assert time.time() - started < 60
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_gpus_per_trial_without_a_gpu_fails_in_one_line(tmp_path: Path, capsys):
    result = run_main(capsys, *SMOKE, "--gpus-per-trial", "0.5", "--storage", str(tmp_path))
    assert_one_line_error(result, "GPU")


@pytest.fixture(scope="module")
def killed_gpu_search(storage: Path) -> tuple[Path, dict[str, bytes]]:
    """(experiment, progress.csv of the trials it finished) of a search SIGKILLed once one of its two
    trials has ended, whose plan then says 0.5 GPUs per trial, as a search started on a GPU machine
    stores it: the resume below happens on this CPU-only machine."""
    experiment = storage / "killed"
    # Two depths: the shallow trial finishes well before the deep one, leaving work to resume.
    driver = subprocess.Popen(
        [sys.executable, str(ROOT / "search" / "run.py"), *SMOKE, "--set", "num_blocks=1,5",
         "--set", "skip=false", "--set", "train_subset=1024", "--storage", str(storage), "--name", "killed"],
        cwd=ROOT, env={**os.environ, **OFFLINE_ENV, **KILL_TEST_ENV}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        finished: dict[str, bytes] = {}
        while not finished and time.time() < deadline and driver.poll() is None:
            time.sleep(0.1)
            finished = ended_trials(ExperimentFolder(experiment), EPOCHS)
    finally:
        driver.kill()
        driver.wait()
        kill_session(driver.pid)
    assert finished, "no trial finished before the deadline"
    assert len(finished) < 2, "every trial finished before the kill: nothing left to resume"
    plan = json.loads((experiment / PLAN_FILE).read_text())
    plan["gpus"] = 0.5
    (experiment / PLAN_FILE).write_text(json.dumps(plan))
    return experiment, finished


def test_resumed_gpu_search_on_a_cpu_machine_is_refused_in_one_line(killed_gpu_search):
    experiment, _ = killed_gpu_search
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    refused = run_cli("--resume", str(experiment))  # Ray would wait forever for a GPU
    assert_one_line_error(refused, "no node of the Ray cluster", "--gpus-per-trial 0")
    assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before


def test_killed_search_resumes_on_the_cpus_without_rerunning_finished_trials(killed_gpu_search):
    experiment, finished = killed_gpu_search
    result = run_cli("--resume", str(experiment), "--gpus-per-trial", "0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trials now request 1 CPUs and 0 GPUs (the experiment started with 1 and 0.5)" in result.stdout
    resumed = trials(experiment)
    assert len(resumed) == 2  # none lost, none duplicated
    for trial in resumed:
        assert [int(r["epoch"]) for r in progress(trial)] == list(range(1, EPOCHS + 1)), trial.name
    for name, before in finished.items():
        assert (experiment / name / "progress.csv").read_bytes() == before, f"{name} was re-run"


def _damage(experiment: Path, damage: str) -> None:
    trial = trials(experiment)[0]
    state_file = max(experiment.glob("experiment_state-*.json"))
    state = json.loads(state_file.read_text())
    if damage == "result line":  # a line cut in the middle of the file
        lines = (trial / "result.json").read_text().splitlines(keepends=True)
        (trial / "result.json").write_text("".join([lines[0], lines[1][:40] + "\n", *lines[2:]]))
    elif damage == "checkpoint":  # the checkpoint an unfinished trial resumes from holds garbage
        for entry in state["trial_data"]:
            record = json.loads(entry[0])
            if record["relative_logdir"] == trial.name:
                record["status"] = "RUNNING"
                entry[0] = json.dumps(record)
                named = json.loads(entry[1])["last_result"]["checkpoint_dir_name"]
        state_file.write_text(json.dumps(state))
        (trial / named / "state.pt").write_bytes(os.urandom(4096))
    elif damage == "ray version":  # the plan says another Ray made it
        plan = json.loads((experiment / PLAN_FILE).read_text())
        plan["provenance"]["packages"]["ray"] = "2.9.3"
        (experiment / PLAN_FILE).write_text(json.dumps(plan))
    elif damage == "ray state":  # Ray's pickled bookkeeping names a class this Ray does not have
        old = b"\x80\x02cray.train._internal.checkpoint_manager\n_CheckpointManagerV0\n)\x81."
        meta = json.loads(state["trial_data"][0][1])
        meta["checkpoint_manager"]["value"] = old.hex()
        state["trial_data"][0][1] = json.dumps(meta)
        state_file.write_text(json.dumps(state))
    elif damage == "plan":
        (experiment / PLAN_FILE).unlink()


@pytest.mark.parametrize(("damage", "said"), [
    ("result line", "corrupt result file"),
    ("checkpoint", "not a torch checkpoint"),
    ("ray version", "written by Ray 2.9.3"),
    ("ray state", "cannot be read by Ray"),
    ("plan", "not a tunelab experiment"),
])
def test_resume_of_a_damaged_experiment_is_one_line_and_rewrites_nothing(crashed_experiment: Path, tmp_path,
                                                                         capsys, damage, said):
    experiment = tmp_path / "damaged"
    shutil.copytree(crashed_experiment, experiment)
    _damage(experiment, damage)
    before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
    result = run_main(capsys, "--resume", str(experiment))
    assert_one_line_error(result, said)
    assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before


def test_resume_of_an_experiment_a_live_driver_holds_is_refused(crashed_experiment: Path, tmp_path, capsys):
    """The lease names a live process (a stand-in for the first driver: only its pid and start time
    count), so a second `--resume` is refused before Ray starts, and nothing is rewritten (item 4)."""
    from store.lease import LEASE_FILE, _started

    experiment = tmp_path / "held"
    shutil.copytree(crashed_experiment, experiment)
    holder = subprocess.Popen(["sleep", "120"], start_new_session=True)
    try:
        (experiment / LEASE_FILE).write_text(json.dumps({
            "holder": f"someone pid {holder.pid}", "host": socket.gethostname(), "pid": holder.pid,
            "pid_started": _started(holder.pid), "started": time.time(), "renewed": time.time(),
            "token": "first"}))
        before = {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()}
        result = run_main(capsys, "--resume", str(experiment))
        assert_one_line_error(result, "held by a running driver", f"pid {holder.pid}")
        assert {p: p.read_bytes() for p in experiment.rglob("*") if p.is_file()} == before
    finally:
        holder.kill()
        holder.wait()


def test_a_search_with_a_trial_in_error_exits_3_naming_it(storage: Path):
    """Every attempt of the one trial crashes at epoch 2 (no marker: no one-crash limit), so it ends in
    ERROR after its retries: the search must not look like one that succeeded (item 5)."""
    result = run_cli(*SMOKE, "--max-epochs", "2", "--set", "num_blocks=1", "--set", "skip=true",
                     "--set", "train_subset=256", "--set", "val_subset=128", "--storage", str(storage),
                     "--name", "errored", env={**CRASH_HOOK, "TUNELAB_CRASH_AT_EPOCH": "2"})
    assert result.returncode == 3, result.stderr[-3000:]
    named = [line for line in result.stderr.splitlines() if "ended in ERROR" in line]
    assert len(named) == 1 and named[0].startswith("error: 1 trial(s)"), result.stderr[-3000:]
    errored = trials(storage / "errored")
    assert len(errored) == 1 and errored[0].name in named[0] and (errored[0] / "error.txt").is_file()
