"""Helpers of the kernel graft-point tests: booted kernels, files with checkable data, WAT.

``Boot`` (the ``boot`` fixture of test_points.py, test_kernel_rights.py and
test_samples.py) boots ``Kernel``s on images in a temporary directory and shuts
every one down at teardown; ``boot.remount(k)`` shuts a kernel down and mounts its
image again on a fresh kernel (``Kernel.boot(image, fresh=False)``), which is how a
test proves nothing was lost on the disk, not just in the cache.

``wat(point, body, imports=...)`` wraps a hostile entry body in the boilerplate every
graft needs (``memory``, ``vino_buffer`` at 0, the point's entry signature), so each
test shows only what makes its graft hostile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vino.graft import Graft
from vino.kernel import params
from vino.kernel.device import DISK_1996, DiskProfile
from vino.kernel.fs import OpenFile
from vino.kernel.kernel import Kernel
from vino.kernel.proc import Process, User

BS = params.BLOCK_SIZE

ENTRIES = {
    "fs.readahead": '(func (export "vino_readahead") (result i32)',
    "vm.evict": '(func (export "vino_evict") (result i32)',
    "sched.pick": '(func (export "vino_pick") (result i32)',
    "fs.filter": '(func (export "vino_filter") (param $dir i32) (param $len i32) (result i32)',
    "fs.access": '(func (export "vino_on_access") (result i32)',
}

# A well-behaved graft for every point: the answer the default would often give.
BENIGN = {
    "fs.readahead": "i32.const 0",
    "vm.evict": "i32.const 0",
    "sched.pick": "i32.const 0",
    "fs.filter": "local.get $len",
    "fs.access": "i32.const 0",
}


def wat(point: str, body: str, imports: str = "", extra: str = "") -> str:
    """A graft module for ``point`` whose entry is ``body`` (a one-page memory, buffer at 0)."""
    return "\n".join((
        "(module",
        imports,
        '  (memory (export "memory") 1)',
        '  (func (export "vino_buffer") (result i32) i32.const 0)',
        extra,
        f"  {ENTRIES[point]}",
        f"    {body})",
        ")",
    ))


def benign(point: str) -> str:
    return wat(point, BENIGN[point])


def pattern(nblocks: int, tag: str = "block") -> bytes:
    """Distinct, checkable content: each block names itself."""
    return b"".join((f"{tag} {i:06d} ".encode() * (BS // 8))[:BS] for i in range(nblocks))


@dataclass
class Boot:
    """Boots kernels on images under ``workdir``; ``close()`` shuts them all down."""

    workdir: Path
    made: list[Kernel] = field(default_factory=list)
    images: dict[int, Path] = field(default_factory=dict)
    profiles: dict[int, DiskProfile] = field(default_factory=dict)

    def __call__(self, name: str = "disk", *, nblocks: int = 2048, frames: int = 64,
                 profile: DiskProfile = DISK_1996, fresh: bool = True) -> Kernel:
        image = self.workdir / f"{name}.img"
        k = Kernel.boot(image, nblocks=nblocks, frames=frames, profile=profile, fresh=fresh)
        self.made.append(k)
        self.images[id(k)] = image
        self.profiles[id(k)] = profile
        return k

    def image(self, k: Kernel) -> Path:
        return self.images[id(k)]

    def remount(self, k: Kernel, frames: int = 64) -> Kernel:
        """Shut ``k`` down (grafts removed, everything written back) and boot its image again."""
        image = self.images[id(k)]
        k.shutdown()
        return self(image.stem, frames=frames, profile=self.profiles[id(k)], fresh=False)

    def close(self) -> None:
        for k in self.made:
            k.shutdown()


# Where each point is plugged in: (subsystem attribute of Kernel, policy slot, built-in).
WIRING = {
    "fs.readahead": ("fs", "readahead_policy", "_readahead"),
    "vm.evict": ("cache", "evict_policy", "_evict_choice"),
    "sched.pick": ("sched", "pick_policy", "_pick"),
    "fs.filter": ("fs", "filter_policy", "_filter"),
    "fs.access": ("fs", "on_access", "_on_access"),
}


def unwire(k: Kernel) -> None:
    """Take every graft point out of ``k``: each subsystem runs its own built-in policy.

    The points are plugged into the subsystems' policy slots; putting each built-in
    back into its slot makes ``k`` the bare subsystems.
    """
    for subsystem, slot, builtin in WIRING.values():
        obj = getattr(k, subsystem)
        assert getattr(obj, slot) != getattr(obj, builtin), \
            f"{slot} of {subsystem} is not wired to a point"
        setattr(obj, slot, getattr(obj, builtin))


def make_file(k: Kernel, owner: User, name: str, data: bytes, mode: int = 0o600) -> Process:
    """Create ``name`` owned by ``owner`` holding ``data``; return a process of ``owner``."""
    proc = k.spawn(owner, f"{owner.name}-app")
    k.fs.create(owner, name, mode)
    with k.fs.open(proc, name, "w") as f:
        k.fs.write(f, data)
    return proc


def read_file(k: Kernel, who: User | Process, name: str) -> bytes:
    with k.fs.open(who, name, "r") as f:
        return k.fs.read(f, k.fs.stat(name).size + 1)


def cold(k: Kernel) -> None:
    """Write everything back and drop the cache, so the next reads go to the device."""
    k.cache.sync()
    k.cache.invalidate(k.device)


def read_blocks(k: Kernel, of: OpenFile, order: list[int]) -> bytes:
    """Read whole blocks of ``of`` in ``order``; return them concatenated in that order."""
    out = bytearray()
    for b in order:
        k.fs.seek(of, b * BS)
        out += k.fs.read(of, BS)
    return bytes(out)


def assert_removed(k: Kernel, g: Graft, reason: str) -> None:
    """``g`` was aborted for ``reason``, removed, and the kernel's state is sound."""
    assert g.removal is not None, f"{g!r} was not aborted"
    assert g.removal.reason.value == reason, g.removal
    assert g.state == "removed"
    assert g not in k.registry.grafts()
    assert k.registry.snapshot()["locks_held"] == []
    k.check_invariants()


def usage(user: User) -> dict[str, Any]:
    """The user's principal's usage, without CPU time (which only grows)."""
    snap = user.principal.usage.snapshot()
    snap.pop("cpu_ns")
    return snap
