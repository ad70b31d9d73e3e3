"""The graft namespace: declare points, install, replace, remove, inspect.

A ``Registry`` owns one sandbox (engine + ticker), one lock manager, the
declared points and every installed ``Graft`` (``invoke.py``: the protected call).

Order of calls:
    reg = Registry()
    point = reg.declare(FunctionPoint(...))     # links its graft-callables (hostapi)
    g = reg.install(point, source, principal, target)   # check, build, bind, switch
    point(target, *args)                        # g.invoke: protected
    g.remove() / reg.remove_target(target) / reg.close()

Install, in order: the principal's install rate (``TokenBucket``); a Python graft
compiled; every load-time check (``loader.check``, changing nothing); the module
instantiated in the principal's share of the sandbox; ``vino_buffer()`` called in
an install transaction and its buffer bounds-checked; the memory charged; then,
and only then, the graft linked into the point's table (the atomic switch, under
the registry's lock) and its checks remembered. A failure at any step undoes the
steps before it: ``GraftRejected`` leaves everything as it was. The graft's own code
(``vino_buffer()``) never runs under the registry's lock: the table is checked under
it before the build and again at the switch.

Failures are visible as they happen (``failures``): each abort, removal,
rejection and host fault is logged under the ``vino`` logger and passed to the
``on_abort`` / ``on_remove`` hooks, after the undo and outside the graft's lock.

Rights: ``point.may_install`` decides who may graft which target (by default the
target's owner, and privileged principals); whatever the rule, a principal may
replace (``install(replace=True)``) or remove (``remove(by=...)``) only its own
grafts, a privileged principal any.

Invariant: a point's table and handler lists change only under ``Registry._mutex``;
values are live grafts of that point.
Invariant: ``_pres`` holds only linked modules of digests the sandbox keeps.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypedDict, TypeVar

import wasmtime

from vino import limits
from vino.errors import GraftRejected, InvalidDeclaration, NoSuchPoint, QuotaExceeded
from vino.graft import aborts, failures, fastcall, hostapi, hosting, loader, stack, store
from vino.graft.accounting import Principal
from vino.graft.fastcall import I32
from vino.graft.hold import Shares
from vino.graft.invoke import LIVE, Graft
from vino.graft.locks import LockManager
from vino.graft.point import (
    GLOBAL,
    Context,
    EventPoint,
    FunctionPoint,
    Point,
    describe_target,
)
from vino.graft.ratelimit import TokenBucket
from vino.graft.sandbox import Sandbox
from vino.graft.stats import Stats
from vino.graft.txn import Transaction

A = ParamSpec("A")
# A Python function written as a graft (vino.pygraft): its parameters are the layout's
# fields it reads, whatever they are.
PythonGraft = Callable[A, object]


def _compiled(pt: Point, source: loader.Source | PythonGraft[A], name: str | None,
              principal: Principal, target: object) -> tuple[loader.Source, str | None]:
    """A Python graft (a function, a ``.py`` path or Python text) compiled for ``pt``.

    Any other source passes through unchanged. The host compiles Python itself, so
    the loader's cheap checks come first (``loader.admit``: the target's kind, the
    installer's rights; a source of at most ``MAX_PYGRAFT_SOURCE_CHARS``; the thread's
    native stack, ``PYGRAFT_COMPILE_STACK_BYTES`` left, when the stack guard is loaded; CPU
    left),
    and the compile is charged to the installer. A Python graft refused or that
    cannot be compiled raises ``PythonGraftError`` or another ``GraftRejected``:
    nothing changed.
    """
    if isinstance(source, bytes | bytearray):  # a module (binary or text), never Python
        return source, name
    from vino import pygraft

    if not callable(source) and not pygraft.is_python(source):
        return source, name
    label = name or "python"
    loader.admit(pt, principal, target, label)
    if pt.layout is None:
        raise GraftRejected(label, pt.name,
                            "this point declares no layout, which Python grafts need")
    text, filename = "", "<python graft>"
    if not callable(source):
        if isinstance(source, os.PathLike):  # a str is text, never a path (loader.Source)
            path = Path(source)
            try:
                text = loader.read_bounded(path, 4 * limits.MAX_PYGRAFT_SOURCE_CHARS).decode(
                    "utf-8", errors="replace")
            except ValueError as exc:
                raise GraftRejected(path.name, pt.name, str(exc)) from None
            filename = str(path)
        else:
            text = source
        if len(text) > limits.MAX_PYGRAFT_SOURCE_CHARS:
            raise GraftRejected(label, pt.name, f"Python source of {len(text)} characters; "
                                f"the limit is {limits.MAX_PYGRAFT_SOURCE_CHARS}")

    def reject(reason: str) -> GraftRejected:
        return GraftRejected(label, pt.name, reason)

    guard = stack.guard()  # parsing recurses on this thread's native stack, as deep as
    left = guard.left() if guard is not None else None  # the source nests
    if left is not None and left < limits.PYGRAFT_COMPILE_STACK_BYTES:
        raise reject(f"{left // 1024} KiB of native stack left on this thread; compiling a "
                     f"Python graft needs {limits.PYGRAFT_COMPILE_STACK_BYTES // 1024} KiB "
                     "(PYGRAFT_COMPILE_STACK_BYTES): install it from a thread with more")
    loader.check_cpu_left(principal, reject)
    with loader.charged(principal):
        if callable(source):  # the application's own function, from its own file
            out = pygraft.compile_function(source, pt.layout)
        elif filename != "<python graft>":
            out = pygraft.compile_source(text, pt.layout, filename=filename)
        else:
            out = pygraft.compile_source(text, pt.layout, filename=filename, name="python")
    return out.wasm, name or out.name


class RegistrySnapshot(TypedDict):
    """``Registry.snapshot()``: what an install or a call could change, as plain data."""

    points: dict[str, list[tuple[str, str, str]]]  # point -> sorted (repr(target), name, digest)
    usage: dict[str, dict[str, int]]  # principal -> its usage
    locks_held: list[str]


P = TypeVar("P", bound=Point)  # declare returns the point with its own type


class Registry:
    """Points, grafts, the sandbox and the locks of one host program.

    ``remove_after``: failed calls after which a graft is removed (1: at its first
    failure). ``lock_timeout_s``: how long a lock waiter waits before the holder is
    doomed. Failures are logged under the ``vino`` logger and passed to the hooks
    registered with ``on_abort`` / ``on_remove``; ``report()`` lists them.
    """

    def __init__(self, *, sandbox: Sandbox | None = None, lock_timeout_s: float =
                 limits.LOCK_TIMEOUT_S, remove_after: int = limits.REMOVE_AFTER_FAILURES,
                 tick_s: float = limits.EPOCH_TICK_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        fastcall.check_internals()
        store.check_internals()
        self.clock = clock  # seconds; the install rate's (tests pass a fake one)
        # Each principal's bucket of install attempts, held weakly: a principal nobody
        # else keeps takes its bucket with it.
        self._installs: weakref.WeakKeyDictionary[Principal, TokenBucket] = (
            weakref.WeakKeyDictionary())
        # What each principal's operations may spend in other principals' grafts.
        self.hosting = hosting.Hosting(clock)
        # Each principal's share of the time others wait for a shared lock.
        self.shares = Shares(clock)
        self.sandbox = sandbox or Sandbox(tick_s)
        self.locks = LockManager(lock_timeout_s)
        self.remove_after = remove_after
        self.points: dict[str, Point] = {}
        self._linkers: dict[str, tuple[wasmtime.Linker, list[object]]] = {}
        self._pres: dict[tuple[str, str], wasmtime.InstancePre] = {}
        self._mutex = threading.RLock()
        self.observers = failures.Observers()
        # Called (under the registry's mutex, so keep them short) after every change of
        # a point's dispatch: an install, a removal. A host that remembers "no graft
        # here" forgets it then (the file system's plain reads, fspolicy.py).
        self.on_change: list[Callable[[], None]] = []
        self.retired = Stats()  # stats of removed grafts, so point totals survive removal
        self._retired_by_point: dict[str, Stats] = {}

    # ---- points -------------------------------------------------------------------------
    def declare(self, point: P) -> P:
        """Register ``point`` and link its graft-callables; return it (with its type).

        Raises ``InvalidDeclaration`` if a point of that name is already declared.
        """
        with self._mutex:
            if point.name in self.points:
                raise InvalidDeclaration(f"graft point {point.name!r} is already declared")
            linker, keep = hostapi.link(self.sandbox.engine, point)
            self._linkers[point.name] = (linker, keep)
            point.registry = self
            self.points[point.name] = point
            self._retired_by_point[point.name] = Stats()
        return point

    def _instance_pre(self, point: Point, checked: loader.Checked) -> wasmtime.InstancePre:
        """The linked module: cached if a graft of it was installed, else made (not cached:
        an install that fails leaves nothing behind, see ``_remember``)."""
        pre = self._pres.get((point.name, checked.digest))
        if pre is None:
            pre = self._linkers[point.name][0].instantiate_pre(checked.module)
        return pre

    def _remember(self, point: Point, checked: loader.Checked, pre: wasmtime.InstancePre,
                  principal: Principal) -> None:
        """An install succeeded: cache its linked module and its checks, in the
        installer's share of the cache (caller locks)."""
        self._pres[(point.name, checked.digest)] = pre
        dropped = set(loader.keep(self.sandbox, point, checked, principal))
        if dropped:  # Invariant: _pres holds only digests the sandbox keeps (bounded there)
            for key in [k for k in self._pres if k[1] in dropped]:
                del self._pres[key]

    def _point(self, point: Point | str) -> Point:
        if isinstance(point, str):
            try:
                return self.points[point]
            except KeyError:
                raise NoSuchPoint(f"no graft point named {point!r}") from None
        if self.points.get(point.name) is not point:
            raise NoSuchPoint(f"graft point {point.name!r} is not declared in this registry")
        return point

    # ---- install / replace / remove -------------------------------------------------
    def check(self, point: Point | str, source: loader.Source | PythonGraft[A],
              principal: Principal, target: object = GLOBAL,
              name: str | None = None) -> loader.Checked:
        """Every load-time check, changing nothing (``vino graft check``).

        Returns the ``Checked`` module. Raises ``GraftRejected`` with the reason,
        ``NoSuchPoint`` for a point not declared here.
        """
        pt = self._point(point)
        source, name = _compiled(pt, source, name, principal, target)
        return loader.check(self.sandbox, pt, source, principal, target, name)

    def install(self, point: Point | str, source: loader.Source | PythonGraft[A],
                principal: Principal,
                target: object = GLOBAL, *, name: str | None = None, replace: bool = False,
                remove_after: int | None = None) -> Graft:
        """Check, instantiate and bind a graft; then, and only then, make it live.

        With ``replace=True`` an existing graft of a function point's target is
        replaced atomically: calls see the old graft or the new one, never none; a
        principal may replace only its own graft (a privileged one, any).
        ``source``: ``.wasm`` bytes, the path of a ``.wasm``/``.wat``/``.py`` file as an
        ``os.PathLike`` (``pathlib.Path``), WebAssembly text, or a Python graft (a
        function or its text). A ``str`` is always source text, never opened: a
        tenant's text cannot make the host read a file. ``remove_after``: this graft's own
        number of failures before removal (default: the registry's).
        Raises ``GraftRejected`` (nothing changed, and logged) on any failed check,
        ``NoSuchPoint`` for a point not declared here.
        """
        pt = self._point(point)
        try:
            self._rate(pt, principal, name)
            # vino_buffer() runs at every install, charged (_bind_buffer): a module
            # compiled (and cached) earlier meets no other CPU check. As for compiling,
            # an install starts only with CPU left; the one that uses it up completes.
            loader.check_cpu_left(principal, lambda why: GraftRejected(
                name or "graft", pt.name, why))
            source, name = _compiled(pt, source, name, principal, target)
            checked = loader.check(self.sandbox, pt, source, principal, target, name)
            with self._mutex:
                self._may_switch(pt, checked, principal, target, replace)  # before any work
            # Built and its vino_buffer() run outside the lock: the graft's own code runs
            # for up to its budget (longer in wall time), and every other install and
            # removal -- those on the path of an operation whose graft failed -- needs
            # the lock. Its install transaction stays open until the switch.
            g, txn, size = self._build(pt, checked, principal, target, remove_after)
            try:
                with self._mutex:
                    # Checked again: another install may have switched in meanwhile, the
                    # target may have ended (its remove_target lists under this lock).
                    loader.check_target_alive(pt, target, checked.name)
                    old = self._may_switch(pt, checked, principal, target, replace)
                    txn.commit()
                    g.mem_charged = size
                    g.table_charged = g.table_bytes
                    self._remember(pt, checked, g.pre, principal)
                    if isinstance(pt, FunctionPoint):
                        pt.table[target] = g  # the atomic switch
                    else:
                        pt.handlers[target] = [*pt.handlers.get(target, ()), g]
                    self._changed()
            except BaseException:
                if txn.live:
                    txn.abort()  # undo what vino_buffer() did
                    principal.release("memory_bytes", size + g.table_bytes)
                g._retire(None)  # give back what vino_buffer() allocated
                raise
        except GraftRejected as exc:
            failures.rejected(exc.graft, exc.point, principal.name, exc.reason)
            raise
        if old is not None:
            old.remove()
        return g

    def _rate(self, pt: Point, principal: Principal, name: str | None) -> None:
        """Take one of ``principal``'s install attempts, or raise ``GraftRejected``
        (before any work) when its rate is spent; privileged principals are exempt."""
        if principal.privileged:
            return
        with self._mutex:
            bucket = self._installs.get(principal)
            if bucket is None:
                q = principal.quota
                bucket = self._installs[principal] = TokenBucket(
                    q.installs_per_s, q.install_burst, self.clock)
        wait = bucket.take()
        if wait > 0:
            q = principal.quota
            raise GraftRejected(name or "graft", pt.name,
                                f"{principal.name} installs too fast: at most "
                                f"{q.installs_per_s:g} installs per second after a burst of "
                                f"{q.install_burst} (Quota.installs_per_s); the next in "
                                f"{wait:.3f} s")

    def _may_switch(self, pt: Point, checked: loader.Checked, principal: Principal,
                    target: object, replace: bool) -> Graft | None:
        """The graft ``checked`` would replace (None: none), or ``GraftRejected`` if it may
        not go into the table (caller locks)."""
        old = pt.table.get(target) if isinstance(pt, FunctionPoint) else None
        if old is None:
            return None
        # Another principal's graft is not named, nor its owner: theirs to tell.
        mine = old.principal is principal or principal.privileged
        if not replace:
            what = f"graft {old.name!r}" if mine else "a graft of another principal"
            raise GraftRejected(checked.name, pt.name, f"{describe_target(target)} already "
                                f"has {what}"
                                + (" (use replace=True to replace it)" if mine else ""))
        if not mine:
            raise GraftRejected(checked.name, pt.name,
                                f"{principal.name} may not replace a graft of another "
                                "principal: a principal replaces only its own grafts")
        return old

    def _build(self, pt: Point, checked: loader.Checked, principal: Principal, target: object,
               remove_after: int | None) -> tuple[Graft, Transaction, int]:
        """The graft instantiated, its buffer bound and its memory charged (its linear
        memory's size, returned, and its table), with ``vino_buffer()``'s transaction
        still open: ``install`` commits it at the switch, or aborts it and gives the
        memory back."""
        try:
            g = Graft(self, pt, checked, principal, target,
                      remove_after if remove_after is not None else self.remove_after)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:  # Trap: a segment out of bounds
            detail = " ".join(str(exc).split())[:300]
            raise GraftRejected(checked.name, pt.name, f"instantiation failed: {detail}") from None
        except QuotaExceeded as exc:  # its count of grafts, or its share of the host
            raise GraftRejected(checked.name, pt.name, str(exc)) from None
        try:
            txn = _bind_buffer(g)
            try:
                if g.state is not LIVE:  # host code under vino_buffer removed it
                    raise GraftRejected(checked.name, pt.name, "removed during vino_buffer()")
                size = g.memory.refresh()
                try:
                    principal.charge("memory_bytes", size + g.table_bytes)
                except QuotaExceeded as exc:
                    raise GraftRejected(checked.name, pt.name, str(exc)) from None
            except BaseException:
                txn.abort()  # undo what vino_buffer() did
                raise
        except BaseException:  # rejected, or a host error: g was never linked
            g._retire(None)  # give back what vino_buffer() allocated
            raise
        return g, txn, size

    def remove(self, graft: Graft, by: Principal | None = None) -> None:
        """``graft.remove(by)``: raises ``Forbidden`` if ``by`` may not remove it."""
        graft.remove(by)

    def on_abort(self, hook: failures.Hook) -> failures.Hook:
        """Call ``hook(graft, record)`` after every abort (host faults included), once
        the transaction is undone and the graft's lock released; returns ``hook``
        (usable as a decorator). A hook that raises is logged and ignored."""
        self.observers.on_abort.append(hook)
        return hook

    def on_remove(self, hook: failures.Hook) -> failures.Hook:
        """Call ``hook(graft, record)`` after every removal (``record`` is ``None`` for
        an explicit one); returns ``hook``. A hook that raises is logged and ignored."""
        self.observers.on_remove.append(hook)
        return hook

    def report(self) -> str:
        """What failed and why: per point, each graft (live or recently removed) with
        its commits, aborts by reason, host faults and why it was removed. Raises
        nothing."""
        return failures.render(self)

    def remove_target(self, target: object) -> int:
        """Remove every graft installed for ``target`` (at any point); return how many.

        Host code calls this when the object a graft was installed on goes away (a
        file is closed, an address space released), so the graft's memory and
        handles are given back at once instead of when the program ends. Raises
        nothing.
        """
        doomed = [g for g in self.grafts() if g.target is target]
        for g in doomed:
            g.remove()
        return len(doomed)

    def _unlink(self, g: Graft) -> None:
        with self._mutex:
            pt = g.point
            if isinstance(pt, FunctionPoint):
                if pt.table.get(g.target) is g:
                    del pt.table[g.target]
            else:
                hs = pt.handlers.get(g.target)
                if hs and g in hs:
                    rest = [h for h in hs if h is not g]
                    if rest:
                        pt.handlers[g.target] = rest
                    else:
                        del pt.handlers[g.target]
            self._changed()

    def _changed(self) -> None:
        for hook in self.on_change:
            hook()

    def _retire_stats(self, g: Graft) -> None:
        """Keep a freed graft's counters in its point's totals (once: its last call ended)."""
        with self._mutex:
            self.retired.add(g.stats)
            self._retired_by_point[g.point.name].add(g.stats)

    # ---- inspection -----------------------------------------------------------------------
    def grafts(self, point: Point | str | None = None) -> list[Graft]:
        """The live grafts of ``point`` (of every point if None); raises ``NoSuchPoint``
        for an unknown point."""
        pts = [self._point(point)] if point is not None else list(self.points.values())
        out: list[Graft] = []
        with self._mutex:  # installs and removals change the tables under it
            for pt in pts:
                if isinstance(pt, FunctionPoint):
                    out.extend(pt.table.values())
                else:
                    for hs in pt.handlers.values():
                        out.extend(hs)
        return out

    def point_stats(self, point: Point | str) -> Stats:
        """A point's statistics, its removed grafts included; raises ``NoSuchPoint`` for
        an unknown point."""
        pt = self._point(point)
        total = Stats()
        total.add(self._retired_by_point[pt.name])
        for g in self.grafts(pt):
            total.add(g.stats)
        return total

    def snapshot(self) -> RegistrySnapshot:
        """Everything an install could change, as plain data (for tests and `vino stats`).
        Raises nothing."""
        principals = {id(g.principal): g.principal for g in self.grafts()}
        with self._mutex:  # installs and removals change the tables under it
            points = {name: sorted((repr(t), g.name, g.digest) for t, g in
                                   (pt.table.items() if isinstance(pt, FunctionPoint) else
                                    ((t, h) for t, hs in pt.handlers.items() for h in hs)))
                      for name, pt in self.points.items()}
        return {  # the points' (target, graft, digest), each principal's usage, the locks
            "points": points,
            "usage": {p.name: p.usage.snapshot() for p in principals.values()},
            "locks_held": [lk.name for lk in self.locks.held()],
        }

    def close(self) -> None:
        """Remove every graft and stop the sandbox's ticker. Raises nothing."""
        for g in self.grafts():
            g.remove()
        self.sandbox.close()


def _bind_buffer(g: Graft) -> Transaction:
    """Ask the graft where its buffer is (protected) and bounds-check it.

    Returns vino_buffer()'s transaction still open: the install commits it once
    every check passed, or aborts it, so a rejected install changes nothing.
    """
    txn = g._begin()
    assert g.instance is not None
    vino_buffer = g.instance.func("vino_buffer", (), (I32,))
    g.context = Context.INSTALL
    try:
        rc = vino_buffer.call0()
    finally:
        g.context = None
        # its time is the installer's, whatever it did (the clock read before the lock)
        g.principal.add_cpu(max(0, time.perf_counter_ns() - txn.start_ns))
    if rc != fastcall.OK:
        try:
            reason, detail = aborts.fault(g, rc, txn, vino_buffer)
        except BaseException:  # the host's own fault: the install fails with it
            txn.abort()
            raise
        txn.abort()
        raise GraftRejected(g.name, g.point.name,
                            f"vino_buffer() failed ({reason.value}): {detail}")
    try:
        off = vino_buffer.result_i32() & 0xFFFFFFFF
        size = g.memory.refresh()
        need = g.point.buffer_size
        if off + need > size:
            raise GraftRejected(g.name, g.point.name,
                                f"vino_buffer() returned offset {off}; {need} bytes from "
                                f"there do not fit in linear memory of {size} bytes")
        g.buffer = g.memory.window(off, need)
    except BaseException:
        txn.abort()
        raise
    return txn


__all__ = ["GLOBAL", "EventPoint", "FunctionPoint", "Graft", "Registry", "Stats"]
