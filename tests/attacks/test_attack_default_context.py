"""Attacks on ``default()``: the built-in policy run outside the call it belongs to.

``default()`` runs the point's policy on the inputs of the entry invocation in
progress. Anywhere else -- ``vino_message``, ``vino_buffer`` at install, after the
call returned -- there are no inputs of its own, and running the policy on the
previous call's inputs changed host state nobody asked to change (at ``vm.evict``
the clock cleared reference bits of frames outside any eviction). There it is a
``forbidden_call``: the transaction aborts and the host state is untouched.
"""

from __future__ import annotations

import pytest

from vino.errors import AbortReason, GraftAborted, GraftRejected
from vino.graft import Transaction, any_principal

from .harness import (
    DEFAULT_ANSWER,
    TARGET,
    KernelArena,
    Tenancy,
    handler,
    module,
    pick,
    with_message,
)

# Answers by running the default (extending the policy); asks for the default from
# vino_message too.
DEFAULT_FROM_MESSAGE = pick("call $default", ["default"], with_message("call $default"))


def test_graft_that_calls_default_from_vino_message_is_forbidden_and_changes_nothing(
        tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    g = tenancy.install(DEFAULT_FROM_MESSAGE)
    assert tenancy.pick(TARGET, 3) == DEFAULT_ANSWER  # default() inside the entry: fine
    calls = tenancy.host.default_calls
    with pytest.raises(GraftAborted) as err:
        g.send(b"hi")
    assert err.value.reason is AbortReason.FORBIDDEN_CALL
    assert "default()" in err.value.detail
    assert tenancy.host.default_calls == calls  # the policy did not run
    tenancy.assert_survived(before, g, AbortReason.FORBIDDEN_CALL)


def test_graft_that_calls_default_from_vino_buffer_is_rejected_and_changes_nothing(
        tenancy: Tenancy) -> None:
    source = module(["default"],
                    '  (func (export "pick") (result i32) i32.const 1)',
                    '  (func $buf (result i32) (drop (call $default)) i32.const 0)')
    source = source.replace('(func (export "vino_buffer") (result i32) i32.const 0)',
                            '(export "vino_buffer" (func $buf))')
    before = tenancy.snapshot()
    with pytest.raises(GraftRejected, match="forbidden_call"):
        tenancy.install(source)
    assert tenancy.host.default_calls == 0
    tenancy.assert_unchanged(before)


def test_graft_of_an_event_point_importing_default_is_rejected(tenancy: Tenancy) -> None:
    before = tenancy.snapshot()
    with pytest.raises(GraftRejected, match="default is not a graft-callable"):
        tenancy.handle(handler("(drop (call $default)) i32.const 0", ["default"]))
    tenancy.assert_unchanged(before)


def test_graft_that_calls_default_twice_in_one_call_gets_its_own_inputs_both_times(
        tenancy: Tenancy) -> None:
    g = tenancy.install(pick("(drop (call $default)) call $default", ["default"]))
    assert tenancy.pick(TARGET, 11) == DEFAULT_ANSWER
    assert tenancy.pick(TARGET, 12) == DEFAULT_ANSWER
    assert tenancy.host.default_inputs == [11, 11, 12, 12]
    assert g.stats.commits == 2 and not g.aborts


EVICT_DEFAULT_FROM_MESSAGE = """(module
  (import "vino" "default" (func $default (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32) call $default)
  (func (export "vino_message") (param i32) (result i32) call $default))"""


def test_graft_that_calls_default_from_vino_message_at_vm_evict_clears_no_reference_bit(
        kernel: KernelArena) -> None:
    # The attack found by hand: the evict graft extends clock through default(), which
    # is fine during an eviction; from vino_message it ran clock on the previous
    # eviction's candidates and cleared their reference bits, committed.
    k = kernel.k
    alice = kernel.tenants["alice"]
    aspace = alice.aspace
    g = k.graft(alice.user, "vm.evict", EVICT_DEFAULT_FROM_MESSAGE, target=aspace)
    for v in range(100, 100 + k.cache.nframes + 8):  # evictions through the graft
        aspace.touch(v)
    assert g.stats.commits > 0 and not g.aborts
    for v in aspace.resident():  # every candidate referenced: the next eviction's
        aspace.touch(v)           # clock clears every candidate's bit
    aspace.touch(500)
    for v in aspace.resident():  # and every resident page referenced again
        aspace.touch(v)
    before = kernel.snapshot()
    referenced = [f.index for f in k.cache._frames if f.aspace is aspace and f.referenced]
    assert referenced
    with pytest.raises(GraftAborted) as err:
        g.send(b"")
    assert err.value.reason is AbortReason.FORBIDDEN_CALL
    assert [f.index for f in k.cache._frames
            if f.aspace is aspace and f.referenced] == referenced
    # The graft's charges are given back at removal; everything else is as before.
    assert g.state == "removed"
    after = kernel.snapshot()
    assert after.host == before.host
    assert after.locks_held == [] and after.undo == 0


def test_graft_that_calls_an_entry_only_callable_from_vino_message_is_forbidden(
        tenancy: Tenancy) -> None:
    # An application's own graft-callable that reads the invocation's inputs declares
    # contexts={Context.ENTRY}; from vino_message it must not run.
    from vino.graft import I32, Context, FunctionPoint, Principal, graft_callable

    seen: list[int] = []

    @graft_callable("input_x", (), (I32,), contexts={Context.ENTRY})
    def input_x(txn: Transaction) -> int:
        seen.append(1)
        return 0

    point: FunctionPoint[object, int, int] = FunctionPoint(
        name="atk.inputs", entry="pick", buffer_size=64, encode=lambda buf, x: (),
        decode=lambda buf, ret, x: ret, default=lambda x: DEFAULT_ANSWER,
        callables=(input_x,), may_install=any_principal, target_type=object)
    tenancy.registry.declare(point)
    source = pick("call $input_x", ["input_x"], with_message("call $input_x"),
                  sigs={"input_x": ((), (I32,))})
    alice = Principal("alice2")
    g = tenancy.registry.install(point, source, alice, TARGET)
    assert point(TARGET, 1) == 0 and seen == [1]
    with pytest.raises(GraftAborted) as err:
        g.send(b"")
    assert err.value.reason is AbortReason.FORBIDDEN_CALL
    assert "input_x is not valid in message" in err.value.detail
    assert seen == [1] and g.state == "removed"
