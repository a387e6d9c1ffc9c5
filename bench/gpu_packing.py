"""How many small-CNN trials should share one GPU? Runs k = 1, 2, 4 concurrent trials per GPU.

    python bench/gpu_packing.py [--epochs 3] [--model cnn --num-blocks 1]

Each k runs k identical trials of the degradation study's small CNN on full Fashion-MNIST, each
requesting 1/k of one GPU, and reports the aggregate throughput (images/s summed over the trials
while they train, and over the wall clock including actor start-up) with its ratio to k = 1.
Needs a CUDA GPU; prints one line and exits 2 without one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def run_packed(k: int, args: argparse.Namespace, cpus: int, storage: str) -> dict:
    from ray import tune

    from trainables.cnn import train_cnn

    config = {"model": args.model, "num_blocks": args.num_blocks, "num_filters": 16,
              "epochs": args.epochs, "cpus": cpus, "seed": tune.grid_search(list(range(k)))}
    trainable = tune.with_resources(train_cnn, {"cpu": cpus, "gpu": 1.0 / k})
    tuner = tune.Tuner(trainable, param_space=config,
                       tune_config=tune.TuneConfig(reuse_actors=False),
                       run_config=tune.RunConfig(name=f"pack{k}", storage_path=storage, verbose=0))
    started = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - started
    frames = [r.metrics_dataframe for r in grid]
    if any(r.error for r in grid):
        raise SystemExit(f"k={k}: a trial failed: {next(r.error for r in grid if r.error)}")
    # Training throughput of each trial, per epoch, summed over the trials that ran side by side.
    per_trial = [float(f["samples_per_s"].median()) for f in frames]
    images = sum(len(f) for f in frames) * args.train_images  # one row per trained epoch
    return {"k": k, "train_img_s": sum(per_trial), "per_trial_img_s": sum(per_trial) / k,
            "wall_img_s": images / wall, "wall_s": wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--model", default="cnn")
    p.add_argument("--num-blocks", type=int, default=1)
    p.add_argument("--packing", default="1,2,4", help="trials per GPU to compare")
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("error: bench/gpu_packing.py needs a CUDA GPU", file=sys.stderr)
        return 2
    import ray

    from trainables.data.images import load_images

    args.train_images = len(load_images("fashion_mnist", "", False).train)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_gpus=1, include_dashboard=False, logging_level="ERROR")
    total_cpus = int(ray.cluster_resources()["CPU"])
    packing = [int(k) for k in args.packing.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for k in packing:
            rows.append(run_packed(k, args, max(1, total_cpus // max(packing)), storage))
            print(f"k={k} done in {rows[-1]['wall_s']:.0f} s", flush=True)
    base = rows[0]
    print(f"\n{torch.cuda.get_device_name(0)}, {args.model} n={args.num_blocks}, {args.epochs} epochs on "
          f"{args.train_images} Fashion-MNIST images, {max(1, total_cpus // max(packing))} CPUs per trial")
    print(f"{'trials/GPU':>10} {'train img/s (sum)':>18} {'per trial':>10} {'wall img/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['k']:>10} {r['train_img_s']:>18,.0f} {r['per_trial_img_s']:>10,.0f} "
              f"{r['wall_img_s']:>11,.0f} {r['train_img_s'] / base['train_img_s']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
