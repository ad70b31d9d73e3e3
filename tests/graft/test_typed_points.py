"""A point keeps its types through the registry: mypy checks these (``make test``).

``FunctionPoint[T, *Args, R]`` is called as ``point(target: T, *args: Args) -> R``. The
calls mypy must refuse are written with an ignore of the exact error: with
``warn_unused_ignores`` (part of ``--strict``), the build fails if mypy accepts one.
"""

from __future__ import annotations

from typing import assert_type

from vino.graft import EventPoint, FunctionPoint, Registry


class Shelf:
    """A target kind of this test's own."""


def _encode(buf: memoryview, shelf: Shelf, wanted: int) -> tuple[int, ...]:
    return ()


def _decode(buf: memoryview, ret: int, shelf: Shelf, wanted: int) -> list[int]:
    return [ret]


def _default(shelf: Shelf, wanted: int) -> list[int]:
    return [wanted]


def test_declare_returns_the_point_with_its_target_argument_and_answer_types() -> None:
    reg = Registry()
    try:
        pick = reg.declare(FunctionPoint[str, int, int](
            name="typed.pick", entry="pick", buffer_size=8, encode=lambda buf, x: (),
            decode=lambda buf, ret, x: ret, default=lambda x: 7, target_type=str))
        assert_type(pick, FunctionPoint[str, int, int])  # was FunctionPoint[Any]: untyped
        assert_type(pick("t", 1), int)
        event = reg.declare(EventPoint[str, int](name="typed.event", entry="on", buffer_size=8,
                                                 encode=lambda buf, x: (), target_type=str))
        assert_type(event, EventPoint[str, int])
        assert pick("t", 1) == 7 and event("t", 1) == 0
    finally:
        reg.close()


def test_a_point_takes_its_types_from_its_codecs_and_target_type() -> None:
    reg = Registry()
    try:
        shelf = reg.declare(FunctionPoint(name="typed.shelf", entry="pick", buffer_size=8,
                                          encode=_encode, decode=_decode, default=_default,
                                          target_type=Shelf))
        assert_type(shelf, FunctionPoint[Shelf, Shelf, int, list[int]])
        s = Shelf()
        assert shelf(s, s, 3) == [3]
    finally:
        reg.close()


def _refused_by_mypy(pick: FunctionPoint[str, int, int], event: EventPoint[str, int]) -> None:
    """Never run: each call is a type error mypy must report (see the module docstring)."""
    pick(1, 1)  # type: ignore[arg-type]  # a target of the wrong kind
    pick("t", "one")  # type: ignore[arg-type]  # an argument of the wrong type
    pick("t")  # type: ignore[call-arg]  # an argument missing
    event("t", 1, 2)  # type: ignore[call-arg]  # an argument too many
    answer: str = pick("t", 1)  # type: ignore[assignment]  # the answer is an int
    del answer
