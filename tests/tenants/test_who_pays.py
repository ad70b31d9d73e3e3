"""Who pays when one principal's operation runs another principal's graft.

At every place where that happens -- a page fault that evicts from another address
space, the host's own loads, a read or write of another's filtered file, her access
handlers, a graft calling or messaging another's graft -- the attacker drives the
operation in a loop and the test checks the victim's quota and graft afterwards; and
the other way round, a hostile graft run in an innocent principal's operations spends
at most that principal's hosting allowance (``graft/hosting.py``), then is skipped.
Where the graft's own principal pays (its read-ahead, its group's picks), the test
checks that nobody else's activity makes it pay more. Clocks are injected: nothing
here depends on how fast the machine is.
"""

from __future__ import annotations

import pytest

from kernel.kernel_world import BS, Boot, make_file, pattern, wat
from vino.errors import GraftAborted
from vino.graft import I32, FunctionPoint, GraftCallable, Principal, Quota, Registry
from vino.graft.accounting import HOST, acting_for
from vino.graft.point import U32, EventPoint
from vino.graft.txn import Transaction
from vino.kernel.cache import AddressSpace
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.kernel.sched import Cpu, Wait

from .clock import FakeClock

# An eviction policy that burns about half a millisecond, then answers "the first one".
SPIN = """(local $i i32)
    (block (loop
      (br_if 1 (i32.ge_u (local.get $i) (i32.const 400000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br 0)))"""
SPIN_EVICT = wat("vm.evict", SPIN + " (i32.const 0)")
SPIN_ACCESS = wat("fs.access", SPIN + " (i32.const 0)")
SPIN_FILTER = wat("fs.filter", SPIN + " (local.get $len)")
SPIN_READAHEAD = wat("fs.readahead", SPIN + " (i32.const 0)")
SPIN_PICK = wat("sched.pick", SPIN + " (i32.const 0)")




def _resident_pages(k: Kernel, user: User, n: int) -> AddressSpace:
    aspace = k.address_space(k.spawn(user, user.name))
    for vpn in range(n):
        aspace.write(vpn, f"{user.name} {vpn}".encode())
    return aspace


def test_a_process_faulting_in_a_loop_cannot_drain_anothers_quota_and_get_her_evict_graft_removed(
        clocked: tuple[Kernel, FakeClock]) -> None:
    k, _ = clocked
    k.cache.min_resident = 1 << 20  # every fault goes to the global clock (its rule 2)
    # alice's whole lifetime CPU quota is 5 ms; her policy costs about 0.5 ms a call.
    alice = k.add_user("alice", Quota(cpu_total_s=0.005))
    bob = k.add_user("bob")
    mine = _resident_pages(k, alice, 40)
    g = k.graft(alice, "vm.evict", SPIN_EVICT, target=mine)
    own = alice.principal.usage.cpu_ns  # her install's compile
    # The host's own loads (no principal's operation) make her lose pages: the host pays.
    for blk in range(200, 400):
        if mine.evictions >= 5:
            break
        k.cache.fetch(k.device, blk)
    by_host = k.registry.hosting.allowance(HOST, alice.principal)
    assert g.stats.commits >= 5 and by_host.level_ns == by_host.burst_ns - g.stats.hosted_ns
    # bob faults page after page of his own; the global clock makes alice lose hers, and
    # her policy picks which: run in bob's faults, out of his allowance.
    theirs = k.address_space(k.spawn(bob, "bob"))
    for vpn in range(120):
        theirs.write(vpn, b"bob")
    by_bob = k.registry.hosting.allowance(bob.principal, alice.principal)
    assert mine.evictions >= 20 and g.stats.commits >= 20  # her policy ran, many times
    assert g.state == "live" and not g.aborts and g.failures == 0  # never blamed
    assert alice.principal.usage.cpu_ns == own  # their faults cost her quota nothing
    assert bob.principal.usage.cpu_ns == 0  # nor his: his lifetime quota is his grafts'
    assert g.stats.hosted_ns == (by_host.burst_ns - by_host.level_ns
                                 + by_bob.burst_ns - by_bob.level_ns) > 0  # counted, visible
    g.remove()
    for vpn in range(40):  # her pages, evicted by her policy, come back intact
        assert mine.read(vpn).rstrip(b"\0") == f"alice {vpn}".encode()
    k.check_invariants()


def test_a_hostile_evict_graft_cannot_spend_more_of_the_faulters_time_than_his_allowance(
        clocked: tuple[Kernel, FakeClock]) -> None:
    k, clock = clocked
    k.cache.min_resident = 1 << 20
    alice = k.add_user("alice")
    # bob lets others' grafts take at most 2 ms of his operations, then 1 ms per second.
    bob = k.add_user("bob", Quota(hosted_cpu_burst_s=0.002, hosted_cpu_per_s=0.001))
    hers = _resident_pages(k, alice, 48)
    g = k.graft(alice, "vm.evict", SPIN_EVICT, target=hers)
    proc = k.spawn(bob, "bob")
    theirs = k.address_space(proc)
    own = k.graft(bob, "vm.evict", wat("vm.evict", "i32.const 0"), target=theirs)
    bobs = bob.principal.usage.cpu_ns  # his install's compile
    allowance = k.registry.hosting.allowance(bob.principal, alice.principal)
    vpn = 0

    def fault_until(done: object) -> None:
        nonlocal vpn
        for _ in range(60):
            if callable(done) and done():
                return
            theirs.write(vpn, b"bob")
            vpn += 1
        raise AssertionError("bob's faults did not get there")

    fault_until(lambda: g.stats.unpaid > 0)  # his allowance for alice is spent
    calls = g.stats.commits
    assert calls >= 1 and allowance.level_ns <= 0
    # Everything her graft took in bob's faults came out of his allowance (the clock is
    # still): at most its burst, plus the one call that overdrew it.
    assert g.stats.hosted_ns == allowance.burst_ns - allowance.level_ns
    unpaid = g.stats.unpaid
    fault_until(lambda: g.stats.unpaid >= unpaid + 5)
    assert g.stats.commits == calls  # no more of his time: her pages go by the default
    assert g.state == "live" and not g.aborts  # and she is not blamed for it
    # bob's lifetime quota paid for his own graft only, never for hers.
    assert bob.principal.usage.cpu_ns - bobs == own.stats.graft_ns
    assert own.state == "live"
    # Time refills the allowance at his rate; her graft is called again.
    clock.now += 100.0
    fault_until(lambda: g.stats.commits > calls)
    k.check_invariants()


def test_a_reader_whose_allowance_is_spent_gets_a_clear_refusal_and_the_owner_keeps_her_filter(
        clocked: tuple[Kernel, FakeClock]) -> None:
    k, clock = clocked
    alice = k.add_user("alice", Quota(cpu_total_s=0.005))
    bob = k.add_user("bob", Quota(hosted_cpu_burst_s=0.002, hosted_cpu_per_s=0.001))
    make_file(k, alice, "shared", b"", mode=0o666)
    bproc = k.spawn(bob, "bob")
    with k.fs.open(bproc, "shared", "rw") as f:
        flt = k.graft(alice, "fs.filter", SPIN_FILTER, target=f.inode)
        acc = k.graft(alice, "fs.access", SPIN_ACCESS, target=f.inode)
        own = alice.principal.usage.cpu_ns
        with pytest.raises(FilterUnavailable, match="hosting allowance"):
            for _ in range(50):
                k.fs.seek(f, 0)
                k.fs.write(f, b"B" * BS)
        assert flt.stats.unpaid == 1 and flt.state == "live" and not flt.aborts
        assert acc.state == "live" and not acc.aborts
        allowance = k.registry.hosting.allowance(bob.principal, alice.principal)
        spent = flt.stats.hosted_ns + acc.stats.hosted_ns
        assert spent == allowance.burst_ns - allowance.level_ns
        assert alice.principal.usage.cpu_ns == own and bob.principal.usage.cpu_ns == 0
        calls = flt.stats.commits
        clock.now += 100.0  # refilled: his write goes through her filter again
        k.fs.seek(f, 0)
        k.fs.write(f, b"C" * BS)
        assert flt.stats.commits == calls + 1
        assert flt.state == "live" and acc.state == "live"
        assert alice.principal.usage.cpu_ns == own


def test_the_opener_pays_for_its_own_readahead_and_nobody_elses_reads_add_to_it(
        boot: Boot) -> None:
    k = boot()
    alice = k.add_user("alice")
    bob = k.add_user("bob")
    aproc = make_file(k, alice, "a", pattern(8, "alice"))
    bproc = make_file(k, bob, "b", pattern(8, "bob"))
    with k.fs.open(aproc, "a", "r") as fa, k.fs.open(bproc, "b", "r") as fb:
        g = k.graft(alice, "fs.readahead", SPIN_READAHEAD, target=fa)
        for _ in range(5):  # bob's reads of his own file do not run her graft
            k.fs.seek(fb, 0)
            assert k.fs.read(fb, 8 * BS) == pattern(8, "bob")
        assert g.stats.invocations == 0
        compiled = alice.principal.usage.cpu_ns  # her install's compile
        assert k.fs.read(fa, 2 * BS) == pattern(2, "alice")
        assert g.stats.commits == 2 and g.stats.hosted_ns == 0
        assert alice.principal.usage.cpu_ns - compiled == g.stats.graft_ns > 0  # her quota
        assert bob.principal.usage.cpu_ns == 0


def test_a_group_pays_for_its_own_picks_and_another_groups_threads_cannot_add_to_them(
        boot: Boot) -> None:
    def picks(busy_bob: bool) -> int:
        k = boot(f"sched-{busy_bob}")
        alice, bob = k.add_user("alice"), k.add_user("bob")
        ga, gb = k.new_group(alice, "a"), k.new_group(bob, "b")
        pa, pb = k.spawn(alice, "a", ga), k.spawn(bob, "b", gb)
        for _ in range(2):
            k.sched.spawn(pa, [Cpu(1_000_000), Wait(500_000)] * 20)
        if busy_bob:  # bob: many threads, each waking often
            for _ in range(30):
                k.sched.spawn(pb, [Cpu(10_000), Wait(10_000)] * 200)
        g = k.graft(alice, "sched.pick", SPIN_PICK, target=ga)
        compiled = alice.principal.usage.cpu_ns
        k.sched.run(until_ns=k.clock.now_ns() + 50_000_000)
        assert g.state == "live" and g.stats.hosted_ns == 0
        assert alice.principal.usage.cpu_ns - compiled == g.stats.graft_ns  # her quota
        assert bob.principal.usage.cpu_ns == 0
        return g.stats.commits

    quiet = picks(False)
    busy = picks(True)
    assert 0 < busy <= quiet  # bob's threads only take turns from hers


def _nested_registry(clock: FakeClock,
                     ) -> tuple[Registry, FunctionPoint[object, int, int], EventPoint[object, int]]:
    reg = Registry(clock=clock)

    def encode(buf: memoryview, x: int) -> tuple[int, ...]:
        U32.pack_into(buf, 0, x)
        return ()

    def call_inner(txn: Transaction, x: int) -> int:
        return inner(x, x)

    def tell(txn: Transaction, x: int) -> int:
        g = inner.graft_for(x)
        try:
            return g.send(b"hi") if g is not None else -1
        except GraftAborted:
            return -2

    callables = (GraftCallable("call_inner", (I32,), (I32,), call_inner),
                 GraftCallable("tell", (I32,), (I32,), tell))
    inner: FunctionPoint[object, int, int] = FunctionPoint(
        name="app.inner", entry="pick", buffer_size=16, encode=encode,
        may_install=lambda p, t: True, decode=lambda buf, ret, x: ret, default=lambda x: 7,
        target_type=object)
    outer: EventPoint[object, int] = EventPoint(
        name="app.outer", entry="on_event", buffer_size=16, encode=encode, callables=callables,
        may_install=lambda p, t: True, target_type=object)
    reg.declare(inner)
    reg.declare(outer)
    return reg, inner, outer


INNER_SPIN = f"""(module (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_message") (param i32) (result i32) {SPIN} (i32.const 1))
  (func (export "pick") (result i32) {SPIN} (i32.const 3)))"""
OUTER_CALLS = """(module
  (import "vino" "call_inner" (func $call (param i32) (result i32)))
  (import "vino" "tell" (func $tell (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "on_event") (result i32)
    (drop (call $call (i32.const 1)))
    (drop (call $tell (i32.const 1)))
    (i32.const 0)))"""


def test_a_graft_calling_and_messaging_anothers_graft_in_a_loop_cannot_drain_her_quota() -> None:
    clock = FakeClock()
    reg, inner, outer = _nested_registry(clock)
    alice = Principal("alice")
    mallory = Principal("mallory", Quota(hosted_cpu_burst_s=0.003, hosted_cpu_per_s=0.001))
    try:
        g = reg.install(inner, INNER_SPIN, alice, target=1)
        m = reg.install(outer, OUTER_CALLS, mallory, target=1)
        hers, mine = alice.usage.cpu_ns, mallory.usage.cpu_ns  # the installs' compiles
        for _ in range(30):
            outer(1, 0)
        # Her graft ran in mallory's calls until mallory's allowance for alice was spent,
        # then was skipped (the default answered, the message was refused): unblamed.
        assert g.stats.commits >= 1 and g.stats.unpaid >= 10
        assert g.state == "live" and g.failures == 0
        assert alice.usage.cpu_ns == hers
        assert mallory.usage.cpu_ns - mine == m.stats.graft_ns  # her own graft's time only
        allowance = reg.hosting.allowance(mallory, alice)
        assert g.stats.hosted_ns == allowance.burst_ns - allowance.level_ns
        # The host calling her graft itself, for nobody in particular: her own quota pays.
        assert inner(1, 1) == 3
        assert alice.usage.cpu_ns > hers
        # ... and on behalf of a principal, that principal's allowance.
        with acting_for(mallory):
            assert inner(1, 1) == 7  # still spent: the default
    finally:
        reg.close()


def test_a_readers_loop_makes_the_owners_access_handler_miss_events_not_drain_her_quota(
        clocked: tuple[Kernel, FakeClock]) -> None:
    k, clock = clocked
    alice = k.add_user("alice", Quota(cpu_total_s=0.005))
    bob = k.add_user("bob", Quota(hosted_cpu_burst_s=0.002, hosted_cpu_per_s=0.001))
    make_file(k, alice, "shared", pattern(1, "alice"), mode=0o644)
    bproc = k.spawn(bob, "bob")
    with k.fs.open(bproc, "shared", "r") as f:
        acc = k.graft(alice, "fs.access", SPIN_ACCESS, target=f.inode)
        own = alice.principal.usage.cpu_ns
        for _ in range(40):  # every one of bob's reads completes, with the right bytes
            k.fs.seek(f, 0)
            assert k.fs.read(f, BS) == pattern(1, "alice")
    # Her handler heard his reads until his allowance for her was spent, then missed
    # them (counted); it is not blamed, and her quota paid nothing.
    assert acc.stats.commits >= 1 and acc.stats.unpaid >= 20
    assert acc.stats.commits + acc.stats.unpaid >= 40
    assert acc.state == "live" and not acc.aborts
    assert alice.principal.usage.cpu_ns == own and bob.principal.usage.cpu_ns == 0
    clock.now += 1e6  # refilled: it hears the next one
    calls = acc.stats.commits
    with k.fs.open(bproc, "shared", "r") as f:
        k.fs.read(f, BS)
    assert acc.stats.commits == calls + 1
