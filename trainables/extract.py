"""Frozen-feature baseline: `train_extract(config)` for the `extract` space.

A pretrained encoder embeds every sentence once (CLS token or attention-masked mean), the embeddings
are cached as .npy per (dataset, extractor, pooling, max_length, subsets), and a LinearSVC on
standardised features is fitted for each C of a small grid; the C with the best validation accuracy
wins. `umap_svg` draws the validation embeddings in 2-D, coloured by label.

The cache lives on the experiment storage (`cache_dir`, which the extract space sets to
<storage>/embeddings), local or a URI, so every node of a cluster reads what any node wrote and a later
search (or a resume) reuses it: embedding is the expensive part, the SVM is seconds. The tokenised
sentences come from the driver through Ray's object store (trainables/data/shipped.py).
"""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import torch

from store import Location, locate
from trainables.config import build
from trainables.data.root import data_root
from trainables.data.shipped import Shipment, shipped_source, shipped_tokens, token_key
from trainables.data.text import SPLITS, Tokens, eval_batches, load_tokens
from trainables.knobs import ExtractConfig
from trainables.loop import Runtime, seed_everything, setup_runtime
from trainables.models.text import build_encoder, load_tokenizer, resolve_source
from trainables.reporting import Reporter, TuneReporter, granted_gpus, trial_cpus

LABEL_NAMES = ("negative", "positive")


@torch.no_grad()
def embed(encoder: torch.nn.Module, data: Tokens, pooling: str, rt: Runtime, batch_size: int) -> np.ndarray:
    """float32 [N, hidden] in the rows' original order (batches are length-sorted for speed)."""
    encoder.eval()
    out = None
    for rows in eval_batches(data, batch_size):
        batch = data.batch(rows)
        mask = batch["attention_mask"].to(rt.device)
        with rt.autocast():
            hidden = encoder(input_ids=batch["input_ids"].to(rt.device), attention_mask=mask)
        hidden = hidden.last_hidden_state.float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        if out is None:
            out = np.empty((len(data), pooled.shape[1]), dtype=np.float32)
        out[rows] = pooled.cpu().numpy()
    return out


def cache_dir(cfg: ExtractConfig, source: str, precision: str = "fp32") -> Location:
    subsets = f"{cfg.train_subset}-{cfg.val_subset}-{cfg.test_subset}"
    origin = Path(source).name if source else "random-init"
    key = f"{cfg.dataset}__{cfg.extractor}-{origin}__{cfg.pooling}__L{cfg.max_length}__n{subsets}"
    # bf16 embeddings differ from fp32 ones in the third significant digit: each precision has its entry;
    # fp32 entries keep the names they had before precision was a knob.
    if precision != "fp32":
        key += f"__{precision}"
    return locate(cfg.cache_dir or data_root() / "cache" / "embeddings") / key


def _npy_bytes(save, *args, **arrays) -> bytes:
    buffer = io.BytesIO()
    save(buffer, *args, **arrays)
    return buffer.getvalue()


def cached_embeddings(cfg: ExtractConfig, rt: Runtime, shipment: Shipment | None = None
                      ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], bool, Location]:
    """(features per split, labels per split, whether the cache had them, cache folder). The tokens
    of a miss come from the driver's `shipment` when it holds them, else from disk."""
    source = shipped_source(shipment, cfg.extractor, "") or resolve_source(cfg.extractor)
    folder = cache_dir(cfg, source, rt.precision)
    subsets = {"train": cfg.train_subset, "validation": cfg.val_subset, "test": cfg.test_subset}
    # labels.npz is written first, so the split files' presence means the entry is whole.
    if all((folder / f"{split}.npy").is_file() for split in SPLITS):
        labels = np.load(io.BytesIO((folder / "labels.npz").read_bytes()))
        return ({s: np.load(io.BytesIO((folder / f"{s}.npy").read_bytes())) for s in SPLITS},
                {s: labels[s] for s in SPLITS}, True, folder)
    tokens = (shipped_tokens(shipment, token_key(cfg.dataset, cfg.extractor, "", cfg.max_length))
              or load_tokens(load_tokenizer(cfg.extractor, source), cfg.max_length, cfg.dataset))
    tokens = {s: tokens[s].head(subsets[s]) for s in SPLITS}
    encoder = build_encoder(cfg.extractor, source).to(rt.device)
    features = {s: embed(encoder, tokens[s], cfg.pooling, rt, cfg.batch_size) for s in SPLITS}
    labels = {s: tokens[s].labels for s in SPLITS}
    # Each file is written whole (store/fs.py); racing trials write the same content.
    (folder / "labels.npz").write_bytes(_npy_bytes(np.savez, **labels))
    for split, x in features.items():
        (folder / f"{split}.npy").write_bytes(_npy_bytes(np.save, x))
    return features, labels, False, folder


def fit_linear_svc(features: dict[str, np.ndarray], labels: dict[str, np.ndarray], cs: list[float],
                   seed: int) -> tuple[dict[str, float], object]:
    """Standardise on train, fit LinearSVC per C, keep the best validation accuracy."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    best, best_model = None, None
    for c in cs:
        model = make_pipeline(StandardScaler(), LinearSVC(C=c, max_iter=5000, random_state=seed))
        model.fit(features["train"], labels["train"])
        scores = {f"{name}_acc": float(model.score(features[split], labels[split]))
                  for name, split in (("train", "train"), ("val", "validation"), ("test", "test"))}
        if best is None or scores["val_acc"] > best["val_acc"]:
            best, best_model = {**scores, "svm_c_best": c}, model
    return best, best_model


def umap_svg(x: np.ndarray, y: np.ndarray, title: str, seed: int = 0) -> bytes:
    """2-D UMAP of `x`, one colour per label, as SVG. The first fit per process compiles (~8 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import umap

    points = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(6, 5))
    for label, name in enumerate(LABEL_NAMES):
        chosen = y == label
        ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, label=name)
    ax.set(title=title, xticks=[], yticks=[])
    ax.legend(markerscale=3)
    fig.tight_layout()
    svg = io.BytesIO()
    fig.savefig(svg, format="svg")
    plt.close(fig)
    return svg.getvalue()


def fit_extract(cfg: ExtractConfig, reporter: Reporter, shipment: Shipment | None = None) -> None:
    rt = setup_runtime(trial_cpus(cfg.cpus), granted_gpus(), channels_last=False, precision=cfg.precision)
    seed_everything(cfg.seed)  # the tiny test extractors are random-init: seeded
    start = time.perf_counter()
    features, labels, cached, folder = cached_embeddings(cfg, rt, shipment)
    embed_seconds = time.perf_counter() - start
    scores, model = fit_linear_svc(features, labels, [float(c) for c in cfg.svm_c.split(",")], cfg.seed)
    metrics = {**scores, "embeddings_cached": int(cached), "embed_seconds": embed_seconds,
               "dim": int(features["train"].shape[1]), "train_size": len(labels["train"]),
               "precision": rt.precision}
    if cfg.umap:
        svg = folder / "umap_validation.svg"
        if not svg.is_file():
            svg.write_bytes(umap_svg(features["validation"], labels["validation"],
                                     f"{cfg.extractor} {cfg.pooling}-pooled validation embeddings (UMAP)",
                                     cfg.seed))
        metrics["umap_svg"] = svg.uri
    scaler, svc = model.named_steps["standardscaler"], model.named_steps["linearsvc"]
    reporter.report(metrics, {
        "scaler_mean": torch.from_numpy(scaler.mean_), "scaler_scale": torch.from_numpy(scaler.scale_),
        "coef": torch.from_numpy(svc.coef_), "intercept": torch.from_numpy(svc.intercept_),
        "config": dataclasses.asdict(cfg),
    })


def train_extract(config: dict, shipment: Shipment | None = None) -> None:
    """Ray Tune trainable: one (extractor, pooling) trial."""
    fit_extract(build(ExtractConfig, config), TuneReporter(), shipment)

