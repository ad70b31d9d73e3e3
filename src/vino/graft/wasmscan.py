"""A small scanner of WebAssembly code: does a module ever execute ``memory.grow``, and
how many loops do its functions have?

``may_grow_memory`` picks the cheaper accounting path: a graft that cannot grow its
memory needs no memory-size check after each call. Safety never depends on the
answer: a module judged unable to grow runs with a store limit equal to its
initial memory, so a ``memory.grow`` the scanner missed simply fails (-1).

``loops`` bounds compile time (the loader's check before compiling): Cranelift's time
grows with the square of a function's loops -- one 64 KiB body of 21,800 nested loops
took 13 s of CPU and 240 MB, where a body of as many blocks took 0.04 s. Its answer
is never below the truth: a body whose ``0x03`` bytes (every ``loop`` opcode is one)
are few is counted by them, any other decoded; one it cannot decode keeps its byte
count.

The scanner decodes instruction boundaries of the MVP instruction set plus
sign extension, multi-value block types, reference types, tail calls, the
0xFC prefix (saturating truncation, bulk memory) and the 0xFD prefix (SIMD, for
the points that allow it). Anything it does not know (relaxed SIMD, threads, GC,
exceptions, malformed code) makes it answer "may grow",
the conservative answer. Sections, bodies and numbers are read with
``wasmbinary``, the package's one reader of the binary format.
"""

from __future__ import annotations

import contextlib
from typing import Final

from vino.errors import MalformedWasm
from vino.graft import wasmbinary

_MEMARG: Final = frozenset(range(0x28, 0x3F))  # loads and stores
_NO_IMM: Final = frozenset(
    [0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1, *range(0x45, 0xC5)])  # numeric, sign-ext
_ONE_U32: Final = frozenset([0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26,
                             0xD2])
_FC_IMMS: Final = {  # 0xFC sub-opcode -> number of u32 immediates
    0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0,
    8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1,
}

# 0xFD (SIMD) sub-opcode -> its immediates: a memarg (two u32), 16 bytes (v128.const,
# i8x16.shuffle), a lane index (one byte), or a memarg and a lane index; the others none.
_FD_MEMARG: Final = frozenset([*range(0, 12), 92, 93])
_FD_BYTES16: Final = frozenset([12, 13])
_FD_LANE: Final = frozenset(range(21, 35))
_FD_MEMARG_LANE: Final = frozenset(range(84, 92))
_FD_LAST: Final = 255  # the last SIMD sub-opcode (f64x2.convert_low_i32x4_u); relaxed from 256


class _Unknown(Exception):
    """An instruction the scanner does not decode: answer "may grow"."""


_u = wasmbinary.skip_leb  # skip one LEB128 immediate of any width
_uval = wasmbinary.read_u32  # read one u32 immediate


def _code_has_grow(code: bytes, pos: int, end: int) -> bool:
    return _scan(code, pos, end, True)[0]


def _scan(code: bytes, pos: int, end: int, stop_at_grow: bool) -> tuple[bool, int]:
    """(has ``memory.grow``, loops) of the code from ``pos`` to ``end``; with
    ``stop_at_grow``, at the first ``memory.grow`` (the loops then counted so far)."""
    grows = False
    loops = 0
    while pos < end:
        op = code[pos]
        pos += 1
        if op in _NO_IMM:
            continue
        if op in _ONE_U32:
            pos = _u(code, pos)
        elif op in (0x02, 0x03, 0x04):  # block, loop, if: a block type
            loops += op == 0x03
            bt = code[pos]
            pos = pos + 1 if bt == 0x40 or bt >= 0x6F else _u(code, pos)
        elif op in _MEMARG:
            pos = _u(code, _u(code, pos))
        elif op == 0x3F:  # memory.size
            pos = _u(code, pos)
        elif op == 0x40:  # memory.grow
            grows = True
            if stop_at_grow:
                return True, loops
            pos = _u(code, pos)  # the memory index
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
        elif op == 0xFD:
            sub, pos = _uval(code, pos)
            if sub in _FD_MEMARG:
                pos = _u(code, _u(code, pos))
            elif sub in _FD_BYTES16:
                pos += 16
            elif sub in _FD_LANE:
                pos += 1
            elif sub in _FD_MEMARG_LANE:
                pos = _u(code, _u(code, pos)) + 1
            elif sub > _FD_LAST:  # relaxed SIMD (0x100...) or unknown
                raise _Unknown
        else:
            raise _Unknown
    return grows, loops


def may_grow_memory(wasm: bytes) -> bool:
    """False only if no function body of ``wasm`` contains ``memory.grow``."""
    try:
        for sec in wasmbinary.sections(wasm):
            if sec.id == wasmbinary.CODE:
                for start, end in wasmbinary.function_bodies(wasm, sec):
                    _, code = wasmbinary.locals_of(wasm, start)
                    if _code_has_grow(wasm, code, end):
                        return True
        return False
    except (_Unknown, MalformedWasm, IndexError):
        return True


# A body with at most this many 0x03 bytes is counted by them (no decoding): the bound is
# then far below any limit, and decoding every body would cost the host Python time.
_COUNT_BYTES_UP_TO: Final = 64


def loops(wasm: bytes) -> tuple[int, int, int]:
    """(loops of the function with the most, loops in all, their weight), never below the
    truth. A loop weighs 1 + its function's locals and parameters: the compiler merges
    every local a loop's body may change at the loop's head (1,024 nested loops over
    1,024 locals: 1.95 s; 16 nested over 1,024: 0.036 s).

    Raises ``MalformedWasm`` on sections or bodies too malformed to find."""
    most = total = weight = 0
    params = wasmbinary.defined_params(wasm)
    for sec in wasmbinary.sections(wasm):
        if sec.id != wasmbinary.CODE:
            continue
        for i, (start, end) in enumerate(wasmbinary.function_bodies(wasm, sec)):
            nlocals, code = wasmbinary.locals_of(wasm, start)
            n = wasm.count(b"\x03", start, end)
            # Undecodable: the byte count bounds it (and the validator judges the code).
            if n > _COUNT_BYTES_UP_TO:
                with contextlib.suppress(_Unknown, MalformedWasm, IndexError):
                    n = _scan(wasm, code, end, False)[1]
            most = max(most, n)
            total += n
            weight += n * (1 + nlocals + (params[i] if i < len(params) else 0))
    return most, total, weight
