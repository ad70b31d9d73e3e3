"""The four benchmark set-ups: a booted kernel, the sample graft installed, real inputs.

``build(key, workdir)`` boots a fresh kernel for one of the paper's sample
grafts and returns a ``Setup``: the kernel's graft point, the subsystem policy slot
wired to it (``hook``), the sample graft installed on one target and, on other
targets of the same point, three helper grafts written in WAT here:

- ``null``: the point's entry with no work, returning a valid answer (for the
  time inside the sample graft by difference, and for ``lock``);
- ``lock``: takes its target's lock (``lock(1)``, resolved by the kernel point)
  and answers like ``null`` -- only on points that resolve a lock (``vm.evict``,
  ``sched.pick``); ``fs.readahead`` and ``fs.filter`` offer grafts no lock;
- ``invalid``: answers something the validator rejects; installed with a huge
  ``remove_after`` so it is aborted on every call but never removed;
- ``undo`` (``vm.evict``, ``sched.pick``): makes one accessor call (``vm_hint`` /
  ``sched_set_priority``) and then answers invalidly, so its abort has one undo
  entry to run.

Inputs are the ones the sample workloads (``vino.workloads``) produce:

- read-ahead: a 256-block file read backwards; the call made at the start of a
  window (block 128, history 128, 129, ...: the blocks are read, backwards,
  before anything is timed), where the graft prefetches 8 blocks;
- VM eviction: the fullest candidate list offered to ``vm.evict`` during a run
  of ``eviction_run``'s access pattern (16 important pages, cold scans, 48
  frames), with the graft told the 16 important pages;
- scheduling: the runnable threads of ``sched_run``'s group (one interactive
  thread, four CPU hogs) at the last ``sched.pick`` call that offers all five;
- encryption: one 4 KiB block written at file offset 8192 through the ChaCha20
  filter, keyed by a message; its scalar reference (``chacha20_filter_scalar``)
  and the same filter on the kernel's cipher (``chacha20_kernel``) are installed
  with the same key, each on a file of its own (roles ``scalar``, ``kernel``).

Every set-up checks, before anything is timed, that the sample graft, the
Python policy and (where they should) the default agree on the answer.

Only public seams: the hook is the subsystem's policy slot (``fs.readahead_policy``,
``cache.evict_policy``, ``sched.pick_policy``, ``fs.filter_policy``), which the
kernel fills with its graft point; the inputs are recorded by plugging a policy
that records and delegates into the same slot while the workload runs, then
putting the kernel's back.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from vino import limits
from vino.bench import bench_quota, paper
from vino.bench.policies import (
    ChaCha20Native,
    ChaCha20Python,
    EvictKeep,
    ReadaheadStride,
    sched_interactive,
)
from vino.graft import FunctionPoint, Graft, Registry
from vino.graft.layout import Field
from vino.graft.sandbox import Sandbox
from vino.kernel import layouts, params
from vino.kernel.cache import AddressSpace, PageInfo, Victims
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.kernel.proc import ProcessGroup
from vino.kernel.sched import ThreadInfo, cpu_hog, interactive_loop
from vino.sdk.build import sample_path
from vino.workloads import (
    EVICT_FRAMES,
    EVICT_HOT,
    RA_FILE_BLOCKS,
    SCHED_HOGS,
    SCHED_UI_BURST_NS,
    SCHED_UI_WAIT_NS,
    evict_rounds,
    hot_set_message,
    write_hot_pages,
)

BS: Final = params.BLOCK_SIZE
NEVER_REMOVE: Final = limits.NEVER_REMOVE  # the invalid and undo grafts survive every abort

RA_BLOCK: Final = 128  # a window start of the backward scan (multiple of max_out)
EVICT_ROUNDS: Final = 3  # rounds of the eviction pattern run to record its candidates
SCHED_RUN_NS: Final = 200_000_000  # simulated time the scheduler runs to record its rows
FILTER_OFFSET: Final = 8192
FILTER_WRITE: Final = 0
UNDO_VPN: Final = 7  # the page the undo graft marks important (undone by its abort)
UNDO_PRIORITY: Final = 5  # the priority the undo graft sets (undone by its abort)
SCALAR_SAMPLE: Final = "chacha20_filter_scalar.wasm"  # the encryption sample a block at a time
KERNEL_SAMPLE: Final = "chacha20_kernel.wasm"  # the same filter on the kernel's cipher
CHACHA_KEY: Final = hashlib.sha256(b"vino bench key").digest()
CHACHA_NONCE: Final = hashlib.sha256(b"vino bench nonce").digest()[:12]

_MODULE = """(module
  {imports}
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 1024)
  (func (export "{entry}") {params} (result i32) {body}))"""
_LOCK_IMPORT = '(import "vino" "lock" (func $lock (param i32) (result i32)))'
_LOCK_BODY = "(drop (call $lock (i32.const 1))) (i32.const 0)"


def _wat(entry: str, params_decl: str, body: str, imports: str = "") -> str:
    return _MODULE.format(imports=imports, entry=entry, params=params_decl, body=body)


@dataclass(slots=True)
class Setup:
    """One sample graft on a booted kernel, with everything the benchmarks call."""

    key: str  # paper.GRAFTS
    kernel: Kernel
    point: FunctionPoint[Any, *tuple[Any, ...], Any]
    hook: Callable[..., Any]  # the subsystem's policy slot, the point plugged in
    sample: Path
    message: bytes | None  # sent to the sample graft after install
    targets: dict[str, Any]  # role ("sample", "null", "lock", "invalid") -> target
    grafts: dict[str, Graft]
    make_args: Callable[[Any], tuple[Any, ...]]  # target -> the point's arguments
    make_hook_args: Callable[[Any], tuple[Any, ...]]  # target -> the hook's arguments
    wasm_args: tuple[int, ...]  # the entry's own arguments (fs.filter: direction, len)
    python: Callable[..., Any]  # the policy in plain Python (the floor)
    extra_python: dict[str, Callable[..., Any]] = field(default_factory=dict)
    in_bytes: int = 0  # bytes of the buffer the inputs occupy (for peers copying by hand)
    out_range: tuple[int, int] | None = None  # buffer bytes holding the output, if any
    expected: Any = None  # the sample graft's answer on these inputs
    # The hook for the abort path, when a failed call there ends in a refusal (fs.filter
    # fails closed: FilterUnavailable) rather than the default's answer; None: ``hook``.
    abort_hook: Callable[..., Any] | None = None

    @property
    def title(self) -> str:
        return paper.TITLES[self.key]

    def args(self, role: str = "sample") -> tuple[Any, ...]:
        return self.make_args(self.targets[role])

    def hook_args(self, role: str = "sample") -> tuple[Any, ...]:
        return self.make_hook_args(self.targets[role])

    def close(self) -> None:
        """Shut the kernel down (a shared sandbox stays open: its owner closes it)."""
        self.kernel.shutdown()


def _install_undo(k: Kernel, user: Any, point: str, entry: str, target: Any, callable_: str,
                  call: str) -> Graft:
    imports = f'(import "vino" "{callable_}" (func $acc (param i32 i32) (result i32)))'
    body = f"(drop (call $acc {call})) (i32.const 100000)"
    return k.graft(user, point, _wat(entry, "", body, imports), target, name=f"{point}-undo",
                   remove_after=NEVER_REMOVE)


def _install_helpers(k: Kernel, user: Any, point: str, entry: str, params_decl: str,
                     null_body: str, invalid_body: str, targets: dict[str, Any],
                     with_lock: bool) -> dict[str, Graft]:
    grafts = {
        "null": k.graft(user, point, _wat(entry, params_decl, null_body), targets["null"],
                        name=f"{point}-null"),
        "invalid": k.graft(user, point, _wat(entry, params_decl, invalid_body),
                           targets["invalid"], name=f"{point}-invalid",
                           remove_after=NEVER_REMOVE),
    }
    if with_lock:
        grafts["lock"] = k.graft(user, point, _wat(entry, params_decl, _LOCK_BODY, _LOCK_IMPORT),
                                 targets["lock"], name=f"{point}-lock")
    return grafts


def _span(f: Field) -> tuple[int, int]:
    """The buffer bytes a layout field occupies."""
    return (f.offset, f.end)


def _function_point(k: Kernel, name: str) -> FunctionPoint[Any, *tuple[Any, ...], Any]:
    point = k.points[name]
    if not isinstance(point, FunctionPoint):
        raise TypeError(f"{name} is not a function point")
    return point


def _boot(workdir: Path, name: str, sandbox: Sandbox | None, **kw: Any) -> tuple[Kernel, Any]:
    registry = Registry(sandbox=sandbox) if sandbox is not None else None
    k = Kernel.boot(workdir / f"bench-{name}.img", registry=registry, **kw)
    user = k.add_user("bench", bench_quota())
    return k, user


def _readahead(workdir: Path, sandbox: Sandbox | None) -> Setup:
    k, user = _boot(workdir, "readahead", sandbox)
    proc = k.spawn(user, "tac")
    k.fs.create(user, "log", 0o600)
    with k.fs.open(proc, "log", "w") as f:
        k.fs.write(f, bytes(RA_FILE_BLOCKS * BS))
    targets = {role: k.fs.open(proc, "log", "r") for role in ("sample", "null", "invalid")}
    scanned = list(range(RA_BLOCK, RA_BLOCK + params.READAHEAD_HISTORY))
    for of in targets.values():  # a backward scan that has just read RA_BLOCK
        for b in reversed(scanned):
            k.fs.seek(of, b * BS)
            k.fs.read(of, BS)
        if of.history != scanned:
            raise AssertionError(f"read-ahead: the scan left the history {of.history}")
    sample = sample_path(paper.SAMPLES["readahead"])
    grafts = {"sample": k.graft(user, "fs.readahead", sample, targets["sample"])}
    grafts |= _install_helpers(k, user, "fs.readahead", "vino_readahead", "",
                               "(i32.const 0)", "(i32.const 33)", targets, with_lock=False)

    def make_args(of: Any) -> tuple[Any, ...]:
        return (of, RA_BLOCK)

    return Setup("readahead", k, _function_point(k, "fs.readahead"), k.fs.readahead_policy,
                 sample, None,
                 targets, grafts, make_args, make_args, (), ReadaheadStride(k.fs),
                 in_bytes=layouts.READAHEAD.field("hist").end,
                 out_range=_span(layouts.READAHEAD.field("out")))


def _evict(workdir: Path, sandbox: Sandbox | None) -> Setup:
    k, user = _boot(workdir, "evict", sandbox, frames=EVICT_FRAMES)
    procs = {role: k.spawn(user, f"db-{role}")
             for role in ("sample", "null", "lock", "invalid", "undo")}
    targets = {role: k.address_space(p) for role, p in procs.items()}
    aspace = targets["sample"]
    sample = sample_path(paper.SAMPLES["evict"])
    message = hot_set_message(EVICT_HOT)
    g = k.graft(user, "vm.evict", sample, aspace)
    g.send(message)
    seen: list[list[PageInfo]] = []
    wired = k.cache.evict_policy

    def record(a: AddressSpace, cands: list[PageInfo]) -> Victims:
        if a is aspace:
            seen.append(list(cands))
        return wired(a, cands)

    k.cache.evict_policy = record
    try:
        write_hot_pages(aspace)
        evict_rounds(aspace, EVICT_ROUNDS)
    finally:
        k.cache.evict_policy = wired
    cands = max(seen, key=len)  # the fullest call (all candidates resident)
    grafts = {"sample": g}
    grafts |= _install_helpers(k, user, "vm.evict", "vino_evict", "", "(i32.const 0)",
                               "(i32.const 100000)", targets, with_lock=True)
    grafts["undo"] = _install_undo(k, user, "vm.evict", "vino_evict", targets["undo"],
                                   "vm_hint", f"(i32.const {UNDO_VPN}) (i32.const 1)")

    def make_args(a: Any) -> tuple[Any, ...]:
        return (a, cands)

    cand = layouts.EVICT.field("cand")
    return Setup("evict", k, _function_point(k, "vm.evict"), k.cache.evict_policy, sample,
                 message, targets, grafts, make_args, make_args, (), EvictKeep(EVICT_HOT),
                 in_bytes=cand.offset + cand.elem_size * len(cands),
                 out_range=_span(layouts.EVICT.field("more")))


def _sched(workdir: Path, sandbox: Sandbox | None) -> Setup:
    k, user = _boot(workdir, "sched", sandbox)
    groups = {role: k.new_group(user, role)
              for role in ("sample", "null", "lock", "invalid", "undo")}
    group = groups["sample"]
    proc = k.spawn(user, "editor", group)
    for _ in range(SCHED_HOGS):
        k.sched.spawn(proc, cpu_hog())
    k.sched.spawn(proc, interactive_loop(SCHED_UI_BURST_NS, SCHED_UI_WAIT_NS), interactive=True)
    sample = sample_path(paper.SAMPLES["sched"])
    g = k.graft(user, "sched.pick", sample, group)
    seen: list[list[ThreadInfo]] = []
    wired = k.sched.pick_policy

    def record(gp: ProcessGroup, rows: list[ThreadInfo]) -> int:
        seen.append(list(rows))
        return wired(gp, rows)

    k.sched.pick_policy = record
    try:
        k.sched.run(until_ns=k.clock.now_ns() + SCHED_RUN_NS)
    finally:
        k.sched.pick_policy = wired
    full = [rows for rows in seen if len(rows) == SCHED_HOGS + 1]
    rows = (full or seen)[-1]
    grafts = {"sample": g}
    grafts |= _install_helpers(k, user, "sched.pick", "vino_pick", "", "(i32.const 0)",
                               "(i32.const 100000)", groups, with_lock=True)
    # A thread of the undo graft's own group, created after the run so the rows stay as seen.
    victim = k.sched.spawn(k.spawn(user, "undo", groups["undo"]), [])
    grafts["undo"] = _install_undo(k, user, "sched.pick", "vino_pick", groups["undo"],
                                   "sched_set_priority",
                                   f"(i32.const {victim.tid}) (i32.const {UNDO_PRIORITY})")
    k.pick_point(groups["undo"], groups["undo"], rows)
    if victim.priority == UNDO_PRIORITY:
        raise AssertionError("sched: the undo graft's sched_set_priority survived its abort")

    def make_args(gp: Any) -> tuple[Any, ...]:
        return (gp, rows)

    thread = layouts.PICK.field("thread")
    return Setup("sched", k, _function_point(k, "sched.pick"), k.sched.pick_policy, sample, None,
                 groups, grafts, make_args, make_args, (), sched_interactive,
                 in_bytes=thread.offset + thread.elem_size * len(rows))


def _encrypt(workdir: Path, sandbox: Sandbox | None) -> Setup:
    k, user = _boot(workdir, "encrypt", sandbox)
    proc = k.spawn(user, "vault")
    targets: dict[str, Any] = {}
    for role in ("sample", "scalar", "kernel", "null", "invalid"):
        k.fs.create(user, role, 0o600)
        with k.fs.open(proc, role, "rw") as f:
            targets[role] = f.inode
    sample = sample_path(paper.SAMPLES["encrypt"])
    message = CHACHA_KEY + CHACHA_NONCE
    g = k.graft(user, "fs.filter", sample, targets["sample"])
    g.send(message)
    # The sample's scalar reference, and the same filter asking the kernel's cipher, with
    # the same key (vino bench cipher times them side by side).
    grafts = {"sample": g}
    for role, name in (("scalar", SCALAR_SAMPLE), ("kernel", KERNEL_SAMPLE)):
        grafts[role] = k.graft(user, "fs.filter", sample_path(name), targets[role])
        grafts[role].send(message)
    grafts |= _install_helpers(k, user, "fs.filter", "vino_filter",
                               "(param i32 i32)", "(local.get 1)",
                               "(i32.add (local.get 1) (i32.const 1))", targets,
                               with_lock=False)
    plaintext = (b"The quick brown fox jumps over the lazy dog. " * 100)[:BS]
    block = bytearray(plaintext)

    def make_args(inode: Any) -> tuple[Any, ...]:
        return (inode, FILTER_OFFSET, plaintext, FILTER_WRITE)

    def make_hook_args(inode: Any) -> tuple[Any, ...]:
        return (inode, FILTER_OFFSET, block, FILTER_WRITE)

    hook = k.fs.filter_policy
    data = layouts.FILTER.field("data")

    def refused(*args: Any) -> None:
        with contextlib.suppress(FilterUnavailable):  # a failed filter call refuses
            hook(*args)

    return Setup("encrypt", k, _function_point(k, "fs.filter"), hook, sample, message,
                 targets, grafts, make_args, make_hook_args, (FILTER_WRITE, BS),
                 ChaCha20Native(CHACHA_KEY, CHACHA_NONCE),
                 {"python (pure)": ChaCha20Python(CHACHA_KEY, CHACHA_NONCE)},
                 in_bytes=data.end, out_range=_span(data), abort_hook=refused)


_BUILDERS: Final[dict[str, Callable[[Path, Sandbox | None], Setup]]] = {
    "readahead": _readahead, "evict": _evict, "sched": _sched, "encrypt": _encrypt}


def build(key: str, workdir: Path, sandbox: Sandbox | None = None) -> Setup:
    """Boot a kernel for graft ``key`` (``paper.GRAFTS``) and check every answer agrees.

    With ``sandbox``, the kernel's registry uses it (one engine and one epoch
    ticker for several set-ups, as in one host; the caller closes it);
    otherwise the kernel has a sandbox of its own.
    """
    s = _BUILDERS[key](workdir, sandbox)
    try:
        _check(s)
    except BaseException:
        s.close()
        raise
    return s


def _check(s: Setup) -> None:
    args = s.args()
    got = s.point(s.targets["sample"], *args)
    want = s.python(*args)
    if got != want:
        raise AssertionError(f"{s.key}: sample graft answered {got!r}, Python policy {want!r}")
    for name, f in s.extra_python.items():
        if f(*args) != want:
            raise AssertionError(f"{s.key}: {name} disagrees with the Python policy")
    if s.key == "readahead" and not got:
        raise AssertionError("read-ahead: the benchmark call should prefetch a window")
    if s.key == "encrypt" and got == args[2]:
        raise AssertionError("encryption: the filter left the block unchanged")
    sample = s.grafts["sample"]
    if sample.stats.aborts:
        raise AssertionError(f"{s.key}: the sample graft aborted: {sample.aborts}")
    inv = s.grafts["invalid"]
    with contextlib.suppress(FilterUnavailable):  # fs.filter refuses once its graft failed
        s.point(s.targets["invalid"], *s.args("invalid"))
    if not inv.stats.aborts.get("invalid_result"):
        raise AssertionError(f"{s.key}: the invalid graft was not aborted for invalid_result")
    if "undo" in s.grafts:
        undo = s.grafts["undo"]
        s.point(s.targets["undo"], *s.args("undo"))
        if not undo.stats.aborts.get("invalid_result"):
            raise AssertionError(f"{s.key}: the undo graft was not aborted for invalid_result")
        if s.key == "evict" and UNDO_VPN in s.targets["undo"].hints:
            raise AssertionError("evict: the undo graft's vm_hint survived its abort")
    s.expected = got
