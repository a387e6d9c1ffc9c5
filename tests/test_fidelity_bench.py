"""bench/bench_asha_fidelity.py --analyse on small constructed curve files (the degradation grid's
layout and a sampled space's): every decision is scored on the seed sets it did not see (checked
against a hand computation), every space is replayed and cross-validated in one command, the records
carry what BENCHMARKS (c) is written from, and bad curve files are one `error:` line with exit
status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import OFFLINE_ENV, ROOT, assert_one_line_error

A, B, C = (1, False), (5, True), (7, True)
# Three configurations, 3 seed sets of 2 lockstep seeds, 3 epochs, one lr_gamma arm. B is the best
# everywhere but on seed set 0, where A's seeds got lucky: FIFO on set 0 crowns A.
CURVES = {
    0: {A: [[0.5, 0.6, 0.7], [0.5, 0.6, 0.7]], B: [[0.4, 0.5, 0.6], [0.4, 0.5, 0.6]],
        C: [[0.3, 0.4, 0.5], [0.3, 0.4, 0.5]]},
    3: {A: [[0.5, 0.55, 0.6], [0.5, 0.55, 0.6]], B: [[0.5, 0.6, 0.8], [0.5, 0.6, 0.7]],
        C: [[0.3, 0.4, 0.45], [0.3, 0.4, 0.45]]},
    6: {A: [[0.5, 0.6, 0.62], [0.5, 0.6, 0.62]], B: [[0.5, 0.7, 0.75], [0.5, 0.7, 0.75]],
        C: [[0.3, 0.4, 0.44], [0.3, 0.4, 0.46]]},
}


def curves_file(path: Path, curves: dict = CURVES, **entry) -> Path:
    path.write_text(json.dumps({"curves": [
        {"lr_gamma": 0.7, "seed_set": s, "num_blocks": c[0], "skip": c[1], "val_acc": v, **entry}
        for s, cells in curves.items() for c, v in cells.items()]}))
    return path


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bench" / "bench_asha_fidelity.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE_ENV})


def test_every_pick_is_scored_on_the_seed_sets_its_decision_did_not_see(tmp_path):
    out = tmp_path / "out.json"
    path = curves_file(tmp_path / "curves.json")
    result = bench("--analyse", str(path), "--epochs", "3", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = {(r["rule"], json.dumps(r["settings"], sort_keys=True)): r for r in report["records"]}
    assert len(rows) == len(report["records"])  # one record per rule and setting in the one arm

    # By hand: a decision on set 0 is scored on sets 3 and 6 (4 seeds): the best epoch of the mean is
    # the last for each, A (0.6 + 0.6 + 0.62 + 0.62) / 4 = 0.61, B (0.8 + 0.7 + 0.75 + 0.75) / 4 = 0.75.
    # FIFO crowns A on set 0 (0.7 > 0.6) and B on sets 3 and 6, the true best there too.
    fifo = rows["fifo", "{}"]
    assert fifo["picks"] == [str(A), str(B), str(B)]
    assert fifo["true_regrets"] == pytest.approx([0.75 - 0.61, 0.0, 0.0], abs=1e-12)
    assert fifo["fifo_true_regret_mean"] == pytest.approx(0.14 / 3, abs=1e-12)
    assert fifo["fifo_true_regret_max"] == pytest.approx(0.14, abs=1e-12)
    assert fifo["epochs_fraction"] == 1.0 and fifo["regret_max"] == 0.0

    # The 1-epoch baseline: 3 configurations × 1 epoch, then the best after it trained 2 epochs more:
    # 5 of FIFO's 9 trial-epochs. It crowns A everywhere: 0.5 > 0.4 on set 0, and on sets 3 and 6 A and
    # B tie at 0.5, where the first in grid order goes on.
    one = rows["i-epoch", '{"i": 1}']
    assert one["epochs_fraction"] == pytest.approx(5 / 9)
    assert one["picks"] == [str(A), str(A), str(A)]
    # Seen from set 3 (scored on sets 0 and 6): A (0.7 + 0.7 + 0.62 + 0.62) / 4 = 0.66, B (0.6 + 0.6 +
    # 0.75 + 0.75) / 4 = 0.675; from set 6 (sets 0 and 3): A (0.7 + 0.7 + 0.6 + 0.6) / 4 = 0.65, B (0.6 +
    # 0.6 + 0.8 + 0.7) / 4 = 0.675.
    assert one["true_regrets"] == pytest.approx([0.14, 0.675 - 0.66, 0.675 - 0.65], abs=1e-12)
    assert one["fifo_true_regrets"] == fifo["true_regrets"]

    fields = {"space", "arm", "rule", "settings", "default", "epochs_fraction", "true_regret_mean",
              "true_regret_max", "fifo_true_regret_mean", "fifo_true_regret_max", "regret_mean",
              "regret_max", "same_winner", "tied_with_fifo_winner"}
    for r in report["records"]:
        assert fields <= r.keys() and r["arm"] == "lr_gamma=0.7" and r["space"] == "degradation"
        assert 0 <= r["true_regret_mean"] <= r["true_regret_max"]
    rules = {r["rule"] for r in report["records"]}
    assert {"fifo", "i-epoch", "halving", "hyperband", "ray-asha", "pasha", "optuna-sh", "optuna-hyperband",
            "optuna-median", "optuna-wilcoxon", "significance"} <= rules
    default = [r for r in report["records"] if r["default"]]
    assert len(default) == 1 and (default[0]["rule"], default[0]["settings"]) == (
        report["default"]["rule"], report["default"]["settings"])
    folds = report["cross_validation"]["folds"]
    assert [f["held_out"] for f in folds] == [{"lr_gamma=0.7": s} for s in (0, 3, 6)]
    assert "choice on all seed sets (the default)" in result.stdout


@pytest.mark.parametrize("case, needle", [("layout", "not a curves file"),
                                          ("missing", "no curves for seed set 6"), ("nan", "NaN")])
def test_a_bad_curves_file_is_one_error_line_and_exit_2(tmp_path, case, needle):
    path = tmp_path / "bad.json"
    if case == "layout":
        path.write_text(json.dumps({"trials": [{"config": {}, "history": []}]}))
    elif case == "missing":
        curves_file(path, {**CURVES, 6: {A: CURVES[6][A], B: CURVES[6][B]}})
    else:
        curves_file(path, {**CURVES, 3: {**CURVES[3], C: [[0.3, float("nan"), 0.4], [0.3, 0.4, 0.4]]}})
    assert_one_line_error(bench("--analyse", str(path), "--epochs", "3"), needle)


def sampled_file(path: Path, sets: int = 4, configs: int = 4) -> Path:
    """A sampled space (layout 2): `configs` configurations by label, `sets` seed sets of 2 seeds, where
    c01 is best at the budget but behind after one epoch (its curves cross the others')."""
    def curve(n: int, s: int) -> list[float]:
        late = 0.3 if n == 1 else 0.0
        return [round(0.5 - 0.02 * n + 0.01 * s - late, 4), round(0.55 - 0.02 * n + 0.01 * s, 4),
                round(0.6 - 0.02 * n + 0.005 * s + late, 4)]

    labels = [f"c{n:02d}" for n in range(configs)]
    path.write_text(json.dumps({
        "layout": 2, "space": "sampled4-draw9",
        "configs": {c: {"num_blocks": n + 1, "skip": n % 2 == 0, "lr": 0.01, "weight_decay": 1e-4,
                        "lr_gamma": 0.8} for n, c in enumerate(labels)},
        "curves": [{"config": c, "seed_set": 2 * s, "val_acc": [curve(n, s), curve(n, s + 1)]}
                   for s in range(sets) for n, c in enumerate(labels)]}))
    return path


def test_every_space_is_replayed_and_cross_validated_with_each_seed_set_held_out_once(tmp_path):
    """The degradation layout (3 seed sets) and a sampled space (4 seed sets) in one command: records
    per space and arm, a configuration named by its label, and cross-validation whose folds hold out
    each arm's seed sets in turn, the sampled space's fourth set in a fold of its own."""
    out = tmp_path / "out.json"
    grid, sampled = curves_file(tmp_path / "grid.json"), sampled_file(tmp_path / "sampled.json")
    result = bench("--analyse", str(grid), str(sampled), "--epochs", "3", "--json", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["spaces"] == ["degradation", "sampled4-draw9"]
    arms = {(r["space"], r["arm"]) for r in report["records"]}
    assert arms == {("degradation", "lr_gamma=0.7"), ("sampled4-draw9", "sampled4-draw9")}
    fifo = next(r for r in report["records"] if r["space"] == "sampled4-draw9" and r["rule"] == "fifo")
    assert fifo["picks"] == ["c01"] * 4 and fifo["lr_gamma"] is None and fifo["repeats"] == 4
    folds = report["cross_validation"]["folds"]
    assert [f["held_out"] for f in folds] == [{"lr_gamma=0.7": 0, "sampled4-draw9": 0},
                                              {"lr_gamma=0.7": 3, "sampled4-draw9": 2},
                                              {"lr_gamma=0.7": 6, "sampled4-draw9": 4},
                                              {"sampled4-draw9": 6}]
    held = report["cross_validation"]["held_out"]
    targets = (held["sampled4-draw9"]["target_fraction"], held["lr_gamma=0.7"]["target_fraction"])
    assert targets == (0.25, 0.35)
    assert "c01: num_blocks=2, skip=False" in result.stdout


@pytest.mark.parametrize("case, needle", [("twice", "is also in another curves file"),
                                          ("unknown config", "not of the layout")])
def test_a_bad_sampled_curves_file_is_one_error_line_and_exit_2(tmp_path, case, needle):
    first = sampled_file(tmp_path / "a.json")
    second = tmp_path / "b.json"
    if case == "twice":
        second.write_text(first.read_text())
    else:
        record = json.loads(first.read_text())
        record["curves"][0]["config"] = "c99"
        second.write_text(json.dumps(record))
    paths = [str(first), str(second)] if case == "twice" else [str(second)]
    assert_one_line_error(bench("--analyse", *paths, "--epochs", "3"), needle)


def test_every_committed_curves_file_records_its_settings_seeds_commit_and_cpu():
    files = sorted((ROOT / "bench").glob("asha_fidelity_curves*.json"))
    assert len(files) >= 3
    for path in files:
        record = json.loads(path.read_text())
        settings, provenance = record["settings"], record["provenance"]
        assert {"train_subset", "val_subset", "epochs", "seeds", "seed_sets"} <= settings.keys(), path.name
        assert provenance["commit"] and provenance["cpu"] and provenance["date"], path.name
        sets = sorted({c["seed_set"] for c in record["curves"]})
        assert sets == sorted(settings["seed_sets"]), path.name
