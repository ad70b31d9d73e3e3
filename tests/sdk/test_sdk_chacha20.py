"""The ChaCha20 filter samples against RFC 8439 and the `cryptography` package.

Two builds, the same answers byte for byte: ``chacha20_filter`` (four blocks at once
with SIMD, the remainder a block at a time) and its reference
``chacha20_filter_scalar`` (a block at a time). Every test runs on both.
"""

from __future__ import annotations

import struct

import pytest
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
SAMPLES = ("chacha20_filter", "chacha20_filter_scalar")
SIMD_RUN = 4 * 64  # bytes the SIMD build computes at once


def reference(key: bytes, nonce: bytes, offset: int, data: bytes) -> bytes:
    """File bytes [offset, offset+len) of plaintext XOR ChaCha20(key, nonce, counter 0)."""
    counter, skip = divmod(offset, 64)
    # cryptography's 16-byte nonce is the 32-bit LE counter then the 96-bit nonce.
    enc = Cipher(algorithms.ChaCha20(key, struct.pack("<I", counter) + nonce), None).encryptor()
    return enc.update(bytes(skip) + data)[skip:]


per_sample = pytest.mark.parametrize("sample", SAMPLES)


@per_sample
def keyed(sample: str, key: bytes = RFC_KEY, nonce: bytes = RFC_NONCE) -> Graft:
    graft = load(sample)
    assert graft.message(key + nonce) == 0
    return graft


@per_sample
def test_rfc8439_vector_at_counter_1(sample: str) -> None:
    # Our counter is file_offset / 64, so offset 64 is the RFC's counter 1.
    graft = keyed(sample)
    assert graft.filter(RFC_PLAINTEXT, 64) == RFC_CIPHERTEXT
    assert graft.filter(RFC_CIPHERTEXT, 64, direction=READ) == RFC_PLAINTEXT


@per_sample
@settings(max_examples=60, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    block=st.integers(min_value=0, max_value=(1 << 32) - 65),
    data=st.binary(min_size=0, max_size=4096),
)
def test_matches_cryptography_and_round_trips(
    sample: str, key: bytes, nonce: bytes, block: int, data: bytes
) -> None:
    graft = keyed(sample, key, nonce)
    offset = block * 64
    ciphertext = graft.filter(data, offset, direction=WRITE)
    assert len(ciphertext) == len(data)
    assert ciphertext == reference(key, nonce, offset, data)
    assert graft.filter(ciphertext, offset, direction=READ) == data


@per_sample
@settings(max_examples=30, deadline=None)
@given(offset=st.integers(min_value=0, max_value=1 << 20), data=st.binary(max_size=300))
def test_unaligned_offsets_use_the_same_keystream(sample: str, offset: int, data: bytes) -> None:
    # The host always sends multiples of 64; other offsets must still be right.
    assert keyed(sample).filter(data, offset) == reference(RFC_KEY, RFC_NONCE, offset, data)


@per_sample
def test_file_encrypted_in_chunks_equals_one_stream(sample: str) -> None:
    # Seekable by blocks: 4 KiB writes in any order give the whole-file stream.
    plaintext = bytes((i * 7 + 3) & 0xFF for i in range(5 * 4096 + 100))
    graft = keyed(sample)
    chunks = {}
    for offset in sorted(range(0, len(plaintext), 4096), reverse=True):
        chunks[offset] = graft.filter(plaintext[offset : offset + 4096], offset)
    stream = b"".join(chunks[o] for o in sorted(chunks))
    assert stream == reference(RFC_KEY, RFC_NONCE, 0, plaintext)


@per_sample
def test_without_a_key_it_refuses_and_leaves_the_data_alone(sample: str) -> None:
    graft = load(sample)
    graft.write(struct.pack("<QII", 0, 64, 1) + b"secret" * 10 + b"abcd")
    assert graft.call("vino_filter", WRITE, 64) == -1
    assert graft.read(64, at=16) == b"secret" * 10 + b"abcd"


@per_sample
def test_malformed_key_message_is_refused_and_the_old_key_stays(sample: str) -> None:
    graft = load(sample)
    assert graft.message(RFC_KEY + RFC_NONCE[:11]) == -1
    assert graft.message(RFC_KEY + RFC_NONCE + b"x") == -1
    graft.write(struct.pack("<QII", 0, 16, 1) + bytes(16))
    assert graft.call("vino_filter", WRITE, 16) == -1  # still no key
    assert graft.message(RFC_KEY + RFC_NONCE) == 0
    assert graft.message(bytes(43)) == -1
    assert graft.filter(RFC_PLAINTEXT, 64) == RFC_CIPHERTEXT


@per_sample
def test_new_key_replaces_the_old_one(sample: str) -> None:
    graft = keyed(sample)
    other_key = bytes(range(100, 132))
    assert graft.message(other_key + RFC_NONCE) == 0
    assert graft.filter(RFC_PLAINTEXT, 64) == reference(other_key, RFC_NONCE, 64, RFC_PLAINTEXT)


@per_sample
def test_bad_direction_and_length_are_refused(sample: str) -> None:
    graft = keyed(sample)
    graft.write(struct.pack("<QII", 0, 16, 1) + bytes(16))
    assert graft.call("vino_filter", 2, 16) == -1
    assert graft.call("vino_filter", -1, 16) == -1
    assert graft.call("vino_filter", WRITE, 4097) == -1
    assert graft.call("vino_filter", WRITE, -5) == -1
    assert graft.read(16, at=16) == bytes(16)
    assert graft.call("vino_filter", WRITE, 0) == 0


@per_sample
def test_counter_overflow_is_refused_rather_than_reusing_keystream(sample: str) -> None:
    graft = keyed(sample)
    last_block = ((1 << 32) - 1) * 64
    # The last counter value is usable ...
    assert graft.filter(bytes(64), last_block) == reference(
        RFC_KEY, RFC_NONCE, last_block, bytes(64)
    )
    # ... but data reaching past it would wrap to counter 0.
    graft.write(struct.pack("<QII", last_block, 128, 1) + bytes(128))
    assert graft.call("vino_filter", WRITE, 128) == -1
    assert graft.read(128, at=16) == bytes(128)


@per_sample
def test_last_four_counters_go_through_the_vector_path_without_wrapping(sample: str) -> None:
    # Four whole blocks ending at the last counter: one SIMD run, lanes 2^32-4 .. 2^32-1.
    start = ((1 << 32) - 4) * 64
    data = bytes(range(256)) * (SIMD_RUN // 256)
    assert keyed(sample).filter(data, start) == reference(RFC_KEY, RFC_NONCE, start, data)
    # One block further would wrap: refused, the data untouched.
    graft = keyed(sample)
    graft.write(struct.pack("<QII", start + 64, SIMD_RUN, 1) + data)
    assert graft.call("vino_filter", WRITE, SIMD_RUN) == -1
    assert graft.read(SIMD_RUN, at=16) == data


@pytest.mark.parametrize("length", [SIMD_RUN - 1, SIMD_RUN, SIMD_RUN + 1, SIMD_RUN + 64,
                                    2 * SIMD_RUN + 63, 4096])
@pytest.mark.parametrize("skip", [0, 1, 63])
def test_vector_runs_and_their_edges_equal_the_reference(length: int, skip: int) -> None:
    # Every split the SIMD build makes (leading partial block, runs of four, the whole
    # blocks left, a trailing partial block) against cryptography and the scalar build.
    key, nonce = bytes(range(7, 39)), bytes(range(12))
    data = bytes((i * 131 + 17) & 0xFF for i in range(length))
    offset = 8192 + skip
    want = reference(key, nonce, offset, data)
    assert keyed("chacha20_filter", key, nonce).filter(data, offset) == want
    assert keyed("chacha20_filter_scalar", key, nonce).filter(data, offset) == want
