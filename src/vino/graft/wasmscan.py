"""A small scanner of WebAssembly code: does a module ever execute ``memory.grow``?

Used only to pick the cheaper accounting path: a graft that cannot grow its
memory needs no memory-size check after each call. Safety never depends on the
answer: a module judged unable to grow runs with a store limit equal to its
initial memory, so a ``memory.grow`` the scanner missed simply fails (-1).

The scanner decodes instruction boundaries of the MVP instruction set plus
sign extension, multi-value block types, reference types, tail calls and the
0xFC prefix (saturating truncation, bulk memory). Anything it does not know
(SIMD, threads, GC, exceptions, malformed code) makes it answer "may grow",
the conservative answer.
"""

from __future__ import annotations

from typing import Final

_MEMARG: Final = frozenset(range(0x28, 0x3F))  # loads and stores
_NO_IMM: Final = frozenset(
    [0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1, *range(0x45, 0xC5)])  # numeric, sign-ext
_ONE_U32: Final = frozenset([0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
                             0xD2])
_FC_IMMS: Final = {  # 0xFC sub-opcode -> number of u32 immediates
    0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0,
    8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1,
}


class _Unknown(Exception):
    pass


def _u(data: bytes, pos: int) -> int:
    """Skip one LEB128 number; return the position after it."""
    while True:
        if pos >= len(data):
            raise _Unknown
        b = data[pos]
        pos += 1
        if not b & 0x80:
            return pos


def read_leb(data: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 (u32) at ``pos``; return (value, next position).

    Raises ``ValueError`` if it is truncated or longer than a u32's five bytes.
    """
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 28:
            raise ValueError("truncated or overlong LEB128")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _uval(data: bytes, pos: int) -> tuple[int, int]:
    try:
        return read_leb(data, pos)
    except ValueError:
        raise _Unknown from None


def _code_has_grow(code: bytes, pos: int, end: int) -> bool:
    while pos < end:
        op = code[pos]
        pos += 1
        if op in _NO_IMM:
            continue
        if op in _ONE_U32:
            pos = _u(code, pos)
        elif op in (0x02, 0x03, 0x04):  # block, loop, if: a block type
            bt = code[pos]
            pos = pos + 1 if bt == 0x40 or bt >= 0x6F else _u(code, pos)
        elif op in _MEMARG:
            pos = _u(code, _u(code, pos))
        elif op == 0x3F:  # memory.size
            pos = _u(code, pos)
        elif op == 0x40:  # memory.grow
            return True
        elif op == 0x41 or op == 0x42:  # i32.const, i64.const
            pos = _u(code, pos)
        elif op == 0x43:
            pos += 4
        elif op == 0x44:
            pos += 8
        elif op == 0x0E:  # br_table
            n, pos = _uval(code, pos)
            for _ in range(n + 1):
                pos = _u(code, pos)
        elif op == 0x11 or op == 0x13:  # call_indirect, return_call_indirect
            pos = _u(code, _u(code, pos))
        elif op == 0x1C:  # select with types
            n, pos = _uval(code, pos)
            pos += n
        elif op == 0xD0:  # ref.null heaptype
            pos += 1
        elif op == 0xFC:
            sub, pos = _uval(code, pos)
            if sub not in _FC_IMMS:
                raise _Unknown
            for _ in range(_FC_IMMS[sub]):
                pos = _u(code, pos)
        else:
            raise _Unknown
    return False


def may_grow_memory(wasm: bytes) -> bool:
    """False only if no function body of ``wasm`` contains ``memory.grow``."""
    try:
        pos = 8
        while pos < len(wasm):
            sid = wasm[pos]
            size, body = _uval(wasm, pos + 1)
            end = body + size
            if sid == 10:  # code section
                n, p = _uval(wasm, body)
                for _ in range(n):
                    fsize, p = _uval(wasm, p)
                    fend = p + fsize
                    nlocals, q = _uval(wasm, p)
                    for _ in range(nlocals):
                        q = _u(wasm, q)  # count
                        q += 1  # value type
                    if _code_has_grow(wasm, q, fend):
                        return True
                    p = fend
            pos = end
        return False
    except (_Unknown, IndexError):
        return True
