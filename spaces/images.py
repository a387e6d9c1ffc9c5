"""Image studies: the MLP-vs-CNN warm-up, the ResNet degradation problem and the KD teachers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cli import UsageError
from spaces.base import Profile, Space, distribution
from trainables.data.root import DataMissing
from trainables.data.shipped import Shipment, image_key
from trainables.knobs import ImageConfig, image_config

if TYPE_CHECKING:  # torch: imported by the functions that load data or build a model, not by --list
    from trainables.data.images import Split


def check_image_data(config: dict, storage: Path) -> dict:
    from trainables.data.images import check_available

    cfg = image_config(config)
    try:
        check_available(cfg.dataset, cfg.data_dir, cfg.download)
    except (DataMissing, KeyError) as err:
        raise UsageError(str(err).strip("'\"")) from None
    return config


def _cut(split: Split, n: int) -> Split:
    """The first n images as tensors of their own: a pickled slice would carry the whole split."""
    from trainables.data.images import Split

    part = split.head(n)
    return Split(part.x.clone(), part.y.clone())


def ship_images(configs: list[dict]) -> Shipment:
    """The train and validation images each config's trial reads, cut to its subsets, loaded here once
    (the test split stays with the driver: analysis/evaluate.py reads it)."""
    from trainables.data.images import ImageData, Split, load_images

    shipment = Shipment()
    for values in configs:
        cfg = image_config(values)
        key = image_key(cfg)
        if key not in shipment.images:
            data = load_images(cfg.dataset, cfg.data_dir, cfg.download)
            no_test = Split(data.test.x[:0].clone(), data.test.y[:0].clone())
            shipment.images[key] = ImageData(data.info, _cut(data.train, cfg.train_subset),
                                             _cut(data.val, cfg.val_subset), no_test)
    return shipment


def describe_image_model(config: dict) -> dict:
    """Params and layers of the image model a config builds (also a KD config: its student)."""
    from trainables.cnn import build_model
    from trainables.models import count_layers, count_params

    model = build_model(image_config(config))
    return {"params": count_params(model), "layers": count_layers(model)}


# Continuous counterpart of the SGD settings, shared by the image studies (for --search optuna).
SGD_CONTINUOUS = {
    "lr": distribution("loguniform", 1e-3, 0.3),
    "weight_decay": distribution("loguniform", 1e-5, 1e-2),
}

# Budgets sized on 2 CPU cores (docs/reference.md §2): smoke < 60 s a space, demo < 10 min, paper = reference.
SMOKE = Profile({"train_subset": 512, "val_subset": 256, "epochs": 2}, grace_period=1)
PAPER = Profile({"epochs": 20}, grace_period=4)

IMAGE_STUDY = {"trainable": "trainables.cnn:train_cnn", "config_cls": ImageConfig,
               "prepare": check_image_data, "ship": ship_images, "describe": describe_image_model,
               "scheduler": "significance", "alpha": 0.2}
"""What every image study shares: the trainable ("trainables.cnn:train_cnn"), how it reaches its data
and describes its models, and the early stopping that BENCHMARKS (c) measured (significance halving
at α 0.2)."""

DEGRADATION = Space(
    name="degradation",
    doc="ResNet degradation problem: depth (num_blocks) × residual connections (skip), 16 filters",
    grid={"num_blocks": [1, 5, 7], "skip": [False, True]},
    fixed={"model": "cnn", "num_filters": 16},
    profiles={
        "smoke": SMOKE,
        # 8k images × 6 epochs fits the 10-minute budget; at batch 128 and lr 0.01 that is too few
        # steps for any net to leave its first plateau. Batch 64 at lr 0.02 (measured, n=7 after 6
        # epochs: skip 0.833 vs plain 0.740 val_acc) shows the degradation gap within the budget.
        # Two lockstep seeds give the significance rule its noise from the first rung on, so a rung
        # decision does not hang on one seed's bf16 rounding (which differs between CPU kinds).
        "demo": Profile({"train_subset": 8192, "val_subset": 2048, "epochs": 6, "batch_size": 64,
                         "lr": 0.02, "seeds": 2}, grace_period=1),
        "paper": PAPER,
    },
    continuous={**SGD_CONTINUOUS, "num_blocks": distribution("randint", 1, 8)},
    objectives=("params", "train_acc", "val_loss"),
    # Replayed on the committed FIFO curves (BENCHMARKS (c)): significance halving with reduction
    # factor 2 from epoch 1 at α 0.2 kept FIFO's winner in every repeat at about half FIFO's epochs,
    # where successive halving at that compute lost up to 0.06 val_acc.
    reduction_factor=2,
    **IMAGE_STUDY,
)

MNIST = Space(
    name="mnist",
    doc="warm-up: MLP [512,512,512] vs two small ConvNets (CNN1 0.17M, CNN2 0.68M params)",
    grid={"model": ["mlp", "cnn1", "cnn2"]},
    profiles={
        "smoke": SMOKE,
        "demo": Profile({"train_subset": 16384, "val_subset": 2048, "epochs": 4}, grace_period=1),
        "paper": PAPER,
    },
    continuous=SGD_CONTINUOUS,
    **IMAGE_STUDY,
)

TEACHERS = Space(
    name="teachers",
    doc="distillation teachers: ResNet32 (0.47M) and WideResNet14-2 (0.69M)",
    grid={"model": ["resnet32", "wrn14_2"]},
    profiles={
        "smoke": Profile({"train_subset": 256, "val_subset": 256, "epochs": 1}, grace_period=1),
        "demo": Profile({"train_subset": 8192, "val_subset": 2048, "epochs": 4}, grace_period=4),
        "paper": Profile({"epochs": 50}, grace_period=50),
    },
    gpu=0.5,
    continuous=SGD_CONTINUOUS,
    **IMAGE_STUDY,
)
