/*
 * evict_keep.c — vm.evict graft: never evict the application's important pages
 * while there is anything else to evict.
 *
 * Policy: the victim is the least recently used candidate (smallest last_use;
 * the lowest index on a tie) whose vpn is not important. If every candidate is
 * important, the least recently used candidate of all.
 *
 * Message: u32 LE count, then count u32 LE vpns (count <= 256; the message is
 * exactly 4 + 4 * count bytes). It replaces the whole important set; count 0
 * empties it. A malformed message is refused (vino_message returns -1) and
 * the previous set stays in force.
 *
 * The set is kept sorted so that each candidate costs a binary search, and
 * only candidates older than the best victim so far are looked up at all.
 */
#include "vino.h"

VINO_BUFFER(VINO_EVICT_BUFFER);

#define MAX_IMPORTANT 256u

/* Invariant: important_[0..n_important_) is sorted ascending. */
static uint32_t important_[MAX_IMPORTANT];
static uint32_t n_important_;

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    if (len < 4) return -1;
    const uint8_t *m = VINO_BUF_BYTES();
    uint32_t count = vino_load_u32(m);
    if (count > MAX_IMPORTANT || (uint32_t)len != 4 + 4 * count) return -1;
    /* Insertion sort: at most 256 entries, once per message. */
    for (uint32_t i = 0; i < count; i++) {
        uint32_t v = vino_load_u32(m + 4 + 4 * i);
        uint32_t j = i;
        for (; j > 0 && important_[j - 1] > v; j--) important_[j] = important_[j - 1];
        important_[j] = v;
    }
    n_important_ = count;
    return 0;
}

static int is_important(uint32_t vpn) {
    uint32_t lo = 0, hi = n_important_;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (important_[mid] < vpn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n_important_ && important_[lo] == vpn;
}

VINO_EXPORT("vino_evict") int32_t vino_evict(void) {
    const vino_evict_buf *b = VINO_BUF(vino_evict_buf);
    uint32_t n = b->n < VINO_EVICT_MAX ? b->n : VINO_EVICT_MAX;
    if (n == 0) return -1; /* no valid answer: let the validator call the default */

    uint32_t lru = 0;          /* oldest candidate of all */
    int32_t victim = -1;       /* oldest candidate that is not important */
    uint64_t victim_use = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t use = b->cand[i].last_use;
        if (use < b->cand[lru].last_use) lru = i;
        if ((victim < 0 || use < victim_use) && !is_important(b->cand[i].vpn)) {
            victim = (int32_t)i;
            victim_use = use;
        }
    }
    return victim >= 0 ? victim : (int32_t)lru;
}
