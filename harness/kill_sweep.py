"""The chained kill sweep (tests/test_kill_sweep.py, bench/bench_kill_sweep.py): a smoke search
SIGKILLed at evenly spaced moments of its stored progress, each kill followed by `--resume`, the last
resume run to the end, then checked against the unkilled run: the same per-epoch values, the same
trials stopped at the same epochs, every report once. Its checks raise AssertionError with the log
that shows why."""

from __future__ import annotations

import os
import re
from pathlib import Path

from harness import killing
from store.experiment import ExperimentFolder

EPOCHS, MOMENTS = 5, 4
"""The search's budget, and the kills the CI's chained sweep makes."""
# The default scheduler on two plain depths that a question of the user's compares, so the rule keeps
# both to the budget and the search runs as a default search whose every configuration is an arm
# does. Depths 1 and 3 train at different paces, so the stored rows arrive one at a time and every
# kill moment comes.
SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", str(EPOCHS),
          "--set", "num_blocks=1,3", "--set", "skip=false", "--set", "train_subset=256",
          "--set", "val_subset=128", "--question", "deeper: num_blocks=3 < num_blocks=1"]
TRIALS = 2
# The default rule (the space's wilcoxon, search/wilcoxon.py) where it acts: four configurations that no
# question keeps, 2 lockstep seeds, two trials at once (a wave of 2), p 0.45 so that it stops a trial of
# the second wave, whose reports from epoch 2 on wait (paused) until the first wave has finished. Kills
# then come while a trial waits for its judgement and after judgements.
DEFAULT_SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", "4", "--seeds", "2",
                  "--set", "num_blocks=1,3", "--set", "train_subset=256", "--set", "val_subset=128",
                  "--no-questions", "--alpha", "0.45", "--cpus-per-trial", "1"]
# significance halving with rungs that act: the same four configurations, α 0.45 so that it stops
# trials at both rungs (epochs 1 and 2), where the others pause for their cohort.
RUNGS_SEARCH = [*DEFAULT_SEARCH[:DEFAULT_SEARCH.index("--alpha")], "--scheduler", "significance",
                "--alpha", "0.45"]
# Ray's asynchronous ASHA over the same four configurations, one trial at a time (each takes every CPU
# of the machine's local Ray): the trials reach each rung in creation order, killed or not (a resumed
# search starts its unfinished trials in that order too), so a resumed search meets the unkilled one's
# judgements exactly when the rungs go on with what was stored (search/halving.py).
ASHA_SEARCH = ["--space", "degradation", "--profile", "smoke", "--max-epochs", "3", "--set", "num_blocks=1,3",
               "--set", "train_subset=256", "--set", "val_subset=128", "--no-questions",
               "--scheduler", "asha", "--cpus-per-trial", str(os.cpu_count() or 1)]
# moasha, the two-objective asynchronous rule, over the same configurations and one trial at a time.
MOASHA_SEARCH = [*ASHA_SEARCH[:ASHA_SEARCH.index("--scheduler")], "--objective", "val_acc:max,params:min",
                 "--scheduler", "moasha", *ASHA_SEARCH[ASHA_SEARCH.index("--cpus-per-trial"):]]
# A kd population under population-based training (search/pbt.py): 4 members, 3 epochs, a round
# after each of the first two, each round one exploit; `--teacher` is the bench's tiny teacher. The
# members' reports and the recorded exploits compare with the unkilled population's.
PBT_SEARCH = ["--space", "kd", "--profile", "smoke", "--scheduler", "pbt", "--max-epochs", "3"]
METRICS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "kd_loss", "ce_loss",
           "training_iteration")


def curves(folder: ExperimentFolder) -> dict[str, list[tuple]]:
    """Each trial's progress.csv rows (those of the metrics above it reports), keyed by its place in
    the search."""
    rows = killing.stored_rows(folder)
    return {trial_key(t): [tuple(float(r[m]) for m in METRICS if m in r) for r in rows[t.name]]
            for t in folder.trials()}


def trial_key(trial) -> str:
    """A trial's place in its search: the index its id ends with, the same in two runs of one search."""
    return trial.trial_id(trial.results())[-5:]


def decisions(folder: ExperimentFolder) -> list[dict]:
    """The stored rung decisions (store/lifecycle.py) with every trial id replaced by the trial's index,
    in (report, trial) order, so that two searches' records compare: the log keeps them in the order
    they were made, which trials arriving at other moments change."""
    from store.lifecycle import rung_decisions

    def index(value):
        if isinstance(value, str):
            return value.rsplit("_", 1)[-1]
        if isinstance(value, dict):
            return {index(k): v for k, v in value.items()}
        return [index(v) for v in value] if isinstance(value, list) else value

    indexed = [{key: index(value) if key in ("trial", "kept", "stopped", "signal", "protected", "reference",
                                            "clone", "bottom", "top")
                else value
                for key, value in d.items()} for d in rung_decisions(folder)]
    return sorted(indexed, key=lambda d: (d["rung"], str(d.get("trial", ""))))


def report_readme(folder: ExperimentFolder, env: dict) -> Path:
    """The README.md of the search's report, where a driver with `env` writes it (analysis/report.py)."""
    return Path({**os.environ, **env}.get("TUNELAB_REPORT", "report")) / folder.loc.name / "README.md"


def interrupted(folder: ExperimentFolder, said: str, status: int, env: dict) -> None:
    """What a Ctrl-C'd search shows (docs/operations.md): exit status 130, the partial table under an
    INTERRUPTED heading with no winner and no verdicts (nothing about early stopping or the questions),
    a report that says so, and as its last line the exact `--resume` command."""
    command = f"python search/run.py --resume {folder.loc.uri}"
    assert status == 130 and said.strip().splitlines()[-1] == (
        "interrupted: the search stopped before it finished, its checkpoints and results kept; "
        f"continue it with `{command}`"), said[-3000:]
    heading = next(line for line in said.splitlines() if " / smoke: " in line)
    assert "INTERRUPTED" in heading and "no winner" in heading and "scheduler stopped" not in heading, said
    assert "\n*" not in said and "early stopping" not in said and "questions: " not in said, said[-3000:]
    readme = report_readme(folder, env).read_text()
    assert "Interrupted (Ctrl-C" in readme and command in readme and "no winner" in readme, readme


def sweep(start: list[str], resume: list[str], folder: ExperimentFolder, reference: dict, env: dict,
          logs, windows: list[bool], search: list[str] = SEARCH, moments: int = MOMENTS,
          ctrl_c_at: int | None = None, cut_searcher_at: int | None = None,
          column: str = "num_blocks |") -> list[str]:
    """Runs the chained sweep (`start`: the search's storage flags, `resume`: what `--resume` adds);
    returns one line per kill (what was stored when it came). From the second kill on, the storage is
    made to look as a kill inside Ray's upload window leaves it, once per entry of `windows` (restart
    or not, killing.py: fake_upload_window), at the first kill whose stored reports allow it:
    the timing of a kill on this machine rarely hits that window by itself. Kill number `ctrl_c_at` is
    a terminal's Ctrl-C instead: the driver stops the search itself, exits 130 and names the resume.
    After kill number `cut_searcher_at` the grid searcher's state is cut in half, as a kill inside
    Ray's upload of it leaves it, and the resume must say it rebuilt it (store/recovery.py). `column`:
    a column of the search's status table, which a resume prints as a fresh run does."""
    # Moments 1..`moments` progress rows of the reference's: evenly spaced, the last with three rows
    # to go (the last rows of trials that end together can reach the storage in one upload, after
    # the last state with an unfinished trial).
    total = sum(len(rows) for rows in reference.values())
    at_rows = [round(1 + i * max(total - 4, 0) / (moments - 1)) for i in range(moments)]
    kills, after = [], None
    driver = killing.start_driver(*search, *start, env=env, log=logs / "run-0.log")
    for n, rows in enumerate(at_rows, 1):
        stored, left = killing.kill_at(driver, folder, rows, after=after, ctrl_c=n == ctrl_c_at)
        assert not left, f"kill {n}: the killed search ran on {killing.LEFT_GRACE_S:.0f} s: {left}"
        if n == ctrl_c_at:
            interrupted(folder, (logs / f"run-{n - 1}.log").read_text(), driver.returncode, env)
        statuses = folder.trial_statuses()
        assert "ERROR" not in statuses.values(), f"kill {n}: a trial in ERROR ({statuses}); logs in {logs}"
        assert set(statuses.values()) != {"TERMINATED"}, f"kill {n}: nothing was left to resume"
        kills.append(f"{'Ctrl-C' if n == ctrl_c_at else 'kill'} {n} at {stored} stored rows: {statuses}")
        faked = killing.fake_upload_window(folder, restart=windows[0]) if windows and n > 1 else None
        if faked:
            windows = windows[1:]
        if n == cut_searcher_at:
            searcher = max((f for f in folder.loc.list_files() if f.name.startswith("basic-variant-state-")),
                           key=lambda f: f.name)
            searcher.write_bytes(searcher.read_bytes()[:len(searcher.read_bytes()) // 2])
        after = killing.newest_state_name(folder)
        driver = killing.start_driver("--resume", folder.loc.uri, *resume, env=env, log=logs / f"run-{n}.log")
        if n == cut_searcher_at:
            assert killing.wait_for_line(logs / f"run-{n}.log", "(the grid searcher's state) was cut short",
                                         driver), (logs / f"run-{n}.log").read_text()[-3000:]
        if n == 1:  # the first resume finds the killed driver's lease
            assert killing.wait_for_line(logs / "run-1.log", "took over the lease", driver), \
                (logs / "run-1.log").read_text()[-3000:]
        if faked:  # the resume says what it repaired
            assert killing.wait_for_line(logs / f"run-{n}.log", faked, driver), \
                f"run {n} never named {faked}: {(logs / f'run-{n}.log').read_text()[-3000:]}"
    assert not windows, f"the stored reports never allowed faking the upload window {windows}"
    status = driver.wait(timeout=600)
    log = (logs / f"run-{moments}.log").read_text()
    assert status == 0, log[-3000:]
    assert "Could not recover" not in log, log[-3000:]
    # A resume looks like a run (item 7): what it resumed, per trial; the status table with the grid's
    # columns; no config box per trial and no TensorBoard command into Ray's temp folder.
    summary = re.compile(r"resume: train_[a-z]+_\S+: (finished \(epoch|continues (after its error )?"
                         r"from epoch|starts from scratch \()")
    said = [line for line in log.splitlines() if summary.match(line)]
    assert len(said) == len(reference), log[-3000:]
    assert column in log, log[-3000:]
    assert "started with configuration" not in log and "To visualize your results" not in log, log[-3000:]
    # A trial restored from its checkpoint is said once, by the resume, not by Ray's worker each time.
    texts = [(logs / f"run-{n}.log").read_text() for n in range(1, moments + 1)]
    assert any(": continues from epoch" in text for text in texts)
    assert not any("Restored on" in text for text in texts), "Ray's restore lines reached the console"
    if ctrl_c_at:  # the resumed search answers as one left alone
        assert "INTERRUPTED" not in log and "\n*" in log, log[-3000:]
        assert "Interrupted" not in report_readme(folder, env).read_text()
    statuses = folder.trial_statuses()
    assert list(statuses.values()) == ["TERMINATED"] * len(reference), statuses
    # The same trials stopped at the same epochs, with the same values up to there.
    assert curves(folder) == reference, "a resumed trial's per-epoch metrics differ from the unkilled run's"
    for trial in folder.trials():  # result.json as well: every report exactly once
        ran = len(reference[trial_key(trial)])
        assert [r["training_iteration"] for r in trial.results()] == list(range(1, ran + 1)), trial.name
    return kills
