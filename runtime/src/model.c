/* amber_model: opens an .amber container (docs/format.md, format version 1), applies
 * every check of section 7 in its safe order, and serves zero-copy tensor views. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREAMBLE 64
#define MAX_NAME_BYTES 4096
#define FORMAT_MAX_RANK 32
#define DEFAULT_MAX_HEADER ((uint64_t)64 * 1024 * 1024)

static const uint8_t MAGIC[8] = {0x89, 'A', 'M', 'B', '\r', '\n', 0x1a, '\n'};

amber_status amber_options_init(amber_options *o) {
    if (!o) return AMBER_ERR_INVALID_ARGUMENT;
    memset(o, 0, sizeof *o);
    o->struct_size = (uint32_t)sizeof *o;
    o->max_header_bytes = DEFAULT_MAX_HEADER;
    o->memory_limit = (uint64_t)1 << 31; /* the reference interpreter's default */
    o->max_call_depth = 256;
    o->max_loop_iterations = 1000000;
    o->max_run_iterations = 100000000;
    o->max_run_calls = 1000000;
    return AMBER_OK;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t align64(uint64_t n) { return (n + 63) & ~(uint64_t)63; }

static bool all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

#define FAIL(st, ...) am_fail(&m->err, st, __VA_ARGS__)


/* Checks one tensor index entry (section 5 and 7, rules 13-17) and fills *t. */
/* A tensor entry is an object with exactly the six members of the index. */
static amber_status entry_members(amber_model *m, size_t i, const am_json *e) {
    const am_json_doc *d = &m->doc;
    static const char *const members[] = {"name", "dtype", "shape", "offset", "nbytes", "sha256"};
    if (e->type != AM_JSON_OBJECT)
        return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu must be a JSON object", i);
    for (const am_json *c = am_json_first(d, e); c; c = am_json_next(d, c)) {
        bool known = false;
        for (size_t k = 0; k < AM_ARRAY_LEN(members); k++)
            known |= c->key_len == strlen(members[k]) && !memcmp(c->key, members[k], c->key_len);
        if (!known)
            return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: unknown member \"%.64s\"", i, c->key);
    }
    for (size_t k = 0; k < AM_ARRAY_LEN(members); k++)
        if (!am_json_get(d, e, members[k]))
            return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: missing member \"%s\"", i, members[k]);
    return AMBER_OK;
}

static amber_status entry_name(amber_model *m, size_t i, const am_json *name) {
    if (name->type != AM_JSON_STRING)
        return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: name must be a string", i);
    if (name->len == 0) return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: name is empty", i);
    if (name->len > MAX_NAME_BYTES)
        return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: name is longer than %d bytes", i,
                    MAX_NAME_BYTES);
    if (memchr(name->str, 0, name->len))
        return FAIL(AMBER_ERR_FORMAT, "tensor entry %zu: name contains U+0000", i);
    return AMBER_OK;
}

/* The dtype and shape of tensor nm, into v. */
static amber_status entry_type(amber_model *m, const char *nm, const am_json *dtype,
                               const am_json *shape, amber_tensor *v) {
    int dt = -1;
    if (dtype->type == AM_JSON_STRING)
        for (int k = 0; am_dtype_valid(k); k++)
            if (!strcmp(dtype->str, amber_dtype_name((amber_dtype)k)) &&
                dtype->len == strlen(amber_dtype_name((amber_dtype)k)))
                dt = k;
    if (dt < 0) return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": unknown dtype", nm);
    if (shape->type != AM_JSON_ARRAY)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": shape must be an array", nm);
    if (shape->count > FORMAT_MAX_RANK)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": rank %u exceeds the maximum rank %d", nm,
                    (unsigned)shape->count, FORMAT_MAX_RANK);
    memset(v, 0, sizeof *v);
    v->dtype = (amber_dtype)dt;
    v->rank = (int32_t)shape->count;
    int r = 0;
    for (const am_json *c = am_json_first(&m->doc, shape); c; c = am_json_next(&m->doc, c), r++) {
        if (c->type != AM_JSON_NUMBER || !c->is_int)
            return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": dimension %d is not an integer", nm, r);
        if (c->i < 0)
            return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": dimension %d is negative", nm, r);
        v->shape[r] = c->i;
    }
    return AMBER_OK;
}

/* The byte size of v (*all), which nbytes must state. */
static amber_status entry_bytes(amber_model *m, const char *nm, const amber_tensor *v,
                                const am_json *nbytes, uint64_t *all_out) {
    /* 5.2: the product of the non-zero dims times the itemsize stays below 2^63. */
    uint64_t item = amber_dtype_size(v->dtype), acc = item, all = item;
    for (int k = 0; k < v->rank; k++) {
        uint64_t dim = (uint64_t)v->shape[k];
        if (dim == 0) {
            all = 0;
            continue;
        }
        if (acc > (uint64_t)INT64_MAX / dim)
            return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": size of the shape overflows", nm);
        acc *= dim;
        all *= dim;
    }
    if (nbytes->type != AM_JSON_NUMBER || !nbytes->is_int || nbytes->i < 0)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": nbytes must be a non-negative integer", nm);
    if ((uint64_t)nbytes->i != all)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": nbytes is %lld but its shape and dtype "
                    "needs %llu", nm, (long long)nbytes->i, (unsigned long long)all);
    if (all > m->size)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": %llu bytes cannot fit in a file of %zu "
                    "bytes", nm, (unsigned long long)all, m->size);
    *all_out = all;
    return AMBER_OK;
}

/* Where tensor i's `all` bytes lie (*off): aligned, right after the previous tensor
 * (*cursor, moved past its zero padding), inside the file; with a well-formed sha256. */
static amber_status entry_place(amber_model *m, size_t i, const char *nm, const am_json *offset,
                                const am_json *sha, uint64_t all, uint64_t *cursor,
                                uint64_t data_start, uint64_t *off_out) {
    if (offset->type != AM_JSON_NUMBER || !offset->is_int || offset->i < 0)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": offset must be a non-negative integer", nm);
    if (sha->type != AM_JSON_STRING || sha->len != 64 ||
        strspn(sha->str, "0123456789abcdef") != 64)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": sha256 must be 64 lowercase hex digits", nm);
    uint64_t off = (uint64_t)offset->i;
    if (off % 64)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": offset %llu is not a multiple of 64", nm,
                    (unsigned long long)off);
    if (off > m->size || all > m->size - off)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": data lies outside the file", nm);
    if (off < data_start)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": offset %llu overlaps the preamble or "
                    "header", nm, (unsigned long long)off);
    if (off < *cursor)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": offset %llu overlaps tensor \"%.200s\"",
                    nm, (unsigned long long)off, i ? m->tensors[i - 1].name : "");
    if (off > *cursor)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": offset %llu leaves a gap after byte %llu",
                    nm, (unsigned long long)off, (unsigned long long)*cursor);
    uint64_t end = off + align64(all);
    if (end > m->size)
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": truncated padding", nm);
    if (!all_zero(m->base + off + all, (size_t)(end - off - all)))
        return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": padding is not zero", nm);
    *cursor = end;
    *off_out = off;
    return AMBER_OK;
}

static amber_status check_entry(amber_model *m, size_t i, const am_json *e, uint64_t *cursor,
                                uint64_t data_start, model_tensor *t) {
    const am_json_doc *d = &m->doc;
    amber_status st = entry_members(m, i, e);
    if (st != AMBER_OK) return st;
    const am_json *name = am_json_get(d, e, "name"), *dtype = am_json_get(d, e, "dtype"),
                  *shape = am_json_get(d, e, "shape"), *offset = am_json_get(d, e, "offset"),
                  *nbytes = am_json_get(d, e, "nbytes"), *sha = am_json_get(d, e, "sha256");
    if ((st = entry_name(m, i, name)) != AMBER_OK) return st;
    const char *nm = name->str;
    amber_tensor *v = &t->view;
    uint64_t all = 0, off = 0;
    if ((st = entry_type(m, nm, dtype, shape, v)) != AMBER_OK ||
        (st = entry_bytes(m, nm, v, nbytes, &all)) != AMBER_OK ||
        (st = entry_place(m, i, nm, offset, sha, all, cursor, data_start, &off)) != AMBER_OK)
        return st;
    t->name = nm;
    v->data = (void *)(uintptr_t)(m->base + off);
    return AMBER_OK;
}

/* qsort has no context argument: sort (name, index) pairs instead. */
typedef struct name_ref {
    const char *name;
    size_t index;
} name_ref;
static int name_ref_cmp(const void *a, const void *b) {
    return strcmp(((const name_ref *)a)->name, ((const name_ref *)b)->name);
}

/* Identification and preamble (rules 1-9): the header length *hl, within *limit. */
static amber_status check_preamble(amber_model *m, uint64_t *hl_out, uint64_t *limit_out) {
    const uint8_t *b = m->base;
    size_t size = m->size;
    /* Identification (rules 1-4). */
    if (size < 8 || memcmp(b, MAGIC, 8) != 0) {
        if (size > 0 && size < 8 && !memcmp(b, MAGIC, size))
            return FAIL(AMBER_ERR_FORMAT, "truncated file: it ends inside the magic");
        return FAIL(AMBER_ERR_FORMAT, "not an amber file (bad magic)");
    }
    if (size < 12) return FAIL(AMBER_ERR_FORMAT, "truncated preamble (%zu bytes)", size);
    uint32_t version = rd32(b + 8);
    if (version > AMBER_FORMAT_VERSION)
        return FAIL(AMBER_ERR_VERSION, "file format version %u is newer than this runtime reads "
                    "(%d); upgrade amber", version, AMBER_FORMAT_VERSION);
    if (version == 0) return FAIL(AMBER_ERR_FORMAT, "invalid format version 0");
    m->format_version = version;
    /* Preamble (rules 5-9). */
    if (size < PREAMBLE) return FAIL(AMBER_ERR_FORMAT, "truncated preamble (%zu bytes)", size);
    uint32_t flags = rd32(b + 12);
    if (flags) return FAIL(AMBER_ERR_FORMAT, "preamble flags must be 0 (got 0x%x)", flags);
    uint64_t hl = rd64(b + 16), fl = rd64(b + 24);
    if (fl > size)
        return FAIL(AMBER_ERR_FORMAT, "truncated file: %zu bytes, the preamble says %llu", size,
                    (unsigned long long)fl);
    if (fl < size)
        return FAIL(AMBER_ERR_FORMAT, "trailing bytes: file has %zu bytes, the preamble says %llu",
                    size, (unsigned long long)fl);
    uint64_t limit = m->opts.max_header_bytes ? m->opts.max_header_bytes : DEFAULT_MAX_HEADER;
    if (hl > limit)
        return FAIL(AMBER_ERR_LIMIT, "header length %llu exceeds the limit of %llu bytes",
                    (unsigned long long)hl, (unsigned long long)limit);
    if (hl > size - PREAMBLE)
        return FAIL(AMBER_ERR_FORMAT, "header extends past the end of the file");
    *hl_out = hl;
    *limit_out = limit;
    return AMBER_OK;
}

/* Header (rules 10-12): its digest, padding, encoding and JSON, whose root holds the
 * tensor index (*index); tensor data starts at *data_start. */
static amber_status parse_header(amber_model *m, uint64_t hl, uint64_t limit,
                                 uint64_t *data_start_out, const am_json **index_out) {
    const uint8_t *b = m->base;
    uint8_t digest[32];
    am_sha256_digest(b + PREAMBLE, (size_t)hl, digest);
    if (memcmp(digest, b + 32, 32) != 0) return FAIL(AMBER_ERR_INTEGRITY, "header SHA-256 mismatch");
    uint64_t data_start = align64(PREAMBLE + hl);
    if (data_start > m->size) return FAIL(AMBER_ERR_FORMAT, "truncated header padding");
    if (!all_zero(b + PREAMBLE + hl, (size_t)(data_start - PREAMBLE - hl)))
        return FAIL(AMBER_ERR_FORMAT, "header padding is not zero");
    m->header = (const char *)b + PREAMBLE;
    m->header_len = (size_t)hl;
    if (hl >= 3 && !memcmp(m->header, "\xEF\xBB\xBF", 3))
        return FAIL(AMBER_ERR_FORMAT, "header starts with a byte order mark");
    size_t bad;
    if (!am_utf8_valid(m->header, m->header_len, &bad))
        return FAIL(AMBER_ERR_FORMAT, "header is not valid UTF-8 (byte %zu)", bad);
    am_json_limits lim = {(size_t)limit, 64, 0};
    am_error jerr;
    amber_status st = am_json_parse(m->header, m->header_len, &lim, &m->doc, &jerr);
    if (st != AMBER_OK) return FAIL(AMBER_ERR_FORMAT, "header is not valid JSON: %s", jerr.msg);
    const am_json *root = am_json_root(&m->doc);
    if (root->type != AM_JSON_OBJECT) return FAIL(AMBER_ERR_FORMAT, "header must be an object");
    const am_json *index = am_json_get(&m->doc, root, "tensors");
    if (!index) return FAIL(AMBER_ERR_FORMAT, "header has no tensor index (\"tensors\")");
    if (index->type != AM_JSON_ARRAY)
        return FAIL(AMBER_ERR_FORMAT, "the tensor index \"tensors\" must be an array");
    *data_start_out = data_start;
    *index_out = index;
    return AMBER_OK;
}

/* Index (rules 13-18): every entry, names unique (m->by_name sorted by them), tensors
 * back to back up to the end of the file. */
static amber_status read_index(amber_model *m, const am_json *index, uint64_t data_start) {
    m->n_tensors = index->count;
    m->tensors = (model_tensor *)calloc(m->n_tensors ? m->n_tensors : 1, sizeof(model_tensor));
    m->by_name = (size_t *)calloc(m->n_tensors ? m->n_tensors : 1, sizeof(size_t));
    name_ref *refs = (name_ref *)calloc(m->n_tensors ? m->n_tensors : 1, sizeof(name_ref));
    if (!m->tensors || !m->by_name || !refs) {
        free(refs);
        return FAIL(AMBER_ERR_NO_MEMORY, "out of memory reading the tensor index");
    }
    amber_status st = AMBER_OK;
    uint64_t cursor = data_start;
    size_t i = 0;
    for (const am_json *e = am_json_first(&m->doc, index); e; e = am_json_next(&m->doc, e), i++) {
        if ((st = check_entry(m, i, e, &cursor, data_start, &m->tensors[i])) != AMBER_OK) break;
        refs[i].name = m->tensors[i].name;
        refs[i].index = i;
    }
    if (st == AMBER_OK) {
        qsort(refs, m->n_tensors, sizeof *refs, name_ref_cmp);
        for (size_t k = 0; k < m->n_tensors; k++) {
            m->by_name[k] = refs[k].index;
            if (k && !strcmp(refs[k].name, refs[k - 1].name)) {
                st = FAIL(AMBER_ERR_FORMAT, "duplicate tensor name \"%.200s\"", refs[k].name);
                break;
            }
        }
    }
    free(refs);
    if (st != AMBER_OK) return st;
    if (cursor != m->size)
        return FAIL(AMBER_ERR_FORMAT, "trailing bytes after the last tensor (%llu of %zu bytes used)",
                    (unsigned long long)cursor, m->size);
    return AMBER_OK;
}

/* Data (rules 19-20): each tensor's SHA-256 (unless skipped), bool bytes 0 or 1. */
static amber_status check_data(amber_model *m, const am_json *index) {
    for (size_t k = 0; k < m->n_tensors; k++) {
        const model_tensor *t = &m->tensors[k];
        size_t nb;
        am_tensor_check(&t->view, NULL, &nb, NULL);
        const am_json *e = am_json_at(&m->doc, index, k);
        if (!(m->opts.flags & AMBER_OPEN_SKIP_TENSOR_HASHES)) {
            uint8_t digest[32];
            char hex[65];
            am_sha256_digest(t->view.data, nb, digest);
            am_sha256_hex(digest, hex);
            if (memcmp(hex, am_json_get(&m->doc, e, "sha256")->str, 64) != 0)
                return FAIL(AMBER_ERR_INTEGRITY, "tensor \"%.200s\": SHA-256 mismatch", t->name);
        }
        if (t->view.dtype == AMBER_BOOL) {
            const uint8_t *p = (const uint8_t *)t->view.data;
            for (size_t j = 0; j < nb; j++)
                if (p[j] > 1)
                    return FAIL(AMBER_ERR_FORMAT, "tensor \"%.200s\": bool data holds byte 0x%02x "
                                "at element %zu (only 00 and 01 are valid)", t->name, p[j], j);
        }
    }
    return AMBER_OK;
}

static amber_status validate(amber_model *m) {
    uint64_t hl = 0, limit = 0, data_start = 0;
    const am_json *index = NULL;
    amber_status st;
    if ((st = check_preamble(m, &hl, &limit)) != AMBER_OK ||
        (st = parse_header(m, hl, limit, &data_start, &index)) != AMBER_OK ||
        (st = read_index(m, index, data_start)) != AMBER_OK)
        return st;
    return check_data(m, index);
}

static amber_status new_model(const amber_options *opts, amber_model **out) {
    *out = NULL;
    amber_model *m = (amber_model *)calloc(1, sizeof *m);
    if (!m) return AMBER_ERR_NO_MEMORY;
    amber_options_init(&m->opts);
    if (opts) {
        size_t n = opts->struct_size < sizeof m->opts ? opts->struct_size : sizeof m->opts;
        if (n < sizeof(uint32_t)) {
            *out = m;
            m->failed = true;
            return FAIL(AMBER_ERR_INVALID_ARGUMENT, "options.struct_size is not set; call "
                        "amber_options_init first");
        }
        memcpy(&m->opts, opts, n);
        m->opts.struct_size = (uint32_t)sizeof m->opts;
    }
    *out = m;
    return AMBER_OK;
}

static amber_status lookup_tensor(const void *model, const char *name, amber_tensor *view) {
    return amber_model_find_tensor((const amber_model *)model, name, view);
}

/* A test vector's input binds symbols to its sizes. The file's length bounds them,
 * except where the input has no bytes (a [2^40, 0] input): then its sizes, each zero
 * counted as 1, times its item size, must fit in memory_limit (the Python reader checks
 * the same with its default). */
static amber_status check_vector_sizes(amber_model *m) {
    const am_program *p = &m->prog;
    uint64_t limit = m->opts.memory_limit;
    for (uint32_t i = 0; limit && i < p->n_vectors; i++) {
        const am_entry *e = &p->entries[p->vectors[i].entry];
        for (uint32_t k = 0; k < e->n_inputs; k++) {
            const amber_tensor *t = &p->vectors[i].inputs[k];
            uint64_t n = amber_dtype_size(t->dtype);
            bool over = false, empty = false;
            for (int d = 0; d < t->rank; d++) empty |= t->shape[d] == 0;
            for (int d = 0; empty && d < t->rank && !over; d++) {
                uint64_t size = t->shape[d] > 0 ? (uint64_t)t->shape[d] : 1;
                over = __builtin_mul_overflow(n, size, &n) || n > limit;
            }
            if (over)
                return FAIL(AMBER_ERR_LIMIT, "test_vectors[%u]: input \"%.100s\" binds sizes "
                            "beyond the memory limit of %llu bytes (it is empty; its sizes, "
                            "zeros counted as 1, times its item size)", i, e->inputs[k].name,
                            (unsigned long long)limit);
        }
    }
    return AMBER_OK;
}

static amber_status finish_open(amber_model *m) {
    amber_status st = validate(m);
    if (st == AMBER_OK) st = am_program_load(&m->prog, &m->doc, m, lookup_tensor,
                                                !(m->opts.flags & AMBER_OPEN_NO_FUSION), &m->err);
    if (st == AMBER_OK) st = check_vector_sizes(m);
    if (st != AMBER_OK) {
        m->failed = true;
        m->err.status = st;
    }
    return st;
}

amber_status amber_model_open_memory(const void *data, size_t size, const amber_options *opts,
                                     amber_model **out) {
    if (!out) return AMBER_ERR_INVALID_ARGUMENT;
    amber_status st = new_model(opts, out);
    if (st != AMBER_OK) return st;
    amber_model *m = *out;
    if (!data) { /* also for size 0: a NULL buffer is a caller's mistake, not a file */
        m->failed = true;
        return FAIL(AMBER_ERR_INVALID_ARGUMENT, "data is NULL");
    }
    if ((uintptr_t)data % 8) {
        m->failed = true;
        return FAIL(AMBER_ERR_INVALID_ARGUMENT, "buffer must be aligned to 8 bytes");
    }
    m->base = (const uint8_t *)data;
    m->size = size;
    return finish_open(m);
}

amber_status amber_model_open_file(const char *path, const amber_options *opts,
                                   amber_model **out) {
    if (!out) return AMBER_ERR_INVALID_ARGUMENT;
    amber_status st = new_model(opts, out);
    if (st != AMBER_OK) return st;
    amber_model *m = *out;
    m->failed = true; /* until validated */
    if (!path) return FAIL(AMBER_ERR_INVALID_ARGUMENT, "path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return FAIL(AMBER_ERR_IO, "cannot open %.300s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = FAIL(AMBER_ERR_IO, "cannot stat %.300s: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = FAIL(AMBER_ERR_IO, "%.300s is not a regular file", path);
    } else if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        st = FAIL(AMBER_ERR_LIMIT, "%.300s is too large to map", path);
    } else if (sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            st = FAIL(AMBER_ERR_IO, "cannot map %.300s: %s", path, strerror(errno));
        } else {
            m->map = p;
            m->map_size = (size_t)sb.st_size;
        }
    }
    close(fd);
    if (st != AMBER_OK) return st;
    m->base = m->map ? (const uint8_t *)m->map : (const uint8_t *)"";
    m->size = m->map_size;
    m->failed = false;
    st = finish_open(m);
    if (st != AMBER_OK) {
        /* Prefix the path so the message says which file failed. */
        char msg[AM_ERR_MSG];
        memcpy(msg, m->err.msg, sizeof msg);
        am_fail(&m->err, st, "%.200s: %s", path, msg);
    }
    return st;
}

void amber_model_close(amber_model *m) {
    if (!m) return;
    if (m->map) munmap(m->map, m->map_size);
    am_program_free(&m->prog);
    am_json_free(&m->doc);
    free(m->tensors);
    free(m->by_name);
    free(m);
}

const char *amber_model_error(const amber_model *m) { return m ? m->err.msg : "model is NULL"; }

static amber_status usable(const amber_model *m) {
    if (!m || m->failed) return AMBER_ERR_INVALID_ARGUMENT;
    return AMBER_OK;
}

amber_status amber_model_format_version(const amber_model *m, uint32_t *version) {
    if (usable(m) != AMBER_OK || !version) return AMBER_ERR_INVALID_ARGUMENT;
    *version = m->format_version;
    return AMBER_OK;
}

amber_status amber_model_header(const amber_model *m, const char **json, size_t *length) {
    if (usable(m) != AMBER_OK || !json || !length) return AMBER_ERR_INVALID_ARGUMENT;
    *json = m->header;
    *length = m->header_len;
    return AMBER_OK;
}

amber_status amber_model_tensor_count(const amber_model *m, size_t *count) {
    if (usable(m) != AMBER_OK || !count) return AMBER_ERR_INVALID_ARGUMENT;
    *count = m->n_tensors;
    return AMBER_OK;
}

amber_status amber_model_tensor(const amber_model *m, size_t index, const char **name,
                                amber_tensor *view) {
    if (usable(m) != AMBER_OK) return AMBER_ERR_INVALID_ARGUMENT;
    if (index >= m->n_tensors) return AMBER_ERR_OUT_OF_RANGE;
    if (name) *name = m->tensors[index].name;
    if (view) *view = m->tensors[index].view;
    return AMBER_OK;
}

amber_status amber_model_find_tensor(const amber_model *m, const char *name, amber_tensor *view) {
    if (usable(m) != AMBER_OK || !name) return AMBER_ERR_INVALID_ARGUMENT;
    size_t lo = 0, hi = m->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(m->tensors[m->by_name[mid]].name, name);
        if (c == 0) {
            if (view) *view = m->tensors[m->by_name[mid]].view;
            return AMBER_OK;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return AMBER_ERR_NOT_FOUND;
}

/* ---------------------------------------------------------------- entry points */

amber_status amber_model_opset_version(const amber_model *m, int64_t *version) {
    if (usable(m) != AMBER_OK || !version) return AMBER_ERR_INVALID_ARGUMENT;
    *version = m->prog.present ? m->prog.opset_version : 0;
    return AMBER_OK;
}

amber_status amber_model_entry_count(const amber_model *m, size_t *count) {
    if (usable(m) != AMBER_OK || !count) return AMBER_ERR_INVALID_ARGUMENT;
    *count = m->prog.n_entries;
    return AMBER_OK;
}

amber_status amber_model_entry_name(const amber_model *m, size_t index, const char **name) {
    if (usable(m) != AMBER_OK || !name) return AMBER_ERR_INVALID_ARGUMENT;
    if (index >= m->prog.n_entries) return AMBER_ERR_OUT_OF_RANGE;
    *name = m->prog.entries[index].name;
    return AMBER_OK;
}

const am_entry *am_model_entry(const amber_model *m, const char *name) {
    int64_t i = am_program_find_entry(&m->prog, name);
    return i < 0 ? NULL : &m->prog.entries[i];
}

amber_status amber_model_entry_arity(const amber_model *m, const char *entry, size_t *n_inputs,
                                     size_t *n_outputs) {
    if (usable(m) != AMBER_OK) return AMBER_ERR_INVALID_ARGUMENT;
    const am_entry *e = am_model_entry(m, entry);
    if (!e) return AMBER_ERR_NOT_FOUND;
    if (n_inputs) *n_inputs = e->n_inputs;
    if (n_outputs) *n_outputs = e->n_outputs;
    return AMBER_OK;
}

static amber_status port(const amber_model *m, const char *entry, size_t index, amber_port *p,
                         bool input) {
    if (usable(m) != AMBER_OK || !p) return AMBER_ERR_INVALID_ARGUMENT;
    const am_entry *e = am_model_entry(m, entry);
    if (!e) return AMBER_ERR_NOT_FOUND;
    if (index >= (input ? e->n_inputs : e->n_outputs)) return AMBER_ERR_OUT_OF_RANGE;
    const am_port_def *d = input ? &e->inputs[index] : &e->outputs[index];
    memset(p, 0, sizeof *p);
    p->name = d->name;
    p->dtype = d->type.dtype;
    p->rank = d->type.rank;
    for (int i = 0; i < d->type.rank; i++) {
        const am_json *dim = d->type.dims[i];
        p->shape[i] = dim->type == AM_JSON_NUMBER ? dim->i : -1;
        p->dims[i] = dim->type == AM_JSON_STRING ? dim->str : NULL;
    }
    return AMBER_OK;
}

amber_status amber_model_entry_input(const amber_model *m, const char *entry, size_t index,
                                     amber_port *p) {
    return port(m, entry, index, p, true);
}

amber_status amber_model_entry_output(const amber_model *m, const char *entry, size_t index,
                                      amber_port *p) {
    return port(m, entry, index, p, false);
}
