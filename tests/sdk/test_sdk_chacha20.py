"""The ChaCha20 filter sample against RFC 8439 and the `cryptography` package."""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from .sdk_harness import Graft, load

# RFC 8439 §2.4.2.
RFC_KEY = bytes(range(32))
RFC_NONCE = bytes.fromhex("000000000000004a00000000")
RFC_PLAINTEXT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
    b"the future, sunscreen would be it."
)
RFC_CIPHERTEXT = bytes.fromhex(
    "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
    "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
    "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
    "5af90bbf74a35be6b40b8eedf2785e42874d"
)
WRITE, READ = 0, 1


def reference(key: bytes, nonce: bytes, offset: int, data: bytes) -> bytes:
    """File bytes [offset, offset+len) of plaintext XOR ChaCha20(key, nonce, counter 0)."""
    counter, skip = divmod(offset, 64)
    # cryptography's 16-byte nonce is the 32-bit LE counter then the 96-bit nonce.
    enc = Cipher(algorithms.ChaCha20(key, struct.pack("<I", counter) + nonce), None).encryptor()
    return enc.update(bytes(skip) + data)[skip:]


def keyed(key: bytes = RFC_KEY, nonce: bytes = RFC_NONCE) -> Graft:
    graft = load("chacha20_filter")
    assert graft.message(key + nonce) == 0
    return graft


def test_rfc8439_vector_at_counter_1() -> None:
    # Our counter is file_offset / 64, so offset 64 is the RFC's counter 1.
    graft = keyed()
    assert graft.filter(RFC_PLAINTEXT, 64) == RFC_CIPHERTEXT
    assert graft.filter(RFC_CIPHERTEXT, 64, direction=READ) == RFC_PLAINTEXT


@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    block=st.integers(min_value=0, max_value=(1 << 32) - 65),
    data=st.binary(min_size=0, max_size=4096),
)
def test_matches_cryptography_and_round_trips(
    key: bytes, nonce: bytes, block: int, data: bytes
) -> None:
    graft = keyed(key, nonce)
    offset = block * 64
    ciphertext = graft.filter(data, offset, direction=WRITE)
    assert len(ciphertext) == len(data)
    assert ciphertext == reference(key, nonce, offset, data)
    assert graft.filter(ciphertext, offset, direction=READ) == data


@settings(max_examples=30, deadline=None)
@given(offset=st.integers(min_value=0, max_value=1 << 20), data=st.binary(max_size=300))
def test_unaligned_offsets_use_the_same_keystream(offset: int, data: bytes) -> None:
    # The host always sends multiples of 64; other offsets must still be right.
    assert keyed().filter(data, offset) == reference(RFC_KEY, RFC_NONCE, offset, data)


def test_file_encrypted_in_chunks_equals_one_stream() -> None:
    # Seekable by blocks: 4 KiB writes in any order give the whole-file stream.
    plaintext = bytes((i * 7 + 3) & 0xFF for i in range(5 * 4096 + 100))
    graft = keyed()
    chunks = {}
    for offset in sorted(range(0, len(plaintext), 4096), reverse=True):
        chunks[offset] = graft.filter(plaintext[offset : offset + 4096], offset)
    stream = b"".join(chunks[o] for o in sorted(chunks))
    assert stream == reference(RFC_KEY, RFC_NONCE, 0, plaintext)


def test_without_a_key_it_refuses_and_leaves_the_data_alone() -> None:
    graft = load("chacha20_filter")
    graft.write(struct.pack("<QII", 0, 64, 1) + b"secret" * 10 + b"abcd")
    assert graft.call("vino_filter", WRITE, 64) == -1
    assert graft.read(64, at=16) == b"secret" * 10 + b"abcd"


def test_malformed_key_message_is_refused_and_the_old_key_stays() -> None:
    graft = load("chacha20_filter")
    assert graft.message(RFC_KEY + RFC_NONCE[:11]) == -1
    assert graft.message(RFC_KEY + RFC_NONCE + b"x") == -1
    graft.write(struct.pack("<QII", 0, 16, 1) + bytes(16))
    assert graft.call("vino_filter", WRITE, 16) == -1  # still no key
    assert graft.message(RFC_KEY + RFC_NONCE) == 0
    assert graft.message(bytes(43)) == -1
    assert graft.filter(RFC_PLAINTEXT, 64) == RFC_CIPHERTEXT


def test_new_key_replaces_the_old_one() -> None:
    graft = keyed()
    other_key = bytes(range(100, 132))
    assert graft.message(other_key + RFC_NONCE) == 0
    assert graft.filter(RFC_PLAINTEXT, 64) == reference(other_key, RFC_NONCE, 64, RFC_PLAINTEXT)


def test_bad_direction_and_length_are_refused() -> None:
    graft = keyed()
    graft.write(struct.pack("<QII", 0, 16, 1) + bytes(16))
    assert graft.call("vino_filter", 2, 16) == -1
    assert graft.call("vino_filter", -1, 16) == -1
    assert graft.call("vino_filter", WRITE, 4097) == -1
    assert graft.call("vino_filter", WRITE, -5) == -1
    assert graft.read(16, at=16) == bytes(16)
    assert graft.call("vino_filter", WRITE, 0) == 0


def test_counter_overflow_is_refused_rather_than_reusing_keystream() -> None:
    graft = keyed()
    last_block = ((1 << 32) - 1) * 64
    # The last counter value is usable ...
    assert graft.filter(bytes(64), last_block) == reference(
        RFC_KEY, RFC_NONCE, last_block, bytes(64)
    )
    # ... but data reaching past it would wrap to counter 0.
    graft.write(struct.pack("<QII", last_block, 128, 1) + bytes(128))
    assert graft.call("vino_filter", WRITE, 128) == -1
    assert graft.read(128, at=16) == bytes(128)
