"""Crash loops (SQLite's method) for the file system: power off at every write, check.

``run`` takes a seeded workload of creates, writes (appends, overwrites, holes out to
the double-indirect blocks), truncates (``truncate`` and open-for-``"w"``), unlinks
(some of open files, written after the unlink), renames (some replacing a file) and
syncs, counts its device writes, and then for
every N (or every ``stride``-th) and every crash model of ``vino.kernel.crash``
replays it on a fresh copy of the starting image with the power cut at write N.
After each cut:

1. ``fsck`` finds the image clean (``vino.kernel.fsck``; the log is replayed in
   memory, as a mount would);
2. it mounts (never unmountable), and the file system's own invariants hold;
3. the names and sizes are exactly those of one state ``S_j`` the workload passed
   through between the last completed sync and the operation the power cut
   (operations are atomic; nothing before the last sync is lost), and every
   512-byte sector of every file is what that file held there in ``S_j`` or in a
   later state up to the cut (ordered mode: data written in place may be ahead
   of the metadata, never behind a commit, never another file's);
4. it still works: a new file written and synced, unmounted, and fsck clean again.

Usage::

    figures = run(workdir, models=list(CrashModel), stride=1, seeds=1)
    figures.tried, figures.survived, figures.failures    # per model

``vino crashloop [--full]`` runs it from the command line; the bounded loop runs in
the tests and the full one is marked slow. Everything is deterministic: a failure
names the seed, the model and N, which replay it exactly.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vino.kernel import params
from vino.kernel.cache import Cache
from vino.kernel.clock import SimClock
from vino.kernel.crash import SECTOR_SIZE, CrashModel, CrashPlan, count_writes, crash_image
from vino.kernel.device import SSD, BlockDevice
from vino.kernel.fs import NDIRECT, NINDIRECT, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.proc import User

__all__ = ["CrashFigures", "Op", "run", "workload"]

BS = params.BLOCK_SIZE
IMAGE_BLOCKS = 160  # small: copied for every crash point, and allocation wraps around
IMAGE_INODES = 32
CACHE_FRAMES = 8  # a small cache: data is written back by eviction between syncs too
WORKLOAD_OPS = 48  # operations in one workload
SYNC_EVERY = 4  # ... a sync after about every this many


@dataclass(frozen=True, slots=True)
class Op:
    """One step: ``create``, ``write`` (``data`` at ``pos``), ``truncate`` (to ``pos``),
    ``wtrunc`` (open for "w"), ``unlink``, ``orphan`` (unlinked while open, then
    ``data`` written to it and closed), ``rename`` (to ``other``) or ``sync``."""

    kind: str
    name: str = ""
    pos: int = 0
    data: bytes = b""
    other: str = ""


# A state: name -> (file id, content). File ids follow a file through renames.
State = dict[str, tuple[int, bytes]]


def workload(seed: int, nops: int = WORKLOAD_OPS) -> tuple[State, list[Op]]:
    """The starting files and a seeded list of operations over them."""
    rng = random.Random(seed)
    start: State = {f"f{i}": (i, rng.randbytes(rng.randrange(1, 3 * BS))) for i in range(3)}
    names = dict.fromkeys(start)
    ops: list[Op] = []
    fresh = 3
    for i in range(nops):
        if i % SYNC_EVERY == SYNC_EVERY - 1:
            ops.append(Op("sync"))
            continue
        kind = rng.choice(["create", "write", "write", "write", "truncate", "wtrunc",
                           "unlink", "orphan", "rename"])
        if kind == "create" or not names:
            name = f"n{fresh}"
            fresh += 1
            ops.append(Op("create", name))
            names[name] = None
            continue
        name = rng.choice(sorted(names))
        if kind == "write":
            where = rng.random()
            if where < 0.1:  # a hole out to the double-indirect blocks
                pos = (NDIRECT + NINDIRECT + rng.randrange(4)) * BS + rng.randrange(BS)
            elif where < 0.2:
                pos = (NDIRECT + rng.randrange(8)) * BS  # single indirect
            else:
                pos = rng.randrange(0, 4 * BS)
            ops.append(Op("write", name, pos, rng.randbytes(rng.randrange(1, 2 * BS + 100))))
        elif kind == "truncate":
            ops.append(Op("truncate", name, rng.randrange(0, 3 * BS)))
        elif kind == "wtrunc":
            ops.append(Op("wtrunc", name))
        elif kind in ("unlink", "orphan"):
            ops.append(Op(kind, name, data=rng.randbytes(BS) if kind == "orphan" else b""))
            del names[name]
        else:
            other = rng.choice([*sorted(names), f"n{fresh}"])
            if other == f"n{fresh}":
                fresh += 1
            ops.append(Op("rename", name, other=other))
            del names[name]
            names[other] = None
    return start, ops


def states(start: State, ops: list[Op]) -> list[State]:
    """``S_0`` (the start) and the state after each operation (the model)."""
    out = [dict(start)]
    cur = dict(start)
    next_id = 1000
    for op in ops:
        cur = dict(cur)
        if op.kind == "create":
            cur[op.name] = (next_id, b"")
            next_id += 1
        elif op.kind == "write":
            fid, old = cur[op.name]
            buf = bytearray(old)
            if len(buf) < op.pos:
                buf.extend(bytes(op.pos - len(buf)))
            buf[op.pos:op.pos + len(op.data)] = op.data
            cur[op.name] = (fid, bytes(buf))
        elif op.kind == "truncate":
            fid, old = cur[op.name]
            cur[op.name] = (fid, old[:op.pos] + bytes(max(0, op.pos - len(old))))
        elif op.kind == "wtrunc":
            cur[op.name] = (cur[op.name][0], b"")
        elif op.kind in ("unlink", "orphan"):
            del cur[op.name]
        elif op.kind == "rename":
            cur[op.other] = cur.pop(op.name)
        out.append(cur)
    return out


def _apply(fs: FileSystem, user: User, op: Op) -> None:
    if op.kind == "create":
        fs.create(user, op.name)
    elif op.kind == "write":
        with fs.open(user, op.name, "rw") as f:
            fs.seek(f, op.pos)
            fs.write(f, op.data)
    elif op.kind == "truncate":
        with fs.open(user, op.name, "rw") as f:
            fs.truncate(f, op.pos)
    elif op.kind == "wtrunc":
        fs.close(fs.open(user, op.name, "w"))
    elif op.kind == "unlink":
        fs.unlink(user, op.name)
    elif op.kind == "orphan":  # unlinked while open, written, then closed (freed)
        with fs.open(user, op.name, "rw") as f:
            fs.unlink(user, op.name)
            fs.seek(f, 2 * BS)
            fs.write(f, op.data)
    elif op.kind == "rename":
        fs.rename(user, op.name, op.other)
    else:
        fs.sync()


_USER = User(0, "root")


def make_image(path: Path, start: State) -> None:
    """A formatted image holding ``start``, synced and cleanly unmounted."""
    with BlockDevice.create(path, IMAGE_BLOCKS, profile=SSD, durable=False,
                            overwrite=True) as dev:
        FileSystem.format(dev, IMAGE_INODES)
        fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        for name, (_, data) in start.items():
            fs.create(_USER, name)
            with fs.open(_USER, name, "w") as f:
                fs.write(f, data)
        fs.unmount()


def _runner(ops: list[Op], done: list[int]) -> Callable[[BlockDevice], None]:
    """The workload on a device; ``done[0]`` counts the operations that returned."""
    def run_on(dev: BlockDevice) -> None:
        fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        for op in ops:
            _apply(fs, _USER, op)
            done[0] += 1
        fs.unmount()
        done[0] += 1  # the unmount, a last sync
    return run_on


def check_after_crash(image: Path, model: list[State], ops: list[Op], done: int) -> list[str]:
    """Problems with ``image`` after a cut during operation ``done`` (0-based; ``len(ops)``
    is the unmount). Empty if it passed every check of the module docstring."""
    report = check_image(image)
    if not report.clean:
        return [f"fsck: {d}" for d in report.damage]
    last_sync = max([0] + [i + 1 for i in range(min(done, len(ops))) if ops[i].kind == "sync"])
    if done > len(ops):  # the unmount completed
        last_sync = len(ops)
    hi = min(done + 1, len(ops))  # the operation in progress may have committed
    with BlockDevice.open(image, profile=SSD, durable=False) as dev:
        try:
            fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        except Exception as exc:
            return [f"mount failed: {exc!r}"]
        try:
            fs.check_invariants()
        except AssertionError as exc:
            return [f"invariants after mount: {exc}"]
        got: dict[str, bytes] = {}
        for name in fs.listdir():
            with fs.open(_USER, name, "r") as f:
                got[name] = fs.read(f, fs.stat(name).size + 1)
        problems = _match(got, model, last_sync, hi)
        # still usable: a new file, synced, unmounted cleanly
        fs.create(_USER, "after-crash")
        with fs.open(_USER, "after-crash", "w") as f:
            fs.write(f, b"alive" * 1000)
        fs.sync()
        fs.unmount()
    again = check_image(image)
    if not again.clean:
        problems += [f"fsck after reuse: {d}" for d in again.damage]
    return problems


def _match(got: dict[str, bytes], model: list[State], lo: int, hi: int) -> list[str]:
    """Empty if ``got`` is some ``model[j]``, ``lo <= j <= hi``, as the docstring says."""
    shape = {n: len(d) for n, d in got.items()}
    tried = []
    for j in range(lo, hi + 1):
        if {n: len(d) for n, (_, d) in model[j].items()} != shape:
            continue
        tried.append(j)
        if all(_sectors_match(data, model[j][n][0], j, hi, model) for n, data in got.items()):
            return []
    if not tried:
        return [f"names/sizes {sorted(shape.items())} match no state {lo}..{hi}"]
    return [f"file contents match no state among {tried} (of {lo}..{hi})"]


def _sectors_match(data: bytes, fid: int, j: int, hi: int, model: list[State]) -> bool:
    versions = [d for s in model[j:hi + 1] for (i, d) in s.values() if i == fid]
    for off in range(0, len(data), SECTOR_SIZE):
        sector = data[off:off + SECTOR_SIZE]
        if not any(v[off:off + len(sector)] == sector for v in versions
                   if len(v) >= off + len(sector)):
            return False
    return True


@dataclass(slots=True)
class CrashFigures:
    """What a crash loop tried and what survived, per crash model."""

    writes: int = 0  # write requests the workload makes (crash points 1..writes)
    ops: int = 0
    tried: dict[str, int] = field(default_factory=dict)  # crash points tried per model
    survived: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def run(workdir: Path, models: list[CrashModel] | None = None, *, stride: int = 1,
        seeds: int = 1, workload_seed: int = 11, nops: int = WORKLOAD_OPS,
        progress: Callable[[str], None] | None = None) -> CrashFigures:
    """Crash the workload of ``workload_seed`` at every ``stride``-th write with every
    model (``seeds`` seeds each for torn and lost) and check every outcome."""
    models = list(CrashModel) if models is None else models
    start, ops = workload(workload_seed, nops)
    model = states(start, ops)
    base = workdir / "base.img"
    make_image(base, start)
    scratch = workdir / "crash.img"
    shutil.copyfile(base, scratch)
    done = [0]
    figures = CrashFigures(ops=len(ops))
    figures.writes = count_writes(scratch, _runner(ops, done))
    problems = check_after_crash(scratch, model, ops, len(ops) + 1)  # no crash at all
    figures.failures += [f"without a crash: {p}" for p in problems]
    for m in models:
        figures.tried[m.value] = figures.survived[m.value] = 0
        for n in range(1, figures.writes + 1, stride):
            for seed in range(seeds if m is not CrashModel.CUT else 1):
                shutil.copyfile(base, scratch)
                done[0] = 0
                crash_image(scratch, _runner(ops, done), CrashPlan(n, m, seed))
                problems = check_after_crash(scratch, model, ops, done[0])
                figures.tried[m.value] += 1
                if problems:
                    figures.failures.append(
                        f"{m.value} N={n} seed={seed} (op {done[0]}): {'; '.join(problems)}")
                else:
                    figures.survived[m.value] += 1
        if progress is not None:
            progress(f"{m.value}: {figures.survived[m.value]}/{figures.tried[m.value]} survived")
    return figures
