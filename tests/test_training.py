"""The CNN trainable: metrics it reports, checkpoints, exact resume and config validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.conftest import train_image
from trainables.cnn import ImageConfig
from trainables.config import ConfigError, build, parse_value
from trainables.reporting import STATE_FILE, MemoryReporter, load_state

TINY = dict(train_subset=256, val_subset=128, epochs=3, batch_size=64, cpus=1)
REPORTED = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "params", "samples_per_s"}


def run(reporter: MemoryReporter, **overrides) -> MemoryReporter:
    return train_image(reporter, **{**TINY, **overrides})


def test_each_epoch_reports_the_documented_metrics_and_a_full_state():
    reporter = run(MemoryReporter())
    assert [h["epoch"] for h in reporter.history] == [1, 2, 3]
    assert REPORTED <= set(reporter.history[-1])
    assert {"model", "optimizer", "scheduler", "rng", "epoch", "config"} <= set(reporter.state)
    assert reporter.state["config"]["train_subset"] == 256


def test_resume_from_a_checkpoint_reproduces_the_uninterrupted_run_exactly(tmp_path):
    straight = run(MemoryReporter())
    stopped = run(MemoryReporter(stop_after=1))
    # Through the file format Ray stores, loaded back with weights_only=True.
    torch.save(stopped.state, tmp_path / STATE_FILE)
    resumed = run(MemoryReporter(state=load_state(str(tmp_path))))
    assert [h["epoch"] for h in resumed.history] == [2, 3]
    for key in ("train_loss", "val_loss", "val_acc", "train_acc"):
        assert resumed.history[-1][key] == straight.history[-1][key]
    for name, weight in straight.state["model"].items():
        assert torch.equal(weight, resumed.state["model"][name]), name


def test_same_seed_same_result_other_seed_other_result():
    a, b = run(MemoryReporter(), epochs=1), run(MemoryReporter(), epochs=1)
    c = run(MemoryReporter(), epochs=1, seed=1)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]


def test_training_learns_fashion_mnist():
    reporter = run(MemoryReporter(), train_subset=2048, val_subset=512, epochs=3, model="mlp")
    assert reporter.history[-1]["val_acc"] > 0.5  # chance is 0.1


@pytest.mark.parametrize("key,value,message", [
    ("lr", -0.1, "out of range"),
    ("num_blocks", 0, "out of range"),
    ("model", "vgg", "known model"),
    ("dataset", "imagenet", "not one of"),
    ("epochs", 2.5, "not a int"),
    ("nope", 1, "unknown key"),
])
def test_invalid_config_values_are_rejected_with_a_reason(key, value, message):
    with pytest.raises(ConfigError, match=message):
        build(ImageConfig, {key: value})


def test_set_values_are_parsed_to_the_field_type():
    assert parse_value(ImageConfig, "skip", "true") is True
    assert parse_value(ImageConfig, "lr", "0.1") == 0.1
    assert parse_value(ImageConfig, "num_blocks", "5") == 5
    with pytest.raises(ConfigError):
        parse_value(ImageConfig, "skip", "maybe")


def test_every_config_field_has_a_doc():
    for field in dataclasses.fields(ImageConfig):
        assert field.metadata.get("doc"), field.name
