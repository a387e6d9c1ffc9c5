"""Fidelity of successive halving against the full grid, in one run:

    .venv/bin/python bench/bench_asha_fidelity.py [--images 2048] [--epochs 6] [--repeats 3]
    .venv/bin/python bench/bench_asha_fidelity.py --analyse DIR    # replay the curves kept in DIR

Each repeat trains the degradation grid (demo settings) × 3 seeds in lockstep as FIFO would: every
configuration to the full budget, with a different seed set per repeat, and with two learning-rate
decays (`lr_gamma` 0.95, the reference's nearly constant rate, and 0.7, which anneals within the
budget). The trials run in this script's own worker processes (2, one torch thread each, as the
driver runs 2 one-CPU trials on 2 cores) through the same trainable the driver runs, so the curves are
those a FIFO search gives (tests/test_lockstep.py: per-seed results equal runs alone), without Ray's
start-up, which on a loaded machine can time out.

The halving scheduler's rung decision is synchronous and deterministic (search/halving.py), so what
it does is replayed exactly on the FIFO curves, for every grace period, reduction factor and smoothing
at once. For each setting it reports:

- epochs: the fraction of FIFO's epochs it trains;
- regret: the full-budget accuracy (mean over the seeds of each seed's best-epoch val_acc, from the
  FIFO runs) of FIFO's best configuration minus that of the configuration halving picks;
- agree: in how many repeats both pick the same configuration.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.halving import successive_halving  # noqa: E402

GAMMAS = (0.95, 0.7)
WORKERS = 2  # 2 cores, 1 thread per trial


def train(config: dict) -> dict:
    """One lockstep trial to the full budget; its reports."""
    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.report import MemoryReporter

    reporter = MemoryReporter()
    fit_image_model(ImageConfig(**config), reporter)
    return {"config": config, "history": reporter.history}


def run_fifo(storage: Path, repeats: int, seeds: int, images: int, val: int, epochs: int) -> None:
    """Every (lr_gamma, seed set, configuration) trial not yet in `storage`, the reference decay's
    first, each written as it ends (an interrupted run resumes, and --analyse reads what is there)."""
    from spaces import get_space

    space = get_space("degradation")
    base = {**space.base_config("demo"), "train_subset": images, "val_subset": val, "epochs": epochs,
            "seeds": seeds, "cpus": 1}
    configs = [{**base, "lr_gamma": g, "seed": r * seeds, "num_blocks": n, "skip": k}
               for g in GAMMAS for r in range(repeats) for n, k in itertools.product(*space.grid.values())]
    todo = [c for c in configs if not trial_file(storage, c).is_file()]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        for n, trial in enumerate(pool.imap(train, todo), 1):
            trial_file(storage, trial["config"]).write_text(json.dumps(trial))
            print(f"{n}/{len(todo)} trials, {time.perf_counter() - start:.0f} s", flush=True)


def trial_file(storage: Path, c: dict) -> Path:
    return storage / f"g{c['lr_gamma']}_seed{c['seed']}_n{c['num_blocks']}_skip{c['skip']}.json"


def seed_curves(storage: Path, metric: str = "val_acc") -> dict:
    """seed set -> (lr_gamma, num_blocks, skip) -> seed -> metric per epoch, from the lockstep trials."""
    curves: dict = {}
    for path in sorted(storage.glob("g*_seed*_n*_skip*.json")):
        trial = json.loads(path.read_text())
        c = trial["config"]
        key = (float(c["lr_gamma"]), int(c["num_blocks"]), bool(c["skip"]))
        for seed in range(c["seed"], c["seed"] + c["seeds"]):
            column = f"{metric}_seed{seed}" if c["seeds"] > 1 else metric
            curves.setdefault(c["seed"], {}).setdefault(key, {})[seed] = [h[column] for h in trial["history"]]
    return curves


def replay(curves: dict, gamma: float, epochs: int, grace: int, rf: int, smoothing: float) -> dict:
    cells = {c[1:]: seeds for c, seeds in curves.items() if c[0] == gamma}
    full = {c: float(np.mean([max(v[:epochs]) for v in seeds.values()])) for c, seeds in cells.items()}
    mean_curve = {c: np.mean([v[:epochs] for v in seeds.values()], axis=0).tolist()
                  for c, seeds in cells.items()}
    halving = successive_halving(mean_curve, grace, rf, epochs, smoothing)
    fifo_best = max(full, key=full.get)
    pick = max(halving.finished, key=full.get)
    return {"fraction": halving.reports / (len(cells) * epochs), "regret": full[fifo_best] - full[pick],
            "agree": pick == fifo_best, "fifo_best": fifo_best, "pick": pick}


def analyse(storage: Path, epochs: int) -> list[dict]:
    by_seeds = seed_curves(storage)
    grid = 6  # configurations of the degradation grid
    print(f"FIFO curves in {storage}: " + ", ".join(
        f"lr_gamma {g}: seed sets {[s for s, c in by_seeds.items() if sum(k[0] == g for k in c) == grid]}"
        for g in GAMMAS))
    for gamma in GAMMAS:
        for seed, c in by_seeds.items():
            full = {k[1:]: np.mean([max(v[:epochs]) for v in s.values()])
                    for k, s in c.items() if k[0] == gamma}
            if len(full) == grid:
                ranked = ", ".join(f"{k} {v:.4f}" for k, v in sorted(full.items(), key=lambda kv: -kv[1]))
                print(f"  lr_gamma {gamma}, seeds from {seed}: {ranked}")
    rows = []
    for gamma in GAMMAS:
        complete = [c for c in by_seeds.values() if sum(k[0] == gamma for k in c) == grid]
        if not complete:
            continue
        for rf in (2, 3, 6):
            for grace in (1, 2, 3):
                for smoothing in (0.0, 0.3, 0.5, 0.7):
                    results = [replay(c, gamma, epochs, grace, rf, smoothing) for c in complete]
                    rows.append({"lr_gamma": gamma, "reduction_factor": rf, "grace": grace,
                                 "smoothing": smoothing,
                                 "fraction": float(np.mean([r["fraction"] for r in results])),
                                 "regret_mean": float(np.mean([r["regret"] for r in results])),
                                 "regret_max": float(np.max([r["regret"] for r in results])),
                                 "agree": sum(r["agree"] for r in results), "repeats": len(results),
                                 "picks": [str(r["pick"]) for r in results]})
    print("lr_gamma | rf | grace | smoothing | epochs (of FIFO) | regret mean | regret max | same winner")
    for r in rows:
        print(f"{r['lr_gamma']} | {r['reduction_factor']} | {r['grace']} | {r['smoothing']} | "
              f"{r['fraction']:.2f} | {r['regret_mean']:.4f} | {r['regret_max']:.4f} | "
              f"{r['agree']}/{r['repeats']} {' '.join(r['picks'])}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--val", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", type=Path, help="keep the FIFO curves here (default: a new temp folder)")
    parser.add_argument("--analyse", type=Path, metavar="DIR", help="only replay the runs kept in DIR")
    parser.add_argument("--json", type=Path, help="write the replay table here")
    args = parser.parse_args()
    if args.analyse:
        rows = analyse(args.analyse, args.epochs)
    else:
        storage = args.storage or Path(tempfile.mkdtemp(prefix="asha_fidelity_"))
        storage.mkdir(parents=True, exist_ok=True)
        run_fifo(storage, args.repeats, args.seeds, args.images, args.val, args.epochs)
        rows = analyse(storage, args.epochs)
        print(f"curves kept in {storage}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
