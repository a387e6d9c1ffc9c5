"""A real (tiny) kd teacher for the tests and benches that run the kd space without a trained one."""

from __future__ import annotations

from pathlib import Path


def make_teacher(folder: Path, train_subset: int = 512) -> Path:
    """A ResNet8 trained one epoch, saved in `folder`/checkpoint_000000 as the driver saves a
    checkpoint; returns that checkpoint folder."""
    import torch

    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.reporting import STATE_FILE, MemoryReporter

    reporter = MemoryReporter()
    config = ImageConfig(model="resnet8", train_subset=train_subset, val_subset=128, epochs=1)
    fit_image_model(config, reporter)
    checkpoint = folder / "checkpoint_000000"
    checkpoint.mkdir(parents=True)
    torch.save(reporter.state, checkpoint / STATE_FILE)
    return checkpoint
