"""Model shapes, parameter counts against the reference table, and layer counts."""

from __future__ import annotations

import pytest
import torch

from trainables.models import build_image_model, count_layers, count_params

CIFAR = (3, 32, 32)

# docs/reference.md §1 reference table (CIFAR-10, 10 classes): parameter counts in millions.
REFERENCE = [
    ("SmallCNN", "cnn", dict(num_blocks=1, num_filters=16), 0.02),
    ("SmallCNN with skip", "cnn", dict(num_blocks=1, num_filters=16, skip=True), 0.02),
    ("MediumCNN", "cnn", dict(num_blocks=5, num_filters=16), 0.11),
    ("MediumCNN with skip", "cnn", dict(num_blocks=5, num_filters=16, skip=True), 0.11),
    ("LargeCNN", "cnn", dict(num_blocks=7, num_filters=16), 0.16),
    ("LargeCNN with skip", "cnn", dict(num_blocks=7, num_filters=16, skip=True), 0.16),
    ("ResNet32", "resnet32", {}, 0.47),
    ("WideResNet14-2", "wrn14_2", {}, 0.69),
    ("BaseCNN", "cnn", dict(num_blocks=1, num_filters=32, skip=True), 0.08),
]


@pytest.mark.parametrize("label,name,kwargs,millions", REFERENCE, ids=[r[0] for r in REFERENCE])
def test_param_count_matches_reference_within_5_percent(label, name, kwargs, millions):
    params = count_params(build_image_model(name, CIFAR, 10, **kwargs))
    # The table rounds to 0.01M, so allow that rounding on top of the 5%.
    assert abs(params / 1e6 - millions) <= 0.05 * millions + 0.005, f"{label}: {params}"


@pytest.mark.parametrize("name,millions", [("mlp", 0.93), ("cnn1", 0.17), ("cnn2", 0.68)])
def test_mnist_warmup_models_match_reference_counts(name, millions):
    params = count_params(build_image_model(name, (1, 28, 28), 10))
    assert abs(params / 1e6 - millions) <= 0.05 * millions


@pytest.mark.parametrize("num_blocks", [1, 5, 7])
def test_cnn_has_4n_plus_2_weight_layers(num_blocks):
    for skip in (False, True):
        model = build_image_model("cnn", CIFAR, 10, num_blocks=num_blocks, skip=skip)
        assert count_layers(model) == 4 * num_blocks + 2


def test_resnet_depth_is_its_layer_count():
    assert count_layers(build_image_model("resnet32", CIFAR, 10)) == 32
    assert count_layers(build_image_model("wrn14_2", CIFAR, 10)) == 14


@pytest.mark.parametrize("name", ["mlp", "cnn1", "cnn2", "cnn", "resnet20", "wrn14_2"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_model_maps_a_batch_to_class_logits(name, shape):
    model = build_image_model(name, shape, 10).eval()
    assert model(torch.randn(3, *shape)).shape == (3, 10)


def test_plain_cnn_has_no_shortcut_and_skip_cnn_adds_its_input():
    plain = build_image_model("cnn", CIFAR, 10, num_blocks=2)
    skip = build_image_model("cnn", CIFAR, 10, num_blocks=2, skip=True)
    assert all(block.shortcut is None for block in plain.blocks)
    assert all(block.shortcut is not None for block in skip.blocks)


@pytest.mark.parametrize("name", ["resnet30", "wrn16_2", "wrn14_0", "vgg16"])
def test_invalid_model_names_are_rejected(name):
    with pytest.raises(ValueError):
        build_image_model(name, CIFAR, 10)
