"""The kernel's crypto API for grafts: ChaCha20 as a graft-callable of ``fs.filter``.

A filter graft decides what to encrypt and with which key; the kernel offers it the
cipher, as an operating system's kernel offers its modules a crypto API. One
graft-callable, imported from module ``"vino"``::

    chacha20(key_ptr, nonce_ptr, counter, data_ptr, len) -> len, or -1

XORs the ``len`` bytes at ``data_ptr`` in the graft's own memory, in place, with the
RFC 8439 ChaCha20 keystream of the 32-byte key at ``key_ptr`` and the 12-byte nonce
at ``nonce_ptr``, starting at block ``counter`` (a u32; block ``counter + i`` covers
bytes ``64 i .. 64 i + 63``). The cipher is the ``cryptography`` package's (OpenSSL),
set up anew from the key on every call.

What the host checks, before anything is read or written:
- ``len`` in ``0 .. CIPHER_MAX_BYTES`` (host code cannot be stopped at an epoch tick,
  so one call is bounded: about a microsecond of cipher), else -1;
- the last block's counter at most ``2**32 - 1``: RFC 8439's counter is 32 bits and
  wrapping would reuse keystream, so -1 (nothing written);
- each of the three ranges inside the graft's linear memory, else ``WildPointer``:
  the graft is aborted with ``trap`` (as if it had made the access itself) and the
  point fails closed (``fs.filter`` refuses the read or write).

Accounting: the call runs on the graft's thread inside its transaction, so its CPU
time is the graft's (its per-call budget and its principal's quota), like every
graft-callable's; it changes only the graft's own memory, so there is nothing to
undo on abort (the aborted call's answer is thrown away, as always).
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from vino.errors import TransactionError
from vino.graft import GraftCallable
from vino.graft.txn import Transaction
from vino.kernel import layouts, params

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
BLOCK_BYTES: Final = 64  # one ChaCha20 keystream block
COUNTER_MAX: Final = 0xFFFF_FFFF  # RFC 8439's 32-bit block counter
CIPHER_MAX_BYTES: Final = params.CIPHER_MAX_BYTES


def chacha20(txn: Transaction, key_ptr: int, nonce_ptr: int, counter: int, data_ptr: int,
             length: int) -> int:
    """The graft-callable ``chacha20`` (see the module's docstring)."""
    g = txn.graft
    if g is None:
        raise TransactionError("graft-callable called outside a graft invocation")
    if not 0 <= length <= CIPHER_MAX_BYTES:
        return -1
    counter &= COUNTER_MAX  # an i32 from the guest, meant as a u32
    if counter + (length + BLOCK_BYTES - 1) // BLOCK_BYTES - 1 > COUNTER_MAX:
        return -1
    mem = g.memory
    key = mem.read(key_ptr, KEY_BYTES)
    nonce = mem.read(nonce_ptr, NONCE_BYTES)
    data = mem.window(data_ptr, length)  # checked before the cipher is even made
    if length:
        enc = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce),
                     None).encryptor()
        data[:] = enc.update(data)
    return length


CHACHA20: Final = GraftCallable("chacha20", *layouts.FILTER.callables["chacha20"], chacha20)
