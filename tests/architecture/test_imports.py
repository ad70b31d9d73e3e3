"""No circle of imports among vino's modules at run time, and the check that says so.

A circle of modules works only while every module in it is imported in a lucky
order; the first change to that order fails with a half-initialised module. The
graph is read from the source (``imports.py``), so the test sees deferred imports
inside functions too, and ignores those under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import vino

from .imports import circles, import_graph, problems

SRC = Path(vino.__file__).parent

# Edges allowed to close a circle for now, each with the reason: none is left. The
# check fails as soon as a listed edge closes no circle any more, so the list can
# only shrink.
ALLOWED: set[tuple[str, str]] = set()


def test_no_module_of_vino_imports_itself_back_at_run_time() -> None:
    assert problems(import_graph(SRC, "vino"), ALLOWED) == []


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_a_circle_through_relative_absolute_and_deferred_imports_is_found(
        tmp_path: Path) -> None:
    pkg = _package(tmp_path / "pkg", {
        "__init__.py": '"""A package."""\n',
        "a.py": "from .b import g\n",
        "b.py": """
            def g() -> int:
                from pkg.sub import d  # deferred: it still runs
                return d.x
            """,
        "sub/__init__.py": "",
        "sub/d.py": "from .. import a\nx = 1\n",
        "c.py": "import os\nfrom pkg import a\n",
        "data/graft.py": "from pkg import c\n",  # no __init__.py: not a module
    })
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert "pkg.data.graft" not in graph
    assert circles(graph) == [["pkg.a", "pkg.b", "pkg.sub.d"]]
    found = problems(graph, set())
    assert found == ["import circle: pkg.a <-> pkg.b <-> pkg.sub.d"]
    # Allowing one edge of it lets the check pass, for as long as the circle lasts.
    assert problems(graph, {("pkg.b", "pkg.sub.d")}) == []


def test_an_import_only_for_the_type_checker_closes_no_circle(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "pkg", {
        "__init__.py": "",
        "a.py": "from pkg.b import B\n",
        "b.py": """
            import typing
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from pkg.a import A
            if typing.TYPE_CHECKING:
                from . import a
            else:
                from pkg import c
            class B: ...
            """,
        "c.py": "",
    })
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.b"] == {"pkg.c"}
    assert circles(graph) == []
    assert problems(graph, set()) == []


def test_an_allowed_edge_whose_circle_is_gone_fails_the_check(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "pkg", {"__init__.py": "", "a.py": "from pkg import b\n",
                                      "b.py": "x = 1\n"})
    graph = import_graph(pkg, "pkg")
    assert problems(graph, {("pkg.a", "pkg.b")}) == [
        "pkg.a -> pkg.b closes no circle any more: take it off the allowed list"]
