"""PBT against fixed rates at equal trial-epochs: `--scheduler pbt` with a population of 4 against the
same 4 starting configurations trained with their rates fixed (a grid of 4 over the perturbable keys),
each arm's best member at the last report, over several seeds, with the paired difference's 95% CI.

    python bench/bench_pbt.py --space lora --seeds 3 [--set train_subset=512 ...] [--epochs 2]
    python bench/bench_pbt.py --space kd --teacher PATH --seeds 3 [--profile demo]

Both arms start from initial_population (search/pbt.py): the fixed arm is PBT without exploit and
explore. The PBT arm is the real driver (`search/run.py --scheduler pbt`, one search per seed, Ray
Tune); the fixed arm trains the same trainable in this process, two members at a time. A member of
either arm trains the whole budget; the trial-epochs each arm trained are printed (a PBT clone
continues its parent's count, so PBT's can differ from 4 × epochs by the reports a clone skipped or
re-trained).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "WANDB_MODE": "offline", "RAY_USAGE_STATS_ENABLED": "0",
           "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}
os.environ.update(OFFLINE)

from analysis.lineage import members  # noqa: E402
from analysis.stats import summarize  # noqa: E402
from bench.machine import cpu_description  # noqa: E402
from search.options import build_plan, parse_args  # noqa: E402
from search.pbt import initial_population  # noqa: E402


def train_fixed(space_name: str, config: dict) -> float:
    """One fixed-rate member trained to its budget in this process: its last report's metric."""
    from spaces import get_space
    from trainables.config import build
    from trainables.reporting import MemoryReporter

    space = get_space(space_name)
    reporter = MemoryReporter()
    fit = {"kd": "trainables.kd:fit_kd", "lora": "trainables.finetune:fit_text_classifier"}[space_name]
    module, function = fit.split(":")
    getattr(__import__(module, fromlist=[function]), function)(build(space.config_cls, config), reporter)
    return reporter.history[-1][space.metric]


def pbt_arm(args: argparse.Namespace, common: list[str], seed: int, root: Path) -> tuple[float, float, str]:
    """(best member's last-report metric, trial-epochs trained, its schedule line) of one PBT search."""
    name = f"pbt_seed{seed}"
    command = [sys.executable, str(ROOT / "search" / "run.py"), *common, "--scheduler", "pbt",
               "--num-samples", str(args.members),
               "--set", f"seed={seed}", "--storage", str(root), "--name", name]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TUNELAB_REPORT": str(root / "report")})
    if done.returncode != 0:
        raise SystemExit(f"the PBT search failed ({done.returncode}): {done.stderr[-2000:]}")
    from spaces import get_space

    space = get_space(args.space)
    found = members(root / name, list(space.perturb))
    best = max(found.values(), key=lambda m: m.final[space.metric])
    trained = sum(len(s.rows) for m in found.values() for s in m.segments) / space.reports_per_epoch
    line = next((x for x in done.stdout.splitlines() if x.startswith("best member")), "")
    return best.final[space.metric], trained, line


def fixed_arm(args: argparse.Namespace, common: list[str], seed: int, root: Path) -> tuple[float, float]:
    """(best member's last-report metric, trial-epochs) of the 4 starting configurations, rates fixed."""
    plan = build_plan(parse_args([*common, "--scheduler", "fifo", "--set", f"seed={seed}",
                                  "--storage", str(root), "--name", f"fixed_seed{seed}"]))
    config = {**plan.config, **{k: v[0] for k, v in plan.grid.items()}}
    starts = initial_population(plan.space.perturb, args.members, seed)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=context) as pool:
        finals = list(pool.map(train_fixed, [args.space] * len(starts), [{**config, **s} for s in starts]))
    return max(finals), len(starts) * plan.config["epochs"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("lora", "kd"), default="lora")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="--max-epochs of both arms (default: the profile's)")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2, help="fixed-arm members trained at once")
    parser.add_argument("--teacher", help="kd: the teacher checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    common = ["--space", args.space, "--profile", args.profile]
    common += [x for item in args.overrides for x in ("--set", item)]
    common += ["--set", "setting=qv8"] if args.space == "lora" and not any(
        o.startswith("setting=") for o in args.overrides) else []
    common += ["--max-epochs", str(args.epochs)] if args.epochs else []
    common += ["--teacher", args.teacher] if args.teacher else []
    cpu = cpu_description()
    print(f"CPU: {cpu['model']} ({os.cpu_count()} cores); command: python bench/bench_pbt.py "
          f"{' '.join(sys.argv[1:])}", flush=True)
    root = Path(tempfile.mkdtemp(prefix="bench-pbt-"))
    rows = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        pbt, pbt_epochs, line = pbt_arm(args, common, seed, root)
        pbt_s = time.perf_counter() - started
        fixed, fixed_epochs = fixed_arm(args, common, seed, root)
        rows.append({"seed": seed, "pbt": pbt, "fixed": fixed, "pbt_trial_epochs": pbt_epochs,
                     "fixed_trial_epochs": fixed_epochs, "pbt_s": round(pbt_s),
                     "fixed_s": round(time.perf_counter() - started - pbt_s)})
        print(json.dumps(rows[-1]), flush=True)
        print(f"  seed {seed} PBT {line}", flush=True)
    diff = summarize([r["pbt"] - r["fixed"] for r in rows])
    pbt, fixed = summarize([r["pbt"] for r in rows]), summarize([r["fixed"] for r in rows])
    print(f"\n{args.space}/{args.profile} {' '.join(args.overrides)}: best of {args.members} at the last "
          f"report, {args.seeds} seeds (one PBT search and one fixed grid per seed)")
    for arm, summary in (("pbt", pbt), ("fixed", fixed)):
        print(f"{arm:5} {summary.mean:.4f} ± {summary.std:.4f}  trial-epochs "
              f"{sum(r[f'{arm}_trial_epochs'] for r in rows):g}")
    print(f"PBT − fixed: {diff.mean:+.4f}, 95% CI [{diff.lo:+.4f}, {diff.hi:+.4f}] (paired over seeds); "
          f"PBT/fixed ratio {pbt.mean / fixed.mean:.3f}")


if __name__ == "__main__":
    main()
