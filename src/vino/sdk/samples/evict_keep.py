"""evict_keep.py -- vm.evict graft: never evict the application's important pages
while there is anything else to evict (the Python twin of evict_keep.c).

Policy: the victim is the least recently used candidate (smallest last_use; the
lowest index on a tie) whose vpn is not important. If every candidate is
important, the least recently used candidate of all.

Batch: the answer also names the next victims, up to len(more) (31) of them:
the following least recently used candidates that are not important, oldest first.
The kernel takes them for the next evictions of the address space (skipping any
page touched since), so one call serves up to 32 evictions. Important
pages are never in a batch.

Message: u32 LE count, then count u32 LE vpns (count <= 256; exactly 4 + 4 * count
bytes). It replaces the whole important set; count 0 empties it. A malformed
message is refused (-1) and the previous set stays in force.

The set is kept sorted, so each candidate costs a binary search, and only
candidates older than the batch's youngest so far are looked up at all.
"""

from vino.pygraft import Row, le32, u32

POINT = "vm.evict"
MAX_IMPORTANT = 256
MAX_BATCH = 32  # the victim and at most 31 more (len(more))
MORE_UNIT = 65536  # the answer: victim + MORE_UNIT * (further victims named in more)

# Invariant: important[0:n_important] is sorted ascending.
important: list[u32] = [0] * MAX_IMPORTANT
n_important: int = 0


def message(msg: bytes) -> int:
    global n_important
    if len(msg) < 4:
        return -1
    count = le32(msg, 0)
    if count > MAX_IMPORTANT or len(msg) != 4 + 4 * count:
        return -1
    for i in range(count):  # insertion sort: at most 256 entries, once per message
        v = le32(msg, 4 + 4 * i)
        j = i
        while j > 0 and important[j - 1] > v:
            important[j] = important[j - 1]
            j -= 1
        important[j] = v
    n_important = count
    return 0


def is_important(vpn: u32) -> bool:
    lo = 0
    hi = n_important
    while lo < hi:
        mid = (lo + hi) // 2
        if important[mid] < vpn:
            lo = mid + 1
        else:
            hi = mid
    return lo < n_important and important[lo] == vpn


def evict(cand: list[Row], more: list[u32]) -> int:
    n = len(cand)
    if n == 0:
        return -1  # no valid answer: the validator hands the decision to the default
    want = 1 + min(len(more), MAX_BATCH - 1)
    # Invariant: batch[0:k] are the oldest unimportant candidates seen so far, oldest
    # first (the lower index first among equals).
    batch = [0] * MAX_BATCH
    batch_use = [0] * MAX_BATCH
    k = 0
    lru = 0  # oldest candidate of all
    for i in range(n):
        use = cand[i].last_use
        if use < cand[lru].last_use:
            lru = i
        if k == want and use >= batch_use[k - 1]:
            continue
        if is_important(cand[i].vpn):
            continue
        j = want - 1
        if k < want:
            j = k
            k += 1
        while j > 0 and batch_use[j - 1] > use:
            batch[j] = batch[j - 1]
            batch_use[j] = batch_use[j - 1]
            j -= 1
        batch[j] = i
        batch_use[j] = use
    if k == 0:
        return lru
    for j in range(1, k):
        more[j - 1] = batch[j]
    return batch[0] + MORE_UNIT * (k - 1)
