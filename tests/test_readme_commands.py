"""Every command in the code blocks of README.md, RESULTS.md, BENCHMARKS.md and every docs/ page parses:
scripts that exist, flags their real parsers know, spaces, profiles and --set keys the driver accepts,
make targets the Makefile has, tools the venv installs. The docs can then not drift from the command
line."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import click
import pytest

from analysis import evaluate, report
from cli import UsageError
from search import study
from search.options import make_parser, parse_overrides
from search.tunelab import COMMANDS as TUNELAB_COMMANDS
from spaces import PROFILES, SPACES

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
PARSERS = {"search/run.py": make_parser, "analysis/report.py": report.make_parser,
           "analysis/evaluate.py": evaluate.make_parser, "search/study.py": study.make_parser}
SHELL_BUILTINS = {"export", "cd", "source"}


DOC_PAGES = sorted([ROOT / "README.md", ROOT / "RESULTS.md", ROOT / "BENCHMARKS.md",
                    *(ROOT / "docs").glob("*.md")])


def readme_blocks(page: Path) -> list[list[str]]:
    """The commands of each of a page's ```bash blocks: continued lines joined, comments dropped."""
    blocks: list[list[str]] = []
    in_block = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_block = line.strip() == "```bash"
            if in_block:
                blocks.append([])
            continue
        if not in_block or not line.strip() or line.lstrip().startswith("#"):
            continue
        commands = blocks[-1]
        if commands and (line[0].isspace() or commands[-1].endswith("\\")):  # a continued command
            commands[-1] = commands[-1].rstrip("\\") + " " + line.strip()
        else:
            commands.append(line.strip())
    return blocks


def is_synopsis(tokens: list[str]) -> bool:
    return any(t.startswith("[") for t in tokens)


def long_options(parser) -> set[str]:
    return {o for action in parser._actions for o in action.option_strings if o.startswith("--")}


def check_python_script(script: str, args: list[str]) -> None:
    assert (ROOT / script).is_file(), f"no script {script}"
    if script not in PARSERS:
        return
    parser = PARSERS[script]()
    if is_synopsis(args):  # `[--flag VALUE]` forms: every flag must exist, every choice be accepted
        for flag in re.findall(r"--[a-z][a-z-]*", " ".join(args)):
            assert flag in long_options(parser), f"{script} has no {flag}"
        return
    try:
        parsed = parser.parse_args(args)
    except UsageError as err:
        pytest.fail(f"{script} {' '.join(args)}: {err}")
    if script == "search/run.py":
        for name in filter(None, [parsed.space]):
            assert name in SPACES, f"unknown space {name}"
        assert parsed.profile in PROFILES
        if parsed.space and parsed.overrides:
            parse_overrides(SPACES[parsed.space], parsed.overrides)  # keys, types and ranges


def check_click(command: click.Command, args: list[str]) -> None:
    """Parses `args` with a click CLI (ray, wandb, papermill) down to its subcommand, running nothing."""
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        sub = command.get_command(click.Context(command), args[0])
        assert sub is not None, f"{command.name} has no subcommand {args[0]}"
        command, args = sub, args[1:]
    try:
        command.make_context(command.name, list(args))
    except click.BadParameter:  # a placeholder value (results/<experiment>), after every flag was matched
        pass


def click_cli(tool: str) -> click.Command | None:
    if tool == "ray":
        from ray.scripts.scripts import cli
        return cli
    if tool == "wandb":
        from wandb.cli.cli import cli
        return cli
    if tool == "papermill":
        from papermill.cli import papermill
        return papermill
    return None


def check_command(command: str) -> None:
    tokens = shlex.split(command, comments=True)
    while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):  # VAR=value prefixes
        tokens = tokens[1:]
    program, args = tokens[0], tokens[1:]
    if program in SHELL_BUILTINS:
        return
    if program in ("python", ".venv/bin/python"):  # plain python re-executes (trainables/venv.py)
        check_python_script(args[0], args[1:])
    elif program in ("tunelab", ".venv/bin/tunelab"):  # the installed command: a script's own arguments
        assert args and args[0] in TUNELAB_COMMANDS, f"tunelab has no command {args[:1]}"
        module, prefix, _ = TUNELAB_COMMANDS[args[0]]
        check_python_script(module.replace(".", "/") + ".py", [*prefix, *args[1:]])
    elif program == "make":
        targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
        for target in args:
            if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", target):  # VAR=value sets a make variable
                assert target in targets, f"Makefile has no target {target}"
    else:
        tool = program.removeprefix(".venv/bin/")
        # A tool is run as .venv/bin/<tool>, or bare once the venv is activated (the README says how).
        assert (VENV_BIN / tool).is_file() or shutil.which(tool), f"{program} is not installed"
        cli = click_cli(tool)
        if cli is not None:
            check_click(cli, args)


BLOCKS = {page.relative_to(ROOT).as_posix(): readme_blocks(page) for page in DOC_PAGES}
COMMANDS = [(page, command) for page, blocks in BLOCKS.items() for block in blocks for command in block]


def test_readme_has_commands_to_check():
    assert len(COMMANDS) > 20
    assert any(c.startswith("python search/run.py --resume") for _, c in COMMANDS)
    assert {"README.md", "docs/driver.md", "docs/clusters.md"} <= {page for page, _ in COMMANDS}


@pytest.mark.parametrize(("page", "command"), COMMANDS)
def test_readme_command_parses(page: str, command: str):
    check_command(command)


def test_readme_synopsis_lists_every_driver_option():
    block = next(b for b in BLOCKS["docs/driver.md"]
                 if any(c.startswith("python search/run.py") and "[" in c for c in b))
    synopsis = " ".join(block)
    missing = sorted(long_options(make_parser()) - {"--help"} - set(re.findall(r"--[a-z][a-z-]*", synopsis)))
    assert not missing, f"docs/driver.md's driver synopsis lacks {missing}"


def test_readme_command_check_catches_a_wrong_flag_and_a_wrong_key():
    with pytest.raises(pytest.fail.Exception):
        check_command("python search/run.py --space degradation --downloads")
    with pytest.raises(UsageError):
        check_command("python search/run.py --space degradation --set no_such_key=1")
    with pytest.raises(click.UsageError):
        check_command("ray start --no-such-flag")
    with pytest.raises(AssertionError):
        check_command("make no-such-target")
    with pytest.raises(pytest.fail.Exception):
        check_command("tunelab run --space degradation --downloads")
