//! evict_keep.zig — vm.evict graft: the Zig port of evict_keep.c.
//!
//! Same policy, same message, same answers (a test compares them with the C
//! sample's): the least recently used candidate that is not important, else
//! the least recently used of all. Message: u32 LE count, then count u32 LE
//! vpns (count <= 256, exactly 4 + 4 * count bytes); malformed is refused.
const vino = @import("vino.zig");

var buf: [vino.EVICT_BUFFER]u8 align(16) = undefined;

const MAX_IMPORTANT = 256;

// Invariant: important[0..n_important] is sorted ascending.
var important: [MAX_IMPORTANT]u32 = undefined;
var n_important: u32 = 0;

export fn vino_buffer() i32 {
    return vino.offset(&buf);
}

export fn vino_message(len: i32) i32 {
    if (len < 4) return -1;
    const count = vino.loadU32(&buf, 0);
    if (count > MAX_IMPORTANT or @as(u32, @intCast(len)) != 4 + 4 * count) return -1;
    // Insertion sort: at most 256 entries, once per message.
    var i: u32 = 0;
    while (i < count) : (i += 1) {
        const v = vino.loadU32(&buf, 4 + 4 * i);
        var j = i;
        while (j > 0 and important[j - 1] > v) : (j -= 1) important[j] = important[j - 1];
        important[j] = v;
    }
    n_important = count;
    return 0;
}

fn isImportant(vpn: u32) bool {
    var lo: u32 = 0;
    var hi = n_important;
    while (lo < hi) {
        const mid = lo + (hi - lo) / 2;
        if (important[mid] < vpn) lo = mid + 1 else hi = mid;
    }
    return lo < n_important and important[lo] == vpn;
}

export fn vino_evict() i32 {
    const b = vino.view(vino.EvictBuf, &buf);
    const n: u32 = @min(b.n, vino.EVICT_MAX);
    if (n == 0) return -1; // no valid answer: let the validator call the default

    var lru: u32 = 0; // oldest candidate of all
    var victim: i32 = -1; // oldest candidate that is not important
    var victim_use: u64 = 0;
    var i: u32 = 0;
    while (i < n) : (i += 1) {
        const use = b.cand[i].last_use;
        if (use < b.cand[lru].last_use) lru = i;
        if ((victim < 0 or use < victim_use) and !isImportant(b.cand[i].vpn)) {
            victim = @intCast(i);
            victim_use = use;
        }
    }
    return if (victim >= 0) victim else @intCast(lru);
}
