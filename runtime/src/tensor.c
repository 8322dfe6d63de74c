#include "internal.h"

#include <stdio.h>
#include <string.h>

bool am_dtype_valid(int dtype) { return dtype >= AMBER_FLOAT32 && dtype <= AMBER_INT16; }

const char *amber_dtype_name(amber_dtype dtype) {
    static const char *const names[] = {"float32", "float64", "int32", "int64", "bool",
                                        "float16", "bfloat16", "int8", "uint8", "int16"};
    return am_dtype_valid((int)dtype) ? names[dtype] : NULL;
}

size_t amber_dtype_size(amber_dtype dtype) {
    static const size_t sizes[] = {4, 8, 4, 8, 1, 2, 2, 1, 1, 2};
    return am_dtype_valid((int)dtype) ? sizes[dtype] : 0;
}

amber_status am_tensor_check(const amber_tensor *t, int64_t *numel, size_t *nbytes,
                             am_error *err) {
    if (!t) return am_fail(err, AMBER_ERR_INVALID_ARGUMENT, "tensor is NULL");
    if (!am_dtype_valid((int)t->dtype))
        return am_fail(err, AMBER_ERR_DTYPE, "invalid dtype code %d", (int)t->dtype);
    if (t->rank < 0 || t->rank > AMBER_MAX_RANK)
        return am_fail(err, AMBER_ERR_SHAPE, "rank %d is outside 0..%d", (int)t->rank,
                       AMBER_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0)
            return am_fail(err, AMBER_ERR_SHAPE, "dimension %d is negative (%lld)", i,
                           (long long)t->shape[i]);
        if (!am_mul_i64(n, t->shape[i], &n))
            return am_fail(err, AMBER_ERR_LIMIT, "element count overflows");
    }
    size_t bytes;
    if ((uint64_t)n > SIZE_MAX || !am_mul_size((size_t)n, amber_dtype_size(t->dtype), &bytes) ||
        bytes > (size_t)INT64_MAX)
        return am_fail(err, AMBER_ERR_LIMIT, "tensor of %lld elements is too large", (long long)n);
    if (numel) *numel = n;
    if (nbytes) *nbytes = bytes;
    return AMBER_OK;
}

amber_status amber_tensor_size(const amber_tensor *t, int64_t *numel, size_t *nbytes) {
    return am_tensor_check(t, numel, nbytes, NULL);
}

int64_t am_numel(const amber_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

const char *am_shape_str(const int64_t *shape, int rank, char *buf, size_t n) {
    size_t o = 0;
    if (n < 4) return "";
    buf[o++] = '(';
    for (int i = 0; i < rank && o + 24 < n; i++) {
        int w = snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)shape[i]);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (rank == 1 && o + 2 < n) buf[o++] = ',';
    if (o + 2 > n) o = n - 2;
    buf[o++] = ')';
    buf[o] = '\0';
    return buf;
}
