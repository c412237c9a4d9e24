"""No import cycles in ``jointtask_lib`` (issue 13): the package reads as a pipeline, each module
importing only modules below it.  The graph is built with :mod:`ast` from every ``import`` in every
module of the package — at module level *and* inside functions (a lazy import is still a
dependency; deferring it only hides a cycle) — and any strongly connected component of more than
one module fails the test, naming the modules and the edges that close it."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

import jointtask_lib

PKG = Path(jointtask_lib.__file__).resolve().parent


def module_names(root: Path) -> dict[str, Path]:
    out = {}
    for p in sorted(root.rglob("*.py")):
        parts = list(p.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(name: str, path: Path, node, mods) -> set[str]:
    """Modules of the package that the import statement ``node`` in module ``name`` loads."""
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = here[: len(here) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:  # ``from . import icl`` loads the submodule ``icl``
            if f"{target}.{alias.name}" in mods:
                found.add(f"{target}.{alias.name}")
        if target in mods:
            found.add(target)
    else:
        found.update(a.name for a in node.names if a.name in mods)
    # importing a.b.c runs a/__init__ and a/b/__init__ first: those are edges too, except to a
    # package that contains the importer (its __init__ is already running)
    for t in list(found):
        parts = t.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in mods and not name.startswith(parent + ".") and parent != name:
                found.add(parent)
    found.discard(name)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    mods = module_names(root)
    graph = {}
    for name, path in mods.items():
        graph[name] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name] |= _targets(name, path, node, mods)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


@functools.cache
def package_graph() -> dict[str, set[str]]:
    return import_graph(PKG)


def test_jointtask_lib_has_no_import_cycle():
    graph = package_graph()
    assert len(graph) > 20 and "jointtask_lib.train" in graph["jointtask_lib.runs"]  # the graph is real
    found = cycles(graph)
    detail = "; ".join(
        ", ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp) for comp in found)
    assert not found, f"import cycles in jointtask_lib: {detail}"


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


@pytest.mark.parametrize("trainer", ["jointtask_lib.train", "jointtask_lib.runs", "jointtask_lib.sweep",
                                     "jointtask_lib.paper_b.icl_train", "jointtask_lib.paper_b.icl_model",
                                     "jointtask_lib.checkpoints", "jointtask_lib.paths"])
def test_training_and_storage_never_reach_the_claims(trainer):
    """Claims sit above training: no trainer or storage module imports the scorecard or a section,
    even indirectly (paper B's trainer used to build its claims itself)."""
    graph = package_graph()
    above = {m for m in graph if m == "jointtask_lib.scorecard" or m.startswith("jointtask_lib.sections")
             or m == "jointtask_lib.paper_b.section"}
    assert "jointtask_lib.scorecard" in above
    assert not reachable(graph, trainer) & above


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


@pytest.mark.parametrize("files, cyclic", [
    ({"__init__.py": "", "a.py": "from .b import x\n", "b.py": "def f():\n    from .a import y\n"},
     [["pkg.a", "pkg.b"]]),  # a lazy import closes the cycle too
    ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "from .sub.c import z\n",
      "sub/__init__.py": "", "sub/c.py": "from ..a import q\n"}, [["pkg.a", "pkg.b", "pkg.sub.c"]]),
    ({"__init__.py": "", "a.py": "from .b import x\n", "b.py": "import os\n", "sub/__init__.py": "",
      "sub/c.py": "from .. import a\nfrom . import d\n", "sub/d.py": "from ..b import x\n"}, []),
])
def test_cycle_finder_on_small_packages(tmp_path, files, cyclic):
    graph = import_graph(_write(tmp_path / "pkg", files))
    assert cycles(graph) == cyclic
