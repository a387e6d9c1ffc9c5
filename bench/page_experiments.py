"""Small experiment folders of each kind the report page draws, made without training anything: the
files a search writes (tunelab_plan.json, each trial's params.json and result.json) with made-up but
plausible curves. tests/test_page_kinds.py builds pages from them; bench/bench_page.py --optuna times
the page of a 64-trial Optuna search made here.

Every curve is a deterministic function of the trial's number and config, so a folder is the same
bytes each time it is made.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SEED_NOISE = (0.0, 0.012, -0.009, 0.006, -0.004)


def write_plan(folder: Path, space: str, scheduler: str, search: str, epochs: int, **extra) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    plan = {"space": space, "profile": "smoke", "config": {"epochs": epochs}, "scheduler": scheduler,
            "search": search, "alpha": 0.2, "smoothing": 0.0, "objectives": [], **extra}
    (folder / "tunelab_plan.json").write_text(json.dumps(plan))


def write_trial(folder: Path, n: int, params: dict, curve: list[float], *, seeds: int = 1,
                done: bool = True, configs: list[dict] | None = None, per_epoch: int = 1,
                extra: dict | None = None) -> None:
    """Trial `n` with val_acc `curve` (one value per report, `per_epoch` reports an epoch), val_loss
    and train_loss beside it, its lockstep seeds' own values when `seeds` > 1, wall time, `extra`
    metrics in every report, and Ray's `config` per report (`configs`, as a PBT member's schedule
    changes) or its params."""
    trial_id = f"abcde_{n:05d}"
    trial = folder / f"train_cnn_{trial_id}_{n}"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(params))
    rows = []
    for i, acc in enumerate(curve):
        row = {"epoch": (i + 1) / per_epoch if per_epoch > 1 else i + 1, "val_acc": acc,
               "val_loss": round(2.3 * (1 - acc) + 0.1, 6), "train_loss": round(2.2 * (1 - acc) ** 1.2, 6),
               "lr": params.get("lr", 0.02), **(extra or {})}
        if seeds > 1:
            row["seeds"] = seeds
            for metric in ("val_acc", "val_loss", "train_loss"):
                for s in range(seeds):
                    sign = 1 if metric == "val_acc" else -1
                    row[f"{metric}_seed{s}"] = round(row[metric] + sign * SEED_NOISE[s % 5] * (1 + i % 2), 6)
        row.update({"training_iteration": i + 1, "trial_id": trial_id, "time_this_iter_s": 4.0 + n % 3,
                    "time_total_s": (i + 1) * (4.0 + n % 3), "timestamp": 1_800_000_000 + (i + 1) * 5,
                    "done": done and i == len(curve) - 1,
                    "config": (configs[i] if configs else params)})
        rows.append(row)
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def rising(top: float, epochs: int, rate: float = 0.6) -> list[float]:
    """A learning curve rising to about `top`."""
    return [round(0.1 + (top - 0.1) * (1 - math.exp(-rate * (e + 1))), 6) for e in range(epochs)]


def degradation(folder: Path, seeds: int = 3, epochs: int = 4) -> Path:
    """The degradation grid (depth × skip), lockstep seeds, FIFO."""
    write_plan(folder, "degradation", "fifo", "grid", epochs)
    for n, (blocks, skip) in enumerate((b, s) for s in (False, True) for b in (1, 5, 7)):
        top = 0.62 - (0.0 if skip else 0.03 * blocks) + 0.01 * blocks * skip
        params = {"model": "cnn", "num_blocks": blocks, "num_filters": 16, "skip": skip, "seeds": seeds,
                  "epochs": epochs}
        write_trial(folder, n, params, rising(top, epochs), seeds=seeds)
    return folder


def kd(folder: Path, seeds: int = 3, epochs: int = 3) -> Path:
    """Two KD cells and the baseline (w_st 0, w_lab 1), lockstep seeds."""
    write_plan(folder, "kd", "fifo", "grid", epochs)
    cells = [{"temperature": 1.0, "w_st": 0.0, "w_lab": 1.0}, {"temperature": 2.0, "w_st": 1.0, "w_lab": 0.5},
             {"temperature": 5.0, "w_st": 1.0, "w_lab": 0.5}]
    for n, cell in enumerate(cells):
        write_trial(folder, n, {**cell, "seeds": seeds, "epochs": epochs}, rising(0.55 + 0.02 * n, epochs),
                    seeds=seeds)
    return folder


def optuna_search(folder: Path, trials: int = 12, epochs: int = 6) -> Path:
    """An Optuna search over lr and weight_decay (log-distributed) and num_blocks (integers) under
    ASHA: one seed a trial; the trials below the running median at epoch 2 stop there, each stop
    recorded as asha records it (store/lifecycle.py)."""
    from store.experiment import ExperimentFolder
    from store.lifecycle import save_rung_decisions

    write_plan(folder, "degradation", "asha", "optuna", epochs, num_samples=trials)
    finals, decisions = [], []
    for n in range(trials):
        # a low-discrepancy walk through the box, the same each time
        u, v, w = (n * 0.618034) % 1, (n * 0.754878) % 1, (n * 0.569840) % 1
        lr, decay, blocks = 10 ** (-3 + 2.5 * u), 10 ** (-5 + 3 * v), 1 + int(7 * w)
        top = 0.7 - 0.25 * (math.log10(lr) + 1.5) ** 2 - 0.02 * blocks + 0.01 * (math.log10(decay) + 5)
        curve = rising(max(top, 0.15), epochs)
        cutoff = sorted(finals)[len(finals) // 2] if n >= 4 else None
        stop = cutoff is not None and curve[1] < cutoff
        if stop:
            trial_id = f"abcde_{n:05d}"  # write_trial's
            decisions.append({"rung": 2, "rule": "asha", "trial": trial_id, "recorded": len(finals),
                              "signal": {trial_id: curve[1]}, "cutoff": cutoff, "quantile": 0.5, "kept": [],
                              "stopped": {trial_id: "cutoff"}})
        finals.append(curve[1])
        params = {"lr": round(lr, 8), "weight_decay": round(decay, 9), "num_blocks": blocks,
                  "num_filters": 16, "skip": False, "model": "cnn", "epochs": epochs}
        write_trial(folder, n, params, curve[:2] if stop else curve)
    save_rung_decisions(ExperimentFolder(folder), decisions)
    return folder


def pbt(folder: Path, members: int = 4, epochs: int = 4) -> Path:
    """A PBT population of kd members: after epoch 2 the bottom half goes on from the top half's
    checkpoints of epoch 2 with perturbed lr and temperature, each exploit recorded in pbt_global.txt
    as Ray writes it; the top half trains on unchanged."""
    write_plan(folder, "kd", "pbt", "grid", epochs, num_samples=members)
    start = {n: {"lr": round(0.01 * (n + 1), 6), "temperature": 1.0 + 2 * n, "w_st": 1.0, "w_lab": 0.5,
                 "epochs": epochs} for n in range(members)}
    curves = {n: rising(0.5 + 0.03 * n, epochs) for n in range(members)}
    exploits = []
    for n in range(members):
        configs, curve = [start[n]] * epochs, curves[n]
        if n < members // 2:
            parent = members - 1 - n
            explored = {**start[parent], "lr": round(start[parent]["lr"] * 1.2, 6),
                        "temperature": round(start[parent]["temperature"] * 0.8, 4)}
            configs = [start[n]] * 2 + [explored] * (epochs - 2)
            curve = curves[n][:2] + [round(v + 0.004, 6) for v in curves[parent][2:]]
            tags = [f"{m}_lr={start[m]['lr']}" for m in (n, parent)]
            exploits.append([*tags, 2, 2, 0, explored])
        write_trial(folder, n, start[n], curve, configs=configs)
    (folder / "pbt_global.txt").write_text("".join(json.dumps(e) + "\n" for e in exploits))
    return folder


def mnist(folder: Path, seeds: int = 3, epochs: int = 3) -> Path:
    """The warm-up: the MLP against two CNNs, lockstep seeds, with their parameter counts."""
    write_plan(folder, "mnist", "fifo", "grid", epochs)
    for n, (model, params) in enumerate((("mlp", 669_706), ("cnn1", 93_322), ("cnn2", 421_642))):
        write_trial(folder, n, {"model": model, "seeds": seeds, "epochs": epochs},
                    rising(0.95 + 0.015 * n, epochs), seeds=seeds, extra={"params": params})
    return folder


def teachers(folder: Path, seeds: int = 2, epochs: int = 4) -> Path:
    """The two kd teachers, lockstep seeds."""
    write_plan(folder, "teachers", "fifo", "grid", epochs)
    for n, (model, params) in enumerate((("resnet32", 464_154), ("wrn14_2", 692_986))):
        write_trial(folder, n, {"model": model, "seeds": seeds, "epochs": epochs},
                    rising(0.78 + 0.01 * n, epochs), seeds=seeds, extra={"params": params})
    return folder


def lora(folder: Path) -> Path:
    """Full fine-tuning against every LoRA setting, one epoch reported each half epoch."""
    write_plan(folder, "lora", "fifo", "grid", 1)
    settings = ("full", "q8", "q16", "qv8", "qv16", "qkvo8", "qkvo16")
    for n, setting in enumerate(settings):
        size = 66_955_010 if setting == "full" else 1_538 + 6_144 * n
        write_trial(folder, n, {"setting": setting, "epochs": 1}, rising(0.8 - 0.005 * n, 2), per_epoch=2,
                    extra={"trainable_params": size, "log10_trainable_params": round(math.log10(size), 6)})
    return folder


def lora_front(folder: Path, trials: int = 10) -> Path:
    """A two-objective Optuna search (val_acc up, trainable_params down) over LoRA's targets and rank,
    two reports an epoch: more parameters buy accuracy up to a point, so some trials are dominated."""
    write_plan(folder, "lora_front", "moasha", "optuna", 1, num_samples=trials,
               objectives=[["val_acc", "max"], ["trainable_params", "min"]])
    for n in range(trials):
        targets, rank = ("q", "qv", "qkvo")[n % 3], 2 ** (n % 6)
        size = 1_538 + 6_144 * rank * len(targets)
        top = 0.70 + 0.03 * math.log2(rank) - 0.004 * (n % 4) + 0.01 * len(targets)
        write_trial(folder, n, {"lora_targets": targets, "lora_rank": rank, "setting": "qv8", "epochs": 1},
                    rising(min(top, 0.86), 2), per_epoch=2,
                    extra={"trainable_params": size, "log10_trainable_params": round(math.log10(size), 6)})
    return folder


def extract(folder: Path) -> Path:
    """Frozen features + LinearSVC: two backbones × two poolings, one report each."""
    grid = {"extractor": ["minilm", "distilbert"], "pooling": ["cls", "mean"]}
    write_plan(folder, "extract", "fifo", "grid", 1, grid=grid)
    cells = [(e, p) for e in grid["extractor"] for p in grid["pooling"]]
    for n, (extractor, pooling) in enumerate(cells):
        acc = 0.76 + 0.05 * (extractor == "distilbert") + 0.01 * (pooling == "mean")
        write_trial(folder, n, {"extractor": extractor, "pooling": pooling, "epochs": 1}, [round(acc, 4)],
                    extra={"train_acc": round(acc + 0.1, 4), "test_acc": round(acc - 0.01, 4),
                           "dim": 384 if extractor == "minilm" else 768})
    return folder


def interrupted(folder: Path, epochs: int = 4) -> Path:
    """A degradation search a Ctrl-C stopped: two trials ended, one halfway, its mark written."""
    write_plan(folder, "degradation", "fifo", "grid", epochs)
    for n, blocks in enumerate((1, 5, 7)):
        curve = rising(0.6 - 0.02 * blocks, epochs)
        write_trial(folder, n, {"model": "cnn", "num_blocks": blocks, "num_filters": 16, "skip": False,
                                "epochs": epochs},
                    curve if n < 2 else curve[:2], done=n < 2)
    mark = {"interrupted": "2026-12-06T10:00:00+0000", "resume": f"python search/run.py --resume {folder}"}
    (folder / "tunelab_interrupted.json").write_text(json.dumps(mark) + "\n")
    return folder


def seeds_as_trials(folder: Path, seeds: int = 3) -> Path:
    """Two lora settings, each seed its own trial (a `seed` grid axis, as the fine-tuning studies run
    their seeds), one epoch reported each half."""
    write_plan(folder, "lora", "fifo", "grid", 1,
               grid={"setting": ["full", "qv8"], "seed": list(range(seeds))})
    for n, (setting, seed) in enumerate((s, k) for s in ("full", "qv8") for k in range(seeds)):
        curve = [round(v + SEED_NOISE[seed], 6) for v in rising(0.8 - 0.02 * (setting == "qv8"), 2)]
        size = 66_955_010 if setting == "full" else 13_826
        write_trial(folder, n, {"setting": setting, "seed": seed, "epochs": 1}, curve, per_epoch=2,
                    extra={"trainable_params": size, "log10_trainable_params": round(math.log10(size), 6)})
    return folder
