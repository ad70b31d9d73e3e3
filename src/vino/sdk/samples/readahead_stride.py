"""readahead_stride.py -- fs.readahead graft: prefetch along a strided pattern (the
Python twin of readahead_stride.c).

Policy: if the application has set a stride, or the last three accesses are evenly
spaced (two equal, non-zero differences), prefetch the next blocks at that stride
after `block`: block + s, block + 2s, ... up to max_out of them, stopping at
either end of the file. Anything else prefetches nothing: guessing from a single
difference would fill the cache with garbage on random access.

Once per window, not after every block: a learned pattern asks when it has just
been recognised and then whenever block // |s| is a multiple of max_out, so a
window's missing blocks reach the device together.

History: `block` is the most recent access; hist[0] may or may not repeat it.

Message (exactly 4 bytes): u32 LE stride, in blocks; 0 returns to learning the
stride from the history. Any other length is refused (-1).
"""

from vino.pygraft import le32, u32

POINT = "fs.readahead"

explicit_stride: int = 0  # the application's stride, in blocks; 0 = learn it


def message(msg: bytes) -> int:
    global explicit_stride
    if len(msg) != 4:
        return -1
    explicit_stride = le32(msg, 0)
    return 0


def recent(block: int, hist: list[u32], seq: list[int]) -> int:
    """Fill seq with block and the accesses before it, most recent first; how many."""
    seq[0] = block
    m = 1
    i = 1 if len(hist) > 0 and hist[0] == block else 0
    while i < len(hist) and m < 4:
        seq[m] = hist[i]
        m += 1
        i += 1
    return m


def readahead(file_blocks: int, block: int, max_out: int, hist: list[int],
              out: list[int]) -> int:
    stride = explicit_stride
    fresh = False
    if stride == 0:
        seq = [0, 0, 0, 0]
        m = recent(block, hist, seq)
        if m < 3 or seq[0] - seq[1] != seq[1] - seq[2]:
            return 0
        stride = seq[0] - seq[1]
        fresh = m < 4 or seq[2] - seq[3] != stride
    if stride == 0 or len(out) == 0:
        return 0
    if explicit_stride == 0 and not fresh and (block // abs(stride)) % len(out) != 0:
        return 0  # mid-window: already fetched
    nxt = block
    count = 0
    while count < len(out):
        nxt += stride
        if nxt < 0 or nxt >= file_blocks:
            break
        out[count] = nxt
        count += 1
    return count
