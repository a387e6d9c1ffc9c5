"""Runs an analysis notebook headless (papermill) and reads what it displayed: the notebook tests of
tests/test_analysis.py and tests/test_text_cli.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "analysis" / "notebooks"


def execute(notebook: str, out: Path, **parameters) -> dict:
    import papermill

    papermill.execute_notebook(str(NOTEBOOKS / notebook), str(out), parameters=parameters,
                               cwd=str(ROOT), progress_bar=False, kernel_name="python3")
    return json.loads(out.read_text())


def outputs(notebook: dict) -> list[dict]:
    return [o for cell in notebook["cells"] if cell["cell_type"] == "code" for o in cell["outputs"]]


def rendered(notebook: dict) -> tuple[str, int]:
    """(all Markdown the notebook displayed, how many PNG pictures); fails on any error output."""
    shown = outputs(notebook)
    assert not [o for o in shown if o["output_type"] == "error"]
    # nothing on stderr either: no "Missing packages: ['ipywidgets']", no TqdmWarning
    assert not ["".join(o["text"]) for o in shown if o.get("name") == "stderr"]
    markdown = "".join("".join(o["data"]["text/markdown"]) for o in shown
                       if "text/markdown" in o.get("data", {}))
    return markdown, sum("image/png" in o.get("data", {}) for o in shown)
