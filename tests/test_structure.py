"""Structure rules a newcomer relies on: modules small enough to read, and no import cycles
among the modules of ``pipeline/`` (so every module can be imported, and understood, on
its own terms).

The import graph is read from the source with ``ast``, nothing is imported: every
``import`` / ``from ... import`` at any depth (module level, inside functions, under
``if TYPE_CHECKING:``) counts. ``from pipeline.x import y`` points at the submodule
``pipeline.x.y`` when there is one, else at ``pipeline.x`` itself (its ``__init__``);
the facade ``pipeline`` (``pipeline/__init__.py``) is left out of the graph, since it
only routes. Importing a submodule also runs its parents' ``__init__``; that implicit
step is not an edge, only what a module names is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
FACADE_MAX_LINES = 200
FACADE = ROOT / "pipeline" / "__init__.py"


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_modules_are_at_most_600_lines():
    long = {
        str(p.relative_to(ROOT)): n
        for p in _sources("pipeline", "studio")
        if p != FACADE and (n := _line_count(p)) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_facade_is_at_most_200_lines():
    n = _line_count(FACADE)
    assert n <= FACADE_MAX_LINES, f"pipeline/__init__.py has {n} lines; the facade only routes (<= {FACADE_MAX_LINES})"


# ---------------------------------------------------------------- import graph


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in _sources("pipeline")}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The pipeline modules that module ``name`` (file ``path``) names in its imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .base import y
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target != "pipeline" and not target.startswith("pipeline."):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    found.add(sub)  # from pipeline.x import y, y a submodule
                elif target in modules:
                    found.add(target)  # a name defined in pipeline.x (or its __init__)
    found.discard("pipeline")  # the facade is not part of the graph
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items() if name != "pipeline"}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path ``a -> b -> ... -> a``) per strongly connected component
    with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))
    return [_one_cycle(graph, set(comp)) for comp in components]


def _one_cycle(graph: dict[str, set[str]], comp: set[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component."""
    start = min(comp)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(graph[node] & comp):
            if child == start:
                return paths[node] + [start]
            if child not in paths:
                paths[child] = paths[node] + [child]
                queue.append(child)
    return sorted(comp)  # pragma: no cover - a component always has a cycle


def test_cycle_finder_finds_a_package_importing_its_submodule_back():
    graph = {
        "pipeline.a": {"pipeline.a.x"},  # the package __init__ imports its submodule: fine alone
        "pipeline.a.x": {"pipeline.b"},
        "pipeline.a.y": {"pipeline.a"},  # a submodule importing its package: fine while nothing comes back
        "pipeline.b": {"pipeline.c"},
        "pipeline.c": {"pipeline.a"},  # ... but this closes a -> a.x -> b -> c -> a
    }
    assert _cycles(graph) == [["pipeline.a", "pipeline.a.x", "pipeline.b", "pipeline.c", "pipeline.a"]]
    del graph["pipeline.c"]
    assert _cycles(graph) == []


def test_import_graph_resolves_submodules_and_packages():
    graph = import_graph()
    assert "pipeline" not in graph
    assert "pipeline.matting.compositor" in graph["pipeline.matting"]  # package -> its submodule
    assert "pipeline.media.video" in graph["pipeline.matting.backgrounds.video"]
    assert "pipeline.timing" in graph["pipeline.media.video"]  # from pipeline import timing: a submodule
    assert "pipeline" not in graph["pipeline.quality.report"]  # import pipeline: the facade, left out


def test_no_import_cycles_in_pipeline():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles among pipeline modules:\n" + "\n".join(" -> ".join(c) for c in cycles)
