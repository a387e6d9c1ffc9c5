"""A real two-node Ray cluster (harness/cluster.py: the documented `ray start` commands, the worker in a mount
namespace that hides the driver's data and results) with its storage on a real S3 server (moto_server).

Searches run on both nodes with checkpoints in the bucket, a killed driver resumes from the bucket, the
report from the bucket equals a recomputation from its progress.csv files, and what cannot work (a
local --storage, a client without RAY_AUTH_MODE=token) is refused in one line before any trial.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from harness.cluster import (
    DOC_BUCKET,
    WORKER_IP,
    TwoNodeCluster,
    cluster_doc_command,
    cluster_doc_commands,
    unshare_permitted,
)
from store.experiment import ExperimentFolder
from tests.conftest import KILL_TEST_ENV, ROOT, assert_one_line_error, ended_trials

pytestmark = pytest.mark.slow
SEARCH_TIMEOUT_S = 900


def test_the_readme_has_every_command_this_module_runs():
    commands = cluster_doc_commands()
    # Token auth on, and `ray start` neither announces nor posts usage stats (issue 17, item 9).
    assert commands[0] == ("export RAY_AUTH_MODE=token RAY_USAGE_STATS_ENABLED=0 "
                           "RAY_USAGE_STATS_REPORT_URL=http://127.0.0.1:9/")
    for needles in (("ray start", "--head"), ("ray start", "--node-ip-address", "10.0.0.2"),
                    ("search/run.py", "--storage"), ("search/run.py", "--resume"), ("analysis/report.py",)):
        assert cluster_doc_command(*needles)
    assert all(DOC_BUCKET in c for c in commands if "search/run.py" in c or "report.py" in c)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The driver's local results folder: hidden from the worker node by a tmpfs."""
    return tmp_path_factory.mktemp("cluster-results")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3, results):
    reason = unshare_permitted()
    if reason:
        print(f"skipped: {reason}")
        pytest.skip(reason)
    with TwoNodeCluster(tmp_path_factory.mktemp("cluster"), env=s3.env, hidden=(results,)) as running:
        yield running


def sh(cluster: TwoNodeCluster, command: str, env: dict | None = None,
       timeout: int = SEARCH_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**cluster.env, **(env or {})})


def read(s3, key: str) -> bytes:
    with s3.fs.open_input_stream(f"{s3.bucket}/{key}") as stream:
        return stream.read()


def trial_folders(s3, experiment: str) -> list[str]:
    return sorted({k.split("/")[-2] for k in s3.keys(experiment) if k.endswith("/params.json")})


def test_a_client_without_token_auth_mode_is_told_to_set_it(cluster, s3):
    search = cluster.as_run(cluster_doc_command("search/run.py", "--storage"), storage=s3.uri("tunelab"))
    env = {k: v for k, v in cluster.env.items() if k != "RAY_AUTH_MODE"}
    result = subprocess.run(["sh", "-c", search], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env=env)
    assert_one_line_error(result, "RAY_AUTH_MODE=token")
    # The refusal comes from the address check's GCS probe, before ray.init (which would retry ~25 s):
    probe = subprocess.run([sys.executable, "-c", "import sys; from cli import UsageError; "
                            "from search.cluster import check_address\n"
                            f"try: check_address({cluster.address!r})\n"
                            "except UsageError as err: sys.exit(f'refused: {err}')"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert probe.returncode == 1 and "refused: " in probe.stderr and "RAY_AUTH_MODE=token" in probe.stderr


def test_a_local_storage_on_two_nodes_is_refused_before_any_trial(cluster, results):
    search = cluster.as_run(cluster_doc_command("search/run.py", "--storage"), storage=str(results))
    assert f"--storage {results}" in search
    result = sh(cluster, search, timeout=300)
    assert_one_line_error(result, f"node {WORKER_IP}", "NFS", "s3://")
    assert not (results / "deg").exists(), "a trial or plan was written before the refusal"
    assert [p.name for p in results.iterdir()] == [], "the node check's marker was left behind"


@pytest.fixture(scope="module")
def degradation(cluster, s3) -> dict:
    """The documented search on the bucket, its driver SIGKILLed once a trial finished, then the documented
    --resume: {"experiment": key prefix, "finished": progress.csv of trials finished before the kill}."""
    storage = s3.uri("tunelab")
    experiment, epochs = "tunelab/deg", 2
    folder = ExperimentFolder(s3.location(experiment))

    search = cluster.as_run(cluster_doc_command("search/run.py", "--storage"), storage=storage)
    log = open(cluster.workdir / "driver-killed.log", "wb")
    driver = subprocess.Popen(["sh", "-c", f"exec {search}"], cwd=ROOT, env={**cluster.env, **KILL_TEST_ENV},
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, finished = time.time() + SEARCH_TIMEOUT_S, {}
        while not finished and time.time() < deadline and driver.poll() is None:
            time.sleep(1)
            finished = ended_trials(folder, epochs)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        driver.wait()
    driver_log = (cluster.workdir / "driver-killed.log").read_text()
    assert finished, f"no trial finished before the kill: {driver_log[-3000:]}"
    left = [s for s in folder.trial_statuses().values() if s != "TERMINATED"]
    assert left, "every trial finished before the kill: nothing left to resume"
    resume = sh(cluster, cluster.as_run(cluster_doc_command("search/run.py", "--resume"), storage=storage))
    assert resume.returncode == 0, resume.stdout[-2000:] + resume.stderr[-3000:]
    return {"experiment": experiment, "finished": finished, "after": ended_trials(folder, epochs),
            "storage": storage}


def test_a_killed_search_resumes_from_the_bucket_with_trials_on_both_nodes(s3, degradation):
    experiment = degradation["experiment"]
    trials = trial_folders(s3, experiment)
    assert len(trials) == 6  # degradation's grid, none lost, none duplicated
    node_ips = set()
    for trial in trials:
        rows = [json.loads(line) for line in read(s3, f"{experiment}/{trial}/result.json").splitlines()]
        # A row the resume rebuilt from a checkpoint's own metrics (store/recovery.py) has no node_ip.
        ran_on = {row["node_ip"] for row in rows if "node_ip" in row}
        assert ran_on, trial
        node_ips |= ran_on
        keys = s3.keys(f"{experiment}/{trial}")
        assert any("/checkpoint_" in k and k.endswith("/state.pt") for k in keys), trial
    # Ray takes the machine's address for a head started on 127.0.0.1; the worker keeps 127.0.0.2.
    assert len(node_ips) == 2 and WORKER_IP in node_ips
    after = degradation["after"]
    finished = degradation["finished"]
    assert {t: after.get(t) for t in finished} == finished, "a finished trial re-ran"
    plan = json.loads(read(s3, f"{experiment}/tunelab_plan.json"))
    nodes = plan["provenance"]["nodes"]
    assert {n["ip"] for n in nodes} == node_ips
    assert all(n["resources"]["CPU"] == 1 for n in nodes)
    assert plan["provenance"]["git"]["commit"] and plan["provenance"]["packages"]["ray"] == version("ray")


def test_the_report_from_the_bucket_equals_a_recomputation_from_its_progress_csv(cluster, s3, degradation,
                                                                                   tmp_path):
    report = cluster.as_run(cluster_doc_command("analysis/report.py"), storage=degradation["storage"])
    result = sh(cluster, report, env={"TUNELAB_REPORT": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "deg" / "degradation_best.csv").set_index(["num_blocks", "skip"])
    expected = {}
    experiment = degradation["experiment"]
    for trial in trial_folders(s3, experiment):
        progress = pd.read_csv(io.BytesIO(read(s3, f"{experiment}/{trial}/progress.csv")))
        params = json.loads(read(s3, f"{experiment}/{trial}/params.json"))
        expected[(params["num_blocks"], params["skip"])] = progress["val_acc"].max()
    assert len(table) == len(expected) == 6
    for cell, best in expected.items():
        assert table.loc[cell, "val_acc"] == pytest.approx(best, abs=1e-12), cell
    readme = (tmp_path / "deg" / "README.md").read_text()
    assert "## Provenance" in readme and f"| {WORKER_IP} |" in readme


def cluster_search(cluster, s3, *args: str) -> subprocess.CompletedProcess:
    """The documented driver command with another space and arguments."""
    search = cluster.as_run(cluster_doc_command("search/run.py", "--storage"), storage=s3.uri("tunelab"))
    base = search.split(" --space ", 1)[0]
    return sh(cluster, " ".join([base, *args]))


def test_teachers_then_kd_find_the_teacher_in_the_bucket(cluster, s3):
    small = "--set train_subset=256 --set val_subset=128"
    teachers = cluster_search(cluster, s3, "--space teachers --profile smoke --set model=resnet8", small,
                              "--max-epochs 1 --name teachers__smoke")
    assert teachers.returncode == 0, teachers.stdout[-2000:] + teachers.stderr[-3000:]
    kd = cluster_search(cluster, s3, "--space kd --profile smoke --scheduler fifo --set temperature=2",
                        "--set w_st=1", small, "--name kd__smoke")
    assert kd.returncode == 0, kd.stdout[-2000:] + kd.stderr[-3000:]
    teacher_line = next(line for line in kd.stdout.splitlines() if line.startswith("teacher: "))
    assert f"s3://{s3.bucket}/tunelab/teachers__smoke/" in teacher_line
    trials = trial_folders(s3, "tunelab/kd__smoke")
    assert trials and all(json.loads(read(s3, f"tunelab/kd__smoke/{t}/params.json"))["teacher"]
                          .startswith(f"s3://{s3.bucket}/") for t in trials)


def test_lora_runs_on_the_cluster(cluster, s3):
    lora = cluster_search(cluster, s3, "--space lora --profile smoke --name lora__smoke")
    assert lora.returncode == 0, lora.stdout[-2000:] + lora.stderr[-3000:]
    trials = trial_folders(s3, "tunelab/lora__smoke")
    assert trials and all(any(k.endswith("/state.pt") for k in s3.keys(f"tunelab/lora__smoke/{t}"))
                          for t in trials)


def test_a_lost_worker_node_costs_no_trial(cluster, s3):
    """Issue 17, item 3. Two identical trials, one per node. Once the worker node's trial has a
    checkpoint in the bucket and is unfinished, the worker node's process group is SIGKILLed: the search
    goes on, that trial restarts on the head from its last checkpoint, and it ends with its twin's
    per-epoch metrics (training is deterministic), every epoch reported once. Runs last: the cluster
    has one node after it."""
    experiment, epochs = "tunelab/lost-node", 4
    folder = ExperimentFolder(s3.location(experiment))
    search = cluster.as_run(cluster_doc_command("search/run.py", "--storage"), storage=s3.uri("tunelab"))
    args = (f"--space degradation --profile smoke --scheduler fifo --max-epochs {epochs} --num-samples 2 "
            "--set num_blocks=1 --set skip=true --set train_subset=1024 --set val_subset=128 "
            "--name lost-node")
    log = open(cluster.workdir / "driver-lost-node.log", "wb")
    driver = subprocess.Popen(["sh", "-c", f"exec {search.split(' --space ', 1)[0]} {args}"], cwd=ROOT,
                              env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, on_worker = time.time() + SEARCH_TIMEOUT_S, None
        while on_worker is None and time.time() < deadline and driver.poll() is None:
            time.sleep(0.5)
            for trial in folder.trials():
                rows = trial.results()
                if rows and rows[-1].get("node_ip") == WORKER_IP and len(rows) < epochs:
                    on_worker = trial.name
        assert on_worker, f"no unfinished trial with a checkpoint on the worker node ({driver.poll()})"
        os.killpg(cluster.procs[1].pid, signal.SIGKILL)  # the worker node: `ray start` and its raylet
        status = driver.wait(timeout=SEARCH_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    driver_log = (cluster.workdir / "driver-lost-node.log").read_text()
    assert status == 0, driver_log[-3000:]
    assert set(folder.trial_statuses().values()) == {"TERMINATED"}, driver_log[-3000:]
    curves = {}
    for trial in folder.trials():
        rows = trial.results()
        assert [r["training_iteration"] for r in rows] == list(range(1, epochs + 1)), trial.name
        curves[trial.name] = [(r["epoch"], r["train_loss"], r["val_loss"], r["val_acc"]) for r in rows]
    twin = next(name for name in curves if name != on_worker)
    assert curves[on_worker] == curves[twin], "the restarted trial's metrics differ from its twin's"
    assert trial_nodes(folder, on_worker)[-1] != WORKER_IP, "the lost node's trial did not move to the head"


def trial_nodes(folder: ExperimentFolder, name: str) -> list[str]:
    return [r.get("node_ip") for t in folder.trials() if t.name == name for r in t.results()]


def test_a_lost_head_resumes_on_a_fresh_head_and_a_joining_node_takes_pending_trials(tmp_path, s3):
    """Issue 17, item 3. Four identical trials on a one-CPU head. The head's and the driver's process
    groups are SIGKILLed while a trial is unfinished and the bucket's stored state names it; a fresh
    head then runs the documented `--resume` from the bucket, and a worker node joins while trials are
    still pending: it receives one of them. The search ends with every trial TERMINATED, each epoch
    reported once, and the four trials' metrics equal (training is deterministic)."""
    if reason := unshare_permitted():
        pytest.skip(reason)
    experiment, epochs, trials = "tunelab/lost-head", 4, 4
    folder = ExperimentFolder(s3.location(experiment))
    args = (f"--space degradation --profile smoke --scheduler fifo --max-epochs {epochs} "
            f"--num-samples {trials} --set num_blocks=1 --set skip=true --set train_subset=1024 "
            "--set val_subset=128 --name lost-head")
    (tmp_path / "old").mkdir()
    (tmp_path / "fresh").mkdir()
    with TwoNodeCluster(tmp_path / "old", env={**s3.env, **KILL_TEST_ENV}, head_only=True) as old:
        search = old.as_run(cluster_doc_command("search/run.py", "--storage"), storage=s3.uri("tunelab"))
        driver = start_search(["sh", "-c", f"exec {search.split(' --space ', 1)[0]} {args}"], old.env,
                              tmp_path / "driver.log")
        try:
            deadline, unfinished = time.time() + SEARCH_TIMEOUT_S, []
            while not unfinished and time.time() < deadline and driver.poll() is None:
                time.sleep(0.5)
                stored = folder.trial_statuses()  # Ray's stored experiment state, as --resume reads it
                running = [tid for tid, status in stored.items() if status != "TERMINATED"]
                unfinished = [t.name for t in folder.trials() if 0 < len(t.results()) < epochs
                              and any(tid in t.name for tid in running)]
            assert unfinished, f"no unfinished trial in the stored state before the end ({driver.poll()})"
            os.killpg(old.procs[0].pid, signal.SIGKILL)  # the head: `ray start`, its GCS and raylet
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
            driver.wait()
    started_before = {t.name for t in folder.trials() if t.results()}
    assert len(started_before) < trials, "every trial had started: none left pending for a joining node"
    with TwoNodeCluster(tmp_path / "fresh", env=s3.env, head_only=True) as fresh:
        resume = fresh.as_run(cluster_doc_command("search/run.py", "--resume"), storage=s3.uri("tunelab"))
        resume = resume.replace("/deg?", "/lost-head?")  # the documented name is another experiment's
        assert "/lost-head?" in resume
        driver = start_search(["sh", "-c", f"exec {resume}"], fresh.env, tmp_path / "resume.log")
        try:
            fresh.add_worker()  # joins the running search
            status = driver.wait(timeout=SEARCH_TIMEOUT_S)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    log = (tmp_path / "resume.log").read_text()
    assert status == 0, log[-3000:]
    assert set(folder.trial_statuses().values()) == {"TERMINATED"}, log[-3000:]
    curves = []
    for trial in folder.trials():
        rows = trial.results()
        assert [r["training_iteration"] for r in rows] == list(range(1, epochs + 1)), trial.name
        curves.append([(r["epoch"], r["train_loss"], r["val_loss"], r["val_acc"]) for r in rows])
    assert len(curves) == trials and all(c == curves[0] for c in curves), "resumed metrics differ"
    on_worker = [t.name for t in folder.trials() if t.name not in started_before
                 and any(r.get("node_ip") == WORKER_IP for r in t.results())]
    assert on_worker, "the node that joined mid-search received no pending trial"


def start_search(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """A driver in a session of its own (so a test can SIGKILL exactly its process group)."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
