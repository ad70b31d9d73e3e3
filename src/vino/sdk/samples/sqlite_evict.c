/*
 * sqlite_evict.c — vm.evict graft for SQLite's buffer pool: keep the B-tree's
 * interior pages, and do not let a range scan flush everything else.
 *
 * The VFS keeps SQLite's database pages in an address space (vpn = page index)
 * and tells this graft two things:
 *   - which pages are interior B-tree pages (every lookup passes through them);
 *   - when a range scan runs (the application knows: it is about to scan).
 *
 * Policy, among the candidates that are not interior pages:
 *   - normally the least recently used one (smallest last_use);
 *   - during a scan, the most recently used of the pages used since the scan
 *     began: the scan's pages are used once, so the page it read last is the one
 *     least likely to be wanted again, and the pages lookups keep using survive
 *     the scan (the "MRU for sequential scans" rule of database buffer
 *     managers). "Since the scan began" is last_use above the newest last_use
 *     seen at the scan's first eviction (the graft cannot read the cache's
 *     clock, only the candidates); until a scan page exists, LRU as usual.
 * If every candidate is an interior page, the least recently used of all.
 *
 * Messages (u32 little-endian words; anything malformed is refused with -1 and
 * changes nothing):
 *   [1, n, vpn0, ..., vpn(n-1)]  KEEP: the interior pages, n <= 256; replaces the set
 *   [2, mode]                    MODE: 0 = normal, 1 = scan
 *
 * The set is kept sorted so each candidate costs a binary search. Every answer
 * is an index below n by construction.
 */
#include "vino.h"

VINO_BUFFER(VINO_EVICT_BUFFER);

#define MAX_KEEP 256u
#define OP_KEEP 1u
#define OP_MODE 2u

/* Invariant: keep_[0..n_keep_) is sorted ascending, without duplicates. */
static uint32_t keep_[MAX_KEEP];
static uint32_t n_keep_;
static uint32_t scan_mode_;
/* During a scan: pages with last_use above this were used by the scan. */
static uint64_t scan_floor_;
static int scan_floor_set_;

VINO_EXPORT("vino_message") int32_t vino_message(int32_t len) {
    const uint8_t *m = VINO_BUF_BYTES();
    if (len < 8 || len % 4 != 0) return -1;
    uint32_t words = (uint32_t)len / 4;
    uint32_t op = vino_load_u32(m);
    if (op == OP_MODE) {
        uint32_t mode = vino_load_u32(m + 4);
        if (words != 2 || mode > 1) return -1;
        scan_mode_ = mode;
        scan_floor_set_ = 0;
        return 0;
    }
    if (op != OP_KEEP) return -1;
    uint32_t n = vino_load_u32(m + 4);
    if (n > MAX_KEEP || words != 2 + n) return -1;
    /* Validate (sorted, no duplicates) before changing anything. */
    for (uint32_t i = 1; i < n; i++)
        if (vino_load_u32(m + 8 + 4 * i) <= vino_load_u32(m + 4 + 4 * i)) return -1;
    for (uint32_t i = 0; i < n; i++) keep_[i] = vino_load_u32(m + 8 + 4 * i);
    n_keep_ = n;
    return 0;
}

static int kept(uint32_t vpn) {
    uint32_t lo = 0, hi = n_keep_;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (keep_[mid] < vpn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n_keep_ && keep_[lo] == vpn;
}

VINO_EXPORT("vino_evict") int32_t vino_evict(void) {
    const vino_evict_buf *b = VINO_BUF(vino_evict_buf);
    uint32_t n = b->n < VINO_EVICT_MAX ? b->n : VINO_EVICT_MAX;
    if (n == 0) return -1; /* no valid answer: let the validator call the default */

    if (scan_mode_ && !scan_floor_set_) {
        uint64_t newest = 0;
        for (uint32_t i = 0; i < n; i++)
            if (b->cand[i].last_use > newest) newest = b->cand[i].last_use;
        scan_floor_ = newest;
        scan_floor_set_ = 1;
    }

    uint32_t lru = 0;       /* oldest candidate of all */
    int32_t victim = -1;    /* oldest candidate that is not kept */
    int32_t scanned = -1;   /* newest candidate used since the scan began, not kept */
    uint64_t victim_use = 0, scanned_use = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t use = b->cand[i].last_use;
        if (use < b->cand[lru].last_use) lru = i;
        if ((victim >= 0 && use >= victim_use) && !(scan_mode_ && use > scan_floor_)) continue;
        if (kept(b->cand[i].vpn)) continue;
        if (victim < 0 || use < victim_use) {
            victim = (int32_t)i;
            victim_use = use;
        }
        if (scan_mode_ && use > scan_floor_ && (scanned < 0 || use > scanned_use)) {
            scanned = (int32_t)i;
            scanned_use = use;
        }
    }
    if (scanned >= 0) return scanned;
    return victim >= 0 ? victim : (int32_t)lru;
}
