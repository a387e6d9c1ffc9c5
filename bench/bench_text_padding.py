"""Fine-tuning throughput: dynamic padding with length bucketing against padding every batch to 128.

MiniLM with LoRA q,v rank 8 (the lora space's qv8), batch 32, the same model and the same training
sentences for both ways; each way trains `--batches` steps after one warm-up step, `--repeats` times,
interleaved so that load on the machine hits both alike. Prints sentences per wall-clock second and
per CPU second of this process (the fair measure on a machine shared with other jobs; with
`--threads 1` it is the speed on an idle core), and the ratios.

    python bench/bench_text_padding.py [--batches 24] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from trainables.data.text import load_tokens, train_batches  # noqa: E402
from trainables.finetune import TextConfig, build_model, make_optimizer, train_steps, warmup_linear  # noqa: E402
from trainables.loop import seed_everything, setup_runtime  # noqa: E402
from trainables.models.text import load_tokenizer, resolve_source  # noqa: E402

WAYS = {
    # name: (bucket pools of batches, pad_to)
    "dynamic padding + length bucketing": (50, None),
    "pad to max_length 128, shuffled": (0, 128),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    cfg = TextConfig(backbone="minilm", setting="qv8", adapter_lr=5e-4, head_lr=5e-4, max_length=128)
    rt = setup_runtime(args.threads, channels_last=False)
    seed_everything(0)
    source = resolve_source(cfg.backbone)
    train = load_tokens(load_tokenizer(cfg.backbone, source), cfg.max_length)["train"]
    model = build_model(cfg, source)
    optimizer = make_optimizer(model, cfg)
    scheduler = warmup_linear(optimizer, 10_000, cfg.warmup)

    wall: dict[str, list[float]] = {way: [] for way in WAYS}
    cpu: dict[str, list[float]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way, (bucket, pad_to) in WAYS.items():
            batches = train_batches(train, cfg.batch_size, seed=0, epoch=repeat, bucket=bucket)
            train_steps(model, optimizer, scheduler, train, batches[:1], rt, pad_to)  # warm-up
            steps = batches[1:1 + args.batches]
            cpu_start = time.process_time()
            stats = train_steps(model, optimizer, scheduler, train, steps, rt, pad_to)
            per_cpu_s = sum(len(b) for b in steps) / (time.process_time() - cpu_start)
            wall[way].append(stats["sentences_per_s"])
            cpu[way].append(per_cpu_s)
            print(f"repeat {repeat}: {way:38} {stats['sentences_per_s']:7.1f} sentences/s, "
                  f"{per_cpu_s:7.1f} per CPU second", flush=True)

    print(f"\nMiniLM LoRA qv8, batch 32, {args.threads} threads, {args.batches} steps × {args.repeats} "
          f"repeats (median):")
    for label, speeds in (("sentences/s", wall), ("sentences per CPU second", cpu)):
        medians = {way: statistics.median(values) for way, values in speeds.items()}
        fast, slow = medians.values()
        for way, value in medians.items():
            print(f"  {way:38} {value:7.1f} {label}")
        print(f"  speed-up ({label}): {fast / slow:.2f}×")


if __name__ == "__main__":
    main()
