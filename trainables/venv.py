"""`python search/run.py` with any Python: the scripts hand themselves to the checkout's `.venv`.

A new user types `python ...`, which is rarely the interpreter `make install` filled. Before importing
anything heavy, a script asks whether this Python has the packages it needs; if not, it re-executes
itself with `<checkout>/.venv/bin/python`, or, without one, prints a single line saying to run
`make install`. Standard library only (and cli/, which imports nothing else): this runs in whatever
Python the user has. It sits in `trainables/`, the lowest package whose `__init__` imports nothing
(store/'s imports pyarrow), so the entry points of search/ and analysis/ both reach it without
importing upward.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from cli.exits import BAD_INPUT

CHECKOUT = Path(__file__).resolve().parents[1]
# Set in the re-executed process: a venv that still lacks the packages must not re-execute forever.
GUARD = "TUNELAB_REEXECUTED"


def missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def use_project_python(script: str, needs: tuple[str, ...]) -> None:
    """Returns when this Python can run `script`; else re-executes it with the checkout's venv or exits
    with status BAD_INPUT and one line on stderr. `needs` are the top-level modules the script imports."""
    lacking = missing(needs)
    if not lacking:
        os.environ.pop(GUARD, None)  # the scripts' own subprocesses start clean
        return
    venv = CHECKOUT / ".venv"
    python = venv / "bin" / "python"
    # sys.prefix is the venv folder when its interpreter runs (the symlink resolves to the base Python).
    inside_venv = Path(sys.prefix).resolve() == venv.resolve()
    if python.is_file() and os.access(python, os.X_OK) and not inside_venv and not os.environ.get(GUARD):
        os.environ[GUARD] = "1"
        try:
            os.execv(python, [str(python), os.path.abspath(script), *sys.argv[1:]])
        except OSError as err:
            lacking.append(f"{python} does not start: {err.strerror}")
    print(f"error: {sys.executable} lacks tunelab's packages ({', '.join(lacking)}); run `make install` "
          f"in {CHECKOUT}, then use .venv/bin/python", file=sys.stderr)
    sys.exit(BAD_INPUT)
