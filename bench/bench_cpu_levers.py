"""Where the bf16 CPU step's time goes, and what the levers the profile points at buy on the demo.

    python bench/bench_cpu_levers.py --profile            # torch.profiler: CNN n=5 and MiniLM qv8 steps
    python bench/bench_cpu_levers.py [--images 2048 --val 512 --repeats 3 --seeds 0,1,2]

`--profile` prints the top operators by self CPU time of 8 bf16 training steps of the degradation CNN
(n = 5, skip, batch 64, channels_last) and of 4 steps of MiniLM LoRA qv8 (batch 32), one thread.

The default run times the degradation demo's work (its six configurations, batch 64, lr 0.02, bf16
autocast, one thread as a demo trial has: one epoch of training, then evaluation of the validation
images, train:val as the demo's 8192:2048), once per way and seed, ways interleaved within each repeat
so load on the machine hits them alike, per CPU second of this process:

- `before`: the trainable as it was (BasicBlock's ReLUs and residual add out of place), evaluation in
  batches of 512;
- `kept`: the trainable as it is (in place: the same values, fewer allocations);
- `kept + fused eval`: conv/BN folded for evaluation (torch.nn.utils.fusion), not kept: see BENCHMARKS;
- `kept + eval batch 128` and `2048`: other evaluation batch sizes, not kept;
- `fp32 + oneDNN bf16 convs`: no autocast, fp32 tensors throughout, oneDNN told to compute the
  convolutions in bf16 (torch.backends.mkldnn.conv.fp32_precision): no autocast casts, fp32 BN/ReLU.

It prints each way's CPU seconds, its speed-up over `before`, and, per configuration and seed, whether
its training loss and val_acc equal `before`'s (a lever that changes numbers must show accuracy unchanged
over the seeds; one that does not, must be bit-identical).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.fusion import fuse_conv_bn_eval  # noqa: E402

from bench.machine import cpu_line, cpu_seconds, matmul_rate  # noqa: E402
from trainables.cnn import ImageConfig, build_model  # noqa: E402
from trainables.data.augment import train_batches  # noqa: E402
from trainables.data.images import load_images  # noqa: E402
from trainables.loop import Normalize, Runtime, predict, seed_everything, train_epoch  # noqa: E402
from trainables.models.vision import BasicBlock  # noqa: E402

KEPT_FORWARD = BasicBlock.forward


def before_forward(self: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    """BasicBlock.forward before this change (commit 2f5e29e and earlier)."""
    out = torch.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    if self.shortcut is not None:
        out = out + self.shortcut(x)
    return torch.relu(out)


def fused_for_eval(model: nn.Module) -> nn.Module:
    """A copy of a StagedCNN with every BatchNorm folded into the conv before it (eval mode only)."""
    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        if isinstance(block, BasicBlock):
            block.conv1, block.bn1 = fuse_conv_bn_eval(block.conv1, block.bn1), nn.Identity()
            block.conv2, block.bn2 = fuse_conv_bn_eval(block.conv2, block.bn2), nn.Identity()
            if isinstance(block.shortcut, nn.Sequential):
                block.shortcut = fuse_conv_bn_eval(block.shortcut[0], block.shortcut[1])
    fused.stem = nn.Sequential(fuse_conv_bn_eval(fused.stem[0], fused.stem[1]), fused.stem[2])
    return fused


WAYS = {  # name: (block forward, eval batch, fused eval, autocast dtype, oneDNN fp32 conv precision)
    "before": (before_forward, 512, False, torch.bfloat16, "none"),
    "kept": (KEPT_FORWARD, 512, False, torch.bfloat16, "none"),
    "kept + fused eval": (KEPT_FORWARD, 512, True, torch.bfloat16, "none"),
    "kept + eval batch 128": (KEPT_FORWARD, 128, False, torch.bfloat16, "none"),
    "kept + eval batch 2048": (KEPT_FORWARD, 2048, False, torch.bfloat16, "none"),
    "fp32 + oneDNN bf16 convs": (KEPT_FORWARD, 512, False, None, "bf16"),
}


def demo_epoch(way: str, num_blocks: int, skip: bool, seed: int, data, sizes: tuple[int, int]) -> dict:
    forward, eval_batch, fused, amp, conv_precision = WAYS[way]
    BasicBlock.forward = forward
    torch.backends.mkldnn.conv.fp32_precision = conv_precision
    rt = Runtime(torch.device("cpu"), amp, channels_last=True)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    train, val = data.train.head(sizes[0]), data.val.head(sizes[1])
    start = cpu_seconds()
    seed_everything(seed)
    cfg = ImageConfig(model="cnn", num_blocks=num_blocks, skip=skip, batch_size=64, lr=0.02, seed=seed)
    model = build_model(cfg).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    batches = train_batches(train, 64, seed, 0, True, data.info.flip)
    stats = train_epoch(model, optimizer, batches, normalize, rt)
    logits = predict(fused_for_eval(model) if fused else model, val, normalize, rt, eval_batch)
    seconds = cpu_seconds() - start
    BasicBlock.forward = KEPT_FORWARD
    torch.backends.mkldnn.conv.fp32_precision = "none"
    val_acc = float((logits.argmax(1) == val.y).float().mean())
    return {"cpu_s": seconds, "loss": stats["loss"], "val_acc": val_acc}


def compare(args: argparse.Namespace) -> None:
    data = load_images("fashion_mnist")
    seeds = [int(s) for s in args.seeds.split(",")]
    configs = list(itertools.product((1, 5, 7), (False, True)))
    ways = [w for w in WAYS if w == "before" or not args.ways or w in args.ways.split(",")]
    totals = {w: [] for w in ways}
    results: dict = {}
    for way, (n, skip) in itertools.product(ways, configs):  # warm-up: oneDNN primitives for every shape
        demo_epoch(way, n, skip, 0, data, (128, args.val))
    for repeat in range(args.repeats):
        spent = dict.fromkeys(ways, 0.0)
        for i, ((n, skip), seed) in enumerate(itertools.product(configs, seeds)):
            for way in ways[i % len(ways):] + ways[:i % len(ways)]:  # each way takes each place in turn
                r = demo_epoch(way, n, skip, seed, data, (args.images, args.val))
                spent[way] += r["cpu_s"]
                results[(way, n, skip, seed)] = r
        for way in ways:
            totals[way].append(spent[way])
        print(f"repeat {repeat}, load {os.getloadavg()[0]:.1f}: " +
              ", ".join(f"{w} {s:.1f} CPU s" for w, s in spent.items()), flush=True)
    base = statistics.median(totals["before"])
    print(f"\nCPU: {cpu_line()}; torch {torch.__version__}; load {os.getloadavg()[0]:.1f} at the end")
    print(f"the demo's 6 configurations × seeds {args.seeds}, one epoch of {args.images} images + evaluation "
          f"of {args.val}, bf16, 1 thread; median of {args.repeats} repeats, CPU seconds of this process:")
    print("| way | CPU s | speed-up over before | same loss and val_acc as before "
          "| val_acc, mean (range of Δ) |")
    print("|---|---|---|---|---|")
    for way in ways:
        keys = [(n, s, seed) for (n, s) in configs for seed in seeds]
        same = sum(results[(way, *k)]["loss"] == results[("before", *k)]["loss"]
                   and results[(way, *k)]["val_acc"] == results[("before", *k)]["val_acc"] for k in keys)
        accs = [results[(way, *k)]["val_acc"] for k in keys]
        deltas = [results[(way, *k)]["val_acc"] - results[("before", *k)]["val_acc"] for k in keys]
        cpu = statistics.median(totals[way])
        print(f"| {way} | {cpu:.1f} | {base / cpu:.3f}× | {same}/{len(keys)} | {statistics.mean(accs):.4f} "
              f"({min(deltas):+.4f} to {max(deltas):+.4f}) |")


def profile() -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from bench.bench_precision import CNNWorkload, TextWorkload, runtime

    print(f"CPU: {cpu_line()}; torch {torch.__version__}; load {os.getloadavg()[0]:.1f}")
    rt = runtime("bf16")
    for title, way, steps in (("CNN n=5 plain, batch 64", CNNWorkload(5, False), 8),
                              ("MiniLM qv8, batch 32", TextWorkload("qv8", False), 4)):
        way.steps(2, rt)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            way.steps(steps, rt)
        print(f"\n{title}, bf16, {steps} steps, 1 thread, load {os.getloadavg()[0]:.1f}:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
        if isinstance(way, CNNWorkload):
            conv_share(prof, steps * way.step_flops)


def conv_share(prof, flops: float) -> None:
    """The convolutions' share of the profiled time and their rate against a bf16 matmul measured now:
    the headroom left to a CPU step whose counted FLOPs are all convolutions."""
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events
               if e.key in ("aten::mkldnn_convolution", "aten::convolution_backward"))
    peak = matmul_rate(torch.bfloat16, torch.device("cpu"), 2048, 3)["gflops_cpu"]
    rate = flops / (conv / 1e6) / 1e9
    print(f"convolutions: {conv / total:.0%} of the self CPU time, {rate:.0f} GFLOP/s on the step's "
          f"{flops / 1e9:.1f} counted GFLOP = {rate / peak:.0%} of a bf16 2048³ matmul now "
          f"({peak:.0f} GFLOP/s per CPU s); everything else is {1 - conv / total:.0%}, so removing all of "
          f"it would make the step at most {total / conv:.2f}× faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--val", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ways", default="", help=f"comma list of: {', '.join(WAYS)} (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.profile:
        profile()
    else:
        compare(args)


if __name__ == "__main__":
    main()
