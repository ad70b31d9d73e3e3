"""Attacks that read another principal's content out of the host's error messages.

The rule (SAFETY.md, information flow): every abort detail and every refusal a
principal reads is a function of its own grafts and targets and of the calls made
for it. Found: three messages quoted another principal's graft by name -- the
name is that principal's own content, chosen by it, and may say what the graft is
for -- and one its owner too:

- an install on a target another principal had grafted (a point whose rule lets
  anyone graft it) was refused with ``'t1' already has graft 'alice-secret-plan'``,
  and with ``replace=True``, ``may not replace graft 'alice-secret-plan' of alice``;
- a chain of nested graft calls refused at ``MAX_GRAFT_NESTING`` (or for stack)
  told the enclosing graft's principal the name of the graft it called, and the
  refused graft's principal the name of the enclosing graft;
- a read or write of a sealed file whose filter graft was busy or failed told the
  reader -- any user allowed to open the file -- the owner's filter graft's name.

- a refused install named its target by its ``repr``: bob, refused alice's file, read
  its size, block numbers, open count and seal; refused her address space, its resident
  pages and faults; refused her process group, her quota and usage (lifetime CPU
  included) -- and could ask again and again to watch them change. A target is now
  named only by a name or number the application chose, else by its kind.
- a write refused by the disk quota of the file's owner told the writer her usage:
  bob, writing alice's world-writable file, read ``uid 1000's disk quota: 37 of 64 blocks
  held`` -- how much she stores, in every file, readable or not. Only the owner (or
  root) is now told the counts.

Each attack plants a distinctive name and looks for it in everything the other
principal can read: the exception, and its own grafts' abort records.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import pytest

from kernel.kernel_world import BS, Boot, make_file
from tenants.test_tenant_attacks import XOR_FILTER
from vino.errors import AbortReason, GraftRejected
from vino.graft import Graft, Quota
from vino.kernel.errors import DiskQuotaExceeded, FilterUnavailable

from .harness import KernelArena, Tenancy, pick, pick_returning
from .test_attack_targets import benign

SECRET = "alice-secret-plan"


@pytest.mark.parametrize("replace", [False, True])
def test_principal_installing_over_anothers_graft_does_not_learn_its_name_or_owner(
        tenancy: Tenancy, replace: bool) -> None:
    g = tenancy.install(pick_returning(3), tenancy.alice, "t1", name=SECRET)
    before = tenancy.snapshot()
    with pytest.raises(GraftRejected) as info:
        tenancy.install(pick_returning(4), tenancy.bob, "t1", name="bob", replace=replace)
    said = str(info.value)
    assert "another principal" in said
    assert SECRET not in said and "alice" not in said, said
    tenancy.assert_unchanged(before)
    assert g.state == "live" and tenancy.pick("t1", 0) == 3


def test_principal_installing_over_its_own_graft_is_still_told_its_name(
        tenancy: Tenancy) -> None:
    tenancy.install(pick_returning(3), tenancy.alice, "t1", name=SECRET)
    with pytest.raises(GraftRejected, match=f"already has graft '{SECRET}' "
                                            r"\(use replace=True"):
        tenancy.install(pick_returning(4), tenancy.alice, "t1", name="again")


def _chain(t: Tenancy, owner_of_last: str) -> tuple[list[Graft], Graft]:
    """Alice's grafts on t2..t9 each call the next target; t10 is owner_of_last's."""
    chain = [t.install(pick(f"(drop (call $pick_for (i32.const {i + 1}) (i32.const 0))) "
                            "i32.const 1", ["pick_for"]), t.alice, f"t{i}",
                       name=f"{SECRET}-{i}") for i in range(2, 10)]
    last_owner = t.alice if owner_of_last == "alice" else t.bob
    last = t.install(pick_returning(5), last_owner, "t10", name=f"{owner_of_last}-last-graft")
    return chain, last


def test_grafts_nested_past_the_limit_do_not_learn_each_others_names_across_principals(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_call_s": 1.0}, bob_quota={"cpu_call_s": 1.0})
    chain, bobs = _chain(t, "bob")
    t.pick("t2", 0)
    innermost = chain[-1]  # alice's graft that called bob's, nine deep: doomed
    assert [a.reason for a in innermost.aborts] == [AbortReason.RESOURCE]
    alice_reads = " ".join(a.detail for g in chain for a in g.aborts)
    bob_reads = " ".join(a.detail for a in bobs.aborts)
    assert "a graft of another principal" in alice_reads, alice_reads
    assert "another principal's" in bob_reads, bob_reads
    assert "bob-last-graft" not in alice_reads, alice_reads
    assert SECRET not in bob_reads, bob_reads


def test_grafts_of_one_principal_nested_past_the_limit_are_still_named(
        new_tenancy: Callable[..., Tenancy]) -> None:
    t = new_tenancy(alice_quota={"cpu_call_s": 1.0})
    chain, last = _chain(t, "alice")
    t.pick("t2", 0)
    assert "its call of graft 'alice-last-graft'" in chain[-1].aborts[0].detail
    assert f"the enclosing graft '{SECRET}-9'" in last.aborts[0].detail


def test_reader_of_a_file_whose_filter_is_busy_does_not_learn_the_filters_name(
        boot: Boot) -> None:
    k = boot()
    alice = k.add_user("alice", Quota(cpu_call_s=0.02))
    bob = k.add_user("bob")
    make_file(k, alice, "shared", b"", mode=0o666)
    with k.fs.open(k.spawn(bob, "bob"), "shared", "rw") as f:
        g = k.graft(alice, "fs.filter", XOR_FILTER, target=f.inode, name=SECRET)
        # Fault injection: the filter is busy on another thread (its store held) for
        # longer than a writer's bounded wait.
        held, release = threading.Event(), threading.Event()

        def busy() -> None:
            with g._mutex:
                held.set()
                release.wait(5.0)

        th = threading.Thread(target=busy)
        th.start()
        held.wait(5.0)
        try:
            with pytest.raises(FilterUnavailable, match="its filter graft is busy") as info:
                k.fs.write(f, b"B" * BS)
        finally:
            release.set()
            th.join()
        assert SECRET not in str(info.value), str(info.value)
        assert g.state == "live" and k.fs.stat("shared").size == 0


def test_principal_refused_anothers_targets_learns_nothing_of_them_from_the_refusal(
        kernel: KernelArena) -> None:
    k, alice, bob = kernel.k, kernel.tenants["alice"], kernel.tenants["bob"]
    of = k.fs.open(alice.proc, alice.file, "r")
    inode = kernel.inode(alice.file)
    theirs = {"fs.readahead": of, "vm.evict": alice.aspace, "sched.pick": alice.group,
              "fs.filter": inode, "fs.access": inode}
    # What alice's objects would tell: her file's size and first block, her pages' faults,
    # her lifetime CPU.
    tells = [str(inode.size), str(inode.direct[0]), f"faults={alice.aspace.faults}",
             "cpu_ns", "size=", "uid="]
    for point, target in theirs.items():
        for wrong_point in (point, "fs.filter" if point != "fs.filter" else "sched.pick"):
            with pytest.raises(GraftRejected) as info:
                k.graft(bob.user, wrong_point, benign(wrong_point), target=target)
            reason = info.value.reason
            assert not [t for t in tells if t in reason], (wrong_point, reason)
            assert f"this {type(target).__name__}" in reason, reason
    k.fs.close(of)


def test_writer_refused_by_anothers_disk_quota_does_not_learn_her_usage(boot: Boot) -> None:
    k = boot()
    alice, bob = k.add_user("alice"), k.add_user("bob")
    limit = k.fs.quota.user_blocks = 64
    make_file(k, alice, "private", b"p" * 35 * BS)  # 0o600: bob cannot even stat it
    make_file(k, alice, "shared", b"s" * BS, mode=0o666)  # ... and one block here
    held = k.fs.quota.usage(alice.uid)[0]  # 37: an indirect block besides the data
    assert 30 < held < limit
    before = k.fs.stat("shared").size
    with k.fs.open(k.spawn(bob, "bob"), "shared", "rw") as f, \
            pytest.raises(DiskQuotaExceeded) as info:
        k.fs.pwrite(f, before, b"B" * (limit - held + 1) * BS)
    said = str(info.value)
    assert info.value.uid == alice.uid  # whose quota refused it: the file's owner's
    assert not re.search(rf"\b{held}\b", said) and "held" not in said, said
    assert k.fs.quota.usage(alice.uid)[0] == held  # refused before anything changed
    # Alice herself, refused the same write, is told her counts.
    with k.fs.open(k.spawn(alice, "alice"), "shared", "rw") as f, \
            pytest.raises(DiskQuotaExceeded, match=f"{held} of {limit} blocks held"):
        k.fs.pwrite(f, before, b"A" * (limit - held + 1) * BS)
    k.check_invariants()
