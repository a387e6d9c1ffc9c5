"""Answers a study's questions (spaces/questions.py) from the stored curves: for each, the paired
difference a − b over the seeds both arms trained, at the epoch the question is read at.

- `<` and `>`: the 95% Student-t interval of the mean difference. The question **holds** when the
  interval lies on the side it predicts, is **contradicted** when it lies on the other side, and is
  **undecided** when it holds 0. p is the two-sided paired t-test's.
- `~` (equivalence within ±margin): two one-sided tests at 5% each, i.e. the 90% interval. It **holds**
  when the interval lies inside ±margin, is **contradicted** when it lies wholly outside, and is
  undecided otherwise. p is the larger of the two one-sided p-values.

A question is undecided, with its reason, when an arm is missing from the search, stopped or not yet
at the epoch read, or when fewer than 2 seeds are shared (no interval can be bounded); the hint then
names the `--seeds` that would decide it if the measured difference and spread held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.results import Experiment
from analysis.tables import Table, runs
from spaces.questions import (
    BEST,
    LESS,
    SAME,
    Question,
    arm_label,
    grid_cells,
    matches,
    parse_question,
    study_questions,
)

HOLDS, CONTRADICTED, UNDECIDED = "holds", "contradicted", "undecided"
MAX_SEEDS_HINT = 64
"""The largest --seeds a hint suggests; beyond it the difference is called too small to resolve."""


@dataclass(frozen=True)
class Verdict:
    question: Question
    metric: str
    epoch: float
    """The epoch both arms are read at."""
    verdict: str
    a: str
    """The first arm as read (the configuration `best` turned out to be)."""
    n: int = 0
    """Seeds both arms trained."""
    diff: float = math.nan
    """Mean over those seeds of a − b."""
    sd: float = math.nan
    """Standard deviation of the paired differences."""
    lo: float = math.nan
    hi: float = math.nan
    level: float = 0.95
    """The interval's level: 0.95 for < and >, 0.90 for ~ (two one-sided tests at 5%)."""
    p: float = math.nan
    reason: str = ""
    """Why it is undecided, or a note on how it was read."""
    hint: str = ""
    """What would decide an undecided question, e.g. `--seeds 6`."""
    sizes: tuple[float, float] | None = None
    """Each arm's model size (params or trainable_params), when the trials report one."""
    arms: tuple[dict, ...] = ()
    """The arms as read (`best` resolved to its configuration): the rows behind the verdict."""

    @property
    def interval(self) -> str:
        if self.n < 2:
            return f"too few seeds ({self.n})"
        return f"{self.level:.0%} [{self.lo:+.4f}, {self.hi:+.4f}]"


def _seed_values(frame: pd.DataFrame, arm: dict, metric: str, at: int) -> tuple[dict, str]:
    """{seed: the arm's metric at report `at`, averaged over its configurations}, or ({}, why not)."""
    rows = frame[[matches(row, arm) for row in frame.to_dict("records")]]
    if rows.empty:
        return {}, f"{arm_label(arm)} is not in this search"
    short = rows[rows["epochs_run"] < at + 1]
    if not short.empty:
        row = short.iloc[0]
        how = "stopped by the scheduler" if row["stopped_early"] else "still running or interrupted"
        return {}, f"{arm_label(arm)} has {row['epochs_run']} of the {at + 1} reports needed ({how})"
    values = rows.assign(value=[curve[at] for curve in rows[metric]]).groupby("seed")["value"].mean()
    return {int(s): float(v) for s, v in values.items() if not math.isnan(v)}, ""


def _best_arm(frame: pd.DataFrame, q: Question, keys: list[str], kept: tuple[dict, ...], metric: str,
              at: int, mode: str) -> dict | None:
    """The configuration `best` names: the best mean at report `at` among those that reached it, the
    other arm and the kept baselines aside."""
    other = q.b if q.a == BEST else q.a
    rows = frame[[not matches(r, other) and not any(matches(r, k) for k in kept)
                  and r["epochs_run"] > at for r in frame.to_dict("records")]]
    if rows.empty or not keys:
        return None
    means = rows.assign(value=[c[at] for c in rows[metric]]).groupby(keys, dropna=False)["value"].mean()
    best = means.idxmax() if mode == "max" else means.idxmin()
    return dict(zip(keys, best if isinstance(best, tuple) else (best,), strict=True))


def seeds_needed(diff: float, sd: float, room: float, level: float, n: int) -> int | None:
    """The fewest seeds N > n at which t_{(1+level)/2, N−1} · sd / √N < room, the distance the
    interval's half-width must stay under (|diff| for a direction, margin − |diff| for ~)."""
    if room <= 0 or math.isnan(sd):
        return None
    for count in range(max(n + 1, 2), MAX_SEEDS_HINT + 1):
        if float(stats.t.ppf((1 + level) / 2, count - 1)) * sd / math.sqrt(count) < room:
            return count
    return None


def judge(q: Question, differences: list[float]) -> tuple[str, float, float, float, float, float, str, str]:
    """(verdict, mean, sd, lo, hi, p, reason, hint) for the paired differences a − b."""
    x = np.asarray(differences, dtype=float)
    n = len(x)
    if n < 2:
        return UNDECIDED, float(x.mean()) if n else math.nan, math.nan, math.nan, math.nan, math.nan, \
            f"too few seeds: {n} shared, an interval needs 2 or more", "--seeds 3"
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    level = 0.90 if q.relation == SAME else 0.95
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * se
    lo, hi = mean - half, mean + half
    if q.relation == SAME:
        m = float(q.margin or 0)
        if se == 0:
            p = 0.0 if abs(mean) < m else 1.0
        else:
            p = max(float(stats.t.sf((mean + m) / se, n - 1)), float(stats.t.sf((m - mean) / se, n - 1)))
        verdict = HOLDS if -m < lo and hi < m else CONTRADICTED if lo > m or hi < -m else UNDECIDED
        room, what = m - abs(mean), f"the 90% interval is not inside ±{m:g}"
    else:
        p = (0.0 if mean != 0 else 1.0) if se == 0 else float(2 * stats.t.sf(abs(mean) / se, n - 1))
        below, above = hi < 0, lo > 0
        predicted, opposite = (below, above) if q.relation == LESS else (above, below)
        verdict = HOLDS if predicted else CONTRADICTED if opposite else UNDECIDED
        room, what = abs(mean), "the 95% interval holds 0"
    if verdict != UNDECIDED:
        return verdict, mean, sd, lo, hi, p, "", ""
    need = seeds_needed(mean, sd, room, level, n)
    hint = (f"--seeds {need} would decide it if this difference and spread held" if need else
            f"too close to call at this spread with up to {MAX_SEEDS_HINT} seeds")
    return UNDECIDED, mean, sd, lo, hi, p, f"{what} (sd of the differences {sd:.4f} over {n} seeds)", hint


def questions_of(exp: Experiment) -> list[Question]:
    """The questions an experiment answers: its space's that its grid holds and the user's
    (`--question`, from the stored plan); none for a search that was not a grid search."""
    from spaces import SPACES

    space = SPACES.get(exp.space or "")
    plan = exp.plan
    if space is None or plan.get("search", "grid") != "grid" or plan.get("scheduler") == "pbt":
        return []
    grid = plan.get("grid") or {k: list(v) for k, v in space.grid.items()}
    config = plan.get("config") or {}
    cells = grid_cells(grid, space.baselines, config)
    added = [parse_question(text, space.config_cls) for text in plan.get("questions", [])]
    epochs = int(config.get("epochs") or (exp.max_t or 1) // exp.reports_per_epoch)
    declared = space.questions if plan.get("space_questions", True) else ()
    return study_questions(declared, added, cells, space.metrics, epochs)


def answer(exp: Experiment, questions: list[Question] | None = None) -> list[Verdict]:
    """Every question's verdict with its evidence (`questions_of(exp)` when none are given)."""
    from spaces import SPACES

    questions = questions_of(exp) if questions is None else questions
    if not questions:
        return []
    space = SPACES.get(exp.space or "")
    kept = space.baselines if space else ()
    size = next((k for k in ("params", "trainable_params") if k in exp.metric_keys), None)
    metrics = list(dict.fromkeys([q.metric or exp.metric for q in questions] + ([size] if size else [])))
    frame = runs(exp, metrics)
    if "seed" not in frame:
        frame["seed"] = 0
    frame["seed"] = frame["seed"].fillna(0)
    budget = exp.max_t or int(frame["epochs_run"].max())
    keys = [k for k in exp.varied_keys() if k != "trial_id"]
    verdicts = []
    for q in questions:
        metric = q.metric or exp.metric
        at = (q.epoch * exp.reports_per_epoch if q.epoch else budget) - 1
        epoch = (at + 1) / exp.reports_per_epoch
        a = q.a
        if a == BEST or q.b == BEST:
            found = _best_arm(frame, q, keys, kept, metric, at, exp.mode)
            if found is None:
                verdicts.append(Verdict(q, metric, epoch, UNDECIDED, BEST,
                                        reason=f"no configuration reached epoch {epoch:g} to be the best"))
                continue
            a = found if q.a == BEST else a
        b = found if q.b == BEST else q.b
        label = arm_label(a) + (" (best: chosen on these seeds, so optimistic)" if q.a == BEST else "")
        values, reasons = [], []
        for arm in (a, b):
            found_values, why = _seed_values(frame, arm, metric, at)
            values.append(found_values)
            if why:
                reasons.append(why)
        if reasons:
            verdicts.append(Verdict(q, metric, epoch, UNDECIDED, label, reason="; ".join(reasons),
                                    hint="--scheduler fifo, or resume the search to the budget"
                                    if "stopped" in reasons[0] or "running" in reasons[0] else "",
                                    arms=(a, b)))
            continue
        shared = sorted(set(values[0]) & set(values[1]))
        verdict, diff, sd, lo, hi, p, reason, hint = judge(q, [values[0][s] - values[1][s] for s in shared])
        sizes = None
        if size:
            arm_size = [_seed_values(frame, arm, size, at)[0] for arm in (a, b)]
            if all(arm_size):
                sizes = tuple(float(np.mean(list(v.values()))) for v in arm_size)
        verdicts.append(Verdict(q, metric, epoch, verdict, label, len(shared), diff, sd, lo, hi,
                                0.90 if q.relation == SAME else 0.95, p, reason, hint, sizes, (a, b)))
    return verdicts


def arm_trials(exp: Experiment, verdict: Verdict) -> list[str]:
    """The trial ids of the rows behind a verdict: every trial of either arm as read."""
    return [str(row["trial_id"]) for row in exp.trials.to_dict("records")
            if any(matches(row, arm) for arm in verdict.arms if isinstance(arm, dict))]


def verdict_rows(verdicts: list[Verdict]) -> list[dict]:
    """One row per question, as the summary, the report and the page show it."""
    rows = []
    for v in verdicts:
        q = v.question
        size = ""
        if v.sizes:
            size = f"{v.sizes[0]:,.0f} / {v.sizes[1]:,.0f} = {v.sizes[0] / v.sizes[1]:.3g}×"
        rows.append({
            "question": q.name,
            "claim": f"{v.a if q.a == BEST else arm_label(q.a)} {q.relation} {arm_label(q.b)} on {v.metric}"
                     + (f" ±{q.margin:g}" if q.relation == SAME else ""),
            "verdict": v.verdict,
            "reference": q.reference or "–",
            "Δ (a − b)": "–" if math.isnan(v.diff) else f"{v.diff:+.4f}",
            "interval": v.interval if v.n else "–",
            "p": "–" if math.isnan(v.p) else f"{v.p:.2g}",
            "seeds": v.n,
            "epoch": f"{v.epoch:g}",
            "size a / b": size,
            "why / next": "; ".join(part for part in (v.reason, v.hint) if part),
        })
    return rows


def verdicts_markdown(verdicts: list[Verdict]) -> str:
    """The questions as a Markdown table with its caption (empty when there are none)."""
    rows = verdict_rows(verdicts)
    if not rows:
        return ""
    shown = [c for c in rows[0] if any(r[c] not in ("", "–") for r in rows) or c in ("question", "verdict")]
    lines = [f"**The study's questions**: {CAPTION}", "",
             "| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "/") for c in shown) + " |" for r in rows]
    return "\n".join(lines) + "\n"


CAPTION = ("paired difference a − b over the seeds both arms trained, at the epoch read (the budget "
           "unless the question says otherwise); holds / contradicted when the interval (95% for < and "
           ">, 90% for ~, two one-sided tests) lies on one side, else undecided, with why and what would "
           "decide it; the reference's finding beside ours")


def verdict_lines(verdicts: list[Verdict]) -> list[str]:
    """The questions for a console: one line each, then the reference's finding and, for an undecided
    one, why and what would decide it."""
    if not verdicts:
        return []
    lines = ["", f"questions: {CAPTION}"]
    width = max(len(v.question.name) for v in verdicts)
    for v, row in zip(verdicts, verdict_rows(verdicts), strict=True):
        size = f"; size {row['size a / b']}" if row["size a / b"] else ""
        lines.append(f"  {v.question.name:{width}}  {v.verdict.upper():12} Δ {row['Δ (a − b)']}, "
                     f"{row['interval']}, p {row['p']}, {v.n} seeds, epoch {row['epoch']}{size}")
        lines.append(f"  {'':{width}}  {'':12} {row['claim']}; reference: {row['reference']}")
        if row["why / next"]:
            lines.append(f"  {'':{width}}  {'':12} why: {row['why / next']}")
    return lines


def questions_table(verdicts: list[Verdict]) -> Table:
    """The verdicts as a Table (the report's and the page's): one row per question."""
    return Table("questions", "budget", pd.DataFrame(verdict_rows(verdicts)),
                 f"The study's questions: {CAPTION}")


def side_by_side(exps: list[Experiment], letters: str) -> Table | None:
    """`report.py A B`: each question any side asks, with every side's verdict and evidence in one
    row (None when no side asks one)."""
    answered = [{v.question.name: row for v, row in zip(found, verdict_rows(found), strict=True)}
                for found in (answer(exp) for exp in exps)]
    names = list(dict.fromkeys(name for side in answered for name in side))
    if not names:
        return None
    rows = []
    for name in names:
        row = {"question": name}
        for letter, side in zip(letters, answered, strict=False):
            found = side.get(name)
            row[letter] = ("not asked" if found is None else
                           f"{found['verdict']}: Δ {found['Δ (a − b)']}, {found['interval']}, "
                           f"{found['seeds']} seeds, epoch {found['epoch']}")
        rows.append(row)
    return Table("questions", "budget", pd.DataFrame(rows), f"The study's questions, side by side: {CAPTION}")
