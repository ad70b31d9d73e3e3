/*
 * fastpath.c — vino's native fast path into and out of WebAssembly: a CPython
 * extension module (_vino_fastpath) built once per machine and Python version,
 * like the ticker (see graft/fastpath.py for the build, the fallback and why).
 *
 * What it offers, each the drop-in twin of a ctypes piece of graft/fastcall.py:
 *
 * - RawCall: one export's raw call (wasmtime_func_call_unchecked, or the stack
 *   guard's vino_call, with the same five arguments), made with no argument to
 *   convert and *without releasing the GIL*: a short graft call no longer pays
 *   for handing the GIL over and taking it back (a ctypes CDLL call does both).
 *   It returns what the C call returned (0: no error) as an int; the trap slot
 *   is left for the caller to read, exactly as with ctypes.
 * - Host: a graft-callable's trampoline (wasmtime's unchecked host-function
 *   convention). Arguments are read from the raw value slots (i32 lanes signed,
 *   i64 lanes signed), the Python callable is called with them, and its result
 *   (if the function has one) is written to slot 0 as an int64, masked like a
 *   ctypes c_int64. Any exception stops the guest: it is handed to the definer's
 *   on_fault(exc) and a trap is returned.
 * - Protected: one graft's protected call, its common case (graft/invoke.py says which)
 *   here: the store lock (Mutex, threading.Lock's twin), transaction fields, deadline,
 *   encode, the call, decode, CPU accounting, commit, counters -- reading and writing
 *   the __slots__ of Graft, Transaction, ThreadState, Stats and Usage at offsets taken
 *   from their member descriptors (setup_protected), so no attribute costs a lookup.
 *   Every other case goes to Graft.invoke before anything changed; every failure to
 *   the same Python methods invoke uses.
 *   A point's codecs declared with graft/codec.py (Scalars, InRange; the kernel points'
 *   Rows, IndexOf, Batch, Elements) are compiled once per codec object and run here,
 *   with no Python call; whatever their plan does not cover (an int subclass, a value
 *   out of range, an answer the checks refuse) calls the codec's Python.
 * - Counters, UsageCounters: the bases of graft/stats.py's Stats and accounting.py's
 *   Usage, their counters as C integers (member descriptors for Python), so that
 *   Protected counts a call without making an int.
 * - Dispatch: FunctionPoint.__call__ (graft/point.py), the graft for a target, else
 *   the GLOBAL one, else the default, without a Python frame.
 * - Targeted: a subsystem's policy slot whose first argument is the target
 *   (FunctionPoint.on_first), entering Dispatch without a Python frame. It remembers
 *   the graft it found last (no lookup while the point's dict, its table and the point's
 *   type keep their versions), keeps its last call's argument tuple for the next call
 *   when nobody else holds it, and asks for the lines the protected call reads first
 *   before reading them (protected_prefetch): a call made after the host was busy
 *   elsewhere finds fewer lines cold and waits for them together, not one by one.
 * - An epoch-deadline callback: it asks `decide()` and goes on one more tick or
 *   stops the guest (an exception in decide() goes to on_fault like a host
 *   function's and stops it). Going on, a guest that RawCall entered holding the
 *   GIL *lets the GIL go* for the rest of its call, which RawCall takes back when
 *   the call returns: only calls shorter than a tick keep the GIL throughout, and
 *   a graft running past a tick lets lock waiters and other threads progress.
 *
 * Lifetimes: wasmtime holds borrowed pointers to Host objects (env, no
 * finalizer); the Python caller keeps each Host alive as long as the linker or
 * store that uses it (the `keepalive` lists of fastcall), as it already does
 * for ctypes callbacks. Host supports the cyclic collector, so a registry
 * reachable from its own callables is still collected.
 *
 * Threads: every entry point runs with the GIL held except the trampolines and
 * the epoch callback, which take it (PyGILState_Ensure: a count when the Wasm
 * thread holds it, a take and a give-back when the callback let it go).
 */
#include "vino_native.h"
#include <stdint.h>

#define VAL_RAW_BYTES 16 /* sizeof(wasmtime_val_raw_t) */

/* This library's thread-locals (a few words) in the static TLS block glibc keeps room
 * in for libraries loaded later: read at a fixed offset from the thread pointer, not
 * through __tls_get_addr and the thread's vector of modules (code and data a call after
 * a pause would find cold). */
#define TLS_MODEL __attribute__((tls_model("initial-exec")))

/* The protected call's hot path and its cold ones (failures, aborts, quotas, the Python
 * fallbacks) apart: a call after the host was busy elsewhere finds its code cold, and
 * pays per line it touches, so the checks the common case passes are hinted (LIKELY,
 * UNLIKELY: their other branch is laid out after the hot code) and what only a rare case
 * runs is a function of its own out of line (COLD), not blocks between the hot ones.
 * ALWAYS_INLINE: a small helper's common case inside its caller, its rest COLD. */
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#define COLD __attribute__((noinline, cold))
#define ALWAYS_INLINE inline __attribute__((always_inline))

/* A dict's version: CPython before 3.12 gives every dict a new one at each change, so
 * an unchanged version means an unchanged dict and what was looked up in it holds.
 * (Later versions deprecate it: there every call looks its names up again.) */
#if PY_VERSION_HEX < 0x030C0000
#define DICT_VERSION(d) (((PyDictObject *)(d))->ma_version_tag)
#endif
#define MAX_PARAMS 8

typedef void *(*call_fn)(void *, void *, void *, size_t, void *);
typedef void *(*trap_new_fn)(const char *, size_t);
typedef void *(*error_new_fn)(const char *);
typedef size_t (*memory_size_fn)(void *, void *);
typedef void *(*define_fn)(void *, const char *, size_t, const char *, size_t, void *,
                           void *, void *, void (*)(void *));
typedef void (*epoch_set_fn)(void *, void *, void *, void (*)(void *));
typedef void (*set_deadline_fn)(void *, uint64_t);

static struct {
    trap_new_fn trap_new;
    error_new_fn error_new;
    memory_size_fn memory_size;
    define_fn define;
    epoch_set_fn epoch_set;
    set_deadline_fn set_deadline;
    int ready;
} W;

static const char TRAP_MSG[] = "vino: host function failed";
static const char STOP_MSG[] = "vino: interrupted";

/* Hand the exception being raised to on_fault(exc) (GIL held; clears it). An on_fault
 * that raises is reported as unraisable: the guest is stopped either way. */
static void keep_fault(PyObject *on_fault) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) PyException_SetTraceback(value, tb);
    if (value != NULL) {
        PyObject *r = PyObject_CallOneArg(on_fault, value);
        if (r == NULL) PyErr_WriteUnraisable(on_fault);
        Py_XDECREF(r);
    }
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

/* ------------------------------------------------------------------ RawCall */

typedef struct {
    PyObject_HEAD
    call_fn fn;
    void *ctx, *func, *args, *trap;
    size_t nargs;
    vectorcallfunc vectorcall;
} RawCall;

/* The thread state the epoch callback saved when it let go of the GIL during the
 * innermost RawCall of this thread (NULL: that call still holds the GIL). Each RawCall
 * keeps the value of the call it nests in (a graft-callable calling another graft) on
 * its C stack and puts it back when it returns. */
static __thread PyThreadState *released TLS_MODEL;
/* 1 while this thread's innermost entry into Wasm is a RawCall or a protected call,
 * which take the GIL back after the guest returns; 0 in any other entry (a ctypes call
 * that keeps the GIL, such as instantiating a module, whose element segments wasmtime
 * may initialise past a tick) and while a host function runs Python. The epoch callback
 * lets the GIL go only when it is 1: an entry that does not take it back would return
 * into Python without it (the interpreter's thread state gone: a segfault). */
static __thread int gil_may_go TLS_MODEL;

static PyObject *rawcall_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    RawCall *c = (RawCall *)self;
    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "RawCall takes no arguments");
        return NULL;
    }
    PyThreadState *outer = released;
    int outer_may_go = gil_may_go;
    released = NULL;
    gil_may_go = 1;
    void *err = c->fn(c->ctx, c->func, c->args, c->nargs, c->trap);
    if (released != NULL) PyEval_RestoreThread(released); /* it ran past a tick: take it back */
    released = outer;
    gil_may_go = outer_may_go;
    return PyLong_FromVoidPtr(err);
}

static int rawcall_init(PyObject *self, PyObject *args, PyObject *kw) {
    RawCall *c = (RawCall *)self;
    unsigned long long fn, ctx, func, vals, nargs, trap;
    if (!PyArg_ParseTuple(args, "KKKKKK", &fn, &ctx, &func, &vals, &nargs, &trap)) return -1;
    if (!fn || !ctx || !func || !vals || !trap) {
        PyErr_SetString(PyExc_ValueError, "RawCall: a null pointer");
        return -1;
    }
    c->fn = (call_fn)(uintptr_t)fn;
    c->ctx = (void *)(uintptr_t)ctx;
    c->func = (void *)(uintptr_t)func;
    c->args = (void *)(uintptr_t)vals;
    c->nargs = (size_t)nargs;
    c->trap = (void *)(uintptr_t)trap;
    c->vectorcall = rawcall_vectorcall;
    return 0;
}

static PyTypeObject RawCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.RawCall",
    .tp_basicsize = sizeof(RawCall),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(RawCall, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = PyType_GenericNew,
    .tp_init = rawcall_init,
    .tp_doc = "RawCall(fn, ctx, func, vals, nargs, trap)(): the raw call, GIL kept.",
};

/* ------------------------------------------------------------------ Host */

typedef struct {
    PyObject_HEAD
    PyObject *fn;
    PyObject *on_fault; /* gets what fn raised, before the guest is stopped */
    int nparams;
    int has_result;
    char wide[MAX_PARAMS]; /* 1: an i64 parameter, 0: an i32 */
} Host;

static int host_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((Host *)self)->fn);
    Py_VISIT(((Host *)self)->on_fault);
    return 0;
}

static int host_clear(PyObject *self) {
    Py_CLEAR(((Host *)self)->fn);
    Py_CLEAR(((Host *)self)->on_fault);
    return 0;
}

static void host_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    host_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static int host_init(PyObject *self, PyObject *args, PyObject *kw) {
    Host *h = (Host *)self;
    PyObject *fn, *on_fault;
    const char *sig;
    int has_result;
    if (!PyArg_ParseTuple(args, "OspO", &fn, &sig, &has_result, &on_fault)) return -1;
    size_t n = strlen(sig);
    if (n > MAX_PARAMS) {
        PyErr_SetString(PyExc_ValueError, "Host: too many parameters");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (sig[i] != 'i' && sig[i] != 'q') {
            PyErr_SetString(PyExc_ValueError, "Host: signature letters are i (i32) or q (i64)");
            return -1;
        }
        h->wide[i] = sig[i] == 'q';
    }
    Py_INCREF(fn);
    Py_XSETREF(h->fn, fn);
    Py_INCREF(on_fault);
    Py_XSETREF(h->on_fault, on_fault);
    h->nparams = (int)n;
    h->has_result = has_result;
    return 0;
}

static PyTypeObject HostType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Host",
    .tp_basicsize = sizeof(Host),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = host_init,
    .tp_traverse = host_traverse,
    .tp_clear = host_clear,
    .tp_dealloc = host_dealloc,
    .tp_doc = "Host(fn, signature, has_result, on_fault): a host function's trampoline state.",
};

static void *host_trampoline(void *env, void *caller, void *vals, size_t nvals) {
    Host *h = (Host *)env;
    PyGILState_STATE st = PyGILState_Ensure();
    int outer_may_go = gil_may_go;
    gil_may_go = 0; /* Python runs here: an entry into Wasm from it decides for itself */
    PyObject *argv[MAX_PARAMS];
    int n = h->nparams, i;
    void *trap = NULL;
    for (i = 0; i < n; i++) {
        char *slot = (char *)vals + (size_t)i * VAL_RAW_BYTES;
        argv[i] = h->wide[i] ? PyLong_FromLongLong(*(int64_t *)slot)
                             : PyLong_FromLong(*(int32_t *)slot);
        if (argv[i] == NULL) break;
    }
    PyObject *r = i == n ? PyObject_Vectorcall(h->fn, argv, (size_t)n, NULL) : NULL;
    while (i-- > 0) Py_DECREF(argv[i]);
    if (r != NULL && h->has_result) {
        PyObject *index = PyNumber_Index(r); /* as ctypes: None or a float is a TypeError */
        Py_DECREF(r);
        r = index;
        if (r != NULL) {
            unsigned long long v = PyLong_AsUnsignedLongLongMask(r);
            if (v == (unsigned long long)-1 && PyErr_Occurred()) {
                Py_CLEAR(r);
            } else {
                *(int64_t *)vals = (int64_t)v;
            }
        }
    }
    if (r == NULL) {
        keep_fault(h->on_fault);
        trap = W.trap_new(TRAP_MSG, sizeof(TRAP_MSG) - 1);
    } else {
        Py_DECREF(r);
    }
    gil_may_go = outer_may_go;
    PyGILState_Release(st);
    return trap;
}

static void *epoch_callback(void *ctx, void *env, uint64_t *delta, uint8_t *kind) {
    Host *h = (Host *)env;
    PyGILState_STATE st = PyGILState_Ensure();
    int go_on = 0;
    PyObject *r = PyObject_CallNoArgs(h->fn);
    if (r != NULL) {
        go_on = PyObject_IsTrue(r);
        Py_DECREF(r);
    }
    if (r == NULL || go_on < 0) {
        keep_fault(h->on_fault);
        go_on = 0;
    }
    PyGILState_Release(st);
    if (go_on) {
        /* A guest entered holding the GIL (RawCall) that runs on past a tick is not a
         * short call: it lets the GIL go for the rest of it, as a ctypes call would have
         * from the start, so other threads and lock waiters run. RawCall takes it back. */
        if (gil_may_go && released == NULL && PyGILState_Check()) released = PyEval_SaveThread();
        *delta = 1;
        *kind = 0; /* WASMTIME_UPDATE_DEADLINE_CONTINUE */
        return NULL;
    }
    return W.error_new(STOP_MSG);
}

static int check_ready(void);

/* ------------------------------------------------------------------ Mutex */

/* A graft's store lock: threading.Lock's interface (acquire(blocking, timeout), release,
 * locked, with), so that Protected takes and gives it from C. Its state (locked, waiters)
 * changes only with the GIL held (every caller holds it: Protected, and Python's calls of
 * these methods), so taking or giving a lock no other thread waits for is a load and a
 * store in this object: no call, no atomic, no line of a separate lock's. A PyThread lock,
 * `gate`, is only where waiters sleep, with the GIL let go, for at most their time-out. A
 * release that frees the lock while waiters are counted leaves the gate with one permit;
 * each waiter that wakes takes the lock if it is free, else sleeps again. So no wake-up
 * is lost: a waiter is counted before it lets the GIL go, and the lock is freed only with
 * the GIL held. (plainread.c's RLock is built the same way.) */
typedef struct {
    PyObject_HEAD
    char locked; /* Invariant: 1 exactly while some thread holds the lock */
    Py_ssize_t waiters; /* Invariant: the threads in mutex_wait */
    /* Invariant: held, but for one permit a release gave a waiter since (never two). */
    PyThread_type_lock gate;
} Mutex;

static PyObject *mutex_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    PyObject *self = new_with_lock(type, offsetof(Mutex, gate));
    if (self != NULL) /* a new lock is free: this takes it at once */
        PyThread_acquire_lock(((Mutex *)self)->gate, WAIT_LOCK);
    return self;
}

static void mutex_dealloc(PyObject *self) {
    Mutex *m = (Mutex *)self;
    if (m->gate != NULL) PyThread_free_lock(m->gate); /* no waiter: it holds a reference */
    Py_TYPE(self)->tp_free(self);
}

static ALWAYS_INLINE int mutex_try(Mutex *m) {
    if (UNLIKELY(m->locked)) return 0;
    m->locked = 1;
    return 1;
}

/* A release while threads wait: one permit on the gate (taken if there was one, then
 * given), for the first waiter to wake. Kept out of line: the common release has none. */
static COLD void mutex_wake(Mutex *m) {
    (void)PyThread_acquire_lock_timed(m->gate, 0, 0);
    PyThread_release_lock(m->gate);
}

static ALWAYS_INLINE void mutex_give(Mutex *m) {
    m->locked = 0;
    if (UNLIKELY(m->waiters > 0)) mutex_wake(m);
}

/* Wait with the GIL let go until the lock is free and take it, up to timeout_us (-1: for
 * ever); signals run their handlers meanwhile (as threading's locks let them). 1: taken,
 * 0: timed out, -1: a handler raised. */
static int mutex_wait(Mutex *m, long long timeout_us) {
    long long t0 = now_ns(), left = timeout_us;
    int result;
    m->waiters++;
    for (;;) {
        PyLockStatus st;
        Py_BEGIN_ALLOW_THREADS
        st = PyThread_acquire_lock_timed(m->gate, left, 1);
        Py_END_ALLOW_THREADS
        if (mutex_try(m)) { /* free, whether a permit woke us or the time ran out */
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
    m->waiters--;
    return result;
}

static PyObject *mutex_acquire(PyObject *self, PyObject *args, PyObject *kw) {
    Mutex *m = (Mutex *)self;
    int blocking;
    double timeout;
    if (acquire_args(args, kw, &blocking, &timeout) < 0) return NULL;
    if (mutex_try(m)) Py_RETURN_TRUE;
    if (!blocking || timeout == 0) Py_RETURN_FALSE;
    double us = timeout * 1e6;
    if (us > (double)PY_TIMEOUT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return NULL;
    }
    int got = mutex_wait(m, timeout < 0 ? -1 : (long long)us);
    if (got < 0) return NULL;
    return PyBool_FromLong(got);
}

static PyObject *mutex_release(PyObject *self, PyObject *unused) {
    Mutex *m = (Mutex *)self;
    if (!m->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    mutex_give(m);
    Py_RETURN_NONE;
}

static PyObject *mutex_locked(PyObject *self, PyObject *unused) {
    return PyBool_FromLong(((Mutex *)self)->locked);
}

static PyObject *mutex_enter(PyObject *self, PyObject *unused) {
    Mutex *m = (Mutex *)self;
    if (mutex_try(m)) Py_RETURN_TRUE;
    int r = mutex_wait(m, -1);
    if (r < 0) return NULL;
    return PyBool_FromLong(r);
}

static PyObject *mutex_exit(PyObject *self, PyObject *args) {
    return mutex_release(self, NULL);
}

static PyMethodDef mutex_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))mutex_acquire, METH_VARARGS | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool, as threading.Lock's"},
    {"release", mutex_release, METH_NOARGS, "release(); RuntimeError if not held"},
    {"locked", mutex_locked, METH_NOARGS, "locked() -> bool"},
    {"__enter__", mutex_enter, METH_NOARGS, NULL},
    {"__exit__", mutex_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MutexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Mutex",
    .tp_basicsize = sizeof(Mutex),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = mutex_new,
    .tp_dealloc = mutex_dealloc,
    .tp_methods = mutex_methods,
    .tp_doc = "Mutex(): a lock with threading.Lock's interface that Protected tries from C.",
};

/* ------------------------------------------------------------------ Counters */

/* The counters of a graft's calls that every committed call adds to, as C integers:
 * the base of graft/stats.py's Stats, which Python reads and writes as ints (member
 * descriptors) and Protected adds to without making an int. */
typedef struct {
    PyObject_HEAD
    long long commits, graft_ns, samples, sampled_ns, sampled_graft_ns;
} Counters;

static PyMemberDef counters_members[] = {
    {"commits", T_LONGLONG, offsetof(Counters, commits), 0, "calls committed"},
    {"graft_ns", T_LONGLONG, offsetof(Counters, graft_ns), 0, "ns inside the Wasm entry"},
    {"samples", T_LONGLONG, offsetof(Counters, samples), 0, "calls timed whole"},
    {"sampled_ns", T_LONGLONG, offsetof(Counters, sampled_ns), 0,
     "ns of the calls timed whole"},
    {"sampled_graft_ns", T_LONGLONG, offsetof(Counters, sampled_graft_ns), 0,
     "ns inside the entry, on the calls timed whole"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject CountersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Counters",
    .tp_basicsize = sizeof(Counters),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_members = counters_members,
    .tp_doc = "Counters(): a graft's call counters as C integers (the base of Stats).",
};

/* The transaction's field the native call writes on every call it enters the guest, as a
 * C integer: the base of graft/txn.py's Transaction, whose Python reads and writes it as an
 * int (a member descriptor), so that Protected stamps the call without making an int. */
typedef struct {
    PyObject_HEAD
    long long start_ns;
} TxnFields;

static PyMemberDef txn_fields_members[] = {
    {"start_ns", T_LONGLONG, offsetof(TxnFields, start_ns), 0,
     "ns (the protected call's clock) when the guest was entered; 0: not entered"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject TxnFieldsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.TxnFields",
    .tp_basicsize = sizeof(TxnFields),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_members = txn_fields_members,
    .tp_doc = "TxnFields(): a transaction's start_ns as a C integer (the base of Transaction).",
};

/* What a principal uses (graft/accounting.py's Usage, whose base this is), as C integers:
 * Python reads and charges them as ints; Protected reads undo_entries and adds cpu_ns. */
typedef struct {
    PyObject_HEAD
    long long memory_bytes, kalloc_bytes, handles, locks, log_bytes, undo_entries, cpu_ns;
} UsageCounters;

static PyMemberDef usage_members[] = {
    {"memory_bytes", T_LONGLONG, offsetof(UsageCounters, memory_bytes), 0, NULL},
    {"kalloc_bytes", T_LONGLONG, offsetof(UsageCounters, kalloc_bytes), 0, NULL},
    {"handles", T_LONGLONG, offsetof(UsageCounters, handles), 0, NULL},
    {"locks", T_LONGLONG, offsetof(UsageCounters, locks), 0, NULL},
    {"log_bytes", T_LONGLONG, offsetof(UsageCounters, log_bytes), 0, NULL},
    {"undo_entries", T_LONGLONG, offsetof(UsageCounters, undo_entries), 0, NULL},
    {"cpu_ns", T_LONGLONG, offsetof(UsageCounters, cpu_ns), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject UsageCountersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.UsageCounters",
    .tp_basicsize = sizeof(UsageCounters),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_members = usage_members,
    .tp_doc = "UsageCounters(): what a principal uses, as C integers (the base of Usage).",
};

/* ------------------------------------------------------------------ Protected */

/* What every Protected shares (setup_protected): the thread-state holder, the constants
 * of graft/invoke.py and graft/txn.py, the names it reads, and the slot offsets of the
 * __slots__ classes it reads and writes without a Python call. */
static struct { /* what every call reads first (the names and types compiling reads last) */
    int ready;
    PyObject *active, *committed; /* txn.ACTIVE, txn.COMMITTED */
    long long sample_mask; /* stats.SAMPLE_MASK: the whole call is timed when commits & it is 0 */
    PyTypeObject *graft_type, *txn_type, *ts_type;
    PyTypeObject *deque_type; /* collections.deque: a sequence Rows reads (NULL: none) */
    /* Graft */
    Py_ssize_t g_buffer, g_mem_charged, g_instance, g_call;
    /* Transaction */
    Py_ssize_t t_parent, t_ts, t_state, t_undo_room, t_wall_deadline_ns,
        t_undo, t_locks, t_deferred, t_doom_reason, t_args;
    /* ThreadState */
    Py_ssize_t s_txn, s_acting, s_hold;
    /* Usage */
    PyObject *zero; /* the int 0 (one object in CPython: compared by identity) */
    PyObject *clock_dict;  /* invoke's globals: its _perf_ns is the protected call's clock */
    PyObject *clock; /* clock_dict's _perf_ns when it had version clock_version (strong) */
    uint64_t clock_version; /* 0: none looked up yet */
    PyObject *perf_counter_ns; /* time.perf_counter_ns: then the clock is read here, in C */
    PyObject *local;  /* txn._LOCAL; strong: its per-thread dicts live as long as threads */
    PyObject *stage[3]; /* invoke._ENCODE, _GUEST, _DECODE */
    /* graft/codec.py's codecs: compiled, run here */
    PyTypeObject *scalars_type, *in_range_type, *rows_type, *index_type, *batch_type,
        *elements_type, *bytes_type, *bytes_of_type;
    PyObject *n_plan, *n_ts, *n_perf_ns, *n_encode, *n_decode, *n_invoke, *n_failed, *n_stopped, *n_account_memory,
        *n_cpu_used_up, *n_check, *n_commit, *n_free, *n_flush;
} P;

enum { ENCODE, GUEST, DECODE };

/* graft/codec.py's Rows, IndexOf, Batch and Elements, compiled (see compile_rows and
 * compile_decode). */
/* A compiled From: args[arg] (or obj), its attributes path, ceil-divided by div (0:
 * none), held to at most cap (-1: none). obj and path are borrowed from the plan, which
 * the compiled codec holds (enc_plan / dec_plan). */
typedef struct {
    int arg;
    PyObject *obj, *path;
    long long div, cap;
} Src;

#define MAX_HEAD 8
#define MAX_COLS 8
#define MAX_ROWS 1024  /* an array longer than this: the codec's Python */
#define MAX_CANDIDATES 4096 /* Batch: more candidates than this: the codec's Python */
#define MAX_ELEMS 64 /* Elements: a longer array: the codec's Python */

/* What a call reads first, together (a call after a pause finds every line cold): the
 * scalars, then the arrays in the order they are read, the longest last. */
typedef struct {
    int nhead;
    int ncols;
    int refuse; /* more rows than max: the Python raises; else the first max are taken */
    char shape;  /* 'k': ints; 't': tuples of ints; 's': each row's attribute, its bytes */
    char elem_code;
    char head_code[MAX_HEAD];
    char col_code[MAX_COLS];
    Py_ssize_t arr_at, elem_size, max;
    PyObject *attr; /* borrowed from the plan */
    Src rows;
    int head_count[MAX_HEAD]; /* 1: the number of rows written */
    Py_ssize_t head_at[MAX_HEAD];
    Py_ssize_t col_at[MAX_COLS];
    Src head[MAX_HEAD];
    /* Bytes: the entry's arguments (wasm_count[i]: the number of bytes; else wasm[i]) */
    int nwasm;
    int wasm_count[MAX_PARAMS];
    Src wasm[MAX_PARAMS];
} RowsPlan;

enum { ENC_NONE, ENC_SCALARS, ENC_ROWS, ENC_BYTES };
enum { DEC_NONE, DEC_RANGE, DEC_INDEX, DEC_BATCH, DEC_ELEMS, DEC_BYTES };

typedef struct {
    int arg;              /* IndexOf, Batch: the candidates' argument */
    long long unit;       /* Batch */
    Py_ssize_t at, max;   /* Batch: more[]; Elements: out[] */
    Src most, below;      /* Elements */
} DecPlan;


/* The fields every call reads come first, then the codecs' plans (the scalars of each
 * first: RowsPlan), then what only setup, the collector and rare paths read: a call
 * after a pause (vino bench goals' sparse calls) finds the fewest cold lines, and
 * protected_prefetch asks for the lines before `point` at once. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *graft, *pdict, *txn, *stats, *usage, *events, *mutex;
    call_fn fn;
    void *ctx, *func, *vals, *trap, *mem;
    size_t nvals;
    volatile uint64_t *ticks;
    uint64_t deadline_tick; /* *ticks when the store's deadline was last renewed */
    long long cpu_total_ns, undo_quota;
    int nparams, may_grow, dead;
    int live; /* Invariant: 0 exactly when graft.state is not LIVE (Graft._unlink_removed) */
    /* The codecs last seen as the point's encode and decode (strong), and how each runs
     * here (enc_mode, dec_mode: ENC_NONE / DEC_NONE, the codec's Python): see codec_seen. */
    PyObject *enc_codec, *dec_codec;
    uint64_t codecs_version; /* both are the point's dict's at this version; 0: unknown */
    int enc_mode, dec_mode;
    int enc_n; /* Scalars: its arguments */
    char wide[MAX_PARAMS];
    char enc_kind[MAX_PARAMS]; /* 'B' 'I' 'i' 'Q': a buffer field; 'w': a Wasm parameter */
    Py_ssize_t enc_end; /* the buffer's bytes the plan writes lie below this */
    long long dec_lo, dec_hi;
    Py_ssize_t enc_at[MAX_PARAMS]; /* its offset, or the parameter's index */
    DecPlan dec;
    RowsPlan rows;
    /* read by setup, the collector and rare paths only */
    PyObject *point;
    PyObject *entry;   /* the RawFunc: keeps the value slots and the trap slot alive */
    PyObject *counter; /* the ticker's count (a ctypes c_uint64): keeps *ticks alive */
    PyObject *enc_plan, *dec_plan; /* the plans compiled (strong): rows, dec borrow from them */
} Protected;

/* The calling thread's ThreadState (borrowed). Cached per thread state: a thread's
 * ThreadState is made once (txn._Local) and never rebound, and P.local keeps the
 * per-thread dict holding it alive until that thread state is gone (a new one has a
 * new id). */
static __thread uint64_t ts_id TLS_MODEL;
static __thread PyObject *ts_cached TLS_MODEL;

static COLD PyObject *thread_state_lookup(uint64_t id) {
    PyObject *ts = PyObject_GetAttr(P.local, P.n_ts);
    if (ts == NULL) return NULL;
    Py_DECREF(ts); /* borrowed: the thread's dict of P.local holds it */
    ts_cached = ts;
    ts_id = id;
    return ts;
}

static ALWAYS_INLINE PyObject *thread_state(void) {
    uint64_t id = PyThreadState_GetID(PyThreadState_Get());
    if (LIKELY(ts_cached != NULL && ts_id == id)) return ts_cached;
    return thread_state_lookup(id);
}

static inline void set_slot(PyObject *obj, Py_ssize_t off, PyObject *value) {
    Py_INCREF(value);
    slot_put(obj, off, value);
}

/* Set an int slot; -1 with an exception if the int cannot be made. */
static COLD int set_int(PyObject *obj, Py_ssize_t off, long long v) {
    PyObject *o = PyLong_FromLongLong(v);
    if (o == NULL) return -1;
    slot_put(obj, off, o);
    return 0;
}

/* Set an int slot unless it holds that value already (no new int for an unchanged one). */
static ALWAYS_INLINE int set_changed(PyObject *obj, Py_ssize_t off, long long v) {
    long long old;
    if (LIKELY(as_ll(SLOT(obj, off), &old) && old == v)) return 0;
    return set_int(obj, off, v);
}

/* The point's encode or decode (new reference): its instance dict first (a test may
 * replace one there at any time), else the ordinary way. */
static PyObject *point_field(Protected *p, PyObject *name) {
    if (p->pdict != NULL) {
        PyObject *v = PyDict_GetItemWithError(p->pdict, name);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_GetAttr(p->point, name);
}

/* The protected call's clock, in ns: time.perf_counter_ns's (CLOCK_MONOTONIC on Linux)
 * read here, unless invoke._perf_ns was replaced (tests inject a clock): then that. */
static COLD int read_injected_clock(PyObject *clock, long long *out) {
    PyObject *r = PyObject_CallNoArgs(clock);
    if (r == NULL) return -1;
    *out = PyLong_AsLongLong(r);
    Py_DECREF(r);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

static ALWAYS_INLINE int read_clock(PyObject *clock, long long *out) {
    if (LIKELY(clock == NULL)) {
        *out = now_ns();
        return 0;
    }
    return read_injected_clock(clock, out);
}

static COLD PyObject *delegate(Protected *p, PyObject *args) {
    return PyObject_CallMethodOneArg(p->graft, P.n_invoke, args);
}

/* graft._failed(txn, exc, stage, args) for the exception being raised, handled as in
 * Graft.invoke's `except BaseException` clause (sys.exc_info() is it meanwhile): an
 * interrupt (no Exception) too, which _failed aborts and raises again. */
static COLD PyObject *failed(Protected *p, int stage, PyObject *args) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) PyException_SetTraceback(value, tb);
    PyObject *st, *sv, *stb;
    PyErr_GetExcInfo(&st, &sv, &stb);
    Py_INCREF(type);
    Py_INCREF(value);
    Py_XINCREF(tb);
    PyErr_SetExcInfo(type, value, tb);
    PyObject *argv[5] = {p->graft, p->txn, value, P.stage[stage], args};
    PyObject *r = PyObject_VectorcallMethod(P.n_failed, argv,
                                            5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    PyErr_SetExcInfo(st, sv, stb);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return r;
}

/* The end of every call that took the store: txn.args = None; free a graft removed
 * from inside it; let the store go; emit the queued events. As `finally:` in
 * Graft.invoke, an exception raised here replaces the call's. */
static COLD PyObject *finish_slow(Protected *p, PyObject *result) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    if (result == NULL) PyErr_Fetch(&type, &value, &tb);
    set_slot(p->txn, P.t_args, Py_None);
    if (!p->live) {
        PyObject *inst = SLOT(p->graft, P.g_instance);
        if (inst != NULL && inst != Py_None) {
            PyObject *r = PyObject_CallMethodNoArgs(p->graft, P.n_free);
            if (r == NULL) goto replaced;
            Py_DECREF(r);
        }
    }
    mutex_give((Mutex *)p->mutex);
    if (PyList_GET_SIZE(p->events)) {
        PyObject *r = PyObject_CallMethodNoArgs(p->graft, P.n_flush);
        if (r == NULL) goto replaced;
        Py_DECREF(r);
    }
    if (result == NULL) PyErr_Restore(type, value, tb);
    return result;
replaced:
    Py_XDECREF(result);
    if (type != NULL) _PyErr_ChainExceptions(type, value, tb);
    return NULL;
}

/* finish's common case (a result, a live graft, no event queued) inline, the rest as
 * finish_slow: the same steps in the same order. */
static ALWAYS_INLINE PyObject *finish(Protected *p, PyObject *result) {
    if (UNLIKELY(result == NULL || !p->live || PyList_GET_SIZE(p->events)))
        return finish_slow(p, result);
    set_slot(p->txn, P.t_args, Py_None);
    mutex_give((Mutex *)p->mutex);
    return result;
}

/* ---- graft/codec.py's codecs, compiled once per codec object ---- */

/* Compile a Scalars encode's plan into p (enc_n: its arguments; -1: not one, or a plan
 * this side cannot run, which leaves every call to the codec's Python). */
static void compile_scalars(Protected *p, PyObject *codec) {
    p->enc_n = -1;
    p->enc_end = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ /* the layouts are little-endian */
    if (Py_TYPE(codec) != P.scalars_type) return;
    PyObject *plan = PyObject_GetAttr(codec, P.n_plan);
    if (plan == NULL || !PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) > MAX_PARAMS) goto out;
    Py_ssize_t n = PyTuple_GET_SIZE(plan);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *step = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_Check(step) || PyTuple_GET_SIZE(step) != 2) goto out;
        const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(step, 0));
        Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(step, 1));
        if (k == NULL || k[0] == 0 || k[1] != 0 || at < 0) goto out;
        Py_ssize_t size = k[0] == 'B' ? 1 : k[0] == 'I' || k[0] == 'i' ? 4 : k[0] == 'Q' ? 8 : 0;
        if (size == 0 && ((k[0] != 'w' && k[0] != 'W') || at >= p->nparams)) goto out;
        p->enc_kind[i] = size ? k[0] : 'w';
        p->enc_at[i] = at;
        if (size && at + size > p->enc_end) p->enc_end = at + size;
    }
    p->enc_n = (int)n;
out:
    Py_XDECREF(plan);
    PyErr_Clear(); /* a plan not understood: the codec's Python runs */
    if (p->enc_n < 0) p->enc_end = 0;
#endif
}

static void compile_encode(Protected *p, PyObject *codec);
static void compile_decode(Protected *p, PyObject *codec);

/* Note `codec` as the point's encode (or decode), compiling it if it is new. */
static inline void codec_seen(Protected *p, PyObject *codec, int decode) {
    PyObject **slot = decode ? &p->dec_codec : &p->enc_codec;
    if (*slot == codec) return;
    Py_INCREF(codec);
    Py_XSETREF(*slot, codec);
    if (decode) compile_decode(p, codec);
    else compile_encode(p, codec);
}

/* The point's encode (decode: 1) for this call (a new reference), noted (codec_seen). */
static COLD PyObject *codec_lookup(Protected *p, int decode) {
    PyObject *fn = point_field(p, decode ? P.n_decode : P.n_encode);
    if (fn == NULL) return NULL;
    codec_seen(p, fn, decode);
#ifdef DICT_VERSION
    p->codecs_version = 0;
    if (p->pdict != NULL && p->enc_codec != NULL && p->dec_codec != NULL) {
        /* both in the point's own dict as they are now: later calls need no lookup */
        PyObject *e = PyDict_GetItemWithError(p->pdict, P.n_encode);
        PyObject *d = e != NULL ? PyDict_GetItemWithError(p->pdict, P.n_decode) : NULL;
        if (e == p->enc_codec && d == p->dec_codec) p->codecs_version = DICT_VERSION(p->pdict);
        PyErr_Clear();
    }
#endif
    return fn;
}

static ALWAYS_INLINE PyObject *codec_of(Protected *p, int decode) {
#ifdef DICT_VERSION
    if (LIKELY(p->codecs_version != 0 && DICT_VERSION(p->pdict) == p->codecs_version)) {
        PyObject *c = decode ? p->dec_codec : p->enc_codec; /* no lookup: the dict is unchanged */
        Py_INCREF(c);
        return c;
    }
#endif
    return codec_lookup(p, decode);
}

/* The protected call's clock (borrowed): invoke._perf_ns, as looked up in its globals
 * (again only once they changed); NULL with an exception if it cannot be looked up. */
static COLD PyObject *clock_lookup(void) {
    PyObject *clock = PyDict_GetItemWithError(P.clock_dict, P.n_perf_ns);
    if (clock == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_NameError, "invoke._perf_ns is not defined");
        return NULL;
    }
    Py_INCREF(clock);
    Py_XSETREF(P.clock, clock);
#ifdef DICT_VERSION
    P.clock_version = DICT_VERSION(P.clock_dict);
#endif
    return clock;
}

static ALWAYS_INLINE PyObject *clock_of(void) {
#ifdef DICT_VERSION
    if (LIKELY(P.clock_version != 0 && DICT_VERSION(P.clock_dict) == P.clock_version))
        return P.clock;
#endif
    return clock_lookup();
}

/* The compiled Scalars encode of `args` into `buffer` and the value slots: 1 done, 0
 * not here (an argument that is no exact int or out of its field's range, a buffer
 * not writable): the codec's Python runs instead, and says what is wrong. Nothing is
 * written unless everything was checked. */
static int encode_scalars(Protected *p, PyObject *args, PyObject *buffer) {
    int n = p->enc_n;
    if (PyTuple_GET_SIZE(args) != n || !PyMemoryView_Check(buffer)) return 0;
    PyMemoryViewObject *mv = (PyMemoryViewObject *)buffer;
    Py_buffer *view = PyMemoryView_GET_BUFFER(buffer);
    if ((mv->flags & _Py_MEMORYVIEW_RELEASED) || view->readonly || view->len < p->enc_end
        || view->ndim != 1 || view->itemsize != 1 || (view->strides && view->strides[0] != 1))
        return 0;
    uint64_t v[MAX_PARAMS];
    for (int i = 0; i < n; i++) {
        PyObject *a = PyTuple_GET_ITEM(args, i);
        if (!PyLong_CheckExact(a)) return 0;
        char k = p->enc_kind[i];
        if (k == 'w' || k == 'Q') {
            /* a Wasm parameter takes any int, masked to its width (as RawFunc.call) */
            if (k == 'w') {
                v[i] = (uint64_t)PyLong_AsUnsignedLongLongMask(a);
            } else {
                v[i] = (uint64_t)PyLong_AsUnsignedLongLong(a);
                if (v[i] == (uint64_t)-1 && PyErr_Occurred()) {
                    PyErr_Clear();
                    return 0;
                }
            }
            continue;
        }
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(a, &overflow);
        if (overflow) return 0;
        if (k == 'B' ? (x < 0 || x > 0xFF) : k == 'I' ? (x < 0 || x > 0xFFFFFFFFLL)
                                                      : (x < INT32_MIN || x > INT32_MAX))
            return 0;
        v[i] = (uint64_t)x;
    }
    char *buf = (char *)view->buf;
    for (int i = 0; i < n; i++) {
        char k = p->enc_kind[i];
        Py_ssize_t at = p->enc_at[i];
        if (k == 'w') {
            char *slot = (char *)p->vals + (size_t)at * VAL_RAW_BYTES;
            if (p->wide[at])
                *(int64_t *)slot = (int64_t)v[i];
            else
                *(int32_t *)slot = (int32_t)(uint32_t)v[i];
        } else if (k == 'B') {
            buf[at] = (char)v[i];
        } else if (k == 'Q') {
            memcpy(buf + at, &v[i], 8);
        } else {
            uint32_t w = (uint32_t)v[i];
            memcpy(buf + at, &w, 4);
        }
    }
    return 1;
}

static int compile_src(PyObject *plan, Src *s) {
    /* (arg or -1, obj, path, div, cap or -1) */
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 5) return 0;
    long arg = PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
    PyObject *path = PyTuple_GET_ITEM(plan, 2);
    long long div = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 3));
    long long cap = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 4));
    if (PyErr_Occurred() || arg < -1 || arg >= MAX_PARAMS || div < 0 || cap < -1
        || !PyTuple_Check(path))
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(path); i++)
        if (!PyUnicode_CheckExact(PyTuple_GET_ITEM(path, i))) return 0;
    s->arg = (int)arg;
    s->obj = PyTuple_GET_ITEM(plan, 1);
    s->path = path;
    s->div = div;
    s->cap = cap;
    return 1;
}

static Py_ssize_t code_size(const char *k) {
    if (k == NULL || k[0] == 0 || k[1] != 0) return 0;
    return k[0] == 'B' ? 1 : k[0] == 'I' || k[0] == 'i' ? 4 : k[0] == 'Q' ? 8 : 0;
}

/* An attribute read that runs no code: the ordinary lookup, finding the name in the
 * instance's dict or a __slots__ member (new reference); NULL (no exception): not here
 * -- a descriptor, a property or __getattr__ would run code, and so would a dict lookup
 * comparing a key of the name's hash that is no str (str_keyed): the codec's Python
 * reads those. (An allocation may still start the cyclic collector, whose finalizers
 * run code: callers check again what code could have changed.) */
static PyObject *plain_attr(PyObject *o, PyObject *name) {
    PyTypeObject *t = Py_TYPE(o);
    if (t->tp_getattro != PyObject_GenericGetAttr || !mro_str_keyed(t)) return NULL;
    PyObject *d = _PyType_Lookup(t, name);
    if (d != NULL && !Py_IS_TYPE(d, &PyMemberDescr_Type)) return NULL;
    if (d != NULL) { /* a __slots__ member: read at its offset, as the descriptor would */
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || !PyObject_TypeCheck(o, PyDescr_TYPE(d))) return NULL;
        PyObject *v = *(PyObject **)((char *)o + m->offset);
        Py_XINCREF(v);
        return v; /* NULL: unset, which the Python says */
    }
    if (t->tp_dictoffset == 0) return NULL;
    PyObject **dp = _PyObject_GetDictPtr(o);
    if (dp == NULL || *dp == NULL || !str_keyed(*dp)) { /* unset: the Python says so */
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

/* What a Src reads (new reference), before div and cap; NULL (no exception): not here. */
static PyObject *src_object(const Src *s, PyObject *args) {
    PyObject *v;
    if (s->arg >= 0) {
        if (s->arg >= PyTuple_GET_SIZE(args)) return NULL;
        v = PyTuple_GET_ITEM(args, s->arg);
    } else {
        v = s->obj;
    }
    Py_INCREF(v);
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(s->path); i++) {
        PyObject *next = plain_attr(v, PyTuple_GET_ITEM(s->path, i));
        Py_DECREF(v);
        if (next == NULL) return NULL;
        v = next;
    }
    return v;
}

/* A Src's integer value (div and cap applied): 1, or 0 not here (not an exact int, a
 * negative one with div, out of a long long). */
static int src_int(const Src *s, PyObject *args, long long *out) {
    PyObject *v = src_object(s, args);
    if (v == NULL) return 0;
    int overflow = 1;
    long long x = PyLong_CheckExact(v) ? PyLong_AsLongLongAndOverflow(v, &overflow) : 0;
    Py_DECREF(v);
    if (overflow) {
        PyErr_Clear();
        return 0;
    }
    if (s->div) {
        if (x < 0) return 0;
        x = x / s->div + (x % s->div != 0);
    }
    if (s->cap >= 0 && !(x < s->cap)) x = s->cap;
    *out = x;
    return 1;
}

static inline int long_fits(long long x, char k, uint64_t *out) {
    if (k == 'B' ? (x < 0 || x > 0xFF) : k == 'I' ? (x < 0 || x > 0xFFFFFFFFLL)
            : k == 'i' ? (x < INT32_MIN || x > INT32_MAX) : x < 0)
        return 0;
    *out = (uint64_t)x;
    return 1;
}

/* An exact int for a field of struct code k: 1 with its bits in *out, or 0 (the
 * struct module would refuse it, or convert it: the Python runs). */
static int field_int(PyObject *a, char k, uint64_t *out) {
    if (!PyLong_CheckExact(a)) return 0;
    if (k == 'Q') {
        unsigned long long v = PyLong_AsUnsignedLongLong(a);
        if (v == (unsigned long long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        *out = v;
        return 1;
    }
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(a, &overflow);
    if (overflow) return 0;
    return long_fits(x, k, out);
}

static inline void put(char *buf, char k, uint64_t v) {
    if (k == 'B') {
        buf[0] = (char)v;
    } else if (k == 'Q') {
        memcpy(buf, &v, 8);
    } else {
        uint32_t w = (uint32_t)v;
        memcpy(buf, &w, 4);
    }
}

/* The writable, contiguous bytes of a graft's buffer of at least `need` bytes, or NULL
 * (released, read-only, shorter: the Python says what is wrong). */
static char *buffer_bytes(PyObject *buffer, Py_ssize_t need, int writable) {
    if (!PyMemoryView_Check(buffer)) return NULL;
    PyMemoryViewObject *mv = (PyMemoryViewObject *)buffer;
    Py_buffer *view = PyMemoryView_GET_BUFFER(buffer);
    if ((mv->flags & _Py_MEMORYVIEW_RELEASED) || (writable && view->readonly)
        || view->len < need || view->ndim != 1 || view->itemsize != 1
        || (view->strides && view->strides[0] != 1))
        return NULL;
    return (char *)view->buf;
}

/* The items of a sequence the codec's Python reads by len() and iteration: an exact
 * list or tuple (borrowed items), or a deque, whose first min(n, cap) items are fetched
 * into held (new references, *nheld of them: the caller lets them go); NULL: not here. */
#define MAX_DEQUE 64
static PyObject **seq_items(PyObject *seq, Py_ssize_t cap, Py_ssize_t *n,
                            PyObject *held[MAX_DEQUE], int *nheld) {
    *nheld = 0;
    if (PyList_CheckExact(seq)) {
        *n = PyList_GET_SIZE(seq);
        return ((PyListObject *)seq)->ob_item;
    }
    if (PyTuple_CheckExact(seq)) {
        *n = PyTuple_GET_SIZE(seq);
        return ((PyTupleObject *)seq)->ob_item;
    }
    if (P.deque_type != NULL && Py_IS_TYPE(seq, P.deque_type)) {
        *n = PySequence_Size(seq);
        Py_ssize_t k = *n < cap ? *n : cap;
        if (*n < 0 || k > MAX_DEQUE) {
            PyErr_Clear();
            return NULL;
        }
        for (Py_ssize_t i = 0; i < k; i++) { /* in the deque's own order, as iteration */
            PyObject *x = PySequence_GetItem(seq, i);
            if (x == NULL) {
                PyErr_Clear();
                return NULL;
            }
            held[(*nheld)++] = x;
        }
        return held;
    }
    return NULL;
}

/* A list's length when its items were taken (anything else: -1, never checked). */
static inline Py_ssize_t n_all(PyObject *seq, Py_ssize_t n) {
    return PyList_CheckExact(seq) ? PyList_GET_SIZE(seq) : n;
}

/* After code may have run (src_int, plain_attr: a key's __eq__ in an instance dict): 1
 * if the rows seq_items gave are still valid, *items retaken from a list (whose array a
 * resize moves); 0 if a list of rows changed length (the codec's Python decides). A
 * tuple is immutable and a deque's items were taken as new references. */
static inline int same_list(PyObject *seq, Py_ssize_t all, PyObject ***items) {
    if (!PyList_CheckExact(seq)) return 1;
    if (PyList_GET_SIZE(seq) != all) return 0;
    *items = ((PyListObject *)seq)->ob_item;
    return 1;
}

/* The scalars before the array: (code, offset, From plan or None for the count) each. */
static int compile_head(RowsPlan *r, PyObject *steps) {
    if (!PyTuple_Check(steps) || PyTuple_GET_SIZE(steps) > MAX_HEAD) return 0;
    r->nhead = (int)PyTuple_GET_SIZE(steps);
    for (int i = 0; i < r->nhead; i++) {
        PyObject *st = PyTuple_GET_ITEM(steps, i);
        if (!PyTuple_Check(st) || PyTuple_GET_SIZE(st) != 3) return 0;
        const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(st, 0));
        if (k == NULL || !code_size(k)) return 0;
        r->head_code[i] = k[0];
        r->head_at[i] = PyLong_AsSsize_t(PyTuple_GET_ITEM(st, 1));
        PyObject *src = PyTuple_GET_ITEM(st, 2);
        r->head_count[i] = src == Py_None;
        if (src != Py_None && !compile_src(src, &r->head[i])) return 0;
    }
    return 1;
}

/* Compile a Rows encode's plan into p->rows (enc_mode ENC_ROWS), or leave it to the
 * codec's Python. plan: (steps, rows, arr_at, elem_size, max, refuse, shape). */
static int compile_rows(Protected *p, PyObject *plan) {
    RowsPlan *r = &p->rows;
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 7) return 0;
    PyObject *steps = PyTuple_GET_ITEM(plan, 0), *shape = PyTuple_GET_ITEM(plan, 6);
    if (!PyTuple_Check(steps) || PyTuple_GET_SIZE(steps) > MAX_HEAD || !PyTuple_Check(shape)
        || PyTuple_GET_SIZE(shape) != 2 || !compile_src(PyTuple_GET_ITEM(plan, 1), &r->rows))
        return 0;
    if (r->rows.div || r->rows.cap >= 0) return 0;
    if (!compile_head(r, steps)) return 0;
    r->arr_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 2));
    r->elem_size = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 3));
    r->max = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 4));
    r->refuse = PyObject_IsTrue(PyTuple_GET_ITEM(plan, 5));
    if (PyErr_Occurred() || r->refuse < 0 || r->arr_at < 0 || r->elem_size <= 0 || r->max < 0)
        return 0;
    for (int i = 0; i < r->nhead; i++)
        if (r->head_at[i] < 0 || r->head_at[i] + code_size(&r->head_code[i]) > r->arr_at)
            return 0;
    const char *sk = PyUnicode_AsUTF8(PyTuple_GET_ITEM(shape, 0));
    PyObject *what = PyTuple_GET_ITEM(shape, 1);
    if (sk == NULL || sk[0] == 0 || sk[1] != 0) return 0;
    r->shape = sk[0];
    if (r->shape == 'k') {
        const char *k = PyUnicode_AsUTF8(what);
        if (k == NULL || code_size(k) != r->elem_size) return 0;
        r->elem_code = k[0];
    } else if (r->shape == 't') {
        if (!PyTuple_Check(what) || PyTuple_GET_SIZE(what) > MAX_COLS) return 0;
        r->ncols = (int)PyTuple_GET_SIZE(what);
        for (int i = 0; i < r->ncols; i++) {
            PyObject *c = PyTuple_GET_ITEM(what, i);
            if (!PyTuple_Check(c) || PyTuple_GET_SIZE(c) != 2) return 0;
            const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(c, 0));
            Py_ssize_t at = PyLong_AsSsize_t(PyTuple_GET_ITEM(c, 1));
            if (k == NULL || !code_size(k) || at < 0 || at + code_size(k) > r->elem_size)
                return 0;
            r->col_code[i] = k[0];
            r->col_at[i] = at;
        }
    } else if (r->shape == 's') {
        if (!PyUnicode_CheckExact(what)) return 0;
        r->attr = what;
    } else {
        return 0;
    }
    return !PyErr_Occurred();
}

/* The compiled Rows encode of `args` into `buffer`: 1 done, 0 not here (anything the
 * plan does not cover: the codec's Python runs, and says what is wrong). Everything is
 * read and checked before the first byte is written. */
static int encode_rows(Protected *p, PyObject *args, PyObject *buffer) {
    RowsPlan *r = &p->rows;
    PyObject *seq = src_object(&r->rows, args), *dq[MAX_DEQUE];
    if (seq == NULL) return 0;
    int done = 0, held = 0, ndq = 0;
    Py_ssize_t n = 0;
    uint64_t head[MAX_HEAD];
    PyObject *packed[MAX_ROWS];
    PyObject **items = seq_items(seq, r->max, &n, dq, &ndq);
    if (items == NULL) goto out;
    if (n > r->max) {
        if (r->refuse) goto out;
        n = r->max;
    }
    if (n > MAX_ROWS) goto out;
    Py_ssize_t all = n_all(seq, n); /* a list's length, checked again after code may run */
    for (int i = 0; i < r->nhead; i++) {
        long long x = n;
        if (!r->head_count[i] && !src_int(&r->head[i], args, &x)) goto out;
        if (!long_fits(x, r->head_code[i], &head[i])) goto out;
    }
    /* Reading a From may have run code (a key's __eq__ in an instance dict) that changed
     * a list of rows: its items are borrowed, so they are taken again, or not here. */
    if (!same_list(seq, all, &items)) goto out;
    if (r->elem_size > (PY_SSIZE_T_MAX - r->arr_at) / (n > 0 ? n : 1)) goto out;
    Py_ssize_t span = r->arr_at + n * r->elem_size;
    uint64_t v;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = items[i];
        if (r->shape == 'k') {
            if (!field_int(row, r->elem_code, &v)) goto out;
        } else if (r->shape == 't') {
            /* iterated by the Python as a tuple is: its own items, in order */
            if (!PyTuple_Check(row) || Py_TYPE(row)->tp_iter != PyTuple_Type.tp_iter
                || PyTuple_GET_SIZE(row) != r->ncols)
                goto out;
            for (int c = 0; c < r->ncols; c++)
                if (!field_int(PyTuple_GET_ITEM(row, c), r->col_code[c], &v)) goto out;
        } else {
            Py_INCREF(row); /* a key's __eq__ run by the read may drop the list's reference */
            PyObject *b = plain_attr(row, r->attr);
            Py_DECREF(row);
            if (b == NULL) goto out;
            packed[held++] = b;
            if (!PyBytes_CheckExact(b) || PyBytes_GET_SIZE(b) != r->elem_size) goto out;
            if (!same_list(seq, all, &items)) goto out;
        }
    }
    /* The buffer is looked at once nothing else can run: from here to the last byte
     * written no Python code runs (field_int and put call none). */
    char *buf = buffer_bytes(buffer, span, 1);
    if (buf == NULL) goto out;
    /* checked: now written, pads and gaps as zero bytes (the struct's "x") */
    memset(buf, 0, (size_t)span);
    for (int i = 0; i < r->nhead; i++) put(buf + r->head_at[i], r->head_code[i], head[i]);
    char *at = buf + r->arr_at;
    for (Py_ssize_t i = 0; i < n; i++, at += r->elem_size) {
        if (r->shape == 'k') {
            field_int(items[i], r->elem_code, &v);
            put(at, r->elem_code, v);
        } else if (r->shape == 't') {
            for (int c = 0; c < r->ncols; c++) {
                field_int(PyTuple_GET_ITEM(items[i], c), r->col_code[c], &v);
                put(at + r->col_at[c], r->col_code[c], v);
            }
        } else {
            memcpy(at, PyBytes_AS_STRING(packed[i]), (size_t)r->elem_size);
        }
    }
    done = 1;
out:
    while (held > 0) Py_DECREF(packed[--held]);
    while (ndq > 0) Py_DECREF(dq[--ndq]);
    Py_DECREF(seq);
    return done;
}

/* Compile a Bytes encode's plan into p->rows (enc_mode ENC_BYTES), or leave it to the
 * codec's Python. plan: (steps, data, arr_at, count, ((From plan or None, wide), ...)). */
static int compile_bytes(Protected *p, PyObject *plan) {
    RowsPlan *r = &p->rows;
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 5) return 0;
    PyObject *wasm = PyTuple_GET_ITEM(plan, 4);
    if (!compile_head(r, PyTuple_GET_ITEM(plan, 0))
        || !compile_src(PyTuple_GET_ITEM(plan, 1), &r->rows) || r->rows.div || r->rows.cap >= 0
        || !PyTuple_Check(wasm) || PyTuple_GET_SIZE(wasm) != p->nparams)
        return 0;
    r->arr_at = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 2));
    r->max = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 3));
    if (PyErr_Occurred() || r->arr_at < 0 || r->max < 0) return 0;
    for (int i = 0; i < r->nhead; i++)
        if (r->head_at[i] < 0 || r->head_at[i] + code_size(&r->head_code[i]) > r->arr_at)
            return 0;
    r->nwasm = (int)PyTuple_GET_SIZE(wasm);
    for (int i = 0; i < r->nwasm; i++) {
        PyObject *w = PyTuple_GET_ITEM(wasm, i);
        if (!PyTuple_Check(w) || PyTuple_GET_SIZE(w) != 2) return 0;
        PyObject *src = PyTuple_GET_ITEM(w, 0);
        r->wasm_count[i] = src == Py_None;
        if (src != Py_None && !compile_src(src, &r->wasm[i])) return 0;
        if (PyObject_IsTrue(PyTuple_GET_ITEM(w, 1)) != p->wide[i]) return 0;
    }
    return !PyErr_Occurred();
}

/* The compiled Bytes encode: 1 done, 0 not here (as encode_rows). */
static int encode_bytes(Protected *p, PyObject *args, PyObject *buffer) {
    RowsPlan *r = &p->rows;
    PyObject *data = src_object(&r->rows, args);
    if (data == NULL) return 0;
    int done = 0;
    const char *src;
    Py_ssize_t n;
    uint64_t head[MAX_HEAD], wasm[MAX_PARAMS];
    if (PyBytes_CheckExact(data)) {
        src = PyBytes_AS_STRING(data);
        n = PyBytes_GET_SIZE(data);
    } else if (PyByteArray_CheckExact(data)) {
        src = PyByteArray_AS_STRING(data);
        n = PyByteArray_GET_SIZE(data);
    } else {
        goto out;
    }
    if (n > r->max) goto out;
    for (int i = 0; i < r->nhead; i++) {
        long long x = n;
        if (!r->head_count[i] && !src_int(&r->head[i], args, &x)) goto out;
        if (!long_fits(x, r->head_code[i], &head[i])) goto out;
    }
    for (int i = 0; i < r->nwasm; i++) {
        /* any int, masked to the parameter's width (as RawFunc.call) */
        const Src *w = &r->wasm[i];
        if (r->wasm_count[i]) {
            wasm[i] = (uint64_t)n;
        } else if (w->div || w->cap >= 0) {
            long long x;
            if (!src_int(w, args, &x)) goto out;
            wasm[i] = (uint64_t)x;
        } else {
            PyObject *v = src_object(w, args);
            if (v == NULL) goto out;
            int ok = PyLong_CheckExact(v);
            if (ok) wasm[i] = (uint64_t)PyLong_AsUnsignedLongLongMask(v);
            Py_DECREF(v);
            if (!ok) goto out;
        }
    }
    /* Reading a From may have run code (a key's __eq__ in an instance dict) that resized
     * a bytearray: its bytes are taken again now, and a changed length is not here. */
    if (PyByteArray_CheckExact(data)) {
        if (PyByteArray_GET_SIZE(data) != n) goto out;
        src = PyByteArray_AS_STRING(data);
    }
    char *buf = buffer_bytes(buffer, r->arr_at + n, 1);
    if (buf == NULL) goto out;
    memset(buf, 0, (size_t)r->arr_at);
    for (int i = 0; i < r->nhead; i++) put(buf + r->head_at[i], r->head_code[i], head[i]);
    memcpy(buf + r->arr_at, src, (size_t)n);
    for (int i = 0; i < r->nwasm; i++) {
        char *slot = (char *)p->vals + (size_t)i * VAL_RAW_BYTES;
        if (p->wide[i])
            *(int64_t *)slot = (int64_t)wasm[i];
        else
            *(int32_t *)slot = (int32_t)(uint32_t)wasm[i];
    }
    done = 1;
out:
    Py_DECREF(data);
    return done;
}

/* Compile a decoder's plan into p->dec (dec_mode), or leave it to the codec's Python. */
static void compile_decode(Protected *p, PyObject *codec) {
    p->dec_mode = DEC_NONE;
    Py_CLEAR(p->dec_plan);
    PyTypeObject *t = Py_TYPE(codec);
    int mode = t == P.in_range_type ? DEC_RANGE : t == P.index_type ? DEC_INDEX
        : t == P.batch_type ? DEC_BATCH : t == P.elements_type ? DEC_ELEMS
        : t == P.bytes_of_type ? DEC_BYTES : DEC_NONE;
    if (mode == DEC_NONE) return;
    PyObject *plan = PyObject_GetAttr(codec, P.n_plan);
    if (plan == NULL || !PyTuple_Check(plan)) goto out;
    Py_ssize_t n = PyTuple_GET_SIZE(plan);
    DecPlan *d = &p->dec;
    int ok = 0;
    if (mode == DEC_RANGE && n == 2) {
        p->dec_lo = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 0));
        p->dec_hi = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 1));
        ok = 1;
    } else if (mode == DEC_INDEX && n == 1) {
        d->arg = (int)PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
        ok = d->arg >= 0;
    } else if (mode == DEC_BATCH && n == 4) { /* (arg, unit, more_at, more_max) */
        d->arg = (int)PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
        d->unit = PyLong_AsLongLong(PyTuple_GET_ITEM(plan, 1));
        d->at = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 2));
        d->max = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 3));
        ok = d->arg >= 0 && d->unit > 0 && d->at >= 0 && d->max >= 0 && d->max < MAX_ROWS;
    } else if (mode == DEC_ELEMS && n == 4) { /* (most, below, out_at, out_max) */
        d->at = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 2));
        d->max = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 3));
        ok = compile_src(PyTuple_GET_ITEM(plan, 0), &d->most)
            && compile_src(PyTuple_GET_ITEM(plan, 1), &d->below)
            && d->at >= 0 && d->max >= 0 && d->max <= MAX_ELEMS;
    } else if (mode == DEC_BYTES && n == 3) { /* (arg, at, count) */
        d->arg = (int)PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
        d->at = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 1));
        d->max = PyLong_AsSsize_t(PyTuple_GET_ITEM(plan, 2));
        ok = d->arg >= 0 && d->at >= 0 && d->max >= 0;
    }
    if (ok && !PyErr_Occurred()) {
        p->dec_mode = mode;
        Py_INCREF(plan);
        p->dec_plan = plan; /* what the Srcs borrow from */
    }
out:
    Py_XDECREF(plan);
    PyErr_Clear(); /* a plan not understood: the codec's Python runs */
}

/* The length of a candidates argument as len() gives it, or -1: not here. */
static Py_ssize_t exact_len(PyObject *args, int arg) {
    if (arg >= PyTuple_GET_SIZE(args)) return -1;
    PyObject *a = PyTuple_GET_ITEM(args, arg);
    return PyList_CheckExact(a) ? PyList_GET_SIZE(a) : PyTuple_CheckExact(a) ? PyTuple_GET_SIZE(a)
        : -1;
}

/* The compiled decode of `answer`: the answer (new reference); NULL and no exception:
 * not here (anything the plan does not accept as it is: the codec's Python runs, and
 * rejects it or answers). NULL with an exception: no memory. */
static PyObject *decode_native(Protected *p, PyObject *args, PyObject *buffer, int32_t answer) {
    DecPlan *d = &p->dec;
    switch (p->dec_mode) {
    case DEC_RANGE:
        return p->dec_lo <= answer && answer <= p->dec_hi ? PyLong_FromLong(answer) : NULL;
    case DEC_INDEX: {
        Py_ssize_t n = exact_len(args, d->arg);
        return 0 <= answer && answer < n ? PyLong_FromLong(answer) : NULL;
    }
    case DEC_BATCH: {
        Py_ssize_t n = exact_len(args, d->arg);
        if (answer < 0 || n < 0) return NULL;
        if (answer < n) return PyLong_FromLong(answer); /* one victim */
        long long k = answer / d->unit, victim = answer % d->unit;
        if (k <= 0 || k > d->max || victim >= n || n > MAX_CANDIDATES) return NULL;
        const char *buf = buffer_bytes(buffer, d->at + 4 * (Py_ssize_t)k, 0);
        if (buf == NULL) return NULL;
        uint8_t seen[MAX_CANDIDATES];
        uint32_t more[MAX_ROWS];
        memset(seen, 0, (size_t)n);
        seen[victim] = 1;
        for (long long i = 0; i < k; i++) {
            memcpy(&more[i], buf + d->at + 4 * i, 4);
            if (more[i] >= n || seen[more[i]]) return NULL; /* out of range, or named twice */
            seen[more[i]] = 1;
        }
        PyObject *out = PyList_New((Py_ssize_t)k + 1);
        if (out == NULL) return NULL;
        for (long long i = 0; i <= k; i++) {
            PyObject *x = PyLong_FromUnsignedLong(i == 0 ? (unsigned long)victim : more[i - 1]);
            if (x == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, (Py_ssize_t)i, x);
        }
        return out;
    }
    case DEC_BYTES: {
        if (d->arg >= PyTuple_GET_SIZE(args)) return NULL;
        PyObject *a = PyTuple_GET_ITEM(args, d->arg);
        Py_ssize_t n = PyBytes_CheckExact(a) ? PyBytes_GET_SIZE(a)
            : PyByteArray_CheckExact(a) ? PyByteArray_GET_SIZE(a) : -1;
        if (n < 0 || answer != n || n > d->max) return NULL;
        const char *buf = buffer_bytes(buffer, d->at + n, 0);
        return buf == NULL ? NULL : PyBytes_FromStringAndSize(buf + d->at, n);
    }
    case DEC_ELEMS: {
        long long most, below;
        if (!src_int(&d->most, args, &most) || answer < 0 || answer > most || answer > d->max)
            return NULL;
        if (answer == 0) return PyList_New(0);
        if (!src_int(&d->below, args, &below)) return NULL;
        const char *buf = buffer_bytes(buffer, d->at + 4 * (Py_ssize_t)answer, 0);
        if (buf == NULL) return NULL;
        uint32_t v[MAX_ELEMS];
        for (int32_t i = 0; i < answer; i++) {
            memcpy(&v[i], buf + d->at + 4 * i, 4);
            if ((long long)v[i] >= below) return NULL;
            for (int32_t j = 0; j < i; j++)
                if (v[j] == v[i]) return NULL; /* duplicates */
        }
        PyObject *out = PyList_New(answer);
        if (out == NULL) return NULL;
        for (int32_t i = 0; i < answer; i++) {
            PyObject *x = PyLong_FromUnsignedLong(v[i]);
            if (x == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, i, x);
        }
        return out;
    }
    }
    return NULL;
}

/* Compile an encoder (enc_mode), or leave it to the codec's Python. */
static void compile_encode(Protected *p, PyObject *codec) {
    p->enc_mode = ENC_NONE;
    Py_CLEAR(p->enc_plan);
    if (Py_TYPE(codec) == P.scalars_type) {
        compile_scalars(p, codec);
        if (p->enc_n >= 0) p->enc_mode = ENC_SCALARS;
        return;
    }
    p->enc_n = -1;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ /* the layouts are little-endian */
    int bytes = Py_TYPE(codec) == P.bytes_type;
    if (Py_TYPE(codec) != P.rows_type && !bytes) return;
    PyObject *plan = PyObject_GetAttr(codec, P.n_plan);
    if (plan != NULL && (bytes ? compile_bytes(p, plan) : compile_rows(p, plan))) {
        p->enc_mode = bytes ? ENC_BYTES : ENC_ROWS;
        p->enc_plan = plan; /* what p->rows borrows from */
        plan = NULL;
    }
    Py_XDECREF(plan);
    PyErr_Clear(); /* a plan not understood: the codec's Python runs */
#endif
}

/* ---- protected_vectorcall's cold paths, out of line (see COLD) ---- */

static COLD PyObject *protected_bad_args(void) {
    PyErr_SetString(PyExc_TypeError, "Protected takes one argument: the call's arguments");
    return NULL;
}

/* Not the common case (a removed graft, a caller inside a transaction, working for a
 * principal or holding a shared lock, a principal whose lifetime CPU is spent): the store
 * let go again, then Graft.invoke's. */
static COLD PyObject *not_common(Protected *p, PyObject *args) {
    mutex_give((Mutex *)p->mutex);
    if (PyErr_Occurred()) return NULL;
    return delegate(p, args);
}

static COLD PyObject *no_clock(Protected *p) {
    mutex_give((Mutex *)p->mutex);
    return NULL;
}

/* The encode's Python (the codec's plan did not cover these arguments): its result, the
 * entry's arguments (new reference), or NULL with an exception. */
static COLD PyObject *encode_python(PyObject *fn, PyObject *buffer, PyObject *args) {
    PyObject *stack[1 + MAX_PARAMS];
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    stack[0] = buffer;
    for (Py_ssize_t i = 0; i < n; i++) stack[1 + i] = PyTuple_GET_ITEM(args, i);
    return PyObject_Vectorcall(fn, stack, (size_t)(1 + n), NULL);
}

/* The entry's arguments an encode's Python returned, into the value slots (as
 * RawFunc.call): 0, or -1 with an exception. */
static COLD int fill_value_slots(Protected *p, PyObject *wasm_args) {
    int truth = PyObject_IsTrue(wasm_args);
    if (truth <= 0) return truth;
    PyObject *seq = PySequence_Fast(wasm_args, "the entry's arguments");
    if (seq != NULL && PyList_CheckExact(seq)) {
        /* taken whole first, as RawFunc.call(*args) takes them: an item's
         * __index__ may change the list (and free its array and items) */
        Py_SETREF(seq, PyList_AsTuple(seq));
    }
    if (seq == NULL) return -1;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyTuple_GET_ITEM(seq, i);
        if (i >= p->nparams) {
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        } else {
            /* as a ctypes integer array takes it: anything with __index__ */
            PyObject *ix = PyNumber_Index(a);
            unsigned long long v = ix != NULL ? PyLong_AsUnsignedLongLongMask(ix)
                                              : (unsigned long long)-1;
            Py_XDECREF(ix);
            if (!(v == (unsigned long long)-1 && PyErr_Occurred())) {
                char *slot = (char *)p->vals + (size_t)i * VAL_RAW_BYTES;
                if (p->wide[i])
                    *(int64_t *)slot = (int64_t)v;
                else
                    *(int32_t *)slot = (int32_t)(uint32_t)v;
            }
        }
        if (PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* The guest stopped (err, or a trap in the trap slot): the exception aborts.failure
 * chose, raised. */
static COLD void stopped(Protected *p, void *err) {
    PyObject *e = PyLong_FromVoidPtr(err);
    PyObject *exc = NULL;
    if (e != NULL) {
        PyObject *a[3] = {p->graft, p->txn, e};
        exc = PyObject_VectorcallMethod(P.n_stopped, a, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                        NULL);
        Py_DECREF(e);
    }
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* A graft that may grow its memory: a changed size charged (Graft._account_memory).
 * 0, or -1 with an exception. */
static __attribute__((noinline)) int account_memory(Protected *p) {
    PyObject *mc = SLOT(p->graft, P.g_mem_charged);
    if (mc == NULL) {
        PyErr_SetString(PyExc_AttributeError, "Graft.mem_charged is not set");
        return -1;
    }
    long long charged = PyLong_AsLongLong(mc);
    if (charged == -1 && PyErr_Occurred()) return -1;
    if ((long long)W.memory_size(p->ctx, p->mem) != charged) {
        PyObject *r = PyObject_CallMethodNoArgs(p->graft, P.n_account_memory);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* The decode's Python (anything its plan does not accept): the answer (new reference),
 * or NULL with an exception. */
static COLD PyObject *decode_python(PyObject *fn, PyObject *buffer, int32_t answer,
                                    PyObject *args) {
    PyObject *ret = PyLong_FromLong(answer);
    if (ret == NULL) return NULL;
    PyObject *stack[2 + MAX_PARAMS];
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    stack[0] = buffer;
    stack[1] = ret;
    for (Py_ssize_t i = 0; i < n; i++) stack[2 + i] = PyTuple_GET_ITEM(args, i);
    PyObject *result = PyObject_Vectorcall(fn, stack, (size_t)(2 + n), NULL);
    Py_DECREF(ret);
    return result;
}

/* obj.name() for a method that only raises or returns None: 0, or -1 with its exception. */
static COLD int call_method(PyObject *obj, PyObject *name) {
    PyObject *r = PyObject_CallMethodNoArgs(obj, name);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* Its principal's CPU used up: the exception Graft._cpu_used_up makes, raised. */
static COLD void cpu_used_up(Protected *p) {
    PyObject *exc = PyObject_CallMethodNoArgs(p->graft, P.n_cpu_used_up);
    if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
}

/* Every exit that raises once the transaction began: what the call holds let go, then
 * Graft._failed and the end of the call. */
static COLD PyObject *call_failed(Protected *p, int stage, PyObject *args, PyObject *clock,
                                  PyObject *fn, PyObject *result, PyObject *wasm_args,
                                  PyObject *buffer, int entered) {
    Py_XDECREF(clock);
    Py_XDECREF(fn);
    if (!entered) ((TxnFields *)p->txn)->start_ns = 0; /* the guest was not entered */
    Py_XDECREF(result);
    Py_XDECREF(wasm_args);
    Py_XDECREF(buffer);
    return finish_slow(p, failed(p, stage, args));
}

static PyObject *protected_vectorcall(PyObject *self, PyObject *const *argv, size_t nargsf,
                                      PyObject *kwnames) {
    Protected *p = (Protected *)self;
    if (UNLIKELY(PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL))
        return protected_bad_args();
    PyObject *args = argv[0];
    if (UNLIKELY(p->dead || !PyTuple_CheckExact(args) || PyTuple_GET_SIZE(args) > MAX_PARAMS))
        return delegate(p, args);
    if (!mutex_try((Mutex *)p->mutex)) return delegate(p, args); /* busy: invoke decides */
    /* The common case only: a live graft called by host code working for nobody in
     * particular, outside any transaction and any shared-lock hold, its principal's
     * lifetime CPU not spent. Anything else is Graft.invoke's, from the start (nothing
     * has changed yet). */
    PyObject *ts;
    if (UNLIKELY(!p->live || (ts = thread_state()) == NULL || Py_TYPE(ts) != P.ts_type
                 || SLOT(ts, P.s_txn) != Py_None || SLOT(ts, P.s_acting) != Py_None
                 || SLOT(ts, P.s_hold) != Py_None
                 || ((UsageCounters *)p->usage)->cpu_ns > p->cpu_total_ns))
        return not_common(p, args);
    PyObject *txn = p->txn, *result = NULL, *wasm_args = NULL, *buffer = NULL, *fn = NULL;
    PyObject *clock = clock_of(); /* borrowed */
    if (UNLIKELY(clock == NULL)) return no_clock(p);
    if (LIKELY(clock == P.perf_counter_ns)) clock = NULL; /* the real one: read in C */
    Py_XINCREF(clock);
    int stage = GUEST, entered = 0;
    long long t0 = 0, t1, t2;
    Counters *counters = (Counters *)p->stats;
    UsageCounters *usage = (UsageCounters *)p->usage;
    /* (graft._allowance is None: its own principal's call, and None outside any call) */
    set_slot(txn, P.t_args, args);
    /* begin (Graft._begin, inlined as in Graft.invoke); txn.start_ns is set when the
     * guest is entered, or to 0 on a failure before (nothing reads it in between) */
    set_slot(txn, P.t_parent, Py_None);
    set_slot(txn, P.t_ts, ts);
    set_slot(txn, P.t_state, P.active);
    if (UNLIKELY(set_changed(txn, P.t_undo_room, p->undo_quota - usage->undo_entries) < 0)) {
        Py_XDECREF(clock);
        return finish_slow(p, NULL);
    }
    if (UNLIKELY(SLOT(txn, P.t_wall_deadline_ns) != P.zero))
        set_slot(txn, P.t_wall_deadline_ns, P.zero);
    set_slot(ts, P.s_txn, txn);
    /* begun: from here on every exit that raises goes through fail (Graft._failed) */
    int sample = !(counters->commits & P.sample_mask);
    stage = ENCODE;
    if (UNLIKELY(sample) && UNLIKELY(read_clock(clock, &t0) < 0)) goto fail;
    /* encode */
    buffer = SLOT(p->graft, P.g_buffer);
    if (UNLIKELY(buffer == NULL)) {
        PyErr_SetString(PyExc_AttributeError, "Graft.buffer is not set");
        goto fail;
    }
    Py_INCREF(buffer);
    if (UNLIKELY((fn = codec_of(p, 0)) == NULL)) goto fail;
    if (LIKELY(p->enc_mode == ENC_SCALARS ? encode_scalars(p, args, buffer)
               : p->enc_mode == ENC_ROWS ? encode_rows(p, args, buffer)
               : p->enc_mode == ENC_BYTES && encode_bytes(p, args, buffer))) {
        wasm_args = Py_None; /* done here: nothing left for the value slots */
        Py_INCREF(wasm_args);
    } else {
        wasm_args = encode_python(fn, buffer, args);
    }
    Py_CLEAR(fn);
    if (UNLIKELY(wasm_args == NULL)) goto fail;
    stage = GUEST;
    if (UNLIKELY(wasm_args != Py_None) && fill_value_slots(p, wasm_args) < 0) goto fail;
    /* the call: the store's deadline renewed at most once a tick (Graft._renew_deadline) */
    uint64_t tick = *p->ticks;
    if (tick != p->deadline_tick) {
        p->deadline_tick = tick;
        W.set_deadline(p->ctx, 1);
    }
    if (UNLIKELY(read_clock(clock, &t1) < 0)) goto fail;
    ((TxnFields *)txn)->start_ns = t1;
    entered = 1;
    PyThreadState *outer = released;
    int outer_may_go = gil_may_go;
    released = NULL;
    gil_may_go = 1;
    void *err = p->fn(p->ctx, p->func, p->vals, p->nvals, p->trap);
    if (UNLIKELY(released != NULL)) PyEval_RestoreThread(released); /* it ran past a tick */
    released = outer;
    gil_may_go = outer_may_go;
    if (UNLIKELY(read_clock(clock, &t2) < 0)) goto fail;
    if (UNLIKELY(err != NULL || *(void **)p->trap != NULL)) { /* stopped: aborts.failure says why */
        stopped(p, err);
        goto fail;
    }
    if (p->may_grow && UNLIKELY(account_memory(p) < 0)) goto fail;
    /* decode */
    stage = DECODE;
    if (UNLIKELY((fn = codec_of(p, 1)) == NULL)) goto fail;
    int32_t answer = *(int32_t *)p->vals;
    result = LIKELY(p->dec_mode != DEC_NONE) ? decode_native(p, args, buffer, answer) : NULL;
    if (UNLIKELY(result == NULL)) {
        if (PyErr_Occurred()) goto fail;
        /* the codec's Python: anything its plan does not accept */
        result = decode_python(fn, buffer, answer, args);
    }
    Py_CLEAR(fn);
    if (UNLIKELY(result == NULL)) goto fail;
    stage = GUEST;
    /* doomed: txn.check() raises */
    if (UNLIKELY(SLOT(txn, P.t_doom_reason) != Py_None) && call_method(txn, P.n_check) < 0)
        goto fail;
    /* its own principal's CPU (Graft._charge_cpu, no allowance: not hosted) */
    usage->cpu_ns += t2 - t1;
    if (UNLIKELY(usage->cpu_ns > p->cpu_total_ns)) {
        cpu_used_up(p);
        goto fail;
    }
    /* commit: the common case here, anything recorded or held by Transaction.commit */
    if (LIKELY(SLOT(txn, P.t_undo) == Py_None && SLOT(txn, P.t_locks) == Py_None
               && SLOT(txn, P.t_deferred) == Py_None)) {
        set_slot(txn, P.t_state, P.committed);
        set_slot(ts, P.s_txn, Py_None);
    } else if (call_method(txn, P.n_commit) < 0) {
        goto fail;
    }
    Py_DECREF(wasm_args);
    Py_DECREF(buffer);
    long long t3 = 0;
    counters->commits += 1;
    counters->graft_ns += t2 - t1;
    if (UNLIKELY(sample)) {
        if (read_clock(clock, &t3) < 0) {
            Py_CLEAR(result);
        } else {
            counters->sampled_ns += t3 - t0;
            counters->sampled_graft_ns += t2 - t1;
            counters->samples += 1;
        }
    }
    Py_XDECREF(clock);
    return finish(p, result);
fail:
    return call_failed(p, stage, args, clock, fn, result, wasm_args, buffer, entered);
}

static int protected_traverse(PyObject *self, visitproc visit, void *arg) {
    Protected *p = (Protected *)self;
    Py_VISIT(p->graft);
    Py_VISIT(p->point);
    Py_VISIT(p->pdict);
    Py_VISIT(p->txn);
    Py_VISIT(p->stats);
    Py_VISIT(p->usage);
    Py_VISIT(p->events);
    Py_VISIT(p->mutex);
    Py_VISIT(p->entry);
    Py_VISIT(p->counter);
    Py_VISIT(p->enc_codec);
    Py_VISIT(p->dec_codec);
    Py_VISIT(p->enc_plan);
    Py_VISIT(p->dec_plan);
    return 0;
}

/* Drop what ties it to the instance; from then on every call is Graft.invoke's. */
static void protected_forget(Protected *p) {
    p->dead = 1;
    Py_CLEAR(p->entry);
    Py_CLEAR(p->counter);
    p->fn = NULL;
    p->ctx = p->func = p->vals = p->trap = p->mem = NULL;
    p->ticks = NULL;
}

static int protected_clear(PyObject *self) {
    Protected *p = (Protected *)self;
    protected_forget(p);
    Py_CLEAR(p->graft);
    Py_CLEAR(p->point);
    Py_CLEAR(p->pdict);
    Py_CLEAR(p->txn);
    Py_CLEAR(p->stats);
    Py_CLEAR(p->usage);
    Py_CLEAR(p->events);
    Py_CLEAR(p->mutex);
    Py_CLEAR(p->enc_codec);
    Py_CLEAR(p->dec_codec);
    Py_CLEAR(p->enc_plan);
    Py_CLEAR(p->dec_plan);
    p->enc_mode = ENC_NONE;
    p->dec_mode = DEC_NONE;
    return 0;
}

static void protected_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    protected_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *protected_forget_method(PyObject *self, PyObject *unused) {
    protected_forget((Protected *)self);
    Py_RETURN_NONE;
}

static PyObject *protected_unlink(PyObject *self, PyObject *unused) {
    ((Protected *)self)->live = 0;
    Py_RETURN_NONE;
}

static PyObject *protected_get_dead(PyObject *self, void *closure) {
    return PyBool_FromLong(((Protected *)self)->dead);
}

/* Protected(graft, point, txn, stats, usage, events, mutex, entry, rawcall, params,
 *           counter, ticks, cpu_total_ns, undo_quota, may_grow, mem) */
static int protected_init(PyObject *self, PyObject *args, PyObject *kw) {
    Protected *p = (Protected *)self;
    PyObject *graft, *point, *txn, *stats, *usage, *events, *mutex, *entry, *rawcall,
        *counter;
    const char *params;
    unsigned long long ticks, mem;
    long long cpu_total_ns, undo_quota;
    int may_grow;
    if (!P.ready) {
        PyErr_SetString(PyExc_RuntimeError, "_vino_fastpath.setup_protected was not called");
        return -1;
    }
    if (!check_ready()) return -1;
    if (!PyArg_ParseTuple(args, "OOOOOO!O!OO!sOKLLpK", &graft, &point, &txn, &stats,
                          &usage,
                          &PyList_Type, &events, &MutexType, &mutex, &entry, &RawCallType,
                          &rawcall, &params, &counter, &ticks, &cpu_total_ns, &undo_quota,
                          &may_grow, &mem))
        return -1;
    if (!PyObject_TypeCheck(graft, P.graft_type) || Py_TYPE(txn) != P.txn_type
        || !PyObject_TypeCheck(stats, &CountersType)
        || !PyObject_TypeCheck(usage, &UsageCountersType)) {
        PyErr_SetString(PyExc_TypeError, "Protected: graft, txn, stats or usage of another type");
        return -1;
    }
    size_t n = strlen(params);
    if (n > MAX_PARAMS || !ticks || (may_grow && !mem)) {
        PyErr_SetString(PyExc_ValueError, "Protected: bad parameters or a null pointer");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (params[i] != 'i' && params[i] != 'q') {
            PyErr_SetString(PyExc_ValueError, "Protected: parameter letters are i or q");
            return -1;
        }
        p->wide[i] = params[i] == 'q';
    }
    RawCall *rc = (RawCall *)rawcall;
    if (rc->fn == NULL || rc->ctx == NULL || rc->func == NULL || rc->args == NULL
        || rc->trap == NULL || rc->nargs < (size_t)(n > 0 ? n : 1)) {
        /* RawCall.__new__ without __init__: nothing to call (nargs: the value slots, at
         * least one for the answer and one per parameter) */
        PyErr_SetString(PyExc_ValueError, "Protected: a RawCall with a null pointer");
        return -1;
    }
    protected_clear(self);
    Py_INCREF(graft); p->graft = graft;
    Py_INCREF(point); p->point = point;
    p->pdict = PyObject_GenericGetDict(point, NULL);
    if (p->pdict == NULL) PyErr_Clear(); /* no instance dict: its fields the ordinary way */
    Py_INCREF(txn); p->txn = txn;
    Py_INCREF(stats); p->stats = stats;
    Py_INCREF(usage); p->usage = usage;
    Py_INCREF(events); p->events = events;
    Py_INCREF(mutex); p->mutex = mutex;
    Py_INCREF(entry); p->entry = entry;
    Py_INCREF(counter); p->counter = counter;
    p->fn = rc->fn;
    p->ctx = rc->ctx;
    p->func = rc->func;
    p->vals = rc->args;
    p->nvals = rc->nargs;
    p->trap = rc->trap;
    p->mem = (void *)(uintptr_t)mem;
    p->ticks = (volatile uint64_t *)(uintptr_t)ticks;
    p->deadline_tick = (uint64_t)-1;
    p->cpu_total_ns = cpu_total_ns;
    p->undo_quota = undo_quota;
    p->nparams = (int)n;
    p->may_grow = may_grow;
    p->dead = 0;
    p->live = 1;
    p->enc_n = -1;
    p->enc_mode = ENC_NONE;
    p->dec_mode = DEC_NONE;
    p->codecs_version = 0;
    p->vectorcall = protected_vectorcall;
    return 0;
}

static PyMethodDef protected_methods[] = {
    {"forget", protected_forget_method, METH_NOARGS,
     "forget(): drop what ties it to the instance; every later call is Graft.invoke's"},
    {"unlink", protected_unlink, METH_NOARGS,
     "unlink(): the graft is no longer live (a call running now still ends as invoke's)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef protected_getset[] = {
    {"dead", protected_get_dead, NULL, "True once forget() was called", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ProtectedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Protected",
    .tp_basicsize = sizeof(Protected),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Protected, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = PyType_GenericNew,
    .tp_init = protected_init,
    .tp_traverse = protected_traverse,
    .tp_clear = protected_clear,
    .tp_dealloc = protected_dealloc,
    .tp_methods = protected_methods,
    .tp_getset = protected_getset,
    .tp_doc = "Protected(...)(args): one graft's protected call, its common case in C.",
};

#define INTERN(field, text) if ((P.field = PyUnicode_InternFromString(text)) == NULL) return NULL

/* setup_protected(local, clock_dict, perf_counter_ns, encode, guest, decode, active,
 *                 committed, sample_mask, Graft, Transaction, ThreadState,
 *                 (Scalars, InRange, Rows, IndexOf, Batch, Elements, Bytes, BytesOf)):
 * once, before the first Protected. */
static PyObject *fp_setup_protected(PyObject *mod, PyObject *args) {
    PyObject *local, *cdict, *pcn, *enc, *guest, *dec, *active, *committed, *gt, *tt, *st,
        *sct, *irt, *rt, *ixt, *bt, *et, *byt, *boft;
    long long mask;
    if (!PyArg_ParseTuple(args, "OO!OOOOOOLOOO(OOOOOOOO)", &local, &PyDict_Type, &cdict,
                          &pcn, &enc, &guest, &dec, &active, &committed, &mask, &gt, &tt, &st,
                          &sct, &irt, &rt, &ixt, &bt, &et, &byt, &boft))
        return NULL;
    if (P.ready) Py_RETURN_NONE;
    if (need_type(gt, &P.graft_type) < 0 || need_type(tt, &P.txn_type) < 0
        || need_type(st, &P.ts_type) < 0
        || need_type(sct, &P.scalars_type) < 0 || need_type(irt, &P.in_range_type) < 0
        || need_type(rt, &P.rows_type) < 0 || need_type(ixt, &P.index_type) < 0
        || need_type(bt, &P.batch_type) < 0 || need_type(et, &P.elements_type) < 0
        || need_type(byt, &P.bytes_type) < 0 || need_type(boft, &P.bytes_of_type) < 0)
        return NULL;
    if (!PyType_IsSubtype(P.txn_type, &TxnFieldsType)) { /* start_ns is written as its C field */
        PyErr_Format(PyExc_TypeError, "setup: %s is no TxnFields", P.txn_type->tp_name);
        return NULL;
    }
    {
        PyObject *coll = PyImport_ImportModule("collections");
        PyObject *dq = coll != NULL ? PyObject_GetAttrString(coll, "deque") : NULL;
        Py_XDECREF(coll);
        if (dq == NULL || !PyType_Check(dq)) {
            Py_XDECREF(dq);
            return NULL;
        }
        P.deque_type = (PyTypeObject *)dq; /* strong, for good */
    }
    if (slot_offset(P.graft_type, "buffer", &P.g_buffer) < 0
        || slot_offset(P.graft_type, "mem_charged", &P.g_mem_charged) < 0
        || slot_offset(P.graft_type, "instance", &P.g_instance) < 0
        || slot_offset(P.graft_type, "call", &P.g_call) < 0
        || slot_offset(P.txn_type, "parent", &P.t_parent) < 0
        || slot_offset(P.txn_type, "ts", &P.t_ts) < 0
        || slot_offset(P.txn_type, "state", &P.t_state) < 0
        || slot_offset(P.txn_type, "undo_room", &P.t_undo_room) < 0
        || slot_offset(P.txn_type, "wall_deadline_ns", &P.t_wall_deadline_ns) < 0
        || slot_offset(P.txn_type, "undo", &P.t_undo) < 0
        || slot_offset(P.txn_type, "locks", &P.t_locks) < 0
        || slot_offset(P.txn_type, "deferred", &P.t_deferred) < 0
        || slot_offset(P.txn_type, "doom_reason", &P.t_doom_reason) < 0
        || slot_offset(P.txn_type, "args", &P.t_args) < 0
        || slot_offset(P.ts_type, "txn", &P.s_txn) < 0
        || slot_offset(P.ts_type, "acting", &P.s_acting) < 0
        || slot_offset(P.ts_type, "hold", &P.s_hold) < 0)
        return NULL;
    INTERN(n_plan, "plan");
    INTERN(n_ts, "ts");
    INTERN(n_perf_ns, "_perf_ns");
    INTERN(n_encode, "encode");
    INTERN(n_decode, "decode");
    INTERN(n_invoke, "invoke");
    INTERN(n_failed, "_failed");
    INTERN(n_stopped, "_stopped");
    INTERN(n_account_memory, "_account_memory");
    INTERN(n_cpu_used_up, "_cpu_used_up");
    INTERN(n_check, "check");
    INTERN(n_commit, "commit");
    INTERN(n_free, "_free");
    INTERN(n_flush, "_flush");
    if ((P.zero = PyLong_FromLong(0)) == NULL) return NULL;
    PyObject *keep[] = {local, cdict, pcn, enc, guest, dec, active, committed, gt, tt, st,
                        sct, irt, rt, ixt, bt, et, byt, boft};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) Py_INCREF(keep[i]);
    P.local = local;
    P.clock_dict = cdict;
    P.perf_counter_ns = pcn;
    P.stage[ENCODE] = enc;
    P.stage[GUEST] = guest;
    P.stage[DECODE] = dec;
    P.active = active;
    P.committed = committed;
    P.sample_mask = mask;
    P.ready = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ Dispatch */

/* FunctionPoint.__call__ in C: point(target, *args) runs the graft for target, else the
 * GLOBAL graft, else point.default(*args) -- the Python method's contract, without its
 * frame. A method descriptor: called with the point first, no bound method made. The
 * graft is called through its `call` (Graft.call: the Protected entry, or invoke). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *global; /* point.GLOBAL */
    PyObject *doc;    /* the Python twin's docstring: help() shows the same contract */
    PyObject *name, *qualname; /* as the method it stands for */
    PyObject *n_table, *n_default, *n_call;
} Dispatch;

/* point.table's graft for target, else the GLOBAL one (a new reference), Py_None when
 * neither is installed, NULL with an exception. *table_out (unless NULL): the table (a new
 * reference) when it was read from the point's own dict, the way Targeted's cache can
 * vouch for, with its version before it was searched in *table_version; else NULL. */
static PyObject *dispatch_find(Dispatch *d, PyObject *point, PyObject *target,
                               PyObject **table_out, uint64_t *table_version) {
    PyObject *g = NULL, *table = NULL;
    int own = 0;
    if (table_out != NULL) *table_out = NULL;
    if (_PyType_Lookup(Py_TYPE(point), d->n_table) == NULL) {
        /* no class attribute of that name: point.table is its own dict's (a dataclass
         * field), read there without the generic attribute lookup */
        PyObject *dict = PyObject_GenericGetDict(point, NULL);
        if (dict != NULL) {
            table = PyDict_GetItemWithError(dict, d->n_table);
            Py_XINCREF(table);
            Py_DECREF(dict);
            own = table != NULL;
        }
        if (table == NULL) { /* not there: the ordinary lookup says what is wrong */
            PyErr_Clear();
            table = PyObject_GetAttr(point, d->n_table);
        }
    } else {
        table = PyObject_GetAttr(point, d->n_table);
    }
    if (table == NULL) return NULL;
#ifdef DICT_VERSION
    if (own && table_version != NULL && PyDict_CheckExact(table))
        *table_version = DICT_VERSION(table);
#endif
    int some = PyObject_IsTrue(table);
    if (some < 0) goto error;
    if (some) {
        if (!PyDict_Check(table)) {
            PyErr_SetString(PyExc_TypeError, "a point's table is a dict");
            goto error;
        }
        g = PyDict_GetItemWithError(table, target);
        if (g == NULL && !PyErr_Occurred()) g = PyDict_GetItemWithError(table, d->global);
        if (g == NULL && PyErr_Occurred()) goto error;
    }
    if (g == NULL) g = Py_None;
    Py_INCREF(g);
    if (own && table_out != NULL) *table_out = table;
    else Py_DECREF(table);
    return g;
error:
    Py_DECREF(table);
    return NULL;
}

/* A tuple of the n args (new references): *spare (unless spare is NULL) when it holds
 * one of n items, else a new one. A slot keeps the tuple of its last call as its spare
 * (args_done), so a call makes no tuple and frees none: nothing to allocate, link into
 * the collector's list and unlink, whose lines a call after a pause finds cold. */
static PyObject *args_tuple(PyObject **spare, PyObject *const *args, Py_ssize_t n) {
    PyObject *tuple = spare != NULL ? *spare : NULL;
    if (tuple != NULL && PyTuple_GET_SIZE(tuple) == n) {
        *spare = NULL; /* in use: a call through the same slot meanwhile makes its own */
        if (!PyObject_GC_IsTracked(tuple)) PyObject_GC_Track(tuple); /* the collector
                                                                        untracks empty ones */
    } else {
        tuple = PyTuple_New(n);
        if (tuple == NULL) return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(tuple, i, args[i]);
    }
    return tuple;
}

/* The end of a call's tuple from args_tuple: kept as the spare, its items let go (as
 * freeing it would), when nobody else holds it (a graft-callable or a codec may have
 * kept txn.args) and no spare was kept meanwhile; else let go. Invariant: a spare's
 * items are all NULL and nothing but its slot refers to it. */
static void args_done(PyObject **spare, PyObject *tuple) {
    if (spare != NULL && *spare == NULL && Py_REFCNT(tuple) == 1) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
            PyObject *x = PyTuple_GET_ITEM(tuple, i);
            PyTuple_SET_ITEM(tuple, i, NULL);
            Py_XDECREF(x); /* may run a finalizer, which may call the slot again */
        }
        if (*spare == NULL) {
            *spare = tuple;
            return;
        }
    }
    Py_DECREF(tuple);
}

/* The point's answer from graft g (from dispatch_find) for args (the point's own
 * arguments, after the target): the default's when g is None, else the graft's call
 * (Graft.call: the Protected entry, entered directly, or invoke). Steals g. spare: the
 * slot's spare tuple (args_tuple), or NULL. */
static PyObject *dispatch_run(Dispatch *d, PyObject *point, PyObject *g,
                              PyObject *const *args, Py_ssize_t n, PyObject **spare) {
    PyObject *r;
    if (g == Py_None) {
        Py_DECREF(g);
        PyObject *dflt = PyObject_GetAttr(point, d->n_default);
        if (dflt == NULL) return NULL;
        r = PyObject_Vectorcall(dflt, args, (size_t)n, NULL);
        Py_DECREF(dflt);
        return r;
    }
    PyObject *tuple = args_tuple(spare, args, n);
    if (tuple == NULL) {
        Py_DECREF(g);
        return NULL;
    }
    /* graft.call: read from its slot, and a native entry called straight away */
    PyObject *call = P.ready && Py_TYPE(g) == P.graft_type ? SLOT(g, P.g_call) : NULL;
    if (call != NULL) Py_INCREF(call);
    else call = PyObject_GetAttr(g, d->n_call);
    Py_DECREF(g);
    r = call == NULL ? NULL
        : Py_TYPE(call) == &ProtectedType ? protected_vectorcall(call, &tuple, 1, NULL)
        : PyObject_Vectorcall(call, &tuple, 1, NULL);
    Py_XDECREF(call);
    args_done(spare, tuple);
    return r;
}

static PyObject *dispatch_vectorcall(PyObject *self, PyObject *const *argv, size_t nargsf,
                                     PyObject *kwnames) {
    Dispatch *d = (Dispatch *)self;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames)) {
        PyErr_SetString(PyExc_TypeError, "a point takes its target and arguments by position");
        return NULL;
    }
    if (n < 2) {
        PyErr_SetString(PyExc_TypeError, "a point is called with a target");
        return NULL;
    }
    PyObject *g = dispatch_find(d, argv[0], argv[1], NULL, NULL);
    return g == NULL ? NULL : dispatch_run(d, argv[0], g, argv + 2, n - 2, NULL);
}

static PyObject *dispatch_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static int dispatch_init(PyObject *self, PyObject *args, PyObject *kw) {
    Dispatch *d = (Dispatch *)self;
    PyObject *global, *doc, *qualname;
    if (!PyArg_ParseTuple(args, "OOU", &global, &doc, &qualname)) return -1;
    Py_INCREF(qualname);
    Py_XSETREF(d->qualname, qualname);
    Py_XSETREF(d->name, PyUnicode_FromString("__call__"));
    if (d->name == NULL) return -1;
    Py_INCREF(global);
    Py_XSETREF(d->global, global);
    Py_INCREF(doc);
    Py_XSETREF(d->doc, doc);
    Py_XSETREF(d->n_table, PyUnicode_InternFromString("table")); /* __init__ again: no leak */
    Py_XSETREF(d->n_default, PyUnicode_InternFromString("default"));
    Py_XSETREF(d->n_call, PyUnicode_InternFromString("call"));
    if (d->n_table == NULL || d->n_default == NULL || d->n_call == NULL) return -1;
    d->vectorcall = dispatch_vectorcall;
    return 0;
}

static void dispatch_dealloc(PyObject *self) {
    Dispatch *d = (Dispatch *)self;
    Py_XDECREF(d->global);
    Py_XDECREF(d->doc);
    Py_XDECREF(d->name);
    Py_XDECREF(d->qualname);
    Py_XDECREF(d->n_table);
    Py_XDECREF(d->n_default);
    Py_XDECREF(d->n_call);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *dispatch_doc(PyObject *self, void *closure) {
    PyObject *doc = ((Dispatch *)self)->doc;
    Py_INCREF(doc != NULL ? doc : Py_None);
    return doc != NULL ? doc : Py_None;
}

static PyObject *dispatch_name(PyObject *self, void *qual) {
    Dispatch *d = (Dispatch *)self;
    PyObject *v = qual != NULL ? d->qualname : d->name;
    Py_INCREF(v != NULL ? v : Py_None);
    return v != NULL ? v : Py_None;
}

static PyGetSetDef dispatch_getset[] = {
    {"__doc__", dispatch_doc, NULL, NULL, NULL},
    {"__name__", dispatch_name, NULL, NULL, NULL},
    {"__qualname__", dispatch_name, NULL, NULL, (void *)1},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Dispatch",
    .tp_basicsize = sizeof(Dispatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(Dispatch, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = dispatch_get,
    .tp_new = PyType_GenericNew,
    .tp_init = dispatch_init,
    .tp_dealloc = dispatch_dealloc,
    .tp_getset = dispatch_getset,
};

/* ------------------------------------------------------------------ Targeted */

/* A subsystem's policy slot for a point whose target is the slot's first argument:
 * Targeted(point, call)(*args) is call(point, args[0], *args) (FunctionPoint.on_first),
 * without a Python frame; call is the point's class's __call__, a Dispatch entered here
 * directly. With into >= 0 (FunctionPoint.on_first_in_place), the answer replaces
 * args[into] in place and the slot answers None; before that, with no graft installed at
 * all (point.table empty) empty(*args) runs instead, and when the target's or the GLOBAL
 * graft is installed the target is recorded in seal (seal[id(target)] = target). */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *point, *call;
    PyObject *seal, *empty, *n_table; /* NULL unless in place */
    int into;                          /* -1: the answer is returned */
    /* The graft the last lookup found (strong; NULL: none remembered) for the target
     * last_key, and what it was found in: the point's dict and its table (strong), their
     * versions and the point's type's (targeted_remember). Invariant: while all three
     * versions are unchanged, looking last_key up again finds last_graft. last_key is
     * borrowed and only compared by identity: a target whose type hashes and compares
     * by identity, so an object that takes its address after it died is looked up to
     * the same graft (the table holds its keys alive, so a removed key changed the
     * table's version). */
    PyObject *last_key, *last_graft, *pdict, *table;
    PyObject *spare; /* the tuple of the last call, for the next (args_tuple), or NULL */
    uint64_t pdict_version, table_version;
    unsigned int type_version;
} Targeted;

/* The lines a protected call reads first, asked for all at once: a call made after the
 * host was busy elsewhere (vino bench goals' sparse calls) finds them out of the caches,
 * and met one by one in the call each miss would wait for the one before. Hints only:
 * nothing is read here but pointers the Protected holds. */
static inline void protected_prefetch(Protected *p) {
    for (size_t off = 64; off < offsetof(Protected, rows.head); off += 64)
        __builtin_prefetch((const char *)p + off);
    const char *g = (const char *)p->graft, *txn = (const char *)p->txn;
    __builtin_prefetch(p->mutex, 1);
    __builtin_prefetch(txn, 1);
    __builtin_prefetch(txn + P.t_state, 1);
    __builtin_prefetch(txn + P.t_args, 1);
    __builtin_prefetch(txn + P.t_undo, 1);
    __builtin_prefetch(txn + P.t_doom_reason, 1);
    __builtin_prefetch(g + P.g_buffer);
    __builtin_prefetch(g + P.g_call);
    __builtin_prefetch(p->stats, 1);
    __builtin_prefetch(p->usage, 1);
    __builtin_prefetch(p->events);
    __builtin_prefetch(p->pdict);
    __builtin_prefetch(p->vals, 1);
    __builtin_prefetch(p->trap);
    __builtin_prefetch((const void *)p->ticks);
    __builtin_prefetch(ts_cached);
    for (size_t off = 0; off < offsetof(__typeof__(P), local); off += 64)
        __builtin_prefetch((const char *)&P + off);
}

#ifdef DICT_VERSION
/* The graft the last lookup found, when looking key up again would find it (borrowed);
 * NULL: look it up. */
static inline PyObject *targeted_cached(Targeted *t, PyObject *key) {
    if (t->last_graft == NULL || key != t->last_key) return NULL;
    PyTypeObject *pt = Py_TYPE(t->point);
    if (!(pt->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) || pt->tp_version_tag != t->type_version
        || DICT_VERSION(t->pdict) != t->pdict_version
        || DICT_VERSION(t->table) != t->table_version)
        return NULL;
    return t->last_graft;
}

/* Remember g, just found for key in table (read from the point's dict, which had version
 * pdict_version before; the table had table_version), if a later lookup can be vouched
 * for by versions: a graft, a key that hashes and compares by identity, and nothing
 * changed while the lookup ran (a key's __eq__ may run code). */
static void targeted_remember(Targeted *t, PyObject *key, PyObject *g, PyObject *dict,
                              uint64_t pdict_version, PyObject *table,
                              uint64_t table_version) {
    PyTypeObject *kt = Py_TYPE(key), *pt = Py_TYPE(t->point);
    Py_CLEAR(t->last_graft);
    if (dict == NULL || table == NULL || !PyDict_CheckExact(table) || !P.ready
        || !Py_IS_TYPE(g, P.graft_type) || kt->tp_hash != PyBaseObject_Type.tp_hash
        || kt->tp_richcompare != PyBaseObject_Type.tp_richcompare
        || !(pt->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        || DICT_VERSION(dict) != pdict_version || DICT_VERSION(table) != table_version)
        return;
    Py_INCREF(dict);
    Py_XSETREF(t->pdict, dict);
    Py_INCREF(table);
    Py_XSETREF(t->table, table);
    t->pdict_version = pdict_version;
    t->table_version = table_version;
    t->type_version = pt->tp_version_tag;
    t->last_key = key;
    Py_INCREF(g);
    t->last_graft = g;
}
#endif

/* The slot's call of its Dispatch: the graft remembered for this target when nothing it
 * was found in changed (no lookup), else dispatch_find's; then dispatch_run. */
static PyObject *targeted_dispatch(Targeted *t, PyObject *const *argv, Py_ssize_t n) {
    Dispatch *d = (Dispatch *)t->call;
    PyObject *g = NULL;
#ifdef DICT_VERSION
    g = targeted_cached(t, argv[0]);
    if (g != NULL) {
        Py_INCREF(g);
        PyObject *call = SLOT(g, P.g_call);
        if (call != NULL && Py_IS_TYPE(call, &ProtectedType)) protected_prefetch((Protected *)call);
        return dispatch_run(d, t->point, g, argv, n, &t->spare);
    }
    PyObject *dict = PyObject_GenericGetDict(t->point, NULL), *table = NULL;
    if (dict == NULL) PyErr_Clear();
    uint64_t pdict_version = dict != NULL ? DICT_VERSION(dict) : 0, table_version = 0;
    g = dispatch_find(d, t->point, argv[0], &table, &table_version);
    if (g != NULL) targeted_remember(t, argv[0], g, dict, pdict_version, table, table_version);
    Py_XDECREF(dict);
    Py_XDECREF(table);
#else
    g = dispatch_find(d, t->point, argv[0], NULL, NULL);
#endif
    return g == NULL ? NULL : dispatch_run(d, t->point, g, argv, n, &t->spare);
}

static PyObject *targeted_vectorcall(PyObject *self, PyObject *const *argv, size_t nargsf,
                                     PyObject *kwnames) {
    Targeted *t = (Targeted *)self;
    Py_ssize_t n = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames)) || n < 1 || n > MAX_PARAMS
        || t->into >= n) {
        PyErr_Format(PyExc_TypeError, "a policy slot takes its target and at most %d more "
                     "arguments, by position (in place: argument %d)", MAX_PARAMS - 1, t->into);
        return NULL;
    }
    if (t->into >= 0) {
        /* as on_first_in_place's Python: table = point.table; if not table: empty(*args);
         * if target in table or GLOBAL in table: seal it */
        PyObject *table = PyObject_GetAttr(t->point, t->n_table);
        if (table == NULL) return NULL;
        int some = PyObject_IsTrue(table), in = 0;
        if (some > 0) {
            in = PySequence_Contains(table, argv[0]);
            if (in == 0) in = PySequence_Contains(table, ((Dispatch *)t->call)->global);
        }
        Py_DECREF(table);
        if (some < 0 || in < 0) return NULL;
        if (!some) return PyObject_Vectorcall(t->empty, argv, (size_t)n, NULL);
        if (in) {
            PyObject *key = PyLong_FromVoidPtr(argv[0]);
            int rc = key != NULL ? PyObject_SetItem(t->seal, key, argv[0]) : -1;
            Py_XDECREF(key);
            if (rc < 0) return NULL;
        }
    }
    PyObject *r;
    if (Py_IS_TYPE(t->call, &DispatchType)) {
        r = targeted_dispatch(t, argv, n);
    } else {
        PyObject *stack[2 + MAX_PARAMS];
        stack[0] = t->point;
        stack[1] = argv[0];
        memcpy(stack + 2, argv, (size_t)n * sizeof(PyObject *));
        r = PyObject_Vectorcall(t->call, stack, (size_t)(n + 2), NULL);
    }
    if (t->into < 0 || r == NULL) return r;
    /* args[into][:] = r */
    PyObject *dst = argv[t->into];
    int rc;
    if (PyByteArray_CheckExact(dst) && PyBytes_CheckExact(r)
        && PyByteArray_GET_SIZE(dst) == PyBytes_GET_SIZE(r)) {
        memcpy(PyByteArray_AS_STRING(dst), PyBytes_AS_STRING(r), (size_t)PyBytes_GET_SIZE(r));
        rc = 0;
    } else {
        PyObject *all = PySlice_New(NULL, NULL, NULL);
        rc = all != NULL ? PyObject_SetItem(dst, all, r) : -1;
        Py_XDECREF(all);
    }
    Py_DECREF(r);
    if (rc < 0) return NULL;
    Py_RETURN_NONE;
}

/* Targeted(point, call[, into, seal, empty]) */
static int targeted_init(PyObject *self, PyObject *args, PyObject *kw) {
    Targeted *t = (Targeted *)self;
    PyObject *point, *call, *seal = NULL, *empty = NULL;
    int into = -1;
    if (!PyArg_ParseTuple(args, "OO|iOO", &point, &call, &into, &seal, &empty)) return -1;
    if (!PyCallable_Check(call)
        || (into >= 0 && (seal == NULL || empty == NULL || !PyCallable_Check(empty)
                          || !Py_IS_TYPE(call, &DispatchType)))) {
        PyErr_SetString(PyExc_TypeError, "Targeted(point, call[, into, seal, empty]): call "
                        "callable; in place, call a Dispatch and empty callable");
        return -1;
    }
    Py_INCREF(point);
    Py_XSETREF(t->point, point);
    Py_INCREF(call);
    Py_XSETREF(t->call, call);
    Py_CLEAR(t->last_graft); /* __init__ again: nothing remembered from another point */
    t->into = into < 0 ? -1 : into;
    if (t->into >= 0) {
        Py_INCREF(seal);
        Py_XSETREF(t->seal, seal);
        Py_INCREF(empty);
        Py_XSETREF(t->empty, empty);
        Py_XSETREF(t->n_table, PyUnicode_InternFromString("table"));
        if (t->n_table == NULL) return -1;
    }
    t->vectorcall = targeted_vectorcall;
    return 0;
}

static int targeted_traverse(PyObject *self, visitproc visit, void *arg) {
    Targeted *t = (Targeted *)self;
    Py_VISIT(t->point);
    Py_VISIT(t->call);
    Py_VISIT(t->seal);
    Py_VISIT(t->empty);
    Py_VISIT(t->last_graft);
    Py_VISIT(t->pdict);
    Py_VISIT(t->table);
    Py_VISIT(t->spare);
    return 0;
}

static int targeted_clear(PyObject *self) {
    Targeted *t = (Targeted *)self;
    Py_CLEAR(t->point);
    Py_CLEAR(t->call);
    Py_CLEAR(t->seal);
    Py_CLEAR(t->empty);
    Py_CLEAR(t->n_table);
    Py_CLEAR(t->last_graft);
    Py_CLEAR(t->pdict);
    Py_CLEAR(t->table);
    Py_CLEAR(t->spare);
    return 0;
}

static void targeted_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    targeted_clear(self);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *targeted_call(PyObject *self, PyObject *args, PyObject *kw) {
    if (((Targeted *)self)->point == NULL) {
        PyErr_SetString(PyExc_TypeError, "Targeted was not initialised");
        return NULL;
    }
    return PyVectorcall_Call(self, args, kw);
}

static PyTypeObject TargetedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_vino_fastpath.Targeted",
    .tp_basicsize = sizeof(Targeted),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Targeted, vectorcall),
    .tp_call = targeted_call,
    .tp_new = PyType_GenericNew,
    .tp_init = targeted_init,
    .tp_traverse = targeted_traverse,
    .tp_clear = targeted_clear,
    .tp_dealloc = targeted_dealloc,
    .tp_doc = "Targeted(point, call[, into, seal, empty])(*args): call(point, args[0], *args).",
};

/* ------------------------------------------------------------------ module functions */

static int parse_ptr(PyObject *o, void **out) {
    void *p = PyLong_AsVoidPtr(o);
    if (p == NULL && PyErr_Occurred()) return -1;
    *out = p;
    return 0;
}

static PyObject *fp_init(PyObject *mod, PyObject *args) {
    unsigned long long trap_new, error_new, memory_size, define, epoch_set, set_deadline;
    if (!PyArg_ParseTuple(args, "KKKKKK", &trap_new, &error_new, &memory_size, &define,
                          &epoch_set, &set_deadline))
        return NULL;
    W.trap_new = (trap_new_fn)(uintptr_t)trap_new;
    W.error_new = (error_new_fn)(uintptr_t)error_new;
    W.memory_size = (memory_size_fn)(uintptr_t)memory_size;
    W.define = (define_fn)(uintptr_t)define;
    W.epoch_set = (epoch_set_fn)(uintptr_t)epoch_set;
    W.set_deadline = (set_deadline_fn)(uintptr_t)set_deadline;
    W.ready = 1;
    Py_RETURN_NONE;
}

static int check_ready(void) {
    if (!W.ready) PyErr_SetString(PyExc_RuntimeError, "_vino_fastpath.init was not called");
    return W.ready;
}

/* define_host(linker, module, name, functype, host) -> error pointer (0: defined). */
static PyObject *fp_define_host(PyObject *mod, PyObject *args) {
    unsigned long long linker, ty;
    const char *module, *name;
    Py_ssize_t mlen, nlen;
    PyObject *host;
    if (!PyArg_ParseTuple(args, "Ky#y#KO!", &linker, &module, &mlen, &name, &nlen, &ty,
                          &HostType, &host))
        return NULL;
    if (!check_ready()) return NULL;
    void *err = W.define((void *)(uintptr_t)linker, module, (size_t)mlen, name, (size_t)nlen,
                         (void *)(uintptr_t)ty, (void *)host_trampoline, (void *)host, NULL);
    return PyLong_FromVoidPtr(err);
}

/* set_epoch_callback(store, host): host.fn is decide() (no parameters, no result). */
static PyObject *fp_set_epoch_callback(PyObject *mod, PyObject *args) {
    unsigned long long store;
    PyObject *host;
    if (!PyArg_ParseTuple(args, "KO!", &store, &HostType, &host)) return NULL;
    if (!check_ready()) return NULL;
    W.epoch_set((void *)(uintptr_t)store, (void *)epoch_callback, (void *)host, NULL);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", fp_init, METH_VARARGS,
     "init(trap_new, error_new, memory_size, define, epoch_set, set_deadline): wasmtime's "
     "entry points (addresses)."},
    {"define_host", fp_define_host, METH_VARARGS,
     "define_host(linker, module, name, functype, host) -> error pointer"},
    {"set_epoch_callback", fp_set_epoch_callback, METH_VARARGS,
     "set_epoch_callback(store, host)"},
    {"setup_protected", fp_setup_protected, METH_VARARGS,
     "setup_protected(local, clock_dict, perf_counter_ns, encode, guest, decode, active, "
     "committed, sample_mask, Graft, Transaction, ThreadState, Scalars, InRange): what every "
     "Protected shares, once"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_vino_fastpath",
    "vino's native fast path into and out of WebAssembly (see fastpath.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__vino_fastpath(void) {
    static PyTypeObject *const types[] = {&RawCallType, &HostType, &CountersType,
        &UsageCountersType, &TxnFieldsType, &MutexType, &ProtectedType, &DispatchType,
        &TargetedType, NULL};
    return module_with_types(&moduledef, types);
}
