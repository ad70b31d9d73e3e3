"""The run-time import graph of a package, read from its source (nothing is imported).

    graph = import_graph(Path("src/vino"), "vino")    # module -> modules it imports
    circles(graph)                                   # each group of modules in a circle
    problems(graph, allowed)                         # what a test reports: [] when sound

Every ``import`` and ``from ... import`` counts, at module level or deferred inside a
function (both run), except those under ``if TYPE_CHECKING:`` (they never run).
Relative forms are resolved against the importing module; ``from p import y`` is an
edge to ``p.y`` when that is a module of the package, else to ``p`` itself. Imports
of anything outside the package are left out.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file.

    A ``.py`` file in a folder without ``__init__.py`` (a graft's source among the
    SDK's samples) is data, not a module of the package.
    """
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        folders = path.relative_to(root).parents
        if not all((root / f / "__init__.py").is_file() for f in folders):
            continue
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join([package, *parts])] = path
    return out


@functools.cache
def parse(path: Path) -> ast.Module:
    """The module at ``path``, parsed once per test run."""
    return ast.parse(path.read_text(), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that can run, skipping ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports at run time."""
    mods = modules(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        here = name if is_pkg else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(parse(path).body):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")
                    anchor = anchor[:len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base]) if base else ".".join(anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                           for a in node.names]
            for t in targets:
                while t and t not in mods:  # `import p.q.r` of a name inside a module
                    t = t.rpartition(".")[0]
                if t and t != name:
                    edges.add(t)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def problems(graph: dict[str, set[str]], allowed: set[tuple[str, str]]) -> list[str]:
    """Every circle left once the ``allowed`` edges are taken out, and every allowed
    edge that no longer closes a circle (so the allowance is dropped with the circle)."""
    out = []
    rest = {m: edges - {t for f, t in allowed if f == m} for m, edges in graph.items()}
    for group in circles(rest):
        out.append("import circle: " + " <-> ".join(group))
    groups = circles(graph)
    for f, t in sorted(allowed):
        if not any(f in g and t in g for g in groups) or t not in graph.get(f, set()):
            out.append(f"{f} -> {t} closes no circle any more: take it off the allowed list")
    return out
