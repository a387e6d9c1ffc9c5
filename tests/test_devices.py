"""GPUs accounted: a trial's device is what Ray granted it, and trial resources are decided against the
cluster's nodes (the default GPU fraction, requests no node can hold, Optuna's concurrency limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cli import UsageError
from search.resources import concurrent_trials, settle_resources
from spaces import get_space
from tests.conftest import plan_for
from trainables.loop import granted_device, setup_runtime

SMOKE = ["--space", "degradation", "--profile", "smoke"]
CPU_NODE = {"CPU": 16.0}
GPU_NODE = {"CPU": 16.0, "GPU": 1.0}


@pytest.fixture
def cuda_everywhere(monkeypatch):
    """A node whose GPUs every process sees, as Ray 2.60 leaves them to a trial granted 0 GPUs."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_trial_granted_no_gpu_runs_on_the_cpu_although_cuda_is_visible(cuda_everywhere):
    assert granted_device([]) == torch.device("cpu")
    rt = setup_runtime(1, [], precision="fp32")
    assert rt.device == torch.device("cpu") and rt.amp is None


def test_granted_gpu_id_maps_to_its_device(cuda_everywhere, monkeypatch):
    # Without CUDA_VISIBLE_DEVICES torch numbers the node's GPUs as Ray does.
    assert granted_device(["2"]) == torch.device("cuda", 2)
    # Ray lists a trial's granted GPUs in CUDA_VISIBLE_DEVICES: torch then sees them from index 0.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert setup_runtime(1, ["3"]).device == torch.device("cuda", 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert granted_device([3, 1]) == torch.device("cuda", 1)
    with pytest.raises(RuntimeError, match="granted GPU 2 but CUDA_VISIBLE_DEVICES is 1,3"):
        granted_device(["2"])


def test_concurrency_counts_gpus_as_well_as_cpus_node_by_node():
    assert concurrent_trials([GPU_NODE], cpus=1, gpus=0.25) == 4  # not 16: four trials share the GPU
    assert concurrent_trials([GPU_NODE], cpus=1, gpus=0.0) == 16
    assert concurrent_trials([GPU_NODE, CPU_NODE], cpus=2, gpus=0.5) == 2  # the CPU node runs none
    assert concurrent_trials([{"CPU": 3.0, "GPU": 2.0}, {"CPU": 1.0, "GPU": 1.0}], cpus=1, gpus=1) == 3


def test_gpu_fraction_defaults_from_the_cluster_not_the_drivers_cuda(tmp_path: Path, monkeypatch):
    space = get_space("degradation")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only head of a GPU cluster
    plan = plan_for(tmp_path, "degradation")
    assert plan.gpus is None  # undecided until Ray is up
    settle_resources(plan, [CPU_NODE, GPU_NODE])
    assert (plan.cpus, plan.gpus) == (space.cpus, space.gpu)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU driver of a CPU-only cluster
    plan = plan_for(tmp_path, "degradation")
    settle_resources(plan, [CPU_NODE])
    assert plan.gpus == 0.0


def test_request_no_node_can_hold_is_refused_in_one_line(tmp_path: Path):
    plan = plan_for(tmp_path, "degradation", "--address", "127.0.0.1:6379", "--gpus-per-trial", "2")
    with pytest.raises(UsageError, match=r"no node .* 1 CPUs and 2 GPUs \(nodes: 16 CPUs 1 GPUs\)") as err:
        settle_resources(plan, [GPU_NODE])
    assert "\n" not in str(err.value)
    plan = plan_for(tmp_path, "degradation", "--address", "127.0.0.1:6379", "--cpus-per-trial", "32")
    with pytest.raises(UsageError, match="32 CPUs"):
        settle_resources(plan, [GPU_NODE, CPU_NODE])


def test_resumed_gpu_plan_on_a_cpu_only_cluster_is_refused_or_moved_to_cpus(tmp_path: Path):
    plan = plan_for(tmp_path, "degradation")
    plan.gpus = 0.5  # as stored by a search that ran on GPUs
    with pytest.raises(UsageError, match="--gpus-per-trial 0"):
        settle_resources(plan, [CPU_NODE])
    for cpus, gpus, message in ((0, None, "must be >= 1"), (None, 1.5, "fraction of one GPU")):
        with pytest.raises(UsageError, match=message):
            settle_resources(plan, [CPU_NODE], cpus=cpus, gpus=gpus)
    settle_resources(plan, [CPU_NODE], cpus=2, gpus=0.0)  # --resume ... --cpus-per-trial 2 --gpus-per-trial 0
    assert (plan.cpus, plan.gpus, plan.config["cpus"]) == (2, 0.0, 2)
