"""How many small-CNN trials should share one GPU? k concurrent trials of the trainable on one device.

    python bench/bench_gpu_packing.py [--packing 1,2,4,8] [--epochs 2] [--num-blocks 1]
        [--via auto|processes|ray]

Each k runs k identical trials of the degradation study's CNN (16 filters, bf16 autocast, channels_last)
on the full Fashion-MNIST split side by side, and reports the aggregate training throughput (images
summed over the trials, over the wall time from the first start to the last end) with its ratio to
k = 1. That ratio is what the spaces' `gpu` fraction (0.25 for the small CNNs) bets on.

`--via processes` (the default where Ray is not installed, as on a bare GPU machine): k spawned
processes, each loads the data onto the GPU, warms up, waits at a barrier, then trains the same epochs
through trainables.loop.train_epoch. `--via ray`: k Tune trials of the trainable itself, each granted
1/k of the GPU. bench/gpu_check.py runs this as its packing part; it also holds `cpu_trial_touches_cuda`,
the GPU-accounting check. Needs a CUDA GPU unless `--dry-run` (CPU, toy sizes).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _trial(rank: int, spec: dict, barrier, results) -> None:
    """One packed trial, in its own process: the trainable's epoch loop on the carried data."""
    from bench.gpu_carry import load_carried_images
    from trainables.cnn import ImageConfig, seed_run
    from trainables.data.augment import train_batches
    from trainables.loop import Normalize, setup_runtime, train_epoch

    rt = setup_runtime(spec["threads"], [0] if spec["cuda"] else ())
    data = load_carried_images(Path(spec["carry"]))
    train = data.train.head(spec["images"]).to(rt.device)
    cfg = ImageConfig(model="cnn", num_blocks=spec["num_blocks"], seed=rank)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    run = seed_run(cfg, None, rt, normalize)
    warm = itertools.islice(train_batches(train, cfg.batch_size, rank, 99, True, data.info.flip), 5)
    train_epoch(run.model, run.optimizer, warm, normalize, rt)  # cuDNN autotuning, allocator warm-up
    barrier.wait()
    start, images = time.time(), 0
    for epoch in range(spec["epochs"]):
        batches = train_batches(train, cfg.batch_size, rank, epoch, True, data.info.flip)
        images += int(train_epoch(run.model, run.optimizer, batches, normalize, rt)["samples"])
    results.put({"rank": rank, "start": start, "end": time.time(), "images": images})


def collect(results, procs: list, n: int, timeout: float) -> list[dict]:
    """n results from child processes; fails at once when a child died without sending its own."""
    rows: list[dict] = []
    deadline = time.monotonic() + timeout
    while len(rows) < n:
        try:
            rows.append(results.get(timeout=2))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise RuntimeError(f"a child process failed (exit codes {dead}) or timed out") from None
    return rows


def pack_processes(k: int, spec: dict) -> dict:
    """k trials in k spawned processes, started together at a barrier."""
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    barrier, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_trial, args=(rank, spec, barrier, results)) for rank in range(k)]
    for p in procs:
        p.start()
    rows = collect(results, procs, k, spec["timeout"])
    for p in procs:
        p.join()
    wall = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    per_trial = [r["images"] / (r["end"] - r["start"]) for r in rows]
    return {"k": k, "via": "processes", "images": sum(r["images"] for r in rows), "wall_s": wall,
            "img_s": sum(r["images"] for r in rows) / wall, "per_trial_img_s": sum(per_trial) / k}


def pack_ray(k: int, spec: dict) -> dict:
    """k Tune trials of trains_cnn, each granted 1/k GPU (needs Ray and a GPU)."""
    from ray import tune

    from trainables.cnn import train_cnn

    config = {"model": "cnn", "num_blocks": spec["num_blocks"], "epochs": spec["epochs"],
              "train_subset": spec["images"], "cpus": spec["threads"],
              "seed": tune.grid_search(list(range(k)))}
    trainable = tune.with_resources(train_cnn, {"cpu": spec["threads"], "gpu": 1.0 / k})
    with tempfile.TemporaryDirectory() as storage:
        tuner = tune.Tuner(trainable, param_space=config, tune_config=tune.TuneConfig(reuse_actors=False),
                           run_config=tune.RunConfig(name=f"pack{k}", storage_path=storage, verbose=0))
        grid = tuner.fit()
    if any(r.error for r in grid):
        raise RuntimeError(f"k={k}: a trial failed: {next(r.error for r in grid if r.error)}")
    frames = [r.metrics_dataframe for r in grid]
    # Training throughput of each trial per epoch (evaluation and reports excluded), summed: the trials
    # ran side by side.
    per_trial = [float(f["samples_per_s"].median()) for f in frames]
    return {"k": k, "via": "ray", "images": sum(len(f) for f in frames) * spec["train_images"],
            "img_s": sum(per_trial), "per_trial_img_s": sum(per_trial) / k,
            "wall_s": max(float(f["time_total_s"].max()) for f in frames)}


def packing(ks: list[int], spec: dict, via: str) -> list[dict]:
    """The packing table: one row per k, with the ratio to the first k."""
    if via == "ray":
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_gpus=1 if spec["cuda"] else 0, include_dashboard=False, logging_level="ERROR")
    try:
        rows = [(pack_ray if via == "ray" else pack_processes)(k, spec) for k in ks]
    finally:
        if via == "ray":
            ray.shutdown()
    for row in rows:
        row["ratio"] = row["img_s"] / rows[0]["img_s"]
    return rows


def _cpu_trial(spec: dict, results) -> None:
    """A trial granted no GPU (the trainable's own rule: no granted ids, the CPU), a few steps long,
    reporting its pid and whether its process ever created a CUDA context."""
    from bench.gpu_carry import load_carried_images
    from trainables.cnn import ImageConfig, seed_run
    from trainables.data.augment import train_batches
    from trainables.loop import Normalize, setup_runtime, train_epoch, training_state

    rt = setup_runtime(1, ())
    data = load_carried_images(Path(spec["carry"]))
    cfg = ImageConfig(model="cnn", num_blocks=1)
    normalize = Normalize(data.info.mean, data.info.std, rt)
    run = seed_run(cfg, None, rt, normalize)
    results.put({"pid": os.getpid(), "started": True})
    train = data.train.head(spec["cpu_trial_images"])
    for epoch in range(2):
        batches = train_batches(train, cfg.batch_size, 0, epoch, True, data.info.flip)
        train_epoch(run.model, run.optimizer, batches, normalize, rt)
        training_state(epoch, run.model, run.optimizer, run.scheduler, {})
    results.put({"pid": os.getpid(), "cuda_initialized": torch.cuda.is_initialized()})


def gpu_pids() -> set[int] | None:
    """Pids nvidia-smi lists as compute processes; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout
    return {int(line) for line in out.split() if line.strip().isdigit()}


def cpu_trial_touches_cuda(spec: dict) -> dict:
    """GPU accounting without Ray: while a 0-GPU trial trains, is its pid among nvidia-smi's compute
    processes, and did its process initialise CUDA? This process holds a CUDA context on the GPU
    meanwhile (the positive control: nvidia-smi must list it)."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    child = ctx.Process(target=_cpu_trial, args=(spec, results))
    child.start()
    pid = collect(results, [child], 1, spec["timeout"])[0]["pid"]
    seen: set[int] = set()
    listed = gpu_pids()
    while child.is_alive() and listed is not None:
        seen |= listed
        time.sleep(0.5)
        listed = gpu_pids()
    final = collect(results, [child], 1, spec["timeout"])[0]
    child.join()
    smi = gpu_pids() is not None
    return {"via": "processes (no Ray)", "cpu_trial_pid": pid,
            "cuda_initialized_in_cpu_trial": final["cuda_initialized"],
            "nvidia_smi": smi, "cpu_trial_listed_by_nvidia_smi": (pid in seen) if smi else None,
            "control_listed_by_nvidia_smi": (os.getpid() in seen) if smi else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--packing", default="1,2,4,8", help="trials per GPU to compare")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--num-blocks", type=int, default=1)
    p.add_argument("--via", choices=("auto", "processes", "ray"), default="auto")
    p.add_argument("--carry", default="", help="the folder bench/gpu_check.py --prepare wrote")
    p.add_argument("--dry-run", action="store_true", help="CPU, toy sizes")
    args = p.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        print("error: bench/bench_gpu_packing.py needs a CUDA GPU (or --dry-run)", file=sys.stderr)
        return 2
    from bench.gpu_carry import carry_dir, read_manifest

    carry = Path(args.carry) if args.carry else carry_dir()
    if not (carry / "manifest.json").is_file():
        print(f"error: no carried data in {carry}: run bench/gpu_check.py --prepare", file=sys.stderr)
        return 2
    via = ("ray" if ray_available() else "processes") if args.via == "auto" else args.via
    images = 256 if args.dry_run else 0
    spec = {"carry": str(carry), "cuda": not args.dry_run, "epochs": args.epochs, "images": images,
            "train_images": images or read_manifest(carry)["images"]["train"], "num_blocks": args.num_blocks,
            "threads": 1, "timeout": 600}
    for row in packing([int(k) for k in args.packing.split(",")], spec, via):
        print(f"k={row['k']} via {row['via']}: {row['img_s']:,.0f} images/s in all, "
              f"{row['per_trial_img_s']:,.0f} per trial, {row['ratio']:.2f}× k=1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
