"""Seeds in lockstep: a trial training N seeds gives each seed exactly what a run of that seed alone
gives, reports their mean and spread, and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import train_image
from trainables.lockstep import combine, unpack
from trainables.reporting import STATE_FILE, MemoryReporter, load_state

TINY = dict(train_subset=256, val_subset=128, epochs=2, batch_size=64, cpus=1, model="cnn", num_filters=8)
PER_SEED = ("train_loss", "train_acc", "val_loss", "val_acc")


def run(reporter: MemoryReporter, **overrides) -> MemoryReporter:
    return train_image(reporter, **{**TINY, **overrides})


@pytest.fixture(scope="module")
def lockstep_and_alone():
    together = run(MemoryReporter(), seed=3, seeds=2)
    alone = {seed: run(MemoryReporter(), seed=seed) for seed in (3, 4)}
    return together, alone


def test_each_seed_in_lockstep_equals_a_run_of_that_seed_alone(lockstep_and_alone):
    together, alone = lockstep_and_alone
    assert len(together.history) == TINY["epochs"]
    for epoch, report in enumerate(together.history):
        for key in PER_SEED:
            for seed in (3, 4):
                assert report[f"{key}_seed{seed}"] == alone[seed].history[epoch][key], (key, seed, epoch)
    # The weights too: seed 3's are the checkpoint's own, seed 4's travel under `lockstep`.
    states = unpack(together.state, 2)
    for seed, state in zip((3, 4), states, strict=True):
        for name, weight in alone[seed].state["model"].items():
            assert torch.equal(weight, state["model"][name]), (seed, name)


def test_a_lockstep_report_is_the_mean_and_spread_over_its_seeds(lockstep_and_alone):
    together, alone = lockstep_and_alone
    last = together.history[-1]
    values = [alone[s].history[-1]["val_acc"] for s in (3, 4)]
    assert values[0] != values[1]  # otherwise mean and spread below prove nothing
    assert last["val_acc"] == pytest.approx(np.mean(values))
    assert last["val_acc_std"] == pytest.approx(np.std(values, ddof=1))
    assert last["seeds"] == 2 and last["epoch"] == TINY["epochs"]


def test_a_killed_lockstep_trial_resumes_exactly(lockstep_and_alone, tmp_path):
    straight, _ = lockstep_and_alone
    stopped = run(MemoryReporter(stop_after=1), seed=3, seeds=2)
    torch.save(stopped.state, tmp_path / STATE_FILE)  # the file format Ray stores, read back as Ray does
    resumed = run(MemoryReporter(state=load_state(str(tmp_path))), seed=3, seeds=2)
    assert [h["epoch"] for h in resumed.history] == [2]
    for key in [f"{k}_seed{s}" for k in PER_SEED for s in (3, 4)] + ["val_acc", "val_acc_std"]:
        assert resumed.history[-1][key] == straight.history[-1][key], key


def test_a_checkpoint_with_another_number_of_seeds_is_refused():
    state = {"model": {}, "lockstep": [{"model": {}}]}
    with pytest.raises(ValueError, match="holds 2 seeds"):
        unpack(state, 3)


def test_combine_keeps_a_single_seed_report_as_it_is_and_shared_values_unaveraged():
    one = {"epoch": 1, "val_acc": 0.5, "precision": "fp32"}
    assert combine([one], [0]) is one
    two = combine([one, {"epoch": 1, "val_acc": 0.7, "precision": "fp32"}], [0, 1])
    assert two["epoch"] == 1 and isinstance(two["epoch"], int) and two["precision"] == "fp32"
    assert two["val_acc"] == pytest.approx(0.6) and two["val_acc_seed1"] == 0.7
