/*
 * chacha20_filter.c — fs.filter graft: ChaCha20 (RFC 8439) encryption of one file,
 * four 64-byte blocks at once with WebAssembly SIMD.
 *
 * Message (exactly 44 bytes, sent by the installing principal):
 *     offset 0   key[32]     the 256-bit key, as bytes (RFC 8439 §2.3)
 *     offset 32  nonce[12]   the 96-bit nonce, as bytes
 * Anything else is refused (vino_message returns -1) and the previous key, if
 * any, stays in force. A new message replaces the key for later calls.
 *
 * Keystream: the whole file is plaintext XOR ChaCha20(key, nonce, initial
 * counter 0). File byte `off` is XORed with byte off % 64 of keystream block
 * off / 64, so every 64-byte block can be processed on its own and seeks cost
 * nothing. The host passes file_offset as a multiple of 64; other offsets work
 * too. Encryption and decryption are the same XOR: `direction` is only checked
 * to be 0 (write) or 1 (read).
 *
 * How: each run of four whole blocks is computed at once (chacha20_x4): state
 * word i of the four blocks sits in the four 32-bit lanes of one v128, the
 * counters in lane order, so the rounds are the scalar ones on vectors; the
 * 16 vectors are then transposed back into four blocks and XORed into the data
 * 16 bytes at a time. A leading partial block, the last whole blocks (fewer
 * than four) and a trailing partial block go through chacha20_block, the same
 * code as chacha20_filter_scalar.c, the reference this file must equal byte
 * for byte (tests/sdk/test_sdk_chacha20.py checks both against `cryptography`).
 * fs.filter is a point that allows SIMD (docs/ABI.md); the vector functions are
 * marked target("simd128"), so the SDK's build flags need nothing more.
 *
 * Refusals: vino_filter returns -1 — the host aborts the call, records the
 * abort and runs the default (identity) — when
 *   - no key has been received yet (passing data through unchanged would look
 *     like success while leaking plaintext; an abort at least makes it visible;
 *     send the key before the first write),
 *   - len is outside 0..4096 or direction is neither 0 nor 1,
 *   - the block counter would pass 2^32 - 1 (files beyond 256 GiB): RFC 8439's
 *     counter is 32 bits and wrapping would reuse keystream.
 *
 * No imports.
 */
#include "vino.h"
#include <wasm_simd128.h>

VINO_BUFFER(VINO_FILTER_BUFFER);

#define KEY_BYTES 32
#define NONCE_BYTES 12
#define MESSAGE_BYTES (KEY_BYTES + NONCE_BYTES)
#define BLOCK_BYTES 64u
#define LANES 4u /* blocks per chacha20_x4 */

/* The key in force; have_key_ is set only after a whole valid message. */
static uint32_t key_[8];
static uint32_t nonce_[3];
static int have_key_;

#define ROTL(v, n) (((v) << (n)) | ((v) >> (32 - (n))))
#define QR(a, b, c, d)                      \
    do {                                    \
        a += b; d ^= a; d = ROTL(d, 16);    \
        c += d; b ^= c; b = ROTL(b, 12);    \
        a += b; d ^= a; d = ROTL(d, 8);     \
        c += d; b ^= c; b = ROTL(b, 7);     \
    } while (0)

/* One keystream block (RFC 8439 §2.3) for `counter`, as 16 LE words. Locals
 * rather than an array so the 20 rounds stay in Wasm locals. */
static void chacha20_block(uint32_t counter, uint32_t out[16]) {
    const uint32_t c0 = 0x61707865u, c1 = 0x3320646eu, c2 = 0x79622d32u, c3 = 0x6b206574u;
    uint32_t x0 = c0, x1 = c1, x2 = c2, x3 = c3;
    uint32_t x4 = key_[0], x5 = key_[1], x6 = key_[2], x7 = key_[3];
    uint32_t x8 = key_[4], x9 = key_[5], x10 = key_[6], x11 = key_[7];
    uint32_t x12 = counter, x13 = nonce_[0], x14 = nonce_[1], x15 = nonce_[2];
    for (int i = 0; i < 10; i++) {
        QR(x0, x4, x8, x12);
        QR(x1, x5, x9, x13);
        QR(x2, x6, x10, x14);
        QR(x3, x7, x11, x15);
        QR(x0, x5, x10, x15);
        QR(x1, x6, x11, x12);
        QR(x2, x7, x8, x13);
        QR(x3, x4, x9, x14);
    }
    out[0] = x0 + c0;         out[1] = x1 + c1;         out[2] = x2 + c2;
    out[3] = x3 + c3;         out[4] = x4 + key_[0];    out[5] = x5 + key_[1];
    out[6] = x6 + key_[2];    out[7] = x7 + key_[3];    out[8] = x8 + key_[4];
    out[9] = x9 + key_[5];    out[10] = x10 + key_[6];  out[11] = x11 + key_[7];
    out[12] = x12 + counter;  out[13] = x13 + nonce_[0];
    out[14] = x14 + nonce_[1]; out[15] = x15 + nonce_[2];
}

/* The quarter round on four blocks at once. Rotations by 16 and 8 move whole
 * bytes, so they are byte shuffles; 12 and 7 are two shifts and an or. */
#define VROTL(v, n) wasm_v128_or(wasm_i32x4_shl((v), (n)), wasm_u32x4_shr((v), 32 - (n)))
#define VROT16(v) wasm_i8x16_shuffle((v), (v), 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13)
#define VROT8(v) wasm_i8x16_shuffle((v), (v), 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14)
#define VQR(a, b, c, d)                                                       \
    do {                                                                      \
        a = wasm_i32x4_add(a, b); d = wasm_v128_xor(d, a); d = VROT16(d);    \
        c = wasm_i32x4_add(c, d); b = wasm_v128_xor(b, c); b = VROTL(b, 12); \
        a = wasm_i32x4_add(a, b); d = wasm_v128_xor(d, a); d = VROT8(d);     \
        c = wasm_i32x4_add(c, d); b = wasm_v128_xor(b, c); b = VROTL(b, 7);  \
    } while (0)

/* Words 4g..4g+3 of the four blocks (lane j of a, b, c, d is block j's) transposed
 * into block order and XORed into the data at p + 16 * g, one 16-byte row per block. */
__attribute__((target("simd128")))
static void xor_rows(uint8_t *p, v128_t a, v128_t b, v128_t c, v128_t d) {
    v128_t ab_lo = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5);  /* a0 b0 a1 b1 */
    v128_t cd_lo = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5);  /* c0 d0 c1 d1 */
    v128_t ab_hi = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);  /* a2 b2 a3 b3 */
    v128_t cd_hi = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);  /* c2 d2 c3 d3 */
    v128_t rows[LANES] = {
        wasm_i64x2_shuffle(ab_lo, cd_lo, 0, 2),  /* block 0: a0 b0 c0 d0 */
        wasm_i64x2_shuffle(ab_lo, cd_lo, 1, 3),  /* block 1 */
        wasm_i64x2_shuffle(ab_hi, cd_hi, 0, 2),  /* block 2 */
        wasm_i64x2_shuffle(ab_hi, cd_hi, 1, 3),  /* block 3 */
    };
    for (unsigned j = 0; j < LANES; j++) {
        uint8_t *q = p + j * BLOCK_BYTES;
        wasm_v128_store(q, wasm_v128_xor(wasm_v128_load(q), rows[j]));
    }
}

/* XOR the four whole blocks at p with keystream blocks counter .. counter + 3
 * (the caller checked that counter + 3 does not pass 2^32 - 1). */
__attribute__((target("simd128")))
static void chacha20_x4(uint32_t counter, uint8_t *p) {
    const v128_t s0 = wasm_i32x4_splat(0x61707865u), s1 = wasm_i32x4_splat(0x3320646eu);
    const v128_t s2 = wasm_i32x4_splat(0x79622d32u), s3 = wasm_i32x4_splat(0x6b206574u);
    const v128_t k0 = wasm_i32x4_splat(key_[0]), k1 = wasm_i32x4_splat(key_[1]);
    const v128_t k2 = wasm_i32x4_splat(key_[2]), k3 = wasm_i32x4_splat(key_[3]);
    const v128_t k4 = wasm_i32x4_splat(key_[4]), k5 = wasm_i32x4_splat(key_[5]);
    const v128_t k6 = wasm_i32x4_splat(key_[6]), k7 = wasm_i32x4_splat(key_[7]);
    const v128_t ctr = wasm_i32x4_add(wasm_i32x4_splat(counter), wasm_i32x4_make(0, 1, 2, 3));
    const v128_t n0 = wasm_i32x4_splat(nonce_[0]), n1 = wasm_i32x4_splat(nonce_[1]);
    const v128_t n2 = wasm_i32x4_splat(nonce_[2]);
    v128_t x0 = s0, x1 = s1, x2 = s2, x3 = s3, x4 = k0, x5 = k1, x6 = k2, x7 = k3;
    v128_t x8 = k4, x9 = k5, x10 = k6, x11 = k7, x12 = ctr, x13 = n0, x14 = n1, x15 = n2;
    for (int i = 0; i < 10; i++) {
        VQR(x0, x4, x8, x12);
        VQR(x1, x5, x9, x13);
        VQR(x2, x6, x10, x14);
        VQR(x3, x7, x11, x15);
        VQR(x0, x5, x10, x15);
        VQR(x1, x6, x11, x12);
        VQR(x2, x7, x8, x13);
        VQR(x3, x4, x9, x14);
    }
    xor_rows(p, wasm_i32x4_add(x0, s0), wasm_i32x4_add(x1, s1), wasm_i32x4_add(x2, s2),
             wasm_i32x4_add(x3, s3));
    xor_rows(p + 16, wasm_i32x4_add(x4, k0), wasm_i32x4_add(x5, k1), wasm_i32x4_add(x6, k2),
             wasm_i32x4_add(x7, k3));
    xor_rows(p + 32, wasm_i32x4_add(x8, k4), wasm_i32x4_add(x9, k5), wasm_i32x4_add(x10, k6),
             wasm_i32x4_add(x11, k7));
    xor_rows(p + 48, wasm_i32x4_add(x12, ctr), wasm_i32x4_add(x13, n0),
             wasm_i32x4_add(x14, n1), wasm_i32x4_add(x15, n2));
}

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    if (len != MESSAGE_BYTES) return -1;
    const uint8_t *m = VINO_BUF_BYTES();
    for (int i = 0; i < 8; i++) key_[i] = vino_load_u32(m + 4 * i);
    for (int i = 0; i < 3; i++) nonce_[i] = vino_load_u32(m + KEY_BYTES + 4 * i);
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
    uint32_t ks[16];

    /* A leading partial block, only if the offset is not block-aligned. */
    uint32_t skip = (uint32_t)(off % BLOCK_BYTES);
    if (skip) {
        chacha20_block(counter++, ks);
        const uint8_t *k = (const uint8_t *)ks;
        uint32_t n = BLOCK_BYTES - skip < left ? BLOCK_BYTES - skip : left;
        for (uint32_t i = 0; i < n; i++) p[i] ^= k[skip + i];
        p += n;
        left -= n;
    }
    /* Whole blocks, four at a time (counter + 3 <= last: checked above). */
    while (left >= LANES * BLOCK_BYTES) {
        chacha20_x4(counter, p);
        counter += LANES;
        p += LANES * BLOCK_BYTES;
        left -= LANES * BLOCK_BYTES;
    }
    /* The remaining whole blocks, a word at a time. */
    while (left >= BLOCK_BYTES) {
        chacha20_block(counter++, ks);
        for (int i = 0; i < 16; i++) vino_store_u32(p + 4 * i, vino_load_u32(p + 4 * i) ^ ks[i]);
        p += BLOCK_BYTES;
        left -= BLOCK_BYTES;
    }
    /* A trailing partial block. */
    if (left) {
        chacha20_block(counter, ks);
        const uint8_t *k = (const uint8_t *)ks;
        for (uint32_t i = 0; i < left; i++) p[i] ^= k[i];
    }
    return len;
}
