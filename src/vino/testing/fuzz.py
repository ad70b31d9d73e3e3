"""Hostile input: mutated modules against the loader, hostile grafts at every point.

- ``fuzz_loader``: mutants of every sample and hostile graft (``fuzz_corpus``;
  ``mutate`` makes one mutation: bit flips, interesting bytes, inserts, deletes,
  truncations, ``i32.const`` operands changed in place, a signature's value type for
  another, sections spliced, swapped or dropped), each installed at its point and, if
  accepted, run;
- ``hostile_outputs``: grafts writing random bytes over their whole buffer and
  answering random or edge values at every kernel point;
- ``hostile_callables``: grafts calling every graft-callable with wild arguments.

All of them run on a ``Stage``: a kernel with one target per point owned by alice,
and bob's state as the witness that nothing of alice's grafts may change. A rejected
module must be refused with ``GraftRejected`` and change nothing; an accepted one
must leave every invariant intact and bob's state as it was.

Invariant: every mutant and case is derived from the seed alone, so any failure can
be replayed from its label.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import wasmtime

from vino.errors import GraftRejected
from vino.graft import FunctionPoint, Quota, wasmbinary
from vino.graft.loader import Source
from vino.kernel.errors import FilterUnavailable, InvariantViolation
from vino.kernel.kernel import Kernel
from vino.kernel.sched import cpu_hog
from vino.sdk.build import sample_path
from vino.testing.rig import (
    BS,
    HOSTILE_DIR,
    POINT_ABI,
    import_line,
    inode_of,
    module,
    pattern,
    quiet_undo_log,
    registry_problems,
    scratch_kernel,
    state_diff,
    usage_of,
)
from vino.workloads import write_file

__all__ = [
    "ANSWERS", "CALLABLES", "ENTRY_POINTS", "HOSTILE_CALL_REASONS", "MUTATIONS", "FuzzResult",
    "HostileResult", "Stage", "fuzz_corpus", "fuzz_loader", "hostile_call_graft",
    "hostile_callables", "hostile_outputs", "mutate", "random_output_graft", "run_case",
    "sections", "try_graft",
]

ENTRY_POINTS: Final = {"vino_readahead": "fs.readahead", "vino_evict": "vm.evict",
                       "vino_pick": "sched.pick", "vino_filter": "fs.filter",
                       "vino_on_access": "fs.access"}


def fuzz_corpus() -> list[tuple[str, bytes, str]]:
    """The seeds: every sample graft's .wasm and every hostile WAT (as binary), each
    with the point it was written for: ``(name, wasm, point)``."""
    out: list[tuple[str, bytes, str]] = []
    samples = sample_path("null.wasm").parent
    for path in sorted(samples.glob("*.wasm")):
        out.append((path.stem, path.read_bytes(), ""))
    for path in sorted(HOSTILE_DIR.glob("*.wat")):
        out.append((path.stem, bytes(wasmtime.wat2wasm(path.read_text())), ""))
    return [(name, wasm, _point_of(wasm)) for name, wasm, _ in out]


def _point_of(wasm: bytes) -> str:
    text = wasm.decode("latin-1")
    for entry, point in ENTRY_POINTS.items():
        if entry in text:
            return point
    raise ValueError("a corpus module exports no entry of a kernel point")


def sections(wasm: bytes) -> list[tuple[int, int]]:
    """(start, end) of every section of a module (for splicing); the last may run past
    the end of a mutated one. Raises ``MalformedWasm`` (a ``ValueError``) on a
    truncated section size."""
    return [(s.start, s.end) for s in wasmbinary.sections(wasm, strict=False)]


MUTATIONS: Final = ("flip", "byte", "insert", "delete", "duplicate", "truncate", "splice",
                    "swap_sections", "drop_section", "const", "const", "const", "data",
                    "valtype")
# Value types a signature may hold: a "valtype" mutation puts one where another was, in
# the type section (a v128 in an entry's signature once aborted the host at load).
_VALTYPES: Final = tuple(wasmbinary.VALUE_TYPES)
_CONSTS: Final = (0, 1, -1, 2, 7, 8, 31, 32, 63, 64, 255, 256, 4095, 4096, 4097, 65535, 65536,
                  0x7FFFFFFF, -0x80000000, 0x7FFFFFF0, 1 << 20)
_INTERESTING: Final = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x40, 0x41, 0x0B, 0x20, 0x60)


def mutate(wasm: bytes, op: str, a: int, b: int, other: bytes = b"") -> bytes:
    """One mutation of ``wasm``; ``a`` and ``b`` pick where and what (any ints: they
    are reduced modulo the sizes), ``other`` is the module spliced from."""
    data = bytearray(wasm)
    n = len(data)
    if n == 0:
        return bytes([a & 0xFF])
    i = a % n
    if op == "flip":
        data[i] ^= 1 << (b % 8)
    elif op == "byte":
        data[i] = _INTERESTING[b % len(_INTERESTING)] if b % 3 else b & 0xFF
    elif op == "insert":
        data[i:i] = bytes([b & 0xFF] * (1 + b % 4))
    elif op == "delete":
        del data[i:i + 1 + b % 8]
    elif op == "duplicate":
        data[i:i] = data[i:i + 1 + b % 32]
    elif op == "truncate":
        del data[max(8, i):]
    elif op == "const":  # a new operand for an i32.const, same encoded length: stays valid
        spots = [j for j in range(8, n - 1) if data[j] == 0x41]
        if spots:
            j = spots[a % len(spots)] + 1
            end = j
            while end < n and data[end] & 0x80 and end - j < 4:
                end += 1
            value = _CONSTS[b % len(_CONSTS)] if b % 4 else b - (1 << 15)
            data[j:end + 1] = _sleb_fixed(value, end + 1 - j)
    elif op == "data":  # bytes inside the data section's payload: always valid
        try:
            spans = [(st, en) for st, en in sections(wasm) if wasm[st] == 11 and en <= n]
        except (IndexError, ValueError):
            spans = []
        if spans and spans[0][1] - spans[0][0] > 8:
            st, en = spans[0]
            j = st + 8 + a % (en - st - 8)
            data[j] = b & 0xFF
    elif op == "valtype":  # one value type of a function type for another
        try:
            spans = [(st, en) for st, en in sections(wasm) if wasm[st] == 1 and en <= n]
        except (IndexError, ValueError):
            spans = []
        spots = [j for st, en in spans for j in range(st + 2, en) if data[j] in _VALTYPES]
        if spots:
            data[spots[a % len(spots)]] = _VALTYPES[b % len(_VALTYPES)]
    elif op in ("splice", "swap_sections", "drop_section"):
        try:
            mine = sections(wasm)
            theirs = sections(other) if other else []
        except (IndexError, ValueError):
            return bytes(data)
        if not mine:
            return bytes(data)
        s, e = mine[a % len(mine)]
        if op == "drop_section":
            del data[s:e]
        elif op == "swap_sections" and len(mine) > 1:
            s2, e2 = mine[b % len(mine)]
            if (s2, e2) != (s, e):
                (s, e), (s2, e2) = sorted(((s, e), (s2, e2)))
                data = data[:s] + data[s2:e2] + data[e:s2] + data[s:e] + data[e2:]
        elif theirs:
            s2, e2 = theirs[b % len(theirs)]
            data[s:e] = other[s2:e2]
    return bytes(data)


def _sleb_fixed(value: int, length: int) -> bytes:
    """``value`` as signed LEB128 in exactly ``length`` bytes (clipped to what fits)."""
    bits = 7 * length
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    value = max(lo, min(hi, value))
    out = bytearray()
    for k in range(length):
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if k < length - 1 else 0))
    return bytes(out)


@dataclass(slots=True)
class FuzzResult:
    inputs: int = 0
    rejected: int = 0
    accepted: int = 0
    accepted_aborted: int = 0  # accepted mutants whose run aborted (then removed)
    reject_reasons: Counter[str] = field(default_factory=Counter)
    abort_reasons: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class Stage:
    """A kernel with one target per point, owned by alice, and bob's state as witness.

    ``run(point)`` drives the operation a graft at ``point`` is consulted by, and
    returns problems: alice's data (except a filtered file, which her own filter
    may legitimately scramble) and bob's must read back intact, and the kernel's
    invariants must hold. ``witness()`` is bob's state, which no graft of alice's
    may change.
    """

    def __init__(self, k: Kernel) -> None:
        self.k = k
        # 50 ms a call: ample for well-behaved grafts on a loaded machine, short enough
        # that spinning mutants do not slow the campaign down.
        self.alice = k.add_user("alice", Quota(cpu_call_s=0.05))
        self.bob = k.add_user("bob", Quota(cpu_call_s=0.05))
        self.proc = k.spawn(self.alice, "app", k.new_group(self.alice, "app"))
        self.data = pattern(12, "alice")
        for name in ("a", "enc"):
            write_file(k, self.proc, name, self.data)
        bproc = k.spawn(self.bob, "bob", k.new_group(self.bob, "bob"))
        write_file(k, bproc, "b", pattern(6, "bob"))
        self.bob_threads = [k.sched.spawn(bproc, cpu_hog(), priority=5) for _ in range(2)]
        self.bob_aspace = k.address_space(bproc)
        self.bob_aspace.write(0, b"bob's page")
        self.bob_aspace.hints[0] = True
        self.bob_graft = k.graft(self.bob, "fs.access", _KEEPER, target=inode_of(k, "b"))
        with k.fs.open(bproc, "b", "r") as f:  # its first event allocates its handle
            k.fs.read(f, 1)
        self.alice_threads = [k.sched.spawn(self.proc, cpu_hog(), priority=1)
                              for _ in range(3)]
        self.aspace = k.address_space(self.proc)
        self.of = k.fs.open(self.proc, "a", "r")
        self.targets: dict[str, Any] = {
            "fs.readahead": self.of, "fs.filter": inode_of(k, "enc"),
            "fs.access": inode_of(k, "a"), "vm.evict": self.aspace,
            "sched.pick": self.proc.group}
        self.bprocess = bproc

    def witness(self) -> dict[str, Any]:
        b = self.bob
        return {
            "usage": usage_of(b.principal),
            "priorities": [t.priority for t in self.bob_threads],
            "hints": dict(self.bob_aspace.hints),
            "graft": (self.bob_graft.state, {h: bytes(v)
                                             for h, v in self.bob_graft.handles.items()}),
        }

    def own_state(self) -> dict[str, Any]:
        """What alice's grafts may change of hers through accessors."""
        return {"hints": dict(self.aspace.hints),
                "priorities": [t.priority for t in self.alice_threads]}

    def problems(self, point: str, label: str) -> list[str]:
        """``run(point)``'s problems under ``label``; the operation raising is one."""
        try:
            found = self.run(point)
        except Exception as exc:
            found = [f"the operation raised {exc!r}"]
        return [f"{label}: {p}" for p in found]

    def changed(self, before: dict[str, Any], label: str) -> list[str]:
        """Whether bob's state moved from ``before`` (a ``witness()``), as problems."""
        after = self.witness()
        return [] if after == before else [
            f"{label}: bob's state changed: {state_diff(before, after)}"]

    def run(self, point: str) -> list[str]:
        k = self.k
        out: list[str] = []
        if point == "fs.readahead":
            for blk in (*range(0, 12, 1), *range(11, -1, -3)):
                k.fs.seek(self.of, blk * BS)
                if k.fs.read(self.of, BS) != self.data[blk * BS:(blk + 1) * BS]:
                    out.append(f"alice's block {blk} read back wrong")
        elif point == "fs.filter":
            inode = self.targets["fs.filter"]
            try:
                with k.fs.open(self.proc, "enc", "rw") as f:
                    k.fs.write(f, self.data[: 3 * BS])
                    k.fs.seek(f, 0)
                    k.fs.read(f, 4 * BS)
            except FilterUnavailable:
                # Fails closed: refused only when no filter graft can answer for the file.
                flt = k.registry.points["fs.filter"]
                if isinstance(flt, FunctionPoint) and flt.table.get(inode) is not None:
                    out.append("a live filter's file was refused")
            k.unseal(self.alice, inode)  # the owner acts, so the next graft starts clean
        elif point == "fs.access":
            with k.fs.open(self.proc, "a", "r") as f:
                if k.fs.read(f, 3 * BS) != self.data[: 3 * BS]:
                    out.append("alice's file read back wrong")
        elif point == "vm.evict":
            for vpn in range(48):  # more pages than frames: the policy is consulted
                self.aspace.write(vpn, f"alice page {vpn}".encode())
            for vpn in range(48):
                want = f"alice page {vpn}".encode()
                if self.aspace.read(vpn)[: len(want)] != want:
                    out.append(f"alice's page {vpn} read back wrong")
        elif point == "sched.pick":
            k.sched.run(steps=4)
        with k.fs.open(self.bprocess, "b", "r") as f:
            if k.fs.read(f, 7 * BS) != pattern(6, "bob"):
                out.append("bob's file changed")
        if self.bob_aspace.read(0)[:10] != b"bob's page":
            out.append("bob's page changed")
        try:
            k.check_invariants()
        except InvariantViolation as exc:
            out.append(str(exc))
        out.extend(registry_problems(k.registry, [self.alice.principal, self.bob.principal]))
        return out


# bob's witness graft: holds a handle with known bytes (kalloc once, then keep it).
_KEEPER: Final = module(["kalloc", "kwrite"], """
  (global $h (mut i32) (i32.const 0))
  (func (export "vino_on_access") (result i32)
    (if (i32.eqz (global.get $h))
      (then (global.set $h (call $kalloc (i32.const 16)))
            (i32.store (i32.const 100) (i32.const 0x0b0b0b0b))
            (drop (call $kwrite (global.get $h) (i32.const 0) (i32.const 100) (i32.const 4)))))
    i32.const 0)""")


def try_graft(stage: Stage, point: str, source: Source, res: FuzzResult, label: str) -> None:
    """Install ``source`` as alice at ``point``; a rejection must be ``GraftRejected``;
    an accepted graft is run, protected, and must leave bob's state and every invariant
    intact. The graft is removed afterwards."""
    res.inputs += 1
    before = stage.witness()
    k = stage.k
    try:
        g = k.graft(stage.alice, point, source, target=stage.targets[point], replace=True)
    except GraftRejected as exc:
        res.rejected += 1
        res.reject_reasons[_reason_class(exc.reason)] += 1
        res.problems += stage.changed(before, label)
        return
    except Exception as exc:
        res.problems.append(f"{label}: the loader raised {exc!r}, not GraftRejected")
        return
    res.accepted += 1
    res.problems += stage.problems(point, label)
    if g.aborts:
        res.accepted_aborted += 1
        res.abort_reasons.update(a.reason.value for a in g.aborts)
    g.remove()
    res.problems += stage.changed(before, label)


def _reason_class(reason: str) -> str:
    """A rejection's reason without its particulars, for the tally."""
    for key in ("invalid WebAssembly", "malformed module", "WAT does not parse", "import",
                "missing export", "export", "start function", "memory", "table", "functions",
                "exports", "vino_buffer", "instantiation failed", "quota", "may not graft"):
        if key in reason:
            return key
    return reason.split(":")[0][:40]


def fuzz_loader(n: int = 1000, seed: int = 1, workdir: Path | None = None) -> FuzzResult:
    """``n`` mutants of the corpus (1-3 seeded mutations each, splices taken from other
    corpus modules), each installed at its point on a kernel and run if accepted."""
    rng = random.Random(seed)
    corpus = fuzz_corpus()
    res = FuzzResult()
    with scratch_kernel(workdir, nblocks=1024, frames=32) as k, quiet_undo_log():
        stage = Stage(k)
        for i in range(n):
            name, wasm, point = rng.choice(corpus)
            desc = []
            for _ in range(rng.randint(1, 3)):
                op = rng.choice(MUTATIONS)
                a, b = rng.randrange(1 << 16), rng.randrange(1 << 16)
                wasm = mutate(wasm, op, a, b, rng.choice(corpus)[1])
                desc.append(f"{op}({a},{b})")
            try_graft(stage, point, wasm, res, f"mutant {i} of {name} [{' '.join(desc)}]")
    return res



# What a hostile graft answers: a random number, or a value at an edge.
ANSWERS: Final = ("(global.get $s)", "i32.const -1", "i32.const 0", "i32.const 1",
                  "i32.const 2147483647", "i32.const -2147483648", "(i32.load (i32.const 0))",
                  "(i32.add (i32.load (i32.const 0)) (i32.const 1))", "LEN")


def random_output_graft(point: str, seed: int, answer: str, fill: int | None = None) -> str:
    """A graft that overwrites its whole buffer with bytes from a seeded generator
    (or ``fill`` bytes of the buffer, from the start) and answers ``answer``."""
    entry, params_, size = POINT_ABI[point]
    n = size if fill is None else min(fill, size)
    if answer == "LEN":
        answer = "local.get $len" if point == "fs.filter" else "i32.const 4"
    return f"""(module
  (memory (export "memory") 1)
  (global $s (mut i32) (i32.const {seed & 0x7FFFFFFF}))
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func $next (result i32)
    (global.set $s (i32.add (i32.mul (global.get $s) (i32.const 1103515245)) (i32.const 12345)))
    (i32.shr_u (global.get $s) (i32.const 16)))
  (func (export "{entry}") {params_} (result i32) (local $i i32)
    (block $done (loop $more
      (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
      (i32.store8 (local.get $i) (call $next))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $more)))
    {answer}))"""


@dataclass(slots=True)
class HostileResult:
    cases: int = 0
    committed: int = 0  # answers that passed validation (by chance, or on purpose)
    aborted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    per_point: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


def hostile_outputs(per_point: int = 40, seed: int = 1,
                    workdir: Path | None = None) -> HostileResult:
    """At every kernel point, grafts that write random bytes over their whole buffer
    (inputs and outputs alike) and answer random or edge values: validation must let
    through only acceptable answers, the operation must complete, and nothing but
    alice's own filtered file may change."""
    rng = random.Random(seed)
    res = HostileResult()
    with scratch_kernel(workdir, nblocks=1024, frames=32) as k, quiet_undo_log():
        stage = Stage(k)
        for point in POINT_ABI:
            for c in range(per_point):
                answer = ANSWERS[c % len(ANSWERS)]
                fill = None if c % 3 else rng.choice((8, 16, 84, 96, 200))
                src = random_output_graft(point, rng.randrange(1 << 31), answer, fill)
                run_case(stage, point, src, res, f"{point} case {c} ({answer}, fill {fill})")
    return res


def run_case(stage: Stage, point: str, src: str, res: HostileResult, label: str,
              allowed: frozenset[str] | None = None) -> None:
    before = stage.witness()
    mine = stage.own_state()
    res.cases += 1
    res.per_point[point] += 1
    try:
        g = stage.k.graft(stage.alice, point, src, target=stage.targets[point], replace=True)
    except GraftRejected as exc:
        res.problems.append(f"{label}: rejected: {exc.reason}")
        return
    res.problems += stage.problems(point, label)
    if g.aborts:
        res.aborted += 1
        for a in g.aborts:
            res.reasons[a.reason.value] += 1
            if allowed is not None and a.reason.value not in allowed:
                res.problems.append(f"{label}: aborted for {a.reason.value}: {a.detail}")
    if g.stats.commits:
        res.committed += 1
    elif g.aborts and stage.own_state() != mine:  # every call aborted: nothing may remain
        res.problems.append(f"{label}: aborted, yet alice's state changed: "
                            f"{state_diff(mine, stage.own_state())}")
    g.remove()
    res.problems += stage.changed(before, label)


# Graft-callables and the arguments hostile grafts pass them (wild pointers, lengths,
# handles, lock ids, other principals' threads and pages).
_WILD: Final = (0, 1, -1, 2, 3, 16, 4096, 65535, 65536, 65537, 0x7FFFFFF0, 0x7FFFFFFF,
                -0x80000000, 1 << 20)
CALLABLES: Final = {
    "log": ("(call $log {0} {1})", 2, False),
    "lock": ("(drop (call $lock {0}))", 1, True),
    "kalloc": ("(drop (call $kalloc {0}))", 1, True),
    "kfree": ("(call $kfree {0})", 1, False),
    "kread": ("(drop (call $kread {0} {1} {2} {3}))", 4, True),
    "kwrite": ("(drop (call $kwrite {0} {1} {2} {3}))", 4, True),
    "default": ("(drop (call $default))", 0, True),
    "now": ("(drop (call $now))", 0, True),
}
_POINT_CALLABLES: Final = {
    "sched.pick": ("sched_set_priority",
                   '(import "vino" "sched_set_priority" (func $prio (param i32 i32) '
                   "(result i32)))", "(drop (call $prio {0} {1}))"),
    "vm.evict": ("vm_hint", '(import "vino" "vm_hint" (func $hint (param i32 i32) '
                            "(result i32)))", "(drop (call $hint {0} {1}))"),
}


def hostile_call_graft(point: str, calls: list[tuple[str, list[int]]]) -> str:
    """A graft at ``point`` making ``calls`` (callable, arguments) in order, then giving
    an acceptable answer (0, or the length for fs.filter)."""
    entry, params_, _ = POINT_ABI[point]
    own = _POINT_CALLABLES.get(point)
    lines = []
    for name, args in calls:
        pattern_ = own[2] if own is not None and name == own[0] else CALLABLES[name][0]
        lines.append(pattern_.format(*(f"(i32.const {a})" for a in args)))
    answer = "local.get $len" if point == "fs.filter" else "i32.const 0"
    imports = [n for n in ("log", "lock", "kalloc", "kfree", "kread", "kwrite", "now")]
    if point != "fs.access":
        imports.append("default")
    return "\n".join((
        "(module",
        *(import_line(i) for i in imports),
        own[1] if own is not None else "",
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32) i32.const 0)',
        f'  (func (export "{entry}") {params_} (result i32)',
        *("    " + ln for ln in lines),
        f"    {answer}))",
    ))


# Why a graft calling graft-callables with hostile arguments may be aborted: anything
# else (host_error above all) would mean a graft-callable mishandled an argument.
HOSTILE_CALL_REASONS: Final = frozenset({"forbidden_call", "trap", "resource", "timeout",
                                         "lock_timeout", "invalid_result"})


def hostile_callables(cases: int = 300, seed: int = 1,
                      workdir: Path | None = None) -> HostileResult:
    """Grafts of alice's at every kernel point call every graft-callable with wild
    arguments: pointers outside their memory, huge and negative lengths, handles they
    never had (bob's graft holds handle 1), a second kfree of a handle, lock ids out of
    range, bob's threads and pages, vpns past the ABI. The only acceptable outcomes:
    the call returns an error code, or the graft is aborted (never for ``host_error``);
    bob's state never changes; alice's is back to before after an abort."""
    rng = random.Random(seed)
    res = HostileResult()
    with scratch_kernel(workdir, nblocks=1024, frames=32) as k, quiet_undo_log():
        stage = Stage(k)
        foreign_tids = [t.tid for t in stage.bob_threads]
        own_tids = [t.tid for t in stage.alice_threads]
        points = list(POINT_ABI)
        for c in range(cases):
            point = points[c % len(points)]
            names = list(CALLABLES) + ([_POINT_CALLABLES[point][0]]
                                       if point in _POINT_CALLABLES else [])
            if point == "fs.access":
                names.remove("default")
            calls: list[tuple[str, list[int]]] = []
            for _ in range(rng.randint(1, 4)):
                name = rng.choice(names)
                if name == "kfree" and rng.random() < 0.5:  # twice, on a handle it has
                    calls += [("kalloc", [16]), ("kfree", [1]), ("kfree", [1])]
                    continue
                nargs = CALLABLES[name][1] if name in CALLABLES else 2
                args = [rng.choice(_WILD) for _ in range(nargs)]
                if name == "sched_set_priority":
                    args[0] = rng.choice(foreign_tids + own_tids + [0, 999999])
                calls.append((name, args))
            src = hostile_call_graft(point, calls)
            run_case(stage, point, src, res, f"{point} {calls}", HOSTILE_CALL_REASONS)
            if any(t.priority != 1 for t in stage.alice_threads):
                # sched_set_priority on its own group is allowed: put them back
                for t in stage.alice_threads:
                    t.priority = 1
    return res

