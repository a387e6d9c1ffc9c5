"""`tunelab run|list|view|report|evaluate|reproduce …`: the installed command (pyproject's [project.scripts]).

Each subcommand hands its arguments to the script the docs name, unchanged, so `tunelab run --space
lora` and `python search/run.py --space lora` are one code path with one set of checks. A command's
module is imported only when chosen: `tunelab report` does not pay for Ray's import.
"""

from __future__ import annotations

import importlib
import sys

from cli import UsageError, one_line
from cli.exits import SUCCESS

COMMANDS: dict[str, tuple[str, list[str], str]] = {
    "run": ("search.run", [], "run a study's search (python search/run.py)"),
    "list": ("search.run", ["--list"], "list the spaces and their grids"),
    "view": ("search.run", ["--view"], "print each model's size for --space NAME, without training"),
    "report": ("analysis.report", [], "write report/<experiment>/ (python analysis/report.py)"),
    "evaluate": ("analysis.evaluate", [], "test the winner's checkpoint (python analysis/evaluate.py)"),
    "reproduce": ("search.study", [], "every study in one command (python search/study.py)"),
}
"""subcommand -> (module with main(argv), arguments put before the user's, one-line help)."""


def usage() -> str:
    lines = ["usage: tunelab COMMAND [ARGS...]   (tunelab COMMAND --help for its options)", ""]
    lines += [f"  {name:9} {doc}" for name, (_, _, doc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return SUCCESS
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command '{argv[0]}'" if argv else "no command"
        return one_line(UsageError(f"{given} (commands: {', '.join(COMMANDS)})"))
    module, prefix, _ = COMMANDS[argv[0]]
    return importlib.import_module(module).main([*prefix, *argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
