"""Data flows one way: every import (module-level, inside functions, under TYPE_CHECKING) goes to the
same or a lower layer, and no set of modules imports itself round in a cycle. Read from the AST of
every module, so an import hidden in a function body counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = ("cli", "raycompat", "store", "trainables", "spaces", "analysis", "search", "bench")
"""Lowest first: a package may import its own layer and those before it, never one after it."""


def module_name(file: Path) -> str:
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(file: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a project module in `file`, wherever it sits."""
    found = []
    package = module_name(file).rsplit(".", 1)[0] if file.name != "__init__.py" else module_name(file)
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in LAYERS]
    return found


def modules() -> dict[str, Path]:
    return {module_name(file): file for layer in LAYERS for file in sorted((ROOT / layer).rglob("*.py"))}


def test_the_walk_sees_every_layer_and_function_level_imports():
    found = modules()
    assert {name.split(".")[0] for name in found} == set(LAYERS)
    # search/nodes.py imports cli inside the probe function: the walk must see it
    assert any(name == "cli.UsageError" for _, name in project_imports(found["search.nodes"]))


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
