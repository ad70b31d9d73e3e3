"""Micro-benchmarks of the graft mechanism itself (``vino bench micro``).

Measured side by side in one run, interleaved round by round so that a noisy
machine slows every contender alike:

- ``raw``: the fast path's bare call of the export (no protection at all);
- ``public``: wasmtime's public ``Func.__call__`` of the same export;
- ``protected``: a full protected invocation through a graft point (begin,
  copy-in, call, validate, commit) of a null graft;
- ``abort``: a protected invocation whose result fails validation: abort
  (no undo work) and the default's answer; the graft is kept (``remove_after``
  is large) so the figure is the abort itself, not removal;
- ``abort+undo8``: the same after the graft made eight accessor calls, so the
  undo work is visible;
- ``dispatch``: calling the point when no graft is installed (the default only);
- ``removal``: install + first-failure removal of a graft, per graft.

Each figure is the median over rounds of the mean time per call in a round,
with the spread (p10..p90 over rounds).

The benchmarks' own ``pick`` point lives here and is shared: its codec
(``encode_pick`` / ``decode_pick``, declared: one u32 in, an answer in 0..100 out) and its
grafts (``pick_wat``: answer at once, after a loop, or after calling a
graft-callable in a loop) serve ``vino.bench.goals`` and ``vino.bench.install`` too.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import wasmtime

from vino import limits
from vino.bench import bench_quota
from vino.graft import (
    GLOBAL,
    I32,
    FunctionPoint,
    GraftCallable,
    Principal,
    Registry,
    any_principal,
)
from vino.graft.codec import InRange, Scalars
from vino.graft.layout import U32, Field, Layout, Struct
from vino.graft.txn import Transaction


def pick_wat(answer: int, loop: int = 0, call: str = "") -> str:
    """A graft for the benchmarks' ``pick`` point: a loop of ``loop`` iterations (each
    calling the graft-callable ``call``, if named), then the answer ``answer``."""
    imports = f'(import "vino" "{call}" (func ${call} (param i32) (result i32)))' if call else ""
    body = f"i32.const {answer}"
    if loop:
        step = f"(drop (call ${call} (local.get $i)))\n      " if call else ""
        body = f"""(local $i i32)
    (loop $l
      {step}(local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {loop}))))
    {body}"""
    return f"""(module {imports}
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 1024)
  (func (export "pick") (result i32) {body}))"""


NULL_WAT: Final = pick_wat(3)  # answers at once
INVALID_WAT: Final = pick_wat(1000)  # answers out of range: aborted
UNDO_WAT: Final = pick_wat(1000, loop=8, call="poke")  # 8 accessor calls, then aborted


@dataclass(slots=True)
class Figure:
    name: str
    median_us: float
    p10_us: float
    p90_us: float


# The pick point's buffer: the input x (a u32), then room for the grafts.
PICK_LAYOUT: Final = Layout(point="bench.pick", entry="pick", buffer_size=64,
                            fields=Struct("pick_buf", (Field("x", U32, 0),)))
# Its codec, declared (codec.py): the native protected call runs both in C.
encode_pick: Final = Scalars(PICK_LAYOUT, ("x",))
decode_pick: Final = InRange(0, 100, "pick")


def _spread(name: str, samples: list[float]) -> Figure:
    qs = statistics.quantiles(samples, n=10) if len(samples) > 1 else samples * 9
    return Figure(name, statistics.median(samples), qs[0], qs[-1])


def run(rounds: int = 15, calls: int = 4000,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every micro-benchmark; return figures and ratios as plain data."""
    reg = Registry()
    state: dict[int, int] = {}

    def poke(txn: Transaction, i: int) -> int:
        txn.setitem(state, i, state.get(i, 0) + 1)
        return 0

    point = reg.declare(FunctionPoint[object, int, int](
        name="bench.pick", entry="pick", buffer_size=64, encode=encode_pick, decode=decode_pick,
        default=lambda x: 7, callables=(GraftCallable("poke", (I32,), (I32,), poke),),
        may_install=any_principal, target_type=object))
    alice = Principal("bench", bench_quota())
    null = reg.install(point, NULL_WAT, alice, target="null")
    reg.install(point, INVALID_WAT, alice, target="invalid", remove_after=limits.NEVER_REMOVE)
    reg.install(point, UNDO_WAT, alice, target="undo",
                remove_after=limits.NEVER_REMOVE)
    # wasmtime's public API on the same linked module, in a store of its own.
    store = wasmtime.Store(reg.sandbox.engine)
    store.set_epoch_deadline(1 << 40)
    public = null.pre.instantiate(store).exports(store)["pick"]
    assert isinstance(public, wasmtime.Func)
    raw = null.entry

    def loop(f: Callable[[], object], n: int) -> float:
        t = time.perf_counter_ns()
        for _ in range(n):
            f()
        return (time.perf_counter_ns() - t) / n / 1000

    contenders: dict[str, tuple[Callable[[], object], int]] = {
        "raw": (raw.call0, calls),
        "public": (lambda: public(store), max(calls // 8, 100)),
        "protected": (lambda: point("null", 1), calls),
        "abort": (lambda: point("invalid", 1), calls),
        "abort+undo8": (lambda: point("undo", 1), max(calls // 4, 100)),
        "dispatch": (lambda: point("nobody", 1), calls),
    }
    samples: dict[str, list[float]] = {k: [] for k in contenders}
    for f, n in contenders.values():  # warm up
        loop(f, min(n, 200))
    for r in range(rounds):
        for name, (f, n) in contenders.items():
            samples[name].append(loop(f, n))
        if progress:
            progress(f"round {r + 1}/{rounds}")
    assert point("null", 1) == 3 and point("invalid", 1) == 7, "benchmark grafts misbehaved"

    removal: list[float] = []
    for i in range(min(rounds, 10)):
        batch = [reg.install(point, INVALID_WAT, alice, target=("rm", i, j)) for j in range(50)]
        t = time.perf_counter_ns()
        for j in range(50):
            point(("rm", i, j), 1)
        removal.append((time.perf_counter_ns() - t) / 50 / 1000)
        assert all(g.state == "removed" for g in batch)
    samples["abort+removal"] = removal
    figures = {k: _spread(k, v) for k, v in samples.items()}
    reg.close()
    med = {k: f.median_us for k, f in figures.items()}
    return {
        "figures": {k: {"median_us": f.median_us, "p10_us": f.p10_us, "p90_us": f.p90_us}
                    for k, f in figures.items()},
        "ratios": {
            "protected/public": med["protected"] / med["public"],
            "protected/raw": med["protected"] / med["raw"],
            "abort/protected": med["abort"] / med["protected"],
        },
        "undo_entries_per_abort": 8,
        "global_target": repr(GLOBAL),
    }


def render(result: dict[str, Any]) -> str:
    lines = ["graft mechanism micro-benchmarks (µs per call; median of rounds, p10..p90)", ""]
    lines.append(f"{'what':<16} {'median':>8} {'p10':>8} {'p90':>8}")
    for name, f in result["figures"].items():
        lines.append(f"{name:<16} {f['median_us']:8.2f} {f['p10_us']:8.2f} {f['p90_us']:8.2f}")
    lines.append("")
    for name, v in result["ratios"].items():
        lines.append(f"{name:<20} {v:6.3f}")
    return "\n".join(lines)
