"""Tunables of the reference kernel, named, with units, in one place.

Graft mechanism limits live in ``vino.limits``; these are the kernel model's own
numbers. Each section belongs to one subsystem.
"""

from __future__ import annotations

from typing import Final

# ---- storage: device, buffer cache / VM, file system ----------------------------

BLOCK_SIZE: Final = 4096  # bytes in one device block, one page frame and one fs block
PAGE_SIZE: Final = BLOCK_SIZE  # bytes in one anonymous page (same frames as file blocks)

# Device latency model (see device.DiskProfile). A request pays overhead always,
# seek + rotation unless it starts where the previous request ended, and transfer.
DISK_1996_OVERHEAD_NS: Final = 500_000  # controller / command overhead per request, ns
DISK_1996_SEEK_NS: Final = 5_000_000  # average seek, ns
DISK_1996_ROTATION_NS: Final = 4_170_000  # average rotational latency (7200 rpm / 2), ns
DISK_1996_BYTES_PER_S: Final = 5_000_000  # media transfer rate, bytes / s
SSD_OVERHEAD_NS: Final = 20_000  # per request, ns
SSD_SEEK_NS: Final = 60_000  # random-access latency (no rotation), ns
SSD_BYTES_PER_S: Final = 500_000_000  # bytes / s

# Buffer cache / VM.
CACHE_FRAMES: Final = 256  # page frames in a cache built without a size (1 MiB)
MIN_RESIDENT_PAGES: Final = 4  # an address space at or below this many pages takes
#                                frames from the global clock instead of from itself
MAX_EVICT_CANDIDATES: Final = 256  # pages offered to one vm.evict decision (ABI: n <= 256)
MAX_EVICT_MORE: Final = 31  # further victims one vm.evict answer may name (ABI: max_more),
#                             taken for that address space's next evictions (a batch of 32)
PREFETCH_FRACTION: Final = 2  # one prefetch call loads at most nframes // this many blocks
PREFETCH_SPARE_PAGES: Final = 32  # page buffers a cache keeps for prefetch runs (128 KiB)
VPN_LIMIT: Final = 1 << 32  # virtual page numbers are u32 in the ABI: 0 <= vpn < this
MAX_VM_HINTS: Final = 4096  # hints one address space holds (vm_hint); a new one past this
#                             aborts the graft (resource): hints are host memory

# File system.
FS_MAGIC: Final = b"VINOFS96"  # first 8 bytes of block 0
FS_VERSION: Final = 3  # 2: write-ahead log, double and triple indirect blocks; 3: inode
#                        flags (the filter's seal), where 2 had a zero pad (inode.py)
FS_INODE_SIZE: Final = 128  # bytes per on-disk inode
FS_DIRECT_BLOCKS: Final = 25  # direct pointers per inode (+ 3 indirect fill the 128 bytes)
FS_LOG_FRACTION: Final = 64  # the log takes 1/this of the image's blocks ...
FS_LOG_MAX_BLOCKS: Final = 510  # ... up to this many (a header and 509 copies: 2 MiB)
FS_DIRENT_SIZE: Final = 64  # bytes per directory entry: u32 inode + 60 bytes of name
FS_NAME_MAX: Final = 60  # longest file name, bytes of UTF-8
FS_BMAP_CACHE_ENTRIES: Final = 1 << 20  # file blocks below this whose device block an inode
# remembers (Inode.bmap, a list indexed by file block: 4 GiB of file; 8 bytes a block of the
# list, 32 more per block remembered; a block past it is walked to every time)
FS_DEFAULT_INODES: Final = 256  # inodes made by format() when not told (incl. 0 and root)
# The most inodes a file system may have (its table: 8 MiB, read whole into memory at
# mount). A superblock claiming more is refused before anything is read: a hostile
# sparse image claiming an inode table as large as itself held the host for tens of
# seconds and a GiB of memory per GiB of image.
FS_MAX_INODES: Final = 1 << 16
# Per-user disk quota (diskquota.py): the share of the data blocks (data and indirect) and
# of the inodes one user's files may hold, and the share of each kept free for root's
# files alone (no user may take the last of either).
FS_USER_QUOTA_PERCENT: Final = 25  # percent of data blocks, and of inodes, per user
FS_ROOT_RESERVE_PERCENT: Final = 5  # percent of data blocks, and of inodes, root's only
READAHEAD_HISTORY: Final = 16  # accessed blocks remembered per open file (ABI hist[16])
READAHEAD_MAX_OUT: Final = 8  # blocks the default read-ahead asks for after a sequential read
READAHEAD_MAX_OUT_LIMIT: Final = 32  # largest max_out a file system accepts (ABI out[32])
# Bytes one call of the filter's kernel cipher (crypto.chacha20) transforms at most: one
# block. Host code is not stopped at an epoch tick, so each call is kept short (~1 µs).
CIPHER_MAX_BYTES: Final = BLOCK_SIZE

# ---- scheduler (kernel/sched.py) ------------------------------------------------

QUANTUM_NS: Final = 10_000_000  # default time slice, ns (10 ms; 4.4BSD used 100 ms)
MAX_PICK_CANDIDATES: Final = 64  # runnable threads offered to one sched.pick (ABI: n <= 64)
