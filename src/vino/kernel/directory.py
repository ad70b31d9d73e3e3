"""The directory: one flat root directory of names, each naming a regular file.

A mix-in of ``FileSystem`` (``fs.py``): the name operations (``create``, ``unlink``,
``rename``, ``listdir``, ``stat``, ``probe``), the lookup of an inode by number
(``inode``) and reading the directory at mount.
Usage is the file system's::

    fs.create(alice, "notes", 0o600)
    fs.rename(alice, "notes", "notes.old")   # atomic, replaces a file of that name
    fs.unlink(alice, "notes.old")            # an open file lives until its last close
    fs.listdir(); fs.stat("notes"); fs.probe("notes")

On disk the directory is the data of inode ``ROOT_INUM``: an array of 64-byte
entries (u32 inode, 60 bytes of NUL-padded UTF-8 name; inode 0 = free slot). It is
metadata: its blocks go through the journal, never through the cache directly, and
the user policies (read-ahead, filter, access event) never see them.

Invariants:
- ``_dir[name] = (inum, slot)``; slots distinct, below ``root.size / DIRENT_SIZE``;
  ``_free_slots`` are the other slots (inode 0 on disk);
- each live regular inode is named exactly once, except files unlinked while open
  (orphans), which are freed at their last close (or at the next mount);
- ``names_version`` grows at every change of the set of names (``create``, ``rename``,
  ``unlink``; and ``unmount``), inside the operation's hold of the lock;
- every name operation reads what it will change first (``_own_dir_slot``): a
  device error leaves the directory as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vino.graft.hold import SharedLock
from vino.kernel import params
from vino.kernel.blockmap import BlockMap
from vino.kernel.errors import (
    AccessDenied,
    CorruptFileSystem,
    FileExists,
    InvalidArgument,
    NoSpace,
    NoSuchFile,
)
from vino.kernel.inode import BS, DIRENT, ROOT_INUM, S_IFREG, FileStat, Inode, encode_name
from vino.kernel.proc import User

if TYPE_CHECKING:
    from vino.kernel.openfile import OpenFile

__all__ = ["Directory"]


class Directory(BlockMap):
    """The name half of a ``FileSystem`` (a mix-in; see the module)."""

    _lock: SharedLock
    _dir: dict[str, tuple[int, int]]
    _free_slots: list[int]
    _open: dict[int, OpenFile]
    names_version: int

    if TYPE_CHECKING:
        def _check_mounted(self) -> None: ...
        def _begin(self, need: int = 0) -> None: ...
        def _write_at(self, ino: Inode, start: int, data: bytes,
                      of: OpenFile | None) -> None: ...
        def _read_at(self, ino: Inode, start: int, n: int,
                     of: OpenFile | None) -> tuple[bytes, int]: ...

    def create(self, user: User, name: str, mode: int = 0o644) -> FileStat:
        """Make an empty regular file owned by ``user`` with permission bits ``mode``."""
        raw_name = encode_name(name)
        if mode & ~0o777:
            raise InvalidArgument(f"mode {mode:o} has bits other than permission bits")
        with self._lock:
            self._check_mounted()
            if name in self._dir:
                raise FileExists(f"{name!r} already exists")
            inum = next((i for i in range(ROOT_INUM + 1, self.geo.ninodes)
                         if i not in self._inodes), None)
            if inum is None:
                raise NoSpace(f"no free inode (all {self.geo.ninodes - 2} in use)")
            self.quota.check(user.uid, inodes=1,
                             free_inodes=self.geo.ninodes - 1 - len(self._inodes))
            self._begin()
            root = self._inodes[ROOT_INUM]
            slot = min(self._free_slots) if self._free_slots else (
                root.size // params.FS_DIRENT_SIZE)
            ino = Inode(inum, S_IFREG | mode, user.uid)
            # the directory write checks space before changing anything
            self._write_at(root, slot * params.FS_DIRENT_SIZE, DIRENT.pack(inum, raw_name), None)
            if self._free_slots:
                self._free_slots.remove(slot)
            self._inodes[inum] = ino
            self.quota.charge(user.uid, inodes=1)
            self._store_inode(ino)
            self._dir[name] = (inum, slot)
            self.names_version += 1
            return self._stat(name, ino)

    def unlink(self, user: User, name: str) -> None:
        """Remove ``name``. Only its owner or root may. An open file lives until its last close."""
        with self._lock:
            self._check_mounted()
            ino = self._lookup(name)
            if not (user.is_root or user.uid == ino.uid):
                raise AccessDenied(f"user {user.name!r} (uid {user.uid}) does not own {name!r} "
                                   f"(owner uid {ino.uid})")
            self._begin()
            self._own_dir_slot(self._dir[name][1])  # reads first: a failure changes nothing
            if ino.open_count:
                ino.orphan = True
            else:
                self._free_inode(ino)
            self._remove_name(name)

    def rename(self, user: User, old: str, new: str) -> None:
        """Give ``old`` the name ``new``, atomically replacing a file called ``new``
        (which lives on until its last close if open). The owner of ``old`` (and of
        ``new``, if it exists) or root may. A crash leaves either name, never both
        or neither."""
        raw_new = encode_name(new)
        with self._lock:
            self._check_mounted()
            ino = self._lookup(old)
            target = self._dir.get(new)
            victim = self._inodes[target[0]] if target is not None else None
            for who, name in ((ino, old), (victim, new)):
                if who is not None and not (user.is_root or user.uid == who.uid):
                    raise AccessDenied(f"user {user.name!r} (uid {user.uid}) does not own "
                                       f"{name!r} (owner uid {who.uid})")
            if old == new:
                return
            self._begin()
            self._own_dir_slot(self._dir[old][1])  # reads first: a failure changes nothing
            if victim is not None:
                self._own_dir_slot(self._dir[new][1])
                if victim.open_count:
                    victim.orphan = True
                else:
                    self._free_inode(victim)
                self._remove_name(new)
            inum, slot = self._dir.pop(old)
            self._write_at(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE,
                           DIRENT.pack(inum, raw_new), None)
            self._dir[new] = (inum, slot)
            self.names_version += 1
            for of in self._open.values():
                if of.inode is ino:
                    of.name = new

    def _own_dir_slot(self, slot: int) -> None:
        blk = self._bmap(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE // BS)
        if blk:
            self.journal.own(blk)

    def _remove_name(self, name: str) -> None:
        _, slot = self._dir.pop(name)
        self.names_version += 1
        self._write_at(self._inodes[ROOT_INUM], slot * params.FS_DIRENT_SIZE,
                       bytes(params.FS_DIRENT_SIZE), None)
        self._free_slots.append(slot)

    def listdir(self) -> list[str]:
        with self._lock:
            self._check_mounted()
            return sorted(self._dir)

    def stat(self, name: str) -> FileStat:
        with self._lock:
            self._check_mounted()
            return self._stat(name, self._lookup(name))

    def probe(self, name: str) -> tuple[int, int, int] | None:
        """``(size, uid, permission bits)`` of ``name``, or None if there is no such file:
        ``stat`` without walking the block map (SQLite asks at every transaction
        whether a journal exists). A None stays true while ``names_version`` (read
        before the call) is unchanged."""
        with self._lock:
            self._check_mounted()
            entry = self._dir.get(name)
            if entry is None:
                return None
            ino = self._inodes[entry[0]]
            return ino.size, ino.uid, ino.perm

    def inode(self, inum: int) -> Inode:
        """The live inode numbered ``inum`` (``stat(name).inum``): the target of the
        ``fs.filter`` and ``fs.access`` grafts on that file. Raises ``NoSuchFile`` if no
        inode has that number (never used, or freed)."""
        with self._lock:
            self._check_mounted()
            ino = self._inodes.get(inum)
            if ino is None:
                raise NoSuchFile(f"no inode numbered {inum}")
            return ino

    def _lookup(self, name: str) -> Inode:
        entry = self._dir.get(name)
        if entry is None:
            raise NoSuchFile(f"no file named {name!r}")
        return self._inodes[entry[0]]

    def _stat(self, name: str, ino: Inode) -> FileStat:
        return FileStat(name, ino.inum, ino.uid, ino.perm, ino.size, len(self._data_blocks(ino)))

    def _load_directory(self) -> None:
        """At mount: read the root directory into ``_dir`` and ``_free_slots``, then free
        the orphans (inodes no name reaches: unlinked while open, and never closed)."""
        dev = self.device
        root = self._inodes.get(ROOT_INUM)
        if root is None or not root.is_dir:
            raise CorruptFileSystem(f"{dev.path}: inode {ROOT_INUM} is not the root directory")
        data, _ = self._read_at(root, 0, root.size, None)
        for slot in range(len(data) // params.FS_DIRENT_SIZE):
            inum, raw_name = DIRENT.unpack_from(data, slot * params.FS_DIRENT_SIZE)
            if inum == 0:
                self._free_slots.append(slot)
                continue
            name = raw_name.rstrip(b"\0").decode("utf-8", "replace")
            entry = self._inodes.get(inum)
            if entry is None or entry.is_dir or name in self._dir:
                raise CorruptFileSystem(f"{dev.path}: bad directory entry {name!r} -> {inum}")
            self._dir[name] = (inum, slot)
        named = {inum for inum, _ in self._dir.values()}
        for orphan in [i for i in self._inodes.values() if not i.is_dir and i.inum not in named]:
            self._begin()
            self._free_inode(orphan)  # unlinked while open, and never closed (a crash)

