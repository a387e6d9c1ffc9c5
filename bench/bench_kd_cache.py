"""Teacher-logit cache: the kd grid with the shared cache against without it, in one run.

1. Wall time of the kd space's grid (12 cells + the baseline arm; smoke data, FIFO) through the real
   driver and Ray Tune, once with `cache_logits=false` (teacher forward on every batch of every
   trial) and once with a cold cache (the first trial of each (seed, epoch) fills it).
2. Per-epoch wall time of one KD trial against a plain student epoch (same data, in process):
   uncached, and reading a warm cache.

    python bench/bench_kd_cache.py [--teacher PATH] [--train-subset 512] [--rounds 2] [--repeats 3]

Without --teacher it first trains a smoke WideResNet14-2 teacher (`--space teachers --profile smoke`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

from search.options import build_plan, parse_args  # noqa: E402
from search.run import start_ray  # noqa: E402
from search.tuner import build_tuner  # noqa: E402


def run_search(argv: list[str]) -> float:
    plan = build_plan(parse_args(argv))
    started = time.perf_counter()
    build_tuner(plan).fit()
    return time.perf_counter() - started


def grid_wall_times(teacher: str, root: Path, train_subset: int, rounds: int) -> dict[str, float]:
    """Mean wall time of each arm. Rounds alternate the order (AB, BA, ...), so a machine whose load
    drifts during the run does not favour the arm that happens to run second."""
    common = ["--space", "kd", "--profile", "smoke", "--scheduler", "fifo", "--teacher", teacher,
              "--set", f"train_subset={train_subset}"]
    arms = {"uncached": ["--set", "cache_logits=false"], "cached": []}
    seconds: dict[str, list[float]] = {arm: [] for arm in arms}
    for r in range(rounds):
        for arm in (list(arms) if r % 2 == 0 else list(arms)[::-1]):
            # Each run gets its own storage, so the cached arm always starts from a cold cache.
            storage = ["--storage", str(root / f"{arm}{r}"), "--name", "grid"]
            seconds[arm].append(run_search([*common, *arms[arm], *storage]))
            print(f"round {r}: {arm} {seconds[arm][-1]:.1f} s", flush=True)
    return {arm: statistics.mean(values) for arm, values in seconds.items()}


def epoch_costs(teacher: str, root: Path, train_subset: int, epochs: int, repeats: int) -> dict[str, float]:
    """Median seconds per epoch of each way, the ways interleaved so machine load hits all alike."""
    from spaces.kd import KD
    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.kd import KDConfig, fit_kd
    from trainables.reporting import MemoryReporter

    base = {**KD.base_config("smoke"), "train_subset": train_subset, "epochs": epochs,
            "temperature": 5.0, "w_st": 1.0}
    student = {k: v for k, v in base.items() if k in ImageConfig.__dataclass_fields__}
    cache = str(root / "epoch_cache")
    fit_kd(KDConfig(**base, teacher=teacher, cache_dir=cache), MemoryReporter())  # warm the cache
    ways = {
        "plain student": lambda: fit_image_model(ImageConfig(**student), MemoryReporter()),
        "kd uncached": lambda: fit_kd(KDConfig(**base, teacher=teacher, cache_logits=False),
                                      MemoryReporter()),
        "kd cached (warm)": lambda: fit_kd(KDConfig(**base, teacher=teacher, cache_dir=cache),
                                           MemoryReporter()),
    }
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, run in ways.items():
            started = time.perf_counter()
            run()
            seconds[name].append((time.perf_counter() - started) / epochs)
    return {name: statistics.median(values) for name, values in seconds.items()}


def smoke_teacher(root: Path) -> str:
    from spaces.kd import find_teacher

    run_search(["--space", "teachers", "--profile", "smoke", "--set", "model=wrn14_2",
                "--storage", str(root / "teachers"), "--name", "teachers__smoke"])
    return str(find_teacher(root / "teachers", "fashion_mnist"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", help="teacher checkpoint (default: train a smoke WRN14-2 first)")
    p.add_argument("--train-subset", type=int, default=512, help="student training images (smoke: 512)")
    p.add_argument("--epoch-subset", type=int, default=2048, help="images of the per-epoch comparison")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the per-epoch comparison")
    p.add_argument("--rounds", type=int, default=2, help="grid runs per arm, order alternating (ABBA)")
    p.add_argument("--part", choices=("all", "grid", "epoch"), default="all", help="run one part only")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_kd_") as tmp:
        root = Path(tmp)
        if args.part != "epoch" or not args.teacher:
            start_ray(None)
        teacher = args.teacher or smoke_teacher(root)
        print(f"\nteacher: {teacher}")
        if args.part != "epoch":
            walls = grid_wall_times(teacher, root, args.train_subset, args.rounds)
            print(f"kd grid, 12 cells + baseline, {args.train_subset} training images, 2 epochs, FIFO, "
                  f"{os.cpu_count()} CPUs, mean of {args.rounds} runs per arm")
            print(f"  uncached      {walls['uncached']:7.1f} s")
            print(f"  shared cache  {walls['cached']:7.1f} s   "
                  f"speed-up {walls['uncached'] / walls['cached']:.2f}x")
        if args.part != "grid":
            costs = epoch_costs(teacher, root, args.epoch_subset, 2, args.repeats)
            plain = costs["plain student"]
            print(f"per epoch, {args.epoch_subset} images, median of {args.repeats}:")
            for name, value in costs.items():
                print(f"  {name:18} {value:6.2f} s   {value / plain:.2f}x plain")


if __name__ == "__main__":
    main()
