/*
 * readahead_stride.c — fs.readahead graft: prefetch along a strided pattern.
 *
 * Policy: if the application has set a stride, or the last three accesses are
 * evenly spaced (two equal, non-zero differences), prefetch the next blocks at
 * that stride after `block`: block + s, block + 2s, ... up to max_out of them,
 * stopping at either end of the file. A negative learned stride (a backward
 * scan) prefetches backwards. Anything else prefetches nothing: guessing from
 * a single difference would fill the cache with garbage on random access.
 *
 * Once per window, not after every block: a learned pattern asks when it has
 * just been recognised and then whenever block / |s| is a multiple of max_out,
 * so the window's missing blocks reach the device together (for |s| = 1, as one
 * request) instead of one block (and one seek) at a time.
 *
 * History: `block` is the most recent access. hist[0] may or may not repeat
 * it (both are accepted); the accesses before it follow, most recent first.
 *
 * Message (exactly 4 bytes): u32 LE stride, in blocks. A non-zero stride is
 * used from then on regardless of the history (the application knows its
 * pattern); 0 returns to learning the stride from the history. Any other
 * length is refused (vino_message returns -1) and the setting is unchanged.
 *
 * Every answer satisfies the validator by construction: blocks lie inside the
 * file, count <= max_out, and a non-zero stride never repeats a block.
 */
#include "vino.h"

VINO_BUFFER(VINO_RA_BUFFER);

/* The application's stride, in blocks; 0 = learn from the history. */
static uint32_t explicit_stride_;

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    if (len != 4) return -1;
    explicit_stride_ = vino_load_u32(VINO_BUF_BYTES());
    return 0;
}

/* The stride of the last three accesses if they agree, else 0. *fresh is set when
 * the access before those three does not continue the pattern (it was just found). */
static int64_t learned_stride(const vino_ra_buf *b, uint32_t n_hist, int *fresh) {
    int64_t seq[4];
    uint32_t m = 0;
    seq[m++] = b->block;
    for (uint32_t i = (n_hist > 0 && b->hist[0] == b->block) ? 1 : 0; i < n_hist && m < 4; i++)
        seq[m++] = b->hist[i];
    if (m < 3) return 0;
    int64_t d1 = seq[0] - seq[1];
    int64_t d2 = seq[1] - seq[2];
    if (d1 != d2) return 0;
    *fresh = m < 4 || seq[2] - seq[3] != d1;
    return d1;
}

VINO_EXPORT("vino_readahead") int32_t vino_readahead(void) {
    vino_ra_buf *b = VINO_BUF(vino_ra_buf);
    /* Never trust the host's counts beyond the arrays they index. */
    uint32_t max_out = b->max_out < VINO_RA_MAX_OUT ? b->max_out : VINO_RA_MAX_OUT;
    uint32_t n_hist = b->n_hist < VINO_RA_HIST ? b->n_hist : VINO_RA_HIST;

    int fresh = 0;
    int64_t stride = explicit_stride_ ? (int64_t)explicit_stride_
                                      : learned_stride(b, n_hist, &fresh);
    if (stride == 0 || max_out == 0) return 0;
    if (!explicit_stride_ && !fresh) {
        uint64_t step = (uint64_t)(stride < 0 ? -stride : stride);
        if ((b->block / step) % max_out != 0) return 0;  /* mid-window: already fetched */
    }

    int64_t next = b->block;
    int64_t end = b->file_blocks;
    uint32_t count = 0;
    while (count < max_out) {
        next += stride;
        if (next < 0 || next >= end) break;
        b->out[count++] = (uint32_t)next;
    }
    return (int32_t)count;
}
