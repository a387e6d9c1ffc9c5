"""What a person watches while a search runs: Tune's status table with the space's own columns.

Three things keep the console readable:
- Ray's classic status table (`CLIReporter`) with the metrics the Space declares (`Space.progress`)
  and the grid's values, instead of the new output engine's first four metrics it happens to see;
- worker lines that repeat every epoch (Ray Train's "Checkpoint successfully created at: ...") are
  dropped by the driver before they reach the console; the workers' log files in the Ray session
  folder (`<temp dir>/session_*/logs/worker-*`) keep them, and errors and warnings still show;
- the end names the results, the report and the TensorBoard command (search/run.py).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.tune import ProgressReporter

    from search.tuner import SearchPlan

# Regular expression of the worker lines the console drops (Ray's log-deduplication skip list).
WORKER_CHATTER = r"Checkpoint successfully created at: "
STATUS_EVERY_S = 30  # a status table at most this often, and one when the search ends


def quiet_worker_chatter() -> None:
    """Must run before `import ray`: Ray's driver reads its log filter once, on import."""
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", WORKER_CHATTER)


def progress_reporter(plan: SearchPlan) -> ProgressReporter:
    """Tune's status table: each trial's grid values (and Optuna's samples) and the space's metrics."""
    from ray.tune import CLIReporter

    # The classic engine shows the columns it is given; the new one (Ray's default) ignores a reporter
    # and prints a TensorBoard path in Ray's temp folder, not where the results are. Read at fit().
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    space = plan.space
    sampled = [k for k in space.continuous if k not in plan.pinned] if plan.search == "optuna" else []
    parameters = list(dict.fromkeys([*plan.grid, *sampled]))
    # No metric/mode here: Tune hands the reporter TuneConfig's and refuses a reporter that has its own.
    return CLIReporter(metric_columns=list(space.progress), parameter_columns=parameters,
                       max_report_frequency=STATUS_EVERY_S, sort_by_metric=True, max_progress_rows=40)
