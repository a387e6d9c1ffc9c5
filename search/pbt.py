"""`--scheduler pbt`: Ray's PopulationBasedTraining over a Space's perturbable keys (`Space.perturb`),
and the schedules it leaves behind.

A population of `--num-samples` members (the space's `population` by default) trains one
configuration; only the perturbable keys differ. Member i starts at the i-th of n log-spaced points of
each key's range, the keys' orders shuffled by the config's seed (a Latin hypercube on the log scale):
diverse and reproducible. After every report, a member in the bottom quarter of the population's latest
scores exploits one of the top quarter: it takes that member's exact checkpoint (model, optimizer, LR
schedule, RNG: trainables/loop.py, trainables/finetune.py) and its config, then explores: each key is
multiplied by 0.8 or 1.2, or resampled log-uniformly with probability 0.25, and clamped into its range.
The trainable restarts from the copied state with the explored config: its rates are made the restored
schedule's base rates (trainables.loop.rebase_rates), the KD loss is built from the new temperature
and w_st. Which member is cloned and how values move are Ray's draws, in the order reports arrive, so
a PBT search is not reproducible run to run, unlike its starting population.

The record: every result row carries the config the member trained that report with (Ray's
`config` in result.json), and Ray's `pbt_global.txt` lists every exploit; store/experiment.py reads
both (`ExperimentFolder.pbt_exploits`, `Trial.schedule`), and `schedules` here joins them.
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from cli import UsageError
from search.plan import SearchPlan
from spaces import SPACES, Space
from store.experiment import ExperimentFolder, NotAnExperiment

PERTURBATION_FACTORS = (1.2, 0.8)
RESAMPLE_PROBABILITY = 0.25
QUANTILE = 0.25  # bottom and top quarter (at least one member each in a population of 2 or more)
MAX_POPULATION = 64


def check_pbt(space: Space, args: argparse.Namespace, grid: dict[str, list], pinned: list[str]) -> int:
    """The population size of a pbt search, after checking it can run; removes the perturbable keys from
    `grid` (the population replaces those axes). UsageError, one line, when it cannot."""
    if not space.perturb:
        able = ", ".join(s.name for s in SPACES.values() if s.perturb)
        raise UsageError(f"--scheduler pbt: space '{space.name}' declares no perturbable keys "
                         f"(spaces that do: {able})")
    if args.search != "grid":
        raise UsageError(f"--scheduler pbt chooses the values itself: it takes --search grid, "
                         f"not {args.search}")
    if args.smoothing is not None:
        raise UsageError("--smoothing is for the halving schedulers; pbt compares members' latest reports")
    ranges = ", ".join(f"{k} in [{lo:g}, {hi:g}]" for k, (lo, hi) in space.perturb.items())
    fixed = [k for k in pinned if k in space.perturb]
    if fixed:
        raise UsageError(f"--scheduler pbt tunes {', '.join(fixed)} itself ({ranges}); drop --set {fixed[0]}")
    for key in space.perturb:
        grid.pop(key, None)
    if len(grid.get("seed", [0])) > 1:
        raise UsageError("--scheduler pbt runs one population per search: start one search per seed "
                         "(--set seed=N)")
    for key, values in grid.items():
        if len(values) > 1:
            raise UsageError(f"--scheduler pbt trains one configuration: pin {key} with --set {key}=VALUE "
                             f"(one of {', '.join(map(str, values))})")
    if "num_samples" not in args.given:
        return space.population
    if not 2 <= args.num_samples <= MAX_POPULATION:
        raise UsageError(f"--num-samples is the pbt population: 2 to {MAX_POPULATION} members, "
                         f"got {args.num_samples}")
    return args.num_samples


def initial_population(perturb: dict[str, tuple[float, float]], members: int, seed: int) -> list[dict]:
    """Each member's starting values: per key, a permutation (by `seed`; the first key in order) of the
    `members` points lo·(hi/lo)^((j + 0.5)/members), j = 0..members-1."""
    rng = random.Random(seed)
    orders = {}
    for n, key in enumerate(perturb):
        order = list(range(members))
        if n:
            rng.shuffle(order)
        orders[key] = order
    return [{key: lo * (hi / lo) ** ((orders[key][i] + 0.5) / members) for key, (lo, hi) in perturb.items()}
            for i in range(members)]


@dataclass(frozen=True)
class Clamp:
    """PBT's custom_explore_fn: Ray's ×0.8/×1.2 may leave a key's range; the value is put back at the
    nearest bound. (A class, not a closure: Ray pickles the scheduler with the search.)"""

    ranges: dict[str, tuple[float, float]]

    def __call__(self, config: dict) -> dict:
        for key, (lo, hi) in self.ranges.items():
            config[key] = min(max(float(config[key]), lo), hi)
        return config


class SyncedPBT(PopulationBasedTraining):
    """Ray's PBT with the experiment synced to the storage after every trial checkpoint. A pbt search keeps
    every checkpoint (a clone may take its parent's checkpoint of a report the parent has since left
    behind, which CheckpointConfig(num_to_keep=1) would delete; search/tuner.py), but Ray forces that
    sync only every num_to_keep checkpoints, and PBT pauses and restarts trials all the time: a
    restarted trial copies its result.json back from the storage (docs/storage.md §4), so rows not yet
    synced would be lost."""

    def on_trial_result(self, tune_controller, trial, result):
        # Private to Ray 2.60's TuneController and _ExperimentCheckpointManager (instance attributes, so
        # raycompat's class check cannot see them): a Ray without them fails here, saying so.
        manager = getattr(tune_controller, "_checkpoint_manager", None)
        if not hasattr(manager, "_sync_every_n_trial_checkpoints"):
            raise RuntimeError("--scheduler pbt: this Ray's TuneController has no "
                               "_checkpoint_manager._sync_every_n_trial_checkpoints (tunelab is tested "
                               "with the Ray of constraints.txt)")
        manager._sync_every_n_trial_checkpoints = 1
        return super().on_trial_result(tune_controller, trial, result)


def pbt_scheduler(plan: SearchPlan) -> PopulationBasedTraining:
    """Exploit and explore after every report (half an epoch for lora, an epoch for kd)."""
    perturb = plan.space.perturb
    return SyncedPBT(
        time_attr="training_iteration",
        perturbation_interval=1,
        hyperparam_mutations={k: tune.loguniform(lo, hi) for k, (lo, hi) in perturb.items()},
        quantile_fraction=QUANTILE,
        resample_probability=RESAMPLE_PROBABILITY,
        perturbation_factors=PERTURBATION_FACTORS,
        custom_explore_fn=Clamp(dict(perturb)),
    )


def pbt_searcher(plan: SearchPlan):
    """Hands member i its starting values (initial_population), one member per sample."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    start = initial_population(plan.space.perturb, plan.num_samples, int(plan.config.get("seed", 0)))
    return BasicVariantGenerator(points_to_evaluate=start)


def pbt_param_space(plan: SearchPlan) -> dict[str, Any]:
    """The plan's config and grid with every perturbable key as its range; the searcher's points set
    each member's start."""
    return {**plan.param_space(),
            **{k: tune.loguniform(lo, hi) for k, (lo, hi) in plan.space.perturb.items()}}


@dataclass
class Segment:
    """Reports a member trained in a row from one start: its own first report, or another's checkpoint."""

    rows: list[tuple[int, dict]]
    """(report, {key: value}) in the order written."""
    parent: str | None = None
    """The trial id whose checkpoint this segment went on from (None: the member's own start)."""

    @property
    def first(self) -> int:
        return self.rows[0][0]


@dataclass
class Member:
    trial_id: str
    segments: list[Segment]
    final: dict[str, float]
    """Its last report's metrics."""


def _segments(rows: list[tuple[int, dict]], parents: list[str]) -> list[Segment]:
    """Cuts a member's rows where an exploit put it on another's checkpoint: where the values change
    (explore always moves them, unless every key sits clamped at a bound) or the report count jumps.
    `parents` are its exploits' parents in Ray's order (pbt_global.txt)."""
    segments: list[Segment] = []
    waiting = list(parents)
    for report, values in rows:
        if segments:
            last_report, last_values = segments[-1].rows[-1]
            if values == last_values and report == last_report + 1:
                segments[-1].rows.append((report, values))
                continue
        parent = waiting.pop(0) if segments and waiting else None
        segments.append(Segment([(report, values)], parent))
    return segments


def members(experiment_dir, keys: list[str]) -> dict[str, Member]:
    """Every member's segments of `keys` values and its last metrics, read from the stored experiment."""
    folder = ExperimentFolder(experiment_dir)
    parents: dict[str, list[str]] = {}
    for event in folder.pbt_exploits():
        parents.setdefault(event["trial_id"], []).append(event["parent_id"])
    found = {}
    for trial in folder.trials():
        rows = trial.results()
        if not rows:
            continue
        trial_id = str(rows[0].get("trial_id", trial.name))
        found[trial_id] = Member(trial_id, _segments(trial.schedule(keys), parents.get(trial_id, [])),
                                 {k: v for k, v in rows[-1].items() if isinstance(v, int | float)})
    return found


def lineage(found: dict[str, Member], trial_id: str, upto: int | None = None,
            depth: int = 0) -> list[tuple[int, str, dict]]:
    """(report, trial id, values) of every report that made `trial_id`'s model as of report `upto`
    (its last, by default): its latest segment that starts at or before `upto`, preceded by the
    lineage of that segment's parent up to the report before it starts."""
    member = found.get(trial_id)
    if member is None or depth > len(found) * 64:  # a parent without results, or a malformed record
        return []
    segments = [s for s in member.segments if upto is None or s.first <= upto]
    if not segments:
        return []
    segment = segments[-1]
    own = [(report, trial_id, values) for report, values in segment.rows if upto is None or report <= upto]
    if segment.parent is None:
        return own
    return lineage(found, segment.parent, segment.first - 1, depth + 1) + own


def describe(steps: list[tuple[int, str, dict]], keys: list[str]) -> str:
    """`r1-2 [00003] lr=0.01 T=2; r3-4 [00001] ...`: the values by report, and whose run trained it."""
    spans: list[list] = []
    for report, trial_id, values in steps:
        shown = (trial_id[-5:], tuple(_short(values.get(k)) for k in keys))
        if spans and spans[-1][2] == shown and spans[-1][1] == report - 1:
            spans[-1][1] = report
        else:
            spans.append([report, report, shown])
    return "; ".join(f"{f'r{a}' if a == b else f'r{a}-{b}'} [{who}] "
                     + " ".join(f"{k}={v}" for k, v in zip(keys, shown, strict=True))
                     for a, b, (who, shown) in spans)


def _short(value: Any) -> str:
    return "?" if value is None else f"{float(value):.3g}"


def summary_lines(plan: SearchPlan) -> list[str]:
    """The closing summary's PBT part: each member's final metric and the schedule that made its final
    model (its lineage through the checkpoints it took), and the best final schedule. PBT stops no
    member: all end at the budget's last report, so their last reports rank as equals."""
    space = plan.space
    keys = list(space.perturb)
    try:
        found = members(plan.experiment_dir, keys)
    except NotAnExperiment as err:  # the results are intact; only the lineage cannot be told
        return [f"pbt: no schedules ({err})"]
    metric, sign = space.metric, (1 if space.mode == "max" else -1)
    scored = sorted((m for m in found.values() if isinstance(m.final.get(metric), int | float)
                     and not math.isnan(m.final[metric])), key=lambda m: -sign * m.final[metric])
    if not scored:
        return []
    exploits = sum(len(s) - 1 for s in (m.segments for m in found.values()))
    per_report = f"{1 / space.reports_per_epoch:g} epoch"
    lines = [f"pbt: {len(found)} members, {exploits} exploits; each member's final model by report r "
             f"(one report = {per_report}), [member] whose run trained it: a change of member is an exploit"]
    for m in scored:
        lines.append(f"  {m.trial_id}  {metric} {m.final[metric]:.4f} at epoch {m.final.get('epoch', 0):g}: "
                     f"{describe(lineage(found, m.trial_id), keys)}")
    best = scored[0]
    lines.append(f"best final schedule: {best.trial_id}, {metric} {best.final[metric]:.4f} at epoch "
                 f"{best.final.get('epoch', 0):g} (its last report, one run): "
                 f"{describe(lineage(found, best.trial_id), keys)}")
    return lines
