"""`--scheduler moasha`: asynchronous successive halving on two objectives, the rung rule of
analysis/pareto.py (MOASHA's non-dominated sorting) in a Ray scheduler.

Like ASHA it is asynchronous: a trial reaching a rung is judged at once against every trial that
reported at that rung before it (no pausing for peers, so it suits a sampler that proposes trials one
by one). It goes on when it is on the first front of that rung or within the top
ceil(n / reduction_factor) by (front, crowding distance); otherwise it stops. A parameter count is
fixed at the start and every trainable reports it in each result (trainables/finetune.py
`trainable_params`, trainables/cnn.py `params`), so the rule weighs it from the first rung on.
"""

from __future__ import annotations

from ray.tune.schedulers import FIFOScheduler

from analysis.pareto import Objective, mo_rung_decision
from analysis.rungs import is_kept, rungs
from cli import UsageError
from spaces.base import Space


class MultiObjectiveHalving(FIFOScheduler):
    """MOASHA on `objectives` at the rungs of grace_period × reduction_factor^k; kept go on."""

    def __init__(self, objectives: list[Objective], grace_period: int, reduction_factor: int, max_t: int,
                 kept: tuple[dict, ...] = ()):
        super().__init__()
        self.objectives = [tuple(o) for o in objectives]
        self.reduction_factor, self.max_t, self.kept = reduction_factor, max_t, kept
        self.rungs = rungs(grace_period, reduction_factor, max_t)
        self.recorded: dict[int, dict[str, tuple[float, ...]]] = {r: {} for r in self.rungs}
        """rung -> trial id -> its objectives there, in the order the trials arrived."""
        self.stopped: dict[str, int] = {}
        """trial id -> the rung it was stopped at."""

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are the scheduler's own; TuneConfig's single metric is unused

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        at = int(result.get("training_iteration", 0))
        if at not in self.recorded or any(name not in result for name, _ in self.objectives):
            return self.CONTINUE
        points = self.recorded[at]
        points[trial.trial_id] = tuple(float(result[name]) for name, _ in self.objectives)
        if at >= self.max_t or is_kept(trial.config, self.kept):
            return self.CONTINUE
        keep, _ = mo_rung_decision(points, [mode for _, mode in self.objectives], self.reduction_factor)
        if trial.trial_id in keep:
            return self.CONTINUE
        self.stopped[trial.trial_id] = at
        return self.STOP

    def debug_string(self) -> str:
        return f"MOASHA: {len(self.stopped)} stopped at a rung" if self.stopped else ""


def moasha(objectives: list[Objective], grace_period: int, reduction_factor: int, max_t: int,
           kept: tuple[dict, ...] = ()) -> MultiObjectiveHalving:
    return MultiObjectiveHalving(objectives, grace_period, reduction_factor, max_t, kept)


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


def optuna_searcher(objectives: list[list[str]], seed: int, num_samples: int):
    """Ray's OptunaSearch on both objectives (metric and mode lists) with Optuna's multi-objective TPE
    (docs/tradeoffs.md says why TPE, not NSGA-II): multivariate, so it models rank and rate together, and
    random for the first third of the budget (at most Optuna's default 10) instead of the first 10, so a
    budget of a dozen trials still gets modelled proposals."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True,
                                         n_startup_trials=max(2, min(10, num_samples // 3)))
    return OptunaSearch(sampler=sampler, metric=[name for name, _ in objectives],
                        mode=[mode for _, mode in objectives])
