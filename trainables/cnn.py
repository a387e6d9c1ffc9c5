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

from trainables.config import build, knob
from trainables.data.augment import train_batches
from trainables.data.images import DATASETS, Split, load_images
from trainables.data.shipped import Shipment, shipped_images
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
from trainables.models import build_image_model, check_model_name, count_params
from trainables.precision import PRECISION_DOC, check_precision
from trainables.reporting import Reporter, TuneReporter, granted_gpus, trial_cpus


@dataclass
class ImageConfig:
    dataset: str = knob("fashion_mnist", "image dataset", choices=tuple(DATASETS))
    data_dir: str = knob("", "folder with the dataset files (torchvision layout); empty: defaults")
    download: bool = knob(False, "let torchvision download a missing dataset (needs network)")
    model: str = knob("cnn", "mlp, cnn1, cnn2, cnn, resnet<depth>, wrn<depth>_<k>", check=check_model_name)
    num_blocks: int = knob(1, "BasicBlocks per stage of the cnn model", lo=1, hi=64)
    num_filters: int = knob(16, "width of the cnn model's first stage", lo=1, hi=1024)
    skip: bool = knob(False, "residual connections in the cnn model")
    epochs: int = knob(20, "training epochs (ASHA may stop earlier)", lo=1, hi=10_000)
    batch_size: int = knob(128, "images per SGD step", lo=2, hi=65_536)
    lr: float = knob(0.01, "SGD learning rate", lo=0.0, hi=10.0, lo_open=True)
    momentum: float = knob(0.9, "SGD momentum", lo=0.0, hi=0.999)
    weight_decay: float = knob(5e-4, "L2 weight decay", lo=0.0, hi=1.0)
    lr_gamma: float = knob(0.95, "exponential LR decay per epoch", lo=0.0, hi=1.0, lo_open=True)
    augment: bool = knob(True, "random crop (pad 4) and, where it keeps the label, horizontal flip")
    train_subset: int = knob(0, "use the first N training images (0: all 54k/45k)", lo=0)
    val_subset: int = knob(0, "use the first N validation images (0: all 6k/5k)", lo=0)
    seed: int = knob(0, "seed of weights, batch order and augmentation", lo=0)
    seeds: int = knob(1, "seeds trained in lockstep in this trial (seed, seed+1, ...; one epoch of each "
                         "per report, mean and spread reported)", lo=1, hi=64)
    cpus: int = knob(1, "torch threads; the driver sets it to the trial's CPUs", lo=1, hi=256)
    channels_last: bool = knob(True, "NHWC memory format (faster for convs on CPU and GPU)")
    precision: str = knob("auto", PRECISION_DOC, check=check_precision)


def image_config(values: dict) -> ImageConfig:
    """The ImageConfig part of a config dict (a KD config, or a checkpoint's saved config, has more)."""
    fields = {f.name for f in dataclasses.fields(ImageConfig)}
    return ImageConfig(**{k: v for k, v in values.items() if k in fields})


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
