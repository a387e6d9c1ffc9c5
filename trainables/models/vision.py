"""Image classifiers of the reference labs: MLP, small ConvNets, the staged CNN/ResNet and WideResNet.

Every model takes `in_channels` and `num_classes`, so the same study runs on 1×28×28 and 3×32×32.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, in_features: int, layer_sizes: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in layer_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvNet(nn.Module):
    """Two conv-ReLU-maxpool stages and a two-layer head: the MNIST warm-up's CNN1/CNN2."""

    def __init__(self, in_channels: int, image_size: int, channels: int, hidden: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * side * side, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def projection(cin: int, cout: int, stride: int, batch_norm: bool = True) -> nn.Module:
    """1×1 conv for a skip whose shape changes; identity otherwise."""
    if cin == cout and stride == 1:
        return nn.Identity()
    conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout)) if batch_norm else conv


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN, plus the input when `skip` (the residual connection), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, skip: bool):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = conv3x3(cout, cout), nn.BatchNorm2d(cout)
        self.shortcut = projection(cin, cout, stride) if skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place on the fresh BN outputs (as torchvision's ResNet does): the same values, two fewer
        # activation-sized allocations per block (BENCHMARKS.md, "The CPU against its own peak").
        out = self.bn1(self.conv1(x)).relu_()
        out = self.bn2(self.conv2(out))
        if self.shortcut is not None:
            out += self.shortcut(x)
        return out.relu_()


class StagedCNN(nn.Module):
    """Input conv, stages of `num_blocks` BasicBlocks (each later stage halves the size and doubles
    the width), global average pooling and a linear head: 2·stages·n + 2 weight layers.

    With 2 stages this is the degradation study's CNN; with 3 stages of 16/32/64 and skips, the
    CIFAR ResNet (6n + 2 layers).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], num_blocks: int, skip: bool,
                 num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        blocks, cin = [], widths[0]
        for i, width in enumerate(widths):
            for j in range(num_blocks):
                blocks.append(BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1, skip))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class PreActBlock(nn.Module):
    """Pre-activation block (BN-ReLU-conv ×2) of WideResNet; the skip is always on."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), conv3x3(cin, cout, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), conv3x3(cout, cout)
        self.shortcut = projection(cin, cout, stride, batch_norm=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        # The projection reads the pre-activated input when it exists, as in Zagoruyko & Komodakis.
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(pre)
        out = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        return out + skip


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, depth: int, widen_factor: int, num_classes: int):
        super().__init__()
        n = (depth - 2) // 6  # see MODEL_PATTERN in trainables.models for the depth convention
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.stem = conv3x3(in_channels, 16)
        blocks, cin = [], 16
        for i, width in enumerate(widths):
            for j in range(n):
                blocks.append(PreActBlock(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                                  nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
