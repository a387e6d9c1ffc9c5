"""`python search/study.py --profile demo|paper|smoke`: every study of the seed labs in one command.

The chain: mnist; degradation; teachers -> kd (kd distils the best kept checkpoint of this chain's own
teachers experiment, as store/experiment.py ranks it); extract; lora. Each study runs as its own
`python search/run.py` process, so the driver's contract holds for each (one-line errors, exit status
2 for bad input, 3 for errored trials); a study that exits non-zero stops the chain with one line
naming it. `--storage`, `--address` and `--seeds` are passed through.

Each study's experiment is `<storage>/<space>__<profile>__study` (a suffix when --seeds or --set is
given, so another ask is another experiment). Run again, the chain reads each folder's state: a
finished study is not run again, an unfinished one is `--resume`d, a missing one is started. It ends
in one index page, `<report root>/reproduce__<profile>.html` (and `.md`), that links every study's
report page.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

if __package__ in (None, ""):  # `python search/study.py` from a checkout without the editable install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from trainables.venv import use_project_python

    use_project_python(__file__, needs=("ray", "torch", "pandas"))  # else the .venv

from cli import OneLineParser, UsageError, one_line  # noqa: E402
from cli.exits import SUCCESS  # noqa: E402
from store import Location, StorageError, locate  # noqa: E402
from store.experiment import ExperimentFolder, NotAnExperiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAIN = ("mnist", "degradation", "teachers", "kd", "extract", "lora")
TEACHERS_FOR = {"kd": "teachers"}
"""A study that distils the best checkpoint of an earlier study in the chain."""
NEW, UNFINISHED, FINISHED = "new", "unfinished", "finished"
ENDED = {"TERMINATED", "PAUSED"}
"""Ray's statuses of a trial that ended. PAUSED: experiments stored before the synchronous schedulers
stored the trials they stop as TERMINATED (raycompat.StoresStoppedPausedTrials) keep them PAUSED."""


def make_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="search/study.py", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="demo", help="budget of every study: smoke, demo or paper (default "
                   "demo)")
    p.add_argument("--storage", default="results", help="results folder or URI for every study (default "
                   "./results)")
    p.add_argument("--address", help="Ray cluster address, passed to every study")
    p.add_argument("--seeds", type=int, help="seeds per configuration, passed to every study (default: "
                   "each profile's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="STUDY:KEY=VALUE",
                   help="`--set KEY=VALUE` for one study of the chain, e.g. degradation:num_blocks=1")
    return p


@dataclass
class Step:
    space: str
    folder: Location
    state: str
    ran: str = ""
    """What this run did: started, resumed, or nothing (finished before)."""
    seconds: float = 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags, checked before anything runs or is written."""
    from search.options import parse_overrides
    from spaces import PROFILES, get_space

    args = make_parser().parse_args(argv)
    if args.profile not in PROFILES or any(args.profile not in get_space(s).profiles for s in CHAIN):
        raise UsageError(f"--profile must be one of {', '.join(PROFILES)}, got '{args.profile}'")
    if args.seeds is not None:
        if args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
        for study in CHAIN:  # the range a study accepts for its seeds trained together
            if "seeds" in get_space(study).config_cls.__dataclass_fields__:
                get_space(study).check("seeds", args.seeds)
    if not args.storage.strip():
        raise UsageError("--storage is empty")
    if args.address is not None and not args.address.strip():
        raise UsageError("--address is empty")
    args.sets = {space: [] for space in CHAIN}
    for item in args.overrides:
        study, sep, setting = item.partition(":")
        if not sep or study not in CHAIN:
            raise UsageError(f"--set expects STUDY:KEY=VALUE with STUDY one of {', '.join(CHAIN)}, "
                             f"got '{item}'")
        space = get_space(study)  # a bad key or value is refused here, before any study runs
        for key, values in parse_overrides(space, [setting]).items():
            for value in values:
                space.check(key, value)
        args.sets[study].append(setting)
    try:
        args.storage = locate(args.storage)
        args.storage.check_writable()
    except StorageError as err:
        raise UsageError(str(err)) from None
    return args


def experiment_name(space: str, args: argparse.Namespace) -> str:
    """<space>__<profile>__study, with the seeds and a hash of the --set values (a distilling study's
    include its teachers') when given: the same ask finds its experiment again, another gets its own."""
    name = f"{space}__{args.profile}__study"
    if args.seeds is not None:
        name += f"-seeds{args.seeds}"
    teachers = TEACHERS_FOR.get(space)
    sets = args.sets[space] + [f"{teachers}:{s}" for s in args.sets.get(teachers, [])]
    if sets:
        name += "-set" + hashlib.sha256("\n".join(sets).encode()).hexdigest()[:8]
    return name


def state(folder: Location) -> str:
    """new (no folder), finished (Ray's state: every trial ended, as many as the plan asks for) or
    unfinished (anything else: killed, running, errored trials, or stopped before Ray saved a state)."""
    from analysis.overview import planned_trials
    from analysis.results import open_experiment

    if not folder.exists():
        return NEW
    statuses = ExperimentFolder(folder).trial_statuses()
    if not statuses or set(statuses.values()) - ENDED:
        return UNFINISHED
    try:
        planned = planned_trials(open_experiment(folder))
    except NotAnExperiment:
        return UNFINISHED
    return FINISHED if planned is None or len(statuses) >= planned else UNFINISHED


def command(step: Step, steps: dict[str, Step], args: argparse.Namespace) -> list[str]:
    """The search/run.py command line of a study: a resume of its unfinished experiment, or a new one."""
    run = [sys.executable, str(ROOT / "search" / "run.py")]
    address = ["--address", args.address] if args.address else []
    if step.state == UNFINISHED:  # the stored plan is the search: only where it runs may be named
        return run + ["--resume", step.folder.uri] + address
    line = run + ["--space", step.space, "--profile", args.profile, "--storage", args.storage.uri,
                  "--name", step.folder.name] + address
    line += ["--seeds", str(args.seeds)] if args.seeds is not None else []
    line += [part for setting in args.sets[step.space] for part in ("--set", setting)]
    if step.space in TEACHERS_FOR:
        line += ["--teacher", teacher(steps[TEACHERS_FOR[step.space]]).uri]
    return line


def teacher(step: Step) -> Location:
    """The best kept checkpoint of the chain's teachers experiment (by its space's metric)."""
    best = ExperimentFolder(step.folder).best_checkpoint()
    if best is None:
        raise UsageError(f"study {step.space} ({step.folder}) kept no checkpoint to distil")
    return best[1]


def report_page(step: Step, root: Path) -> Path | None:
    """The study's report page (index.html, else README.md), made by analysis/report.py when missing."""
    from analysis.report import report_folder

    def found() -> Path | None:
        folder = report_folder(root, step.folder)
        return next((p for p in (folder / "index.html", folder / "README.md") if p.is_file()), None)

    if found() is None:  # a report root emptied since, or a search whose report failed
        subprocess.run([sys.executable, str(ROOT / "analysis" / "report.py"), step.folder.uri], cwd=ROOT)
    return found()


def write_index(steps: list[Step], root: Path, profile: str, storage: Location, seconds: float) -> Path:
    """<root>/reproduce__<profile>.html and .md: one row per study, linking its report page."""
    from analysis.page import page_head

    rows = []
    for step in steps:
        page = report_page(step, root)
        rows.append((step.space, step.folder.name, step.ran or "nothing (finished before)",
                     f"{step.seconds:.0f} s" if step.ran else "–",
                     page.relative_to(root).as_posix() if page else None))
    title = f"Every study, profile {profile}"
    started, resumed = (sum(s.ran == kind for s in steps) for kind in ("started", "resumed"))
    summary = (f"{len(steps)} studies in {storage.uri}; this run started {started} and resumed {resumed}, "
               f"which ran for {seconds:.0f} s. Continue or check: python search/study.py --profile "
               f"{profile}")
    header = ("study", "experiment", "this run", "wall time", "report")
    md = [f"# {title}", "", summary, "", "| " + " | ".join(header) + " |", "|---|---|---|---|---|"]
    md += [f"| {space} | `{name}` | {did} | {wall} | " + (f"[{link}]({link})" if link else "missing") + " |"
           for space, name, did, wall, link in rows]
    cells = "".join(
        f"<tr><td class='text'>{escape(space)}</td><td class='text'><code>{escape(name)}</code></td>"
        f"<td class='text'>{escape(did)}</td><td>{wall}</td><td class='text'>"
        + (f"<a href='{escape(link, quote=True)}'>{escape(space)} report</a>" if link else "missing")
        + "</td></tr>" for space, name, did, wall, link in rows)
    head = "".join(f"<th class='{'num' if h == 'wall time' else 'text'}'>{h}</th>" for h in header)
    html = (f"<!DOCTYPE html><html lang='en'>{page_head(title)}<body><h1>{escape(title)}</h1>"
            f"<p>{escape(summary)}</p><div class='scroll'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{cells}</tbody></table></div></body></html>\n")
    root.mkdir(parents=True, exist_ok=True)
    (root / f"reproduce__{profile}.md").write_text("\n".join(md) + "\n")
    index = root / f"reproduce__{profile}.html"
    index.write_text(html)
    return index


def main(argv: list[str] | None = None) -> int:
    from analysis.report import report_root

    try:
        args = parse_args(argv)
    except UsageError as err:
        return one_line(err)
    started = time.monotonic()
    steps: dict[str, Step] = {}
    for space in CHAIN:
        folder = args.storage / experiment_name(space, args)
        try:
            step = steps[space] = Step(space, folder, state(folder))
            if step.state == FINISHED:
                print(f"study {space}: finished before ({folder}); not run again", flush=True)
                continue
            line = command(step, steps, args)
        except (UsageError, StorageError) as err:
            return one_line(err)
        step.ran = "resumed" if step.state == UNFINISHED else "started"
        print(f"study {space}: {step.ran} ({folder})", flush=True)
        begun = time.monotonic()
        status = subprocess.run(line, cwd=ROOT).returncode
        step.seconds = time.monotonic() - begun
        if status != SUCCESS:
            print(f"error: study {space} ({folder}) exited with status {status}; the chain stopped there "
                  f"(run the same command again to resume it)", file=sys.stderr, flush=True)
            return status
    seconds = time.monotonic() - started
    index = write_index(list(steps.values()), report_root(), args.profile, args.storage, seconds)
    print(f"reproduce {args.profile}: {len(steps)} studies, {sum(bool(s.ran) for s in steps.values())} run "
          f"now ({seconds:.0f} s); index: {index}")
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
