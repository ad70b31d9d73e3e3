"""The plain read in native code: a CPython extension for a cached page read.

``native/plainread.c`` is compiled once per machine and Python version with the
``ziglang`` package (as the graft fast path is, ``graft/fastpath.py``), cached, and
imported as ``_vino_plainread``. It is the twin of three pieces of Python, which stay
as its fallback and must equal it (the tests run both on the same workloads):

1. ``reader()``: ``plain_read(fs, of, offset, n)``, the plain path of
   ``FileIO.pread`` (``fileio.py``, ``fspolicy.py``) when the block is a hit in the
   cache. ``FileSystem`` takes it at mount (``FileSystem._native_read``) and
   ``pread`` tries it first: it returns the block, having done everything the
   Python plain path does (the same checks, the cache's lock, the same bytes,
   counts, history and read-ahead decision), or None having changed nothing -- a
   miss it does not load (3.), a hole, a partial read, a stale policy epoch, a
   read-ahead that would load, a cache lock another thread holds -- and then
   ``pread``'s Python runs as before.
2. ``xread(fallback)``: ``VinoFile.xRead`` (``sqlite/vfsfile.py``), a method whose
   common branch (a page past the first of a file with no buffer pool, no pending
   write and no observer) is served in C under the VFS's mutex by 1., with the
   VFS's counts; anything else calls ``fallback`` (the Python ``xRead``) having
   changed nothing. So SQLite's page read is one C call from apsw's.
3. The loads of 1.: ``Cache._miss`` (with ``BlockDevice.read_into`` and the global
   clock's ``_sweep``), and after a sequential step the general path's built-in
   read-ahead (``FileIO._prefetch``, ``Cache.prefetch``: the next blocks' runs, each
   one request, read into the spare page buffers the frames take), in their common
   case: a ``BlockDevice`` with no crash plan and nothing patched in (a fault
   injector's ``read_into``), every block's map remembered, every frame taken free
   or a clean file block the clock picks. The frames are chosen first (the clock
   simulated on the frames, undone if the load declines), then every block is read
   (under the device's and the clock's locks), and only then is anything stored:
   every count, tick, bit, buffer and the hand as the Python leaves them (the read
   counted as a plain read, which the general path's counts include). An address
   space's page (its eviction policy picks), a dirty victim (written back first), a
   device error or short read, a busy lock: declined having changed nothing, and
   the Python runs as before -- so an eviction policy is asked exactly as before,
   and a failed read leaves no trace.

They hold the locks the Python holds (the cache's ``_lock``, the VFS's ``_mutex``,
the device's and the clock's, whatever objects they are), take them only if free (a
busy lock sends the read to the Python, which waits), and keep the GIL throughout
(a miss's ``pread`` of the image included).

``native()`` is the ready module or None; then ``PART.reason`` says why (not
Linux, no compiler, a failed build, or ``VINO_PLAINREAD=python`` -- or
``VINO_FASTPATH=python``, which turns every native path off), and every read runs
the Python as before (``PART``, ``graft/nativepart.py``, builds and imports it once
per process). ``served()`` counts the hits answered natively, ``served_misses()``
the misses (tests use them to see that the native path, not its fallback, served a
read); ``native_misses(False)`` sends every miss to the Python (the tests compare both).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

from vino.graft.nativebuild import python_extension
from vino.graft.nativepart import NativePart

if TYPE_CHECKING:
    from vino.kernel.fileio import FileIO
    from vino.kernel.openfile import OpenFile
    from vino.sqlite.vfsfile import VinoFile

__all__ = ["CACHE_SLOTS", "FS_SLOTS", "MODULE_NAME", "PART", "VFS_FILE_NAMES", "VFS_NAMES",
           "PlainRead", "XRead", "device_classes", "native", "native_misses", "reader",
           "rlock", "served", "served_misses", "served_readahead", "vfs_classes", "xread"]

_SOURCE: Final = Path(__file__).resolve().parent / "native" / "plainread.c"
MODULE_NAME: Final = "_vino_plainread"

PlainRead = Callable[["FileIO", "OpenFile", int, int], "bytes | None"]
XRead = Callable[["VinoFile", int, int], bytes]

# The hot attributes the native code reads at fixed offsets: each class keeps them in
# ``__slots__`` (the setup refuses a class where one is not a writable slot).
FS_SLOTS: Final = ("_epoch", "cache", "device", "stats", "readahead_max")  # of FileSystem
CACHE_SLOTS: Final = ("_lock", "_files", "_tick", "stats", "_frames", "_hint",  # of Cache
                      "_free", "_hand", "nframes", "_spare", "_spares")  # (and of its loads)
VFS_NAMES: Final = ("_mutex", "stats")  # of VinoVFS
VFS_FILE_NAMES: Final = ("vfs", "kfile")  # of VinoFile

_DEVICE_CLASSES: list[type] = []  # device_classes(): the device's classes and its clock's
PART: Final = NativePart[ModuleType](
    "plain read", lambda: python_extension(_SOURCE, MODULE_NAME, "the native plain read"),
    off=("VINO_PLAINREAD", "VINO_FASTPATH"))


def native() -> ModuleType | None:
    """The ``_vino_plainread`` module, built and imported on first use; None if it cannot
    be had (``PART.reason`` says why)."""
    return PART.get()


def reader(fs: type, open_file: type, inode: type, fs_stats: type, cache: type,
           cache_stats: type, frame: type, block_bytes: int, ndirect: int) -> PlainRead | None:
    """The native plain read (1. above) for a file system to try first, or None. The
    arguments are the kernel's classes whose fields it reads (``FileSystem``,
    ``OpenFile``, ``Inode``, ``FsStats``, ``Cache``, ``CacheStats``, the cache's frame),
    the block size and the number of direct blocks."""
    mod = native()
    if mod is None:
        return None
    from vino.kernel import params  # (here: the cache imports this module)

    mod.setup_fs(fs, open_file, inode, fs_stats, cache, cache_stats, frame, block_bytes, ndirect,
                 params.READAHEAD_HISTORY)
    if _DEVICE_CLASSES:  # (device.py gives them as it is imported; without, no native load)
        device, device_stats, disk_profile, sim_clock = _DEVICE_CLASSES
        twins = ((cache, "_miss"), (cache, "_sweep"), (cache, "_evict"), (cache, "prefetch"),
                 (cache, "_take_frame"), (cache, "_choose_victim"), (cache, "_claim_file"),
                 (fs, "_prefetch"), (fs, "_readahead"), (device, "read_into"))
        mod.setup_miss(cache, device, device_stats, sim_clock, type(threading.Lock()),
                       disk_profile, twins, params.PREFETCH_FRACTION, params.PREFETCH_SPARE_PAGES)
    fn: PlainRead = mod.plain_read
    return fn


def device_classes(device: type, device_stats: type, disk_profile: type, sim_clock: type) -> None:
    """Tell the native loads (3. above) the device's classes (``BlockDevice``,
    ``DeviceStats``, ``DiskProfile``, and its clock's, ``SimClock``, whose slots they
    read); ``device.py`` calls it as it is imported (it and the clock import this
    module, not the other way round)."""
    _DEVICE_CLASSES[:] = [device, device_stats, disk_profile, sim_clock]


def xread(fallback: XRead, kernel_file: type, vfs_stats: type, page_bytes: int) -> XRead:
    """``VinoFile.xRead``: the native method (2. above) over ``fallback``, or ``fallback``
    itself when the native module cannot be had. ``kernel_file`` and ``vfs_stats`` are
    the VFS's ``KernelFile`` and ``VfsStats`` (whose slots it reads), ``page_bytes`` the
    database page: the first page is never read here (the VFS keeps it)."""
    mod = native()
    if mod is None:
        return fallback
    mod.setup_vfs(kernel_file, vfs_stats, page_bytes)
    method: XRead = mod.XRead(fallback)
    return method


def vfs_classes(vfs: type, vfs_file: type) -> None:
    """Tell the native ``xRead`` the VFS's classes (``VinoVFS``, ``VinoFile``), whose
    ``VFS_NAMES`` and ``VFS_FILE_NAMES`` slots it reads; until then it serves nothing.
    Called once ``VinoVFS`` exists (``VinoFile``'s body makes ``xRead`` before)."""
    mod = native()
    if mod is not None:
        mod.setup_vfs_classes(vfs, vfs_file)


def rlock() -> threading.RLock:
    """A re-entrant lock for the cache and the VFS: the native ``RLock`` (threading.RLock's
    interface, which the native reads try without a Python call), or ``threading.RLock``."""
    mod = native()
    if mod is None:
        return threading.RLock()
    lock: threading.RLock = mod.RLock()
    return lock


def served() -> int:
    """Hits the native path answered in this process (0 without it)."""
    mod = native()
    return 0 if mod is None else int(mod.served())


def served_misses() -> int:
    """Misses the native path loaded and answered in this process (0 without it)."""
    mod = native()
    return 0 if mod is None else int(mod.served_misses())


def served_readahead() -> int:
    """Read-ahead blocks the native path loaded in this process (0 without it)."""
    mod = native()
    return 0 if mod is None else int(mod.served_readahead())


def native_misses(on: bool | None = None) -> bool:
    """Whether the native read loads a miss itself (3. above), as it was before this
    call; ``on`` turns it on or off for the process (off: every miss runs the Python)."""
    mod = native()
    return False if mod is None else bool(mod.misses(on))

