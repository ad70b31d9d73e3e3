"""Every module of vino opens with its contract, stays below 600 lines, and is on the map.

A module is one concept, named for it; its docstring says what it is, how it is
used and what it keeps invariant. Past ~600 lines a module holds more than one
concept, and is split. docs/DESIGN.md §8 names every module, one line each.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import vino

from .imports import modules, parse

SRC = Path(vino.__file__).parent
MAX_MODULE_LINES = 600  # a module is below this many lines

# The modules still at or over the limit, each being split. The test fails when one
# of them comes under it, so that it leaves this list: the list only shrinks.
OVER_THE_LIMIT: set[str] = set()


def _files() -> dict[str, Path]:
    return {path.relative_to(SRC).as_posix(): path for path in modules(SRC, "vino").values()}


def test_every_module_opens_with_its_contract() -> None:
    files = _files()
    assert len(files) > 50  # the walk found the package
    missing = []
    for name, path in files.items():
        body = parse(path).body
        first = body[0] if body else None
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and first.value.value.strip()):
            missing.append(name)
    assert missing == [], f"modules without an opening docstring: {missing}"


def test_no_module_grows_to_600_lines_and_the_list_of_those_over_only_shrinks() -> None:
    lines = {name: len(path.read_text().splitlines()) for name, path in _files().items()}
    over = {name for name, n in lines.items() if n >= MAX_MODULE_LINES}
    grown = sorted(f"{name} ({lines[name]} lines)" for name in over - OVER_THE_LIMIT)
    assert grown == [], "split these modules: " + ", ".join(grown)
    shrunk = sorted(f"{name} ({lines.get(name)} lines)" for name in OVER_THE_LIMIT - over)
    assert shrunk == [], "under the limit now (or gone): remove from OVER_THE_LIMIT: " + \
        ", ".join(shrunk)


def _design_map() -> set[str]:
    """The module paths docs/DESIGN.md §8 names (relative to src/vino/)."""
    text = (SRC.parents[1] / "docs" / "DESIGN.md").read_text()
    section = text.split("## 8. Map of the code", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return set(re.findall(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_0-9]+\.py)\b", block))


def test_the_design_map_names_every_module_and_only_modules_that_exist() -> None:
    named = _design_map()
    files = set(_files())
    assert len(named) > 50  # the map was found and read
    assert sorted(files - named) == [], "docs/DESIGN.md §8 does not name these modules"
    assert sorted(named - files) == [], "docs/DESIGN.md §8 names modules that do not exist"
