"""The pure parts: path names, the lock state machine, B-tree page parsing, messages."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from vino.kernel import params as kparams
from vino.kernel.kernel import Kernel
from vino.sqlite import btree, locks
from vino.sqlite.advisor import OP_CHAIN, chain_messages
from vino.sqlite.names import full_pathname, kernel_name
from vino.sqlite.params import RA_CHAIN_MAX, RA_MESSAGE_BYTES

# ---- names ---------------------------------------------------------------------------------


def test_full_pathname_is_absolute_and_normalised() -> None:
    assert full_pathname("app.db") == "/app.db"
    assert full_pathname("a/./b/../c.db") == "/a/c.db"
    assert full_pathname("//x//y.db") == "/x/y.db"


def test_short_safe_names_are_kept_verbatim() -> None:
    assert kernel_name("/app.db") == "app.db"
    assert kernel_name("/app.db-journal") == "app.db-journal"


@pytest.mark.parametrize("path", [
    "/home/someone/projects/a-rather-long-directory-name/and-another/app.db",
    "/home/someone/projects/a-rather-long-directory-name/and-another/app.db-journal",
    "/dir/with space/app.db", "/ünïcödé.db", "/" + "x" * 61, "/.", "/a~b.db",
])
def test_any_path_maps_to_a_valid_kernel_name(path: str) -> None:
    name = kernel_name(path)
    raw = name.encode()
    assert 0 < len(raw) <= kparams.FS_NAME_MAX
    assert b"/" not in raw and b"\0" not in raw
    assert kernel_name(path) == name  # pure


def test_long_names_stay_distinct_and_keep_their_suffix() -> None:
    base = "/home/someone/projects/a-rather-long-directory-name/and-another/app.db"
    db, journal = kernel_name(base), kernel_name(base + "-journal")
    assert db != journal and "~" in db and journal.split("~")[0].endswith("-journal")
    other = kernel_name(base.replace("someone", "someone-else"))
    assert other != db


def test_a_hashed_name_never_collides_with_a_verbatim_one() -> None:
    # '~' is not a safe character, so a path containing it is always hashed.
    hashed = kernel_name("/dir/with space/app.db")
    assert kernel_name("/" + hashed) != hashed


# ---- locks ---------------------------------------------------------------------------------


def test_readers_share_and_one_writer_reserves() -> None:
    lk = locks.FileLock("db")
    a, b, c = locks.Holder(), locks.Holder(), locks.Holder()
    for h in (a, b, c):
        lk.register(h)
    for h in (a, b, c):
        lk.lock(h, locks.SHARED)
    lk.lock(a, locks.RESERVED)
    assert lk.reserved()
    with pytest.raises(locks.Busy):
        lk.lock(b, locks.RESERVED)  # one writer at a time
    lk.check()


def test_a_writer_waits_for_readers_keeping_pending_so_no_new_reader_enters() -> None:
    lk = locks.FileLock("db")
    w, r, late = locks.Holder(), locks.Holder(), locks.Holder()
    for h in (w, r, late):
        lk.register(h)
    lk.lock(w, locks.SHARED)
    lk.lock(r, locks.SHARED)
    lk.lock(w, locks.RESERVED)
    with pytest.raises(locks.Busy):
        lk.lock(w, locks.EXCLUSIVE)
    assert w.level == locks.PENDING
    with pytest.raises(locks.Busy):
        lk.lock(late, locks.SHARED)  # PENDING keeps new readers out
    lk.unlock(r, locks.NONE)
    lk.lock(w, locks.EXCLUSIVE)
    assert w.level == locks.EXCLUSIVE
    lk.check()
    lk.unlock(w, locks.SHARED)
    lk.lock(late, locks.SHARED)
    assert not lk.reserved()
    lk.check()


def test_shared_straight_to_exclusive_and_back_to_none() -> None:
    lk = locks.FileLock("db")
    h = locks.Holder()
    lk.register(h)
    lk.lock(h, locks.SHARED)
    lk.lock(h, locks.EXCLUSIVE)  # hot-journal recovery goes SHARED -> EXCLUSIVE
    lk.check()
    lk.unlock(h, locks.NONE)
    assert h.level == locks.NONE and lk.shared == 0 and not lk.reserved()


def test_two_processes_of_one_kernel_share_one_lock_per_file(tmp_path: Path) -> None:
    k = Kernel.boot(tmp_path / "d.img", nblocks=256)
    try:
        table, again = locks.table_for(k.fs), locks.table_for(k.fs)
        assert table is again and table.get(5, "db") is again.get(5, "db")
        assert table.get(5, "db") is not table.get(6, "other")
        lk = table.get(5, "db")
        a, b = locks.Holder(), locks.Holder()
        lk.register(a)
        lk.register(b)
        for h in (a, b):
            lk.lock(h, locks.SHARED)
        lk.lock(a, locks.RESERVED)
        with pytest.raises(locks.Busy):
            lk.lock(b, locks.RESERVED)
        lk.forget(a)  # a's file closed: its locks go with it
        lk.lock(b, locks.RESERVED)
        lk.check()
    finally:
        k.shutdown()


def test_nonsense_lock_requests_are_refused_without_a_change() -> None:
    lk = locks.FileLock("db")
    h = locks.Holder()
    lk.register(h)
    with pytest.raises(ValueError):
        lk.lock(h, locks.RESERVED)  # RESERVED without SHARED
    with pytest.raises(ValueError):
        lk.lock(h, 7)
    with pytest.raises(ValueError):
        lk.unlock(h, locks.RESERVED)
    assert h.level == locks.NONE and lk.shared == 0
    lk.unlock(h, locks.NONE)  # unlocking below the current level does nothing
    lk.check()


# ---- B-tree pages ----------------------------------------------------------------------------


def _interior(kind: int, children: list[int], hdr: int = 0) -> bytes:
    page = bytearray(4096)
    n = len(children) - 1
    struct.pack_into(">BHHHBI", page, hdr, kind, 0, n, 0, 0, children[-1] + 1)
    off = 4096
    for i, child in enumerate(children[:-1]):
        off -= 8
        struct.pack_into(">I", page, off, child + 1)
        struct.pack_into(">H", page, hdr + 12 + 2 * i, off)
    return bytes(page)


def test_interior_pages_give_their_children_in_key_order() -> None:
    p = btree.parse(5, _interior(btree.INTERIOR_TABLE, [10, 11, 30, 12]))
    assert p.interior and p.children == (10, 11, 30, 12)
    root = btree.parse(0, _interior(btree.INTERIOR_INDEX, [3, 4], hdr=100))
    assert root.kind == btree.INTERIOR_INDEX and root.children == (3, 4)


@pytest.mark.parametrize("mangle", [
    lambda b: b[:12],                                          # too short
    lambda b: b"\x05" + b"\0" * 4095,                          # right child 0
    lambda b: b[:3] + b"\x0f\xff" + b[5:],                     # too many cells for the page
    lambda b: b[:12] + b"\0\0" + b[14:],                       # a cell pointer into the header
])
def test_inconsistent_pages_are_not_taken_for_interior_pages(mangle: object) -> None:
    page = _interior(btree.INTERIOR_TABLE, [10, 11, 12])
    assert callable(mangle)
    assert btree.parse(5, mangle(page)).kind == btree.OTHER


def test_leaves_and_other_pages() -> None:
    assert btree.parse(3, b"\x0d" + bytes(4095)).kind == btree.LEAF_TABLE
    assert btree.parse(3, b"\x0a" + bytes(4095)).kind == btree.LEAF_INDEX
    assert btree.parse(3, bytes(4096)).kind == btree.OTHER


# ---- messages ----------------------------------------------------------------------------------


def test_chain_messages_fit_the_buffer_and_overlap_by_one_block() -> None:
    blocks = list(range(100, 100 + 3 * RA_CHAIN_MAX))
    msgs = chain_messages(blocks)
    seen: list[int] = []
    for m in msgs:
        assert len(m) <= RA_MESSAGE_BYTES
        op, n = struct.unpack_from("<II", m)
        part = list(struct.unpack_from(f"<{n}I", m, 8))
        assert op == OP_CHAIN and 2 <= n <= RA_CHAIN_MAX and len(m) == 8 + 4 * n
        if seen:
            assert part[0] == seen[-1]
            part = part[1:]
        seen += part
    assert seen == blocks
    assert chain_messages([7]) == [] and chain_messages([]) == []
