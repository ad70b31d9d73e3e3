"""The kernel points' codecs in C against their Python, on the same inputs and answers.

``sched.pick``, ``vm.evict``, ``fs.readahead`` and ``fs.filter`` declare their encoders
and decoders (``graft/codec.py``: ``Rows``, ``IndexOf``, ``Batch``, ``Elements``,
``Bytes``, ``BytesOf``), which the native
protected call runs in C. Each case here calls two grafts of one module through the
kernel's point: one through the native entry, one through ``Graft.invoke`` (the codecs'
Python), with the same arguments and the same answer from the guest -- in range, out of
range, named twice, too many, negative, and inputs the plan does not cover (too many
candidates, a field out of its range, an int subclass, a row of the wrong size, a buffer
released or too short) -- and compares what came back (an answer, or the exception's
type and words), the bytes in the buffer, and each graft's counters and abort records.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from vino.graft import Graft, fastpath
from vino.graft.codec import Batch, Bytes, BytesOf, Elements, IndexOf, Rows
from vino.graft.layout import Layout
from vino.kernel import layouts, params
from vino.kernel.cache import PageInfo
from vino.kernel.fs import Inode
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.kernel.sched import ThreadInfo
from vino.limits import NEVER_REMOVE
from vino.testing.leaks import blocks_kept

NATIVE = fastpath.protected(fastpath.native())
pytestmark = pytest.mark.skipif(NATIVE is None, reason=f"the protected call is not native "
                                f"here: {fastpath.PART.reason or 'VINO_FASTPATH'}")

BUF_AT = 1024  # the buffer's address in the guest; the answer is read from address 0
# Answers the i32 the test wrote at address 0 (outside the buffer).
ANSWER = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 1024)
  (func (export "{entry}") (result i32) (i32.load (i32.const 0))))"""
U = layouts.EVICT_MORE_UNIT
BS = params.BLOCK_SIZE


class Twins(NamedTuple):
    point: Any
    native: Graft
    python: Graft


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    k = Kernel.boot(Path(tmp_path_factory.mktemp("codecs")) / "k.img")
    yield k
    k.shutdown()


@pytest.fixture(scope="module")
def user(kernel: Kernel) -> User:
    return kernel.add_user("codec")


def _twins(k: Kernel, user: User, point: str, targets: tuple[object, object]) -> Twins:
    lay = layouts.LAYOUTS[point]
    native, python = (k.graft(user, point, ANSWER.format(entry=lay.entry), t,
                              remove_after=NEVER_REMOVE) for t in targets)
    python.call = python.invoke
    assert native._native is not None and native.call is native._native
    return Twins(native.point, native, python)


@pytest.fixture(scope="module")
def pick(kernel: Kernel, user: User) -> Twins:
    return _twins(kernel, user, "sched.pick",
                  (kernel.new_group(user, "n"), kernel.new_group(user, "p")))


@pytest.fixture(scope="module")
def evict(kernel: Kernel, user: User) -> Twins:
    return _twins(kernel, user, "vm.evict", tuple(  # type: ignore[arg-type]
        kernel.address_space(kernel.spawn(user, name)) for name in ("n", "p")))


@pytest.fixture(scope="module")
def readahead(kernel: Kernel, user: User) -> Twins:
    proc = kernel.spawn(user, "reader")
    kernel.fs.create(user, "f", 0o600)
    return _twins(kernel, user, "fs.readahead", (kernel.fs.open(proc, "f", "r"),
                                           kernel.fs.open(proc, "f", "r")))


def _outcome(t: Twins, g: Graft, args: tuple[object, ...], answer: int,
             answers_at: tuple[int, bytes] | None, buffer: memoryview | None = None,
             ) -> tuple[object, ...]:
    """One call of ``g`` (its target first, then ``args``), the guest answering ``answer``
    and finding ``answers_at`` (offset, bytes) in its buffer; what came back and changed."""
    g.memory.write(0, struct.pack("<i", answer) + b"\xee" * 8)
    g.buffer[:] = b"\xee" * len(g.buffer)  # whatever is not written shows
    if answers_at is not None:
        g.buffer[answers_at[0]:answers_at[0] + len(answers_at[1])] = answers_at[1]
    kept = g.buffer
    if buffer is not None:
        g.buffer = buffer
    before = (g.stats.commits, sum(g.stats.aborts.values()), g.failures)
    try:
        got: object = t.point(g.target, *args)
    except Exception as exc:  # a host fault that reaches the caller
        got = (type(exc).__name__, str(exc))
    finally:
        g.buffer = kept
    # This call's own: counts as differences, and its abort record if it aborted.
    aborted = sum(g.stats.aborts.values()) - before[1]
    return (got, bytes(kept), g.memory.read(4, 8), g.stats.commits - before[0], aborted,
            g.failures - before[2],
            [(a.reason, a.detail) for a in list(g.aborts)[-aborted:]] if aborted else [])


def _same(t: Twins, args: Callable[[Graft], tuple[object, ...]], answer: int,
          answers_at: tuple[int, bytes] | None = None,
          buffer: Callable[[], memoryview] | None = None) -> object:
    """Both grafts, twice each (the first call compiles the codecs, the second runs them
    compiled): the same outcome every time. Returns the answer."""
    for _ in range(2):
        n = _outcome(t, t.native, args(t.native), answer, answers_at,
                     buffer() if buffer else None)
        p = _outcome(t, t.python, args(t.python), answer, answers_at,
                     buffer() if buffer else None)
        assert n == p
    return n[0]


def _released() -> memoryview:
    mv = memoryview(bytearray(8192))
    mv.release()
    return mv


def _short() -> memoryview:
    return memoryview(bytearray(12))


# ---- sched.pick ---------------------------------------------------------------------

def _threads(n: int) -> list[ThreadInfo]:
    return [ThreadInfo(tid=10 + i, priority=(-1) ** i * i, cpu_ns=(1 << 40) + i,
                       waited_ns=7 * i, flags=i & 1) for i in range(n)]


class _Reordered(tuple):  # type: ignore[type-arg]
    """A row whose iteration is not its items: the struct packs what iteration gives."""

    def __iter__(self) -> Iterator[int]:
        return iter(tuple(tuple.__iter__(self))[::-1])


PICK_ROWS: dict[str, list[Any]] = {
    "four": _threads(4),
    "one": _threads(1),
    "none": [],
    "all 64": _threads(params.MAX_PICK_CANDIDATES),
    "65: more than the buffer holds": _threads(params.MAX_PICK_CANDIDATES + 1),
    "plain tuples": [tuple(r) for r in _threads(3)],
    "a row too short": [(1, 2, 3, 4)],
    "a priority past i32": [ThreadInfo(1, 2**31, 0, 0, 0)],
    "a negative cpu_ns": [ThreadInfo(1, 0, -1, 0, 0)],
    "a u64 at its edge": [ThreadInfo(2**32 - 1, -2**31, 2**64 - 1, 2**64 - 1, 2**32 - 1)],
    "a bool": [ThreadInfo(True, 0, 0, 0, 0)],
    "a float": [ThreadInfo(1.0, 0, 0, 0, 0)],  # type: ignore[arg-type]
    "a row iterated otherwise": [_Reordered((1, 2, 3, 4, 5))],
}


@pytest.mark.parametrize("rows", PICK_ROWS, ids=list(PICK_ROWS))
@pytest.mark.parametrize("answer", [0, 2, 3, -1, 64, 2**31 - 1])
def test_pick_codecs_in_c_write_answer_and_refuse_as_their_python(
        pick: Twins, rows: str, answer: int) -> None:
    _same(pick, lambda g: (g.target, PICK_ROWS[rows]), answer)


def test_pick_candidates_as_a_tuple_or_a_list_subclass_are_decoded_alike(pick: Twins) -> None:
    class Rows_(list):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return 1

    assert _same(pick, lambda g: (g.target, tuple(_threads(3))), 2) == 2
    _same(pick, lambda g: (g.target, Rows_(_threads(3))), 2)


# ---- vm.evict -----------------------------------------------------------------------

def _pages(n: int) -> list[PageInfo]:
    return [PageInfo(page_id=i, vpn=100 + i, flags=i % 4, last_use=1000 - i) for i in range(n)]


class _Page(NamedTuple):
    row: bytes


MORE_AT = layouts.EVICT.field("more").offset


def _more(*m: int) -> tuple[int, bytes]:
    return MORE_AT, struct.pack(f"<{len(m)}I", *m)


EVICT_CASES: dict[str, tuple[list[Any], int, tuple[int, bytes] | None]] = {
    "one victim": (_pages(5), 3, None),
    "the last": (_pages(params.MAX_EVICT_CANDIDATES), params.MAX_EVICT_CANDIDATES - 1, None),
    "index out of range": (_pages(5), 5, None),
    "negative": (_pages(5), -1, None),
    "a batch": (_pages(5), 4 + 3 * U, _more(0, 2, 1)),
    "a full batch": (_pages(40), 39 + 31 * U, _more(*range(31))),
    "a further victim out of range": (_pages(5), 1 + 2 * U, _more(0, 5)),
    "a further victim far out of range": (_pages(5), 1 + 2 * U, _more(0, 2**32 - 1)),
    "the victim again": (_pages(5), 1 + 2 * U, _more(0, 1)),
    "a further victim twice": (_pages(5), 1 + 2 * U, _more(3, 3)),
    "32 further victims": (_pages(40), 39 + 32 * U, _more(*range(31))),
    "a batch whose victim is out of range": (_pages(5), 7 + 1 * U, _more(0)),
    "the largest answer": (_pages(5), 2**31 - 1, None),
    "no candidates": ([], 0, None),
    "257: more than the buffer holds": (_pages(params.MAX_EVICT_CANDIDATES + 1), 0, None),
    "a row of the wrong size": ([_Page(b"x" * 23)], 0, None),
    "a row that is not bytes": ([_Page(bytearray(24))], 0, None),  # type: ignore[arg-type]
    "a candidate without a row": ([SimpleNamespace()], 0, None),
}


@pytest.mark.parametrize("case", EVICT_CASES, ids=list(EVICT_CASES))
def test_evict_codecs_in_c_write_answer_and_refuse_as_their_python(
        evict: Twins, case: str) -> None:
    cands, answer, more = EVICT_CASES[case]
    _same(evict, lambda g: (g.target, cands), answer, more)


def test_a_batch_in_c_answers_the_victim_then_the_further_ones_in_order(evict: Twins) -> None:
    """Guards the comparison above: what the native call answered, and from C."""
    assert _same(evict, lambda g: (g.target, _pages(5)), 4 + 3 * U, _more(0, 2, 1)) == [4, 0, 2, 1]


# ---- fs.readahead -------------------------------------------------------------------

OUT_AT = layouts.READAHEAD.field("out").offset


def _of(size: int, hist: list[int], maxlen: int | None = params.READAHEAD_HISTORY) -> object:
    return SimpleNamespace(inode=SimpleNamespace(size=size), _history=deque(hist, maxlen))


def _out(*b: int) -> tuple[int, bytes]:
    return OUT_AT, struct.pack(f"<{len(b)}I", *b)


RA_CASES: dict[str, tuple[object, int, int, tuple[int, bytes] | None]] = {
    "three blocks": (_of(100 * BS, [40, 39, 38]), 41, 3, _out(42, 43, 44)),
    "none": (_of(100 * BS, [40]), 41, 0, None),
    "a size not a whole number of blocks": (_of(100 * BS + 1, [2, 1]), 3, 1, _out(100)),
    "past the end": (_of(100 * BS, [40]), 41, 1, _out(100)),
    "far past the end": (_of(100 * BS, [40]), 41, 2, _out(1, 2**32 - 1)),
    "the same block twice": (_of(100 * BS, [40]), 41, 3, _out(42, 43, 42)),
    "more than max_out": (_of(100 * BS, [40]), 41, params.READAHEAD_MAX_OUT + 1,
                          _out(*range(params.READAHEAD_MAX_OUT + 1))),
    "negative": (_of(100 * BS, [40]), 41, -1, None),
    "huge": (_of(100 * BS, [40]), 41, 2**31 - 1, None),
    "a full history": (_of(2**20 * BS, list(range(16))), 17, 1, _out(18)),
    "a history longer than hist": (_of(2**20 * BS, list(range(20)), None), 20, 0, None),
    "an empty file": (_of(0, []), 0, 1, _out(0)),
    "a block past u32": (_of(100 * BS, [40]), 2**32, 0, None),
    "a history entry past u32": (_of(100 * BS, [2**32]), 1, 0, None),
    "a size past a long long": (_of(2**70, [1]), 1, 1, _out(2)),
    "a negative size": (_of(-BS, [1]), 1, 0, None),
    "a bool block": (_of(100 * BS, [1]), True, 0, None),
    "a history as a list": (SimpleNamespace(inode=SimpleNamespace(size=9 * BS),
                                            _history=[3, 2]), 4, 1, _out(5)),
    "no inode": (SimpleNamespace(_history=deque([1])), 1, 0, None),
}


@pytest.mark.parametrize("case", RA_CASES, ids=list(RA_CASES))
def test_readahead_codecs_in_c_write_answer_and_refuse_as_their_python(
        readahead: Twins, case: str) -> None:
    of, block, answer, out = RA_CASES[case]
    _same(readahead, lambda g: (of, block), answer, out)


class _Counted:
    """An open file whose ``inode`` is a property, counting its reads, and whose
    ``_history`` is a slot (unset in the second case)."""

    __slots__ = ("_history", "reads")

    def __init__(self, hist: list[int] | None) -> None:
        self.reads = 0
        if hist is not None:
            self._history = deque(hist)

    @property
    def inode(self) -> object:
        self.reads += 1
        return SimpleNamespace(size=100 * BS)


@pytest.mark.parametrize("hist", [[9, 8], None], ids=["a property", "an unset slot"])
def test_an_attribute_whose_read_runs_code_is_read_by_the_python_only(
        readahead: Twins, hist: list[int] | None) -> None:
    """The C follows an attribute only where reading it runs no code: a property is read
    by the codec's Python, as often as the Python path reads it."""
    seen = []
    for g in (readahead.native, readahead.python):
        of = _Counted(hist)
        got = _outcome(readahead, g, (of, 10), 2, _out(11, 12))
        seen.append((got, of.reads))
    assert seen[0] == seen[1] and seen[0][1] > 0


@pytest.mark.parametrize("most", [0, 3, params.READAHEAD_MAX_OUT_LIMIT + 5])
def test_readahead_max_out_is_read_at_each_call_in_c_as_in_python(
        kernel: Kernel, readahead: Twins, most: int) -> None:
    kept = kernel.fs.readahead_max
    kernel.fs.readahead_max = most
    try:
        for count in (0, 3, 4, params.READAHEAD_MAX_OUT_LIMIT + 1):
            _same(readahead, lambda g: (_of(100 * BS, [9, 8]), 10), count,
                  _out(*range(11, 11 + count)) if count <= 40 else None)
    finally:
        kernel.fs.readahead_max = kept


# ---- fs.filter ----------------------------------------------------------------------

# Keeps its two Wasm arguments at 4 and 8 (for the test to read), answers the i32 at 0.
FILTER = """(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 1024)
  (func (export "vino_filter") (param i32 i32) (result i32)
    (i32.store (i32.const 4) (local.get 0))
    (i32.store (i32.const 8) (local.get 1))
    (i32.load (i32.const 0))))"""


@pytest.fixture(scope="module")
def filt(kernel: Kernel, user: User) -> Twins:
    proc = kernel.spawn(user, "writer")
    inodes = []
    for name in ("a", "b"):
        kernel.fs.create(user, name, 0o600)
        with kernel.fs.open(proc, name, "r") as f:
            inodes.append(f.inode)
    native, python = (kernel.graft(user, "fs.filter", FILTER, i, remove_after=NEVER_REMOVE)
                      for i in inodes)
    python.call = python.invoke
    assert native._native is not None and native.call is native._native
    return Twins(native.point, native, python)


BLOCK = bytes(range(256)) * (BS // 256)
FILTER_CASES: dict[str, tuple[tuple[object, ...], int]] = {
    "a block": ((4096, BLOCK, 0), BS),
    "a bytearray, read": ((0, bytearray(BLOCK), 1), BS),
    "three bytes": ((7, b"abc", 1), 3),
    "nothing": ((0, b"", 0), 0),
    "a length not the block's": ((0, BLOCK, 0), BS - 1),
    "a negative length": ((0, b"abc", 0), -1),
    "more than the buffer holds": ((0, BLOCK + b"x", 0), BS + 1),
    "an offset past u64": ((2**64, b"abc", 0), 3),
    "a negative offset": ((-1, b"abc", 0), 3),
    "a direction past i32": ((0, b"abc", 2**40 + 1), 3),
    "a negative direction": ((0, b"abc", -1), 3),
    "a bool direction": ((0, b"abc", True), 3),
    "a memoryview": ((0, memoryview(b"abc"), 0), 3),
    "a string": ((0, "abc", 0), 3),
}


@pytest.mark.parametrize("case", FILTER_CASES, ids=list(FILTER_CASES))
def test_filter_codecs_in_c_write_answer_and_refuse_as_their_python(
        filt: Twins, case: str) -> None:
    args, answer = FILTER_CASES[case]
    inode = filt.native.target  # the same file id in both buffers
    _same(filt, lambda g: (inode, *args), answer)
    _same(filt, lambda g: (SimpleNamespace(inum=2**32), *args), answer)  # past u32
    _same(filt, lambda g: (SimpleNamespace(), *args), answer)  # no inum


def test_the_filter_in_c_passes_direction_and_length_and_answers_the_block(filt: Twins) -> None:
    for g in (filt.native, filt.python):
        g.memory.write(0, struct.pack("<i", 3))
        assert filt.point(g.target, g.target, 9, b"xyz", 2**32 + 1) == b"xyz"
        assert g.memory.read(4, 8) == struct.pack("<2i", 1, 3)
        inode = g.target
        assert isinstance(inode, Inode)
        assert bytes(g.buffer[:19]) == struct.pack("<QII", 9, 3, inode.inum) + b"xyz"


# ---- every point: a buffer gone or too short -------------------------------------------

@pytest.mark.parametrize("buffer", [_released, _short], ids=["released", "too short"])
def test_a_buffer_released_or_too_short_fails_in_c_as_in_python(
        pick: Twins, evict: Twins, readahead: Twins, filt: Twins,
        buffer: Callable[[], memoryview]) -> None:
    _same(pick, lambda g: (g.target, _threads(3)), 1, buffer=buffer)
    _same(evict, lambda g: (g.target, _pages(3)), 1 + U, _more(0), buffer=buffer)
    _same(readahead, lambda g: (_of(100 * BS, [40]), 41), 1, _out(42), buffer=buffer)
    _same(filt, lambda g: (filt.native.target, 0, b"abc", 0), 3, buffer=buffer)


# ---- the C really ran ---------------------------------------------------------------

def test_the_common_case_calls_no_python_codec(
        pick: Twins, evict: Twins, readahead: Twins, filt: Twins,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards the comparisons above: in the common case the native call runs the codecs
    in C (their Python is never called), and the answers are the expected ones."""
    calls: list[str] = []
    for cls in (Rows, IndexOf, Batch, Elements, Bytes, BytesOf):
        python = cls.__call__

        def counted(self: Any, *a: Any, _python: Any = python, _name: str = cls.__name__) -> Any:
            calls.append(_name)
            return _python(self, *a)

        monkeypatch.setattr(cls, "__call__", counted)
    g = pick.native
    g.memory.write(0, struct.pack("<i", 2))
    assert pick.point(g.target, g.target, _threads(4)) == 2
    g = evict.native
    g.memory.write(0, struct.pack("<i", 3 + 2 * U))
    g.buffer[MORE_AT:MORE_AT + 8] = struct.pack("<2I", 1, 0)
    assert evict.point(g.target, g.target, _pages(4)) == [3, 1, 0]
    for g in (readahead.native, readahead.python):
        g.memory.write(0, struct.pack("<i", 2))
        g.buffer[OUT_AT:OUT_AT + 8] = struct.pack("<2I", 42, 43)
        assert readahead.point(g.target, _of(100 * BS, [40, 39]), 41) == [42, 43]
        assert calls == ([] if g is readahead.native else ["Rows", "Elements"])
    calls.clear()
    for g in (filt.native, filt.python):
        g.memory.write(0, struct.pack("<i", 3))
        assert filt.point(g.target, g.target, 0, b"abc", 0) == b"abc"
        assert calls == ([] if g is filt.native else ["Bytes", "BytesOf"])


def test_the_policy_slots_are_the_native_dispatch(kernel: Kernel) -> None:
    """No Python frame between the subsystem and the point: its slot is ``Targeted``."""
    assert NATIVE is not None
    for slot in (kernel.sched.pick_policy, kernel.cache.evict_policy,
                 kernel.fs.readahead_policy):
        assert type(slot) is NATIVE.Targeted


def test_rows_refuses_a_declaration_it_cannot_encode() -> None:
    from vino.errors import InvalidDeclaration
    from vino.graft.codec import COUNT, From

    lay: Layout = layouts.PICK
    with pytest.raises(InvalidDeclaration, match="values for the 1 scalars"):
        Rows(lay, "thread", (COUNT, COUNT), From(1), "p")
    with pytest.raises(InvalidDeclaration, match="not an array"):
        Rows(lay, "n", (), From(1), "p")
    with pytest.raises(InvalidDeclaration, match="not both"):
        From(1, obj=lay)
    with pytest.raises(InvalidDeclaration, match="not an array of u32"):
        Elements(lay, "thread", From(0), From(0), "p", "x", "y")


# ---- code run by an attribute read ----------------------------------------------------

class _Meddler:
    """A key of an instance dict with the hash of ``name`` that is no str: looking
    ``name`` up compares it, running ``act`` (what a hostile caller's object may do while
    the native codec reads the attributes the plan names)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.act: Callable[[], object] | None = None

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        if self.act is not None:
            self.act()
        return False


def _meddling(name: str, value: object, act: Callable[[], object]) -> SimpleNamespace:
    """An object whose attribute ``name`` is ``value``, whose read runs ``act``."""
    o = SimpleNamespace()
    key = _Meddler(name)
    o.__dict__[key] = 0  # type: ignore[index]  # first: probed before the name's own entry
    setattr(o, name, value)
    key.act = act  # armed once the attribute is set (setting it compares too)
    return o


def test_a_history_shortened_while_its_file_size_is_read_is_not_read_past_its_end(
        readahead: Twins) -> None:
    """A list of rows is read in place: reading ``of.inode.size`` runs code that drops
    its last entry (an int freed with it). The C takes the rows again (it wrote the
    freed entry and the count of three); the Python's pack of three meets two."""
    def args(g: Graft) -> tuple[object, ...]:
        hist = [40, 39, 10**6 + 7]
        inode = _meddling("size", 100 * BS, hist.pop)
        return SimpleNamespace(inode=inode, _history=hist), 41

    _same(readahead, args, 0)


def test_a_block_emptied_while_the_file_id_is_read_is_not_copied_from_freed_memory(
        filt: Twins) -> None:
    """A bytearray's bytes are read in place: reading ``inode.inum`` runs code that empties
    it (its storage freed). The C copied the three freed bytes and called the guest; the
    Python's copy meets no bytes."""
    def args(g: Graft) -> tuple[object, ...]:
        block = bytearray(b"abc")
        return _meddling("inum", 7, block.clear), 0, block, 0

    _same(filt, args, 3)


def test_rows_whose_packed_bytes_are_read_by_code_that_empties_the_list_stay_held(
        evict: Twins) -> None:
    """Each candidate's ``row`` read may run code: one empties the candidates' list (its
    array and the other candidates freed). The C holds what it reads and takes the list
    again; the Python's pack meets a short list."""
    def args(g: Graft) -> tuple[object, ...]:
        cands: list[object] = [SimpleNamespace(row=p.row) for p in _pages(4)]
        cands[1] = _meddling("row", _pages(2)[1].row, cands.clear)
        return g.target, cands

    _same(evict, args, 1)


# ---- leaks: every path of the native codecs, called again and again ------------------

LEAK_CALLS = 1_000  # per path in the default run (a leak per call: >= this many blocks)
LEAK_CALLS_SLOW = 200_000


def _calling(t: Twins, args: Callable[[Graft], tuple[object, ...]], answer: int,
             answers_at: tuple[int, bytes] | None = None, *, target: object = None
             ) -> Callable[[], object]:
    """One call of the native graft's point, the guest answering ``answer``; what it
    raises is returned (a refused input reaches the caller)."""
    g = t.native
    g.memory.write(0, struct.pack("<i", answer))
    at, data = answers_at or (0, b"")
    who = g.target if target is None else target

    def run() -> object:
        g.buffer[at:at + len(data)] = data
        try:
            return t.point(who, *args(g))
        except Exception as exc:  # a refused input
            return exc

    return run


Looped = Callable[[Kernel, User, Twins, Twins, Twins, Twins], Callable[[], object]]
LEAK_PATHS: dict[str, Looped] = {
    "pick answered": lambda k, u, p, e, r, f: _calling(p, lambda g: (g.target, _threads(4)), 2),
    "pick refused": lambda k, u, p, e, r, f: _calling(p, lambda g: (g.target, _threads(4)), 7),
    "pick, too many": lambda k, u, p, e, r, f: _calling(
        p, lambda g: (g.target, _threads(params.MAX_PICK_CANDIDATES + 1)), 0),
    "pick, an int subclass": lambda k, u, p, e, r, f: _calling(
        p, lambda g: (g.target, [ThreadInfo(True, 0, 0, 0, 0)]), 0),
    "pick, no graft (the default)": lambda k, u, p, e, r, f: _calling(
        p, lambda g: (g.target, _threads(2)), 0, target=k.new_group(u, "nobody")),
    "evict, a batch": lambda k, u, p, e, r, f: _calling(
        e, lambda g: (g.target, _pages(5)), 4 + 3 * U, _more(0, 2, 1)),
    "evict, one named twice": lambda k, u, p, e, r, f: _calling(
        e, lambda g: (g.target, _pages(5)), 1 + 2 * U, _more(3, 3)),
    "readahead answered": lambda k, u, p, e, r, f: _calling(
        r, lambda g: (_of(100 * BS, [40, 39, 38]), 41), 3, _out(42, 43, 44)),
    "readahead, a block twice": lambda k, u, p, e, r, f: _calling(
        r, lambda g: (_of(100 * BS, [40]), 41), 3, _out(42, 43, 42)),
    "filter answered": lambda k, u, p, e, r, f: _calling(
        f, lambda g: (g.target, 0, bytearray(BLOCK), 0), BS),
    "filter, a wrong length": lambda k, u, p, e, r, f: _calling(
        f, lambda g: (g.target, 0, b"abc", 0), 2),
    "filter, too many bytes": lambda k, u, p, e, r, f: _calling(
        f, lambda g: (g.target, 0, BLOCK + b"x", 0), BS + 1),
}


def _leak_check(kernel: Kernel, user: User, pick: Twins, evict: Twins, readahead: Twins,
                filt: Twins, calls: int) -> None:
    kept = {name: blocks_kept(make(kernel, user, pick, evict, readahead, filt), calls)
            for name, make in LEAK_PATHS.items()}
    assert all(n < calls // 4 for n in kept.values()), kept


def test_the_native_codecs_leak_nothing_on_any_path(
        kernel: Kernel, user: User, pick: Twins, evict: Twins, readahead: Twins,
        filt: Twins) -> None:
    """Answers taken, answers refused, inputs refused, inputs left to the Python, no
    graft: a reference kept by mistake on one path shows as a block per call."""
    _leak_check(kernel, user, pick, evict, readahead, filt, LEAK_CALLS)


@pytest.mark.slow
def test_the_native_codecs_leak_nothing_on_any_path_over_many_calls(
        kernel: Kernel, user: User, pick: Twins, evict: Twins, readahead: Twins,
        filt: Twins) -> None:
    _leak_check(kernel, user, pick, evict, readahead, filt, LEAK_CALLS_SLOW)
