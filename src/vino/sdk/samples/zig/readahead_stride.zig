//! readahead_stride.zig — fs.readahead graft: the Zig port of readahead_stride.c.
//!
//! Same policy, same message, same answers (a test compares them with the C
//! sample's): prefetch along the application's stride, or along a stride the
//! last three accesses agree on, once per window. See the C file for the policy
//! in full.
const vino = @import("vino.zig");

var buf: [vino.RA_BUFFER]u8 align(16) = undefined;

/// The application's stride, in blocks; 0 = learn from the history.
var explicit_stride: u32 = 0;

export fn vino_buffer() i32 {
    return vino.offset(&buf);
}

export fn vino_message(len: i32) i32 {
    if (len != 4) return -1;
    explicit_stride = vino.loadU32(&buf, 0);
    return 0;
}

const Learned = struct { stride: i64, fresh: bool };

/// The stride of the last three accesses if they agree, else 0; `fresh` when
/// the access before those three does not continue the pattern.
fn learnedStride(b: *const vino.RaBuf, n_hist: u32) Learned {
    var seq: [4]i64 = undefined;
    var m: usize = 0;
    seq[m] = b.block;
    m += 1;
    var i: u32 = if (n_hist > 0 and b.hist[0] == b.block) 1 else 0;
    while (i < n_hist and m < 4) : (i += 1) {
        seq[m] = b.hist[i];
        m += 1;
    }
    if (m < 3) return .{ .stride = 0, .fresh = false };
    const d1 = seq[0] - seq[1];
    const d2 = seq[1] - seq[2];
    if (d1 != d2) return .{ .stride = 0, .fresh = false };
    return .{ .stride = d1, .fresh = m < 4 or seq[2] - seq[3] != d1 };
}

export fn vino_readahead() i32 {
    const b = vino.view(vino.RaBuf, &buf);
    // Never trust the host's counts beyond the arrays they index.
    const max_out: u32 = @min(b.max_out, vino.RA_MAX_OUT);
    const n_hist: u32 = @min(b.n_hist, vino.RA_HIST);

    var learned = Learned{ .stride = explicit_stride, .fresh = false };
    if (explicit_stride == 0) learned = learnedStride(b, n_hist);
    const stride = learned.stride;
    if (stride == 0 or max_out == 0) return 0;
    if (explicit_stride == 0 and !learned.fresh) {
        const step: u64 = @abs(stride);
        if ((b.block / step) % max_out != 0) return 0; // mid-window: already fetched
    }

    var next: i64 = b.block;
    const end: i64 = b.file_blocks;
    var count: u32 = 0;
    while (count < max_out) {
        next += stride;
        if (next < 0 or next >= end) break;
        b.out[count] = @intCast(next);
        count += 1;
    }
    return @intCast(count);
}
