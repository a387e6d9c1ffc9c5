"""A study's questions (spaces/questions.py, analysis/questions.py): verdicts and intervals against a
hand computation on constructed curves, the undecided cases and their reasons, the rule that keeps
every arm of a question to the budget, and bad questions refused in one line before Ray starts."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from analysis.questions import CONTRADICTED, HOLDS, UNDECIDED, answer, judge, verdict_lines
from analysis.results import Experiment
from analysis.rungs import is_kept, significance_halving
from search.run import main
from spaces import SPACES, get_space
from spaces.questions import BEST, LESS, MORE, SAME, Question, grid_cells, kept_arms, parse_question
from store import locate

T_975_3 = 3.182446  # Student t, 97.5% quantile, 3 degrees of freedom (printed tables)
T_95_3 = 2.353363  # 95% quantile, 3 degrees of freedom


def experiment(arms: dict[tuple, list[list[float]]], max_t: int, stopped: dict | None = None) -> Experiment:
    """An Experiment of lockstep trials over (num_blocks, skip): each arm's per-seed val_acc curves."""
    trials, epochs = [], []
    for i, ((blocks, skip), seeds) in enumerate(arms.items()):
        trial_id = f"t{i}"
        reports = len(seeds[0])
        trials.append({"trial_id": trial_id, "num_blocks": blocks, "skip": skip, "seeds": len(seeds),
                       "epochs_run": reports, "done": True, "errored": False,
                       "stopped_early": bool((stopped or {}).get((blocks, skip)))})
        for t in range(reports):
            row = {"trial_id": trial_id, "num_blocks": blocks, "skip": skip, "training_iteration": t + 1,
                   "val_acc": sum(s[t] for s in seeds) / len(seeds)}
            row.update({f"val_acc_seed{k}": s[t] for k, s in enumerate(seeds)})
            epochs.append(row)
    exp = Experiment(locate("/tmp/constructed"), pd.DataFrame(trials), pd.DataFrame(epochs),
                     ["num_blocks", "skip", "seeds"], ["val_acc"], space="degradation",
                     plan={"scheduler": "significance", "search": "grid"}, max_t=max_t)
    exp.trials["complete"] = True
    return exp


DEEP = Question("deep", {"num_blocks": 7, "skip": False}, LESS, {"num_blocks": 5, "skip": False},
                reference="holds")


def test_a_verdict_and_its_interval_match_a_hand_computation():
    deep = [[0.5, 0.60], [0.5, 0.62], [0.5, 0.58], [0.5, 0.61]]  # 4 seeds, read at epoch 2
    shallow = [[0.5, 0.65], [0.5, 0.66], [0.5, 0.64], [0.5, 0.67]]
    (v,) = answer(experiment({(7, False): deep, (5, False): shallow}, max_t=2), [DEEP])
    # differences -0.05, -0.04, -0.06, -0.06: mean -0.0525; squares about it sum to 2.75e-4
    sd = math.sqrt(2.75e-4 / 3)
    half = T_975_3 * sd / 2
    assert (v.verdict, v.n, v.epoch) == (HOLDS, 4, 2)
    assert v.diff == pytest.approx(-0.0525) and v.sd == pytest.approx(sd)
    assert (v.lo, v.hi) == (pytest.approx(-0.0525 - half, abs=1e-6), pytest.approx(-0.0525 + half, abs=1e-6))
    assert v.p == pytest.approx(stats.ttest_rel([0.60, 0.62, 0.58, 0.61], [0.65, 0.66, 0.64, 0.67]).pvalue)
    text = "\n".join(verdict_lines([v]))
    assert "HOLDS" in text and "95% [-0.0677, -0.0373]" in text and "reference: holds" in text


def test_the_other_side_contradicts_and_a_straddle_is_undecided_with_the_seeds_that_would_decide():
    rising = Question("q", {"num_blocks": 7, "skip": False}, MORE, {"num_blocks": 5, "skip": False})
    assert judge(rising, [-0.05, -0.04, -0.06, -0.06])[0] == CONTRADICTED
    verdict, mean, sd, lo, hi, _, reason, hint = judge(DEEP, [-0.02, 0.01, -0.03, -0.01])
    assert verdict == UNDECIDED and lo < 0 < hi
    assert "95% interval holds 0" in reason and hint.startswith("--seeds ")
    need = int(hint.split()[1])
    t = stats.t.ppf(0.975, need - 1)
    assert t * sd / math.sqrt(need) < abs(mean) <= stats.t.ppf(0.975, need - 2) * sd / math.sqrt(need - 1)


def test_an_equivalence_uses_two_one_sided_tests_at_the_margin():
    same = Question("q", {"num_blocks": 7}, SAME, {"num_blocks": 5}, margin=0.02)
    diffs = [0.004, -0.002, 0.001, 0.005]
    verdict, mean, sd, lo, hi, p, _, _ = judge(same, diffs)
    half = T_95_3 * sd / 2
    assert verdict == HOLDS and (lo, hi) == (pytest.approx(mean - half), pytest.approx(mean + half))
    se = sd / 2
    assert p == pytest.approx(max(stats.t.sf((mean + 0.02) / se, 3), stats.t.sf((0.02 - mean) / se, 3)))
    assert judge(same, [0.05, 0.06, 0.055, 0.052])[0] == CONTRADICTED  # wholly beyond the margin


def test_one_seed_or_a_stopped_arm_is_undecided_with_its_reason():
    one = experiment({(7, False): [[0.5, 0.6]], (5, False): [[0.5, 0.7]]}, max_t=2)
    (v,) = answer(one, [DEEP])
    assert v.verdict == UNDECIDED and v.interval == "too few seeds (1)" and "--seeds 3" in v.hint
    cut = experiment({(7, False): [[0.5], [0.5]], (5, False): [[0.5, 0.7], [0.5, 0.7]]}, max_t=2,
                     stopped={(7, False): True})
    (v,) = answer(cut, [DEEP])
    assert v.verdict == UNDECIDED and "stopped by the scheduler" in v.reason and v.n == 0


def test_a_best_arm_is_read_as_the_configuration_best_at_the_epoch():
    arms = {(1, True): [[0.8], [0.82]], (5, True): [[0.7], [0.71]], (5, False): [[0.5], [0.52]]}
    q = Question("best", BEST, MORE, {"num_blocks": 5, "skip": False})
    (v,) = answer(experiment(arms, max_t=1), [q])
    assert v.a.startswith("num_blocks=1, skip=True") and v.verdict in (HOLDS, UNDECIDED)


def test_every_space_declares_questions_whose_arms_are_in_its_grid():
    for space in SPACES.values():
        assert space.questions, space.name
        cells = grid_cells(space.grid, space.baselines, space.base_config("smoke"))
        for q in space.questions:
            assert all(arm == BEST or any(is_kept(c, [arm]) for c in cells) for arm in q.arms()) \
                or space.name == "extract", (space.name, q.name)  # extract's backbones may be missing


def test_the_rule_never_stops_an_arm_of_a_question_it_keeps():
    # Plain nets far behind with tight seeds: significance halving alone stops them at the first rung.
    curves = {c: [[level] * 4, [level + 0.01] * 4, [level - 0.01] * 4]
              for c, level in (("skip7", 0.8), ("skip5", 0.79), ("plain7", 0.4), ("plain5", 0.45))}
    alone = significance_halving(curves, grace_period=1, reduction_factor=2, max_t=4, alpha=0.2)
    assert alone.stopped_at["plain7"] == 1 and alone.stopped_at["plain5"] == 1
    kept = significance_halving(curves, grace_period=1, reduction_factor=2, max_t=4, alpha=0.2,
                                kept=frozenset({"plain7", "plain5"}))
    assert kept.stopped_at["plain7"] == kept.stopped_at["plain5"] == 4


def test_the_plan_keeps_every_arm_of_the_degradation_questions(tmp_path):
    from ray.tune.schedulers import FIFOScheduler

    from search.options import build_plan, parse_args
    from search.tuner import make_scheduler

    def plan(*args: str):
        return build_plan(parse_args(["--space", "degradation", "--profile", "smoke", "--storage",
                                      str(tmp_path), "--name", f"p{len(list(tmp_path.iterdir()))}", *args]))

    cells = grid_cells(get_space("degradation").grid, (), {})
    assert all(is_kept(c, plan().kept()) for c in cells)
    # Every configuration is an arm: no rung could stop one, so no rung pauses one either.
    assert isinstance(make_scheduler(plan()), FIFOScheduler)
    assert make_scheduler(plan("--no-questions")).kept == ()
    added = plan("--no-questions", "--question", "d: num_blocks=7,skip=false < num_blocks=1,skip=false")
    assert make_scheduler(added).kept == ({"num_blocks": 7, "skip": False}, {"num_blocks": 1, "skip": False})
    best = parse_question("b: best > num_blocks=1,skip=false", get_space("degradation").config_cls)
    assert kept_arms([best], cells) == tuple(cells)


BAD_QUESTIONS = [
    (["--question", "x: nosuch=1 < num_blocks=5"], "unknown key"),
    (["--question", "x: num_blocks=3,skip=false < num_blocks=5,skip=false"], "outside this search's grid"),
    (["--question", "x: num_blocks=7 < num_blocks=5; metric=nosuch"], "unknown metric"),
    (["--question", "x: num_blocks=7 ~ num_blocks=5; margin=nan"], "finite margin"),
    (["--question", "x: num_blocks=7 ~ num_blocks=5; margin=inf"], "finite margin"),
    (["--question", "x: num_blocks=7 ~ num_blocks=5; margin=-0.1"], "finite margin"),
    (["--question", "x: num_blocks=7 ~ num_blocks=5; margin="], "options are"),
    (["--question", "x: num_blocks=7 ~ num_blocks=5"], "finite margin"),
    (["--question", "x: num_blocks=7 < num_blocks=5; epoch=99"], "epoch must be in"),
    (["--question", "x: num_blocks=7 < num_blocks=7"], "same configurations"),
    (["--question", "num_blocks=7 < num_blocks=5"], "expected NAME"),
    (["--question", "x: num_blocks=7 num_blocks=5"], "one of <, >, ~"),
    (["--question", "x: num_blocks=7 < num_blocks=5", "--question", "x: num_blocks=1 < num_blocks=5"],
     "two questions are named 'x'"),
    (["--question", "skip fixes 30 layers: num_blocks=1 < num_blocks=5"], "two questions are named"),
    (["--set", "num_blocks=7", "--set", "skip=false", "--question", "x: num_blocks=7 < num_blocks=7"],
     "runs one configuration"),
    (["--search", "optuna", "--question", "x: num_blocks=7 < num_blocks=5"], "needs --search grid"),
]


@pytest.mark.parametrize("args,needle", BAD_QUESTIONS, ids=[" ".join(a) for a, _ in BAD_QUESTIONS])
def test_a_bad_question_is_one_line_and_exit_2_before_ray_starts(args, needle, tmp_path, capsys):
    assert main(["--space", "degradation", "--profile", "smoke", *args,
                 "--storage", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
