"""The text spaces as users run them: smoke searches of extract and lora, the lora table and text notebook
read from that lora search, and bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.results import open_experiment
from analysis.tables import study_table
from tests.conftest import assert_refused_in_process, run_cli
from tests.notebook import execute, rendered
from trainables.config import build
from trainables.extract import ExtractConfig, fit_extract
from trainables.finetune import TextConfig, fit_text_classifier
from trainables.reporting import STATE_FILE, MemoryReporter

BAD_TEXT_INPUTS = {
    "unknown backbone": ["--space", "lora", "--set", "backbone=roberta"],
    "unknown target": ["--space", "lora", "--set", "setting=qk8"],
    "rank zero": ["--space", "lora", "--set", "setting=qv0"],
    "negative rank": ["--space", "lora", "--set", "setting=q-8"],
    "missing model path": ["--space", "lora", "--set", "model_path=/nonexistent/minilm"],
    "unknown extractor": ["--space", "extract", "--set", "extractor=bert-large"],
    "unknown pooling": ["--space", "extract", "--set", "pooling=max"],
}


@pytest.mark.parametrize("args", BAD_TEXT_INPUTS.values(), ids=BAD_TEXT_INPUTS.keys())
def test_bad_text_input_returns_2_with_one_line(args, tmp_path, capsys):
    assert_refused_in_process(args, tmp_path, capsys)


def results(trial) -> list[dict]:
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]


def trials_of(experiment) -> list:
    return [p for p in experiment.iterdir() if (p / "params.json").is_file()]


def retrained(config_cls, fit_trial, trial) -> list[dict]:
    """The reports of `trial`'s config trained again in this process: training is deterministic, so
    they must equal what the search stored."""
    reporter = MemoryReporter()
    fit_trial(build(config_cls, json.loads((trial / "params.json").read_text())), reporter)
    return reporter.history


@pytest.fixture(scope="module")
def lora_search(tmp_path_factory) -> Path:
    """The lora smoke search (its seven settings, on the tiny DistilBERT), with its report."""
    root = tmp_path_factory.mktemp("lora")
    result = run_cli("--space", "lora", "--profile", "smoke", "--storage", str(root / "results"),
                     "--name", "lora", env={"TUNELAB_REPORT": str(root / "report")}, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (root / "report" / "lora" / "lora.svg").is_file()
    return root / "results" / "lora"


@pytest.mark.slow
def test_lora_smoke_search_reports_half_epochs_and_saves_only_trainable_weights(lora_search):
    trials = trials_of(lora_search)
    assert len(trials) == 7
    params = {}
    for trial in trials:
        setting = json.loads((trial / "params.json").read_text())["setting"]
        rows = results(trial)
        assert [row["epoch"] for row in rows] == [0.5, 1.0][:len(rows)]  # the scheduler may stop at 0.5
        assert all(row["tokens_per_s"] > 0 for row in rows)
        params[setting] = rows[-1]["trainable_params"]
        assert rows[-1]["log10_trainable_params"] == pytest.approx(torch.log10(
            torch.tensor(float(params[setting]))).item(), rel=1e-6)
        checkpoint = next(p for p in trial.iterdir() if p.name.startswith("checkpoint_"))
        state = torch.load(checkpoint / STATE_FILE, weights_only=True)
        assert sum(t.numel() for t in state["trainable"].values()) == params[setting]
    assert params["q8"] < params["q16"] < params["qv16"] < params["qkvo16"] < params["full"]
    q8 = next(t for t in trials if json.loads((t / "params.json").read_text())["setting"] == "q8")
    stored = [row["val_acc"] for row in results(q8)]
    assert [row["val_acc"] for row in retrained(TextConfig, fit_text_classifier, q8)][:len(stored)] == stored
    assert params["qv8"] < params["qkvo8"]

def test_lora_table_has_trainable_params_log10_and_val_acc(lora_search):
    table = study_table(open_experiment(lora_search), "best").frame.set_index("setting")
    for folder in (p for p in lora_search.iterdir() if (p / "progress.csv").is_file()):
        setting = json.loads((folder / "params.json").read_text())["setting"]
        reports = pd.read_csv(folder / "progress.csv")
        assert table.loc[setting, "val_acc"] == reports["val_acc"].max()
        assert table.loc[setting, "trainable_params"] == reports["trainable_params"].iloc[0]
        assert table.loc[setting, "log10"] == pytest.approx(np.log10(reports["trainable_params"].iloc[0]),
                                                            abs=5e-4)
    assert table.loc["full", "trainable_params"] > 100 * table.loc["q8", "trainable_params"]


def test_evaluate_rebuilds_the_lora_winner_and_reproduces_its_stored_val_acc(lora_search, tmp_path, capsys):
    """evaluate.py on a fine-tuning experiment: the winner's backbone rebuilt from its source and seed,
    its trained weights loaded, on the trial's own validation rows, gives the val_acc and val_loss it
    stored for that checkpoint; the test split gives a confusion matrix of its sentences."""
    from analysis import evaluate

    assert evaluate.main([str(lora_search), "--split", "val", "--out", str(tmp_path)]) == 0
    assert "sentences" in capsys.readouterr().out
    found = json.loads((tmp_path / "lora" / "evaluation_val.json").read_text())
    assert found["classes"] == ["neg", "pos"] and found["examples"] == "sentences"
    assert found["accuracy"] == pytest.approx(found["stored_val_acc"], abs=1e-6)
    trial = next(t for t in trials_of(lora_search) if json.loads(
        (t / "result.json").read_text().splitlines()[0])["trial_id"] == found["trial_id"])
    row = next(r for r in results(trial) if r["epoch"] == found["epoch"])
    assert found["loss"] == pytest.approx(row["val_loss"], rel=1e-3)
    assert found["images"] == 128 and sum(map(sum, found["confusion"])) == 128  # val_subset of smoke
    assert evaluate.main([str(lora_search), "--out", str(tmp_path)]) == 0
    test = json.loads((tmp_path / "lora" / "evaluation_test.json").read_text())
    assert sum(map(sum, test["confusion"])) == test["images"] > 128


def test_text_notebook_executes_headless_on_the_smoke_lora_search(lora_search, tmp_path):
    done = execute("text.ipynb", tmp_path / "text.ipynb", experiment=str(lora_search))
    markdown, images = rendered(done)
    assert "| setting | trainable_params | log10 | val_acc |" in markdown
    assert images == 2  # lora and asha


@pytest.mark.slow
def test_extract_smoke_search_fits_an_svm_per_pooling_and_caches_embeddings(storage):
    result = run_cli("--space", "extract", "--profile", "smoke", "--storage", str(storage),
                     "--name", "extract", timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    configs = {trial: json.loads((trial / "params.json").read_text())
               for trial in trials_of(storage / "extract")}
    assert {c["pooling"] for c in configs.values() if c["extractor"] == "minilm"} == {"cls", "mean"}
    for trial, config in configs.items():
        (row,) = results(trial)
        assert row["train_size"] == 256 and row["dim"] == {"minilm": 384}.get(config["extractor"], 768)
        (again,) = retrained(ExtractConfig, fit_extract, trial)  # from the embeddings the search cached
        assert (again["val_acc"], again["test_acc"]) == (row["val_acc"], row["test_acc"])
