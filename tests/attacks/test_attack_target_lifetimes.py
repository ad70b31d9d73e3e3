"""Attacks on a graft's lifetime: grafting a target that has ended, or is ending.

The kernel removes the grafts of a target when it ends (a file closed, an address space
released, an inode freed, a process group removed: ``Registry.remove_target``). Found
open: an install on a target that had already ended was accepted -- a read-ahead graft
on a closed file lived on, never called, holding its memory and a slot of the sandbox
until the kernel shut down; a removed process group took grafts again -- and an install
racing the end could switch in after ``remove_target`` had looked. And
``remove_target`` walked the event points' tables while another principal's install
changed them: ``RuntimeError: dictionary changed size during iteration`` out of an
innocent user's ``close``. Now every kernel point says when its target has ended
(``Point.target_gone``), asked at admission and again at the switch under the
registry's lock, which ``remove_target`` lists under too.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from vino.errors import GraftRejected

from .harness import KernelArena, Tenancy, handler
from .test_attack_targets import benign

GONE = "a graft lives no longer than its target"


def _ended(a: KernelArena) -> dict[str, tuple[Any, str]]:
    """For each point with an end, alice's target of its kind that has ended, and why."""
    k, t = a.k, a.tenants["alice"]
    of = k.fs.open(t.proc, t.file, "r")
    k.fs.close(of)
    proc = k.spawn(t.user, "short-lived", t.group)
    aspace = k.address_space(proc)
    aspace.write(0, b"x")
    k.exit(proc)
    k.fs.create(t.user, "gone.dat", 0o600)
    inode = a.inode("gone.dat")
    k.fs.unlink(t.user, "gone.dat")
    group = k.new_group(t.user, "short-lived")
    k.remove_group(group)
    return {"fs.readahead": (of, "the file is closed"),
            "sched.pick": (group, "the process group is removed"),
            "vm.evict": (aspace, "the address space is released"),
            "fs.filter": (inode, "the inode is free"),
            "fs.access": (inode, "the inode is free")}


@pytest.mark.parametrize("who", ["alice", "root"])
def test_graft_aimed_at_a_target_that_has_ended_is_rejected_and_changes_nothing(
        kernel: KernelArena, who: str) -> None:
    ended = _ended(kernel)
    user = kernel.tenants["alice"].user if who == "alice" else kernel.k.root
    before = kernel.snapshot()
    for point, (target, why) in ended.items():
        with pytest.raises(GraftRejected) as info:
            kernel.k.graft(user, point, benign(point), target=target)
        assert info.value.reason == f"the target has gone ({why}): {GONE}", info.value.reason
    kernel.assert_unchanged(before)
    assert not [g for g in kernel.k.registry.grafts()
                if any(g.target is t for t, _ in ended.values())]


def _ends_during_the_build(a: KernelArena, point: str) -> tuple[Any, Callable[[], None]]:
    """A live target of alice's for ``point`` and what ends it."""
    k, t = a.k, a.tenants["alice"]
    if point == "fs.readahead":
        of = k.fs.open(t.proc, t.file, "r")
        return of, lambda: k.fs.close(of)
    if point == "vm.evict":
        proc = k.spawn(t.user, "short-lived", t.group)
        aspace = k.address_space(proc)
        aspace.write(0, b"x")
        return aspace, lambda: k.exit(proc)
    if point == "sched.pick":
        group = k.new_group(t.user, "short-lived")

        def remove() -> None:
            k.remove_group(group)
        return group, remove
    k.fs.create(t.user, "gone.dat", 0o600)
    return a.inode("gone.dat"), lambda: k.fs.unlink(t.user, "gone.dat")


@pytest.mark.parametrize("point", ["fs.readahead", "vm.evict", "sched.pick", "fs.filter",
                                   "fs.access"])
def test_install_racing_the_end_of_its_target_leaves_no_graft_on_it(
        kernel: KernelArena, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    k, alice = kernel.k, kernel.tenants["alice"]
    target, end = _ends_during_the_build(kernel, point)
    usage = alice.user.principal.usage.snapshot()
    reg = k.registry
    build = reg._build

    def build_then_end(*args: Any, **kw: Any) -> Any:
        built = build(*args, **kw)
        end()  # the target ends after admission, before the switch
        return built

    monkeypatch.setattr(reg, "_build", build_then_end)
    with pytest.raises(GraftRejected) as info:
        k.graft(alice.user, point, benign(point), target=target)
    assert info.value.reason.endswith(GONE), info.value.reason
    assert not [g for g in reg.grafts() if g.target is target]
    now = alice.user.principal.usage.snapshot()
    assert {n: v for n, v in now.items() if n != "cpu_ns"} == \
        {n: v for n, v in usage.items() if n != "cpu_ns"}


def test_targets_ending_while_another_principal_installs_handlers_never_raise(
        tenancy: Tenancy) -> None:
    t = tenancy
    quiet = handler("i32.const 0")
    for i in range(20):
        t.handle(quiet, t.alice, f"k{i}")
    stop = threading.Event()
    errors: list[str] = []
    ends = 0

    def installs() -> None:  # root: no install rate to wait for
        i = 0
        while not stop.is_set():
            t.handle(quiet, t.root, f"n{i}").remove()
            i += 1

    def ends_targets() -> None:
        nonlocal ends
        while not stop.is_set():
            try:
                t.registry.remove_target(f"ended{ends}")
                t.registry.snapshot()
            except Exception as exc:
                errors.append(repr(exc))
            ends += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter may
    threads = [threading.Thread(target=installs), threading.Thread(target=ends_targets)]
    try:
        for th in threads:
            th.start()
        time.sleep(2.0)
    finally:
        stop.set()
        for th in threads:
            th.join(30.0)
        sys.setswitchinterval(old)
    assert ends > 100 and errors == [], (ends, errors[:3])
