"""What made an experiment, recorded in its plan: the code (git commit, dirty or not), the versions of
the pinned packages, and the cluster's nodes with their resources (search/nodes.py)."""

from __future__ import annotations

import importlib.metadata
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None}; None where the code is not a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def pinned_versions(constraints: Path = CONSTRAINTS) -> dict[str, str | None]:
    """The installed version of every package constraints.txt pins (None: not installed)."""
    if not constraints.is_file():
        return {}
    found: dict[str, str | None] = {}
    for line in constraints.read_text().splitlines():
        name = line.split("#", 1)[0].strip().split("==", 1)[0].strip()
        if not name:
            continue
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def provenance(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": git_state(),
            "packages": pinned_versions(), "nodes": nodes}
