"""Search-level benchmarks, each a pair of real searches through the driver in this one run:

(c) ASHA vs FIFO on the degradation grid with the same budget and seed: the fraction of epochs ASHA
    trained, and whether both pick the same best configuration.
(d) Tune overhead: wall time of an 8-trial smoke grid against the sum of its trials' own training
    time divided by the concurrency.

    .venv/bin/python bench/bench_tune.py [--images 2048] [--epochs 6] [--seeds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from analysis.results import load_experiment

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2  # 2 cores, 1 CPU per trial


def search(storage: Path, name: str, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "search/run.py"), "--storage", str(storage),
                    "--name", name, *args], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def asha_vs_fifo(storage: Path, images: int, epochs: int, seeds: int) -> None:
    common = ["--space", "degradation", "--profile", "demo", "--max-epochs", str(epochs),
              "--seeds", str(seeds), "--set", f"train_subset={images}", "--set", "val_subset=1024"]
    runs = {}
    for scheduler in ("asha", "fifo"):
        seconds = search(storage, scheduler, *common, "--scheduler", scheduler)
        trials = load_experiment(storage / scheduler).trials
        by_config = trials.groupby(["num_blocks", "skip"])["best_val_acc"].mean()
        best = tuple(v.item() for v in by_config.idxmax())  # numpy scalars -> plain (7, True)
        runs[scheduler] = (seconds, int(trials["epochs_run"].sum()), best, by_config.max())
    (a_s, a_ep, a_best, a_acc), (f_s, f_ep, f_best, f_acc) = runs["asha"], runs["fifo"]
    print(f"(c) degradation grid, {images} images, {epochs} epochs, {seeds} seeds "
          f"({6 * seeds} trials)")
    print(f"    FIFO: {f_ep} epochs in {f_s:.0f} s; best (num_blocks, skip) = {f_best} at {f_acc:.4f}")
    print(f"    ASHA: {a_ep} epochs in {a_s:.0f} s; best (num_blocks, skip) = {a_best} at {a_acc:.4f}")
    print(f"    ASHA used {a_ep / f_ep:.2f} of FIFO's epochs ({f_s / a_s:.2f}× less wall time); "
          f"same best configuration: {a_best == f_best}")


def overhead(storage: Path) -> None:
    seconds = search(storage, "overhead", "--space", "degradation", "--profile", "smoke",
                     "--scheduler", "fifo", "--set", "num_blocks=1,2,5,7")
    trials = load_experiment(storage / "overhead").trials
    assert len(trials) == 8, len(trials)
    training = trials["final_time_total_s"].sum() / CONCURRENCY
    print(f"(d) 8-trial smoke grid: {seconds:.1f} s wall (driver process, incl. ray.init) vs "
          f"{training:.1f} s of trial training / {CONCURRENCY} concurrent = {seconds / training:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--skip-asha", action="store_true", help="run only (d)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if not args.skip_asha:
            asha_vs_fifo(Path(folder), args.images, args.epochs, args.seeds)
        overhead(Path(folder))


if __name__ == "__main__":
    main()
