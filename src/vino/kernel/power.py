"""Power cuts, the model: when a device loses power and what its image keeps.

Usage (``BlockDevice`` holds the switch; ``vino.kernel.crash`` runs whole crash points)::

    dev.arm_crash(CrashPlan(at_write=7, model=CrashModel.LOST, seed=3))
    # the device calls its PowerSwitch before every request, with its lock held

The three models (``CrashModel``), each the state the image is left in when the
power goes during write request N (writes are counted from ``arm_crash``; reads and
flushes are not writes):

- ``CUT``: writes 1 .. N-1 are on the device, write N is not.
- ``TORN``: as ``CUT``, and write N is half done: a seeded number of its leading
  512-byte sectors (at least one, never all) reached the device.
- ``LOST``: a volatile write cache that reorders between barriers. Every block
  written since the last completed ``flush`` (write N included) holds any one of
  its versions since that flush, chosen independently per block from the seed --
  its content at the flush, or what any of those writes put there. Blocks not
  written since the last flush are as they were.

Replay: the outcome is a pure function of the image before the workload, the
workload, and ``(at_write, model, seed)``: every crash can be reproduced exactly.

After the cut every request on the device (read, write, flush) raises
``PowerLost``: nothing the workload does after the power went reaches the image.
``close()`` still works (it does not flush).

Invariant: with a ``LOST`` plan armed, ``_versions[b]`` lists block ``b``'s content
at the last flush followed by every write to it since, oldest first; a flush
empties it. Other models keep no versions (no cost beyond a counter).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from vino.kernel import params
from vino.kernel.errors import InvalidArgument, PowerLost

__all__ = ["SECTOR_SIZE", "CrashModel", "CrashPlan", "PowerSwitch"]

SECTOR_SIZE = 512  # bytes: the unit a torn write is torn at (a disk's atomic write unit)


class CrashModel(StrEnum):
    """What the write in flight (and the volatile cache) left on the image."""

    CUT = "cut"
    TORN = "torn"
    LOST = "lost"


@dataclass(frozen=True, slots=True)
class CrashPlan:
    """Lose power during write request ``at_write`` (1-based) with ``model``; ``seed``
    picks the torn length and the surviving versions."""

    at_write: int
    model: CrashModel = CrashModel.CUT
    seed: int = 0

    def __post_init__(self) -> None:
        if self.at_write < 1:
            raise InvalidArgument(f"at_write counts from 1, got {self.at_write}")


class PowerSwitch:
    """The armed plan of one device and what it needs to carry it out.

    Called by ``BlockDevice`` with the device lock held; not for direct use.
    """

    __slots__ = ("_rng", "_versions", "dead", "plan", "writes")

    def __init__(self, plan: CrashPlan) -> None:
        self.plan = plan
        self.writes = 0  # write requests seen since arming
        self.dead = False  # the power went: every request raises PowerLost
        self._rng = random.Random(plan.seed)
        # Invariant: see the module docstring (LOST only).
        self._versions: dict[int, list[bytes]] = {}

    def before_write(self, fd: int, path: Path, first: int, data: bytes | bytearray | memoryview,
                     ) -> None:
        """Account one write request; cut the power (raise) if it is the planned one."""
        if self.dead:
            raise PowerLost(str(path), self.writes, self.plan.model.value)
        self.writes += 1
        bs = params.BLOCK_SIZE
        lost = self.plan.model is CrashModel.LOST
        if lost:
            for i in range(len(data) // bs):
                b = first + i
                if b not in self._versions:
                    self._versions[b] = [os.pread(fd, bs, b * bs)]
                self._versions[b].append(bytes(data[i * bs:(i + 1) * bs]))
        if self.writes < self.plan.at_write:
            return
        self.dead = True
        if self.plan.model is CrashModel.TORN:
            sectors = len(data) // SECTOR_SIZE
            keep = self._rng.randrange(1, sectors) * SECTOR_SIZE
            os.pwrite(fd, bytes(data[:keep]), first * bs)
        elif lost:
            for b in sorted(self._versions):
                os.pwrite(fd, self._rng.choice(self._versions[b]), b * bs)
            self._versions.clear()
        raise PowerLost(str(path), self.writes, self.plan.model.value)

    def before_request(self, path: Path) -> None:
        """A read or a flush: refused once the power is gone."""
        if self.dead:
            raise PowerLost(str(path), self.writes, self.plan.model.value)

    def flushed(self) -> None:
        """A completed flush: every earlier write is durable."""
        self._versions.clear()
