"""What a person sees during a smoke search (Tune's status table with the space's columns, no per-epoch
worker chatter, where the results, report and TensorBoard are) and what TensorBoard reads afterwards."""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
EPOCHS = 2  # the degradation smoke profile


@pytest.fixture(scope="module")
def search(storage: Path):
    """A two-trial smoke search, its console output and the Ray session folder it ran in."""
    ray_temp = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))  # Ray's socket paths must stay short
    try:
        out = run_cli("--space", "degradation", "--profile", "smoke", "--set", "num_blocks=1",
                      "--storage", str(storage), "--name", "console", "--ray-temp-dir", str(ray_temp))
        assert out.returncode == 0, out.stderr[-3000:]
        yield storage / "console", out.stdout + out.stderr, ray_temp
    finally:
        shutil.rmtree(ray_temp, ignore_errors=True)


def test_console_shows_the_spaces_metric_columns_without_checkpoint_chatter(search):
    experiment, console, _ = search
    assert "Checkpoint successfully created" not in console
    # the last status table (the first ones come before any trial has reported)
    header = [line for line in console.splitlines() if "Trial name" in line and "status" in line][-1]
    columns = [c.strip() for c in header.strip("|+ ").split("|")]
    for column in ("num_blocks", "skip", "epoch", "train_loss", "val_acc"):  # grid axes, Space.progress
        assert column in columns, header
    assert "To visualize your results with TensorBoard" not in console  # Ray's /tmp/ray paths
    assert "Result logdir" not in console and f"Results: {experiment}" in console
    assert f"results: {experiment}" in console
    assert "report: " in console
    assert f"tensorboard: .venv/bin/tensorboard --logdir {experiment}" in console


def test_checkpoint_chatter_stays_in_the_worker_logs(search):
    _, _, ray_temp = search
    logs = [p.read_text(errors="replace") for p in ray_temp.glob("session_*/logs/worker-*")]
    assert any("Checkpoint successfully created" in text for text in logs)


def test_tensorboard_reads_val_acc_of_every_trial_from_the_experiment_folder(search):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    experiment, _, _ = search
    trials = sorted(p for p in experiment.iterdir() if (p / "params.json").is_file())
    assert len(trials) == 2
    for trial in trials:
        events = EventAccumulator(str(trial)).Reload()
        values = [e.value for e in events.Scalars("ray/tune/val_acc")]
        reported = [float(row["val_acc"]) for row in csv.DictReader((trial / "progress.csv").open())]
        assert 1 <= len(reported) <= EPOCHS  # ASHA may stop the weaker trial after its first epoch
        assert values == pytest.approx(reported), trial.name  # every report, as the trial made it


def test_report_names_planned_trials_that_never_started(search, tmp_path: Path):
    from analysis.overview import status_line
    from analysis.results import open_experiment

    experiment, _, _ = search
    assert "never started" not in status_line(open_experiment(experiment))
    killed = tmp_path / experiment.name  # as if the search was killed before its second trial began
    shutil.copytree(experiment, killed)
    shutil.rmtree(max(p for p in killed.iterdir() if (p / "params.json").is_file()))
    assert "1 of the 2 planned never started" in status_line(open_experiment(killed))
