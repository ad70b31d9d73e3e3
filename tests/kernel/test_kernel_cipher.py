"""The kernel's cipher (``kernel/crypto.py``, graft-callable ``chacha20`` of fs.filter):
right against ``cryptography`` and RFC 8439, and every argument a hostile filter can
hand it checked before anything is read or written.

The filter grafts here are WAT: each calls ``chacha20`` once with the arguments the
attack chooses and stores its answer in the first four bytes of the block (then
answers the block's length, so the kernel keeps that block). A pointer or range
outside the graft's memory aborts the graft (``trap``) and the write is refused
(the file is sealed: no identity in its place); a bad length or a counter that would
wrap is answered -1 with nothing written.
"""

from __future__ import annotations

import struct
from typing import Any, Final

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vino.errors import AbortReason
from vino.kernel import crypto, layouts
from vino.kernel.errors import FilterUnavailable
from vino.kernel.kernel import Kernel
from vino.sdk.build import sample_path

from .kernel_world import BS, Boot

DATA: Final = layouts.FILTER.field("data").offset  # the block, in the graft's buffer at 0
KEY_AT, NONCE_AT = 8192, 8192 + crypto.KEY_BYTES  # where the WAT grafts keep key and nonce
MEMORY = 65536  # the WAT grafts' one page
RFC_KEY = bytes(range(32))
RFC_NONCE = bytes.fromhex("000000000000004a00000000")


def reference(key: bytes, nonce: bytes, counter: int, data: bytes) -> bytes:
    enc = Cipher(algorithms.ChaCha20(key, struct.pack("<I", counter) + nonce), None)
    return enc.encryptor().update(data)


def calling(key: int, nonce: int, counter: int, data: int, length: int) -> str:
    """A filter graft calling ``chacha20`` with these arguments, its answer at data[0..4)."""
    return f"""(module
  (import "vino" "chacha20" (func $c (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32)
    (i32.store (i32.const {DATA}) (call $c (i32.const {key}) (i32.const {nonce})
      (i32.const {counter}) (i32.const {data}) (i32.const {length})))
    local.get $len))"""


class Vault:
    """A kernel, a user and one file whose filter the test installs."""

    def __init__(self, k: Kernel) -> None:
        self.k = k
        self.user = k.add_user("alice")
        k.fs.create(self.user, "f", 0o600)
        with k.fs.open(k.spawn(self.user, "p"), "f", "rw") as f:
            self.inode = f.inode

    def install(self, source: Any) -> Any:
        return self.k.graft(self.user, "fs.filter", source, target=self.inode, replace=True)

    def filter(self, block: bytes, offset: int = 0) -> bytes:
        out = bytearray(block)
        self.k.fs.filter_policy(self.inode, offset, out, 0)
        return bytes(out)


@pytest.fixture
def vault(boot: Boot) -> Vault:
    return Vault(boot("cipher", nblocks=256, frames=16))


def test_kernel_cipher_sample_gives_the_rfc8439_vector(vault: Vault) -> None:
    plaintext = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one "
                 b"tip for the future, sunscreen would be it.")
    g = vault.install(sample_path("chacha20_kernel.wasm"))
    assert g.send(RFC_KEY + RFC_NONCE) == 0
    assert vault.filter(plaintext, 64) == reference(RFC_KEY, RFC_NONCE, 1, plaintext)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12),
       offset=st.integers(min_value=0, max_value=(1 << 32) * 64 - BS - 64),
       data=st.binary(max_size=BS))
def test_kernel_cipher_sample_equals_cryptography_at_any_offset(
        vault: Vault, key: bytes, nonce: bytes, offset: int, data: bytes) -> None:
    g = vault.install(sample_path("chacha20_kernel.wasm"))
    assert g.send(key + nonce) == 0
    counter, skip = divmod(offset, 64)
    want = reference(key, nonce, counter, bytes(skip) + data)[skip:]
    assert vault.filter(data, offset) == want
    assert not g.aborts


def _answer(vault: Vault, source: str, block: bytes) -> tuple[int, bytes]:
    """Install ``source``, filter ``block``; the callable's answer and the rest."""
    g = vault.install(source)
    out = vault.filter(block)
    assert not g.aborts
    return struct.unpack_from("<i", out)[0], out[4:]


def test_filter_asking_for_a_negative_or_oversized_length_gets_minus_one_and_no_cipher(
        vault: Vault) -> None:
    block = bytes(range(256)) * (BS // 256)
    for length in (-1, -BS, crypto.CIPHER_MAX_BYTES + 1, 1 << 30):
        got, rest = _answer(vault, calling(KEY_AT, NONCE_AT, 0, DATA + 4, length), block)
        assert got == -1 and rest == block[4:], length


def test_filter_whose_counter_would_wrap_gets_minus_one_and_the_last_counter_still_works(
        vault: Vault) -> None:
    block = bytes(BS)
    # Blocks 2^32 - 1 and 2^32: the second would reuse counter 0's keystream.
    got, rest = _answer(vault, calling(KEY_AT, NONCE_AT, -1, DATA + 64, 65), block)
    assert got == -1 and rest == block[4:]
    got, rest = _answer(vault, calling(KEY_AT, NONCE_AT, -1, DATA + 64, 64), block)
    assert got == 64
    assert rest[60:124] == reference(bytes(32), bytes(12), (1 << 32) - 1, bytes(64))


@pytest.mark.parametrize(("key", "nonce", "data", "length"), [
    (MEMORY - 16, NONCE_AT, DATA, 64),  # the key runs off the end of memory
    (-4, NONCE_AT, DATA, 64),  # a negative key pointer
    (KEY_AT, MEMORY - 4, DATA, 64),  # the nonce runs off the end
    (KEY_AT, NONCE_AT, MEMORY - 100, 200),  # the data runs off the end
    (KEY_AT, NONCE_AT, -64, 64),  # the data starts below memory
], ids=["key-past-end", "key-negative", "nonce-past-end", "data-past-end", "data-negative"])
def test_filter_passing_a_wild_pointer_is_aborted_and_the_write_refused(
        vault: Vault, key: int, nonce: int, data: int, length: int) -> None:
    g = vault.install(calling(key, nonce, 0, data, length))
    block = b"plaintext " * 400
    with pytest.raises(FilterUnavailable):
        vault.filter(block)
    assert [a.reason for a in g.aborts] == [AbortReason.TRAP]
    assert "wild pointer passed to a graft-callable" in g.aborts[0].detail
    assert g.state == "removed"
