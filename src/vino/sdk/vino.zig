//! vino.zig — the graft SDK for Zig: vino.h's declarations, spelled in Zig.
//!
//! This file is the Zig spelling of docs/ABI.md. Where they disagree, ABI.md
//! wins and this file is the bug.
//!
//! BUILDING
//!   vino graft build my_graft.zig -o my_graft.wasm
//! copies the graft and this file into a scratch directory and runs
//!   python -m ziglang build-exe -target wasm32-freestanding -O ReleaseSmall
//!       -fno-entry -rdynamic -fstrip --stack 16384 --max-memory=1048576 ...
//! so a graft says `const vino = @import("vino.zig");`. There is no std:
//! nothing may be imported from any module but "vino".
//!
//! WHAT A GRAFT LOOKS LIKE
//!   const vino = @import("vino.zig");
//!   var buf: [vino.RA_BUFFER]u8 align(16) = undefined;
//!   export fn vino_buffer() i32 { return vino.offset(&buf); }
//!   export fn vino_readahead() i32 {
//!       const b = vino.view(vino.RaBuf, &buf);
//!       ...write up to b.max_out blocks to b.out...
//!       return count;
//!   }
//! Optionally `export fn vino_message(len: i32) i32`: the installing
//! principal's bytes are at the start of the buffer; negative refuses them.
//!
//! The rules the host enforces, the points and their validators are those of
//! vino.h's header: the same imports, exports and layouts.

// ---- graft-callables common to every point ---------------------------------

/// Monotonic time, ns.
pub extern "vino" fn now() i64;
/// Append a log line (charged to the principal's log quota, rate-limited).
pub extern "vino" fn log(ptr: [*]const u8, len: i32) void;
/// Two-phase lock held until the transaction ends. 0 = held; -1 = refused.
pub extern "vino" fn lock(lock_id: i32) i32;
/// Host memory charged to the principal; a handle > 0.
pub extern "vino" fn kalloc(size: i32) i32;
/// Free a handle (undone if the transaction aborts).
pub extern "vino" fn kfree(handle: i32) void;
/// Copy host memory [off, off+len) of `handle` to ptr; len or -1.
pub extern "vino" fn kread(handle: i32, off: i32, ptr: [*]u8, len: i32) i32;
/// Copy ptr[0..len) to host memory at `off` of `handle` (undone on abort).
pub extern "vino" fn kwrite(handle: i32, off: i32, ptr: [*]const u8, len: i32) i32;
/// Function points only: run the built-in policy on the current inputs.
pub extern "vino" fn default() i32;
/// vm.evict: mark a page of the graft's own address space important (1) or not.
pub extern "vino" fn vm_hint(vpn: i32, important: i32) i32;
/// sched.pick: set the priority of a thread of the graft's own group.
pub extern "vino" fn sched_set_priority(tid: i32, priority: i32) i32;

// ---- the buffer ---------------------------------------------------------------

/// The offset of a buffer in linear memory: what `vino_buffer` returns.
pub inline fn offset(buf: anytype) i32 {
    return @intCast(@intFromPtr(buf));
}

/// The buffer seen as a point's layout, e.g. `view(vino.RaBuf, &buf)`.
pub inline fn view(comptime T: type, buf: anytype) *T {
    return @ptrCast(@alignCast(buf));
}

/// An unaligned little-endian u32 at byte `at` of `bytes` (e.g. in a message).
pub inline fn loadU32(bytes: [*]const u8, at: usize) u32 {
    return @as(u32, bytes[at]) | @as(u32, bytes[at + 1]) << 8 |
        @as(u32, bytes[at + 2]) << 16 | @as(u32, bytes[at + 3]) << 24;
}

// ---- buffer layouts (little-endian, offsets fixed by ABI.md) ---------------

// fs.readahead
pub const RA_BUFFER = 256;
pub const RA_HIST = 16;
pub const RA_MAX_OUT = 32;
pub const RaBuf = extern struct {
    file_blocks: u32, // file size in blocks
    block: u32, // block just read
    max_out: u32, // return at most this many blocks
    n_hist: u32, // entries valid in hist
    hist: [RA_HIST]u32, // last accessed blocks, most recent first
    out: [RA_MAX_OUT]u32, // output: blocks to prefetch
};

// vm.evict
pub const EVICT_MAX = 256;
pub const EVICT_BUFFER = 8 + 24 * EVICT_MAX;
pub const PAGE_REFERENCED = 1;
pub const PAGE_DIRTY = 2;
pub const EvictCand = extern struct {
    page_id: u32,
    vpn: u32,
    flags: u32, // PAGE_REFERENCED | PAGE_DIRTY
    pad: u32,
    last_use: u64, // larger = used more recently
};
pub const EvictBuf = extern struct {
    n: u32, // candidates valid in cand
    pad: u32,
    cand: [EVICT_MAX]EvictCand,
};

// sched.pick
pub const SCHED_MAX = 64;
pub const SCHED_BUFFER = 8 + 32 * SCHED_MAX;
pub const THREAD_INTERACTIVE = 1;
pub const Thread = extern struct {
    tid: u32,
    priority: i32,
    cpu_ns: u64,
    waited_ns: u64,
    flags: u32, // THREAD_INTERACTIVE
    pad: u32,
};
pub const SchedBuf = extern struct {
    n: u32,
    pad: u32,
    thread: [SCHED_MAX]Thread,
};

// fs.filter
pub const FILTER_MAX = 4096;
pub const FILTER_BUFFER = 16 + FILTER_MAX;
pub const FILTER_WRITE = 0; // plaintext in, ciphertext out
pub const FILTER_READ = 1; // ciphertext in, plaintext out
pub const FilterBuf = extern struct {
    file_offset: u64, // a multiple of 64
    len: u32, // bytes valid in data
    file_id: u32,
    data: [FILTER_MAX]u8, // transformed in place
};

// fs.access (event)
pub const ACCESS_BUFFER = 24;
pub const ACCESS_READ = 0;
pub const ACCESS_WRITE = 1;
pub const AccessBuf = extern struct {
    file_id: u32,
    block: u32,
    op: u32, // ACCESS_READ or ACCESS_WRITE
    pad: u32,
    time_ns: u64,
};

comptime {
    const assert = struct {
        fn at(comptime T: type, comptime field: []const u8, comptime off: usize) void {
            if (@offsetOf(T, field) != off) @compileError(@typeName(T) ++ "." ++ field ++ " moved");
        }
    }.at;
    assert(RaBuf, "hist", 16);
    assert(RaBuf, "out", 80);
    if (@sizeOf(RaBuf) != 208) @compileError("RaBuf layout");
    assert(EvictCand, "last_use", 16);
    if (@sizeOf(EvictCand) != 24) @compileError("EvictCand layout");
    assert(EvictBuf, "cand", 8);
    if (@sizeOf(EvictBuf) != EVICT_BUFFER) @compileError("EvictBuf layout");
    assert(Thread, "cpu_ns", 8);
    assert(Thread, "flags", 24);
    if (@sizeOf(Thread) != 32) @compileError("Thread layout");
    if (@sizeOf(SchedBuf) != SCHED_BUFFER) @compileError("SchedBuf layout");
    assert(FilterBuf, "data", 16);
    if (@sizeOf(FilterBuf) != FILTER_BUFFER) @compileError("FilterBuf layout");
    assert(AccessBuf, "time_ns", 16);
    if (@sizeOf(AccessBuf) != ACCESS_BUFFER) @compileError("AccessBuf layout");
}
