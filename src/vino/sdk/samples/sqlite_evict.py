"""sqlite_evict.py -- vm.evict graft for SQLite's buffer pool: keep the B-tree's
interior pages, and do not let a range scan flush everything else (the Python twin
of sqlite_evict.c).

The VFS keeps SQLite's database pages in an address space (vpn = page index) and
tells this graft which pages are interior B-tree pages, and when a range scan runs.

Policy, among the candidates that are not interior pages:
  - normally the least recently used one (smallest last_use);
  - during a scan, the most recently used of the pages used since the scan began
    (last_use above the newest last_use seen at the scan's first eviction): the
    scan's pages are used once, so the one it read last is the least likely to be
    wanted again ("MRU for sequential scans"); until a scan page exists, LRU.
If every candidate is an interior page, the least recently used of all.

Messages (u32 little-endian words; anything malformed is refused with -1 and
changes nothing):
  [1, n, vpn0, ..., vpn(n-1)]  KEEP: the interior pages, sorted, n <= 256
  [2, mode]                    MODE: 0 = normal, 1 = scan
"""

from vino.pygraft import Row, le32, u32

POINT = "vm.evict"
MAX_KEEP = 256
OP_KEEP = 1
OP_MODE = 2

# Invariant: keep[0:n_keep] is sorted ascending, without duplicates.
keep: list[u32] = [0] * MAX_KEEP
n_keep: int = 0
scan_mode: int = 0
scan_floor: int = 0  # during a scan: pages with last_use above this were used by the scan
scan_floor_set: bool = False


def message(msg: bytes) -> int:
    global n_keep, scan_mode, scan_floor_set
    if len(msg) < 8 or len(msg) % 4 != 0:
        return -1
    words = len(msg) // 4
    op = le32(msg, 0)
    if op == OP_MODE:
        mode = le32(msg, 4)
        if words != 2 or mode > 1:
            return -1
        scan_mode = mode
        scan_floor_set = False
        return 0
    if op != OP_KEEP:
        return -1
    n = le32(msg, 4)
    if n > MAX_KEEP or words != 2 + n:
        return -1
    for i in range(1, n):  # validate (sorted, no duplicates) before changing anything
        if le32(msg, 8 + 4 * i) <= le32(msg, 4 + 4 * i):
            return -1
    for i in range(n):
        keep[i] = le32(msg, 8 + 4 * i)
    n_keep = n
    return 0


def kept(vpn: u32) -> bool:
    lo = 0
    hi = n_keep
    while lo < hi:
        mid = (lo + hi) // 2
        if keep[mid] < vpn:
            lo = mid + 1
        else:
            hi = mid
    return lo < n_keep and keep[lo] == vpn


def evict(cand: list[Row]) -> int:
    global scan_floor, scan_floor_set
    n = len(cand)
    if n == 0:
        return -1  # no valid answer: the validator hands the decision to the default
    if scan_mode != 0 and not scan_floor_set:
        newest = 0
        for i in range(n):
            newest = max(newest, cand[i].last_use)
        scan_floor = newest
        scan_floor_set = True
    lru = 0  # oldest candidate of all
    victim = -1  # oldest candidate that is not kept
    scanned = -1  # newest candidate used since the scan began, not kept
    victim_use = 0
    scanned_use = 0
    for i in range(n):
        use = cand[i].last_use
        if use < cand[lru].last_use:
            lru = i
        in_scan = scan_mode != 0 and use > scan_floor
        if victim >= 0 and use >= victim_use and not in_scan:
            continue
        if kept(cand[i].vpn):
            continue
        if victim < 0 or use < victim_use:
            victim = i
            victim_use = use
        if in_scan and (scanned < 0 or use > scanned_use):
            scanned = i
            scanned_use = use
    if scanned >= 0:
        return scanned
    return victim if victim >= 0 else lru
