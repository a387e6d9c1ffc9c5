"""`analysis/report.py A B C` on three real smoke searches of the degradation space: rows matched by
configuration, each difference and its Welch interval against a hand computation from the trials' own
per-seed values, one-run and unequal-budget rows said as such, and bad input refused in one line."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import compare, report
from cli import UsageError
from tests.conftest import OFFLINE_ENV, ROOT, run_cli

# One epoch, FIFO, skip nets only. A: num_blocks 1, two seeds in lockstep; B: num_blocks 1 and 2,
# three seeds, asking a question of its own; C: num_blocks 1, one seed, two epochs (another budget).
# Four trials in all.
BASE = ("--space", "degradation", "--profile", "smoke", "--scheduler", "fifo", "--set", "skip=true")
SEARCHES = {
    "a": ("--max-epochs", "1", "--seeds", "2", "--set", "num_blocks=1"),
    "b": ("--max-epochs", "1", "--seeds", "3", "--set", "num_blocks=1,2",
          "--question", "deeper: num_blocks=2 > num_blocks=1"),
    "c": ("--max-epochs", "2", "--set", "num_blocks=1"),
}


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("compare")
    for name, extra in SEARCHES.items():
        result = run_cli(*BASE, *extra, "--storage", str(root / "results"), "--name", name,
                         env={"TUNELAB_REPORT": str(root / "report")})
        assert result.returncode == 0, result.stderr[-3000:]
    return root / "results"


@pytest.fixture(scope="module")
def compared(storage, tmp_path_factory) -> Path:
    """The comparison folder that `python analysis/report.py a b c` writes, run from the shell."""
    out = tmp_path_factory.mktemp("compare_report")
    done = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"),
                           *(str(storage / n) for n in SEARCHES), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**OFFLINE_ENV})
    assert done.returncode == 0, done.stderr[-3000:]
    folders = [p for p in out.iterdir() if p.is_dir()]
    assert [p.name for p in folders] == ["compare__a__b__c"]
    assert f"report: {folders[0] / 'README.md'}" in done.stdout
    return folders[0]


def seed_values(experiment: Path, num_blocks: int) -> list[list[float]]:
    """Per seed, the val_acc curve of the trial with `num_blocks`, read from its result.json: the
    `val_acc_seed<s>` values of a lockstep trial, else its val_acc."""
    for trial in experiment.iterdir():
        params = trial / "params.json"
        if params.is_file() and json.loads(params.read_text())["num_blocks"] == num_blocks:
            rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
            seeds = sorted(k for k in rows[0] if k.startswith("val_acc_seed"))
            return [[row[k] for row in rows] for k in seeds or ["val_acc"]]
    raise AssertionError(f"no trial with num_blocks={num_blocks} in {experiment}")


def at_best_epoch(curves: list[list[float]]) -> tuple[list[float], int]:
    """Each seed's value at the epoch where the mean over seeds is best, and that epoch (1-based)."""
    best = int(np.argmax(np.mean(curves, axis=0)))
    return [curve[best] for curve in curves], best + 1


def test_each_question_is_answered_side_by_side_and_named_where_not_asked(compared):
    readme = (compared / "README.md").read_text()
    section = readme.split("## The study's questions", 1)[1].split("##", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| deeper |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "not asked" and cells[3] == "not asked"
    assert re.match(r"(holds|contradicted|undecided): Δ [+-]\d\.\d{4}, 95% \[", cells[2])
    assert "3 seeds" in cells[2]
    assert 'id="table-questions"' in (compared / "index.html").read_text()


def test_rows_are_matched_by_configuration_and_one_sided_ones_are_named(compared):
    frame = pd.read_csv(compared / "compare_best.csv")
    assert list(frame["num_blocks"]) == [1, 2] and frame["skip"].all()
    matched, only_b = frame.iloc[0], frame.iloc[1]
    assert (matched["runs A"], matched["runs B"], matched["runs C"]) == (2, 3, 1)
    assert (only_b["runs A"], only_b["runs B"], only_b["runs C"]) == (0, 3, 0)
    assert only_b["Welch test B−A"] == "only in B" and math.isnan(only_b["Δ B−A"])
    readme = (compared / "README.md").read_text()
    assert "Only in B (b): num_blocks=2, skip=True." in readme
    assert "seeds per configuration: A 2, B 3, C 1" in readme
    assert "budget (epochs): A 1, B 1, C 2" in readme and "The budgets differ" in readme
    assert (compared / "compare_final.csv").is_file() and (compared / "compare_best.md").is_file()


def test_difference_and_its_welch_interval_equal_a_hand_computation(storage, compared):
    a, epoch_a = at_best_epoch(seed_values(storage / "a", 1))
    b, epoch_b = at_best_epoch(seed_values(storage / "b", 1))
    assert (len(a), len(b), epoch_a, epoch_b) == (2, 3, 1, 1)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = np.mean(b) - np.mean(a)
    row = pd.read_csv(compare_best := compared / "compare_best.csv").iloc[0]
    assert row["val_acc A"] == pytest.approx(np.mean(a), abs=1e-12)
    assert row["val_acc B"] == pytest.approx(np.mean(b), abs=1e-12)
    assert row["Δ B−A"] == pytest.approx(diff, abs=1e-12)
    assert row["Δ B−A_ci_lo"] == pytest.approx(max(diff - half, -1.0), abs=1e-9)
    assert row["Δ B−A_ci_hi"] == pytest.approx(min(diff + half, 1.0), abs=1e-9)
    assert (row["epoch A"], row["epoch B"]) == (1, 1)
    t = diff / math.sqrt(va + vb)
    assert row["p (Welch) B−A"] == pytest.approx(2 * stats.t.sf(abs(t), df), abs=1e-9)
    assert row["Welch test B−A"] in ("significant (p < 0.05)", "not significant"), compare_best


def test_one_run_and_another_budget_give_no_interval_and_no_verdict(storage, compared):
    (c,), epoch_c = at_best_epoch(seed_values(storage / "c", 1))
    a, _ = at_best_epoch(seed_values(storage / "a", 1))
    row = pd.read_csv(compared / "compare_best.csv").iloc[0]
    assert row["epoch C"] == epoch_c and row["epochs C"] == 2
    assert row["Δ C−A"] == pytest.approx(c - np.mean(a), abs=1e-12)
    assert math.isnan(row["Δ C−A_ci_lo"]) and math.isnan(row["p (Welch) C−A"])
    assert row["Welch test C−A"] == ("not like-for-like: A ran 1 of 1 epochs, C 2 of 2; "
                                     "one run on a side: no interval can be computed")


def test_page_is_self_contained_with_both_tables(compared):
    page = (compared / "index.html").read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert 'id="table-best"' in page and 'id="table-final"' in page
    # the sides, B's one question, then each table's two configurations
    assert page.count("<tr class=") == 3 + 1 + 2 + 2
    assert '<a href="compare_best.csv">' in page


def test_the_page_overlays_every_experiments_curves_one_colour_per_configuration(compared, storage):
    """Beside the main table, one chart holds the four trials of the three experiments: labelled by
    their letter, one colour per configuration (num_blocks=1 the same in A, B and C), each
    experiment's own line (A solid, B dashed, C dotted), with the values each trial stored."""
    page = (compared / "index.html").read_text()
    data = json.loads(page.split('<script type="application/json" id="curve-data">', 1)[1]
                      .split("</script>", 1)[0])
    trials = data["trials"]
    assert sorted(t["id"][0] for t in trials) == ["A", "B", "B", "C"]
    assert page.index('id="table-best"') < page.index('id="curves"') < page.index('id="table-final"')
    one_block = {t["id"][0]: t for t in trials if "num_blocks=1" in t["label"]}
    assert len({t["colour"] for t in one_block.values()}) == 1
    assert [one_block[k]["dash"] for k in "ABC"] == ["", "7 4", "2 3"]
    assert {t["colour"] for t in trials if "num_blocks=2" in t["label"]} != {one_block["A"]["colour"]}
    mean = np.mean(seed_values(storage / "a", 1), axis=0)
    assert one_block["A"]["v"]["val_acc"]["m"] == pytest.approx(mean.tolist(), rel=1e-4)
    assert "A solid, B dashed, C dotted" in page


def other_space_copy(experiment: Path, target: Path) -> Path:
    """A copy of `experiment` whose stored plan names another space (mnist)."""
    shutil.copytree(experiment, target)
    plan = json.loads((target / "tunelab_plan.json").read_text())
    (target / "tunelab_plan.json").write_text(json.dumps({**plan, "space": "mnist"}))
    return target


@pytest.mark.parametrize("case", ["other space", "twice", "twice with a slash", "missing", "one"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(storage, tmp_path, capsys, case):
    a = str(storage / "a")
    given = {"other space": [a, str(other_space_copy(storage / "a", tmp_path / "m"))],
             "twice": [a, str(storage / "b"), a],
             "twice with a slash": [a, a + "/"],
             "missing": [a, str(tmp_path / "nowhere")]}
    out = tmp_path / "out"
    if case == "one":  # report.py reports a single experiment; the comparison itself refuses one
        with pytest.raises(UsageError, match="two to 26 experiments, got 1"):
            compare.run([a], out)
    else:
        assert report.main([*given[case], "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: "), err
        expected = {"other space": "different spaces cannot be compared (a is degradation, m is mnist)",
                    "twice": "is given twice", "twice with a slash": "is given twice",
                    "missing": "nowhere"}[case]
        assert expected in err
    assert not out.exists()


def test_different_spaces_are_refused_from_the_shell(storage, tmp_path):
    other = other_space_copy(storage / "a", tmp_path / "m")
    done = subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), str(storage / "a"),
                           str(other), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env={**OFFLINE_ENV})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "different spaces" in done.stderr
    assert not (tmp_path / "out").exists()


def test_welch_needs_two_runs_a_side_and_some_spread():
    assert math.isnan(compare.welch([0.5], [0.4, 0.6]).lo)
    assert compare.welch([0.5], [0.4, 0.6]).diff == pytest.approx(0.0)
    none = compare.welch([0.5, 0.5], [0.7, 0.7])
    assert none.diff == pytest.approx(0.2) and math.isnan(none.p)
    wide = compare.welch([0.1, 0.9], [0.0, 1.0], (-1.0, 1.0))
    assert (wide.lo, wide.hi) == (-1.0, 1.0)


def test_an_errored_trial_is_named_in_the_rows_verdict():
    clean = pd.Series({"epochs": 1.0, "runs": 2, "errored": False})
    errored = pd.Series({"epochs": 1.0, "runs": 2, "errored": True})
    diff = compare.welch([0.5, 0.6], [0.4, 0.45])
    assert compare.note(clean, errored, "B", diff, 1.0, 1.0) == "B holds an errored trial; not significant"
