"""`--objective`: two-objective searches as users run them (search/mo_halving.py, analysis/pareto.py).
Bad input is one line and exit 2; an Optuna multi-objective smoke search of lora_front ends with its
front and hypervolume in the summary and the report, and a resume cannot change the objectives."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from analysis.overview import winner_line
from analysis.pareto import experiment_front, front
from analysis.results import open_experiment
from analysis.tables import FRONT_ORDER, winner
from search.mo_halving import MultiObjectiveHalving
from search.options import build_plan, parse_args
from search.run import main
from store.experiment import ExperimentFolder
from tests.conftest import assert_refused_in_process, run_cli, stored_statuses

OBJECTIVES = "val_acc:max,trainable_params:min"

BAD = {
    "three objectives": ["--space", "lora_front", "--objective", f"{OBJECTIVES},val_loss:min"],
    "one objective": ["--space", "lora_front", "--objective", "val_acc:max"],
    "not reported": ["--space", "lora_front", "--objective", "val_acc:max,flops:min"],
    "not reported by degradation": ["--space", "degradation", "--objective", OBJECTIVES],
    "bad mode": ["--space", "lora_front", "--objective", "val_acc:best,trainable_params:min"],
    "no mode": ["--space", "lora_front", "--objective", "val_acc,trainable_params"],
    "empty": ["--space", "lora_front", "--objective", ""],
    "nan and inf": ["--space", "lora_front", "--objective", "nan:max,inf:min"],
    "path-like": ["--space", "lora_front", "--objective", "../val_acc:max,trainable_params:min"],
    "twice the same": ["--space", "lora_front", "--objective", "val_acc:max,val_acc:min"],
    "single-metric scheduler": ["--space", "lora_front", "--objective", OBJECTIVES, "--scheduler", "asha"],
    "smoothing": ["--space", "lora_front", "--objective", OBJECTIVES, "--smoothing", "0.5"],
    "grid of one configuration": ["--space", "lora", "--set", "setting=qv8", "--objective", OBJECTIVES],
    "moasha without objectives": ["--space", "lora_front", "--scheduler", "moasha"],
}


@pytest.mark.parametrize("args", BAD.values(), ids=BAD.keys())
def test_bad_objective_returns_2_with_one_line(args, tmp_path, capsys):
    assert_refused_in_process(args, tmp_path, capsys)


def test_objectives_go_into_the_plan_with_moasha_by_default(tmp_path):
    args = parse_args(["--space", "degradation", "--objective", "val_acc:max,params:min", "--view",
                       "--storage", str(tmp_path)])
    plan = build_plan(args)
    assert plan.objectives == [["val_acc", "max"], ["params", "min"]] and plan.scheduler == "moasha"
    grid = build_plan(parse_args(["--space", "lora_front", "--objective", OBJECTIVES, "--scheduler", "fifo",
                                  "--view", "--storage", str(tmp_path)]))
    assert grid.search == "grid" and grid.scheduler == "fifo"  # a grid's front, without early stopping


def test_moasha_stops_a_dominated_trial_at_the_rung_and_keeps_one_on_the_front():
    scheduler = MultiObjectiveHalving([("val_acc", "max"), ("trainable_params", "min")], grace_period=1,
                                      reduction_factor=3, max_t=4)
    arrivals = [("a", 0.80, 1e5), ("b", 0.70, 1e4), ("c", 0.60, 2e5), ("d", 0.90, 1e6)]
    decisions = {}
    for trial_id, acc, params in arrivals:
        trial = SimpleNamespace(trial_id=trial_id, config={})
        result = {"training_iteration": 1, "val_acc": acc, "trainable_params": params}
        decisions[trial_id] = scheduler.on_trial_result(None, trial, result)
    # c is beaten by a on both objectives; d is slow to train (10x a's parameters) but the most accurate
    assert decisions == {"a": "CONTINUE", "b": "CONTINUE", "c": "STOP", "d": "CONTINUE"}
    assert scheduler.stopped == {"c": 1}
    late = SimpleNamespace(trial_id="a", config={})
    assert scheduler.on_trial_result(None, late, {"training_iteration": 2, "val_acc": 0.1,
                                                  "trainable_params": 1e9}) == "CONTINUE"  # no rung at 2


def test_a_resumed_moasha_judges_a_trial_against_the_rung_reports_stored_before_the_kill(tmp_path):
    """The same arrivals as above, the first three stored by a killed search (in the order of their
    timestamps, not of their folders), the fourth made after the resume: the restored rung stops what
    the unkilled one stops; a fresh scheduler, with empty rungs, would keep c."""
    stored = [("a", 0.80, 1e5, 3.0), ("b", 0.70, 1e4, 1.0), ("c", 0.60, 2e5, 2.0)]
    for index, (name, acc, params, when) in enumerate(stored):
        folder = tmp_path / f"train_lora_abcde_0000{index}_{index}_2026"
        folder.mkdir()
        (folder / "params.json").write_text("{}")
        row = {"trial_id": name, "training_iteration": 1, "val_acc": acc, "trainable_params": params,
               "timestamp": when}
        (folder / "result.json").write_text(json.dumps(row) + "\n")
    objectives = [("val_acc", "max"), ("trainable_params", "min")]
    resumed = MultiObjectiveHalving(objectives, grace_period=1, reduction_factor=3, max_t=4)
    resumed.resume_from(ExperimentFolder(tmp_path))
    assert list(resumed.recorded[1]) == ["b", "c", "a"]  # by when each reported
    late = {"training_iteration": 1, "val_acc": 0.55, "trainable_params": 3e5}  # dominated by a and c
    assert resumed.on_trial_result(None, SimpleNamespace(trial_id="e", config={}), late) == "STOP"
    fresh = MultiObjectiveHalving(objectives, grace_period=1, reduction_factor=3, max_t=4)
    assert fresh.on_trial_result(None, SimpleNamespace(trial_id="e", config={}), late) == "CONTINUE"


@pytest.fixture(scope="module")
def mo_search(tmp_path_factory):
    storage = tmp_path_factory.mktemp("mo_results")
    result = run_cli("--space", "lora_front", "--profile", "smoke", "--search", "optuna",
                     "--num-samples", "5", "--objective", OBJECTIVES, "--storage", str(storage),
                     "--name", "front", timeout=400)
    return storage / "front", result


def test_optuna_multi_objective_search_ends_with_its_front_in_summary_and_report(mo_search):
    experiment, result = mo_search
    assert result.returncode == 0, result.stderr[-3000:]
    plan = json.loads((experiment / "tunelab_plan.json").read_text())
    assert plan["objectives"] == [["val_acc", "max"], ["trainable_params", "min"]]
    assert plan["scheduler"] == "moasha" and plan["search"] == "optuna"
    exp = open_experiment(experiment)
    # A parameter count is known from the first report on: the rung rule can weigh it at once.
    first = exp.epochs.sort_values("training_iteration").groupby("trial_id").head(1)
    assert len(first) == 5 and first["trainable_params"].notna().all()
    found = experiment_front(exp, plan["objectives"])
    points = {i: (row.val_acc, row.trainable_params) for i, row in found.table.iterrows()}
    assert set(front(points, ("max", "min"))) == set(found.members.index)
    assert f"non-dominated, listed {FRONT_ORDER} (the first is the one crowned); hypervolume" in result.stdout
    # Every reader crowns the front's first member, and only it is starred: never a dominated one.
    crowned, first = winner(exp), found.members.iloc[0]
    assert all(str(crowned[k]) == str(first[k]) for k in exp.varied_keys())
    starred = [line for line in result.stdout.splitlines() if line.startswith("*")]
    assert len(starred) == 1 and f"{int(first['trainable_params'])}" in starred[0], starred
    assert winner_line(exp).startswith(f"winner on the front ({FRONT_ORDER}): ")
    report = next(line.split("report: ", 1)[1].split(";")[0] for line in result.stdout.splitlines()
                  if line.startswith("report: "))
    text = open(report).read()
    assert "## Front" in text and f"hypervolume {found.hypervolume:.6g}" in text
    assert stored_statuses(experiment) == ["TERMINATED"] * 5  # what moasha stopped is stored as ended
    rows = [line for line in text.split("## Front", 1)[1].splitlines() if line.endswith("| yes |")]
    assert len(rows) == len(found.members)
    assert "front.svg" in text


def test_resume_refuses_other_objectives(mo_search, capsys):
    experiment, result = mo_search
    assert result.returncode == 0
    assert main(["--resume", str(experiment), "--objective", "val_acc:max,val_loss:min"]) == 2
    err = capsys.readouterr().err
    assert "objectives differs" in err and len(err.strip().splitlines()) == 1
