"""The page's section for a `--scheduler pbt` search: each member's schedule as a timeline.

One row per member, best final value first (as the report's schedule lines): the reports that made its
final model (analysis/lineage.py `lineage`), each span in the colour of the member whose run trained
it, so an exploit shows where the row changes colour, with a ▶ at the report it went on from. Hover a
span for whose run it was and the values it trained with. The schedule lines follow as text.
"""

from __future__ import annotations

from html import escape

from analysis.lineage import crowned_member, lineage, members, ranked, schedule_lines
from analysis.page_svg import Frame, TrialMark, axes, nice_ticks
from analysis.results import Experiment
from spaces import SPACES
from store.experiment import NotAnExperiment

ROW_PX = 26


def _spans(steps: list[tuple[int, str, dict]]) -> list[tuple[int, int, str, dict]]:
    """(first report, last report, whose run, values) of each run of reports trained alike."""
    spans: list[list] = []
    for report, who, values in steps:
        if spans and spans[-1][2] == who and spans[-1][3] == values and spans[-1][1] == report - 1:
            spans[-1][1] = report
        else:
            spans.append([report, report, who, values])
    return [tuple(s) for s in spans]


def _values(values: dict) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in values.items())


def exploit_evidence(exp: Experiment, member: str, cloned: str, report: int) -> str:
    """What the scheduler recorded of `member`'s exploit of `cloned` at `report` (store/lifecycle.py):
    both scores and the bottom and top members it was ranked among; "" when none was recorded."""
    found = [d for d in exp.decisions if d["rule"] == "pbt" and d["rung"] == report
             and (d["trial"], d["clone"]) == (member, cloned)]
    if not found:
        return ""
    scores, bottom, top = found[0]["signal"], found[0]["bottom"], found[0]["top"]
    if member not in scores or cloned not in scores:
        return ""
    mode = max if exp.mode == "max" else min
    return (f"; {member}'s {exp.metric} {scores[member]:.4f} was among the bottom {len(bottom)} of "
            f"{len(scores)} (the best of them {mode(scores[t] for t in bottom if t in scores):.4f}), "
            f"{cloned}'s {scores[cloned]:.4f} among the top {len(top)}")


def schedules_section(exp: Experiment, marks: list[TrialMark]) -> str:
    """The timeline and the schedule lines of a PBT search; "" for any other search."""
    space = SPACES.get(exp.space or "")
    if exp.plan.get("scheduler") != "pbt" or space is None:
        return ""
    keys = list(space.perturb)
    head = "<h2 id='schedules'>Schedules (population-based training)</h2>"
    try:
        found = members(exp.path, keys)
    except NotAnExperiment as err:
        return head + f"<p class='note'>No timeline: {escape(str(err))}.</p>"
    lines = schedule_lines(exp.path, keys, exp.metric, exp.mode, exp.reports_per_epoch, crowned_member(exp),
                           found)
    text = "<pre class='note schedule'>" + escape("\n".join(lines)) + "</pre>"
    made = {m.trial_id: lineage(found, m.trial_id) for m in ranked(found, exp.metric, exp.mode)}
    if not made:
        return ""
    order = list(made)
    colour = {m.trial_id: m.colour for m in marks}
    per = exp.reports_per_epoch
    last = max(step[0] for steps in made.values() for step in steps)
    frame = Frame(0, last / per, -0.5, len(order) - 0.5, height=ROW_PX * len(order) + 74, left=96)
    parts = axes(frame, [t for t in nice_ticks(0, last / per, 8) if t == int(t)], [], "epoch", "")
    for row, trial_id in enumerate(order):
        y = frame.y(len(order) - 1 - row)
        parts.append(f'<text x="{frame.left - 6}" y="{y + 4}" text-anchor="end">'
                     f"{escape(trial_id[-5:])}</text>")
        g = [f'<g data-trial="{escape(trial_id, quote=True)}">']
        previous = None
        for first, end, who, values in _spans(made[trial_id]):
            x0, x1 = frame.x((first - 1) / per), frame.x(end / per)
            tip = (f"{trial_id}'s model, epochs {(first - 1) / per:g}–{end / per:g}: trained by {who}'s run "
                   f"with {_values(values)}")
            g.append(f'<rect x="{x0}" y="{y - ROW_PX * 0.35:.1f}" width="{max(x1 - x0, 1):.2f}" '
                     f'height="{ROW_PX * 0.7:.1f}" fill="{colour.get(who, "#999")}" class="span" '
                     f'data-tip="{escape(tip, quote=True)}"/>')
            if previous is not None and who != previous:
                note = (f"exploit: went on from {previous}'s checkpoint of epoch {(first - 1) / per:g}"
                        + exploit_evidence(exp, who, previous, first - 1))
                g.append(f'<path d="M{x0 - 5} {y - 6:.1f}L{x0 + 3} {y:.1f}L{x0 - 5} {y + 6:.1f}Z" '
                         f'class="exploit" data-tip="{escape(note, quote=True)}"/>')
            previous = who
        parts.append("".join(g) + "</g>")
    svg = (f'<svg class="chart" id="timeline" viewBox="0 0 {frame.width} {frame.height}" '
           f'width="{frame.width}" height="{frame.height}" role="img" aria-label="each member\'s schedule">'
           f'{"".join(parts)}</svg>')
    caption = (f"<p class='caption'>Each member's final model ({len(order)} members, best final "
               f"{escape(exp.metric)} at the top): its epochs in the colour of the member whose run trained "
               "them (the legend's colours); ▶ marks an exploit, where it went on from another's checkpoint. "
               "Hover a span for the values it trained with.</p>")
    return head + caption + svg + text
