"""Every private Ray API tunelab relies on, in one place, each with why (Ray 2.60, pinned in
constraints.txt).

Ray does not promise these names between versions. Code that needs one asks `private(NAME)`,
`require(NAME)` for a class whose private attributes it reads or overrides, or `check_state(NAME, obj)`
for an object unpickled from Ray's experiment state whose private attributes it rewrites, so a Ray
upgrade that moves one fails here, in one line that names the API, the Ray version and the reason
tunelab uses it, instead of deep inside a search. `tests/test_raycompat.py` resolves every entry
against the installed Ray, and fails on any private attribute that code outside this package reads
without an entry here. The package sits at the bottom of the layers (it imports nothing of tunelab) because
both store/ and search/ use it; Ray itself is imported only on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

PRIVATE: dict[str, tuple[str, str, str]] = {
    "find_bootstrap_address": (
        "ray._private.services", "find_bootstrap_address",
        "--address auto: the address of the cluster `ray start` last started here, checked before "
        "ray.init so a missing cluster is one line, not Ray's retries (search/cluster.py)"),
    "GcsClient": (
        "ray._raylet", "GcsClient",
        "a client without token auth is refused by a token cluster at the GCS client's first call, "
        "while ray.init only says so after about 25 s of retries (search/cluster.py check_token_auth)"),
    "ray_constants": (
        "ray._private", "ray_constants",
        "a local Ray binds every server to loopback only when its cluster mode is off "
        "(ENABLE_RAY_CLUSTER, search/cluster.py loopback_only)"),
    "insert_into_sorted_list": (
        "ray.train._internal.checkpoint_manager", "_insert_into_sorted_list",
        "--resume after a kill re-points a trial's checkpoint manager at the newest checkpoint that "
        "survived, in Ray's own order (store/recovery.py)"),
    "TrainingResult": (
        "ray.train._internal.session", "_TrainingResult",
        "the record Ray's checkpoint manager keeps per checkpoint, rebuilt for a surviving checkpoint "
        "the stored state no longer names (store/recovery.py)"),
    "hex_to_binary": (
        "ray._common.utils", "hex_to_binary",
        "reading the pickled fields of Ray's experiment state to repair it (store/recovery.py)"),
    "binary_to_hex": (
        "ray._common.utils", "binary_to_hex",
        "writing the repaired fields back in the form Ray reads (store/recovery.py)"),
    "WandbQueueItem": (
        "ray.air.integrations.wandb", "_QueueItem",
        "the kinds of item Ray's W&B logging actor reads from its queue: a test drives the mirror's "
        "actor with them in its own process, to check it returns only once the run is written "
        "(tests/test_ops_optuna_wandb.py)"),
    "force_on_current_node": (
        "ray.air.util.node", "_force_on_current_node",
        "the W&B mirror's logging actors run on the driver's node, where the offline runs are written "
        "(search/wandb_setup.py)"),
}
"""name -> (module, attribute, why tunelab needs it)."""

ATTRIBUTES: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "CLIReporter": (
        "ray.tune", "CLIReporter", ("_progress_str",),
        "the status table overrides the method that renders it, to drop Ray's verdicts and name the "
        "results folder (search/status.py)"),
    "PopulationBasedTraining": (
        "ray.tune.schedulers", "PopulationBasedTraining", ("_exploit", "_quantiles"),
        "each exploit is recorded with its evidence as it is made: the override of the method that "
        "clones a member, and the ranking it was chosen by (search/pbt.py, pbt_standing)"),
    "WandbLoggerCallback": (
        "ray.air.integrations.wandb", "WandbLoggerCallback", ("_logger_actor_cls",),
        "the W&B mirror replaces its restartable logging actors by plain ones (search/wandb_setup.py)"),
}
"""name -> (module, class, private attributes read or overridden, why)."""

STATE: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "CheckpointManager": (
        "ray.train._internal.checkpoint_manager", "_CheckpointManager",
        ("_checkpoint_results", "_latest_checkpoint_result", "_get_checkpoint_score"),
        "--resume after a kill re-points a trial's checkpoint bookkeeping, unpickled from Ray's state, at "
        "the checkpoint that survived (store/recovery.py)"),
    "StorageContext": (
        "ray.train._internal.storage", "StorageContext", ("_timestamp", "current_checkpoint_index"),
        "--resume names each trial's driver-side staging folder by its own start, and numbers the next "
        "checkpoint after the one a repaired trial continues from (store/recovery.py)"),
}
"""name -> (module, class, private instance attributes read and rewritten, why): objects tunelab
unpickles from Ray's experiment state (store/recovery.py), checked with `check_state` as it reads them
(tests/test_raycompat.py builds a real instance of each)."""


class RayAPIChanged(RuntimeError):
    """The installed Ray lacks a private API tunelab relies on."""


def _ray_version() -> str:
    try:
        return importlib.import_module("ray").__version__
    except ImportError:
        return "(not installed)"


def _changed(what: str, why: str) -> RayAPIChanged:
    return RayAPIChanged(f"Ray {_ray_version()} lacks {what}, which tunelab uses for this: {why}; "
                         f"tunelab is tested with the Ray of constraints.txt (see raycompat/)")


def private(name: str) -> Any:
    """The private Ray object PRIVATE[name] names, or RayAPIChanged saying which and why."""
    module, attribute, why = PRIVATE[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        raise _changed(f"{module}.{attribute}", why) from None


def require(name: str) -> Any:
    """The Ray class ATTRIBUTES[name] names, after checking it still has the private attributes
    tunelab reads or overrides; RayAPIChanged otherwise."""
    module, cls_name, attributes, why = ATTRIBUTES[name]
    try:
        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError):
        raise _changed(f"{module}.{cls_name}", why) from None
    for attribute in attributes:
        if not hasattr(cls, attribute):
            raise _changed(f"{module}.{cls_name}.{attribute}", why)
    return cls


def check_state(name: str, obj: Any) -> Any:
    """`obj` (unpickled from Ray's state) after checking it is STATE[name]'s class with its private
    attributes; RayAPIChanged otherwise."""
    module, cls_name, attributes, why = STATE[name]
    if type(obj).__name__ != cls_name:
        raise _changed(f"{module}.{cls_name} in the experiment state (found {type(obj).__name__})", why)
    for attribute in attributes:
        if not hasattr(obj, attribute):
            raise _changed(f"{module}.{cls_name}.{attribute}", why)
    return obj


def restored_tune_config(tuner: Any) -> Any:
    """The TuneConfig a restored Tuner runs with (Tuner._local_tuner._tune_config): --resume replaces
    the scheduler Ray restores without its rung or population state, whose paused trials would wait
    forever (search/resume.py)."""
    try:
        return tuner._local_tuner._tune_config
    except AttributeError:
        raise _changed("Tuner._local_tuner._tune_config", "--resume swaps the restored scheduler") from None


def restored_run_config(tuner: Any) -> Any:
    """The RunConfig a restored Tuner runs with (Tuner._local_tuner.get_run_config()): --resume gives
    it the status table of a fresh run (search/resume.py)."""
    try:
        return tuner._local_tuner.get_run_config()
    except AttributeError:
        raise _changed("Tuner._local_tuner.get_run_config", "--resume sets the status table") from None


def set_next_pbt_round(scheduler: Any, report: int) -> None:
    """Makes a synchronous PopulationBasedTraining hold its next round at `report`
    (_next_perturbation_sync): a resumed search's fresh scheduler would otherwise wait for members
    behind the ones already there, forever (search/pbt.py)."""
    if not hasattr(scheduler, "_next_perturbation_sync"):
        raise _changed("PopulationBasedTraining._next_perturbation_sync", "a resumed pbt search's next round")
    scheduler._next_perturbation_sync = report


def next_pbt_round(scheduler: Any) -> int:
    """The report a synchronous PopulationBasedTraining holds its next round at (_next_perturbation_sync)."""
    if not hasattr(scheduler, "_next_perturbation_sync"):
        raise _changed("PopulationBasedTraining._next_perturbation_sync", "a resumed pbt search's next round")
    return scheduler._next_perturbation_sync


def pbt_reported(scheduler: Any, trial: Any, row: dict) -> None:
    """Files a result `row` as the member's last report in a PopulationBasedTraining's table
    (_save_trial_state: its score, report and result), as if the member had just made it: a resumed
    search's member that Ray resumes after the round's report waits for the round with that score."""
    if not all(hasattr(scheduler, a) for a in ("_save_trial_state", "_trial_state", "_time_attr")):
        raise _changed("PopulationBasedTraining._save_trial_state/_trial_state",
                       "a resumed pbt search ranks a member on the report it made before the kill")
    scheduler._save_trial_state(scheduler._trial_state[trial], row[scheduler._time_attr], row, trial)


@contextmanager
def showing_filed_results(scheduler: Any, *trials: Any) -> Iterator[None]:
    """Inside, each of `trials` shows as its Trial.last_result the result its PopulationBasedTraining
    filed last (_trial_state[trial].last_result); outside, what it showed before. Ray's exploit record
    (_log_config_on_step) names the reports of a member and of the one it clones from Trial.last_result,
    which Ray updates only after the scheduler has heard of a result: the member whose report made
    the round read a report behind."""
    if not hasattr(scheduler, "_trial_state") or not all(hasattr(t, "run_metadata") for t in trials):
        raise _changed("PopulationBasedTraining._trial_state/Trial.run_metadata",
                       "the pbt record names the report each exploit cloned")
    shown = [(t, t.run_metadata.last_result) for t in trials]
    try:
        for trial in trials:
            filed = scheduler._trial_state[trial].last_result
            if filed:
                trial.run_metadata.last_result = filed
        yield
    finally:
        for trial, result in shown:
            trial.run_metadata.last_result = result


def pbt_last_report(scheduler: Any, trial: Any) -> tuple[int, dict | None]:
    """(the report a PopulationBasedTraining last filed for the member, that result)."""
    state = scheduler._trial_state[trial]
    return int(state.last_train_time), state.last_result


def asha_rungs(scheduler: Any) -> list[tuple[int, dict]]:
    """The rungs of an ASHAScheduler's one bracket (_brackets[0]._rungs): (milestone, {trial id: the
    metric times its sign}) from the highest milestone down. `--resume --scheduler asha` fills them from
    the stored reports, as Ray restores the scheduler pickled at the start, with empty rungs
    (search/halving.py)."""
    brackets = getattr(scheduler, "_brackets", None)
    if not brackets or len(brackets) != 1 or not hasattr(brackets[0], "_rungs"):
        raise _changed("ASHAScheduler._brackets[0]._rungs", "--resume refills asha's rungs")
    return brackets[0]._rungs


def asha_cutoff(scheduler: Any, recorded: dict) -> float | None:
    """The value an ASHAScheduler's bracket requires at a rung whose recorded values (metric times its
    sign) are `recorded` (_brackets[0].cutoff: their 1 - 1/reduction_factor quantile); None when empty.
    The evidence each asha decision is recorded with (search/halving.py)."""
    asha_rungs(scheduler)
    cutoff = scheduler._brackets[0].cutoff(recorded)
    return None if cutoff is None else float(cutoff)


def pbt_standing(scheduler: Any, trial: Any) -> tuple[int, list[str], list[str], dict[str, float]]:
    """A PopulationBasedTraining's ranking as its exploits use it: (the report `trial` made last, the
    bottom members, the top members (_quantiles), {member: its last score in the metric's units}
    (_trial_state's last_score, times _metric_op, the metric's sign))."""
    if not all(hasattr(scheduler, a) for a in ("_quantiles", "_trial_state", "_metric_op")):
        raise _changed("PopulationBasedTraining._quantiles/_trial_state/_metric_op",
                       "each exploit is recorded with the ranking it was chosen by (search/pbt.py)")
    lower, upper = scheduler._quantiles()
    sign = scheduler._metric_op or 1.0
    states = scheduler._trial_state
    scores = {t.trial_id: float(s.last_score) * sign for t, s in states.items() if s.last_score is not None}
    return (int(states[trial].last_train_time), [t.trial_id for t in lower], [t.trial_id for t in upper],
            scores)


def finished_grid_searcher_state(uuid_prefix: str, total: int) -> bytes:
    """The pickled state (basic-variant-state-*.json) of a BasicVariantGenerator that has created all
    `total` trials of its experiment, whose ids start with `uuid_prefix`: what a grid search's searcher
    is once every trial exists. `--resume` writes it in place of one a kill cut short (store/recovery.py
    repair_searcher_state); its private fields are the generator's own state."""
    import ray.cloudpickle as cloudpickle
    from ray.tune.search.basic_variant import BasicVariantGenerator

    generator = BasicVariantGenerator()
    fields = ("_finished", "_uuid_prefix", "_total_samples", "_iterators")
    if not all(hasattr(generator, f) for f in fields):
        raise _changed("BasicVariantGenerator._finished/_uuid_prefix/_total_samples/_iterators",
                       "--resume rebuilds a grid searcher's state that a kill cut short")
    generator._finished, generator._uuid_prefix, generator._total_samples = True, uuid_prefix, total
    return cloudpickle.dumps(generator.get_state())


def rebuilt_optuna_state(searcher: Any, param_space: dict, metric: Any, mode: Any,
                         trials: list[tuple[str, dict, str, dict]]) -> bytes:
    """The pickled state (searcher-state-*.pkl) of Ray's OptunaSearch `searcher` (or the one a
    ConcurrencyLimiter wraps) once it has proposed every one of `trials` (trial id, config, Ray status,
    last result; in creation order) with exactly its config, and been told the last result of each that
    ended, as Ray tells it (a failed one as failed). `--resume` writes it in place of one a kill cut
    short, once every trial of the search exists (store/recovery.py cut_searcher_state)."""
    import pickle

    import optuna
    from ray.tune.utils.util import flatten_dict

    base = getattr(searcher, "searcher", searcher)
    base.set_search_properties(metric, mode, param_space)
    fields = ("_ot_study", "_ot_trials", "_space", "_completed_trials")
    if not all(hasattr(base, f) for f in fields) or not isinstance(base._space, dict):
        raise _changed("OptunaSearch._ot_study/_ot_trials/_space/_completed_trials",
                       "--resume rebuilds an Optuna searcher's state that a kill cut short")
    for trial_id, config, status, last in trials:
        flat = flatten_dict(config)
        base._ot_study.enqueue_trial({name: flat[name] for name in base._space})
        proposed = base._ot_study.ask(fixed_distributions=base._space)
        base._ot_trials[trial_id] = proposed
        if status == "TERMINATED":
            value = [last.get(m) for m in metric] if isinstance(metric, list) else last.get(metric)
            base._ot_study.tell(proposed, value)
        elif status == "ERROR":
            base._ot_study.tell(proposed, state=optuna.trial.TrialState.FAIL)
        if status in ("TERMINATED", "ERROR"):
            base._completed_trials.add(trial_id)
    return pickle.dumps(base.__dict__.copy())  # as OptunaSearch.save writes it


class StoresStoppedPausedTrials:
    """Mixin for a Ray scheduler that pauses trials (the synchronous rungs of search/sync_halving.py,
    synchronous PBT): a paused trial it stops ends TERMINATED in the stored experiment state too. Ray 2.60's
    `TuneController._schedule_trial_stop` marks a trial for the next state save only when the trial
    has an actor, and a paused one has none, so the state kept saying PAUSED for every trial stopped at
    a rung or at the budget while paused, and `tune.ExperimentAnalysis` read a finished search as
    unfinished. Ray calls `on_trial_remove` just before that stop; the mark only queues the trial, whose
    JSON Ray writes at the next save, after its status has changed."""

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        super().on_trial_remove(tune_controller, trial)  # type: ignore[misc]
        store_with_next_state(tune_controller, [trial])


def store_with_next_state(tune_controller: Any, trials: list) -> None:
    """Marks `trials` for Ray's next state save (TuneController._mark_trial_to_checkpoint): Ray marks
    a trial itself only while it has an actor, so a paused trial's stopping, or the checkpoint of the
    report it paused at, would otherwise never reach the stored state."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)  # a scheduler's wrapper
    mark = getattr(controller, "_mark_trial_to_checkpoint", None)
    if mark is None:
        raise _changed("TuneController._mark_trial_to_checkpoint",
                       "a paused trial's stop and checkpoint must reach the stored state")
    for trial in trials:
        mark(trial)
