"""The FIFO curves bench/bench_asha_fidelity.py replays: reading them (run folders or exported curves
files), checking them, and the values every replay scores with.

Curves come in arms: (space, arm) -> seed set -> configuration -> one val_acc curve per lockstep seed.
The degradation grid has two arms, its lr_gamma values, and names a configuration (num_blocks, skip);
a sampled space (bench_asha_fidelity.py --sample) is one arm whose configurations are named c00, c01,
... with their knobs in the file. Bad input (another layout, a configuration missing from a seed set,
a curve too short, NaN or infinite values, an arm in two files) raises cli.UsageError, which the
command prints as one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cli import UsageError

Config = tuple[int, bool] | str
"""A configuration: (num_blocks, skip) on the degradation grid, its label (c00, ...) on a sampled space."""
Cells = dict[Config, list[list[float]]]
"""configuration -> one curve per seed."""
Arm = dict[int, Cells]
"""seed set -> its cells."""
ArmKey = tuple[str, str]
"""(space, arm): the degradation grid's arms are its lr_gamma values, a sampled space is one arm."""
SAMPLED_ARM = "lr_gamma sampled"
"""A sampled space's one arm: lr_gamma is one of its sampled knobs, not an arm."""

LAYOUT = ('{"curves": [{"lr_gamma", "seed_set", "num_blocks", "skip", "val_acc": [[one value per epoch] '
          'per seed]}, ...]} or {"layout": 2, "space", "configs": {label: knobs}, "curves": [{"seed_set", '
          '"config": label, "val_acc"}, ...]}')


def grid_arm(gamma: float) -> ArmKey:
    return "degradation", f"lr_gamma={gamma:g}"


def read_curves(paths: list[Path], metric: str = "val_acc") -> tuple[dict[ArmKey, dict], dict]:
    """(arm -> seed set -> configuration -> [each seed's metric per epoch], space -> {configuration:
    its knobs}) from run folders of the bench's trials or curves files it exported (--export)."""
    found: dict[ArmKey, dict] = {}
    knobs: dict[str, dict] = {}
    for path in paths:
        curves, configs = _file_curves(path, metric) if path.is_file() else _folder_curves(path, metric)
        for key, sets in curves.items():  # one arm's seed sets may come from several files
            for seed_set, cells in sets.items():
                if seed_set in found.get(key, {}):
                    raise UsageError(f"{path}: {key[0]} {key[1]}, seed set {seed_set} is also in another "
                                     "curves file")
                found.setdefault(key, {})[seed_set] = cells
        knobs.update(configs)
    return found, knobs


def _folder_curves(storage: Path, metric: str) -> tuple[dict, dict]:
    if not storage.is_dir():
        raise UsageError(f"{storage}: no such curves file or run folder")
    curves: dict = {}
    knobs: dict = {}
    for path in sorted(storage.glob("*_seed*.json")):
        trial = json.loads(path.read_text())
        c = trial["config"]
        if "sample" in c:  # a sampled space's trial (bench_asha_fidelity.py run_sampled)
            key, config = (c["space"], SAMPLED_ARM), f"c{c['sample']:02d}"
            knobs.setdefault(c["space"], {})[config] = sampled_knobs(c)
        else:
            key, config = grid_arm(float(c["lr_gamma"])), (int(c["num_blocks"]), bool(c["skip"]))
        seeds = range(c["seed"], c["seed"] + c["seeds"])
        columns = [f"{metric}_seed{s}" if c["seeds"] > 1 else metric for s in seeds]
        curves.setdefault(key, {}).setdefault(c["seed"], {})[config] = [[h[col] for h in trial["history"]]
                                                                          for col in columns]
    return curves, knobs


def sampled_knobs(config: dict) -> dict:
    return {k: config[k] for k in ("num_blocks", "skip", "lr", "weight_decay", "lr_gamma")}


def _file_curves(path: Path, metric: str) -> tuple[dict, dict]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"{path}: not a curves file ({type(err).__name__}); expected {LAYOUT}") from None
    entries = record.get("curves") if isinstance(record, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{path}: not a curves file of bench/bench_asha_fidelity.py; expected {LAYOUT}")
    sampled = record.get("layout") == 2
    configs = record.get("configs") if sampled else {}
    if sampled and (not isinstance(configs, dict) or not isinstance(record.get("space"), str)):
        raise UsageError(f"{path}: a layout 2 curves file names its space and configs; expected {LAYOUT}")
    curves: dict = {}
    for n, c in enumerate(entries):
        try:
            if sampled:
                key, config = (record["space"], SAMPLED_ARM), str(c["config"])
                if config not in configs:
                    raise KeyError(config)
            else:
                key, config = grid_arm(float(c["lr_gamma"])), (int(c["num_blocks"]), bool(c["skip"]))
            per_seed = [[float(v) for v in seed] for seed in c[metric]]
            seed_set = int(c["seed_set"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"{path}: curve {n} is not of the layout {LAYOUT}") from None
        if config in curves.get(key, {}).get(seed_set, {}):
            raise UsageError(f"{path}: {key[1]}, seed set {seed_set}, {config} appears twice")
        curves.setdefault(key, {}).setdefault(seed_set, {})[config] = per_seed
    return curves, ({record["space"]: configs} if sampled else {})


def arms(curves: dict[ArmKey, dict], epochs: int, partial: bool = False) -> dict[ArmKey, Arm]:
    """(space, arm) -> seed set -> configuration -> per-seed curves cut to `epochs`, checked: every
    configuration of an arm in every one of its seed sets (at least 2, so that each can be scored on
    the others), the same number of seeds throughout, `epochs` finite values per seed. `partial` (a
    run folder still training) leaves out the seed sets not yet complete instead."""
    if not curves:
        raise UsageError("no curves to replay")
    found: dict[ArmKey, Arm] = {}
    for key, sets in curves.items():
        name = " ".join(key)
        configs = sorted({c for cells in sets.values() for c in cells})
        seeds = {len(v) for cells in sets.values() for v in cells.values()}
        for seed_set, cells in sets.items():
            missing = [c for c in configs if c not in cells]
            if missing and partial:
                print(f"{name}, seed set {seed_set}: incomplete, left out")
                continue
            if missing:
                raise UsageError(f"{name}: configuration {missing[0]} has no curves for seed set {seed_set}")
            for config, per_seed in cells.items():
                where = f"{name}, seed set {seed_set}, configuration {config}"
                if len(seeds) != 1 or not per_seed:
                    raise UsageError(f"{where}: {len(per_seed)} seeds where others have {sorted(seeds)}")
                if any(len(v) < epochs for v in per_seed):
                    raise UsageError(f"{where}: fewer than {epochs} epochs (--epochs)")
                if not all(math.isfinite(x) for v in per_seed for x in v[:epochs]):
                    raise UsageError(f"{where}: val_acc holds NaN or infinite values")
                cells[config] = [v[:epochs] for v in per_seed]
        complete = {s: dict(sorted(cells.items())) for s, cells in sorted(sets.items())
                    if len(cells) == len(configs)}
        if len(complete) < 2:
            raise UsageError(f"{name}: fewer than 2 complete seed sets; held-out scoring needs 2")
        found[key] = complete
    return dict(sorted(found.items(), key=lambda kv: arm_order(kv[0])))


def arm_order(key: ArmKey) -> tuple:
    """The degradation grid first, its reference decay (the larger lr_gamma) before the other; then
    the sampled spaces by name."""
    gamma = float(key[1].split("=")[1]) if key[1].startswith("lr_gamma=") else 0.0
    return key[0] != "degradation", key[0], -gamma


def lr_gamma(key: ArmKey) -> float | None:
    """The lr_gamma of a degradation arm; None for a sampled space, whose configurations each have one."""
    return float(key[1].split("=")[1]) if key[1].startswith("lr_gamma=") else None


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
