"""The data bench/gpu_check.py needs on a bare GPU machine, kept under 64 MiB so it travels easily.

A bare GPU machine is assumed to have torch, transformers and peft but neither the Debian
Fashion-MNIST, nor the MiniLM package, nor `datasets` (which the prepared rotten_tomatoes copy
needs). `python bench/gpu_check.py --prepare` (run in a checkout with the venv) writes
`data/gpu_carry/` (ignored by git through `/data/`), about 57 MB:

- `images.npy.xz` and `labels.npy`: the Fashion-MNIST training file split 54k/6k exactly as
  trainables.data.images.load_images splits it (train first, then val), xz-compressed (22.6 MB; the
  Debian .gz files would be 30.9 MB);
- `tokens.npz`: rotten_tomatoes tokenised by MiniLM's tokenizer (max_length 128) as
  trainables.data.text.load_tokens makes it, with token ids renumbered to the vocabulary it uses;
- `minilm/`: all-MiniLM-L6-v2 with its word-embedding rows cut to the tokens the sentences use and its
  weights stored in fp16 (34 MB instead of 91). Rows of tokens that never occur get no gradient, so the
  cut is exact; the fp16 storage rounds each weight by at most 2^-11 of itself (checked at prepare
  time: `manifest.json` records the largest change of the encoder's output on 64 validation
  sentences). The model is loaded back in fp32;
- `manifest.json`: sizes, sources, and the budgets of the degradation and lora spaces the
  projections use (read from `spaces/`, which imports Ray and so cannot be read on the device).
"""

from __future__ import annotations

import dataclasses
import io
import json
import lzma
from pathlib import Path

import numpy as np
import torch

from trainables.data.images import DatasetInfo, ImageData, Split
from trainables.data.root import data_root
from trainables.data.text import SPLITS, Tokens

CARRY = "gpu_carry"
IMAGES, LABELS, TOKENS = "images.npy.xz", "labels.npy", "tokens.npz"
MODEL, MANIFEST = "minilm", "manifest.json"


def carry_dir() -> Path:
    return data_root() / CARRY


def folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _space_budgets() -> dict:
    """What the projections need from the spaces: grids, paper epochs, GPU fractions, the lora demo."""
    from spaces import get_space

    deg, lora = get_space("degradation"), get_space("lora")
    return {
        "degradation": {"grid": deg.grid, "fixed": deg.fixed, "gpu": deg.gpu,
                        "paper": deg.base_config("paper"), "grace": deg.profiles["paper"].grace_period},
        "lora": {"grid": lora.grid, "gpu": lora.gpu, "paper": lora.base_config("paper"),
                 "demo": lora.base_config("demo")},
    }


def _write_images(target: Path, limit: int) -> dict:
    from trainables.data.images import load_images

    data = load_images("fashion_mnist")
    data = dataclasses.replace(data, train=data.train.head(limit), val=data.val.head(limit))
    x = torch.cat([data.train.x, data.val.x]).numpy()
    buffer = io.BytesIO()
    np.save(buffer, x)
    (target / IMAGES).write_bytes(lzma.compress(buffer.getvalue(), preset=6))
    np.save(target / LABELS, torch.cat([data.train.y, data.val.y]).numpy())
    return {"train": len(data.train), "val": len(data.val), "info": dataclasses.asdict(data.info)}


def _write_text(target: Path) -> dict:
    """Tokens with renumbered ids and the cut fp16 MiniLM; returns what the manifest says of them."""
    from safetensors.torch import load_file, save_file

    from trainables.data.text import load_tokens
    from trainables.models.text import build_encoder, load_tokenizer, resolve_source

    source = resolve_source("minilm")
    tokens = load_tokens(load_tokenizer("minilm", source), 128)
    pad = tokens["train"].pad_id
    used = np.unique(np.concatenate([tokens[s].flat for s in SPLITS] + [np.array([pad], np.int32)]))
    new_id = np.zeros(int(used.max()) + 1, dtype=np.int32)
    new_id[used] = np.arange(len(used), dtype=np.int32)
    np.savez(target / TOKENS, pad_id=new_id[pad], **{
        f"{s}.{part}": (new_id[tokens[s].flat] if part == "flat" else getattr(tokens[s], part))
        for s in SPLITS for part in ("flat", "offsets", "labels")})

    weights = load_file(str(Path(source) / "model.safetensors"))
    key = next(k for k in weights if k.endswith("word_embeddings.weight"))
    weights[key] = weights[key][torch.from_numpy(used.astype(np.int64))]
    (target / MODEL).mkdir()
    halves = {k: v.half().contiguous() for k, v in weights.items()}
    save_file(halves, str(target / MODEL / "model.safetensors"))
    config = json.loads((Path(source) / "config.json").read_text())
    (target / MODEL / "config.json").write_text(json.dumps({**config, "vocab_size": len(used)}, indent=1))

    # The fp16 rounding, measured: the same 64 validation sentences through both encoders.
    val = tokens["validation"]
    batch = val.batch(np.arange(64))
    carried = Tokens(new_id[val.flat], val.offsets, val.labels, int(new_id[pad])).batch(np.arange(64))
    with torch.no_grad():
        original = build_encoder("minilm", source).eval()(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        cut = load_encoder(target / MODEL)(
            input_ids=carried["input_ids"], attention_mask=carried["attention_mask"]).last_hidden_state
    return {"vocab_kept": len(used), "vocab_full": int(config["vocab_size"]),
            "train_sentences": len(tokens["train"]),
            "fp16_max_abs_change_of_encoder_output": float((cut - original).abs().max()),
            "encoder_output_max_abs": float(original.abs().max())}


def prepare(target: Path, limit: int = 0) -> dict:
    """Writes the carry folder (replacing an old one) and returns its manifest. `limit` > 0 keeps only
    that many training and validation images (the tests' toy carry)."""
    import shutil

    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    manifest = {"images": _write_images(target, limit), "text": _write_text(target),
                "spaces": _space_budgets()}
    manifest["bytes"] = folder_size(target) + len(json.dumps(manifest)) + 100
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
    return manifest


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def load_carried_images(folder: Path) -> ImageData:
    """The carried split as trainables' ImageData (no test split: the check never reads it)."""
    meta = read_manifest(folder)["images"]
    x = torch.from_numpy(np.load(io.BytesIO(lzma.decompress((folder / IMAGES).read_bytes()))))
    y = torch.from_numpy(np.load(folder / LABELS))
    n = meta["train"]
    info = DatasetInfo(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["info"].items()})
    empty = Split(x[:0], y[:0])
    return ImageData(info, Split(x[:n], y[:n]), Split(x[n:], y[n:]), empty)


def load_carried_tokens(folder: Path) -> dict[str, Tokens]:
    with np.load(folder / TOKENS) as arrays:
        return {s: Tokens(arrays[f"{s}.flat"], arrays[f"{s}.offsets"], arrays[f"{s}.labels"],
                          int(arrays["pad_id"])) for s in SPLITS}


def load_classifier(folder: Path, setting: str, alpha: int, dropout: float) -> torch.nn.Module:
    """trainables.finetune.build_model for the carried MiniLM: the same head and LoRA setting, fp32."""
    from transformers import AutoModelForSequenceClassification, logging

    from trainables.models.text import apply_setting

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    model = AutoModelForSequenceClassification.from_pretrained(str(folder / MODEL), num_labels=2,
                                                               dtype=torch.float32)
    return apply_setting(model, "minilm", setting, alpha, dropout)


def load_encoder(folder: Path) -> torch.nn.Module:
    from transformers import AutoModel, logging

    logging.disable_progress_bar()
    return AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()
