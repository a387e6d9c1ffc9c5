"""Training throughput of the CNN trainable against (a) a bare hand-written loop over the same
in-memory tensors and (b) the usual torchvision Dataset + DataLoader + per-sample transforms.

    .venv/bin/python bench/bench_pipeline.py [--images 4096] [--epochs 2] [--threads 2]

All three run in this one process, on the same images, batch size and thread count, and each is
timed over its training epochs only (evaluation excluded). The first epoch of each is a warm-up.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from trainables.cnn import ImageConfig, fit_image_model
from trainables.data.images import DATASETS, load_images
from trainables.models import build_image_model
from trainables.reporting import MemoryReporter

BATCH = 128
MODELS = {"MediumCNN (n=5)": 5, "SmallCNN (n=1)": 1}


def trainable_throughput(num_blocks: int, images: int, epochs: int, threads: int, augment: bool) -> float:
    reporter = MemoryReporter()
    cfg = ImageConfig(model="cnn", num_blocks=num_blocks, train_subset=images, val_subset=256,
                      epochs=epochs, batch_size=BATCH, cpus=threads, augment=augment)
    fit_image_model(cfg, reporter)
    rates = [h["samples_per_s"] for h in reporter.history[1:]]
    return sum(rates) / len(rates)


def bare_loop_throughput(num_blocks: int, images: int, epochs: int, threads: int) -> float:
    """The minimal loop anyone would write: float tensors in memory, slice, forward, backward, step."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = load_images("fashion_mnist").train.head(images)
    info = DATASETS["fashion_mnist"]
    x = (data.x.float() / 255 - info.mean[0]) / info.std[0]
    model = build_image_model("cnn", info.shape, 10, num_blocks=num_blocks)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(model(x[idx]), data.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        rates.append(len(x) / (time.perf_counter() - start))
    return sum(rates[1:]) / len(rates[1:])


class PerSampleFashionMNIST(Dataset):
    """What torchvision.datasets.FashionMNIST does per item: a PIL image, then the transforms."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.x[i, 0].numpy(), mode="L")), int(self.y[i])


def dataloader_throughput(num_blocks: int, images: int, epochs: int, threads: int, workers: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    data = load_images("fashion_mnist").train.head(images)
    info = DATASETS["fashion_mnist"]
    transform = transforms.Compose([
        transforms.RandomCrop(28, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(info.mean, info.std),
    ])
    loader = DataLoader(PerSampleFashionMNIST(data.x, data.y, transform), batch_size=BATCH,
                        shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    model = build_image_model("cnn", info.shape, 10, num_blocks=num_blocks)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        seen = 0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(yb)
        rates.append(seen / (time.perf_counter() - start))
    return sum(rates[1:]) / len(rates[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=3, help="the first one is a warm-up")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    run = (args.images, args.epochs, args.threads)
    print(f"Fashion-MNIST, {args.images} images, batch {BATCH}, {args.threads} threads, images/s")
    for label, n in MODELS.items():
        trainable = trainable_throughput(n, *run, augment=True)
        trainable_plain = trainable_throughput(n, *run, augment=False)
        bare = bare_loop_throughput(n, *run)
        loader0 = dataloader_throughput(n, *run, workers=0)
        loader2 = dataloader_throughput(n, *run, workers=2)
        print(f"\n{label}")
        print(f"  trainable, crop+flip on batches   {trainable:8.0f}")
        print(f"  trainable, no augmentation        {trainable_plain:8.0f}")
        print(f"  bare loop, no augmentation        {bare:8.0f}")
        print(f"  DataLoader + per-sample, 0 workers {loader0:7.0f}")
        print(f"  DataLoader + per-sample, 2 workers {loader2:7.0f}")
        print(f"  (a) trainable / bare loop (both without augmentation): {trainable_plain / bare:.2f}")
        print(f"  (b) trainable / DataLoader (both augmenting): {trainable / loader0:.2f} (0 workers), "
              f"{trainable / loader2:.2f} (2 workers)")


if __name__ == "__main__":
    main()
