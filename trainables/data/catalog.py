"""The datasets tunelab knows, as plain data: each image dataset's shape, normalisation and classes,
and the text dataset's name. No torch: the configs' choices (trainables/knobs.py) read them when the
driver checks a command line, before anything trains. The loaders are trainables/data/images.py and
trainables/data/text.py."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips change a digit's meaning, not a shirt's or a truck's
    classes: tuple[str, ...]


DATASETS = {
    "fashion_mnist": DatasetInfo(
        "fashion_mnist", (1, 28, 28), (0.2860,), (0.3530,), True,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "mnist": DatasetInfo(
        "mnist", (1, 28, 28), (0.1307,), (0.3081,), False, tuple(str(d) for d in range(10)),
    ),
    "cifar10": DatasetInfo(
        "cifar10", (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), True,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    ),
}
"""The image datasets (trainables/data/images.py loads them)."""

DATASET = "rotten_tomatoes"
"""The text dataset (trainables/data/text.py prepares and loads it)."""
