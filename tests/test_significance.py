"""Significance halving (analysis/rungs.py): a rung stops only what the measured noise says is behind,
on constructed curves; the Ray scheduler makes the replay's decisions on a real search; and the
summary, the report and evaluate.py name the same winner with the same value."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from analysis.rungs import (
    QUOTA,
    SIGNIFICANT,
    check_alpha,
    decide_rung,
    rung_noise,
    significance_halving,
    stop_reasons,
    successive_halving,
)
from search.run import main
from spaces import get_space


def seeds_around(levels: list[float], spread: float, reports: int = 6) -> list[list[float]]:
    """Three seeds' curves, flat at each level, seeds offset by -spread, 0, +spread (std = spread)."""
    return [[level + offset] * reports for level, offset in zip(levels, (-spread, 0.0, spread), strict=False)]


def cohort(means: dict[str, float], spread: float = 0.02) -> dict[str, list[list[float]]]:
    return {c: seeds_around([m] * 3, spread) for c, m in means.items()}


def test_a_tie_at_the_cutoff_goes_on_beyond_the_quota():
    # Six configurations, quota ceil(6/3) = 2: a and b. c is 0.005 behind b with seeds spread 0.02.
    curves = cohort({"a": 0.80, "b": 0.79, "c": 0.785, "d": 0.50, "e": 0.52, "f": 0.48})
    keep, stopped, noise = decide_rung(curves, rung=2, quota=2, alpha=0.1)
    assert noise.source == "seeds" and noise.df == 12 and noise.sigma == pytest.approx(0.02)
    assert keep == {"a", "b", "c"}
    assert stopped == {"d": SIGNIFICANT, "e": SIGNIFICANT, "f": SIGNIFICANT}
    means = {c: np.mean(v, axis=0).tolist() for c, v in curves.items()}
    assert sorted(successive_halving(means, 2, 3, 6).finished) == ["a", "b"]  # the quota alone drops c


def test_a_clear_loser_is_cut_at_the_first_rung_even_inside_the_quota():
    # Three configurations, reduction factor 2: the quota ceil(3/2) = 2 would keep b.
    curves = cohort({"a": 0.80, "b": 0.60, "c": 0.55}, spread=0.01)
    run = significance_halving(curves, grace_period=1, reduction_factor=2, max_t=4, alpha=0.05)
    assert run.stopped_at == {"a": 4, "b": 1, "c": 1}
    assert run.reasons == {"b": SIGNIFICANT, "c": SIGNIFICANT}


def test_one_seed_takes_the_curve_noise_path():
    # Second differences of a straight line plus ±0.01 alternating noise: 4·0.01 each, so σ² = 16e-4/6.
    wiggle = [0.01 * (-1) ** t for t in range(6)]
    curves = {c: [[base + 0.02 * t + w for t, w in enumerate(wiggle)]]
              for c, base in (("a", 0.70), ("b", 0.695), ("c", 0.40))}
    noise = rung_noise(curves, rung=4, smoothing=0.0)
    assert noise.source == "curve" and noise.df == 2 * 3
    assert noise.sigma == pytest.approx(math.sqrt(16e-4 / 6))
    keep, stopped, _ = decide_rung(curves, rung=4, quota=1, alpha=0.1)
    assert keep == {"a", "b"} and stopped == {"c": SIGNIFICANT}  # b ties a beyond the quota of 1
    # Before the third report a single curve has no second difference: the rule is the quota.
    early_keep, early_stopped, early = decide_rung(curves, rung=2, quota=1, alpha=0.1)
    assert early.source == "none" and early_keep == {"a"} and early_stopped == {"b": QUOTA, "c": QUOTA}


def test_a_baseline_arm_is_never_stopped():
    curves = cohort({"a": 0.80, "b": 0.79, "base": 0.30})
    run = significance_halving(curves, 1, 3, 4, alpha=0.1, kept=frozenset({"base"}))
    assert run.stopped_at["base"] == 4 and "base" not in run.reasons
    assert significance_halving(curves, 1, 3, 4, alpha=0.1).stopped_at["base"] == 1


def test_stops_are_told_significant_or_quota():
    curves = cohort({"a": 0.80, "b": 0.79, "c": 0.40})
    assert stop_reasons(curves, {"a": 4, "b": 1, "c": 1}, alpha=0.1) == {"b": QUOTA, "c": SIGNIFICANT}


@pytest.mark.parametrize("alpha", [0.0, 0.5, -0.1, 1.0, math.nan, math.inf])
def test_an_alpha_outside_its_range_is_refused(alpha):
    with pytest.raises(ValueError, match=r"\(0, 0.5\)"):
        check_alpha(alpha)


BAD = [["--alpha", "0"], ["--alpha", "0.5"], ["--alpha", "nan"], ["--alpha", "-1"], ["--alpha", "inf"],
       ["--alpha", ""], ["--alpha", "1e309"], ["--scheduler", "halving", "--alpha", "0.1"],
       ["--scheduler", "pasha"]]


@pytest.mark.parametrize("args", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_alpha_or_scheduler_is_one_line_and_exit_2(args, tmp_path, capsys):
    assert main(["--space", "degradation", "--storage", str(tmp_path / "results"), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "results").exists()


def stored_curves(exp) -> dict[str, list[list[float]]]:
    """trial id -> each lockstep seed's val_acc per report, in Ray's creation order."""
    curves = {}
    for trial_id in sorted(exp.trials["trial_id"]):
        rows = exp.epochs[exp.epochs["trial_id"] == trial_id].sort_values("training_iteration")
        seeds = sorted(c for c in rows if re.fullmatch(r"val_acc_seed\d+", c))
        curves[trial_id] = [rows[c].tolist() for c in seeds]
    return curves


@pytest.mark.slow
def test_the_significance_scheduler_stops_what_its_replay_stops_and_every_reader_names_one_winner(tmp_path):
    """A real smoke search with 2 lockstep seeds under --scheduler significance, asking one question of
    its own instead of the space's: the trials Ray stopped, and where, equal the replay of
    analysis.rungs.significance_halving on the stored curves with the question's arms kept, and those
    arms ran to the budget. Then the driver's summary, analysis/report.py and analysis/evaluate.py crown
    the same configuration with the same value, and the summary answers the question."""
    from analysis import evaluate, report
    from analysis.overview import winner_line
    from analysis.results import load_experiment
    from tests.conftest import run_cli

    result = run_cli("--space", "degradation", "--profile", "smoke", "--scheduler", "significance",
                     "--alpha", "0.2", "--max-epochs", "4", "--seeds", "2", "--set", "num_blocks=1,7",
                     "--set", "train_subset=256",
                     "--no-questions",
                     "--question", "deep: num_blocks=7,skip=false < num_blocks=1,skip=false",
                     "--set", "val_subset=128", "--storage", str(tmp_path), "--name", "sig",
                     env={"TUNELAB_REPORT": str(tmp_path / "report")}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    exp = load_experiment(tmp_path / "sig", max_t=4)
    rf = get_space("degradation").reduction_factor  # the search ran with the space's
    plain = exp.trials[~exp.trials["skip"].astype(bool) & exp.trials["num_blocks"].isin([1, 7])]
    arms = frozenset(plain["trial_id"])
    replay = significance_halving(stored_curves(exp), grace_period=1, reduction_factor=rf, max_t=4,
                                  alpha=0.2, kept=arms)
    ran = dict(zip(exp.trials["trial_id"], exp.trials["epochs_run"], strict=True))
    assert ran == replay.stopped_at
    assert len(arms) == 2 and all(ran[t] == 4 for t in arms)
    assert re.search(r"^  deep +(HOLDS|CONTRADICTED|UNDECIDED) +Δ [+-]\d\.\d{4}", result.stdout, re.M), \
        result.stdout[-3000:]
    assert "early stopping (significance):" in result.stdout
    stopped = [t for t, at in ran.items() if at < 4]
    svg = next((tmp_path / "report").glob("sig*/stops.svg")).read_text()
    assert not stopped or f"{len(stopped)} stopped: significant" in svg  # every stop this rule makes is one
    assert "Current best trial" not in result.stdout and "num_stopped" not in result.stdout

    starred = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("*"))
    reported = winner_line(report.open_experiment(tmp_path / "sig"))
    config, value = re.search(r"winner: (.*), val_acc (\d\.\d{4})", reported).groups()
    num_blocks, skip = re.search(r"num_blocks=(\d+), skip=(\w+)", config).groups()
    assert starred.split()[1:4] == [num_blocks, skip, value], (starred, reported)
    trial_id, _, row = evaluate.best_checkpoint(report.open_experiment(tmp_path / "sig"))
    trial = exp.trials.set_index("trial_id").loc[trial_id]
    assert (str(trial["num_blocks"]), str(trial["skip"])) == (num_blocks, skip)
    assert f"{row['val_acc']:.4f}" == value  # the checkpoint kept is the best epoch of the mean


def test_the_fidelity_replay_of_the_committed_curves_has_one_record_per_rule_setting_and_arm(tmp_path):
    """bench/bench_asha_fidelity.py --analyse on bench/asha_fidelity_curves.json: every rule, setting and
    lr_gamma arm once, with the fields BENCHMARKS (c) is written from (the held-out ones too), one
    default chosen in both arms, and the image spaces' default (significance, reduction factor 2,
    grace 1, α 0.2) as recorded there."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "out.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "bench_asha_fidelity.py"), "--analyse",
                    str(ROOT / "bench" / "asha_fidelity_curves.json"), "--json", str(out)],
                   check=True, capture_output=True, timeout=300)
    report = json.loads(out.read_text())
    rows = report["records"]
    keys = [(r["rule"], json.dumps(r["settings"], sort_keys=True), r["lr_gamma"]) for r in rows]
    assert len(keys) == len(set(keys)) and {r["lr_gamma"] for r in rows} == {0.95, 0.7}
    assert {r["arm"] for r in rows} == {"lr_gamma=0.95", "lr_gamma=0.7"}
    assert {r["rule"] for r in rows} == {"fifo", "i-epoch", "halving", "hyperband", "ray-asha", "pasha",
                                         "optuna-sh", "optuna-hyperband", "optuna-median", "optuna-wilcoxon",
                                         "wilcoxon", "significance", "settled"}
    setting = ("rule", "reduction_factor", "grace", "smoothing", "alpha")
    old = [tuple(r[k] for k in setting) + (r["lr_gamma"],) for r in rows if r["rule"] in ("halving",
                                                                                          "significance")]
    assert len(old) == len(set(old)) == 2 * (36 + 144)
    for r in rows:
        fields = {"epochs_fraction", "regret_mean", "regret_max", "same_winner", "tied_with_fifo_winner",
                  "true_regret_mean", "true_regret_max", "fifo_true_regret_mean", "fifo_true_regret_max",
                  "space", "arm", "settings", "default"}
        assert fields <= r.keys()
        assert 0 < r["epochs_fraction"] and 0 <= r["regret_mean"] <= r["regret_max"]
        assert r["epochs_fraction"] <= 1 or r["rule"] == "hyperband"  # its brackets each train from scratch
        assert 0 <= r["true_regret_mean"] <= r["true_regret_max"]
    assert {r["lr_gamma"] for r in rows if r["default"]} == {0.95, 0.7}
    assert len({(r["rule"], json.dumps(r["settings"])) for r in rows if r["default"]}) == 1
    assert len(report["cross_validation"]["folds"]) == 3
    chosen = ("significance", 2, 1, 0.0, 0.2)
    default = {r["lr_gamma"]: r for r in rows if tuple(r[k] for k in setting) == chosen}
    assert default[0.95]["same_winner"] == 3 and default[0.95]["regret_max"] == 0.0
    assert [round(default[g]["epochs_fraction"], 2) for g in (0.95, 0.7)] == [0.51, 0.49]


def test_the_image_spaces_default_to_wilcoxon_and_significance_halves_a_cohort_of_optunas_samples(tmp_path):
    from search.options import build_plan, parse_args
    from search.sync_halving import SyncRungs
    from search.tuner import make_scheduler
    from search.wilcoxon import WilcoxonStopping
    from spaces import get_space

    def plan(*args: str):
        name = f"p{len(list(tmp_path.iterdir()))}"
        return build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--storage",
                                      str(tmp_path), "--name", name, *args]))

    assert {get_space(name).scheduler for name in ("mnist", "degradation", "teachers", "kd")} \
        == {"wilcoxon"}
    grid = make_scheduler(plan("--no-questions"))
    assert isinstance(grid, WilcoxonStopping) and (grid.p_threshold, grid.kept) == (0.2, ())
    optuna = make_scheduler(plan("--search", "optuna", "--num-samples", "4", "--scheduler", "significance",
                                 "--alpha", "0.05"))
    assert isinstance(optuna, SyncRungs) and (optuna.trials, optuna.alpha) == (4, 0.05)
