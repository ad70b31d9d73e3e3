"""chacha20_filter.py -- fs.filter graft: ChaCha20 (RFC 8439) encryption of one file
(the Python twin of chacha20_filter.c).

Message (exactly 44 bytes): key[32] then nonce[12], as bytes. Anything else is
refused (-1) and the previous key, if any, stays in force.

Keystream: file byte `off` is XORed with byte off % 64 of keystream block off // 64
(initial counter 0), so every 64-byte block can be processed on its own.
Encryption and decryption are the same XOR; `direction` is only checked to be 0
(write) or 1 (read).

Refusals (-1: the host aborts the call and runs the default, identity): no key
yet; length outside 0..4096 or a bad direction; a block counter past 2**32 - 1.

The 32-bit arithmetic wraps, as the cipher needs: u32_add and rotl32 are the
explicit wrapping helpers (plain Python functions; compiled, single i32
instructions). Everything else keeps Python's meaning.
"""

from vino.pygraft import le32, rotl32, set_le32, u32, u32_add

POINT = "fs.filter"
KEY_BYTES = 32
MESSAGE_BYTES = 44
BLOCK_BYTES = 64
MAX_LEN = 4096
C0 = 0x61707865
C1 = 0x3320646E
C2 = 0x79622D32
C3 = 0x6B206574

# The key in force; have_key is set only after a whole valid message.
key: list[u32] = [0] * 8
nonce: list[u32] = [0] * 3
have_key: bool = False


def message(msg: bytes) -> int:
    global have_key
    if len(msg) != MESSAGE_BYTES:
        return -1
    for i in range(8):
        key[i] = le32(msg, 4 * i)
    for i in range(3):
        nonce[i] = le32(msg, KEY_BYTES + 4 * i)
    have_key = True
    return 0


def chacha20_block(counter: u32, ks: list[u32]) -> None:
    """One keystream block (RFC 8439 section 2.3) for counter, as 16 words."""
    x0: u32 = C0
    x1: u32 = C1
    x2: u32 = C2
    x3: u32 = C3
    x4: u32 = key[0]
    x5: u32 = key[1]
    x6: u32 = key[2]
    x7: u32 = key[3]
    x8: u32 = key[4]
    x9: u32 = key[5]
    x10: u32 = key[6]
    x11: u32 = key[7]
    x12: u32 = counter
    x13: u32 = nonce[0]
    x14: u32 = nonce[1]
    x15: u32 = nonce[2]
    for _ in range(10):
        x0 = u32_add(x0, x4)
        x12 = rotl32(x12 ^ x0, 16)
        x8 = u32_add(x8, x12)
        x4 = rotl32(x4 ^ x8, 12)
        x0 = u32_add(x0, x4)
        x12 = rotl32(x12 ^ x0, 8)
        x8 = u32_add(x8, x12)
        x4 = rotl32(x4 ^ x8, 7)
        x1 = u32_add(x1, x5)
        x13 = rotl32(x13 ^ x1, 16)
        x9 = u32_add(x9, x13)
        x5 = rotl32(x5 ^ x9, 12)
        x1 = u32_add(x1, x5)
        x13 = rotl32(x13 ^ x1, 8)
        x9 = u32_add(x9, x13)
        x5 = rotl32(x5 ^ x9, 7)
        x2 = u32_add(x2, x6)
        x14 = rotl32(x14 ^ x2, 16)
        x10 = u32_add(x10, x14)
        x6 = rotl32(x6 ^ x10, 12)
        x2 = u32_add(x2, x6)
        x14 = rotl32(x14 ^ x2, 8)
        x10 = u32_add(x10, x14)
        x6 = rotl32(x6 ^ x10, 7)
        x3 = u32_add(x3, x7)
        x15 = rotl32(x15 ^ x3, 16)
        x11 = u32_add(x11, x15)
        x7 = rotl32(x7 ^ x11, 12)
        x3 = u32_add(x3, x7)
        x15 = rotl32(x15 ^ x3, 8)
        x11 = u32_add(x11, x15)
        x7 = rotl32(x7 ^ x11, 7)
        x0 = u32_add(x0, x5)
        x15 = rotl32(x15 ^ x0, 16)
        x10 = u32_add(x10, x15)
        x5 = rotl32(x5 ^ x10, 12)
        x0 = u32_add(x0, x5)
        x15 = rotl32(x15 ^ x0, 8)
        x10 = u32_add(x10, x15)
        x5 = rotl32(x5 ^ x10, 7)
        x1 = u32_add(x1, x6)
        x12 = rotl32(x12 ^ x1, 16)
        x11 = u32_add(x11, x12)
        x6 = rotl32(x6 ^ x11, 12)
        x1 = u32_add(x1, x6)
        x12 = rotl32(x12 ^ x1, 8)
        x11 = u32_add(x11, x12)
        x6 = rotl32(x6 ^ x11, 7)
        x2 = u32_add(x2, x7)
        x13 = rotl32(x13 ^ x2, 16)
        x8 = u32_add(x8, x13)
        x7 = rotl32(x7 ^ x8, 12)
        x2 = u32_add(x2, x7)
        x13 = rotl32(x13 ^ x2, 8)
        x8 = u32_add(x8, x13)
        x7 = rotl32(x7 ^ x8, 7)
        x3 = u32_add(x3, x4)
        x14 = rotl32(x14 ^ x3, 16)
        x9 = u32_add(x9, x14)
        x4 = rotl32(x4 ^ x9, 12)
        x3 = u32_add(x3, x4)
        x14 = rotl32(x14 ^ x3, 8)
        x9 = u32_add(x9, x14)
        x4 = rotl32(x4 ^ x9, 7)
    ks[0] = u32_add(x0, C0)
    ks[1] = u32_add(x1, C1)
    ks[2] = u32_add(x2, C2)
    ks[3] = u32_add(x3, C3)
    ks[4] = u32_add(x4, key[0])
    ks[5] = u32_add(x5, key[1])
    ks[6] = u32_add(x6, key[2])
    ks[7] = u32_add(x7, key[3])
    ks[8] = u32_add(x8, key[4])
    ks[9] = u32_add(x9, key[5])
    ks[10] = u32_add(x10, key[6])
    ks[11] = u32_add(x11, key[7])
    ks[12] = u32_add(x12, counter)
    ks[13] = u32_add(x13, nonce[0])
    ks[14] = u32_add(x14, nonce[1])
    ks[15] = u32_add(x15, nonce[2])


def ks_byte(ks: list[u32], i: int) -> int:
    """Byte i of the keystream block (little-endian words)."""
    return (ks[i // 4] >> (8 * (i % 4))) & 0xFF


def filter(direction: int, length: int, file_offset: int, data: bytearray) -> int:
    if not have_key:
        return -1
    if direction != 0 and direction != 1:
        return -1
    if length < 0 or length > MAX_LEN:
        return -1
    if length == 0:
        return 0
    last = (file_offset + length - 1) // BLOCK_BYTES
    if last > 0xFFFFFFFF:
        return -1
    ks: list[u32] = [0] * 16
    counter = file_offset // BLOCK_BYTES
    p = 0
    left = length
    skip = file_offset % BLOCK_BYTES
    if skip != 0:  # a leading partial block, only if the offset is not block-aligned
        chacha20_block(counter, ks)
        counter += 1
        n = min(BLOCK_BYTES - skip, left)
        for i in range(n):
            data[p + i] = data[p + i] ^ ks_byte(ks, skip + i)
        p += n
        left -= n
    while left >= BLOCK_BYTES:  # whole blocks, a word at a time
        chacha20_block(counter, ks)
        counter += 1
        for i in range(16):
            set_le32(data, p + 4 * i, le32(data, p + 4 * i) ^ ks[i])
        p += BLOCK_BYTES
        left -= BLOCK_BYTES
    if left > 0:  # a trailing partial block
        chacha20_block(counter, ks)
        for i in range(left):
            data[p + i] = data[p + i] ^ ks_byte(ks, i)
    return length
