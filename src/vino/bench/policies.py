"""The four sample policies as plain Python: the unprotected floor of the peers.

Each class decides exactly what its sample graft (src/vino/sdk/samples/*.c)
decides, from the same inputs the kernel's graft point copies into the graft's
buffer, and is called with the same arguments as the graft point, so the
benchmark can check the answers agree before timing anything:

- ``ReadaheadStride(fs)(of, block)``       ~ readahead_stride.c
- ``EvictKeep(important)(aspace, cands)``   ~ evict_keep.c
- ``sched_interactive(group, rows)``        ~ sched_interactive.c
- ``ChaCha20Native(key, nonce)(inode, off, data, direction)``: the ``cryptography``
  package's ChaCha20 (OpenSSL, vectorised C) -- a *native* floor, not the same
  code as the graft; ``ChaCha20Python`` is the same algorithm in pure Python
  (RFC 8439), far slower than either.

Caveat: ``-1`` (the graft's "no valid answer") is returned where the C returns
it, for fidelity; the benchmark inputs never produce it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vino.kernel import params
from vino.kernel.sched import FLAG_INTERACTIVE

if TYPE_CHECKING:
    from vino.kernel.cache import PageInfo
    from vino.kernel.fs import FileSystem, OpenFile
    from vino.kernel.sched import ThreadInfo

RA_HIST: Final = params.READAHEAD_HISTORY  # ABI hist[16]
RA_OUT_MAX: Final = params.READAHEAD_MAX_OUT_LIMIT  # ABI out[32]
EVICT_MORE_MAX: Final = params.MAX_EVICT_MORE  # ABI more[31]
CHACHA_BLOCK: Final = 64  # bytes of keystream per ChaCha20 block
CHACHA_KEY: Final = 32
CHACHA_NONCE: Final = 12
_MASK32: Final = 0xFFFFFFFF


def stride_policy(file_blocks: int, block: int, max_out: int, hist: Sequence[int],
                  explicit_stride: int = 0) -> list[int]:
    """readahead_stride.c's decision on the ABI inputs (hist most recent first)."""
    max_out = min(max_out, RA_OUT_MAX)
    n_hist = min(len(hist), RA_HIST)
    fresh = False
    if explicit_stride:
        stride = explicit_stride
    else:
        seq = [block]
        i = 1 if n_hist and hist[0] == block else 0
        while i < n_hist and len(seq) < 4:
            seq.append(hist[i])
            i += 1
        if len(seq) < 3:
            return []
        d1, d2 = seq[0] - seq[1], seq[1] - seq[2]
        if d1 != d2:
            return []
        stride = d1
        fresh = len(seq) < 4 or seq[2] - seq[3] != d1
    if stride == 0 or max_out == 0:
        return []
    if not explicit_stride and not fresh and (block // abs(stride)) % max_out:
        return []  # mid-window: already fetched
    out: list[int] = []
    nxt = block
    while len(out) < max_out:
        nxt += stride
        if nxt < 0 or nxt >= file_blocks:
            break
        out.append(nxt)
    return out


class ReadaheadStride:
    """fs.readahead policy; reads the same inputs the point's encoder copies."""

    __slots__ = ("fs", "stride")

    def __init__(self, fs: FileSystem, stride: int = 0) -> None:
        self.fs = fs
        self.stride = stride

    def __call__(self, of: OpenFile, block: int) -> list[int]:
        nblocks = -(-of.inode.size // params.BLOCK_SIZE)
        return stride_policy(nblocks, block, self.fs.readahead_max, of.history, self.stride)


class EvictKeep:
    """vm.evict policy: the LRU candidates that are not important, oldest first, as a
    batch of up to ``1 + MAX_EVICT_MORE`` (the ABI's ``more[31]``); else the LRU one.
    One victim is answered as its index, a batch as a list (what the point decodes)."""

    __slots__ = ("important",)

    def __init__(self, important: Iterable[int]) -> None:
        self.important = frozenset(important)

    def __call__(self, aspace: Any, cands: Sequence[PageInfo]) -> int | list[int]:
        if not cands:
            return -1
        imp = self.important
        keep = sorted((c.last_use, i) for i, c in enumerate(cands) if c.vpn not in imp)
        if not keep:  # min() keeps the lowest index on a tie, like the C
            return min(range(len(cands)), key=lambda i: cands[i].last_use)
        order = [i for _, i in keep[:1 + EVICT_MORE_MAX]]
        return order[0] if len(order) == 1 else order


def sched_interactive(group: Any, rows: Sequence[ThreadInfo]) -> int:
    """sched.pick policy: the longest-waiting interactive thread, else the longest-waiting."""
    if not rows:
        return -1
    best_any = 0
    best_int = -1
    for i, t in enumerate(rows):
        if t.waited_ns > rows[best_any].waited_ns:
            best_any = i
        if t.flags & FLAG_INTERACTIVE and (best_int < 0
                                           or t.waited_ns > rows[best_int].waited_ns):
            best_int = i
    return best_int if best_int >= 0 else best_any


class ChaCha20Native:
    """fs.filter with ``cryptography``'s ChaCha20 (RFC 8439, counter = offset / 64)."""

    __slots__ = ("key", "nonce")

    def __init__(self, key: bytes, nonce: bytes) -> None:
        if len(key) != CHACHA_KEY or len(nonce) != CHACHA_NONCE:
            raise ValueError("ChaCha20 needs a 32-byte key and a 12-byte nonce")
        self.key = key
        self.nonce = nonce

    def __call__(self, inode: Any, offset: int, data: bytes, direction: int) -> bytes:
        counter, skip = divmod(offset, CHACHA_BLOCK)
        full_nonce = counter.to_bytes(4, "little") + self.nonce
        enc = Cipher(algorithms.ChaCha20(self.key, full_nonce), None).encryptor()
        if skip:
            enc.update(bytes(skip))
        return enc.update(data)


def _rotl(v: int, n: int) -> int:
    return ((v << n) & _MASK32) | (v >> (32 - n))


_WORDS16: Final = struct.Struct("<16I")
_SIGMA: Final = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)


class ChaCha20Python:
    """The same ChaCha20 filter in pure Python (slow; shows the interpreter's floor)."""

    __slots__ = ("key", "nonce")

    def __init__(self, key: bytes, nonce: bytes) -> None:
        if len(key) != CHACHA_KEY or len(nonce) != CHACHA_NONCE:
            raise ValueError("ChaCha20 needs a 32-byte key and a 12-byte nonce")
        self.key = struct.unpack("<8I", key)
        self.nonce = struct.unpack("<3I", nonce)

    def block(self, counter: int) -> bytes:
        """One 64-byte keystream block (RFC 8439 §2.3)."""
        init = [*_SIGMA, *self.key, counter & _MASK32, *self.nonce]
        x = list(init)
        for _ in range(10):
            for a, b, c, d in ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                               (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)):
                x[a] = (x[a] + x[b]) & _MASK32
                x[d] = _rotl(x[d] ^ x[a], 16)
                x[c] = (x[c] + x[d]) & _MASK32
                x[b] = _rotl(x[b] ^ x[c], 12)
                x[a] = (x[a] + x[b]) & _MASK32
                x[d] = _rotl(x[d] ^ x[a], 8)
                x[c] = (x[c] + x[d]) & _MASK32
                x[b] = _rotl(x[b] ^ x[c], 7)
        return _WORDS16.pack(*((x[i] + init[i]) & _MASK32 for i in range(16)))

    def __call__(self, inode: Any, offset: int, data: bytes, direction: int) -> bytes:
        counter, skip = divmod(offset, CHACHA_BLOCK)
        nblocks = -(-(skip + len(data)) // CHACHA_BLOCK)
        stream = b"".join(self.block(counter + i) for i in range(nblocks))[skip:skip + len(data)]
        n = len(data)
        return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(
            n, "little")
