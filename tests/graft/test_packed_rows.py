"""Rows kept packed between calls (``vino.graft.layout.PackedRows``) against a fresh encode.

A ``PackedRows`` packs only the rows that changed since its last call; what it leaves
in a graft's buffer must be, byte for byte, what a fresh ``Layout.rows`` pack writes.
A model-based test drives it through any sequence of changes to the rows (new rows,
rows gone, a row replaced by a new one or by an equal copy, the window moving on,
the list rebuilt) with the graft scribbling over its buffer between calls, and
compares every call's buffer with a fresh encode over the same starting bytes.
"""

from __future__ import annotations

import random
import struct
import threading
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from vino.errors import InvalidDeclaration
from vino.graft.layout import U32, Field, Layout, PackedRows, Struct
from vino.kernel import layouts
from vino.kernel.cache import PageInfo
from vino.kernel.sched import ThreadInfo


def _page(c: PageInfo) -> tuple[int, ...]:
    return (c.page_id, c.vpn, c.flags, c.last_use)


def _thread(r: ThreadInfo) -> tuple[int, ...]:
    return (r.tid, r.priority, r.cpu_ns, r.waited_ns, r.flags)


def _fresh(rows: PackedRows[Any], before: bytes, given: list[Any]) -> bytes:
    out = bytearray(before)
    rows.fresh(memoryview(out), given)
    return bytes(out)


u32 = st.integers(0, 2**32 - 1)
pages = st.builds(PageInfo, page_id=u32, vpn=u32, flags=st.integers(0, 3),
                  last_use=st.integers(0, 2**64 - 1))
threads = st.builds(ThreadInfo, tid=u32, priority=st.integers(-(2**31), 2**31 - 1),
                    cpu_ns=st.integers(0, 2**64 - 1), waited_ns=st.integers(0, 2**64 - 1),
                    flags=st.integers(0, 1))


class RowsModel(RuleBasedStateMachine):
    """The rows a kernel offers call after call, changed between calls in every way it can."""

    @initialize(evict=st.booleans(), data=st.data())
    def start(self, evict: bool, data: st.DataObject) -> None:
        self.strategy = pages if evict else threads
        lay, array = (layouts.EVICT, "cand") if evict else (layouts.PICK, "thread")
        self.cap = min(lay.field(array).count or 0, 40)  # enough rows to move windows over
        self.packed: PackedRows[Any] = PackedRows(lay, array, _page if evict else _thread)
        self.buf = bytearray(lay.buffer_size)
        self.rows: list[Any] = data.draw(st.lists(self.strategy, max_size=self.cap))

    @rule(data=st.data())
    def add_rows(self, data: st.DataObject) -> None:
        room = self.cap - len(self.rows)
        new = data.draw(st.lists(self.strategy, max_size=max(0, min(room, 5))))
        at = data.draw(st.integers(0, len(self.rows)))
        self.rows[at:at] = new

    @rule(data=st.data())
    def drop_rows(self, data: st.DataObject) -> None:
        if self.rows:
            at = data.draw(st.integers(0, len(self.rows) - 1))
            del self.rows[at:at + data.draw(st.integers(1, 4))]

    @rule(data=st.data())
    def replace_a_row(self, data: st.DataObject) -> None:
        if self.rows:
            self.rows[data.draw(st.integers(0, len(self.rows) - 1))] = data.draw(self.strategy)

    @rule(data=st.data())
    def replace_a_row_by_an_equal_copy(self, data: st.DataObject) -> None:
        if self.rows:
            i = data.draw(st.integers(0, len(self.rows) - 1))
            r = self.rows[i]
            self.rows[i] = type(r)(*(_page(r) if isinstance(r, PageInfo) else _thread(r)))

    @rule(k=st.integers(1, 12), data=st.data())
    def the_window_moves_on(self, k: int, data: st.DataObject) -> None:
        """As vm.evict's candidates after an eviction: the old rows from k on come first,
        then (maybe) new ones."""
        self.rows = self.rows[k:] + data.draw(st.lists(self.strategy, max_size=k))
        del self.rows[self.cap:]

    @rule()
    def the_list_is_rebuilt_from_the_same_rows(self) -> None:
        self.rows = list(self.rows)

    @rule(data=st.data())
    def a_row_repeats(self, data: st.DataObject) -> None:
        if self.rows and len(self.rows) < self.cap:
            self.rows.append(self.rows[data.draw(st.integers(0, len(self.rows) - 1))])

    @rule(seed=st.integers(0, 2**32 - 1))
    def the_graft_scribbles_over_its_buffer(self, seed: int) -> None:
        self.buf[:] = random.Random(seed).randbytes(len(self.buf))

    @invariant()
    def a_call_leaves_exactly_a_fresh_encode(self) -> None:
        if not hasattr(self, "packed"):
            return
        before = bytes(self.buf)
        self.packed.write(memoryview(self.buf), self.rows)
        assert bytes(self.buf) == _fresh(self.packed, before, self.rows)


RowsModel.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
test_packed_rows_equal_a_fresh_encode_after_any_sequence_of_changes = RowsModel.TestCase


def _sample_rows(n: int, base: int = 0) -> list[PageInfo]:
    return [PageInfo(base + i, 3 * i, i % 4, 1000 + i) for i in range(n)]


def test_a_row_that_does_not_pack_leaves_no_stale_rows_behind() -> None:
    rows: PackedRows[PageInfo] = PackedRows(layouts.EVICT, "cand", _page)
    buf = bytearray(layouts.EVICT.buffer_size)
    good = _sample_rows(6)
    rows.write(memoryview(buf), good)
    bad = [*good[:3], PageInfo(1, 2, 3, -1)]  # last_use is a u64
    with pytest.raises(struct.error):
        rows.write(memoryview(buf), bad)
    for given in ([], good[:2], good):
        before = bytes(buf)
        rows.write(memoryview(buf), given)
        assert bytes(buf) == _fresh(rows, before, given)


def test_more_rows_than_the_array_holds_are_refused_before_anything_is_written() -> None:
    rows: PackedRows[PageInfo] = PackedRows(layouts.EVICT, "cand", _page)
    buf = bytearray(layouts.EVICT.buffer_size)
    too_many = _sample_rows((layouts.EVICT.field("cand").count or 0) + 1)
    with pytest.raises(InvalidDeclaration, match="do not fit"):
        rows.write(memoryview(buf), too_many)
    assert buf == bytearray(len(buf))


def test_only_an_array_of_rows_counted_by_a_header_scalar_can_be_kept_packed() -> None:
    with pytest.raises(InvalidDeclaration, match="counted rows"):
        PackedRows(layouts.READAHEAD, "hist", lambda v: (v,))
    with pytest.raises(InvalidDeclaration, match="header values"):
        PackedRows(layouts.EVICT, "cand", _page, head=(1,))


def test_header_constants_are_packed_beside_the_count() -> None:
    """A header with scalars besides the count (here: a layout whose pad became a field)."""
    lay = Layout(point="t.rows", entry="t", buffer_size=8 + 24 * 4, fields=Struct("t_buf", (
        Field("max_more", U32, 0), Field("n", U32, 4),
        Field("cand", layouts.EVICT_CAND, 8, count=4, valid="n"))))
    rows: PackedRows[PageInfo] = PackedRows(lay, "cand", _page, head=(31,))
    buf = bytearray(lay.buffer_size)
    for given in (_sample_rows(3), _sample_rows(4)[1:], []):
        rows.write(memoryview(buf), given)
        want = bytearray(lay.buffer_size)
        flat = [31, len(given)]
        for c in given:
            flat.extend(_page(c))
        lay.rows("cand", len(given)).pack_into(want, 0, *flat)
        assert buf[:rows.size(len(given))] == want[:rows.size(len(given))]


def test_a_second_thread_writing_the_same_rows_meanwhile_gets_a_fresh_encode() -> None:
    """One thread is inside (packing a changed row); another writes meanwhile: it must
    not see half-packed rows, and the first must finish consistent."""
    entered, go_on = threading.Event(), threading.Event()
    first_thread = threading.current_thread()

    def values(c: PageInfo) -> tuple[int, ...]:
        if c.page_id == 999 and threading.current_thread() is first_thread:
            entered.set()
            go_on.wait(10)
        return _page(c)

    rows: PackedRows[PageInfo] = PackedRows(layouts.EVICT, "cand", values)
    base = _sample_rows(8)
    buf1 = bytearray(layouts.EVICT.buffer_size)
    rows.write(memoryview(buf1), base)
    changed = [*base[:7], PageInfo(999, 1, 1, 1)]
    other = _sample_rows(5, base=50)
    buf2 = bytearray(layouts.EVICT.buffer_size)

    def second() -> None:
        entered.wait(10)
        rows.write(memoryview(buf2), other)
        go_on.set()

    t = threading.Thread(target=second)
    t.start()
    rows.write(memoryview(buf1), changed)
    t.join(10)
    assert bytes(buf2) == _fresh(rows, bytes(layouts.EVICT.buffer_size), other)
    assert bytes(buf1) == _fresh(rows, bytes(buf1), changed)
    before = bytes(buf1)
    rows.write(memoryview(buf1), changed)
    assert bytes(buf1) == _fresh(rows, before, changed)
