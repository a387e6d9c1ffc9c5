"""Makes a trial's result.json or progress.csv end at the report Ray's stored state resumes it from
(ExperimentFolder.align_results_with_state says when and why): pure text in, text out."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable


def _flat(row: dict, prefix: str = "") -> dict:
    """A result row as Ray's CSV logger writes it: nested dicts joined by "/", the config left out."""
    flat = {}
    for key, value in row.items():
        if not prefix and key == "config":
            continue
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _align(rows: list[tuple[int | None, str]], last: dict, render: Callable[[dict], str]
           ) -> tuple[list[str], list[int]]:
    """Rows (iteration, text) cut after the state's last report, one per report (a report logged twice,
    by a run restarted from scratch or from an earlier checkpoint, keeps its later row, as Ray's own
    retries do), with that report appended when it is the one missing; and the iterations before it
    that are missing for good."""
    n = last["training_iteration"]
    latest: dict[int, str] = {}
    for i, text in rows:
        if i is not None and i <= n:
            latest[i] = text
    kept = [(None, text) for i, text in rows if i is None] + sorted(latest.items())
    if n not in latest:
        kept.append((n, render(last)))
    return [text for _, text in kept], [i for i in range(1, n) if i not in latest]


def _complete_lines(text: str) -> list[str]:
    """The file's lines without a last one cut short (no newline): a write a kill interrupted."""
    lines = text.splitlines(keepends=True)
    return lines[:-1] if lines and not lines[-1].endswith("\n") else lines


def align_json_lines(text: str, last: dict) -> tuple[str, list[int]]:
    rows = []
    for line in _complete_lines(text):
        try:
            rows.append((json.loads(line).get("training_iteration"), line))
        except (json.JSONDecodeError, AttributeError):
            return text, []  # a corrupt file: read_results reports it, nothing is guessed here
    kept, missing = _align(rows, last, lambda row: json.dumps(row) + "\n")
    return "".join(kept), missing


def align_csv(text: str, last: dict) -> tuple[str, list[int]]:
    lines = _complete_lines(text)
    header = next(csv.reader(lines[:1]), None) or list(_flat(last))
    if "training_iteration" not in header:
        return text, []
    column = header.index("training_iteration")
    rows = []
    for line in lines[1:]:
        cells = next(csv.reader([line]), [])
        try:
            rows.append((int(cells[column]), line))
        except (IndexError, ValueError):
            return text, []

    def line(cells: list) -> str:
        out = io.StringIO()  # the csv module's defaults (\r\n), as Ray's CSVLoggerCallback writes
        csv.writer(out).writerow(cells)
        return out.getvalue()

    kept, missing = _align(rows, last, lambda row: line([_flat(row).get(k, "") for k in header]))
    return "".join((lines[:1] or [line(header)]) + kept), missing
