"""Does the first-token head starve MiniLM's q settings? The lora demo's trainable with its usual head
(first token → BERT pooler → classifier) against a mean-pooling head (masked mean of the last hidden
states → the pooler's dense + tanh → classifier), the way MiniLM was pretrained to be read.

Each (setting, head) trains in its own process, one thread, at the demo's settings (MiniLM, one epoch,
backbone lr 5e-5, adapter lr 2e-3, head lr 3e-3), and prints its val_acc by half epoch; then the gap
of each LoRA setting to full fine-tuning per head. BENCHMARKS.md, "lora demo settings".

    python bench/bench_lora_pooling.py [--settings full,q8] [--train-subset 0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEMO = {"backbone": "minilm", "epochs": 1, "backbone_lr": 5e-5, "adapter_lr": 2e-3, "head_lr": 3e-3,
        "cpus": 1}


def mean_pooled(classifier):
    """BertForSequenceClassification re-read through a masked mean; head modules keep their names
    apart from the pooler, which becomes `head` (so PEFT's modules_to_save finds it)."""
    from torch import nn

    class MeanPooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert, pooler = classifier.bert, classifier.bert.pooler
            self.bert.pooler = None
            self.head = nn.Sequential(pooler.dense, nn.Tanh())
            self.dropout, self.classifier = classifier.dropout, classifier.classifier
            self.config = classifier.config

        def forward(self, input_ids=None, attention_mask=None, **_):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            return SimpleNamespace(logits=self.classifier(self.dropout(self.head(pooled))))

    return MeanPooled()


def run_one(setting: str, head: str, train_subset: int) -> None:
    import trainables.finetune as ft
    import trainables.models.text as mt
    from trainables.config import build
    from trainables.reporting import MemoryReporter

    if head == "mean":
        from peft import LoraConfig, get_peft_model

        build_classifier = mt.build_classifier
        mt.HEAD_MODULES["bert"] = ["head", "classifier"]
        ft.build_classifier = lambda name, source, num_labels=2: mean_pooled(
            build_classifier(name, source, num_labels))

        def apply_setting(model, name, setting, alpha, dropout):
            targets, rank = mt.parse_setting(setting)
            if targets is None:
                return model
            # The generic PeftModel: task_type SEQ_CLS expects a transformers model.
            return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                                                    target_modules=mt.lora_modules(name, targets),
                                                    modules_to_save=["head", "classifier"]))

        ft.apply_setting = apply_setting
    reporter = MemoryReporter()
    ft.fit_text_classifier(build(ft.TextConfig, {**DEMO, "setting": setting, "train_subset": train_subset}),
                           reporter)
    print(json.dumps({"setting": setting, "head": head, "val_acc": [r["val_acc"] for r in reporter.history]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="full,q8")
    parser.add_argument("--train-subset", type=int, default=0, help="0: all 8,250 sentences")
    parser.add_argument("--one", nargs=2, metavar=("SETTING", "HEAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(*args.one, args.train_subset)
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    best = {}
    for head in ("first-token", "mean"):
        for setting in args.settings.split(","):
            out = subprocess.run([sys.executable, __file__, "--one", setting, head,
                                  "--train-subset", str(args.train_subset)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            best[(setting, head)] = max(row["val_acc"])
            print(f"{head:11s} {setting:6s} val_acc by half epoch {[round(v, 4) for v in row['val_acc']]}")
    for head in ("first-token", "mean"):
        for setting in args.settings.split(","):
            if setting != "full" and ("full", head) in best:
                gap = 100 * (best[("full", head)] - best[(setting, head)])
                print(f"{head:11s} {setting} behind full: {gap:.1f} points")


if __name__ == "__main__":
    main()
