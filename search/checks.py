"""The checks of `--objective` and `--scheduler pbt` that need no Ray: search/options.py runs them
while it reads the command line, so bad input is refused in one line before Ray is imported. The
schedulers they guard are search/mo_halving.py (MOASHA) and search/pbt.py (population-based training).
"""

from __future__ import annotations

import argparse

from cli import UsageError
from spaces import SPACES, Space

MAX_POPULATION = 64
"""The largest pbt population `--num-samples` may ask for."""


def parse_objectives(text: str | None, space: Space) -> list[list[str]]:
    """`--objective val_acc:max,trainable_params:min` -> [[name, mode], ...] (lists: the plan's JSON
    keeps them equal on resume); [] when not given. Each name must be a metric the space reports."""
    if text is None:
        return []
    usage = "--objective expects NAME:max|min,NAME:max|min"
    items = [item.strip() for item in text.split(",")]
    if len(items) != 2:
        raise UsageError(f"--objective names {len(items)} objective(s); the rule takes two ({usage})")
    known = (space.metric, *space.objectives)
    objectives = []
    for item in items:
        name, sep, mode = item.partition(":")
        if not sep or not name or mode not in ("max", "min"):
            raise UsageError(f"{usage}, got '{item}'")
        if name not in known:
            raise UsageError(f"--objective {name}: space '{space.name}' does not report it (it reports "
                             f"{', '.join(known)})")
        objectives.append([name, mode])
    if objectives[0][0] == objectives[1][0]:
        raise UsageError(f"--objective names {objectives[0][0]} twice; a trade-off takes two metrics")
    return objectives


def format_objectives(objectives: list[list[str]]) -> str | None:
    """The plan's objectives as `--objective` spells them (None for none)."""
    return ",".join(f"{name}:{mode}" for name, mode in objectives) or None


def check_objectives(objectives: list[list[str]], scheduler: str, smoothing_given: bool, search: str,
                     trials: int) -> None:
    """What --objective combines with (docs/tradeoffs.md): the scheduler moasha (the two-objective rung
    rule) or fifo; a grid only when it has two configurations to trade off; raw values, no smoothing."""
    if not objectives:
        if scheduler == "moasha":
            raise UsageError("--scheduler moasha ranks by two objectives: give --objective NAME:max|min,"
                             "NAME:max|min")
        return
    if scheduler not in ("moasha", "fifo"):
        raise UsageError(f"--scheduler {scheduler} stops on one metric; with --objective use moasha "
                         "(the default) or fifo")
    if smoothing_given:
        raise UsageError("--smoothing smooths one metric; --objective's rule decides on the raw values")
    if search == "grid" and trials < 2:
        raise UsageError(f"--objective with --search grid needs at least two configurations to trade "
                         f"off; this grid has {trials}")


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
