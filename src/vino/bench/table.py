"""The paper's overhead table, measured on this machine, beside VINO 1996 and peers.

For each sample graft (``vino.bench.setups``) one run measures, interleaved
round by round (``vino.bench.timing``), a set of contenders and derives the
paper's rows from them. Every figure is µs per invocation: the median over
rounds of the mean over a batch, with p10..p90 over rounds.

How each row is measured (all on the real code path, nothing is summed into Total):

- **Total**: the subsystem's policy slot as the kernel calls it (for example
  ``fs.readahead_policy(of, block)``), with the sample graft installed: dispatch through
  the graft point, the protected invocation, the answer. Timed directly.
- **Begin**, **Commit**, **SFI copy in/out**: instrumented timing of the real
  protected call (``Graft.call``, as points make it). The point's ``encode`` and
  ``decode`` are wrapped by shims that take a timestamp as they are entered and
  left, and the benchmark takes one before the call and one after it returns.
  Begin = from the call to the start of the copy-in (the graft's mutex, starting
  the transaction -- which the hot path inlines); Commit = from the end of
  validation to the call returning (doom check, CPU accounting,
  commit, statistics, releasing the mutex). Each segment has the measured cost
  of one timestamp subtracted (``timer_overhead_ns``). The shims add a Python
  frame each, so the instrumented call is slower than the real one; that
  difference is reported (``instrumentation``), and Total never uses the shims.
- **Graft**: time inside the Wasm entry = the raw fast-path call of the sample
  graft's entry minus the same call of a null entry with the same signature, in
  the same engine (both on inputs already in the buffer).
- **SFI**: sandbox entry/exit and copying = copy-in (``encode``) + copy-out and
  validation (``decode``) + the instrumented call segment minus Graft (the
  fast-path FFI transition, the epoch set-up and the result check).
- **Indirection**: dispatch through the graft point: the subsystem's method
  with a stub graft in the point's table, minus calling the stub directly. For
  ``fs.filter`` this includes the kernel adaptor's copies of the block to and
  from ``bytes``.
- **Lock**: one ``lock(1)`` graft-callable that the kernel point resolves to the
  target's lock, held to the end of the transaction: a protected call of a graft
  that only takes the lock minus that of a null graft. The sample grafts take no
  lock, so Total does not include it; ``fs.readahead`` and ``fs.filter`` resolve
  no lock at all (n/a).
- **Abort**: a graft whose answer fails validation (kept installed,
  ``remove_after`` huge): instrumented time from entering ``decode`` (which
  validates and raises) until the default policy starts -- exception, abort
  of the transaction (no undo entries), the abort record and statistics. The
  whole aborted call through the subsystem's method is reported too.

Also reported: **Total, sparse** -- the same call made once every 1.5 ms (more
than one epoch tick) with the host busy in Python in between, timed call by call.
It shows a cost the back-to-back figures hide: the epoch ticker thread needs the
GIL once per tick, and gets it when the next graft call releases it, so that
call waits for the hand-over.

Peers (``vino.bench.peers``), measured in the same rounds on the same inputs:
the Python policy (the floor), the same through pluggy, the same Wasm graft
through wasmtime's public API without a transaction, and in a worker process.
Ratios (vino ÷ peer) are taken round by round.

Caveats: the machine is shared; numbers move from run to run by 10-20 %, so
compare ratios measured in one run. Differences of small figures (Graft for
read-ahead, Indirection) are clamped at 0 in each round.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from vino.bench import paper, peers
from vino.bench.setups import Setup
from vino.bench.timing import (
    Contender,
    Figure,
    Progress,
    difference,
    interleave,
    loop,
    plain,
    ratio,
    spaced,
    spread,
    timer_overhead_ns,
)
from vino.graft import FunctionPoint, Graft
from vino.kernel.errors import FilterUnavailable
from vino.report import AT_LEAST, AT_MOST, markdown_row, markdown_table, target

NS_PER_US: Final = 1000.0
PEERS: Final = ("python", "python (pure)", "pluggy", "wasmtime public API", "worker process")

# Targets of the issue (µs, medians on this machine).
TOTAL_TARGET_US: Final = {"readahead": 3.0, "evict": 5.0, "sched": 3.0, "encrypt": 8.0}
BELOW_1996_FACTOR: Final = 30.0  # every Total at least this many times below 1996's
MAX_VS_PUBLIC: Final = 0.25  # protected ÷ wasmtime public API
MAX_VS_WORKER: Final = 0.10  # protected ÷ worker-process round trip
SPARSE_GAP_NS: Final = 1_500_000  # between "sparse" calls: more than one epoch tick
ABORT_TARGET_US: Final = 5.0  # the Abort row: aborting, from failed validation to the default
UNDO_ALLOWANCE_US: Final = 1.0  # "plus its undo work": one accessor's undo entry


class _Probe:
    """Timestamps the shims take inside one instrumented invocation."""

    __slots__ = ("dec_in", "dec_out", "dflt_in", "dflt_out", "enc_in", "enc_out")

    def __init__(self) -> None:
        self.enc_in = self.enc_out = self.dec_in = self.dec_out = 0
        self.dflt_in = self.dflt_out = 0


_AnyPoint = FunctionPoint[Any, *tuple[Any, ...], Any]  # any function point


@contextlib.contextmanager
def _instrumented(point: _AnyPoint, probe: _Probe) -> Iterator[None]:
    """Wrap the point's encode / decode / default with timestamping shims."""
    enc, dec, dflt = point.encode, point.decode, point.default
    perf = time.perf_counter_ns

    def encode(buf: memoryview, *a: Any) -> tuple[int, ...]:
        probe.enc_in = perf()
        r = enc(buf, *a)
        probe.enc_out = perf()
        return r

    def decode(buf: memoryview, ret: int, *a: Any) -> Any:
        probe.dec_in = perf()
        r = dec(buf, ret, *a)
        probe.dec_out = perf()
        return r

    def default(*a: Any) -> Any:
        probe.dflt_in = perf()
        try:
            r = dflt(*a)
        except FilterUnavailable as exc:  # fs.filter fails closed: its refusal is the answer
            r = exc
        probe.dflt_out = perf()
        return r

    point.encode, point.decode, point.default = encode, decode, default
    try:
        yield
    finally:
        point.encode, point.decode, point.default = enc, dec, dflt


def _instr_batch(point: _AnyPoint, g: Graft, args: tuple[Any, ...], c_ns: float,
                 aborts: bool) -> Callable[[int], dict[str, float]]:
    """Instrumented invocations; series = the segments, µs per call."""
    def run(n: int) -> dict[str, float]:
        p = _Probe()
        perf = time.perf_counter_ns
        inv = g.call
        s0 = s1 = s2 = s3 = s4 = s5 = whole = 0
        with _instrumented(point, p):
            if aborts:
                for _ in range(n):
                    t0 = perf()
                    inv(args)
                    t3 = perf()
                    s0 += p.enc_in - t0
                    s1 += p.enc_out - p.enc_in
                    s2 += p.dec_in - p.enc_out
                    s3 += p.dflt_in - p.dec_in
                    s4 += p.dflt_out - p.dflt_in
                    s5 += t3 - p.dflt_out
                    whole += t3 - t0
            else:
                for _ in range(n):
                    t0 = perf()
                    inv(args)
                    t3 = perf()
                    s0 += p.enc_in - t0
                    s1 += p.enc_out - p.enc_in
                    s2 += p.dec_in - p.enc_out
                    s3 += p.dec_out - p.dec_in
                    s4 += t3 - p.dec_out
                    whole += t3 - t0
        names = (("begin", "copyin", "call", "abort", "default", "tail") if aborts else
                 ("begin", "copyin", "call", "copyout", "commit"))
        out = {name: max(0.0, (s / n - c_ns) / NS_PER_US)
               for name, s in zip(names, (s0, s1, s2, s3, s4, s5), strict=False)}
        out["whole"] = (whole / n - c_ns) / NS_PER_US
        return out
    return run


def _raw_batch(point: _AnyPoint, g: Graft, args: tuple[Any, ...],
               wasm_args: tuple[int, ...]) -> Callable[[int], dict[str, float]]:
    """The graft's entry through the raw fast path, inputs already in its buffer."""
    def run(n: int) -> dict[str, float]:
        point.encode(g.buffer, *args)
        f = g.entry.call if wasm_args else g.entry.call0
        return {"": loop(f, wasm_args, n)}
    return run


class _Stub:
    """Stands in for a graft in a point's table: answers at once (for Indirection)."""

    __slots__ = ("answer",)

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def call(self, args: tuple[Any, ...]) -> Any:
        return self.answer


def _stub_batch(s: Setup, stub: _Stub) -> Callable[[int], dict[str, float]]:
    table: dict[Any, Any] = s.point.table
    target = s.targets["sample"]
    hook, hargs = s.hook, s.hook_args()

    def run(n: int) -> dict[str, float]:
        real = table[target]
        table[target] = stub
        try:
            return {"": loop(hook, hargs, n)}
        finally:
            table[target] = real
    return run


def contenders(s: Setup, c_ns: float, pm: Any, public: peers.PublicWasm | None,
               worker: peers.Worker | None) -> list[Contender]:
    """Everything measured for one set-up, named ``key/what``."""
    g, k = s.grafts, s.key
    args = s.args()
    stub = _Stub(s.expected)
    cs = [
        Contender("total", plain(s.hook, *s.hook_args())),
        Contender("invoke", plain(g["sample"].call, args)),
        Contender("instr", _instr_batch(s.point, g["sample"], args, c_ns, aborts=False)),
        Contender("raw", _raw_batch(s.point, g["sample"], args, s.wasm_args)),
        Contender("raw_null", _raw_batch(s.point, g["null"], s.args("null"), s.wasm_args)),
        Contender("null", plain(g["null"].call, s.args("null"))),
        Contender("stub_hook", _stub_batch(s, stub)),
        Contender("stub_call", plain(stub.call, args)),
        Contender("abort", plain(s.abort_hook or s.hook, *s.hook_args("invalid"))),
        Contender("abort_instr", _instr_batch(s.point, g["invalid"], s.args("invalid"), c_ns,
                                              aborts=True)),
        # On a target no graft was dispatched for: a filter's file refuses (fails closed).
        Contender("default", plain(s.point.default, *s.args("null"))),
        Contender("sparse", spaced(s.hook, s.hook_args(), SPARSE_GAP_NS, c_ns), min_calls=1),
        Contender("python", plain(s.python, *args)),
    ]
    if "lock" in g:
        cs.append(Contender("lock", plain(g["lock"].call, s.args("lock"))))
    if "undo" in g:
        cs.append(Contender("abort_undo_instr", _instr_batch(s.point, g["undo"], s.args("undo"),
                                                             c_ns, aborts=True)))
    for name, f in s.extra_python.items():
        cs.append(Contender(name, plain(f, *args), min_calls=1))
    if pm is not None:
        cs.append(Contender("pluggy", plain(peers.pluggy_hook(pm, k), *args)))
    if public is not None:
        cs.append(Contender("wasmtime public API", plain(public, *args)))
    if worker is not None:
        cs.append(Contender("worker process", plain(worker.call(k), *args)))
    for c in cs:
        c.name = f"{k}/{c.name}"
        # All but the worker process run on this thread alone (timing.measure).
        c.on_cpu = c.name != f"{k}/worker process"
    return cs


def _row(fig: Figure | None, key: str, row: str) -> dict[str, Any] | None:
    if fig is None:
        return None
    old = paper.VINO_1996_US[key][row]
    d: dict[str, Any] = fig.as_dict()
    d["vino_1996_us"] = old
    d["ratio_1996_over_vino"] = old / fig.median_us if fig.median_us > 0 and old else None
    return d


def derive(key: str, raw: dict[str, list[float]]) -> dict[str, Any]:
    """The paper's rows, extras and peer ratios of one graft from its series."""
    def ser(name: str) -> list[float]:
        return raw[f"{key}/{name}"]

    graft = difference(ser("raw"), ser("raw_null"))
    sfi = [ci + co + max(0.0, call - gr) for ci, co, call, gr in
           zip(ser("instr.copyin"), ser("instr.copyout"), ser("instr.call"), graft,
               strict=True)]
    indirection = difference(ser("stub_hook"), ser("stub_call"))
    figs: dict[str, Figure | None] = {
        "Begin": spread(ser("instr.begin")),
        "Commit": spread(ser("instr.commit")),
        "Abort": spread(ser("abort_instr.abort")),
        "Lock": spread(difference(ser("lock"), ser("null"))) if f"{key}/lock" in raw else None,
        "Graft": spread(graft),
        "Indirection": spread(indirection),
        "SFI": spread(sfi),
        "Total": spread(ser("total")),
    }
    parts = [b + c + s + gr + i for b, c, s, gr, i in
             zip(ser("instr.begin"), ser("instr.commit"), sfi, graft, indirection, strict=True)]
    extra = {
        "sum_of_rows": spread(parts),
        "invoke": spread(ser("invoke")),
        "instrumented_invoke": spread(ser("instr.whole")),
        "instrumentation": spread(difference(ser("instr.whole"), ser("invoke"), -1e9)),
        "raw_call": spread(ser("raw")),
        "raw_null_call": spread(ser("raw_null")),
        "null_graft_invoke": spread(ser("null")),
        "copy_in": spread(ser("instr.copyin")),
        "copy_out_validate": spread(ser("instr.copyout")),
        "aborted_call": spread(ser("abort")),
        "aborted_call_minus_default": spread(difference(ser("abort"), ser("default"))),
        "default_policy": spread(ser("default")),
        "total_sparse": spread(ser("sparse")),
    }
    if f"{key}/abort_undo_instr.abort" in raw:
        extra["abort_with_one_undo"] = spread(ser("abort_undo_instr.abort"))
    total = ser("total")
    peer_out: dict[str, Any] = {}
    for name in ("default", *PEERS):
        full = f"{key}/{name}"
        if full not in raw:
            continue
        peer_out[name] = {**spread(raw[full]).as_dict(),
                          "vino_over_peer": ratio(total, raw[full]).median_us}
    return {
        "title": paper.TITLES[key],
        "sample": paper.SAMPLES[key],
        "rows": {row: _row(figs[row], key, row) for row in paper.ROWS},
        "extra": {name: f.as_dict() for name, f in extra.items()},
        "peers": peer_out,
    }


def run(setups: dict[str, Setup], *, rounds: int, batch_s: float, min_calls: int = 5,
        with_peers: bool = True, progress: Progress | None = None) -> dict[str, Any]:
    """Measure every set-up's rows and peers, interleaved; return plain data."""
    c_ns = timer_overhead_ns()
    pm = peers.plugin_manager(setups) if with_peers else None
    worker = peers.Worker(setups) if with_peers else None
    try:
        publics = {k: peers.PublicWasm(s) for k, s in setups.items()} if with_peers else {}
        for k, s in setups.items():  # every peer must give the sample graft's answer
            args = s.args()
            checks: dict[str, Callable[..., Any]] = {}
            if pm is not None:
                checks["pluggy"] = peers.pluggy_hook(pm, k)
            if k in publics:
                checks["wasmtime public API"] = publics[k]
            if worker is not None:
                checks["worker process"] = worker.call(k)
            for name, f in checks.items():
                if f(*args) != s.expected:
                    raise AssertionError(f"{k}: peer {name!r} answered differently")
        cs = [c for k, s in setups.items()
              for c in contenders(s, c_ns, pm, publics.get(k), worker)]
        series = interleave(cs, rounds, batch_s, min_calls=min_calls, progress=progress,
                            label="overhead table: ")
    finally:
        if worker is not None:
            worker.close()
    grafts = {k: derive(k, series) for k in setups}
    return {"timer_overhead_ns": c_ns, "rounds": rounds, "batch_s": batch_s,
            "grafts": grafts, "targets": targets(grafts)}


def targets(grafts: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets that this table can check, with the measured value."""
    out: list[dict[str, Any]] = []
    for k, g in grafts.items():
        t = g["title"]
        out.append(target(f"{t}: Total", g["rows"]["Total"]["median_us"], AT_MOST,
                          TOTAL_TARGET_US[k], "µs"))
        out.append(target(f"{t}: 1996 Total ÷ vino Total",
                          g["rows"]["Total"]["ratio_1996_over_vino"], AT_LEAST,
                          BELOW_1996_FACTOR, "x"))
        for peer, limit in (("wasmtime public API", MAX_VS_PUBLIC),
                            ("worker process", MAX_VS_WORKER)):
            p = g["peers"].get(peer)
            if p is not None:
                out.append(target(f"{t}: vino ÷ {peer}", p["vino_over_peer"], AT_MOST, limit,
                                  "x"))
        out.append(target(f"{t}: Abort (invalid result; no undo entries)",
                          g["rows"]["Abort"]["median_us"], AT_MOST, ABORT_TARGET_US, "µs"))
        undo = g["extra"].get("abort_with_one_undo")
        if undo is not None:
            out.append(target(f"{t}: Abort with one undo entry", undo["median_us"], AT_MOST,
                              ABORT_TARGET_US + UNDO_ALLOWANCE_US, "µs"))
    return out


# ---- rendering ---------------------------------------------------------------------------

def _us(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _x(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f}x" if v >= 10 else f"{v:.1f}x" if v >= 1 else f"{v:.2f}x"


def render(result: dict[str, Any]) -> str:
    grafts = result["grafts"]
    keys = list(grafts)
    lines = ["### Overhead per invocation: vino on this machine vs VINO 1996", "",
             "µs per invocation, medians; each cell: vino · 1996 · 1996 ÷ vino", ""]
    head = ["row", *(grafts[k]["title"] for k in keys)]
    lines.append(markdown_table(head, []))
    for row in paper.ROWS:
        cells = []
        for k in keys:
            d = grafts[k]["rows"][row]
            old = paper.VINO_1996_US[k][row]
            if d is None:
                cells.append(f"n/a · {old:g} · -")
            else:
                cells.append(f"{_us(d['median_us'])} · {old:g} · {_x(d['ratio_1996_over_vino'])}")
        lines.append(markdown_row([row, *cells]))
    lines += ["", "Spread (µs, median [p10..p90] over rounds):", ""]
    lines.append(markdown_table(head, []))
    for row in paper.ROWS:
        cells = []
        for k in keys:
            d = grafts[k]["rows"][row]
            cells.append("n/a" if d is None else
                         f"{_us(d['median_us'])} [{_us(d['p10_us'])}..{_us(d['p90_us'])}]")
        lines.append(markdown_row([row, *cells]))
    extras = ("sum_of_rows", "invoke", "instrumentation", "raw_call", "raw_null_call",
              "copy_in", "copy_out_validate", "aborted_call", "aborted_call_minus_default",
              "abort_with_one_undo", "default_policy", "total_sparse")
    for name in extras:
        cells = [_us(grafts[k]["extra"][name]["median_us"]) if name in grafts[k]["extra"]
                 else "-" for k in keys]
        lines.append(markdown_row([f"({name.replace('_', ' ')})", *cells]))
    lines += ["", "### Peers: the same policy, the same inputs, the same rounds", "",
              "µs per call (median [p10..p90]); vino ÷ peer = protected vino Total ÷ the peer,"
              " round by round", ""]
    lines.append(markdown_table(["peer", *head[1:]], []))
    tot = ["**" + _us(grafts[k]["rows"]["Total"]["median_us"]) + "**" for k in keys]
    lines.append(markdown_row(["vino, protected (Total)", *tot]))
    for name in ("default", *PEERS):
        cells = []
        for k in keys:
            p = grafts[k]["peers"].get(name)
            cells.append("-" if p is None else
                         f"{_us(p['median_us'])} [{_us(p['p10_us'])}..{_us(p['p90_us'])}] · "
                         f"vino ÷ peer {p['vino_over_peer']:.2f}")
        label = "default policy (built-in)" if name == "default" else name
        lines.append(markdown_row([label, *cells]))
    return "\n".join(lines)
