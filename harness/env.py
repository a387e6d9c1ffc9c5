"""Where the project is and the environment every process a test or bench starts runs in: nothing
leaves the machine."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_USAGE_STATS_REPORT_URL": "http://127.0.0.1:9/",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}

# A kill-and-resume test's driver also saves Ray's experiment state every second, not only after each
# checkpoint and every 10 s or more ("auto"), so the stored state soon records a trial's end.
KILL_TEST_ENV = {"TUNE_GLOBAL_CHECKPOINT_S": "1"}
