"""Optuna (TPE under ASHA with a concurrency limit) and the resources every trial requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from search.options import build_plan, parse_args
from search.tuner import build_tuner, make_scheduler, make_searcher
from spaces import get_space
from tests.conftest import run_cli
from trainables.loop import setup_runtime

SMOKE = ["--space", "degradation", "--profile", "smoke"]


def plan_for(tmp_path: Path, *args: str):
    name = f"plan{len(list(tmp_path.iterdir()))}"  # building a Tuner creates its experiment folder
    return build_plan(parse_args([*SMOKE, "--storage", str(tmp_path), "--name", name, *args]))


def requested(plan) -> dict:
    """What the Tuner's trainable asks Ray for, per trial."""
    return build_tuner(plan)._local_tuner.trainable._resources.required_resources


def test_optuna_samples_the_continuous_space_under_asha_with_a_concurrency_limit(tmp_path: Path):
    plan = plan_for(tmp_path, "--search", "optuna", "--num-samples", "4", "--set", "skip=true")
    assert isinstance(make_scheduler(plan), tune.schedulers.ASHAScheduler)
    searcher = make_searcher(plan)
    assert isinstance(searcher, ConcurrencyLimiter) and isinstance(searcher.searcher, OptunaSearch)
    space = plan.param_space()
    assert set(plan.space.continuous) <= set(space)
    assert isinstance(space["lr"], tune.search.sample.Float)  # sampled, not a grid
    assert space["skip"] is True  # pinned by --set: optuna leaves it alone


@pytest.mark.slow
def test_optuna_smoke_search_runs_num_samples_distinct_trials(tmp_path: Path):
    result = run_cli(*SMOKE, "--search", "optuna", "--num-samples", "3", "--set", "train_subset=256",
                     "--set", "val_subset=128", "--storage", str(tmp_path), "--name", "tpe")
    assert result.returncode == 0, result.stderr[-3000:]
    params = [json.loads(p.read_text()) for p in sorted((tmp_path / "tpe").glob("*/params.json"))]
    assert len(params) == 3
    lo, hi = 1e-3, 0.3
    assert all(lo <= p["lr"] <= hi and 1 <= p["num_blocks"] <= 7 for p in params)
    assert len({p["lr"] for p in params}) == 3
    assert any((tmp_path / "tpe").glob("searcher-state-*.pkl")), "OptunaSearch state is saved for resume"


def test_trials_request_the_spaces_cpus_and_no_gpu_without_cuda(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = plan_for(tmp_path)
    assert (plan.cpus, plan.gpus) == (get_space("degradation").cpus, 0.0)
    assert requested(plan) == {"CPU": plan.cpus}
    assert requested(plan_for(tmp_path, "--cpus-per-trial", "2")) == {"CPU": 2}


def test_trials_request_a_gpu_fraction_when_cuda_is_present(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    space = get_space("degradation")
    assert requested(plan_for(tmp_path)) == {"CPU": space.cpus, "GPU": space.gpu}
    assert requested(plan_for(tmp_path, "--gpus-per-trial", "0.5")) == {"CPU": space.cpus, "GPU": 0.5}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a trial granted a GPU it cannot see")
def test_trial_granted_a_gpu_without_cuda_fails_clearly():
    with pytest.raises(RuntimeError, match="granted a GPU but CUDA is not available"):
        setup_runtime(1, gpus_granted=1)
