"""Training speed on the CPU: fp32 against bf16 autocast (and, with --compile, torch.compile of each).

Workloads are the trainables' own training steps (trainables/loop.py train_epoch, trainables/finetune.py
train_steps) on real data: the degradation CNN (n = 1, 5, 7 blocks, 16 filters, batch 64 as in the demo,
channels_last) on Fashion-MNIST, and MiniLM fine-tuning (full and LoRA qv8, batch 32, dynamic padding) on
rotten_tomatoes. Each way runs `--steps` steps after `--warmup` warm-up steps, `--repeats` times,
interleaved so that load on the machine hits every way alike. Prints images (sentences) per wall second
and per CPU second of this process (the fair measure on a shared machine; with `--threads 1`, the
default and what a demo trial gets, it is the speed of one idle core), medians, and the ratios to fp32.

Next to each throughput: the FLOPs of a training step (torch.utils.flop_counter: convolutions and matrix
products, forward and backward; for the CNN counted once per batch shape on the meta device, for MiniLM
per padded token of one counted batch), the achieved GFLOP/s per CPU second, and that rate as a fraction
of a bf16 and an fp32 2048³ matmul measured in every repeat of the same run, on the same threads. The
first line names the CPU (model, family/model, the flags that decide bf16 speed).

With --compile, each compiled way also reports its compile time in CPU seconds (this process and the C++
compiler it runs; caches off): the extra CPU time of the warm-up steps and of the first evaluation pass
(train and eval graphs compile separately) over steady state, and the images (sentences) a trial must
train before compiling pays off, against what a demo trial trains.

    python bench/bench_precision.py [--threads 1] [--steps 12] [--repeats 3] [--compile] [--only n=5,qv8]

`--compare FP32_EXPERIMENT BF16_EXPERIMENT` instead reads two searches of the same grid and seeds that
differ in `--set precision` and prints, per configuration, the best val_acc over seeds (mean ± sd) of
each, the paired difference (same seed) and whether the means agree within the seeds' spread.
`--rerun EXPERIMENT --out FILE.json` retrains every trial of a finished search (FIFO, so each trial ran its
whole budget) in this process with `--precision` (default bf16), without Ray, and writes the same table
against the stored trials, after checking that rerunning its first trial in the stored precision
reproduces the stored val_acc exactly.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# Inductor compiles in this process (and gcc children it waits for), so its CPU time is counted, and
# from scratch: no FX-graph or kernel cache of an earlier run (a search's first trial has none either).
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402

from bench.machine import (  # noqa: E402
    cnn_step_flops,
    cpu_line,
    cpu_seconds,
    matmul_rate,
    text_token_flops,
)
from trainables.cnn import ImageConfig, build_model, fit_image_model  # noqa: E402
from trainables.data.augment import train_batches  # noqa: E402
from trainables.data.images import load_images  # noqa: E402
from trainables.data.text import load_tokens  # noqa: E402
from trainables.data.text import train_batches as text_batches  # noqa: E402
from trainables.finetune import (  # noqa: E402
    TextConfig,
    evaluate_text,
    fit_text_classifier,
    make_optimizer,
    train_steps,
    warmup_linear,
)
from trainables.finetune import build_model as build_text  # noqa: E402
from trainables.loop import Normalize, Runtime, predict, seed_everything, train_epoch  # noqa: E402
from trainables.models.text import load_tokenizer, resolve_source  # noqa: E402
from trainables.precision import amp_dtype, cpu_has_native_bf16  # noqa: E402

# A demo trial trains at most this many images (degradation demo: 8192 images × 6 epochs) and sentences
# (lora demo: 6000 sentences × 1 epoch): the budget compile time is paid from.
DEMO_IMAGES, DEMO_SENTENCES = 8192 * 6, 6000


def runtime(precision: str) -> Runtime:
    return Runtime(torch.device("cpu"), amp_dtype(precision), channels_last=True)


PEAK_SIZE, PEAK_PRODUCTS = 2048, 3


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - wall, cpu_seconds() - cpu


class CNNWorkload:
    batch = 64

    def __init__(self, num_blocks: int, compiled: bool):
        cfg = ImageConfig(model="cnn", num_blocks=num_blocks, num_filters=16, batch_size=self.batch)
        data = load_images(cfg.dataset)
        self.train, self.val, self.flip = data.train.head(4096), data.val.head(512), data.info.flip
        self.normalize = Normalize(data.info.mean, data.info.std, runtime("fp32"))
        self.model = build_model(cfg).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
        self.net = torch.compile(self.model) if compiled else self.model
        self.epoch = 0
        self.step_flops = cnn_step_flops(self.model, self.batch, tuple(self.train.x.shape[1:]))

    def steps(self, n: int, rt: Runtime) -> tuple[int, float]:
        """(images trained, FLOPs of those steps)."""
        self.epoch += 1
        batches = itertools.islice(train_batches(self.train, self.batch, 0, self.epoch, True, self.flip), n)
        images = int(train_epoch(self.net, self.optimizer, batches, self.normalize, rt)["samples"])
        return images, self.step_flops * images / self.batch

    def evaluate(self, rt: Runtime) -> None:
        predict(self.net, self.val, self.normalize, rt)


class TextWorkload:
    batch = 32

    def __init__(self, setting: str, compiled: bool):
        cfg = TextConfig(backbone="minilm", setting=setting, backbone_lr=5e-5, adapter_lr=5e-4, head_lr=5e-4)
        source = resolve_source(cfg.backbone)
        tokens = load_tokens(load_tokenizer(cfg.backbone, source), cfg.max_length)
        self.train, self.val = tokens["train"], tokens["validation"].head(256)
        self.model = build_text(cfg, source)
        self.optimizer = make_optimizer(self.model, cfg)
        self.scheduler = warmup_linear(self.optimizer, 100_000, cfg.warmup)
        self.net = torch.compile(self.model) if compiled else self.model
        self.batches = iter(text_batches(self.train, self.batch, seed=0, epoch=0, bucket=50))
        self.token_flops = text_token_flops(self.model, self.train)

    def steps(self, n: int, rt: Runtime) -> tuple[int, float]:
        """(sentences trained, FLOPs of those steps: per padded token, as counted on one batch)."""
        rows = list(itertools.islice(self.batches, n))
        train_steps(self.net, self.optimizer, self.scheduler, self.train, rows, rt)
        padded = sum(len(r) * int(self.train.lengths[r].max()) for r in rows)
        return sum(len(r) for r in rows), self.token_flops * padded

    def evaluate(self, rt: Runtime) -> None:
        evaluate_text(self.net, self.val, rt)


def matmul_peaks() -> dict[str, float]:
    """bf16 and fp32 GFLOP/s per CPU second of a 2048³ product on this process's threads: per CPU second,
    like the workloads' rates, so load on a shared machine distorts neither."""
    cpu = torch.device("cpu")
    return {name: matmul_rate(dtype, cpu, PEAK_SIZE, PEAK_PRODUCTS)["gflops_cpu"]
            for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32))}


def workloads(only: str | None) -> dict[str, tuple[type, object, str]]:
    found = {f"CNN n={n} (batch 64)": (CNNWorkload, n, "images") for n in (1, 5, 7)}
    found.update({f"MiniLM {s} (batch 32)": (TextWorkload, s, "sentences") for s in ("full", "qv8")})
    return {name: w for name, w in found.items() if not only or any(o in name for o in only.split(","))}


def compare(fp32_folder: str, bf16_folder: str) -> None:
    from analysis.results import load_experiment

    experiments = {"fp32": load_experiment(fp32_folder), "bf16": load_experiment(bf16_folder)}
    for name, exp in experiments.items():
        used = sorted(set(exp.epochs["precision"]))
        print(f"{name}: {len(exp.trials)} trials, precision reported: {used}, "
              f"epochs run: {sorted(set(exp.trials['epochs_run']))}")
    print_comparison({name: exp.trials for name, exp in experiments.items()}, "bf16")


def print_comparison(runs: dict, other: str) -> None:
    """Per configuration: best val_acc over seeds of fp32 and `other`, and their paired difference."""
    searched = [k for k in ("setting", "model", "num_blocks", "skip")
                if k in runs["fp32"] and runs["fp32"][k].nunique() > 1]
    print(f"| {' | '.join(searched)} | seeds | fp32 best val_acc | {other} best val_acc | {other} − fp32, "
          "paired | within the seeds' spread |")
    print("|" + "---|" * (len(searched) + 5))
    merged = runs["fp32"].merge(runs[other], on=[*searched, "seed"], suffixes=("_fp32", "_other"))
    for key, group in merged.groupby(searched):
        a, b = group["best_val_acc_fp32"], group["best_val_acc_other"]
        diff = b - a
        spread = max(a.std(), b.std())
        values = key if isinstance(key, tuple) else (key,)
        print(f"| {' | '.join(map(str, values))} | {len(group)} | {a.mean():.4f} ± {a.std():.4f} "
              f"| {b.mean():.4f} ± {b.std():.4f} | {diff.mean():+.4f} ± {diff.std():.4f} "
              f"| {'yes' if abs(diff.mean()) <= spread else 'NO'} |")


def retrain(trainable: str, params: dict) -> dict:
    """One trial's config trained in this process: (best val_acc, the precision it reported)."""
    from trainables.config import build
    from trainables.reporting import MemoryReporter

    reporter = MemoryReporter()
    if trainable.endswith("train_cnn"):
        fit_image_model(build(ImageConfig, params), reporter)
    else:
        fit_text_classifier(build(TextConfig, params), reporter)
    return {"best_val_acc": max(h["val_acc"] for h in reporter.history),
            "precision": reporter.history[-1]["precision"]}


def rerun(folder: str, precision: str, out: str) -> None:
    import json

    import pandas as pd

    from analysis.results import load_experiment
    from spaces import get_space

    exp = load_experiment(folder)
    trainable = get_space(json.loads((Path(folder) / "tunelab_plan.json").read_text())["space"]).trainable
    rows = []
    for i, trial in enumerate(exp.trials.itertuples()):
        params = json.loads((Path(trial.trial_dir) / "params.json").read_text())
        if i == 0:
            again = retrain(trainable, params)
            same = "identical" if again["best_val_acc"] == trial.best_val_acc else "DIFFERENT"
            print(f"trial {trial.trial_id} again in {again['precision']}: best val_acc "
                  f"{again['best_val_acc']} (stored {trial.best_val_acc}): {same}", flush=True)
        result = retrain(trainable, {**params, "precision": precision})
        rows.append({**params, **result})
        print(f"trial {trial.trial_id} in {result['precision']}: best val_acc {result['best_val_acc']:.4f} "
              f"(stored {trial.best_val_acc:.4f})", flush=True)
        Path(out).write_text(json.dumps(rows, indent=1))
    other = pd.DataFrame(rows)
    print_comparison({"fp32": exp.trials, precision: other}, precision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerun", metavar="EXPERIMENT")
    parser.add_argument("--precision", default="bf16", choices=("bf16", "fp32"))
    parser.add_argument("--out", default="precision_rerun.json")
    parser.add_argument("--compare", nargs=2, metavar=("FP32_EXPERIMENT", "BF16_EXPERIMENT"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of each way")
    parser.add_argument("--compile-precisions", default="fp32,bf16", help="the ways --compile compiles")
    parser.add_argument("--only", help="workloads whose name holds one of these (comma list): CNN, MiniLM, "
                        "n=5, qv8, ...")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.rerun:
        rerun(args.rerun, args.precision, args.out)
        return
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_line()}", flush=True)
    print(f"torch {torch.__version__}, {args.threads} thread(s), native bf16: {cpu_has_native_bf16()}, "
          f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    peaks: dict[str, list[float]] = {"bf16": [], "fp32": []}
    compiled = [(p, True) for p in args.compile_precisions.split(",")] if args.compile else []
    ways = [("fp32", False), ("bf16", False)] + compiled
    table = []
    for name, (cls, arg, unit) in workloads(args.only).items():
        seed_everything(0)
        runs = {}
        for precision, compiled in ways:
            rt = runtime(precision)
            way = cls(arg, compiled)
            _, warm_cpu = timed(lambda w=way, r=rt: w.steps(args.warmup, r))
            _, eval_first = timed(lambda w=way, r=rt: w.evaluate(r))
            _, eval_again = timed(lambda w=way, r=rt: w.evaluate(r))
            runs[(precision, compiled)] = {"way": way, "rt": rt, "wall": [], "cpu": [], "gflops": [],
                                           "warm": warm_cpu, "eval_extra": eval_first - eval_again}
            label = f"{precision}{' compiled' if compiled else ''}"
            print(f"warm-up: {name:24} {label}: {warm_cpu:.1f} CPU s for {args.warmup} steps, first "
                  f"evaluation {eval_first:.1f} CPU s (again {eval_again:.1f})", flush=True)
        for repeat in range(args.repeats):
            for precision, rate in matmul_peaks().items():
                peaks[precision].append(rate)
            for key, run in runs.items():
                done = [(0, 0.0)]
                wall, cpu = timed(lambda r=run, d=done: d.__setitem__(0, r["way"].steps(args.steps, r["rt"])))
                items, flops = done[0]
                run["wall"].append(items / wall)
                run["cpu"].append(items / cpu)
                run["gflops"].append(flops / cpu / 1e9)
                label = f"{key[0]}{' compiled' if key[1] else ''}"
                print(f"repeat {repeat}: {name:24} {label:14} {items / wall:8.1f} {unit}/s, "
                      f"{items / cpu:8.1f} per CPU second, {flops / cpu / 1e9:6.1f} GFLOP/s", flush=True)
        base = statistics.median(runs[("fp32", False)]["cpu"])
        for (precision, compiled), run in runs.items():
            per_cpu, per_wall = statistics.median(run["cpu"]), statistics.median(run["wall"])
            gflops = statistics.median(run["gflops"])
            item_flops = per_cpu and gflops / per_cpu
            row = [name, precision + (" + compile" if compiled else ""), f"{per_wall:.1f}", f"{per_cpu:.1f}",
                   f"{per_cpu / base:.2f}×", f"{item_flops:.3f}", f"{gflops:.1f}", "{bf16}", "{fp32}"]
            if compiled:
                plain = statistics.median(runs[(precision, False)]["cpu"])
                batch = run["way"].batch
                # the warm-up steps over what steady steps take, plus the eval graph's first pass
                compile_s = run["warm"] - args.warmup * batch / per_cpu + run["eval_extra"]
                saved_per_item = 1 / plain - 1 / per_cpu
                budget = DEMO_IMAGES if unit == "images" else DEMO_SENTENCES
                even = f"{compile_s / saved_per_item:,.0f}" if saved_per_item > 0 else "never"
                row.append(f"{compile_s:.0f} CPU s; pays off after {even} {unit} (demo trial: {budget:,})")
            table.append(row)
    peak = {precision: statistics.median(rates) for precision, rates in peaks.items()}
    print(f"\nCPU: {cpu_line()}; load {os.getloadavg()[0]:.1f} at the end")
    print(f"medians of {args.repeats} repeats × {args.steps} steps, {args.threads} thread(s); ratio per CPU "
          f"second against fp32 of the same workload; peaks: {PEAK_SIZE}³ matmul per CPU second, median of "
          f"{args.repeats}: bf16 {peak['bf16']:.0f}, fp32 {peak['fp32']:.0f} GFLOP/s")
    print("| workload | way | per wall s | per CPU s | ratio | GFLOP per item | GFLOP/s per CPU s "
          "| of bf16 peak | of fp32 peak | compile |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in table:
        gflops = float(row[6])
        row[7:9] = [f"{gflops / peak['bf16']:.0%}", f"{gflops / peak['fp32']:.0%}"]
        print("| " + " | ".join(row + [""] * (10 - len(row))) + " |")


if __name__ == "__main__":
    main()
