"""Image classification trainable: `train_cnn(config)` for the mnist, degradation and teachers spaces.

Reference settings (docs/reference.md §1): SGD lr 0.01, momentum 0.9, weight decay 5e-4, batch 128,
exponential LR decay γ 0.95, random crop + flip.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from trainables.config import build
from trainables.data.augment import train_batches
from trainables.data.images import DATASETS, Split, load_images
from trainables.data.shipped import Shipment, shipped_images
from trainables.knobs import ImageConfig
from trainables.lockstep import combine, pack, seed_list, unpack
from trainables.loop import (
    LossFn,
    Normalize,
    Runtime,
    cross_entropy,
    evaluate,
    restore_training,
    seed_everything,
    setup_runtime,
    train_epoch,
    training_state,
)
from trainables.models import build_image_model, count_params
from trainables.reporting import Reporter, TuneReporter, granted_gpus, trial_cpus


def build_model(cfg: ImageConfig) -> nn.Module:
    """The model a config trains, shaped for its dataset (training, --view, evaluation, teachers)."""
    info = DATASETS[cfg.dataset]
    return build_image_model(cfg.model, info.shape, len(info.classes), cfg.num_blocks, cfg.num_filters,
                             cfg.skip)


EpochStart = Callable[[int, Split, Normalize, Runtime], None]


@dataclass
class SeedRun:
    """One seed's model, optimizer and LR schedule, and the global RNG state it draws from."""

    cfg: ImageConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    start: int
    rng: torch.Tensor


def seed_run(cfg: ImageConfig, state: dict | None, rt: Runtime, normalize: Normalize) -> SeedRun:
    """Builds cfg.seed's model exactly as a run of that seed alone does, restored from `state`."""
    seed_everything(cfg.seed)
    model = build_model(cfg).to(rt.device, memory_format=normalize.format)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_gamma)
    start = restore_training(state, model, optimizer, scheduler)
    return SeedRun(cfg, model, optimizer, scheduler, start, torch.get_rng_state())


def fit_image_model(cfg: ImageConfig, reporter: Reporter, loss_fn: LossFn = cross_entropy,
                    extra_metrics: dict | None = None,
                    epoch_start: Callable[[int, Split, Normalize, Runtime], None] | None = None,
                    shipment: Shipment | None = None,
                    loss_for_seed: Callable[[int], tuple[LossFn, EpochStart | None]] | None = None) -> None:
    """Trains cfg.model on cfg.dataset, reporting and checkpointing once per epoch; with cfg.seeds > 1,
    the seeds in lockstep (trainables/lockstep.py). `loss_for_seed(seed)` gives a seed's own loss and
    epoch_start, where they depend on the seed (KD's teacher logits).

    `epoch_start(epoch, train, normalize, runtime)` runs before each epoch's batches: per-epoch
    state of a loss (the KD teacher's logits for that epoch) is prepared there. The images come from
    the driver's `shipment` when it holds them (a Ray trial), else from disk."""
    rt = setup_runtime(trial_cpus(cfg.cpus), granted_gpus(), cfg.channels_last, cfg.precision)
    seed_everything(cfg.seed)
    data = shipped_images(shipment, cfg) or load_images(cfg.dataset, cfg.data_dir, cfg.download)
    train = data.train.head(cfg.train_subset).to(rt.device)
    val = data.val.head(cfg.val_subset).to(rt.device)
    normalize = Normalize(data.info.mean, data.info.std, rt)

    seeds = seed_list(cfg.seed, cfg.seeds)
    runs = [seed_run(dataclasses.replace(cfg, seed=s), state, rt, normalize)
            for s, state in zip(seeds, unpack(reporter.restore(), cfg.seeds), strict=True)]
    losses = [loss_for_seed(s) if loss_for_seed else (loss_fn, epoch_start) for s in seeds]
    params = count_params(runs[0].model)

    for epoch in range(runs[0].start, cfg.epochs):
        per_seed, states = [], []
        for run, (seed_loss, seed_start) in zip(runs, losses, strict=True):
            torch.set_rng_state(run.rng)  # each seed draws from its own global RNG, as if alone
            if seed_start is not None:
                seed_start(epoch, train, normalize, rt)
            batches = train_batches(train, cfg.batch_size, run.cfg.seed, epoch, cfg.augment, data.info.flip)
            stats = train_epoch(run.model, run.optimizer, batches, normalize, rt, seed_loss)
            run.scheduler.step()
            val_loss, val_acc = evaluate(run.model, val, normalize, rt)
            per_seed.append({
                "epoch": epoch + 1,
                "train_loss": stats.pop("loss"),
                "train_acc": stats.pop("acc"),
                "val_loss": val_loss,
                "val_acc": val_acc,
                "params": params,
                "precision": rt.precision,
                "samples_per_s": stats.pop("samples_per_s"),
                "current_lr": run.scheduler.get_last_lr()[0],  # not `lr`: that is the config key
                **{k: v for k, v in stats.items() if k not in ("samples", "seconds")},
                **(extra_metrics or {}),
            })
            states.append(training_state(epoch, run.model, run.optimizer, run.scheduler,
                                         {**dataclasses.asdict(run.cfg), "precision": rt.precision}))
            run.rng = torch.get_rng_state()
        reporter.report(combine(per_seed, seeds), pack(states))


def train_cnn(config: dict, shipment: Shipment | None = None) -> None:
    """Ray Tune trainable: one image-classification trial. Spaces name it by the string
    "trainables.cnn:train_cnn" (spaces/images.py); docs/architecture.md follows one trial through it."""
    fit_image_model(build(ImageConfig, config), TuneReporter(), shipment=shipment)
