"""Attacks on the host's native stack (issue: a graft chain or a small thread killed the host).

Every store gets its own Wasm stack allowance, counted from where it is entered:
grafts nested through a graft-callable that invokes a point pile allowances on one
native stack, and a host thread with a small stack cannot hold even one. Before
the stack guard (``vino.graft.stack``) both killed the process with SIGSEGV. Each
attack runs in a child interpreter with a time bound; the child prints what it
saw as JSON and the parent checks: the child lived (exit status 0), the operation
answered, the right graft was blamed (removed) and the innocent ones kept, and
the host state and usage are exactly as before.
"""

from __future__ import annotations

import textwrap

from vino import limits

from .harness import in_child

# The child's program: a tenancy, a chain of N grafts t0 -> t1 -> ... each recursing DEPTH
# Wasm frames and then invoking the next through pick_for (or, EVENTS, handlers firing the
# next through fire), after writing host state that an abort must undo; called on a thread
# of STACK bytes (0: the main thread).
CHILD = textwrap.dedent('''
    import sys, threading
    from vino import limits
    from harness import Tenancy, handler, pick
    N, DEPTH, STACK, NESTING, EVENTS = {n}, {depth}, {stack}, {nesting}, {events}
    if NESTING:
        limits.MAX_GRAFT_NESTING = NESTING  # let the stack guard, not the limit, stop it
    t = Tenancy()
    nest = "fire" if EVENTS else "pick_for"

    def chain(i):
        rec = """
      (func $rec (param $d i32) (result i32)
        (if (result i32) (i32.eqz (local.get $d))
          (then (drop (call $put (i32.const %d) (i32.const 1)))
                (call $%s (i32.const %d) (i32.const 0)))
          (else (i32.add (call $rec (i32.sub (local.get $d) (i32.const 1)))
                         (i32.const 0)))))""" % (i, nest, i + 1)
        body = "(drop (call $rec (i32.const %d))) i32.const 1" % DEPTH
        return (handler if EVENTS else pick)(body, [nest, "put"], rec)

    install = t.handle if EVENTS else t.install
    gs = [install(chain(i), None, "t%d" % i, name="g%d" % i) for i in range(N)]
    out = {{}}
    def run():
        out["answer"] = (t.event if EVENTS else t.pick)("t0", 0)
    if STACK:
        threading.stack_size(STACK)
    th = threading.Thread(target=run)
    th.start()
    th.join()
    live = [g for g in gs if g.state == "live"]
    charged = sum(g.mem_charged + g.table_charged for g in live)
    report({{
        "answer": out.get("answer"), "removed": [g.name for g in gs if g.state == "removed"],
        "records": {{g.name: [[r.reason.value, r.detail, r.graft_at_fault] for r in g.aborts]
                    for g in gs if g.aborts}},
        "host": {{str(k): v for k, v in t.host.d.items()}}, "live": len(live),
        "charged_ok": charged == t.alice.usage.memory_bytes,
        "grafts": len(t.registry.grafts())}})
''')


def _run(n: int, depth: int, stack: int = 0, nesting: int = 0,
         events: bool = False) -> dict[str, object]:
    child = in_child(CHILD.format(n=n, depth=depth, stack=stack, nesting=nesting,
                                  events=events))
    assert child.returncode == 0 and not child.timed_out, \
        f"the host died (exit status {child.returncode}):\n{child.stderr[-2000:]}"
    result: dict[str, object] = child.result()
    assert result["charged_ok"], result  # the live grafts' charges are exactly the usage
    assert result["grafts"] == result["live"]  # the removed ones are in no dispatch table
    return result


def test_chain_of_30_grafts_each_recursing_deep_cannot_overflow_the_native_stack() -> None:
    # Nesting limit lifted: only the stack guard stands between the chain and SIGSEGV.
    r = _run(30, 10000, nesting=100)  # each graft ~330 KiB of Wasm stack
    removed = r["removed"]
    assert isinstance(removed, list) and len(removed) == 1, r
    culprit = removed[0]
    k = int(culprit[1:])
    records = r["records"]
    assert isinstance(records, dict)
    [(reason, detail, at_fault)] = records[culprit]
    assert (reason, at_fault) == ("resource", True)
    assert f"its nested call of graft 'g{k + 1}'" in detail and "native stack left" in detail
    [(reason, detail, at_fault)] = records[f"g{k + 1}"]  # the refused one: kept, not blamed
    assert (reason, at_fault) == ("resource", False)
    assert f"the enclosing graft '{culprit}' nested it" in detail
    assert r["live"] == 29
    assert r["answer"] == 1  # the chain above the culprit got the default (7) and answered
    # What the culprit wrote before nesting was undone; the grafts above it committed theirs.
    assert r["host"] == {str(i): 1 for i in range(k)}


def test_chain_of_grafts_nesting_past_the_limit_is_stopped_and_the_nester_removed() -> None:
    r = _run(16, 100)
    culprit = f"g{limits.MAX_GRAFT_NESTING - 1}"
    assert r["removed"] == [culprit], r
    records = r["records"]
    assert isinstance(records, dict)
    [(reason, detail, at_fault)] = records[culprit]
    assert (reason, at_fault) == ("resource", True)
    assert f"nested {limits.MAX_GRAFT_NESTING + 1} deep" in detail
    assert "MAX_GRAFT_NESTING" in detail
    [(reason, _detail, at_fault)] = records[f"g{limits.MAX_GRAFT_NESTING}"]
    assert (reason, at_fault) == ("resource", False)
    assert r["answer"] == 1
    assert r["host"] == {str(i): 1 for i in range(limits.MAX_GRAFT_NESTING - 1)}


def test_graft_recursing_forever_on_a_256k_thread_cannot_kill_the_host() -> None:
    # The thread cannot hold one Wasm stack allowance: the call is not made at all.
    r = _run(1, 10**9, stack=256 * 1024)
    assert r["answer"] == 7  # the default
    assert r["removed"] == [] and r["live"] == 1  # the host's small stack is not its fault
    records = r["records"]
    assert isinstance(records, dict)
    [(reason, detail, at_fault)] = records["g0"]
    assert (reason, at_fault) == ("resource", False)
    assert "the host thread's stack is too small, not the graft's fault" in detail
    assert r["host"] == {}


def test_graft_recursing_forever_on_a_thread_with_room_traps_with_stack_overflow() -> None:
    # 1 MiB holds the allowance and the host's reserve: the graft runs and hits its own limit.
    r = _run(1, 10**9, stack=1024 * 1024)
    assert r["answer"] == 7
    assert r["removed"] == ["g0"]
    records = r["records"]
    assert isinstance(records, dict)
    assert records["g0"] == [["trap", "stack overflow", True]]
    assert r["host"] == {} and r["live"] == 0


def test_chain_on_a_thread_with_room_for_one_graft_blames_the_first_nester() -> None:
    # 1 MiB: g0 may run, but after its deep recursion no room is left for g1.
    r = _run(4, 10000, stack=1024 * 1024)
    assert r["removed"] == ["g0"], r
    records = r["records"]
    assert isinstance(records, dict)
    assert records["g0"][0][2] is True and "its nested call of graft 'g1'" in records["g0"][0][1]
    assert records["g1"][0][2] is False
    assert r["answer"] == 7 and r["host"] == {} and r["live"] == 3


def test_chain_of_event_handlers_nesting_past_the_limit_is_stopped_and_the_nester_removed(
        ) -> None:
    r = _run(12, 100, events=True)
    culprit = f"g{limits.MAX_GRAFT_NESTING - 1}"
    assert r["removed"] == [culprit], r
    records = r["records"]
    assert isinstance(records, dict)
    assert records[culprit][0][:1] == ["resource"] and records[culprit][0][2] is True
    assert records[f"g{limits.MAX_GRAFT_NESTING}"][0][2] is False
    assert r["answer"] == 1  # the first handler committed
    assert r["host"] == {str(i): 1 for i in range(limits.MAX_GRAFT_NESTING - 1)}
