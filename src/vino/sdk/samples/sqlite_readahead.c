/*
 * sqlite_readahead.c — fs.readahead graft: follow SQLite's B-tree leaf order.
 *
 * SQLite walks a range scan leaf by leaf in key order; the leaves of a real
 * database are seldom adjacent in the file (pages of the table and of its
 * indexes are allocated as they split, interleaved), so sequential read-ahead
 * keeps losing the pattern. The application -- the VFS, which sees every page
 * SQLite reads -- parses the B-tree's interior pages and tells this graft each
 * leaf's successor in key order. The graft then prefetches the next leaves of a
 * scan, wherever they lie; the kernel reads each contiguous run of them as one
 * device request.
 *
 * Messages (u32 little-endian words; anything malformed is refused with -1 and
 * changes nothing):
 *   [0]                          RESET: forget every successor
 *   [1, n, b0, b1, ..., b(n-1)]  CHAIN: 2 <= n <= 62 blocks; b(i+1) follows b(i)
 *                                (blocks >= 4096 are ignored: nothing is stored
 *                                for them, they are never prefetched)
 *   [2, mode]                    MODE: 0 = detect (default), 1 = scan
 *   [3, gap]                     GAP: bridge at most `gap` blocks (<= 32)
 *
 * Policy, after block b was read:
 *   - b has no known successor: run the built-in sequential policy (default());
 *     the graft extends the default instead of replacing it.
 *   - detect mode: a scan is recognised when the block read before b was b's
 *     predecessor in the chain. Then, once per window -- when the scan has just
 *     been recognised, and when b is the last leaf of the previous window -- the
 *     next leaves along the chain are asked for, so a window's blocks reach the
 *     device together. A lookup that lands on a random leaf prefetches nothing.
 *   - scan mode (the application announced a range scan): the first leaf read
 *     already opens a window.
 *
 * Gaps: the leaves ahead are put into the answer in chain order, and when the
 * next leaf lies just after the previous one -- at most `gap` blocks between
 * them (default 3) -- the blocks in between are asked for too, so the leaves and
 * the few foreign pages between them (pages of an index, typically) form one run
 * and one device request: moving a few more blocks costs far less than another
 * seek. The answer stops before it would exceed max_out blocks.
 *
 * Every answer satisfies the validator by construction: blocks < file_blocks,
 * count <= max_out, no duplicates; the walk is bounded, so a cycle in stale
 * hints cannot make it spin.
 */
#include "vino.h"

VINO_BUFFER(VINO_RA_BUFFER);

#define MAX_BLOCKS 4096u   /* successors are kept for blocks below this */
#define CHAIN_MAX 62u      /* blocks in one CHAIN message (fills the 256-byte buffer) */
#define OP_RESET 0u
#define OP_CHAIN 1u
#define OP_MODE 2u
#define OP_GAP 3u
#define GAP_DEFAULT 3u
#define GAP_MAX 32u
#define NO_BLOCK 0xffffffffu

/* next_[b] = successor of block b, plus one; 0 = unknown. */
static uint32_t next_[MAX_BLOCKS];
static uint32_t scan_mode_;
static uint32_t gap_ = GAP_DEFAULT;
/* The last leaf of the window asked for most recently (NO_BLOCK: none). */
static uint32_t window_end_ = NO_BLOCK;

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    const uint8_t *m = VINO_BUF_BYTES();
    if (len < 4 || len % 4 != 0) return -1;
    uint32_t words = (uint32_t)len / 4;
    uint32_t op = vino_load_u32(m);
    if (op == OP_RESET) {
        if (words != 1) return -1;
        vino_memset(next_, 0, sizeof next_);
        window_end_ = NO_BLOCK;
        return 0;
    }
    if (op == OP_MODE || op == OP_GAP) {
        if (words != 2) return -1;
        uint32_t v = vino_load_u32(m + 4);
        if (op == OP_MODE) {
            if (v > 1) return -1;
            scan_mode_ = v;
        } else {
            if (v > GAP_MAX) return -1;
            gap_ = v;
        }
        return 0;
    }
    if (op != OP_CHAIN || words < 2) return -1;
    uint32_t n = vino_load_u32(m + 4);
    if (n < 2 || n > CHAIN_MAX || words != 2 + n) return -1;
    for (uint32_t i = 0; i + 1 < n; i++) {
        uint32_t b = vino_load_u32(m + 8 + 4 * i);
        uint32_t after = vino_load_u32(m + 12 + 4 * i);
        if (b < MAX_BLOCKS && after < MAX_BLOCKS && after != b) next_[b] = after + 1;
    }
    return 0;
}

static uint32_t successor(uint32_t b) {
    return b < MAX_BLOCKS && next_[b] ? next_[b] - 1 : NO_BLOCK;
}

static int contains(const uint32_t *out, uint32_t count, uint32_t x) {
    for (uint32_t i = 0; i < count; i++)
        if (out[i] == x) return 1;
    return 0;
}

VINO_EXPORT("vino_readahead") int32_t vino_readahead(void) {
    vino_ra_buf *b = VINO_BUF(vino_ra_buf);
    /* Never trust the host's counts beyond the arrays they index. */
    uint32_t max_out = b->max_out < VINO_RA_MAX_OUT ? b->max_out : VINO_RA_MAX_OUT;
    uint32_t n_hist = b->n_hist < VINO_RA_HIST ? b->n_hist : VINO_RA_HIST;
    uint32_t block = b->block;

    if (successor(block) == NO_BLOCK) return vino_default();

    /* hist[0] is normally `block` itself; the access before it follows. */
    uint32_t first = (n_hist > 0 && b->hist[0] == block) ? 1 : 0;
    uint32_t prev = first < n_hist ? b->hist[first] : NO_BLOCK;
    int following = prev != NO_BLOCK && successor(prev) == block;
    if (!following && !scan_mode_) {
        window_end_ = NO_BLOCK;
        return 0;
    }
    int fresh = !following || window_end_ == NO_BLOCK;
    if (!fresh && block != window_end_) return 0; /* mid-window: already asked for */

    uint32_t count = 0;
    uint32_t cur = block;
    uint32_t run_end = block; /* last block of the run the next leaf may extend */
    uint32_t last_leaf = NO_BLOCK;
    for (uint32_t steps = 0; steps < 4 * VINO_RA_MAX_OUT; steps++) {
        cur = successor(cur);
        if (cur == NO_BLOCK || cur >= b->file_blocks || cur == block) break;
        if (contains(b->out, count, cur)) { /* already asked for, inside a bridged gap */
            last_leaf = cur;
            continue;
        }
        uint32_t from = cur > run_end && cur - run_end - 1 <= gap_ ? run_end + 1 : cur;
        uint32_t need = 0;
        for (uint32_t x = from; x <= cur; x++) need += x != block && !contains(b->out, count, x);
        if (count + need > max_out) break;
        for (uint32_t x = from; x <= cur; x++)
            if (x != block && !contains(b->out, count, x)) b->out[count++] = x;
        run_end = cur;
        last_leaf = cur;
    }
    window_end_ = last_leaf;
    return (int32_t)count;
}
