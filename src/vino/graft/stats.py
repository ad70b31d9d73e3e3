"""Counters of a graft's calls (``Graft.stats``), summed per point (``Registry.point_stats``).

Written by the protected call (``invoke.py``) on the graft's own thread, with its
store held; read by anyone (a reader may see one call's counters half-updated).
A removed graft's counters are added to its point's totals once, when its last
call ended (``Registry._retire_stats``), so totals survive removal.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Final

SAMPLE_MASK: Final = 15  # the whole protected call is timed on 1 call in 16


@dataclass(slots=True)
class Stats:
    """Counters of one graft (or, summed, of one point).

    ``graft_ns`` is time inside the Wasm entry, measured on every call.
    ``overhead_ns`` is the protection's cost (transaction, copies, validation,
    accounting): the whole call is timed on one committed call in 16
    (``samples``) and the overhead per call seen there is scaled to all commits.
    """

    commits: int = 0
    aborts: collections.Counter[str] = field(default_factory=collections.Counter)
    busy: int = 0  # calls that found the graft busy on another thread (see Graft.invoke)
    hosted_ns: int = 0  # CPU of calls run in another principal's operation (hosting.py)
    unpaid: int = 0  # calls not made: that principal's hosting allowance was spent
    throttled: int = 0  # calls not made: others waited and its share was spent (hold.py)
    graft_ns: int = 0
    samples: int = 0
    sampled_ns: int = 0  # whole protected calls, on sampled calls only
    sampled_graft_ns: int = 0  # time in the graft, on the same calls

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
