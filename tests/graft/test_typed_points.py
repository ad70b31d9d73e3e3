"""A point keeps its type through the registry: mypy checks these (``make test``)."""

from __future__ import annotations

from typing import assert_type

from vino.graft import EventPoint, FunctionPoint, Registry


def test_declare_returns_the_point_with_its_answer_type() -> None:
    reg = Registry()
    try:
        pick = reg.declare(FunctionPoint[int](
            name="typed.pick", entry="pick", buffer_size=8, encode=lambda buf, x: (),
            decode=lambda buf, ret, x: ret, default=lambda x: 7))
        assert_type(pick, FunctionPoint[int])  # was FunctionPoint[Any]: answers untyped
        assert_type(pick("t", 1), int)
        event = reg.declare(EventPoint(name="typed.event", entry="on", buffer_size=8,
                                       encode=lambda buf: ()))
        assert_type(event, EventPoint)
        assert pick("t", 1) == 7 and event("t") == 0
    finally:
        reg.close()
