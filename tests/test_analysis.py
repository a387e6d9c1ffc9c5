"""Analysis on a real smoke search: tables against progress.csv, best vs final epoch, incomplete and
corrupt folders, the report and evaluate commands, and the notebooks run headless."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import evaluate, report
from analysis.evaluate import evaluate_winner
from analysis.report import write_report
from analysis.results import load_experiment, open_experiment
from analysis.rungs import successive_halving
from analysis.tables import study_table
from tests.conftest import OFFLINE_ENV, ROOT, make_teacher, run_cli, stored_statuses
from tests.notebook import execute, rendered

NAME = "deg"
# FIFO, two seeds (in lockstep: one trial per configuration), three epochs: every trial runs to the
# end. The tests check properties of whatever curves the run gives. n=1 and n=2 keep it cheap.
SEARCH = ("--space", "degradation", "--profile", "smoke", "--scheduler", "fifo", "--max-epochs", "3",
          "--seeds", "2", "--set", "num_blocks=1,2")


@pytest.fixture(scope="session")
def search(tmp_path_factory) -> tuple[Path, Path]:
    """(experiment folder, report root) of one smoke search run through the driver."""
    root = tmp_path_factory.mktemp("analysis")
    reports = root / "report"
    result = run_cli(*SEARCH, "--storage", str(root / "results"), "--name", NAME,
                     env={"TUNELAB_REPORT": str(reports)})
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "results" / NAME, reports


@pytest.fixture(scope="session")
def kd_search(tmp_path_factory) -> tuple[Path, Path]:
    """A smoke kd search with synchronous halving (rung at epoch 1: the top ceil(5/3) = 2 of the five
    trials go on, and the kept arms): four cells plus the baseline arm, two seeds in lockstep,
    distilling a ResNet8 teacher trained here for one epoch. Instead of the space's questions (whose
    arms are every cell) it asks one of its own, so the rung stops what no question needs."""


    root = tmp_path_factory.mktemp("analysis_kd")
    teacher = make_teacher(root / "teacher")
    reports = root / "report"
    result = run_cli("--space", "kd", "--profile", "smoke", "--teacher", str(teacher), "--seeds", "2",
                     "--scheduler", "halving", "--no-questions",
                     "--question", "hot: temperature=10 > temperature=2",
                     "--set", "temperature=1,2,5,10", "--set", "w_st=1", "--storage", str(root / "results"),
                     "--name", "kd", env={"TUNELAB_REPORT": str(reports)})
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "results" / "kd", reports


def run_tool(tool: str, *args: str, reports: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "analysis" / tool), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **OFFLINE_ENV, "TUNELAB_REPORT": str(reports)})


def progress(experiment: Path) -> pd.DataFrame:
    """Every run's rows of progress.csv (Ray's second record of the same reports), with its config:
    a lockstep trial holds one run per seed, its `val_acc_seed<s>` column."""
    frames = []
    for folder in sorted(p for p in experiment.iterdir() if (p / "progress.csv").is_file()):
        frame = pd.read_csv(folder / "progress.csv")
        params = json.loads((folder / "params.json").read_text())
        seeds = sorted(int(c.rsplit("seed", 1)[1]) for c in frame if c.startswith("val_acc_seed"))
        for seed in seeds or [params.get("seed", 0)]:
            own = frame[f"val_acc_seed{seed}"] if seeds else frame["val_acc"]
            frames.append(frame.assign(num_blocks=params["num_blocks"], skip=params["skip"], seed=seed,
                                       val_acc=own, run=f"{folder.name}/{seed}"))
    return pd.concat(frames, ignore_index=True)


def per_config_curves(experiment: Path) -> dict[tuple, pd.DataFrame]:
    """(num_blocks, skip) -> its runs' val_acc, one column per run, one row per report."""
    rows = progress(experiment)
    return {key: cfg.pivot(index="training_iteration", columns="run", values="val_acc")
            for key, cfg in rows.groupby(["num_blocks", "skip"])}


def recomputed(experiment: Path, which: str) -> pd.DataFrame:
    """Each configuration's runs at one report: `best`, the report where their mean is highest;
    `final`, the last (what every table shows, analysis/tables.py `report_index`)."""
    out = {}
    for key, curves in per_config_curves(experiment).items():
        mean = curves.mean(axis=1)
        values = curves.loc[mean.idxmax() if which == "best" else mean.index[-1]]
        out[key] = {"mean": values.mean(), "std": values.std(ddof=1), "count": len(values)}
    return pd.DataFrame.from_dict(out, orient="index").rename_axis(["num_blocks", "skip"])


def test_search_ends_in_a_report_with_the_degradation_table_and_deg_prob(search):
    experiment, reports = search
    folder = reports / NAME
    readme = (folder / "README.md").read_text()
    assert "![deg_prob](deg_prob.svg)" in readme and "![stops](stops.svg)" in readme
    assert "| Model | num_blocks | num_filters | skip | #params | Layers | val_acc |" in readme
    for picture in ("deg_prob.svg", "stops.svg"):
        svg = (folder / picture).read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "val_acc" in svg
    for stem in ("degradation_best", "degradation_final"):
        assert (folder / f"{stem}.md").is_file() and (folder / f"{stem}.csv").is_file()
    # The stops picture's legend names every curve's configuration (SVG keeps its text as text).
    stops = (folder / "stops.svg").read_text()
    for blocks in (1, 2):
        for skip in (False, True):
            assert f"num_blocks={blocks}, skip={skip}" in stops


@pytest.mark.parametrize("which", ["best", "final"])
def test_table_values_equal_a_recomputation_from_progress_csv(search, which):
    experiment, _ = search
    table = study_table(open_experiment(experiment), which)
    assert table.caption.count(f"{which} epoch") == 1 and "95% t-interval over 2 seeds" in table.caption
    expected = recomputed(experiment, which)
    frame = table.frame.set_index(["num_blocks", "skip"]).sort_index()
    assert list(frame.index) == list(expected.index)
    np.testing.assert_allclose(frame["val_acc"], expected["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame["val_acc_std"], expected["std"], rtol=0, atol=1e-12)
    half = stats.t.ppf(0.975, 1) * expected["std"] / np.sqrt(2)
    lo, hi = (expected["mean"] - half).clip(0, 1), (expected["mean"] + half).clip(0, 1)  # an accuracy's range
    np.testing.assert_allclose(frame["val_acc_ci_lo"], lo, rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame["val_acc_ci_hi"], hi, rtol=0, atol=1e-12)
    assert (frame["runs"] == expected["count"]).all() and (frame["runs"] == 2).all()
    # #params comes from the Space's describe; the trials reported the count of the model they trained.
    trained = progress(experiment).groupby(["num_blocks", "skip"])["params"].first().sort_index()
    assert (frame["#params"] == trained).all()
    assert (frame["Layers"] == 4 * frame.index.get_level_values("num_blocks") + 2).all()


def test_best_and_final_epoch_differ_exactly_where_a_trial_got_worse(search):
    experiment, _ = search
    exp = open_experiment(experiment)
    best, final = study_table(exp, "best").frame, study_table(exp, "final").frame
    assert (best["val_acc"] >= final["val_acc"]).all()
    worse = {key: bool(curves.mean(axis=1).max() > curves.mean(axis=1).iloc[-1])
             for key, curves in per_config_curves(experiment).items()}
    differs = dict(zip(zip(best["num_blocks"], best["skip"], strict=True),
                       best["val_acc"] != final["val_acc"], strict=True))
    assert differs == worse


def test_asha_stops_are_told_from_finished_trials(search, kd_search):
    fifo = open_experiment(search[0])
    assert fifo.max_t == 3 and fifo.rungs == [] and not fifo.trials["stopped_early"].any()
    exp = open_experiment(kd_search[0])
    trials = exp.trials
    assert exp.max_t == 2 and exp.rungs == [1] and exp.incomplete == []
    assert (trials["stopped_early"] == (trials["epochs_run"] < 2)).all()
    # Halving: the top ceil(5/3) = 2 go on at the rung, and the baseline arm and the question's two arms
    # whatever their rank. In the order Ray created the trials: its bracket breaks ties in favour of the
    # later one.
    curves = {t: exp.epochs[exp.epochs["trial_id"] == t].sort_values("training_iteration")["val_acc"].tolist()
              for t in sorted(trials["trial_id"])}
    baseline = frozenset(trials.loc[trials["w_st"] == 0, "trial_id"])
    arms = frozenset(trials.loc[(trials["w_st"] == 1) & trials["temperature"].isin([2.0, 10.0]), "trial_id"])
    replay = successive_halving(curves, grace_period=1, reduction_factor=3, max_t=2, kept=baseline | arms)
    assert len(baseline) == 1 and len(arms) == 2 and dict(zip(trials["trial_id"], trials["epochs_run"],
                                                              strict=True)) == replay.stopped_at
    assert (trials.set_index("trial_id").loc[sorted(arms), "epochs_run"] == 2).all()
    assert replay.stopped_at[next(iter(baseline))] == 2 and sorted(trials["epochs_run"])[:2] == [1, 1]
    svg = (kd_search[1] / "kd" / "stops.svg").read_text()
    marked = sum(int(n) for n in re.findall(r"(\d+) stopped: (?:significant|quota)", svg))
    assert marked == int(trials["stopped_early"].sum()) > 0  # each stop marked with its reason


def test_a_finished_search_is_stored_as_finished_under_fifo_and_halving(search, kd_search):
    """Plain Ray reads every trial of an ended search as TERMINATED, the trials synchronous halving
    stopped while paused included (raycompat.StoresStoppedPausedTrials)."""
    assert stored_statuses(search[0]) == ["TERMINATED"] * 4
    assert stored_statuses(kd_search[0]) == ["TERMINATED"] * 5


def test_kd_table_is_seed_means_with_delta_to_the_baseline_arm(kd_search):
    experiment, reports = kd_search
    table = study_table(open_experiment(experiment), "best")
    assert "95% t-interval over 2 seeds" in table.caption and "best epoch" in table.caption
    rows = []
    for folder in (p for p in experiment.iterdir() if (p / "progress.csv").is_file()):
        params = json.loads((folder / "params.json").read_text())
        curve = pd.read_csv(folder / "progress.csv")
        at = curve[["val_acc_seed0", "val_acc_seed1"]].mean(axis=1).idxmax()  # the best epoch of the mean
        for seed in (0, 1):  # lockstep: every seed's value at that one epoch
            rows.append((params["temperature"], params["w_st"], seed, curve.at[at, f"val_acc_seed{seed}"],
                         len(curve)))
    runs = pd.DataFrame(rows, columns=["temperature", "w_st", "seed", "best", "epochs"])
    cells = runs.groupby(["temperature", "w_st"])
    expected = cells["best"].agg(["mean", "std"])
    assert list(expected.index) == [(1.0, 0.0), (1.0, 1.0), (2.0, 1.0), (5.0, 1.0), (10.0, 1.0)]
    assert (cells["epochs"].nunique() == 1).all()  # the seeds of a cell share its budget
    frame = table.frame.set_index(["temperature", "w_st"]).sort_index()
    np.testing.assert_allclose(frame["val_acc"], expected["mean"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame["val_acc_std"], expected["std"], rtol=0, atol=1e-12)
    baseline = expected.loc[(1.0, 0.0), "mean"]
    np.testing.assert_allclose(frame["Δ vs baseline"], expected["mean"] - baseline, rtol=0, atol=1e-12)
    base_runs = runs[runs["w_st"] == 0].set_index("seed")["best"]
    for (t, w), cell in runs[runs["w_st"] > 0].groupby(["temperature", "w_st"]):
        base_epochs = runs.loc[runs["w_st"] == 0, "epochs"].iloc[0]
        if cell["epochs"].iloc[0] == base_epochs:  # the paired test needs the same budget
            diffs = cell.set_index("seed")["best"] - base_runs
            if diffs.nunique() > 1:
                expected_p = stats.ttest_rel(cell.set_index("seed")["best"], base_runs).pvalue
                assert frame.loc[(t, w), "p (paired t)"] == pytest.approx(expected_p, abs=1e-12)
        else:
            assert frame.loc[(t, w), "paired test"].startswith("not comparable")
    assert frame.loc[(1.0, 0.0), "arm"].startswith("baseline")
    distilled = frame.index.get_level_values("w_st") > 0
    assert frame.loc[(1.0, 0.0), "w_lab"] == 1.0 and (frame.loc[distilled, "w_lab"] == 0.5).all()
    readme = (reports / "kd" / "README.md").read_text()
    assert "![distil](distil.svg)" in readme and "| arm | temperature | w_st | w_lab | val_acc |" in readme


def test_incomplete_experiment_is_read_and_reported(search, tmp_path):
    experiment, _ = search
    copy = tmp_path / "killed"
    shutil.copytree(experiment, copy)
    for state in copy.glob("experiment_state-*.json"):  # Ray's record says every trial TERMINATED
        state.unlink()
    full = next(p for p in sorted(copy.iterdir()) if p.is_dir() and
                len((p / "result.json").read_text().splitlines()) == 3)
    lines = (full / "result.json").read_text().splitlines()
    # Killed while writing its second report: one whole line, then half a line without a newline.
    (full / "result.json").write_text(lines[0] + "\n" + lines[1][:40])
    started = copy / "train_cnn_started_never_reported"
    started.mkdir()
    shutil.copy(full / "params.json", started / "params.json")

    exp = open_experiment(copy)
    row = exp.trials.set_index("trial_dir").loc[str(full)]
    assert row["epochs_run"] == 1 and not row["complete"] and not row["stopped_early"]
    assert set(exp.incomplete) == {row["trial_id"], started.name}
    assert len(exp.trials) == 5  # 4 lockstep trials of 2 seeds, 1 that never reported
    table = study_table(exp, "best")
    assert "2 incomplete" in table.caption and table.frame["runs"].sum() == 8
    folder = write_report(exp, tmp_path / "report")
    assert "2 incomplete" in (folder / "README.md").read_text()


def test_load_experiment_keeps_its_api_for_the_driver_summary(search):
    experiment, _ = search
    exp = load_experiment(experiment, "val_acc", "max", 3)
    assert {"best_val_acc", "final_val_acc", "epochs_run", "complete"} <= set(exp.trials.columns)
    assert {"trial_id", "training_iteration", "val_acc", "train_loss"} <= set(exp.epochs.columns)


def test_evaluate_reproduces_the_stored_val_acc_of_each_seed_of_the_best_checkpoint(search, tmp_path, capsys):
    experiment, _ = search
    assert evaluate.main([str(experiment), "--split", "val", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Evaluation of the winner on the val split" in printed
    evaluation = json.loads((tmp_path / NAME / "evaluation_val.json").read_text())
    # The winner is the best val_acc (mean over its lockstep seeds) among the trials that ran the whole
    # budget, and the checkpoint is that epoch's: every seed's model is evaluated, and the mean of
    # their accuracies is the mean the trial stored, as each seed's is its own stored value.
    runs = [pd.read_csv(f / "progress.csv") for f in experiment.iterdir() if (f / "progress.csv").is_file()]
    rows = pd.concat([r for r in runs if len(r) == max(map(len, runs))], ignore_index=True)
    best = rows.loc[rows["val_acc"].idxmax()]
    seeds = evaluation["seeds"]
    assert [s["seed"] for s in seeds] == [0, 1]
    assert evaluation["stored_val_acc"] == best["val_acc"]
    assert abs(evaluation["accuracy"] - evaluation["stored_val_acc"]) <= 1e-6
    for seed in seeds:
        assert seed["stored_val_acc"] == best[f"val_acc_seed{seed['seed']}"]
        assert abs(seed["accuracy"] - seed["stored_val_acc"]) <= 1e-6
        # the same model on the same images gives the loss the trial stored (within bf16/fp32 rounding
        # of the two summation orders: the trial averages over batches, evaluate over the whole split)
        assert seed["loss"] == pytest.approx(best[f"val_loss_seed{seed['seed']}"], rel=1e-3)
    assert evaluation["images"] == 256 and sum(map(sum, evaluation["confusion"])) == 256 * len(seeds)
    assert f"mean ± sd over 2 seeds: seed 0 {seeds[0]['accuracy']:.4f}, seed 1" in printed
    assert "Evaluation of the winner on the val split" in (tmp_path / NAME / "README.md").read_text()
    page = (tmp_path / NAME / "index.html").read_text()
    assert f"<b>{evaluation['accuracy']:.4f}</b> ± " in page and "summed over the 2 seeds" in page


def test_evaluate_on_the_test_split_gives_accuracy_loss_and_confusion(search):
    evaluation = evaluate_winner(open_experiment(search[0]), "test")
    confusion = np.array(evaluation.confusion)
    runs = 10_000 * len(evaluation.seeds)  # the matrix sums the lockstep seeds
    assert evaluation.images == 10_000 and confusion.shape == (10, 10) and confusion.sum() == runs
    assert evaluation.accuracy == pytest.approx(np.trace(confusion) / runs)
    assert evaluation.stored_val_acc is None  # its loss is checked against a stored one on val


def test_report_command_finds_the_latest_experiment_of_a_space(search, tmp_path, capsys):
    experiment, _ = search
    assert report.main(["--space", "degradation", "--storage", str(experiment.parent),
                        "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Degradation problem") and "\nwinner: num_blocks=" in printed
    assert (tmp_path / NAME / "README.md").is_file() and (tmp_path / NAME / "deg_prob.svg").is_file()


def corrupt_copy(experiment: Path, target: Path) -> Path:
    shutil.copytree(experiment, target)
    result = next(target.glob("*/result.json"))
    lines = result.read_text().splitlines(keepends=True)
    result.write_text('{"epoch": 1, "val_acc": \n' + "".join(lines[1:]))
    return target


@pytest.mark.parametrize("case", ["not_an_experiment", "empty_experiment", "corrupt_result_line",
                                  "missing_folder", "no_experiment_of_space"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(search, tmp_path, capsys, case):
    bad = tmp_path / "input"
    if case == "not_an_experiment":
        bad.mkdir()
        (bad / "notes.txt").write_text("hello\n")
    elif case == "empty_experiment":
        bad.mkdir()
        (bad / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    elif case == "corrupt_result_line":
        corrupt_copy(search[0], bad)
    reports = tmp_path / "report"
    if case == "no_experiment_of_space":
        calls = [(report.main, ["--space", "kd", "--storage", str(tmp_path / "nothing")])]
    else:
        calls = [(report.main, [str(bad)]), (evaluate.main, [str(bad), "--split", "val"])]
    for main, args in calls:
        assert main([*args, "--out", str(reports)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
        assert not reports.exists()


def test_report_command_on_a_corrupt_result_line_is_exit_2_from_the_shell(search, tmp_path):
    reports = tmp_path / "report"
    result = run_tool("report.py", str(corrupt_copy(search[0], tmp_path / "corrupt")), reports=reports)
    assert result.returncode == 2 and "line 1 is not valid JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not reports.exists()


def test_cnn_notebook_executes_headless_on_the_smoke_search(search, tmp_path):
    done = execute("cnn.ipynb", tmp_path / "cnn.ipynb", experiment=str(search[0]), evaluate_split="val")
    markdown, images = rendered(done)
    assert "| Model | num_blocks |" in markdown and "Evaluation of the winner on the val split" in markdown
    assert images == 2  # deg_prob and stops


def test_kd_notebook_executes_headless_on_the_smoke_kd_search(kd_search, tmp_path):
    done = execute("kd.ipynb", tmp_path / "kd.ipynb", experiment=str(kd_search[0]), evaluate_split="")
    markdown, images = rendered(done)
    assert "| arm | temperature | w_st | w_lab |" in markdown and "baseline (w_st=0)" in markdown
    assert images == 2  # distil and stops


def test_a_picture_of_one_configuration_keeps_its_longest_budget_row():
    """A search of one configuration varies no key; its picture still gets its one point (the lora
    report of a one-setting search failed with pandas' 'No group keys passed!')."""
    from analysis.plots import longest_budget

    class OneConfiguration:
        def varied_keys(self) -> list[str]:
            return []

    rows = pd.DataFrame({"epochs": [2, 1], "val_acc": [0.6, 0.5]})
    assert longest_budget(OneConfiguration(), rows).to_dict("records") == [{"epochs": 2, "val_acc": 0.6}]
