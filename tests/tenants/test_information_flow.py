"""No information across principals: what a graft is given depends on its own target only.

The rule (docs/SAFETY.md, "Information flow"): every field of a graft's inputs, every
graft-callable result and every abort detail is a function of the graft's own target
and the calls made for it. Each test runs the same principal's workload twice, once
alone and once beside another principal's activity that does not touch the first
principal's objects, and compares what the first principal's graft saw, field by
field; or asks the same question about a thing that is not yours and a thing that
does not exist, and compares the answers.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from kernel.kernel_world import BS, Boot, cold, make_file, pattern, wat
from vino.graft import Graft, Quota, Registry
from vino.graft.sandbox import Pool, Sandbox
from vino.kernel import layouts
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.kernel.sched import MAX_PICK_CANDIDATES, QUANTUM_NS, cpu_hog, interactive_loop
from vino.limits import LOG_LINES_KEPT, WASM_PAGE

from .test_tenant_attacks import XOR_FILTER

LOG = '(import "vino" "log" (func $log (param i32 i32)))'
ACCESS_BUFFER = layouts.ACCESS.buffer_size
FILTER_BUFFER = layouts.FILTER.buffer_size
RA_BUFFER = layouts.READAHEAD.buffer_size
SCHED_BUFFER = layouts.PICK.buffer_size
SCHED_HEAD = layouts.PICK.field("thread").offset  # n and its pad
SCHED_ROW = layouts.THREAD
EVICT_HEAD = layouts.EVICT.field("cand").offset
EVICT_ROW = layouts.EVICT.elements("cand", 1)  # page_id, vpn, flags, last_use (pad skipped)
CHUNK = 480  # bytes per log line (below LOG_LINE_MAX)

# vm.evict spy: logs its whole input (header and n rows), then answers 0.
EVICT_SPY = wat("vm.evict", f"""(local $len i32) (local $off i32)
    (local.set $len (i32.add (i32.const {EVICT_HEAD})
                             (i32.mul (i32.load (i32.const 0)) (i32.const {EVICT_ROW.size}))))
    (block (loop
      (br_if 1 (i32.ge_u (local.get $off) (local.get $len)))
      (call $log (local.get $off)
        (select (i32.const {CHUNK}) (i32.sub (local.get $len) (local.get $off))
                (i32.gt_u (i32.sub (local.get $len) (local.get $off)) (i32.const {CHUNK}))))
      (local.set $off (i32.add (local.get $off) (i32.const {CHUNK})))
      (br 0)))
    (i32.const 0)""", imports=LOG)

FIELDS = ("page_id", "vpn", "flags", "last_use")


def _evict_inputs(boot: Boot, name: str,
                  bob_busy: bool) -> list[list[tuple[int, int, int, int]]]:
    """alice's address space outgrows the cache while bob (maybe) touches his own pages."""
    k = boot(name, frames=64)
    alice = k.add_user("alice", Quota(log_bytes=1 << 20))
    bob = k.add_user("bob")
    bob_as = k.address_space(k.spawn(bob, "bob"))
    for v in range(3):  # bob's pages: resident, and few (rule 1 never evicts them)
        bob_as.write(v, b"bob")
    alice_as = k.address_space(k.spawn(alice, "alice"))
    g = k.graft(alice, "vm.evict", EVICT_SPY, target=alice_as)
    for v in range(k.cache.nframes + 12):
        alice_as.touch(v, write=v % 3 == 0)
        if bob_busy:
            for b in range(3):  # hits on his own resident pages: nothing of alice's moves
                bob_as.touch(b)
    assert g.state == "live" and g.stats.commits > 0
    assert bob_as.resident() == [0, 1, 2]
    raw = b"".join(g.logs)
    calls: list[list[tuple[int, int, int, int]]] = []
    off = 0
    while off < len(raw):
        (n,) = struct.unpack_from("<I", raw, off)
        rows = [EVICT_ROW.unpack_from(raw, off + EVICT_HEAD + i * EVICT_ROW.size)
                for i in range(n)]
        calls.append([(r[0], r[1], r[2], r[3]) for r in rows])
        off += EVICT_HEAD + n * EVICT_ROW.size
    return calls


def test_evict_inputs_say_nothing_of_another_principals_cache_use(boot: Boot) -> None:
    alone = _evict_inputs(boot, "alone", bob_busy=False)
    beside = _evict_inputs(boot, "beside", bob_busy=True)
    assert len(alone) == len(beside) > 0
    for call, (a, b) in enumerate(zip(alone, beside, strict=True)):
        assert len(a) == len(b), f"call {call}: candidate count"
        for i, field in enumerate(FIELDS):
            assert [r[i] for r in a] == [r[i] for r in b], f"call {call}: field {field}"


SETPRIO = '(import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))'


def _abort_detail(k: Kernel, mallory: User, tid: int) -> str:
    group = k.new_group(mallory, "m")
    proc = k.spawn(mallory, "m", group)
    for _ in range(2):  # two runnable threads: the group's policy is consulted
        k.sched.spawn(proc, cpu_hog())
    g = k.graft(mallory, "sched.pick", wat("sched.pick", f"""
        (drop (call $setprio (i32.const {tid}) (i32.const 1))) (i32.const 0)""",
                                          imports=SETPRIO), target=group)
    k.sched.run(steps=4)
    assert g.removal is not None and g.removal.reason.value == "forbidden_call"
    return g.removal.detail


def test_abort_details_do_not_tell_not_yours_from_does_not_exist(boot: Boot) -> None:
    k = boot()
    bob = k.add_user("bob")
    mallory = k.add_user("mallory")
    theirs = k.sched.spawn(k.spawn(bob, "bob", k.new_group(bob, "b")), cpu_hog())
    missing = max(t.tid for t in k.sched.threads) + 1000
    not_yours = _abort_detail(k, mallory, theirs.tid).replace(str(theirs.tid), "N")
    absent = _abort_detail(k, mallory, missing).replace(str(missing), "N")
    assert not_yours == absent


# ---- every point, field by field: the whole buffer, alone and beside a busy neighbour ----
#
# A dump spy logs its point's whole buffer (every byte the host may have written, not
# just the fields of this call) at every call and answers what the default would. The
# hostile principal's workload runs twice, once beside an idle principal and once
# beside one busy with its own files, pages or threads; the dumps must be equal byte
# for byte, except the residual fields docs/SAFETY.md names, which are masked (and
# named here with the reason). Equal whole buffers mean: no field, and no byte left in
# the buffer by another call, depends on the neighbour.

def _inode_of(k: Kernel, user: User, name: str) -> Any:
    with k.fs.open(user, name, "r") as f:
        return f.inode


def dump_spy(point: str, size: int, answer: str) -> str:
    """A graft that logs bytes [0, size) of its buffer, then returns ``answer``."""
    return wat(point, f"""(local $off i32)
    (block (loop
      (br_if 1 (i32.ge_u (local.get $off) (i32.const {size})))
      (call $log (local.get $off)
        (select (i32.const {CHUNK}) (i32.sub (i32.const {size}) (local.get $off))
                (i32.gt_u (i32.sub (i32.const {size}) (local.get $off)) (i32.const {CHUNK}))))
      (local.set $off (i32.add (local.get $off) (i32.const {CHUNK})))
      (br 0)))
    {answer}""", imports=LOG)


def _dumps(g: Graft, size: int) -> list[bytes]:
    """The spy's calls, one whole buffer each (all were kept: no line dropped)."""
    assert g.state == "live" and g.logs_dropped == 0, (g.state, g.logs_dropped)
    raw = b"".join(g.logs)
    assert len(raw) % size == 0 and len(g.logs) < LOG_LINES_KEPT
    return [raw[i:i + size] for i in range(0, len(raw), size)]


def _mask(dump: bytes, spans: list[tuple[int, int]]) -> bytes:
    out = bytearray(dump)
    for off, n in spans:
        out[off:off + n] = bytes(n)
    return bytes(out)


def _assert_same(alone: list[bytes], beside: list[bytes], what: str) -> None:
    assert len(alone) == len(beside) > 0, f"{what}: number of calls"
    for call, (a, b) in enumerate(zip(alone, beside, strict=True)):
        assert a == b, f"{what}: call {call}, first differing byte " \
            f"{next(i for i in range(len(a)) if a[i] != b[i])}"


def _readahead_dumps(boot: Boot, name: str, bob_busy: bool) -> list[bytes]:
    k = boot(name)
    mallory = k.add_user("mallory", Quota(log_bytes=1 << 20))
    bob = k.add_user("bob")
    make_file(k, mallory, "m", pattern(24, "mallory"))
    bproc = make_file(k, bob, "b", pattern(24, "bob"))  # after hers: inode numbers equal
    with k.fs.open(k.spawn(mallory, "m"), "m", "r") as f, k.fs.open(bproc, "b", "rw") as bf:
        g = k.graft(mallory, "fs.readahead", dump_spy("fs.readahead", RA_BUFFER, "i32.const 0"),
                    target=f)
        for i, blk in enumerate((0, 1, 2, 7, 3, 3, 12, 13, 14, 5, 20, 0, 9)):
            k.fs.seek(f, blk * BS)
            k.fs.read(f, BS if i % 3 else 2 * BS)
            if bob_busy:  # his own file: reads, a sequential run, a write
                k.fs.seek(bf, (i % 20) * BS)
                k.fs.read(bf, 3 * BS)
                k.fs.write(bf, b"b" * 100)
        return _dumps(g, RA_BUFFER)


def test_readahead_inputs_say_nothing_of_another_principals_reads(boot: Boot) -> None:
    alone = _readahead_dumps(boot, "alone", bob_busy=False)
    beside = _readahead_dumps(boot, "beside", bob_busy=True)
    # file_blocks, block, max_out, n_hist, history, and the rest of the buffer: no residual.
    _assert_same(alone, beside, "fs.readahead")


def _pick_dumps(boot: Boot, name: str, bob_busy: bool, calls: int) -> list[bytes]:
    k = boot(name)
    mallory = k.add_user("mallory", Quota(log_bytes=1 << 20))
    bob = k.add_user("bob")
    mgroup = k.new_group(mallory, "m")
    mproc = k.spawn(mallory, "m", mgroup)
    for prio in (0, 3, -2):
        k.sched.spawn(mproc, cpu_hog(), priority=prio)
    # bob's threads are made after hers: thread ids are allocated system-wide in creation
    # order (a thread id says how many threads were made before it; see SAFETY.md).
    bgroup = k.new_group(bob, "b")
    bproc = k.spawn(bob, "b", bgroup)
    if bob_busy:
        for prio in (1, 2):
            k.sched.spawn(bproc, cpu_hog(), priority=prio)
        k.sched.spawn(bproc, interactive_loop(QUANTUM_NS // 3, 2 * QUANTUM_NS))
    g = k.graft(mallory, "sched.pick", dump_spy("sched.pick", SCHED_BUFFER, "i32.const 1"),
                target=mgroup)
    while len(g.logs) < calls * -(-SCHED_BUFFER // CHUNK):
        k.sched.run(steps=1)
    return _dumps(g, SCHED_BUFFER)[:calls]


def test_pick_inputs_say_nothing_of_another_principals_threads(boot: Boot) -> None:
    calls = 12
    # waited_ns (every row slot) is a residual channel: time runnable is longer when other
    # groups run, since the CPU is shared (docs/SAFETY.md, "Information flow").
    waited = [(SCHED_HEAD + r * SCHED_ROW.size + SCHED_ROW.field("waited_ns").offset, 8)
              for r in range(MAX_PICK_CANDIDATES)]
    alone = [_mask(d, waited) for d in _pick_dumps(boot, "alone", False, calls)]
    beside = [_mask(d, waited) for d in _pick_dumps(boot, "beside", True, calls)]
    _assert_same(alone, beside, "sched.pick")
    (n,) = struct.unpack_from("<I", alone[0])
    assert n == 3  # her three threads, none of bob's


def _filter_and_access_dumps(boot: Boot, name: str,
                             bob_busy: bool) -> tuple[list[bytes], list[bytes]]:
    k = boot(name)
    mallory = k.add_user("mallory", Quota(log_bytes=1 << 22))
    bob = k.add_user("bob")
    mproc = make_file(k, mallory, "m", b"")
    ino = _inode_of(k, mallory, "m")
    bproc = make_file(k, bob, "b", pattern(8, "bob"))
    bob_filter = k.graft(bob, "fs.filter", XOR_FILTER, target=_inode_of(k, bob, "b"))
    spy_f = k.graft(mallory, "fs.filter",
                    dump_spy("fs.filter", FILTER_BUFFER, "local.get $len"), target=ino)
    spy_a = k.graft(mallory, "fs.access",
                    dump_spy("fs.access", ACCESS_BUFFER, "i32.const 0"), target=ino)
    with k.fs.open(mproc, "m", "rw") as f, k.fs.open(bproc, "b", "rw") as bf:
        for i in range(5):
            k.fs.seek(f, i * BS // 2)
            k.fs.write(f, f"mallory {i} ".encode() * (BS // 16))
            if bob_busy:  # his own encrypted file: secrets through his filter
                k.fs.seek(bf, (i % 8) * BS)
                k.fs.write(bf, (f"bob's secret {i} ".encode() * BS)[:BS])
                k.fs.seek(bf, 0)
                k.fs.read(bf, 4 * BS)
        cold(k)
        k.fs.seek(f, 0)
        k.fs.read(f, 3 * BS)
    assert bob_filter.state == "live"
    return _dumps(spy_f, FILTER_BUFFER), _dumps(spy_a, ACCESS_BUFFER)


def test_filter_and_access_inputs_say_nothing_of_another_principals_files(boot: Boot) -> None:
    f_alone, a_alone = _filter_and_access_dumps(boot, "alone", bob_busy=False)
    f_beside, a_beside = _filter_and_access_dumps(boot, "beside", bob_busy=True)
    # fs.filter: file_offset, len, file_id and the whole data area: no residual.
    _assert_same(f_alone, f_beside, "fs.filter")
    # fs.access: time_ns is the device clock, which every user's I/O advances (a residual
    # timing channel, docs/SAFETY.md); file_id, block, op and the pad are compared.
    time_ns = [(16, 8)]
    _assert_same([_mask(d, time_ns) for d in a_alone], [_mask(d, time_ns) for d in a_beside],
                 "fs.access")
    assert {struct.unpack_from("<I", d, 8)[0] for d in a_alone} == {0, 1}  # reads and writes
    for d in f_beside + a_beside:
        assert b"bob" not in d


# A graft that counts the non-zero bytes of its whole memory past the fs.access buffer,
# logs the count, then leaves a mark of its own (so a second call proves the scan sees
# what an earlier call left behind).
MEMORY_SCAN = wat("fs.access", f"""(local $i i32) (local $n i32)
    (local.set $i (i32.const {ACCESS_BUFFER}))
    (block (loop
      (br_if 1 (i32.ge_u (local.get $i) (i32.const {WASM_PAGE})))
      (local.set $n (i32.add (local.get $n) (i32.ne (i32.load8_u (local.get $i)) (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br 0)))
    (i32.store (i32.const 0) (local.get $n))
    (call $log (i32.const 0) (i32.const 4))
    (i32.store8 (i32.const 40000) (i32.const 1))
    (i32.const 0)""", imports=LOG)


def test_graft_given_a_reused_pool_slot_finds_nothing_of_the_previous_tenants_calls(
        tmp_path: Path) -> None:
    registry = Registry(sandbox=Sandbox(pool=Pool(slots=1, share=1)))
    k = Kernel.boot(tmp_path / "pool.img", registry=registry)
    try:
        bob, mallory = k.add_user("bob"), k.add_user("mallory")
        bproc = make_file(k, bob, "b", b"")
        mproc = make_file(k, mallory, "m", b"m" * BS)
        # bob's filter: the only slot; his plaintext passes through its buffer.
        bf = k.graft(bob, "fs.filter", XOR_FILTER, target=_inode_of(k, bob, "b"))
        with k.fs.open(bproc, "b", "rw") as f:
            k.fs.write(f, (b"bob's secret " * BS)[:4 * BS])
        cold(k)
        with k.fs.open(bproc, "b", "r") as f:
            assert k.fs.read(f, BS) == (b"bob's secret " * BS)[:BS]
        assert bf.stats.commits > 0
        bf.remove()
        k.unseal(bob, _inode_of(k, bob, "b"))
        # mallory gets the same slot: her graft's memory holds nothing it did not write.
        spy = k.graft(mallory, "fs.access", MEMORY_SCAN, target=_inode_of(k, mallory, "m"))
        with k.fs.open(mproc, "m", "rw") as f:
            cold(k)
            k.fs.read(f, BS)
            k.fs.write(f, b"x")
        counts = [struct.unpack("<I", line)[0] for line in spy.logs]
        assert counts[:2] == [0, 1], counts  # nothing of bob's; her own mark, seen
    finally:
        k.shutdown()
        registry.close()
