"""Sentence-polarity fine-tuning: `train_finetune(config)`, full or LoRA, for the `lora` space.

Reference settings (docs/reference.md §1, DistilBERT on rotten_tomatoes): max_length 128, batch 32,
LoRA alpha 32, AdamW with lr 1e-5 for the backbone or the adapters and 5e-5 for the head, 5% linear
warmup then linear decay, weight decay 1e-3. A trial reports twice per epoch so ASHA can stop it
within an epoch.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainables.config import build
from trainables.data.shipped import Shipment, shipped_source, shipped_tokens, token_key
from trainables.data.text import Tokens, eval_batches, load_tokens, train_batches
from trainables.knobs import HALVES, TextConfig
from trainables.loop import Runtime, rebase_rates, seed_everything, setup_runtime
from trainables.models.text import (
    BACKBONES,
    HEAD_MODULES,
    apply_setting,
    build_classifier,
    count_trainable,
    load_tokenizer,
    load_trainable_state,
    parse_setting,
    resolve_source,
    trainable_state,
)
from trainables.reporting import Reporter, TuneReporter, granted_gpus, trial_cpus


def effective_setting(cfg: TextConfig) -> str:
    """cfg.setting with lora_targets and lora_rank in place of its own where set; full stays full."""
    targets, rank = parse_setting(cfg.setting)
    return "full" if targets is None else f"{cfg.lora_targets or targets}{cfg.lora_rank or rank}"


def build_model(cfg: TextConfig, source: str) -> nn.Module:
    return apply_setting(build_classifier(cfg.backbone, source), cfg.backbone, effective_setting(cfg),
                         cfg.lora_alpha, cfg.lora_dropout)


def make_optimizer(model: nn.Module, cfg: TextConfig) -> torch.optim.AdamW:
    """Four groups: (head | backbone) × (decayed matrices | biases and norms)."""
    heads = tuple(HEAD_MODULES[BACKBONES[cfg.backbone].arch])
    body_lr = cfg.backbone_lr if cfg.setting == "full" else cfg.adapter_lr
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            is_head = any(f"{h}." in name for h in heads)
            groups.setdefault((is_head, p.ndim >= 2), []).append(p)
    return torch.optim.AdamW([
        {"params": params, "lr": cfg.head_lr if is_head else body_lr,
         "weight_decay": cfg.weight_decay if decayed else 0.0}
        for (is_head, decayed), params in sorted(groups.items())
    ])


def warmup_linear(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float):
    warm = max(1, math.ceil(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler, data: Tokens,
                batches: list[np.ndarray], rt: Runtime, pad_to: int | None = None) -> dict[str, float]:
    """One pass over `batches`; returns mean loss, sentences and real (non-pad) tokens per second."""
    model.train()
    loss_sum, sentences, tokens = torch.zeros((), device=rt.device), 0, 0
    start = time.perf_counter()
    for rows in batches:
        batch = {k: v.to(rt.device, non_blocking=True) for k, v in data.batch(rows, pad_to).items()}
        with rt.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = F.cross_entropy(logits.float(), batch["labels"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.detach() * len(rows)
        sentences += len(rows)
        tokens += int(data.lengths[rows].sum())
    seconds = time.perf_counter() - start
    return {"loss": float(loss_sum) / max(1, sentences), "sentences_per_s": sentences / seconds,
            "tokens_per_s": tokens / seconds}


@torch.no_grad()
def predict_text(model: nn.Module, data: Tokens, rt: Runtime,
                 batch_size: int = 128) -> tuple[float, torch.Tensor, torch.Tensor]:
    """(summed cross-entropy, labels, predicted classes) over `data`, in length-sorted batches."""
    model.eval()
    loss_sum, labels, predicted = 0.0, [], []
    for rows in eval_batches(data, batch_size):
        batch = {k: v.to(rt.device) for k, v in data.batch(rows).items()}
        with rt.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss_sum += F.cross_entropy(logits.float(), batch["labels"], reduction="sum").item()
        labels.append(batch["labels"].cpu())
        predicted.append(logits.argmax(1).cpu())
    return loss_sum, torch.cat(labels), torch.cat(predicted)


def evaluate_text(model: nn.Module, data: Tokens, rt: Runtime, batch_size: int = 128) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) over `data`, in length-sorted batches."""
    loss_sum, labels, predicted = predict_text(model, data, rt, batch_size)
    return loss_sum / len(data), int((predicted == labels).sum()) / len(data)


def fit_text_classifier(cfg: TextConfig, reporter: Reporter, shipment: Shipment | None = None) -> None:
    """Trains cfg.setting on cfg.backbone, reporting and checkpointing every half epoch. The tokens come
    from the driver's `shipment` when it holds them (a Ray trial), else from disk."""
    rt = setup_runtime(trial_cpus(cfg.cpus), granted_gpus(), channels_last=False, precision=cfg.precision)
    seed_everything(cfg.seed)
    source = (shipped_source(shipment, cfg.backbone, cfg.model_path)
              or resolve_source(cfg.backbone, cfg.model_path))
    tokens = (shipped_tokens(shipment, token_key(cfg.dataset, cfg.backbone, cfg.model_path, cfg.max_length))
              or load_tokens(load_tokenizer(cfg.backbone, source), cfg.max_length, cfg.dataset))
    train, val = tokens["train"].head(cfg.train_subset), tokens["validation"].head(cfg.val_subset)
    pad_to = cfg.max_length if cfg.padding == "max_length" else None

    model = build_model(cfg, source).to(rt.device)
    optimizer = make_optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    scheduler = warmup_linear(optimizer, cfg.epochs * steps_per_epoch, cfg.warmup)
    params = count_trainable(model)

    start = 0
    state = reporter.restore()
    if state is not None:
        configured = list(scheduler.base_lrs)  # the config's rates: a PBT clone's differ from the state's
        load_trainable_state(model, state["trainable"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rebase_rates(optimizer, scheduler, configured)
        torch.set_rng_state(state["rng"])
        start = state["half"] + 1

    for half in range(start, cfg.epochs * HALVES):
        epoch, part = divmod(half, HALVES)
        batches = train_batches(train, cfg.batch_size, cfg.seed, epoch, cfg.bucket)
        # Batches are a pure function of (seed, epoch), so a resumed half trains the same rows.
        cut = len(batches) // HALVES
        chunk = batches[part * cut:] if part == HALVES - 1 else batches[part * cut:(part + 1) * cut]
        stats = train_steps(model, optimizer, scheduler, train, chunk, rt, pad_to)
        val_loss, val_acc = evaluate_text(model, val, rt)
        metrics = {
            "epoch": (half + 1) / HALVES,
            "train_loss": stats["loss"],
            "val_loss": val_loss,
            "val_acc": val_acc,
            "trainable_params": params,
            "log10_trainable_params": math.log10(params),
            "tokens_per_s": stats["tokens_per_s"],
            "sentences_per_s": stats["sentences_per_s"],
            "precision": rt.precision,
            "current_lr": scheduler.get_last_lr()[0],
        }
        reporter.report(metrics, {
            "half": half,
            "trainable": trainable_state(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            # Dropout draws from the global RNG; restoring it makes the resumed run bit-identical.
            "rng": torch.get_rng_state(),
            "config": dataclasses.asdict(cfg),
        })


def train_finetune(config: dict, shipment: Shipment | None = None) -> None:
    """Ray Tune trainable: one fine-tuning trial."""
    fit_text_classifier(build(TextConfig, config), TuneReporter(), shipment)
