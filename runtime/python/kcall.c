/* amber._kcall: the Python package's fast path into libamber's single-kernel API (not
 * part of libamber, which stays free of Python). Eager ops call small kernels thousands
 * of times a second; building tensor descriptors with ctypes costs several microseconds a
 * call, reading buffers here costs a fraction of one.
 *
 *   set_entry(address)   the address of amber_kernel_run_strided in the loaded libamber
 *   run(ctx, kernel, x0, ..., out) -> status
 *
 * ctx and kernel are addresses (ints); x0... and out are objects with the buffer protocol
 * (NumPy arrays). Non-contiguous inputs are passed by element strides (libamber accepts
 * them where its kernel can use them, else AMBER_ERR_INVALID_ARGUMENT). Returns -1 for a
 * buffer libamber cannot describe (a dtype it lacks, a negative or uneven stride, a
 * read-only output): the caller then takes its general path. The GIL is released while
 * the kernel runs, unless its operands are tiny (then releasing costs more than the
 * kernel). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "amber.h"

typedef amber_status (*run_fn)(amber_kernel_context *, const amber_kernel *,
                               const amber_tensor *, const int64_t *const *, size_t,
                               amber_tensor *);

#define MAX_IN 4
/* kernels on fewer bytes (inputs and output) run without releasing the GIL */
#define SMALL_BYTES 4096

static run_fn entry = NULL;

static PyObject *set_entry(PyObject *self, PyObject *arg) {
    (void)self;
    void *p = PyLong_AsVoidPtr(arg);
    if (!p && PyErr_Occurred()) return NULL;
    entry = (run_fn)(uintptr_t)p;
    Py_RETURN_NONE;
}

static int dtype_of(const Py_buffer *v) {
    const char *f = v->format ? v->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') f++;
    if (f[0] == '\0' || f[1] != '\0') return -1;
    switch (f[0]) {
    case 'f': return v->itemsize == 4 ? AMBER_FLOAT32 : -1;
    case 'd': return v->itemsize == 8 ? AMBER_FLOAT64 : -1;
    case 'i': case 'l': case 'q':
        return v->itemsize == 4 ? AMBER_INT32 : v->itemsize == 8 ? AMBER_INT64 : -1;
    case '?': return v->itemsize == 1 ? AMBER_BOOL : -1;
    case 'e': return v->itemsize == 2 ? AMBER_FLOAT16 : -1;
    case 'b': return v->itemsize == 1 ? AMBER_INT8 : -1;
    case 'B': return v->itemsize == 1 ? AMBER_UINT8 : -1;
    case 'h': return v->itemsize == 2 ? AMBER_INT16 : -1;
    default: return -1;
    }
}

/* Fills t (and st, when not C-contiguous) from v; false if libamber cannot take it. */
static int describe(const Py_buffer *v, amber_tensor *t, int64_t *st, const int64_t **stp) {
    int dt = dtype_of(v);
    if (dt < 0 || v->ndim > AMBER_MAX_RANK) return 0;
    t->dtype = (amber_dtype)dt;
    t->rank = v->ndim;
    t->data = v->buf;
    *stp = NULL;
    int64_t want = v->itemsize;
    int contiguous = 1, empty = 0;
    for (int d = v->ndim - 1; d >= 0; d--) {
        t->shape[d] = v->shape[d];
        empty |= v->shape[d] == 0;
        if (v->shape[d] != 1 && v->strides[d] != want) contiguous = 0;
        want *= v->shape[d];
    }
    if (contiguous || empty) return 1;
    for (int d = 0; d < v->ndim; d++) {
        if (v->strides[d] < 0 || v->strides[d] % v->itemsize) return 0;
        st[d] = v->strides[d] / v->itemsize;
    }
    *stp = st;
    return 1;
}

static PyObject *run(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs < 3 || nargs - 3 > MAX_IN) {
        PyErr_SetString(PyExc_TypeError, "run(ctx, kernel, *inputs, out)");
        return NULL;
    }
    if (!entry) {
        PyErr_SetString(PyExc_RuntimeError, "set_entry was not called");
        return NULL;
    }
    void *ctx = PyLong_AsVoidPtr(args[0]);
    void *kernel = PyLong_AsVoidPtr(args[1]);
    if (PyErr_Occurred()) return NULL;
    int n = (int)nargs - 3, got = 0, ok = 1;
    Py_buffer views[MAX_IN + 1];
    amber_tensor ts[MAX_IN + 1];
    int64_t st[MAX_IN + 1][AMBER_MAX_RANK];
    const int64_t *stp[MAX_IN + 1];
    for (int i = 0; i <= n && ok; i++) {
        int flags = PyBUF_STRIDES | PyBUF_FORMAT | (i == n ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(args[2 + i], &views[i], flags) != 0) {
            PyErr_Clear();
            ok = 0;
            break;
        }
        got++;
        ok = describe(&views[i], &ts[i], st[i], &stp[i]);
    }
    if (ok && stp[n]) ok = 0; /* the output must be C-contiguous */
    long status = -1;
    if (ok) {
        int strided = 0;
        for (int i = 0; i < n; i++) strided |= stp[i] != NULL;
        const int64_t *const *sp = strided ? stp : NULL;
        Py_ssize_t bytes = 0;
        for (int i = 0; i <= n; i++) bytes += views[i].len;
        if (bytes < SMALL_BYTES) { /* releasing the GIL costs more than the kernel */
            status = entry((amber_kernel_context *)ctx, (const amber_kernel *)kernel, ts, sp,
                           (size_t)n, &ts[n]);
        } else {
            Py_BEGIN_ALLOW_THREADS
            status = entry((amber_kernel_context *)ctx, (const amber_kernel *)kernel, ts, sp,
                           (size_t)n, &ts[n]);
            Py_END_ALLOW_THREADS
        }
    }
    for (int i = 0; i < got; i++) PyBuffer_Release(&views[i]);
    return PyLong_FromLong(status);
}

static PyMethodDef methods[] = {
    {"set_entry", set_entry, METH_O, "Set the address of amber_kernel_run_strided."},
    {"run", (PyCFunction)(void (*)(void))run, METH_FASTCALL,
     "run(ctx, kernel, *inputs, out) -> amber_status (-1: buffers libamber cannot take)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_kcall",
                                    "Fast calls of libamber's single kernels.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__kcall(void);
PyMODINIT_FUNC PyInit__kcall(void) { return PyModule_Create(&module); }
