"""The reference study's numbers (docs/reference.md §1, the original labs) beside ours on the page,
with what differs between the two runs named: the dataset, the backbone, the budget.

The numbers are read from docs/reference.md itself, so the page and the document never disagree; a
row of ours is matched to a reference row by the configuration the reference names.
"""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

import pandas as pd

from analysis.results import Experiment
from analysis.tables import Table

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
DEGRADATION_SIZES = {1: "SmallCNN", 5: "MediumCNN", 7: "LargeCNN"}
"""The reference's names for the CNN depths (num_blocks) it trained."""
EXTRACTORS = {"DistilBERT": "distilbert", "MiniLM": "minilm", "mpnet": "mpnet"}


def reference_tables(text: str) -> list[list[dict[str, str]]]:
    """Every Markdown table in §1 of the reference, as rows of {header: cell}."""
    section = text.split("## 2.")[0]
    tables, current = [], []
    for line in section.splitlines() + [""]:
        line = line.strip()
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip("|").split("|")])
            continue
        if len(current) > 2:
            header = current[0]
            tables.append([dict(zip(header, row, strict=False)) for row in current[2:]])
        current = []
    return tables


def _epochs(frame: pd.DataFrame) -> str:
    most = frame["epochs"].max()
    return f"{most:g} epoch" + ("" if most == 1 else "s")


def _table_with(tables: list[list[dict]], column: str) -> list[dict]:
    return next((t for t in tables if t and column in t[0]), [])


def _config_default(exp: Experiment, key: str):
    """A config key's value in this experiment: the trials' own, else the space's default."""
    if key in exp.trials:
        values = exp.trials[key].dropna().astype(str).unique()
        return ", ".join(sorted(values))
    from spaces import SPACES

    space = SPACES.get(exp.space or "")
    return getattr(space.config_cls(), key, None) if space else None


def matches(exp: Experiment, table: Table, tables: list[list[dict]]
            ) -> tuple[list[tuple[str, str, str]], str]:
    """(reference row name, reference value, our value) per matched row, and the differences named."""
    frame, metric = table.frame, exp.metric
    found = []

    def ours(mask) -> str:
        rows = frame[mask]
        if rows.empty:
            return "not run"
        # the best row at the longest budget (a reference row such as "distilled" names several cells)
        order = rows.sort_values(["epochs", metric], ascending=[True, exp.mode == "max"], kind="stable")
        best = order.iloc[-1]
        return f"{best[metric]:.4f}" + (f" ± {best[f'{metric}_std']:.4f}" if f"{metric}_std" in best
                                        and not pd.isna(best[f"{metric}_std"]) else "")

    space = exp.space
    if space in ("degradation", "teachers", "kd"):
        for row in _table_with(tables, "#params"):
            name, value = row["Model"], row["val_acc"]
            size = re.match(r"(Small|Medium|Large)CNN", name)
            if space == "degradation" and size:
                blocks = {v: k for k, v in DEGRADATION_SIZES.items()}[size.group(0)]
                mask = (frame["num_blocks"] == blocks) & (frame["skip"] == ("skip" in name))
                if "num_filters" in frame:
                    mask &= frame["num_filters"] == 16
                found.append((name, value, ours(mask)))
            elif space == "teachers" and name in ("ResNet32", "WideResNet14-2") and "Model" in frame:
                found.append((name, value, ours(frame["Model"] == name)))
            elif space == "kd" and name.startswith("BaseCNN") and "w_st" in frame:
                found.append((name, value, ours(frame["w_st"] == 0 if "distilled" not in name
                                                else frame["w_st"] != 0)))
        dataset = _config_default(exp, "dataset")
        differs = f"reference: CIFAR-10, 20 epochs; ours: {dataset}, {_epochs(frame)}"
    elif space == "lora":
        for row in _table_with(tables, "setting"):
            setting = row["setting"].replace("LoRA ", "")
            found.append((row["setting"], row["val_acc"], ours(frame["setting"] == setting)))
        differs = (f"reference: DistilBERT on rotten_tomatoes; ours: {_config_default(exp, 'backbone')} on "
                   f"{_config_default(exp, 'dataset')}, {_epochs(frame)}")
    elif space == "extract":
        for row in _table_with(tables, "extractor"):
            mask = frame["extractor"] == EXTRACTORS.get(row["extractor"], row["extractor"])
            if "pooling" in frame and row.get("pooling", "—") not in ("—", ""):
                mask &= frame["pooling"].astype(str).str.lower() == row["pooling"].lower()
            found.append((f"{row['extractor']} {row.get('pooling', '')}".strip(" —"), row["val"], ours(mask)))
        differs = f"reference: rotten_tomatoes; ours: {_config_default(exp, 'dataset')}"
    else:
        return [], ""
    subset = _config_default(exp, "train_subset")
    if subset and str(subset) != "0":
        differs += f", a subset of {subset} training examples"
    return [f for f in found if f[2] != "not run"] or found, differs


def reference_section(exp: Experiment, table: Table) -> str:
    """The reference's numbers beside ours at the best epoch, or "" when the study has none."""
    if not REFERENCE.is_file():
        return ""
    found, differs = matches(exp, table, reference_tables(REFERENCE.read_text()))
    if not found:
        return ""
    rows = "".join(f'<tr><td class="text">{escape(name)}</td><td>{escape(ref)}</td>'
                   f"<td>{escape(our)}</td></tr>" for name, ref, our in found)
    return ("<h3 id='reference'>Beside the reference study</h3>"
            "<p class='caption'>Reference numbers from docs/reference.md §1 (the original labs); ours at "
            "the best epoch, mean ± std over seeds, at the longest budget run. Not the same experiment: "
            f"{escape(differs)}.</p><div class='scroll'><table class='sortable' id='reference-table'>"
            "<thead><tr>"
            f"<th class='text'>reference row</th><th>reference {escape(exp.metric)}</th>"
            f"<th>ours</th></tr></thead><tbody>{rows}</tbody></table></div>")
