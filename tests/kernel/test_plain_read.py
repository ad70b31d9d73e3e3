"""Attacks on the plain read path (``fspolicy.py``, ``FileIO.pread``): a cached
block read with the built-in policies, served under the cache's lock alone.

It must never serve stale bytes (another handle wrote the block, the file was cut and
grown again, the block was evicted and its frame reused, a thread rewrites the file
meanwhile), never hide an access from a graft or a policy that arrived after it warmed
up, never read past a filter's seal, and change nothing a workload can measure: the
same bytes, device requests, cache and file-system counts as the general path.

Every test runs twice: with the plain path's hit in native code (``plainread.py``)
and with the Python plain path alone (``VINO_PLAINREAD=python``'s path); ``_plain``
then checks that the native code itself served the read.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest

from vino.graft import GLOBAL
from vino.graft.hold import SharedLock
from vino.graft.txn import thread_state
from vino.kernel import params, plainread
from vino.kernel.cache import PageInfo
from vino.kernel.errors import BadHandle, FilterUnavailable
from vino.kernel.fs import NDIRECT, OpenFile
from vino.kernel.inode import Inode
from vino.kernel.kernel import Kernel

from .kernel_world import BS, Boot, benign, make_file, pattern

BLOCKS = NDIRECT + 15  # past the direct blocks: the remembered block map serves them too
FAR = NDIRECT + 5  # a block mapped through the indirect block


@pytest.fixture(params=["native", "python"], autouse=True)
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which plain read the kernels booted by the test take: the native one, or Python."""
    if request.param == "python":
        monkeypatch.setattr(plainread, "reader", lambda *kinds: None)
    elif plainread.native() is None:
        pytest.skip(f"no native plain read here: {plainread.PART.reason}")
    path: str = request.param
    return path


def _opened(k: Kernel, blocks: int = BLOCKS) -> tuple[OpenFile, OpenFile]:
    """alice's file "f" of ``blocks`` pattern blocks, open for reading and for writing."""
    alice = k.add_user("alice")
    proc = make_file(k, alice, "f", pattern(blocks))
    return k.fs.open(proc, "f", "r"), k.fs.open(proc, "f", "rw")


def _plain(k: Kernel, of: OpenFile, block: int, *, hit: bool = True) -> bytes:
    """Read ``block`` of ``of`` and check that the plain path served it (with the native
    read and a ``hit``: the native code itself)."""
    before, served = k.fs.stats.plain_reads, plainread.served()
    data = k.fs.pread(of, block * BS, BS)
    assert k.fs.stats.plain_reads == before + 1, "the plain path did not serve this read"
    native = k.fs._native_read is not None and hit
    assert plainread.served() == served + native, "the native read did not serve this hit"
    return data


def _warm(k: Kernel, of: OpenFile, block: int) -> None:
    k.fs.pread(of, block * BS, BS)  # the first read asks plain_read; the block is cached
    k.fs.pread(of, block * BS, BS)


def _workload(k: Kernel) -> dict[str, object]:
    """Sequential scans, re-reads, random and partial reads, and writes by another handle
    between them, on a cache smaller than the file (evictions, read-ahead, misses)."""
    r, w = _opened(k)
    fs = k.fs
    got: list[bytes] = []
    order = [*range(BLOCKS), *range(BLOCKS), 3, 3, 30, 7, 31, 32, 33, 2, 39, 0, 1, 2, 3]
    order += [(i * 17) % BLOCKS for i in range(60)]
    for i, b in enumerate(order):
        got.append(fs.pread(r, b * BS, BS))
        if i % 23 == 5:
            fs.pwrite(w, ((i * 7) % BLOCKS) * BS, pattern(1, f"w{i}"))
        if i % 31 == 9:
            got.append(fs.pread(r, b * BS + 100, 300))  # not a whole block: the general path
    fs.truncate(w, (BLOCKS - 4) * BS)
    got += [fs.pread(r, b * BS, BS) for b in range(BLOCKS - 6, BLOCKS)]
    history = r.history
    fs.close(r)
    fs.close(w)
    k.check_invariants()
    stats = fs.stats.snapshot()
    plain = stats.pop("plain_reads")
    stats.pop("plain_writes")  # the other handle's writes (test_plain_write.py)
    return {"data": got, "history": history, "fs": stats, "plain": plain,
            "cache": k.cache.stats.snapshot(), "device": k.device.stats.snapshot()}


def test_the_plain_path_changes_nothing_a_workload_can_measure(boot: Boot) -> None:
    general_k = boot("general", frames=24)
    general_k.fs.plain_read = lambda of: False
    general = _workload(general_k)
    plain = _workload(boot("plain", frames=24))
    assert general.pop("plain") == 0
    served = plain.pop("plain")
    assert isinstance(served, int) and served > 10  # it served the re-reads of cached blocks
    assert plain == general


def test_a_block_another_handle_overwrote_is_never_served_stale(boot: Boot) -> None:
    k = boot()
    r, w = _opened(k)
    _warm(k, r, FAR)
    assert _plain(k, r, FAR) == pattern(FAR + 1)[FAR * BS:]
    k.fs.pwrite(w, FAR * BS, pattern(1, "new"))
    assert _plain(k, r, FAR) == pattern(1, "new")


def test_a_block_cut_off_and_grown_back_is_never_served_stale(boot: Boot) -> None:
    k = boot()
    r, w = _opened(k)
    _warm(k, r, FAR)
    k.fs.truncate(w, FAR * BS + 100)  # the block stays, all but 100 bytes past the end
    assert k.fs.pread(r, FAR * BS, BS) == pattern(FAR + 1)[FAR * BS:FAR * BS + 100]
    k.fs.truncate(w, NDIRECT * BS)
    assert k.fs.pread(r, FAR * BS, BS) == b""  # past the end: nothing, not the old block
    k.fs.sync()  # the freed block may now be handed out again
    k.fs.truncate(w, BLOCKS * BS)
    assert k.fs.pread(r, FAR * BS, BS) == bytes(BS)  # a hole reads as zeros
    k.fs.pwrite(w, FAR * BS, pattern(1, "again"))
    k.fs.pread(r, FAR * BS, BS)
    assert _plain(k, r, FAR) == pattern(1, "again")
    k.check_invariants()


def test_a_block_evicted_and_its_frame_reused_is_never_served_stale(boot: Boot) -> None:
    k = boot(frames=16)
    r, w = _opened(k)
    _warm(k, r, FAR)
    blk = r.inode.remembered()[FAR]
    frame = k.cache._files[(k.device, blk)]
    alice_proc = r.process
    assert alice_proc is not None
    make_file(k, r.user, "g", pattern(40, "other"))  # flushes the 16 frames
    with k.fs.open(alice_proc, "g", "r") as g:
        for b in range(40):
            k.fs.pread(g, b * BS, BS)
    assert (k.device, blk) not in k.cache._files
    assert frame.block != blk or frame.dev is not k.device  # the frame holds another block
    k.fs.pwrite(w, FAR * BS, pattern(1, "late"))
    assert k.fs.pread(r, FAR * BS, BS) == pattern(1, "late")
    assert _plain(k, r, FAR) == pattern(1, "late")
    k.check_invariants()


def test_a_hint_naming_the_frame_of_another_block_is_never_believed(boot: Boot) -> None:
    # The native read's block -> frame hint, forged: every entry names a frame that
    # holds some other block of the file, or one past the last frame. Each block is
    # still read as itself, served from the cache.
    k = boot(frames=64)
    r, _ = _opened(k, 40)
    for b in range(40):
        _warm(k, r, b)
    ino = r.inode
    blocks = [ino.direct[b] if b < NDIRECT else ino.remembered()[b] for b in range(40)]
    frames = [k.cache._files[(k.device, blk)].index for blk in blocks]
    hint = memoryview(k.cache._hint).cast("I")
    for b in range(0, 40, 2):
        for i in range(len(hint)):
            hint[i] = frames[(b + 1 + i) % 40] + 1 if i % 7 else len(k.cache._frames) + 1
        assert hint[blocks[b] % len(hint)] != frames[b] + 1
        assert _plain(k, r, b) == pattern(40)[b * BS:(b + 1) * BS]
        assert _plain(k, r, b + 1) == pattern(40)[(b + 1) * BS:(b + 2) * BS]
    for i in range(len(hint)):
        hint[i] = min(hint[i], len(k.cache._frames))  # what the invariant allows again
    hint.release()
    for b in range(40):
        assert _plain(k, r, b) == pattern(40)[b * BS:(b + 1) * BS]  # the hints it wrote
    k.check_invariants()


def test_a_page_a_caller_still_holds_is_never_overwritten_by_the_next_read(boot: Boot) -> None:
    # The native read hands out the bytes of its last hit again once no one holds them:
    # bytes kept, or seen through a memoryview, stay as they were; a reused object
    # hashes as its new content.
    k = boot(frames=64)
    r, _ = _opened(k, 8)
    for b in range(8):
        _warm(k, r, b)
    want = [pattern(8)[b * BS:(b + 1) * BS] for b in range(8)]
    kept = _plain(k, r, 1)
    other = _plain(k, r, 2)
    view = memoryview(other)
    third = _plain(k, r, 3)
    assert (kept, bytes(view), third) == (want[1], want[2], want[3])
    view.release()
    del other
    hashed = hash(third)
    del third
    again = _plain(k, r, 4)
    assert again == want[4] and hash(again) == hash(bytes(bytearray(again))) != hashed
    assert kept == want[1]


def test_a_count_a_caller_still_holds_keeps_its_value_when_the_next_read_counts(
        boot: Boot) -> None:
    # The native read rewrites a count's int in place when nothing but its slot holds
    # it (past the shared small ints): an int read out before -- kept, or a dict's value
    # -- must keep its value, and the counts must still add up.
    k = boot(frames=64)
    r, _ = _opened(k, 8)
    for b in range(8):
        _warm(k, r, b)
    for i in range(300):  # every count past 256
        k.fs.pread(r, (i % 8) * BS, BS)
    stats, cstats = k.fs.stats, k.cache.stats
    kept = (stats.plain_reads, cstats.hits, r.pos, k.cache._tick)
    shown = {"hits": cstats.hits}
    values = tuple(int(str(v)) for v in kept)
    _plain(k, r, 5)
    _plain(k, r, 6)
    assert tuple(int(str(v)) for v in kept) == values and shown["hits"] == values[1]
    assert (stats.plain_reads, cstats.hits, r.pos) == (values[0] + 2, values[1] + 2, 7 * BS)
    assert k.cache._tick == values[3] + 2
    if k.fs._native_read is not None:  # rewritten in place once no one held it
        del kept, shown
        k.fs.pread(r, 7 * BS, BS)
        ids = (id(stats.plain_reads), id(cstats.hits), id(k.cache._tick))
        k.fs.pread(r, 7 * BS, BS)  # (_plain holds the count it compares)
        assert (id(stats.plain_reads), id(cstats.hits), id(k.cache._tick)) == ids
        assert (stats.plain_reads, cstats.hits) == (values[0] + 4, values[1] + 4)
        assert k.cache._tick == values[3] + 4 and k.cache._tick != values[3]


def test_counts_past_one_digit_and_held_counts_of_two_digits_count_right(boot: Boot) -> None:
    # CPython 3.11 keeps an int in 30-bit digits: the native read rewrites a count of one
    # or two digits in place and gives a count that grows a digit a new int. Counts set
    # just short of 2**30, then past it: every read adds one, whoever holds the old int.
    k = boot(frames=64)
    r, _ = _opened(k, 8)
    for b in range(8):
        _warm(k, r, b)
    stats, cstats = k.fs.stats, k.cache.stats
    for start in ((1 << 30) - 2, (1 << 31) - 2, (1 << 60) - 2):
        cstats.hits = int(str(start))  # an int only the slot holds
        k.cache._tick = int(str(start))
        held = []
        for i in range(4):
            _plain(k, r, i)
            held.append(cstats.hits)
            assert cstats.hits == start + i + 1 and k.cache._tick == start + i + 1
        assert held == [start + 1, start + 2, start + 3, start + 4]
    assert stats.plain_reads > 12


def test_a_history_entry_a_caller_still_holds_keeps_its_value_when_the_next_read_pushes(
        boot: Boot) -> None:
    # Once the history is full the native read rewrites the oldest entry's int to hold
    # the new block and moves it to the front, when nothing but the list holds it: an
    # entry read out before (kept, or a copy of the history) must keep its value, and the
    # history must be the last READAHEAD_HISTORY blocks, most recent first, either way.
    k = boot(frames=512)
    r, _ = _opened(k, 300)
    order = [260 + (i * 7) % 37 for i in range(40)]  # past the shared small ints, jumping
    for b in (297, 298, 299, *order):
        _warm(k, r, b)
    hist = r._history
    assert len(hist) == params.READAHEAD_HISTORY
    kept, copy = hist[-1], r.history
    value = int(str(kept))
    for b in (299, 298):
        _plain(k, r, b)
    assert int(str(kept)) == value and copy[-1] == value
    expected = [298, 299, *(b for b in reversed(order))][:params.READAHEAD_HISTORY]
    assert r.history == expected
    if k.fs._native_read is not None:  # rewritten in place once no one held it
        del kept, copy
        oldest = id(hist[-1])
        _plain(k, r, 297)
        assert id(hist[0]) == oldest and hist[0] == 297
        assert r.history == [297, *expected][:params.READAHEAD_HISTORY]


def test_a_block_the_map_forgot_is_walked_to_never_guessed(boot: Boot) -> None:
    # The remembered map (a list by file block) with entries forgotten (None) and cut
    # short: the read must not take a neighbour's entry or stop at the list's end -- it
    # walks the indirect blocks (the Python path), remembers again, and the next read
    # of the same block is served plainly again.
    k = boot(frames=512)
    r, _ = _opened(k, 300)
    for b in (280, 281, 290):
        _warm(k, r, b)
    bmap = r.inode.bmap
    assert len(bmap) > 290 and bmap[280] is not None
    bmap[280] = None
    del bmap[285:]
    before = plainread.served()
    assert k.fs.pread(r, 280 * BS, BS) == pattern(300)[280 * BS:281 * BS]
    assert plainread.served() == before  # not known: not served natively
    assert bmap[280] is not None and len(bmap) > 290  # the whole leaf remembered again
    for b in (280, 290, 281):
        assert _plain(k, r, b) == pattern(300)[b * BS:(b + 1) * BS]
    k.check_invariants()


class _LateLock:
    """The cache's lock, taken late by one thread when it does not hold the file
    system's lock (on the plain path): ``delay_s`` passes before that thread asks for
    it, as if it were preempted just then -- the widest window a reader that looked at
    the file before taking the lock could ever get."""

    def __init__(self, lock: threading.RLock, fs_lock: SharedLock, delay_s: float) -> None:
        self.lock = lock
        self.fs_lock = fs_lock
        self.delay_s = delay_s
        self.late: int | None = None  # the thread that is slow to take it

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        me = threading.get_ident()
        if me == self.late and self.fs_lock._owner != me:
            time.sleep(self.delay_s)
        return self.lock.acquire(blocking, timeout)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@pytest.mark.parametrize("delay_s", [0.002, 0.0])
def test_a_thread_cutting_and_rewriting_files_never_shows_a_late_reader_a_foreign_block(
        boot: Boot, delay_s: float) -> None:
    # delay_s 0: the cache's own lock, which the native read tries without a Python call.
    k = boot(frames=64)
    r, w = _opened(k)
    late = _LateLock(k.cache._lock, k.fs._lock, delay_s=delay_s)
    if delay_s:
        k.cache._lock = late  # type: ignore[assignment]
    k.fs.create(r.user, "g", 0o600)
    gw = k.fs.open(r.user, "g", "rw")  # another file, which takes the blocks freed
    k.fs.pwrite(gw, 0, pattern(6, "foreign"))
    k.fs.quota.user_blocks, k.fs.quota.reserve_blocks = 1 << 30, 0  # no disk quota here:
    make_file(k, r.user, "fill", bytes((k.fs.free_blocks - 4) * BS))  # a full disk
    original = pattern(FAR + 1)[FAR * BS:]
    versions = {bytes([v]) * BS for v in range(256)} | {b"", original}
    bad: list[bytes] = []
    taken = 0  # times the other file took the block just freed by this one
    done = threading.Event()

    def rewrite() -> None:
        nonlocal taken
        try:
            for v in range(60):
                old = r.inode.bmap[FAR]
                k.fs.truncate(w, FAR * BS)  # frees the block ...
                k.fs.truncate(gw, 0)
                k.fs.sync()  # ... reusable from now on ...
                k.fs._alloc_hint = 0  # ... and the next allocation looks there first:
                k.fs.pwrite(gw, 0, pattern(4 + v % 3, "foreign"))  # another file's now
                taken += old in gw.inode.direct
                k.fs.pwrite(w, FAR * BS, bytes([v % 256]) * BS)
                time.sleep(0.003)  # the file whole for a while: plain reads of it
        finally:
            done.set()

    late.late = threading.get_ident()
    writer = threading.Thread(target=rewrite)
    writer.start()
    reads = 0
    try:
        while not done.is_set():
            data = k.fs.pread(r, FAR * BS, BS)
            reads += 1
            if data not in versions:
                bad.append(data)
    finally:
        writer.join()
        late.late = None
    assert not bad, f"{len(bad)} of {reads} reads returned a block no version of the file held"
    assert taken > 10 and k.fs.stats.plain_reads > 10
    k.fs.close(gw)
    k.check_invariants()


def _counting(calls: list[object]) -> Callable[..., None]:
    def spy(*args: object) -> None:
        calls.append(args)
    return spy


@pytest.mark.parametrize("point", ["fs.access", "fs.filter", "fs.readahead"])
@pytest.mark.parametrize("where", ["own target", "GLOBAL"])
def test_a_graft_installed_after_the_plain_path_warmed_up_sees_every_read(
        boot: Boot, point: str, where: str) -> None:
    k = boot()
    r, _w = _opened(k)
    _warm(k, r, FAR)
    _plain(k, r, FAR)
    target: object = {"fs.readahead": r, "fs.filter": r.inode, "fs.access": r.inode}[point]
    user = r.user
    if where == "GLOBAL":
        target, user = GLOBAL, k.root
    g = k.graft(user, point, benign(point), target=target)
    before = k.fs.stats.plain_reads
    for _ in range(3):
        assert k.fs.pread(r, FAR * BS, BS) == pattern(FAR + 1)[FAR * BS:]
    assert k.fs.stats.plain_reads == before
    assert g.stats.commits == 3
    g.remove()
    if point == "fs.filter":
        k.unseal(r.user, r.inode)  # the filter answered: the file was sealed (next test)
    k.fs.pread(r, FAR * BS, BS)  # asked again once, then plain again
    _plain(k, r, FAR)


def test_a_graft_on_another_file_leaves_this_files_reads_plain(boot: Boot) -> None:
    k = boot()
    r, _w = _opened(k)
    other = k.fs.open(r.user, "f", "r")
    g = k.graft(r.user, "fs.readahead", benign("fs.readahead"), target=other)
    _warm(k, r, FAR)
    _plain(k, r, FAR)
    k.fs.pread(other, FAR * BS, BS)
    assert g.stats.commits == 1


@pytest.mark.parametrize("slot", ["on_access", "filter_policy", "readahead_policy"])
def test_a_policy_assigned_to_a_slot_after_warm_up_is_called_on_the_next_read(
        boot: Boot, slot: str) -> None:
    k = boot()
    r, _w = _opened(k)
    _warm(k, r, FAR)
    _plain(k, r, FAR)
    calls: list[object] = []
    spy = _counting(calls)
    if slot == "readahead_policy":
        def ahead(of: OpenFile, block: int) -> list[int]:
            calls.append((of, block))
            return []
        k.fs.readahead_policy = ahead
    elif slot == "filter_policy":
        def identity(inode: Inode, offset: int, data: bytearray, direction: int) -> None:
            spy(inode, offset, direction)
        k.fs.filter_policy = identity
    else:
        k.fs.on_access = spy
    k.fs.pread(r, FAR * BS, BS)
    k.fs.pread(r, FAR * BS, BS)
    assert len(calls) == 2


def test_a_sealed_file_is_refused_not_read_plainly_once_its_filter_is_gone(boot: Boot) -> None:
    k = boot()
    r, _w = _opened(k)
    g = k.graft(r.user, "fs.filter", benign("fs.filter"), target=r.inode)
    k.fs.pread(r, FAR * BS, BS)  # the filter answered: the file is sealed
    g.remove()
    for _ in range(2):
        with pytest.raises(FilterUnavailable):
            k.fs.pread(r, FAR * BS, BS)
    assert k.fs.stats.plain_reads == 0
    k.unseal(r.user, r.inode)
    k.fs.pread(r, FAR * BS, BS)
    assert _plain(k, r, FAR) == pattern(FAR + 1)[FAR * BS:]


def test_a_closed_open_file_is_refused_not_read_plainly(boot: Boot) -> None:
    k = boot()
    r, _w = _opened(k)
    _warm(k, r, FAR)
    k.fs.close(r)
    with pytest.raises(BadHandle):
        k.fs.pread(r, FAR * BS, BS)


def test_a_miss_read_plainly_is_loaded_for_its_opener_whoever_gives_up_the_frame(
        boot: Boot) -> None:
    # Every frame holds one of bob's pages: alice's miss takes one, chosen by bob's
    # eviction policy -- run on alice's behalf (she pays for it), as on the general path.
    k = boot(frames=16)
    r, _w = _opened(k)
    _warm(k, r, FAR)
    bob = k.add_user("bob")
    theirs = k.address_space(k.spawn(bob, "bob-app"))
    k.cache.min_resident = 16  # bob's faults take frames from everyone (rule 2)
    for vpn in range(16):
        theirs.touch(vpn, write=True)
    assert k.cache.free_frames == 0 and len(theirs._resident) == 16
    acting: list[object] = []
    builtin = k.cache.evict_policy

    def spy(aspace: object, candidates: list[PageInfo]) -> int:
        acting.append(thread_state().acting)
        return 0

    k.cache.evict_policy = spy
    try:
        misses = k.cache.stats.misses
        assert _plain(k, r, 3, hit=False) == pattern(4)[3 * BS:]
    finally:
        k.cache.evict_policy = builtin
    assert k.cache.stats.misses == misses + 1
    assert acting == [r.user.principal]
    k.check_invariants()


def test_a_stale_epoch_is_never_served_by_the_native_read(boot: Boot) -> None:
    k = boot()
    r, _w = _opened(k)
    _warm(k, r, FAR)
    _plain(k, r, FAR)
    k.fs.policies_changed()  # whatever changed, every open file is asked again
    plain, served = k.fs.stats.plain_reads, plainread.served()
    assert k.fs.pread(r, FAR * BS, BS) == pattern(FAR + 1)[FAR * BS:]
    assert (k.fs.stats.plain_reads, plainread.served()) == (plain, served)
    assert _plain(k, r, FAR) == pattern(FAR + 1)[FAR * BS:]


def test_a_reader_meeting_the_cache_lock_held_waits_and_reads_what_the_holder_wrote(
        boot: Boot) -> None:
    # The native read never waits: a held lock sends it to the Python path, which waits
    # for the holder (here writing the block) and then reads its bytes.
    k = boot()
    r, w = _opened(k)
    _warm(k, r, FAR)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(k.fs.pread(r, FAR * BS, BS)))
    with k.cache._lock:
        served = plainread.served()
        reader.start()
        reader.join(0.05)
        assert reader.is_alive(), "the read did not wait for the cache's lock"
        k.fs.pwrite(w, FAR * BS, pattern(1, "held"))
    reader.join()
    assert got == [pattern(1, "held")]
    assert plainread.served() == served
    assert _plain(k, r, FAR) == pattern(1, "held")
    k.check_invariants()


def test_reading_cached_blocks_again_and_again_leaks_nothing(boot: Boot) -> None:
    # Sequential steps (the read-ahead's test), re-reads and jumps: a reference kept by
    # mistake (an int per read) would grow the heap by ~32 bytes a read.
    k = boot()
    r, _w = _opened(k)
    order = [3, 4, 5, 6, 6, FAR, FAR + 1, 2]
    for b in order * 3:
        k.fs.pread(r, b * BS, BS)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            for b in order:
                k.fs.pread(r, b * BS, BS)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 16_000, f"{grown} bytes kept by 4,000 reads"


def test_a_read_at_the_largest_offsets_answers_past_the_end_without_overflow(boot: Boot) -> None:
    """An offset a block short of 2**63 (a caller's): the native read's bound check
    added the block size to it, past a long long (undefined; the checked build stops
    there), before it answered as the general path does."""
    k = boot()
    r, _w = _opened(k)
    _warm(k, r, 3)
    for offset in (2**63 - BS, 2**63 - 2 * BS, 2**62):
        assert k.fs.pread(r, offset, BS) == b""
    assert _plain(k, r, 3) == pattern(BLOCKS)[3 * BS:4 * BS]
    k.check_invariants()
