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
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>

#define VAL_RAW_BYTES 16 /* sizeof(wasmtime_val_raw_t) */
#define MAX_PARAMS 8

typedef void *(*call_fn)(void *, void *, void *, size_t, void *);
typedef void *(*trap_new_fn)(const char *, size_t);
typedef void *(*error_new_fn)(const char *);
typedef size_t (*memory_size_fn)(void *, void *);
typedef void *(*define_fn)(void *, const char *, size_t, const char *, size_t, void *,
                           void *, void *, void (*)(void *));
typedef void (*epoch_set_fn)(void *, void *, void *, void (*)(void *));

static struct {
    trap_new_fn trap_new;
    error_new_fn error_new;
    memory_size_fn memory_size;
    define_fn define;
    epoch_set_fn epoch_set;
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
static __thread PyThreadState *released;

static PyObject *rawcall_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    RawCall *c = (RawCall *)self;
    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "RawCall takes no arguments");
        return NULL;
    }
    PyThreadState *outer = released;
    released = NULL;
    void *err = c->fn(c->ctx, c->func, c->args, c->nargs, c->trap);
    if (released != NULL) PyEval_RestoreThread(released); /* it ran past a tick: take it back */
    released = outer;
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
        if (released == NULL && PyGILState_Check()) released = PyEval_SaveThread();
        *delta = 1;
        *kind = 0; /* WASMTIME_UPDATE_DEADLINE_CONTINUE */
        return NULL;
    }
    return W.error_new(STOP_MSG);
}

/* ------------------------------------------------------------------ module functions */

static int parse_ptr(PyObject *o, void **out) {
    void *p = PyLong_AsVoidPtr(o);
    if (p == NULL && PyErr_Occurred()) return -1;
    *out = p;
    return 0;
}

static PyObject *fp_init(PyObject *mod, PyObject *args) {
    unsigned long long trap_new, error_new, memory_size, define, epoch_set;
    if (!PyArg_ParseTuple(args, "KKKKK", &trap_new, &error_new, &memory_size, &define,
                          &epoch_set))
        return NULL;
    W.trap_new = (trap_new_fn)(uintptr_t)trap_new;
    W.error_new = (error_new_fn)(uintptr_t)error_new;
    W.memory_size = (memory_size_fn)(uintptr_t)memory_size;
    W.define = (define_fn)(uintptr_t)define;
    W.epoch_set = (epoch_set_fn)(uintptr_t)epoch_set;
    W.ready = 1;
    Py_RETURN_NONE;
}

static int check_ready(void) {
    if (!W.ready) PyErr_SetString(PyExc_RuntimeError, "_vino_fastpath.init was not called");
    return W.ready;
}

/* memory_size(ctx, memory) -> bytes, GIL kept. */
static PyObject *fp_memory_size(PyObject *mod, PyObject *const *args, Py_ssize_t n) {
    void *ctx, *mem;
    if (n != 2) {
        PyErr_SetString(PyExc_TypeError, "memory_size(ctx, memory)");
        return NULL;
    }
    if (!check_ready() || parse_ptr(args[0], &ctx) < 0 || parse_ptr(args[1], &mem) < 0)
        return NULL;
    return PyLong_FromSize_t(W.memory_size(ctx, mem));
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
     "init(trap_new, error_new, memory_size, define, epoch_set): wasmtime's entry points "
     "(addresses)."},
    {"memory_size", (PyCFunction)(void (*)(void))fp_memory_size, METH_FASTCALL,
     "memory_size(ctx, memory) -> bytes"},
    {"define_host", fp_define_host, METH_VARARGS,
     "define_host(linker, module, name, functype, host) -> error pointer"},
    {"set_epoch_callback", fp_set_epoch_callback, METH_VARARGS,
     "set_epoch_callback(store, host)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_vino_fastpath",
    "vino's native fast path into and out of WebAssembly (see fastpath.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__vino_fastpath(void) {
    if (PyType_Ready(&RawCallType) < 0 || PyType_Ready(&HostType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&RawCallType);
    Py_INCREF(&HostType);
    if (PyModule_AddObject(m, "RawCall", (PyObject *)&RawCallType) < 0 ||
        PyModule_AddObject(m, "Host", (PyObject *)&HostType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
