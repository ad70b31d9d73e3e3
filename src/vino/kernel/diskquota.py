"""Per-user disk quotas: how many blocks and inodes the files one user owns may hold.

Contract:
- a user's usage is counted by the owner recorded in each inode (``Inode.uid``): its
  inodes, and its blocks, data and indirect alike. Whoever writes a file, its owner pays;
- a non-root owner's new inode (``create``) or new blocks (a write that fills holes or
  grows the file) are refused with ``DiskQuotaExceeded`` (a ``NoSpace``) before anything
  changed when the owner would then hold more than ``user_inodes`` / ``user_blocks``, or
  when fewer than ``reserve_inodes`` / ``reserve_blocks`` would stay free (the root
  reserve: no user can take the last blocks or inodes, so users cannot deny root);
- root's files (uid 0, the directory among them) are counted and never limited;
- a refusal tells the owner's usage only to the owner (or root): another user writing
  her file is told the limit and what his write needs, not what she holds;
- truncate and unlink give the blocks and the inode back at once (a freed block is
  counted free for the quota when the file system counts it free);
- usage is never stored: ``mount`` counts it from the image (every inode and the blocks
  its map walks to), so no crash can leave it wrong; ``check_invariants`` recounts it.

Defaults (``for_geometry``): each user ``FS_USER_QUOTA_PERCENT`` of the data blocks and
of the inodes, root's reserve ``FS_ROOT_RESERVE_PERCENT`` of each (at least one).
A mounted file system's limits may be changed by setting the fields (``fs.quota``);
usage already over a lowered limit is kept, and only growth is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vino.kernel import params
from vino.kernel.errors import DiskQuotaExceeded
from vino.kernel.inode import Geometry

__all__ = ["DiskQuota"]


@dataclass(slots=True, eq=False)
class DiskQuota:
    """One mounted file system's limits and every owner's usage."""

    user_blocks: int  # blocks (data + indirect) one non-root user's files may hold
    user_inodes: int  # inodes one non-root user's files may hold
    reserve_blocks: int  # free blocks no user's file may take (root's reserve)
    reserve_inodes: int  # free inodes no user's file may take (root's reserve)
    # Invariant: blocks[uid] / inodes[uid] = the blocks / inodes of the used inodes owned
    # by uid (no entry: none), as of the running transaction.
    blocks: dict[int, int] = field(default_factory=dict)
    inodes: dict[int, int] = field(default_factory=dict)

    @classmethod
    def for_geometry(cls, geo: Geometry) -> DiskQuota:
        """The default limits of a file system of geometry ``geo`` (module doc)."""
        data = geo.nblocks - geo.data_start
        files = geo.ninodes - 2  # inode 0 is never used, inode 1 is the directory
        return cls(
            user_blocks=max(1, data * params.FS_USER_QUOTA_PERCENT // 100),
            user_inodes=max(1, files * params.FS_USER_QUOTA_PERCENT // 100),
            reserve_blocks=max(1, data * params.FS_ROOT_RESERVE_PERCENT // 100),
            reserve_inodes=max(1, files * params.FS_ROOT_RESERVE_PERCENT // 100))

    def sole_user(self) -> None:
        """A file system one user has to herself (a benchmark's database, a crash
        loop's): her files may take every block and inode but root's reserve."""
        self.user_blocks = self.user_inodes = 1 << 62

    def check(self, uid: int, *, blocks: int = 0, inodes: int = 0, free_blocks: int = 0,
              free_inodes: int = 0, for_owner: bool = True) -> None:
        """Refuse (``DiskQuotaExceeded``) ``blocks`` more blocks and ``inodes`` more
        inodes for ``uid``'s files, given what is free now. Changes nothing.

        ``for_owner``: the refusal is read by ``uid`` itself (or root). False (another
        user writing ``uid``'s file): it does not say how much ``uid`` holds, which is
        the owner's to know (SAFETY.md, information flow)."""
        if uid == 0:
            return
        held_b, held_i = self.blocks.get(uid, 0), self.inodes.get(uid, 0)
        if inodes and held_i + inodes > self.user_inodes:
            raise DiskQuotaExceeded(uid, f"uid {uid}'s disk quota: {held_i} of "
                                         f"{self.user_inodes} inodes held, {inodes} more refused")
        if blocks and held_b + blocks > self.user_blocks:
            if not for_owner:
                raise DiskQuotaExceeded(uid, f"uid {uid}'s disk quota of {self.user_blocks} "
                                             f"blocks has no room for {blocks} more (the file's "
                                             "owner pays for its blocks)")
            raise DiskQuotaExceeded(uid, f"uid {uid}'s disk quota: {held_b} of "
                                         f"{self.user_blocks} blocks held, {blocks} more refused")
        if inodes and free_inodes - inodes < self.reserve_inodes:
            raise DiskQuotaExceeded(uid, f"uid {uid}: {free_inodes} inodes free, the last "
                                         f"{self.reserve_inodes} are root's reserve")
        if blocks and free_blocks - blocks < self.reserve_blocks:
            raise DiskQuotaExceeded(uid, f"uid {uid}: {free_blocks} blocks free, the last "
                                         f"{self.reserve_blocks} are root's reserve")

    def charge(self, uid: int, *, blocks: int = 0, inodes: int = 0) -> None:
        """Count ``blocks`` / ``inodes`` more (negative: fewer) for ``uid``'s files."""
        if blocks:
            held = self.blocks.get(uid, 0) + blocks
            if held:
                self.blocks[uid] = held
            else:
                del self.blocks[uid]
        if inodes:
            held = self.inodes.get(uid, 0) + inodes
            if held:
                self.inodes[uid] = held
            else:
                del self.inodes[uid]

    def usage(self, uid: int) -> tuple[int, int]:
        """(blocks, inodes) held by ``uid``'s files."""
        return self.blocks.get(uid, 0), self.inodes.get(uid, 0)
