"""The schedules a `--scheduler pbt` search leaves behind: which values each member trained every
report with, and whose checkpoints its final model went through (search/pbt.py runs the search).

Read from the stored experiment through store/experiment.py: every result row carries the config the
member trained that report with (Ray's `config` in result.json), and Ray's pbt_global.txt lists every
exploit in order. A member's rows are cut into segments where an exploit put it on another member's
checkpoint; its lineage follows those parents back to the first report. The driver's closing summary
and the report both print `schedule_lines`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spaces import SPACES
from store.experiment import ExperimentFolder, NotAnExperiment


@dataclass
class Segment:
    """Reports a member trained in a row from one start: its own first report, or another's checkpoint."""

    rows: list[tuple[int, dict]]
    """(report, {key: value}) in the order written."""
    parent: str | None = None
    """The trial id whose checkpoint this segment went on from (None: the member's own start)."""

    @property
    def first(self) -> int:
        return self.rows[0][0]


@dataclass
class Member:
    trial_id: str
    segments: list[Segment]
    final: dict[str, float]
    """Its last report's metrics."""


def cut_segments(rows: list[tuple[int, dict]], exploits: list[dict]) -> list[Segment]:
    """Cuts a member's rows where an exploit put it on another's checkpoint: where the values change
    (explore always moves them, unless every key sits clamped at a bound) or the report count jumps.
    `exploits` are its exploits in Ray's order (pbt_global.txt); a segment starting at report r went on
    from the exploit of its parent's report r - 1. Matched by report, not by order: a driver killed
    just after an exploit leaves the exploit recorded but the member's rows from before it, and the
    member retrains them, so that exploit starts no segment of the stored rows."""
    segments: list[Segment] = []
    waiting = list(exploits)
    for report, values in rows:
        if segments:
            last_report, last_values = segments[-1].rows[-1]
            if values == last_values and report == last_report + 1:
                segments[-1].rows.append((report, values))
                continue
        parent = None
        if segments and waiting:
            found = next((e for e in waiting if e["parent_report"] == report - 1), waiting[0])
            waiting.remove(found)
            parent = found["parent_id"]
        segments.append(Segment([(report, values)], parent))
    return segments


def members(experiment_dir, keys: list[str]) -> dict[str, Member]:
    """Every member's segments of `keys` values and its last metrics, read from the stored experiment."""
    folder = ExperimentFolder(experiment_dir)
    exploits: dict[str, list[dict]] = {}
    for event in folder.pbt_exploits():
        exploits.setdefault(event["trial_id"], []).append(event)
    found = {}
    for trial in folder.trials():
        rows = trial.results()
        if not rows:
            continue
        trial_id = str(rows[0].get("trial_id", trial.name))
        found[trial_id] = Member(trial_id, cut_segments(trial.schedule(keys), exploits.get(trial_id, [])),
                                 {k: v for k, v in rows[-1].items() if isinstance(v, int | float)})
    return found


def lineage(found: dict[str, Member], trial_id: str, upto: int | None = None,
            depth: int = 0) -> list[tuple[int, str, dict]]:
    """(report, trial id, values) of every report that made `trial_id`'s model as of report `upto`
    (its last, by default): its latest segment that starts at or before `upto`, preceded by the
    lineage of that segment's parent up to the report before it starts."""
    member = found.get(trial_id)
    if member is None or depth > len(found) * 64:  # a parent without results, or a malformed record
        return []
    segments = [s for s in member.segments if upto is None or s.first <= upto]
    if not segments:
        return []
    segment = segments[-1]
    own = [(report, trial_id, values) for report, values in segment.rows if upto is None or report <= upto]
    if segment.parent is None:
        return own
    return lineage(found, segment.parent, segment.first - 1, depth + 1) + own


def describe(steps: list[tuple[int, str, dict]], keys: list[str]) -> str:
    """`r1-2 [00003] lr=0.01 T=2; r3-4 [00001] ...`: the values by report, and whose run trained it."""
    spans: list[list] = []
    for report, trial_id, values in steps:
        shown = (trial_id[-5:], tuple(_short(values.get(k)) for k in keys))
        if spans and spans[-1][2] == shown and spans[-1][1] == report - 1:
            spans[-1][1] = report
        else:
            spans.append([report, report, shown])
    return "; ".join(f"{f'r{a}' if a == b else f'r{a}-{b}'} [{who}] "
                     + " ".join(f"{k}={v}" for k, v in zip(keys, shown, strict=True))
                     for a, b, (who, shown) in spans)


def _short(value: Any) -> str:
    return "?" if value is None else f"{float(value):.3g}"


def ranked(found: dict[str, Member], metric: str, mode: str) -> list[Member]:
    """The members whose final report holds the metric, best final value first. PBT stops no member:
    all end at the budget's last report, so their reports rank as equals."""
    sign = 1 if mode == "max" else -1
    return sorted((m for m in found.values() if isinstance(m.final.get(metric), int | float)
                   and not math.isnan(m.final[metric])), key=lambda m: -sign * m.final[metric])


def schedule_lines(experiment_dir, keys: list[str], metric: str, mode: str, reports_per_epoch: int,
                   crowned: tuple[str, int, float] | None = None,
                   found: dict[str, Member] | None = None) -> list[str]:
    """Each member's final metric and the schedule that made its final model (its lineage through the
    checkpoints it took), best first, then the member every table crowns (`crowned`: its trial id, the
    report of its best epoch and its value there: crowned_member) with the schedule that made its model
    there. `found`: the members when the caller has read them already (members)."""
    try:
        found = members(experiment_dir, keys) if found is None else found
    except NotAnExperiment as err:  # the results are intact; only the lineage cannot be told
        return [f"pbt: no schedules ({err})"]
    scored = ranked(found, metric, mode)
    if not scored:
        return []
    exploits = sum(len(m.segments) - 1 for m in found.values())
    lines = [f"pbt: {len(found)} members, {exploits} exploits; each member's final model by report r (one "
             f"report = {1 / reports_per_epoch:g} epoch), [member] whose run trained it: a change of member "
             "is an exploit"]
    for m in scored:
        lines.append(f"  {m.trial_id}  {metric} {m.final[metric]:.4f} at epoch {m.final.get('epoch', 0):g}: "
                     f"{describe(lineage(found, m.trial_id), keys)}")
    if crowned is not None and crowned[0] in found:
        trial_id, report, value = crowned
        lines.append(f"best member: {trial_id}, {metric} {value:.4f} at epoch {report / reports_per_epoch:g} "
                     "(the winner every table stars: its best epoch), made by: "
                     f"{describe(lineage(found, trial_id, upto=report), keys)}")
    return lines


def crowned_member(exp) -> tuple[str, int, float] | None:
    """(trial id, report, value) of the member analysis.tables.winner crowns, at its best epoch; None
    without a winner."""
    from analysis.tables import winner

    try:
        best = winner(exp)
    except ValueError:
        return None
    return str(best["trial_id"]), round(float(best["epoch"]) * exp.reports_per_epoch), float(best[exp.metric])


def report_section(exp) -> list[str]:
    """The report's Markdown section for a `--scheduler pbt` experiment (an analysis.results.Experiment
    opened with its plan); [] for any other search."""
    space = SPACES.get(exp.space or "")
    if exp.plan.get("scheduler") != "pbt" or space is None:
        return []
    lines = schedule_lines(exp.path, list(space.perturb), exp.metric, exp.mode, exp.reports_per_epoch,
                           crowned_member(exp))
    return ["## Schedules (population-based training)", "", "```", *lines, "```", ""]
