"""Where every dataset lives, and the one error for one that is not there: shared by the image and
the text data (trainables/data/images.py, trainables/data/text.py) and the backbones."""

from __future__ import annotations

import os
from pathlib import Path


class DataMissing(FileNotFoundError):
    """A dataset is not where we looked; the message says how to get it."""


def data_root() -> Path:
    """Where prepared data lives: $TUNELAB_DATA, else ./data beside the repository."""
    return Path(os.environ.get("TUNELAB_DATA", Path(__file__).resolve().parents[2] / "data"))
