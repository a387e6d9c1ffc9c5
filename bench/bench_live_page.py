"""What the live page costs a search: the same smoke search with the driver's live page on and off.

    .venv/bin/python bench/bench_live_page.py [--repeats 2]

Each arm runs `search/run.py` in its own process (off: search/live.py's rewrite thread never starts),
alternating on/off `--repeats` times. It prints the trials' own time (the sum of their
time_total_s: what a slower trial would show), the search's wall time, and for the live arm how many
rewrites the thread made and the seconds they took, then the ratios on/off.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["--space", "degradation", "--profile", "smoke", "--seeds", "2", "--set", "num_blocks=1,5"]
# Runs the driver in this process, with the live page's thread counted (on) or never started (off).
DRIVER = """
import sys, search.live as live
if sys.argv[1] == "off":
    live.LivePage.__enter__ = lambda self: self
    live.LivePage.__exit__ = lambda self, *exc: None
else:
    leave = live.LivePage.__exit__
    def counted(self, *exc):
        leave(self, *exc)
        print(f"LIVE {self.rewrites} {self.seconds:.3f}", flush=True)
    live.LivePage.__exit__ = counted
from search.run import main
sys.exit(main(sys.argv[2:]))
"""
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline",
       "RAY_USAGE_STATS_ENABLED": "0"}


def run(arm: str, folder: Path, n: int) -> dict:
    name = f"{arm}{n}"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", DRIVER, arm, *SEARCH, "--storage", str(folder / "results"),
                           "--name", name], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **ENV, "TUNELAB_REPORT": str(folder / "report")})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{arm} search failed: {done.stderr[-2000:]}")
    trial_s = 0.0
    for result in (folder / "results" / name).glob("*/result.json"):
        trial_s += json.loads(result.read_text().splitlines()[-1])["time_total_s"]
    live = next((line.split()[1:] for line in done.stdout.splitlines() if line.startswith("LIVE ")), None)
    return {"wall": wall, "trials": trial_s, "rewrites": int(live[0]) if live else 0,
            "rewrite_s": float(live[1]) if live else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    results: dict[str, list[dict]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.repeats):
            for arm in ("on", "off"):
                results[arm].append(run(arm, Path(tmp), n))
                r = results[arm][-1]
                print(f"{arm:3}: wall {r['wall']:.1f} s, trials {r['trials']:.1f} s, rewrites "
                      f"{r['rewrites']} taking {r['rewrite_s']:.2f} s", flush=True)
    median = {arm: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for arm, rs in results.items()}
    on, off = median["on"], median["off"]
    print(f"median on/off: trials' time {on['trials'] / off['trials']:.3f}x, "
          f"wall {on['wall'] / off['wall']:.3f}x; "
          f"live page: {on['rewrites']:.0f} rewrites, {on['rewrite_s']:.2f} s of {on['wall']:.0f} s "
          f"({100 * on['rewrite_s'] / on['wall']:.1f}% of one core) on {cpu}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
