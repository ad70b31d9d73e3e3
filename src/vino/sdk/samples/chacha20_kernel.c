/*
 * chacha20_kernel.c — fs.filter graft: ChaCha20 (RFC 8439) encryption of one file,
 * the cipher run by the kernel (the graft-callable vino_chacha20, kernel/crypto.py).
 *
 * The same filter as chacha20_filter.c, byte for byte: the same message (44 bytes:
 * key[32], nonce[12]; anything else refused, the previous key staying in force), the
 * same keystream (file byte `off` XORed with byte off % 64 of keystream block
 * off / 64), the same refusals (-1: no key yet, len outside 0..4096, direction
 * neither 0 nor 1, a block counter past 2^32 - 1). What differs is who computes
 * the keystream: the graft decides the key, the nonce, the counter and which bytes,
 * and asks the kernel to XOR them in place, as a kernel module asks the kernel's
 * crypto API. The host checks every pointer and length it is given (a pointer
 * outside this graft's memory aborts it); the key stays in this graft's statics.
 *
 * A leading partial block (an offset that is not a multiple of 64; the host
 * always sends multiples) goes through a 64-byte scratch block: the kernel
 * computes whole keystream blocks from their start.
 */
#include "vino.h"

VINO_BUFFER(VINO_FILTER_BUFFER);

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define MESSAGE_BYTES (KEY_BYTES + NONCE_BYTES)
#define BLOCK_BYTES 64u

/* The key in force, as bytes (the kernel reads them); have_key_ is set only after
 * a whole valid message. */
static uint8_t key_[KEY_BYTES];
static uint8_t nonce_[NONCE_BYTES];
static int have_key_;
static uint8_t scratch_[BLOCK_BYTES];

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    if (len != MESSAGE_BYTES) return -1;
    const uint8_t *m = VINO_BUF_BYTES();
    vino_memcpy(key_, m, KEY_BYTES);
    vino_memcpy(nonce_, m + KEY_BYTES, NONCE_BYTES);
    have_key_ = 1;
    return 0;
}

VINO_EXPORT("vino_filter") int32_t vino_filter(int32_t direction, int32_t len) {
    if (!have_key_) return -1;
    if (direction != VINO_FILTER_WRITE && direction != VINO_FILTER_READ) return -1;
    if (len < 0 || (uint32_t)len > VINO_FILTER_MAX) return -1;
    if (len == 0) return 0;

    vino_filter_buf *b = VINO_BUF(vino_filter_buf);
    uint64_t off = b->file_offset;
    uint64_t first = off / BLOCK_BYTES;
    uint64_t last = (off + (uint64_t)len - 1) / BLOCK_BYTES;
    if (last > 0xffffffffu) return -1;

    uint8_t *p = b->data;
    uint32_t left = (uint32_t)len;
    uint32_t counter = (uint32_t)first;
    uint32_t skip = (uint32_t)(off % BLOCK_BYTES);
    if (skip) {
        uint32_t n = BLOCK_BYTES - skip < left ? BLOCK_BYTES - skip : left;
        vino_memset(scratch_, 0, BLOCK_BYTES);
        vino_memcpy(scratch_ + skip, p, n);
        if (vino_chacha20(key_, nonce_, counter++, scratch_, BLOCK_BYTES) != BLOCK_BYTES)
            return -1;
        vino_memcpy(p, scratch_ + skip, n);
        p += n;
        left -= n;
    }
    if (left && vino_chacha20(key_, nonce_, counter, p, (int32_t)left) != (int32_t)left)
        return -1;
    return len;
}
