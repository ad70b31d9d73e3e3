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
 * - its miss (miss_locked, after setup_miss): Cache._miss with BlockDevice.read_into
 *   and Cache._sweep, in their common case (see "the miss" below).
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
 *
 * Fields are read and written at the offsets of the classes' __slots__ members
 * (setup_fs, setup_vfs, setup_vfs_classes), after an exact type check of each object:
 * the file system's, the cache's, the VFS's and its files' hot attributes are slots
 * too, so a read looks nothing up by name. Every count is computed before the first
 * one is stored: a failure (a MemoryError) changes nothing.
 */
#include "vino_native.h"
#include <stdint.h>
#include <unistd.h>

static struct {
    int fs_ready, vfs_ready;
    long long bs, ndirect, page_bytes;
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
    PyObject *n_epoch, *n_cache, *n_device, *n_stats, *n_readahead_max, *n_lock, *n_files,
        *n_tick, *n_acquire, *n_release, *n_appendleft, *n_vfs, *n_kfile, *n_mutex;
    PyTypeObject *deque_type; /* collections.deque, and its appendleft (a method descriptor) */
    PyObject *deque_appendleft;
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

/* A new reference to the instance attribute `name` of `obj`, or NULL (no error set):
 * the value of a __slots__ member of that name of its class, else the entry of its
 * instance dict. (The hot fields -- setup_fs, setup_vfs -- are read at their slots'
 * offsets directly.) */
static inline PyObject *inst_get(PyObject *obj, PyObject *name) {
    PyObject *d = _PyType_Lookup(Py_TYPE(obj), name); /* borrowed, no error set */
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || !PyObject_TypeCheck(obj, PyDescr_TYPE(d))) return NULL;
        PyObject *v = SLOT(obj, m->offset);
        Py_XINCREF(v);
        return v;
    }
    PyObject **dp = _PyObject_GetDictPtr(obj);
    if (dp == NULL || *dp == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *v = PyDict_GetItemWithError(*dp, name);
    if (v == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(v);
    return v;
}

/* ------------------------------------------------------------------ RLock */

/* threading.RLock's interface (acquire(blocking, timeout), release, with, _is_owned)
 * over a PyThread lock, so that the reads here try it without a Python call. */
typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    unsigned long owner; /* Invariant: the holder's thread ident while count > 0, else 0 */
    unsigned long count; /* times the holder took it (changed with the GIL held) */
} RLock;

static PyTypeObject RLockType;

static PyObject *rlock_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
        PyErr_SetString(PyExc_TypeError, "RLock() takes no arguments");
        return NULL;
    }
    return new_with_lock(type, offsetof(RLock, lock));
}

static void rlock_dealloc(PyObject *self) {
    RLock *r = (RLock *)self;
    if (r->lock != NULL) {
        if (r->count > 0) PyThread_release_lock(r->lock);
        PyThread_free_lock(r->lock);
    }
    Py_TYPE(self)->tp_free(self);
}

/* 1: taken (or taken again by its holder) without waiting; 0: another thread holds it. */
static inline int rlock_try(RLock *r) {
    unsigned long me = PyThread_get_thread_ident();
    if (r->count > 0 && r->owner == me) {
        r->count++;
        return 1;
    }
    if (PyThread_acquire_lock_timed(r->lock, 0, 0) != PY_LOCK_ACQUIRED) return 0;
    r->owner = me;
    r->count = 1;
    return 1;
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
    int got = acquire_wait(r->lock, blocking, timeout);
    if (got < 0) return NULL;
    if (got) {
        r->owner = PyThread_get_thread_ident();
        r->count = 1;
    }
    return PyBool_FromLong(got);
}

static inline int rlock_give(RLock *r) {
    if (r->count == 0 || r->owner != PyThread_get_thread_ident()) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return -1;
    }
    if (--r->count == 0) {
        r->owner = 0;
        PyThread_release_lock(r->lock);
    }
    return 0;
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

/* 1: `lock` taken without waiting; 0: another thread holds it; -1: error. */
static int lock_try(PyObject *lock) {
    if (Py_IS_TYPE(lock, &RLockType)) return rlock_try((RLock *)lock);
    PyObject *args[2] = {lock, Py_False};
    PyObject *r = PyObject_VectorcallMethod(S.n_acquire, args, 2, NULL);
    if (r == NULL) return -1;
    int ok = r == Py_True ? 1 : PyObject_IsTrue(r);
    Py_DECREF(r);
    return ok;
}

static int lock_give(PyObject *lock) {
    if (Py_IS_TYPE(lock, &RLockType)) return rlock_give((RLock *)lock);
    PyObject *args[1] = {lock};
    PyObject *r = PyObject_VectorcallMethod(S.n_release, args, 1, NULL);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* hist[i] of a deque of ints as a long long: 1; 0 if it is not one (no error set). */
static int hist_at(PyObject *hist, Py_ssize_t i, long long *out) {
    PyObject *item = PySequence_GetItem(hist, i);
    if (item == NULL) {
        PyErr_Clear();
        return 0;
    }
    int ok = as_ll(item, out);
    Py_DECREF(item);
    return ok;
}

/* The device block of file block b (a borrowed int, or NULL when the remembered map
 * has no entry: Python's None). *bad = 1 if the inode is not as expected. */
static PyObject *block_of(PyObject *direct, PyObject *bmap, long long b, int *bad) {
    if (b < S.ndirect) {
        if (b >= PyList_GET_SIZE(direct)) {
            *bad = 1;
            return NULL;
        }
        return PyList_GET_ITEM(direct, b);
    }
    PyObject *key = PyLong_FromLongLong(b);
    if (key == NULL) {
        *bad = 1;
        return NULL;
    }
    PyObject *blk = PyDict_GetItemWithError(bmap, key);
    Py_DECREF(key);
    if (blk == NULL && PyErr_Occurred()) *bad = 1;
    return blk;
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

/* The frame holding block blkv of dev (borrowed) as the hint names it, or NULL (no error
 * set) if it names none that holds it now. */
static PyObject *hinted(PyObject *cache, uint32_t *entry, PyObject *dev, long long blkv) {
    PyObject *frames = SLOT(cache, S.c_frames);
    if (entry == NULL || *entry == 0 || frames == NULL || !PyList_CheckExact(frames)
        || *entry > (uint64_t)PyList_GET_SIZE(frames))
        return NULL;
    PyObject *f = PyList_GET_ITEM(frames, *entry - 1);
    long long b;
    if (Py_TYPE(f) != S.frame_type || SLOT(f, S.fr_dev) != dev || !as_ll(SLOT(f, S.fr_block), &b)
        || b != blkv)
        return NULL;
    return f;
}

/* Record in the hint that `frame` (found in _files) holds the block of `entry`. */
static void hint_set(PyObject *cache, uint32_t *entry, PyObject *frame) {
    PyObject *frames = SLOT(cache, S.c_frames);
    long long i;
    if (entry == NULL || frames == NULL || !PyList_CheckExact(frames)
        || !as_ll(SLOT(frame, S.fr_index), &i) || i < 0 || i >= PyList_GET_SIZE(frames)
        || i >= UINT32_MAX || PyList_GET_ITEM(frames, i) != frame)
        return;
    *entry = (uint32_t)(i + 1);
}

/* A new reference to S.bs bytes copied from src, for a served hit: the bytes object the
 * last hit returned when nothing but this module holds it any more (apsw copies a page
 * into SQLite's buffer and lets go of it before SQLite's next read), else a new one. A
 * bytes object no one else holds is seen by no one while it is overwritten (its cached
 * hash is reset); one that anybody holds, even a memoryview of it, is never touched. It
 * saves a 4 KiB allocation and its release per page read. NULL: no memory. */
static PyObject *page_bytes(const char *src) {
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030C0000 /* ob_shash: 3.11 */
    PyObject *b = S.page;
    if (b != NULL && Py_REFCNT(b) == 1 && PyBytes_GET_SIZE(b) == S.bs) {
        memcpy(PyBytes_AS_STRING(b), src, (size_t)S.bs);
        ((PyBytesObject *)b)->ob_shash = -1;
        Py_INCREF(b);
        return b;
    }
    PyObject *fresh = PyBytes_FromStringAndSize(src, S.bs);
    if (fresh == NULL) return NULL;
    Py_INCREF(fresh);
    Py_XSETREF(S.page, fresh); /* ours of the old one dropped: its holders keep it */
    return fresh;
#else
    return PyBytes_FromStringAndSize(src, S.bs);
#endif
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
    PyObject *tick, *hits, *pf_cache, *pf_fs, *pf_of, *plain, *ahead, *pos;
} Counts;

static void counts_drop(Counts *c) {
    Py_XDECREF(c->tick);
    Py_XDECREF(c->hits);
    Py_XDECREF(c->pf_cache);
    Py_XDECREF(c->pf_fs);
    Py_XDECREF(c->pf_of);
    Py_XDECREF(c->plain);
    Py_XDECREF(c->ahead);
    Py_XDECREF(c->pos);
}

/* ------------------------------------------------------------------ the miss */

/* The plain read's miss (Cache._miss with BlockDevice.read_into and Cache._sweep, and
 * the rest of FileIO.pread's plain path), done here when its common case holds: no
 * sequential step (then read-ahead asks, and the general path loads), a BlockDevice
 * with no crash plan armed and nothing patched in, and a frame that is free or a clean
 * file block the global clock picks (an anonymous page's policy is never asked here, a
 * dirty block never written back here). Everything is checked, the clock's victim found
 * without changing anything (the sweep done dry), every new value made; then the block
 * is read into the cache's spare buffer (one pread under the device's lock and the
 * clock's, as read_into reads it), and only then is anything stored. A read the device
 * does not complete, a lock another thread holds, or anything unexpected declines
 * having changed nothing, and the Python path runs as before (and meets the error). */
static struct {
    int ready, off; /* off: misses(False) was asked, before or after the setup */
    PyTypeObject *cache_type, *dev_type, *dstats_type, *clock_type, *lock_type;
    PyObject *fn_miss, *fn_sweep, *fn_evict, *fn_read_into; /* the Python twins */
    unsigned int cache_tag, dev_tag; /* the types' version tags when the twins were seen */
    /* _Frame */
    Py_ssize_t fr_dev, fr_block, fr_aspace, fr_vpn, fr_dirty, fr_pinned;
    /* CacheStats */
    Py_ssize_t cs_misses, cs_evictions, cs_prefetch_unused;
    /* DeviceStats */
    Py_ssize_t ds_reads, ds_blocks_read, ds_bytes_read, ds_seeks, ds_busy_ns;
    /* SimClock */
    Py_ssize_t ck_now, ck_lock;
    PyObject *n_miss, *n_sweep, *n_evict, *n_read_into, *n_free, *n_frames, *n_hand,
        *n_nframes, *n_spare, *n_nblocks, *n_fd, *n_power, *n_head, *n_block_ns, *n_clock,
        *n_popleft;
    unsigned long long served; /* misses loaded here */
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

/* 1 if the Python this code is the twin of is what the cache and the device would run:
 * their exact classes, the functions set up, none shadowed on the instances (a fault
 * injector patches the device's read_into there). 0 otherwise (no error set). */
static int twins_unchanged(PyObject *cache, PyObject *dev) {
    PyTypeObject *ct = Py_TYPE(cache), *dt = Py_TYPE(dev);
    if (ct != M.cache_type || dt != M.dev_type) return 0;
    if (!same_tag(ct, M.cache_tag)) {
        if (_PyType_Lookup(ct, M.n_miss) != M.fn_miss || _PyType_Lookup(ct, M.n_sweep) != M.fn_sweep
            || _PyType_Lookup(ct, M.n_evict) != M.fn_evict)
            return 0;
        M.cache_tag = tag_of(ct);
    }
    if (!same_tag(dt, M.dev_tag)) {
        if (_PyType_Lookup(dt, M.n_read_into) != M.fn_read_into) return 0;
        M.dev_tag = tag_of(dt);
    }
    PyObject **cd = _PyObject_GetDictPtr(cache), **dd = _PyObject_GetDictPtr(dev);
    if (cd == NULL || *cd == NULL || dd == NULL || *dd == NULL) return 0;
    if (PyDict_GetItemWithError(*cd, M.n_miss) != NULL || PyDict_GetItemWithError(*cd, M.n_sweep)
        || PyDict_GetItemWithError(*cd, M.n_evict) || PyDict_GetItemWithError(*dd, M.n_read_into)
        || PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Cache._sweep, dry: the index of the frame the global clock takes, starting at `hand`;
 * *lap = 1 if it goes round once first (then every unpinned page's bit is cleared),
 * else 0 (the bits of the referenced pages from hand up to it are cleared). -1: none can
 * be taken (all pinned or free: the Python raises NoSpace); -2: an unexpected object. */
static Py_ssize_t sweep_dry(PyObject *frames, Py_ssize_t n, Py_ssize_t hand, int *lap) {
    Py_ssize_t first = -1;
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t i = (hand + k) % n;
        PyObject *f = PyList_GET_ITEM(frames, i);
        if (Py_TYPE(f) != S.frame_type) return -2;
        int pinned = flag(SLOT(f, M.fr_pinned)), ref = flag(SLOT(f, S.fr_referenced));
        PyObject *d = SLOT(f, M.fr_dev), *a = SLOT(f, M.fr_aspace);
        if (pinned < 0 || ref < 0 || d == NULL || a == NULL) return -2;
        if (pinned || (d == Py_None && a == Py_None)) continue; /* pinned, or free */
        if (!ref) {
            *lap = 0;
            return i;
        }
        if (first < 0) first = i;
    }
    *lap = 1;
    return first;
}

/* The sweep done: what sweep_dry found, now with its changes (the bits, the hand). */
static void sweep_do(PyObject *frames, Py_ssize_t n, Py_ssize_t hand, Py_ssize_t victim,
                     int lap) {
    Py_ssize_t steps = lap ? n : (victim - hand + n) % n;
    for (Py_ssize_t k = 0; k < steps; k++) {
        PyObject *f = PyList_GET_ITEM(frames, (hand + k) % n);
        if (SLOT(f, M.fr_pinned) == Py_True
            || (SLOT(f, M.fr_dev) == Py_None && SLOT(f, M.fr_aspace) == Py_None))
            continue;
        if (SLOT(f, S.fr_referenced) == Py_True) {
            Py_INCREF(Py_False);
            slot_put(f, S.fr_referenced, Py_False);
        }
    }
}

/* The new values a miss stores, all made before the first is stored. */
typedef struct {
    PyObject *key, *vkey, *result, *misses, *evictions, *unused, *tick, *hand, *reads,
        *blocks, *bytes, *seeks, *busy, *head, *now, *plain, *pos, *bidx;
} MissNew;

static void missnew_drop(MissNew *m) {
    PyObject **all[] = {&m->key, &m->vkey, &m->result, &m->misses, &m->evictions, &m->unused,
                        &m->tick, &m->hand, &m->reads, &m->blocks, &m->bytes, &m->seeks,
                        &m->busy, &m->head, &m->now, &m->plain, &m->pos, &m->bidx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) Py_CLEAR(*all[i]);
}

/* Under the cache's lock, block `blk` (an int, not resident in `files`) of file block
 * `bidx` of `of`: loaded and the read's bytes returned, or NULL -- declined (nothing
 * changed) when no error is set. */
static PyObject *miss_locked(PyObject *fs, PyObject *of, PyObject *cache, PyObject *files,
                             PyObject *dev, PyObject *blk, long long bidx, long long offset) {
    if (!M.ready || M.off || !twins_unchanged(cache, dev)) return NULL;
    long long blkv;
    if (!as_ll(blk, &blkv)) return NULL;
    /* The history as _record leaves it: after a sequential step read-ahead asks (the
     * general path loads). */
    PyObject *hist = SLOT(of, S.of_history);
    if (hist == NULL) return NULL;
    Py_ssize_t hlen = PySequence_Size(hist);
    long long h0 = 0, h1 = 0;
    if (hlen < 0 || (hlen > 0 && !hist_at(hist, 0, &h0)) || (hlen > 1 && !hist_at(hist, 1, &h1))) {
        PyErr_Clear();
        return NULL;
    }
    if ((hlen > 0 && h0 == bidx - 1) || (hlen > 1 && h0 == bidx && h1 == bidx - 1)) return NULL;

    PyObject *result = NULL, *frames = NULL, *freel = NULL, *spare = NULL, *cstats = NULL,
             *stats = NULL, *tick = NULL, *handobj = NULL, *nfr = NULL, *nblocks = NULL,
             *fd = NULL, *power = NULL, *head = NULL, *block_ns = NULL, *dstats = NULL,
             *clock = NULL, *dlock = NULL, *ctlock = NULL;
    MissNew m = {0};
    int dheld = 0, cheld = 0;
    frames = inst_get(cache, M.n_frames);
    freel = inst_get(cache, M.n_free);
    spare = inst_get(cache, M.n_spare);
    cstats = SLOT(cache, S.c_stats);
    tick = SLOT(cache, S.c_tick);
    stats = SLOT(fs, S.fs_stats);
    Py_XINCREF(cstats);
    Py_XINCREF(tick);
    Py_XINCREF(stats);
    handobj = inst_get(cache, M.n_hand);
    nfr = inst_get(cache, M.n_nframes);
    nblocks = inst_get(dev, M.n_nblocks);
    fd = inst_get(dev, M.n_fd);
    power = inst_get(dev, M.n_power);
    head = inst_get(dev, M.n_head);
    block_ns = inst_get(dev, M.n_block_ns);
    dstats = inst_get(dev, S.n_stats);
    clock = inst_get(dev, M.n_clock);
    dlock = inst_get(dev, S.n_lock);
    long long tickv, hand, n, nb, fdv, headv, ns_far, ns_seq;
    if (frames == NULL || !PyList_CheckExact(frames) || freel == NULL || !PyList_CheckExact(freel)
        || spare == NULL || !PyByteArray_CheckExact(spare) || PyByteArray_GET_SIZE(spare) != S.bs
        || cstats == NULL || Py_TYPE(cstats) != S.cstats_type || stats == NULL
        || Py_TYPE(stats) != S.fsstats_type || !as_ll(tick, &tickv) || !as_ll(handobj, &hand)
        || !as_ll(nfr, &n) || n < 1 || PyList_GET_SIZE(frames) != n || hand < 0 || hand >= n
        || !as_ll(nblocks, &nb) || blkv < 0 || blkv >= nb || !as_ll(fd, &fdv) || fdv < 0
        || power != Py_None || !as_ll(head, &headv) || block_ns == NULL
        || !PyTuple_CheckExact(block_ns) || PyTuple_GET_SIZE(block_ns) != 2
        || !as_ll(PyTuple_GET_ITEM(block_ns, 0), &ns_far)
        || !as_ll(PyTuple_GET_ITEM(block_ns, 1), &ns_seq) || dstats == NULL
        || Py_TYPE(dstats) != M.dstats_type || clock == NULL
        || (clock != Py_None && Py_TYPE(clock) != M.clock_type) || dlock == NULL
        || Py_TYPE(dlock) != M.lock_type)
        goto decline;
    long long nowv = 0;
    if (clock != Py_None) {
        ctlock = SLOT(clock, M.ck_lock);
        if (ctlock == NULL || Py_TYPE(ctlock) != M.lock_type
            || !as_ll(SLOT(clock, M.ck_now), &nowv))
            goto decline;
        Py_INCREF(ctlock);
    }
    /* (Both locks are threading.Lock's C type: trying them runs no Python, so nothing
     * read here changes before they are held.) */

    /* The frame: a free one (the lowest index first), else the global clock's victim. */
    PyObject *frame, *vdev = NULL, *vblock = NULL;
    Py_ssize_t nfree = PyList_GET_SIZE(freel), victim = -1;
    int lap = 0, vpf = 0;
    if (nfree > 0) {
        long long idx;
        if (!as_ll(PyList_GET_ITEM(freel, nfree - 1), &idx) || idx < 0 || idx >= n) goto decline;
        frame = PyList_GET_ITEM(frames, idx);
        if (Py_TYPE(frame) != S.frame_type || SLOT(frame, M.fr_dev) != Py_None
            || SLOT(frame, M.fr_aspace) != Py_None)
            goto decline;
    } else {
        victim = sweep_dry(frames, n, hand, &lap);
        if (victim < 0) goto decline;
        frame = PyList_GET_ITEM(frames, victim);
        vdev = SLOT(frame, M.fr_dev);
        vblock = SLOT(frame, M.fr_block);
        vpf = flag(SLOT(frame, S.fr_prefetched));
        /* An anonymous page: its address space's policy picks (Python); a dirty block:
         * written back first (Python). */
        if (SLOT(frame, M.fr_aspace) != Py_None || flag(SLOT(frame, M.fr_dirty)) != 0
            || vdev == Py_None || vblock == NULL || vpf < 0)
            goto decline;
    }
    PyObject *fdata = SLOT(frame, S.fr_data);
    if (fdata == NULL || !PyByteArray_CheckExact(fdata) || PyByteArray_GET_SIZE(fdata) != S.bs
        || fdata == spare)
        goto decline;

    /* Every new value. */
    int seq = blkv == headv;
    long long ns = seq ? ns_seq : ns_far;
    int append = hlen == 0 || h0 != bidx;
    m.key = PyTuple_Pack(2, dev, blk);
    m.result = PyBytes_FromStringAndSize(NULL, S.bs);
    m.misses = plus(cstats, M.cs_misses, 1);
    m.tick = PyLong_FromLongLong(tickv + 1);
    m.reads = plus(dstats, M.ds_reads, 1);
    m.blocks = plus(dstats, M.ds_blocks_read, 1);
    m.bytes = plus(dstats, M.ds_bytes_read, S.bs);
    m.busy = plus(dstats, M.ds_busy_ns, ns);
    m.head = PyLong_FromLongLong(blkv + 1);
    m.plain = plus(stats, S.fs_plain_reads, 1);
    m.pos = PyLong_FromLongLong(offset + S.bs);
    if (m.key == NULL || m.result == NULL || m.misses == NULL || m.tick == NULL || m.reads == NULL
        || m.blocks == NULL || m.bytes == NULL || m.busy == NULL || m.head == NULL
        || m.plain == NULL || m.pos == NULL)
        goto fail;
    if (!seq && (m.seeks = plus(dstats, M.ds_seeks, 1)) == NULL) goto fail;
    if (clock != Py_None && (m.now = PyLong_FromLongLong(nowv + ns)) == NULL) goto fail;
    if (append && (m.bidx = PyLong_FromLongLong(bidx)) == NULL) goto fail;
    if (victim >= 0) {
        m.vkey = PyTuple_Pack(2, vdev, vblock);
        m.evictions = plus(cstats, M.cs_evictions, 1);
        m.hand = PyLong_FromSsize_t((victim + 1) % n);
        if (m.vkey == NULL || m.evictions == NULL || m.hand == NULL) goto fail;
        if (vpf && (m.unused = plus(cstats, M.cs_prefetch_unused, 1)) == NULL) goto fail;
    }

    /* The device's request: under its lock and the clock's, as read_into. */
    int got = lock_try(dlock);
    if (got <= 0) goto decline;
    dheld = 1;
    if (ctlock != NULL) {
        got = lock_try(ctlock);
        if (got <= 0) goto decline;
        cheld = 1;
    }
    ssize_t nread = pread((int)fdv, PyByteArray_AS_STRING(spare), (size_t)S.bs,
                          (off_t)(blkv * S.bs));
    if (nread != S.bs) goto decline; /* an error, a short read, a signal: the Python's */

    /* Stored from here on; the two stores that may fail (no memory) first, the first
     * undone if the second fails: then only the device's unaccounted read happened. */
    if (append) {
        PyObject *args[2] = {hist, m.bidx};
        PyObject *done = PyObject_VectorcallMethod(S.n_appendleft, args, 2, NULL);
        if (done == NULL) goto fail;
        Py_DECREF(done);
    }
    if (PyDict_SetItem(files, m.key, frame) < 0) {
        if (append) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyObject *args[1] = {hist};
            PyObject *back = PyObject_VectorcallMethod(M.n_popleft, args, 1, NULL);
            Py_XDECREF(back);
            PyErr_Restore(t, v, tb);
        }
        goto fail;
    }
    if (victim >= 0) { /* _sweep's bits and hand, then _evict of a clean file block */
        sweep_do(frames, n, hand, victim, lap);
        if (PyDict_DelItem(files, m.vkey) < 0) PyErr_Clear(); /* it is there: cannot fail */
        Py_INCREF(Py_None);
        slot_put(frame, M.fr_dev, Py_None);
        slot_put(frame, M.fr_vpn, PyLong_FromLong(-1)); /* a small int: cannot fail */
        Py_INCREF(Py_False);
        slot_put(frame, S.fr_prefetched, Py_False);
        slot_put(cstats, M.cs_evictions, m.evictions);
        m.evictions = NULL;
        if (m.unused != NULL) {
            slot_put(cstats, M.cs_prefetch_unused, m.unused);
            m.unused = NULL;
        }
        if (PyObject_GenericSetAttr(cache, M.n_hand, m.hand) < 0) PyErr_Clear(); /* a key */
    } else { /* _free.pop(): the list only shrinks (no reallocation, no failure) */
        PyObject *last = PyList_GET_ITEM(freel, nfree - 1);
        Py_SET_SIZE(freel, nfree - 1);
        Py_DECREF(last);
    }
    /* The claim: the frame takes the spare buffer the block was read into, and gives
     * its own to the cache as the next spare (no copy). */
    Py_INCREF(dev);
    slot_put(frame, M.fr_dev, dev);
    Py_INCREF(blk);
    slot_put(frame, M.fr_block, blk);
    if (PyObject_GenericSetAttr(cache, M.n_spare, fdata) < 0) PyErr_Clear(); /* a key */
    Py_INCREF(spare);
    slot_put(frame, S.fr_data, spare);
    Py_INCREF(m.tick);
    slot_put(cache, S.c_tick, m.tick);
    slot_put(frame, S.fr_last_use, m.tick);
    m.tick = NULL;
    Py_INCREF(Py_True);
    slot_put(frame, S.fr_referenced, Py_True);
    slot_put(cstats, M.cs_misses, m.misses);
    m.misses = NULL;
    /* read_into's accounting */
    if (PyObject_GenericSetAttr(dev, M.n_head, m.head) < 0) PyErr_Clear(); /* a key */
    if (m.seeks != NULL) {
        slot_put(dstats, M.ds_seeks, m.seeks);
        m.seeks = NULL;
    }
    slot_put(dstats, M.ds_busy_ns, m.busy);
    slot_put(dstats, M.ds_reads, m.reads);
    slot_put(dstats, M.ds_blocks_read, m.blocks);
    slot_put(dstats, M.ds_bytes_read, m.bytes);
    m.busy = m.reads = m.blocks = m.bytes = NULL;
    if (m.now != NULL) {
        slot_put(clock, M.ck_now, m.now);
        m.now = NULL;
    }
    /* pread's plain path */
    slot_put(stats, S.fs_plain_reads, m.plain);
    slot_put(of, S.of_pos, m.pos);
    m.plain = m.pos = NULL;
    memcpy(PyBytes_AS_STRING(m.result), PyByteArray_AS_STRING(spare), (size_t)S.bs);
    result = m.result;
    m.result = NULL;
    M.served++;
    goto done;

fail:
    result = NULL; /* the error set */
    goto done;
decline:
    PyErr_Clear();
    result = NULL;
done:
    if (cheld && lock_give(ctlock) < 0) Py_CLEAR(result); /* the error of release() */
    if (dheld && lock_give(dlock) < 0) Py_CLEAR(result);
    missnew_drop(&m);
    Py_XDECREF(ctlock);
    Py_XDECREF(dlock);
    Py_XDECREF(clock);
    Py_XDECREF(dstats);
    Py_XDECREF(block_ns);
    Py_XDECREF(head);
    Py_XDECREF(power);
    Py_XDECREF(fd);
    Py_XDECREF(nblocks);
    Py_XDECREF(stats);
    Py_XDECREF(nfr);
    Py_XDECREF(handobj);
    Py_XDECREF(tick);
    Py_XDECREF(cstats);
    Py_XDECREF(spare);
    Py_XDECREF(freel);
    Py_XDECREF(frames);
    return result;
}


/* Under the cache's lock: the block, or NULL (declined if no error is set). */
static PyObject *hit_locked(PyObject *fs, PyObject *of, PyObject *cache, long long offset) {
    PyObject *ino = SLOT(of, S.of_inode);
    if (ino == NULL || Py_TYPE(ino) != S.inode_type) return NULL;
    long long size, bidx = offset / S.bs;
    if (!as_ll(SLOT(ino, S.ino_size), &size)) return NULL;
    if (offset + S.bs > size) return NULL; /* past the end, or the last partial block */
    PyObject *direct = SLOT(ino, S.ino_direct), *bmap = SLOT(ino, S.ino_bmap);
    if (direct == NULL || !PyList_CheckExact(direct) || bmap == NULL || !PyDict_CheckExact(bmap))
        return NULL;
    int bad = 0;
    PyObject *blk = block_of(direct, bmap, bidx, &bad);
    long long blkv;
    if (bad) {
        PyErr_Clear();
        return NULL;
    }
    if (blk == NULL || !as_ll(blk, &blkv) || blkv == 0) return NULL; /* a hole, or unmapped */
    /* Held: a Python callback below (a lock, a hash) may let another thread run. */
    Py_INCREF(blk);
    Py_INCREF(direct);
    Py_INCREF(bmap);

    PyObject *result = NULL, *files = NULL, *dev = NULL, *stats = NULL, *cstats = NULL,
             *tick = NULL, *bidx_obj = NULL;
    Counts c = {0};
    files = SLOT(cache, S.c_files);
    dev = SLOT(fs, S.fs_device);
    if (files == NULL || dev == NULL || !PyDict_CheckExact(files)) goto decline;
    Py_INCREF(files);
    Py_INCREF(dev);
    uint32_t *entry = hint_entry(cache, blkv);
    PyObject *frame = hinted(cache, entry, dev, blkv);
    if (frame == NULL) {
        int r = resident(files, dev, blk, &frame);
        if (r < 0) goto decline;
        if (!r) { /* a miss: loaded here when it can be (miss_locked), else by the Python */
            result = miss_locked(fs, of, cache, files, dev, blk, bidx, offset);
            if (result == NULL && !PyErr_Occurred()) goto decline;
            goto missed;
        }
        if (Py_TYPE(frame) != S.frame_type) goto decline;
        hint_set(cache, hint_entry(cache, blkv), frame); /* anew: the probe may run Python */
    }
    Py_INCREF(frame);

    /* The history as _record leaves it; the built-in read-ahead asks only after a
     * sequential step. */
    PyObject *hist = SLOT(of, S.of_history);
    if (hist == NULL) goto decline_frame;
    Py_ssize_t hlen = PySequence_Size(hist);
    if (hlen < 0) goto decline_frame;
    long long h0 = 0, h1 = 0;
    if (hlen > 0 && !hist_at(hist, 0, &h0)) goto decline_frame;
    if (hlen > 1 && !hist_at(hist, 1, &h1)) goto decline_frame;
    long long ahead = 0;
    if ((hlen > 0 && h0 == bidx - 1) || (hlen > 1 && h0 == bidx && h1 == bidx - 1)) {
        ahead = plain_ahead(fs, files, dev, direct, bmap, size, bidx, hist, hlen, h0);
        if (ahead < 0) goto decline_frame; /* -1: read-ahead would load; -2: unexpected */
    }

    stats = SLOT(fs, S.fs_stats);
    cstats = SLOT(cache, S.c_stats);
    tick = SLOT(cache, S.c_tick);
    Py_XINCREF(stats);
    Py_XINCREF(cstats);
    Py_XINCREF(tick);
    PyObject *data = SLOT(frame, S.fr_data);
    long long tickv;
    if (stats == NULL || Py_TYPE(stats) != S.fsstats_type || cstats == NULL
        || Py_TYPE(cstats) != S.cstats_type || !as_ll(tick, &tickv) || data == NULL
        || !PyByteArray_CheckExact(data) || PyByteArray_GET_SIZE(data) != S.bs)
        goto decline_frame;
    PyObject *prefetched = SLOT(frame, S.fr_prefetched);
    if (prefetched == NULL) goto decline_frame;
    int pf = PyObject_IsTrue(prefetched);
    if (pf < 0) goto decline_frame;

    /* Everything is known: compute every new value, then store them all. */
    result = page_bytes(PyByteArray_AS_STRING(data));
    c.tick = PyLong_FromLongLong(tickv + 1);
    c.hits = plus(cstats, S.cs_hits, 1);
    c.plain = plus(stats, S.fs_plain_reads, 1);
    c.pos = PyLong_FromLongLong(offset + S.bs);
    if (result == NULL || c.tick == NULL || c.hits == NULL || c.plain == NULL || c.pos == NULL)
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
        bidx_obj = PyLong_FromLongLong(bidx);
        if (bidx_obj == NULL) goto fail;
        PyObject *args[2] = {hist, bidx_obj};
        PyObject *done = Py_TYPE(hist) == S.deque_type /* deque.appendleft, not looked up */
            ? PyObject_Vectorcall(S.deque_appendleft, args, 2, NULL)
            : PyObject_VectorcallMethod(S.n_appendleft, args, 2, NULL);
        if (done == NULL) goto fail;
        Py_DECREF(done);
    }
    Py_INCREF(c.tick);
    slot_put(cache, S.c_tick, c.tick);
    slot_put(frame, S.fr_last_use, c.tick);
    c.tick = NULL;
    Py_INCREF(Py_True);
    slot_put(frame, S.fr_referenced, Py_True);
    slot_put(cstats, S.cs_hits, c.hits);
    c.hits = NULL;
    if (pf) { /* read-ahead's first hit (PREFETCH_HIT) */
        Py_INCREF(Py_False);
        slot_put(frame, S.fr_prefetched, Py_False);
        slot_put(cstats, S.cs_prefetch_hits, c.pf_cache);
        slot_put(stats, S.fs_prefetch_hits, c.pf_fs);
        slot_put(of, S.of_prefetch_hits, c.pf_of);
        c.pf_cache = c.pf_fs = c.pf_of = NULL;
    }
    slot_put(stats, S.fs_plain_reads, c.plain); /* also a read, a block read, ... (FsStats) */
    c.plain = NULL;
    if (c.ahead != NULL) {
        slot_put(stats, S.fs_readahead_blocks, c.ahead);
        c.ahead = NULL;
    }
    slot_put(of, S.of_pos, c.pos);
    c.pos = NULL;
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
    Py_XDECREF(bidx_obj);
    Py_XDECREF(tick);
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
static PyObject *plain_core(PyObject *fs, PyObject *of, long long offset, long long n) {
    if (!S.fs_ready || Py_TYPE(of) != S.of_type || Py_TYPE(fs) != S.fs_type) return NULL;
    if (n != S.bs || offset < 0 || offset % S.bs) return NULL;
    long long pv, ev;
    if (!as_ll(SLOT(of, S.of_plain), &pv) || !as_ll(SLOT(fs, S.fs_epoch), &ev) || pv != ev)
        return NULL; /* not asked at this epoch: the Python path asks */
    PyObject *cache = SLOT(fs, S.fs_cache);
    if (cache == NULL || Py_TYPE(cache) != S.cache_type) return NULL;
    PyObject *lock = SLOT(cache, S.c_lock);
    if (lock == NULL) return NULL;
    Py_INCREF(cache);
    Py_INCREF(lock);
    PyObject *data = NULL;
    int got = lock_try(lock);
    if (got < 0) {
        PyErr_Clear();
    } else if (got) {
        data = hit_locked(fs, of, cache, offset);
        if (lock_give(lock) < 0) Py_CLEAR(data); /* the error of release() */
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
    PyObject *data = plain_core(args[0], args[1], offset, n);
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
        || !as_ll(amount_obj, &amount) || !as_ll(offset_obj, &offset))
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
    int got = lock_try(mutex);
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
        data = plain_core(fs, of, offset, amount); /* an error here is a real failure */
        Py_DECREF(fs);
        Py_DECREF(of);
        if (data != NULL) {
            PyObject *reads = plus(stats, S.vs_reads, 1);
            PyObject *nbytes = plus(stats, S.vs_bytes_read, PyBytes_GET_SIZE(data));
            if (reads == NULL || nbytes == NULL) {
                Py_XDECREF(reads);
                Py_XDECREF(nbytes);
                Py_CLEAR(data); /* no memory: the error reported */
            } else {
                slot_put(stats, S.vs_reads, reads);
                slot_put(stats, S.vs_bytes_read, nbytes);
            }
        }
    }
    if (lock_give(mutex) < 0) Py_CLEAR(data);
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
    INTERN(n_epoch, "_epoch");
    INTERN(n_cache, "cache");
    INTERN(n_device, "device");
    INTERN(n_stats, "stats");
    INTERN(n_readahead_max, "readahead_max");
    INTERN(n_lock, "_lock");
    INTERN(n_files, "_files");
    INTERN(n_tick, "_tick");
    INTERN(n_acquire, "acquire");
    INTERN(n_release, "release");
    INTERN(n_appendleft, "appendleft");
    INTERN(n_vfs, "vfs");
    INTERN(n_kfile, "kfile");
    INTERN(n_mutex, "_mutex");
    Py_RETURN_NONE;
}

/* setup_fs(FileSystem, OpenFile, Inode, FsStats, Cache, CacheStats, _Frame, BS, NDIRECT):
 * once. */
static PyObject *pr_setup_fs(PyObject *mod, PyObject *args) {
    PyObject *fst, *ot, *it, *ft, *cat, *ct, *frt;
    long long bs, ndirect;
    if (!PyArg_ParseTuple(args, "OOOOOOOLL", &fst, &ot, &it, &ft, &cat, &ct, &frt, &bs, &ndirect))
        return NULL;
    if (S.fs_ready) Py_RETURN_NONE;
    if (bs <= 0 || ndirect < 0) {
        PyErr_SetString(PyExc_ValueError, "setup_fs: a block size > 0 expected");
        return NULL;
    }
    PyObject *r = intern_names();
    if (r == NULL) return NULL;
    Py_DECREF(r);
    if (need_type(fst, &S.fs_type) < 0 || need_type(ot, &S.of_type) < 0
        || need_type(it, &S.inode_type) < 0 || need_type(ft, &S.fsstats_type) < 0
        || need_type(cat, &S.cache_type) < 0 || need_type(ct, &S.cstats_type) < 0
        || need_type(frt, &S.frame_type) < 0)
        return NULL;
    if (S.deque_type == NULL) {
        PyObject *coll = PyImport_ImportModule("collections");
        PyObject *dq = coll != NULL ? PyObject_GetAttrString(coll, "deque") : NULL;
        Py_XDECREF(coll);
        if (dq == NULL) return NULL;
        PyObject *app = PyObject_GetAttrString(dq, "appendleft");
        if (app == NULL || !PyType_Check(dq)) {
            Py_XDECREF(app);
            Py_DECREF(dq);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "collections.deque");
            return NULL;
        }
        S.deque_type = (PyTypeObject *)dq; /* both kept for the life of the process */
        S.deque_appendleft = app;
    }
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

/* The function `name` of `type` (a new reference), or NULL with TypeError. */
static PyObject *twin_of(PyTypeObject *type, PyObject *name) {
    PyObject *fn = _PyType_Lookup(type, name);
    if (fn == NULL || !PyFunction_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "%s.%U is not a Python function", type->tp_name, name);
        return NULL;
    }
    Py_INCREF(fn);
    return fn;
}

/* setup_miss(Cache, BlockDevice, DeviceStats, SimClock, type(threading.Lock())): once,
 * after setup_fs. */
static PyObject *pr_setup_miss(PyObject *mod, PyObject *args) {
    PyObject *ct, *dt, *st, *kt, *lt;
    if (!PyArg_ParseTuple(args, "OOOOO", &ct, &dt, &st, &kt, &lt)) return NULL;
    if (M.ready) Py_RETURN_NONE;
    if (!S.fs_ready) {
        PyErr_SetString(PyExc_RuntimeError, "setup_miss: setup_fs first");
        return NULL;
    }
    MINTERN(n_miss, "_miss");
    MINTERN(n_sweep, "_sweep");
    MINTERN(n_evict, "_evict");
    MINTERN(n_read_into, "read_into");
    MINTERN(n_free, "_free");
    MINTERN(n_frames, "_frames");
    MINTERN(n_hand, "_hand");
    MINTERN(n_nframes, "nframes");
    MINTERN(n_spare, "_spare");
    MINTERN(n_nblocks, "nblocks");
    MINTERN(n_fd, "_fd");
    MINTERN(n_power, "_power");
    MINTERN(n_head, "_head");
    MINTERN(n_block_ns, "_block_ns");
    MINTERN(n_clock, "clock");
    MINTERN(n_popleft, "popleft");
    if (need_type(ct, &M.cache_type) < 0 || need_type(dt, &M.dev_type) < 0
        || need_type(st, &M.dstats_type) < 0 || need_type(kt, &M.clock_type) < 0
        || need_type(lt, &M.lock_type) < 0)
        return NULL;
    MOFF(S.frame_type, fr_dev, "dev");
    MOFF(S.frame_type, fr_block, "block");
    MOFF(S.frame_type, fr_aspace, "aspace");
    MOFF(S.frame_type, fr_vpn, "vpn");
    MOFF(S.frame_type, fr_dirty, "dirty");
    MOFF(S.frame_type, fr_pinned, "pinned");
    MOFF(S.cstats_type, cs_misses, "misses");
    MOFF(S.cstats_type, cs_evictions, "evictions");
    MOFF(S.cstats_type, cs_prefetch_unused, "prefetch_unused");
    MOFF(M.dstats_type, ds_reads, "reads");
    MOFF(M.dstats_type, ds_blocks_read, "blocks_read");
    MOFF(M.dstats_type, ds_bytes_read, "bytes_read");
    MOFF(M.dstats_type, ds_seeks, "seeks");
    MOFF(M.dstats_type, ds_busy_ns, "busy_ns");
    MOFF(M.clock_type, ck_now, "_now");
    MOFF(M.clock_type, ck_lock, "_lock");
    if ((M.fn_miss = twin_of(M.cache_type, M.n_miss)) == NULL
        || (M.fn_sweep = twin_of(M.cache_type, M.n_sweep)) == NULL
        || (M.fn_evict = twin_of(M.cache_type, M.n_evict)) == NULL
        || (M.fn_read_into = twin_of(M.dev_type, M.n_read_into)) == NULL)
        return NULL;
    M.cache_tag = tag_of(M.cache_type);
    M.dev_tag = tag_of(M.dev_type);
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

static PyMethodDef methods[] = {
    {"plain_read", (PyCFunction)(void (*)(void))pr_plain_read, METH_FASTCALL,
     "plain_read(fs, of, offset, n) -> bytes | None: FileIO.pread's plain path on a hit"},
    {"setup_fs", pr_setup_fs, METH_VARARGS,
     "setup_fs(FileSystem, OpenFile, Inode, FsStats, Cache, CacheStats, _Frame, BS, NDIRECT): once"},
    {"setup_vfs", pr_setup_vfs, METH_VARARGS, "setup_vfs(KernelFile, VfsStats, PAGE_BYTES): once"},
    {"setup_vfs_classes", pr_setup_vfs_classes, METH_VARARGS,
     "setup_vfs_classes(VinoVFS, VinoFile): once, after setup_vfs"},
    {"served", pr_served, METH_NOARGS, "served() -> int: reads answered here so far"},
    {"setup_miss", pr_setup_miss, METH_VARARGS,
     "setup_miss(Cache, BlockDevice, DeviceStats, SimClock, Lock type): once, after setup_fs"},
    {"misses", (PyCFunction)(void (*)(void))pr_misses, METH_FASTCALL,
     "misses(on=None) -> bool: whether plain_read loads misses (on: set it)"},
    {"served_misses", pr_served_misses, METH_NOARGS,
     "served_misses() -> int: misses plain_read loaded so far"},
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
