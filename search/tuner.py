"""Builds the `tune.Tuner` for a Space: scheduler, searcher, resources and the RunConfig."""

from __future__ import annotations

import itertools
import time
from typing import Any

from ray import tune

from analysis.rungs import trial_count
from search.halving import asha
from search.mo_halving import moasha, optuna_searcher
from search.pbt import pbt_param_space, pbt_scheduler, pbt_searcher
from search.plan import SearchPlan
from search.sync_halving import significance, sync_halving
from search.wilcoxon import WilcoxonStopping

SYNCHRONOUS = ("halving", "significance")  # schedulers whose rungs wait for a whole cohort
MAX_FAILURES = 2  # a crashing trial is retried from its last checkpoint this many times


def make_scheduler(plan: SearchPlan) -> tune.schedulers.TrialScheduler:
    settings = plan.scheduler_settings()  # what the plan stores of it
    if settings["rule"] == "fifo":
        return tune.schedulers.FIFOScheduler()
    if settings["rule"] == "pbt":
        return pbt_scheduler(plan)
    space = plan.space
    grace, factor = settings.get("grace_period", 0), settings.get("reduction_factor", 0)
    # optuna proposes trials one by one: the synchronous cohort is num_samples, without baselines
    trials = (trial_count(plan.grid, space.baselines, plan.num_samples) if plan.search == "grid"
              else plan.num_samples)
    # Never stopped early: the baselines and every arm of a study question (Space.questions, --question)
    kept = plan.kept() if plan.search == "grid" else ()
    # The rung decisions go to the experiment folder, where --resume finds them and every reader takes
    # what it says of a stop from (store/lifecycle.py).
    if plan.scheduler == "moasha":
        return moasha(plan.objectives, grace, factor, plan.max_t, kept, plan.experiment_dir)
    where = {"record": plan.experiment_dir, "metric": space.metric, "mode": space.mode}
    if plan.scheduler == "halving":
        return sync_halving(trials, grace, factor, plan.max_t, plan.smoothing, kept, **where)
    if plan.scheduler == "significance":
        return significance(trials, grace, factor, plan.max_t, plan.alpha, plan.smoothing, kept, **where)
    if plan.scheduler == "wilcoxon":
        return WilcoxonStopping(plan.max_t, settings["p_threshold"], settings["n_startup_steps"],
                                settings["wave"], kept, **where)
    return asha(grace, factor, plan.max_t, plan.smoothing, plan.kept(), plan.experiment_dir)


def make_searcher(plan: SearchPlan):
    if plan.scheduler == "pbt":
        return pbt_searcher(plan)
    if plan.search != "optuna":
        if not plan.space.baselines:
            return None
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Each point runs once per combination of the grid axes it leaves open (the seeds) and takes
        # one of num_samples: grid and baselines then run the same seeds and repeats.
        return BasicVariantGenerator(points_to_evaluate=[dict(b) for b in plan.space.baselines]
                                     * plan.num_samples)
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory ..."

    if plan.objectives:
        searcher = optuna_searcher(plan.objectives, plan.config.get("seed", 0), plan.num_samples)
    else:
        searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=plan.config.get("seed", 0)))
    # A synchronous rung waits for its whole cohort (num_samples trials), and a trial paused there still
    # counts against the limit: the sampler proposes the whole cohort before any rung.
    concurrent = plan.num_samples if plan.scheduler in SYNCHRONOUS else plan.max_concurrent
    return ConcurrencyLimiter(searcher, max_concurrent=max(1, concurrent))


def trial_configs(plan: SearchPlan) -> list[dict[str, Any]]:
    """The config of every grid cell and baseline (sampled keys left at the plan's values)."""
    axes = list(plan.grid)
    cells = [{**plan.config, **dict(zip(axes, values, strict=True))}
             for values in itertools.product(*plan.grid.values())]
    return cells + [{**cell, **baseline} for baseline in plan.space.baselines for cell in cells]


def ship_data(plan: SearchPlan) -> Any:
    """The data the plan's trials read, loaded once here by the space's `ship` (None when it has none).
    Handed to trainable_for, it reaches every trial through Ray's object store, so worker nodes need
    no data of their own."""
    if plan.space.ship is None:
        return None
    started = time.perf_counter()
    shipment = plan.space.ship(trial_configs(plan))
    print(f"data for the trials: {shipment.describe()}, loaded in {time.perf_counter() - started:.1f} s",
          flush=True)
    return shipment


def trainable_for(plan: SearchPlan, shipment: Any = None):
    """The space's trainable with the plan's resources and, given one, the driver's data shipment,
    which `tune.with_parameters` puts in Ray's object store once (the trainable's `shipment`)."""
    if plan.gpus is None:
        raise ValueError("the plan's GPU fraction is undecided: search.resources.settle_resources first")
    trainable = plan.space.load_trainable()
    if shipment is not None:
        trainable = tune.with_parameters(trainable, shipment=shipment)
    return tune.with_resources(trainable, {"cpu": plan.cpus, "gpu": plan.gpus})


def build_tuner(plan: SearchPlan, shipment: Any = None) -> tune.Tuner:
    from search.status import progress_reporter

    space = plan.space
    return tune.Tuner(
        trainable_for(plan, shipment),
        param_space=pbt_param_space(plan) if plan.scheduler == "pbt" else plan.param_space(),
        tune_config=tune.TuneConfig(
            # Two objectives: the searcher and the scheduler hold their own lists (search/mo_halving.py).
            metric=None if plan.objectives else space.metric,
            mode=None if plan.objectives else space.mode,
            scheduler=make_scheduler(plan),
            search_alg=make_searcher(plan),
            num_samples=plan.num_samples * ((1 + len(space.baselines))
                                            if plan.search == "grid" and plan.scheduler != "pbt" else 1),
            # A fresh actor costs ~3 s (process + torch import); short trials reuse them (3.4× here).
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=plan.name,
            storage_path=str(plan.storage),
            # num_to_keep also makes Ray sync the driver's files to the storage after every trial
            # checkpoint; a restored or unpaused trial's loggers copy result.json back from there, so
            # without it rows written since the last periodic sync are lost (docs/storage.md §4).
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if plan.scheduler == "pbt" else 1,  # pbt: a clone's parent state is kept
                checkpoint_score_attribute=space.metric,
                checkpoint_score_order=space.mode,
            ),
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            callbacks=plan.callbacks,
            progress_reporter=progress_reporter(plan),
            verbose=1,
        ),
    )
