/* pymemflow._speedups -- the compiled fast path of the read hot loops (optional).
 *
 * Why plain C against the CPython API, not Cython or cffi: gcc and the Python headers are everything it
 * needs, so `pip install .` adds no build dependency (Cython would be one, cffi a runtime one too), and a
 * cffi call costs more per call (~150 ns of argument conversion) than the whole read this file exists to
 * make cheap. The module is optional (setup.py builds it with optional=True): every function here has a
 * pure-Python twin that stays the reference -- the compiled path only ever *serves* a read it can finish
 * exactly (whole piece inside one mapped range, translation cached and valid); anything else (a miss, a
 * failure, a wrong type, a read that needs the exact failure report) goes back to the pure-Python path,
 * which then raises or reports per piece exactly as before. PYMEMFLOW_PURE=1 turns this module off.
 *
 * MapReader: physical addresses -> offsets of one buffer (an mmap) through sorted ranges.
 * VirtReader: virtual addresses -> 4 KiB frames through VirtualMemory's TLB (the single-address dict and,
 *             for batches, the batched hash tables of arch/tlb.py), then a MapReader.
 * Big reads (PAR_MIN bytes or more, a batch or one piece) are copied by two threads: _parcopy.c.
 * walk():     the batched page walk of the TLB's misses, from the architecture's data, reading the page
 *             tables through a MapReader's buffer (arch/walk_fast.py drives it); tlb_place() puts its
 *             results into the batched TLB's tables (first_of() drops repeated keys before).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/uio.h>
#endif

#include "_parcopy.h"

#define PAGE 4096ULL
#define PMASK (PAGE - 1)
#define FRAME_MASK 0x000FFFFFFFFFF000ULL
#define HASH_MUL 0x9E3779B97F4A7C15ULL
#define PROBES 8

/* ---- u64 sequences: NumPy arrays (buffer protocol), lists/tuples of ints, or one int (a length) ---- */

typedef struct {
    Py_buffer view;
    int has_view;
    const uint64_t *p;
    uint64_t *tmp;
    Py_ssize_t n;
    int scalar; /* one value for every index */
    uint64_t value;
} U64Seq;

/* NumPy arrays are read through NumPy's public, ABI-stable object layout (PyArrayObject_fields and the
 * leading fields of PyArray_Descr, the same in NumPy 1.x and 2.x) when the object is exactly numpy.ndarray:
 * its buffer export costs more than a whole small batch. Anything else goes through the buffer protocol. */
typedef struct {
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
    int flags;
} NdArray;

typedef struct {
    PyObject_HEAD
    PyTypeObject *typeobj;
    char kind, type, byteorder;
} NdDescr;

static PyObject *ndarray_type = NULL;   /* numpy.ndarray, from configure() */
static PyObject *result_type = NULL;    /* pymemflow.mem.view.BatchResult, from configure() */

static int nd_get(PyObject *obj, U64Seq *s, int is_signed)
{
    NdArray *a = (NdArray *)obj;
    NdDescr *d = (NdDescr *)a->descr;
    if (a->nd != 1 || !(a->flags & 0x1) || !d)
        return -1;
    if (d->kind != (is_signed ? 'i' : 'u') || !(d->byteorder == '=' || d->byteorder == '<'))
        return -1;
    if (a->dimensions[0] > 0 && a->strides[0] != 8)
        return -1;
    if (!(d->type == 'L' || d->type == 'Q' || d->type == 'l' || d->type == 'q'))
        return -1;
    if (sizeof(long) != 8 && (d->type == 'L' || d->type == 'l'))
        return -1;
    s->p = (const uint64_t *)a->data;
    s->n = a->dimensions[0];
    if (is_signed)
        for (Py_ssize_t i = 0; i < s->n; i++)
            if (s->p[i] >> 63)
                return -1;
    return 0;
}

/* 0 on success; -1 when obj is not a sequence of non-negative 64-bit integers (no exception left set:
 * the caller hands the request to the pure-Python path, which reports what was wrong). */
static int seq_get(PyObject *obj, U64Seq *s, int allow_scalar, int is_signed)
{
    memset(s, 0, sizeof(*s));
    if (PyLong_Check(obj)) {
        if (!allow_scalar)
            return -1;
        s->scalar = 1;
        s->value = PyLong_AsUnsignedLongLong(obj);
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        if (is_signed && s->value >> 63)
            return -1;
        s->n = -1;
        return 0;
    }
    if (PyList_CheckExact(obj) || PyTuple_CheckExact(obj)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
        PyObject **items = PySequence_Fast_ITEMS(obj);
        s->tmp = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
        if (!s->tmp) {
            PyErr_Clear();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            if (!PyLong_CheckExact(items[i])) /* bool, IntEnum ...: the pure path decides */
                goto fail;
            uint64_t v = PyLong_AsUnsignedLongLong(items[i]);
            if (PyErr_Occurred()) {
                PyErr_Clear();
                goto fail;
            }
            if (is_signed && v >> 63)
                goto fail;
            s->tmp[i] = v;
        }
        s->p = s->tmp;
        s->n = n;
        return 0;
    fail:
        PyMem_Free(s->tmp);
        s->tmp = NULL;
        return -1;
    }
    if (ndarray_type && Py_TYPE(obj) == (PyTypeObject *)ndarray_type)
        return nd_get(obj, s, is_signed);
    if (PyObject_CheckBuffer(obj)) {
        if (PyObject_GetBuffer(obj, &s->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyErr_Clear();
            return -1;
        }
        s->has_view = 1;
        const char *f = s->view.format ? s->view.format : "B";
        if (*f == '<' || *f == '=' || *f == '@')
            f++;
        int ok = s->view.itemsize == 8 && f[1] == 0 &&
                 (is_signed ? (f[0] == 'q' || f[0] == 'l') : (f[0] == 'Q' || f[0] == 'L'));
        if (!ok) {
            PyBuffer_Release(&s->view);
            s->has_view = 0;
            return -1;
        }
        s->p = (const uint64_t *)s->view.buf;
        s->n = s->view.len / 8;
        if (is_signed)
            for (Py_ssize_t i = 0; i < s->n; i++)
                if (s->p[i] >> 63) {
                    PyBuffer_Release(&s->view);
                    s->has_view = 0;
                    return -1;
                }
        return 0;
    }
    return -1;
}

static inline uint64_t seq_at(const U64Seq *s, Py_ssize_t i) { return s->scalar ? s->value : s->p[i]; }

static void seq_release(U64Seq *s)
{
    if (s->has_view)
        PyBuffer_Release(&s->view);
    if (s->tmp)
        PyMem_Free(s->tmp);
    s->has_view = 0;
    s->tmp = NULL;
}

/* ---- scalar decoding ---- */

enum { K_U8, K_U16, K_U32, K_U64, K_I8, K_I16, K_I32, K_I64, K_F32, K_F64 };
static const int KIND_SIZE[] = {1, 2, 4, 8, 1, 2, 4, 8, 4, 8};
static const char *KIND_FMT = "BHIQbhiqfd";

static PyObject *decode(const unsigned char *p, int kind, int little)
{
    int size = KIND_SIZE[kind];
    uint64_t v = 0;
    if (little) {
        for (int i = size - 1; i >= 0; i--)
            v = (v << 8) | p[i];
    } else {
        for (int i = 0; i < size; i++)
            v = (v << 8) | p[i];
    }
    switch (kind) {
    case K_U8: case K_U16: case K_U32:
        return PyLong_FromUnsignedLong((unsigned long)v);
    case K_U64:
        return PyLong_FromUnsignedLongLong(v);
    case K_I8:
        return PyLong_FromLong((int8_t)v);
    case K_I16:
        return PyLong_FromLong((int16_t)v);
    case K_I32:
        return PyLong_FromLong((int32_t)v);
    case K_I64:
        return PyLong_FromLongLong((int64_t)v);
    case K_F32: {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        return PyFloat_FromDouble(f);
    }
    default: {
        double d;
        memcpy(&d, &v, 8);
        return PyFloat_FromDouble(d);
    }
    }
}

/* The address argument as a u64; 0 (no exception) when it is not an int in 0 .. 2**64-1. */
static int addr_arg(PyObject *o, uint64_t *out)
{
    if (!PyLong_Check(o))
        return 0;
    *out = PyLong_AsUnsignedLongLong(o);
    if (*out == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* ================================ MapReader ================================ */

typedef struct {
    PyObject_HEAD
    Py_buffer buf;
    int has_buf;
    Py_ssize_t nr;
    uint64_t *base, *len, *real;
    int little, ptr_size;
    PyObject *pure_typed; /* pure_typed(fmt, addr) -> value (the pure-Python typed read) */
    PyObject *pure_read;  /* pure_read(addr, n, zero_fill=...) -> bytes */
    PyObject *pure_batch; /* pure_batch(addrs, lengths) -> BatchResult */
    long pid;             /* > 0: "reals" are addresses in process pid, read with process_vm_readv (qemu) */
} MapReader;

static PyTypeObject MapReaderType;

/* Pointer to the n bytes at physical address a when they lie inside one range, else NULL. ``hint``: the
 * range that answered last (asked first: a batch mostly stays in one range), updated; may be NULL. */
static inline const unsigned char *map_locate_h(const MapReader *m, uint64_t a, uint64_t n, Py_ssize_t *hint)
{
    if (!m->has_buf || m->nr == 0)
        return NULL;
    Py_ssize_t i = hint ? *hint : 0;
    if (!(i < m->nr && a >= m->base[i] && a - m->base[i] < m->len[i])) {
        Py_ssize_t lo = 0, hi = m->nr; /* bisect_right(base, a) - 1 */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (a < m->base[mid])
                hi = mid;
            else
                lo = mid + 1;
        }
        i = lo - 1;
        if (i < 0)
            return NULL;
        if (hint)
            *hint = i;
    }
    uint64_t off = a - m->base[i];
    if (off > m->len[i] || n > m->len[i] - off)
        return NULL;
    uint64_t r = m->real[i] + off;
    if (r > (uint64_t)m->buf.len || n > (uint64_t)m->buf.len - r)
        return NULL;
    return (const unsigned char *)m->buf.buf + r;
}

static inline const unsigned char *map_locate(const MapReader *m, uint64_t a, uint64_t n)
{
    return map_locate_h(m, a, n, NULL);
}

/* Copy n bytes; the 8-byte piece (a pointer, a u64) as one load and one store. */
static inline void copy_piece(unsigned char *dst, const unsigned char *src, uint64_t n)
{
    if (n == 8) {
        uint64_t v;
        memcpy(&v, src, 8);
        memcpy(dst, &v, 8);
    } else {
        memcpy(dst, src, n);
    }
}

/* Another process's memory (a QEMU guest's RAM in the QEMU process): the host address of n bytes at
 * physical address a when they lie inside one range (1), else 0. */
static inline int map_host(const MapReader *m, uint64_t a, uint64_t n, uint64_t *host)
{
    Py_ssize_t lo = 0, hi = m->nr;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a < m->base[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    Py_ssize_t i = lo - 1;
    if (i < 0 || m->pid <= 0)
        return 0;
    uint64_t off = a - m->base[i];
    if (off > m->len[i] || n > m->len[i] - off)
        return 0;
    *host = m->real[i] + off;
    return 1;
}

#define PID_IOV 1024        /* IOV_MAX: pieces per process_vm_readv */
#define PID_LIMIT (16 << 20) /* bigger batches take the pure path (page-aligned buffers, IOV_MAX splits) */

/* Read n bytes at physical a of the target process into dst with one syscall; 0 when all arrived. */
static int pid_read(const MapReader *m, uint64_t a, uint64_t n, void *dst)
{
#ifdef __linux__
    uint64_t host;
    if (!map_host(m, a, n, &host))
        return -1;
    struct iovec local = {dst, (size_t)n}, remote = {(void *)(uintptr_t)host, (size_t)n};
    ssize_t got;
    if (n >= 65536) {
        Py_BEGIN_ALLOW_THREADS
        got = process_vm_readv((pid_t)m->pid, &local, 1, &remote, 1, 0);
        Py_END_ALLOW_THREADS
    } else {
        got = process_vm_readv((pid_t)m->pid, &local, 1, &remote, 1, 0);
    }
    return got == (ssize_t)n ? 0 : -1;
#else
    (void)m; (void)a; (void)n; (void)dst;
    return -1;
#endif
}

static int u64_list(PyObject *o, Py_ssize_t n, uint64_t **out)
{
    if (!PyList_Check(o) || PyList_GET_SIZE(o) != n) {
        PyErr_SetString(PyExc_TypeError, "MapReader: bases, lengths and reals must be lists of equal size");
        return -1;
    }
    *out = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(uint64_t));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        (*out)[i] = PyLong_AsUnsignedLongLong(PyList_GET_ITEM(o, i));
        if (PyErr_Occurred())
            return -1;
    }
    return 0;
}

static int MapReader_init(MapReader *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"buffer", "bases", "lengths", "reals", "little", "ptr_size", "pure_typed",
                             "pure_read", "pure_batch", "pid", NULL};
    PyObject *buffer, *bases, *lens, *reals, *pt, *pr, *pb;
    int little, ptr_size;
    long pid = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOpiOOO|l", kwlist, &buffer, &bases, &lens, &reals, &little,
                                     &ptr_size, &pt, &pr, &pb, &pid))
        return -1;
    if (self->has_buf || self->base) {
        PyErr_SetString(PyExc_RuntimeError, "MapReader is initialised once");
        return -1;
    }
    if (!PyList_Check(bases)) {
        PyErr_SetString(PyExc_TypeError, "MapReader: bases must be a list");
        return -1;
    }
    self->nr = PyList_GET_SIZE(bases);
    if (u64_list(bases, self->nr, &self->base) < 0 || u64_list(lens, self->nr, &self->len) < 0 ||
        u64_list(reals, self->nr, &self->real) < 0)
        return -1;
    if (buffer != Py_None) {
        if (PyObject_GetBuffer(buffer, &self->buf, PyBUF_SIMPLE) < 0)
            return -1;
        self->has_buf = 1;
    }
    self->little = little;
    self->ptr_size = ptr_size;
    self->pid = pid;
    Py_INCREF(pt);
    self->pure_typed = pt;
    Py_INCREF(pr);
    self->pure_read = pr;
    Py_INCREF(pb);
    self->pure_batch = pb;
    return 0;
}

static void MapReader_release_buf(MapReader *self)
{
    if (self->has_buf) {
        self->has_buf = 0;
        PyBuffer_Release(&self->buf);
    }
}

static int MapReader_traverse(MapReader *self, visitproc visit, void *arg)
{
    Py_VISIT(self->pure_typed);
    Py_VISIT(self->pure_read);
    Py_VISIT(self->pure_batch);
    if (self->has_buf)
        Py_VISIT(self->buf.obj);
    return 0;
}

static int MapReader_clear(MapReader *self)
{
    Py_CLEAR(self->pure_typed);
    Py_CLEAR(self->pure_read);
    Py_CLEAR(self->pure_batch);
    MapReader_release_buf(self);
    return 0;
}

static void MapReader_dealloc(MapReader *self)
{
    PyObject_GC_UnTrack(self);
    MapReader_clear(self);
    PyMem_Free(self->base);
    PyMem_Free(self->len);
    PyMem_Free(self->real);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *pure_typed_call(PyObject *fn, int kind, PyObject *addr)
{
    if (!fn) {
        PyErr_SetString(PyExc_RuntimeError, "reader released");
        return NULL;
    }
    PyObject *f = PyUnicode_FromStringAndSize(KIND_FMT + kind, 1);
    if (!f)
        return NULL;
    PyObject *r = PyObject_CallFunctionObjArgs(fn, f, addr, NULL);
    Py_DECREF(f);
    return r;
}

static PyObject *map_typed(MapReader *self, PyObject *addr, int kind)
{
    uint64_t a;
    if (addr_arg(addr, &a)) {
        if (self->pid > 0) {
            unsigned char tmp[8];
            if (pid_read(self, a, (uint64_t)KIND_SIZE[kind], tmp) == 0)
                return decode(tmp, kind, self->little);
        } else {
            const unsigned char *p = map_locate(self, a, (uint64_t)KIND_SIZE[kind]);
            if (p)
                return decode(p, kind, self->little);
        }
    }
    return pure_typed_call(self->pure_typed, kind, addr);
}

#define TYPED(prefix, T, name, kind) \
    static PyObject *prefix##_##name(T *self, PyObject *addr) { return prefix##_typed_(self, addr, kind); }

static inline PyObject *map_typed_(MapReader *s, PyObject *a, int k) { return map_typed(s, a, k); }
TYPED(map, MapReader, read_u8, K_U8)
TYPED(map, MapReader, read_u16, K_U16)
TYPED(map, MapReader, read_u32, K_U32)
TYPED(map, MapReader, read_u64, K_U64)
TYPED(map, MapReader, read_i8, K_I8)
TYPED(map, MapReader, read_i16, K_I16)
TYPED(map, MapReader, read_i32, K_I32)
TYPED(map, MapReader, read_i64, K_I64)
TYPED(map, MapReader, read_f32, K_F32)
TYPED(map, MapReader, read_f64, K_F64)

static PyObject *map_read_ptr(MapReader *self, PyObject *addr)
{
    return map_typed(self, addr, self->ptr_size == 8 ? K_U64 : K_U32);
}

/* read(addr, n, *, zero_fill=False) -> bytes: the pure read unless the span lies in one range. */
static PyObject *call_pure_read(PyObject *fn, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (!fn) {
        PyErr_SetString(PyExc_RuntimeError, "reader released");
        return NULL;
    }
    return PyObject_Vectorcall(fn, args, nargs, kwnames);
}

static int gather_par(MapReader *self, const U64Seq *as, const U64Seq *ns, Py_ssize_t k, unsigned char *dst,
                      uint64_t cap);

/* One big piece (par_worth) into a new bytes object, copied by two threads; NULL with no error set when it
 * is not served here. */
static PyObject *read_big(MapReader *self, uint64_t a, uint64_t n)
{
    U64Seq as = {.p = &a, .n = 1}, ns = {.scalar = 1, .value = n, .n = 1};
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b)
        return NULL;
    if (gather_par(self, &as, &ns, 1, (unsigned char *)PyBytes_AS_STRING(b), n) == 0)
        return b;
    Py_DECREF(b);
    return NULL;
}

static PyObject *map_read(MapReader *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t a, n;
    if (nargs == 2 && addr_arg(args[0], &a) && addr_arg(args[1], &n)) {
        if (!kwnames && par_worth(n) && n <= (self->pid > 0 ? PID_LIMIT : (1ULL << 28))) {
            PyObject *b = read_big(self, a, n);
            if (b || PyErr_Occurred())
                return b;
        }
        if (!kwnames && self->pid > 0 && n > 0 && n <= PID_LIMIT) {
            PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
            if (!b)
                return NULL;
            if (pid_read(self, a, n, PyBytes_AS_STRING(b)) == 0)
                return b;
            Py_DECREF(b);
        } else if (n <= (1ULL << 28)) {
            const unsigned char *p = map_locate(self, a, n);
            if (p)
                return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
        }
    }
    return call_pure_read(self->pure_read, args, nargs, kwnames);
}

/* A big read (par_worth) located piece by piece first, then copied by two threads (_parcopy.c): 0 when
 * every byte was copied, -1 when a piece is not served here (nothing promised about dst), 1 when the
 * unit list could not be allocated (the caller copies alone). The GIL is kept over an mmap's copy (a
 * close() from another thread cannot unmap it underneath) and dropped over another process's reads. */
static int gather_par(MapReader *self, const U64Seq *as, const U64Seq *ns, Py_ssize_t k, unsigned char *dst,
                      uint64_t cap)
{
    ParList l;
    if (par_list_init(&l, (size_t)k, cap) < 0)
        return 1;
    uint64_t pos = 0;
    Py_ssize_t hint = 0;
    int r = 0;
    for (Py_ssize_t i = 0; i < k && r == 0; i++) {
        uint64_t a = seq_at(as, i), n = seq_at(ns, i), src = 0;
        if (n > cap - pos) {
            r = -1;
        } else if (n) {
            if (self->pid > 0) {
                if (!map_host(self, a, n, &src))
                    r = -1;
            } else {
                const unsigned char *p = map_locate_h(self, a, n, &hint);
                src = (uintptr_t)p;
                if (!p)
                    r = -1;
            }
            if (r == 0)
                r = par_list_add(&l, dst + pos, (uintptr_t)src, n);
            pos += n;
        }
    }
    if (r == 0 && pos != cap)
        r = -1;
    if (r == 0 && self->pid > 0) {
        Py_BEGIN_ALLOW_THREADS
        r = par_copy(&l, self->pid);
        Py_END_ALLOW_THREADS
    } else if (r == 0) {
        r = par_copy(&l, 0);
    }
    par_list_free(&l);
    return r;
}

/* The pieces of another process's memory with one process_vm_readv: remote iovecs per piece, one
 * local iovec (the kernel fills it in order). 0 when every byte arrived. */
static int pid_gather_into(MapReader *self, const U64Seq *as, const U64Seq *ns, Py_ssize_t k, unsigned char *dst,
                           uint64_t cap)
{
#ifdef __linux__
    struct iovec remote[PID_IOV];
    int cnt = 0;
    uint64_t pos = 0;
    if (cap > PID_LIMIT)
        return -1;
    for (Py_ssize_t i = 0; i < k; i++) {
        uint64_t a = seq_at(as, i), n = seq_at(ns, i), host;
        if (n > cap - pos)
            return -1;
        if (n == 0)
            continue;
        if (cnt == PID_IOV || !map_host(self, a, n, &host))
            return -1;
        remote[cnt].iov_base = (void *)(uintptr_t)host;
        remote[cnt].iov_len = (size_t)n;
        cnt++;
        pos += n;
    }
    if (pos != cap)
        return -1;
    if (cnt == 0)
        return 0;
    struct iovec local = {dst, (size_t)cap};
    ssize_t got;
    if (cap >= 65536) {
        Py_BEGIN_ALLOW_THREADS
        got = process_vm_readv((pid_t)self->pid, &local, 1, remote, (unsigned long)cnt, 0);
        Py_END_ALLOW_THREADS
    } else {
        got = process_vm_readv((pid_t)self->pid, &local, 1, remote, (unsigned long)cnt, 0);
    }
    return got == (ssize_t)cap ? 0 : -1;
#else
    (void)self; (void)as; (void)ns; (void)k; (void)dst; (void)cap;
    return -1;
#endif
}

/* Copy every piece into dst (back to back); 0 when all were served, else -1 (nothing promised). */
static int map_gather_into(MapReader *self, const U64Seq *as, const U64Seq *ns, Py_ssize_t k, unsigned char *dst,
                           uint64_t cap)
{
    if (par_worth(cap) && (self->pid <= 0 || cap <= PID_LIMIT)) {
        int r = gather_par(self, as, ns, k, dst, cap);
        if (r <= 0)
            return r;
    }
    if (self->pid > 0)
        return pid_gather_into(self, as, ns, k, dst, cap);
    uint64_t pos = 0;
    Py_ssize_t i = 0, hint = 0;
    if (ns->scalar && ns->value > 0 && ns->value <= 16 && (uint64_t)k * ns->value == cap) {
        /* equal small pieces in blocks: locate all, then copy all (the copies' cache misses overlap) */
        enum { BLOCK = 128 };
        const unsigned char *src[BLOCK];
        uint64_t n = ns->value;
        while (i + BLOCK <= k) {
            for (int j = 0; j < BLOCK; j++)
                if (!(src[j] = map_locate_h(self, as->p[i + j], n, &hint)))
                    return -1;
            if (n == 8)
                for (int j = 0; j < BLOCK; j++)
                    copy_piece(dst + pos + (uint64_t)j * 8, src[j], 8);
            else
                for (int j = 0; j < BLOCK; j++)
                    memcpy(dst + pos + (uint64_t)j * n, src[j], n);
            pos += (uint64_t)BLOCK * n;
            i += BLOCK;
        }
    }
    for (; i < k; i++) {
        uint64_t a = seq_at(as, i), n = seq_at(ns, i);
        if (n > cap - pos)
            return -1;
        if (n == 0)
            continue;
        const unsigned char *p = map_locate_h(self, a, n, &hint);
        if (!p)
            return -1;
        copy_piece(dst + pos, p, n);
        pos += n;
    }
    return pos == cap ? 0 : -1;
}

static int total_of(const U64Seq *ns, Py_ssize_t k, uint64_t limit, uint64_t *total)
{
    if (ns->scalar) { /* one length for every piece: no pass over k pieces */
        if (k && ns->value > limit / (uint64_t)k)
            return -1;
        *total = (uint64_t)k * ns->value;
        return 0;
    }
    uint64_t t = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        uint64_t n = seq_at(ns, i);
        if (n > limit - t)
            return -1;
        t += n;
    }
    *total = t;
    return 0;
}

/* Shared batch front: (addrs, lengths[, out]) -> k, total. -1: not for the fast path. */
static Py_ssize_t batch_args(PyObject *addrs, PyObject *lengths, U64Seq *as, U64Seq *ns, uint64_t limit,
                             uint64_t *total)
{
    if (seq_get(addrs, as, 0, 0) < 0)
        return -1;
    if (seq_get(lengths, ns, 1, 1) < 0) {
        seq_release(as);
        return -1;
    }
    Py_ssize_t k = as->n;
    if ((!ns->scalar && ns->n != k) || total_of(ns, k, limit, total) < 0) {
        seq_release(as);
        seq_release(ns);
        return -1;
    }
    return k;
}

#define GATHER_LIMIT (1ULL << 28)

/* A BatchResult for a fully served batch, built without running its Python __init__: its __slots__ are
 * filled through the offsets of their member descriptors (what the descriptors' __set__ does), found
 * once by configure(). */
enum { S_DATA, S_OFFSETS, S_LENGTHS, S_COUNT, S_FAILURES, N_SLOTS };
static const char *SLOT_NAMES[N_SLOTS] = {"_data", "_offsets", "_lengths", "_count", "failures"};
static Py_ssize_t slot_offset[N_SLOTS];
static PyObject *empty_tuple = NULL;

static int find_slots(PyObject *type)
{
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = PyObject_GetAttrString(type, SLOT_NAMES[i]);
        if (!d)
            return -1;
        int ok = Py_TYPE(d) == &PyMemberDescr_Type && ((PyMemberDescrObject *)d)->d_member->type == T_OBJECT_EX;
        if (ok)
            slot_offset[i] = ((PyMemberDescrObject *)d)->d_member->offset;
        Py_DECREF(d);
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "BatchResult.%s is not a __slots__ member", SLOT_NAMES[i]);
            return -1;
        }
    }
    return 0;
}

static inline void set_slot(PyObject *r, int i, PyObject *v)
{
    PyObject **p = (PyObject **)((char *)r + slot_offset[i]);
    Py_INCREF(v);
    Py_XSETREF(*p, v);
}

static PyObject *make_result(PyObject *data, PyObject *lengths, Py_ssize_t k)
{
    PyTypeObject *t = (PyTypeObject *)result_type;
    PyObject *r = t->tp_new(t, empty_tuple, NULL);
    if (!r)
        return NULL;
    PyObject *cnt = PyLong_FromSsize_t(k), *fl = PyList_New(0);
    if (!cnt || !fl) {
        Py_XDECREF(cnt);
        Py_XDECREF(fl);
        Py_DECREF(r);
        return NULL;
    }
    set_slot(r, S_DATA, data);
    set_slot(r, S_OFFSETS, Py_None);
    set_slot(r, S_LENGTHS, lengths);
    set_slot(r, S_COUNT, cnt);
    set_slot(r, S_FAILURES, fl);
    Py_DECREF(cnt);
    Py_DECREF(fl);
    return r;
}

/* gather(addrs, lengths) -> bytearray of the pieces back to back, or None (use the pure path). */
static PyObject *map_gather_k(MapReader *self, PyObject *addrs, PyObject *lengths, Py_ssize_t *kp)
{
    U64Seq as, ns;
    uint64_t total;
    Py_ssize_t k = batch_args(addrs, lengths, &as, &ns, GATHER_LIMIT, &total);
    *kp = k;
    if (k < 0)
        Py_RETURN_NONE;
    PyObject *out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (out && map_gather_into(self, &as, &ns, k, (unsigned char *)PyByteArray_AS_STRING(out), total) < 0) {
        Py_DECREF(out);
        out = Py_None;
        Py_INCREF(out);
    }
    seq_release(&as);
    seq_release(&ns);
    return out;
}

static PyObject *map_gather(MapReader *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t k;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "gather(addrs, lengths)");
        return NULL;
    }
    return map_gather_k(self, args[0], args[1], &k);
}

/* read_batch(addrs, lengths) -> BatchResult: served here when every piece is, else by pure_batch. */
static PyObject *batch_result_or_pure(PyObject *raw, Py_ssize_t k, PyObject *const *args, Py_ssize_t nargs,
                                      PyObject *kwnames, PyObject *pure)
{
    if (!raw)
        return NULL;
    if (raw != Py_None && result_type) {
        PyObject *r = make_result(raw, args[1], k);
        Py_DECREF(raw);
        return r;
    }
    Py_DECREF(raw);
    if (!pure) {
        PyErr_SetString(PyExc_RuntimeError, "reader released");
        return NULL;
    }
    return PyObject_Vectorcall(pure, args, nargs, kwnames);
}

static PyObject *map_read_batch(MapReader *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t k = -1;
    PyObject *raw = NULL;
    if (nargs == 2 && !kwnames)
        raw = map_gather_k(self, args[0], args[1], &k);
    else
        raw = Py_NewRef(Py_None);
    return batch_result_or_pure(raw, k, args, nargs, kwnames, self->pure_batch);
}

/* gather_into(addrs, lengths, out) -> bool: True when every piece was copied into ``out``. */
static int writable_out(PyObject *o, Py_buffer *v)
{
    if (PyObject_GetBuffer(o, v, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static PyObject *map_gather_into_py(MapReader *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gather_into(addrs, lengths, out)");
        return NULL;
    }
    U64Seq as, ns;
    uint64_t total;
    Py_buffer v;
    if (writable_out(args[2], &v) < 0)
        Py_RETURN_FALSE;
    Py_ssize_t k = batch_args(args[0], args[1], &as, &ns, (uint64_t)v.len, &total);
    int ok = 0;
    if (k >= 0) {
        ok = total == (uint64_t)v.len && map_gather_into(self, &as, &ns, k, v.buf, total) == 0;
        seq_release(&as);
        seq_release(&ns);
    }
    PyBuffer_Release(&v);
    return PyBool_FromLong(ok);
}

static PyObject *map_release(MapReader *self, PyObject *unused)
{
    MapReader_release_buf(self);
    Py_RETURN_NONE;
}

#define TYPED_DEFS(prefix)                                                              \
    {"read_u8", (PyCFunction)prefix##_read_u8, METH_O, NULL},                           \
    {"read_u16", (PyCFunction)prefix##_read_u16, METH_O, NULL},                         \
    {"read_u32", (PyCFunction)prefix##_read_u32, METH_O, NULL},                         \
    {"read_u64", (PyCFunction)prefix##_read_u64, METH_O, NULL},                         \
    {"read_i8", (PyCFunction)prefix##_read_i8, METH_O, NULL},                           \
    {"read_i16", (PyCFunction)prefix##_read_i16, METH_O, NULL},                         \
    {"read_i32", (PyCFunction)prefix##_read_i32, METH_O, NULL},                         \
    {"read_i64", (PyCFunction)prefix##_read_i64, METH_O, NULL},                         \
    {"read_f32", (PyCFunction)prefix##_read_f32, METH_O, NULL},                         \
    {"read_f64", (PyCFunction)prefix##_read_f64, METH_O, NULL},                         \
    {"read_ptr", (PyCFunction)prefix##_read_ptr, METH_O, NULL},                         \
    {"read", (PyCFunction)(void (*)(void))prefix##_read, METH_FASTCALL | METH_KEYWORDS, NULL}

static PyMethodDef MapReader_methods[] = {
    TYPED_DEFS(map),
    {"gather", (PyCFunction)(void (*)(void))map_gather, METH_FASTCALL, NULL},
    {"read_batch", (PyCFunction)(void (*)(void))map_read_batch, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"gather_into", (PyCFunction)(void (*)(void))map_gather_into_py, METH_FASTCALL, NULL},
    {"release", (PyCFunction)map_release, METH_NOARGS, "Let go of the buffer (before the mmap closes)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MapReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pymemflow.mem._speedups.MapReader",
    .tp_basicsize = sizeof(MapReader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Compiled single reads and small gathers over one buffer through sorted ranges.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)MapReader_init,
    .tp_dealloc = (destructor)MapReader_dealloc,
    .tp_traverse = (traverseproc)MapReader_traverse,
    .tp_clear = (inquiry)MapReader_clear,
    .tp_methods = MapReader_methods,
};

/* ================================ VirtReader ================================ */

typedef struct {
    uint64_t vpn;             /* ~0: empty */
    const unsigned char *host; /* the page's first byte in the physical buffer */
} PageSlot;

enum { PC_WAYS = 2, PC_MIN = 64, PC_MAX = 1 << 17 }; /* slots of 16 bytes: 1 KiB .. 2 MiB (a batch over 55k
                                                      * pages keeps them all); sets of 2 never cross a cache line */

typedef struct {
    PyObject_HEAD
    PyObject *single;     /* dict: vpn -> (frame, page size, flags, reason) */
    MapReader *phys;
    PyObject *check;      /* None or tlb.check (volatile TLBs) */
    PyObject *pure_typed;
    PyObject *pure_read;
    PyObject *pure_batch;
    int ptr_size;
    /* The page cache: vpn -> host pointer of the whole 4 KiB page in the physical buffer, 2-way
     * set-associative. A set is the vpn's low bits plus a multiplicative hash of its high bits: neighbouring
     * pages (a kernel's direct map) take neighbouring sets, distant regions are spread (the former fold of
     * the vpn's bits put a Linux guest's 55k pages into 14k of 64k sets, and a batch over them missed the
     * cache on most pieces). 4 ways hold more pages but cost a mispredicted branch per piece: slower.
     * Filled only from valid TLB entries whose page lies inside one range, so it is a
     * function of the TLB's contents: kept between calls while the TLB's generation counter (bumped by the
     * TLB whenever it drops or changes an entry: flush, start-over, eviction) is unchanged, emptied the
     * moment it moves. Without a counter (generation=None) it lives for one call. */
    PageSlot *pc;
    uint64_t pc_cap;  /* slots allocated */
    int pc_bits;      /* sets in use: 1 << pc_bits */
    uint64_t pc_fills; /* pages cached since the cache was last emptied: single reads grow it by this */
    uint64_t pc_gen;
    Py_buffer gen_view;
    int has_gen;
} VirtReader;

static int VirtReader_init(VirtReader *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"single", "phys", "check", "ptr_size", "pure_typed", "pure_read", "pure_batch",
                             "generation", NULL};
    PyObject *single, *phys, *check, *pt, *pr, *pb, *gen = Py_None;
    int ptr_size;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O!OiOOO|O", kwlist, &PyDict_Type, &single, &MapReaderType, &phys,
                                     &check, &ptr_size, &pt, &pr, &pb, &gen))
        return -1;
    if (self->has_gen || self->pc) {
        PyErr_SetString(PyExc_RuntimeError, "VirtReader is initialised once");
        return -1;
    }
    if (gen != Py_None) { /* the TLB's counter: a writable buffer of one u64 (array('Q', [0])) */
        if (PyObject_GetBuffer(gen, &self->gen_view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            return -1;
        self->has_gen = 1;
        if (self->gen_view.len != 8) {
            PyErr_SetString(PyExc_TypeError, "VirtReader: generation must be a buffer of one u64");
            return -1;
        }
    }
    Py_INCREF(single);
    Py_XSETREF(self->single, single);
    Py_INCREF(phys);
    Py_XSETREF(self->phys, (MapReader *)phys);
    Py_INCREF(check);
    Py_XSETREF(self->check, check);
    Py_INCREF(pt);
    Py_XSETREF(self->pure_typed, pt);
    Py_INCREF(pr);
    Py_XSETREF(self->pure_read, pr);
    Py_INCREF(pb);
    Py_XSETREF(self->pure_batch, pb);
    self->ptr_size = ptr_size;
    return 0;
}

static int VirtReader_traverse(VirtReader *self, visitproc visit, void *arg)
{
    Py_VISIT(self->single);
    Py_VISIT(self->phys);
    Py_VISIT(self->check);
    Py_VISIT(self->pure_typed);
    Py_VISIT(self->pure_read);
    Py_VISIT(self->pure_batch);
    if (self->has_gen)
        Py_VISIT(self->gen_view.obj);
    return 0;
}

static int VirtReader_clear(VirtReader *self)
{
    Py_CLEAR(self->single);
    Py_CLEAR(self->phys);
    Py_CLEAR(self->check);
    Py_CLEAR(self->pure_typed);
    Py_CLEAR(self->pure_read);
    Py_CLEAR(self->pure_batch);
    return 0;
}

static void VirtReader_dealloc(VirtReader *self)
{
    PyObject_GC_UnTrack(self);
    VirtReader_clear(self);
    if (self->has_gen) {
        self->has_gen = 0;
        PyBuffer_Release(&self->gen_view);
    }
    free(self->pc);
    self->pc = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Run the TLB's expiry check (volatile policies); -1 on an exception from it. */
static int virt_check(VirtReader *self)
{
    if (self->check && self->check != Py_None) {
        PyObject *r = PyObject_CallNoArgs(self->check);
        if (!r)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* The 4 KiB frame of va from the single-address dict; 1 hit (valid), 0 miss or failed translation. */
static int dict_frame(PyObject *single, uint64_t va, uint64_t *frame)
{
    if (!single)
        return 0;
    PyObject *key = PyLong_FromUnsignedLongLong(va >> 12);
    if (!key) {
        PyErr_Clear();
        return 0;
    }
    PyObject *e = PyDict_GetItemWithError(single, key);
    Py_DECREF(key);
    if (!e) {
        PyErr_Clear();
        return 0;
    }
    if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) < 4)
        return 0;
    PyObject *reason = PyTuple_GET_ITEM(e, 3);
    if (!PyLong_Check(reason) || PyLong_AsLong(reason) != 0) {
        PyErr_Clear();
        return 0;
    }
    uint64_t f = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(e, 0));
    if (f == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *frame = f & ~PMASK;
    return 1;
}

static const unsigned char *virt_single(VirtReader *self, uint64_t a, uint64_t n);

static PyObject *virt_typed(VirtReader *self, PyObject *addr, int kind)
{
    uint64_t a;
    int size = KIND_SIZE[kind];
    if (virt_check(self) < 0)
        return NULL;
    if (addr_arg(addr, &a) && (a & PMASK) + (uint64_t)size <= PAGE) {
        const unsigned char *p = virt_single(self, a, (uint64_t)size);
        if (p)
            return decode(p, kind, self->phys->little);
    }
    return pure_typed_call(self->pure_typed, kind, addr);
}

static inline PyObject *virt_typed_(VirtReader *s, PyObject *a, int k) { return virt_typed(s, a, k); }
TYPED(virt, VirtReader, read_u8, K_U8)
TYPED(virt, VirtReader, read_u16, K_U16)
TYPED(virt, VirtReader, read_u32, K_U32)
TYPED(virt, VirtReader, read_u64, K_U64)
TYPED(virt, VirtReader, read_i8, K_I8)
TYPED(virt, VirtReader, read_i16, K_I16)
TYPED(virt, VirtReader, read_i32, K_I32)
TYPED(virt, VirtReader, read_i64, K_I64)
TYPED(virt, VirtReader, read_f32, K_F32)
TYPED(virt, VirtReader, read_f64, K_F64)

static PyObject *virt_read_ptr(VirtReader *self, PyObject *addr)
{
    return virt_typed(self, addr, self->ptr_size == 8 ? K_U64 : K_U32);
}

/* ---- the batched TLB tables (arch/tlb.py): per page size, a (capacity, 2) u64 table of (vpn + 1, packed) */

typedef struct {
    int shift;
    Py_buffer view;
    const uint64_t *rows;
    uint64_t cap; /* rows; a power of two */
    int bits;
} Table;

typedef struct {
    Table t[4];
    int n;
} Tables;

static void tables_release(Tables *ts)
{
    for (int i = 0; i < ts->n; i++)
        PyBuffer_Release(&ts->t[i].view);
    ts->n = 0;
}

/* tables: None or a list of (shift, ndarray) with the 4 KiB table first. -1: unusable (pure path). */
static int tables_get(PyObject *obj, Tables *ts)
{
    ts->n = 0;
    if (obj == Py_None)
        return 0;
    if (!PyList_Check(obj) || PyList_GET_SIZE(obj) > 4)
        return -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(obj); i++) {
        PyObject *it = PyList_GET_ITEM(obj, i);
        Table *t = &ts->t[ts->n];
        if (!PyTuple_Check(it) || PyTuple_GET_SIZE(it) != 2)
            goto fail;
        t->shift = (int)PyLong_AsLong(PyTuple_GET_ITEM(it, 0));
        if (PyErr_Occurred() || t->shift < 12 || t->shift > 40)
            goto fail;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(it, 1), &t->view, PyBUF_C_CONTIGUOUS) < 0)
            goto fail;
        t->cap = (uint64_t)t->view.len / 16;
        if (t->cap < 2 || (t->cap & (t->cap - 1))) {
            PyBuffer_Release(&t->view);
            goto fail;
        }
        t->rows = t->view.buf;
        t->bits = 0;
        while ((1ULL << t->bits) < t->cap)
            t->bits++;
        ts->n++;
    }
    return 0;
fail:
    PyErr_Clear();
    tables_release(ts);
    return -1;
}

/* The physical address of va from the tables; 1 hit (valid translation), 0 miss or failed. ``hint``: the
 * table that answered last is asked first (a kernel's direct map is mostly large pages). */
static int tables_pa(const Tables *ts, uint64_t va, uint64_t *pa, int *hint)
{
    for (int q = 0; q < ts->n; q++) {
        int i = q == 0 ? *hint : (q <= *hint ? q - 1 : q);
        const Table *t = &ts->t[i];
        uint64_t key = (va >> t->shift) + 1;
        uint64_t slot = (key * HASH_MUL) >> (64 - t->bits);
        for (int p = 0; p < PROBES; p++) {
            const uint64_t *row = t->rows + 2 * ((slot + (uint64_t)p) & (t->cap - 1));
            if (row[0] == key) {
                uint64_t v = row[1];
                if ((v >> 8) & 0xF)
                    return 0; /* a cached failure: the pure path reports it */
                uint64_t size = 1ULL << (v >> 56);
                *pa = (v & FRAME_MASK) | (va & (size - 1));
                *hint = i;
                return 1;
            }
            if (row[0] == 0)
                break;
        }
    }
    return 0;
}

/* Make the page cache ready for a call of k pieces: kept when the TLB's generation has not moved since it
 * was filled, else emptied; grown (and emptied) when a bigger batch wants more slots. -1: no memory. */
static int pc_ready(VirtReader *self, Py_ssize_t k)
{
    uint64_t want = PC_MIN;
    while (want < PC_MAX && (Py_ssize_t)want < 2 * k) /* room to spare: sets overflow long before full */
        want <<= 1;
    int keep = self->pc && self->has_gen && *(const uint64_t *)self->gen_view.buf == self->pc_gen;
    if (self->pc_cap < want) {
        void *pc = NULL;
        if (posix_memalign(&pc, 64, (size_t)want * sizeof(PageSlot)) != 0)
            return -1;
        free(self->pc);
        self->pc = pc;
        self->pc_cap = want;
        keep = 0;
    }
    if (!keep) { /* a kept cache keeps its size; a fresh one is as big as this call needs */
        uint64_t slots = self->has_gen ? self->pc_cap : want;
        self->pc_bits = 0;
        while ((uint64_t)PC_WAYS << self->pc_bits < slots)
            self->pc_bits++;
        memset(self->pc, 0xFF, (size_t)slots * sizeof(PageSlot));
        self->pc_fills = 0;
        self->pc_gen = self->has_gen ? *(const uint64_t *)self->gen_view.buf : 0;
    }
    return 0;
}

/* The PC_WAYS slots (one cache line) where vpn may be: the most recently filled first. */
static inline PageSlot *pc_set(const VirtReader *self, uint64_t vpn)
{
    int b = self->pc_bits; /* >= 1 once pc_ready has run (PC_MIN slots are 32 sets) */
    uint64_t set = (vpn + (((vpn >> b) * HASH_MUL) >> (64 - b))) & ((1ULL << b) - 1);
    return &self->pc[set * PC_WAYS];
}

static inline const unsigned char *pc_probe(const VirtReader *self, uint64_t va)
{
    const PageSlot *s = pc_set(self, va >> 12);
    uint64_t vpn = va >> 12;
    for (int w = 0; w < PC_WAYS; w++)
        if (s[w].vpn == vpn)
            return s[w].host + (va & PMASK);
    return NULL;
}

/* A page-cache miss: translate va through the TLB (batched tables, then the single-address dict) and
 * cache its page when the whole page lies in one range of the physical buffer. Returns where the n bytes
 * at va (inside one page) are, or NULL (not translated by the TLB, a cached failure, or not in the buffer:
 * the pure path decides). */
static const unsigned char *pc_fill(VirtReader *self, const Tables *ts, int *hint, Py_ssize_t *rhint, uint64_t va,
                                    uint64_t n)
{
    uint64_t pa, frame;
    if (tables_pa(ts, va, &pa, hint))
        frame = pa & ~PMASK;
    else if (!dict_frame(self->single, va, &frame))
        return NULL;
    const unsigned char *page = map_locate_h(self->phys, frame, PAGE, rhint);
    if (!page) /* a page cut by a range's end: served piece by piece, never cached */
        return map_locate_h(self->phys, frame | (va & PMASK), n, rhint);
    PageSlot *s = pc_set(self, va >> 12);
    self->pc_fills++;
    memmove(s + 1, s, (PC_WAYS - 1) * sizeof(PageSlot));
    s[0].vpn = va >> 12;
    s[0].host = page;
    return page + (va & PMASK);
}

/* Where the n bytes at va (inside one page) are in the physical buffer, or NULL. */
static inline const unsigned char *virt_locate(VirtReader *self, const Tables *ts, int *hint, Py_ssize_t *rhint,
                                               uint64_t va, uint64_t n)
{
    const unsigned char *p = pc_probe(self, va);
    return p ? p : pc_fill(self, ts, hint, rhint, va, n);
}

/* Copy the pieces' bytes (cut at 4 KiB pages) into dst; 0 when every byte was served, else -1.
 * Equal pieces of at most 16 bytes go in blocks: first every source of the block is located (a page-cache
 * probe each), then all are copied, so the copies' cache misses overlap instead of waiting behind each
 * look-up. */
static int virt_gather_into(VirtReader *self, const Tables *ts, const U64Seq *as, const U64Seq *ns, Py_ssize_t k,
                            unsigned char *dst, uint64_t cap)
{
    if (!self->phys->has_buf || pc_ready(self, k) < 0)
        return -1;
    int hint = 0;
    Py_ssize_t rhint = 0;
    uint64_t pos = 0;
    Py_ssize_t i = 0;
    if (ns->scalar && ns->value > 0 && ns->value <= 16 && (uint64_t)k * ns->value == cap) {
        enum { BLOCK = 128 };
        const unsigned char *src[BLOCK];
        uint64_t n = ns->value;
        while (i + BLOCK <= k) {
            int ok = 1;
            for (int j = 0; j < BLOCK; j++) {
                uint64_t a = as->p[i + j];
                if ((a & PMASK) + n > PAGE || !(src[j] = virt_locate(self, ts, &hint, &rhint, a, n))) {
                    ok = 0; /* a piece crossing a page (or a miss): this block goes piece by piece */
                    break;
                }
            }
            if (!ok)
                break;
            if (n == 8)
                for (int j = 0; j < BLOCK; j++)
                    copy_piece(dst + pos + (uint64_t)j * 8, src[j], 8);
            else
                for (int j = 0; j < BLOCK; j++)
                    memcpy(dst + pos + (uint64_t)j * n, src[j], n);
            pos += (uint64_t)BLOCK * n;
            i += BLOCK;
        }
    }
    for (; i < k; i++) {
        uint64_t a = seq_at(as, i), n = seq_at(ns, i);
        if (n > cap - pos)
            return -1;
        if (n && a + (n - 1) < a)
            return -1; /* runs past 2**64 */
        while (n) {
            uint64_t take = PAGE - (a & PMASK);
            if (take > n)
                take = n;
            const unsigned char *p = virt_locate(self, ts, &hint, &rhint, a, take);
            if (!p)
                return -1;
            copy_piece(dst + pos, p, take);
            pos += take;
            a += take;
            n -= take;
        }
    }
    return pos == cap ? 0 : -1;
}

/* Where the n bytes at va (inside one page) are for a single read, or NULL: the page cache when it is
 * kept between calls (a probe instead of an int object and a dict look-up), else the dict. */
static const unsigned char *virt_single(VirtReader *self, uint64_t a, uint64_t n)
{
    /* Single reads over more pages than the cache holds (it starts at PC_MIN slots unless a batch grew
     * it) would miss on most reads: once it has been filled more times than it has slots, it doubles
     * (emptied once per doubling; at most PC_MAX). */
    uint64_t in_use = self->pc ? (uint64_t)PC_WAYS << self->pc_bits : 0;
    Py_ssize_t grow = in_use && self->pc_fills > in_use && in_use < PC_MAX ? (Py_ssize_t)in_use : 0;
    if (self->has_gen && self->phys->has_buf && pc_ready(self, grow) == 0) {
        const unsigned char *p = pc_probe(self, a);
        if (p)
            return p;
        Tables none = {.n = 0};
        int hint = 0;
        Py_ssize_t rhint = 0;
        return pc_fill(self, &none, &hint, &rhint, a, n);
    }
    uint64_t frame;
    return dict_frame(self->single, a, &frame) ? map_locate(self->phys, frame | (a & PMASK), n) : NULL;
}

static PyObject *virt_gather_k(VirtReader *self, PyObject *addrs, PyObject *lengths, PyObject *tables,
                               Py_ssize_t *kp)
{
    Tables ts;
    *kp = -1;
    if (tables_get(tables, &ts) < 0)
        Py_RETURN_NONE;
    U64Seq as, ns;
    uint64_t total;
    Py_ssize_t k = batch_args(addrs, lengths, &as, &ns, GATHER_LIMIT, &total);
    *kp = k;
    if (k < 0) {
        tables_release(&ts);
        Py_RETURN_NONE;
    }
    PyObject *out = NULL;
    if (virt_check(self) == 0) {
        out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)total);
        if (out &&
            virt_gather_into(self, &ts, &as, &ns, k, (unsigned char *)PyByteArray_AS_STRING(out), total) < 0) {
            Py_DECREF(out);
            out = Py_None;
            Py_INCREF(out);
        }
    }
    seq_release(&as);
    seq_release(&ns);
    tables_release(&ts);
    return out;
}

/* gather(addrs, lengths, tables=None) -> bytearray or None. */
static PyObject *virt_gather(VirtReader *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t k;
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "gather(addrs, lengths[, tables])");
        return NULL;
    }
    return virt_gather_k(self, args[0], args[1], nargs == 3 ? args[2] : Py_None, &k);
}

static PyObject *virt_read_batch(VirtReader *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_ssize_t k = -1;
    PyObject *raw;
    if (nargs == 2 && !kwnames)
        raw = virt_gather_k(self, args[0], args[1], Py_None, &k);
    else
        raw = Py_NewRef(Py_None);
    return batch_result_or_pure(raw, k, args, nargs, kwnames, self->pure_batch);
}

/* gather_into(addrs, lengths, out, tables=None) -> bool. */
static PyObject *virt_gather_into_py(VirtReader *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 && nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "gather_into(addrs, lengths, out[, tables])");
        return NULL;
    }
    Tables ts;
    if (tables_get(nargs == 4 ? args[3] : Py_None, &ts) < 0)
        Py_RETURN_FALSE;
    Py_buffer v;
    if (writable_out(args[2], &v) < 0) {
        tables_release(&ts);
        Py_RETURN_FALSE;
    }
    U64Seq as, ns;
    uint64_t total;
    int ok = 0;
    Py_ssize_t k = batch_args(args[0], args[1], &as, &ns, (uint64_t)v.len, &total);
    if (k >= 0) {
        ok = total == (uint64_t)v.len && virt_gather_into(self, &ts, &as, &ns, k, v.buf, total) == 0;
        seq_release(&as);
        seq_release(&ns);
    }
    PyBuffer_Release(&v);
    tables_release(&ts);
    return PyBool_FromLong(ok);
}

static PyObject *virt_read(VirtReader *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    uint64_t a, n;
    if (nargs == 2 && addr_arg(args[0], &a) && addr_arg(args[1], &n) && n > 0 && (a & PMASK) + n <= PAGE) {
        if (virt_check(self) < 0)
            return NULL;
        const unsigned char *p = virt_single(self, a, n);
        if (p)
            return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    }
    return call_pure_read(self->pure_read, args, nargs, kwnames);
}

static PyMethodDef VirtReader_methods[] = {
    TYPED_DEFS(virt),
    {"gather", (PyCFunction)(void (*)(void))virt_gather, METH_FASTCALL, NULL},
    {"read_batch", (PyCFunction)(void (*)(void))virt_read_batch, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"gather_into", (PyCFunction)(void (*)(void))virt_gather_into_py, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject VirtReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pymemflow.mem._speedups.VirtReader",
    .tp_basicsize = sizeof(VirtReader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Compiled virtual reads through the TLB of a VirtualMemory onto a MapReader.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)VirtReader_init,
    .tp_dealloc = (destructor)VirtReader_dealloc,
    .tp_traverse = (traverseproc)VirtReader_traverse,
    .tp_clear = (inquiry)VirtReader_clear,
    .tp_methods = VirtReader_methods,
};

/* ---- the batched page walk (arch/walk_batch.py's walk_many, one address at a time) --------------------
 *
 * Driven by the architecture's data (arch/spec.py's Architecture, flattened by arch/walk_fast.py): levels,
 * their shifts and widths, entry size, present/leaf bits, rights rules, execute-never groups, PSE-36. Every
 * page-table entry is read from the physical buffer of a MapReader; an address whose walk needs an entry
 * C cannot read directly (outside the mapped ranges, a hole, a non-buffer reader) is flagged for the
 * NumPy walker, which then reports it exactly as before. Results are walk_many's, address for address. */

enum { W_LEVELS = 6, W_RULES = 4, W_GROUPS = 4 };
enum { WC_READ_FAILED, WC_NOT_PRESENT, WC_BAD, WC_LEAF, WC_TABLE };
static const uint8_t WC_REASON[] = {4 /* R_READ_FAILED */, 1 /* R_NOT_PRESENT */, 3 /* R_BAD_ENTRY */, 0, 0};
#define W_R_NON_CANONICAL 2
#define W_F_NX 0x04
#define W_F_LARGE 0x08
#define W_F_GLOBAL 0x20

typedef struct {
    int bit, grants, on_table, on_leaf;
} WRule;

typedef struct {
    int nr;
    WRule r[W_RULES];
} WRules;

typedef struct {
    int shift, bits, leaf_allowed, rights;
} WLevel;

typedef struct {
    int pte_size, va_bits, canonical, present_bit, leaf_bit, leaf_when, last_leaf, global_bit, pse36;
    uint64_t dtb_mask, addr_mask;
    int nlev;
    WLevel lv[W_LEVELS];
    WRules w, u;
    int ng;
    WRules g[W_GROUPS];
    /* the rules folded into masks, per [leaf]: an entry grants when (pte & set) == set and !(pte & clr);
     * kinds: 0 writable, 1 user, 2.. the nx groups */
    uint64_t set[2 + W_GROUPS][2], clr[2 + W_GROUPS][2];
} WArch;

static int w_int(PyObject *t, Py_ssize_t i, int *out)
{
    long v = PyLong_AsLong(PyTuple_GET_ITEM(t, i));
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int)v;
    return 0;
}

static int w_rules(PyObject *o, WRules *rs)
{
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) > W_RULES)
        return -1;
    rs->nr = (int)PyTuple_GET_SIZE(o);
    for (int i = 0; i < rs->nr; i++) {
        PyObject *r = PyTuple_GET_ITEM(o, i);
        WRule *x = &rs->r[i];
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 4 || w_int(r, 0, &x->bit) || w_int(r, 1, &x->grants) ||
            w_int(r, 2, &x->on_table) || w_int(r, 3, &x->on_leaf) || x->bit < 0 || x->bit > 63)
            return -1;
    }
    return 0;
}

/* (pte_size, va_bits, canonical 0 zero / 1 sign / 2 split, dtb_mask, addr_mask, present_bit, leaf_bit,
 *  leaf_when, last_level_leaf_value (-1 none), global_bit (-1 none), pse36_bits,
 *  levels ((shift, bits, leaf_allowed, rights), ...), writable rules, user rules, nx groups) */
static int w_arch(PyObject *o, WArch *a)
{
    if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 15)
        return -1;
    if (w_int(o, 0, &a->pte_size) || w_int(o, 1, &a->va_bits) || w_int(o, 2, &a->canonical) ||
        w_int(o, 5, &a->present_bit) || w_int(o, 6, &a->leaf_bit) || w_int(o, 7, &a->leaf_when) ||
        w_int(o, 8, &a->last_leaf) || w_int(o, 9, &a->global_bit) || w_int(o, 10, &a->pse36))
        return -1;
    a->dtb_mask = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(o, 3));
    a->addr_mask = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(o, 4));
    if (PyErr_Occurred())
        return -1;
    if ((a->pte_size != 4 && a->pte_size != 8) || a->va_bits < 12 || a->va_bits > 63 || a->canonical < 0 ||
        a->canonical > 2 || a->present_bit < 0 || a->present_bit > 63 || a->leaf_bit < 0 || a->leaf_bit > 63 ||
        a->global_bit > 63 || a->pse36 < 0 || a->pse36 > 31)
        return -1;
    PyObject *lv = PyTuple_GET_ITEM(o, 11), *groups = PyTuple_GET_ITEM(o, 14);
    if (!PyTuple_Check(lv) || PyTuple_GET_SIZE(lv) < 1 || PyTuple_GET_SIZE(lv) > W_LEVELS)
        return -1;
    a->nlev = (int)PyTuple_GET_SIZE(lv);
    for (int i = 0; i < a->nlev; i++) {
        PyObject *l = PyTuple_GET_ITEM(lv, i);
        WLevel *x = &a->lv[i];
        if (!PyTuple_Check(l) || PyTuple_GET_SIZE(l) != 4 || w_int(l, 0, &x->shift) || w_int(l, 1, &x->bits) ||
            w_int(l, 2, &x->leaf_allowed) || w_int(l, 3, &x->rights) || x->shift < 0 || x->bits < 1 ||
            x->shift + x->bits > 64)
            return -1;
    }
    if (w_rules(PyTuple_GET_ITEM(o, 12), &a->w) || w_rules(PyTuple_GET_ITEM(o, 13), &a->u) ||
        !PyTuple_Check(groups) || PyTuple_GET_SIZE(groups) > W_GROUPS)
        return -1;
    a->ng = (int)PyTuple_GET_SIZE(groups);
    for (int i = 0; i < a->ng; i++)
        if (w_rules(PyTuple_GET_ITEM(groups, i), &a->g[i]))
            return -1;
    for (int k = 0; k < 2 + a->ng; k++) {
        const WRules *rs = k == 0 ? &a->w : k == 1 ? &a->u : &a->g[k - 2];
        for (int leaf = 0; leaf < 2; leaf++) {
            a->set[k][leaf] = a->clr[k][leaf] = 0;
            for (int i = 0; i < rs->nr; i++) { /* which rules apply: walk_batch._rules_grant */
                const WRule *r = &rs->r[i];
                int applies = (r->on_leaf && !r->on_table) ? leaf : (r->on_table && !r->on_leaf) ? !leaf : 1;
                if (applies)
                    *(r->grants ? &a->set[k][leaf] : &a->clr[k][leaf]) |= 1ULL << r->bit;
            }
        }
    }
    return 0;
}

/* walk_batch._rules_grant for one entry: rules of kind k (see WArch.set). */
static inline unsigned w_grant(const WArch *a, int k, uint64_t pte, int leaf)
{
    return (pte & a->set[k][leaf]) == a->set[k][leaf] && !(pte & a->clr[k][leaf]);
}

static inline int w_canonical(const WArch *a, uint64_t va)
{
    if (a->canonical == 0)
        return (va >> a->va_bits) == 0;
    if (a->canonical == 1) {
        uint64_t top = va >> (a->va_bits - 1);
        return top == 0 || top == (1ULL << (65 - a->va_bits)) - 1;
    }
    uint64_t top = va >> a->va_bits;
    return top == 0 || top == (1ULL << (64 - a->va_bits)) - 1;
}

/* One address's walk state: the table reached, the rights gathered so far. */
typedef struct {
    uint64_t table;
    unsigned acc;
} WLane;

/* Start a walk: 1 when it goes on (lane set), 0 when va is settled here (non-canonical, no TTBR1). */
static inline int w_start(const WArch *a, uint64_t dtb, int has_t1, uint64_t t1, uint64_t va, WLane *l,
                          uint8_t *reason)
{
    if (!w_canonical(a, va)) {
        *reason = W_R_NON_CANONICAL;
        return 0;
    }
    l->table = dtb & a->dtb_mask;
    if (a->canonical == 2 && (va >> 63)) {
        if (!has_t1) {
            *reason = W_R_NON_CANONICAL;
            return 0;
        }
        l->table = t1 & a->dtb_mask;
    }
    l->acc = 0x03;
    return 1;
}

/* Where the entry of level li for va is in the buffer, or NULL (outside it: walk_many walks va). */
static inline const unsigned char *w_entry(const MapReader *m, const WArch *a, int li, const WLane *l, uint64_t va,
                                           Py_ssize_t *hint)
{
    const WLevel *lv = &a->lv[li];
    uint64_t ea = l->table + ((va >> lv->shift) & ((1ULL << lv->bits) - 1)) * (uint64_t)a->pte_size;
    return map_locate_h(m, ea, (uint64_t)a->pte_size, hint);
}

static inline uint64_t w_load(const MapReader *m, const WArch *a, const unsigned char *p)
{
    if (a->pte_size == 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        return m->little ? v : __builtin_bswap64(v);
    }
    uint32_t v;
    memcpy(&v, p, 4);
    return m->little ? v : __builtin_bswap32(v);
}

/* Apply the entry of level li (walk_batch._classify and the loop body of walk_many): 1 when va is settled
 * (leaf: pa, size, flags; failure: reason), 0 when the walk goes on to the next level. */
static inline int w_step(const WArch *a, int li, uint64_t pte, WLane *l, uint64_t va, uint64_t *pa, uint64_t *size,
                         uint8_t *flags, uint8_t *reason)
{
    const WLevel *lv = &a->lv[li];
    int last = a->nlev - 1;
    int present = (int)((pte >> a->present_bit) & 1), lbit = (int)((pte >> a->leaf_bit) & 1);
    int code = WC_NOT_PRESENT, leaf = 0;
    if (present) {
        if (li == last)
            code = (a->last_leaf >= 0 && lbit != a->last_leaf) ? WC_BAD : WC_LEAF;
        else if (lbit == (a->leaf_when != 0))
            code = lv->leaf_allowed ? WC_LEAF : WC_BAD;
        else
            code = WC_TABLE;
        leaf = code == WC_LEAF;
    }
    unsigned r = 0x03;
    if (lv->rights) {
        r = w_grant(a, 0, pte, leaf) | (w_grant(a, 1, pte, leaf) << 1);
        for (int gi = 0; gi < a->ng; gi++)
            r |= (w_grant(a, 2 + gi, pte, leaf) ^ 1u) << (2 + gi);
    }
    if (a->global_bit >= 0 && leaf && ((pte >> a->global_bit) & 1))
        r |= 0x80;
    l->acc = ((l->acc & (r | 0xFC)) | (r & 0x7C)) & 0xFF;
    if (code < WC_LEAF) {
        *reason = WC_REASON[code];
        return 1;
    }
    if (code == WC_TABLE) {
        l->table = pte & a->addr_mask;
        return 0;
    }
    uint64_t s = 1ULL << lv->shift;
    uint64_t base = pte & (a->addr_mask & ~(s - 1));
    if (a->pse36 && li != last)
        base |= ((pte >> 13) & ((1ULL << a->pse36) - 1)) << 32;
    unsigned nx_all = ((1u << a->ng) - 1) << 2;
    unsigned fl = (l->acc & 0x03) | ((r >> 7) ? W_F_GLOBAL : 0);
    if (a->ng && (l->acc & nx_all) == nx_all)
        fl |= W_F_NX;
    if (li != last)
        fl |= W_F_LARGE;
    *pa = base | (va & (s - 1));
    *size = s;
    *flags = (uint8_t)fl;
    return 1;
}

/* Walk up to W_LANES addresses (positions idx[0..cnt) of the batch) level by level together, so that their
 * entries' loads (cache misses, mostly at the last levels) overlap instead of each waiting behind the one
 * before. fb[i] = 1: an entry of va[i] is outside the buffer (walk_many walks it). */
enum { W_LANES = 16 };
static void w_group(const MapReader *m, const WArch *a, uint64_t dtb, int has_t1, uint64_t t1, const uint64_t *va,
                    const Py_ssize_t *idx, int cnt, Py_ssize_t *hint, uint64_t *pa, uint64_t *sz, uint8_t *fl,
                    uint8_t *rs, uint8_t *fb)
{
    WLane lane[W_LANES];
    uint64_t pte[W_LANES];
    int live[W_LANES], nlive = 0;
    for (int j = 0; j < cnt; j++) {
        Py_ssize_t i = idx[j];
        live[j] = w_start(a, dtb, has_t1, t1, va[i], &lane[j], &rs[i]);
        nlive += live[j];
    }
    for (int li = 0; li < a->nlev && nlive; li++) {
        for (int j = 0; j < cnt; j++) {
            if (!live[j])
                continue;
            const unsigned char *p = w_entry(m, a, li, &lane[j], va[idx[j]], hint);
            if (!p) {
                fb[idx[j]] = 1;
                live[j] = 0;
                nlive--;
                continue;
            }
            pte[j] = w_load(m, a, p);
        }
        for (int j = 0; j < cnt; j++) {
            Py_ssize_t i = idx[j];
            if (live[j] && w_step(a, li, pte[j], &lane[j], va[i], &pa[i], &sz[i], &fl[i], &rs[i])) {
                live[j] = 0;
                nlive--;
            }
        }
    }
}

/* Results of recently walked 4 KiB pages (direct-mapped, per call): an address on a page walked before
 * copies that walk's result (the offset in the page is the only difference) instead of walking again. */
enum { W_MEMO = 2048 };
typedef struct {
    uint64_t vpn1; /* vpn + 1; 0 = empty */
    uint64_t page; /* pa of the 4 KiB piece (0 for failures) */
    uint64_t size;
    uint8_t flags, reason, fb;
} WMemo;

static inline WMemo *w_memo(WMemo *memo, uint64_t va)
{
    uint64_t v = va >> 12;
    return &memo[(v ^ (v >> 11) ^ (v >> 22)) & (W_MEMO - 1)];
}

/* The whole batch: memo hits copied, misses walked W_LANES at a time. Returns how many were flagged. */
static Py_ssize_t w_batch(const MapReader *m, const WArch *a, uint64_t dtb, int has_t1, uint64_t t1,
                          const uint64_t *va, Py_ssize_t n, WMemo *memo, uint64_t *pa, uint64_t *sz, uint8_t *fl,
                          uint8_t *rs, uint8_t *fb)
{
    Py_ssize_t hint = 0, nfb = 0, idx[W_LANES];
    int cnt = 0;
    memset(memo, 0, W_MEMO * sizeof(WMemo));
    for (Py_ssize_t i = 0; i <= n; i++) {
        if (i < n) {
            WMemo *e = w_memo(memo, va[i]);
            pa[i] = sz[i] = 0;
            fl[i] = rs[i] = fb[i] = 0;
            if (e->vpn1 == (va[i] >> 12) + 1) {
                pa[i] = e->reason || e->fb ? 0 : e->page | (va[i] & PMASK);
                sz[i] = e->size;
                fl[i] = e->flags;
                rs[i] = e->reason;
                fb[i] = e->fb;
                nfb += e->fb;
                continue;
            }
            idx[cnt++] = i;
            if (cnt < W_LANES)
                continue;
        }
        if (!cnt)
            break;
        w_group(m, a, dtb, has_t1, t1, va, idx, cnt, &hint, pa, sz, fl, rs, fb);
        for (int j = 0; j < cnt; j++) {
            Py_ssize_t k = idx[j];
            WMemo *e = w_memo(memo, va[k]);
            e->vpn1 = (va[k] >> 12) + 1;
            e->page = pa[k] & ~PMASK;
            e->size = sz[k];
            e->flags = fl[k];
            e->reason = rs[k];
            e->fb = fb[k];
            nfb += fb[k];
        }
        cnt = 0;
    }
    return nfb;
}

static int w_out(PyObject *o, Py_buffer *v, Py_ssize_t n, Py_ssize_t itemsize, int writable)
{
    if (PyObject_GetBuffer(o, v, (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (v->len != n * itemsize) {
        PyBuffer_Release(v);
        PyErr_SetString(PyExc_ValueError, "walk: array of the wrong size");
        return -1;
    }
    return 0;
}

/* walk(reader, arch, dtb, ttbr1, vas, pa, size, flags, reason, fallback) -> number of addresses flagged in
 * ``fallback`` (u8, 1 = walk it with the NumPy walker), or -1 when the reader has no buffer or the
 * architecture is beyond this walker's limits (walk them all there). vas/pa/size: u64 arrays of n,
 * flags/reason/fallback: u8 arrays of n, all C-contiguous. */
static PyObject *walk_batch(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 10 || !PyObject_TypeCheck(args[0], &MapReaderType)) {
        PyErr_SetString(PyExc_TypeError, "walk(reader, arch, dtb, ttbr1, vas, pa, size, flags, reason, fallback)");
        return NULL;
    }
    const MapReader *m = (const MapReader *)args[0];
    WArch a;
    if (w_arch(args[1], &a) < 0) { /* an MMU this walker cannot express (more levels, rules...): NumPy's */
        PyErr_Clear();
        return PyLong_FromLong(-1);
    }
    uint64_t dtb = PyLong_AsUnsignedLongLongMask(args[2]), t1 = 0;
    int has_t1 = args[3] != Py_None;
    if (has_t1)
        t1 = PyLong_AsUnsignedLongLongMask(args[3]);
    if (PyErr_Occurred())
        return NULL;
    if (!m->has_buf || m->nr == 0)
        return PyLong_FromLong(-1);
    Py_buffer bv, bp, bs, bf, br, bb;
    if (PyObject_GetBuffer(args[4], &bv, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t n = bv.len / 8;
    if (bv.len % 8) {
        PyBuffer_Release(&bv);
        PyErr_SetString(PyExc_ValueError, "walk: vas must be u64");
        return NULL;
    }
    int got = 0;
    if (w_out(args[5], &bp, n, 8, 1) == 0 && ++got && w_out(args[6], &bs, n, 8, 1) == 0 && ++got &&
        w_out(args[7], &bf, n, 1, 1) == 0 && ++got && w_out(args[8], &br, n, 1, 1) == 0 && ++got &&
        w_out(args[9], &bb, n, 1, 1) == 0)
        ++got;
    Py_ssize_t nfb = 0;
    if (got == 5) {
        const uint64_t *va = bv.buf;
        uint64_t *pa = bp.buf, *sz = bs.buf;
        uint8_t *fl = bf.buf, *rs = br.buf, *fb = bb.buf;
        WMemo *memo = PyMem_Malloc(W_MEMO * sizeof(WMemo));
        if (!memo) {
            PyErr_NoMemory();
        } else {
            nfb = w_batch(m, &a, dtb, has_t1, t1, va, n, memo, pa, sz, fl, rs, fb);
            PyMem_Free(memo);
        }
    }
    PyBuffer_Release(&bv);
    if (got >= 1)
        PyBuffer_Release(&bp);
    if (got >= 2)
        PyBuffer_Release(&bs);
    if (got >= 3)
        PyBuffer_Release(&bf);
    if (got >= 4)
        PyBuffer_Release(&br);
    if (got >= 5)
        PyBuffer_Release(&bb);
    return got == 5 && !PyErr_Occurred() ? PyLong_FromSsize_t(nfb) : NULL;
}

/* tlb_place(table, keys, vals, left) -> (added, changed): arch/tlb.py's Tlb._place in one pass. ``table``: a
 * (capacity, 2) u64 table of (key, value) rows, capacity a power of two; each key goes where a look-up finds
 * it (its own row within PROBES rows of its hash slot, overwritten, or the first free one); keys that find
 * neither get left[i] = 1. ``added``: rows newly used; ``changed``: an existing key's value differed. */
static PyObject *tlb_place(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "tlb_place(table, keys, vals, left)");
        return NULL;
    }
    Py_buffer bt, bk, bv, bl;
    if (PyObject_GetBuffer(args[0], &bt, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    uint64_t cap = (uint64_t)bt.len / 16;
    int bits = 0;
    while ((1ULL << bits) < cap)
        bits++;
    if (cap < 2 || (cap & (cap - 1)) || bt.len % 16) {
        PyBuffer_Release(&bt);
        PyErr_SetString(PyExc_ValueError, "tlb_place: the table must have a power-of-two number of 16-byte rows");
        return NULL;
    }
    if (PyObject_GetBuffer(args[1], &bk, PyBUF_C_CONTIGUOUS) < 0) {
        PyBuffer_Release(&bt);
        return NULL;
    }
    Py_ssize_t n = bk.len / 8;
    int got = 0;
    if (w_out(args[2], &bv, n, 8, 0) == 0 && ++got && w_out(args[3], &bl, n, 1, 1) == 0)
        ++got;
    Py_ssize_t added = 0;
    int changed = 0;
    if (got == 2 && bk.len % 8 == 0) {
        uint64_t *rows = bt.buf;
        const uint64_t *keys = bk.buf, *vals = bv.buf;
        uint8_t *left = bl.buf;
        for (Py_ssize_t i = 0; i < n; i++) {
            uint64_t key = keys[i], slot = (key * HASH_MUL) >> (64 - bits);
            left[i] = 1;
            for (int p = 0; p < PROBES; p++) {
                uint64_t *row = rows + 2 * ((slot + (uint64_t)p) & (cap - 1));
                if (row[0] == key) {
                    changed |= row[1] != vals[i];
                    row[1] = vals[i];
                } else if (row[0] == 0) {
                    row[0] = key;
                    row[1] = vals[i];
                    added++;
                } else {
                    continue;
                }
                left[i] = 0;
                break;
            }
        }
    } else if (got == 2) {
        PyErr_SetString(PyExc_ValueError, "tlb_place: keys must be u64");
    }
    PyBuffer_Release(&bt);
    PyBuffer_Release(&bk);
    if (got >= 1)
        PyBuffer_Release(&bv);
    if (got >= 2)
        PyBuffer_Release(&bl);
    return PyErr_Occurred() ? NULL : Py_BuildValue("(ni)", added, changed);
}

/* first_of(keys, index) -> m: the positions of the first occurrence of each distinct u64 key, in order of
 * appearance, written to index[0:m] (an intp array as long as keys) -- np.unique(return_index=True)'s set
 * without its sort (a scratch hash set, O(n)). */
static PyObject *first_of(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "first_of(keys, index)");
        return NULL;
    }
    Py_buffer bk, bi;
    if (PyObject_GetBuffer(args[0], &bk, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    Py_ssize_t n = bk.len / 8, m = 0;
    if (bk.len % 8 || w_out(args[1], &bi, n, (Py_ssize_t)sizeof(Py_ssize_t), 1) < 0) {
        PyBuffer_Release(&bk);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "first_of: keys must be u64");
        return NULL;
    }
    uint64_t cap = 16;
    while (cap < 2 * (uint64_t)n)
        cap <<= 1;
    int bits = 0;
    while ((1ULL << bits) < cap)
        bits++;
    Py_ssize_t *seen = PyMem_Malloc((size_t)cap * sizeof(Py_ssize_t)); /* slot -> index into keys, -1 free */
    if (!seen) {
        PyBuffer_Release(&bk);
        PyBuffer_Release(&bi);
        return PyErr_NoMemory();
    }
    memset(seen, 0xFF, (size_t)cap * sizeof(Py_ssize_t));
    const uint64_t *keys = bk.buf;
    Py_ssize_t *index = bi.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t s = (keys[i] * HASH_MUL) >> (64 - bits);
        for (;; s = (s + 1) & (cap - 1)) {
            if (seen[s] < 0) {
                seen[s] = i;
                index[m++] = i;
                break;
            }
            if (keys[seen[s]] == keys[i])
                break;
        }
    }
    PyMem_Free(seen);
    PyBuffer_Release(&bk);
    PyBuffer_Release(&bi);
    return PyLong_FromSsize_t(m);
}

/* configure(ndarray_type, batch_result_type): the two Python types the fast paths use. */
static PyObject *configure(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyType_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "configure(numpy.ndarray, BatchResult)");
        return NULL;
    }
    if (!empty_tuple && !(empty_tuple = PyTuple_New(0)))
        return NULL;
    if (find_slots(args[1]) < 0)
        return NULL;
    Py_INCREF(args[0]);
    Py_XSETREF(ndarray_type, args[0]);
    Py_INCREF(args[1]);
    Py_XSETREF(result_type, args[1]);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL, NULL},
    {"walk", (PyCFunction)(void (*)(void))walk_batch, METH_FASTCALL, NULL},
    {"tlb_place", (PyCFunction)(void (*)(void))tlb_place, METH_FASTCALL, NULL},
    {"first_of", (PyCFunction)(void (*)(void))first_of, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "pymemflow.mem._speedups",
    "Compiled fast path of pymemflow's read hot loops (optional; PYMEMFLOW_PURE=1 disables it).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&MapReaderType) < 0 || PyType_Ready(&VirtReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&speedups_module);
    if (!m)
        return NULL;
    Py_INCREF(&MapReaderType);
    Py_INCREF(&VirtReaderType);
    if (PyModule_AddObject(m, "MapReader", (PyObject *)&MapReaderType) < 0 ||
        PyModule_AddObject(m, "VirtReader", (PyObject *)&VirtReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
