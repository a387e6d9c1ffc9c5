"""Where every dataset lives, the one error for one that is not there, and whether the hub answers:
shared by the image and the text data (trainables/data/images.py, trainables/data/text.py) and the
backbones (trainables/models/text.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path


class DataMissing(FileNotFoundError):
    """A dataset is not where we looked; the message says how to get it."""


def data_root() -> Path:
    """Where prepared data lives: $TUNELAB_DATA, else ./data beside the repository."""
    return Path(os.environ.get("TUNELAB_DATA", Path(__file__).resolve().parents[2] / "data"))


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check: without network, HF's own clients retry for ~25 s before failing."""
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False
