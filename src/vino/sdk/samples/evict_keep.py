"""evict_keep.py -- vm.evict graft: never evict the application's important pages
while there is anything else to evict (the Python twin of evict_keep.c).

Policy: the victim is the least recently used candidate (smallest last_use; the
lowest index on a tie) whose vpn is not important. If every candidate is
important, the least recently used candidate of all.

Message: u32 LE count, then count u32 LE vpns (count <= 256; exactly 4 + 4 * count
bytes). It replaces the whole important set; count 0 empties it. A malformed
message is refused (-1) and the previous set stays in force.

The set is kept sorted, so each candidate costs a binary search.
"""

from vino.pygraft import Row, le32, u32

POINT = "vm.evict"
MAX_IMPORTANT = 256

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


def evict(cand: list[Row]) -> int:
    n = len(cand)
    if n == 0:
        return -1  # no valid answer: the validator hands the decision to the default
    lru = 0  # oldest candidate of all
    victim = -1  # oldest candidate that is not important
    victim_use = 0
    for i in range(n):
        use = cand[i].last_use
        if use < cand[lru].last_use:
            lru = i
        if (victim < 0 or use < victim_use) and not is_important(cand[i].vpn):
            victim = i
            victim_use = use
    return victim if victim >= 0 else lru
