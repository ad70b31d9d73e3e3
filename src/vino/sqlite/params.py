"""Tunables of SQLite on vino, named, with units, in one place.

The kernel's own numbers live in ``vino.kernel.params``; the graft mechanism's in
``vino.limits``. These belong to the VFS, its buffer pool, the B-tree advisor and
the workloads.
"""

from __future__ import annotations

from typing import Final

from vino.kernel import params as kparams

# ---- the VFS (vfs.py) -----------------------------------------------------------------

SECTOR_BYTES: Final = kparams.BLOCK_SIZE  # what xSectorSize reports: one kernel block
MAX_PATHNAME_BYTES: Final = 512  # longest SQLite path the VFS accepts (Unix VFS: 512)
NAME_TAIL_CHARS: Final = 40  # characters of a long path kept, readable, in its kernel name
NAME_HASH_HEX: Final = 16  # hex digits of SHA-256 that make a long path's kernel name unique
TEMP_PREFIX: Final = "sqlite-tmp-"  # kernel names of SQLite's anonymous temporary files
RANDOM_SEED: Final = 1996  # xRandomness is a seeded PRNG, so runs replay exactly
WRITE_BUFFER_BYTES: Final = 256 * 1024  # longest run of contiguous xWrites the VFS gathers
#                                         into one kernel write (per file; see vfs._buffer)
ABSENT_NAMES_KEPT: Final = 256  # names xAccess remembers the kernel found missing (each
#                                 valid until a name is made: FileSystem.names_version)
WRITE_RESERVE_BLOCKS: Final = 64  # free blocks the VFS leaves untouched by gathered writes
#                                   (others' needs: directory, inodes, other processes)

# ---- the buffer pool (pool.py) ---------------------------------------------------------

PAGE_BYTES: Final = kparams.PAGE_SIZE  # one pool page = one kernel page = one SQLite page
POOL_REGION_PAGES: Final = 1 << 20  # vpns reserved per pooled file (> largest kernel file)

# ---- SQLite settings used by the workloads (workloads.py) ---------------------------------

SQLITE_PAGE_BYTES: Final = PAGE_BYTES  # PRAGMA page_size: one SQLite page per kernel block
SQLITE_CACHE_PAGES: Final = 2000  # PRAGMA cache_size of a Session (8 MiB of 4 KiB pages;
#                                   SQLite's own default is 2 MiB): pages once read stay
MEASURE_CACHE_PAGES: Final = 16  # PRAGMA cache_size while measuring the grafts: SQLite's own
#                                  cache is kept small so that page reads reach the VFS, the
#                                  pool and the kernel (that is what is being measured)
SQLITE_BUILD_CACHE_PAGES: Final = 4096  # PRAGMA cache_size while bulk loading (16 MiB)
BUILD_BATCH_ROWS: Final = 5000  # rows inserted per transaction while building
BUSY_TIMEOUT_MS: Final = 0  # a Session's default busy_timeout: fail at once with
#                             SQLITE_BUSY (a conflict between two connections of one
#                             thread cannot resolve by waiting); pass busy_timeout_ms
#                             to wait for another thread's lock

# ---- the read-ahead advisor (advisor.py / samples/sqlite_readahead.c) -----------------------

RA_MESSAGE_BYTES: Final = 256  # the fs.readahead buffer: the longest message to the graft
RA_CHAIN_MAX: Final = (RA_MESSAGE_BYTES - 8) // 4  # blocks in one CHAIN message (62)
EVICT_KEEP_MAX: Final = 256  # interior pages one evict_keep message can name
