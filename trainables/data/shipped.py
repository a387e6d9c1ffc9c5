"""Data the driver loads once and hands to every trial through Ray's object store.

A worker node needs only the installed packages: no ./data, no /usr/share/datasets, no caches, no
file on the driver's disk. The driver loads what the search's trials read into one `Shipment` (each
space's `ship`, spaces/): the image splits cut to the trials' subsets, the tokenised sentences, the kd
teacher's checkpoint. `tune.with_parameters` (search/tuner.py) puts it in the object store once, and
each trial receives it as the `shipment` argument of its trainable; Ray copies it to a node's store
the first time a trial there asks. Outside Ray (tests, benchmarks) a trainable gets no shipment and
reads from disk as before.

The object store lives as long as the search's Ray session, which is long enough for these: the
driver rebuilds them in seconds from its own data when a search starts or resumes. What must outlive
a session lives on the experiment storage instead: the teacher-logit cache (trainables/teacher_cache.py)
and the extract space's embeddings (trainables/extract.py).

Keys are pure functions of a trial's config, so the driver and every trial name an entry alike.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainables.data.images import ImageData
from trainables.data.text import Tokens


@dataclass
class Shipment:
    images: dict[str, ImageData] = field(default_factory=dict)
    """By `image_key`: train and validation splits cut to the trials' subsets (no test split)."""
    tokens: dict[str, dict[str, Tokens]] = field(default_factory=dict)
    """By `token_key`: every split of the dataset, tokenised."""
    files: dict[str, bytes] = field(default_factory=dict)
    """By the path a config names: small files a trial would otherwise read from the driver's disk."""

    def nbytes(self) -> int:
        images = sum(s.x.nbytes + s.y.nbytes for d in self.images.values() for s in (d.train, d.val, d.test))
        tokens = sum(t.flat.nbytes + t.offsets.nbytes + t.labels.nbytes
                     for splits in self.tokens.values() for t in splits.values())
        return images + tokens + sum(len(b) for b in self.files.values())

    def describe(self) -> str:
        parts = [f"{len(self.images)} image set(s)"] if self.images else []
        parts += [f"{len(self.tokens)} token set(s)"] if self.tokens else []
        parts += [f"{len(self.files)} file(s)"] if self.files else []
        return f"{', '.join(parts) or 'nothing'}, {self.nbytes() / 1e6:.1f} MB"


def image_key(cfg: Any) -> str:
    """An ImageConfig's data: dataset, source and subsets."""
    return f"{cfg.dataset}|{cfg.data_dir}|{int(cfg.download)}|{cfg.train_subset}|{cfg.val_subset}"


def token_key(dataset: str, backbone: str, model_path: str, max_length: int) -> str:
    return f"{dataset}|{backbone}|{model_path}|{max_length}"


def shipped_images(shipment: Shipment | None, cfg: Any) -> ImageData | None:
    return shipment.images.get(image_key(cfg)) if shipment is not None else None


def shipped_tokens(shipment: Shipment | None, key: str) -> dict[str, Tokens] | None:
    return shipment.tokens.get(key) if shipment is not None else None


def shipped_file(shipment: Shipment | None, path: str, name: str) -> str:
    """A local copy of the shipped file named `path` (as `name` in a folder of its own), else `path`.

    The copy lives in this node's temp folder under the content's hash, written once per node (whole,
    by rename) and shared by every trial that runs there."""
    data = shipment.files.get(path) if shipment is not None else None
    if data is None:
        return path
    folder = Path(tempfile.gettempdir()) / "tunelab-shipped" / hashlib.sha256(data).hexdigest()[:16]
    target = folder / name
    if not target.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{name}.{os.getpid()}.tmp"
        partial.write_bytes(data)
        os.replace(partial, target)
    return str(folder)
