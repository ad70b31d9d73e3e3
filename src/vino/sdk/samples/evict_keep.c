/*
 * evict_keep.c — vm.evict graft: never evict the application's important pages
 * while there is anything else to evict.
 *
 * Policy: the victim is the least recently used candidate (smallest last_use;
 * the lowest index on a tie) whose vpn is not important. If every candidate is
 * important, the least recently used candidate of all.
 *
 * Batch: the answer also names the next victims, up to VINO_EVICT_MORE_MAX (31): the
 * following least recently used candidates that are not important, oldest
 * first. The kernel takes them for the next evictions of the address space
 * (skipping any page touched since), so one call serves up to 32
 * evictions. Important pages are never in a batch: when only important pages
 * are left, the kernel asks again and gets the least recently used of all.
 *
 * Message: u32 LE count, then count u32 LE vpns (count <= 256; the message is
 * exactly 4 + 4 * count bytes). It replaces the whole important set; count 0
 * empties it. A malformed message is refused (vino_message returns -1) and
 * the previous set stays in force.
 *
 * The set is kept sorted so that each candidate costs a binary search, and
 * only candidates older than the batch's youngest so far are looked up at all.
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
    vino_evict_buf *b = VINO_BUF(vino_evict_buf);
    uint32_t n = b->n < VINO_EVICT_MAX ? b->n : VINO_EVICT_MAX;
    if (n == 0) return -1; /* no valid answer: let the validator call the default */
    const uint32_t want = 1 + VINO_EVICT_MORE_MAX;

    /* Invariant: batch[0..k) are the oldest unimportant candidates seen so far,
     * oldest first (the lower index first among equals). */
    uint32_t batch[1 + VINO_EVICT_MORE_MAX];
    uint64_t batch_use[1 + VINO_EVICT_MORE_MAX];
    uint32_t k = 0;
    uint32_t lru = 0; /* oldest candidate of all */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t use = b->cand[i].last_use;
        if (use < b->cand[lru].last_use) lru = i;
        if (k == want && use >= batch_use[k - 1]) continue;
        if (is_important(b->cand[i].vpn)) continue;
        uint32_t j = k < want ? k++ : want - 1;
        for (; j > 0 && batch_use[j - 1] > use; j--) {
            batch[j] = batch[j - 1];
            batch_use[j] = batch_use[j - 1];
        }
        batch[j] = i;
        batch_use[j] = use;
    }
    if (k == 0) return (int32_t)lru;
    for (uint32_t j = 1; j < k; j++) b->more[j - 1] = batch[j];
    return VINO_EVICT_ANSWER(batch[0], k - 1);
}
