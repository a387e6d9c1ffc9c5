"""Security and hygiene: safe checkpoint loading, usage stats off, no token in what the driver prints,
Ray's session folders where asked, and the local-only flags refused with a cluster."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import ray
from ray._private import ray_constants

from cli import UsageError
from search.cluster import start_ray, token_location
from tests.conftest import ROOT

PROJECT_DIRS = ("cli", "store", "search", "spaces", "trainables", "analysis", "bench", "tests")


def test_every_torch_load_is_weights_only():
    calls = []
    for folder in PROJECT_DIRS:
        for file in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                    safe = any(k.arg == "weights_only" and getattr(k.value, "value", None) is True
                               for k in node.keywords)
                    calls.append((f"{file.relative_to(ROOT)}:{node.lineno}", safe))
    assert calls, "found no torch.load at all: the scan is broken"
    assert [where for where, safe in calls if not safe] == []


@pytest.fixture
def ray_init_calls(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    # start_ray switches Ray's cluster mode off for a local run; put it back after the test
    monkeypatch.setattr(ray_constants, "ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    return calls


def test_local_ray_starts_with_usage_stats_off(ray_init_calls):
    # what the local Ray listens on is tested for real, on its sockets, in tests/test_exposure.py
    start_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0" and len(ray_init_calls) == 1


def test_ray_temp_dir_goes_where_asked_and_long_paths_are_refused(ray_init_calls, tmp_path: Path):
    short = Path("/tmp") / f"tl-{os.getpid()}"
    start_ray(temp_dir=str(short))
    assert ray_init_calls[-1]["_temp_dir"] == str(short) and short.is_dir()
    short.rmdir()
    with pytest.raises(UsageError, match="Unix sockets"):
        start_ray(temp_dir=str(tmp_path / ("x" * 80)))
    assert len(ray_init_calls) == 1


def test_dashboard_and_temp_dir_are_refused_with_a_cluster(ray_init_calls):
    with pytest.raises(UsageError, match="local Ray"):
        start_ray(address="auto", dashboard=True)
    assert ray_init_calls == []


def test_dashboard_refuses_to_run_with_token_auth_disabled(ray_init_calls, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    with pytest.raises(UsageError, match="token auth"):
        start_ray(dashboard=True)
    assert ray_init_calls == []


def test_token_location_names_the_source_never_the_token(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token-value")
    assert "s3cr3t" not in token_location() and "RAY_AUTH_TOKEN" in token_location()
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/somewhere/token")
    assert token_location() == "/somewhere/token"
