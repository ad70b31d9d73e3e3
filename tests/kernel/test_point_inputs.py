"""The kernel's rows in a graft's buffer, against a fresh encode, on real workloads.

``vm.evict`` copies candidates' rows packed once per page state (``PageInfo.row``,
the cache handing unchanged pages' PageInfo out again); ``sched.pick`` packs its
rows afresh. Here the sample grafts run the eviction and scheduling workloads on a
booted kernel, while every call's encode is checked against the layout's own fresh
pack of the same rows -- with a graft that scrambles its whole buffer on every call
beside them, so a row left stale in guest memory would show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vino.graft.layout import Layout
from vino.kernel import layouts
from vino.kernel.kernel import Kernel
from vino.kernel.sched import cpu_hog, interactive_loop
from vino.workloads import (
    EVICT_FRAMES,
    EVICT_HOT,
    evict_rounds,
    hot_set_message,
    sample,
    write_hot_pages,
)

# Fills the whole buffer with bytes of its own on every call, then answers index 0.
_SCRAMBLE = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 1024)
  (func (export "{entry}") (result i32)
    (memory.fill (i32.const 1024) (i32.const 0xA5) (i32.const {size}))
    (i32.const 0)))"""


def _fresh(lay: Layout, array: str, rows: list[Any], values: Callable[[Any], tuple[int, ...]],
           size: int) -> bytes:
    """The layout's own encode of ``rows`` (the header and rows), from scratch."""
    out = bytearray(size)
    flat = [len(rows)]
    for r in rows:
        flat.extend(values(r))
    lay.rows(array, len(rows)).pack_into(out, 0, *flat)
    return bytes(out[:lay.rows(array, len(rows)).size])


def _checked(point: Any, lay: Layout, array: str,
             values: Callable[[Any], tuple[int, ...]]) -> list[int]:
    """Wrap ``point``'s encode (``vm.evict`` or ``sched.pick``) so every call's buffer is
    compared with a fresh encode; returns the list of rows counts seen (one per call)."""
    seen: list[int] = []
    encode = point.encode

    def checking(buf: memoryview, target: object, rows: list[Any]) -> tuple[int, ...]:
        out: tuple[int, ...] = encode(buf, target, rows)
        want = _fresh(lay, array, rows, values, point.buffer_size)
        assert bytes(buf[:len(want)]) == want
        seen.append(len(rows))
        return out

    point.encode = checking
    return seen


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    k = Kernel.boot(tmp_path / "k.img", frames=EVICT_FRAMES)
    yield k
    k.shutdown()


def test_eviction_candidates_in_a_grafts_buffer_equal_a_fresh_encode_through_a_workload(
        kernel: Kernel) -> None:
    k = kernel
    user = k.add_user("db")
    keep, scramble = (k.address_space(k.spawn(user, name)) for name in ("keep", "scramble"))
    g = k.graft(user, "vm.evict", sample("evict_keep"), keep)
    g.send(hot_set_message(EVICT_HOT))
    k.graft(user, "vm.evict", _SCRAMBLE.format(entry="vino_evict",
                                               size=layouts.EVICT.buffer_size), scramble)
    seen = _checked(k.evict_point, layouts.EVICT, "cand",
                    lambda c: (c.page_id, c.vpn, c.flags, c.last_use))
    write_hot_pages(keep)
    evict_rounds(keep, 2)
    for vpn in range(2000, 2100):  # the other address space pushes the first one out
        scramble.touch(vpn, write=vpn % 3 == 0)
    evict_rounds(keep, 1)
    assert len(seen) > 100 and max(seen) > 1
    assert not g.stats.aborts


def test_runnable_threads_in_a_grafts_buffer_equal_a_fresh_encode_through_a_schedule(
        kernel: Kernel) -> None:
    k = kernel
    user = k.add_user("ed")
    groups = {name: k.new_group(user, name) for name in ("ui", "scramble")}
    for name, group in groups.items():
        proc = k.spawn(user, name, group)
        for _ in range(3):
            k.sched.spawn(proc, cpu_hog())
        k.sched.spawn(proc, interactive_loop(200_000, 3_000_000), interactive=True)
    g = k.graft(user, "sched.pick", sample("sched_interactive"), groups["ui"])
    k.graft(user, "sched.pick", _SCRAMBLE.format(entry="vino_pick",
                                                 size=layouts.PICK.buffer_size),
            groups["scramble"])
    seen = _checked(k.pick_point, layouts.PICK, "thread",
                    lambda r: (r.tid, r.priority, r.cpu_ns, r.waited_ns, r.flags))
    k.sched.run(until_ns=k.clock.now_ns() + 600_000_000)
    assert len(seen) > 50 and max(seen) == 4
    assert not g.stats.aborts
