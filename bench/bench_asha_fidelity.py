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

--analyse replays every early-stopping rule on the FIFO curves, seed set by seed set, for every
setting at once (bench/fidelity_truth.py holds the grid): FIFO; the i-epoch baseline; successive
halving and significance halving (analysis/rungs.py, exactly what `--scheduler halving` and
`--scheduler significance` decide, as they are synchronous); Hyperband as a union of halving
brackets; Ray's own ASHAScheduler fed in a fixed arrival order; PASHA (bench/fidelity_rules.py);
Optuna's SuccessiveHalving, Hyperband, Median and Wilcoxon pruners fed as Optuna feeds them
(bench/fidelity_optuna.py). For each rule, setting and `lr_gamma` arm it reports:

- epochs_fraction: the share of FIFO's trial-epochs it trains;
- true_regret (mean, max over the seed sets): the pick is scored on the seed sets its decision did
  not see (the best configuration's held-out value minus the pick's, "best" as every tunelab table
  defines it: the best epoch of the mean over seeds); FIFO's own pick is scored the same way
  (fifo_true_regret);
- regret: against FIFO's pick on the same seed set, same_winner: in how many seed sets both crown
  the same configuration, tied_with_fifo_winner: in how many the crowned one is statistically tied
  with FIFO's (Welch, p ≥ 0.05; context, not a target);

then the rank-change risk of the curves, and the default rule and setting chosen by
leave-one-seed-set-out cross-validation (bench/fidelity_truth.py), with its held-out figures. A
curves file of another layout, a configuration missing from a seed set or a NaN is one `error:` line
and exit status 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.rungs import significance_halving  # noqa: E402
from bench import fidelity_report  # noqa: E402
from bench.fidelity_curves import arms, lr_gamma, read_curves  # noqa: E402
from bench.fidelity_truth import RULES, Replays, choose, cross_validate, records  # noqa: E402
from cli import OneLineParser, UsageError, one_line  # noqa: E402

GAMMAS = (0.95, 0.7)
WORKERS = 2  # 2 cores, 1 thread per trial


def train(config: dict) -> dict:
    """One lockstep trial to the full budget; its reports."""
    from trainables.cnn import ImageConfig, fit_image_model
    from trainables.reporting import MemoryReporter

    reporter = MemoryReporter()
    # a sampled space's trial carries its space and index beside the trainable's config
    knobs = {k: v for k, v in config.items() if k not in ("space", "sample")}
    fit_image_model(ImageConfig(**knobs), reporter)
    return {"config": config, "history": reporter.history}


def run_fifo(storage: Path, repeats: int, seeds: int, images: int, val: int, epochs: int,
             first: int = 0) -> None:
    """Every (lr_gamma, seed set, configuration) trial not yet in `storage`, the reference decay's
    first, each written as it ends (an interrupted run resumes, and --analyse reads what is there);
    seed sets `first` to `repeats` − 1 (seeds from 3·first on: more seed sets for curves made before)."""
    from spaces import get_space

    space = get_space("degradation")
    base = {**space.base_config("demo"), "train_subset": images, "val_subset": val, "epochs": epochs,
            "seeds": seeds, "cpus": 1}
    configs = [{**base, "lr_gamma": g, "seed": r * seeds, "num_blocks": n, "skip": k}
               for g in GAMMAS for r in range(first, repeats)
               for n, k in itertools.product(*space.grid.values())]
    train_all(storage, configs, trial_file)


SAMPLED_RANGES = {"num_blocks": (1, 7), "lr": (1e-3, 0.3), "weight_decay": (1e-5, 1e-2),
                  "lr_gamma": (0.6, 0.98)}
"""A sampled space's box: num_blocks uniform over the integers, skip either way, lr and weight_decay
log-uniform (the image spaces' continuous ranges, spaces/images.py), lr_gamma uniform."""


def sampled_configs(count: int, draw: int) -> list[dict]:
    """`count` configurations drawn from SAMPLED_RANGES with the random generator of seed `draw`: the
    same draw gives the same configurations on every machine."""
    import numpy as np

    rng = np.random.default_rng(draw)
    (b0, b1), (l0, l1), (w0, w1), (g0, g1) = SAMPLED_RANGES.values()
    return [{"num_blocks": int(rng.integers(b0, b1 + 1)), "skip": bool(rng.integers(0, 2)),
             "lr": float(f"{math.exp(rng.uniform(math.log(l0), math.log(l1))):.4g}"),
             "weight_decay": float(f"{math.exp(rng.uniform(math.log(w0), math.log(w1))):.4g}"),
             "lr_gamma": round(float(rng.uniform(g0, g1)), 3)} for _ in range(count)]


def run_sampled(storage: Path, count: int, draw: int, repeats: int, seeds: int, images: int, val: int,
                epochs: int) -> None:
    """FIFO on a sampled space: `count` configurations (sampled_configs), every one to the full budget
    in `repeats` seed sets of `seeds` lockstep seeds, a seed set at a time (so that a run stopped early
    leaves whole seed sets), each trial written as it ends; an interrupted run resumes."""
    from spaces import get_space

    base = {**get_space("degradation").base_config("demo"), "train_subset": images, "val_subset": val,
            "epochs": epochs, "seeds": seeds, "cpus": 1}
    configs = [{**base, **c, "seed": r * seeds, "sample": n, "space": f"sampled{count}-draw{draw}"}
               for r in range(repeats) for n, c in enumerate(sampled_configs(count, draw))]
    train_all(storage, configs, sampled_file)


def sampled_file(storage: Path, c: dict) -> Path:
    return storage / f"{c['space']}_c{c['sample']:02d}_seed{c['seed']}.json"


def train_all(storage: Path, configs: list[dict], file_of) -> None:
    """Every trial of `configs` whose file (`file_of(storage, config)`) is not in `storage` yet, in the
    script's worker processes, each written as it ends, with the machine that made them."""
    todo = [c for c in configs if not file_of(storage, c).is_file()]
    if not (storage / "PROVENANCE.json").is_file():
        (storage / "PROVENANCE.json").write_text(json.dumps(machine(), indent=1))
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        for n, trial in enumerate(pool.imap(train, todo), 1):
            file_of(storage, trial["config"]).write_text(json.dumps(trial))
            print(f"{n}/{len(todo)} trials, {time.perf_counter() - start:.0f} s", flush=True)


def machine() -> dict:
    """What made the curves: bf16 rounding differs between CPU kinds, so the curves name theirs."""
    import platform
    import subprocess

    import torch

    from trainables.precision import resolve_precision

    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True).stdout.strip()
    commit += " with uncommitted changes" if changed else ""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"commit": commit, "cpu": cpu, "torch": torch.__version__,
            "precision": resolve_precision("auto", torch.device("cpu")), "date": time.strftime("%Y-%m-%d")}


def trial_file(storage: Path, c: dict) -> Path:
    return storage / f"g{c['lr_gamma']}_seed{c['seed']}_n{c['num_blocks']}_skip{c['skip']}.json"


def export(storage: Path, out: Path) -> None:
    """The FIFO curves of a run folder as one small JSON file (val_acc per seed and epoch, 4 decimals
    more than an accuracy on 1,024 images resolves), with the settings, seeds, commit and CPU model
    that made them: the degradation grid's layout, or a sampled space's (layout 2, its configurations'
    knobs by label)."""
    trials = [json.loads(p.read_text()) for p in sorted(storage.glob("*_seed*.json"))]
    if not trials:
        raise UsageError(f"{storage}: no trials of bench/bench_asha_fidelity.py to export")
    first = trials[0]["config"]
    sampled = "sample" in first
    record = {
        "made_by": "bench/bench_asha_fidelity.py",
        "settings": {k: first[k] for k in ("train_subset", "val_subset", "epochs", "seeds", "batch_size",
                                             *(() if sampled else ("lr",)))},
        "provenance": json.loads((storage / "PROVENANCE.json").read_text())
        if (storage / "PROVENANCE.json").is_file() else {},
        "curves": [],
    }
    curves, knobs = read_curves([storage])
    record["settings"]["seed_sets"] = sorted({s for sets in curves.values() for s in sets})
    if sampled:
        record.update({"layout": 2, "space": first["space"], "configs": knobs[first["space"]]})
    for (_, arm), sets in curves.items():
        for seed_set, cells in sorted(sets.items()):
            for config, per_seed in sorted(cells.items()):
                where = ({"config": config} if sampled else
                         {"lr_gamma": float(arm.split("=")[1]), "num_blocks": config[0], "skip": config[1]})
                record["curves"].append({**where, "seed_set": seed_set,
                                         "val_acc": [[round(v, 6) for v in c] for c in per_seed]})
    out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"curves of {len(record['curves'])} lockstep trials -> {out} ({out.stat().st_size:,} bytes)")


def analyse(paths: list[Path], epochs: int, seeds: int | None = None) -> dict:
    """Every rule and setting replayed on the curves in `paths` (every arm of every space they hold)
    and scored on held-out seed sets, the default chosen on all seed sets and cross-validated; `seeds`
    keeps only each trial's first seeds (what a search with fewer lockstep seeds would have seen)."""
    curves, knobs = read_curves(paths)
    raw = {key: {s: {c: v[:seeds] for c, v in cells.items()} for s, cells in sets.items()}
           for key, sets in curves.items()}
    by_arm = arms(raw, epochs, partial=any(p.is_dir() for p in paths))
    print(f"FIFO curves in {', '.join(map(str, paths))}")
    risk = fidelity_report.describe(by_arm, knobs)
    replays = Replays(by_arm, epochs)
    everything = list(range(len(RULES)))
    default = choose(replays, everything)
    rows = records(replays, default)
    fidelity_report.table(rows)
    cv = cross_validate(replays, everything) if replays.folds() >= 3 else None
    per_rule = {} if cv is None else {
        rule: cross_validate(replays, [n for n, (r, _) in enumerate(RULES) if r == rule])
        for rule in dict.fromkeys(r for r, _ in RULES)}
    chosen = {"rule": RULES[default][0], "settings": RULES[default][1]}
    fidelity_report.choice(chosen, cv, per_rule)
    return {"spaces": sorted({key[0] for key in by_arm}), "configs": knobs, "epochs": epochs, "records": rows,
            "rank_change_risk": risk, "default": chosen, "cross_validation": cv,
            "cross_validation_per_rule": per_rule}


def question_costs(paths: list[Path], epochs: int) -> list[dict]:
    """The degradation questions (spaces/images.py) on the FIFO curves, seed set by seed set: each
    one's verdict from its arms' full curves (analysis/questions.py, read at the budget), the epochs its
    arms train under study-aware stopping (every arm of a question kept) and under significance halving
    alone (the image spaces' rule), and whether that rule cut an arm before the budget, which leaves the
    question undecided. Only val_acc questions: the curves hold val_acc alone."""
    from analysis.questions import judge
    from spaces import get_space

    space = get_space("degradation")
    rows = []
    curves = {key: sets for key, sets in read_curves(paths)[0].items() if key[0] == "degradation"}
    for key, arm in arms(curves, epochs, partial=any(p.is_dir() for p in paths)).items():
        gamma = lr_gamma(key)
        for seed_set, curves in arm.items():
            alone = significance_halving(curves, 1, space.reduction_factor, epochs, space.alpha)
            kept = significance_halving(curves, 1, space.reduction_factor, epochs, space.alpha,
                                        kept=frozenset(curves))
            for q in space.questions:
                if q.metric not in ("", "val_acc"):
                    continue
                pair = [(q.a["num_blocks"], q.a["skip"]), (q.b["num_blocks"], q.b["skip"])]
                first, second = (curves[a] for a in pair)
                diffs = [x[epochs - 1] - y[epochs - 1] for x, y in zip(first, second, strict=True)]
                cut = [a for a in pair if alone.stopped_at[a] < epochs]
                rows.append({"question": q.name, "lr_gamma": gamma, "seed_set": seed_set,
                             "verdict_fifo": judge(q, diffs)[0],
                             "verdict_significance": "cut" if cut else judge(q, diffs)[0],
                             "arm_epochs_fifo": 2 * epochs,
                             "arm_epochs_study_aware": sum(kept.stopped_at[a] for a in pair),
                             "arm_epochs_significance": sum(alone.stopped_at[a] for a in pair),
                             "search_fraction_study_aware": kept.reports / (len(curves) * epochs),
                             "search_fraction_significance": alone.reports / (len(curves) * epochs)})
    print("question | lr_gamma | verdicts under FIFO = study-aware (per seed set) | significance alone | "
          "arm epochs FIFO / study-aware / significance")
    for name in dict.fromkeys(r["question"] for r in rows):
        for gamma in dict.fromkeys(r["lr_gamma"] for r in rows):
            mine = [r for r in rows if r["question"] == name and r["lr_gamma"] == gamma]
            if mine:
                print(f"{name} | {gamma} | {', '.join(r['verdict_fifo'] for r in mine)} | "
                      f"{', '.join(r['verdict_significance'] for r in mine)} | "
                      f"{sum(r['arm_epochs_fifo'] for r in mine)} / "
                      f"{sum(r['arm_epochs_study_aware'] for r in mine)} / "
                      f"{sum(r['arm_epochs_significance'] for r in mine)}")
    return rows


def main() -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--val", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--storage", type=Path, help="keep the FIFO curves here (default: a new temp folder)")
    parser.add_argument("--first-repeat", type=int, default=0, metavar="K",
                        help="train seed sets K .. repeats - 1 only (more seed sets for earlier curves)")
    parser.add_argument("--sample", type=int, metavar="N",
                        help="train a sampled space of N configurations instead of the degradation grid")
    parser.add_argument("--draw", type=int, default=0, help="--sample: the draw (random seed) of its space")
    parser.add_argument("--analyse", type=Path, nargs="+", metavar="PATH",
                        help="only replay the curves kept in each PATH: a --storage folder or an --export "
                        "file, one per space")
    parser.add_argument("--json", type=Path, help="write the replay table here")
    parser.add_argument("--use-seeds", type=int, metavar="K",
                        help="--analyse: replay on each trial's first K seeds only")
    parser.add_argument("--questions", action="store_true",
                        help="--analyse: the degradation questions' verdicts and what each stopping rule "
                        "costs them, instead of the rule table")
    parser.add_argument("--export", type=Path, metavar="FILE",
                        help="write the FIFO curves of --storage as one JSON file "
                        "(bench/asha_fidelity_curves.json)")
    try:
        return run(parser.parse_args())
    except UsageError as err:
        return one_line(err)


def run(args: argparse.Namespace) -> int:
    if args.export:
        export(args.storage, args.export)
        return 0
    if args.analyse and args.questions:
        rows = question_costs(args.analyse, args.epochs)
    elif args.analyse:
        rows = analyse(args.analyse, args.epochs, args.use_seeds)
    elif args.sample:
        storage = args.storage or Path(tempfile.mkdtemp(prefix="asha_fidelity_"))
        storage.mkdir(parents=True, exist_ok=True)
        run_sampled(storage, args.sample, args.draw, args.repeats, args.seeds, args.images, args.val,
                    args.epochs)
        print(f"curves kept in {storage}")
        return 0
    else:
        storage = args.storage or Path(tempfile.mkdtemp(prefix="asha_fidelity_"))
        storage.mkdir(parents=True, exist_ok=True)
        run_fifo(storage, args.repeats, args.seeds, args.images, args.val, args.epochs,
                 args.first_repeat)
        rows = analyse([storage], args.epochs)
        print(f"curves kept in {storage}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
