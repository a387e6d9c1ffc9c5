"""Data the driver loads once and hands to every trial through Ray's object store.

A worker node needs only the installed packages: no ./data, no /usr/share/datasets, no caches, no
file on the driver's disk. The driver loads what the search's trials read into one `Shipment` (each
space's `ship`, spaces/): the image splits cut to the trials' subsets, the tokenised sentences, the kd
teacher's checkpoint, a backbone that only the driver's disk or HF cache holds.
`tune.with_parameters` (search/tuner.py) puts it in the object store once, and each trial receives
it as the `shipment` argument of its trainable; Ray copies it to a node's store the first time a
trial there asks. Outside Ray (tests, benchmarks) a trainable gets no shipment and
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the spaces name a Shipment before anything is loaded: no torch for that
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
    folders: dict[str, ShippedFolder] = field(default_factory=dict)
    """By `model_key`: a backbone's files (from `--set model_path`, ./data/models or the HF cache)."""

    def nbytes(self) -> int:
        images = sum(s.x.nbytes + s.y.nbytes for d in self.images.values() for s in (d.train, d.val, d.test))
        tokens = sum(t.flat.nbytes + t.offsets.nbytes + t.labels.nbytes
                     for splits in self.tokens.values() for t in splits.values())
        folders = sum(len(b) for f in self.folders.values() for b in f.files.values())
        return images + tokens + sum(len(b) for b in self.files.values()) + folders

    def describe(self) -> str:
        parts = [f"{len(self.images)} image set(s)"] if self.images else []
        parts += [f"{len(self.tokens)} token set(s)"] if self.tokens else []
        parts += [f"{len(self.files)} file(s)"] if self.files else []
        parts += [f"{len(self.folders)} model folder(s)"] if self.folders else []
        return f"{', '.join(parts) or 'nothing'}, {self.nbytes() / 1e6:.1f} MB"


@dataclass
class ShippedFolder:
    name: str
    """The folder's own name, kept on the copy: caches key on it (trainables/extract.py)."""
    files: dict[str, bytes]
    """Relative path -> content."""


def image_key(cfg: Any) -> str:
    """An ImageConfig's data: dataset, source and subsets."""
    return f"{cfg.dataset}|{cfg.data_dir}|{int(cfg.download)}|{cfg.train_subset}|{cfg.val_subset}"


def token_key(dataset: str, backbone: str, model_path: str, max_length: int) -> str:
    return f"{dataset}|{backbone}|{model_path}|{max_length}"


def model_key(backbone: str, model_path: str) -> str:
    return f"{backbone}|{model_path}"


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
    folder = _node_copy(hashlib.sha256(data).hexdigest())
    _write_once(folder / name, data)
    return str(folder)


def shipped_source(shipment: Shipment | None, backbone: str, model_path: str) -> str | None:
    """A local copy of the backbone's folder the driver shipped, for `from_pretrained`; else None
    (the trial resolves the backbone itself: the PyPI MiniLM, a tiny test model, the hub)."""
    shipped = shipment.folders.get(model_key(backbone, model_path)) if shipment is not None else None
    if shipped is None:
        return None
    digest = hashlib.sha256()
    for relative in sorted(shipped.files):
        digest.update(relative.encode() + hashlib.sha256(shipped.files[relative]).digest())
    folder = _node_copy(digest.hexdigest()) / shipped.name
    for relative, data in shipped.files.items():
        _write_once(folder / relative, data)
    return str(folder)


def _node_copy(digest: str) -> Path:
    """This node's folder for shipped content, by its hash: written once, shared by its trials."""
    return Path(tempfile.gettempdir()) / "tunelab-shipped" / digest[:16]


def _write_once(target: Path, data: bytes) -> None:
    """Whole files only (a temporary name, then a rename): trials on one node may race here."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    partial.write_bytes(data)
    os.replace(partial, target)
