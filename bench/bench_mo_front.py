"""Does a two-objective search with early stopping find the grid's front for less compute?

On the lora_front space (MiniLM, rotten_tomatoes, objectives val_acc:max, trainable_params:min), three
arms per search seed, each a real `search/run.py` process:

- grid: the space's grid (lora_targets q | qv | qkvo × lora_rank 8 | 16), FIFO: every cell to the budget;
- tpe: Optuna's multi-objective TPE, FIFO, as many trials as the grid has cells (equal trial-epochs);
- tpe+es: the same sampler under the MOASHA rung rule, `--es-samples` trials (more: stops free budget).

Each arm's hypervolume is computed against one fixed reference point (val_acc 0.5, chance on this
binary task; 1.4e6 trainable parameters, above the largest LoRA the space can sample, qkvo64 on MiniLM:
1,328,258), over the configurations that ran the full budget, at each one's best epoch (as every
table). Besides the final figure, each arm's hypervolume is traced against the trial-epochs spent, in
the order the trials ended, so the arms are compared at equal budgets: at half the grid's trial-epochs
and at all of them. It prints one line per arm and seed, then the means, and the trial-epochs at which
tpe+es first reached the grid's hypervolume of the same seed.

    python bench/bench_mo_front.py [--seeds 0,1,2] [--train-subset 1024] [--val-subset 512]
        [--es-samples 9] [--out runs.json]
    python bench/bench_mo_front.py --summarize runs.json more_runs.json   # one table of several runs

Demo size is --train-subset 0 --val-subset 0 (the whole of rotten_tomatoes' train and validation
splits): about 4 minutes a trial on one core of this machine, so 3 seeds × 21 trials ≈ 2 hours on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = [["val_acc", "max"], ["trainable_params", "min"]]
REFERENCE = (0.5, 1.4e6)
BOX = (1.0 - REFERENCE[0]) * REFERENCE[1]  # the largest hypervolume there is: printed figures divide by it
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
           "RAY_USAGE_STATS_ENABLED": "0"}


def run_arm(arm: str, seed: int, args: argparse.Namespace, storage: Path) -> Path:
    name = f"{arm.replace('+', '_')}_seed{seed}"
    command = [sys.executable, str(ROOT / "search" / "run.py"), "--space", "lora_front", "--profile", "demo",
               "--objective", ",".join(f"{n}:{m}" for n, m in OBJECTIVES), "--storage", str(storage),
               "--name", name, "--set", f"seed={seed}", "--set", f"train_subset={args.train_subset}",
               "--set", f"val_subset={args.val_subset}"]
    if arm == "grid":
        command += ["--scheduler", "fifo"]
    else:
        samples = args.es_samples if arm == "tpe+es" else 6
        command += ["--search", "optuna", "--num-samples", str(samples),
                    "--scheduler", "moasha" if arm == "tpe+es" else "fifo"]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **OFFLINE, "TUNELAB_REPORT": str(storage / "report")})
    if done.returncode != 0:
        raise SystemExit(f"{arm} seed {seed} failed ({done.returncode}): {done.stderr[-2000:]}")
    print(f"  {arm} seed {seed}: {time.time() - started:.0f} s", flush=True)
    return storage / name


def trace(experiment: Path) -> dict:
    """The arm's hypervolume after each trial ended (trials in the order of their last report) against
    the trial-epochs spent so far; its front and its final hypervolume."""
    from analysis.pareto import experiment_front, front, hypervolume_2d
    from analysis.results import open_experiment

    exp = open_experiment(experiment)
    per_epoch = exp.reports_per_epoch
    ends = exp.epochs.groupby("trial_id")["timestamp"].max()
    trials = exp.trials.assign(end=exp.trials["trial_id"].map(ends)).sort_values("end")
    full = int(trials["epochs_run"].max())
    spent, points, steps = 0.0, [], []
    for row in trials.itertuples():
        spent += row.epochs_run / per_epoch
        if row.epochs_run == full:  # a stopped trial ran another budget: never on the front
            points.append((row.best_val_acc, row.best_trainable_params))
        members = front(dict(enumerate(points)), ("max", "min"))
        steps.append((spent, hypervolume_2d([points[i] for i in members], ("max", "min"), REFERENCE)))
    found = experiment_front(exp, OBJECTIVES, REFERENCE)
    members = found.members
    return {"trials": len(trials), "trial_epochs": spent, "hypervolume": found.hypervolume, "trace": steps,
            "stopped": found.stopped,
            "front": [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
                      for row in members.to_dict("records")]}


def at_budget(steps: list, budget: float) -> float:
    """The hypervolume reached within `budget` trial-epochs (0 before the first full trial)."""
    reached = [hv for spent, hv in steps if spent <= budget + 1e-9]
    return max(reached, default=0.0)


def first_reaching(steps: list, target: float) -> float | None:
    return next((spent for spent, hv in steps if hv >= target - 1e-12), None)


def print_table(results: dict[str, dict[int, dict]]) -> None:
    """One row per arm and seed, then each arm's means: hypervolumes as fractions of BOX; the budgets
    compared are the grid's trial-epochs and half of them."""
    grid = results.get("grid", {})
    budget = sum(r["trial_epochs"] for r in grid.values()) / len(grid) if grid else None
    print(f"\nhypervolume (val_acc max, trainable_params min) against {REFERENCE}, as a fraction of the "
          f"box from the reference to (val_acc 1, 0 parameters); the grid's budget: {budget} trial-epochs")
    print("arm     seed  trials  trial-epochs  stopped  HV final  HV at ½ grid  HV at grid  "
          "reached the grid's HV at")
    means: dict[str, list[tuple[float, float, float]]] = {}
    for arm, seeds in results.items():
        for seed, r in sorted(seeds.items()):
            grid_hv = grid[seed]["hypervolume"] if seed in grid else None
            half = at_budget(r["trace"], budget / 2) if budget else float("nan")
            whole = at_budget(r["trace"], budget) if budget else float("nan")
            reached = first_reaching(r["trace"], grid_hv) if grid_hv else None  # a grid HV of 0 is no target
            means.setdefault(arm, []).append((r["hypervolume"], half, whole))
            print(f"{arm:7} {seed:4} {r['trials']:7} {r['trial_epochs']:13g} {r['stopped']:8} "
                  f"{r['hypervolume'] / BOX:9.4f} {half / BOX:13.4f} {whole / BOX:11.4f}  "
                  f"{'–' if not grid_hv else 'never' if reached is None else f'{reached:g} trial-epochs'}")
    for arm, rows in means.items():
        mean = [sum(column) / len(rows) / BOX for column in zip(*rows, strict=True)]
        print(f"{arm:7} mean over {len(rows)} seed(s): HV final {mean[0]:.4f}, at ½ grid {mean[1]:.4f}, "
              f"at grid {mean[2]:.4f}")


def main() -> None:
    from bench.machine import cpu_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--train-subset", type=int, default=1024)
    parser.add_argument("--val-subset", type=int, default=512)
    parser.add_argument("--es-samples", type=int, default=9)
    parser.add_argument("--arms", default="grid,tpe,tpe+es")
    parser.add_argument("--out", type=Path, help="write every arm's trace and front as JSON here")
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="JSON",
                        help="print the table of earlier runs' --out files together, running nothing")
    args = parser.parse_args()
    results: dict[str, dict[int, dict]] = {}
    if args.summarize:
        for path in args.summarize:
            for arm, seeds in json.loads(path.read_text()).items():
                results.setdefault(arm, {}).update({int(seed): r for seed, r in seeds.items()})
        print_table(results)
        return
    print(f"CPU: {cpu_line()}; load {os.getloadavg()[0]:.1f} at the start; reference point {REFERENCE}",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_mo_front_") as folder:
        for seed in (int(s) for s in args.seeds.split(",")):
            for arm in args.arms.split(","):
                results.setdefault(arm, {})[seed] = trace(run_arm(arm, seed, args, Path(folder)))
            if args.out:
                args.out.write_text(json.dumps(results, indent=1))
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    print_table(results)


if __name__ == "__main__":
    main()
