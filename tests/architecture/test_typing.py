"""The graft mechanism is typed without ``Any``: mypy's settings say so for every module.

pyproject.toml runs mypy ``--strict`` with ``warn_unreachable``, and no module of
``vino.graft`` may be left out of ``disallow_any_explicit``: a new module is in by the
``vino.graft.*`` pattern, and a module taken out by its own override fails here.
The settings are read as mypy reads them: a module's own section wins over a pattern,
a longer pattern over a shorter one, any section over the global value.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import vino

from .imports import modules

SRC = Path(vino.__file__).parent
PYPROJECT = SRC.parents[1] / "pyproject.toml"
Config = dict[str, object]


def _mypy() -> Config:
    with PYPROJECT.open("rb") as f:
        tool = tomllib.load(f)["tool"]
    mypy = tool["mypy"]
    assert isinstance(mypy, dict)
    return mypy


def _matches(pattern: str, module: str) -> int:
    """How specific ``pattern`` is for ``module``: 0 if it does not match it."""
    if pattern == module:
        return 1_000_000  # the module's own section wins over any pattern
    if pattern.endswith(".*"):
        prefix = pattern[:-2]
        if module == prefix or module.startswith(prefix + "."):
            return len(prefix) + 1
    return 0


def _overrides(mypy: Config) -> list[Config]:
    overrides = mypy.get("overrides", [])
    assert isinstance(overrides, list)
    return overrides


def setting(mypy: Config, module: str, key: str) -> object:
    """``key``'s value for ``module`` under these settings (None: never set)."""
    best, value = 0, mypy.get(key)
    for section in _overrides(mypy):
        if key not in section:
            continue
        names = section["module"]
        assert isinstance(names, str | list)
        for pattern in [names] if isinstance(names, str) else names:
            rank = _matches(pattern, module)
            if rank > best:
                best, value = rank, section[key]
    return value


def exempt(mypy: Config, names: list[str]) -> list[str]:
    """The modules among ``names`` that mypy would let use an explicit ``Any``."""
    return [m for m in names if setting(mypy, m, "disallow_any_explicit") is not True]


def _graft_modules() -> list[str]:
    return sorted(m for m in modules(SRC, "vino") if m == "vino.graft"
                  or m.startswith("vino.graft."))


def test_mypy_is_strict_and_warns_of_unreachable_code() -> None:
    mypy = _mypy()
    assert mypy.get("strict") is True and mypy.get("warn_unreachable") is True


def test_no_module_of_the_graft_mechanism_may_use_an_explicit_any() -> None:
    names = _graft_modules()
    assert len(names) > 20 and "vino.graft.fastcall" in names  # the walk found them
    assert exempt(_mypy(), names) == []


def test_a_graft_module_taken_out_by_its_own_override_is_caught() -> None:
    # The check itself: one module's own section turning the setting off, after the
    # pattern that turns it on, exempts that module and no other.
    mypy = _mypy()
    overrides = [*_overrides(mypy)]
    overrides.append({"module": "vino.graft.fastcall", "disallow_any_explicit": False})
    names = _graft_modules()
    assert exempt({**mypy, "overrides": overrides}, names) == ["vino.graft.fastcall"]
    only_some: Config = {"overrides": [{"module": ["vino.graft.txn"],
                                        "disallow_any_explicit": True}]}
    assert "vino.graft.point" in exempt(only_some, names)
