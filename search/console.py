"""What a person watches while a search runs, and what stays out of the console.

- Tune's status table with the space's own columns and the experiment folder (search/status.py);
- worker lines that repeat every epoch (Ray Train's "Checkpoint successfully created at: ...", and
  "Restored on <ip> from checkpoint: ..." each time a trial paused at a rung or restored by a resume
  goes on) are dropped by the driver before they reach the console; the workers' log files in the Ray session
  folder (`<temp dir>/session_*/logs/worker-*`) keep them, and errors and warnings still show;
- the end names the results, the report and the TensorBoard command (search/run.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Regular expression of the worker lines the console drops (Ray's log-deduplication skip list).
WORKER_CHATTER = r"Checkpoint successfully created at: |Restored on \S+ from checkpoint: "


def quiet_worker_chatter() -> None:
    """Must run before `import ray`: Ray's driver reads its log filter once, on import."""
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", WORKER_CHATTER)


def venv_command(tool: str) -> str:
    """A console script of the Python running the driver (the project's .venv), as a printed command
    must name it to work when pasted into a plain shell, without an activated venv: relative to the
    current directory when below it (`.venv/bin/tensorboard` from the repo root), else absolute."""
    path = Path(sys.executable).parent / tool
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
