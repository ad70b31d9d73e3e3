"""Counters of a graft's calls (``Graft.stats``), summed per point (``Registry.point_stats``).

Written by the protected call (``invoke.py``) on the graft's own thread, with its
store held; read by anyone (a reader may see one call's counters half-updated). The
one exception, ``busy``, is counted by a caller that found the store held, without
it: a lone ``+= 1`` of an int, inside which CPython (with its GIL) never switches threads
(nothing is called between the read and the write), so no count is lost.
A removed graft's counters are added to its point's totals once, when its last
call ended (``Registry._retire_stats``), so totals survive removal.

The five counters every committed call adds to (``commits``, ``graft_ns`` and the
sampled ones) are C integers of the native fast path's ``Counters`` when it is built
(``fastpath.py``): the native protected call adds to them without making an int, and
Python reads and writes them as ints all the same. Without it, ``_Counters``, their
Python twin, holds them.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Final

from vino.graft import fastpath

SAMPLE_MASK: Final = 15  # the whole protected call is timed on 1 call in 16


class _Counters:
    """The counters of every committed call, as Python ints (no native fast path)."""

    __slots__ = ("commits", "graft_ns", "sampled_graft_ns", "sampled_ns", "samples")


_NATIVE: Final = fastpath.PART.get()
if TYPE_CHECKING:
    _Base = _Counters
else:
    _Base = _NATIVE.Counters if _NATIVE is not None else _Counters


class Stats(_Base):
    """Counters of one graft (or, summed, of one point).

    ``graft_ns`` is time inside the Wasm entry, measured on every call.
    ``overhead_ns`` is the protection's cost (transaction, copies, validation,
    accounting): the whole call is timed on one committed call in 16
    (``samples``) and the overhead per call seen there is scaled to all commits.
    """

    __slots__ = ("aborts", "busy", "hosted_ns", "throttled", "unpaid")

    commits: int
    graft_ns: int
    samples: int
    sampled_ns: int  # whole protected calls, on sampled calls only
    sampled_graft_ns: int  # time in the graft, on the same calls

    def __init__(self) -> None:
        self.commits = 0
        self.aborts: collections.Counter[str] = collections.Counter()
        self.busy = 0  # calls that found the graft busy on another thread (Graft.invoke)
        self.hosted_ns = 0  # CPU of calls run in another principal's operation (hosting.py)
        self.unpaid = 0  # calls not made: that principal's hosting allowance was spent
        self.throttled = 0  # calls not made: others waited and its share was spent (hold.py)
        self.graft_ns = 0
        self.samples = 0
        self.sampled_ns = 0
        self.sampled_graft_ns = 0

    def __repr__(self) -> str:
        return f"Stats({self.as_dict()})"

    @property
    def invocations(self) -> int:
        return self.commits + sum(self.aborts.values())

    @property
    def overhead_ns(self) -> int:
        if not self.samples:
            return 0
        per_call = (self.sampled_ns - self.sampled_graft_ns) / self.samples
        return int(per_call * self.commits)

    def add(self, other: Stats) -> None:
        self.commits += other.commits
        self.aborts.update(other.aborts)
        self.busy += other.busy
        self.hosted_ns += other.hosted_ns
        self.unpaid += other.unpaid
        self.throttled += other.throttled
        self.graft_ns += other.graft_ns
        self.samples += other.samples
        self.sampled_ns += other.sampled_ns
        self.sampled_graft_ns += other.sampled_graft_ns

    def as_dict(self) -> dict[str, int | dict[str, int]]:
        return {"invocations": self.invocations, "commits": self.commits,
                "aborts": dict(self.aborts), "busy": self.busy, "hosted_ns": self.hosted_ns,
                "unpaid": self.unpaid, "throttled": self.throttled,
                "graft_ns": self.graft_ns, "overhead_ns": self.overhead_ns}
