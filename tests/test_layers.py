"""Data flows one way: every import (module-level, inside functions, under TYPE_CHECKING, or by a
string naming a module: `importlib.import_module("search.run")`, a Space's "trainables.cnn:train_cnn")
goes to the same or a lower layer, and no set of modules imports itself round in a cycle. Read from
the AST of every module of every layer, the tests' own included, so an import hidden in a function
body counts too; every folder of Python code at the top of the project is a layer of the table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ("cli", "raycompat", "store", "trainables", "spaces", "analysis", "search", "harness", "bench",
          "tests")
"""Lowest first: a package may import its own layer and those before it, never one after it."""
PRODUCT = tuple(layer for layer in LAYERS if layer not in ("harness", "tests"))
"""The code the project's claims about itself (raycompat's) are about: not the tests, nor their
harness, which fakes what Ray leaves on storage with Ray's own private types."""
NOT_CODE = {".venv", ".git", ".ci", "data", "results", "report", "wandb", "docs", "notebooks"}
"""Top-level folders that hold no code of the project's (data, outputs, documents, the environment)."""
MODULE_STRING = re.compile(rf"({'|'.join(LAYERS)})(\.\w+)+(:\w+)?")
"""A string that names a project module (and maybe a function in it), as import_module takes it."""


def module_name(file: Path) -> str:
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(file: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project module in `file` (or in `source`, read as
    that file's text), wherever it sits."""
    found = []
    package = module_name(file).rsplit(".", 1)[0] if file.name != "__init__.py" else module_name(file)
    for node in ast.walk(ast.parse(file.read_text() if source is None else source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and MODULE_STRING.fullmatch(node.value):
            names = [node.value.split(":")[0]]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in LAYERS]
    return found


def modules() -> dict[str, Path]:
    return {module_name(file): file for layer in LAYERS for file in sorted((ROOT / layer).rglob("*.py"))}


def test_the_walk_sees_every_layer_and_function_level_and_string_imports():
    found = modules()
    assert {name.split(".")[0] for name in found} == set(LAYERS)
    # search/nodes.py imports cli inside the probe function: the walk must see it
    assert any(name == "cli.UsageError" for _, name in project_imports(found["search.nodes"]))
    # search/tunelab.py runs its commands' modules by name, spaces name their trainables by string
    assert ("analysis.report" in {name for _, name in project_imports(found["search.tunelab"])})
    assert any(name.startswith("trainables.") for _, name in project_imports(found["spaces.images"]))


def test_a_string_that_names_a_module_counts_as_importing_it():
    source = ('"""A docstring that mentions analysis.report in a sentence."""\nimport importlib\n'
              'importlib.import_module("tests.conftest")\nTRAINABLE = "trainables.cnn:train_cnn"\n')
    found = project_imports(ROOT / "store" / "probe.py", source)
    assert sorted(found) == [(3, "tests.conftest"), (4, "trainables.cnn")]


def test_the_architecture_doc_names_every_module_of_the_product():
    """docs/architecture.md's layer table: each product module by its file name, so a newcomer finds
    what owns what."""
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = {line.split("|")[2].strip(" `/") for line in doc.splitlines() if re.match(r"\| \d+ \| `", line)}
    assert table == set(LAYERS)
    unnamed = [str(file.relative_to(ROOT)) for layer in PRODUCT for file in (ROOT / layer).rglob("*.py")
               if file.name != "__init__.py" and layer != "bench" and file.name not in doc]
    assert unnamed == []


def test_every_folder_of_python_code_is_a_layer_of_the_table():
    folders = {d.name for d in ROOT.iterdir() if d.is_dir() and d.name not in NOT_CODE
               and not d.name.startswith(".") and any(d.rglob("*.py"))}
    assert folders - set(LAYERS) == set()
    assert not list(ROOT.glob("*.py")), "a module at the top of the project belongs to no layer"


@pytest.mark.parametrize("layer", LAYERS)
def test_no_module_imports_a_higher_layer(layer):
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    upward = [f"{file.relative_to(ROOT)}:{line} imports {name}"
              for module, file in modules().items() if module.split(".")[0] == layer
              for line, name in project_imports(file) if name.split(".")[0] not in allowed]
    assert upward == []


def test_no_import_cycle_among_project_modules():
    found = modules()
    # `from a.b import c` names module a.b, or a.b.c when c is a submodule; a package's __init__ running
    # first is Python's machinery, not an edge of ours
    graph = {module: {target for _, name in project_imports(file)
                      if (target := name if name in found else name.rsplit(".", 1)[0]) in found
                      and target != module}
             for module, file in found.items()}
    cycles = strongly_connected(graph)
    assert [sorted(component) for component in cycles if len(component) > 1] == []


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit on a deep chain)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for succ in edges:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def test_cycle_finder_finds_a_constructed_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b", "c"], ["d"]]
