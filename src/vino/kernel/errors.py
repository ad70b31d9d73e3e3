"""Errors of the reference kernel's storage layer (device, cache / VM, file system).

Every one is a ``KernelError``, itself a ``vino.errors.VinoError``. Each docstring
says when it is raised and what state the caller is left in. Where a builtin
exception means the same thing (``PermissionError``, ``FileNotFoundError``, ...)
the kernel error also derives from it, so ordinary ``except`` clauses work.

Rule for every raiser: an operation that raises one of these has changed nothing
unless its docstring says otherwise.
"""

from __future__ import annotations

import errno as _errno

from vino.errors import VinoError

__all__ = [
    "AccessDenied", "BadBlock", "BadHandle", "CacheBusy", "CorruptFileSystem", "DeviceError",
    "DiskQuotaExceeded", "FileExists", "FilterUnavailable", "ImageInUse", "InvalidArgument",
    "InvariantViolation", "KernelError", "NoSpace", "NoSuchFile", "PowerLost",
]


class KernelError(VinoError):
    """Root of the kernel's errors."""


class NoSuchFile(KernelError, FileNotFoundError):
    """The named file is not in the directory. Nothing changed."""


class FileExists(KernelError, FileExistsError):
    """``create`` of a name already in the directory, or of a disk image that exists.

    Nothing changed; the existing file is untouched.
    """


class AccessDenied(KernelError, PermissionError):
    """The user's mode bits (or ownership) do not allow the operation. Nothing changed."""


class NoSpace(KernelError):
    """No free block, inode, directory slot or swap slot, or a file would grow past
    the largest size the inode can map.

    Raised before any block is allocated: the file, the bitmap and the free count
    are exactly as they were (writes are all-or-nothing with respect to space).
    """


class DiskQuotaExceeded(NoSpace):
    """A user's file would hold more blocks or inodes than the user's disk quota allows,
    or would take the last free ones kept for root (``diskquota.py``; errno ``EDQUOT``).

    Raised before anything changed, as ``NoSpace`` is: the file, the directory, the
    bitmap and every count are exactly as they were. ``uid`` is the file's owner.
    """

    def __init__(self, uid: int, msg: str) -> None:
        self.uid = uid
        super().__init__(msg)


class BadBlock(KernelError):
    """A block number outside the device. ``block`` and ``nblocks`` say which and
    how big the device is. No I/O was done and no simulated time was charged."""

    def __init__(self, block: int, nblocks: int, path: str = "") -> None:
        self.block = block
        self.nblocks = nblocks
        where = f" of {path}" if path else ""
        super().__init__(
            f"block {block} is outside the device{where} ({nblocks} blocks, 0..{nblocks - 1})")


class InvalidArgument(KernelError, ValueError):
    """A malformed request: wrong data length, negative offset, bad open mode, bad
    name, a policy answer that is not acceptable (out-of-range victim index,
    read-ahead outside the file, a filter that changed the length). Nothing changed
    except where the docstring of the raising method says otherwise."""


class BadHandle(KernelError):
    """Use of something that is no longer usable: a closed ``OpenFile`` or
    ``BlockDevice``, a released ``AddressSpace``, an unmounted ``FileSystem``."""


class ImageInUse(KernelError):
    """``Kernel.boot`` of a disk image that another kernel -- in this OS process or
    another -- has booted and not shut down. A mounted file system keeps its metadata
    and cache in memory, so two kernels on one image would each overwrite the other's
    changes. Nothing was read or written; shut the other kernel down first."""


class CorruptFileSystem(KernelError):
    """``mount`` found an image it cannot trust (bad magic, version, geometry).
    Nothing was mounted and nothing was written."""


class CacheBusy(KernelError):
    """The buffer cache was entered again, on the thread that is loading a page into it,
    by code that needs a frame or a spare page buffer: a signal handler run amid the
    load (between two of its bytecodes) that reads or writes a file. Refused before
    anything of the cache changed; the load it interrupted completes as if it had not
    run. Retry once the handler has returned (or do no file I/O in a signal handler)."""


class InvariantViolation(KernelError, AssertionError):
    """Raised by a ``check_invariants()``: a structural invariant does not hold.
    This is a bug in the kernel; the message names the broken invariant."""


class DeviceError(KernelError, OSError):
    """The device failed a request (``op`` is ``"read"``, ``"write"`` or ``"flush"``).

    ``errno`` says how (``EIO`` for a medium error, ``ENOSPC`` when the host file
    system under the image is full, ...); ``block`` is the first block of the
    request (-1 for a flush). A failed read changed nothing; a failed write may have
    written any part of the request; a failed flush leaves unknown which writes since
    the previous flush are durable. A file system that sees one while committing keeps
    the transaction to commit again; the image keeps its last commit.
    """

    def __init__(self, err: int, op: str, block: int = -1, path: str = "",
                 detail: str = "") -> None:
        self.op = op
        self.block = block
        where = f" at block {block}" if block >= 0 else ""
        msg = f"device {path}: {op}{where} failed: {detail or _errno.errorcode.get(err, err)}"
        super().__init__(err, msg)


class PowerLost(DeviceError):
    """The device lost power (a crash plan of ``vino.kernel.crash`` fired): the request
    that raised it was cut, torn or lost as the plan's model says, and every later
    request raises it again. Remount the image (a new ``BlockDevice``) to go on."""

    def __init__(self, path: str, write: int, model: str) -> None:
        self.write = write
        self.model = model
        super().__init__(_errno.EIO, "power", -1, path,
                         f"power lost at write #{write} ({model})")


class FilterUnavailable(KernelError):
    """A read or write of a file whose blocks a filter graft transforms, when no filter
    graft can answer: it failed and was removed, was removed by its owner, or stayed
    busy past the bounded wait. The identity default is never used in its place.

    Nothing of the failing block reached the device or the caller; blocks before it in
    the same ``write`` were written through the filter (as with a device error). The
    file's reads and writes keep failing until its owner installs a filter again or
    gives up the protection (``Kernel.unseal``); a busy filter fails only this call.
    """
