#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NPY_MAX_HEADER (1u << 20)
#define NPY_MAX_FILE ((size_t)1 << 40)

typedef struct hdr {
    const char *s;
    size_t n, pos;
} hdr;

static void hws(hdr *h) {
    while (h->pos < h->n && (h->s[h->pos] == ' ' || h->s[h->pos] == '\n' || h->s[h->pos] == '\t'))
        h->pos++;
}

static bool hlit(hdr *h, const char *lit) {
    size_t l = strlen(lit);
    if (h->n - h->pos < l || memcmp(h->s + h->pos, lit, l) != 0) return false;
    h->pos += l;
    return true;
}

/* A Python string literal without escapes: '...' or "...". */
static bool hstr(hdr *h, const char **s, size_t *len) {
    if (h->pos >= h->n) return false;
    char q = h->s[h->pos];
    if (q != '\'' && q != '"') return false;
    size_t b = ++h->pos;
    while (h->pos < h->n && h->s[h->pos] != q) {
        if (h->s[h->pos] == '\\') return false;
        h->pos++;
    }
    if (h->pos >= h->n) return false;
    *s = h->s + b;
    *len = h->pos - b;
    h->pos++;
    return true;
}

static bool htuple(hdr *h, int64_t *shape, int *rank) {
    if (!hlit(h, "(")) return false;
    *rank = 0;
    hws(h);
    if (hlit(h, ")")) return true;
    for (;;) {
        hws(h);
        int64_t v = 0;
        size_t b = h->pos;
        while (h->pos < h->n && h->s[h->pos] >= '0' && h->s[h->pos] <= '9') {
            if (!am_mul_i64(v, 10, &v) || !am_add_i64(v, h->s[h->pos] - '0', &v)) return false;
            h->pos++;
        }
        if (h->pos == b || *rank >= AMBER_MAX_RANK) return false;
        if (h->pos < h->n && h->s[h->pos] == 'L') h->pos++; /* Python 2 writers */
        shape[(*rank)++] = v;
        hws(h);
        if (hlit(h, ")")) return *rank > 1 ? true : false; /* (3) is not a tuple */
        if (!hlit(h, ",")) return false;
        hws(h);
        if (hlit(h, ")")) return true;
    }
}

amber_status am_npy_parse(const void *buf, size_t n, amber_tensor *t, am_error *err) {
    const unsigned char *b = (const unsigned char *)buf;
    memset(t, 0, sizeof *t);
    if (n < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return am_fail(err, AMBER_ERR_FORMAT, "not an .npy file (bad magic)");
    unsigned major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (n < 12) return am_fail(err, AMBER_ERR_FORMAT, ".npy file truncated in its preamble");
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return am_fail(err, AMBER_ERR_VERSION, ".npy format version %u.%u is not supported",
                       major, (unsigned)b[7]);
    }
    if (hl > NPY_MAX_HEADER || hl > n - off)
        return am_fail(err, AMBER_ERR_FORMAT, ".npy header length %zu exceeds the file", hl);
    hdr H = {(const char *)b + off, hl, 0}, *h = &H;
    const char *descr = NULL;
    size_t dlen = 0;
    int fortran = -1, rank = -1;
    int64_t shape[AMBER_MAX_RANK];
    hws(h);
    if (!hlit(h, "{")) return am_fail(err, AMBER_ERR_FORMAT, ".npy header is not a dict");
    for (;;) {
        hws(h);
        if (hlit(h, "}")) break;
        const char *k;
        size_t kl;
        if (!hstr(h, &k, &kl)) return am_fail(err, AMBER_ERR_FORMAT, ".npy header: bad key");
        hws(h);
        if (!hlit(h, ":")) return am_fail(err, AMBER_ERR_FORMAT, ".npy header: expected ':'");
        hws(h);
        if (kl == 5 && !memcmp(k, "descr", 5) && !descr) {
            if (!hstr(h, &descr, &dlen))
                return am_fail(err, AMBER_ERR_FORMAT, ".npy header: bad descr");
        } else if (kl == 13 && !memcmp(k, "fortran_order", 13) && fortran < 0) {
            if (hlit(h, "False")) fortran = 0;
            else if (hlit(h, "True")) fortran = 1;
            else return am_fail(err, AMBER_ERR_FORMAT, ".npy header: bad fortran_order");
        } else if (kl == 5 && !memcmp(k, "shape", 5) && rank < 0) {
            if (!htuple(h, shape, &rank))
                return am_fail(err, AMBER_ERR_FORMAT,
                               ".npy header: bad shape (at most %d dims)", AMBER_MAX_RANK);
        } else {
            return am_fail(err, AMBER_ERR_FORMAT, ".npy header: unexpected or repeated key '%.*s'",
                           (int)(kl > 40 ? 40 : kl), k);
        }
        hws(h);
        if (hlit(h, ",")) continue;
        hws(h);
        if (hlit(h, "}")) break;
        return am_fail(err, AMBER_ERR_FORMAT, ".npy header: expected ',' or '}'");
    }
    if (!descr || fortran < 0 || rank < 0)
        return am_fail(err, AMBER_ERR_FORMAT, ".npy header lacks descr, fortran_order or shape");
    static const struct { const char *d; amber_dtype t; } kinds[] = {
        {"<f4", AMBER_FLOAT32}, {"<f8", AMBER_FLOAT64}, {"<i4", AMBER_INT32},
        {"<i8", AMBER_INT64},   {"|b1", AMBER_BOOL},    {"<b1", AMBER_BOOL},
        {"<f2", AMBER_FLOAT16}, {"|i1", AMBER_INT8},    {"|u1", AMBER_UINT8},
        {"<i2", AMBER_INT16},
        /* .npy has no bfloat16: NumPy with ml_dtypes writes it as a 2-byte void */
        {"<V2", AMBER_BFLOAT16}, {"|V2", AMBER_BFLOAT16}};
    int dt = -1;
    for (size_t i = 0; i < AM_ARRAY_LEN(kinds); i++)
        if (strlen(kinds[i].d) == dlen && !memcmp(kinds[i].d, descr, dlen)) dt = (int)kinds[i].t;
    if (dt < 0)
        return am_fail(err, AMBER_ERR_DTYPE,
                       ".npy dtype '%.*s' is not supported (amber reads <f4 <f8 <i4 <i8 |b1 "
                       "<f2 <V2 (bfloat16) |i1 |u1 <i2)",
                       (int)(dlen > 20 ? 20 : dlen), descr);
    if (fortran)
        return am_fail(err, AMBER_ERR_FORMAT, ".npy array is in Fortran order; save it C-contiguous");
    t->dtype = (amber_dtype)dt;
    t->rank = rank;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)rank);
    size_t nbytes;
    amber_status st = am_tensor_check(t, NULL, &nbytes, err);
    if (st != AMBER_OK) return st;
    off += hl;
    if (nbytes != n - off)
        return am_fail(err, AMBER_ERR_FORMAT, ".npy data is %zu bytes, the header implies %zu",
                       n - off, nbytes);
    t->data = (void *)(b + off);
    return AMBER_OK;
}

amber_status am_npy_read_file(const char *path, amber_tensor *t, void **owned, am_error *err) {
    *owned = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return am_fail(err, AMBER_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    amber_status st = AMBER_OK;
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = am_fail(err, AMBER_ERR_IO, "cannot determine the size of %s", path);
    } else if ((unsigned long)size > NPY_MAX_FILE) {
        st = am_fail(err, AMBER_ERR_LIMIT, "%s is too large (%ld bytes)", path, size);
    } else if (!(buf = (unsigned char *)malloc((size_t)size ? (size_t)size : 1))) {
        st = am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory reading %s", path);
    } else if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        st = am_fail(err, AMBER_ERR_IO, "cannot read %s", path);
    }
    fclose(f);
    if (st == AMBER_OK) st = am_npy_parse(buf, (size_t)size, t, err);
    if (st == AMBER_OK) {
        /* Move the data to its own malloc block so it is aligned for any dtype. */
        size_t nbytes = (size_t)((unsigned char *)buf + size - (unsigned char *)t->data);
        void *data = malloc(nbytes ? nbytes : 1);
        if (!data) {
            st = am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory reading %s", path);
        } else {
            if (nbytes) memcpy(data, t->data, nbytes);
            t->data = data;
            *owned = data;
        }
    }
    free(buf);
    return st;
}

amber_status am_npy_write_file(const char *path, const amber_tensor *t, am_error *err) {
    size_t nbytes;
    amber_status st = am_tensor_check(t, NULL, &nbytes, err);
    if (st != AMBER_OK) return st;
    static const char *const descr[] = {"<f4", "<f8", "<i4", "<i8", "|b1",
                                        "<f2", "<V2", "|i1", "|u1", "<i2"};
    char h[64 + 24 * AMBER_MAX_RANK];
    int w = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     descr[t->dtype]);
    for (int i = 0; i < t->rank; i++)
        w += snprintf(h + w, sizeof h - (size_t)w, "%lld,%s", (long long)t->shape[i],
                      i + 1 < t->rank ? " " : "");
    w += snprintf(h + w, sizeof h - (size_t)w, "), }");
    size_t total = 10 + (size_t)w + 1, pad = (64 - total % 64) % 64;
    size_t hl = (size_t)w + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xFF),
                             (unsigned char)(hl >> 8)};
    /* A temporary file in the destination's directory, renamed over the destination
     * once complete: a reader never sees a partial file, and a file that is open (or
     * mapped) keeps its old contents. */
    size_t plen = strlen(path);
    char *tmp = (char *)malloc(plen + 16);
    if (!tmp) return am_fail(err, AMBER_ERR_NO_MEMORY, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd >= 0) fchmod(fd, 0644); /* mkstemp's 0600 is for the temporary only */
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        st = am_fail(err, AMBER_ERR_IO, "cannot create %.300s: %s", path, strerror(errno));
        if (fd >= 0) close(fd), unlink(tmp);
        free(tmp);
        return st;
    }
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, (size_t)w, f) == (size_t)w;
    for (size_t i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF;
    if (ok && nbytes) ok = fwrite(t->data, 1, nbytes, f) == nbytes;
    if (fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) {
        st = am_fail(err, AMBER_ERR_IO, "cannot write %.300s: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return st;
    }
    if (!ok) unlink(tmp);
    free(tmp);
    return ok ? AMBER_OK : am_fail(err, AMBER_ERR_IO, "cannot write %.300s", path);
}
