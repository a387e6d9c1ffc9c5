"""`--scheduler wilcoxon`: the rule (analysis/wilcoxon.py) decides as Optuna's WilcoxonPruner does, case by
case and replayed on committed curves; the Ray scheduler (search/wilcoxon.py) stops in a real search what
the replay of its stored curves stops, records each judgement with its evidence, and rebuilds its
state from what was stored; bad input is one line."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis.wilcoxon import judge, wilcoxon_replay
from bench.fidelity_curves import arms, read_curves
from search.run import main
from search.wilcoxon import WilcoxonStopping
from store.experiment import ExperimentFolder
from store.lifecycle import rung_decisions

ROOT = Path(__file__).resolve().parent.parent
SAMPLED16 = ROOT / "bench" / "asha_fidelity_curves_sampled16.json"


def optuna_prunes(values: dict[int, float], best: dict[int, float], p: float, startup: int,
                  mode: str) -> bool:
    """Optuna's own WilcoxonPruner on a study whose best completed trial reported `best`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize",
                                pruner=optuna.pruners.WilcoxonPruner(p_threshold=p, n_startup_steps=startup))
    study.add_trial(optuna.trial.create_trial(value=0.0, intermediate_values=best, params={},
                                              distributions={}))
    trial = study.ask()
    for step, value in values.items():
        trial.report(value, step)
    return trial.should_prune()


def test_the_rule_decides_as_optunas_wilcoxon_pruner():
    """Random trials against random best trials: ties, zeros, fewer steps than the best, too few pairs,
    both directions; the decision is Optuna's every time, and both answers occur."""
    import warnings

    rng = random.Random(7)
    seen = set()
    for _ in range(60):
        steps = rng.randint(1, 12)
        best = {s: round(rng.uniform(0.3, 0.7), 2) for s in range(steps + rng.randint(0, 6))}
        shift = rng.choice([-0.2, -0.05, 0.0, 0.05])
        values = {s: round(best[s] + shift + rng.uniform(-0.1, 0.1), 2) for s in range(steps)}
        p, startup, mode = rng.choice([0.05, 0.2, 0.4]), rng.choice([1, 3, 6]), rng.choice(["max", "min"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning, scipy's exact-test notes
            expected = optuna_prunes(values, best, p, startup, mode)
            assert judge(values, best, p, startup, mode)[0] == expected, (values, best, p, startup, mode)
        seen.add(expected)
    assert seen == {True, False}


def test_the_replay_of_committed_curves_stops_what_optunas_study_stops():
    """The sampled16 curves' seed sets (3 lockstep seeds, 6 epochs), at the default p 0.2 and 3 startup
    steps: each trial trains as many epochs in the rule's replay as in Optuna's sequential study
    (bench/fidelity_optuna.py), which stops some of them."""
    from bench.fidelity_optuna import optuna_replay

    curves, _ = read_curves([SAMPLED16])
    stopped = 0
    for sets in arms(curves, 6).values():
        for cells in sets.values():
            ours, _ = wilcoxon_replay(cells, 6, 0.2, 3)
            assert ours == optuna_replay(cells, 6, "optuna-wilcoxon",
                                         {"p_threshold": 0.2, "n_startup_steps": 3}).trained
            stopped += sum(at < 6 for at in ours.values())
    assert stopped > 0


class Controller:
    """What the scheduler asks of Ray's TuneController: its trials, and stopping one."""

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials

    def stop_trial(self, trial):
        trial.status = "TERMINATED"


def trial_ids(n: int, optuna: bool) -> list[str]:
    """A grid's trial ids end with their creation index; an Optuna search's are random (its trials'
    experiment tags count them: `creation_order`)."""
    return [f"{random.Random(i).getrandbits(32):08x}" if optuna else f"abcde_{i:05d}" for i in range(n)]


def run_interleaved(cells: dict, scheduler: WilcoxonStopping, slots: int, rng: random.Random,
                    optuna: bool = False) -> dict:
    """Feeds the scheduler a seed set's curves as Ray would with `slots` trials at once, the running
    trial that reports next drawn by `rng`: PAUSE parks a trial, choose_trial_to_run picks the next.
    Returns config -> reports trained."""
    configs = list(cells)
    trials = [SimpleNamespace(trial_id=trial_id, config={"c": c}, status="PENDING", done=0,
                              experiment_tag=f"{n + optuna}_c={n}")
              for n, (trial_id, c) in enumerate(zip(trial_ids(len(configs), optuna), configs, strict=True))]
    controller = Controller(trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    while True:
        while sum(t.status == "RUNNING" for t in trials) < slots:
            chosen = scheduler.choose_trial_to_run(controller)
            if chosen is None:
                break
            chosen.status = "RUNNING"
        running = [t for t in trials if t.status == "RUNNING"]
        if not running:
            break
        trial = rng.choice(running)
        trial.done += 1
        c = trial.config["c"]
        result = {"training_iteration": trial.done, "val_acc": 0.0,
                  **{f"val_acc_seed{s}": curve[trial.done - 1] for s, curve in enumerate(cells[c])}}
        decision = scheduler.on_trial_result(controller, trial, result)
        if decision == scheduler.STOP or trial.done >= scheduler.max_t:
            trial.status = "TERMINATED"
        elif decision == scheduler.PAUSE:
            trial.status = "PAUSED"
    assert all(t.status == "TERMINATED" for t in trials)
    return {t.config["c"]: t.done for t in trials}


@pytest.mark.parametrize("wave,slots,optuna", [(1, 1, False), (1, 3, False), (2, 2, False), (3, 2, False),
                                               (4, 4, False), (2, 2, True)])
def test_the_scheduler_stops_what_the_replay_of_its_waves_stops_however_many_trials_run_at_once(
        wave, slots, optuna):
    """The Ray scheduler fed a seed set's curves with `slots` trials at once, in random arrival orders:
    every time the same stops as the replay in waves of `wave` (wave 1: Optuna's sequential study), a
    kept arm never judged, and a judgement recorded for every report with enough pairs, against the
    same completed trial; trials named as an Optuna search names them too."""
    curves, _ = read_curves([SAMPLED16])
    sets = next(iter(arms(curves, 6).values()))
    rng = random.Random(wave * 10 + slots)
    stops = 0
    for cells in list(sets.values())[:1]:
        configs = list(cells)
        kept_config = configs[-1]
        replayed, _ = wilcoxon_replay(cells, 6, 0.2, 3, kept=frozenset({kept_config}), wave=wave)
        records, ids = None, trial_ids(len(configs), optuna)
        for _ in range(2):
            scheduler = WilcoxonStopping(6, 0.2, 3, wave, kept=({"c": kept_config},), metric="val_acc")
            assert run_interleaved(cells, scheduler, slots, rng, optuna) == replayed
            judged = sorted((d["trial"], d["rung"], d["reference"], d["p"]) for d in scheduler.log.decisions)
            assert records in (None, judged)
            records = judged
            decisions = scheduler.log.decisions
            assert all(d["rule"] == "wilcoxon" and d["pairs"] >= 3 and 0 < d["p"] <= 1 for d in decisions)
            assert ids[-1] not in {d["trial"] for d in decisions}
            assert {d["trial"] for d in decisions if d["stopped"]} == {
                ids[n] for n, c in enumerate(configs) if replayed[c] < 6}
            assert all(d["stopped"] == {d["trial"]: "significant"} and d["p"] < 0.2 and d["worse"]
                       for d in decisions if d["stopped"])
        # As --resume rebuilds it: the stored reports, the trials added back newest first, as Ray's
        # restore adds them; the same verdicts, nothing judged before its wave's reference is known.
        restored = WilcoxonStopping(6, 0.2, 3, wave, kept=({"c": kept_config},), metric="val_acc")
        restored.curves = {t: dict(reports) for t, reports in scheduler.curves.items()}
        for n in reversed(range(len(configs))):
            added = SimpleNamespace(trial_id=ids[n], config={"c": configs[n]}, status="TERMINATED",
                                    experiment_tag=f"{n + optuna}_c={n}")
            restored.on_trial_add(None, added)
        restored.advance()
        assert restored.verdicts == scheduler.verdicts
        stops += sum(at < 6 for at in replayed.values())
    assert stops > 0


@pytest.mark.slow
def test_a_wilcoxon_search_stops_what_the_replay_of_its_curves_stops_and_resumes_its_state(tmp_path):
    """A real smoke search, trials side by side (one CPU each): the trials Ray stopped, and where,
    equal the replay on the stored curves in creation order, in waves of the trials that ran at once
    (stored with the plan); each stop is recorded with its evidence and drawn as significant; a fresh
    scheduler rebuilt from the folder (as `--resume` does) holds every stored report and judges again
    to the same trials completed."""
    from analysis.decisions import stop_evidence
    from analysis.results import load_experiment
    from tests.conftest import run_cli
    from tests.test_significance import stored_curves

    result = run_cli("--space", "degradation", "--profile", "smoke", "--scheduler", "wilcoxon",
                     "--alpha", "0.3", "--max-epochs", "3", "--seeds", "2", "--set", "num_blocks=1,3",
                     "--set", "train_subset=256", "--set", "val_subset=128", "--no-questions",
                     "--cpus-per-trial", "1", "--storage", str(tmp_path), "--name", "wx",
                     env={"TUNELAB_REPORT": str(tmp_path / "r")}, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "early stopping (wilcoxon):" in result.stdout
    exp = load_experiment(tmp_path / "wx", max_t=3)
    ran = dict(zip(exp.trials["trial_id"], exp.trials["epochs_run"], strict=True))
    folder = ExperimentFolder(tmp_path / "wx")
    wave = folder.plan()["scheduler_settings"]["wave"]
    assert wave == min(2, os.cpu_count() or 1)
    replayed, completed = wilcoxon_replay(stored_curves(exp), 3, 0.3, 3, wave=wave)
    assert ran == replayed, (ran, replayed)
    judged = [d for d in rung_decisions(folder) if d["rule"] == "wilcoxon"]
    settings = {"max_t": 3, "p_threshold": 0.3, "n_startup_steps": 3, "wave": wave}
    assert judged and all(d["settings"] == settings for d in judged)
    exp.decisions = rung_decisions(folder)
    evidence = stop_evidence(exp)
    assert set(evidence) == {t for t, at in ran.items() if at < 3}
    assert all(re.search(r"Wilcoxon p 0\.\d{3} < 0\.3", line) for line in evidence.values()), evidence
    fresh = WilcoxonStopping(3, 0.3, 3, wave, metric="val_acc")
    assert fresh.resume_from(folder) == sum(at == 3 for at in ran.values())
    assert {t: len(r) for t, r in fresh.curves.items()} == ran
    for trial_id in ran:
        fresh.on_trial_add(None, SimpleNamespace(trial_id=trial_id, config={}, status="TERMINATED"))
    fresh.advance()
    assert [t for t, (verdict, _) in sorted(fresh.verdicts.items()) if verdict == "completed"] == completed


@pytest.mark.parametrize("args,said", [
    (["--scheduler", "wilcoxon", "--alpha", "0.6"], "alpha must be in (0, 0.5)"),
    (["--scheduler", "wilcoxon", "--alpha", "nan"], "alpha must be in (0, 0.5)"),
    (["--scheduler", "wilcoxon", "--smoothing", "0.5"], "--smoothing: --scheduler wilcoxon"),
    (["--scheduler", "asha", "--alpha", "0.1"], "--alpha sets the test of --scheduler significance or"),
    (["--scheduler", "wilcoxon", "--objective", "val_acc:max,params:min"], "stops on one metric"),
])
def test_bad_wilcoxon_input_is_one_line_and_exit_2(tmp_path, capsys, args, said):
    assert main(["--space", "degradation", "--profile", "smoke", *args, "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and len(err.splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []
