"""How fast the command line answers: help, --list and bad input, each a fresh process.

    .venv/bin/python bench/bench_cli.py [--repeats 5]

Each command runs `--repeats` times in a subprocess with this Python (the project's venv) from the
checkout's root, so the checkout's code runs; it prints the median wall seconds and the ratio to
`python -c pass`, Python's own start. A bad input must end with exit status 2 and one stderr line,
else the benchmark stops: it measures refusals, never a search.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.machine import cpu_line  # noqa: E402
from cli.exits import BAD_INPUT, SUCCESS  # noqa: E402

RUN = ["search/run.py"]
COMMANDS: list[tuple[str, list[str], int]] = [
    ("python -c pass", ["-c", "pass"], SUCCESS),
    ("tunelab run --help", ["-m", "search.tunelab", "run", "--help"], SUCCESS),
    ("search/run.py --help", [*RUN, "--help"], SUCCESS),
    ("search/run.py --list", [*RUN, "--list"], SUCCESS),
    ("--space nosuch", [*RUN, "--space", "nosuch"], BAD_INPUT),
    ("--space degradation --seeds -1", [*RUN, "--space", "degradation", "--seeds", "-1"], BAD_INPUT),
    ("--space degradation --set lr=nan", [*RUN, "--space", "degradation", "--set", "lr=nan"], BAD_INPUT),
    ("--space degradation --alpha 2", [*RUN, "--space", "degradation", "--alpha", "2"], BAD_INPUT),
]
"""(label, the Python's arguments, the exit status it must end with). `tunelab` runs as
`python -m search.tunelab`, the code the installed command calls, here from the checkout."""


def timed(args: list[str], status: int, storage: str) -> float:
    """Wall seconds of one run; stops the benchmark when the exit status or the stderr is not as expected."""
    extra = ["--storage", storage] if status == BAD_INPUT else []
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *args, *extra], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    seconds = time.perf_counter() - started
    lines = done.stderr.strip().splitlines()
    if done.returncode != status or (status == BAD_INPUT and len(lines) != 1):
        sys.exit(f"error: {' '.join(args)} ended with {done.returncode} and {len(lines)} stderr line(s), "
                 f"expected {status}{' and one' if status == BAD_INPUT else ''}: {done.stderr[-500:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is shown)")
    repeats = max(3, parser.parse_args().repeats)
    print(f"CPU: {cpu_line()}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f} at the start")
    print(f"median of {repeats} runs, {sys.executable}")
    with tempfile.TemporaryDirectory() as storage:
        medians = {}
        for label, args, status in COMMANDS:
            medians[label] = statistics.median(timed(args, status, storage) for _ in range(repeats))
            base = medians["python -c pass"]
            print(f"{label:36} {medians[label]:6.3f} s  {medians[label] / base:6.1f}× python -c pass",
                  flush=True)
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
