"""Shared training pieces: the runtime (device, threads, AMP), one epoch of SGD, evaluation and
the checkpoint state. Trainables compose these; none of them copies a loop.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.data.images import Split
from trainables.precision import AMP_DTYPES, resolve_precision

# loss_fn(logits, images, labels, dataset_indices) -> (loss, {name: detached per-batch mean})
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                  tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: torch.dtype | None  # autocast dtype; None: fp32 (trainables/precision.py chooses)
    channels_last: bool

    @property
    def precision(self) -> str:
        """What a trial reports: 'bf16' or 'fp32'."""
        return "fp32" if self.amp is None else "bf16"

    def autocast(self):
        if self.amp is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)


def setup_runtime(cpus: int, gpus_granted: int = 0, channels_last: bool = True,
                  precision: str = "auto") -> Runtime:
    """Threads match the trial's CPUs: two trials on two cores must not each spawn two threads.
    `precision` (auto | bf16 | fp32) is resolved for this process's device (trainables/precision.py)."""
    torch.set_num_threads(max(1, cpus))
    if gpus_granted and not torch.cuda.is_available():
        raise RuntimeError("this trial was granted a GPU but CUDA is not available in its process")
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
        device = torch.device("cuda")
    else:
        device = torch.device("cpu")
    return Runtime(device, AMP_DTYPES[resolve_precision(precision, device)], channels_last)


class Normalize:
    """uint8 images -> normalized float, in the memory format the runtime prefers."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], rt: Runtime):
        self.mean = torch.tensor(mean, device=rt.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=rt.device).view(1, -1, 1, 1) * 255
        self.format = torch.channels_last if rt.channels_last else torch.contiguous_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std).contiguous(memory_format=self.format)


def cross_entropy(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor):
    loss = F.cross_entropy(logits.float(), y)  # in fp32 also under bf16 autocast
    return loss, {}


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    normalize: Normalize,
    rt: Runtime,
    loss_fn: LossFn = cross_entropy,
) -> dict[str, float]:
    """One pass of SGD. Sums stay on the device; the single sync is at the end of the epoch."""
    model.train()
    totals: dict[str, torch.Tensor] = {}
    correct = torch.zeros((), device=rt.device)
    seen = 0
    start = time.perf_counter()
    for x, y, idx in batches:
        inputs = normalize(x)
        with rt.autocast():
            logits = model(inputs)
            loss, parts = loss_fn(logits, inputs, y, idx)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(y)
        for name, value in {"loss": loss.detach(), **parts}.items():
            totals[name] = totals.get(name, 0) + value.float() * n
        correct += (logits.argmax(1) == y).sum()
        seen += n
    stats = {name: float(total) / seen for name, total in totals.items()}
    seconds = time.perf_counter() - start
    stats.update(acc=float(correct) / seen, samples=seen, seconds=seconds, samples_per_s=seen / seconds)
    return stats


@torch.no_grad()
def predict(model: nn.Module, data: Split, normalize: Normalize, rt: Runtime,
            batch_size: int = 512) -> torch.Tensor:
    """Logits (float32) for every image of `data`, in order."""
    model.eval()
    outputs = []
    for start in range(0, len(data), batch_size):
        with rt.autocast():
            outputs.append(model(normalize(data.x[start:start + batch_size])).float())
    return torch.cat(outputs)


def evaluate(model: nn.Module, data: Split, normalize: Normalize, rt: Runtime) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over `data`."""
    logits = predict(model, data, normalize, rt)
    loss = F.cross_entropy(logits, data.y).item()
    acc = (logits.argmax(1) == data.y).float().mean().item()
    return loss, acc


def training_state(epoch: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, config: dict) -> dict:
    """What exact resume needs, plus the resolved config (a checkpoint explains itself)."""
    state = {
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "config": config,
        # Batches draw from their own (seed, epoch) generator; the global RNG only matters to
        # anything a model samples (dropout), so its state travels too.
        "rng": {"torch": torch.get_rng_state()},
    }
    if torch.cuda.is_available():
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_training(state: dict | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
    """Loads a saved state; returns the epoch to start from (0 when there is none)."""
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"] + 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
