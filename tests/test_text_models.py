"""Backbones and fine-tuning on tiny random-init models: LoRA target mapping per architecture, the
trainable-parameter count against PEFT's own, and an exact checkpoint round trip."""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_text_data import tiny_data_root  # noqa: F401  (fixture)
from trainables.finetune import TextConfig, build_model, fit_text_classifier
from trainables.models.text import (
    HEAD_MODULES,
    LORA_TARGETS,
    count_trainable,
    load_trainable_state,
    parse_setting,
)
from trainables.reporting import MemoryReporter

EXPECTED_LORA_LEAVES = {
    ("tiny_bert", "q"): {"query"},
    ("tiny_bert", "qv"): {"query", "value"},
    ("tiny_bert", "qkvo"): {"query", "key", "value", "attention.output.dense"},
    ("tiny_distilbert", "q"): {"q_lin"},
    ("tiny_distilbert", "qv"): {"q_lin", "v_lin"},
    ("tiny_distilbert", "qkvo"): {"q_lin", "k_lin", "v_lin", "out_lin"},
}


def adapted_modules(model) -> set[str]:
    """Names (without the PEFT prefix) of modules that got a LoRA A matrix."""
    return {name.removeprefix("base_model.model.").removesuffix(".lora_A")
            for name, _ in model.named_modules() if name.endswith(".lora_A")}


@pytest.mark.parametrize("backbone,targets", list(EXPECTED_LORA_LEAVES))
def test_abstract_targets_map_to_each_architectures_attention_modules(backbone, targets):
    torch.manual_seed(0)
    model = build_model(TextConfig(backbone=backbone, setting=f"{targets}4"), "")
    adapted = adapted_modules(model)
    layers = 2  # the tiny configs
    assert len(adapted) == layers * len(EXPECTED_LORA_LEAVES[backbone, targets])
    for name in adapted:
        assert any(name.endswith("." + leaf) for leaf in EXPECTED_LORA_LEAVES[backbone, targets]), name
    if backbone == "tiny_bert":  # the FFN's output.dense must not be adapted by qkvo
        assert not any(name.endswith(".output.dense") and ".attention." not in name for name in adapted)


@pytest.mark.parametrize("backbone", ["tiny_bert", "tiny_distilbert"])
@pytest.mark.parametrize("setting", ["q8", "qv16", "qkvo8"])
def test_trainable_count_matches_peft_and_the_closed_form(backbone, setting):
    torch.manual_seed(0)
    model = build_model(TextConfig(backbone=backbone, setting=setting), "")
    trainable, _total = model.get_nb_trainable_parameters()
    assert count_trainable(model) == trainable
    targets, rank = parse_setting(setting)
    hidden, layers = 32, 2
    lora = layers * len(LORA_TARGETS[{"tiny_bert": "bert", "tiny_distilbert": "distilbert"}[backbone]]
                        [targets]) * rank * 2 * hidden
    head = 2 * hidden + 2 + hidden * hidden + hidden  # classifier + pooler / pre_classifier
    assert trainable == lora + head


def test_full_setting_trains_every_weight():
    torch.manual_seed(0)
    model = build_model(TextConfig(backbone="tiny_bert", setting="full"), "")
    assert count_trainable(model) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("bad", ["qk8", "q0", "qv-1", "lora", "full8"])
def test_unknown_targets_and_non_positive_ranks_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_setting(bad)


def tiny_config(setting: str) -> TextConfig:
    return TextConfig(backbone="tiny_distilbert", setting=setting, epochs=2, batch_size=16,
                      adapter_lr=1e-3, backbone_lr=1e-3, head_lr=1e-3, max_length=48)


@pytest.mark.parametrize("setting", ["qv8", "full"])
def test_checkpoint_holds_only_trainable_weights_and_resumes_exactly(setting, tiny_data_root):  # noqa: F811
    cfg = tiny_config(setting)
    whole = MemoryReporter()
    fit_text_classifier(cfg, whole)
    assert [row["epoch"] for row in whole.history] == [0.5, 1.0, 1.5, 2.0]

    killed = MemoryReporter(stop_after=1)
    with pytest.raises(MemoryReporter.Stop):
        fit_text_classifier(cfg, killed)
    torch.manual_seed(123)  # a resumed process starts with other RNG state; the checkpoint restores it
    resumed = MemoryReporter(state=killed.state)
    fit_text_classifier(cfg, resumed)
    assert len(resumed.history) == 3
    for a, b in zip(whole.history[1:], resumed.history, strict=True):
        assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]
    for name, tensor in whole.state["trainable"].items():
        assert torch.equal(tensor, resumed.state["trainable"][name]), name

    torch.manual_seed(0)
    model = build_model(cfg, "")
    assert set(whole.state["trainable"]) == {k for k, p in model.named_parameters() if p.requires_grad}
    if setting != "full":
        assert all("lora_" in k or any(f"{h}." in k for h in HEAD_MODULES["distilbert"])
                   for k in whole.state["trainable"])
    load_trainable_state(model, whole.state["trainable"])
    assert all(torch.equal(p, whole.state["trainable"][k]) for k, p in model.named_parameters()
               if p.requires_grad)
    assert all(math.isfinite(row["log10_trainable_params"]) for row in whole.history)
