"""Experiments of one space side by side: `python analysis/report.py A B [...]` -> report/compare__A__B/.

Rows are matched by configuration: the searched knobs (the space's grid axes and every axis any of the
experiments varied; the seed is not a knob). Each row gives every experiment's value at the epoch the
table names (`best` or `final`, as analysis/tables.py defines them, one epoch for all of a
configuration's runs), over its runs, with its budget; and for every experiment after the first (A) its
difference from A with the 95% Welch interval over the runs each side has. One run on a side gives no
interval, and the row says so instead of inventing one. A row whose sides ran different budgets says so:
its difference is not like-for-like. Configurations that only one experiment ran are listed as such.

Bad input (fewer than two experiments, one given twice, a missing one, experiments of different spaces)
is a UsageError or NotAnExperiment raised before anything is written.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.questions import side_by_side
from analysis.results import Experiment, NotAnExperiment, open_experiment
from analysis.stats import LEVEL, constant, quiet_moments
from analysis.tables import WHICH, Table, bounds, per_config
from cli import UsageError
from store import StorageError, locate

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NOT_KNOBS = ("seed", "seeds")
SOURCE_FILE = ".experiment"
"""As in analysis/report.py: the file naming what a report folder reports. A comparison writes
`compare <address> <address> ...` there, which no experiment's address equals, so neither kind of
report ever claims the other's folder."""
MAX_FOLDER_NAME = 120


@dataclass(frozen=True)
class Difference:
    diff: float
    """Mean of the other side's runs minus mean of A's."""
    lo: float
    hi: float
    """The 95% Welch interval of `diff`; NaN when a side has one run or neither has any spread."""
    p: float
    """Two-sided Welch t-test p-value; NaN where the interval is."""


def welch(a: list[float], b: list[float], limits: tuple[float, float] | None = None) -> Difference:
    """mean(b) − mean(a) with its Welch t-interval (unequal variances, Welch–Satterthwaite degrees of
    freedom), clipped to `limits` when the difference cannot leave them (two accuracies: [−1, 1])."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0:
        return Difference(np.nan, np.nan, np.nan, np.nan)
    diff = float(y.mean() - x.mean())
    if len(x) < 2 or len(y) < 2 or (constant(x) and constant(y)):
        return Difference(diff, np.nan, np.nan, np.nan)
    with quiet_moments():
        test = stats.ttest_ind(y, x, equal_var=False)
    interval = test.confidence_interval(LEVEL)
    lo, hi = float(interval.low), float(interval.high)
    if limits is not None:
        lo, hi = max(lo, limits[0]), min(hi, limits[1])
    return Difference(diff, lo, hi, float(test.pvalue))


def _value_key(value) -> str:
    """A knob's value as matched across experiments: 1, 1.0 and "1" alike; missing is its own value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def knobs(exps: list[Experiment]) -> list[str]:
    """The space's grid axes and every axis any experiment varied, in that order, seed left out."""
    from spaces import SPACES

    space = SPACES.get(exps[0].space or "")
    keys = list(space.grid) if space else []
    for exp in exps:
        keys += exp.varied_keys()
    present = {k for exp in exps for k in exp.trials.columns}
    return [k for k in dict.fromkeys(keys) if k not in NOT_KNOBS and k in present]


def budget(exp: Experiment) -> float:
    """The planned budget in epochs (ASHA's max_t), or the longest any trial ran when there is none."""
    if exp.max_t is not None:
        return exp.max_t / exp.reports_per_epoch
    return float(exp.trials["epochs_run"].max()) / exp.reports_per_epoch


def side_rows(exp: Experiment, which: str, keys: list[str]) -> tuple[dict[tuple, pd.Series], int]:
    """Each configuration's row (analysis/tables.per_config) at its longest budget, by its knob values;
    and how many shorter-budget rows (runs of a configuration a scheduler stopped earlier than its
    others) that left out, so they are never averaged with longer ones."""
    frame = per_config(exp, which, [exp.metric]).sort_values("epochs", kind="stable")
    rows: dict[tuple, pd.Series] = {}
    for _, row in frame.iterrows():
        rows[tuple(_value_key(row.get(k)) for k in keys)] = row  # the longest budget comes last
    return rows, len(frame) - len(rows)


@dataclass
class Comparison:
    exps: list[Experiment]
    knobs: list[str]
    tables: list[Table]
    """At the best epoch (the main one), then at the final epoch."""
    only: dict[str, list[str]]
    """Letter -> the configurations only that experiment ran."""
    left_out: dict[str, int]
    """Letter -> rows at a shorter budget than the same configuration's longest (not compared)."""

    @property
    def letters(self) -> str:
        return LETTERS[:len(self.exps)]


def label(keys: list[str], row: pd.Series) -> str:
    return ", ".join(f"{k}={row.get(k)}" for k in keys) or "(one configuration)"


def note(first: pd.Series | None, other: pd.Series | None, letter: str, diff: Difference,
         first_budget: float, other_budget: float) -> str:
    """What a row's difference means: which side lacks the configuration, unequal budgets (then no
    verdict: the sides are not like-for-like), why there is no interval, or the Welch test's verdict."""
    if first is None or other is None:
        return f"only in {'A' if other is None else letter}"
    parts = [f"{side} holds an errored trial" for side, row in (("A", first), (letter, other))
             if row["errored"]]
    unequal = first["epochs"] != other["epochs"] or first_budget != other_budget
    if unequal:
        parts.append(f"not like-for-like: A ran {first['epochs']:g} of {first_budget:g} epochs, "
                     f"{letter} {other['epochs']:g} of {other_budget:g}")
    if min(first["runs"], other["runs"]) < 2:
        parts.append("one run on a side: no interval can be computed")
    elif np.isnan(diff.p):
        parts.append("no spread on either side: no interval")
    elif not unequal:
        parts.append("significant (p < 0.05)" if diff.p < 1 - LEVEL else "not significant")
    return "; ".join(parts)


def table(exps: list[Experiment], keys: list[str], which: str) -> tuple[Table, dict, dict]:
    """The comparison at `which` epoch; with the configurations only one experiment ran, and the rows
    left out for a shorter budget, by letter."""
    metric = exps[0].metric
    sides = [side_rows(exp, which, keys) for exp in exps]
    budgets = [budget(exp) for exp in exps]
    order = list(dict.fromkeys(k for rows, _ in sides for k in rows))
    records, only = [], {letter: [] for letter in LETTERS[:len(exps)]}
    for key in order:
        found = [rows.get(key) for rows, _ in sides]
        shown = next(r for r in found if r is not None)
        record = {k: shown.get(k) for k in keys}
        for letter, row in zip(LETTERS, found, strict=False):
            if row is None:
                record.update({f"{metric} {letter}": np.nan, f"{metric} {letter}_std": np.nan,
                               f"{metric} {letter}_ci_lo": np.nan, f"{metric} {letter}_ci_hi": np.nan,
                               f"runs {letter}": 0, f"epoch {letter}": np.nan,
                               f"epochs {letter}": np.nan})
                continue
            record.update({f"{metric} {letter}": row[metric], f"{metric} {letter}_std": row[f"{metric}_std"],
                           f"{metric} {letter}_ci_lo": row[f"{metric}_ci_lo"],
                           f"{metric} {letter}_ci_hi": row[f"{metric}_ci_hi"],
                           f"runs {letter}": int(row["runs"]), f"epoch {letter}": row["epoch"],
                           f"epochs {letter}": row["epochs"]})
        present = [letter for letter, row in zip(LETTERS, found, strict=False) if row is not None]
        if len(present) == 1:
            only[present[0]].append(label(keys, shown))
        for letter, row, other_budget in zip(LETTERS[1:], found[1:], budgets[1:], strict=False):
            first = found[0]
            diff = (welch(list(first["seed_values"].values()), list(row["seed_values"].values()),
                          difference_bounds(metric))
                    if first is not None and row is not None else Difference(np.nan, np.nan, np.nan, np.nan))
            record.update({f"Δ {letter}−A": diff.diff, f"Δ {letter}−A_ci_lo": diff.lo,
                           f"Δ {letter}−A_ci_hi": diff.hi, f"p (Welch) {letter}−A": diff.p,
                           f"Welch test {letter}−A": note(first, row, letter, diff, budgets[0],
                                                           other_budget)})
        records.append(record)
    frame = pd.DataFrame(records)
    letters = LETTERS[:len(exps)]
    shown_as = tuple(f"{metric} {letter}" for letter in letters) + tuple(f"Δ {x}−A" for x in letters[1:])
    caption = (f"{exps[0].space or 'search'} compared: each side at the {WHICH[which]}, mean ± std and "
               f"95% t-interval over its runs; Δ X−A = X's mean − A's, with its 95% Welch interval over "
               f"both sides' runs (none with one run on a side); rows whose budgets differ say so and are "
               f"not like-for-like")
    left_out = {letter: n for letter, (_, n) in zip(letters, sides, strict=True) if n}
    return Table("compare", which, frame, caption + ".", shown_as), only, left_out


def difference_bounds(metric: str) -> tuple[float, float] | None:
    """Where a difference of two values of `metric` lies: [−1, 1] for accuracies (tables.bounds)."""
    limits = bounds(metric)
    return None if limits is None else (limits[0] - limits[1], limits[1] - limits[0])


def open_all(paths: list[str]) -> list[Experiment]:
    """The experiments, checked: two or more, none twice, each readable, all of one space."""
    if not 2 <= len(paths) <= len(LETTERS):
        raise UsageError(f"a comparison needs two to {len(LETTERS)} experiments, got {len(paths)}")
    seen: dict[str, str] = {}
    for path in paths:
        try:
            base = locate(path).base
        except StorageError as err:
            raise UsageError(str(err)) from None
        if base in seen:
            raise UsageError(f"{path} is given twice (as {seen[base]}): compare different experiments")
        seen[base] = path
    exps = [open_experiment(path) for path in paths]
    spaces = {exp.space for exp in exps}
    if len(spaces) > 1:
        named = ", ".join(f"{exp.name} is {exp.space or 'of an unknown space'}" for exp in exps)
        raise UsageError(f"experiments of different spaces cannot be compared ({named})")
    return exps


def compare(paths: list[str]) -> Comparison:
    """Everything the comparison shows, built before anything is written."""
    exps = open_all(paths)
    keys = knobs(exps)
    best, only, left_out = table(exps, keys, "best")
    final, _, _ = table(exps, keys, "final")
    return Comparison(exps, keys, [best, final], only, left_out)


def differences(exps: list[Experiment], keys: list[str]) -> list[str]:
    """One line per setting (profile, scheduler, seeds, budget, fixed config) that is not the same in
    every experiment: what the comparison measures, or what confounds it."""
    def setting(exp: Experiment) -> dict[str, str]:
        values = {"profile": str(exp.plan.get("profile", "?")),
                  "scheduler": str(exp.plan.get("scheduler", "?")),
                  "seeds per configuration": str(exp.seeds), "budget (epochs)": f"{budget(exp):g}"}
        for key in exp.config_keys:
            if key in keys or key in NOT_KNOBS or key not in exp.trials:
                continue
            distinct = exp.trials[key].astype(str).unique()
            values[key] = distinct[0] if len(distinct) == 1 else "several"
        return values

    settings = [setting(exp) for exp in exps]
    names = list(dict.fromkeys(k for s in settings for k in s))
    lines = []
    for name in names:
        values = [s.get(name, "not set") for s in settings]
        if len(set(values)) > 1:
            lines.append(f"{name}: " + ", ".join(f"{letter} {v}" for letter, v in zip(LETTERS, values,
                                                                                       strict=False)))
    return lines


def comparison_folder(root: Path, exps: list[Experiment]) -> Path:
    """<root>/compare__<name>__<name>.../ (a hash of the addresses when that is too long), or with the
    hash appended when the folder belongs to another report; the same experiments, in the same order,
    always find their folder again."""
    owner = source_text(exps)
    digest = hashlib.sha256(owner.encode()).hexdigest()[:8]
    name = "compare__" + "__".join(exp.name for exp in exps)
    plain = root / (name if len(name) <= MAX_FOLDER_NAME else f"compare__{digest}")
    file = plain / SOURCE_FILE
    if not plain.exists() or (file.is_file() and file.read_text().strip() == owner):
        return plain
    return root / f"{plain.name[:MAX_FOLDER_NAME]}__{digest}"


def source_text(exps: list[Experiment]) -> str:
    return "compare " + " ".join(exp.path.base for exp in exps)


def sides_table(comparison: Comparison) -> Table:
    """Which experiment each letter is, with what decides how far its rows can be compared."""
    frame = pd.DataFrame([{"side": letter, "experiment": exp.name, "address": exp.path.base,
                           "profile": str(exp.plan.get("profile", "?")), "seeds": exp.seeds,
                           "budget (epochs)": budget(exp), "trials": len(exp.trials)}
                          for letter, exp in zip(comparison.letters, comparison.exps, strict=True)])
    return Table("sides", "", frame, "The experiments compared (A is the one the differences start from)")


def notes(comparison: Comparison) -> tuple[list[str], list[str]]:
    """(what differs between the experiments, one line per setting; the remarks on rows: unequal
    budgets, configurations only one side ran, rows left out)."""
    exps = comparison.exps
    differ = differences(exps, comparison.knobs) or ["nothing but the runs themselves (same settings)"]
    remarks = []
    if len({budget(exp) for exp in exps}) > 1:
        remarks.append("The budgets differ: no row compares like with like; the differences are what each "
                       "side reached within its own budget.")
    for letter, configs in comparison.only.items():
        if configs:
            remarks.append(f"Only in {letter} ({exps[LETTERS.index(letter)].name}): {'; '.join(configs)}.")
    for letter, n in comparison.left_out.items():
        remarks.append(f"{letter}: {n} row(s) of a configuration at a shorter budget than its longest (runs "
                       "a scheduler stopped earlier) are left out of the comparison.")
    return differ, remarks


HEADINGS = ("At the best epoch (main)", "At the final epoch")


def intro(comparison: Comparison) -> str:
    exp = comparison.exps[0]
    return (f"Study {exp.space or 'unknown'}, metric {exp.metric} ({exp.mode}); rows matched by "
            f"{', '.join(comparison.knobs) or 'the one configuration'}.")


def regenerate(comparison: Comparison) -> str:
    return "python analysis/report.py " + " ".join(exp.path.uri for exp in comparison.exps)


def readme(comparison: Comparison) -> str:
    differ, remarks = notes(comparison)
    lines = [f"# Comparison: {' vs '.join(exp.name for exp in comparison.exps)}", "", intro(comparison), "",
             sides_table(comparison).markdown()]
    answered = side_by_side(comparison.exps, comparison.letters)
    if answered is not None:
        lines += ["## The study's questions", "", answered.markdown()]
    lines += ["## What differs between them", ""]
    lines += [f"- {line}" for line in differ] + [""]
    lines += [line for remark in remarks for line in (remark, "")]
    for table_, heading in zip(comparison.tables, HEADINGS, strict=True):
        lines += [f"## {heading}", "", table_.markdown(), f"CSV: [{table_.stem}.csv]({table_.stem}.csv)", ""]
    lines += [f"Regenerate: `{regenerate(comparison)}`", ""]
    return "\n".join(lines)


def page(comparison: Comparison) -> str:
    """The same as index.html, with the report page's head, sortable tables and script
    (analysis/page.py): self-contained, nothing fetched."""
    from analysis.page import html_table, page_head, page_script
    from analysis.page_curves import overlay_section

    differ, remarks = notes(comparison)
    title = f"Comparison: {' vs '.join(exp.name for exp in comparison.exps)}"
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(intro(comparison))}</p>",
            html_table(sides_table(comparison), table_id="sides")]
    answered = side_by_side(comparison.exps, comparison.letters)
    if answered is not None:
        body += ["<h2>The study's questions</h2>", html_table(answered, table_id="table-questions")]
    body += ["<h2>What differs between them</h2>",
            "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in differ) + "</ul>"]
    body += [f"<p>{escape(remark)}</p>" for remark in remarks]
    for table_, heading in zip(comparison.tables, HEADINGS, strict=True):
        body += [f"<h2>{heading}</h2>", html_table(table_, table_id=f"table-{table_.which}"),
                 f'<p class="note">CSV: <a href="{table_.stem}.csv">{table_.stem}.csv</a></p>']
        if table_ is comparison.tables[0]:  # the curves behind the main table, beside it
            body.append(overlay_section(comparison.exps, comparison.letters, comparison.knobs))
    body.append(f"<p class='note'>Regenerate: <code>{escape(regenerate(comparison))}</code></p>")
    return (f"<!DOCTYPE html><html lang='en'>{page_head(title)}<body>{''.join(body)}{page_script()}"
            "</body></html>\n")


def write_comparison(comparison: Comparison, root: Path) -> Path:
    html = page(comparison)
    folder = comparison_folder(root, comparison.exps)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOURCE_FILE).write_text(source_text(comparison.exps) + "\n")
    for table_ in comparison.tables:
        table_.write(folder)
    (folder / "README.md").write_text(readme(comparison))
    (folder / "index.html").write_text(html)
    return folder


def run(paths: list[str], root: Path) -> Path:
    """The command: checks and builds everything, then writes the folder and prints the main table."""
    try:
        comparison = compare(paths)
    except NotAnExperiment as err:
        raise UsageError(str(err)) from None
    folder = write_comparison(comparison, root)
    main = comparison.tables[0]
    answered = side_by_side(comparison.exps, comparison.letters)
    if answered is not None:
        print(answered.caption)
        print(answered.frame.to_string(index=False))
    print(main.caption)
    print(main.frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"report: {folder / 'README.md'}; page: {folder / 'index.html'}")
    return folder

