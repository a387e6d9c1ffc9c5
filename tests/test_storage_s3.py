"""Storage on a URI: searches, report, evaluate and kd read and write an S3 bucket (a real local
moto_server, harness/s3server.py), nothing lands on the local disk, and bad storage fails in one line.
Killing and resuming a search on S3: tests/test_kill_sweep.py."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import OFFLINE_ENV, ROOT, assert_one_line_error, run_cli
from tests.test_ops_resume import run_main

pytestmark = pytest.mark.slow
SMOKE = ["--space", "degradation", "--profile", "smoke", "--scheduler", "fifo", "--set", "train_subset=256",
         "--set", "val_subset=128"]
PLAIN = ["--space", "degradation", "--profile", "smoke"]


def run_tool(tool: str, *args: str, env: dict, reports) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "analysis" / tool), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **OFFLINE_ENV, **env, "TUNELAB_REPORT": str(reports)})


def read_csv(s3, key: str) -> pd.DataFrame:
    with s3.fs.open_input_stream(f"{s3.bucket}/{key}") as stream:
        return pd.read_csv(io.BytesIO(stream.read()))


def read_json(s3, key: str) -> dict:
    with s3.fs.open_input_stream(f"{s3.bucket}/{key}") as stream:
        return json.loads(stream.read())


def trial_folders(s3, experiment: str) -> list[str]:
    return sorted({k.split("/")[-2] for k in s3.keys(experiment) if k.endswith("/params.json")})


def no_local_uri_folders() -> None:
    """The old driver turned `--storage s3://…` into a local folder `./s3:/…`."""
    assert not (ROOT / "s3:").exists() and not (ROOT / "results" / "s3:").exists()


@pytest.fixture(scope="module")
def degradation(s3) -> str:
    """A degradation smoke search (two trials, two epochs) with --storage on the bucket."""
    result = run_cli(*SMOKE, "--set", "num_blocks=1", "--max-epochs", "2", "--storage", s3.uri("results"),
                     "--name", "deg", env=s3.env)
    assert result.returncode == 0, result.stderr[-3000:]
    return "results/deg"


def test_search_on_s3_keeps_plan_results_and_checkpoints_in_the_bucket(s3, degradation):
    keys = s3.keys(degradation)
    assert f"{degradation}/tunelab_plan.json" in keys
    trials = trial_folders(s3, degradation)
    assert len(trials) == 2
    for trial in trials:
        assert f"{degradation}/{trial}/result.json" in keys and f"{degradation}/{trial}/progress.csv" in keys
        # Pruned when the search ended: the best report's checkpoint (the later among equals) and the latest.
        rows = [json.loads(line) for line in s3.fs.open_input_stream(
            f"{s3.bucket}/{degradation}/{trial}/result.json").read().decode().splitlines()]
        best = max(rows, key=lambda r: (r["val_acc"], r["training_iteration"]))
        kept = {k.split("/")[-2] for k in keys if k.startswith(f"{degradation}/{trial}/checkpoint_")
                and k.endswith("/state.pt")}
        assert kept == {best["checkpoint_dir_name"], rows[-1]["checkpoint_dir_name"]}, trial
    plan = read_json(s3, f"{degradation}/tunelab_plan.json")
    assert plan["space"] == "degradation" and plan["metric"] == "val_acc"
    # Credentials stay in the environment: nothing stored in the bucket names them.
    for key in keys:
        if key.endswith((".json", ".csv")):
            with s3.fs.open_input_stream(f"{s3.bucket}/{key}") as stream:
                text = stream.read().decode(errors="replace")
            for secret in (s3.env["AWS_SECRET_ACCESS_KEY"], s3.env["AWS_ACCESS_KEY_ID"]):
                assert secret not in text, key
    no_local_uri_folders()


def test_report_from_s3_equals_a_recomputation_from_the_bucket_progress_csv(s3, degradation, tmp_path):
    result = run_tool("report.py", s3.uri(degradation), env=s3.env, reports=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "deg" / "degradation_best.csv").set_index(["num_blocks", "skip"])
    expected = {}
    for trial in trial_folders(s3, degradation):
        progress = read_csv(s3, f"{degradation}/{trial}/progress.csv")
        params = read_json(s3, f"{degradation}/{trial}/params.json")
        expected[(params["num_blocks"], params["skip"])] = progress["val_acc"].max()
    assert len(table) == len(expected) == 2
    for cell, best in expected.items():
        assert table.loc[cell, "val_acc"] == pytest.approx(best, abs=1e-12), cell
    assert s3.uri(degradation) in (tmp_path / "deg" / "README.md").read_text()
    # The latest degradation experiment in the bucket is found the same way.
    latest = run_tool("report.py", "--space", "degradation", "--storage", s3.uri("results"), env=s3.env,
                      reports=tmp_path / "latest")
    assert latest.returncode == 0, latest.stderr[-3000:]
    assert (tmp_path / "latest" / "deg" / "degradation_best.csv").read_text() == \
        (tmp_path / "deg" / "degradation_best.csv").read_text()


def test_evaluate_from_s3_reproduces_the_stored_val_acc(s3, degradation, tmp_path):
    result = run_tool("evaluate.py", s3.uri(degradation), "--split", "val", env=s3.env, reports=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((tmp_path / "deg" / "evaluation_val.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(evaluation["stored_val_acc"], abs=1e-6)
    best = max(read_csv(s3, f"{degradation}/{t}/progress.csv")["val_acc"].max()
               for t in trial_folders(s3, degradation))
    assert evaluation["stored_val_acc"] == pytest.approx(best, abs=1e-12)


def test_existing_experiment_on_s3_is_refused_and_left_as_it_was(s3, degradation):
    before = {k: s3.fs.get_file_info(f"{s3.bucket}/{k}").mtime for k in s3.keys(degradation)}
    result = run_cli(*SMOKE, "--storage", s3.uri("results"), "--name", "deg", env=s3.env)
    assert_one_line_error(result, "already exists")
    assert {k: s3.fs.get_file_info(f"{s3.bucket}/{k}").mtime for k in s3.keys(degradation)} == before


def test_kd_finds_its_teacher_in_the_bucket_and_caches_logits_there(s3):
    teachers = run_cli("--space", "teachers", "--profile", "smoke", "--set", "model=resnet8",
                       "--set", "train_subset=256", "--set", "val_subset=128", "--max-epochs", "1",
                       "--storage", s3.uri("results"), "--name", "teachers__smoke", env=s3.env)
    assert teachers.returncode == 0, teachers.stderr[-2000:]
    kd = run_cli("--space", "kd", "--profile", "smoke", "--scheduler", "fifo", "--storage", s3.uri("results"),
                 "--name", "kd__smoke", "--set", "temperature=2", "--set", "w_st=1",
                 "--set", "train_subset=256", "--set", "val_subset=128", env=s3.env)
    assert kd.returncode == 0, kd.stderr[-2000:]
    teacher_line = next(line for line in kd.stdout.splitlines() if line.startswith("teacher: resnet8"))
    assert f"s3://{s3.bucket}/results/teachers__smoke/" in teacher_line
    params = [read_json(s3, f"results/kd__smoke/{t}/params.json")
              for t in trial_folders(s3, "results/kd__smoke")]
    assert len(params) == 2 and all(p["teacher"].startswith(f"s3://{s3.bucket}/") for p in params)
    # Two trials (the cell and the baseline arm), two epochs, one seed: two entries, in the bucket.
    entries = [k for k in s3.keys("results/teacher_logits") if k.endswith(".pt")]
    assert sorted(k.rsplit("/", 1)[1] for k in entries) == ["seed0_epoch0.pt", "seed0_epoch1.pt"], entries
    no_local_uri_folders()


# Bad storage: one line, exit status 2, before anything is written. In this process (no interpreter
# start-up per case), with the server's credentials in the environment.


@pytest.fixture
def aws_env(s3, monkeypatch):
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)


def test_a_scheme_pyarrow_does_not_know_is_one_line(capsys, aws_env):
    result = run_main(capsys, *PLAIN, "--storage", "nosuchfs://bucket/x")
    assert_one_line_error(result, "nosuchfs")
    assert not (ROOT / "nosuchfs:").exists()


def test_a_bucket_that_does_not_exist_is_one_line(s3, capsys, aws_env):
    before = s3.keys()
    missing = s3.uri("x").replace(s3.bucket, "tunelab-no-such-bucket")
    result = run_main(capsys, *PLAIN, "--storage", missing)
    assert_one_line_error(result, "tunelab-no-such-bucket", "does not exist")
    assert s3.keys() == before
    no_local_uri_folders()


def test_an_s3_endpoint_that_does_not_answer_is_one_line_within_seconds(capsys, aws_env):
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"s3://tunelab-results/x?endpoint_override=127.0.0.1:{silent.getsockname()[1]}&scheme=http"
        started = time.monotonic()
        result = run_main(capsys, *PLAIN, "--storage", uri)
        seconds = time.monotonic() - started
    assert_one_line_error(result, "does not answer")
    assert seconds < 15  # the store's own calls give up after ~5 s, without retries


def test_a_uri_with_credentials_is_refused_and_not_echoed(s3, capsys, aws_env):
    result = run_main(capsys, *PLAIN, "--storage", s3.uri("x") + "&secret_key=do-not-print-me")
    assert_one_line_error(result, "credential")
    assert "do-not-print-me" not in result.stderr + result.stdout


def test_resume_and_report_on_a_uri_without_an_experiment_are_one_line(s3, capsys, aws_env, tmp_path):
    from analysis.report import main as report_main

    before = s3.keys()
    result = run_main(capsys, "--resume", s3.uri("results/nothing-here"))
    assert_one_line_error(result, "--resume")
    status = report_main([s3.uri("results/nothing-here"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert s3.keys() == before and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_storage_outage_mid_search_ends_the_driver_in_one_line_with_status_4(tmp_path):
    """Issue 17, item 6: the S3 server stops while trials run (after a checkpoint of each is stored).
    The driver neither hangs nor ends in a traceback: its lease renewals notice the outage, the search
    stops as on Ctrl-C, and the last line says what happened and how to resume (exit status 4)."""
    import signal

    from harness.s3server import S3Server
    from search.outage import STORAGE_LOST

    with S3Server(log=tmp_path / "moto.log") as s3:
        command = [sys.executable, str(ROOT / "search" / "run.py"), "--space", "degradation", "--profile",
                   "smoke", "--scheduler", "fifo", "--max-epochs", "8", "--set", "num_blocks=1", "--set",
                   "skip=true", "--num-samples", "2", "--storage", s3.uri("tl"), "--name", "outage"]
        with open(tmp_path / "stderr.log", "wb") as err:
            driver = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **OFFLINE_ENV, **s3.env},
                                      stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.time() + 300
            while time.time() < deadline and driver.poll() is None:
                stored = s3.keys("tl/outage")
                if sum("/checkpoint_000001/" in key for key in stored) >= 2:  # both trials under way
                    break
                time.sleep(0.5)
            assert driver.poll() is None, "the search ended before the outage"
            s3.stop()
            status = driver.wait(timeout=300)  # a hang fails here
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
    last = (tmp_path / "stderr.log").read_text().strip().splitlines()[-1]
    assert status == STORAGE_LOST, last
    assert last.startswith("error: the storage of s3://") and "stopped answering" in last, last
    assert "--resume" in last
