"""Batch augmentation and epoch batching as tensor ops, seeded by (seed, epoch).

All randomness of an epoch (order, crop offsets, flips) is drawn up front from one generator seeded
by (seed, epoch). The same pair therefore yields the same augmented batches on any device, in any
process, which is what exact resume and the distillation logit cache rely on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trainables.data.images import Split

CROP_PAD = 4


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # A large odd multiplier keeps (seed, epoch) pairs from colliding for any realistic range.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


@dataclass
class EpochPlan:
    """Everything random about one epoch, drawn on the CPU so it does not depend on the device."""

    order: torch.Tensor  # int64 [N] permutation of the training set
    shifts: torch.Tensor  # int64 [N, 2] crop offsets in [0, 2*pad]
    flips: torch.Tensor  # bool [N]


def plan_epoch(n: int, seed: int, epoch: int, flip: bool) -> EpochPlan:
    gen = epoch_generator(seed, epoch)
    order = torch.randperm(n, generator=gen)
    shifts = torch.randint(0, 2 * CROP_PAD + 1, (n, 2), generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    return EpochPlan(order, shifts, flips & flip)


def crop_and_flip(x: torch.Tensor, shifts: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Per-sample random crop (zero pad CROP_PAD) and horizontal flip of a uint8 batch [B,C,H,W]."""
    b, _, h, w = x.shape
    padded = F.pad(x, (CROP_PAD,) * 4)
    rows = shifts[:, 0, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = shifts[:, 1, None] + torch.arange(w, device=x.device)  # [B, W]
    cols = torch.where(flips[:, None], cols.flip(1), cols)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing gathers [B, H, W, C]; one gather does both the crop and the flip.
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2)


def train_batches(
    data: Split, batch_size: int, seed: int, epoch: int, augment: bool, flip: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yields (uint8 images, labels, dataset indices) for one epoch; the last partial batch is dropped
    only when it would be a single sample (BatchNorm cannot train on one)."""
    plan = plan_epoch(len(data), seed, epoch, flip)
    device = data.x.device
    for start in range(0, len(data), batch_size):
        idx = plan.order[start:start + batch_size]
        if len(idx) < 2:
            break
        idx_dev = idx.to(device, non_blocking=True)
        x = data.x[idx_dev]
        if augment:
            x = crop_and_flip(x, plan.shifts[idx].to(device), plan.flips[idx].to(device))
        yield x, data.y[idx_dev], idx


def eval_batches(data: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, len(data), batch_size):
        yield data.x[start:start + batch_size], data.y[start:start + batch_size]
