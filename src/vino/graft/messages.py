"""Messages from the installer to its graft: ``Graft.send`` delivers them.

A graft that exports ``vino_message: (i32) -> i32`` may be sent bytes by the host
(on behalf of the principal that installed it): the bytes are copied into the
graft's buffer and ``vino_message(len)`` runs in a transaction of its own, with
the graft's store held, like any protected call (``invoke.py``). Its export is
looked up at the first message (most grafts are never sent one), and kept.

Invariant: a message runs in ``Context.MESSAGE`` and only while the graft is live;
a negative answer is the graft's refusal: undone, and not counted as a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vino.errors import (
    AbortReason,
    GraftAborted,
    MessageRefused,
    MessageUndeliverable,
    NoSuchGraft,
)
from vino.graft import aborts
from vino.graft.aborts import is_host_fault
from vino.graft.events import call_handler
from vino.graft.fastcall import I32
from vino.graft.point import Context
from vino.graft.txn import _LOCAL, ACTIVE

if TYPE_CHECKING:
    from vino.graft.invoke import Graft


def send(g: Graft, data: bytes) -> int:
    """Deliver ``data`` to ``g``'s ``vino_message`` inside a transaction.

    Returns the graft's (non-negative) answer. Raises ``MessageRefused`` if
    the graft answered negatively (its transaction undone; the graft stays,
    not charged a failure); ``MessageUndeliverable`` (changing nothing) if the graft
    takes no messages or ``data`` exceeds its buffer; ``NoSuchGraft`` if it
    was removed; ``GraftAborted`` if the message transaction failed (a trap,
    a time-out, ...), after the usual failure handling; and the host's own
    exception if a graft-callable's bug raised (a host fault).
    """
    if _removed(g):
        raise NoSuchGraft(f"graft {g.name!r} was removed")
    if not g.has_message:
        raise MessageUndeliverable(f"graft {g.name!r} exports no vino_message")
    if len(data) > len(g.buffer):
        raise MessageUndeliverable(f"message of {len(data)} bytes exceeds the graft's "
                                   f"buffer of {len(g.buffer)} bytes")
    if not g._enter():
        raise GraftAborted(AbortReason.LOCK_TIMEOUT, "graft busy", graft=g.name)
    try:
        if _removed(g):  # removed while we waited for its store
            raise NoSuchGraft(f"graft {g.name!r} was removed")
        ts = _LOCAL.ts
        parent = ts.txn
        if parent is not None and aborts.too_deep(g, parent):
            raise GraftAborted(AbortReason.RESOURCE, g.aborts[-1].detail, graft=g.name)
        if not g._pay(ts.acting, parent):
            raise GraftAborted(AbortReason.RESOURCE, "not called: the sender's hosting "
                               f"allowance for {g.principal.name}'s grafts is spent "
                               "(Quota.hosted_cpu_per_s)", graft=g.name)
        message = g._message
        if message is None:
            assert g.instance is not None
            message = g._message = g.instance.func("vino_message", (I32,), (I32,))
        txn = g._begin()  # current from here: nothing but the try's entry before it
        try:
            g.context = Context.MESSAGE
            g.buffer[: len(data)] = data
            call_handler(g, txn, message, (len(data),), "vino_message", refusable=True)
            ret = message.result_i32()
        except MessageRefused:
            if txn.state == ACTIVE:
                txn.abort()  # refusing is its right: undone, not a failure
            raise
        except BaseException as exc:  # an interrupt as well: aborted, never left current
            if not isinstance(exc, Exception) or is_host_fault(exc):
                aborts.host_fault(g, txn, exc, "graft-callable (message)")
                raise
            rec = aborts.abort(g, txn, exc)
            raise GraftAborted(rec.reason, rec.detail, graft=g.name) from exc
        finally:
            g.context = None
        g.stats.commits += 1
        return ret
    finally:
        g._end_call()


def _removed(g: Graft) -> bool:
    """Whether ``g`` was removed (asked anew each time: the calls above may remove it)."""
    return not g.live
