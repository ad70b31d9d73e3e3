"""The grafts that help SQLite, and when they are installed and removed.

A ``Plan`` says which grafts a session wants; ``SqliteGrafts`` turns it into the
hooks of a ``vfs.VinoVFS`` (``on_open`` / ``on_close`` / ``on_delete``), so each
graft is in place before SQLite touches the file it serves:

| plan field  | graft (samples/)         | point          | target                      |
|-------------|--------------------------|----------------|-----------------------------|
| readahead   | ``sqlite_readahead.wasm``| ``fs.readahead`` | the main database's OpenFile |
| evict       | ``sqlite_evict.wasm``    | ``vm.evict``   | the buffer pool's AddressSpace |
| key         | ``chacha20_filter.wasm`` | ``fs.filter``  | every file's inode (db, journal, temp) |

The main database gets a ``BTreeAdvisor`` (as its page observer) when a graft needs
it or the plan asks for it (``advise``); it tells the read-ahead and eviction
grafts the B-tree's shape. Without one no page is parsed as it passes: a session
with no grafts pays nothing for them.

Lifetimes: a read-ahead graft lives as long as the kernel file is open (its
target, the OpenFile, dies at close). A filter graft lives as long as the inode
it encrypts -- it stays across closes (SQLite closes its journal after every
transaction) and is removed when SQLite deletes the file; a later file with the
same name gets a new graft. The eviction graft lives until ``close``.

Keys: every file is encrypted with the plan's 32-byte key and its own nonce,
``nonce_for(kernel name)`` (12 bytes of SHA-256), so two files never share a
keystream. Limitation of the sample cipher: ChaCha20 with a fixed nonce per file
reuses the keystream when a block is rewritten, so an observer who sees two
versions of a block learns their XOR; it protects data at rest against one look at
the disk, not against repeated snapshots, and it authenticates nothing.

Every graft ever installed is kept in ``installed`` so that its statistics can be
read after it was removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from vino.graft import Graft
from vino.kernel.kernel import Kernel
from vino.kernel.proc import User
from vino.sdk.build import sample_path
from vino.sqlite.advisor import BTreeAdvisor
from vino.sqlite.vfs import KernelFile, VinoVFS

__all__ = ["EVICT_GRAFT", "FILTER_GRAFT", "KEY_BYTES", "READAHEAD_GRAFT", "Plan",
           "SqliteGrafts", "nonce_for"]

READAHEAD_GRAFT: Final = "sqlite_readahead.wasm"
EVICT_GRAFT: Final = "sqlite_evict.wasm"
FILTER_GRAFT: Final = "chacha20_filter.wasm"
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12


def nonce_for(name: str) -> bytes:
    """The ChaCha20 nonce of kernel file ``name``: fixed per name, distinct between names."""
    return hashlib.sha256(b"vino-sqlite nonce\0" + name.encode()).digest()[:NONCE_BYTES]


@dataclass(frozen=True, slots=True)
class Plan:
    readahead: bool = False  # follow the B-tree's leaves (fs.readahead)
    evict: bool = False  # keep interior pages, resist scans (vm.evict on the pool)
    key: bytes | None = None  # encrypt every file with ChaCha20 (fs.filter)
    advise: bool = False  # keep a BTreeAdvisor even without the grafts that use it
    python: bool = False  # install the samples' Python twins (vino.pygraft) instead of C

    @property
    def advised(self) -> bool:
        """True if the main database gets a BTreeAdvisor."""
        return self.readahead or self.evict or self.advise

    def __post_init__(self) -> None:
        if self.key is not None and len(self.key) != KEY_BYTES:
            raise ValueError(f"a key is {KEY_BYTES} bytes, got {len(self.key)}")


class SqliteGrafts:
    """Installs a plan's grafts on the files of one VFS, as ``user``."""

    def __init__(self, kernel: Kernel, user: User, plan: Plan) -> None:
        self.kernel = kernel
        self.user = user
        self.plan = plan
        self.vfs: VinoVFS | None = None  # set by bind()
        self.advisors: dict[str, BTreeAdvisor] = {}  # main database kernel name -> advisor
        self.installed: list[Graft] = []
        self.evict_graft: Graft | None = None
        self._readahead: dict[str, Graft] = {}  # kernel name -> read-ahead graft
        self._filters: dict[str, Graft] = {}  # kernel name -> filter graft

    def bind(self, vfs: VinoVFS) -> None:
        """Use ``vfs``'s hooks (call before SQLite opens anything through it)."""
        self.vfs = vfs
        vfs.on_open = self.on_open
        vfs.on_close = self.on_close
        vfs.on_delete = self.on_delete

    def _install(self, point: str, sample: str, target: object) -> Graft:
        if self.plan.python:
            sample = sample.removesuffix(".wasm") + ".py"
        g = self.kernel.graft(self.user, point, sample_path(sample), target=target)
        self.installed.append(g)
        return g

    # ---- hooks ------------------------------------------------------------------------------

    def on_open(self, kf: KernelFile) -> None:
        if self.plan.key is not None:
            old = self._filters.get(kf.name)
            if old is None or old.target is not kf.of.inode or old.state != "live":
                g = self._install("fs.filter", FILTER_GRAFT, kf.of.inode)
                g.send(self.plan.key + nonce_for(kf.name))
                self._filters[kf.name] = g
        if kf.role != "main" or not self.plan.advised:
            return
        adv = BTreeAdvisor(kf.pool_base or 0)
        kf.observer = adv
        self.advisors[kf.name] = adv
        if self.plan.readahead:
            g = self._install("fs.readahead", READAHEAD_GRAFT, kf.of)
            self._readahead[kf.name] = g
            adv.attach_readahead(g)
        vfs = self.vfs
        if self.plan.evict and vfs is not None and vfs.pool is not None:
            if self.evict_graft is None:
                self.evict_graft = self._install("vm.evict", EVICT_GRAFT, vfs.pool.aspace)
            adv.attach_evict(self.evict_graft)

    def on_close(self, kf: KernelFile) -> None:
        g = self._readahead.pop(kf.name, None)
        if g is not None:
            g.remove()

    def on_delete(self, name: str) -> None:
        g = self._filters.pop(name, None)
        if g is not None:
            g.remove()

    # ---- reading and ending ----------------------------------------------------------------

    def by_point(self) -> dict[str, list[Graft]]:
        out: dict[str, list[Graft]] = {}
        for g in self.installed:
            out.setdefault(g.point.name, []).append(g)
        return out

    def close(self) -> None:
        """Remove every graft still installed."""
        for g in self.installed:
            g.remove()
        self._readahead.clear()
        self._filters.clear()
        self.evict_graft = None
