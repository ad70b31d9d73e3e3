"""Failures made visible as they happen: log records, hooks, and the report.

Every abort, removal, rejection and host fault of a registry goes through
``Observers.emit``, which

1. writes a record to the ``vino`` logger (aborts and removals at WARNING,
   host faults at ERROR with the traceback, rejections at INFO), carrying
   ``graft``, ``point``, ``principal`` and ``reason`` as record attributes, so a
   handler or a formatter (``%(graft)s``) can use them;
2. calls the hooks registered with ``Registry.on_abort`` / ``Registry.on_remove``
   as ``hook(graft, record)``, where ``record`` is the ``AbortRecord`` (None for
   an explicit removal). A hook that raises is logged and the others still run.

When it runs: after the failed transaction has been undone and after the graft's
store has been released, so a hook may call anything, the graft's own
``remove()`` included. Nothing is emitted on the hot path of a committing call.

``render(registry)`` is ``Registry.report()``: per point, its grafts (live and
removed) with their aborts by reason, host faults, the last failure and why a
removed graft went.

``vino`` has a ``NullHandler``: an application that configures no logging sees
nothing on stderr; one that does (``logging.basicConfig()``) sees every record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from vino.graft.aborts import AbortRecord
    from vino.graft.invoke import Graft
    from vino.graft.registry import Registry

log: Final = logging.getLogger("vino")
log.addHandler(logging.NullHandler())

ABORT: Final = "abort"
REMOVE: Final = "remove"
HOST_FAULT: Final = "host_fault"

Hook = Callable[["Graft", "AbortRecord | None"], object]


def _listening(level: int) -> bool:
    """Whether a record at ``level`` would reach a real handler.

    ``isEnabledFor`` alone is true whenever the level passes, even when the only
    handler is our ``NullHandler``: building a record for nobody doubled the cost
    of an abort (about 30 µs more under load, measured). Which handlers are real
    is remembered (``_Handlers``) rather than found on every abort.
    """
    return log.isEnabledFor(level) and _HANDLERS.real()


class _Handlers:
    """Whether a real (non-``NullHandler``) handler hears ``vino``'s records, remembered.

    The answer is kept with a copy of the handler list and ``propagate`` flag of every
    logger on the way up from ``vino`` (two: ``vino`` and the root); any change to
    them -- a handler added, removed or replaced, propagation switched -- makes the
    next question walk the hierarchy again. Checking costs two list comparisons
    (identity first), not a walk and a scan of every handler.
    """

    __slots__ = ("_known",)

    def __init__(self) -> None:
        # Invariant: (chain, answer), replaced as one (threads may ask at once): answer is
        # true iff a logger of chain, reached by propagation from ``vino``, has a real
        # handler, as of the handler lists and flags copied in chain.
        self._known: tuple[list[tuple[logging.Logger, list[logging.Handler], bool]], bool] = (
            [], False)

    def real(self) -> bool:
        chain, answer = self._known
        node: logging.Logger | None = log
        for logger, handlers, propagate in chain:
            if (logger is not node or logger.handlers != handlers
                    or logger.propagate is not propagate):
                return self._walk()
            node = logger.parent
        # The chain seen ends at the root, at a real handler, or where propagation stops:
        # loggers above it cannot change the answer.
        return answer if chain else self._walk()

    def _walk(self) -> bool:
        seen: list[tuple[logging.Logger, list[logging.Handler], bool]] = []
        answer = False
        node: logging.Logger | None = log
        while node is not None:
            seen.append((node, list(node.handlers), node.propagate))
            if any(not isinstance(h, logging.NullHandler) for h in node.handlers):
                answer = True
                break
            if not node.propagate:
                break
            node = node.parent
        self._known = (seen, answer)
        return answer


_HANDLERS: Final = _Handlers()

# Removed grafts the report still lists, per registry (the oldest are dropped).
REMOVED_KEPT: Final = 64


@dataclass(frozen=True, slots=True)
class Summary:
    """What the report says of one graft: plain data, so that a removed graft's
    summary keeps neither the graft nor its target alive."""

    name: str
    point: str
    target: str  # repr of the target
    principal: str
    state: str
    commits: int
    aborts: dict[str, int]
    removal: AbortRecord | None
    last_abort: AbortRecord | None

    @classmethod
    def of(cls, g: Graft) -> Summary:
        return cls(g.name, g.point.name, repr(g.target), g.principal.name, g.state,
                   g.stats.commits, dict(g.stats.aborts), g.removal,
                   g.aborts[-1] if g.aborts else None)


class Observers:
    """The hooks of one registry and the removed grafts its report remembers."""

    def __init__(self) -> None:
        self.on_abort: list[Hook] = []
        self.on_remove: list[Hook] = []
        # Invariant: at most REMOVED_KEPT summaries of removed grafts, most recent last.
        self.removed: list[Summary] = []
        self._mutex = threading.Lock()

    def emit(self, kind: str, graft: Graft, record: AbortRecord | None,
             exc: BaseException | None = None) -> None:
        """Log one event and call its hooks (see the module's header).

        The record's text is built only when a real handler listens, so an abort
        nobody hears costs a check, not a formatted message.
        """
        if kind == HOST_FAULT:
            if _listening(logging.ERROR):
                log.error("host fault in %s: %s; transaction aborted, graft kept",
                          _where(graft), record.detail if record is not None else "",
                          extra=_extra(graft, record),
                          exc_info=(type(exc), exc, exc.__traceback__) if exc else None)
        elif kind == ABORT:
            if _listening(logging.WARNING):
                log.warning("aborted %s: %s: %s", _where(graft), *_reason(record),
                            extra=_extra(graft, record))
        elif kind == REMOVE:
            with self._mutex:
                self.removed.append(Summary.of(graft))
                del self.removed[:-REMOVED_KEPT]
            # A removal for a failure is a warning; one the application asked for is not.
            level = logging.WARNING if record is not None else logging.INFO
            if _listening(level):
                reason, detail = _reason(record)
                log.log(level, "removed %s: %s%s", _where(graft), reason,
                        f": {detail}" if detail else "", extra=_extra(graft, record))
        hooks = self.on_remove if kind == REMOVE else self.on_abort
        if not hooks:
            return
        for hook in list(hooks):
            try:
                hook(graft, record)
            except Exception:
                log.exception("a vino %s hook raised (ignored; the other hooks ran)",
                              "on_remove" if kind == REMOVE else "on_abort",
                              extra=_extra(graft, record))


def _reason(record: AbortRecord | None) -> tuple[str, str]:
    if record is None:
        return "removed by its installer", ""
    return record.reason.value, record.detail


def _where(graft: Graft) -> str:
    return (f"graft {graft.name!r} at {graft.point.name} "
            f"(principal {graft.principal.name}, target {graft.target!r})")


def _extra(graft: Graft, record: AbortRecord | None) -> dict[str, str]:
    """The record attributes every vino failure record carries."""
    return {"graft": graft.name, "point": graft.point.name,
            "principal": graft.principal.name, "reason": _reason(record)[0]}


def rejected(graft: str, point: str, principal: str, reason: str) -> None:
    """Log a refused install (INFO: the caller also gets ``GraftRejected``)."""
    if _listening(logging.INFO):
        log.info("rejected graft %r at %s for principal %s: %s", graft, point, principal,
                 reason, extra={"graft": graft, "point": point, "principal": principal,
                                "reason": reason})


def add_host_note(exc: BaseException, where: str, graft: Graft) -> None:
    """Say on ``exc`` itself where vino met it and what it did about it."""
    exc.add_note(f"vino: raised by the host's {where} during a call of graft {graft.name!r} "
                 f"at {graft.point.name} (principal {graft.principal.name}); the transaction "
                 "was aborted and its effects undone; the graft is still installed")


def render(registry: Registry) -> str:
    """What failed and why, per point and graft (``Registry.report()``)."""
    lines: list[str] = []
    for name, point in sorted(registry.points.items()):
        live = registry.grafts(point)
        with registry.observers._mutex:
            gone = [s for s in registry.observers.removed if s.point == name]
        total = registry.point_stats(point)
        aborts = ", ".join(f"{r} {n}" for r, n in sorted(total.aborts.items())) or "none"
        lines.append(f"{name} ({point.kind} point): {len(live)} live, {len(gone)} removed; "
                     f"{total.commits} commits; aborts: {aborts}")
        for s in [*map(Summary.of, live), *gone]:
            lines.append("  " + _graft_line(s))
    return "\n".join(lines) if lines else "no graft points"


def _graft_line(g: Summary) -> str:
    host = g.aborts.get("host_error", 0)
    parts = [f"{g.name} for {g.target} by {g.principal}: {g.state}", f"{g.commits} commits"]
    failed = {k: v for k, v in g.aborts.items() if k != "host_error"}
    if failed:
        parts.append("aborts " + ", ".join(f"{k} {v}" for k, v in sorted(failed.items())))
    if host:
        parts.append(f"{host} host fault{'s' if host != 1 else ''} (the host's bug, graft kept)")
    if g.removal is not None:
        parts.append(f"removed for {g.removal.reason.value}: {g.removal.detail}")
    elif g.state != "live":
        parts.append("removed by its installer")
    elif g.last_abort is not None:
        last = g.last_abort
        parts.append(f"last failure {last.reason.value}: {last.detail}")
    return "; ".join(parts)

