"""The SearchPlan: everything the driver resolved from the command line, the one type every search
module shares (search/options.py builds it, search/tuner.py turns it into a Tuner, search/resume.py
stores and reloads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analysis.rungs import is_kept
from analysis.wilcoxon import N_STARTUP_STEPS
from spaces.base import ALPHA, Space
from spaces.questions import Question, grid_cells, kept_arms, parse_question, study_questions
from store import Location, locate

PBT_SETTINGS = {"perturbation_interval": 1, "quantile_fraction": 0.25, "resample_probability": 0.25,
                "perturbation_factors": [1.2, 0.8]}
"""`--scheduler pbt`'s settings (search/pbt.py): exploit and explore after every report; the bottom and
top quarter (at least one member each in a population of 2 or more); a key resampled with probability
0.25, else multiplied by one of the factors."""


@dataclass
class SearchPlan:
    """Everything the driver resolved from the command line; the Tuner is a pure function of it."""

    space: Space
    profile: str
    config: dict[str, Any]
    """Fixed config of every trial (profile, space and --set values)."""
    grid: dict[str, list]
    """Grid axes after --set and --seeds."""
    storage: Location
    """A local/NFS folder or a URI (store/fs.py); Ray gets it as is, `storage_path=str(storage)`."""
    name: str
    scheduler: str = "asha"
    smoothing: float = 0.0
    """The scheduler decides on an exponential moving average of the metric (0: the raw value)."""
    alpha: float = ALPHA
    """--scheduler significance: the one-sided test's level (analysis/rungs.py)."""
    search: str = "grid"
    num_samples: int = 1
    cpus: int = 1
    gpus: float | None = None
    """GPU fraction per trial; None until the cluster decides it (search/resources.py)."""
    max_concurrent: int = 1
    """Trials the cluster runs at once, counting CPUs and GPUs node by node: set with cpus and gpus by
    search/resources.py settle_resources once Ray is up (Optuna proposes no more at a time)."""
    wave: int = 0
    """--scheduler wilcoxon: trials judged against the same completed trials, consecutive in creation
    order (search/wilcoxon.py): the trials the cluster ran at once when the search started (set by
    search/resources.py settle_resources; 0 until then), kept with the plan so that a resume on
    another cluster decides alike."""
    callbacks: list = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)
    """Keys the user set (--set, --dataset, --max-epochs ...): optuna samples every other key of the
    space's continuous counterpart, profile defaults included."""
    objectives: list[list[str]] = field(default_factory=list)
    """--objective: two [metric, "max" | "min"] pairs (search/checks.py reads them, search/mo_halving.py
    ranks by them); empty: the space's metric."""
    questions: list[str] = field(default_factory=list)
    """--question: the user's own questions, as typed (spaces/questions.py), beside the space's."""
    space_questions: bool = True
    """False with --no-questions: the space's own questions are not asked (nor their arms kept)."""

    @property
    def max_t(self) -> int:
        return self.config["epochs"] * self.space.reports_per_epoch

    @property
    def experiment_dir(self) -> Location:
        return locate(self.storage) / self.name

    def study_questions(self) -> list[Question]:
        """The questions this search answers: the space's that its grid holds, then the user's; each
        checked against the grid (UsageError). An Optuna or PBT search samples or changes the other
        knobs, so its arms would not be like-for-like: it answers none."""
        if self.search != "grid" or self.scheduler == "pbt":
            return []
        cells = grid_cells(self.grid, self.space.baselines, self.config)
        added = [parse_question(text, self.space.config_cls) for text in self.questions]
        declared = self.space.questions if self.space_questions else ()
        return study_questions(declared, added, cells, self.space.metrics, self.config["epochs"])

    def kept(self) -> tuple[dict, ...]:
        """Configurations no scheduler stops before the budget: the space's baselines and every arm of
        a question (early stopping never cuts the evidence a question needs)."""
        cells = grid_cells(self.grid, self.space.baselines, self.config)
        arms = kept_arms(self.study_questions(), cells)
        return (*self.space.baselines, *(a for a in arms if a not in self.space.baselines))

    def scheduler_settings(self) -> dict[str, Any]:
        """The rule the scheduler runs and every setting it runs with (search/tuner.py builds it from
        these), stored with the plan: readers take the rungs from here, not from today's Space. A grid
        whose every configuration is an arm of a question runs FIFO whatever was asked: no rung could
        stop one, and a synchronous rung would only pause trials until their peers caught up."""
        if self.scheduler == "pbt":
            return {"rule": "pbt", "max_t": self.max_t, **PBT_SETTINGS}
        kept = self.kept() if self.search == "grid" else ()
        if self.scheduler == "fifo" or (kept and all(
                is_kept(cell, kept) for cell in grid_cells(self.grid, self.space.baselines, self.config))):
            return {"rule": "fifo", "max_t": self.max_t}
        if self.scheduler == "wilcoxon":
            return {"rule": "wilcoxon", "max_t": self.max_t, "p_threshold": self.alpha,
                    "n_startup_steps": N_STARTUP_STEPS, "wave": max(1, self.wave)}
        settings = {"rule": self.scheduler, "max_t": self.max_t,
                    "grace_period": min(self.space.profiles[self.profile].grace_period, self.max_t),
                    "reduction_factor": self.space.reduction_factor}
        if self.scheduler != "moasha":
            settings["smoothing"] = self.smoothing
        if self.scheduler == "significance":
            settings["alpha"] = self.alpha
        return settings

    def param_space(self) -> dict[str, Any]:
        from ray import tune  # here: the driver builds and checks a plan without Ray

        if self.search == "optuna":
            # TPE samples the continuous counterpart of every key the user did not set; grid axes it
            # does not cover become categorical.
            sampled = {k: make() for k, make in self.space.continuous.items() if k not in self.pinned}
            axes = {k: v[0] if len(v) == 1 else tune.choice(v) for k, v in self.grid.items()}
            return {**self.config, **axes, **sampled}
        return {**self.config, **{k: tune.grid_search(v) for k, v in self.grid.items()}}
