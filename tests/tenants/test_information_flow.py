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

from kernel_world import Boot, wat

from vino.graft import Quota
from vino.kernel.kernel import Kernel
from vino.kernel.points import EVICT_HEADER, EVICT_ROW
from vino.kernel.proc import User
from vino.kernel.sched import cpu_hog

LOG = '(import "vino" "log" (func $log (param i32 i32)))'
CHUNK = 480  # bytes per log line (below LOG_LINE_MAX)

# vm.evict spy: logs its whole input (header and n rows), then answers 0.
EVICT_SPY = wat("vm.evict", f"""(local $len i32) (local $off i32)
    (local.set $len (i32.add (i32.const {EVICT_HEADER.size})
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
        rows = [EVICT_ROW.unpack_from(raw, off + EVICT_HEADER.size + i * EVICT_ROW.size)
                for i in range(n)]
        calls.append([(r[0], r[1], r[2], r[4]) for r in rows])  # r[3] is the pad
        off += EVICT_HEADER.size + n * EVICT_ROW.size
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
