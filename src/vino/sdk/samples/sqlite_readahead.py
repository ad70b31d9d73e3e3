"""sqlite_readahead.py -- fs.readahead graft: follow SQLite's B-tree leaf order (the
Python twin of sqlite_readahead.c).

SQLite walks a range scan leaf by leaf in key order; the leaves of a real database
are seldom adjacent in the file, so sequential read-ahead keeps losing the
pattern. The VFS parses the B-tree's interior pages and tells this graft each
leaf's successor in key order; the graft then prefetches the next leaves of a
scan, wherever they lie.

Messages (u32 little-endian words; anything malformed is refused with -1 and
changes nothing):
  [0]                          RESET: forget every successor
  [1, n, b0, b1, ..., b(n-1)]  CHAIN: 2 <= n <= 62 blocks; b(i+1) follows b(i)
                               (blocks >= 4096 are ignored)
  [2, mode]                    MODE: 0 = detect (default), 1 = scan
  [3, gap]                     GAP: bridge at most `gap` blocks (<= 32)

Policy, after block b was read:
  - b has no known successor: the built-in sequential policy (default()) -- the
    graft extends the default instead of replacing it;
  - detect mode: a scan is recognised when the block read before b was b's
    predecessor in the chain; then, once per window, the next leaves along the
    chain are asked for. A lookup that lands on a random leaf prefetches nothing;
  - scan mode: the first leaf read already opens a window.
When the next leaf lies at most `gap` blocks after the previous one, the blocks
in between are asked for too, so they form one run and one device request.
Every answer satisfies the validator by construction; the walk is bounded.
"""

from vino.pygraft import default, le32, u32

POINT = "fs.readahead"
MAX_BLOCKS = 4096  # successors are kept for blocks below this
CHAIN_MAX = 62  # blocks in one CHAIN message (fills the 256-byte buffer)
OP_RESET = 0
OP_CHAIN = 1
OP_MODE = 2
OP_GAP = 3
GAP_DEFAULT = 3
GAP_MAX = 32
NO_BLOCK = 0xFFFFFFFF
RA_MAX_OUT = 32

after_plus_one: list[u32] = [0] * MAX_BLOCKS  # successor of block b, plus one; 0 = unknown
scan_mode: int = 0
gap: int = GAP_DEFAULT
window_end: int = NO_BLOCK  # the last leaf of the window asked for most recently


def message(msg: bytes) -> int:
    global scan_mode, gap, window_end
    if len(msg) < 4 or len(msg) % 4 != 0:
        return -1
    words = len(msg) // 4
    op = le32(msg, 0)
    if op == OP_RESET:
        if words != 1:
            return -1
        for i in range(MAX_BLOCKS):
            after_plus_one[i] = 0
        window_end = NO_BLOCK
        return 0
    if op == OP_MODE or op == OP_GAP:
        if words != 2:
            return -1
        v = le32(msg, 4)
        if op == OP_MODE:
            if v > 1:
                return -1
            scan_mode = v
        else:
            if v > GAP_MAX:
                return -1
            gap = v
        return 0
    if op != OP_CHAIN or words < 2:
        return -1
    n = le32(msg, 4)
    if n < 2 or n > CHAIN_MAX or words != 2 + n:
        return -1
    for i in range(n - 1):
        b = le32(msg, 8 + 4 * i)
        nxt = le32(msg, 12 + 4 * i)
        if b < MAX_BLOCKS and nxt < MAX_BLOCKS and nxt != b:
            after_plus_one[b] = nxt + 1
    return 0


def successor(b: int) -> int:
    if 0 <= b < MAX_BLOCKS and after_plus_one[b] != 0:
        return after_plus_one[b] - 1
    return NO_BLOCK


def contains(out: list[u32], count: int, x: int) -> bool:
    for i in range(count):
        if out[i] == x:
            return True
    return False


def readahead(file_blocks: int, block: int, hist: list[u32], out: list[u32]) -> int:
    global window_end
    max_out = len(out)
    if successor(block) == NO_BLOCK:
        return default()
    first = 1 if len(hist) > 0 and hist[0] == block else 0  # hist[0] is normally block
    prev = hist[first] if first < len(hist) else NO_BLOCK
    following = prev != NO_BLOCK and successor(prev) == block
    if not following and scan_mode == 0:
        window_end = NO_BLOCK
        return 0
    fresh = not following or window_end == NO_BLOCK
    if not fresh and block != window_end:
        return 0  # mid-window: already asked for
    count = 0
    cur = block
    run_end = block  # last block of the run the next leaf may extend
    last_leaf = NO_BLOCK
    for _ in range(4 * RA_MAX_OUT):
        cur = successor(cur)
        if cur == NO_BLOCK or cur >= file_blocks or cur == block:
            break
        if contains(out, count, cur):  # already asked for, inside a bridged gap
            last_leaf = cur
            continue
        start = run_end + 1 if cur > run_end and cur - run_end - 1 <= gap else cur
        need = 0
        for x in range(start, cur + 1):
            if x != block and not contains(out, count, x):
                need += 1
        if count + need > max_out:
            break
        for x in range(start, cur + 1):
            if x != block and not contains(out, count, x):
                out[count] = x
                count += 1
        run_end = cur
        last_leaf = cur
    window_end = last_leaf
    return count
