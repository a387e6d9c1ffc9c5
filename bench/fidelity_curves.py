"""The FIFO curves bench/bench_asha_fidelity.py replays: reading them (a run folder or an exported
curves file), checking them, and the values every replay scores with.

The layout, per `lr_gamma` arm: seed set -> configuration (num_blocks, skip) -> one val_acc curve
per lockstep seed. Bad input (another layout, a configuration missing from a seed set, a curve too
short, NaN or infinite values) raises cli.UsageError, which the command prints as one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cli import UsageError

Config = tuple[int, bool]
"""(num_blocks, skip): a configuration of the degradation grid."""
Cells = dict[Config, list[list[float]]]
"""configuration -> one curve per seed."""
Arm = dict[int, Cells]
"""seed set -> its cells."""

LAYOUT = ('{"curves": [{"lr_gamma", "seed_set", "num_blocks", "skip", "val_acc": '
          '[[one value per epoch] per seed]}, ...]}')


def seed_curves(storage: Path, metric: str = "val_acc") -> dict:
    """seed set -> (lr_gamma, num_blocks, skip) -> [each seed's metric per epoch], from the lockstep
    trials in a folder of the bench's runs, or from a curves file it exported (--export)."""
    if storage.is_file():
        return _file_curves(storage, metric)
    if not storage.is_dir():
        raise UsageError(f"{storage}: no such curves file or run folder")
    curves: dict = {}
    for path in sorted(storage.glob("g*_seed*_n*_skip*.json")):
        trial = json.loads(path.read_text())
        c = trial["config"]
        key = (float(c["lr_gamma"]), int(c["num_blocks"]), bool(c["skip"]))
        seeds = range(c["seed"], c["seed"] + c["seeds"])
        columns = [f"{metric}_seed{s}" if c["seeds"] > 1 else metric for s in seeds]
        curves.setdefault(c["seed"], {})[key] = [[h[col] for h in trial["history"]] for col in columns]
    return curves


def _file_curves(path: Path, metric: str) -> dict:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a curves file ({type(err).__name__}); expected {LAYOUT}") from None
    entries = record.get("curves") if isinstance(record, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: not a curves file of bench/bench_asha_fidelity.py; expected {LAYOUT}")
    curves: dict = {}
    for n, c in enumerate(entries):
        try:
            key = (float(c["lr_gamma"]), int(c["num_blocks"]), bool(c["skip"]))
            per_seed = [[float(v) for v in seed] for seed in c[metric]]
            seed_set = int(c["seed_set"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: curve {n} is not of the layout {LAYOUT}") from None
        if key in curves.get(seed_set, {}):
            raise UsageError(f"{path}: lr_gamma {key[0]}, seed set {seed_set}, {key[1:]} appears twice")
        curves.setdefault(seed_set, {})[key] = per_seed
    return curves


def arms(curves: dict, epochs: int, partial: bool = False) -> dict[float, Arm]:
    """lr_gamma -> seed set -> configuration -> per-seed curves cut to `epochs`, checked: every
    configuration of an arm in every one of its seed sets (at least 2, so that each can be scored on
    the others), the same number of seeds throughout, `epochs` finite values per seed. `partial` (a
    run folder still training) leaves out the seed sets not yet complete instead."""
    found: dict[float, Arm] = {}
    for seed_set, cells in sorted(curves.items()):
        for (gamma, *config), per_seed in cells.items():
            found.setdefault(gamma, {}).setdefault(seed_set, {})[tuple(config)] = per_seed
    if not found:
        raise UsageError("no curves to replay")
    for gamma, sets in found.items():
        configs = sorted({c for cells in sets.values() for c in cells})
        seeds = {len(v) for cells in sets.values() for v in cells.values()}
        for seed_set, cells in sets.items():
            missing = [c for c in configs if c not in cells]
            if missing and partial:
                print(f"lr_gamma {gamma}, seed set {seed_set}: incomplete, left out")
                continue
            if missing:
                raise UsageError(f"lr_gamma {gamma}: configuration {missing[0]} has no curves for seed set "
                                 f"{seed_set}")
            for config, per_seed in cells.items():
                where = f"lr_gamma {gamma}, seed set {seed_set}, configuration {config}"
                if len(seeds) != 1 or not per_seed:
                    raise UsageError(f"{where}: {len(per_seed)} seeds where others have {sorted(seeds)}")
                if any(len(v) < epochs for v in per_seed):
                    raise UsageError(f"{where}: fewer than {epochs} epochs (--epochs)")
                if not all(math.isfinite(x) for v in per_seed for x in v[:epochs]):
                    raise UsageError(f"{where}: val_acc holds NaN or infinite values")
                cells[config] = [v[:epochs] for v in per_seed]
        if sum(len(cells) == len(configs) for cells in sets.values()) < 2:
            raise UsageError(f"lr_gamma {gamma}: fewer than 2 complete seed sets; held-out scoring needs 2")
        found[gamma] = {s: dict(sorted(cells.items())) for s, cells in sets.items()
                        if len(cells) == len(configs)}
    return dict(sorted(found.items(), key=lambda kv: -kv[0]))


def mean_curve(per_seed: list[list[float]]) -> list[float]:
    return np.mean(per_seed, axis=0).tolist()


def full_budget(per_seed: list[list[float]], epochs: int | None = None) -> float:
    """A configuration's accuracy as every tunelab table defines "best": the best epoch of its mean
    over seeds (one epoch for all seeds, a value the mean curve reached), over its first `epochs`."""
    return float(np.max(np.mean([c[:epochs] for c in per_seed], axis=0)))


def held_out(arm: Arm, excluded: set[int]) -> dict[Config, float]:
    """Each configuration's true value when the seed sets in `excluded` made (or chose) the decision:
    its full-budget value over the seeds of all the other seed sets together."""
    sets = [cells for s, cells in arm.items() if s not in excluded]
    return {c: full_budget([v for cells in sets for v in cells[c]]) for c in next(iter(arm.values()))}


def rank_change_risk(arm: Arm) -> list[tuple[float, int]]:
    """Per report r (1 .. epochs − 1): of the pairs of configurations where one is behind the other at
    r (mean over seeds), the share where it ends ahead at the budget (full-budget value, same seed
    set), pooled over the seed sets; with the number of such pairs."""
    epochs = len(next(iter(next(iter(arm.values())).values()))[0])
    risk = []
    for r in range(epochs - 1):
        behind = crossed = 0
        for cells in arm.values():
            at = {c: mean_curve(v)[r] for c, v in cells.items()}
            final = {c: full_budget(v) for c, v in cells.items()}
            for a in cells:
                for b in cells:
                    if at[a] < at[b]:
                        behind += 1
                        crossed += final[a] > final[b]
        risk.append((crossed / behind if behind else 0.0, behind))
    return risk
