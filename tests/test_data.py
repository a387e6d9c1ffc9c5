"""IDX reading, the train/val split, and seeded batch augmentation."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from trainables.data.augment import crop_and_flip, plan_epoch, train_batches
from trainables.data.images import (
    DEBIAN_FASHION_MNIST,
    DataMissing,
    Split,
    check_available,
    load_images,
    read_idx,
)


def write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = b"\x00\x00\x08" + bytes([array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trips_images_and_labels(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"img{suffix}", images, compress)
    write_idx(tmp_path / f"lab{suffix}", labels, compress)
    assert np.array_equal(read_idx(tmp_path / f"img{suffix}"), images)
    assert np.array_equal(read_idx(tmp_path / f"lab{suffix}"), labels)


def test_read_idx_rejects_a_truncated_file(tmp_path):
    write_idx(tmp_path / "img", np.zeros((4, 2, 2)), compress=False)
    (tmp_path / "img").write_bytes((tmp_path / "img").read_bytes()[:-3])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "img")


def test_idx_dataset_loads_from_a_data_dir_in_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for split, n in (("train", 40), ("t10k", 10)):
        write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), True)
        write_idx(raw / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), True)
    data = load_images("mnist", str(tmp_path))
    assert (len(data.train), len(data.val), len(data.test)) == (36, 4, 10)
    assert data.train.x.shape[1:] == (1, 28, 28) and data.train.x.dtype == torch.uint8


def test_missing_dataset_error_says_how_to_get_it(tmp_path):
    for dataset in ("mnist", "cifar10"):  # an option the driver has: --download does not exist
        with pytest.raises(DataMissing, match="--data-dir .*--set download=true when online"):
            check_available(dataset, str(tmp_path))


def test_fashion_mnist_split_is_deterministic_90_10_and_disjoint():
    data = load_images("fashion_mnist")
    assert (len(data.train), len(data.val), len(data.test)) == (54_000, 6_000, 10_000)
    load_images.cache_clear()
    again = load_images("fashion_mnist")
    assert torch.equal(data.val.x, again.val.x) and torch.equal(data.train.y, again.train.y)
    raw = read_idx(DEBIAN_FASHION_MNIST / "train-labels-idx1-ubyte.gz")
    together = torch.bincount(data.train.y, minlength=10) + torch.bincount(data.val.y, minlength=10)
    assert together.tolist() == np.bincount(raw, minlength=10).tolist()


def toy_split(n: int = 64) -> Split:
    x = torch.arange(n * 28 * 28, dtype=torch.int64).remainder(251).to(torch.uint8).view(n, 1, 28, 28)
    return Split(x, torch.arange(n) % 10)


def test_same_seed_and_epoch_give_identical_augmented_batches():
    first = list(train_batches(toy_split(), 16, seed=3, epoch=2, augment=True, flip=True))
    second = list(train_batches(toy_split(), 16, seed=3, epoch=2, augment=True, flip=True))
    for (x1, y1, i1), (x2, y2, i2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(i1, i2)


def test_other_epoch_or_seed_gives_other_batches():
    base = torch.cat([x for x, _, _ in train_batches(toy_split(), 16, 3, 2, True, True)])
    for seed, epoch in ((3, 3), (4, 2)):
        other = torch.cat([x for x, _, _ in train_batches(toy_split(), 16, seed, epoch, True, True)])
        assert not torch.equal(base, other)


def test_augmentation_varies_per_sample():
    plan = plan_epoch(1000, seed=0, epoch=0, flip=True)
    assert len({tuple(s) for s in plan.shifts.tolist()}) > 50
    assert 0.4 < plan.flips.float().mean().item() < 0.6


def test_digits_are_never_flipped():
    assert not plan_epoch(1000, seed=0, epoch=0, flip=False).flips.any()


def test_crop_shifts_and_flip_move_pixels_as_specified():
    x = toy_split(3).x
    out = crop_and_flip(x, torch.tensor([[4, 4], [0, 8], [4, 4]]), torch.tensor([False, False, True]))
    assert torch.equal(out[0], x[0])  # centre crop of the zero-padded image is the image
    assert torch.equal(out[1][:, 4:, :24], x[1][:, :24, 4:])  # shifted down-left by 4 pixels
    assert (out[1][:, :4] == 0).all()  # the padding shows up where the image moved away
    assert torch.equal(out[2], x[2].flip(-1))


def test_batches_cover_the_epoch_once_with_matching_labels():
    data = toy_split(50)
    seen = torch.cat([idx for _, _, idx in train_batches(data, 16, 0, 0, augment=False, flip=False)])
    assert sorted(seen.tolist()) == list(range(50))
    for x, y, idx in train_batches(data, 16, 0, 0, augment=False, flip=False):
        assert torch.equal(x, data.x[idx]) and torch.equal(y, data.y[idx])
