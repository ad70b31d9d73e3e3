"""Crash loops for SQLite on vino (SQLite's own method): power off at every write, check.

For one *mode* -- a rollback-journal mode (DELETE, TRUNCATE, PERSIST), a
``synchronous`` level (FULL, EXTRA) and with or without the ChaCha20 filter graft
encrypting every file -- ``loop`` runs a committing workload once to count its
device writes, then again on a fresh copy of the starting image for every N (or
every ``stride``-th), with the power cut at write N by each crash model of
``vino.kernel.crash`` (cut, torn, lost). After each cut:

1. ``fsck`` finds the image clean (the log replayed in memory, as a mount would);
   it mounts (never unmountable) and the kernel's invariants hold;
2. SQLite opens the database (through the filter, with the key, when encrypted) and
   ``pragma integrity_check`` is ok (never malformed);
3. the table holds the starting rows (never wiped) and exactly the first ``m``
   transactions of the workload, nothing of a later one and nothing half (atomic);
4. ``m`` is allowed by the durability SQLite documents for the level: with EXTRA
   every transaction whose COMMIT returned is there (``m >= committed``); with FULL
   at most the last one may be rolled back (``m >= committed - 1``). The one in
   flight may be there too (``m <= committed + 1``): its commit may have reached
   the disk before the power went and the COMMIT returned.

The workload (``TXNS`` transactions): each inserts one row with a payload big
enough to split pages and updates one of the starting rows. SQLite's cache is
``CACHE_PAGES`` pages, so a transaction spills pages into the database before its
commit, the hardest case for a rollback journal.

Everything is deterministic: the workload is fixed, the crash model's choices come
from the seed ``N``; a failure names its mode, model and N, which replay it.

Usage::

    figures = loop(workdir, Mode("delete", "full", encrypted=False), stride=1)
    figures.tried, figures.survived, figures.failures     # per crash model
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import apsw

from vino.kernel.crash import CrashModel, CrashPlan
from vino.kernel.fsck import check_image
from vino.kernel.kernel import Kernel
from vino.report import markdown_table
from vino.sqlite.grafts import Plan
from vino.sqlite.session import JOURNAL_MODES, Session

__all__ = ["MODES", "SYNC_LEVELS", "CrashFigures", "Failure", "Mode", "PowerCut",
           "expected_rows", "loop", "modes", "power_cut", "render", "run_all"]

SYNC_LEVELS: Final = ("full", "extra")
KEY: Final = bytes(range(32))  # the filter's key in the encrypted modes (a test key)
DB: Final = "crash.db"
USER: Final = "crash"
IMAGE_BLOCKS: Final = 1024  # the disk image (4 MiB): copied for every crash point
KERNEL_FRAMES: Final = 64  # page frames: dirty blocks are also written back by eviction
BASE_ROWS: Final = 20  # rows in the starting database
TXNS: Final = 8  # transactions of the workload
PAYLOAD_BYTES: Final = 1500  # bytes of each inserted row's payload (page splits)
CACHE_PAGES: Final = 8  # SQLite's cache in the workload: pages spill before the commit
NEVER: Final = 1 << 62  # a crash point that is never reached (counting run)


@dataclass(frozen=True, slots=True)
class Mode:
    journal: str  # delete, truncate, persist
    synchronous: str  # full, extra
    encrypted: bool  # every file through the ChaCha20 filter graft

    def __post_init__(self) -> None:
        if self.journal not in JOURNAL_MODES or self.synchronous not in SYNC_LEVELS:
            raise ValueError(f"no such mode: {self}")

    @property
    def name(self) -> str:
        return f"{self.journal}/{self.synchronous}{'/encrypted' if self.encrypted else ''}"

    @property
    def plan(self) -> Plan:
        return Plan(key=KEY if self.encrypted else None)

    def lowest(self, committed: int) -> int:
        """Fewest transactions that may survive when ``committed`` COMMITs returned."""
        return committed if self.synchronous == "extra" else max(committed - 1, 0)


def modes() -> list[Mode]:
    """Every mode: journal modes x synchronous levels x without / with encryption."""
    return [Mode(j, s, e) for e in (False, True) for j in JOURNAL_MODES for s in SYNC_LEVELS]


MODES: Final = tuple(modes())


@dataclass(frozen=True, slots=True)
class Failure:
    mode: str
    model: str
    at_write: int
    what: str


@dataclass(slots=True)
class CrashFigures:
    """One mode's loop: crash points tried and survived per model, and every failure."""

    mode: Mode
    writes: int = 0  # device writes of the whole workload (crash points 1..writes)
    tried: dict[str, int] = field(default_factory=dict)
    survived: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _payload(i: int) -> bytes:
    return bytes((i * 37 + j) % 251 for j in range(PAYLOAD_BYTES))


def _update_text(i: int) -> str:
    return f"updated by transaction {i}"


def expected_rows(m: int) -> list[tuple[int, str, bytes]]:
    """The table after the first ``m`` transactions of the workload."""
    rows = {r: (r, f"base {r}", _payload(r)) for r in range(BASE_ROWS)}
    for i in range(m):
        rows[BASE_ROWS + i] = (BASE_ROWS + i, f"txn {i}", _payload(BASE_ROWS + i))
        target = i % BASE_ROWS
        rows[target] = (target, _update_text(i), rows[target][2])
    return [rows[k] for k in sorted(rows)]


def _session(k: Kernel, mode: Mode) -> Session:
    s = Session(k, k.add_user(USER), DB, plan=mode.plan, journal_mode=mode.journal,
                cache_pages=CACHE_PAGES)
    s.db.execute(f"pragma synchronous = {mode.synchronous}")
    return s


def _starting_image(path: Path, mode: Mode) -> None:
    k = Kernel.boot(path, nblocks=IMAGE_BLOCKS, frames=KERNEL_FRAMES)
    k.fs.quota.sole_user()  # one user's database: no share to keep
    try:
        with _session(k, mode) as s:
            s.db.execute("create table t(id integer primary key, v text not null, p blob)")
            with s.db:
                s.db.executemany("insert into t values(?, ?, ?)", expected_rows(0))
    finally:
        k.shutdown()


def _workload(s: Session, done: list[int]) -> None:
    """Run the transactions; append each one's number to ``done`` when its COMMIT returned."""
    for i in range(TXNS):
        with s.db:
            s.db.execute("insert into t values(?, ?, ?)",
                         (BASE_ROWS + i, f"txn {i}", _payload(BASE_ROWS + i)))
            s.db.execute("update t set v = ? where id = ?", (_update_text(i), i % BASE_ROWS))
        done.append(i)


def _abandon(k: Kernel, s: Session | None) -> None:
    """Drop a kernel whose power went: nothing more reaches its image."""
    if s is not None:
        s.abandon()
    with contextlib.suppress(Exception):
        k.registry.close()
    k.device.close()
    k.release_image()


def _run_to_crash(image: Path, mode: Mode, plan: CrashPlan) -> tuple[int, int]:
    """Boot on ``image``, arm ``plan``, run the workload until it ends or the power goes.
    Returns (COMMITs that returned, device writes made)."""
    k = Kernel.boot(image, fresh=False, frames=KERNEL_FRAMES)
    k.fs.quota.sole_user()  # one user's database: no share to keep
    s: Session | None = None
    done: list[int] = []
    try:
        k.device.arm_crash(plan)
        s = _session(k, mode)
        _workload(s, done)
    except (apsw.Error, OSError):
        pass  # the power went (SQLite reports it as an I/O error): stop there
    committed = len(done)
    writes = k.device.crash_writes
    if k.device.power_lost:
        _abandon(k, s)
    else:
        if s is not None:
            s.close()
        k.shutdown()
    return committed, writes


def _check(image: Path, mode: Mode, committed: int) -> tuple[str, int]:
    """Everything a crash must leave true: ('', transactions found) if it holds, else
    (what broke, -1)."""
    fsck = check_image(image)
    if not fsck.clean:
        return f"fsck: {fsck.problems} problem(s): {fsck.damage[:3]}", -1
    try:
        k = Kernel.boot(image, fresh=False, frames=KERNEL_FRAMES)
        k.fs.quota.sole_user()  # one user's database: no share to keep
    except Exception as exc:  # any refusal to mount is the finding
        return f"unmountable: {exc!r}", -1
    try:
        try:
            k.check_invariants()
        except Exception as exc:  # any broken invariant is the finding
            return f"file system damaged: {exc!r}", -1
        try:
            with _session(k, mode) as s:
                check = s.db.execute("pragma integrity_check").fetchall()
                if check != [("ok",)]:
                    return f"malformed: {check[:3]}", -1
                rows = [(int(i), str(v), bytes(p)) for i, v, p in
                        s.db.execute("select id, v, p from t order by id")]
        except apsw.Error as exc:
            return f"unreadable: {exc!r}", -1
        m = len(rows) - BASE_ROWS
        if m < 0 or rows != expected_rows(m):
            return "wiped or torn: the table is not the start plus whole transactions", -1
        if not mode.lowest(committed) <= m <= committed + 1:
            return (f"durability: {m} transactions survived, {committed} COMMITs had "
                    f"returned"), -1
        return "", m
    finally:
        k.shutdown()


@dataclass(frozen=True, slots=True)
class PowerCut:
    """One power cut in the middle of the workload, and what came back (the demo's)."""

    mode: Mode
    model: str
    writes: int  # device writes of the whole workload
    at_write: int  # the write the power went at
    committed: int  # COMMITs that had returned
    found: int  # transactions in the table after the remount (-1: the check failed)
    problem: str  # '' if every check held

    @property
    def ok(self) -> bool:
        return not self.problem


def power_cut(workdir: Path, mode: Mode, model: CrashModel = CrashModel.LOST,
              at: float = 0.5) -> PowerCut:
    """Cut the power at the write ``at`` of the way through the workload; remount; check."""
    workdir.mkdir(parents=True, exist_ok=True)
    start, scratch = workdir / "start.img", workdir / "scratch.img"
    _starting_image(start, mode)
    shutil.copyfile(start, scratch)
    _, writes = _run_to_crash(scratch, mode, CrashPlan(NEVER))
    n = max(1, int(writes * at))
    shutil.copyfile(start, scratch)
    committed, _ = _run_to_crash(scratch, mode, CrashPlan(n, model, seed=n))
    problem, found = _check(scratch, mode, committed)
    return PowerCut(mode, model.value, writes, n, committed, found, problem)


def loop(workdir: Path, mode: Mode, *, stride: int = 1, first: int = 1,
         models: Iterable[CrashModel] = tuple(CrashModel)) -> CrashFigures:
    """Crash the workload at writes ``first, first + stride, ...`` with each model."""
    workdir.mkdir(parents=True, exist_ok=True)
    start = workdir / "start.img"
    scratch = workdir / "scratch.img"
    _starting_image(start, mode)
    shutil.copyfile(start, scratch)
    committed, writes = _run_to_crash(scratch, mode, CrashPlan(NEVER))
    fig = CrashFigures(mode, writes)
    if committed != TXNS or _check(scratch, mode, committed)[0]:
        fig.failures.append(Failure(mode.name, "none", 0, "the workload fails without a crash"))
        return fig
    for model in models:
        fig.tried[model.value] = fig.survived[model.value] = 0
        for n in range(first, writes + 1, stride):
            shutil.copyfile(start, scratch)
            committed, _ = _run_to_crash(scratch, mode, CrashPlan(n, model, seed=n))
            what, _ = _check(scratch, mode, committed)
            fig.tried[model.value] += 1
            if what:
                fig.failures.append(Failure(mode.name, model.value, n, what))
            else:
                fig.survived[model.value] += 1
    return fig


def run_all(workdir: Path, *, stride: int = 1, modes_: Iterable[Mode] = MODES,
            progress: Callable[[str], None] | None = None) -> list[CrashFigures]:
    """``loop`` for every mode (each in its own directory under ``workdir``)."""
    out = []
    for i, mode in enumerate(modes_):
        fig = loop(workdir / f"mode-{i}", mode, stride=stride)
        out.append(fig)
        if progress is not None:
            tried = sum(fig.tried.values())
            progress(f"{mode.name}: {tried - len(fig.failures)} of {tried} crash points "
                     f"survived ({fig.writes} writes)")
    return out


def render(figs: list[CrashFigures]) -> str:
    """The figures as a Markdown table (docs/RELIABILITY.md), then every failure."""
    models = [m.value for m in CrashModel]
    lines = [markdown_table(
        ["journal", "synchronous", "encrypted", "writes",
         *(f"{m}: survived / tried" for m in models)],
        ([f.mode.journal.upper(), f.mode.synchronous.upper(),
          "yes" if f.mode.encrypted else "no", f.writes,
          *(f"{f.survived.get(m, 0)} / {f.tried.get(m, 0)}" for m in models)] for f in figs))]
    failures = [x for f in figs for x in f.failures]
    lines.append("")
    lines.append(f"{len(failures)} failure(s)." if failures else "No failure.")
    lines += [f"- {x.mode}, {x.model} at write {x.at_write}: {x.what}" for x in failures]
    return "\n".join(lines)
