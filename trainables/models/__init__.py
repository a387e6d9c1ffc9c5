"""Builds an image model from its name; counts its parameters and weight layers.

Torch is imported by the functions that build or walk a model, so `check_model_name` (a config knob's
rule, trainables/knobs.py) costs nothing when the driver checks a command line.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

# mlp | cnn1 | cnn2 | cnn (num_blocks, num_filters, skip) | resnet<depth> | wrn<depth>_<k>.
# Depth counts main-path weight layers, 6n+2 for both families, as the reference lab does: its
# WideResNet14-2 (n=2, 0.69M) is the WRN-16-2 of Zagoruyko & Komodakis, who count shortcuts too.
MODEL_PATTERN = r"mlp|cnn[12]?|resnet\d+|wrn\d+_\d+"
MLP_SIZES = (512, 512, 512)
# (channels, hidden) sized so the MNIST warm-up matches the reference counts: 0.17M and 0.68M.
CONVNETS = {"cnn1": (16, 104), "cnn2": (32, 210)}


def check_model_name(name: str) -> None:
    """Raises ValueError unless `name` is a model build_image_model can make."""
    if name in ("mlp", "cnn", *CONVNETS):
        return
    if m := re.fullmatch(r"resnet(\d+)", name):
        depth = int(m.group(1))
        if depth < 8 or (depth - 2) % 6:
            raise ValueError("a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, ...)")
        return
    if m := re.fullmatch(r"wrn(\d+)_(\d+)", name):
        depth, k = int(m.group(1)), int(m.group(2))
        if depth < 8 or (depth - 2) % 6 or k < 1:
            raise ValueError("a WideResNet here has depth 6n+2 (8, 14, 20, 26, ...) and k >= 1")
        return
    raise ValueError(f"unknown model (expected {MODEL_PATTERN})")


def build_image_model(
    name: str,
    shape: tuple[int, int, int],
    num_classes: int,
    num_blocks: int = 1,
    num_filters: int = 16,
    skip: bool = False,
) -> nn.Module:
    from trainables.models.vision import MLP, ConvNet, StagedCNN, WideResNet

    check_model_name(name)
    channels, height, width = shape
    if name == "mlp":
        return MLP(channels * height * width, MLP_SIZES, num_classes)
    if name in CONVNETS:
        return ConvNet(channels, height, *CONVNETS[name], num_classes)
    if name == "cnn":
        return StagedCNN(channels, (num_filters, 2 * num_filters), num_blocks, skip, num_classes)
    if m := re.fullmatch(r"resnet(\d+)", name):
        return StagedCNN(channels, (16, 32, 64), (int(m.group(1)) - 2) // 6, True, num_classes)
    m = re.fullmatch(r"wrn(\d+)_(\d+)", name)
    return WideResNet(channels, int(m.group(1)), int(m.group(2)), num_classes)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_layers(model: nn.Module) -> int:
    """Weight layers on the main path (convs and linears), as papers count depth; 1×1 shortcut
    projections are not layers of the network's depth."""
    from torch import nn

    return sum(
        isinstance(m, nn.Conv2d | nn.Linear) and "shortcut" not in name
        for name, m in model.named_modules()
    )
