"""The driver as users run it: bad input is one line and exit 2; smoke searches of every image space."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from search.run import main
from spaces import SPACES
from tests.conftest import assert_one_line_error, run_cli

BAD_INPUTS = [
    ["--space", "nonexistent"],
    ["--space", "degradation", "--profile", "huge"],
    ["--space", "degradation", "--set", "unknown_key=1"],
    ["--space", "degradation", "--set", "lr=fast"],
    ["--space", "degradation", "--set", "lr=nan"],
    ["--space", "degradation", "--set", "lr=inf"],
    ["--space", "kd", "--set", "temperature=-inf"],
    ["--space", "degradation", "--set", "lr=-0.1"],
    ["--space", "degradation", "--set", "num_blocks=0"],
    ["--space", "degradation", "--set", "skip=maybe"],
    ["--space", "teachers", "--set", "model=resnet30"],
    ["--space", "mnist", "--set", "model=mlp,vgg16"],
    ["--space", "degradation", "--set", "noequals"],
    ["--space", "degradation", "--data-dir", "/nonexistent/data"],
    ["--space", "degradation", "--dataset", "cifar10", "--data-dir", "/tmp"],
    ["--space", "degradation", "--gpus-per-trial", "1"],
    ["--space", "degradation", "--seeds", "0"],
    ["--space", "degradation", "--seeds", "-1"],
    ["--space", "degradation", "--seeds", "65"],
    ["--space", "degradation", "--smoothing", "1"],
    ["--space", "degradation", "--smoothing", "-0.1"],
    ["--space", "degradation", "--bogus-flag"],
    [],
]


@pytest.mark.parametrize("args", BAD_INPUTS, ids=[" ".join(a) or "no-args" for a in BAD_INPUTS])
def test_bad_input_returns_2_with_one_line(args, tmp_path, capsys):
    assert main([*args, "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


@pytest.mark.parametrize("args", [BAD_INPUTS[0], BAD_INPUTS[4], BAD_INPUTS[8]])
def test_bad_input_from_the_shell_exits_2_without_traceback(args, tmp_path):
    assert_one_line_error(run_cli(*args, "--storage", str(tmp_path / "results"), timeout=120))


def test_unwritable_storage_returns_2(tmp_path, capsys):
    # root ignores permission bits, so use a path no one can create: under /proc.
    assert main(["--space", "degradation", "--storage", "/proc/tunelab/results"]) == 2
    assert "not writable" in capsys.readouterr().err


def test_existing_experiment_is_never_overwritten(tmp_path, capsys):
    existing = tmp_path / "degradation_old"
    existing.mkdir()
    (existing / "keep.txt").write_text("precious")
    args = ["--space", "degradation", "--storage", str(tmp_path), "--name", "degradation_old"]
    assert main([*args, "--profile", "smoke"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (existing / "keep.txt").read_text() == "precious"
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]


def test_list_names_every_space_with_its_grid(capsys):
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in SPACES:
        assert name in out
    assert "num_blocks [1, 5, 7]" in out


def test_view_prints_each_model_with_params_and_layers(capsys):
    assert main(["--space", "degradation", "--view"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("num_blocks=")]
    assert len(rows) == 6
    assert any(line.split()[-1] == "30" for line in rows if "num_blocks=7" in line)


def smoke(space: str, storage, *extra: str):
    result = run_cli("--space", space, "--profile", "smoke", "--storage", str(storage),
                     "--name", space, *extra, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result, storage / space


@pytest.mark.slow
@pytest.mark.parametrize("space,trials", [("mnist", 3), ("degradation", 6), ("teachers", 2)])
def test_smoke_search_stores_every_trial_with_val_acc(space, trials, storage):
    result, experiment = smoke(space, storage)
    trial_dirs = [p for p in experiment.iterdir() if (p / "params.json").is_file()]
    assert len(trial_dirs) == trials
    best = {}
    for trial in trial_dirs:
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        params = json.loads((trial / "params.json").read_text())
        # An accuracy is a count of correct images over the validation subset, not any number in [0, 1].
        n_val = params["val_subset"]
        assert rows and all(abs(r["val_acc"] * n_val - round(r["val_acc"] * n_val)) < 1e-6 for r in rows)
        assert any(p.name.startswith("checkpoint_") for p in trial.iterdir())
        best[trial.name] = (len(rows), max(r["val_acc"] for r in rows))
    # The row marked * is the best val_acc among the trials that ran the full budget.
    table = result.stdout[result.stdout.index("(best epoch)"):].splitlines()
    marked = [line for line in table[1:] if line.lstrip().startswith("*")]
    assert len(marked) == 1, table
    budget = max(n for n, _ in best.values())
    winner = max(acc for n, acc in best.values() if n == budget)
    assert f"{winner:.4f}" in marked[0].split(), (marked, winner)


@pytest.mark.slow
def test_plain_ray_experiment_analysis_reads_every_trial(storage):
    from ray.tune import ExperimentAnalysis

    experiment = storage / "degradation"
    if not experiment.exists():
        smoke("degradation", storage)
    analysis = ExperimentAnalysis(str(experiment))
    frame = analysis.dataframe(metric="val_acc", mode="max")
    assert len(frame) == 6
    assert frame["val_acc"].notna().all()


@pytest.mark.parametrize("path", ["/proc/tunelab-nope", "a-file", "/sys/tunelab-nope"])
def test_an_unusable_ray_temp_dir_is_one_line_before_ray_starts(path):
    """A missing parent on a virtual filesystem, a file, no permission: UsageError (one line, exit 2)
    from the check start_ray makes before it imports Ray, never mkdir's traceback."""
    from cli import UsageError
    from search.cluster import check_temp_dir

    if path == "a-file":  # short: Ray's socket paths bound the folder's length, checked first
        handle, path = tempfile.mkstemp(prefix="tl-", dir="/tmp")
        os.close(handle)
    try:
        with pytest.raises(UsageError, match="--ray-temp-dir .* is not a writable folder"):
            check_temp_dir(path)
    finally:
        if path.startswith("/tmp/tl-"):
            os.unlink(path)


@pytest.mark.parametrize("tool", ["report", "evaluate"])
@pytest.mark.parametrize("out", ["/proc/tunelab-nope", "/sys/tunelab-nope", "FILE/below"])
def test_an_unusable_out_folder_is_one_line_and_exit_2(tool, out, tmp_path, capsys):
    from analysis import evaluate, report

    if out.startswith("FILE"):
        (tmp_path / "a-file").write_text("not a folder")
        out = str(tmp_path / "a-file" / "below")
    main = report.main if tool == "report" else evaluate.main
    assert main([str(tmp_path / "some-experiment"), "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out ") and "is not a writable folder" in err
    assert len(err.strip().splitlines()) == 1 and not Path(out).exists()
