"""`python analysis/report.py <experiment | --space NAME>`: an experiment (folder or URI) -> report/<name>/.

The report holds the study's table at the best and at the final epoch (Markdown + CSV), its pictures
(SVG), a README.md that embeds them and index.html, the study as one self-contained web page
(analysis/page.py); the main table is printed too. Bad input (a folder that is not
an experiment, an empty experiment, a corrupt result file) is one line on stderr, exit status 2, and
nothing written. The driver calls `report_after_search` so every search ends in a report.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python analysis/report.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from trainables.venv import use_project_python

    use_project_python(__file__, needs=("pandas", "matplotlib"))  # else the .venv

from analysis.lineage import report_section as pbt_section  # noqa: E402
from analysis.overview import status_line, winner_line  # noqa: E402
from analysis.pareto import experiment_front  # noqa: E402
from analysis.questions import answer, verdict_lines, verdicts_markdown  # noqa: E402
from analysis.results import Experiment, NotAnExperiment, open_experiment  # noqa: E402
from analysis.tables import Table, study_table  # noqa: E402
from cli import OneLineParser, UsageError, one_line, writable_folder  # noqa: E402
from cli.exits import SUCCESS  # noqa: E402
from store import Location, StorageError, locate  # noqa: E402
from store.experiment import experiments  # noqa: E402


def report_root() -> Path:
    """Where reports go: $TUNELAB_REPORT, else ./report."""
    return Path(os.environ.get("TUNELAB_REPORT", "report"))


def latest_experiment(storage: str | Path | Location, space: str) -> Location:
    """The most recently written experiment of `space` under `storage` (a folder or a URI)."""
    try:
        storage = locate(storage)
        storage.check_reachable()
        found = experiments(storage, space)
    except StorageError as err:
        raise UsageError(str(err)) from None
    if not found:
        raise UsageError(f"no {space} experiment in {storage} (run: python search/run.py --space {space})")
    return found[0].loc


def build(exp: Experiment) -> tuple[list[Table], dict]:
    """The tables (best epoch first: the main one) and the pictures (Figures, or SVG files to copy),
    all made before anything is written."""
    from analysis import plots

    tables = [study_table(exp, "best"), study_table(exp, "final")]
    figures = {name: make(exp) for name, make in plots.study_plots(exp).items()}
    figures.update(plots.umap_pictures(exp))  # drawn by the extract trials themselves: copied as is
    if two_objectives(exp) and not exp.epochs.empty:
        figures["front"] = plots.objective_front(exp, exp.plan["objectives"])
    return tables, figures


def two_objectives(exp: Experiment) -> bool:
    """Whether the search traded two objectives off: a front means something only then."""
    return len(exp.plan.get("objectives") or []) == 2


def front_lines(exp: Experiment) -> list[str]:
    """A two-objective search's front (analysis.pareto.experiment_front): every full-budget
    configuration, the non-dominated ones first, and the front's hypervolume with its reference point."""
    if not two_objectives(exp):
        return []
    try:
        found = experiment_front(exp, exp.plan["objectives"])
    except ValueError as err:
        return ["## Front", "", f"No front: {err}.", ""]
    frame = found.table.assign(on_front=found.table["on_front"].map({True: "yes", False: ""}))
    return ["## Front", "", Table("front", "best", frame, found.line()).markdown()]


def provenance_lines(record: dict | None) -> list[str]:
    """The plan's provenance (search/provenance.py): code, packages and the nodes that ran the search."""
    if not record:
        return ["## Provenance", "", "Not recorded (the experiment predates provenance in the plan).", ""]
    git = record.get("git") or {}
    code = (f"git commit `{git['commit']}`" + (" with uncommitted changes" if git.get("dirty") else "")
            if git.get("commit") else "not a git checkout")
    packages = ", ".join(f"{name} {version or 'missing'}" for name, version in
                         (record.get("packages") or {}).items())
    lines = ["## Provenance", "", f"Started {record.get('started', '?')} from {code}.", "",
             f"Pinned packages: {packages or 'not recorded'}.", "",
             "| node | host | CPU | GPU | memory GB | Python | Ray | torch | tunelab code |",
             "|---|---|---|---|---|---|---|---|---|"]
    for node in record.get("nodes") or []:
        res, ver = node.get("resources") or {}, node.get("versions") or {}
        lines.append(f"| {node.get('ip')} | {node.get('hostname')} | {res.get('CPU', 0):g} | "
                     f"{res.get('GPU', 0):g} | {res.get('memory_gb', '?')} | {ver.get('python')} | "
                     f"{ver.get('ray')} | {ver.get('torch')} | {ver.get('tunelab')} |")
    return lines + [""]


def readme(exp: Experiment, tables: list[Table], figures: dict, folder: Path) -> str:
    profile = f", profile `{exp.plan['profile']}`" if exp.plan.get("profile") else ""
    lines = [f"# {exp.name}", "",
             f"Study `{exp.space or 'unknown'}`{profile}; results in `{exp.path}`.", "",
             f"{status_line(exp)}. {winner_line(exp)}.", ""]
    answered = verdicts_markdown(answer(exp))
    if answered:  # the study's own questions come first; the winner is one question among them
        lines += ["## The study's questions", "", answered]
    for table, heading in zip(tables, ("Main table (best epoch)", "Final epoch"), strict=True):
        lines += [f"## {heading}", "", table.markdown(), f"CSV: [{table.stem}.csv]({table.stem}.csv)", ""]
    lines += front_lines(exp)
    lines += pbt_section(exp)
    if figures:
        lines += ["## Pictures", ""]
        lines += [f"### {name}\n\n![{name}]({name}.svg)\n" for name in figures]
    for evaluation in sorted(folder.glob("evaluation_*.md")):
        lines += [evaluation.read_text(), ""]
    lines += provenance_lines(exp.plan.get("provenance"))
    lines += [f"Regenerate: `python analysis/report.py {exp.path}`", ""]
    return "\n".join(lines)


SOURCE_FILE = ".experiment"
"""In each report folder: the address of the experiment it reports (without the URI's options)."""


def report_folder(root: Path, experiment: Location) -> Path:
    """<root>/<name>/ for the first experiment of that name reported there; an experiment of the same
    name elsewhere (results/deg and s3://bucket/runs/deg) gets <name>__<hash of its address>/, so no
    report overwrites another experiment's. The same experiment always finds its own folder again. A
    folder that names no experiment (an older tunelab's, or evaluate's files written just before the
    report) is claimed."""
    plain = root / experiment.name
    owner = plain / SOURCE_FILE
    if not owner.is_file() or owner.read_text().strip() == experiment.base:
        return plain
    return root / f"{experiment.name}__{hashlib.sha256(experiment.base.encode()).hexdigest()[:8]}"


def write_report(exp: Experiment, root: Path | None = None) -> Path:
    """Builds everything first, then writes report/<experiment>/; returns the folder."""
    from analysis.page import read_evaluations, render_page, write_html
    from analysis.plots import svg_text

    tables, figures = build(exp)
    pictures = {name: figure.read_text() if isinstance(figure, Path) else svg_text(figure)
                for name, figure in figures.items()}
    folder = report_folder(root or report_root(), exp.path)
    page = render_page(exp, tables, pictures, evaluations=read_evaluations(folder))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SOURCE_FILE).write_text(exp.path.base + "\n")
    for table in tables:
        table.write(folder)
    for name, figure in figures.items():
        if isinstance(figure, Path):
            shutil.copyfile(figure, folder / f"{name}.svg")
        else:
            (folder / f"{name}.svg").write_text(pictures[name])
    (folder / "README.md").write_text(readme(exp, tables, figures, folder))
    write_html(folder, page)
    return folder


def print_table(table: Table) -> None:
    print(table.caption)
    print(table.frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def report_after_search(experiment_dir: Path) -> None:
    """The driver's last step. It never fails the search: the results are on disk whatever happens
    here, so a report that cannot be made is one line saying why and how to retry."""
    try:
        folder = write_report(open_experiment(experiment_dir))
    except NotAnExperiment as err:
        print(f"no report: {err}")
        return
    except Exception as err:  # a bug here must not turn a finished search into a failed one
        print(f"report failed ({type(err).__name__}: {err}); "
              f"retry: python analysis/report.py {experiment_dir}")
        return
    print(f"report: {folder / 'README.md'}; page: {folder / 'index.html'}")


def make_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="analysis/report.py", description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="*", help="experiment folder or URI (storage/name); two or "
                        "more of one space: a comparison (analysis/compare.py)")
    parser.add_argument("--space", help="report the latest experiment of this space in --storage")
    parser.add_argument("--storage", default="results",
                        help="results folder or URI for --space (default results)")
    parser.add_argument("--out", type=Path, help="report root (default $TUNELAB_REPORT or ./report)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        if bool(args.experiment) == bool(args.space):
            raise UsageError("give an experiment folder or --space NAME (one of them)")
        writable_folder(args.out or report_root(), "--out")
        if len(args.experiment) > 1:
            from analysis.compare import run

            run(args.experiment, args.out or report_root())
            return SUCCESS
        path = args.experiment[0] if args.experiment else latest_experiment(args.storage, args.space)
        exp = open_experiment(path)
        folder = write_report(exp, args.out)
    except (UsageError, NotAnExperiment) as err:
        return one_line(err)
    print_table(study_table(exp, "best"))
    print("\n".join(verdict_lines(answer(exp))))
    print(winner_line(exp))
    print(f"report: {folder / 'README.md'}; page: {folder / 'index.html'}")
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
