"""Every public name of ``vino.graft`` is documented, and its documentation says what
it raises (or that it raises nothing): found through ``help()``, not the source."""

from __future__ import annotations

import inspect

import pytest

import vino.graft as api
from vino.graft import EventPoint, FunctionPoint, Graft, Principal, Registry

# The calls an application makes, each of which must say what it raises.
CALLS = [
    Registry.declare, Registry.install, Registry.check, Registry.remove,
    Registry.remove_target, Registry.grafts, Registry.point_stats, Registry.report,
    Registry.snapshot, Registry.on_abort, Registry.on_remove, Registry.close,
    Graft.send, Graft.remove, FunctionPoint.__call__, EventPoint.__call__,
    api.graft_callable, Principal.charge,
]


@pytest.mark.parametrize("name", api.__all__)
def test_every_public_name_has_a_docstring(name: str) -> None:
    obj = getattr(api, name)
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return  # constants (GLOBAL, I32, I64) are described in the module's docstring
    assert inspect.getdoc(obj), f"vino.graft.{name} has no docstring"


@pytest.mark.parametrize("fn", CALLS, ids=lambda f: f.__qualname__)
def test_every_call_says_what_it_raises(fn: object) -> None:
    doc = inspect.getdoc(fn) or ""
    assert "raise" in doc.lower(), f"{getattr(fn, '__qualname__', fn)}: {doc!r}"


def test_function_point_says_decode_and_default_are_required() -> None:
    doc = inspect.getdoc(FunctionPoint) or ""
    assert "Required" in doc and "decode" in doc and "default" in doc
    with pytest.raises(ValueError, match="needs decode and default"):
        FunctionPoint(name="x.y", entry="e", buffer_size=8, encode=lambda buf: (),
                      target_type=object)
