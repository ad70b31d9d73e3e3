/*
 * stack.c — vino's guarded entry into WebAssembly: no graft call starts unless
 * the calling thread's native stack has room for it.
 *
 * wasmtime gives every store its own Wasm stack allowance (max_wasm_stack),
 * counted from wherever the store is entered. Grafts nested through
 * graft-callables, or a graft called on a thread with a small stack, could pile
 * allowances past the thread's real stack and the process would die of SIGSEGV.
 * vino_call checks first: if fewer than `need` bytes (the allowance plus the
 * host's own needs; the largest any sandbox asked for with vino_stack_need) are
 * left between the stack pointer and the thread's stack bottom, it returns
 * VINO_NO_STACK and calls nothing. Otherwise it is exactly
 * wasmtime_func_call_unchecked (whose address vino_stack_init received), with
 * the same arguments: the guard costs no argument of its own.
 *
 * The thread's bounds come from pthread_getattr_np, once per thread (a
 * thread-local cache): the check itself costs a compare.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define VINO_NO_STACK ((void *)1)

typedef void *(*vino_call_fn)(void *, void *, void *, size_t, void *);

static vino_call_fn vino_wasm_call;
static size_t vino_need;              /* bytes a call needs: only ever raised */
/* In the static TLS block glibc keeps room in for libraries loaded later: read at a fixed
 * offset from the thread pointer, not through __tls_get_addr (code and data that a call
 * after a pause finds cold). */
#define TLS_MODEL __attribute__((tls_model("initial-exec")))
static __thread uintptr_t vino_low TLS_MODEL; /* lowest usable address of this thread's stack */
static __thread uintptr_t vino_high TLS_MODEL;

static int vino_bounds(void) {
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return -1;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    size_t guard = 0;
    pthread_attr_getguardsize(&attr, &guard);
    pthread_attr_destroy(&attr);
    if (rc != 0) return -1;
    vino_low = (uintptr_t)addr + guard;
    vino_high = (uintptr_t)addr + size;
    return 0;
}

void vino_stack_init(vino_call_fn call) { vino_wasm_call = call; }

/* Raise the stack every call needs to at least `need` bytes (never lowers it). */
void vino_stack_need(size_t need) {
    if (need > vino_need) vino_need = need;
}

/* This thread's stack: its bounds and the stack pointer now; 0 on success. */
int vino_stack_info(uintptr_t *low, uintptr_t *high, uintptr_t *sp) {
    if (!vino_low && vino_bounds() != 0) return -1;
    *low = vino_low;
    *high = vino_high;
    *sp = (uintptr_t)__builtin_frame_address(0);
    return 0;
}

void *vino_call(void *ctx, void *func, void *args, size_t nargs, void *trap) {
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (!vino_low && vino_bounds() != 0) return VINO_NO_STACK;
    /* Off the thread's own stack (a stack another library switched to): bounds unknown. */
    if (sp < vino_low || sp > vino_high || sp - vino_low < vino_need) return VINO_NO_STACK;
    return vino_wasm_call(ctx, func, args, nargs, trap);
}
