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

import contextlib
import errno
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
from vino.kernel.errors import DeviceError, NoSpace
from vino.kernel.fs import NDIRECT, NINDIRECT, FileSystem
from vino.kernel.fsck import check_image
from vino.kernel.proc import User

__all__ = ["FULL_DISK_BLOCKS", "CrashFigures", "Op", "run", "run_eio", "workload"]

BS = params.BLOCK_SIZE
IMAGE_BLOCKS = 160  # small: copied for every crash point, and allocation wraps around
IMAGE_INODES = 32
CACHE_FRAMES = 8  # a small cache: data is written back by eviction between syncs too
WORKLOAD_OPS = 48  # operations in one workload
SYNC_EVERY = 4  # ... a sync after about every this many
FULL_DISK_BLOCKS = 36  # an image the workload fills (8 data blocks): operations meet NoSpace


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


def states(start: State, ops: list[Op], full: frozenset[int] = frozenset()) -> list[State]:
    """``S_0`` (the start) and the state after each operation (the model). The
    operations numbered in ``full`` met a full disk (``NoSpace``, which changes
    nothing): each left the state as it was, but an ``orphan``, whose unlink came
    before its write."""
    out = [dict(start)]
    cur = dict(start)
    next_id = 1000
    for i, op in enumerate(ops):
        cur = dict(cur)
        if i in full and op.kind != "orphan":
            pass
        elif op.kind == "create":
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


def make_image(path: Path, start: State, nblocks: int = IMAGE_BLOCKS) -> None:
    """A formatted image of ``nblocks`` holding ``start``, synced and cleanly unmounted."""
    with BlockDevice.create(path, nblocks, profile=SSD, durable=False,
                            overwrite=True) as dev:
        FileSystem.format(dev, IMAGE_INODES)
        fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        for name, (_, data) in start.items():
            fs.create(_USER, name)
            with fs.open(_USER, name, "w") as f:
                fs.write(f, data)
        fs.unmount()


def _runner(ops: list[Op], done: list[int],
            full: set[int] | None = None) -> Callable[[BlockDevice], None]:
    """The workload on a device; ``done[0]`` counts the operations that returned (or
    met a full disk: their numbers go to ``full``)."""
    def run_on(dev: BlockDevice) -> None:
        fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        for i, op in enumerate(ops):
            try:
                _apply(fs, _USER, op)
            except NoSpace:
                if full is not None:
                    full.add(i)
            done[0] += 1
        fs.unmount()
        done[0] += 1  # the unmount, a last sync
    return run_on


def _mount_only(dev: BlockDevice) -> None:
    """What a reboot does to an image: mount it (replaying its log)."""
    FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())


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
        # still usable: a new file, synced, unmounted cleanly (on a full disk, as much
        # of it as fits)
        with contextlib.suppress(NoSpace):
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
    full: int = 0  # operations that met a full disk (NoSpace)
    replays: int = 0  # images checked after cuts during the mounts that replayed the log


def run(workdir: Path, models: list[CrashModel] | None = None, *, stride: int = 1,
        seeds: int = 1, workload_seed: int = 11, nops: int = WORKLOAD_OPS,
        image_blocks: int = IMAGE_BLOCKS, replays: bool = False,
        progress: Callable[[str], None] | None = None) -> CrashFigures:
    """Crash the workload of ``workload_seed`` at every ``stride``-th write with every
    model (``seeds`` seeds each for torn and lost) and check every outcome. On an
    image of ``image_blocks`` (``FULL_DISK_BLOCKS``: the workload fills it, and the
    operations that meet a full disk are part of the model); with ``replays``, each
    crashed image's next mount is cut at every write of its replay too, and the one
    after it (``_crash_replays``)."""
    models = list(CrashModel) if models is None else models
    start, ops = workload(workload_seed, nops)
    base = workdir / "base.img"
    make_image(base, start, image_blocks)
    scratch = workdir / "crash.img"
    shutil.copyfile(base, scratch)
    done = [0]
    full: set[int] = set()
    figures = CrashFigures(ops=len(ops))
    figures.writes = count_writes(scratch, _runner(ops, done, full))
    figures.full = len(full)
    model = states(start, ops, frozenset(full))
    problems = check_after_crash(scratch, model, ops, len(ops) + 1)  # no crash at all
    figures.failures += [f"without a crash: {p}" for p in problems]
    for m in models:
        figures.tried[m.value] = figures.survived[m.value] = 0
        for n in range(1, figures.writes + 1, stride):
            for seed in range(seeds if m is not CrashModel.CUT else 1):
                shutil.copyfile(base, scratch)
                done[0] = 0
                crash_image(scratch, _runner(ops, done), CrashPlan(n, m, seed))
                where = f"{m.value} N={n} seed={seed} (op {done[0]})"
                if replays:
                    figures.replays += _crash_replays(
                        workdir, scratch, model, ops, done[0], where, figures.failures)
                problems = check_after_crash(scratch, model, ops, done[0])
                figures.tried[m.value] += 1
                if problems:
                    figures.failures.append(f"{where}: {'; '.join(problems)}")
                else:
                    figures.survived[m.value] += 1
        if progress is not None:
            progress(f"{m.value}: {figures.survived[m.value]}/{figures.tried[m.value]} survived")
    return figures


def _crash_replays(workdir: Path, crashed: Path, model: list[State], ops: list[Op],
                   done: int, where: str, failures: list[str]) -> int:
    """Reboot ``crashed`` (cut during operation ``done``) and cut the power again at
    every write of the mount (its replay of the log) with every model; after each,
    cut a third mount at every write with the lost model, and check each image as
    ``check_after_crash`` does. Returns how many crashed mounts were checked; their
    failures go to ``failures``. ``crashed`` is left as it was."""
    second, third = workdir / "replay2.img", workdir / "replay3.img"
    shutil.copyfile(crashed, second)
    checked = 0
    for j in range(1, count_writes(second, _mount_only) + 1):
        for m in CrashModel:
            shutil.copyfile(crashed, second)
            crash_image(second, _mount_only, CrashPlan(j, m, j))
            shutil.copyfile(second, third)
            images = [(second, f"mount cut at write {j} ({m.value})")]
            for k in range(1, count_writes(third, _mount_only) + 1):
                shutil.copyfile(second, third)
                crash_image(third, _mount_only, CrashPlan(k, CrashModel.LOST, k))
                images.append((third, f"mount cut at write {j} ({m.value}), the next at "
                                      f"write {k} (lost)"))
                problems = check_after_crash(third, model, ops, done)
                checked += 1
                if problems:
                    failures.append(f"{where}, {images[-1][1]}: {'; '.join(problems)}")
            problems = check_after_crash(second, model, ops, done)
            checked += 1
            if problems:
                failures.append(f"{where}, {images[0][1]}: {'; '.join(problems)}")
    return checked


def run_eio(workdir: Path, *, persistent: bool = False, retry_sync: bool = False,
            workload_seed: int = 11, nops: int = WORKLOAD_OPS, stride: int = 1) -> CrashFigures:
    """A device error (EIO) at every ``stride``-th device request N (read, write or
    flush) of the workload -- only at N, or from N on (``persistent``) --, then a power
    cut: the workload stops at the first error (with ``retry_sync``, after calling
    ``sync`` once more: with a one-shot error it must succeed), the device is closed
    without an unmount, and the image is checked as after a crash during the operation
    that failed (with a sync that succeeded after it: every operation before it must
    be there). ``tried["eio"]`` counts the requests that failed."""
    start, ops = workload(workload_seed, nops)
    model = states(start, ops)
    base = workdir / "base.img"
    make_image(base, start)
    scratch = workdir / "eio.img"
    figures = CrashFigures(ops=len(ops))
    figures.tried["eio"] = figures.survived["eio"] = 0
    n = 1
    while True:
        shutil.copyfile(base, scratch)
        with BlockDevice.open(scratch, profile=SSD, durable=False) as dev:
            fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
            fault = _Fault(dev, n, persistent)
            done, synced = 0, False
            try:
                for op in ops:
                    _apply(fs, _USER, op)
                    done += 1
                fs.unmount()
                done += 1
            except DeviceError:
                if retry_sync and fs.mounted:
                    try:
                        fs.sync()
                        synced = True
                    except DeviceError:
                        synced = False
            except Exception as exc:  # reported: only a DeviceError may reach the caller
                figures.failures.append(f"EIO at request {n}: op {done} raised {exc!r}")
            fired = fault.fired
            fault.remove()
        if not fired:
            break
        figures.tried["eio"] += 1
        problems = check_after_crash(scratch, model, ops, done)
        if synced:
            problems += [f"after the sync that succeeded: {p}"
                         for p in _check_floor(scratch, model, done, len(ops))]
        elif retry_sync and not persistent and done < len(ops):
            problems.append("the sync after a one-shot error failed too")
        if problems:
            figures.failures.append(f"EIO at request {n} (op {done}): {'; '.join(problems)}")
        else:
            figures.survived["eio"] += 1
        n += stride
    figures.writes = n - 1
    return figures


class _Fault:
    """Make the ``n``-th request of ``dev`` (a read, a write or a flush) raise
    ``DeviceError`` (EIO), and every later one if ``persistent``."""

    def __init__(self, dev: BlockDevice, n: int, persistent: bool) -> None:
        self.dev, self.n, self.persistent = dev, n, persistent
        self.calls = 0
        self.fired = False
        for name in ("read_into", "write_blocks", "flush"):
            setattr(dev, name, self._wrap(name, getattr(dev, name)))

    def _wrap(self, name: str, real: Callable[..., None]) -> Callable[..., None]:
        def request(*args: object) -> None:
            self.calls += 1
            if self.calls == self.n or (self.persistent and self.calls > self.n):
                self.fired = True
                raise DeviceError(errno.EIO, name, -1, str(self.dev.path),
                                  f"injected at request {self.calls}")
            real(*args)
        return request

    def remove(self) -> None:
        for name in ("read_into", "write_blocks", "flush"):
            self.dev.__dict__.pop(name, None)


def _check_floor(image: Path, model: list[State], done: int, nops: int) -> list[str]:
    """After a sync that succeeded following a failed operation ``done``: every
    operation before it is durable (the state is ``S_done`` or ``S_done+1``)."""
    with BlockDevice.open(image, profile=SSD, durable=False) as dev:
        fs = FileSystem.mount(dev, Cache(CACHE_FRAMES), SimClock())
        got: dict[str, bytes] = {}
        for name in fs.listdir():
            if name != "after-crash":
                with fs.open(_USER, name, "r") as f:
                    got[name] = fs.read(f, fs.stat(name).size + 1)
        fs.unmount()
    return _match(got, model, done, min(done + 1, nops))
