"""The command line answers without torch or Ray: help, --list and every refusal that needs neither
read the spaces and check the values with plain Python (BENCHMARKS.md "the command line"). Run in a
fresh process each, since this one has long imported both."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cli.exits import BAD_INPUT, SUCCESS
from tests.conftest import OFFLINE_ENV, ROOT

HEAVY = ("torch", "ray", "scipy", "pandas")
PROBE = f"""
import sys
from search.run import main
try:
    status = main(sys.argv[1:])
except SystemExit as done:  # --help
    status = done.code
print(status, sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
"""Calls the driver's main as `python search/run.py` does, then names the heavy modules it imported."""

LIGHT = [
    (["--help"], SUCCESS),
    (["--list"], SUCCESS),
    (["--space", "nosuch"], BAD_INPUT),
    (["--space", "degradation", "--seeds", "-1"], BAD_INPUT),
    (["--space", "degradation", "--set", "lr=nan"], BAD_INPUT),
    (["--space", "degradation", "--alpha", "2"], BAD_INPUT),
    (["--space", "lora", "--set", "setting=qv0"], BAD_INPUT),
    (["--space", "degradation", "--objective", "val_acc:max"], BAD_INPUT),
    (["--space", "kd", "--scheduler", "pbt", "--set", "lr=0.05"], BAD_INPUT),
    (["--space", "degradation", "--dataset", "cifar10", "--data-dir", "/tmp"], BAD_INPUT),
    (["--resume", "/nonexistent/experiment"], BAD_INPUT),
]


@pytest.mark.parametrize(("args", "status"), LIGHT, ids=[" ".join(a) for a, _ in LIGHT])
def test_parsing_and_checking_import_neither_torch_nor_ray(args, status, tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE, *args, "--storage", str(tmp_path / "results")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**OFFLINE_ENV, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.stdout.splitlines()[-1] == f"{status} []", done.stdout[-2000:] + done.stderr[-2000:]
    results = tmp_path / "results"
    assert not results.exists() or not any(results.iterdir())  # nothing written
