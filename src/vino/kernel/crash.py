"""Power cuts: a ``BlockDevice`` that loses power at its Nth write, as SQLite's crash tests do.

Usage (one crash point; a crash loop runs this for every N)::

    dev = BlockDevice.open(image, clock=clock)
    dev.arm_crash(CrashPlan(at_write=7, model=CrashModel.LOST, seed=3))
    try:
        run_the_workload(dev)               # raises PowerLost at write 7 (or never)
    except PowerLost:
        pass
    dev.close()                             # the image now holds what survived the cut
    dev = BlockDevice.open(image, clock=clock)   # "reboot": mount, check, compare

    n = count_writes(image, workload)       # how many crash points a workload has
    crashed = crash_image(image, workload, plan)   # the three steps above in one call

    for point in crash_points(base, scratch, workload, models):   # a whole crash loop
        check(scratch, point)               # scratch: base cut at point.at (point.model)

The models (``CrashModel``: cut, torn, lost), the plan (``CrashPlan``) and what the
device does when the power goes are ``vino.kernel.power``'s; this module re-exports
the model's public names and runs whole crash points over an image.

Invariant: ``crash_image`` always closes the device it opened, whether the power
went, the workload finished, or the workload raised something else; ``crash_points``
never touches ``base`` and yields each point with ``scratch`` freshly cut from it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from vino.kernel.device import BlockDevice
from vino.kernel.errors import PowerLost
from vino.kernel.power import SECTOR_SIZE, CrashModel, CrashPlan

__all__ = ["SECTOR_SIZE", "CrashModel", "CrashPlan", "CrashPoint", "count_writes",
           "crash_image", "crash_points"]


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """One point of a crash loop: the image was cut at write ``at`` of ``writes`` with
    ``model`` (seeded by ``at``); ``lost`` is False if the workload finished first."""

    at: int
    writes: int
    model: CrashModel
    lost: bool

    def __str__(self) -> str:
        return f"write {self.at} of {self.writes} ({self.model})"


def count_writes(image: str | os.PathLike[str], workload: Callable[[BlockDevice], None]) -> int:
    """Run ``workload`` on ``image`` without a crash and return how many write requests
    it made: the crash points ``1 .. n`` of a crash loop.

    The image is changed by the workload; run it on a scratch copy.
    """
    with BlockDevice.open(image, durable=False) as dev:
        dev.arm_crash(CrashPlan(at_write=1 << 62))
        workload(dev)
        return dev.crash_writes


def crash_image(image: str | os.PathLike[str], workload: Callable[[BlockDevice], None],
                plan: CrashPlan) -> bool:
    """Open ``image``, arm ``plan``, run ``workload`` until the power goes, close.

    Returns True if the power went (the workload saw ``PowerLost``, whatever it
    did with it), False if the workload finished first. Afterwards ``image`` holds
    exactly what the plan's model says survived.
    """
    dev = BlockDevice.open(image, durable=False)
    try:
        dev.arm_crash(plan)
        with contextlib.suppress(PowerLost):
            workload(dev)
        return dev.power_lost
    finally:
        dev.close()


def crash_points(base: str | os.PathLike[str], scratch: str | os.PathLike[str],
                 workload: Callable[[BlockDevice], None],
                 models: Iterable[CrashModel] = (CrashModel.CUT,)) -> Iterator[CrashPoint]:
    """A crash loop: for every write N of ``workload`` run on a copy of ``base``, and
    each of ``models``, copy ``base`` to ``scratch``, cut the power at write N (seed N)
    and yield the point; the caller checks ``scratch`` before asking for the next."""
    models = tuple(models)
    shutil.copyfile(base, scratch)
    writes = count_writes(scratch, workload)
    for at in range(1, writes + 1):
        for model in models:
            shutil.copyfile(base, scratch)
            lost = crash_image(scratch, workload, CrashPlan(at, model, at))
            yield CrashPoint(at, writes, model, lost)
