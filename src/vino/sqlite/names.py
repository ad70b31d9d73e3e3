"""SQLite path names -> names in the vino file system's one flat directory.

The kernel file system has a single directory and names of at most
``FS_NAME_MAX`` (60) bytes without NUL or '/'. SQLite hands the VFS full path
names (``/home/me/app.db``, and derives ``/home/me/app.db-journal`` by appending
a suffix). The mapping:

- ``full_pathname(name)`` is what xFullPathname returns: ``name`` made absolute and
  normalised (``a/./b.db`` -> ``/a/b.db``); the flat file system has no current
  directory, so a relative name is relative to ``/``.
- ``kernel_name(path)`` is the file's name in the kernel: the path without its
  leading '/' when that is already a safe name (only ``A-Z a-z 0-9 . _ -``, at most
  60 bytes, no further '/'), else ``<tail>~<hash>``: the last ``NAME_TAIL_CHARS``
  characters of the path with unsafe characters replaced by '_' (so ``-journal``
  stays visible) and ``NAME_HASH_HEX`` hex digits of the path's SHA-256. '~' never
  occurs in a verbatim name, so the two kinds never collide; two different long
  paths collide only if 64 bits of SHA-256 do.

Invariant: ``kernel_name`` is a pure function, its result is a valid kernel name,
and different paths give different names (up to the hash).
"""

from __future__ import annotations

import functools
import hashlib
import posixpath
import string

from vino.kernel import params as kparams
from vino.sqlite.params import NAME_HASH_HEX, NAME_TAIL_CHARS

__all__ = ["full_pathname", "kernel_name"]

_SAFE = frozenset(string.ascii_letters + string.digits + "._-")
assert NAME_TAIL_CHARS + 1 + NAME_HASH_HEX <= kparams.FS_NAME_MAX


def full_pathname(name: str) -> str:
    """The absolute, normalised form of ``name`` (xFullPathname)."""
    path = posixpath.normpath("/" + name.lstrip("/"))
    return "/" if path == "//" else path


@functools.lru_cache(maxsize=1024)  # pure; asked twice per SQLite transaction
def kernel_name(path: str) -> str:
    """The name of ``path``'s file in the kernel's flat directory."""
    raw = path.lstrip("/")
    if (raw and len(raw) <= kparams.FS_NAME_MAX and raw not in (".", "..")
            and all(c in _SAFE for c in raw)):
        return raw
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:NAME_HASH_HEX]
    tail = "".join(c if c in _SAFE else "_" for c in raw)[-NAME_TAIL_CHARS:]
    return f"{tail}~{digest}"
