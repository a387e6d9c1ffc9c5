"""Search-level benchmark through the real driver:

(c) moved to bench/bench_asha_fidelity.py (successive halving against the full grid, over repeats).
(d) Tune overhead: wall time of an 8-trial smoke grid against the sum of its trials' own training
    time divided by the concurrency.

    .venv/bin/python bench/bench_tune.py
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


def overhead(storage: Path) -> None:
    seconds = search(storage, "overhead", "--space", "degradation", "--profile", "smoke",
                     "--scheduler", "fifo", "--set", "num_blocks=1,2,5,7")
    trials = load_experiment(storage / "overhead").trials
    assert len(trials) == 8, len(trials)
    training = trials["final_time_total_s"].sum() / CONCURRENCY
    print(f"(d) 8-trial smoke grid: {seconds:.1f} s wall (driver process, incl. ray.init) vs "
          f"{training:.1f} s of trial training / {CONCURRENCY} concurrent = {seconds / training:.2f}×")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    with tempfile.TemporaryDirectory() as folder:
        overhead(Path(folder))


if __name__ == "__main__":
    main()
