// vino.ts — the graft SDK for AssemblyScript: vino.h's declarations, spelled in
// AssemblyScript.
//
// This file is the AssemblyScript spelling of docs/ABI.md. Where they disagree,
// ABI.md wins and this file is the bug.
//
// BUILDING
//   vino graft build my_graft.ts -o my_graft.wasm
// copies the graft and this file into a scratch directory and runs the
// project's pinned AssemblyScript compiler (npm `assemblyscript`) with
//   --runtime stub --use abort= -O3 --noExportMemory=false --maximumMemory 16
// The stub runtime never frees: allocate nothing per call (no `new`, no
// strings, no arrays); keep state in globals and read the buffer with
// load / store or the layout classes below. `--use abort=` makes a failed
// assertion or an out-of-range access a trap instead of an import.
//
// WHAT A GRAFT LOOKS LIKE
//   import * as vino from "./vino";
//   const BUF = memory.data(vino.RA_BUFFER, 16);
//   export function vino_buffer(): i32 { return <i32>BUF; }
//   export function vino_readahead(): i32 {
//     const b = changetype<vino.RaBuf>(BUF);
//     ...b.setOut(i, block) for up to b.max_out blocks...
//     return count;
//   }
// Optionally `export function vino_message(len: i32): i32`: the installing
// principal's bytes are at BUF; a negative answer refuses them.
//
// The rules the host enforces, the points and their validators are those of
// vino.h's header: the same imports, exports and layouts.

// ---- graft-callables ---------------------------------------------------------

/** Monotonic time, ns. */
@external("vino", "now") export declare function now(): i64;
/** Append a log line (charged to the principal's log quota, rate-limited). */
@external("vino", "log") export declare function log(ptr: usize, len: i32): void;
/** Two-phase lock held until the transaction ends. 0 = held; -1 = refused. */
@external("vino", "lock") export declare function lock(lock_id: i32): i32;
/** Host memory charged to the principal; a handle > 0. */
@external("vino", "kalloc") export declare function kalloc(size: i32): i32;
/** Free a handle (undone if the transaction aborts). */
@external("vino", "kfree") export declare function kfree(handle: i32): void;
/** Copy host memory [off, off+len) of `handle` to ptr; len or -1. */
@external("vino", "kread") export declare function kread(handle: i32, off: i32, ptr: usize, len: i32): i32;
/** Copy ptr[0..len) to host memory at `off` of `handle` (undone on abort). */
@external("vino", "kwrite") export declare function kwrite(handle: i32, off: i32, ptr: usize, len: i32): i32;
/** Function points only: run the built-in policy on the current inputs. */
@external("vino", "default") export declare function defaultPolicy(): i32;
/** vm.evict: mark a page of the graft's own address space important (1) or not. */
@external("vino", "vm_hint") export declare function vm_hint(vpn: i32, important: i32): i32;
/** sched.pick: set the priority of a thread of the graft's own group. */
@external("vino", "sched_set_priority") export declare function sched_set_priority(tid: i32, priority: i32): i32;

// ---- buffer layouts (little-endian, offsets fixed by ABI.md) -----------------

// fs.readahead
export const RA_BUFFER: i32 = 256;
export const RA_HIST: u32 = 16;
export const RA_MAX_OUT: u32 = 32;

@unmanaged export class RaBuf {
  file_blocks: u32; // file size in blocks
  block: u32; // block just read
  max_out: u32; // return at most this many blocks
  n_hist: u32; // entries valid in hist
  /** hist[i]: last accessed blocks, most recent first (offset 16). */
  @inline hist(i: u32): u32 { return load<u32>(changetype<usize>(this) + 16 + (<usize>i << 2)); }
  /** out[i] = block: the output (offset 80). */
  @inline setOut(i: u32, block: u32): void { store<u32>(changetype<usize>(this) + 80 + (<usize>i << 2), block); }
}

// vm.evict
export const EVICT_MAX: u32 = 256;
export const EVICT_BUFFER: i32 = 8 + 24 * 256;
export const PAGE_REFERENCED: u32 = 1;
export const PAGE_DIRTY: u32 = 2;

@unmanaged export class EvictCand {
  page_id: u32;
  vpn: u32;
  flags: u32; // PAGE_REFERENCED | PAGE_DIRTY
  pad: u32;
  last_use: u64; // larger = used more recently
}

@unmanaged export class EvictBuf {
  n: u32; // candidates valid in cand
  pad: u32;
  /** cand[i] (24 bytes each, from offset 8). */
  @inline cand(i: u32): EvictCand { return changetype<EvictCand>(changetype<usize>(this) + 8 + <usize>i * 24); }
}

// sched.pick
export const SCHED_MAX: u32 = 64;
export const SCHED_BUFFER: i32 = 8 + 32 * 64;
export const THREAD_INTERACTIVE: u32 = 1;

@unmanaged export class Thread {
  tid: u32;
  priority: i32;
  cpu_ns: u64;
  waited_ns: u64;
  flags: u32; // THREAD_INTERACTIVE
  pad: u32;
}

@unmanaged export class SchedBuf {
  n: u32;
  pad: u32;
  /** thread[i] (32 bytes each, from offset 8). */
  @inline thread(i: u32): Thread { return changetype<Thread>(changetype<usize>(this) + 8 + <usize>i * 32); }
}

// fs.filter
export const FILTER_MAX: u32 = 4096;
export const FILTER_BUFFER: i32 = 16 + 4096;
export const FILTER_WRITE: i32 = 0; // plaintext in, ciphertext out
export const FILTER_READ: i32 = 1; // ciphertext in, plaintext out

@unmanaged export class FilterBuf {
  file_offset: u64; // a multiple of 64
  len: u32; // bytes valid in data
  file_id: u32;
  /** The address of data[0] (offset 16), transformed in place. */
  @inline data(): usize { return changetype<usize>(this) + 16; }
}

// fs.access (event)
export const ACCESS_BUFFER: i32 = 24;
export const ACCESS_READ: u32 = 0;
export const ACCESS_WRITE: u32 = 1;

@unmanaged export class AccessBuf {
  file_id: u32;
  block: u32;
  op: u32; // ACCESS_READ or ACCESS_WRITE
  pad: u32;
  time_ns: u64;
}
