"""The B-tree advisor: learns a database's B-tree shape from the pages that pass
through the VFS and tells the grafts (messages) what they need to know.

Usage (``grafts.SqliteGrafts`` wires it)::

    adv = BTreeAdvisor(pool_base=kfile.pool_base or 0)
    kfile.observer = adv                      # the VFS calls adv.on_page(...)
    adv.attach_readahead(graft)               # samples/sqlite_readahead.wasm
    adv.attach_evict(graft)                   # samples/sqlite_evict.wasm
    adv.scan(True)                            # "a range scan starts" (both grafts)

What it tells:
- the read-ahead graft, each interior page's children in key order (CHAIN messages
  of at most ``RA_CHAIN_MAX`` blocks, consecutive messages overlapping by one
  block), and between sibling subtrees the link from the last leaf of one to the
  first leaf of the next, so a scan's successor is known across interior pages;
- the eviction graft, the vpns of every interior page (a KEEP message replacing
  its whole set, at most ``EVICT_KEEP_MAX``; more are cut, highest pages kept);
- both, when the application starts or ends a range scan (MODE messages).

Pages are parsed only when their bytes changed since they were last seen (a CRC
per page), so re-reading a page costs a CRC and nothing else. A page that stops
being interior (freed, rebuilt) leaves the eviction set; stale successor hints
are left in the read-ahead graft -- they can only cost a useless prefetch, which
the kernel validates like any other.

Failure: a graft that refuses or fails a message (aborted, removed) is detached
and no longer told anything; SQLite's I/O is never disturbed by the advisor.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from dataclasses import dataclass, fields

from vino.errors import VinoError
from vino.graft import Graft
from vino.sqlite import btree
from vino.sqlite.params import EVICT_KEEP_MAX, RA_CHAIN_MAX

__all__ = ["OP_CHAIN", "OP_KEEP", "OP_MODE", "OP_RESET", "AdvisorStats", "BTreeAdvisor",
           "chain_messages"]

OP_RESET = 0  # message opcodes of sqlite_readahead.c ...
OP_CHAIN = 1
OP_MODE = 2  # ... and of both grafts
OP_KEEP = 1  # sqlite_evict.c


@dataclass(slots=True)
class AdvisorStats:
    pages_seen: int = 0  # on_page calls
    pages_parsed: int = 0  # of those, pages whose bytes had changed
    interior_pages: int = 0  # interior pages known now
    messages: int = 0  # messages delivered
    message_bytes: int = 0
    message_failures: int = 0  # messages refused or aborted (the graft was detached)

    def snapshot(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def chain_messages(blocks: list[int]) -> list[bytes]:
    """CHAIN messages saying that ``blocks`` follow one another, in order."""
    out: list[bytes] = []
    step = RA_CHAIN_MAX - 1
    for start in range(0, max(len(blocks) - 1, 0), step):
        part = blocks[start:start + RA_CHAIN_MAX]
        if len(part) >= 2:
            out.append(struct.pack(f"<II{len(part)}I", OP_CHAIN, len(part), *part))
    return out


class BTreeAdvisor:
    """A ``vfs.PageObserver`` for one main database file."""

    def __init__(self, pool_base: int = 0) -> None:
        self.pool_base = pool_base  # vpn of page 0 in the buffer pool
        self.stats = AdvisorStats()
        self.readahead: Graft | None = None
        self.evict: Graft | None = None
        # Invariant: children[p] are the children of interior page p, key order;
        # parent[c] == p for every c in children[p].
        self.children: dict[int, tuple[int, ...]] = {}
        self.parent: dict[int, int] = {}
        self._crc: dict[int, int] = {}
        self._sent_keep: tuple[int, ...] | None = None

    # ---- attaching grafts --------------------------------------------------------------

    def attach_readahead(self, graft: Graft) -> None:
        """Tell ``graft`` everything known so far, and from now on every change."""
        self.readahead = graft
        for p in sorted(self.children):
            self._send_chains(p)

    def attach_evict(self, graft: Graft) -> None:
        self.evict = graft
        self._sent_keep = None
        self._send_keep()

    def scan(self, on: bool) -> None:
        """The application starts (True) or ends (False) a range scan."""
        msg = struct.pack("<II", OP_MODE, int(on))
        self._send("readahead", msg)
        self._send("evict", msg)

    # ---- the observer --------------------------------------------------------------------

    def on_page(self, index: int, page: bytes, write: bool) -> None:
        self.stats.pages_seen += 1
        crc = zlib.crc32(page)
        if self._crc.get(index) == crc:
            return
        self._crc[index] = crc
        self.stats.pages_parsed += 1
        parsed = btree.parse(index, page)
        if not parsed.interior:
            if index in self.children:
                self._forget(index)
                self._send_keep()
            return
        if self.children.get(index) == parsed.children:
            return
        self._forget(index)
        self.children[index] = parsed.children
        for c in parsed.children:
            self.parent[c] = index
        self.stats.interior_pages = len(self.children)
        self._send_chains(index)
        if index in self.parent:
            self._send_chains(self.parent[index])
        self._send_keep()

    def _forget(self, index: int) -> None:
        for c in self.children.pop(index, ()):
            if self.parent.get(c) == index:
                del self.parent[c]
        self.stats.interior_pages = len(self.children)

    # ---- what the grafts are told --------------------------------------------------------

    def _first_leafward(self, p: int) -> int:
        while p in self.children:
            p = self.children[p][0]
        return p

    def _last_leafward(self, p: int) -> int:
        while p in self.children:
            p = self.children[p][-1]
        return p

    def _send_chains(self, p: int) -> None:
        if self.readahead is None:
            return
        kids = list(self.children.get(p, ()))
        for msg in chain_messages(kids):
            self._send("readahead", msg)
        # Links across sibling subtrees: last leaf of one -> first leaf of the next.
        for a, b in itertools.pairwise(kids):
            if a in self.children or b in self.children:
                for msg in chain_messages([self._last_leafward(a), self._first_leafward(b)]):
                    self._send("readahead", msg)

    def interior_vpns(self) -> list[int]:
        """The pool vpns of the interior pages, highest in the tree first, at most
        ``EVICT_KEEP_MAX``."""
        def depth(p: int) -> int:
            d = 0
            while p in self.parent and d < len(self.children):
                p = self.parent[p]
                d += 1
            return d

        ranked = sorted(self.children, key=lambda p: (depth(p), p))[:EVICT_KEEP_MAX]
        return sorted(self.pool_base + p for p in ranked)

    def _send_keep(self) -> None:
        if self.evict is None:
            return
        vpns = tuple(self.interior_vpns())
        if vpns == self._sent_keep:
            return
        if self._send("evict", struct.pack(f"<II{len(vpns)}I", OP_KEEP, len(vpns), *vpns)):
            self._sent_keep = vpns

    def _send(self, which: str, msg: bytes) -> bool:
        graft = self.readahead if which == "readahead" else self.evict
        if graft is None:
            return False
        try:
            graft.send(msg)
        except (VinoError, ValueError):
            self.stats.message_failures += 1
            if which == "readahead":
                self.readahead = None
            else:
                self.evict = None
            return False
        self.stats.messages += 1
        self.stats.message_bytes += len(msg)
        return True
