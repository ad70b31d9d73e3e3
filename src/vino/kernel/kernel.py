"""The reference kernel: every subsystem booted together, with its graft points.

Usage::

    k = Kernel.boot(Path("disk.img"))           # formats a new image
    alice = k.add_user("alice")
    proc = k.spawn(alice, "app")
    k.fs.create(alice, "data", 0o600)
    with k.fs.open(proc, "data", "rw") as f: ...
    g = k.graft(alice, "fs.readahead", sample_path("readahead_stride.wasm"), target=f)
    k.check_invariants()
    k.shutdown()                                 # unmount; the image keeps the data

What ``boot`` wires (docs/ABI.md): each point plugged into its subsystem's policy
slot -- ``vm.evict`` into ``Cache.evict_policy``, ``sched.pick`` into
``Scheduler.pick_policy``, ``fs.readahead``, ``fs.filter`` and the ``fs.access``
event into the file system's ``readahead_policy``, ``filter_policy`` and
``on_access`` -- and the lifetime hooks, given at construction (``Cache(on_release=)``,
``FileSystem.mount(hooks=FsHooks(...))``): a graft goes with its target. Grafts are
installed through ``Kernel.graft`` so that they act as the installing user's
``Principal``, with its rights and quotas.

Time: one ``SimClock`` drives the device model and the scheduler, so workloads
are reproducible; graft CPU budgets are wall-clock time (they bound real work).

One kernel per image: ``boot`` takes an exclusive lock on the disk image (``flock``,
so it holds against other OS processes as well as other kernels of this one) and
``shutdown`` -- or ``release_image`` after a simulated power cut -- gives it back.
A second ``boot`` of an image in use raises ``ImageInUse`` before reading it.
"""

from __future__ import annotations

import fcntl
import itertools
import os
from pathlib import Path

from vino.graft import GLOBAL, Graft, Principal, Quota, Registry
from vino.graft.accounting import acting_for
from vino.graft.loader import Source
from vino.graft.point import Point
from vino.kernel import points
from vino.kernel.cache import AddressSpace, Cache
from vino.kernel.clock import SimClock
from vino.kernel.device import DISK_1996, BlockDevice, DiskProfile
from vino.kernel.errors import AccessDenied, ImageInUse, InvalidArgument
from vino.kernel.fs import FileSystem, FsHooks, Inode, OpenFile
from vino.kernel.proc import Process, ProcessGroup, User, new_pgid, new_pid
from vino.kernel.sched import Scheduler

DEFAULT_BLOCKS = 8192  # 32 MiB image
DEFAULT_FRAMES = 256  # 1 MiB of page frames


class ImageLock:
    """An exclusive ``flock`` on a disk image file, held until ``release``."""

    def __init__(self, image: Path) -> None:
        self.image = image
        self._fd: int | None = os.open(image, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ImageInUse(f"disk image {image} is in use by another kernel") from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __del__(self) -> None:
        self.release()


class Kernel:
    """One booted kernel. Build with ``Kernel.boot``."""

    image_lock: ImageLock | None = None  # set by boot()

    def __init__(self, device: BlockDevice, clock: SimClock, *, frames: int = DEFAULT_FRAMES,
                 registry: Registry | None = None) -> None:
        self.clock = clock
        self.device = device
        self.filters = points.FilterGuard()
        self.aspaces: dict[int, AddressSpace] = {}
        # A graft lives no longer than its target: closing a file, freeing an inode or
        # releasing an address space removes the grafts installed on it and gives back
        # what they held (exit and remove_group do the same for processes and groups).
        # Reads and writes run on behalf of the file's opener: another principal's filter
        # or access handler in them is hosted (accounting.acting_for and graft/hosting.py
        # say who pays).
        self.cache = Cache(frames, on_release=self._released)
        self.fs = FileSystem.mount(device, self.cache, clock, hooks=FsHooks(
            on_close=self._closed, on_free=self._freed,
            on_behalf=lambda of: acting_for(of.user.principal)), seals=self.filters.sealed)
        # Made once the image is mounted: a refused mount leaves no registry of its own.
        self._own_registry = registry is None
        self.registry = registry or Registry()
        self.sched = Scheduler(clock)
        self._uids = itertools.count(1000)
        self.root = User(0, "root")
        self.users: dict[int, User] = {0: self.root}
        # Keyed by the principal itself (hashed by identity), which the map keeps alive:
        # an id() is only an address, and a principal freed while its id stayed here
        # would let the next one made at that address act as its user.
        self._by_principal: dict[Principal, User] = {self.root.principal: self.root}
        reg = self.registry
        # Each point with its types (callable as the kernel calls it), and all by name.
        self.evict_point = points.evict_point(self.cache, reg)
        self.pick_point = points.pick_point(self.sched, reg)
        self.readahead_point = points.readahead_point(self.fs, reg, self.user_of)
        self.filter_point = points.filter_point(self.fs, reg, self.user_of, self.filters)
        self.access_point = points.access_point(self.fs, reg, self.user_of)
        self.points: dict[str, Point] = {
            p.name: p for p in (self.evict_point, self.pick_point, self.readahead_point,
                                self.filter_point, self.access_point)
        }
        # A read runs only the built-ins when no graft answers for its file (fspolicy.py):
        # the slots as plugged just above, the opener's acting_for (which only matters to
        # grafts) and no seal; every install and removal starts a new policy epoch.
        self._plugged = (self.fs.readahead_policy, self.fs.filter_policy, self.fs.on_access,
                         self.fs.hooks.on_behalf)
        self.fs.plain_read = self._plain_read
        reg.on_change.append(self.fs.policies_changed)

    @classmethod
    def boot(cls, image: Path, *, nblocks: int = DEFAULT_BLOCKS, fresh: bool = True,
             profile: DiskProfile = DISK_1996, frames: int = DEFAULT_FRAMES,
             registry: Registry | None = None) -> Kernel:
        """Boot on ``image``: a new formatted image if ``fresh``, else the existing one."""
        clock = SimClock()
        if fresh and not Path(image).exists():
            Path(image).touch()
        lock = ImageLock(Path(image))
        dev: BlockDevice | None = None
        try:
            if fresh:
                dev = BlockDevice.create(image, nblocks, profile=profile, clock=clock,
                                         overwrite=True, durable=False)
                FileSystem.format(dev)
            else:
                dev = BlockDevice.open(image, profile=profile, clock=clock, durable=False)
            k = cls(dev, clock, frames=frames, registry=registry)
        except BaseException:
            if dev is not None:  # an image mount refused (CorruptFileSystem) keeps no fd
                dev.close()
            lock.release()
            raise
        k.image_lock = lock
        return k

    def _closed(self, of: OpenFile) -> None:
        self.registry.remove_target(of)

    def _freed(self, inode: Inode) -> None:
        self.filters.release(inode)
        # None while the mount frees the orphans (files unlinked while open when the power
        # went): no graft is installed yet.
        registry: Registry | None = getattr(self, "registry", None)
        if registry is not None:
            registry.remove_target(inode)

    def _released(self, aspace: AddressSpace) -> None:
        self.registry.remove_target(aspace)
        self.aspaces.pop(aspace.owner.pid, None)

    # ---- principals ---------------------------------------------------------------------
    def add_user(self, name: str, quota: Quota | None = None) -> User:
        user = User(next(self._uids), name, quota or Quota())
        self.users[user.uid] = user
        self._by_principal[user.principal] = user
        return user

    def user_of(self, principal: Principal) -> User | None:
        return self._by_principal.get(principal)

    def new_group(self, owner: User, name: str = "") -> ProcessGroup:
        return ProcessGroup(new_pgid(), owner, name)

    def spawn(self, user: User, name: str = "", group: ProcessGroup | None = None) -> Process:
        """A process of ``user`` (in ``group`` if given; it must be the user's or root's)."""
        if group is not None and group.owner is not user and not user.is_root:
            raise InvalidArgument(f"{user.name} may not join group {group.pgid} of "
                                  f"{group.owner.name}")
        return Process(new_pid(), user, name, group)

    def exit(self, proc: Process) -> None:
        """``proc`` ends: its open files are closed and its address space released, so
        every graft installed on them is removed and its charges returned."""
        for of in [of for of in list(self.fs._open.values()) if of.process is proc]:
            self.fs.close(of)
        aspace = self.aspaces.get(proc.pid)
        if aspace is not None:
            aspace.release()

    def remove_group(self, group: ProcessGroup) -> int:
        """``group`` goes away: the grafts installed on it are removed (their charges
        returned); returns how many. Its threads, if any, are scheduled by the default.
        The group takes no graft again (``sched.pick`` refuses it as gone)."""
        group.removed = True  # before the removal: an install racing it fails at its switch
        return self.registry.remove_target(group)

    def address_space(self, proc: Process) -> AddressSpace:
        aspace = self.aspaces.get(proc.pid)
        if aspace is None:
            aspace = self.aspaces[proc.pid] = AddressSpace(proc, self.cache)
        return aspace

    # ---- grafting -------------------------------------------------------------------------
    def graft(self, user: User, point: str, source: Source, target: object = GLOBAL, *,
              name: str | None = None, replace: bool = False,
              remove_after: int | None = None) -> Graft:
        """Install ``source`` at ``point`` for ``target``, as ``user`` (``Registry.install``
        says what the keywords do). Raises GraftRejected."""
        g = self.registry.install(point, source, user.principal, target, name=name,
                                  replace=replace, remove_after=remove_after)
        if g.point.name == "vm.evict":  # the new policy decides the next eviction
            self.cache.forget_victims(target if isinstance(target, AddressSpace) else None)
        return g

    def unseal(self, user: User, inode: Inode) -> None:
        """Give up a filter's protection of ``inode`` (its owner or root only): its reads and
        writes use the identity again (and return what is stored, as it is stored). The
        stored seal is cleared in a commit first (a device error raises and leaves the
        file sealed)."""
        if not (user.is_root or user.uid == inode.uid):
            raise AccessDenied(f"{user.name} does not own inode {inode.inum}")
        self.fs.set_unsealed(inode)
        self.filters.release(inode)
        self.fs.policies_changed()

    def _plain_read(self, of: OpenFile) -> bool:
        """``FileSystem.plain_read``: True if no graft and no seal can act on a read of ``of``."""
        fs, ra, flt, acc = self.fs, self.readahead_point, self.filter_point, self.access_point
        ino = of.inode
        return (of.readable
                and (fs.readahead_policy, fs.filter_policy, fs.on_access,
                     fs.hooks.on_behalf) == self._plugged
                and of not in ra.table and GLOBAL not in ra.table
                and ino not in flt.table and GLOBAL not in flt.table
                and not self.filters.is_sealed(ino)
                and ino not in acc.handlers and GLOBAL not in acc.handlers)

    # ---- lifecycle --------------------------------------------------------------------------
    def check_invariants(self) -> None:
        self.cache.check_invariants()
        self.fs.check_invariants()
        self.sched.check_invariants()

    def shutdown(self) -> None:
        """Remove every graft, unmount (writing everything back) and close the device."""
        for g in self.registry.grafts():
            g.remove()
        if self.fs.policies_changed in self.registry.on_change:
            self.registry.on_change.remove(self.fs.policies_changed)
        if self.fs.mounted:
            self.fs.unmount()
        if not self.device.closed:
            self.device.close()
        if self._own_registry:
            self.registry.close()
        self.release_image()

    def release_image(self) -> None:
        """Give up the image's lock (``shutdown`` does; after a simulated power cut, call
        it once the device is closed so that the image can be booted again)."""
        if self.image_lock is not None:
            self.image_lock.release()
            self.image_lock = None
