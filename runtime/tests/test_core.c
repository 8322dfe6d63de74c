/* Unit tests of the runtime's internals: SHA-256, the JSON parser, the arena, .npy I/O,
 * the strided iterator and the public helpers. Run by ctest (and under sanitizers). */
#include "attn.h"
#include "json.h"
#include "npy.h"
#include "ops.h"
#include "plan_cell.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures = 0;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                         \
        }                                                                       \
    } while (0)

static void sha_hex(const void *data, size_t n, char out[65]) {
    uint8_t d[32];
    am_sha256_digest(data, n, d);
    am_sha256_hex(d, out);
}

static void test_sha256(void) {
    char hex[65];
    sha_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    sha_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha_hex(two, strlen(two), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    /* One million 'a', fed in uneven pieces. */
    char *a = (char *)malloc(1000000);
    memset(a, 'a', 1000000);
    am_sha256 s;
    am_sha256_init(&s);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t n = step < 1000000 - off ? step : 1000000 - off;
        am_sha256_update(&s, a + off, n);
        off += n;
        step = step * 3 + 1;
    }
    uint8_t d[32];
    am_sha256_final(&s, d);
    am_sha256_hex(d, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    free(a);
}

static amber_status parse(const char *text, am_json_doc *doc, am_error *err) {
    am_json_limits lim = {1 << 20, 64, 0};
    return am_json_parse(text, strlen(text), &lim, doc, err);
}

static void test_json(void) {
    am_error err;
    am_json_doc doc;
    CHECK(parse("{\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {}}",
                &doc, &err) == AMBER_OK);
    const am_json *root = am_json_root(&doc);
    const am_json *arr = am_json_get(&doc, root, "a");
    CHECK(arr && arr->type == AM_JSON_ARRAY && arr->count == 6);
    CHECK(am_json_at(&doc, arr, 0)->is_int && am_json_at(&doc, arr, 0)->i == 1);
    CHECK(!am_json_at(&doc, arr, 1)->is_int && am_json_at(&doc, arr, 1)->num == -2500.0);
    CHECK(am_json_at(&doc, arr, 2)->type == AM_JSON_TRUE);
    const am_json *str = am_json_at(&doc, arr, 5);
    CHECK(str->len == 7 && !memcmp(str->str, "x\xc3\xa9\xf0\x9f\x98\x80", 7));
    CHECK(am_json_get(&doc, root, "b")->type == AM_JSON_OBJECT);
    CHECK(!am_json_get(&doc, root, "c"));
    am_json_free(&doc);

    CHECK(parse("-9223372036854775808", &doc, &err) == AMBER_OK && doc.nodes[0].is_int &&
          doc.nodes[0].i == INT64_MIN);
    am_json_free(&doc);
    CHECK(parse("9223372036854775807", &doc, &err) == AMBER_OK && doc.nodes[0].i == INT64_MAX);
    am_json_free(&doc);
    CHECK(parse("  [ ]  ", &doc, &err) == AMBER_OK && doc.nodes[0].count == 0);
    am_json_free(&doc);

    static const char *bad[] = {
        "", " ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "[01]", "[1.]", "[.5]", "[1e]",
        "[NaN]", "[Infinity]", "[-Infinity]", "[1e400]", "[9223372036854775808]",
        "[-9223372036854775809]", "{\"a\":1,\"a\":2}", "{\"b\":{\"a\":1,\"a\":1}}",
        "[\"\\ud800\"]", "[\"\\udc00\"]", "[\"\\ud800\\u0041\"]", "[\"\x01\"]", "[\"\\x\"]",
        "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[tru]", "[nul]",
        "{} {}", "[1] x", "// c\n[]", "[1 2]", "{1:2}", "\xef\xbb\xbf{}"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++) {
        amber_status st = parse(bad[i], &doc, &err);
        if (st == AMBER_OK) fprintf(stderr, "accepted bad JSON #%zu: %s\n", i, bad[i]);
        CHECK(st != AMBER_OK);
        am_json_free(&doc);
    }
    /* Depth limit: 64 nested arrays pass, 65 fail; 100000 fail without recursion. */
    char deep[100001];
    memset(deep, '[', 64);
    memset(deep + 64, ']', 64);
    deep[128] = '\0';
    CHECK(parse(deep, &doc, &err) == AMBER_OK);
    am_json_free(&doc);
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    deep[130] = '\0';
    CHECK(parse(deep, &doc, &err) == AMBER_ERR_LIMIT);
    am_json_free(&doc);
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    CHECK(parse(deep, &doc, &err) == AMBER_ERR_LIMIT);
    am_json_free(&doc);
    /* Size and node limits. */
    am_json_limits small = {4, 64, 0};
    CHECK(am_json_parse("[1,2]", 5, &small, &doc, &err) == AMBER_ERR_LIMIT);
    am_json_free(&doc);
    am_json_limits few = {0, 64, 3};
    CHECK(am_json_parse("[1,2,3]", 7, &few, &doc, &err) == AMBER_ERR_LIMIT);
    am_json_free(&doc);
    /* Many duplicate-free keys are checked in n log n. */
    size_t cap = 20 * 50000 + 16, o = 0;
    char *big = (char *)malloc(cap);
    big[o++] = '{';
    for (int i = 0; i < 50000; i++) o += (size_t)snprintf(big + o, cap - o, "%s\"k%d\":%d", i ? "," : "", i, i);
    big[o++] = '}';
    am_json_limits lim = {0, 64, 0};
    CHECK(am_json_parse(big, o, &lim, &doc, &err) == AMBER_OK && doc.nodes[0].count == 50000);
    am_json_free(&doc);
    free(big);
    CHECK(am_utf8_valid("h\xc3\xa9", 3, NULL));
    size_t at = 0;
    CHECK(!am_utf8_valid("ab\xff", 3, &at) && at == 2);
}

static void test_arena(void) {
    am_arena a;
    am_error err;
    am_arena_init(&a, 0);
    void *p, *q;
    CHECK(am_arena_alloc(&a, 10, &p, &err) == AMBER_OK && (uintptr_t)p % 64 == 0);
    CHECK(am_arena_alloc(&a, 0, &q, &err) == AMBER_OK && q != p);
    CHECK(am_arena_alloc(&a, 1 << 20, &q, &err) == AMBER_OK && (uintptr_t)q % 64 == 0);
    memset(q, 1, 1 << 20);
    am_arena_mark m = am_arena_get_mark(&a);
    CHECK(am_arena_alloc(&a, 3 << 20, &q, &err) == AMBER_OK);
    size_t before = a.held;
    am_arena_release(&a, m);
    am_arena_reset(&a);
    /* After a reset, the most the last run held at once (blocks released before its end
     * included) comes back as one block, which later runs keep. */
    CHECK(am_arena_alloc(&a, 1 << 20, &q, &err) == AMBER_OK && a.held == before);
    CHECK(am_arena_alloc(&a, 3 << 20, &q, &err) == AMBER_OK && a.held == before);
    am_arena_reset(&a);
    CHECK(am_arena_alloc(&a, 1 << 10, &q, &err) == AMBER_OK && a.held == before);
    am_arena_reset(&a);
    CHECK(a.held == before);
    CHECK(am_arena_alloc(&a, SIZE_MAX / 2 + 1, &q, &err) == AMBER_ERR_LIMIT);
    am_arena_free(&a);
    am_arena_init(&a, 1 << 16);
    CHECK(am_arena_alloc(&a, 1 << 15, &p, &err) == AMBER_OK);
    CHECK(am_arena_alloc(&a, 1 << 16, &q, &err) == AMBER_ERR_LIMIT);
    CHECK(strstr(err.msg, "memory limit") != NULL);
    am_arena_free(&a);
    CHECK(am_arena_calloc(&a, SIZE_MAX / 4, 8, &q, &err) == AMBER_ERR_LIMIT);
    /* A block made to a large request's size is not what the next block doubles, and
     * releasing blocks restores the growth of the blocks that remain (loops release and
     * allocate every iteration: growth must not compound across iterations). */
    am_arena_init(&a, 0);
    CHECK(am_arena_alloc(&a, 64, &p, &err) == AMBER_OK && a.held == (size_t)64 << 10);
    CHECK(am_arena_alloc(&a, 4 << 20, &q, &err) == AMBER_OK);
    CHECK(am_arena_alloc(&a, 64 << 10, &q, &err) == AMBER_OK);
    CHECK(a.held == ((size_t)64 << 10) + ((size_t)4 << 20) + ((size_t)128 << 10));
    size_t held = a.held;
    m = am_arena_get_mark(&a);
    for (int i = 0; i < 20; i++) {
        CHECK(am_arena_alloc(&a, 100 << 10, &q, &err) == AMBER_OK);
        CHECK(am_arena_alloc(&a, 100 << 10, &q, &err) == AMBER_OK);
        CHECK(a.held <= held + ((size_t)512 << 10));
        am_arena_release(&a, m);
    }
    am_arena_free(&a);
}

static void test_npy(void) {
    am_error err;
    int32_t data[6] = {1, -2, 3, -4, 5, INT32_MIN};
    amber_tensor t = {AMBER_INT32, 2, {2, 3}, data};
    const char *path = "amber_core_test.npy";
    CHECK(am_npy_write_file(path, &t, &err) == AMBER_OK);
    amber_tensor r;
    void *owned;
    CHECK(am_npy_read_file(path, &r, &owned, &err) == AMBER_OK);
    CHECK(r.dtype == AMBER_INT32 && r.rank == 2 && r.shape[0] == 2 && r.shape[1] == 3);
    CHECK(!memcmp(r.data, data, sizeof data));
    free(owned);
    amber_tensor s = {AMBER_FLOAT64, 0, {0}, &(double){2.5}};
    CHECK(am_npy_write_file(path, &s, &err) == AMBER_OK);
    CHECK(am_npy_read_file(path, &r, &owned, &err) == AMBER_OK && r.rank == 0 &&
          *(double *)r.data == 2.5);
    free(owned);
    remove(path);
    static const char bad_hdr[] = "\x93NUMPY\x01\x00\x20\x00{'descr': '>f4', 'shape': (1,)}";
    CHECK(am_npy_parse(bad_hdr, sizeof bad_hdr - 1, &r, &err) != AMBER_OK);
    CHECK(am_npy_parse("\x93NUMPY\x01\x00\xff\xff", 10, &r, &err) == AMBER_ERR_FORMAT);
    CHECK(am_npy_parse("nope", 4, &r, &err) == AMBER_ERR_FORMAT);
    CHECK(am_npy_read_file("/nonexistent/x.npy", &r, &owned, &err) == AMBER_ERR_IO);
}

static void test_tensor_and_ops(void) {
    amber_tensor t = {AMBER_FLOAT32, 3, {2, 0, 5}, NULL};
    int64_t n;
    size_t nb;
    CHECK(amber_tensor_size(&t, &n, &nb) == AMBER_OK && n == 0 && nb == 0);
    t.shape[1] = -1;
    CHECK(amber_tensor_size(&t, &n, &nb) == AMBER_ERR_SHAPE);
    t.shape[0] = INT64_MAX, t.shape[1] = 4;
    CHECK(amber_tensor_size(&t, &n, &nb) == AMBER_ERR_LIMIT);
    t.dtype = (amber_dtype)10;
    CHECK(amber_tensor_size(&t, &n, &nb) == AMBER_ERR_DTYPE);
    CHECK(amber_dtype_size(AMBER_BOOL) == 1 && amber_dtype_name((amber_dtype)10) == NULL);
    CHECK(amber_dtype_size(AMBER_FLOAT16) == 2 && amber_dtype_size(AMBER_BFLOAT16) == 2 &&
          amber_dtype_size(AMBER_INT8) == 1 && amber_dtype_size(AMBER_UINT8) == 1 &&
          amber_dtype_size(AMBER_INT16) == 2 && amber_dtype_size((amber_dtype)10) == 0);
    CHECK(!strcmp(amber_dtype_name(AMBER_BFLOAT16), "bfloat16") &&
          !strcmp(amber_dtype_name(AMBER_UINT8), "uint8"));
    CHECK(amber_op_count() == AMBER_PRIMITIVES && !amber_op_name(amber_op_count()));
    CHECK(!strcmp(amber_status_name(AMBER_ERR_SHAPE), "AMBER_ERR_SHAPE"));
    CHECK(!strcmp(amber_status_name((amber_status)99), "AMBER_ERR_UNKNOWN"));
    for (size_t i = 0; i < amber_op_count(); i++)
        CHECK(am_op_find(amber_op_name(i)) == am_op_get((am_op_id)i));

    /* One op end to end: int32 floor division with its edge cases. */
    const am_op *div = am_op_find("div");
    int32_t x[4] = {7, -7, INT32_MIN, 5}, y[4] = {2, 2, -1, 0};
    amber_tensor in[2] = {{AMBER_INT32, 1, {4}, x}, {AMBER_INT32, 1, {4}, y}}, out;
    am_error err;
    am_arena oa, sc;
    am_arena_init(&oa, 0);
    am_arena_init(&sc, 0);
    am_ctx ctx = {&err, &sc, NULL, 0, NULL, NULL, false};
    am_attrs attrs;
    CHECK(am_attrs_decode(div, NULL, NULL, NULL, &attrs, &err) == AMBER_OK);
    CHECK(am_op_run(div, &ctx, &oa, in, 2, &attrs, &out) == AMBER_OK);
    int32_t *o = (int32_t *)out.data;
    CHECK(o[0] == 3 && o[1] == -4 && o[2] == INT32_MIN && o[3] == 0);
    /* Wrong input count and a NULL data pointer are statuses, not crashes. */
    CHECK(am_op_run(div, &ctx, &oa, in, 1, &attrs, &out) == AMBER_ERR_INVALID_ARGUMENT);
    in[1].data = NULL;
    CHECK(am_op_run(div, &ctx, &oa, in, 2, &attrs, &out) == AMBER_ERR_INVALID_ARGUMENT);
    am_arena_free(&oa);
    am_arena_free(&sc);
}

/* |got - exact| within twice the sum bound of docs/opset.md (k terms plus the initial C
 * when accumulating), the exact value taken in double precision. */
static bool within_bound(const float *c, const float *c0, const float *a, int64_t rsa,
                         int64_t csa, const float *b, int64_t rsb, int64_t csb, int64_t m,
                         int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double ref = c0 ? c0[i * n + j] : 0, mag = fabs(ref);
            for (int64_t p = 0; p < k; p++) {
                double term = (double)a[i * rsa + p * csa] * b[p * rsb + j * csb];
                ref += term;
                mag += fabs(term);
            }
            if (fabs(c[i * n + j] - ref) > 4.0 * (double)(k + 1) * 0x1p-24 * mag) return false;
        }
    return true;
}

static amber_status failing_alloc(void *owner, size_t size, void **out) {
    (void)owner, (void)size;
    *out = NULL;
    return AMBER_ERR_LIMIT;
}

static amber_status plain_alloc(void *owner, size_t size, void **out) {
    (void)owner;
    *out = aligned_alloc(64, (size + 63) & ~(size_t)63);
    return *out ? AMBER_OK : AMBER_ERR_NO_MEMORY;
}

static void plain_release(void *owner, void *data, size_t size) {
    (void)owner, (void)size;
    free(data);
}

/* A row-major A (rows lda apart) read in place and the same A stored transposed (packed
 * first): the bits of c (A[m, k] @ B[k, n] row-major, computed by the caller). */
static void check_a_layouts(am_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *a,
                            const float *b, const float *c) {
    int64_t lda = k + 5;
    float *wide = malloc(sizeof(float) * (size_t)(m * lda + 1));
    float *tr = malloc(sizeof(float) * (size_t)(m * k + 1));
    float *out = malloc(sizeof(float) * (size_t)(m * n + 1));
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) wide[i * lda + p] = tr[p * m + i] = a[i * k + p];
    memset(out, 0xff, sizeof(float) * (size_t)(m * n));
    CHECK(am_gemm_f32(ctx, m, n, k, wide, lda, 1, b, n, 1, out, n, false) == AMBER_OK);
    CHECK(!memcmp(out, c, sizeof(float) * (size_t)(m * n)));
    memset(out, 0xff, sizeof(float) * (size_t)(m * n));
    CHECK(am_gemm_f32(ctx, m, n, k, tr, 1, m, b, n, 1, out, n, false) == AMBER_OK);
    CHECK(!memcmp(out, c, sizeof(float) * (size_t)(m * n)));
    free(wide), free(tr), free(out);
}

/* Every GEMM path (GEMV rows, packed blocks, several KC and NC blocks, tails narrower
 * than the register tile, transposed operands, accumulation, a B packed once, serial
 * with caller scratch) on every instruction set the CPU has: threads and packing never
 * change a bit, and results stay within the sum bound. */
/* Whether C (row-major A and B) holds the FMA sets' sums bit for bit: per element, over
 * each of k's blocks (gemm.c's kc_of: at most 512, nearly equal) one chain of fmaf in p
 * order from +0, each block's chain added to the sum of the blocks before. */
static bool fma_chains(const float *c, const float *a, const float *b, int64_t m, int64_t n,
                       int64_t k) {
    int64_t blocks = (k + 511) / 512, kc = blocks ? (k + blocks - 1) / blocks : 1;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int64_t p0 = 0; p0 < k; p0 += kc) {
                float chain = 0.0f;
                for (int64_t p = p0; p < p0 + kc && p < k; p++)
                    chain = fmaf(a[i * k + p], b[p * n + j], chain);
                sum = p0 ? sum + chain : chain;
            }
            if (memcmp(&sum, &c[i * n + j], sizeof sum)) return false;
        }
    return true;
}

static void test_gemm(void) {
    static const int64_t sizes[][3] = {
        {1, 700, 300}, {2, 33, 17},  {3, 50, 9},     {7, 1030, 300}, {100, 97, 260},
        {200, 300, 64}, {6, 16, 1},  {1, 5, 3},      {5, 2100, 530}, {13, 19, 513},
        {1, 1, 1},      {97, 1, 31}, {64, 512, 784}, {2, 7, 0},   {1, 512, 784},
        {2, 130, 64},   {1, 10, 512}, {2, 9, 7},      {1, 8, 6},      {2, 13, 130},
        {16, 512, 128}, {20, 40, 70}, {15, 33, 9},    {301, 70, 100}, {150, 40, 30},
        /* tall with few columns (a late convolution), 16 rows, odd panels; k over blocks */
        {512, 49, 600}, {16, 384, 384}, {25, 100, 70}, {37, 20, 40}, {30, 200, 5000},
        /* A read in place: a short last panel, odd k, lone slivers, rows 4 KiB apart */
        {47, 15, 301}, {24, 48, 7}, {35, 17, 33}, {36, 64, 1024}, {128, 100, 385},
        /* in place as panels of 8 (the last 8 rows, or 16 as two), alone or after 12s, one
         * sliver or two; a lone last row packed after a 12; k over blocks */
        {8, 40, 33}, {28, 10, 70}, {13, 48, 20}, {40, 16, 130}, {44, 33, 600},
        {16, 100, 1030}, {52, 70, 64}, {16, 64, 1024},
        /* few rows, B packed, k over blocks: each task through every k block */
        {16, 384, 1536}, {20, 72, 1100},
        /* a kept A with B in place: the last columns (under a sliver) one by one, more
         * than 96 rows, a short last panel, k over blocks */
        {130, 9, 700}, {100, 196, 40}};
    float *avx2_c[AM_ARRAY_LEN(sizes)] = {0}; /* AVX2 and AVX-512 give the same bits */
    am_error err;
    am_arena sc;
    am_arena_init(&sc, 0);
    am_pool *pool = NULL;
    CHECK(am_pool_create(3, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK &&
          am_pool_size(pool) == 3);
    am_keep keep;
    am_keep_init(&keep, plain_alloc, plain_release, NULL);
    am_ctx serial = {&err, &sc, NULL, 0, NULL, NULL, false};
    am_ctx threaded = {&err, &sc, pool, 0, &keep, NULL, false};
    int best = am_gemm_set_isa(99);
    for (int isa = 0; isa <= best; isa++) {
        CHECK(am_gemm_set_isa(isa) == isa);
        for (size_t c = 0; c < AM_ARRAY_LEN(sizes); c++) {
            int64_t m = sizes[c][0], n = sizes[c][1], k = sizes[c][2];
            size_t na = (size_t)(m * k) + 1, nb = (size_t)(k * n) + 1, nc = (size_t)(m * n);
            float *a = malloc(sizeof(float) * na), *b = malloc(sizeof(float) * nb);
            float *c1 = malloc(sizeof(float) * nc), *c2 = malloc(sizeof(float) * nc);
            float *c0 = malloc(sizeof(float) * nc);
            /* (not dyadic: products round, so fused and unfused sums differ) */
            for (size_t i = 0; i < na; i++) a[i] = (float)((i * 7919) % 201) / 63.7f - 1.5f;
            for (size_t i = 0; i < nb; i++) b[i] = (float)((i * 104729) % 199) / 32.0f - 3.0f;
            for (size_t i = 0; i < nc; i++) c0[i] = (float)(i % 7) - 3.0f;
            for (int t = 0; t < 3; t++) {
                /* t = 1: B read transposed (conv2d_weight_grad); t = 2: A transposed
                 * (conv2d_input_grad). */
                int64_t rsb = t == 1 ? 1 : n, csb = t == 1 ? k : 1;
                int64_t rsa = t == 2 ? 1 : k, csa = t == 2 ? m : 1;
                CHECK(am_gemm_f32(&serial, m, n, k, a, rsa, csa, b, rsb, csb, c1, n, false) == AMBER_OK);
                CHECK(within_bound(c1, NULL, a, rsa, csa, b, rsb, csb, m, n, k));
                /* (one or two rows: the GEMV, four partial sums where B is narrow) */
                if (t == 0 && isa > AM_GEMM_ISA_GENERIC && m > 2)
                    CHECK(fma_chains(c1, a, b, m, n, k));
                if (t == 0 && isa == AM_GEMM_ISA_AVX2 && (avx2_c[c] = malloc(sizeof(float) * (nc + 1))))
                    memcpy(avx2_c[c], c1, sizeof(float) * nc);
                if (t == 0 && isa == AM_GEMM_ISA_AVX512 && avx2_c[c])
                    CHECK(!memcmp(avx2_c[c], c1, sizeof(float) * nc));
                CHECK(am_gemm_f32(&threaded, m, n, k, a, rsa, csa, b, rsb, csb, c2, n, false) == AMBER_OK);
                CHECK(!memcmp(c1, c2, sizeof(float) * nc));
                size_t len = am_gemm_scratch_len_f32(m, n, k, false);
                float *scratch = malloc(sizeof(float) * (len + 1));
                memset(c2, 0xff, sizeof(float) * nc);
                am_gemm_serial_f32(m, n, k, a, rsa, csa, b, rsb, csb, NULL, c2, n, false, scratch);
                CHECK(!memcmp(c1, c2, sizeof(float) * nc));
                free(scratch);
                if (t == 0) { /* B packed once: same bits, serial and threaded, twice */
                    check_a_layouts(&serial, m, n, k, a, b, c1);
                    check_a_layouts(&threaded, m, n, k, a, b, c1);
                    for (int r = 0; r < 2; r++) {
                        const float *pk = am_gemm_kept_b_f32(&threaded, n, k, b);
                        CHECK(pk == NULL || pk == am_keep_find(&keep, b, 0x4700u | 4u, k, n));
                        memset(c2, 0xff, sizeof(float) * nc);
                        CHECK(am_gemm_prepacked_f32(r ? &threaded : &serial, m, n, k, a, rsa,
                                                    csa, b, rsb, csb, pk, c2, n, false) == AMBER_OK);
                        CHECK(!memcmp(c1, c2, sizeof(float) * nc));
                    }
                    /* A packed once (a convolution's weight): the same bits, in the pool
                     * and on one thread. */
                    const float *ka = am_gemm_kept_a_f32(&threaded, m, k, a);
                    CHECK(ka == NULL || m <= 2 || ka == am_gemm_kept_a_f32(&threaded, m, k, a));
                    if (ka) {
                        memset(c2, 0xff, sizeof(float) * nc);
                        CHECK(am_gemm_kept_a_run_f32(&threaded, m, n, k, a, ka, b, rsb, csb, c2,
                                                     n, false) == AMBER_OK);
                        CHECK(!memcmp(c1, c2, sizeof(float) * nc));
                        float *sc2 = malloc(sizeof(float) * (am_gemm_scratch_len_f32(m, n, k, false) + 1));
                        memset(c2, 0xff, sizeof(float) * nc);
                        am_gemm_serial_kept_a_f32(m, n, k, a, ka, b, rsb, csb, c2, n, false, sc2);
                        CHECK(!memcmp(c1, c2, sizeof(float) * nc));
                        free(sc2);
                    }
                    /* Accumulating into C: the same bits with and without the packed B. */
                    float *c3 = malloc(sizeof(float) * nc);
                    memcpy(c3, c0, sizeof(float) * nc);
                    CHECK(am_gemm_f32(&serial, m, n, k, a, rsa, csa, b, rsb, csb, c3, n, true) == AMBER_OK);
                    memcpy(c2, c0, sizeof(float) * nc);
                    CHECK(am_gemm_prepacked_f32(&threaded, m, n, k, a, rsa, csa, b, rsb, csb,
                                                am_gemm_kept_b_f32(&threaded, n, k, b), c2, n,
                                                true) == AMBER_OK);
                    CHECK(!memcmp(c3, c2, sizeof(float) * nc));
                    free(c3);
                    /* Only B given as packed (B NULL): the packed path for any m. */
                    if (m > 0 && n >= 16 && k > 0) {
                        float *pk = malloc(sizeof(float) * am_gemm_packed_len_f32(k, n));
                        am_gemm_pack_b_f32(b, n, 1, k, n, pk);
                        CHECK(am_gemm_prepacked_f32(&threaded, m, n, k, a, rsa, csa, NULL, 0,
                                                    0, pk, c2, n, false) == AMBER_OK);
                        CHECK(within_bound(c2, NULL, a, rsa, csa, b, rsb, csb, m, n, k));
                        free(pk);
                    }
                }
                memcpy(c2, c0, sizeof(float) * nc);
                CHECK(am_gemm_f32(&threaded, m, n, k, a, rsa, csa, b, rsb, csb, c2, n, true) == AMBER_OK);
                CHECK(within_bound(c2, c0, a, rsa, csa, b, rsb, csb, m, n, k));
            }
            /* Special values: a NaN in A spoils its row, an infinity in B its column. */
            if (m >= 2 && k >= 1 && n >= 2) {
                for (size_t i = 0; i < na; i++) a[i] = 0.5f;
                a[0] = NAN;
                b[1] = INFINITY;
                CHECK(am_gemm_f32(&threaded, m, n, k, a, k, 1, b, n, 1, c1, n, false) == AMBER_OK);
                for (int64_t j = 0; j < n; j++) CHECK(isnan(c1[j]));
                for (int64_t i = 1; i < m; i++) CHECK(c1[i * n + 1] == INFINITY);
            }
            free(a), free(b), free(c0), free(c1), free(c2);
        }
    }
    for (size_t c = 0; c < AM_ARRAY_LEN(sizes); c++) free(avx2_c[c]);
    am_gemm_set_isa(best);
    /* When no memory may be kept, the product goes without; scratch beyond the arena's
     * limit is a status, never a crash. */
    am_keep none;
    am_keep_init(&none, failing_alloc, plain_release, NULL);
    am_ctx no_keep = {&err, &sc, NULL, 0, &none, NULL, false};
    float *big = calloc(64 * 64, sizeof(float)), *out = calloc(64 * 64, sizeof(float));
    CHECK(am_gemm_kept_b_f32(&no_keep, 64, 64, big) == NULL && none.n == 0);
    am_arena tiny;
    am_arena_init(&tiny, 256);
    am_ctx limited = {&err, &tiny, pool, 0, NULL, NULL, false};
    CHECK(am_gemm_f32(&limited, 64, 64, 64, big, 64, 1, big, 64, 1, out, 64, false) == AMBER_ERR_LIMIT);
    am_arena_free(&tiny);
    /* Dropped kept data is not made again. */
    CHECK(keep.n > 0 && am_keep_drop(&keep) && keep.n == 0 && !am_keep_drop(&keep));
    CHECK(am_gemm_kept_b_f32(&threaded, 64, 64, big) == NULL && keep.n == 0);
    free(big), free(out);
    am_keep_free(&none);
    am_keep_free(&keep);
    am_pool_free(pool);
    am_arena_free(&sc);
}

/* Convolutions run images in parallel when scratch for every thread fits the arena's
 * limit, and one image at a time when it does not: the same bits either way. */
static void test_conv_scratch_limit(void) {
    enum { N = 4, C = 3, H = 32, W = 32, O = 8 };
    static float x[N * C * H * W], w[O * C * 9];
    for (size_t i = 0; i < AM_ARRAY_LEN(x); i++) x[i] = (float)((i * 7919) % 97) / 16.0f - 3.0f;
    for (size_t i = 0; i < AM_ARRAY_LEN(w); i++) w[i] = (float)((i * 104729) % 89) / 32.0f - 1.4f;
    amber_tensor in[2] = {{AMBER_FLOAT32, 4, {N, C, H, W}, x}, {AMBER_FLOAT32, 4, {O, C, 3, 3}, w}};
    const am_op *conv = am_op_find("conv2d");
    am_json_doc doc = {0};
    am_json_limits lim = {1 << 20, 16, 1 << 16};
    const char *js = "{\"stride\": [1, 1], \"padding\": [1, 1, 1, 1], \"dilation\": [1, 1], "
                     "\"groups\": 1}";
    am_error err;
    am_attrs attrs;
    CHECK(am_json_parse(js, strlen(js), &lim, &doc, &err) == AMBER_OK);
    CHECK(am_attrs_decode(conv, &doc, am_json_root(&doc), NULL, &attrs, &err) == AMBER_OK);
    am_pool *pool = NULL;
    CHECK(am_pool_create(3, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK);
    amber_tensor out[3];
    am_arena oa[3], sc[3];
    size_t limits[3] = {0, 400000, 1}; /* unlimited; room for one image; none */
    amber_status st[3];
    for (int r = 0; r < 3; r++) {
        am_arena_init(&oa[r], 0);
        am_arena_init(&sc[r], limits[r]);
        am_ctx ctx = {&err, &sc[r], pool, 0, NULL, NULL, false};
        st[r] = am_op_run(conv, &ctx, &oa[r], in, 2, &attrs, &out[r]);
    }
    CHECK(st[0] == AMBER_OK && st[1] == AMBER_OK && st[2] == AMBER_ERR_LIMIT);
    CHECK(st[1] != AMBER_OK || !memcmp(out[0].data, out[1].data, sizeof(float) * N * O * H * W));
    for (int r = 0; r < 3; r++) am_arena_free(&oa[r]), am_arena_free(&sc[r]);
    am_pool_free(pool);
    am_json_free(&doc);
}

/* The pool runs every task exactly once, on all its threads, job after job (workers
 * that spin, sleep or arrive late), and with more threads than tasks. */
static void count_task(void *ud, int64_t t, int worker) {
    int *hits = (int *)ud;
    __atomic_fetch_add(&hits[t], 1, __ATOMIC_RELAXED);
    __atomic_fetch_or(&hits[1000], 1 << worker, __ATOMIC_RELAXED);
}

/* acc[i] += x[i] in double, as the float sum's reduced-outer-axis loop does. */
static void acc_row(char **p, const int64_t *s, int64_t n, void *ud) {
    (void)ud;
    for (int64_t i = 0; i < n; i++)
        *(double *)(void *)(p[0] + i * s[0]) += (double)*(const float *)(p[1] + i * s[1]);
}

/* am_iter_run_pool: a sum over each reduced dim (accumulator stride 0), split between
 * threads along kept dims only, gives the serial bits; a small one stays serial. */
static void test_iter_pool(void) {
    static const int64_t shapes[][3] = {{20, 3, 1000}, {3, 20000, 1}, {70000, 1, 1}, {8, 8, 8}};
    static const bool keep[][3] = {{false, true, false}, {false, true, true},
                                   {true, true, true}, {true, false, true}};
    am_error err;
    am_pool *pool = NULL;
    CHECK(am_pool_create(3, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK);
    float *x = (float *)malloc(70000 * sizeof(float));
    double *a = (double *)calloc(70000, sizeof(double));
    double *b = (double *)calloc(70000, sizeof(double));
    for (int i = 0; x && i < 70000; i++) x[i] = (float)((i * 7919) % 1000) * 0.001f - 0.3f;
    for (size_t c = 0; x && a && b && c < AM_ARRAY_LEN(shapes); c++) {
        int64_t st[2][AMBER_MAX_RANK], acc = sizeof(double);
        am_contig_strides(shapes[c], 3, sizeof(float), st[1]);
        for (int d = 2; d >= 0; d--) {
            st[0][d] = keep[c][d] ? acc : 0;
            if (keep[c][d]) acc *= shapes[c][d];
        }
        am_iter it;
        am_iter_init(&it, 2, 3, shapes[c], st);
        memset(a, 0, 70000 * sizeof(double));
        memset(b, 0, 70000 * sizeof(double));
        char *ba[2] = {(char *)a, (char *)x}, *bb[2] = {(char *)b, (char *)x};
        am_iter_run(&it, ba, acc_row, NULL);
        am_iter_run_pool(pool, &it, bb, acc_row, NULL);
        CHECK(memcmp(a, b, 70000 * sizeof(double)) == 0);
    }
    free(x);
    free(a);
    free(b);
    am_pool_free(pool);
}

/* Waits (up to about a second, on a busy machine) until the pool's workers are awake or
 * asleep. */
static bool pool_becomes(am_pool *pool, bool awake) {
    struct timespec tick = {0, 20000};
    for (int i = 0; i < 50000; i++) {
        if (am_pool_awake(pool) == awake) return true;
        nanosleep(&tick, NULL);
    }
    return false;
}

static void test_pool(void) {
    am_error err;
    am_pool *pool = NULL;
    CHECK(am_pool_create(1, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK &&
          pool == NULL && am_pool_size(pool) == 1 && am_pool_for(pool, 1e12) == NULL);
    static int hits[1001];
    /* The session spin, and one so short that the workers sleep almost at once: every
     * job is still done, whether the workers are woken for it, still awake, or asleep
     * while the caller does it all (each task taken from its thread's range or from
     * another's); with 4, 3 and 2 threads, more threads than tasks, one task each, and
     * many. */
    static const uint64_t spins[] = {AM_POOL_SPIN_SESSION_NS, 1000u, 1000u};
    for (int sp = 0; sp < 3; sp++) {
        CHECK(am_pool_create(4 - sp, spins[sp], 0.0, &pool, &err) == AMBER_OK &&
              am_pool_size(pool) == 4 - sp);
        for (int job = 0; job < 2000; job++) {
            int64_t n = job % 4 == 0 ? 1 : job % 4 == 1 ? 3 : job % 4 == 2 ? 4 - sp : 997;
            if (sp && job % 8 == 0) {
                struct timespec pause = {0, 200000}; /* 200 us: the workers fall asleep */
                nanosleep(&pause, NULL);
            }
            memset(hits, 0, sizeof hits);
            am_pool_run(pool, n, count_task, hits);
            bool ok = true;
            for (int64_t t = 0; t < 1000; t++) ok &= hits[t] == (t < n);
            CHECK(ok);
            if (!ok) break;
        }
        am_pool_free(pool);
    }
    /* am_pool_for: a pool with a wake threshold is not woken for a smaller job, is for a
     * larger one (and then takes smaller ones while awake); one without is always used. */
    /* NOTE: a 100 ms spin, so that a loaded machine descheduling this thread for a few
     * milliseconds does not let the worker fall asleep before the check below */
    CHECK(am_pool_create(2, 100000000u, 1e6, &pool, &err) == AMBER_OK);
    CHECK(pool_becomes(pool, false) && am_pool_for(pool, 1e5) == NULL);
    CHECK(am_pool_for(pool, 1e6) == pool);
    memset(hits, 0, sizeof hits);
    am_pool_run(pool, 997, count_task, hits);
    CHECK(hits[0] == 1 && hits[996] == 1 && pool_becomes(pool, true) &&
          am_pool_for(pool, 1e5) == pool);
    am_pool_free(pool);
    CHECK(am_pool_create(2, 1000u, 0.0, &pool, &err) == AMBER_OK);
    CHECK(pool_becomes(pool, false) && am_pool_for(pool, 1.0) == pool);
    am_pool_free(pool);
}

static void test_dim_expressions(void) {
    const char *names[] = {"n", "batch_2"};
    size_t lens[] = {1, 7};
    int64_t vals[] = {7, 3};
    am_symbols sy = {2, names, lens, vals, false, NULL, 0};
    static const struct { const char *e; int64_t want; } ok[] = {
        {"42", 42}, {"n", 7}, {"2*n//3", 4}, {"-n+1", -6}, {"-n//2", -3} /* the leading - negates the whole first term */, {"((n))", 7},
        {" n * batch_2 - 1 ", 20}, {"n - batch_2 - 10", -6}, {"(n+1)//2*2", 8},
        {"9223372036854775807", INT64_MAX}};
    for (size_t i = 0; i < AM_ARRAY_LEN(ok); i++) {
        int64_t v = 0;
        am_error err;
        amber_status st = am_dim_eval(ok[i].e, strlen(ok[i].e), &sy, &v, &err);
        if (st != AMBER_OK || v != ok[i].want)
            fprintf(stderr, "dim \"%s\": status %d value %lld\n", ok[i].e, st, (long long)v);
        CHECK(st == AMBER_OK && v == ok[i].want);
    }
    static const char *bad[] = {"", "n//0", "n//m", "n//batch_2", "m", "n+", "(n", "n)", "2n",
                                "9223372036854775808", "9223372036854775807+1", "n**2",
                                "12345678901234567890", "n / 2", "--n"};
    for (size_t i = 0; i < AM_ARRAY_LEN(bad); i++) {
        int64_t v;
        am_error err;
        amber_status st = am_dim_eval(bad[i], strlen(bad[i]), &sy, &v, &err);
        if (st == AMBER_OK) fprintf(stderr, "accepted bad dim \"%s\"\n", bad[i]);
        CHECK(st != AMBER_OK);
    }
    char deep[200];
    memset(deep, '(', 65);
    deep[65] = 'n';
    memset(deep + 66, ')', 65);
    int64_t v;
    am_error err;
    CHECK(am_dim_eval(deep, 131, &sy, &v, &err) != AMBER_OK);
    CHECK(am_dim_eval(deep + 1, 129, &sy, &v, &err) == AMBER_OK && v == 7);
    CHECK(am_dim_is_name("batch_2", 7) && !am_dim_is_name("2b", 2) && !am_dim_is_name("n+1", 3));
    vals[0] = -1; /* unbound at run time */
    CHECK(am_dim_eval("n", 1, &sy, &v, &err) != AMBER_OK);
}

/* Distance in float ULPs between a and b (same sign or zero; NaN: a large number). */
static int64_t ulps(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : INT64_MAX;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;
    if (ib < 0) ib = INT32_MIN - ib;
    return ia > ib ? (int64_t)ia - ib : (int64_t)ib - ia;
}

/* float32 exp, sigmoid, tanh and erf: within 2 ULP of the double-precision result rounded to
 * float (the largest error over all inputs, tests/runtime/ulp_transcendental.c), special
 * values exact, and the same bits from every instruction set, every tail
 * length and strided rows. */
static void test_transcendental(void) {
    enum { N = 4099 };
    static float x[N], y0[N], y1[N], ys[2 * N], xs[2 * N];
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX,
                              1e-45f, -1e-45f, 0x1p-13f, -0x1p-13f, 0x1.fffffep-14f,
                              88.72f, 88.73f, -87.3f, -103.9f, -104.0f, -150.0f, 9.0f,
                              -9.02f, 20.0f, 0.3466f, -0.3466f, 1.0f};
    size_t ns = sizeof specials / sizeof specials[0];
    uint32_t state = 12345;
    for (int i = 0; i < N; i++) {
        state = state * 1664525u + 1013904223u;
        double u = (double)(state >> 8) / 16777216.0; /* [0, 1) */
        x[i] = (size_t)i < ns ? specials[i]
               : i % 3 == 0   ? (float)((u - 0.5) * 240.0)
               : i % 3 == 1   ? (float)((u - 0.5) * 8.0)
                              : (float)ldexp(u - 0.5, -(int)(state % 30));
    }
    const am_op_id ids[] = {AM_OP_EXP, AM_OP_SIGMOID, AM_OP_TANH, AM_OP_ERF};
    int best = am_gemm_set_isa(99);
    for (size_t o = 0; o < 4; o++) {
        am_row_fn fn = am_elementwise_loop(am_op_get(ids[o]), AMBER_FLOAT32, AMBER_FLOAT32);
        CHECK(fn != NULL);
        if (!fn) continue;
        int64_t dense[2] = {4, 4}, strided[2] = {8, 8};
        am_gemm_set_isa(AM_GEMM_ISA_GENERIC);
        char *p[2] = {(char *)y0, (char *)x};
        fn(p, dense, N, NULL);
        memcpy(y1, y0, sizeof y0); /* NOTE: the generic set may be the only one built */
        for (int isa = AM_GEMM_ISA_AVX2; isa <= best; isa++) { /* every set: the same bits */
            am_gemm_set_isa(isa);
            p[0] = (char *)y1;
            fn(p, dense, N, NULL);
            CHECK(!memcmp(y0, y1, sizeof y0));
        }
        am_gemm_set_isa(best);
        for (int i = 0; i < N; i++) xs[2 * i] = x[i];
        p[0] = (char *)ys;
        p[1] = (char *)xs;
        fn(p, strided, N, NULL);
        int bad = 0;
        for (int i = 0; i < N; i++) bad += memcmp(&ys[2 * i], &y1[i], 4) != 0;
        for (int len = 1; len <= 9; len++) { /* every tail length */
            float t[9];
            p[0] = (char *)t;
            p[1] = (char *)(x + 100);
            fn(p, dense, len, NULL);
            bad += memcmp(t, y1 + 100, sizeof(float) * (size_t)len) != 0;
        }
        CHECK(bad == 0);
        int64_t worst = 0;
        for (int i = 0; i < N; i++) {
            double v = x[i];
            double want = ids[o] == AM_OP_EXP       ? exp(v)
                          : ids[o] == AM_OP_SIGMOID ? 1.0 / (1.0 + exp(-v))
                          : ids[o] == AM_OP_TANH    ? tanh(v)
                                                    : erf(v);
            int64_t d = ulps(y1[i], (float)want);
            if (d > worst) worst = d;
        }
        CHECK(worst <= 2);
    }
    am_gemm_set_isa(best);
    /* Special values, exactly. */
    float in[8] = {-INFINITY, INFINITY, NAN, 0.0f, -0.0f, 0, 0, 0}, out[8];
    char *p[2] = {(char *)out, (char *)in};
    int64_t dense[2] = {4, 4};
    am_elementwise_loop(am_op_get(AM_OP_EXP), AMBER_FLOAT32, AMBER_FLOAT32)(p, dense, 5, NULL);
    CHECK(out[0] == 0.0f && !signbit(out[0]) && out[1] == INFINITY && isnan(out[2]) && out[3] == 1.0f && out[4] == 1.0f);
    am_elementwise_loop(am_op_get(AM_OP_SIGMOID), AMBER_FLOAT32, AMBER_FLOAT32)(p, dense, 5, NULL);
    CHECK(out[0] == 0.0f && out[1] == 1.0f && isnan(out[2]) && out[3] == 0.5f && out[4] == 0.5f);
    am_elementwise_loop(am_op_get(AM_OP_TANH), AMBER_FLOAT32, AMBER_FLOAT32)(p, dense, 5, NULL);
    CHECK(out[0] == -1.0f && out[1] == 1.0f && isnan(out[2]) && out[3] == 0.0f && !signbit(out[3]) &&
          out[4] == 0.0f && signbit(out[4]));
    am_elementwise_loop(am_op_get(AM_OP_ERF), AMBER_FLOAT32, AMBER_FLOAT32)(p, dense, 5, NULL);
    CHECK(out[0] == -1.0f && out[1] == 1.0f && isnan(out[2]) && out[3] == 0.0f && !signbit(out[3]) &&
          out[4] == 0.0f && signbit(out[4]));
}

/* One float32 LSTM cell element by element through the row loops of its nodes (as
 * plan_cell.c's generic pass), x op y or y op x when sw. */
static float cell_ref_op(am_op_id op, float x, float y, bool sw) {
    float r, a = sw ? y : x, b = sw ? x : y;
    char *p[3] = {(char *)&r, (char *)&a, (char *)&b};
    int64_t s[3] = {4, 4, 4};
    am_elementwise_loop(am_op_get(op), AMBER_FLOAT32, AMBER_FLOAT32)(p, s, 1, NULL);
    return r;
}

static float cell_ref_act(am_op_id op, float x) {
    float r;
    char *p[2] = {(char *)&r, (char *)&x};
    int64_t s[2] = {4, 4};
    am_elementwise_loop(am_op_get(op), AMBER_FLOAT32, AMBER_FLOAT32)(p, s, 1, NULL);
    return r;
}

/* The same bits, or both NaN (docs/opset.md: all NaNs are equivalent; which of two NaN
 * operands a product keeps is the compiler's choice in the row loops too). */
static bool same_or_nans(float a, float b) {
    return memcmp(&a, &b, 4) == 0 || (isnan(a) && isnan(b));
}

/* am_cell_run on two rows of a cell whose pre-activations are a + b or a + (b + bias): the
 * row loops (below AVX-512) and the vector pass give the same bits. */
static void test_lstm_cell_run(float pre[3][4 * 40 + 3], const float *cp) {
    enum { H = 40, W = 4 * H };
    float a[2][W], b[2][W], out[2][2][2][H]; /* [isa][c, h][row][unit] */
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < W; i++) a[r][i] = pre[r][3 + i], b[r][i] = pre[1 - r][3 + W - 1 - i];
    am_cell cell = {{0, 1, 2}, 3, 4, 3, {false, false, true}, 0, W, H, {0, H, 2 * H, 3 * H},
                    am_elementwise_loop(am_op_get(AM_OP_SIGMOID), AMBER_FLOAT32, AMBER_FLOAT32),
                    am_elementwise_loop(am_op_get(AM_OP_TANH), AMBER_FLOAT32, AMBER_FLOAT32),
                    am_elementwise_loop(am_op_get(AM_OP_MUL), AMBER_FLOAT32, AMBER_FLOAT32),
                    am_elementwise_loop(am_op_get(AM_OP_ADD), AMBER_FLOAT32, AMBER_FLOAT32),
                    {false, true, false, true, true}};
    float cp2[2][H];
    memcpy(cp2[0], cp, sizeof cp2[0]), memcpy(cp2[1], cp, sizeof cp2[1]);
    amber_tensor t[6];
    memset(t, 0, sizeof t);
    void *data[6] = {a, b, pre[2] + 3, cp2, NULL, NULL};
    for (int k = 0; k < 6; k++) {
        t[k].dtype = AMBER_FLOAT32;
        t[k].rank = k == 2 ? 1 : 2;
        t[k].shape[0] = k == 2 ? W : 2;
        t[k].shape[1] = k < 2 ? W : H;
        t[k].data = data[k];
    }
    am_error err;
    am_ctx ctx = {&err, NULL, NULL, 0, NULL, NULL, false};
    int best = am_gemm_set_isa(99);
    int bad = 0;
    for (cell.n_src = 2; cell.n_src <= 3; cell.n_src++) {
        for (int v = 0; v < 2; v++) {
            am_gemm_set_isa(v ? best : AM_GEMM_ISA_AVX2);
            t[4].data = out[v][0], t[5].data = out[v][1];
            CHECK(am_cell_run(&cell, &ctx, t, &t[3], &t[4], &t[5]) == AMBER_OK);
        }
        am_gemm_set_isa(best);
        const float *o0 = &out[0][0][0][0], *o1 = &out[1][0][0][0];
        for (int i = 0; i < 2 * 2 * H; i++) bad += !same_or_nans(o0[i], o1[i]);
    }
    CHECK(bad == 0);
    cell.n_src = 3;
    t[2].shape[0] = W - 1; /* a bias of the wrong width is refused */
    CHECK(am_cell_run(&cell, &ctx, t, &t[3], &t[4], &t[5]) == AMBER_ERR_SHAPE);
}

/* am_cell_f32: every operand order and tail length gives the bits of the row loops, with
 * NaNs (of several payloads and signs), infinities and signed zeros among the gates and in
 * c_prev, from one source or summed from two or three (a + b, a + (b + c), either outer
 * order); nothing
 * written past n; no vector kernel below AVX-512. */
static void test_lstm_cell(void) {
    enum { H = 40, W = 4 * H + 3 };
    static const uint32_t nans[] = {0x7fc00000u, 0xffc00000u, 0x7fc12345u, 0xffe00001u};
    float pre[3][W], cp[H], co[H], ho[H];
    uint32_t state = 99;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < W; i++) {
            state = state * 1664525u + 1013904223u;
            pre[s][i] = (float)((double)(state >> 8) / 16777216.0 - 0.5) * (s ? 3.0f : 12.0f);
        }
    for (int i = 0; i < H; i++) cp[i] = (float)(i % 7) - 3.0f + 0.25f * (float)(i % 3);
    for (int k = 0; k < 4; k++) /* NaNs in the gates i, f, g, o and c_prev, mixed */
        for (int u = k; u < H; u += 5) {
            float v;
            memcpy(&v, &nans[(u + k) % 4], 4);
            pre[u % 3 ? 0 : 1][3 + k * H + u] = v;
            if (u % 2) memcpy(&cp[u], &nans[(u + 1) % 4], 4);
        }
    pre[0][3 + 2] = INFINITY, pre[0][3 + H + 2] = -INFINITY, pre[0][3 + 2 * H + 3] = -0.0f;
    pre[2][3 + 2 * H + 3] = -0.0f, pre[1][3 + 2 * H + 3] = -0.0f, pre[2][3 + 7] = INFINITY;
    const float *src[3] = {pre[0] + 3, pre[1] + 3, pre[2] + 3};
    const int64_t off[4] = {0, H, 2 * H, 3 * H}, rs0[3] = {0, 0, 0};
    int best = am_gemm_set_isa(99);
    int bad = 0;
    for (unsigned m = 0; m < 32; m++) {
        bool sw[5] = {m & 1, (m >> 1) & 1, (m >> 2) & 1, (m >> 3) & 1, (m >> 4) & 1};
        int n_pre = 1 + (int)(m % 3); /* one source, or the sum of two or three */
        for (int64_t n = 1; n <= H; n += n < 18 ? 1 : 11) {
            am_gemm_set_isa(best);
            memset(co, 0x5a, sizeof co), memset(ho, 0x5a, sizeof ho);
            if (!am_cell_f32(src, rs0, n_pre, off, cp, co, ho, n, 1, 0, sw)) continue;
            for (int64_t u = 0; u < H; u++) {
                float g[4];
                for (int k = 0; k < 4; k++) {
                    int64_t e = 3 + k * H + u;
                    float y = n_pre == 3 ? cell_ref_op(AM_OP_ADD, pre[1][e], pre[2][e], false)
                                         : pre[1][e];
                    g[k] = n_pre == 1 ? pre[0][e] : cell_ref_op(AM_OP_ADD, pre[0][e], y, sw[4]);
                }
                float si = cell_ref_act(AM_OP_SIGMOID, g[0]), sf = cell_ref_act(AM_OP_SIGMOID, g[1]);
                float tg = cell_ref_act(AM_OP_TANH, g[2]), so = cell_ref_act(AM_OP_SIGMOID, g[3]);
                float c = cell_ref_op(AM_OP_ADD, cell_ref_op(AM_OP_MUL, si, tg, sw[0]),
                                      cell_ref_op(AM_OP_MUL, sf, cp[u], sw[1]), sw[2]);
                float h = cell_ref_op(AM_OP_MUL, so, cell_ref_act(AM_OP_TANH, c), sw[3]);
                uint32_t untouched = 0x5a5a5a5au;
                bad += u < n ? !same_or_nans(co[u], c) || !same_or_nans(ho[u], h)
                             : memcmp(&co[u], &untouched, 4) != 0 || memcmp(&ho[u], &untouched, 4) != 0;
            }
        }
    }
    CHECK(bad == 0);
    am_gemm_set_isa(AM_GEMM_ISA_AVX2);
    bool sw[5] = {false, false, false, false, false};
    CHECK(!am_cell_f32(src, rs0, 1, off, cp, co, ho, H, 1, 0, sw));
    CHECK(!am_cell_f32(src, rs0, 3, off, cp, co, ho, H, 1, 0, sw));
    am_gemm_set_isa(best);
    test_lstm_cell_run(pre, cp);
}

/* The CPUID reading of cpu.c agrees with the compiler's own detection. */
static void test_cpu_isa(void) {
    int want = AM_GEMM_ISA_GENERIC;
#if defined(__x86_64__) && !defined(AMBER_NO_DISPATCH)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = __builtin_cpu_supports("avx512f") ? AM_GEMM_ISA_AVX512 : AM_GEMM_ISA_AVX2;
#endif
    CHECK(am_cpu_best_isa() == want);
    CHECK(am_gemm_set_isa(99) == want);
}

/* The pooling kernels give the same bits at every instruction set (each output is the
 * same scalar operations in the same order), on planes wide enough for the vector paths
 * and with NaN, infinities and signed zeros among the inputs. */
static void test_pool2d_isas(void) {
    static const struct {
        const char *op, *attrs;
        int64_t h, w;
    } cases[] = {
        {"max_pool2d", "{\"kernel_hw\": [3, 3], \"stride\": [2, 2], \"padding\": [1, 1, 1, 1], "
                       "\"dilation\": [1, 1], \"ceil_mode\": false}", 23, 45},
        {"max_pool2d", "{\"kernel_hw\": [2, 2], \"stride\": [2, 2], \"padding\": [0, 0, 0, 0], "
                       "\"dilation\": [1, 1], \"ceil_mode\": false}", 10, 34},
        {"max_pool2d", "{\"kernel_hw\": [3, 2], \"stride\": [1, 1], \"padding\": [1, 0, 1, 1], "
                       "\"dilation\": [1, 2], \"ceil_mode\": true}", 9, 40},
        {"max_pool2d", "{\"kernel_hw\": [3, 3], \"stride\": [2, 3], \"padding\": [0, 1, 0, 1], "
                       "\"dilation\": [2, 1], \"ceil_mode\": true}", 13, 71},
        {"avg_pool2d", "{\"kernel_hw\": [3, 3], \"stride\": [1, 1], \"padding\": [1, 1, 1, 1], "
                       "\"ceil_mode\": false, \"count_include_pad\": false}", 20, 37},
        {"avg_pool2d", "{\"kernel_hw\": [3, 2], \"stride\": [2, 2], \"padding\": [0, 1, 0, 1], "
                       "\"ceil_mode\": true, \"count_include_pad\": true}", 11, 50},
        {"avg_pool2d", "{\"kernel_hw\": [2, 4], \"stride\": [1, 3], \"padding\": [1, 0, 2, 1], "
                       "\"ceil_mode\": true, \"count_include_pad\": false}", 8, 29},
    };
    enum { C = 3, CAP = C * 23 * 71 };
    static double x[CAP], y0[CAP], y1[CAP];
    static float xf[CAP];
    static const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0};
    uint32_t state = 99;
    for (int i = 0; i < CAP; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = state % 13 == 0 ? specials[(state >> 8) % 5] : (double)(state >> 8) / 65536.0 - 128.0;
        xf[i] = (float)x[i];
    }
    amber_kernel_context *kc = NULL;
    CHECK(amber_kernel_context_create(1, &kc) == AMBER_OK);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(cases); c++) {
        amber_kernel *k = NULL;
        CHECK(amber_kernel_prepare(kc, cases[c].op, cases[c].attrs, &k) == AMBER_OK);
        for (int f64 = 0; f64 < 2; f64++) {
            amber_dtype dt = f64 ? AMBER_FLOAT64 : AMBER_FLOAT32;
            amber_tensor in = {dt, 4, {1, C, cases[c].h, cases[c].w}, f64 ? (void *)x : (void *)xf};
            amber_tensor out = {dt, 0, {0}, NULL};
            CHECK(amber_kernel_run(kc, k, &in, 1, &out) == AMBER_OK); /* the output's shape */
            size_t bytes = (size_t)(out.shape[0] * out.shape[1] * out.shape[2] * out.shape[3]) *
                           amber_dtype_size(dt);
            CHECK(bytes > 0 && bytes <= sizeof y0);
            for (int isa = AM_GEMM_ISA_GENERIC; isa <= best; isa++) {
                am_gemm_set_isa(isa);
                out.data = isa == AM_GEMM_ISA_GENERIC ? y0 : y1;
                CHECK(amber_kernel_run(kc, k, &in, 1, &out) == AMBER_OK);
                if (isa != AM_GEMM_ISA_GENERIC) CHECK(!memcmp(y0, y1, bytes));
            }
        }
        amber_kernel_free(k);
    }
    am_gemm_set_isa(best);
    amber_kernel_context_free(kc);
}

/* The fused layer norm gives the same bits on every instruction set, and those of its
 * steps written out (k_reduce's sum: double, eight partials from 16 elements on). */
static double ln_sum(const float *x, int64_t n, bool square) {
    double part[8] = {0}, sum = 0.0;
    for (int64_t c = 0; c < n; c++) {
        double v = (double)(square ? x[c] * x[c] : x[c]);
        if (n < 16) sum += v;
        else part[c % 8] += v;
    }
    return n < 16 ? sum : ((part[0] + part[1]) + (part[2] + part[3])) +
                          ((part[4] + part[5]) + (part[6] + part[7]));
}

static void test_layernorm_isas(void) {
    enum { ROWS = 67, CAP = ROWS * 100 };
    static float x[CAP], w[100], b[100], y0[CAP], y1[CAP], xc[100];
    static const int64_t hs[] = {1, 7, 15, 16, 17, 33, 100};
    uint32_t state = 5;
    for (int i = 0; i < CAP; i++) {
        state = state * 1664525u + 1013904223u;
        /* a wide exponent range: the double sums round, so their order shows */
        x[i] = ldexpf((float)(state >> 8) / 16777216.0f - 0.5f, (int)(state % 61) - 30);
    }
    for (int i = 0; i < 100; i++) w[i] = 1.0f + (float)i / 64.0f, b[i] = (float)i / 32.0f - 1.0f;
    am_error err;
    am_arena sc;
    am_arena_init(&sc, 0);
    am_pool *pool = NULL;
    CHECK(am_pool_create(2, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(hs); c++) {
        int64_t h = hs[c];
        if (h >= 16) /* a row whose sum depends on the order: 2^60 + 1 - 2^60 */
            x[h] = 0x1p60f, x[h + 4] = 1.0f, x[h + 8] = -0x1p60f;
        am_norm nm = {3, {0, 1, 2}, true, true, (double)h, (double)h, 1e-5, 1.0};
        amber_tensor ext[3] = {{AMBER_FLOAT32, 2, {ROWS, h}, x}, {AMBER_FLOAT32, 1, {h}, w},
                               {AMBER_FLOAT32, 1, {h}, b}};
        for (int isa = AM_GEMM_ISA_GENERIC; isa <= best; isa++) {
            am_gemm_set_isa(isa);
            amber_tensor out = {AMBER_FLOAT32, 2, {ROWS, h}, isa ? y1 : y0};
            am_ctx ctx = {&err, &sc, isa ? pool : NULL, 0, NULL, NULL, false};
            CHECK(am_layernorm_run(&nm, &ctx, ext, &out) == AMBER_OK);
            if (isa) CHECK(!memcmp(y0, y1, sizeof(float) * (size_t)(ROWS * h)));
        }
        int bad = 0;
        for (int64_t r = 0; r < ROWS; r++) {
            const float *xr = x + r * h;
            float mu = (float)ln_sum(xr, h, false) / (float)h;
            for (int64_t i = 0; i < h; i++) xc[i] = xr[i] - mu;
            float var = (float)ln_sum(xc, h, true) / (float)h;
            float inv = 1.0f / sqrtf(var + 1e-5f);
            for (int64_t i = 0; i < h; i++) {
                float v = xc[i] * inv * w[i] + b[i];
                bad += memcmp(&v, &y0[r * h + i], sizeof v) != 0;
            }
        }
        CHECK(bad == 0);
    }
    am_gemm_set_isa(best);
    am_pool_free(pool);
    am_arena_free(&sc);
}

/* A depthwise convolution with BatchNorm and a clamp as its epilogue (sub, mul, mul, add,
 * maximum, minimum: a line of per-channel scalars, which the vector kernels apply to the
 * sums in registers; am_epi_apply to rows in memory): the bits of the convolution
 * followed by the group on every instruction set, with 1 or 3 threads; batch 2, NaN and
 * inf in the input. */
static void test_depthwise_epilogue_isas(void) {
    static const struct {
        int64_t h, w, s, dil;
    } cases[] = {{13, 53, 1, 1}, {15, 14, 2, 1}, {9, 7, 1, 1}, {2, 3, 2, 1}, {16, 33, 2, 2},
                 {40, 61, 1, 1}, {7, 7, 1, 1}};
    enum { N = 2, C = 5, CAP = N * C * 40 * 61 };
    static float x[CAP], y0[CAP], y1[CAP], wt[C * 9], par[4][C];
    static const am_op_id ops[6] = {AM_OP_SUB, AM_OP_MUL, AM_OP_MUL, AM_OP_ADD, AM_OP_MAXIMUM,
                                    AM_OP_MINIMUM};
    float lo = 0.0f, hi = 6.0f;
    uint32_t state = 9;
    for (int i = 0; i < CAP; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)(state >> 8) / 1048576.0f - 8.0f;
    }
    x[3] = NAN, x[70] = INFINITY, x[140] = -INFINITY;
    for (int i = 0; i < C * 9; i++) wt[i] = 0.37f * (float)((i * 7) % 11) - 1.5f;
    for (int c = 0; c < C; c++)
        par[0][c] = 0.1f * (float)c, par[1][c] = 1.0f + 0.3f * (float)c,
        par[2][c] = 0.7f - 0.2f * (float)c, par[3][c] = 0.25f * (float)c - 0.5f;
    par[2][3] = NAN; /* (that plane's epilogue: over its rows, not in registers) */
    am_fused g = {0};
    g.n_steps = 6, g.n_ext = 7, g.self = 0, g.producer = 1;
    for (int j = 0; j < 6; j++) {
        g.steps[j].fn = am_elementwise_loop(am_op_get(ops[j]), AMBER_FLOAT32, AMBER_FLOAT32);
        g.steps[j].dtype = AMBER_FLOAT32, g.steps[j].n_in = 2;
        g.steps[j].src[0] = j ? -j : 0, g.steps[j].src[1] = j + 1;
    }
    am_error err;
    am_arena sc;
    am_arena_init(&sc, 0);
    am_pool *pool = NULL;
    CHECK(am_pool_create(3, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(cases); c++) {
        int64_t h = cases[c].h, w = cases[c].w, s = cases[c].s, dl = cases[c].dil;
        int64_t oh = (h + 2 - 2 * dl - 1) / s + 1, ow = (w + 2 - 2 * dl - 1) / s + 1;
        am_attrs a = {0};
        a.stride[0] = a.stride[1] = s, a.dilation[0] = a.dilation[1] = dl, a.groups = C;
        for (int k = 0; k < 4; k++) a.padding[k] = 1;
        amber_tensor in[2] = {{AMBER_FLOAT32, 4, {N, C, h, w}, x},
                              {AMBER_FLOAT32, 4, {C, 1, 3, 3}, wt}};
        size_t bytes = (size_t)(N * C * oh * ow) * sizeof(float);
        for (int isa = AM_GEMM_ISA_GENERIC; isa <= best; isa++) {
            am_gemm_set_isa(isa);
            /* t -1: the reference, the product then the group; 0, 1: fused, 1 and 3
             * threads; 2: the product, then am_epi_apply on its rows */
            for (int t = -1; t < 3; t++) {
                amber_tensor out = {AMBER_FLOAT32, 4, {N, C, oh, ow}, t < 0 ? y0 : y1};
                amber_tensor ext[7] = {out};
                for (int k = 0; k < 4; k++)
                    ext[k + 1] = (amber_tensor){AMBER_FLOAT32, 4, {1, C, 1, 1}, par[k]};
                ext[5] = (amber_tensor){AMBER_FLOAT32, 0, {0}, &lo};
                ext[6] = (amber_tensor){AMBER_FLOAT32, 0, {0}, &hi};
                am_ctx ctx = {&err, &sc, t == 1 ? pool : NULL, 0, NULL, NULL, false};
                am_epi e;
                CHECK(am_epi_init(&e, &g, ext, &out, 1, 2) && e.regs);
                ctx.epi = t == 0 || t == 1 ? &e : NULL;
                memset(out.data, 0, bytes);
                CHECK(am_conv_depthwise(&ctx, in, &a, &out) == AMBER_OK);
                if (t < 0) CHECK(am_fused_run(&g, &ctx, ext, &out) == AMBER_OK);
                for (int64_t i = 0; t == 2 && i < N; i++) am_epi_apply(&e, i, 0, C, 0, oh * ow);
                am_arena_reset(&sc);
                CHECK(t < 0 || !memcmp(y0, y1, bytes));
            }
        }
    }
    am_gemm_set_isa(best);
    am_pool_free(pool);
    am_arena_free(&sc);
}

/* Convolutions through the GEMM with a register epilogue (am_gemm_epi.regs: the AVX-512
 * tile applies it before its store; other sets, and the blocks it does not cover, through
 * am_epi_apply): BatchNorm then ReLU as le/where; a chain of sub, scalar * x, max and min;
 * and BatchNorm, a residual added (input first), ReLU; NaN scalars too. The bits of
 * the convolution followed by the group on every instruction set, with 1 or 3 threads,
 * with the weight packed per session or not; rows of 1, 4 and 8 in the last panel (in place:
 * panels of 8, also after 12s), odd column tails (computed column by column: a kept weight
 * of a 1x1 convolution), two k blocks; NaN and inf in the input. */
static void test_gemm_epilogue_isas(void) {
    static const struct {
        int64_t c, h, w, o, k, s, n; /* n: images (0: N) */
    } cases[] = {{3, 9, 37, 13, 3, 1, 0},   {64, 5, 7, 20, 3, 1, 0}, {16, 7, 7, 5, 1, 1, 0},
                 {8, 11, 40, 16, 3, 2, 0},  {24, 14, 14, 37, 1, 1, 0}, {32, 20, 45, 29, 3, 1, 0},
                 {5, 6, 9, 28, 3, 1, 0},
                 /* one small image: the transposed product, its blocks transposed back */
                 {16, 7, 7, 48, 1, 1, 1}, {20, 9, 5, 32, 3, 1, 1}, {40, 3, 11, 16, 1, 1, 1},
                 /* 1x1 with a kept weight on AVX-512: images in place, the last columns
                  * one by one (49 = 32 + 16 + 1, 25 = 16 + 9; two k blocks) */
                 {600, 7, 7, 40, 1, 1, 1}, {33, 5, 5, 64, 1, 1, 2}};
    enum { N = 2, CAP = N * 64 * 20 * 45 };
    static float x[CAP], y0[CAP], y1[CAP], res[CAP], wt[64 * 64 * 9], par[5][64];
    /* per group: the ops, and each step's operands (>= 0: ext; < 0: step -k - 1) */
    static const am_op_id ops[3][6] = {
        {AM_OP_SUB, AM_OP_MUL, AM_OP_MUL, AM_OP_ADD, AM_OP_LE, AM_OP_WHERE},
        {AM_OP_SUB, AM_OP_MUL, AM_OP_MAXIMUM, AM_OP_MINIMUM},
        {AM_OP_MUL, AM_OP_ADD, AM_OP_ADD, AM_OP_SUB, AM_OP_LE, AM_OP_WHERE}};
    static const int8_t src[3][6][3] = {
        {{0, 1}, {-1, 2}, {-2, 3}, {-3, 4}, {-4, 5}, {-5, 5, -4}},
        {{0, 1}, {2, -1}, {-2, 5}, {-3, 6}},
        {{0, 2}, {4, -1}, {6, -2}, {-3, 1}, {-4, 5}, {-5, 5, -4}}};
    static const int steps[3] = {6, 4, 6};
    float lo = 0.0f, hi = 6.0f;
    uint32_t state = 11;
    for (int i = 0; i < CAP; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (float)(state >> 8) / 1048576.0f - 8.0f;
        res[i] = (float)(state >> 16) / 16384.0f - 2.0f;
    }
    x[3] = NAN, x[700] = INFINITY, x[1400] = -INFINITY, res[5] = NAN;
    for (int i = 0; i < 64 * 64 * 9; i++) wt[i] = 0.037f * (float)((i * 7) % 11) - 0.15f;
    for (int c = 0; c < 64; c++)
        par[0][c] = 0.1f * (float)(c % 9), par[1][c] = 1.0f + 0.3f * (float)(c % 5),
        par[2][c] = 0.7f - 0.2f * (float)(c % 7), par[3][c] = 0.25f * (float)(c % 6) - 0.5f,
        par[4][c] = c == 2 ? NAN : par[0][c]; /* a NaN scalar: the epilogue's pass */
    am_fused gs[3] = {{0}, {0}, {0}};
    for (int gi = 0; gi < 3; gi++) { /* ext: y, 4 per-channel vectors, lo, hi (res) */
        gs[gi].n_steps = steps[gi], gs[gi].n_ext = 7;
        for (int j = 0; j < steps[gi]; j++) {
            am_fused_step *st = &gs[gi].steps[j];
            bool le = ops[gi][j] == AM_OP_LE, where = ops[gi][j] == AM_OP_WHERE;
            st->fn = am_elementwise_loop(am_op_get(ops[gi][j]), where ? AMBER_BOOL : AMBER_FLOAT32,
                                         le ? AMBER_BOOL : AMBER_FLOAT32);
            st->dtype = le ? AMBER_BOOL : AMBER_FLOAT32, st->n_in = where ? 3 : 2;
            for (int k = 0; k < 3; k++) st->src[k] = src[gi][j][k];
        }
    }
    am_error err;
    am_arena sc;
    am_arena_init(&sc, 0);
    am_pool *pool = NULL;
    CHECK(am_pool_create(3, AM_POOL_SPIN_SESSION_NS, 0.0, &pool, &err) == AMBER_OK);
    const am_op *conv = am_op_get(AM_OP_CONV2D);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(cases); c++) {
        int64_t h = cases[c].h, w = cases[c].w, s = cases[c].s, k = cases[c].k, o = cases[c].o;
        int64_t p = k / 2, oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
        int64_t n = cases[c].n ? cases[c].n : N;
        am_attrs a = {0};
        a.stride[0] = a.stride[1] = s, a.dilation[0] = a.dilation[1] = 1, a.groups = 1;
        for (int i = 0; i < 4; i++) a.padding[i] = p;
        amber_tensor in[2] = {{AMBER_FLOAT32, 4, {n, cases[c].c, h, w}, x},
                              {AMBER_FLOAT32, 4, {o, cases[c].c, k, k}, wt}};
        size_t bytes = (size_t)(n * o * oh * ow) * sizeof(float);
        for (int gi = 0; gi < 3; gi++)
            for (int isa = AM_GEMM_ISA_GENERIC; isa <= best; isa++)
                for (int t = -1; t < 4; t++) { /* t & 1: 3 threads; t & 2: a kept weight */
                    am_gemm_set_isa(isa);
                    amber_tensor out = {AMBER_FLOAT32, 4, {n, o, oh, ow}, t < 0 ? y0 : y1};
                    amber_tensor ext[7] = {out};
                    for (int i = 0; i < 4; i++)
                        ext[i + 1] = (amber_tensor){AMBER_FLOAT32, 4, {1, o, 1, 1}, par[i]};
                    if (gi == 1 && c % 2) ext[1].data = par[4];
                    ext[5] = (amber_tensor){AMBER_FLOAT32, 0, {0}, &lo};
                    ext[6] = gi == 2 ? (amber_tensor){AMBER_FLOAT32, 4, {n, o, oh, ow}, res}
                                     : (amber_tensor){AMBER_FLOAT32, 0, {0}, &hi};
                    am_keep keep;
                    am_keep_init(&keep, plain_alloc, plain_release, NULL);
                    am_ctx ctx = {&err, &sc, t > 0 && (t & 1) ? pool : NULL,
                                  t > 0 && (t & 2) ? 2u : 0u, &keep, NULL, false};
                    am_epi e;
                    CHECK(am_epi_init(&e, &gs[gi], ext, &out, 1, 2) && e.tile &&
                          e.regs == (gi < 2));
                    ctx.epi = t >= 0 ? &e : NULL;
                    memset(out.data, 0, bytes);
                    CHECK(conv->kernel(conv, &ctx, in, 2, &a, &out) == AMBER_OK);
                    if (t < 0) CHECK(am_fused_run(&gs[gi], &ctx, ext, &out) == AMBER_OK);
                    am_arena_reset(&sc);
                    am_keep_free(&keep);
                    CHECK(t < 0 || !memcmp(y0, y1, bytes));
                }
    }
    am_gemm_set_isa(best);
    am_pool_free(pool);
    am_arena_free(&sc);
}

/* Depthwise convolution: AVX2 and AVX-512 give the same bits (the same fused multiply-adds
 * in the same order: a scalar chain of fmaf over the taps in (p, q) order from +0, padding
 * taps included), as do 1 and 3 threads; every set is near a double reference. Rows
 * of whole and partial vectors, rows narrower than half a vector, strides 1-3; planes of
 * 1x1 to 3x3 and odd widths, padding wider than the kernel's reach, dilation; small
 * planes of rows as wide as the input's at stride 1 or 2 (up to 64 outputs, rows of up
 * to 32 inputs at stride 2: k_depthwise.c's flat planes). */
static void test_depthwise_isas(void) {
    static const struct {
        int64_t h, w, s, k, pad, dil;
    } cases[] = {{13, 53, 1, 3, 1, 1}, {17, 41, 2, 3, 1, 1}, {9, 7, 1, 3, 1, 1},
                 {15, 14, 2, 3, 1, 1}, {12, 37, 3, 3, 1, 1}, {11, 20, 1, 5, 1, 1},
                 {1, 1, 1, 3, 1, 1},   {2, 2, 1, 3, 1, 1},   {3, 3, 2, 3, 1, 1},
                 {2, 3, 2, 3, 1, 1},   {5, 9, 1, 3, 2, 1},   {4, 5, 1, 3, 3, 1},
                 {9, 13, 1, 3, 2, 2},  {16, 33, 2, 3, 2, 2}, {7, 19, 1, 5, 3, 2},
                 {3, 17, 3, 3, 2, 1},  {8, 8, 1, 3, 1, 1},   {7, 6, 1, 5, 2, 1},
                 {11, 9, 2, 3, 2, 2},  {4, 31, 2, 3, 1, 1},  {5, 32, 2, 3, 1, 1}};
    enum { C = 3, CAP = C * 17 * 53 };
    static double x[CAP], wt[C * 25], y[4][CAP + 8];
    static float xf[CAP], wf[C * 25];
    uint32_t state = 5;
    for (int i = 0; i < CAP; i++) {
        state = state * 1664525u + 1013904223u;
        x[i] = (double)(state >> 8) / 8388608.0 - 1.0;
        xf[i] = (float)x[i];
    }
    for (int i = 0; i < C * 25; i++) wf[i] = (float)(wt[i] = 0.37 * ((i * 7) % 11) - 1.5);
    amber_kernel_context *kc[2] = {NULL, NULL};
    CHECK(amber_kernel_context_create(1, &kc[0]) == AMBER_OK);
    CHECK(amber_kernel_context_create(3, &kc[1]) == AMBER_OK);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(cases); c++) {
        int64_t k = cases[c].k, s = cases[c].s, h = cases[c].h, w = cases[c].w;
        int64_t pd = cases[c].pad, dl = cases[c].dil;
        int64_t oh = (h + 2 * pd - dl * (k - 1) - 1) / s + 1;
        int64_t ow = (w + 2 * pd - dl * (k - 1) - 1) / s + 1;
        char attrs[200];
        snprintf(attrs, sizeof attrs, "{\"stride\": [%d, %d], \"padding\": [%d, %d, %d, %d], "
                 "\"dilation\": [%d, %d], \"groups\": %d}", (int)s, (int)s, (int)pd, (int)pd,
                 (int)pd, (int)pd, (int)dl, (int)dl, C);
        for (int f64 = 0; f64 < 2; f64++) {
            amber_dtype dt = f64 ? AMBER_FLOAT64 : AMBER_FLOAT32;
            amber_tensor in[2] = {{dt, 4, {1, C, h, w}, f64 ? (void *)x : (void *)xf},
                                  {dt, 4, {C, 1, k, k}, f64 ? (void *)wt : (void *)wf}};
            size_t bytes = (size_t)(C * oh * ow) * amber_dtype_size(dt);
            int bad = 0;
            for (int isa = AM_GEMM_ISA_GENERIC; isa <= best; isa++) {
                am_gemm_set_isa(isa);
                for (int t = 0; t < 2; t++) {
                    amber_kernel *kern = NULL;
                    CHECK(amber_kernel_prepare(kc[t], "conv2d", attrs, &kern) == AMBER_OK);
                    amber_tensor out = {dt, 4, {1, C, oh, ow}, y[isa > 0 ? 1 + t : 0]};
                    unsigned char *past = (unsigned char *)out.data + bytes;
                    memset(past, 0xab, 64); /* nothing written past the output */
                    CHECK(amber_kernel_run(kc[t], kern, in, 2, &out) == AMBER_OK);
                    for (int i = 0; i < 64; i++) bad += past[i] != 0xab;
                    amber_kernel_free(kern);
                }
                if (isa == AM_GEMM_ISA_AVX2) memcpy(y[3], y[1], bytes);
                if (isa > AM_GEMM_ISA_GENERIC)
                    bad += memcmp(y[1], y[2], bytes) != 0 || memcmp(y[1], y[3], bytes) != 0;
                for (int64_t o = 0; o < C; o++) /* the reference, within the sum's bound */
                    for (int64_t i = 0; i < oh; i++)
                        for (int64_t j = 0; j < ow; j++) {
                            double want = 0, mag = 0;
                            for (int64_t p = 0; p < k; p++)
                                for (int64_t q = 0; q < k; q++) {
                                    int64_t r = i * s + p * dl - pd, cc = j * s + q * dl - pd;
                                    if (r < 0 || r >= h || cc < 0 || cc >= w) continue;
                                    double v = wt[(o * k + p) * k + q] * x[(o * h + r) * w + cc];
                                    want += v, mag += fabs(v);
                                }
                            size_t at = (size_t)((o * oh + i) * ow + j);
                            double got = f64 ? y[isa > 0][at] : ((float *)y[isa > 0])[at];
                            bad += fabs(got - want) > mag * (f64 ? 1e-14 : 1e-5) + 1e-30;
                            float chain = 0.0f; /* with FMA: its bits, padding taps included */
                            for (int64_t p = 0; p < k; p++)
                                for (int64_t q = 0; q < k; q++) {
                                    int64_t r = i * s + p * dl - pd, cc = j * s + q * dl - pd;
                                    bool inside = r >= 0 && r < h && cc >= 0 && cc < w;
                                    chain = fmaf(wf[(o * k + p) * k + q],
                                                 inside ? xf[(o * h + r) * w + cc] : 0.0f, chain);
                                }
                            bad += !f64 && isa > 0 && memcmp(&chain, &((float *)y[1])[at], 4);
                        }
            }
            CHECK(bad == 0);
        }
    }
    am_gemm_set_isa(best);
    amber_kernel_context_free(kc[0]);
    amber_kernel_context_free(kc[1]);
}

/* Convolutions computed directly on AVX-512, the GEMM below it: small ones without groups
 * (k_conv_small.c) and 3x3 ones (k_conv3x3.c: odd widths (partial tiles), bands across
 * rows, channels not a multiple of 64 or of the channel block, padding 0, 1 and
 * asymmetric, strides 1 and 2, a 1x1 image). Within the sum's bound of the float64
 * reference and the same bits at 1 and 3 threads; with at most 512 taps (one GEMM depth
 * block) the same bits from every instruction set with FMA too. */
/* The rows' form of a 3x3 convolution at stride 1 (k_conv3x3.c), as scalars: each filter
 * row's transforms u rounded once from their exact values, each pair's v from the padded
 * input, m_k one chain of fmaf over (c, p) from +0, then (m0 + m1) + m2 and
 * (m1 - m2) - m3. y[n][o][oh][ow]. */
static void rows_ref(const float *x, const float *wt, int64_t n, int64_t ch, int64_t h,
                     int64_t w, int64_t o, int64_t pt, int64_t pl, int64_t oh, int64_t ow,
                     float *y) {
    for (int64_t ni = 0; ni < n; ni++)
        for (int64_t oc = 0; oc < o; oc++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t jp = 0; 2 * jp < ow; jp++) {
                    float m[4] = {0, 0, 0, 0};
                    for (int64_t cc = 0; cc < ch; cc++)
                        for (int64_t p = 0; p < 3; p++) {
                            const float *g = wt + ((oc * ch + cc) * 3 + p) * 3;
                            float u[4] = {g[0], (float)(((double)g[0] + g[1] + g[2]) / 2),
                                          (float)(((double)g[0] - g[1] + g[2]) / 2), g[2]};
                            float d[4];
                            for (int q = 0; q < 4; q++) {
                                int64_t r = i + p - pt, col = 2 * jp + q - pl;
                                bool in = r >= 0 && r < h && col >= 0 && col < w;
                                d[q] = in ? x[((ni * ch + cc) * h + r) * w + col] : 0.0f;
                            }
                            float v[4] = {d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]};
                            for (int k = 0; k < 4; k++) m[k] = fmaf(u[k], v[k], m[k]);
                        }
                    float *row = y + ((ni * o + oc) * oh + i) * ow;
                    row[2 * jp] = (m[0] + m[1]) + m[2];
                    if (2 * jp + 1 < ow) row[2 * jp + 1] = (m[1] - m[2]) - m[3];
                }
}

static void test_conv_direct_isas(void) {
    static const struct {
        int64_t n, c, h, w, o, kh, kw, pt, pb, pl, pr, sh, sw;
    } cases[] = {
        {3, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1},   {2, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 3, 9, 11, 13, 5, 3, 2, 0, 1, 2, 1, 1},   {2, 14, 6, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1},
        {2, 56, 6, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1},    {1, 2, 12, 30, 9, 1, 3, 0, 0, 0, 1, 1, 1},
        {2, 4, 5, 5, 5, 2, 2, 0, 1, 1, 0, 1, 1},
        /* no padding, one column per window: read in place (1x1: the GEMM) */
        {2, 16, 13, 13, 16, 1, 1, 0, 0, 0, 0, 1, 1}, {1, 4, 9, 11, 12, 3, 1, 0, 0, 0, 0, 1, 1},
        /* 3x3 (C * 9 > 80 taps, 32 output channels or more) */
        {2, 12, 9, 13, 40, 3, 3, 1, 1, 1, 1, 1, 1},  {1, 16, 17, 23, 64, 3, 3, 0, 0, 0, 0, 1, 1},
        {1, 56, 7, 7, 100, 3, 3, 2, 0, 1, 3, 1, 1},  {1, 70, 6, 5, 96, 3, 3, 1, 1, 1, 1, 1, 1},
        {3, 9, 1, 1, 33, 3, 3, 1, 1, 1, 1, 1, 1},    {2, 13, 11, 3, 130, 3, 3, 1, 1, 0, 2, 1, 1},
        {1, 20, 11, 30, 48, 3, 3, 1, 1, 1, 1, 2, 2}, {2, 9, 7, 31, 64, 3, 3, 1, 0, 0, 1, 1, 2},
        /* wider rows (the rows' form on AVX2 too): odd, a partial block, two images */
        {2, 12, 6, 29, 40, 3, 3, 1, 1, 1, 1, 1, 1},  {1, 9, 5, 48, 64, 3, 3, 0, 1, 2, 1, 1, 1}};
    enum { CAP = 70000 };
    static float x[CAP], wt[CAP], y[3][CAP], ref[CAP];
    uint32_t state = 11;
    for (int i = 0; i < CAP; i++) {
        x[i] = (float)((state = state * 1664525u + 1013904223u) >> 8) / 8388608.0f - 1.0f;
        wt[i] = (float)((state = state * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
    }
    amber_kernel_context *kc[2] = {NULL, NULL};
    CHECK(amber_kernel_context_create(1, &kc[0]) == AMBER_OK);
    CHECK(amber_kernel_context_create(3, &kc[1]) == AMBER_OK);
    int best = am_gemm_set_isa(99);
    for (size_t c = 0; c < AM_ARRAY_LEN(cases); c++) {
        int64_t n = cases[c].n, ch = cases[c].c, h = cases[c].h, w = cases[c].w, o = cases[c].o;
        int64_t kh = cases[c].kh, kw = cases[c].kw, pt = cases[c].pt, pl = cases[c].pl;
        int64_t sh = cases[c].sh, sw = cases[c].sw;
        int64_t oh = (h + pt + cases[c].pb - kh) / sh + 1;
        int64_t ow = (w + pl + cases[c].pr - kw) / sw + 1;
        CHECK(n * ch * h * w <= CAP && o * ch * kh * kw <= CAP && n * o * oh * ow <= CAP);
        char attrs[160];
        snprintf(attrs, sizeof attrs, "{\"stride\": [%d, %d], \"padding\": [%d, %d, %d, %d], "
                 "\"dilation\": [1, 1], \"groups\": 1}", (int)sh, (int)sw, (int)pt,
                 (int)cases[c].pb, (int)pl, (int)cases[c].pr);
        amber_tensor in[2] = {{AMBER_FLOAT32, 4, {n, ch, h, w}, x},
                              {AMBER_FLOAT32, 4, {o, ch, kh, kw}, wt}};
        size_t bytes = sizeof(float) * (size_t)(n * o * oh * ow);
        int bad = 0;
        /* NOTE: 3x3 at stride 1 on rows of 5 or more outputs (AVX2: 8) runs by rows'
         * transforms (k_conv3x3.c): other bits than the GEMM's, those of rows_ref */
        bool form = kh == 3 && kw == 3 && sh == 1 && sw == 1 && o >= 32 && ch >= 4;
        bool rows = best >= AM_GEMM_ISA_AVX512 && form && ow >= 5;
        if (form && ow >= 5) rows_ref(x, wt, n, ch, h, w, o, pt, pl, oh, ow, ref);
        for (int isa = best; isa >= AM_GEMM_ISA_AVX2; isa--) { /* y[0]: the best set's */
            am_gemm_set_isa(isa);
            for (int t = 0; t < 2 && (isa == best || ch * kh * kw <= 512); t++) {
                amber_kernel *kern = NULL;
                CHECK(amber_kernel_prepare(kc[t], "conv2d", attrs, &kern) == AMBER_OK);
                float *got = y[isa == best ? t : 2];
                amber_tensor out = {AMBER_FLOAT32, 4, {n, o, oh, ow}, got};
                CHECK(amber_kernel_run(kc[t], kern, in, 2, &out) == AMBER_OK);
                amber_kernel_free(kern);
                bool by_rows = form && ow >= (isa >= AM_GEMM_ISA_AVX512 ? 5 : 8);
                bad += by_rows ? memcmp(ref, got, bytes) != 0
                               : (isa == best || !rows) && memcmp(y[0], got, bytes) != 0;
            }
        }
        for (int64_t i = 0; best >= AM_GEMM_ISA_AVX2 && i < n * o * oh * ow; i++) {
            int64_t j = i % ow, r = i / ow % oh, oc = i / (ow * oh) % o, ni = i / (ow * oh * o);
            double want = 0, mag = 0;
            for (int64_t cc = 0; cc < ch; cc++)
                for (int64_t p = 0; p < kh; p++)
                    for (int64_t q = 0; q < kw; q++) {
                        int64_t rr = r * sh + p - pt, col = j * sw + q - pl;
                        if (rr < 0 || rr >= h || col < 0 || col >= w) continue;
                        double v = (double)wt[((oc * ch + cc) * kh + p) * kw + q] *
                                   x[((ni * ch + cc) * h + rr) * w + col];
                        want += v, mag += fabs(v);
                    }
            bad += fabs(y[0][i] - want) > mag * 1e-5 + 1e-30;
        }
        CHECK(bad == 0);
    }
    am_gemm_set_isa(best);
    amber_kernel_context_free(kc[0]);
    amber_kernel_context_free(kc[1]);
}

static void test_kernel_api(void) {
    enum { M = 9, K = 37, N = 21 };
    static float a[M * K], b[N * K], bt[K * N], c0[M * N], c1[M * N], e0[N * K], e1[N * K];
    uint32_t state = 7;
    for (int i = 0; i < M * K; i++) a[i] = (float)((state = state * 1664525u + 1013904223u) >> 9) / 8388608.0f - 0.5f;
    for (int i = 0; i < N * K; i++) b[i] = (float)((state = state * 1664525u + 1013904223u) >> 9) / 8388608.0f - 0.5f;
    for (int i = 0; i < K; i++)
        for (int j = 0; j < N; j++) bt[i * N + j] = b[j * K + i];
    amber_kernel_context *kc = NULL;
    CHECK(amber_kernel_context_create(2, &kc) == AMBER_OK && amber_kernel_context_threads(kc) == 2);
    amber_kernel *mm = NULL, *ex = NULL;
    CHECK(amber_kernel_prepare(kc, "matmul", NULL, &mm) == AMBER_OK);
    CHECK(amber_kernel_prepare(kc, "exp", "", &ex) == AMBER_OK);
    CHECK(amber_kernel_prepare(kc, "sum", "{\"axes\": [0]}", &(amber_kernel *){0}) == AMBER_ERR_FORMAT);
    int64_t bstr[2] = {1, K};
    const int64_t *strides[2] = {NULL, bstr};
    for (int64_t m = 1; m <= M; m += 4) { /* 1: few rows; 5, 9: the blocked product */
        amber_tensor in[2] = {{AMBER_FLOAT32, 2, {m, K}, a}, {AMBER_FLOAT32, 2, {K, N}, bt}};
        amber_tensor o0 = {AMBER_FLOAT32, 2, {m, N}, c0}, o1 = {AMBER_FLOAT32, 2, {m, N}, c1};
        CHECK(amber_kernel_run(kc, mm, in, 2, &o0) == AMBER_OK);
        in[1].data = b; /* the transpose of b, by strides */
        CHECK(amber_kernel_run_strided(kc, mm, in, strides, 2, &o1) == AMBER_OK);
        CHECK(!memcmp(c0, c1, sizeof(float) * (size_t)(m * N)));
    }
    amber_tensor x = {AMBER_FLOAT32, 2, {K, N}, b}, y0 = {AMBER_FLOAT32, 2, {K, N}, e0};
    amber_tensor xt = {AMBER_FLOAT32, 2, {K, N}, bt}, y1 = {AMBER_FLOAT32, 2, {K, N}, e1};
    CHECK(amber_kernel_run(kc, ex, &xt, 1, &y0) == AMBER_OK);
    CHECK(amber_kernel_run_strided(kc, ex, &x, &strides[1], 1, &y1) == AMBER_OK);
    CHECK(!memcmp(e0, e1, sizeof e0));
    amber_tensor wrong = {AMBER_FLOAT32, 2, {N, K}, e1}, ask = {AMBER_FLOAT32, 0, {0}, NULL};
    CHECK(amber_kernel_run(kc, ex, &xt, 1, &wrong) == AMBER_ERR_SHAPE);
    CHECK(amber_kernel_run(kc, ex, &xt, 1, &ask) == AMBER_OK && ask.rank == 2 &&
          ask.shape[0] == K && ask.shape[1] == N);
    CHECK(amber_kernel_run(kc, mm, &xt, 1, &y0) == AMBER_ERR_INVALID_ARGUMENT);
    amber_kernel_free(mm);
    amber_kernel_free(ex);
    amber_kernel_context_free(kc);
}

int main(void) {
    test_cpu_isa();
    test_kernel_api();
    test_transcendental();
    test_lstm_cell();
    test_dim_expressions();
    test_gemm();
    test_conv_scratch_limit();
    test_pool();
    test_iter_pool();
    test_pool2d_isas();
    test_layernorm_isas();
    test_depthwise_isas();
    test_depthwise_epilogue_isas();
    test_gemm_epilogue_isas();
    test_conv_direct_isas();
    test_sha256();
    test_json();
    test_arena();
    test_npy();
    test_tensor_and_ops();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("all core checks passed\n");
    return 0;
}
