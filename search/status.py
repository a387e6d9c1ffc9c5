"""Tune's status table as a person watching a search wants it (see search/console.py for the rest).

Ray's classic `CLIReporter` shows the metrics the Space declares (`Space.progress`) and the grid's
values, instead of the first four metrics the new output engine happens to see; its header names the
experiment folder, where the results and TensorBoard's event files are, instead of Ray's staging
folder under /tmp/ray.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from raycompat import require

if TYPE_CHECKING:
    from search.plan import SearchPlan

STATUS_EVERY_S = 30  # a status table at most this often, and one when the search ends


class StatusTable(require("CLIReporter")):
    def __init__(self, results: str, **kwargs):
        super().__init__(**kwargs)
        self.results = results

    def _progress_str(self, *args, **kwargs) -> str:  # CLIReporter prints what this returns
        text = super()._progress_str(*args, **kwargs)
        return "\n".join(f"Results: {self.results}" if line.startswith("Result logdir: ") else line
                         for line in text.split("\n") if not line.startswith(RAY_VERDICTS))


# Ray's own verdicts, which disagree with tunelab's: "Current best trial" ranks single reports of
# trials of any budget, and the schedulers' lines ("Using AsyncHyperBand: num_stopped=6") count trials
# that ran to max_t as stopped. Only the closing summary (search/summary.py) names a winner.
RAY_VERDICTS = ("Current best trial", "Using AsyncHyperBand", "Using HyperBand", "Bracket:")


def progress_reporter(plan: SearchPlan) -> StatusTable:
    """Each trial's grid values (and Optuna's samples) and the space's progress metrics."""
    # The classic engine shows the columns it is given; the new one (Ray's default) ignores a reporter
    # and prints a TensorBoard path in Ray's temp folder, not where the results are. Read at fit().
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    space = plan.space
    sampled = [k for k in space.continuous if k not in plan.pinned] if plan.search == "optuna" else []
    parameters = list(dict.fromkeys([*plan.grid, *sampled]))
    return StatusTable(str(plan.experiment_dir), metric_columns=list(space.progress),
                       parameter_columns=parameters, max_report_frequency=STATUS_EVERY_S,
                       # metric and mode: Tune's, at setup; two objectives leave them unset
                       sort_by_metric=not plan.objectives, max_progress_rows=40)
