/*
 * plainread.c — the plain read in native code: a CPython extension module
 * (_vino_plainread) built once per machine and Python version, as graft/native/
 * fastpath.c is (see kernel/plainread.py for the build, the fallback and why).
 *
 * What it offers, each the twin of a piece of Python that stays as its fallback:
 *
 * - plain_read(fs, of, offset, n): the plain path of FileIO.pread (kernel/fileio.py)
 *   when the block is a cache hit: the same checks (the open file's policy epoch, a
 *   whole aligned block inside the file, mapped), under the same lock (the cache's),
 *   the same bytes, counts (cache hits, read-ahead's first hit, FsStats.plain_reads,
 *   readahead_blocks, the open file's prefetch hits and position), history and
 *   built-in read-ahead decision. It returns the block as bytes, or None having
 *   changed nothing: a miss it does not load (below), a hole, a partial or unaligned
 *   read, a stale epoch, a read-ahead that would load, a lock another thread holds, an
 *   object of another type than setup_fs was given -- then FileIO.pread's Python runs
 *   as before.
 * - its loads (load_locked, after setup_miss): a miss, and the read-ahead after a
 *   sequential step, as Cache._miss and Cache.prefetch load them (see "the miss").
 * - XRead(fallback): VinoFile.xRead (sqlite/vfsfile.py), a method descriptor. Its
 *   common branch -- a page past the first of a file with no buffer pool, nothing
 *   pending and no observer -- taken under the VFS's mutex: plain_read on the kernel
 *   file, and VfsStats' reads and bytes_read. Anything else (or plain_read saying
 *   None) calls fallback(file, amount, offset), the Python xRead, having changed
 *   nothing.
 *
 * Locks: the cache's lock, the VFS's mutex, the device's and the clock's locks are
 * whatever objects the Python reads (cache._lock, vfs._mutex, dev._lock, clock._lock), taken with acquire(False) and given back with release():
 * the same locks the Python path holds, never waited for here (a lock another thread
 * holds sends the read to the Python path, which waits). The GIL is held throughout:
 * nothing here lets it go, so no other thread sees a read half done but through the
 * locks, exactly as with the Python twin (whose bytecode can be switched out anywhere).
 * The cyclic collector is off while the cache's lock is held here: its finalizers would
 * run code of this thread (a read, re-entering the lock) amid a load half done.
 *
 * Fields are read and written at the offsets of the classes' __slots__ members
 * (setup_fs, setup_vfs, setup_vfs_classes), after an exact type check of each object:
 * the file system's, the cache's, the VFS's and its files' hot attributes are slots
 * too, so a read looks nothing up by name. Every count is computed before the first
 * one is stored: a failure (a MemoryError) changes nothing.
 */
#include "vino_native.h"
#include <dlfcn.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

static struct {
    int fs_ready, vfs_ready;
    long long bs, ndirect, page_bytes, hist_max; /* hist_max: READAHEAD_HISTORY */
    PyTypeObject *of_type, *inode_type, *fsstats_type, *cstats_type, *frame_type,
        *kfile_type, *vstats_type, *fs_type, *cache_type, *vfs_type, *vfile_type;
    int vfs_classes_ready;
    /* FileSystem */
    Py_ssize_t fs_epoch, fs_cache, fs_device, fs_stats, fs_readahead_max;
    /* Cache */
    Py_ssize_t c_lock, c_files, c_tick, c_stats, c_frames, c_hint;
    /* VinoVFS, VinoFile */
    Py_ssize_t v_mutex, v_stats, vf_vfs, vf_kfile;
    /* OpenFile */
    Py_ssize_t of_plain, of_inode, of_history, of_pos, of_prefetch_hits, of_fs;
    /* Inode */
    Py_ssize_t ino_size, ino_direct, ino_bmap;
    /* FsStats */
    Py_ssize_t fs_plain_reads, fs_prefetch_hits, fs_readahead_blocks;
    /* CacheStats */
    Py_ssize_t cs_hits, cs_prefetch_hits;
    /* _Frame */
    Py_ssize_t fr_data, fr_last_use, fr_referenced, fr_prefetched, fr_dev, fr_block, fr_index;
    /* KernelFile */
    Py_ssize_t kf_of, kf_pool_base, kf_pending, kf_observer;
    /* VfsStats */
    Py_ssize_t vs_reads, vs_bytes_read;
    PyObject *n_acquire, *n_release; /* the methods called by name */
    PyObject *page; /* the bytes the last served hit returned (page_bytes) */
    unsigned long long served; /* reads plain_read answered (both entries) */
} S;

/* ------------------------------------------------------------------ helpers */

/* A new reference to the int in slot `off` of obj plus delta (NULL: no int there, or
 * an error; then the error is set). */
static PyObject *plus(PyObject *obj, Py_ssize_t off, long long delta) {
    PyObject *old = SLOT(obj, off);
    long long v;
    if (as_ll(old, &v) && v < (1LL << 62)) return PyLong_FromLongLong(v + delta);
    if (old == NULL) {
        PyErr_SetString(PyExc_AttributeError, "a count slot is not set");
        return NULL;
    }
    PyObject *d = PyLong_FromLongLong(delta);
    if (d == NULL) return NULL;
    PyObject *r = PyNumber_Add(old, d);
    Py_DECREF(d);
    return r;
}

/* ---- counts rewritten in place */

/* A count's new value, computed before anything is stored (so that a failure changes
 * nothing) and stored by count_store. A count is an int only its slot holds as a rule:
 * that one is rewritten in place (CPython 3.11's int: its one or two 30-bit digits), as
 * page_bytes rewrites a bytes object no one else holds -- no one can see it change, and
 * it saves a new int and the old one's release per count (~190 instructions; a page read
 * stores five). Any other count gets a new int, made when the count is computed.
 * Between the computing and the storing no Python code may run (so no one can take a
 * reference to the int meanwhile); count_store checks again all the same. */
typedef struct {
    PyObject *obj;   /* whose slot `off` holds the count (borrowed); NULL: nothing to store */
    Py_ssize_t off;
    long long value; /* the new value */
    PyObject *fresh; /* a new int to store, or NULL: the slot's own is rewritten */
    PyObject *was;   /* fresh NULL, from count_set or count_add: the slot's int, and its */
    Py_ssize_t ndigits; /* digits, as they were when the value was computed (else NULL) */
} Count;

#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define INT_DIGITS_KNOWN 1 /* 3.11: ob_size digits of PyLong_SHIFT bits, sign in ob_size */
#else
#define INT_DIGITS_KNOWN 0 /* elsewhere every count gets a new int */
#endif
#define SMALL_INTS_END 257 /* CPython shares the ints -5 .. 256: never rewritten */

/* 1 if the int `o` may be rewritten to hold v: exact, held by nothing but its slot, with
 * as many digits as v needs, and v not one of the shared small ints. */
static inline int rewritable(PyObject *o, long long v) {
#if INT_DIGITS_KNOWN
    if (o == NULL || !PyLong_CheckExact(o) || Py_REFCNT(o) != 1 || v < SMALL_INTS_END) return 0;
    Py_ssize_t n = Py_SIZE(o);
    return (n == 1 && v < (1LL << PyLong_SHIFT))
        || (n == 2 && v >= (1LL << PyLong_SHIFT) && v < (1LL << (2 * PyLong_SHIFT)));
#else
    (void)o;
    (void)v;
    return 0;
#endif
}

#if INT_DIGITS_KNOWN
/* The int o (rewritable to v) made to hold v. */
static inline void rewrite(PyObject *o, long long v) {
    digit *d = ((PyLongObject *)o)->ob_digit;
    d[0] = (digit)(v & PyLong_MASK);
    if (Py_SIZE(o) == 2) d[1] = (digit)(v >> PyLong_SHIFT);
}
#endif

/* The int in a count's slot as it is when it can be rewritten in place: exact, held by
 * its slot alone, of one or two digits; its value in *v. 0 for anything else (the general
 * helpers below decide). Inline, with the stores below: a page read computes and stores
 * seven counts, and the general helpers' calls and checks cost ~90 instructions each. */
#define ALWAYS_INLINE static inline __attribute__((always_inline))
ALWAYS_INLINE int owned_int(PyObject *o, long long *v) {
#if INT_DIGITS_KNOWN
    if (o == NULL || !Py_IS_TYPE(o, &PyLong_Type) || Py_REFCNT(o) != 1) return 0;
    const digit *d = ((PyLongObject *)o)->ob_digit;
    Py_ssize_t n = Py_SIZE(o);
    if (n == 1) *v = (long long)d[0];
    else if (n == 2) *v = (long long)d[0] | ((long long)d[1] << PyLong_SHIFT);
    else return 0;
    return 1;
#else
    (void)o;
    (void)v;
    return 0;
#endif
}

/* 1 if an int of n digits (owned_int's) can hold v as n digits, past the shared small
 * ints (one unsigned comparison: v below the range wraps past its top). */
ALWAYS_INLINE int fits_digits(Py_ssize_t n, long long v) {
#if INT_DIGITS_KNOWN
    typedef unsigned long long u64;
    return n == 1 ? (u64)v - SMALL_INTS_END < (u64)((1LL << PyLong_SHIFT) - SMALL_INTS_END)
                  : (u64)v - (1ULL << PyLong_SHIFT)
                        < (u64)((1LL << (2 * PyLong_SHIFT)) - (1LL << PyLong_SHIFT));
#else
    (void)n;
    (void)v;
    return 0;
#endif
}

/* as_ll, inline for the non-negative ints of one or two digits a page read meets (its
 * offset, block, tick, epoch, history), as_ll's call for the rest. */
ALWAYS_INLINE int ll_of(PyObject *o, long long *out) {
#if INT_DIGITS_KNOWN
    if (o != NULL && Py_IS_TYPE(o, &PyLong_Type)) {
        const digit *d = ((PyLongObject *)o)->ob_digit;
        Py_ssize_t n = Py_SIZE(o);
        if (n == 1) {
            *out = (long long)d[0];
            return 1;
        }
        if (n == 2) {
            *out = (long long)d[0] | ((long long)d[1] << PyLong_SHIFT);
            return 1;
        }
    }
#endif
    return as_ll(o, out);
}

/* PyObject_IsTrue of a flag slot, without the call for True and False. */
ALWAYS_INLINE int truth(PyObject *o) {
    return o == Py_True ? 1 : o == Py_False ? 0 : PyObject_IsTrue(o);
}

static int count_set_general(Count *c, PyObject *obj, Py_ssize_t off, long long v);
static int count_add_general(Count *c, PyObject *obj, Py_ssize_t off, long long delta);
static void count_store_general(Count *c);

/* *c = the count in slot `off` of obj set to v: 0, or -1 with MemoryError set. */
ALWAYS_INLINE int count_set(Count *c, PyObject *obj, Py_ssize_t off, long long v) {
    PyObject *o = SLOT(obj, off);
    long long old;
    if (owned_int(o, &old) && fits_digits(Py_SIZE(o), v)) {
        c->obj = obj;
        c->off = off;
        c->value = v;
        c->fresh = NULL;
        c->was = o;
        c->ndigits = Py_SIZE(o);
        return 0;
    }
    return count_set_general(c, obj, off, v);
}

/* *c = the count in slot `off` of obj plus delta: 0, or -1 with the error set (no int
 * there, no memory). A count past a long long is added as the Python adds. */
ALWAYS_INLINE int count_add(Count *c, PyObject *obj, Py_ssize_t off, long long delta) {
    PyObject *o = SLOT(obj, off);
    long long old;
    if (owned_int(o, &old) && delta >= 0 && fits_digits(Py_SIZE(o), old + delta)) {
        c->obj = obj;
        c->off = off;
        c->value = old + delta;
        c->fresh = NULL;
        c->was = o;
        c->ndigits = Py_SIZE(o);
        return 0;
    }
    return count_add_general(c, obj, off, delta);
}

/* Store the count c was computed for (nothing if none). Never fails: if the int became
 * held meanwhile and no new one can be had, the count is left as it was. */
ALWAYS_INLINE void count_store(Count *c) {
#if INT_DIGITS_KNOWN
    if (c->obj != NULL && c->fresh == NULL) {
        PyObject *o = SLOT(c->obj, c->off);
        /* checked again: the same int, still its slot's alone, of the digits computed for */
        if (o == c->was && Py_REFCNT(o) == 1 && Py_SIZE(o) == c->ndigits) {
            digit *d = ((PyLongObject *)o)->ob_digit;
            d[0] = (digit)(c->value & PyLong_MASK);
            if (c->ndigits == 2) d[1] = (digit)(c->value >> PyLong_SHIFT);
            c->obj = NULL;
            return;
        }
    }
#endif
    count_store_general(c);
}

static int count_set_general(Count *c, PyObject *obj, Py_ssize_t off, long long v) {
    c->value = v;
    c->fresh = NULL;
    c->was = NULL; /* count_store checks in full */
    if (!rewritable(SLOT(obj, off), v) && (c->fresh = PyLong_FromLongLong(v)) == NULL) {
        c->obj = NULL;
        return -1;
    }
    c->obj = obj;
    c->off = off;
    return 0;
}

static int count_add_general(Count *c, PyObject *obj, Py_ssize_t off, long long delta) {
    long long v;
    if (as_ll(SLOT(obj, off), &v) && v < (1LL << 62))
        return count_set_general(c, obj, off, v + delta);
    c->value = 0;
    c->fresh = plus(obj, off, delta);
    c->obj = c->fresh != NULL ? obj : NULL;
    c->off = off;
    return c->fresh != NULL ? 0 : -1;
}

static void count_store_general(Count *c) {
    if (c->obj == NULL) return;
    if (c->fresh != NULL) {
        slot_put(c->obj, c->off, c->fresh);
    } else {
#if INT_DIGITS_KNOWN
        PyObject *o = SLOT(c->obj, c->off);
        if (rewritable(o, c->value)) {
            rewrite(o, c->value);
        } else
#endif
        {
            PyObject *fresh = PyLong_FromLongLong(c->value);
            if (fresh != NULL)
                slot_put(c->obj, c->off, fresh);
            else
                PyErr_Clear();
        }
    }
    c->obj = NULL;
    c->fresh = NULL;
}

/* A Count with nothing to store or drop (only the fields count_store and count_drop read
 * are set: a `= {0}` of the structs below is a call of the compiler runtime's memset). */
ALWAYS_INLINE void count_none(Count *c) {
    c->obj = NULL;
    c->fresh = NULL;
}

ALWAYS_INLINE void count_drop(Count *c) {
    Py_CLEAR(c->fresh);
    c->obj = NULL;
}

/* ------------------------------------------------------------------ RLock */

/* threading.RLock's interface (acquire(blocking, timeout), release, with, _is_owned),
 * so that the reads here try it without a Python call. Its state (owner, count, waiters)
 * changes only with the GIL held, so taking or giving a lock no other thread waits for is
 * a few loads and stores (a page read takes and gives two: the VFS's and the cache's);
 * a PyThread lock, `gate`, is only where waiters sleep. A release that frees the lock
 * while waiters are counted leaves the gate with one permit; each waiter that wakes takes
 * the lock if it is free, else sleeps again. So no wake-up is lost: a waiter is counted
 * before it lets the GIL go, and the lock is freed only with the GIL held. */
typedef struct {
    PyObject_HEAD
    /* Invariant: held, but for one permit a release gave a waiter since (never two). */
    PyThread_type_lock gate;
    unsigned long owner; /* Invariant: the holder's thread ident while count > 0, else 0 */
    unsigned long count; /* times the holder took it */
    Py_ssize_t waiters;  /* Invariant: the threads in rlock_wait */
} RLock;

static PyTypeObject RLockType;

static PyObject *rlock_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "RLock() takes no arguments");
        return NULL;
    }
    PyObject *self = new_with_lock(type, offsetof(RLock, gate));
    if (self != NULL) /* a new lock is free: this takes it at once */
        PyThread_acquire_lock(((RLock *)self)->gate, WAIT_LOCK);
    return self;
}

static void rlock_dealloc(PyObject *self) {
    RLock *r = (RLock *)self;
    if (r->gate != NULL) PyThread_free_lock(r->gate); /* no waiter: it holds a reference */
    Py_TYPE(self)->tp_free(self);
}

/* 1: taken (or taken again by its holder) without waiting; 0: another thread holds it. */
/* rlock_try for thread `me` (PyThread_get_thread_ident(): the caller's, asked once for
 * the locks of one read). */
static inline int rlock_try_as(RLock *r, unsigned long me) {
    if (r->count == 0) {
        r->owner = me;
        r->count = 1;
        return 1;
    }
    if (r->owner == me) {
        r->count++;
        return 1;
    }
    return 0;
}

static inline int rlock_try(RLock *r) {
    return rlock_try_as(r, PyThread_get_thread_ident());
}

/* Wait with the GIL let go until the lock is free and take it, up to timeout_us (-1: for
 * ever); signals run their handlers meanwhile (as threading's locks let them). 1: taken,
 * 0: timed out, -1: a handler raised. */
static int rlock_wait(RLock *r, long long timeout_us) {
    unsigned long me = PyThread_get_thread_ident();
    long long t0 = now_ns(), left = timeout_us;
    int result;
    r->waiters++;
    for (;;) {
        PyLockStatus st;
        Py_BEGIN_ALLOW_THREADS
        st = PyThread_acquire_lock_timed(r->gate, left, 1);
        Py_END_ALLOW_THREADS
        if (r->count == 0) { /* free, whether a permit woke us or the time ran out */
            r->owner = me;
            r->count = 1;
            result = 1;
            break;
        }
        if (st == PY_LOCK_INTR && Py_MakePendingCalls() < 0) {
            result = -1;
            break;
        }
        if (timeout_us >= 0) {
            left = timeout_us - (now_ns() - t0) / 1000;
            if (left <= 0) {
                result = 0;
                break;
            }
        }
    }
    r->waiters--;
    return result;
}

static PyObject *rlock_acquire(PyObject *self, PyObject *args, PyObject *kw) {
    RLock *r = (RLock *)self;
    int blocking;
    double timeout;
    if (acquire_args(args, kw, &blocking, &timeout) < 0) return NULL;
    if (rlock_try(r)) {
        if (r->count == 0) { /* wrapped around: refuse, as threading.RLock does */
            r->count = (unsigned long)-1;
            PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
            return NULL;
        }
        Py_RETURN_TRUE;
    }
    if (!blocking || timeout == 0) Py_RETURN_FALSE;
    double us = timeout * 1e6;
    if (us > (double)PY_TIMEOUT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return NULL;
    }
    int got = rlock_wait(r, timeout < 0 ? -1 : (long long)us);
    if (got < 0) return NULL;
    return PyBool_FromLong(got);
}

static inline int rlock_give_as(RLock *r, unsigned long me) {
    if (r->count == 0 || r->owner != me) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return -1;
    }
    if (--r->count == 0) {
        r->owner = 0;
        if (r->waiters > 0) { /* one permit: taken if there was one, then given */
            (void)PyThread_acquire_lock_timed(r->gate, 0, 0);
            PyThread_release_lock(r->gate);
        }
    }
    return 0;
}

static inline int rlock_give(RLock *r) {
    return rlock_give_as(r, PyThread_get_thread_ident());
}

static PyObject *rlock_release(PyObject *self, PyObject *unused) {
    if (rlock_give((RLock *)self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *rlock_enter(PyObject *self, PyObject *unused) {
    return rlock_acquire(self, NULL, NULL);
}

static PyObject *rlock_exit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return rlock_release(self, NULL);
}

static PyObject *rlock_is_owned(PyObject *self, PyObject *unused) {
    RLock *r = (RLock *)self;
    return PyBool_FromLong(r->count > 0 && r->owner == PyThread_get_thread_ident());
}

static PyObject *rlock_repr(PyObject *self) {
    RLock *r = (RLock *)self;
    return PyUnicode_FromFormat("<%s %s object owner=%lu count=%lu at %p>",
                                r->count > 0 ? "locked" : "unlocked", Py_TYPE(self)->tp_name,
                                r->owner, r->count, self);
}

static PyMethodDef rlock_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))rlock_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool, as threading.RLock's"},
    {"release", rlock_release, METH_NOARGS, "release(); RuntimeError if this thread does not hold it"},
    {"_is_owned", rlock_is_owned, METH_NOARGS, "True if this thread holds it"},
    {"__enter__", rlock_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))rlock_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RLockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_plainread.RLock",
    .tp_basicsize = sizeof(RLock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = rlock_new,
    .tp_dealloc = rlock_dealloc,
    .tp_repr = rlock_repr,
    .tp_methods = rlock_methods,
    .tp_doc = "RLock(): threading.RLock's interface, tried from C by the plain read.",
};

/* 1: `lock` taken without waiting by thread `me` (the caller, PyThread_get_thread_ident());
 * 0: another thread holds it; -1: error. */
static int lock_try_as(PyObject *lock, unsigned long me) {
    if (Py_IS_TYPE(lock, &RLockType)) return rlock_try_as((RLock *)lock, me);
    PyObject *args[2] = {lock, Py_False};
    PyObject *r = PyObject_VectorcallMethod(S.n_acquire, args, 2, NULL);
    if (r == NULL) return -1;
    int ok = r == Py_True ? 1 : PyObject_IsTrue(r);
    Py_DECREF(r);
    return ok;
}

static int lock_give_as(PyObject *lock, unsigned long me) {
    if (Py_IS_TYPE(lock, &RLockType)) return rlock_give_as((RLock *)lock, me);
    PyObject *args[1] = {lock};
    PyObject *r = PyObject_VectorcallMethod(S.n_release, args, 1, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

static int lock_try(PyObject *lock) {
    return lock_try_as(lock, PyThread_get_thread_ident());
}

static int lock_give(PyObject *lock) {
    return lock_give_as(lock, PyThread_get_thread_ident());
}

/* The open file's access history (OpenFile._history): a list of ints, most recent
 * first, at most S.hist_max long (fileio.py pushes as this does). Pushed without a call
 * and, once it is full, without a new int: the oldest entry's int, if nothing but the
 * list holds it, is rewritten to hold the new block (Count's rewrite) and moved to the
 * front; the pointers between shift by one. */

/* The shift of the history's pointers: the C library's memmove (found at setup_fs, as
 * page_copy is), not the compiler runtime's the build links in (~80 instructions for 15
 * pointers, a byte at a time). */
static void *(*ptr_move)(void *, const void *, size_t) = memmove;

/* The history's length if it is an exact list of at most hist_max entries, else -1. */
static inline Py_ssize_t hist_len(PyObject *hist) {
    if (!PyList_CheckExact(hist) || PyList_GET_SIZE(hist) > S.hist_max) return -1;
    return PyList_GET_SIZE(hist);
}

/* hist[i] (i < its length) as a long long: 1; 0 if it is not one (no error set). */
static inline int hist_at(PyObject *hist, Py_ssize_t i, long long *out) {
    return ll_of(PyList_GET_ITEM(hist, i), out);
}

/* A push, undone exactly by hist_undo: how it went and what it took. */
typedef struct {
    int how;           /* 0: nothing; 1: inserted (the list grew); 2: rotated (it was full) */
    PyObject *dropped; /* 2: the oldest entry's int, dropped (the caller releases it) or
                        * rewritten and moved to the front (then NULL) */
    long long old;     /* 2, rewritten: its value before */
} HistPush;

/* hist.insert(0, bidx), the oldest dropped once it is longer than hist_max (hist_len
 * said it is a list of at most hist_max): 0, or -1 with the error set, nothing changed. */
static int hist_push(PyObject *hist, long long bidx, HistPush *p) {
    Py_ssize_t n = PyList_GET_SIZE(hist);
    p->how = 0;
    p->dropped = NULL;
    if (n < S.hist_max) {
        PyObject *v = PyLong_FromLongLong(bidx);
        if (v == NULL) return -1;
        int bad = PyList_Insert(hist, 0, v);
        Py_DECREF(v);
        if (bad < 0) return -1;
        p->how = 1;
        return 0;
    }
    PyObject **item = ((PyListObject *)hist)->ob_item, *last = item[n - 1], *v = last;
#if INT_DIGITS_KNOWN
    if (rewritable(last, bidx) && as_ll(last, &p->old)) {
        rewrite(last, bidx);
    } else
#endif
    {
        if ((v = PyLong_FromLongLong(bidx)) == NULL) return -1;
        p->dropped = last;
    }
    ptr_move(item + 1, item, (size_t)(n - 1) * sizeof *item);
    item[0] = v;
    p->how = 2;
    return 0;
}

/* The history as it was before the push p (which nothing has changed since). */
static void hist_undo(PyObject *hist, HistPush *p) {
    if (p->how == 1) {
        (void)PyList_SetSlice(hist, 0, 1, NULL); /* a shrink: cannot fail */
    } else if (p->how == 2) {
        Py_ssize_t n = PyList_GET_SIZE(hist);
        PyObject **item = ((PyListObject *)hist)->ob_item, *first = item[0];
        ptr_move(item, item + 1, (size_t)(n - 1) * sizeof *item);
        if (p->dropped != NULL) {
            item[n - 1] = p->dropped;
            Py_DECREF(first);
        } else {
#if INT_DIGITS_KNOWN
            rewrite(first, p->old);
#endif
            item[n - 1] = first;
        }
    }
    p->how = 0;
    p->dropped = NULL;
}

/* The device block of file block b >= 0 (a borrowed int, or NULL when the remembered
 * map has no entry: None, or past the list's end). `direct` and `bmap` are the inode's
 * lists (Inode.bmap is indexed by file block: one index, no hash probe). *bad = 1 if
 * the inode is not as expected. */
static PyObject *block_of(PyObject *direct, PyObject *bmap, long long b, int *bad) {
    if (b < S.ndirect) {
        if (b >= PyList_GET_SIZE(direct)) {
            *bad = 1;
            return NULL;
        }
        return PyList_GET_ITEM(direct, b);
    }
    if (b >= PyList_GET_SIZE(bmap)) return NULL;
    PyObject *blk = PyList_GET_ITEM(bmap, b);
    return blk == Py_None ? NULL : blk;
}

/* 1 if (dev, blk) is a key of files, 0 if not, -1 on error. */
static int resident(PyObject *files, PyObject *dev, PyObject *blk, PyObject **frame) {
    PyObject *key = PyTuple_Pack(2, dev, blk);
    if (key == NULL) return -1;
    PyObject *f = PyDict_GetItemWithError(files, key);
    Py_DECREF(key);
    if (f == NULL) return PyErr_Occurred() ? -1 : 0;
    if (frame != NULL) *frame = f;
    return 1;
}

/* The cache's hint (Cache._hint): a bytearray of 2^k uint32 entries; entry blk % 2^k is
 * 0 or 1 + the index of the frame that held a block of that number when this code last
 * found it in _files. Never trusted: the frame it names is used only if it holds
 * (dev, blk) itself -- frame.dev is dev and frame.block == blk, which the cache's
 * invariant ties to _files[(dev, blk)] being that frame -- so a stale, colliding or
 * other device's entry only costs the probe of _files it saves. Only this code writes
 * it. The entry for blk, or NULL when there is no usable hint array. */
static uint32_t *hint_entry(PyObject *cache, long long blkv) {
    PyObject *hint = SLOT(cache, S.c_hint);
    if (hint == NULL || !PyByteArray_CheckExact(hint)) return NULL;
    Py_ssize_t n = PyByteArray_GET_SIZE(hint) / (Py_ssize_t)sizeof(uint32_t);
    if (n <= 0 || (n & (n - 1)) || PyByteArray_GET_SIZE(hint) % sizeof(uint32_t)) return NULL;
    return (uint32_t *)PyByteArray_AS_STRING(hint) + (blkv & (n - 1)); /* malloc'd: aligned */
}

/* The frame holding block blk (an int of value blkv) of dev (borrowed) as the hint names
 * it, or NULL (no error set) if it names none that holds it now. frame.block is most
 * often the block map's own int object (hint_set makes it so): then it is not read. */
static PyObject *hinted(PyObject *cache, uint32_t *entry, PyObject *dev, PyObject *blk,
                        long long blkv) {
    PyObject *frames = SLOT(cache, S.c_frames);
    if (entry == NULL || *entry == 0 || frames == NULL || !PyList_CheckExact(frames)
        || *entry > (uint64_t)PyList_GET_SIZE(frames))
        return NULL;
    PyObject *f = PyList_GET_ITEM(frames, *entry - 1);
    long long b;
    if (Py_TYPE(f) != S.frame_type || SLOT(f, S.fr_dev) != dev) return NULL;
    PyObject *fb = SLOT(f, S.fr_block);
    if (fb != blk && (!as_ll(fb, &b) || b != blkv)) return NULL;
    return f;
}

/* Record in the hint that `frame` (found in _files, or just given the block) holds
 * block blkv of `entry`; if blk (an int of that value, or NULL) is given, frame.block
 * becomes blk itself if it is another int of that value (an int's identity means
 * nothing; hinted then need not read it). */
static void hint_set(PyObject *cache, uint32_t *entry, PyObject *frame, PyObject *blk,
                     long long blkv) {
    PyObject *frames = SLOT(cache, S.c_frames);
    long long i, b;
    if (entry == NULL || frames == NULL || !PyList_CheckExact(frames)
        || !as_ll(SLOT(frame, S.fr_index), &i) || i < 0 || i >= PyList_GET_SIZE(frames)
        || i >= UINT32_MAX || PyList_GET_ITEM(frames, i) != frame)
        return;
    *entry = (uint32_t)(i + 1);
    PyObject *fb = SLOT(frame, S.fr_block);
    if (blk != NULL && fb != blk && PyLong_CheckExact(blk) && as_ll(fb, &b) && b == blkv) {
        Py_INCREF(blk);
        slot_put(frame, S.fr_block, blk);
    }
}

/* A new reference to S.bs bytes copied from src, for a served hit: the bytes object the
 * last hit returned when nothing but this module holds it any more (apsw copies a page
 * into SQLite's buffer and lets go of it before SQLite's next read), else a new one. A
 * bytes object no one else holds is seen by no one while it is overwritten (its cached
 * hash is reset); one that anybody holds, even a memoryview of it, is never touched. It
 * saves a 4 KiB allocation and its release per page read. NULL: no memory. */
typedef void *(*CopyFn)(void *, const void *, size_t);

/* The copy of a page: the C library's memcpy, the one CPython's own copies run (found at
 * setup_fs), not the compiler runtime's that the build links into this library, which
 * copies 4 KiB with twice the instructions (no wide moves). */
static CopyFn page_copy = memcpy;

static void find_page_copy(void) {
    void *libc = dlsym(RTLD_DEFAULT, "memcpy");
    if (libc != NULL) *(void **)&page_copy = libc; /* POSIX's way to a function pointer */
    void *move = dlsym(RTLD_DEFAULT, "memmove");
    if (move != NULL) *(void **)&ptr_move = move;
}

/* The bytes object page_bytes fills, for a caller that fills it itself (a load, once
 * the block is read): S.page when no one else holds it, else a new one, kept as S.page.
 * Only this module hands it out, and only to be filled and returned, so until the caller
 * returns it no one else can hold it (a read that runs meanwhile, re-entering, finds it
 * held and gets a new one). Its hash is reset. NULL: no memory. */
static PyObject *page_out(void) {
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030C0000 /* ob_shash: 3.11 */
    PyObject *b = S.page;
    if (b != NULL && Py_REFCNT(b) == 1 && PyBytes_GET_SIZE(b) == S.bs) {
#pragma GCC diagnostic push /* the field is deprecated in 3.11 (and gone after 3.12) */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        ((PyBytesObject *)b)->ob_shash = -1;
#pragma GCC diagnostic pop
        Py_INCREF(b);
        return b;
    }
    PyObject *fresh = PyBytes_FromStringAndSize(NULL, S.bs);
    if (fresh == NULL) return NULL;
    Py_INCREF(fresh);
    Py_XSETREF(S.page, fresh); /* ours of the old one dropped: its holders keep it */
    return fresh;
#else
    return PyBytes_FromStringAndSize(NULL, S.bs);
#endif
}

static PyObject *page_bytes(const char *src) {
    PyObject *b = page_out();
    if (b != NULL) page_copy(PyBytes_AS_STRING(b), src, (size_t)S.bs);
    return b;
}

/* ------------------------------------------------------------------ plain_read */

/* FileIO._plain_ahead: how many blocks the built-in read-ahead asks for after a
 * sequential plain read of bidx, if all are resident or holes; -1 if any is not; -2
 * on an unexpected object (decline). Caller holds the cache's lock. */
static long long plain_ahead(PyObject *fs, PyObject *files, PyObject *dev, PyObject *direct,
                             PyObject *bmap, long long size, long long bidx, PyObject *hist,
                             Py_ssize_t hlen, long long h0) {
    Py_ssize_t at = h0 == bidx ? 2 : 1;
    int has_prev2 = hlen > at;
    long long prev2 = 0;
    if (has_prev2 && !hist_at(hist, at, &prev2)) return -2;
    long long max_out;
    if (!as_ll(SLOT(fs, S.fs_readahead_max), &max_out)) return -2;
    if (max_out <= 0 || (has_prev2 && prev2 == bidx - 2 && bidx % max_out)) return 0;
    long long blocks = size / S.bs + (size % S.bs != 0);
    long long last = bidx + 1 + max_out < blocks ? bidx + 1 + max_out : blocks;
    for (long long b = bidx + 1; b < last; b++) {
        int bad = 0;
        PyObject *blk = block_of(direct, bmap, b, &bad);
        if (bad) {
            PyErr_Clear();
            return -2;
        }
        if (blk == NULL) return -1;
        long long v;
        if (!as_ll(blk, &v)) return -2;
        if (v) {
            int r = resident(files, dev, blk, NULL);
            if (r < 0) {
                PyErr_Clear();
                return -2;
            }
            if (!r) return -1;
        }
    }
    return last - bidx - 1 > 0 ? last - bidx - 1 : 0;
}

/* The served read's changes, all computed before the first is stored. */
typedef struct {
    PyObject *pf_cache, *pf_fs, *pf_of, *ahead;
    Count tick, last_use, hits, plain, pos; /* the tick and last_use: two ints, not one
                                               shared (shared, neither is rewritable) */
} Counts;

ALWAYS_INLINE void counts_none(Counts *c) {
    c->pf_cache = c->pf_fs = c->pf_of = c->ahead = NULL;
    count_none(&c->tick);
    count_none(&c->last_use);
    count_none(&c->hits);
    count_none(&c->plain);
    count_none(&c->pos);
}

ALWAYS_INLINE void counts_drop(Counts *c) {
    Py_XDECREF(c->pf_cache);
    Py_XDECREF(c->pf_fs);
    Py_XDECREF(c->pf_of);
    Py_XDECREF(c->ahead);
    count_drop(&c->tick);
    count_drop(&c->last_use);
    count_drop(&c->hits);
    count_drop(&c->plain);
    count_drop(&c->pos);
}

/* ------------------------------------------------------------------ the miss */

/* The plain read's loads (load_locked): a miss (Cache._miss with BlockDevice.read_into
 * and Cache._sweep), and after a sequential step the built-in read-ahead the general path
 * would run (FileIO._prefetch, Cache.prefetch), with the rest of FileIO.pread's plain
 * path, done here in their common case: a BlockDevice with no crash plan armed and
 * nothing patched in, every block's map remembered, and every frame taken free or a
 * clean file block the global clock picks (an anonymous page's policy is never asked
 * here, a dirty block never written back here). Everything is checked, the frames
 * chosen as the Python would choose them (the clock simulated on the frames, Sim), every
 * new value made; then the blocks are read (the block into the cache's spare, each run
 * into spare page buffers: one pread(v) each under the device's lock and the clock's,
 * as read_into reads), and only then is anything stored. A read the device does not
 * complete, a lock another thread holds, or anything unexpected declines having changed
 * nothing (the clock's bits put back), and the Python path runs as before (and meets
 * the error). */
static struct {
    int ready, off; /* off: misses(False) was asked, before or after the setup */
    PyTypeObject *cache_type, *dev_type, *dstats_type, *clock_type, *lock_type, *profile_type;
    PyObject *twins; /* ((class, name, function), ...): the Python twins, as set up */
    unsigned int tags[3]; /* the twins' classes' version tags when they were last seen */
    PyObject *seen_dict[2]; /* the cache's and the device's instance dicts last checked ... */
    uint64_t seen_version[2]; /* ... and their versions then (CPython 3.11's ma_version_tag) */
    long long prefetch_fraction, spare_pages; /* params.PREFETCH_FRACTION, _SPARE_PAGES */
    /* _Frame */
    Py_ssize_t fr_dev, fr_block, fr_aspace, fr_vpn, fr_dirty, fr_pinned, fr_key;
    /* CacheStats */
    Py_ssize_t cs_misses, cs_evictions, cs_prefetch_unused, cs_prefetches;
    /* FsStats, OpenFile */
    Py_ssize_t fs_prefetches, of_prefetches;
    /* DiskProfile */
    Py_ssize_t dp_overhead, dp_seek, dp_rotation, dp_rate;
    /* Cache (its loads' slots) */
    Py_ssize_t c_free, c_hand, c_nframes, c_spare, c_spares;
    /* BlockDevice */
    Py_ssize_t d_nblocks, d_fd, d_power, d_head, d_block_ns, d_stats, d_clock, d_lock, d_profile;
    /* DeviceStats */
    Py_ssize_t ds_reads, ds_blocks_read, ds_bytes_read, ds_seeks, ds_busy_ns;
    /* SimClock */
    Py_ssize_t ck_now, ck_lock;
    unsigned long long served, served_ahead; /* misses, read-ahead blocks loaded here */
} M;

/* 1 / 0 for a bool, -1 for anything else. */
static inline int flag(PyObject *o) { return o == Py_True ? 1 : o == Py_False ? 0 : -1; }

/* 1 if the type's version tag is still `tag` (nothing in it or its bases changed since). */
static inline int same_tag(PyTypeObject *t, unsigned int tag) {
    return tag != 0 && PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG) && t->tp_version_tag == tag;
}

static inline unsigned int tag_of(PyTypeObject *t) {
    return PyType_HasFeature(t, Py_TPFLAGS_VALID_VERSION_TAG) ? t->tp_version_tag : 0;
}

/* 1 if the Python this code is the twin of is what would run: the functions set up
 * (setup_miss) still found on their classes (whose version tags, which any change to a
 * class or its bases invalidates, save the lookups), none shadowed on the cache or the
 * device (a fault injector patches the device's read_into there). The objects' exact
 * classes are the caller's to check. 0 otherwise (no error set). */
static int twins_unchanged(PyObject *fs, PyObject *cache, PyObject *dev) {
    PyObject *objs[3] = {fs, cache, dev};
    for (int k = 0; k < 3; k++) {
        PyTypeObject *t = Py_TYPE(objs[k]);
        if (same_tag(t, M.tags[k])) continue;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(M.twins); i++) {
            PyObject *tw = PyTuple_GET_ITEM(M.twins, i);
            if (PyTuple_GET_ITEM(tw, 0) == (PyObject *)t
                && _PyType_Lookup(t, PyTuple_GET_ITEM(tw, 1)) != PyTuple_GET_ITEM(tw, 2))
                return 0;
        }
        M.tags[k] = tag_of(t);
    }
    PyObject **cd = _PyObject_GetDictPtr(cache), **dd = _PyObject_GetDictPtr(dev);
    if (cd == NULL || *cd == NULL || dd == NULL || *dd == NULL) return 0;
#if PY_VERSION_HEX < 0x030C0000 /* a dict's version changes with every change to it */
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wdeprecated-declarations\"")
    uint64_t cv = ((PyDictObject *)*cd)->ma_version_tag, dv = ((PyDictObject *)*dd)->ma_version_tag;
    _Pragma("GCC diagnostic pop")
    if (M.seen_dict[0] == *cd && M.seen_version[0] == cv && M.seen_dict[1] == *dd
        && M.seen_version[1] == dv)
        return 1; /* the same dicts, unchanged since they were found clean */
#endif
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(M.twins); i++) {
        PyObject *tw = PyTuple_GET_ITEM(M.twins, i), *cls = PyTuple_GET_ITEM(tw, 0);
        PyObject *d = cls == (PyObject *)Py_TYPE(cache) ? *cd
            : cls == (PyObject *)Py_TYPE(dev) ? *dd : NULL;
        if (d == NULL) continue;
        if (PyDict_GetItemWithError(d, PyTuple_GET_ITEM(tw, 1)) != NULL || PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
    }
#if PY_VERSION_HEX < 0x030C0000
    M.seen_dict[0] = *cd; /* compared only, never dereferenced: a freed dict's address */
    M.seen_dict[1] = *dd; /* reused has a new version (versions are global and grow) */
    M.seen_version[0] = cv;
    M.seen_version[1] = dv;
#endif
    return 1;
}

/* ---- the clock, simulated: the frames a load takes, chosen before anything is read */

#define MAX_TAKES 40 /* the block read and its read-ahead (at most READAHEAD_MAX_OUT_LIMIT) */

/* One frame a load takes: a free one, or the clock's victim (a clean file block). */
typedef struct {
    PyObject *frame;  /* borrowed: the cache's _frames holds it */
    int run;          /* -1: the block read; 0, 1, ...: the read-ahead's runs */
    int vpf;          /* the victim was prefetched and never read (prefetch_unused) */
    long long blk;    /* the block it will hold */
    PyObject *key;    /* (dev, blk), new: the frame's key (_Frame.key) once it holds blk */
    PyObject *vkey;   /* the victim's key (its _Frame.key), new; NULL: a free frame */
} Take;

/* The state of the cache as the Python would leave it after each take, kept on the
 * frames themselves while the GIL is held (no Python code runs meanwhile): the bits the
 * sweeps clear (undone if the load declines), and every frame taken marked pinned
 * (unmarked once the simulation ends), so the next sweep skips it as the Python skips
 * a frame it has just claimed -- except that it may take one claimed by an earlier run
 * (the Python unpins a run's frames when it is done), which sends the load to the
 * Python (a sweep that laps the whole cache; rare). */
typedef struct {
    PyObject *frames;
    Py_ssize_t n, hand, nfree; /* nfree: free frames not taken yet (popped from the end) */
    PyObject *freel;
    PyObject *held; /* the frame a hit reads: pinned too (it is referenced by then) */
    Take t[MAX_TAKES];
    int ntakes;
    PyObject **cleared; /* frames whose reference bit a sweep cleared */
    Py_ssize_t ncleared, cap;
} Sim;

static void sim_undo_bits(Sim *s) {
    for (Py_ssize_t i = 0; i < s->ncleared; i++) {
        Py_INCREF(Py_True);
        slot_put(s->cleared[i], S.fr_referenced, Py_True);
    }
    s->ncleared = 0;
}

/* The pins the simulation set, taken off. */
static void sim_unpin(Sim *s) {
    for (int i = 0; i < s->ntakes; i++) {
        Py_INCREF(Py_False);
        slot_put(s->t[i].frame, M.fr_pinned, Py_False);
    }
    if (s->held != NULL) {
        Py_INCREF(Py_False);
        slot_put(s->held, M.fr_pinned, Py_False);
    }
}

static void sim_drop(Sim *s) {
    for (int i = 0; i < s->ntakes; i++) {
        Py_CLEAR(s->t[i].key);
        Py_CLEAR(s->t[i].vkey);
    }
    PyMem_Free(s->cleared);
    s->cleared = NULL;
}

/* The run a frame the simulation pinned belongs to (-1: the block read, or the hit's
 * frame), or -2 if it is not one of them. */
static int sim_run_of(Sim *s, PyObject *f) {
    if (f == s->held) return -1;
    for (int i = 0; i < s->ntakes; i++)
        if (s->t[i].frame == f) return s->t[i].run;
    return -2;
}

/* Cache._take_frame(None) for block `blk` of run `run` (`blko`: an int of that value,
 * or NULL), simulated: a free frame, else the global clock's victim (Cache._sweep),
 * which must be a clean file block. 0: taken; -1: declined (no error set: the Python
 * path will meet it), -2: an error. */
static int sim_take(Sim *s, PyObject *dev, long long blk, PyObject *blko, int run) {
    if (s->ntakes >= MAX_TAKES) return -1;
    Take *t = &s->t[s->ntakes];
    PyObject *f = NULL;
    if (s->nfree > 0) {
        long long idx;
        if (!as_ll(PyList_GET_ITEM(s->freel, s->nfree - 1), &idx) || idx < 0 || idx >= s->n)
            return -1;
        f = PyList_GET_ITEM(s->frames, idx);
        if (Py_TYPE(f) != S.frame_type || SLOT(f, M.fr_dev) != Py_None
            || SLOT(f, M.fr_aspace) != Py_None || SLOT(f, M.fr_pinned) != Py_False)
            return -1;
        s->nfree--;
        t->vkey = NULL;
        t->vpf = 0;
    } else {
        Py_ssize_t n = s->n, hand = s->hand;
        for (Py_ssize_t k = 0; k < 2 * n && f == NULL; k++) { /* as _sweep: two laps at most */
            PyObject *g = PyList_GET_ITEM(s->frames, hand);
            hand = (hand + 1) % n;
            if (Py_TYPE(g) != S.frame_type) return -1;
            int pinned = flag(SLOT(g, M.fr_pinned));
            PyObject *d = SLOT(g, M.fr_dev), *a = SLOT(g, M.fr_aspace);
            if (pinned < 0 || d == NULL || a == NULL) return -1;
            if (pinned) {
                int r = sim_run_of(s, g);
                if (r != -2 && r != run) return -1; /* the Python sees it unpinned: lapped */
                continue;
            }
            if (d == Py_None && a == Py_None) continue; /* free */
            int ref = flag(SLOT(g, S.fr_referenced));
            if (ref < 0) return -1;
            if (ref) { /* its second chance, cleared (undone if the load declines) */
                if (s->ncleared == s->cap) {
                    Py_ssize_t cap = s->cap ? 2 * s->cap : 64;
                    PyObject **p = PyMem_Realloc(s->cleared, (size_t)cap * sizeof *p);
                    if (p == NULL) {
                        PyErr_NoMemory();
                        return -2;
                    }
                    s->cleared = p;
                    s->cap = cap;
                }
                s->cleared[s->ncleared++] = g;
                Py_INCREF(Py_False);
                slot_put(g, S.fr_referenced, Py_False);
                continue;
            }
            /* The victim: an address space's page is its policy's to pick, a dirty block
             * is written back first -- both the Python's. */
            int pf = flag(SLOT(g, S.fr_prefetched)), dirty = flag(SLOT(g, M.fr_dirty));
            PyObject *vb = SLOT(g, M.fr_block), *vk = SLOT(g, M.fr_key);
            long long vbv, kbv;
            if (a != Py_None || dirty != 0 || pf < 0 || vb == NULL || vk == NULL
                || !PyTuple_CheckExact(vk) || PyTuple_GET_SIZE(vk) != 2
                || PyTuple_GET_ITEM(vk, 0) != d || !as_ll(vb, &vbv)
                || !as_ll(PyTuple_GET_ITEM(vk, 1), &kbv) || kbv != vbv)
                return -1; /* (its key, _Frame.key, is (dev, block): not built again) */
            Py_INCREF(vk);
            t->vkey = vk;
            t->vpf = pf;
            f = g;
        }
        if (f == NULL) return -1; /* all pinned: the Python raises NoSpace */
        s->hand = hand;
    }
    PyObject *bo = blko != NULL ? Py_NewRef(blko) : PyLong_FromLongLong(blk);
    t->key = bo != NULL ? PyTuple_Pack(2, dev, bo) : NULL;
    Py_XDECREF(bo);
    if (t->key == NULL) {
        Py_CLEAR(t->vkey);
        return -2;
    }
    t->frame = f;
    t->run = run;
    t->blk = blk;
    s->ntakes++;
    Py_INCREF(Py_True);
    slot_put(f, M.fr_pinned, Py_True);
    return 0;
}

/* 1 if the victim of an earlier take was block `blk` of `dev` (no longer resident then). */
static int sim_evicted(Sim *s, PyObject *dev, long long blk) {
    for (int i = 0; i < s->ntakes; i++) {
        PyObject *vk = s->t[i].vkey;
        long long v;
        if (vk != NULL && PyTuple_GET_ITEM(vk, 0) == dev && as_ll(PyTuple_GET_ITEM(vk, 1), &v)
            && v == blk)
            return 1;
    }
    return 0;
}

/* Take t's victim out of the cache (Cache._evict of a clean file block); its counts are
 * the caller's. */
static void take_evict(PyObject *files, Take *t) {
    PyObject *f = t->frame;
    if (PyDict_DelItem(files, t->vkey) < 0) PyErr_Clear(); /* it is there: cannot fail */
    Py_INCREF(Py_None);
    slot_put(f, M.fr_dev, Py_None);
    Py_INCREF(Py_None);
    slot_put(f, M.fr_key, Py_None);
    slot_put(f, M.fr_block, PyLong_FromLong(-1)); /* small ints: cannot fail */
    slot_put(f, M.fr_vpn, PyLong_FromLong(-1));
    slot_put(f, S.fr_last_use, PyLong_FromLong(0));
    Py_INCREF(Py_False);
    slot_put(f, S.fr_referenced, Py_False);
    Py_INCREF(Py_False);
    slot_put(f, S.fr_prefetched, Py_False);
}

/* profile.request_ns(nbytes, sequential) of the device's DiskProfile. */
static int request_ns(PyObject *profile, long long nbytes, int seq, long long *out) {
    long long over, seek, rot, rate;
    if (profile == NULL || Py_TYPE(profile) != M.profile_type
        || !as_ll(SLOT(profile, M.dp_overhead), &over) || !as_ll(SLOT(profile, M.dp_seek), &seek)
        || !as_ll(SLOT(profile, M.dp_rotation), &rot) || !as_ll(SLOT(profile, M.dp_rate), &rate)
        || rate <= 0 || nbytes > (1LL << 40))
        return 0;
    long long ns = over + (long long)((__int128)nbytes * 1000000000 / rate);
    if (!seq) ns += seek + rot;
    *out = ns;
    return 1;
}

/* The device's requests of a load, under its lock and the clock's, as read_into reads:
 * each a pread(v) of whole blocks into page buffers; 1 if all were read in full. */
static int read_runs(int fd, long long bs, long long *start, int *count, int nruns,
                     PyObject ***bufs) {
    struct iovec iov[MAX_TAKES];
    for (int r = 0; r < nruns; r++) {
        for (int i = 0; i < count[r]; i++) {
            iov[i].iov_base = PyByteArray_AS_STRING(bufs[r][i]);
            iov[i].iov_len = (size_t)bs;
        }
        ssize_t got = count[r] == 1
            ? pread(fd, iov[0].iov_base, (size_t)bs, (off_t)(start[r] * bs))
            : preadv(fd, iov, count[r], (off_t)(start[r] * bs));
        if (got != count[r] * bs) return 0; /* an error, a short read, a signal */
    }
    return 1;
}

/* The new values a load stores, all made before the first is stored: the counts, the
 * clock's time, the device's head, the clock hand and the position rewritten in place
 * where only their slot holds the int (Count), the rest new objects. */
typedef struct {
    PyObject *result, *pf_cache, *pf_fs, *pf_of, *tick;
    HistPush push; /* the history's (its dropped int released with the rest) */
    Count misses, hits, evictions, unused, prefetches, hand, reads, blocks, bytes, seeks, busy,
        head, now, plain, ra_blocks, fs_prefetches, of_prefetches, pos;
} LoadNew;

/* LoadNew's counts, in the order they are stored. */
#define LOAD_COUNTS(m) {&(m)->misses, &(m)->hits, &(m)->hand, &(m)->evictions, &(m)->unused, \
    &(m)->prefetches, &(m)->ra_blocks, &(m)->fs_prefetches, &(m)->of_prefetches, &(m)->head, \
    &(m)->seeks, &(m)->busy, &(m)->reads, &(m)->blocks, &(m)->bytes, &(m)->now, &(m)->plain, \
    &(m)->pos}

/* A LoadNew with nothing to store or drop (see count_none). */
static void loadnew_none(LoadNew *m) {
    m->result = m->pf_cache = m->pf_fs = m->pf_of = m->tick = NULL;
    m->push.how = 0;
    m->push.dropped = NULL;
    Count *counts[] = LOAD_COUNTS(m);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) count_none(counts[i]);
}

static void loadnew_drop(LoadNew *m) {
    PyObject **all[] = {&m->result, &m->pf_cache, &m->pf_fs, &m->pf_of, &m->tick,
                        &m->push.dropped};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) Py_CLEAR(*all[i]);
    Count *counts[] = LOAD_COUNTS(m);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) count_drop(counts[i]);
}

/* slot `off` of obj plus `delta`, a new int into *out: 1, else 0 (an error set). */
static inline int plus_to(PyObject *obj, Py_ssize_t off, long long delta, PyObject **out) {
    *out = plus(obj, off, delta);
    return *out != NULL;
}

/* count_add and count_set as conditions: 1, else 0 (an error set). */
static inline int add_to(Count *c, PyObject *obj, Py_ssize_t off, long long delta) {
    return count_add(c, obj, off, delta) == 0;
}

static inline int set_to(Count *c, PyObject *obj, Py_ssize_t off, long long v) {
    return count_set(c, obj, off, v) == 0;
}

/* Under the cache's lock, a plain read of block `bidx` of `of` (device block `blk`) that
 * loads: a miss (`held` NULL; Cache._miss, or the general path's fetch when read-ahead
 * asks), and after a sequential step the built-in read-ahead's blocks (FileIO._prefetch,
 * Cache.prefetch), `held` being the frame of a hit. The bytes, or NULL -- declined
 * (nothing changed) when no error is set. See "the miss" above. */
/* Read-ahead's first hit of a frame (PREFETCH_HIT), counted as fetch_copy and the plain
 * read count it: the frame no longer prefetched, the new counts (the three references,
 * made before anything was stored) stored in the cache's, the file system's and the
 * open file's stats, each pointer cleared. */
static inline void prefetch_hit(PyObject *frame, PyObject *cstats, PyObject *stats, PyObject *of,
                                PyObject **pf_cache, PyObject **pf_fs, PyObject **pf_of) {
    Py_INCREF(Py_False);
    slot_put(frame, S.fr_prefetched, Py_False);
    slot_put(cstats, S.cs_prefetch_hits, *pf_cache);
    slot_put(stats, S.fs_prefetch_hits, *pf_fs);
    slot_put(of, S.of_prefetch_hits, *pf_of);
    *pf_cache = *pf_fs = *pf_of = NULL;
}

static PyObject *load_locked(PyObject *fs, PyObject *of, PyObject *cache, PyObject *files,
                             PyObject *dev, PyObject *blk, long long bidx, long long offset,
                             long long size, PyObject *direct, PyObject *bmap, PyObject *held) {
    if (!M.ready || M.off || Py_TYPE(dev) != M.dev_type || !twins_unchanged(fs, cache, dev))
        return NULL;
    long long blkv;
    if (!as_ll(blk, &blkv)) return NULL;
    /* The history as _record leaves it; after a sequential step the built-in read-ahead
     * (sequential_readahead, as FileIO._plain_ahead reads it) asks for the next blocks. */
    PyObject *hist = SLOT(of, S.of_history);
    if (hist == NULL) return NULL;
    Py_ssize_t hlen = hist_len(hist);
    long long h0 = 0, h1 = 0;
    if (hlen < 0 || (hlen > 0 && !hist_at(hist, 0, &h0)) || (hlen > 1 && !hist_at(hist, 1, &h1)))
        return NULL;
    int seqstep = (hlen > 0 && h0 == bidx - 1) || (hlen > 1 && h0 == bidx && h1 == bidx - 1);
    if (held != NULL && !seqstep) return NULL; /* a hit that loads nothing: not here */
    long long nahead = 0; /* the blocks read-ahead asks for (holes included) */
    long long targets[MAX_TAKES];
    int ntargets = 0;
    if (seqstep) {
        Py_ssize_t at = h0 == bidx ? 2 : 1;
        long long prev2 = 0, max_out;
        int has_prev2 = hlen > at;
        if (has_prev2 && !hist_at(hist, at, &prev2)) return NULL;
        if (!as_ll(SLOT(fs, S.fs_readahead_max), &max_out)) return NULL;
        if (!(max_out <= 0 || (has_prev2 && prev2 == bidx - 2 && bidx % max_out))) {
            long long fblocks = size / S.bs + (size % S.bs != 0);
            long long last = bidx + 1 + max_out < fblocks ? bidx + 1 + max_out : fblocks;
            if (last - bidx - 1 > MAX_TAKES - 1) return NULL;
            for (long long b = bidx + 1; b < last; b++) {
                int bad = 0;
                PyObject *bo = block_of(direct, bmap, b, &bad);
                long long v;
                if (bad) {
                    PyErr_Clear();
                    return NULL;
                }
                if (bo == NULL || !as_ll(bo, &v)) return NULL; /* not remembered: walked */
                if (v) targets[ntargets++] = v;
                nahead++;
            }
        }
    }
    if (held != NULL && nahead == 0) return NULL;

    PyObject *result = NULL, *frames = NULL, *freel = NULL, *spare = NULL, *spares = NULL,
             *cstats = NULL, *stats = NULL, *power = NULL, *block_ns = NULL,
             *dstats = NULL, *clock = NULL, *dlock = NULL, *ctlock = NULL, *profile = NULL;
    /* Read as values at once, not held: an int held here could not be rewritten (Count). */
    PyObject *tick = SLOT(cache, S.c_tick), *handobj = SLOT(cache, M.c_hand),
             *nfr = SLOT(cache, M.c_nframes), *nblocks = SLOT(dev, M.d_nblocks),
             *fd = SLOT(dev, M.d_fd), *head = SLOT(dev, M.d_head);
    LoadNew m;
    loadnew_none(&m);
    Sim sim; /* its takes are written as they are made: only the rest is zeroed here */
    sim.held = NULL;
    sim.ntakes = 0;
    sim.cleared = NULL;
    sim.ncleared = sim.cap = 0;
    int dheld = 0, cheld = 0, simmed = 0;
    /* (References held: a lock tried below may be a Python object's.) */
#define HOLD(var, obj, off) Py_XINCREF(var = SLOT(obj, off))
    HOLD(frames, cache, S.c_frames);
    HOLD(freel, cache, M.c_free);
    HOLD(spare, cache, M.c_spare);
    HOLD(spares, cache, M.c_spares);
    HOLD(cstats, cache, S.c_stats);
    HOLD(stats, fs, S.fs_stats);
    HOLD(power, dev, M.d_power);
    HOLD(block_ns, dev, M.d_block_ns);
    HOLD(dstats, dev, M.d_stats);
    HOLD(clock, dev, M.d_clock);
    HOLD(dlock, dev, M.d_lock);
    HOLD(profile, dev, M.d_profile);
#undef HOLD
    long long tickv, hand, n, nb, fdv, headv, ns_far, ns_seq;
    if (frames == NULL || !PyList_CheckExact(frames) || freel == NULL || !PyList_CheckExact(freel)
        || spare == NULL || !PyByteArray_CheckExact(spare) || PyByteArray_GET_SIZE(spare) != S.bs
        || spares == NULL || !PyList_CheckExact(spares)
        || cstats == NULL || Py_TYPE(cstats) != S.cstats_type || stats == NULL
        || Py_TYPE(stats) != S.fsstats_type || !as_ll(tick, &tickv) || !as_ll(handobj, &hand)
        || !as_ll(nfr, &n) || n < 1 || PyList_GET_SIZE(frames) != n || hand < 0 || hand >= n
        || !as_ll(nblocks, &nb) || blkv < 0 || blkv >= nb || !as_ll(fd, &fdv) || fdv < 0
        || fdv > INT32_MAX || power != Py_None || !as_ll(head, &headv) || block_ns == NULL
        || !PyTuple_CheckExact(block_ns) || PyTuple_GET_SIZE(block_ns) != 2
        || !as_ll(PyTuple_GET_ITEM(block_ns, 0), &ns_far)
        || !as_ll(PyTuple_GET_ITEM(block_ns, 1), &ns_seq) || dstats == NULL
        || Py_TYPE(dstats) != M.dstats_type || clock == NULL
        || (clock != Py_None && Py_TYPE(clock) != M.clock_type) || dlock == NULL
        || (Py_TYPE(dlock) != M.lock_type && Py_TYPE(dlock) != &RLockType))
        goto decline;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(spares); i++) {
        PyObject *b = PyList_GET_ITEM(spares, i);
        if (!PyByteArray_CheckExact(b) || PyByteArray_GET_SIZE(b) != S.bs) goto decline;
    }
    long long nowv = 0;
    if (clock != Py_None) {
        ctlock = SLOT(clock, M.ck_lock);
        if (ctlock == NULL || (Py_TYPE(ctlock) != M.lock_type && Py_TYPE(ctlock) != &RLockType)
            || !as_ll(SLOT(clock, M.ck_now), &nowv))
            goto decline;
        Py_INCREF(ctlock);
    }
    /* (Both locks are threading.Lock's C type or this module's RLock: trying them runs
     * no Python, so nothing read here changes before they are held.) */

    /* The frames, chosen as the Python would: the block's (a miss), then the read-ahead's
     * -- Cache.prefetch: the blocks not resident, at most nframes // PREFETCH_FRACTION,
     * sorted, in runs of consecutive blocks. */
    sim.frames = frames;
    sim.freel = freel;
    sim.n = n;
    sim.hand = hand;
    sim.nfree = PyList_GET_SIZE(freel);
    simmed = 1;
    if (held != NULL) {
        if (SLOT(held, M.fr_pinned) != Py_False) goto decline;
        sim.held = held;
        Py_INCREF(Py_True);
        slot_put(held, M.fr_pinned, Py_True);
    } else {
        int r = sim_take(&sim, dev, blkv, blk, -1);
        if (r == -2) goto fail;
        if (r < 0) goto decline;
    }
    long long todo[MAX_TAKES];
    int ntodo = 0;
    for (int i = 0; i < ntargets; i++) {
        long long t = targets[i];
        if (t < 0 || t >= nb || t == blkv) goto decline; /* BadBlock; a block mapped twice */
        for (int j = 0; j < i; j++)
            if (targets[j] == t) goto decline;
        PyObject *to = PyLong_FromLongLong(t), *key = to ? PyTuple_Pack(2, dev, to) : NULL;
        Py_XDECREF(to);
        if (key == NULL) goto fail;
        PyObject *there = PyDict_GetItemWithError(files, key);
        Py_DECREF(key);
        if (there == NULL && PyErr_Occurred()) goto fail;
        if (there == NULL || sim_evicted(&sim, dev, t)) todo[ntodo++] = t;
    }
    if (ntodo > n / M.prefetch_fraction) ntodo = (int)(n / M.prefetch_fraction);
    for (int i = 1; i < ntodo; i++) /* sorted (a handful: insertion) */
        for (int j = i; j > 0 && todo[j - 1] > todo[j]; j--) {
            long long x = todo[j];
            todo[j] = todo[j - 1];
            todo[j - 1] = x;
        }
    long long rstart[MAX_TAKES];
    int rcount[MAX_TAKES], nruns = 0, maxcount = 0; /* maxcount: the buffers the runs need */
    for (int i = 0; i < ntodo; i++) {
        if (nruns > 0 && todo[i] == rstart[nruns - 1] + rcount[nruns - 1]) {
            rcount[nruns - 1]++;
        } else {
            rstart[nruns] = todo[i];
            rcount[nruns++] = 1;
        }
    }
    for (int r = 0, i = 0; r < nruns; r++) {
        maxcount += rcount[r]; /* each run its own buffers: all are read before any is used */
        for (int k = 0; k < rcount[r]; k++, i++) {
            int got = sim_take(&sim, dev, todo[i], NULL, r);
            if (got == -2) goto fail;
            if (got < 0) goto decline;
        }
    }
    sim_unpin(&sim);
    simmed = 2; /* the bits stay cleared unless the load declines */

    /* Every new value, and the spare buffers the runs read into (as prefetch adds them). */
    int miss = held == NULL, nprefetch = sim.ntakes - miss;
    long long nreq = miss + nruns, nblk = sim.ntakes, busy = 0, seeks = 0, at = headv;
    if (miss) {
        int seq = blkv == at;
        busy += seq ? ns_seq : ns_far;
        seeks += !seq;
        at = blkv + 1;
    }
    for (int r = 0; r < nruns; r++) {
        long long ns;
        int seq = rstart[r] == at;
        if (!request_ns(profile, rcount[r] * S.bs, seq, &ns)) goto decline;
        busy += ns;
        seeks += !seq;
        at = rstart[r] + rcount[r];
    }
    long long evicted = 0, unused = 0;
    for (int i = 0; i < sim.ntakes; i++) {
        evicted += sim.t[i].vkey != NULL;
        unused += sim.t[i].vkey != NULL && sim.t[i].vpf;
    }
    int pf = 0;
    if (held != NULL && (pf = flag(SLOT(held, S.fr_prefetched))) < 0) goto decline;
    int append = hlen == 0 || h0 != bidx;
    m.result = page_out(); /* filled once the block is read */
    m.tick = PyLong_FromLongLong(tickv + 1);
    if (m.result == NULL || m.tick == NULL || !add_to(&m.plain, stats, S.fs_plain_reads, 1)
        || !set_to(&m.pos, of, S.of_pos, offset + S.bs))
        goto fail;
    if (miss ? !add_to(&m.misses, cstats, M.cs_misses, 1) : !add_to(&m.hits, cstats, S.cs_hits, 1))
        goto fail;
    if (pf && (!plus_to(cstats, S.cs_prefetch_hits, 1, &m.pf_cache)
               || !plus_to(stats, S.fs_prefetch_hits, 1, &m.pf_fs)
               || !plus_to(of, S.of_prefetch_hits, 1, &m.pf_of)))
        goto fail;
    if (nreq && (!add_to(&m.reads, dstats, M.ds_reads, nreq)
                 || !add_to(&m.blocks, dstats, M.ds_blocks_read, nblk)
                 || !add_to(&m.bytes, dstats, M.ds_bytes_read, nblk * S.bs)
                 || !add_to(&m.busy, dstats, M.ds_busy_ns, busy)
                 || !set_to(&m.head, dev, M.d_head, at)
                 || (seeks && !add_to(&m.seeks, dstats, M.ds_seeks, seeks))
                 || (clock != Py_None && !set_to(&m.now, clock, M.ck_now, nowv + busy))))
        goto fail;
    if (evicted && (!add_to(&m.evictions, cstats, M.cs_evictions, evicted)
                    || (unused && !add_to(&m.unused, cstats, M.cs_prefetch_unused, unused))
                    || !set_to(&m.hand, cache, M.c_hand, sim.hand)))
        goto fail;
    if (nahead && (!add_to(&m.prefetches, cstats, M.cs_prefetches, nprefetch)
                   || !add_to(&m.ra_blocks, stats, S.fs_readahead_blocks, nahead)
                   || !add_to(&m.fs_prefetches, stats, M.fs_prefetches, nprefetch)
                   || !add_to(&m.of_prefetches, of, M.of_prefetches, nprefetch)))
        goto fail;
    while (PyList_GET_SIZE(spares) < maxcount) {
        PyObject *b = PyByteArray_FromStringAndSize(NULL, S.bs);
        if (b == NULL) goto fail;
        memset(PyByteArray_AS_STRING(b), 0, (size_t)S.bs);
        int bad = PyList_Append(spares, b);
        Py_DECREF(b);
        if (bad < 0) goto fail;
    }

    /* The device's requests: the block (a miss) into the cache's spare, each run into
     * the first of the spare page buffers. */
    int got = lock_try(dlock);
    if (got <= 0) goto decline;
    dheld = 1;
    if (ctlock != NULL) {
        got = lock_try(ctlock);
        if (got <= 0) goto decline;
        cheld = 1;
    }
    {
        long long starts[MAX_TAKES + 1];
        int counts[MAX_TAKES + 1], nr = 0;
        PyObject **bufs[MAX_TAKES + 1];
        PyObject *one[1] = {spare};
        if (miss) {
            starts[nr] = blkv;
            counts[nr] = 1;
            bufs[nr++] = one;
        }
        for (int r = 0, first = 0; r < nruns; first += rcount[r], r++) {
            starts[nr] = rstart[r];
            counts[nr] = rcount[r];
            bufs[nr++] = ((PyListObject *)spares)->ob_item + first;
        }
        if (!read_runs((int)fdv, S.bs, starts, counts, nr, bufs)) goto decline;
    }

    /* Stored from here on; the two stores that may fail (no memory) first: the history,
     * then the block's key (the history put back if that fails). */
    if (append && hist_push(hist, bidx, &m.push) < 0) goto fail;
    if (miss && PyDict_SetItem(files, sim.t[0].key, sim.t[0].frame) < 0) {
        hist_undo(hist, &m.push); /* runs no code: the error stays as it is */
        goto fail;
    }
    simmed = 3; /* committed: the bits stay as the sweeps left them */
    PyObject *frame; /* the block's */
    if (miss) { /* Cache._miss: the victim out, the frame takes the spare it was read into */
        Take *t = &sim.t[0];
        frame = t->frame;
        if (t->vkey != NULL) take_evict(files, t);
        Py_INCREF(dev);
        slot_put(frame, M.fr_dev, dev);
        Py_INCREF(blk);
        slot_put(frame, M.fr_block, blk);
        Py_INCREF(t->key);
        slot_put(frame, M.fr_key, t->key);
        PyObject *fdata = SLOT(frame, S.fr_data); /* the cache's spare now; the frame's */
        SLOT(cache, M.c_spare) = fdata;          /* reference and the cache's swapped */
        SLOT(frame, S.fr_data) = spare;
    } else { /* a hit (fetch_copy) */
        frame = held;
        if (pf)
            prefetch_hit(frame, cstats, stats, of, &m.pf_cache, &m.pf_fs, &m.pf_of);
    }
    Py_INCREF(m.tick);
    slot_put(cache, S.c_tick, m.tick);
    slot_put(frame, S.fr_last_use, m.tick);
    m.tick = NULL;
    Py_INCREF(Py_True);
    slot_put(frame, S.fr_referenced, Py_True);
    if (miss) hint_set(cache, hint_entry(cache, blkv), frame, NULL, blkv);
    page_copy(PyBytes_AS_STRING(m.result), PyByteArray_AS_STRING(SLOT(frame, S.fr_data)),
           (size_t)S.bs);
    /* Cache.prefetch: each run's frames take the buffers it was read into, in order. */
    for (int i = miss, k = 0; i < sim.ntakes; i++, k++) { /* k: its buffer in _spares */
        Take *t = &sim.t[i];
        if (t->vkey != NULL) take_evict(files, t);
        if (PyDict_SetItem(files, t->key, t->frame) < 0) PyErr_Clear(); /* room was there */
        Py_INCREF(dev);
        slot_put(t->frame, M.fr_dev, dev);
        PyObject *bo = PyTuple_GET_ITEM(t->key, 1); /* the key's block (sim_take made it) */
        Py_INCREF(bo);
        slot_put(t->frame, M.fr_block, bo);
        Py_INCREF(t->key);
        slot_put(t->frame, M.fr_key, t->key);
        PyObject *buf = PyList_GET_ITEM(spares, k), *old = SLOT(t->frame, S.fr_data);
        PyList_SET_ITEM(spares, k, old); /* the list takes the frame's reference ... */
        SLOT(t->frame, S.fr_data) = buf; /* ... and the frame the list's */
        Py_INCREF(Py_True);
        slot_put(t->frame, S.fr_prefetched, Py_True);
        hint_set(cache, hint_entry(cache, t->blk), t->frame, NULL, t->blk);
    }
    if (PyList_GET_SIZE(spares) > M.spare_pages
        && PyList_SetSlice(spares, M.spare_pages, PyList_GET_SIZE(spares), NULL) < 0)
        PyErr_Clear();
    /* _free.pop() of each free frame taken: the list only shrinks (no failure) */
    for (Py_ssize_t i = PyList_GET_SIZE(freel) - 1; i >= sim.nfree; i--) {
        PyObject *last = PyList_GET_ITEM(freel, i);
        Py_SET_SIZE(freel, i);
        Py_DECREF(last);
    }
    { /* every count, the hand, the head, the time and the position (those not made: none) */
        Count *counts[] = LOAD_COUNTS(&m);
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) count_store(counts[i]);
    }
    result = m.result;
    m.result = NULL;
    M.served += miss;
    M.served_ahead += nprefetch;
    goto done;

fail:
    result = NULL; /* the error set */
    goto done;
decline:
    PyErr_Clear();
    result = NULL;
done:
    if (simmed == 1) sim_unpin(&sim);
    if (simmed == 1 || simmed == 2) sim_undo_bits(&sim);
    if (simmed) sim_drop(&sim);
    if (cheld && lock_give(ctlock) < 0) Py_CLEAR(result); /* the error of release() */
    if (dheld && lock_give(dlock) < 0) Py_CLEAR(result);
    loadnew_drop(&m);
    PyObject *refs[] = {ctlock, dlock, clock, dstats, block_ns, power, stats, cstats, spares,
                        spare, freel, frames, profile};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) Py_XDECREF(refs[i]);
    return result;
}

/* Under the cache's lock: the block, or NULL (declined if no error is set). */
static PyObject *hit_locked(PyObject *fs, PyObject *of, PyObject *cache, long long offset) {
    PyObject *ino = SLOT(of, S.of_inode);
    if (ino == NULL || Py_TYPE(ino) != S.inode_type) return NULL;
    long long size, bidx = offset / S.bs;
    if (!ll_of(SLOT(ino, S.ino_size), &size)) return NULL;
    /* past the end, or the last partial block (offset >= 0: size - offset cannot overflow,
     * where offset + S.bs could, for a caller's offset a block short of 2**63) */
    if (offset > size || size - offset < S.bs) return NULL;
    PyObject *direct = SLOT(ino, S.ino_direct), *bmap = SLOT(ino, S.ino_bmap);
    if (direct == NULL || !PyList_CheckExact(direct) || bmap == NULL || !PyList_CheckExact(bmap))
        return NULL;
    int bad = 0;
    PyObject *blk = block_of(direct, bmap, bidx, &bad);
    long long blkv;
    if (bad) {
        PyErr_Clear();
        return NULL;
    }
    if (blk == NULL || !ll_of(blk, &blkv) || blkv == 0) return NULL; /* a hole, or unmapped */
    /* Held: a Python callback below (a lock, a hash) may let another thread run. */
    Py_INCREF(blk);
    Py_INCREF(direct);
    Py_INCREF(bmap);

    PyObject *result = NULL, *files = NULL, *dev = NULL, *stats = NULL, *cstats = NULL;
    Counts c;
    counts_none(&c);
    HistPush push = {0};
    files = SLOT(cache, S.c_files);
    dev = SLOT(fs, S.fs_device);
    if (files == NULL || dev == NULL || !PyDict_CheckExact(files)) goto decline;
    Py_INCREF(files);
    Py_INCREF(dev);
    uint32_t *entry = hint_entry(cache, blkv);
    PyObject *frame = hinted(cache, entry, dev, blk, blkv);
    if (frame == NULL) {
        int r = resident(files, dev, blk, &frame);
        if (r < 0) goto decline;
        if (!r) { /* a miss: loaded here when it can be (load_locked), else by the Python */
            result = load_locked(fs, of, cache, files, dev, blk, bidx, offset, size, direct,
                                 bmap, NULL);
            if (result == NULL && !PyErr_Occurred()) goto decline;
            goto missed;
        }
        if (Py_TYPE(frame) != S.frame_type) goto decline;
        hint_set(cache, hint_entry(cache, blkv), frame, blk, blkv); /* anew: the probe ran */
    }
    Py_INCREF(frame);

    /* The history as _record leaves it; the built-in read-ahead asks only after a
     * sequential step. */
    PyObject *hist = SLOT(of, S.of_history);
    if (hist == NULL) goto decline_frame;
    Py_ssize_t hlen = hist_len(hist);
    if (hlen < 0) goto decline_frame;
    long long h0 = 0, h1 = 0;
    if (hlen > 0 && !hist_at(hist, 0, &h0)) goto decline_frame;
    if (hlen > 1 && !hist_at(hist, 1, &h1)) goto decline_frame;
    long long ahead = 0;
    if ((hlen > 0 && h0 == bidx - 1) || (hlen > 1 && h0 == bidx && h1 == bidx - 1)) {
        ahead = plain_ahead(fs, files, dev, direct, bmap, size, bidx, hist, hlen, h0);
        if (ahead == -1) { /* read-ahead loads: here when it can be (load_locked) */
            result = load_locked(fs, of, cache, files, dev, blk, bidx, offset, size, direct,
                                 bmap, frame);
            if (result != NULL) S.served++;
            if (result != NULL || PyErr_Occurred()) goto done;
        }
        if (ahead < 0) goto decline_frame; /* -1: read-ahead would load; -2: unexpected */
    }

    stats = SLOT(fs, S.fs_stats);
    cstats = SLOT(cache, S.c_stats);
    Py_XINCREF(stats);
    Py_XINCREF(cstats);
    PyObject *data = SLOT(frame, S.fr_data);
    long long tickv; /* read at once, the int not held: held, it could not be rewritten */
    if (stats == NULL || Py_TYPE(stats) != S.fsstats_type || cstats == NULL
        || Py_TYPE(cstats) != S.cstats_type || !ll_of(SLOT(cache, S.c_tick), &tickv)
        || data == NULL
        || !PyByteArray_CheckExact(data) || PyByteArray_GET_SIZE(data) != S.bs)
        goto decline_frame;
    PyObject *prefetched = SLOT(frame, S.fr_prefetched);
    if (prefetched == NULL) goto decline_frame;
    int pf = truth(prefetched);
    if (pf < 0) goto decline_frame;

    /* Everything is known: compute every new value, then store them all. */
    result = page_bytes(PyByteArray_AS_STRING(data));
    if (result == NULL || count_set(&c.tick, cache, S.c_tick, tickv + 1) < 0
        || count_set(&c.last_use, frame, S.fr_last_use, tickv + 1) < 0
        || count_add(&c.hits, cstats, S.cs_hits, 1) < 0
        || count_add(&c.plain, stats, S.fs_plain_reads, 1) < 0
        || count_set(&c.pos, of, S.of_pos, offset + S.bs) < 0)
        goto fail;
    if (pf) {
        c.pf_cache = plus(cstats, S.cs_prefetch_hits, 1);
        c.pf_fs = plus(stats, S.fs_prefetch_hits, 1);
        c.pf_of = plus(of, S.of_prefetch_hits, 1);
        if (c.pf_cache == NULL || c.pf_fs == NULL || c.pf_of == NULL) goto fail;
    }
    if (ahead) {
        c.ahead = plus(stats, S.fs_readahead_blocks, ahead);
        if (c.ahead == NULL) goto fail;
    }
    if (hlen == 0 || h0 != bidx) {
        if (hist_push(hist, bidx, &push) < 0) goto fail; /* the last that may fail */
    }
    count_store(&c.tick);
    count_store(&c.last_use);
    Py_INCREF(Py_True);
    slot_put(frame, S.fr_referenced, Py_True);
    count_store(&c.hits);
    if (pf)
        prefetch_hit(frame, cstats, stats, of, &c.pf_cache, &c.pf_fs, &c.pf_of);
    count_store(&c.plain); /* also a read, a block read, ... (FsStats) */
    if (c.ahead != NULL) {
        slot_put(stats, S.fs_readahead_blocks, c.ahead);
        c.ahead = NULL;
    }
    count_store(&c.pos);
    S.served++;
    goto done;

fail:
    Py_CLEAR(result);
    goto done;
decline_frame:
    PyErr_Clear();
done:
    Py_DECREF(frame);
    counts_drop(&c);
    Py_XDECREF(push.dropped); /* an int, no one else's: releasing it runs no code */
    Py_XDECREF(stats);
    Py_XDECREF(cstats);
    Py_XDECREF(files);
    Py_XDECREF(dev);
    Py_DECREF(blk);
    Py_DECREF(direct);
    Py_DECREF(bmap);
    return result;
missed:
    Py_DECREF(files);
    Py_DECREF(dev);
    Py_DECREF(blk);
    Py_DECREF(direct);
    Py_DECREF(bmap);
    return result;
decline:
    PyErr_Clear();
    Py_XDECREF(files);
    Py_XDECREF(dev);
    Py_DECREF(blk);
    Py_DECREF(direct);
    Py_DECREF(bmap);
    return NULL;
}

/* The plain read of one block: new bytes, or NULL -- declined (nothing changed) when
 * no error is set. */
static PyObject *plain_core(PyObject *fs, PyObject *of, long long offset, long long n,
                            unsigned long me) {
    if (!S.fs_ready || Py_TYPE(of) != S.of_type || Py_TYPE(fs) != S.fs_type) return NULL;
    if (n != S.bs || offset < 0 || offset % S.bs) return NULL;
    long long pv, ev;
    if (!ll_of(SLOT(of, S.of_plain), &pv) || !ll_of(SLOT(fs, S.fs_epoch), &ev) || pv != ev)
        return NULL; /* not asked at this epoch: the Python path asks */
    PyObject *cache = SLOT(fs, S.fs_cache);
    if (cache == NULL || Py_TYPE(cache) != S.cache_type) return NULL;
    PyObject *lock = SLOT(cache, S.c_lock);
    if (lock == NULL) return NULL;
    Py_INCREF(cache);
    Py_INCREF(lock);
    PyObject *data = NULL;
    int got = lock_try_as(lock, me);
    if (got < 0) {
        PyErr_Clear();
    } else if (got) {
        /* No collection while the lock is held: an allocation here (a key tuple) could
         * start one, whose finalizers run any code -- a read of this thread, taking the
         * re-entrant lock again, amid frames chosen and pinned but not yet taken. They
         * run at the next allocation after, the cache whole again. */
        int collecting = PyGC_Disable();
        data = hit_locked(fs, of, cache, offset);
        if (collecting) PyGC_Enable();
        if (lock_give_as(lock, me) < 0) Py_CLEAR(data); /* the error of release() */
    }
    Py_DECREF(lock);
    Py_DECREF(cache);
    return data;
}

static PyObject *pr_plain_read(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    long long offset, n;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "plain_read(fs, of, offset, n)");
        return NULL;
    }
    if (!as_ll(args[2], &offset) || !as_ll(args[3], &n)) Py_RETURN_NONE;
    PyObject *data = plain_core(args[0], args[1], offset, n, PyThread_get_thread_ident());
    if (data == NULL && !PyErr_Occurred()) Py_RETURN_NONE;
    return data;
}

/* ------------------------------------------------------------------ XRead */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *fallback;
} XRead;

/* VinoFile.xRead's common branch: the page, or NULL -- declined (nothing changed) when
 * no error is set. Anything unexpected before the read declines: the Python xRead
 * meets it again and answers as it does. */
static PyObject *xread_fast(PyObject *file, PyObject *amount_obj, PyObject *offset_obj) {
    long long amount, offset;
    if (!S.vfs_ready || !S.fs_ready || !S.vfs_classes_ready || Py_TYPE(file) != S.vfile_type
        || !ll_of(amount_obj, &amount) || !ll_of(offset_obj, &offset))
        return NULL;
    if (offset < S.page_bytes || amount != S.bs) return NULL;
    PyObject *vfs = SLOT(file, S.vf_vfs), *kf = SLOT(file, S.vf_kfile);
    if (vfs == NULL || Py_TYPE(vfs) != S.vfs_type || kf == NULL || Py_TYPE(kf) != S.kfile_type)
        return NULL;
    PyObject *mutex = SLOT(vfs, S.v_mutex), *stats = SLOT(vfs, S.v_stats);
    if (mutex == NULL || stats == NULL || Py_TYPE(stats) != S.vstats_type) return NULL;
    Py_INCREF(vfs);
    Py_INCREF(kf);
    Py_INCREF(mutex);
    Py_INCREF(stats);
    PyObject *data = NULL;
    unsigned long me = PyThread_get_thread_ident(); /* this thread's, for both locks */
    int got = lock_try_as(mutex, me);
    if (got <= 0) {
        PyErr_Clear(); /* busy (the Python xRead waits), or acquire failed (it says why) */
        goto out;
    }
    PyObject *pending = SLOT(kf, S.kf_pending), *of = SLOT(kf, S.kf_of);
    if (SLOT(kf, S.kf_pool_base) == Py_None && SLOT(kf, S.kf_observer) == Py_None
        && pending != NULL && PyByteArray_CheckExact(pending) && PyByteArray_GET_SIZE(pending) == 0
        && of != NULL && Py_TYPE(of) == S.of_type && SLOT(of, S.of_fs) != NULL) {
        PyObject *fs = SLOT(of, S.of_fs);
        Py_INCREF(of);
        Py_INCREF(fs);
        data = plain_core(fs, of, offset, amount, me); /* an error here is a real failure */
        Py_DECREF(fs);
        Py_DECREF(of);
        if (data != NULL) {
            Count reads, nbytes;
            count_none(&reads);
            count_none(&nbytes);
            if (count_add(&reads, stats, S.vs_reads, 1) < 0
                || count_add(&nbytes, stats, S.vs_bytes_read, PyBytes_GET_SIZE(data)) < 0) {
                count_drop(&reads);
                count_drop(&nbytes);
                Py_CLEAR(data); /* no memory: the error reported */
            } else {
                count_store(&reads);
                count_store(&nbytes);
            }
        }
    }
    if (lock_give_as(mutex, me) < 0) Py_CLEAR(data);
out:
    Py_DECREF(stats);
    Py_DECREF(mutex);
    Py_DECREF(kf);
    Py_DECREF(vfs);
    return data;
}

static PyObject *xread_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                  PyObject *kwnames) {
    XRead *x = (XRead *)self;
    if (PyVectorcall_NARGS(nargsf) == 3 && kwnames == NULL) {
        PyObject *data = xread_fast(args[0], args[1], args[2]);
        if (data != NULL || PyErr_Occurred()) return data;
    }
    return PyObject_Vectorcall(x->fallback, args, nargsf, kwnames);
}

static PyObject *xread_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "O:XRead", &fallback)) return NULL;
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "XRead(fallback): a callable expected");
        return NULL;
    }
    XRead *x = (XRead *)type->tp_alloc(type, 0);
    if (x == NULL) return NULL;
    x->vectorcall = xread_vectorcall;
    Py_INCREF(fallback);
    x->fallback = fallback;
    return (PyObject *)x;
}

static int xread_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((XRead *)self)->fallback);
    return 0;
}

static int xread_clear(PyObject *self) {
    Py_CLEAR(((XRead *)self)->fallback);
    return 0;
}

static void xread_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    xread_clear(self);
    Py_TYPE(self)->tp_free(self);
}

/* Bound to a VinoFile as a Python function is (file.xRead is a method). */
static PyObject *xread_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyMemberDef xread_members[] = {
    {"fallback", T_OBJECT, offsetof(XRead, fallback), READONLY,
     "the Python xRead, called for everything but the common branch"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject XReadType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_plainread.XRead",
    .tp_basicsize = sizeof(XRead),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
        | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = xread_new,
    .tp_dealloc = xread_dealloc,
    .tp_traverse = xread_traverse,
    .tp_clear = xread_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(XRead, vectorcall),
    .tp_descr_get = xread_get,
    .tp_members = xread_members,
    .tp_doc = "XRead(fallback): VinoFile.xRead, its common branch in C (see the module).",
};

/* ------------------------------------------------------------------ setup */

#define INTERN(field, text) \
    if (S.field == NULL && (S.field = PyUnicode_InternFromString(text)) == NULL) return NULL
#define OFF(type, field, name) if (slot_offset(S.type, name, &S.field) < 0) return NULL

static PyObject *intern_names(void) {
    INTERN(n_acquire, "acquire");
    INTERN(n_release, "release");
    Py_RETURN_NONE;
}

/* setup_fs(FileSystem, OpenFile, Inode, FsStats, Cache, CacheStats, _Frame, BS, NDIRECT,
 * READAHEAD_HISTORY): once. */
static PyObject *pr_setup_fs(PyObject *mod, PyObject *args) {
    PyObject *fst, *ot, *it, *ft, *cat, *ct, *frt;
    long long bs, ndirect, hist_max;
    if (!PyArg_ParseTuple(args, "OOOOOOOLLL", &fst, &ot, &it, &ft, &cat, &ct, &frt, &bs, &ndirect,
                          &hist_max))
        return NULL;
    if (S.fs_ready) Py_RETURN_NONE;
    if (bs <= 0 || ndirect < 0 || hist_max < 1) {
        PyErr_SetString(PyExc_ValueError, "setup_fs: a block size and history length > 0 expected");
        return NULL;
    }
    S.hist_max = hist_max;
    PyObject *r = intern_names();
    if (r == NULL) return NULL;
    Py_DECREF(r);
    if (need_type(fst, &S.fs_type) < 0 || need_type(ot, &S.of_type) < 0
        || need_type(it, &S.inode_type) < 0 || need_type(ft, &S.fsstats_type) < 0
        || need_type(cat, &S.cache_type) < 0 || need_type(ct, &S.cstats_type) < 0
        || need_type(frt, &S.frame_type) < 0)
        return NULL;
    find_page_copy();
    OFF(fs_type, fs_epoch, "_epoch");
    OFF(fs_type, fs_cache, "cache");
    OFF(fs_type, fs_device, "device");
    OFF(fs_type, fs_stats, "stats");
    OFF(fs_type, fs_readahead_max, "readahead_max");
    OFF(cache_type, c_lock, "_lock");
    OFF(cache_type, c_files, "_files");
    OFF(cache_type, c_tick, "_tick");
    OFF(cache_type, c_stats, "stats");
    OFF(cache_type, c_frames, "_frames");
    OFF(cache_type, c_hint, "_hint");
    OFF(of_type, of_plain, "_plain");
    OFF(of_type, of_inode, "inode");
    OFF(of_type, of_history, "_history");
    OFF(of_type, of_pos, "pos");
    OFF(of_type, of_prefetch_hits, "prefetch_hits");
    OFF(of_type, of_fs, "fs");
    OFF(inode_type, ino_size, "size");
    OFF(inode_type, ino_direct, "direct");
    OFF(inode_type, ino_bmap, "bmap");
    OFF(fsstats_type, fs_plain_reads, "plain_reads");
    OFF(fsstats_type, fs_prefetch_hits, "prefetch_hits");
    OFF(fsstats_type, fs_readahead_blocks, "readahead_blocks");
    OFF(cstats_type, cs_hits, "hits");
    OFF(cstats_type, cs_prefetch_hits, "prefetch_hits");
    OFF(frame_type, fr_data, "data");
    OFF(frame_type, fr_last_use, "last_use");
    OFF(frame_type, fr_referenced, "referenced");
    OFF(frame_type, fr_prefetched, "prefetched");
    OFF(frame_type, fr_dev, "dev");
    OFF(frame_type, fr_block, "block");
    OFF(frame_type, fr_index, "index");
    S.bs = bs;
    S.ndirect = ndirect;
    S.fs_ready = 1;
    Py_RETURN_NONE;
}

/* setup_vfs(KernelFile, VfsStats, PAGE_BYTES): once, after setup_fs. */
static PyObject *pr_setup_vfs(PyObject *mod, PyObject *args) {
    PyObject *kt, *vt;
    long long page_bytes;
    if (!PyArg_ParseTuple(args, "OOL", &kt, &vt, &page_bytes)) return NULL;
    if (S.vfs_ready) Py_RETURN_NONE;
    PyObject *r = intern_names();
    if (r == NULL) return NULL;
    Py_DECREF(r);
    if (need_type(kt, &S.kfile_type) < 0 || need_type(vt, &S.vstats_type) < 0) return NULL;
    OFF(kfile_type, kf_of, "of");
    OFF(kfile_type, kf_pool_base, "pool_base");
    OFF(kfile_type, kf_pending, "pending");
    OFF(kfile_type, kf_observer, "observer");
    OFF(vstats_type, vs_reads, "reads");
    OFF(vstats_type, vs_bytes_read, "bytes_read");
    S.page_bytes = page_bytes;
    S.vfs_ready = 1;
    Py_RETURN_NONE;
}

/* setup_vfs_classes(VinoVFS, VinoFile): once, after setup_vfs (VinoFile's class body
 * calls that, before the class exists). */
static PyObject *pr_setup_vfs_classes(PyObject *mod, PyObject *args) {
    PyObject *vt, *ft;
    if (!PyArg_ParseTuple(args, "OO", &vt, &ft)) return NULL;
    if (S.vfs_classes_ready) Py_RETURN_NONE;
    if (need_type(vt, &S.vfs_type) < 0 || need_type(ft, &S.vfile_type) < 0) return NULL;
    OFF(vfs_type, v_mutex, "_mutex");
    OFF(vfs_type, v_stats, "stats");
    OFF(vfile_type, vf_vfs, "vfs");
    OFF(vfile_type, vf_kfile, "kfile");
    S.vfs_classes_ready = 1;
    Py_RETURN_NONE;
}

static PyObject *pr_served(PyObject *mod, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(S.served);
}

#define MINTERN(field, text) \
    if (M.field == NULL && (M.field = PyUnicode_InternFromString(text)) == NULL) return NULL
#define MOFF(type, field, name) if (slot_offset(type, name, &M.field) < 0) return NULL

/* setup_miss(Cache, BlockDevice, DeviceStats, SimClock, Lock type, DiskProfile, twins,
 * PREFETCH_FRACTION, PREFETCH_SPARE_PAGES): once, after setup_fs. `twins`: the (class,
 * name) of each Python function the load is the twin of. */
static PyObject *pr_setup_miss(PyObject *mod, PyObject *args) {
    PyObject *ct, *dt, *st, *kt, *lt, *pt, *twins;
    long long fraction, spare_pages;
    if (!PyArg_ParseTuple(args, "OOOOOOO!LL", &ct, &dt, &st, &kt, &lt, &pt, &PyTuple_Type,
                          &twins, &fraction, &spare_pages))
        return NULL;
    if (M.ready) Py_RETURN_NONE;
    if (!S.fs_ready) {
        PyErr_SetString(PyExc_RuntimeError, "setup_miss: setup_fs first");
        return NULL;
    }
    if (fraction < 1 || spare_pages < 0) {
        PyErr_SetString(PyExc_ValueError, "setup_miss: a fraction >= 1 expected");
        return NULL;
    }
    if (need_type(ct, &M.cache_type) < 0 || need_type(dt, &M.dev_type) < 0
        || need_type(st, &M.dstats_type) < 0 || need_type(kt, &M.clock_type) < 0
        || need_type(lt, &M.lock_type) < 0 || need_type(pt, &M.profile_type) < 0)
        return NULL;
    MOFF(S.frame_type, fr_dev, "dev");
    MOFF(S.frame_type, fr_block, "block");
    MOFF(S.frame_type, fr_aspace, "aspace");
    MOFF(S.frame_type, fr_vpn, "vpn");
    MOFF(S.frame_type, fr_dirty, "dirty");
    MOFF(S.frame_type, fr_pinned, "pinned");
    MOFF(S.frame_type, fr_key, "key");
    MOFF(S.cstats_type, cs_misses, "misses");
    MOFF(S.cstats_type, cs_evictions, "evictions");
    MOFF(S.cstats_type, cs_prefetch_unused, "prefetch_unused");
    MOFF(S.cstats_type, cs_prefetches, "prefetches");
    MOFF(S.fsstats_type, fs_prefetches, "prefetches");
    MOFF(S.of_type, of_prefetches, "prefetches");
    MOFF(M.dstats_type, ds_reads, "reads");
    MOFF(M.dstats_type, ds_blocks_read, "blocks_read");
    MOFF(M.dstats_type, ds_bytes_read, "bytes_read");
    MOFF(M.dstats_type, ds_seeks, "seeks");
    MOFF(M.dstats_type, ds_busy_ns, "busy_ns");
    MOFF(M.clock_type, ck_now, "_now");
    MOFF(M.clock_type, ck_lock, "_lock");
    MOFF(M.profile_type, dp_overhead, "overhead_ns");
    MOFF(M.profile_type, dp_seek, "seek_ns");
    MOFF(M.profile_type, dp_rotation, "rotation_ns");
    MOFF(M.profile_type, dp_rate, "transfer_bytes_per_s");
    MOFF(S.cache_type, c_free, "_free");
    MOFF(S.cache_type, c_hand, "_hand");
    MOFF(S.cache_type, c_nframes, "nframes");
    MOFF(S.cache_type, c_spare, "_spare");
    MOFF(S.cache_type, c_spares, "_spares");
    MOFF(M.dev_type, d_nblocks, "nblocks");
    MOFF(M.dev_type, d_fd, "_fd");
    MOFF(M.dev_type, d_power, "_power");
    MOFF(M.dev_type, d_head, "_head");
    MOFF(M.dev_type, d_block_ns, "_block_ns");
    MOFF(M.dev_type, d_stats, "stats");
    MOFF(M.dev_type, d_clock, "clock");
    MOFF(M.dev_type, d_lock, "_lock");
    MOFF(M.dev_type, d_profile, "_profile");
    Py_ssize_t nt = PyTuple_GET_SIZE(twins);
    PyObject *found = PyTuple_New(nt);
    if (found == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nt; i++) {
        PyObject *tw = PyTuple_GET_ITEM(twins, i), *cls, *name;
        if (!PyArg_ParseTuple(tw, "O!U", &PyType_Type, &cls, &name)) {
            Py_DECREF(found);
            return NULL;
        }
        PyObject *fn = _PyType_Lookup((PyTypeObject *)cls, name);
        if (fn == NULL || !PyFunction_Check(fn)) {
            PyErr_Format(PyExc_TypeError, "setup_miss: %R.%U is not a Python function", cls, name);
            Py_DECREF(found);
            return NULL;
        }
        PyObject *entry = PyTuple_Pack(3, cls, name, fn);
        if (entry == NULL) {
            Py_DECREF(found);
            return NULL;
        }
        PyTuple_SET_ITEM(found, i, entry);
    }
    M.twins = found;
    M.prefetch_fraction = fraction;
    M.spare_pages = spare_pages;
    M.ready = 1;
    Py_RETURN_NONE;
}

/* misses(on=None) -> bool: whether misses are loaded here once set up (set it with on). */
static PyObject *pr_misses(PyObject *mod, PyObject *const *args, Py_ssize_t nargs) {
    int was = !M.off;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "misses(on=None)");
        return NULL;
    }
    if (nargs == 1 && args[0] != Py_None) {
        int on = PyObject_IsTrue(args[0]);
        if (on < 0) return NULL;
        M.off = !on;
    }
    return PyBool_FromLong(was);
}

static PyObject *pr_served_misses(PyObject *mod, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(M.served);
}

static PyObject *pr_served_readahead(PyObject *mod, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(M.served_ahead);
}

static PyMethodDef methods[] = {
    {"plain_read", (PyCFunction)(void (*)(void))pr_plain_read, METH_FASTCALL,
     "plain_read(fs, of, offset, n) -> bytes | None: FileIO.pread's plain path on a hit"},
    {"setup_fs", pr_setup_fs, METH_VARARGS,
     "setup_fs(FileSystem, OpenFile, Inode, FsStats, Cache, CacheStats, _Frame, BS, NDIRECT, "
     "READAHEAD_HISTORY): once"},
    {"setup_vfs", pr_setup_vfs, METH_VARARGS, "setup_vfs(KernelFile, VfsStats, PAGE_BYTES): once"},
    {"setup_vfs_classes", pr_setup_vfs_classes, METH_VARARGS,
     "setup_vfs_classes(VinoVFS, VinoFile): once, after setup_vfs"},
    {"served", pr_served, METH_NOARGS, "served() -> int: reads answered here so far"},
    {"setup_miss", pr_setup_miss, METH_VARARGS,
     "setup_miss(Cache, BlockDevice, DeviceStats, SimClock, Lock type, DiskProfile, twins, "
     "PREFETCH_FRACTION, PREFETCH_SPARE_PAGES): once, after setup_fs"},
    {"misses", (PyCFunction)(void (*)(void))pr_misses, METH_FASTCALL,
     "misses(on=None) -> bool: whether plain_read loads misses (on: set it)"},
    {"served_misses", pr_served_misses, METH_NOARGS,
     "served_misses() -> int: misses plain_read loaded so far"},
    {"served_readahead", pr_served_readahead, METH_NOARGS,
     "served_readahead() -> int: read-ahead blocks plain_read loaded so far"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_vino_plainread",
    "The plain read in native code (see vino.kernel.plainread).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__vino_plainread(void) {
    static PyTypeObject *const types[] = {&XReadType, &RLockType, NULL};
    return module_with_types(&moduledef, types);
}
