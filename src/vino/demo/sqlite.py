"""The experiments: SQLite on the vino kernel with its defaults, with grafts, under attack.

``Lab(workdir, config)`` builds the database once (``config.rows`` rows) on a disk
image; every experiment then boots a fresh kernel on a copy of that image, cold
(nothing cached), so runs are independent and replay exactly (simulated device
time; seeded workloads). The kernel of every run has ``config.frames`` page frames
and lets an address space hold ``config.pool_pages`` frames before it pays for
its own growth (the cache's ``min_resident``): that is the size the VFS's buffer
pool can reach; see ``pool`` for why the pool exists.

- ``workloads(lab)``: build, indexed lookups, range scans, updates, all defaults.
- ``readahead(lab)``: range scans, default read-ahead against ``sqlite_readahead``
  (detecting scans itself, and told of each scan).
- ``eviction(lab)``: hot-set lookups between long range scans, default clock
  against ``sqlite_evict`` (interior pages kept, scans told).
- ``encryption(workdir, config)``: a database built through the ChaCha20 filter;
  no row text on the device image; reads back intact after remount with the key
  sent again; unreadable without it.
- ``survival(lab)``: hostile grafts in each of SQLite's points while it runs.
  The filter point fails closed (a filter's stored form is its own; the identity
  default is no equivalent answer): when the trapping filter is removed, SQLite's
  transaction gets an I/O error and nothing of it reaches the device; once the
  owner gives up the protection (``Kernel.unseal``) every committed row is there.
- power cut: ``crashes.power_cut`` in DELETE mode with ``synchronous=EXTRA``, plain
  and encrypted: the power goes (lost writes) half-way through committing
  transactions; after the remount every committed row is back.
- ``run(out, workdir, config)``: all of the above as tables with checks (``vino
  demo sqlite``, ``vino.report.Checks``); True only if every check held.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import apsw

from vino.console import Output
from vino.graft import Graft, Quota
from vino.kernel.device import DISK_1996, DiskProfile
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.report import Checks
from vino.sqlite import crashes
from vino.sqlite import workloads as wl
from vino.sqlite.grafts import KEY_BYTES, Plan
from vino.sqlite.params import MEASURE_CACHE_PAGES
from vino.sqlite.session import Session
from vino.sqlite.workloads import Measure, Model
from vino.workloads import HOSTILE_DIR

__all__ = ["HOSTILE_DIR", "Attack", "Config", "Lab", "encryption", "eviction", "readahead", "run",
           "survival", "workloads"]

USER = "sqlite"
DEMO_ROWS = 100_000  # the demo's database; at least this many rows uses Config()
DB = "bench.db"
LEAK_PROBES = 200  # rows whose text is searched for on the encrypted image
SURVIVAL_CALL_BUDGET_S = 0.25  # the survival user's per-call CPU budget: longer than the lock
#                                time-out, so a lock hog is aborted by its waiter, not its budget


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes of one run. The defaults are the demo's; ``small()`` is the tests'."""

    rows: int = DEMO_ROWS
    seed: int = 1
    nblocks: int = 8192  # disk image, blocks of 4 KiB (32 MiB)
    frames: int = 256  # kernel page frames (1 MiB)
    pool_pages: int = 128  # frames the buffer pool may take from the global clock
    profile: DiskProfile = DISK_1996
    lookups: int = 1000  # indexed point queries
    scans: int = 50  # range scans ...
    scan_rows: int = 2000  # ... of this many consecutive ids
    update_txns: int = 100  # transactions ...
    updates_per_txn: int = 20  # ... of this many single-row updates
    mixed_rounds: int = 10  # rounds of ...
    mixed_lookups: int = 100  # ... this many hot-set lookups, then one scan of ...
    mixed_scan_rows: int = 20_000  # ... this many ids
    hot_rows: int = 50  # rows in the hot set (spread evenly over the table)
    python_grafts: bool = False  # the grafts' Python twins (vino.pygraft) instead of C

    @classmethod
    def small(cls, rows: int = 10_000) -> Config:
        """A run for tests, with the demo's proportions at ``rows`` rows.

        What makes the policies matter is kept: the database is several times the
        cache (pool = rows / 320 pages, frames = twice that), the hot set fits in the
        pool (about a third of it: two pages per hot row), and a long scan reads
        about as many leaves as the pool holds (~170 rows per leaf).
        """
        pool = min(max(rows // 320, 12), 128)
        return cls(rows=rows, nblocks=8192, frames=2 * pool, pool_pages=pool, lookups=200,
                   scans=20, scan_rows=max(rows // 25, 400), update_txns=20,
                   updates_per_txn=10, mixed_rounds=6, mixed_lookups=60,
                   mixed_scan_rows=min(170 * pool, rows // 2),
                   hot_rows=max(pool * 3 // 10, 3))

    @classmethod
    def for_rows(cls, rows: int) -> Config:
        """The demo's sizes for ``rows`` >= 100,000, else ``small(rows)``."""
        return cls(rows=rows) if rows >= DEMO_ROWS else cls.small(rows)

    @property
    def hot(self) -> list[int]:
        return list(range(0, self.rows, max(self.rows // self.hot_rows, 1)))[: self.hot_rows]


class Lab:
    """A built database image and fresh kernels booted on copies of it."""

    def __init__(self, workdir: Path, config: Config) -> None:
        self.workdir = workdir
        self.config = config
        self.base = workdir / "sqlite-base.img"
        self.model = Model()
        k = Kernel.boot(self.base, nblocks=config.nblocks, frames=config.frames,
                        profile=config.profile)
        try:
            user = k.add_user(USER)
            with Session(k, user, DB, cache_pages=MEASURE_CACHE_PAGES,
                         buffer_pool=True) as s:
                def build() -> bool:
                    self.model = wl.build(s.db, config.rows, config.seed)
                    return wl.verify(s.db, self.model)

                self.build = wl.measure(s, build)
        finally:
            k.shutdown()

    @contextmanager
    def kernel(self, name: str, quota: Quota | None = None) -> Iterator[tuple[Kernel, User]]:
        """A fresh kernel on a copy of the built image, and the database's user."""
        cfg = self.config
        image = self.workdir / f"sqlite-{name}.img"
        shutil.copyfile(self.base, image)
        k = Kernel.boot(image, fresh=False, frames=cfg.frames, profile=cfg.profile)
        k.cache.min_resident = cfg.pool_pages
        try:
            yield k, k.add_user(USER, quota)
        finally:
            k.shutdown()
            image.unlink()

    def measure(self, name: str, plan: Plan, fn: Callable[[Session], bool],
                model: Model | None = None) -> Measure:
        """Run ``fn`` on a fresh kernel and measure it; then (not measured) check the
        whole table against ``model`` (default: the built one) and the invariants."""
        if self.config.python_grafts:
            plan = dataclasses.replace(plan, python=True)
        with self.kernel(name) as (k, user), \
                Session(k, user, DB, plan=plan, cache_pages=MEASURE_CACHE_PAGES,
                        buffer_pool=True) as s:
            m = wl.measure(s, lambda: fn(s))
            m.ok = m.ok and wl.verify(s.db, model or self.model)
            k.check_invariants()
            s.vfs.check_invariants()
            return m


# ---- experiments ----------------------------------------------------------------------------

def workloads(lab: Lab) -> dict[str, Measure]:
    cfg, model = lab.config, lab.model
    out = {"build": lab.build}
    out["lookups"] = lab.measure("lookups", Plan(),
                                 lambda s: wl.lookups(s.db, model, cfg.lookups))
    out["range scans"] = lab.measure(
        "scans", Plan(), lambda s: wl.range_scans(s.db, model, cfg.scans, cfg.scan_rows))
    upd = copy.deepcopy(model)
    out["updates"] = lab.measure(
        "updates", Plan(),
        lambda s: wl.updates(s.db, upd, cfg.update_txns, cfg.updates_per_txn), upd)
    return out


def _scans(lab: Lab, told: bool) -> Callable[[Session], bool]:
    cfg = lab.config

    def fn(s: Session) -> bool:
        adv = s.advisor
        announce = adv.scan if told and adv is not None else None
        return wl.range_scans(s.db, lab.model, cfg.scans, cfg.scan_rows, announce=announce)

    return fn


def readahead(lab: Lab) -> dict[str, Measure]:
    return {
        "default": lab.measure("ra-default", Plan(), _scans(lab, told=False)),
        "sqlite_readahead (detects scans)": lab.measure(
            "ra-detect", Plan(readahead=True), _scans(lab, told=False)),
        "sqlite_readahead (told of scans)": lab.measure(
            "ra-told", Plan(readahead=True), _scans(lab, told=True)),
    }


def _mixed(lab: Lab) -> Callable[[Session], bool]:
    cfg = lab.config

    def fn(s: Session) -> bool:
        adv = s.advisor
        return wl.mixed(s.db, lab.model, cfg.mixed_rounds, cfg.mixed_lookups, cfg.hot,
                        cfg.mixed_scan_rows, announce=adv.scan if adv is not None else None)

    return fn


def eviction(lab: Lab) -> dict[str, Measure]:
    return {
        "default (clock)": lab.measure("ev-default", Plan(), _mixed(lab)),
        "sqlite_evict": lab.measure("ev-graft", Plan(evict=True), _mixed(lab)),
    }


def _crypt_session(k: Kernel, plan: Plan | None) -> Session:
    """The encryption experiment's database on ``k``, as ``USER`` (each step the same)."""
    return Session(k, k.add_user(USER), DB, plan=plan, journal_mode="truncate",
                   cache_pages=MEASURE_CACHE_PAGES, buffer_pool=True)


def encryption(workdir: Path, config: Config) -> dict[str, Any]:
    """Build through the ChaCha20 filter; look at the image; remount with and without key."""
    key = hashlib.sha256(b"vino sqlite demo key").digest()[:KEY_BYTES]
    image = workdir / "sqlite-crypt.img"
    plan = Plan(key=key, python=config.python_grafts)
    rows = config.rows
    k = Kernel.boot(image, nblocks=config.nblocks, frames=config.frames, profile=config.profile)
    try:
        with _crypt_session(k, plan) as s:
            built: list[Model] = []

            def work() -> bool:
                built.append(wl.build(s.db, rows, config.seed))
                return wl.updates(s.db, built[0], 10, 10) and wl.verify(s.db, built[0])

            m = wl.measure(s, work)
            model = built[0]
        files = k.fs.listdir()
    finally:
        k.shutdown()
    raw = image.read_bytes()
    probes = [b"SQLite format 3", b"CREATE TABLE", b"row00"]
    probes += [model.v[i].encode() for i in range(0, rows, max(rows // LEAK_PROBES, 1))]
    leaked = [p for p in probes if p in raw]
    out: dict[str, Any] = {"rows": rows, "roundtrip": m.ok, "leaked": leaked,
                           "files": files, "filter": m.grafts.get("fs.filter", {})}
    # Remount without the key: the database is unreadable -- its sealed files refuse every
    # read, an I/O error to SQLite -- and nothing is written.
    k = Kernel.boot(image, fresh=False, frames=config.frames, profile=config.profile)
    try:
        try:
            with _crypt_session(k, None) as s:
                s.db.execute("select count(*) from t").fetchall()
            out["readable_without_key"] = True
        except apsw.Error as exc:
            out["readable_without_key"] = False
            out["without_key_error"] = type(exc).__name__
        k.check_invariants()
    finally:
        k.shutdown()
    # Remount and send the key again: everything reads back.
    k = Kernel.boot(image, fresh=False, frames=config.frames, profile=config.profile)
    try:
        with _crypt_session(k, plan) as s:
            out["remount_with_key"] = wl.verify(s.db, model)
        k.check_invariants()
    finally:
        k.shutdown()
        image.unlink()
    return out


# ---- survival ---------------------------------------------------------------------------------

@dataclass(slots=True)
class Attack:
    name: str
    point: str
    expect: str  # the abort reason expected
    seen: str = ""  # the reason the graft was removed for ("" if it was not)
    queries_ok: bool = False  # every query of the workload returned the model's answer
    integrity_ok: bool = False  # PRAGMA integrity_check == ok
    rows_ok: bool = False  # the whole table equals the model (no committed row lost)
    invariants_ok: bool = False  # kernel and VFS invariants hold
    note: str = ""
    # The point fails closed: the workload must be refused (an I/O error), not answered.
    fails_closed: bool = False
    refused: bool = False  # the workload got the point's refusal as an SQLite I/O error

    @property
    def queries(self) -> str:
        if self.fails_closed:
            return "refused (I/O error)" if self.refused else "NOT REFUSED"
        return "yes" if self.queries_ok else "NO"

    @property
    def ok(self) -> bool:
        answered = self.refused if self.fails_closed else self.queries_ok
        return (self.seen == self.expect and answered and self.integrity_ok
                and self.rows_ok and self.invariants_ok)


def filter_refusal(exc: BaseException | None) -> apsw.IOError | None:
    """The filter's refusal (an I/O error) in ``exc``'s chain: a failed commit is followed
    by the connection manager's rollback, whose own error then hides it."""
    while exc is not None:
        if isinstance(exc, apsw.IOError) and "filter" in str(exc):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _hostile(name: str) -> str:
    return (HOSTILE_DIR / f"{name}.wat").read_text()


def _lock_hog_evict() -> str:
    """The sched.pick lock hog, aimed at vm.evict: take the address space's lock, spin."""
    return _hostile("sched_lock_hog").replace('"vino_pick"', '"vino_evict"')


def _waiter(k: Kernel, lock_name: str, graft: Graft, waited: list[float]) -> threading.Thread:
    lock = k.registry.locks.lock(lock_name)

    def wait() -> None:
        deadline = time.monotonic() + 10.0
        while lock.holder is None and graft.state == "live" and time.monotonic() < deadline:
            time.sleep(0.0005)
        t = time.perf_counter()
        with k.registry.locks.hold(lock, timeout_s=k.registry.locks.timeout_s):
            waited.append(time.perf_counter() - t)

    th = threading.Thread(target=wait, name="pool-inspector")
    th.start()
    return th


def survival(lab: Lab, say: Callable[[str], None] | None = None) -> list[Attack]:
    """Install a misbehaving graft in each point SQLite uses, while it runs; check it all.

    ``say`` hears each attack as it starts (the demo's progress bar).
    """
    cfg = lab.config
    model = copy.deepcopy(lab.model)
    attacks: list[Attack] = []
    quota = Quota(cpu_call_s=SURVIVAL_CALL_BUDGET_S)
    with lab.kernel("survival", quota) as (k, user), \
            Session(k, user, DB, cache_pages=MEASURE_CACHE_PAGES,
                    buffer_pool=True) as s:
        kf = s.vfs.file(DB)
        pool = s.vfs.pool
        assert kf is not None and pool is not None
        aspace = pool.aspace

        def attempt(name: str, point: str, expect: str, source: str, target: Any,
                    work: Callable[[], bool], lock: str | None = None,
                    fails_closed: bool = False) -> None:
            a = Attack(name, point, expect, fails_closed=fails_closed)
            if say is not None:
                say(f"survival: {point}: {name}")
            g = k.graft(user, point, source, target=target, name=name)
            waited: list[float] = []
            th = _waiter(k, lock, g, waited) if lock else None
            committed = copy.deepcopy(model)  # one transaction: all of it, or none
            try:
                a.queries_ok = work()
            except apsw.Error as exc:
                a.note = f"SQLite error: {type(exc).__name__}: {exc}"
                refusal = filter_refusal(exc)
                if fails_closed and refusal is not None:
                    a.refused = True
                    a.note = f"refused: {refusal}"
                    for f in dataclasses.fields(model):  # its transaction did not commit
                        setattr(model, f.name, getattr(committed, f.name))
            if th is not None:
                th.join(10.0)
                a.note = (f"the waiter got the lock after {waited[0] * 1e3:.0f} ms"
                          if waited else "the waiter never got the lock")
            a.seen = g.removal.reason.value if g.removal else ""
            if g.state == "live":
                g.remove()
            if fails_closed:
                k.unseal(user, target)  # the owner acts: gives up the filter's protection
            a.integrity_ok = s.db.execute("pragma integrity_check").fetchall() == [("ok",)]
            a.rows_ok = wl.verify(s.db, model)
            try:
                k.check_invariants()
                s.vfs.check_invariants()
                a.invariants_ok = True
            except (AssertionError, Exception) as exc:
                a.note = f"invariant broken: {exc}"
            attacks.append(a)

        def one_write() -> bool:
            return wl.updates(s.db, model, 1, 10)

        def scans() -> bool:
            return wl.range_scans(s.db, model, 3, cfg.scan_rows, seed=12)

        def flood() -> bool:
            return (wl.range_scans(s.db, model, 2, cfg.mixed_scan_rows, seed=13)
                    and wl.lookups(s.db, model, 20, seed=14))

        attempt("filter traps mid-block", "fs.filter", "trap",
                _hostile("filter_trap_midblock"), kf.of.inode, one_write, fails_closed=True)
        attempt("read-ahead never returns", "fs.readahead", "timeout",
                _hostile("readahead_loop"), kf.of, scans)
        attempt("evicts a page that is not a candidate", "vm.evict", "invalid_result",
                _hostile("evict_not_candidate"), aspace, flood)
        attempt("holds the pool's lock forever", "vm.evict", "lock_timeout",
                _lock_hog_evict(), aspace, flood, lock=f"aspace:{aspace.owner.pid}")
    return attacks


# ---- the report ---------------------------------------------------------------------------------

def _cost(m: Measure, point: str) -> str:
    g = m.grafts.get(point)
    if not g:
        return "-"
    aborts = sum(g["aborts"].values())
    return (f"{g['commits']} calls, {g['graft_ns'] / 1e6:.1f} ms in graft + "
            f"{g['overhead_ns'] / 1e6:.1f} ms protection"
            + (f", {aborts} aborts" if aborts else ""))


def _row(name: str, m: Measure, point: str = "") -> list[str]:
    c = m.cache
    return [name, str(m.device.get("reads", 0)), str(m.device.get("writes", 0)),
            str(m.device.get("blocks_read", 0)), f"{m.device_ms:,.0f}",
            f"{c.get('hits', 0)}/{c.get('misses', 0)}",
            f"{m.pool.get('hits', 0)}/{m.pool.get('misses', 0)}",
            f"{m.wall_s:.2f}", "yes" if m.ok else "NO"] + ([_cost(m, point)] if point else [])


_HEAD = ["run", "dev reads", "dev writes", "blocks read", "device ms", "cache hit/miss",
         "pool hit/miss", "wall s", "correct"]


def _policy(o: Output, checks: Checks, runs: dict[str, Measure], point: str, default: str,
            graft: str, what: str, unit: str) -> None:
    """One policy experiment: its table, and the check that the graft run saved device
    reads and device time over the default run, both answering right."""
    o.table([_row(n, m, point) for n, m in runs.items()], [*_HEAD, "graft cost"])
    d, g = runs[default], runs[graft]
    checks.check(what, g.ok and d.ok and g.device["reads"] < d.device["reads"]
                 and g.device_ms < d.device_ms,
                 f"{d.device['reads']} -> {g.device['reads']} {unit}")


def run(out: IO[str], workdir: Path | None = None, config: Config | None = None,
        progress: Callable[[str], None] | None = None) -> bool:
    """Every experiment, printed as tables with checks; True if every check held.

    ``progress`` hears each experiment (and each survival attack) as it starts.
    """
    cfg = config or Config()
    checks = Checks()
    o = Output(out)
    say = progress or (lambda msg: None)
    with tempfile.TemporaryDirectory(prefix="vino-sqlite-") as tmp:
        wd = workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        out.write(f"SQLite {apsw.sqlite_lib_version()} (apsw {apsw.apswversion()}) on the vino "
                  f"kernel: {cfg.rows:,} rows, {cfg.frames} frames ({cfg.pool_pages} for the "
                  f"buffer pool), device {cfg.profile.name}, images in {wd}\n")
        t0 = time.perf_counter()
        say(f"building the database ({cfg.rows:,} rows)")
        lab = Lab(wd, cfg)
        checks.check("the database is built and reads back", lab.build.ok)

        o.heading("Workloads, default policies (each on a fresh, cold kernel)")
        say("workloads, default policies")
        ms = workloads(lab)
        o.table([_row(n, m) for n, m in ms.items()], _HEAD)
        for n, m in ms.items():
            checks.check(f"workload {n}: every answer right", m.ok)

        o.heading(f"Read-ahead: range scans of {cfg.scan_rows:,} rows (x{cfg.scans})")
        say("read-ahead")
        _policy(o, checks, readahead(lab), "fs.readahead", "default",
                "sqlite_readahead (told of scans)",
                "read-ahead graft saves device requests and time on range scans", "requests")

        o.heading(f"Eviction: {cfg.mixed_rounds} rounds of {cfg.mixed_lookups} lookups of "
                  f"{cfg.hot_rows} hot rows, then a scan of {cfg.mixed_scan_rows:,} rows")
        say("eviction")
        _policy(o, checks, eviction(lab), "vm.evict", "default (clock)", "sqlite_evict",
                "eviction graft saves device reads on the mixed workload", "reads")

        o.heading("Encryption at rest: chacha20_filter on the database and its journal")
        say("encryption")
        e = encryption(wd, cfg)
        rows = [["rows written through the filter, read back", "yes" if e["roundtrip"] else "NO"],
                ["row text or SQLite header on the device image",
                 ", ".join(repr(p) for p in e["leaked"]) or "none"],
                ["remount without the key", "unreadable (" + e.get("without_key_error", "?") + ")"
                 if not e["readable_without_key"] else "READABLE"],
                ["remount, key sent again: whole table + integrity_check",
                 "intact" if e["remount_with_key"] else "NO"],
                ["filter cost", f"{e['filter'].get('commits', 0)} calls, "
                 f"{e['filter'].get('graft_ns', 0) / 1e6:.0f} ms in graft"]]
        o.table(rows, ["check", "result"])
        checks.check("encryption: no plaintext on the image, intact through the kernel",
                     e["roundtrip"] and not e["leaked"] and not e["readable_without_key"]
                     and e["remount_with_key"])

        o.heading("Survival: misbehaving grafts in SQLite's points while it runs")
        rows = []
        for a in survival(lab, say):
            checks.check(f"survives {a.point}: {a.name}", a.ok, a.note)
            rows.append([a.point, a.name, a.expect, a.seen or "not removed",
                         a.queries, "ok" if a.integrity_ok else "NO",
                         "yes" if a.rows_ok else "NO", "ok" if a.ok else "FAILED", a.note])
        o.table(rows, ["point", "misbehaviour", "expected", "observed",
                       "queries right", "integrity", "rows intact", "", "note"])

        o.heading("Power cut: the power goes while transactions commit")
        rows = []
        for mode in (crashes.Mode("delete", "extra", encrypted=False),
                     crashes.Mode("delete", "extra", encrypted=True)):
            pc = crashes.power_cut(wd / "power-cut", mode)
            back = (f"integrity ok; {pc.found} of {crashes.TXNS} transactions in the table"
                    if pc.ok else pc.problem)
            rows.append([mode.name, f"write {pc.at_write} of {pc.writes} ({pc.model})",
                         str(pc.committed), back, "yes" if pc.ok else "NO"])
            checks.check(f"power cut ({mode.name}): every committed row back after remount",
                         pc.ok and pc.found >= pc.committed,
                         pc.problem or f"{pc.committed} committed, {pc.found} found")
        o.table(rows, ["mode", "power cut at", "COMMITs returned", "after remount",
                       "every committed row back"])
        o.write(f"\n({crashes.TXNS} transactions, each an insert and an update, through a "
                f"{crashes.CACHE_PAGES}-page SQLite cache; 'lost': every block written since "
                "the last flush holds any one of its versions, a volatile write cache)\n")
        out.write(f"\n(took {time.perf_counter() - t0:.1f} s)\n")
    o.checks(checks)
    return checks.ok
