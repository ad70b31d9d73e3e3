//! vino.rs — the graft SDK for Rust: vino.h's declarations, spelled in Rust.
//!
//! This file is the Rust spelling of docs/ABI.md. Where they disagree, ABI.md
//! wins and this file is the bug.
//!
//! BUILDING
//!   vino graft build my_graft.rs -o my_graft.wasm
//! copies the graft and this file into a scratch directory and runs rustc
//! (Debian's `rustc` with `libstd-rust-dev-wasm32`, or any rustc with the
//! wasm32-unknown-unknown target) with
//!   --target wasm32-unknown-unknown --crate-type cdylib -C opt-level=2
//!   -C panic=abort -C strip=symbols, linked by zig's wasm-ld with a 16 KiB
//!   stack and a 1 MiB memory maximum.
//! A graft is `#![no_std]` (there is no allocator and no OS) and says
//! `mod vino;`. A panic (an index out of bounds, say) is a trap: the host
//! aborts the call and the default runs.
//!
//! WHAT A GRAFT LOOKS LIKE
//!   #![no_std]
//!   mod vino;
//!   vino_buffer!(vino::RA_BUFFER);            // exports vino_buffer()
//!   #[no_mangle]
//!   pub extern "C" fn vino_readahead() -> i32 {
//!       let b: &mut vino::RaBuf = vino_buf();
//!       ...write up to b.max_out blocks to b.out...
//!       count
//!   }
//! Optionally `#[no_mangle] pub extern "C" fn vino_message(len: i32) -> i32`:
//! the installing principal's bytes are `vino_buf_bytes()[..len]`; a negative
//! answer refuses them.
//!
//! The rules the host enforces, the points and their validators are those of
//! vino.h's header: the same imports, exports and layouts.
#![allow(dead_code)]

// ---- graft-callables -----------------------------------------------------------

#[link(wasm_import_module = "vino")]
extern "C" {
    /// Monotonic time, ns.
    pub fn now() -> i64;
    /// Append a log line (charged to the principal's log quota, rate-limited).
    pub fn log(ptr: *const u8, len: i32);
    /// Two-phase lock held until the transaction ends. 0 = held; -1 = refused.
    pub fn lock(lock_id: i32) -> i32;
    /// Host memory charged to the principal; a handle > 0.
    pub fn kalloc(size: i32) -> i32;
    /// Free a handle (undone if the transaction aborts).
    pub fn kfree(handle: i32);
    /// Copy host memory [off, off+len) of `handle` to ptr; len or -1.
    pub fn kread(handle: i32, off: i32, ptr: *mut u8, len: i32) -> i32;
    /// Copy ptr[0..len) to host memory at `off` of `handle` (undone on abort).
    pub fn kwrite(handle: i32, off: i32, ptr: *const u8, len: i32) -> i32;
    /// Function points only: run the built-in policy on the current inputs.
    #[link_name = "default"]
    pub fn default_policy() -> i32;
    /// vm.evict: mark a page of the graft's own address space important (1) or not.
    pub fn vm_hint(vpn: i32, important: i32) -> i32;
    /// sched.pick: set the priority of a thread of the graft's own group.
    pub fn sched_set_priority(tid: i32, priority: i32) -> i32;
}

/// A panic is a trap: the host aborts the call and runs the default.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

// ---- the buffer ---------------------------------------------------------------

/// The graft's buffer: `N` bytes, 16-aligned. Declare it with `vino_buffer!`.
#[repr(C, align(16))]
pub struct Buffer<const N: usize>(pub [u8; N]);

/// Defines the buffer (`size` bytes), exports `vino_buffer()`, and defines
/// `vino_buf::<T>()` (the buffer seen as a point's layout) and
/// `vino_buf_bytes()` (the raw bytes, where a message arrives).
#[macro_export]
macro_rules! vino_buffer {
    ($size:expr) => {
        static mut VINO_BUF: $crate::vino::Buffer<{ $size }> = $crate::vino::Buffer([0; $size]);

        #[no_mangle]
        pub extern "C" fn vino_buffer() -> i32 {
            unsafe { core::ptr::addr_of!(VINO_BUF) as i32 }
        }

        /// The buffer seen as layout `T` (which must fit in the buffer).
        #[allow(dead_code)]
        fn vino_buf<T>() -> &'static mut T {
            const _: () = assert!(core::mem::align_of::<$crate::vino::Buffer<{ $size }>>() >= 8);
            assert!(core::mem::size_of::<T>() <= $size);
            unsafe { &mut *(core::ptr::addr_of_mut!(VINO_BUF) as *mut T) }
        }

        /// The buffer as raw bytes.
        #[allow(dead_code)]
        fn vino_buf_bytes() -> &'static mut [u8; $size] {
            unsafe { &mut (*core::ptr::addr_of_mut!(VINO_BUF)).0 }
        }
    };
}

/// An unaligned little-endian u32 at byte `at` of `bytes` (e.g. in a message).
pub fn load_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

// ---- buffer layouts (little-endian, offsets fixed by ABI.md) ---------------

// fs.readahead
pub const RA_BUFFER: usize = 256;
pub const RA_HIST: usize = 16;
pub const RA_MAX_OUT: usize = 32;
#[repr(C)]
pub struct RaBuf {
    pub file_blocks: u32,          // file size in blocks
    pub block: u32,                // block just read
    pub max_out: u32,              // return at most this many blocks
    pub n_hist: u32,               // entries valid in hist
    pub hist: [u32; RA_HIST],      // last accessed blocks, most recent first
    pub out: [u32; RA_MAX_OUT],    // output: blocks to prefetch
}

// vm.evict
pub const EVICT_MAX: usize = 256;
pub const EVICT_BUFFER: usize = 8 + 24 * EVICT_MAX;
pub const PAGE_REFERENCED: u32 = 1;
pub const PAGE_DIRTY: u32 = 2;
#[repr(C)]
pub struct EvictCand {
    pub page_id: u32,
    pub vpn: u32,
    pub flags: u32, // PAGE_REFERENCED | PAGE_DIRTY
    pub pad: u32,
    pub last_use: u64, // larger = used more recently
}
#[repr(C)]
pub struct EvictBuf {
    pub n: u32, // candidates valid in cand
    pub pad: u32,
    pub cand: [EvictCand; EVICT_MAX],
}

// sched.pick
pub const SCHED_MAX: usize = 64;
pub const SCHED_BUFFER: usize = 8 + 32 * SCHED_MAX;
pub const THREAD_INTERACTIVE: u32 = 1;
#[repr(C)]
pub struct Thread {
    pub tid: u32,
    pub priority: i32,
    pub cpu_ns: u64,
    pub waited_ns: u64,
    pub flags: u32, // THREAD_INTERACTIVE
    pub pad: u32,
}
#[repr(C)]
pub struct SchedBuf {
    pub n: u32,
    pub pad: u32,
    pub thread: [Thread; SCHED_MAX],
}

// fs.filter
pub const FILTER_MAX: usize = 4096;
pub const FILTER_BUFFER: usize = 16 + FILTER_MAX;
pub const FILTER_WRITE: i32 = 0; // plaintext in, ciphertext out
pub const FILTER_READ: i32 = 1; // ciphertext in, plaintext out
#[repr(C)]
pub struct FilterBuf {
    pub file_offset: u64, // a multiple of 64
    pub len: u32,         // bytes valid in data
    pub file_id: u32,
    pub data: [u8; FILTER_MAX], // transformed in place
}

// fs.access (event)
pub const ACCESS_BUFFER: usize = 24;
pub const ACCESS_READ: u32 = 0;
pub const ACCESS_WRITE: u32 = 1;
#[repr(C)]
pub struct AccessBuf {
    pub file_id: u32,
    pub block: u32,
    pub op: u32, // ACCESS_READ or ACCESS_WRITE
    pub pad: u32,
    pub time_ns: u64,
}

const _: () = {
    assert!(core::mem::size_of::<RaBuf>() == 208);
    assert!(core::mem::size_of::<EvictCand>() == 24);
    assert!(core::mem::size_of::<EvictBuf>() == EVICT_BUFFER);
    assert!(core::mem::size_of::<Thread>() == 32);
    assert!(core::mem::size_of::<SchedBuf>() == SCHED_BUFFER);
    assert!(core::mem::size_of::<FilterBuf>() == FILTER_BUFFER);
    assert!(core::mem::size_of::<AccessBuf>() == ACCESS_BUFFER);
};
