"""The frozen KD teacher and the teacher-logit cache every trial of a distillation search shares.

A teacher is a checkpoint of `--space teachers`: a folder holding state.pt, whose "config" entry is
the resolved ImageConfig that built it, on any store (store/fs.py): a checkpoint on a URI is
downloaded once per machine. It is loaded with weights_only=True and kept in eval mode.

Why a cache: the teacher is frozen and an epoch's augmentation is a pure function of (seed, epoch)
(trainables/data/augment.py), so the teacher's logits for (teacher, dataset, subset, seed, epoch) are
the same in every trial. A 12-cell grid would otherwise run the same teacher forward pass 12 times.

Why a file on the experiment storage rather than Ray's object store: the object store lives only as
long as one Ray session and needs a named actor to hand out object refs, while a file outlives it, so
a resumed experiment (Tuner.restore) and the next search with the same teacher reuse it, and trials
need nothing but an address. Tune already requires the storage to be shared by every node of a
cluster (a URI or an NFS path), so every trial can see the file; it is read and written through
pyarrow.fs. An entry appears whole or not at all (an object PUT, or a rename on a folder), so a reader
never sees half a file. There is no lock (none works across nodes and object stores): two trials that
miss the same entry at the same moment both compute it and both write the same bytes, which costs one
extra teacher pass and is harmless.

Memory is bounded: an entry is one epoch, [N images, classes] in fp16 (1.1 MB for 54k images and 10
classes); a trial holds one epoch at a time.

Precision: the teacher runs in the trial's precision, and a bf16 teacher's logits differ from an fp32
teacher's in the third significant digit, so each precision has its own entries (fp32 entries keep
their old names). fp16 storage loses nothing of a bf16 logit: fp16 has 11 significant bits to bf16's
8, over fp16's range (up to 65504); an entry whose logits exceed that range (a diverged teacher) is
stored in fp32 rather than as inf.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch
from torch import nn

from store import Location, locate
from store.experiment import local_checkpoint
from trainables.cnn import build_model
from trainables.data.augment import train_batches
from trainables.data.images import Split
from trainables.knobs import image_config
from trainables.loop import Normalize, Runtime
from trainables.reporting import STATE_FILE, load_state

CACHE_DTYPE = torch.float16


class TeacherMissing(FileNotFoundError):
    """No teacher checkpoint where one was named."""


def checkpoint_dir(path: str | Path | Location) -> Path:
    """A local folder holding the teacher's state.pt, given that folder, the file itself, or a trial
    folder (its best kept checkpoint: store/experiment.py), local or on a URI."""
    try:
        return local_checkpoint(path)
    except FileNotFoundError as err:
        raise TeacherMissing(f"no teacher checkpoint: {err}") from None


def load_teacher(path: str | Path, rt: Runtime | None = None) -> tuple[nn.Module, dict]:
    """(frozen teacher in eval mode, its resolved training config)."""
    state = load_state(str(checkpoint_dir(path)))
    config = state["config"]
    model = build_model(image_config(config))
    model.load_state_dict(state["model"])
    model.eval().requires_grad_(False)
    if rt is not None:
        fmt = torch.channels_last if rt.channels_last else torch.contiguous_format
        model = model.to(rt.device, memory_format=fmt)
    return model, config


def teacher_id(path: str | Path | Location) -> str:
    """Content hash of the teacher's weights file: a retrained teacher never hits an old entry."""
    digest = hashlib.sha256((checkpoint_dir(path) / STATE_FILE).read_bytes()).hexdigest()
    return digest[:16]


@torch.no_grad()
def epoch_logits(teacher: nn.Module, train: Split, normalize: Normalize, rt: Runtime, batch_size: int,
                 seed: int, epoch: int, augment: bool, flip: bool) -> torch.Tensor:
    """Teacher logits [N, classes] (fp32) for every training image as epoch `epoch` augments it, at
    its dataset index. The batches are the ones the student sees, drawn from the same (seed, epoch)."""
    logits = None
    for x, _, idx in train_batches(train, batch_size, seed, epoch, augment, flip):
        with rt.autocast():
            out = teacher(normalize(x)).float()
        if logits is None:
            logits = torch.zeros(len(train), out.shape[1], device=out.device)
        logits[idx.to(out.device)] = out
    return logits


class LogitCache:
    """Teacher logits per (seed, epoch) in files under `root`, shared by every trial that reads it.

    `root/<teacher hash>/<dataset>_n<images>_aug<0|1>[_bf16]/seed<seed>_epoch<epoch>.pt`, fp16 [N, classes].
    """

    def __init__(self, root: str | Path | Location, teacher_path: str | Path | Location, dataset: str,
                 n_train: int, augment: bool, precision: str = "fp32"):
        entry = f"{dataset}_n{n_train}_aug{int(augment)}" + ("" if precision == "fp32" else f"_{precision}")
        self.folder = locate(root) / teacher_id(teacher_path) / entry
        self.hits = self.misses = 0

    def path(self, seed: int, epoch: int) -> Location:
        return self.folder / f"seed{seed}_epoch{epoch}.pt"

    def get(self, seed: int, epoch: int, compute) -> torch.Tensor:
        """The cached fp16 (fp32 if out of fp16's range) logits, or `compute()`'s, written once."""
        target = self.path(seed, epoch)
        if target.is_file():  # complete entries only: they appear whole (store/fs.py write_bytes)
            self.hits += 1
            return torch.load(io.BytesIO(target.read_bytes()), map_location="cpu", weights_only=True)
        self.misses += 1
        logits = compute().to("cpu")
        if logits.abs().max() <= torch.finfo(CACHE_DTYPE).max:
            logits = logits.to(CACHE_DTYPE)
        buffer = io.BytesIO()
        torch.save(logits, buffer)
        target.create_if_absent(buffer.getvalue())
        return logits
