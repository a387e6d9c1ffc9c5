"""The kill sweep's larger form, and how often a kill lands in Ray's upload window.

    python bench/bench_kill_sweep.py [--moments 8] [--storage local,s3] [--window-polls]
                                     [--search arms|rungs|asha|moasha|wilcoxon|pbt]

For each storage, the chained sweep of harness/kill_sweep.py (tests/test_kill_sweep.py runs it) with
`--moments` kills (8 by default, the CI runs 4): a smoke search SIGKILLed at evenly spaced stored-state
moments, each kill followed by `--resume`, two of the kills leaving the storage as Ray's upload window
does, compared with an unkilled run. Prints `kill sweep: N/N resumed identical`. With `--window-polls`
it also polls the storage all through the unkilled run and reports the share of polls at which the
stored state named a checkpoint that was already deleted (the window a kill must not fall into
unrepaired: docs/storage.md §4). Local storage runs a local Ray; S3 (a moto server) a `ray start` head,
as in the CI test. `--search` picks the swept search of harness/kill_sweep.py: `arms` (SEARCH, the
default scheduler over two arms of a question), `rungs` (RUNGS_SEARCH, significance rungs that stop
trials), `asha` (ASHA_SEARCH, Ray's asynchronous ASHA, one trial at a time), `moasha` (MOASHA_SEARCH,
the two-objective rule, likewise) or `wilcoxon` (DEFAULT_SEARCH, the default rule where it stops a
trial, two trials at once: the CI's search), compared with the unkilled run's recorded decisions as
well, or `pbt` (PBT_SEARCH, a kd population of 4 under population-based training, with a tiny teacher
trained first: the members' reports and the recorded exploits compared; the storage is not made to
look as the upload window leaves it, whose repair PBT's every-checkpoint-kept storage does not need).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import kill_sweep as sweeping  # noqa: E402
from harness.env import OFFLINE_ENV  # noqa: E402
from harness.killing import start_driver  # noqa: E402
from store.experiment import ExperimentFolder  # noqa: E402


def reference_run(search: list[str], start: list[str], folder: ExperimentFolder, env: dict, log: Path,
                  poll: bool) -> tuple[dict, tuple[int, int]]:
    """The unkilled search's curves and (polls naming a deleted checkpoint, polls)."""
    driver = start_driver(*search, *start, env=env, log=log)
    counts = [0, 0]

    def watch() -> None:
        while driver.poll() is None:
            try:
                if folder.loc.exists():
                    counts[0] += bool(folder.missing_checkpoints())
                    counts[1] += 1
            except Exception:  # a file replaced while it was read: not a poll
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    if poll:
        watcher.start()
    status = driver.wait(timeout=900)
    if poll:
        watcher.join()
    if status != 0:
        raise SystemExit(f"the reference run failed ({status}); log {log}")
    return sweeping.curves(folder), (counts[0], counts[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moments", type=int, default=8)
    parser.add_argument("--storage", default="local,s3")
    parser.add_argument("--window-polls", action="store_true")
    searches = {"arms": sweeping.SEARCH, "rungs": sweeping.RUNGS_SEARCH, "asha": sweeping.ASHA_SEARCH,
                "moasha": sweeping.MOASHA_SEARCH, "wilcoxon": sweeping.DEFAULT_SEARCH,
                "pbt": sweeping.PBT_SEARCH}
    parser.add_argument("--search", choices=searches, default="arms", help="the swept search")
    args = parser.parse_args()
    search = searches[args.search]
    os.environ.update(OFFLINE_ENV)
    work = Path(tempfile.mkdtemp(prefix="tunelab-kill-sweep-"))
    windows, column = {"local": [True, False], "s3": [False, True]}, "num_blocks |"
    if args.search == "pbt":
        from harness.teacher import make_teacher

        search = [*search, "--teacher", str(make_teacher(work / "teacher"))]
        windows, column = {"local": [], "s3": []}, "kd_loss |"
    total = passed = 0
    for kind in args.storage.split(","):
        logs = work / kind
        logs.mkdir()
        started = time.time()
        if kind == "local":
            results = work / "results"
            ref_folder, folder = ExperimentFolder(results / "ref"), ExperimentFolder(results / "k")
            store = ["--storage", str(results)]
            reference, window = reference_run(search, [*store, "--name", "ref"], ref_folder, {},
                                              logs / "ref.log", args.window_polls)
            kills = sweeping.sweep([*store, "--name", "k"], [], folder, reference, {}, logs, windows["local"],
                                   search, args.moments, column=column)
            same = sweeping.decisions(folder) == sweeping.decisions(ref_folder)
        else:
            from harness.cluster import TwoNodeCluster
            from harness.s3server import S3Server

            with S3Server(log=logs / "moto.log") as s3, \
                    TwoNodeCluster(logs, env=s3.env, head_only=True,
                                   cpus=os.cpu_count() or 1 if args.search in ("asha", "moasha")
                                   else 2) as head:
                address = ["--address", head.address]
                store = [*address, "--storage", s3.uri("runs")]
                ref_folder = ExperimentFolder(s3.location("runs/ref"))
                reference, window = reference_run(search, [*store, "--name", "ref"], ref_folder, head.env,
                                                  logs / "ref.log", args.window_polls)
                folder = ExperimentFolder(s3.location("runs/k"))
                kills = sweeping.sweep([*store, "--name", "k"], address, folder, reference, head.env, logs,
                                       windows["s3"], search, args.moments, column=column)
                same = sweeping.decisions(folder) == sweeping.decisions(ref_folder)  # while the store runs
        if not same:
            print(f"{kind}: the recorded decisions differ from the unkilled run's", flush=True)
            kills = []
        total += args.moments
        passed += len(kills)
        print(f"{kind}: {len(kills)}/{args.moments} resumed identical in {time.time() - started:.0f} s",
              flush=True)
        for line in kills:
            print(f"  {line}")
        if args.window_polls:
            print(f"  upload window: the stored state named a deleted checkpoint at {window[0]} of "
                  f"{window[1]} polls of the unkilled run", flush=True)
    print(f"kill sweep: {passed}/{total} resumed identical (logs in {work})")
    return 0 if passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
