"""Reading SQLite's B-tree pages (sqlite.org/fileformat2.html, section 1.6).

``parse(index, page)`` looks at one database page (0-based ``index``; page number
``index + 1``) and says what it is: an interior page of a table or index B-tree
with its children in key order, a leaf, or something else (overflow, freelist,
pointer-map or lock-byte pages, or bytes that merely look like a B-tree header).

Layout used: the B-tree header starts at byte 100 on page 1 (after the database
header) and at byte 0 elsewhere. Byte 0 is the page type: 2 interior index, 5
interior table, 10 leaf index, 13 leaf table. An interior header is 12 bytes:
type, first freeblock (u16), cell count (u16), cell content start (u16),
fragmented bytes (u8), right-most child page number (u32); all big-endian. The
cell pointer array (u16 offsets) follows; every interior cell starts with the
u32 page number of its left child. Children in key order: each cell's left child
in pointer-array order, then the right-most child.

The answer is a hint for policies, never trusted for correctness: a page whose
header or pointers are inconsistent is reported as ``OTHER``. Pure functions; no
state.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["INTERIOR_INDEX", "INTERIOR_TABLE", "LEAF_INDEX", "LEAF_TABLE", "OTHER", "Page",
           "parse"]

INTERIOR_INDEX: Final = 2
INTERIOR_TABLE: Final = 5
LEAF_INDEX: Final = 10
LEAF_TABLE: Final = 13
OTHER: Final = 0

DB_HEADER_BYTES: Final = 100  # the database header before page 1's B-tree header
INTERIOR_HEADER_BYTES: Final = 12
_HEADER = struct.Struct(">BHHHBI")  # type, freeblock, cells, content, fragmented, right child
_U32 = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Page:
    kind: int  # INTERIOR_INDEX, INTERIOR_TABLE, LEAF_INDEX, LEAF_TABLE or OTHER
    children: tuple[int, ...] = ()  # interior pages: child page indexes (0-based), key order

    @property
    def interior(self) -> bool:
        return self.kind in (INTERIOR_INDEX, INTERIOR_TABLE)


_OTHER = Page(OTHER)


def parse(index: int, page: bytes) -> Page:
    """What page ``index`` (0-based) holding ``page`` is."""
    hdr = DB_HEADER_BYTES if index == 0 else 0
    size = len(page)
    if size < hdr + INTERIOR_HEADER_BYTES:
        return _OTHER
    kind = page[hdr]
    if kind in (LEAF_INDEX, LEAF_TABLE):
        return Page(kind)
    if kind not in (INTERIOR_INDEX, INTERIOR_TABLE):
        return _OTHER
    _, _, ncells, _, _, right = _HEADER.unpack_from(page, hdr)
    array = hdr + INTERIOR_HEADER_BYTES
    if right == 0 or array + 2 * ncells > size:
        return _OTHER
    children: list[int] = []
    lowest = array + 2 * ncells  # cells lie after the pointer array
    for off in struct.unpack_from(f">{ncells}H", page, array):
        if not lowest <= off <= size - 4:
            return _OTHER
        child = _U32.unpack_from(page, off)[0]
        if child == 0:
            return _OTHER
        children.append(child - 1)
    children.append(right - 1)
    if len(set(children)) != len(children) or index in children:
        return _OTHER
    return Page(kind, tuple(children))
