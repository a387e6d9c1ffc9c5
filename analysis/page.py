"""The study as one web page: `<report folder>/index.html`, self-contained and offline.

The page holds the study's tables at the best and the final epoch (analysis/tables.py, sortable), the
reference study's numbers beside ours (analysis/page_reference.py), every trial's learning curves
(analysis/page_curves.py: the data, drawn as inline SVG by page.js for the metric, x axis, smoothing and
seeds picked), parallel coordinates (analysis/page_svg.py, inline SVG), the study's pictures
(analysis/plots.py, inlined), every trial's state (incomplete and errored ones named) and the provenance.

Plain inline SVG with a little vanilla JavaScript (page_assets/): no charting library, nothing
fetched. A strict Content-Security-Policy forbids any request, so a page that tried one would fail
loudly in the browser (tests/test_page.py checks that none is made). The bytes depend only on the
experiment (no time of rendering), so the live page of a finished search equals the report's.

`write_page(exp, folder)` is the API: analysis/report.py calls it after writing the tables and
pictures, search/live.py while a search runs (live=True: the page reloads itself), and a comparison
page can reuse `html_table`, `page_head` and `ASSETS`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.overview import planned_trials, status_line, winner_line
from analysis.page_curves import curves_section
from analysis.page_pbt import schedules_section
from analysis.page_reference import reference_section
from analysis.page_search import knobs, mattered_section
from analysis.page_svg import ENDS, parallel_svg, trial_marks
from analysis.questions import answer, arm_trials, questions_table
from analysis.results import Experiment
from analysis.tables import Table, _cell, interval_text, study_table

ASSETS = Path(__file__).resolve().parent / "page_assets"
PAGE = "index.html"
LIVE_RELOAD_S = 5
"""A live page reloads itself this often (search/live.py rewrites it at most about as often)."""
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "font-src 'none'; connect-src 'none'; form-action 'none'; base-uri 'none'")
"""Nothing the page could ask for is allowed: it is self-contained by construction."""


def page_head(title: str, *, live: bool = False) -> str:
    """`<head>` with the CSP, the inline stylesheet and, for a live page, the reload."""
    reload = f'<meta http-equiv="refresh" content="{LIVE_RELOAD_S}">' if live else ""
    return (f'<head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">{reload}'
            f"<title>{escape(title)}</title><style>{(ASSETS / 'page.css').read_text()}</style></head>")


def page_script() -> str:
    """The tooltip element and the inline script (curves, hover, legend, sorting); last in `<body>`."""
    return f'<div id="tip" role="tooltip"></div><script>{(ASSETS / "page.js").read_text()}</script>'


def _sort_key(value) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return "" if math.isnan(float(value)) else repr(float(value))
    return escape(str(value), quote=True)


def html_table(table: Table, *, table_id: str = "", evidence: list[list[str]] | None = None) -> str:
    """A Table as a sortable HTML table: the Markdown table's cells (mean ± std, p to two digits, a
    95% CI column per averaged metric), each cell's raw value kept for sorting, and the kd table's
    paired-test verdict marked (bold: significant, grey italic: not significant). `evidence`, one
    list of trial ids per row, adds links that show just those trials' curves and rows."""
    frame = table.frame
    hidden = {f"{c}_{part}" for c in table.mean_std for part in ("std", "ci_lo", "ci_hi")}
    shown = [c for c in frame.columns if c not in hidden]
    with_ci = [c for c in table.mean_std if f"{c}_ci_lo" in frame]
    text_columns = {c for c in shown if not c.startswith(("p (", "Δ")) and (
        frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c]))}
    head = "".join(f'<th class="{"text" if c in text_columns else "num"}">{escape(str(c))}</th>'
                   for c in shown)
    head += "".join(f"<th>{escape(c)} 95% CI</th>" for c in with_ci)
    head += '<th class="text">evidence</th>' if evidence is not None else ""
    rows = []
    for n, (_, row) in enumerate(frame.iterrows()):
        cells = []
        for column in shown:
            value = row[column]
            if column.startswith("p (") and not pd.isna(value):
                text = f"{value:.2g}"
            else:
                metric = column in table.mean_std
                text = _cell(value, row.get(f"{column}_std") if metric else None, metric,
                             signed=column.startswith("Δ"))
            kind = "text" if column in text_columns else ""
            if column == "verdict":
                kind += " sig" if value in ("holds", "contradicted") else " ns"
            if column == "paired test":
                verdict = str(value)
                kind += (" ns" if verdict == "not significant"
                         else " sig" if verdict.startswith("significant") else "")
            cells.append(f'<td class="{kind.strip()}" data-sort="{_sort_key(value)}">{escape(text)}</td>')
        for column in with_ci:
            lo, hi = row[f"{column}_ci_lo"], row[f"{column}_ci_hi"]
            interval = interval_text(lo, hi, row.get(f"{column}_std"))
            cells.append(f'<td data-sort="{_sort_key(lo)}">{escape(interval)}</td>')
        if evidence is not None:
            ids = escape(" ".join(evidence[n]), quote=True)
            cells.append(f'<td class="text"><a href="#curves-section" class="evidence" data-show="{ids}">'
                         f'curves</a> · <a href="#trial-table" class="evidence" data-rows="{ids}">trials</a>'
                         "</td>" if evidence[n] else '<td class="text">–</td>')
        flags = " ".join(f for f in ("errored",) if f in row and bool(row[f]))
        rows.append(f'<tr class="{flags}">' + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return (f'<p class="caption">{escape(table.caption)}</p>'
            f'<div class="scroll"><table class="sortable"{ident}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def inline_svg(text: str) -> str:
    """An SVG file's markup as it goes inside HTML: without its XML declaration and DOCTYPE."""
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def trials_section(exp: Experiment, marks) -> str:
    """Every trial with its configuration, budget and why it ended (a stop with the evidence the
    scheduler recorded); incomplete and errored ones are named as such, and planned trials that never
    started are counted."""
    from analysis.decisions import stop_evidence

    keys = knobs(exp)
    state, evidence = {m.trial_id: m.end for m in marks}, stop_evidence(exp)
    head = "".join(f'<th class="text">{escape(k)}</th>' for k in ["trial", *keys, "seeds"])
    head += "<th>epochs run</th><th class='text'>state</th>"
    head += f"<th>best {escape(exp.metric)}</th><th>final {escape(exp.metric)}</th>"
    rows = []
    for mark, row in zip(marks, exp.trials.to_dict("records"), strict=True):
        end = state[mark.trial_id]
        kind = end if end in ("incomplete", "errored") else ""
        cells = [f'<td class="text">{escape(mark.trial_id)}</td>']
        cells += [f'<td class="text">{escape(_cell(row.get(k)))}</td>' for k in keys]
        cells.append(f'<td class="text">{escape(mark.label.split("; ")[-1])}</td>')
        cells.append(f"<td>{row['epochs_run'] / exp.reports_per_epoch:g}</td>")
        why = f"; {evidence[mark.trial_id]}" if row.get("stopped_early") and mark.trial_id in evidence else ""
        cells.append(f'<td class="text">{escape(ENDS[end] + why)}</td>')
        for which in ("best", "final"):
            value = row.get(f"{which}_{exp.metric}", math.nan)
            shown = "–" if pd.isna(value) else f"{value:.4f}"
            cells.append(f'<td data-sort="{_sort_key(value)}">{shown}</td>')
        rows.append(f'<tr class="{kind}" data-trial="{escape(mark.trial_id, quote=True)}">'
                    + "".join(cells) + "</tr>")
    odd = [m for m in marks if m.end in ("incomplete", "errored")]
    summary = ("; ".join(f"{m.trial_id} ({m.end})" for m in odd)) if odd else "none"
    planned = planned_trials(exp)
    never = (f" {planned - len(marks)} of the {planned} planned trials never started."
             if planned is not None and planned > len(marks) else "")
    return (f"<h2 id='trials'>Trials</h2><p>Incomplete or errored: {escape(summary)}.{never}</p>"
            f'<div class="scroll"><table class="sortable" id="trial-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _hours(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 3600:.2f} h"


def provenance_section(exp: Experiment) -> str:
    """Commit, versions, nodes, devices, precision, storage, wall time and trial-hours: the plan's
    provenance (search/provenance.py) and what the trials' results recorded."""
    record = exp.plan.get("provenance") or {}
    git = record.get("git") or {}
    code = ("not recorded" if not record else "not a git checkout" if not git.get("commit")
            else git["commit"] + (" (with uncommitted changes)" if git.get("dirty") else ""))
    nodes = record.get("nodes") or []
    versions = sorted({"Python {python}, Ray {ray}, torch {torch}, tunelab {tunelab}".format_map(
        {k: None for k in ("python", "ray", "torch", "tunelab")} | (n.get("versions") or {})) for n in nodes})
    node_text = "; ".join(f"{n.get('hostname')} ({n.get('ip')}): {res.get('CPU', 0):g} CPUs, "
                          f"{res.get('GPU', 0):g} GPUs, {res.get('memory_gb', '?')} GB"
                          for n in nodes for res in [n.get("resources") or {}])
    gpus = exp.plan.get("gpus")
    devices = ("not recorded" if gpus is None else "CPU only" if not gpus
               else f"{gpus:g} GPU per trial")
    if "cpus" in exp.plan:
        devices += f", {exp.plan['cpus']} CPU(s) per trial"
    precision = (", ".join(sorted(map(str, exp.epochs["precision"].dropna().unique())))
                 if "precision" in exp.epochs else "not recorded")
    epochs = exp.epochs
    wall = hours = "not recorded"
    if {"timestamp", "time_this_iter_s", "time_total_s"} <= set(epochs):
        first = epochs.sort_values("training_iteration").groupby("trial_id").head(1)
        start = float((first["timestamp"] - first["time_this_iter_s"]).min())
        wall = f"{_hours(float(epochs['timestamp'].max()) - start)} (first trial's start to the last report)"
        total = epochs.groupby("trial_id")["time_total_s"].max().sum()
        hours = (f"{total / 3600:.3f} trial-hours ({total:.0f} s summed over "
                 f"{epochs['trial_id'].nunique()} trials)")
    packages = ", ".join(f"{k} {v}" for k, v in (record.get("packages") or {}).items()
                         if k in ("torch", "ray", "optuna", "transformers", "peft", "numpy", "pandas"))
    items = [("experiment", exp.path.uri), ("started", record.get("started", "not recorded")),
             ("code", code), ("versions", "; ".join(versions) or "not recorded"),
             ("packages", packages or "not recorded"), ("nodes", node_text or "not recorded"),
             ("devices", devices), ("precision", precision), ("storage", exp.path.parent.uri),
             ("scheduler", f"{exp.plan.get('scheduler', '?')}, search {exp.plan.get('search', '?')}"),
             ("wall time", wall), ("compute", hours)]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    return f'<h2 id="provenance">Provenance</h2><dl class="provenance">{rows}</dl>'


def parallel_section(exp: Experiment, marks) -> str:
    """Parallel coordinates for a search over two knobs or more, or an Optuna search."""
    if len(knobs(exp)) < 2 and exp.plan.get("search") != "optuna":
        return ""
    return ("<h2 id='parallel-section'>Parallel coordinates</h2><p class='note'>One line per trial: its "
            f"knobs, then its {escape(exp.metric)} at its best report; dashed: a trial that ran fewer "
            "epochs than the budget, not comparable with the others. The legend above toggles these "
            "lines too.</p>" + parallel_svg(exp, marks))


def read_evaluations(folder: Path) -> list[dict]:
    """analysis/evaluate.py's results in a report folder (evaluation_<split>.json), by split."""
    return [json.loads(f.read_text()) for f in sorted(folder.glob("evaluation_*.json"))]


def evaluation_section(evaluations: list[dict]) -> str:
    """The winner's checkpoint evaluated on a held-out split (analysis/evaluate.py), with its confusion
    matrix; "" when it was never evaluated."""
    parts = []
    for e in evaluations:
        stored = (f" Stored val_acc of that epoch: {e['stored_val_acc']:.6f}."
                  if e.get("stored_val_acc") is not None else "")
        names = e["classes"]
        head = "".join(f"<th>{escape(str(n))}</th>" for n in names)
        rows = "".join(f'<tr><td class="text">{escape(str(name))}</td>'
                       + "".join(f"<td>{v}</td>" for v in row) + "</tr>"
                       for name, row in zip(names, e["confusion"], strict=True))
        seeds = e.get("seeds") or []
        each = ", ".join(f"seed {x['seed']} {x['accuracy']:.4f}" for x in seeds)
        spread = (f" ± {statistics.stdev(x['accuracy'] for x in seeds):.4f} (mean ± sd over {len(seeds)} "
                  f"seeds: {each})" if len(seeds) > 1 else "")
        summed = f", summed over the {len(seeds)} seeds" if len(seeds) > 1 else ""
        parts.append(f"<h3>On the {escape(e['split'])} split</h3><p>Trial {escape(str(e['trial_id']))}, "
                     f"<code>{escape(str(e['checkpoint']))}</code> (epoch {e['epoch']:g}): accuracy "
                     f"<b>{e['accuracy']:.4f}</b>{spread}, loss {e['loss']:.4f} on {e['images']} "
                     f"{escape(str(e.get('examples', 'images')))}"
                     f"{' each' if spread else ''}.{stored}</p>"
                     "<p class='caption'>Confusion matrix (rows: true class, columns: "
                     f"predicted{summed}).</p>"
                     "<div class='scroll'><table class='sortable evaluation'><thead><tr>"
                     f"<th class='text'>true \\ predicted</th>{head}</tr></thead><tbody>{rows}</tbody>"
                     "</table></div>")
    return ("<h2 id='evaluation'>The winner on held-out data</h2>" + "".join(parts)) if parts else ""


def pictures_section(figures: dict[str, str]) -> str:
    if not figures:
        return ""
    return "<h2 id='pictures'>Pictures</h2>" + "".join(
        f'<div class="picture" id="picture-{escape(name)}"><h3>{escape(name)}</h3>{inline_svg(svg)}</div>'
        for name, svg in figures.items())


def render_page(exp: Experiment, tables: list[Table], figures: dict[str, str], *, live: bool = False,
                evaluations: list[dict] | None = None) -> str:
    """The page's HTML: `tables` are the best- and final-epoch study tables, `figures` name -> SVG text,
    `evaluations` analysis/evaluate.py's records (read_evaluations)."""
    from analysis.decisions import stop_reasons_of

    marks = trial_marks(exp, stop_reasons_of(exp))
    profile = f", profile {exp.plan['profile']}" if exp.plan.get("profile") else ""
    banner = (f'<p class="live">Live: the search is running; this page is rewritten as trials report and '
              f"reloads itself every {LIVE_RELOAD_S} s until the search ends.</p>" if live else "")
    verdicts = answer(exp)
    nav = ('<nav>' + ('<a href="#questions">questions</a>' if verdicts else "")
           + '<a href="#tables">tables</a>' + ('<a href="#evaluation">held-out</a>' if evaluations else "")
           + '<a href="#curves-section">curves</a>'
           + ('<a href="#parallel-section">parallel coordinates</a>' if parallel_section(exp, marks) else "")
           + ('<a href="#mattered">what mattered</a>' if exp.plan.get("search") == "optuna" else "")
           + ('<a href="#schedules">schedules</a>' if exp.plan.get("scheduler") == "pbt" else "")
           + ('<a href="#pictures">pictures</a>' if figures else "")
           + '<a href="#trials">trials</a><a href="#provenance">provenance</a></nav>')
    body = [f"<h1>{escape(exp.name)}</h1>", banner,
            f"<p>Study <b>{escape(exp.space or 'unknown')}</b>{escape(profile)}. {escape(status_line(exp))}. "
            f"{escape(winner_line(exp))}.</p>", nav]
    if verdicts:  # the study's question first: the winner is one question among them
        body += ["<h2 id='questions'>The study's questions</h2>",
                 html_table(questions_table(verdicts), table_id="table-questions",
                            evidence=[arm_trials(exp, v) for v in verdicts])]
    body += ["<h2 id='tables'>Tables</h2>"]
    for table, heading, ident in zip(tables, ("At the best epoch", "At the final epoch"),
                                     ("table-best", "table-final"), strict=False):
        body += [f"<h3>{heading}</h3>", html_table(table, table_id=ident)]
    body += [evaluation_section(evaluations or []), reference_section(exp, tables[0]),
             curves_section(exp, marks), parallel_section(exp, marks),
             mattered_section(exp, marks), schedules_section(exp, marks),
             pictures_section(figures), trials_section(exp, marks),
             provenance_section(exp),
             f"<p class='note'>Regenerate: <code>python analysis/report.py {escape(exp.path.uri)}</code></p>"]
    return (f"<!DOCTYPE html><html lang='en'>{page_head(f'{exp.name}: tunelab report', live=live)}"
            f'<body data-experiment="{escape(exp.path.uri, quote=True)}">{"".join(body)}{page_script()}'
            "</body></html>\n")


def write_page(exp: Experiment, folder: Path, *, live: bool = False, tables: list[Table] | None = None,
               figures: dict[str, str] | None = None) -> Path:
    """Writes `<folder>/index.html` (write_html) and returns it. `tables` default to the study's best
    and final tables, `figures` (name -> SVG text) to none."""
    tables = tables if tables is not None else [study_table(exp, "best"), study_table(exp, "final")]
    return write_html(folder, render_page(exp, tables, figures or {}, live=live,
                                          evaluations=read_evaluations(folder)))


def write_starting_page(folder: Path, name: str, uri: str) -> Path:
    """The live page before any trial has reported: says so and reloads itself, so the address the
    driver prints answers from its first second, and turns into the study page at the first report."""
    head = page_head(f"{name}: tunelab report", live=True)
    return write_html(folder, f"<!DOCTYPE html><html lang='en'>{head}"
                      f'<body data-experiment="{escape(uri, quote=True)}"><h1>{escape(name)}</h1>'
                      '<p class="live">Starting: the search is running and no trial has reported yet. This '
                      f"page reloads itself every {LIVE_RELOAD_S} s and shows the study as soon as the first "
                      "trial reports.</p></body></html>\n")


def write_html(folder: Path, html: str) -> Path:
    """`<folder>/index.html`, replaced in one step: a reader never sees half a page."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / PAGE
    partial = folder / f".{PAGE}.{os.getpid()}.tmp"
    partial.write_text(html)
    os.replace(partial, target)
    return target
