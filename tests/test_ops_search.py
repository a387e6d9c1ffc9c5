"""Optuna (TPE under ASHA with a concurrency limit) and the resources every trial requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from cli import UsageError
from search.resources import settle_resources
from search.tuner import build_tuner, make_scheduler, make_searcher
from spaces import get_space
from tests.conftest import plan_for
from trainables.loop import setup_runtime

SMOKE = ["--space", "degradation", "--profile", "smoke"]


def requested(plan, nodes: tuple[dict, ...] = ({"CPU": 2.0},)) -> dict:
    """What the Tuner's trainable asks Ray for, per trial, once settled on a cluster of `nodes`."""
    settle_resources(plan, list(nodes))
    return build_tuner(plan)._local_tuner.trainable._resources.required_resources


def test_optuna_samples_the_continuous_space_under_asha_with_a_concurrency_limit(tmp_path: Path):
    plan = plan_for(tmp_path, "degradation", "--search", "optuna", "--num-samples", "4", "--set", "skip=true",
                    "--scheduler", "asha")
    assert isinstance(make_scheduler(plan), tune.schedulers.ASHAScheduler)
    searcher = make_searcher(plan)
    assert isinstance(searcher, ConcurrencyLimiter) and isinstance(searcher.searcher, OptunaSearch)
    space = plan.param_space()
    assert set(plan.space.continuous) <= set(space)
    assert isinstance(space["lr"], tune.search.sample.Float)  # sampled, not a grid
    assert space["skip"] is True  # pinned by --set: optuna leaves it alone
    pinned = plan_for(tmp_path, "degradation", "--search", "optuna", "--set", "lr=0.05").param_space()
    assert pinned["lr"] == 0.05 and isinstance(pinned["weight_decay"], tune.search.sample.Float)
    assert isinstance(pinned["skip"], tune.search.sample.Categorical)  # a grid axis optuna does not cover


def test_trials_request_the_spaces_cpus_and_no_gpu_on_a_cluster_without_gpus(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the driver's CUDA does not decide
    plan = plan_for(tmp_path, "degradation")
    assert requested(plan) == {"CPU": plan.cpus}
    assert (plan.cpus, plan.gpus) == (get_space("degradation").cpus, 0.0)
    assert requested(plan_for(tmp_path, "degradation", "--cpus-per-trial", "2")) == {"CPU": 2}


def test_trials_request_a_gpu_fraction_when_the_cluster_has_gpus(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    space, gpu_node = get_space("degradation"), ({"CPU": 2.0, "GPU": 1.0},)
    assert requested(plan_for(tmp_path, "degradation"), gpu_node) == {"CPU": space.cpus, "GPU": space.gpu}
    half = plan_for(tmp_path, "degradation", "--gpus-per-trial", "0.5")
    assert requested(half, gpu_node) == {"CPU": space.cpus, "GPU": 0.5}


@pytest.mark.parametrize("flags, message", [
    (["--cpus-per-trial", "100000"], "exceeds this machine's"),
    (["--gpus-per-trial", "1.5"], "fraction of one GPU or a whole number"),
    (["--gpus-per-trial", "64"], "exceeds this machine's 1 GPUs"),
])
def test_resource_requests_no_trial_could_get_are_refused(tmp_path: Path, monkeypatch, flags, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UsageError, match=message):
        plan_for(tmp_path, "degradation", *flags)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a trial granted a GPU it cannot see")
def test_trial_granted_a_gpu_without_cuda_fails_clearly():
    with pytest.raises(RuntimeError, match="granted a GPU but CUDA is not available"):
        setup_runtime(1, gpu_ids=["0"])


def test_building_a_plan_reads_the_command_line_and_changes_nothing_in_it(tmp_path: Path):
    """A pbt search's population size comes from the space (search/checks.py check_pbt) into the plan,
    not back into the parsed arguments."""
    from search.options import build_plan, parse_args

    args = parse_args(["--space", "lora", "--profile", "smoke", "--scheduler", "pbt", "--set", "setting=qv8",
                       "--view", "--storage", str(tmp_path), "--name", "pbt"])
    given = dict(vars(args))
    plan = build_plan(args)
    assert plan.scheduler == "pbt" and plan.num_samples >= 2
    assert vars(args) == given
