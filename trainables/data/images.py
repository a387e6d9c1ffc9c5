"""Image datasets as whole uint8 tensors: no per-sample Dataset or DataLoader on the hot path.

Fashion-MNIST comes from the Debian package `dataset-fashion-mnist` offline. MNIST and CIFAR-10
come from a `data_dir` in torchvision's layout, or from torchvision's downloader when `download`
is asked for (never implicitly: a run without network must fail fast, not hang).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from trainables.data.catalog import DATASETS, DatasetInfo
from trainables.data.root import DataMissing, data_root

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
VAL_FRACTION = 0.1
SPLIT_SEED = 0  # the train/val split is a property of the dataset, not of a trial's seed

if TYPE_CHECKING:  # torch is imported by load_images: a space checks its data files without it
    import torch


@dataclass
class Split:
    x: torch.Tensor  # uint8 [N, C, H, W]
    y: torch.Tensor  # int64 [N]

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device, non_blocking=True), self.y.to(device, non_blocking=True))

    def head(self, n: int) -> Split:
        return self if n <= 0 or n >= len(self) else Split(self.x[:n], self.y[:n])


@dataclass
class ImageData:
    info: DatasetInfo
    train: Split
    val: Split
    test: Split


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file (gzipped or not): big-endian dims after a 4-byte magic number."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims)


def _find_idx(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return folder / name
    return None


def _idx_folders(name: str, data_dir: str) -> list[Path]:
    folders = []
    if data_dir:
        root = Path(data_dir)
        tv_name = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}[name]
        folders += [root, root / tv_name / "raw", root / name, root / name.replace("_", "-")]
    if name == "fashion_mnist":
        folders.append(DEBIAN_FASHION_MNIST)
    return folders


def _load_idx_dataset(name: str, data_dir: str, download: bool) -> tuple[np.ndarray, ...]:
    folders = _idx_folders(name, data_dir)
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    paths = [_find_idx(folders, s) for s in stems]
    if None in paths and download:
        from torchvision import datasets
        cls = {"mnist": datasets.MNIST, "fashion_mnist": datasets.FashionMNIST}[name]
        root = data_dir or str(data_root())
        cls(root, train=True, download=True)
        cls(root, train=False, download=True)
        paths = [_find_idx(_idx_folders(name, root), s) for s in stems]
    if None in paths:
        hint = ("apt-get install dataset-fashion-mnist, or " if name == "fashion_mnist" else "")
        where = ", ".join(str(f) for f in folders) or "(no --data-dir given)"
        raise DataMissing(f"{name} IDX files not found in {where}: {hint}pass --data-dir with "
                          f"torchvision's layout, or add --set download=true when online")
    xtr, ytr, xte, yte = (read_idx(p) for p in paths)
    return xtr[:, None], ytr, xte[:, None], yte


def _cifar_root(data_dir: str, download: bool) -> str:
    root = data_dir or str(data_root())
    if not (Path(root) / "cifar-10-batches-py").is_dir() and not download:
        raise DataMissing(f"cifar10 not found in {root}/cifar-10-batches-py: pass --data-dir with "
                          f"torchvision's layout, or add --set download=true when online")
    return root


def _load_cifar10(data_dir: str, download: bool) -> tuple[np.ndarray, ...]:
    from torchvision import datasets
    root = _cifar_root(data_dir, download)
    train = datasets.CIFAR10(root, train=True, download=download)
    test = datasets.CIFAR10(root, train=False, download=download)

    def chw(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.transpose(0, 3, 1, 2))

    return chw(train.data), np.array(train.targets), chw(test.data), np.array(test.targets)


def check_available(name: str, data_dir: str = "", download: bool = False) -> None:
    """Raises DataMissing (or KeyError for an unknown name) without loading the pixels."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset '{name}' (known: {', '.join(DATASETS)})")
    if data_dir and not Path(data_dir).is_dir():
        raise DataMissing(f"--data-dir {data_dir} does not exist")
    if download:
        return
    if name == "cifar10":
        _cifar_root(data_dir, download=False)
    elif None in [_find_idx(_idx_folders(name, data_dir), s)
                  for s in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte")]:
        _load_idx_dataset(name, data_dir, download=False)


@lru_cache(maxsize=2)
def load_images(name: str, data_dir: str = "", download: bool = False) -> ImageData:
    """The dataset as CPU uint8 tensors with a deterministic 90/10 train/val split and the test split.

    Cached per process: with actor reuse, trials of one experiment read the files once.
    """
    import torch

    info = DATASETS[name]
    if name == "cifar10":
        xtr, ytr, xte, yte = _load_cifar10(data_dir, download)
    else:
        xtr, ytr, xte, yte = _load_idx_dataset(name, data_dir, download)
    xtr, ytr = torch.from_numpy(np.array(xtr)), torch.from_numpy(np.array(ytr)).long()
    order = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_val = int(round(VAL_FRACTION * len(ytr)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return ImageData(
        info=info,
        train=Split(xtr[train_idx].contiguous(), ytr[train_idx]),
        val=Split(xtr[val_idx].contiguous(), ytr[val_idx]),
        test=Split(torch.from_numpy(np.array(xte)), torch.from_numpy(np.array(yte)).long()),
    )
