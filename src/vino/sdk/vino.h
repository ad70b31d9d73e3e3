/*
 * vino.h — the graft SDK for C: everything a graft needs to talk to vino.
 *
 * This header is the C spelling of docs/ABI.md. Where they disagree, ABI.md
 * wins and this file is the bug.
 *
 * BUILDING
 *   python -m vino.sdk.build my_graft.c -o my_graft.wasm
 * which runs (see vino/sdk/build.py for the exact, byte-reproducible list):
 *   python -m ziglang cc --target=wasm32-freestanding -O2 -nostdlib \
 *       -Wl,--no-entry -s -fno-ident -I <sdk dir> ... my_graft.c
 * There is no libc: only the compiler's freestanding headers (<stdint.h>,
 * <stddef.h>, <stdbool.h>) and this file. The build fails if the module would
 * import anything from a module other than "vino".
 *
 * WHAT A GRAFT LOOKS LIKE
 *   #include "vino.h"
 *   VINO_BUFFER(VINO_RA_BUFFER);             // exports vino_buffer()
 *   VINO_EXPORT("vino_readahead") int32_t vino_readahead(void) {
 *       vino_ra_buf *b = VINO_BUF(vino_ra_buf);
 *       ...write up to b->max_out blocks to b->out...
 *       return count;
 *   }
 * Optionally also VINO_EXPORT("vino_message") int32_t vino_message(int32_t len):
 * the installing principal's bytes have been copied to the start of the
 * buffer (at most the buffer size); return a negative value to refuse them.
 *
 * THE RULES THE HOST ENFORCES
 *   - Imports: only module "vino", only the names the point lists (below),
 *     with exactly the types declared here. Anything else is rejected at load.
 *   - Exports: "memory", "vino_buffer", the point's entry, optionally
 *     "vino_message". Only names marked VINO_EXPORT are exported.
 *   - All data crosses through the buffer. The host rewrites the inputs before
 *     every call, so keep state that must outlive one call in your own statics,
 *     never in the buffer (a message is overwritten by the next call's inputs).
 *   - The result is validated; a graft that traps, runs too long or answers
 *     wrongly is aborted, its accessor effects undone, and the default runs.
 *
 * THE POINTS (entry; buffer; what the result must satisfy)
 *   fs.readahead  vino_readahead() -> count    vino_ra_buf      VINO_RA_BUFFER
 *       Blocks to prefetch in out[0..count): count <= max_out, each block
 *       < file_blocks, no duplicates.
 *   vm.evict      vino_evict() -> answer       vino_evict_buf   VINO_EVICT_BUFFER
 *       Index of the victim: 0 <= index < n. Optionally a batch: write the
 *       next victims, in the order they are to go, to more[0..k) (k <= VINO_EVICT_MORE_MAX)
 *       and return VINO_EVICT_ANSWER(index, k); the kernel takes them for the
 *       address space's next evictions, skipping any page touched since.
 *       Every index < n, no index twice. Extra import: vino_vm_hint.
 *   sched.pick    vino_pick() -> index         vino_sched_buf   VINO_SCHED_BUFFER
 *       Index of the thread to run: 0 <= index < n.
 *       Extra import: vino_sched_set_priority.
 *   fs.filter     vino_filter(direction, len) -> len
 *                                              vino_filter_buf  VINO_FILTER_BUFFER
 *       Transform data[0..len) in place (direction 0 = write: plaintext in,
 *       1 = read: ciphertext in); must return len unchanged.
 *       May use WebAssembly SIMD (#include <wasm_simd128.h>, and mark the
 *       functions that use it __attribute__((target("simd128"))); see
 *       samples/chacha20_filter.c). Every other point rejects a module using SIMD.
 *       Extra import: vino_chacha20 (the kernel's cipher; see
 *       samples/chacha20_kernel.c).
 *   fs.access     vino_on_access() -> ignored  vino_access_buf  VINO_ACCESS_BUFFER
 *       Event point: notified of each file block access; negative aborts.
 *
 * MEMORY
 *   Use VINO_BUFFER for the buffer and statics for state; there is no heap
 *   (kalloc hands out host memory reachable only through kread / kwrite). The
 *   compiler may turn copies and loops into memory.copy / memory.fill
 *   instructions (bulk memory is part of the target); vino_memcpy and
 *   vino_memset below do the same explicitly. Weak memcpy / memmove / memset
 *   definitions are provided so code written for a hosted C still links.
 */
#ifndef VINO_H
#define VINO_H

#include <stddef.h>
#include <stdint.h>

#if !defined(__wasm32__)
#error "vino.h targets wasm32 only: build with vino.sdk.build (zig cc --target=wasm32-freestanding)"
#endif

/* ---- attributes ---------------------------------------------------------- */

/* Declares a graft-callable: a function imported from module "vino". */
#define VINO_IMPORT(name) __attribute__((import_module("vino"), import_name(name)))
/* Exports a function under `name` (nothing else is exported). */
#define VINO_EXPORT(name) __attribute__((export_name(name)))

/* ---- graft-callables common to every point -------------------------------- */

/* Monotonic time, ns. */
VINO_IMPORT("now") int64_t vino_now(void);
/* Append a log line (charged to the principal's log quota, rate-limited). */
VINO_IMPORT("log") void vino_log(const void *ptr, int32_t len);
/* Take a two-phase lock held until the transaction ends (there is no unlock).
 * 0 = held; -1 = no such lock or not permitted. Waiting longer than the lock
 * time-out aborts the transaction. */
VINO_IMPORT("lock") int32_t vino_lock(int32_t lock_id);
/* Host memory charged to the principal; a handle > 0. Going over the quota
 * aborts the transaction. */
VINO_IMPORT("kalloc") int32_t vino_kalloc(int32_t size);
/* Free a handle (undone if the transaction aborts). */
VINO_IMPORT("kfree") void vino_kfree(int32_t handle);
/* Copy host memory [off, off+len) of `handle` to ptr; returns len or -1. */
VINO_IMPORT("kread") int32_t vino_kread(int32_t handle, int32_t off, void *ptr, int32_t len);
/* Copy ptr[0..len) to host memory at `off` of `handle` (undone on abort);
 * returns len or -1. */
VINO_IMPORT("kwrite") int32_t vino_kwrite(int32_t handle, int32_t off, const void *ptr,
                                          int32_t len);
/* Function points only: run the built-in policy on the current inputs in a
 * nested transaction. It writes its output into the buffer exactly as the
 * entry would and returns what the entry would return, so the graft can
 * adjust the answer ("extend" rather than "replace"). The import is named
 * "default", a C keyword, hence the prefix. */
VINO_IMPORT("default") int32_t vino_default(void);

/* ---- graft-callables of particular points -------------------------------- */

/* vm.evict: mark a page of the graft's own address space important (1) or
 * not (0). An accessor: undone on abort. */
VINO_IMPORT("vm_hint") int32_t vino_vm_hint(int32_t vpn, int32_t important);
/* sched.pick: set the priority of a thread of the graft's own group. An
 * accessor: undone on abort. */
VINO_IMPORT("sched_set_priority") int32_t vino_sched_set_priority(int32_t tid,
                                                                  int32_t priority);
/* fs.filter: the kernel's cipher. XOR the len bytes at data, in place, with the
 * RFC 8439 ChaCha20 keystream of the 32-byte key and the 12-byte nonce, from
 * block counter on (block counter + i covers bytes 64 i .. 64 i + 63). Returns
 * len, or -1 (nothing written) for len outside 0..VINO_FILTER_MAX or a last
 * block past counter 2^32 - 1. A pointer or range outside the graft's memory
 * aborts the graft (trap). Nothing to undo: it changes only the graft's memory. */
VINO_IMPORT("chacha20") int32_t vino_chacha20(const void *key, const void *nonce,
                                              uint32_t counter, void *data, int32_t len);

/* ---- buffer layouts (little-endian, packed, offsets fixed by ABI.md) ------ */

#define VINO_PACKED __attribute__((packed))
#define VINO_CHECK_OFFSET(type, field, off) \
    _Static_assert(offsetof(type, field) == (off), #type "." #field " must be at offset " #off)

/* fs.readahead ------------------------------------------------------------- */
#define VINO_RA_BUFFER 256u /* bytes the point declares */
#define VINO_RA_HIST 16u    /* hist entries (n_hist <= this) */
#define VINO_RA_MAX_OUT 32u /* out entries (max_out <= this) */

typedef struct VINO_PACKED vino_ra_buf {
    uint32_t file_blocks;           /* file size in blocks */
    uint32_t block;                 /* block just read */
    uint32_t max_out;               /* return at most this many blocks */
    uint32_t n_hist;                /* entries valid in hist */
    uint32_t hist[VINO_RA_HIST];    /* last accessed blocks, most recent first */
    uint32_t out[VINO_RA_MAX_OUT];  /* output: blocks to prefetch */
} vino_ra_buf;
VINO_CHECK_OFFSET(vino_ra_buf, file_blocks, 0);
VINO_CHECK_OFFSET(vino_ra_buf, block, 4);
VINO_CHECK_OFFSET(vino_ra_buf, max_out, 8);
VINO_CHECK_OFFSET(vino_ra_buf, n_hist, 12);
VINO_CHECK_OFFSET(vino_ra_buf, hist, 16);
VINO_CHECK_OFFSET(vino_ra_buf, out, 80);
_Static_assert(sizeof(vino_ra_buf) == 208, "vino_ra_buf layout");
_Static_assert(sizeof(vino_ra_buf) <= VINO_RA_BUFFER, "vino_ra_buf fits its buffer");

/* vm.evict ------------------------------------------------------------------ */
#define VINO_EVICT_MAX 256u
#define VINO_EVICT_MORE_MAX 31u
#define VINO_EVICT_BUFFER (8u + 24u * VINO_EVICT_MAX + 4u * VINO_EVICT_MORE_MAX)
/* The answer naming victim `index` and k further victims in more[0..k). */
#define VINO_EVICT_ANSWER(index, k) ((int32_t)((uint32_t)(index) + ((uint32_t)(k) << 16)))
#define VINO_PAGE_REFERENCED 1u
#define VINO_PAGE_DIRTY 2u

typedef struct VINO_PACKED vino_evict_cand {
    uint32_t page_id;
    uint32_t vpn;
    uint32_t flags;    /* VINO_PAGE_REFERENCED | VINO_PAGE_DIRTY */
    uint32_t pad;
    uint64_t last_use; /* larger = used more recently */
} vino_evict_cand;
VINO_CHECK_OFFSET(vino_evict_cand, page_id, 0);
VINO_CHECK_OFFSET(vino_evict_cand, vpn, 4);
VINO_CHECK_OFFSET(vino_evict_cand, flags, 8);
VINO_CHECK_OFFSET(vino_evict_cand, pad, 12);
VINO_CHECK_OFFSET(vino_evict_cand, last_use, 16);
_Static_assert(sizeof(vino_evict_cand) == 24, "vino_evict_cand layout");

typedef struct VINO_PACKED vino_evict_buf {
    uint32_t n;        /* candidates valid in cand */
    uint32_t pad;
    vino_evict_cand cand[VINO_EVICT_MAX];
    uint32_t more[VINO_EVICT_MORE_MAX]; /* out: further victims, indices into cand */
} vino_evict_buf;
VINO_CHECK_OFFSET(vino_evict_buf, n, 0);
VINO_CHECK_OFFSET(vino_evict_buf, cand, 8);
VINO_CHECK_OFFSET(vino_evict_buf, more, 6152);
_Static_assert(sizeof(vino_evict_buf) == VINO_EVICT_BUFFER, "vino_evict_buf layout");

/* sched.pick ---------------------------------------------------------------- */
#define VINO_SCHED_MAX 64u
#define VINO_SCHED_BUFFER (8u + 32u * VINO_SCHED_MAX)
#define VINO_THREAD_INTERACTIVE 1u

typedef struct VINO_PACKED vino_thread {
    uint32_t tid;
    int32_t priority;
    uint64_t cpu_ns;
    uint64_t waited_ns;
    uint32_t flags; /* VINO_THREAD_INTERACTIVE */
    uint32_t pad;
} vino_thread;
VINO_CHECK_OFFSET(vino_thread, tid, 0);
VINO_CHECK_OFFSET(vino_thread, priority, 4);
VINO_CHECK_OFFSET(vino_thread, cpu_ns, 8);
VINO_CHECK_OFFSET(vino_thread, waited_ns, 16);
VINO_CHECK_OFFSET(vino_thread, flags, 24);
VINO_CHECK_OFFSET(vino_thread, pad, 28);
_Static_assert(sizeof(vino_thread) == 32, "vino_thread layout");

typedef struct VINO_PACKED vino_sched_buf {
    uint32_t n; /* runnable threads valid in thread */
    uint32_t pad;
    vino_thread thread[VINO_SCHED_MAX];
} vino_sched_buf;
VINO_CHECK_OFFSET(vino_sched_buf, n, 0);
VINO_CHECK_OFFSET(vino_sched_buf, thread, 8);
_Static_assert(sizeof(vino_sched_buf) == VINO_SCHED_BUFFER, "vino_sched_buf layout");

/* fs.filter ----------------------------------------------------------------- */
#define VINO_FILTER_MAX 4096u
#define VINO_FILTER_BUFFER (16u + VINO_FILTER_MAX)
#define VINO_FILTER_WRITE 0 /* plaintext in, ciphertext out */
#define VINO_FILTER_READ 1  /* ciphertext in, plaintext out */

typedef struct VINO_PACKED vino_filter_buf {
    uint64_t file_offset; /* a multiple of 64 */
    uint32_t len;         /* bytes valid in data (<= VINO_FILTER_MAX) */
    uint32_t file_id;
    uint8_t data[VINO_FILTER_MAX]; /* transformed in place */
} vino_filter_buf;
VINO_CHECK_OFFSET(vino_filter_buf, file_offset, 0);
VINO_CHECK_OFFSET(vino_filter_buf, len, 8);
VINO_CHECK_OFFSET(vino_filter_buf, file_id, 12);
VINO_CHECK_OFFSET(vino_filter_buf, data, 16);
_Static_assert(sizeof(vino_filter_buf) == VINO_FILTER_BUFFER, "vino_filter_buf layout");

/* fs.access (event) --------------------------------------------------------- */
#define VINO_ACCESS_BUFFER 24u
#define VINO_ACCESS_READ 0u
#define VINO_ACCESS_WRITE 1u

typedef struct VINO_PACKED vino_access_buf {
    uint32_t file_id;
    uint32_t block;
    uint32_t op; /* VINO_ACCESS_READ or VINO_ACCESS_WRITE */
    uint32_t pad;
    uint64_t time_ns;
} vino_access_buf;
VINO_CHECK_OFFSET(vino_access_buf, file_id, 0);
VINO_CHECK_OFFSET(vino_access_buf, block, 4);
VINO_CHECK_OFFSET(vino_access_buf, op, 8);
VINO_CHECK_OFFSET(vino_access_buf, time_ns, 16);
_Static_assert(sizeof(vino_access_buf) == VINO_ACCESS_BUFFER, "vino_access_buf layout");

/* ---- the buffer ------------------------------------------------------------ */

/* Defines the graft's buffer (`size` bytes, 16-aligned, zeroed) and exports
 * vino_buffer() returning its offset. Use once per graft, at file scope, with
 * at least the point's VINO_*_BUFFER. */
#define VINO_BUFFER(size)                                                       \
    _Static_assert((size) > 0, "VINO_BUFFER needs a positive size");           \
    static uint8_t vino_buf_[(size)] __attribute__((aligned(16)));             \
    enum { VINO_BUF_SIZE = (size) };                                           \
    VINO_EXPORT("vino_buffer") int32_t vino_buffer(void) {                     \
        return (int32_t)(uintptr_t)vino_buf_;                                  \
    }                                                                          \
    _Static_assert(1, "swallow the caller's semicolon")

/* The buffer seen as a point's layout, e.g. VINO_BUF(vino_ra_buf). */
#define VINO_BUF(type) ((type *)(void *)vino_buf_)
/* The buffer as raw bytes (where a message arrives). */
#define VINO_BUF_BYTES() (vino_buf_)

/* ---- freestanding helpers -------------------------------------------------- */

/* Lowered to memory.copy / memory.fill: no library call. */
static inline void *vino_memcpy(void *dst, const void *src, size_t n) {
    return __builtin_memcpy(dst, src, n);
}
static inline void *vino_memset(void *dst, int c, size_t n) {
    return __builtin_memset(dst, c, n);
}

/* Unaligned little-endian loads / stores (wasm32 is little-endian; going
 * through memcpy keeps them free of alignment and aliasing undefined
 * behaviour and compiles to single loads / stores). */
static inline uint32_t vino_load_u32(const void *p) {
    uint32_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline uint64_t vino_load_u64(const void *p) {
    uint64_t v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}
static inline void vino_store_u32(void *p, uint32_t v) { __builtin_memcpy(p, &v, sizeof v); }

/* Weak so that several translation units (or a graft's own definitions) can
 * coexist; only pulled in if something references them. */
#ifndef VINO_NO_LIBC_SHIMS
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n) {
    return __builtin_memcpy(dst, src, n);
}
__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n) {
    return __builtin_memmove(dst, src, n);
}
__attribute__((weak)) void *memset(void *dst, int c, size_t n) {
    return __builtin_memset(dst, c, n);
}
#endif

#endif /* VINO_H */
