"""Trustworthy conclusions: the rung decision on a noisy curve, the statistics every table shows
(against scipy), and tables that never average runs of different budgets."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from analysis.results import load_experiment
from analysis.rungs import rungs, smoothed, successive_halving, top, trial_count
from analysis.stats import paired, quiet_moments, summarize
from analysis.tables import generic, per_config
from search.halving import asha
from spaces import get_space

# Two configurations over 6 epochs. `steady` is better at every epoch but one: it dips at epoch 3 (an
# unlucky epoch, as a nearly constant learning rate gives), exactly where `lucky` spikes.
STEADY = [0.60, 0.68, 0.55, 0.74, 0.77, 0.79]
LUCKY = [0.50, 0.58, 0.66, 0.62, 0.64, 0.65]


def test_smoothing_is_an_exponential_moving_average_and_zero_is_the_raw_curve():
    assert smoothed(STEADY, 0.0) == STEADY
    s = smoothed([1.0, 0.0, 0.0], 0.5)
    assert s == [1.0, 0.5, 0.25]
    for bad in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            smoothed(STEADY, bad)


def test_the_raw_rung_decision_follows_the_noise_and_the_smoothed_one_the_configuration():
    curves = {"steady": STEADY, "lucky": LUCKY}
    raw = successive_halving(curves, grace_period=3, reduction_factor=2, max_t=6, smoothing=0.0)
    assert raw.stopped_at == {"steady": 3, "lucky": 6}  # 0.55 < 0.66 at the rung
    # EMA 0.7 at epoch 3: steady 0.7·(0.7·0.60 + 0.3·0.68) + 0.3·0.55 = 0.6018 > lucky 0.5648.
    smooth = successive_halving(curves, grace_period=3, reduction_factor=2, max_t=6, smoothing=0.7)
    assert smooth.stopped_at == {"steady": 6, "lucky": 3} and smooth.finished == ["steady"]
    assert smooth.reports == 3 + 6


def test_a_rung_keeps_the_top_fraction_of_the_whole_cohort():
    scores = {c: v for c, v in zip("abcdef", [0.1, 0.6, 0.3, 0.5, 0.2, 0.4], strict=True)}
    assert top(scores, 2) == {"b", "d"}
    assert top(scores, 3) == {"b", "d", "f"}
    assert top({"x": 0.2, "y": 0.1}, 1) == {"x"}
    assert top({"x": 0.2, "y": 0.1}, 1, mode="min") == {"y"}
    assert top({"x": 0.5, "y": 0.5, "z": 0.1}, 1) == {"y"}  # a tie keeps the later, as Ray's bracket
    assert rungs(2, 3, 6) == [2] and rungs(1, 3, 6) == [1, 3] and rungs(4, 3, 2) == []


def test_the_halving_bracket_counts_grid_cells_and_baselines_with_their_open_axes():
    grid = {"temperature": [1, 2, 5, 10], "w_st": [0.5, 1, 5]}
    assert trial_count(grid, (), 1) == 12
    assert trial_count(grid, ({"w_st": 0.0, "temperature": 1.0, "w_lab": 1.0},), 1) == 13
    assert trial_count({**grid, "seed": [0, 1]}, ({"w_st": 0.0, "temperature": 1.0},), 2) == 2 * (24 + 2)



BASELINE = {"w_st": 0.0, "temperature": 1.0, "w_lab": 1.0}


def test_a_baseline_arm_is_never_stopped_early_and_still_counts_at_the_rung():
    """ASHA (grace 1, reduction factor 2) would stop a trial that reaches the rung below the first
    one's value; a baseline arm goes on, so kd's Δ always has its baseline at the full budget."""
    def first_rung_decisions(baselines: tuple) -> list[str]:
        scheduler = asha(grace_period=1, reduction_factor=2, max_t=4, kept=baselines)
        scheduler.set_search_properties("val_acc", "max")
        cell = SimpleNamespace(trial_id="cell", config={"w_st": 5.0, "temperature": 2.0, "w_lab": 0.5})
        base = SimpleNamespace(trial_id="base", config={**BASELINE, "seed": 0})
        decisions = []
        for trial, value in ((cell, 0.9), (base, 0.1)):
            scheduler.on_trial_add(None, trial)
            result = {"training_iteration": 1, "val_acc": value}
            decisions.append(scheduler.on_trial_result(None, trial, result))
        last = scheduler.on_trial_result(None, base, {"training_iteration": 4, "val_acc": 0.2})
        return decisions + [last]

    assert first_rung_decisions(()) == ["CONTINUE", "STOP", "STOP"]
    assert first_rung_decisions((BASELINE,)) == ["CONTINUE", "CONTINUE", "STOP"]  # stops at max_t only


def test_the_replayed_halving_keeps_the_baseline_beside_the_top_of_the_cohort():
    curves = {"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7], "d": [0.6, 0.6], "base": [0.1, 0.1]}
    rung = {"grace_period": 1, "reduction_factor": 3, "max_t": 2}
    assert sorted(successive_halving(curves, **rung).finished) == ["a", "b"]  # ceil(5/3) = 2
    kept = successive_halving(curves, **rung, kept=frozenset({"base"}))
    assert sorted(kept.finished) == ["a", "b", "base"] and kept.stopped_at["c"] == 1

def test_the_confidence_interval_agrees_with_scipy():
    values = [0.712, 0.745, 0.689, 0.731]
    s = summarize(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert s.n == 4 and s.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert s.std == pytest.approx(np.std(values, ddof=1), abs=1e-15)
    assert (s.lo, s.hi) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    one = summarize([0.7])
    assert one.mean == 0.7 and np.isnan(one.std) and np.isnan(one.lo)


def test_the_paired_test_agrees_with_scipy_on_the_shared_seeds():
    kd = {0: 0.70, 1: 0.73, 2: 0.75, 7: 0.9}  # seed 7 has no baseline partner: left out
    base = {0: 0.68, 1: 0.72, 2: 0.71}
    result = paired(kd, base)
    expected = stats.ttest_rel([0.70, 0.73, 0.75], [0.68, 0.72, 0.71])
    assert result.n == 3 and result.diff == pytest.approx(np.mean([0.02, 0.01, 0.04]))
    assert result.p == pytest.approx(expected.pvalue, abs=1e-12)
    assert result.significant == (expected.pvalue < 0.05)
    assert np.isnan(paired({0: 0.7}, {0: 0.6}).p)


def test_differences_equal_up_to_rounding_give_no_p_and_no_precision_warning():
    """scipy's t-tests warn of precision loss on (nearly) constant samples; the tables then have no p
    to give where the differences are one value up to rounding, and a constant side of a Welch test
    (variance exactly 0) is tested quietly."""
    import warnings

    from analysis.compare import welch

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert np.isnan(paired({0: 0.1 + 1e-17, 1: 0.2, 2: 0.3}, {0: 0.0, 1: 0.1, 2: 0.2}).p)
        assert np.isnan(welch([0.5, 0.5 + 1e-16, 0.5], [0.5, 0.5, 0.5]).p)
        one_constant = welch([0.5, 0.5], [0.5, 0.6])
    with quiet_moments():  # scipy itself, for the reference value
        expected = stats.ttest_ind([0.5, 0.6], [0.5, 0.5], equal_var=False).pvalue
    assert one_constant.p == pytest.approx(expected)


def write_trial(folder, name: str, params: dict, accs: list[float], done: bool) -> None:
    trial = folder / name
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(params))
    rows = [{"epoch": i + 1, "training_iteration": i + 1, "val_acc": a, "trial_id": name,
             "done": done and i == len(accs) - 1} for i, a in enumerate(accs)]
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_tables_never_average_runs_of_different_budgets_and_rank_full_budgets_first(tmp_path):
    # Seeds as separate trials (what a space without lockstep runs): ASHA stopped seed 1 of n=1 at
    # epoch 1, so n=1 is two rows, one per budget, never the average of 0.55 and (0.61, 0.62).
    for seed, (accs, done) in enumerate([([0.50, 0.61, 0.62], True), ([0.55], True)]):
        write_trial(tmp_path, f"t_n1_s{seed}", {"num_blocks": 1, "seed": seed}, accs, done)
    for seed, accs in enumerate([[0.4, 0.5, 0.58], [0.45, 0.52, 0.60]]):
        write_trial(tmp_path, f"t_n2_s{seed}", {"num_blocks": 2, "seed": seed}, accs, True)
    exp = load_experiment(tmp_path, max_t=3)
    frame = per_config(exp, "best", ["val_acc"])
    assert sorted(zip(frame["num_blocks"], frame["epochs"], frame["runs"], strict=True)) == [
        (1, 1, 1), (1, 3, 1), (2, 3, 2)]
    stopped = frame[frame["epochs"] == 1].iloc[0]
    assert stopped["val_acc"] == 0.55 and stopped["stopped_early"]
    table = generic(exp).frame
    assert list(table["epochs"]) == [3, 3, 1]  # full budget first, then the stopped row
    assert list(table["val_acc"])[:2] == [pytest.approx(0.62), pytest.approx(0.59)]


def test_a_single_seed_table_has_no_spread_columns(tmp_path):
    for n, accs in ((1, [0.5, 0.6]), (2, [0.4, 0.7])):
        write_trial(tmp_path, f"t_n{n}", {"num_blocks": n, "seed": 0}, accs, True)
    table = generic(load_experiment(tmp_path, max_t=2))
    assert not any(c.endswith(("_std", "_ci_lo", "_ci_hi")) for c in table.frame.columns)
    markdown = table.markdown()
    assert "nan" not in markdown.lower() and "±" not in markdown and "one seed" in table.caption


@pytest.mark.slow
def test_a_halving_search_stops_exactly_what_the_replay_of_its_curves_stops(tmp_path):
    """The real scheduler (Ray's HyperBand reduced to one synchronous bracket, EMA 0.5) against
    `successive_halving` replayed on the curves the search recorded: the same trials go on at each
    rung, whatever order they arrived in; the stopped ones are told from the finished ones. It asks
    none of the space's questions (whose arms are the whole grid and would all run to the budget)."""
    from tests.conftest import run_cli

    result = run_cli("--space", "degradation", "--profile", "smoke", "--scheduler", "halving",
                     "--no-questions", "--smoothing", "0.5", "--max-epochs", "4", "--seeds", "2",
                     "--set", "train_subset=256", "--set", "val_subset=128", "--storage", str(tmp_path),
                     "--name", "halving", env={"TUNELAB_REPORT": str(tmp_path / "report")}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    exp = load_experiment(tmp_path / "halving", max_t=4)
    curves = {t: exp.epochs[exp.epochs["trial_id"] == t].sort_values("training_iteration")["val_acc"].tolist()
              for t in sorted(exp.trials["trial_id"])}  # Ray's creation order: ties keep the later
    # Grace 1 (smoke), the space's reduction factor 2: rung 1 keeps ceil(6/2) = 3, rung 2 keeps 2.
    assert get_space("degradation").reduction_factor == 2
    replay = successive_halving(curves, grace_period=1, reduction_factor=2, max_t=4, smoothing=0.5)
    ran = dict(zip(exp.trials["trial_id"], exp.trials["epochs_run"], strict=True))
    assert ran == replay.stopped_at
    assert sorted(ran.values()) == [1, 1, 1, 2, 4, 4]
    trials = exp.trials.set_index("trial_id")
    assert (trials["stopped_early"] == (trials["epochs_run"] < 4)).all() and not exp.incomplete
