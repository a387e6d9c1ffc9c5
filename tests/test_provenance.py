"""An experiment's plan records the code, packages and nodes that made it, and the report shows them."""

from __future__ import annotations

import importlib.metadata
import subprocess

from analysis.report import provenance_lines
from search.cluster import connect_failure
from search.nodes import code_fingerprint, differences, versions
from search.provenance import CONSTRAINTS, git_state, pinned_versions, provenance
from tests.conftest import ROOT


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout


def test_provenance_records_the_commit_whether_the_tree_is_dirty_and_every_pinned_version():
    record = provenance([{"ip": "10.0.0.2", "hostname": "b", "resources": {"CPU": 4.0}, "versions": {}}])
    assert record["git"] == {"commit": git("rev-parse", "HEAD").strip(),
                             "dirty": bool(git("status", "--porcelain").strip())}
    pinned = [line.split("==")[0] for line in CONSTRAINTS.read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert list(record["packages"]) == pinned
    pin = next(line.split("==")[1].strip() for line in CONSTRAINTS.read_text().splitlines()
               if line.startswith("ray"))
    assert record["packages"]["ray"] == importlib.metadata.version("ray") == pin
    assert record["nodes"][0]["ip"] == "10.0.0.2"


def test_outside_a_git_checkout_the_commit_is_unknown_not_invented(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
    assert pinned_versions(tmp_path / "no-constraints.txt") == {}


def test_the_code_fingerprint_changes_with_any_source_file_and_versions_name_the_difference():
    mine = versions()
    assert mine["tunelab"] == code_fingerprint() and len(mine["tunelab"]) == 12
    other = {**mine, "torch": "2.13.0", "tunelab": "0" * 12}
    assert differences(mine, other) == [f"torch 2.13.0 (the driver: {mine['torch']})",
                                        f"tunelab {'0' * 12} (the driver: {mine['tunelab']})"]
    assert differences(mine, dict(mine)) == []


def test_the_report_shows_commit_packages_and_nodes():
    record = {"started": "2026-11-29T10:00:00+0000", "git": {"commit": "abc123", "dirty": True},
              "packages": {"ray": "2.60.0", "torch": "2.14.1"},
              "nodes": [{"ip": "10.0.0.2", "hostname": "gpu-b", "resources": {"CPU": 8.0, "GPU": 1.0,
                                                                              "memory_gb": 30.5},
                         "versions": {"python": "3.11.9", "ray": "2.60.0", "torch": "2.14.1",
                                      "tunelab": "0123456789ab"}}]}
    text = "\n".join(provenance_lines(record))
    assert "git commit `abc123` with uncommitted changes" in text
    assert "ray 2.60.0, torch 2.14.1" in text
    assert "| 10.0.0.2 | gpu-b | 8 | 1 | 30.5 | 3.11.9 | 2.60.0 | 2.14.1 | 0123456789ab |" in text
    assert "Not recorded" in "\n".join(provenance_lines(None))


def test_a_refused_token_names_the_fix(monkeypatch):
    refused = RuntimeError("InvalidAuthToken: Authentication token is missing or incorrect; "
                           "RAY_AUTH_MODE is currently 'disabled'")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "set RAY_AUTH_MODE=token" in connect_failure("10.0.0.1:6379", refused)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert "refused the token" in connect_failure("10.0.0.1:6379", refused)
    assert connect_failure("h:1", ConnectionError("nothing\nmore")) == "--address h:1: nothing"
