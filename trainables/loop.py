"""Shared training pieces: the runtime (device, threads, AMP), one epoch of SGD, evaluation and
the checkpoint state. Trainables compose these; none of them copies a loop.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.data.images import Split
from trainables.precision import amp_dtype, resolve_precision

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


def granted_device(gpu_ids: Sequence[int | str] = ()) -> torch.device:
    """The device of the first GPU Ray granted this trial, else the CPU, whatever CUDA shows.

    Ray 2.60 leaves CUDA_VISIBLE_DEVICES alone for a trial granted 0 GPUs, so such a trial still sees
    every GPU of its node: `torch.cuda.is_available()` says nothing about what the trial may use. Ray
    names granted GPUs by their node-wide ids and, for a trial granted some, lists exactly those in
    CUDA_VISIBLE_DEVICES, so the torch index is the id's position there."""
    if not gpu_ids:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("this trial was granted a GPU but CUDA is not available in its process")
    first = str(gpu_ids[0])
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if visible:
        if first not in visible:
            raise RuntimeError(f"Ray granted GPU {first} but CUDA_VISIBLE_DEVICES is {','.join(visible)}")
        return torch.device("cuda", visible.index(first))
    return torch.device("cuda", int(first))


def setup_runtime(cpus: int, gpu_ids: Sequence[int | str] = (), channels_last: bool = True,
                  precision: str = "auto") -> Runtime:
    """Threads match the trial's CPUs: two trials on two cores must not each spawn two threads.
    The device is the one Ray granted (`gpu_ids`: trainables.reporting.granted_gpus), never just any GPU.
    `precision` (auto | bf16 | fp32) is resolved for that device (trainables/precision.py)."""
    torch.set_num_threads(max(1, cpus))
    device = granted_device(gpu_ids)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return Runtime(device, amp_dtype(resolve_precision(precision, device)), channels_last)


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
    if next(model.parameters()).is_cuda:  # a CPU trial must not create CUDA contexts on its node's GPUs
        state["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_training(state: dict | None, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
    """Loads a saved state; returns the epoch to start from (0 when there is none)."""
    if state is None:
        return 0
    configured = list(scheduler.base_lrs)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rebase_rates(optimizer, scheduler, configured)
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and next(model.parameters()).is_cuda:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"] + 1


def rebase_rates(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler,
                 base_lrs: list[float]) -> None:
    """Makes `base_lrs` (the trial's configured rates) the restored schedule's base rates, keeping its
    position: each group's current rate is scaled by new base / saved base. A state restored as saved
    holds the same rates and nothing changes; a PBT clone restores its parent's optimizer and schedule
    under a config whose rates explore changed, and trains on with those (search/pbt.py)."""
    for group, saved, wanted in zip(optimizer.param_groups, scheduler.base_lrs, base_lrs, strict=True):
        if wanted != saved:
            group["lr"] *= wanted / saved
            group["initial_lr"] = wanted
    scheduler.base_lrs = list(base_lrs)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
