/*
 * vino_native.h -- what vino's CPython extensions share: graft/native/fastpath.c
 * (_vino_fastpath) and kernel/native/plainread.c (_vino_plainread) each include it
 * once, first. Each extension is one translation unit, so everything here is static.
 *
 * - The headers every extension needs (PY_SSIZE_T_CLEAN before Python.h).
 * - SLOT, slot_put, as_ll: reading and writing the object slots of __slots__ classes
 *   at the byte offsets slot_offset finds, after need_type was given the class.
 * - str_keyed, mro_str_keyed: whether looking a name up in a dict, or on a class, can
 *   run a key's __eq__ (a key of the name's hash that is no str).
 * - now_ns, acquire_args, new_with_lock: the clock, the checked arguments and the
 *   allocation of threading's lock interface, for fastpath.c's Mutex (threading.Lock's
 *   twin) and plainread.c's RLock (threading.RLock's twin).
 * - module_with_types: an extension's module, its types readied and added.
 *
 * The build (graft/nativebuild.py) puts this directory on every extension's include
 * path and keys each extension's cached library on this file's bytes too, so a change
 * here rebuilds both.
 */
#ifndef VINO_NATIVE_H
#define VINO_NATIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------ slots */

/* The object slot at byte offset `off` of obj (a __slots__ member's storage). */
#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

/* Store `value` (a new reference, stolen; NULL unsets) in slot `off` of obj. */
static inline void slot_put(PyObject *obj, Py_ssize_t off, PyObject *value) {
    PyObject *old = SLOT(obj, off);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

/* *out = the value of an exact int that fits a long long: 1; else 0 (no error set). An
 * int of at most two digits is read from its digits on CPython 3.11 (whose layout is
 * known: ob_size digits of PyLong_SHIFT bits, the sign in ob_size's), a tenth of the
 * instructions of the general conversion: the reads call this a dozen times a page. */
static inline int as_ll(PyObject *o, long long *out) {
    if (o == NULL || !PyLong_CheckExact(o)) return 0;
#if !defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    const digit *d = ((PyLongObject *)o)->ob_digit;
    switch (Py_SIZE(o)) {
    case 0: *out = 0; return 1;
    case 1: *out = (long long)d[0]; return 1;
    case -1: *out = -(long long)d[0]; return 1;
    case 2: *out = (long long)d[0] | ((long long)d[1] << PyLong_SHIFT); return 1;
    case -2: *out = -((long long)d[0] | ((long long)d[1] << PyLong_SHIFT)); return 1;
    default: break;
    }
#endif
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    *out = v;
    return 1;
}

/* 1 if looking a str up in dict `d` runs no code: its keys are all exact str (CPython
 * 3.11-3.13 keep that in the keys' kind, the third byte after the keys' refcount: 0, a
 * general table, compares a key of the same hash with its __eq__). 0 for a dict with any
 * other key, for anything that is no dict, and on another version (the caller then does
 * not look). */
static inline int str_keyed(PyObject *d) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
    typedef struct { /* the head of CPython's struct _dictkeysobject (pycore_dict.h) */
        Py_ssize_t dk_refcnt;
        uint8_t dk_log2_size, dk_log2_index_bytes, dk_kind;
    } keys_head;
    return d != NULL && PyDict_Check(d)
        && ((keys_head *)((PyDictObject *)d)->ma_keys)->dk_kind != 0;
#else
    (void)d;
    return 0;
#endif
}

/* 1 if _PyType_Lookup(type, a str) runs no code: every class dict of its MRO str_keyed. */
static inline int mro_str_keyed(PyTypeObject *type) {
    PyObject *mro = type->tp_mro;
    if (mro == NULL || !PyTuple_Check(mro)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *b = PyTuple_GET_ITEM(mro, i);
        if (!PyType_Check(b) || !str_keyed(((PyTypeObject *)b)->tp_dict)) return 0;
    }
    return 1;
}

/* *out = the offset of the writable object slot `name` of `type` (a __slots__
 * member): 0; else -1 with a TypeError. */
static int slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out) {
    PyObject *d = PyObject_GetAttrString((PyObject *)type, name);
    if (d == NULL) return -1;
    int ok = Py_IS_TYPE(d, &PyMemberDescr_Type);
    if (ok) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        ok = m->type == T_OBJECT_EX && !(m->flags & READONLY);
        *out = m->offset;
    }
    Py_DECREF(d);
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a writable __slots__ member",
                     type->tp_name, name);
        return -1;
    }
    return 0;
}

/* *out = `o`, a class given to a setup function, kept for the life of the process: 0;
 * else -1 with a TypeError. */
static int need_type(PyObject *o, PyTypeObject **out) {
    if (!PyType_Check(o)) {
        PyErr_Format(PyExc_TypeError, "setup: a class expected, not %.200s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    Py_INCREF(o);
    *out = (PyTypeObject *)o;
    return 0;
}

/* ------------------------------------------------------------------ locks */

static inline long long now_ns(void) {
    struct timespec t; /* time.perf_counter_ns's clock on Linux */
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* acquire(blocking=True, timeout=-1)'s arguments (args NULL: none, as `with` gives),
 * checked as threading's locks check them: 0; else -1 with an exception. */
static int acquire_args(PyObject *args, PyObject *kw, int *blocking, double *timeout) {
    static char *names[] = {"blocking", "timeout", NULL};
    *blocking = 1;
    *timeout = -1.0;
    if (((args != NULL && PyTuple_GET_SIZE(args)) || kw != NULL)
        && !PyArg_ParseTupleAndKeywords(args, kw, "|pd:acquire", names, blocking, timeout))
        return -1;
    if (!*blocking && *timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return -1;
    }
    if (*timeout < 0 && *timeout != -1.0) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return -1;
    }
    return 0;
}

/* A new object of `type` whose PyThread lock (at byte offset `at`) is allocated; NULL
 * with MemoryError if it cannot be (its dealloc must accept a NULL lock). */
static PyObject *new_with_lock(PyTypeObject *type, size_t at) {
    PyObject *o = type->tp_alloc(type, 0);
    if (o == NULL) return NULL;
    PyThread_type_lock lock = PyThread_allocate_lock();
    if (lock == NULL) {
        Py_DECREF(o);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate a lock");
        return NULL;
    }
    *(PyThread_type_lock *)((char *)o + at) = lock;
    return o;
}

/* ------------------------------------------------------------------ the module */

/* The module of `def` with each of `types` (a NULL-ended list) readied and added
 * under its own name (tp_name after the module's); NULL with an exception. */
static PyObject *module_with_types(PyModuleDef *def, PyTypeObject *const *types) {
    for (PyTypeObject *const *t = types; *t != NULL; t++)
        if (PyType_Ready(*t) < 0) return NULL;
    PyObject *m = PyModule_Create(def);
    if (m == NULL) return NULL;
    for (PyTypeObject *const *t = types; *t != NULL; t++) {
        const char *dot = strrchr((*t)->tp_name, '.');
        if (PyModule_AddObjectRef(m, dot != NULL ? dot + 1 : (*t)->tp_name,
                                  (PyObject *)*t) < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}

#endif /* VINO_NATIVE_H */
