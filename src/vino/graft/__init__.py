"""The graft mechanism (layer 1): safe, transactional extension points for any program.

Declare a point, install untrusted WebAssembly into it, call it::

    from vino.graft import FunctionPoint, Principal, Registry

    reg = Registry()
    point = reg.declare(FunctionPoint(name="app.pick", entry="pick", buffer_size=64,
                                      encode=..., decode=..., default=...))
    graft = reg.install(point, Path("pick.wat"), Principal("alice"), target=some_object)
    answer = point(some_object, *args)   # protected; the default on any failure

Nothing here knows about pages or files.
"""

from vino.errors import (
    AbortReason,
    BadArgument,
    Forbidden,
    GraftAborted,
    GraftRejected,
    InvalidDeclaration,
    InvalidResult,
    MessageRefused,
    MessageUndeliverable,
    NoSuchGraft,
    NoSuchPoint,
    QuotaExceeded,
    TimedOut,
)
from vino.graft.aborts import AbortRecord
from vino.graft.accounting import Principal, Quota, Usage
from vino.graft.fastcall import I32, I64
from vino.graft.invoke import Graft
from vino.graft.locks import HostLock, LockManager
from vino.graft.point import (
    GLOBAL,
    Context,
    EventPoint,
    FunctionPoint,
    GraftCallable,
    any_principal,
    graft_callable,
    owner_or_privileged,
)
from vino.graft.registry import Registry
from vino.graft.stats import Stats
from vino.graft.txn import Transaction, begin, current, transaction

__all__ = [
    "GLOBAL",
    "I32",
    "I64",
    "AbortReason",
    "AbortRecord",
    "BadArgument",
    "Context",
    "EventPoint",
    "Forbidden",
    "FunctionPoint",
    "Graft",
    "GraftAborted",
    "GraftCallable",
    "GraftRejected",
    "HostLock",
    "InvalidDeclaration",
    "InvalidResult",
    "LockManager",
    "MessageRefused",
    "MessageUndeliverable",
    "NoSuchGraft",
    "NoSuchPoint",
    "Principal",
    "Quota",
    "QuotaExceeded",
    "Registry",
    "Stats",
    "TimedOut",
    "Transaction",
    "Usage",
    "any_principal",
    "begin",
    "current",
    "graft_callable",
    "owner_or_privileged",
    "transaction",
]
