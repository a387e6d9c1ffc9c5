"""Fidelity of early stopping against the full grid: the FIFO curves, then every rule replayed on them.

    .venv/bin/python bench/bench_asha_fidelity.py --storage DIR      # train (2,048 / 1,024 images, 6 epochs)
    .venv/bin/python bench/bench_asha_fidelity.py --storage DIR --export bench/asha_fidelity_curves.json
    .venv/bin/python bench/bench_asha_fidelity.py --analyse bench/asha_fidelity_curves.json --json out.json

Each repeat trains the degradation grid (demo settings) × 3 seeds in lockstep as FIFO would: every
configuration to the full budget, with a different seed set per repeat, and with two learning-rate
decays (`lr_gamma` 0.95, the reference's nearly constant rate, and 0.7, which anneals within the
budget). The trials run in this script's own worker processes (2, one torch thread each, as the
driver runs 2 one-CPU trials on 2 cores) through the same trainable the driver runs, so the curves are
those a FIFO search gives (tests/test_lockstep.py: per-seed results equal runs alone), without Ray's
start-up, which on a loaded machine can time out.

The synchronous rules (analysis/rungs.py: successive halving, significance halving) decide on the
curves alone, so what `--scheduler halving` and `--scheduler significance` do is replayed exactly on
the FIFO curves, for every setting at once. For each rule, setting and `lr_gamma` arm it reports:

- epochs_fraction: the share of FIFO's epochs it trains;
- regret: the full-budget accuracy of FIFO's winner minus that of the configuration the rule keeps to
  the end and crowns, each as every tunelab table defines "best" (the best epoch of the mean over
  seeds, from the FIFO curves);
- same_winner: in how many repeats both crown the same configuration, and tied_with_fifo_winner: in
  how many the crowned one is statistically tied with FIFO's (Welch, p ≥ 0.05; context, not a target).
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
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.rungs import significance_halving, successive_halving  # noqa: E402

GAMMAS = (0.95, 0.7)
WORKERS = 2  # 2 cores, 1 thread per trial


def train(config: dict) -> dict:
    """One lockstep trial to the full budget; its reports."""
    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.reporting import MemoryReporter

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
    if not (storage / "PROVENANCE.json").is_file():
        (storage / "PROVENANCE.json").write_text(json.dumps(machine(), indent=1))
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        for n, trial in enumerate(pool.imap(train, todo), 1):
            trial_file(storage, trial["config"]).write_text(json.dumps(trial))
            print(f"{n}/{len(todo)} trials, {time.perf_counter() - start:.0f} s", flush=True)


def machine() -> dict:
    """What made the curves: bf16 rounding differs between CPU kinds, so the curves name theirs."""
    import platform
    import subprocess

    import torch

    from trainables.precision import resolve_precision

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"commit": commit, "cpu": cpu, "torch": torch.__version__,
            "precision": resolve_precision("auto", torch.device("cpu")), "date": time.strftime("%Y-%m-%d")}


def trial_file(storage: Path, c: dict) -> Path:
    return storage / f"g{c['lr_gamma']}_seed{c['seed']}_n{c['num_blocks']}_skip{c['skip']}.json"


def seed_curves(storage: Path, metric: str = "val_acc") -> dict:
    """seed set -> (lr_gamma, num_blocks, skip) -> [each seed's metric per epoch], from the lockstep
    trials in a folder of this script's runs, or from a curves file it exported (--export)."""
    if storage.is_file():
        record = json.loads(storage.read_text())
        curves: dict = {}
        for c in record["curves"]:
            key = (float(c["lr_gamma"]), int(c["num_blocks"]), bool(c["skip"]))
            curves.setdefault(c["seed_set"], {})[key] = c[metric]
        return curves
    curves = {}
    for path in sorted(storage.glob("g*_seed*_n*_skip*.json")):
        trial = json.loads(path.read_text())
        c = trial["config"]
        key = (float(c["lr_gamma"]), int(c["num_blocks"]), bool(c["skip"]))
        seeds = range(c["seed"], c["seed"] + c["seeds"])
        columns = [f"{metric}_seed{s}" if c["seeds"] > 1 else metric for s in seeds]
        curves.setdefault(c["seed"], {})[key] = [[h[col] for h in trial["history"]] for col in columns]
    return curves


def export(storage: Path, out: Path) -> None:
    """The FIFO curves of a run folder as one small JSON file (val_acc per seed and epoch, 4 decimals
    more than an accuracy on 1,024 images resolves), with the settings that made them."""
    trials = [json.loads(p.read_text()) for p in sorted(storage.glob("g*_seed*_n*_skip*.json"))]
    first = trials[0]["config"]
    record = {
        "made_by": "bench/bench_asha_fidelity.py",
        "settings": {k: first[k] for k in ("train_subset", "val_subset", "epochs", "seeds", "batch_size",
                                             "lr")},
        "provenance": json.loads((storage / "PROVENANCE.json").read_text())
        if (storage / "PROVENANCE.json").is_file() else {},
        "curves": [],
    }
    for seed_set, cells in sorted(seed_curves(storage).items()):
        for (gamma, n, skip), per_seed in sorted(cells.items()):
            record["curves"].append({"lr_gamma": gamma, "seed_set": seed_set, "num_blocks": n, "skip": skip,
                                     "val_acc": [[round(v, 6) for v in c] for c in per_seed]})
    out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"curves of {len(record['curves'])} lockstep trials -> {out} ({out.stat().st_size:,} bytes)")


def full_budget(per_seed: list[list[float]], epochs: int) -> float:
    """A configuration's full-budget accuracy as every tunelab table defines "best": the best epoch of
    its mean over seeds (one epoch for all seeds, a value the mean curve reached)."""
    return float(np.max(np.mean([c[:epochs] for c in per_seed], axis=0)))


def tied(a: list[list[float]], b: list[list[float]], epochs: int) -> bool:
    """Whether two configurations' full-budget accuracies are statistically tied: a two-sided Welch
    t-test over the seeds' values at each one's best epoch of the mean, p ≥ 0.05."""
    def at_best(per_seed):
        mean = np.mean([c[:epochs] for c in per_seed], axis=0)
        return [c[int(np.argmax(mean))] for c in per_seed]

    x, y = at_best(a), at_best(b)
    if x == y:
        return True
    return bool(stats.ttest_ind(x, y, equal_var=False).pvalue >= 0.05)


def replay(cells: dict, epochs: int, rule: str, grace: int, rf: int, smoothing: float,
           alpha: float | None) -> dict:
    """One rule on one repeat's curves (config -> per-seed curves): its share of FIFO's epochs, its
    regret against FIFO's winner, and whether its pick is FIFO's or statistically tied with it."""
    full = {c: full_budget(seeds, epochs) for c, seeds in cells.items()}
    if rule == "halving":
        mean_curve = {c: np.mean([v[:epochs] for v in seeds], axis=0).tolist() for c, seeds in cells.items()}
        halving = successive_halving(mean_curve, grace, rf, epochs, smoothing)
    else:
        halving = significance_halving({c: [v[:epochs] for v in seeds] for c, seeds in cells.items()},
                                       grace, rf, epochs, alpha, smoothing)
    fifo_best = max(full, key=full.get)
    pick = max(halving.finished, key=full.get)
    return {"fraction": halving.reports / (len(cells) * epochs), "regret": full[fifo_best] - full[pick],
            "agree": pick == fifo_best, "tied": tied(cells[pick], cells[fifo_best], epochs), "pick": pick}


RULES = [("halving", rf, grace, smoothing, None) for rf in (2, 3, 6) for grace in (1, 2, 3)
         for smoothing in (0.0, 0.3, 0.5, 0.7)]
RULES += [("significance", rf, grace, smoothing, alpha) for rf in (2, 3, 6) for grace in (1, 2, 3)
          for smoothing in (0.0, 0.5) for alpha in (0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)]


def analyse(storage: Path, epochs: int, seeds: int | None = None) -> list[dict]:
    """Every rule replayed on the curves in `storage`; `seeds` keeps only each trial's first seeds
    (what a search with fewer lockstep seeds would have seen)."""
    by_seeds = {s: {k: v[:seeds] for k, v in cells.items()} for s, cells in seed_curves(storage).items()}
    grid = 6  # configurations of the degradation grid
    print(f"FIFO curves in {storage}: " + ", ".join(
        f"lr_gamma {g}: seed sets {[s for s, c in by_seeds.items() if sum(k[0] == g for k in c) == grid]}"
        for g in GAMMAS))
    for gamma in GAMMAS:
        for seed, c in by_seeds.items():
            full = {k[1:]: full_budget(s, epochs) for k, s in c.items() if k[0] == gamma}
            if len(full) == grid:
                ranked = ", ".join(f"{k} {v:.4f}" for k, v in sorted(full.items(), key=lambda kv: -kv[1]))
                print(f"  lr_gamma {gamma}, seeds from {seed}: {ranked}")
    for gamma in GAMMAS:  # why early rungs mislead: how well each report's ranking predicts the final one
        sets = [{k[1:]: v for k, v in c.items() if k[0] == gamma} for c in by_seeds.values()
                if sum(k[0] == gamma for k in c) == grid]
        if sets:
            rho = [np.mean([stats.spearmanr([np.mean(v, axis=0)[r] for v in cells.values()],
                                            [full_budget(v, epochs) for v in cells.values()]).statistic
                            for cells in sets]) for r in range(epochs)]
            print(f"  lr_gamma {gamma}: Spearman ρ of the mean at report 1..{epochs} with the full-budget "
                  f"accuracy: {', '.join(f'{x:.2f}' for x in rho)}")
    rows = []
    for gamma in GAMMAS:
        complete = [{k[1:]: v for k, v in c.items() if k[0] == gamma} for c in by_seeds.values()
                    if sum(k[0] == gamma for k in c) == grid]
        for rule, rf, grace, smoothing, alpha in RULES if complete else ():
            results = [replay(c, epochs, rule, grace, rf, smoothing, alpha) for c in complete]
            rows.append({"rule": rule, "reduction_factor": rf, "grace": grace, "smoothing": smoothing,
                         "alpha": alpha, "lr_gamma": gamma, "seeds": len(next(iter(complete[0].values()))),
                         "epochs_fraction": float(np.mean([r["fraction"] for r in results])),
                         "regret_mean": float(np.mean([r["regret"] for r in results])),
                         "regret_max": float(np.max([r["regret"] for r in results])),
                         "same_winner": sum(r["agree"] for r in results),
                         "tied_with_fifo_winner": sum(r["tied"] for r in results),
                         "repeats": len(results), "picks": [str(r["pick"]) for r in results]})
    print("rule | lr_gamma | rf | grace | smoothing | alpha | epochs (of FIFO) | regret mean | regret max | "
          "same winner | tied with FIFO's winner")
    for r in rows:
        print(f"{r['rule']} | {r['lr_gamma']} | {r['reduction_factor']} | {r['grace']} | {r['smoothing']} | "
              f"{r['alpha'] if r['alpha'] is not None else '–'} | {r['epochs_fraction']:.2f} | "
              f"{r['regret_mean']:.4f} | {r['regret_max']:.4f} | {r['same_winner']}/{r['repeats']} | "
              f"{r['tied_with_fifo_winner']}/{r['repeats']} {' '.join(r['picks'])}")
    return rows


def question_costs(storage: Path, epochs: int) -> list[dict]:
    """The degradation questions (spaces/images.py) on the FIFO curves, seed set by seed set: each
    one's verdict from its arms' full curves (analysis/questions.py, read at the budget), the epochs its
    arms train under study-aware stopping (every arm of a question kept) and under significance halving
    alone (the image spaces' rule), and whether that rule cut an arm before the budget, which leaves the
    question undecided. Only val_acc questions: the curves hold val_acc alone."""
    from analysis.questions import judge
    from spaces import get_space

    space = get_space("degradation")
    rows = []
    for gamma in GAMMAS:
        sets = {s: {k[1:]: v for k, v in c.items() if k[0] == gamma} for s, c in seed_curves(storage).items()}
        for seed_set, cells in sorted((s, c) for s, c in sets.items() if len(c) == 6):
            curves = {c: [v[:epochs] for v in seeds] for c, seeds in cells.items()}
            alone = significance_halving(curves, 1, space.reduction_factor, epochs, space.alpha)
            kept = significance_halving(curves, 1, space.reduction_factor, epochs, space.alpha,
                                        kept=frozenset(curves))
            for q in space.questions:
                if q.metric not in ("", "val_acc"):
                    continue
                arms = [(q.a["num_blocks"], q.a["skip"]), (q.b["num_blocks"], q.b["skip"])]
                first, second = (cells[a] for a in arms)
                diffs = [x[epochs - 1] - y[epochs - 1] for x, y in zip(first, second, strict=True)]
                cut = [a for a in arms if alone.stopped_at[a] < epochs]
                rows.append({"question": q.name, "lr_gamma": gamma, "seed_set": seed_set,
                             "verdict_fifo": judge(q, diffs)[0],
                             "verdict_significance": "cut" if cut else judge(q, diffs)[0],
                             "arm_epochs_fifo": 2 * epochs,
                             "arm_epochs_study_aware": sum(kept.stopped_at[a] for a in arms),
                             "arm_epochs_significance": sum(alone.stopped_at[a] for a in arms),
                             "search_fraction_study_aware": kept.reports / (len(cells) * epochs),
                             "search_fraction_significance": alone.reports / (len(cells) * epochs)})
    print("question | lr_gamma | verdicts under FIFO = study-aware (per seed set) | significance alone | "
          "arm epochs FIFO / study-aware / significance")
    for name in dict.fromkeys(r["question"] for r in rows):
        for gamma in GAMMAS:
            mine = [r for r in rows if r["question"] == name and r["lr_gamma"] == gamma]
            if mine:
                print(f"{name} | {gamma} | {', '.join(r['verdict_fifo'] for r in mine)} | "
                      f"{', '.join(r['verdict_significance'] for r in mine)} | "
                      f"{sum(r['arm_epochs_fifo'] for r in mine)} / "
                      f"{sum(r['arm_epochs_study_aware'] for r in mine)} / "
                      f"{sum(r['arm_epochs_significance'] for r in mine)}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--val", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", type=Path, help="keep the FIFO curves here (default: a new temp folder)")
    parser.add_argument("--analyse", type=Path, metavar="PATH",
                        help="only replay the curves kept in PATH: a --storage folder or an --export file")
    parser.add_argument("--json", type=Path, help="write the replay table here")
    parser.add_argument("--use-seeds", type=int, metavar="K",
                        help="--analyse: replay on each trial's first K seeds only")
    parser.add_argument("--questions", action="store_true",
                        help="--analyse: the degradation questions' verdicts and what each stopping rule "
                        "costs them, instead of the rule table")
    parser.add_argument("--export", type=Path, metavar="FILE",
                        help="write the FIFO curves of --storage as one JSON file "
                        "(bench/asha_fidelity_curves.json)")
    args = parser.parse_args()
    if args.export:
        export(args.storage, args.export)
        return
    if args.analyse and args.questions:
        rows = question_costs(args.analyse, args.epochs)
    elif args.analyse:
        rows = analyse(args.analyse, args.epochs, args.use_seeds)
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
