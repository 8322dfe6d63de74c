/* Shape and dtype rules of every primitive (the C side of the registry's `infer`). */
#include "ops.h"

#include <string.h>

#define SHAPE_BUF 160
#define SH(t, buf) am_shape_str((t)->shape, (t)->rank, buf, sizeof buf)

static void set_shape(amber_tensor *out, amber_dtype dt, int rank, const int64_t *shape) {
    out->dtype = dt;
    out->rank = rank;
    if (rank) memcpy(out->shape, shape, sizeof(int64_t) * (size_t)rank);
}

static amber_status same_dtype(const am_op *op, const amber_tensor *in, int n, am_error *err) {
    for (int i = 1; i < n; i++)
        if (in[i].dtype != in[0].dtype)
            return am_fail(err, AMBER_ERR_DTYPE,
                           "%s: operands have different dtypes (%s and %s); cast one first",
                           op->name, amber_dtype_name(in[0].dtype), amber_dtype_name(in[i].dtype));
    return AMBER_OK;
}

static amber_status broadcast(const am_op *op, const amber_tensor *in, int n, int64_t *shape,
                              int *rank, am_error *err) {
    int r = 0;
    for (int i = 0; i < n; i++)
        if (in[i].rank > r) r = in[i].rank;
    for (int d = 0; d < r; d++) {
        int64_t dim = 1;
        for (int i = 0; i < n; i++) {
            int j = d - (r - in[i].rank);
            if (j < 0 || in[i].shape[j] == 1) continue;
            if (dim == 1) {
                dim = in[i].shape[j];
            } else if (in[i].shape[j] != dim) {
                char a[SHAPE_BUF], b[SHAPE_BUF];
                return am_fail(err, AMBER_ERR_SHAPE,
                               "%s: shapes %s and %s cannot be broadcast (dimension %d: %lld vs "
                               "%lld); dims must be equal or 1",
                               op->name, SH(&in[0], a), SH(&in[i], b), d - r, (long long)dim,
                               (long long)in[i].shape[j]);
            }
        }
        shape[d] = dim;
    }
    *rank = r;
    return AMBER_OK;
}

static amber_status check_axis(const am_op *op, int64_t axis, int rank, am_error *err) {
    if (axis < 0 || axis >= rank)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: axis %lld is out of range for a tensor of rank %d",
                       op->name, (long long)axis, rank);
    return AMBER_OK;
}

amber_status infer_unary(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                         amber_tensor *out, am_error *err) {
    (void)op, (void)n, (void)a, (void)err;
    set_shape(out, in[0].dtype, in[0].rank, in[0].shape);
    return AMBER_OK;
}

amber_status infer_binary(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    (void)a;
    amber_status st = same_dtype(op, in, n, err);
    if (st != AMBER_OK) return st;
    int64_t shape[AMBER_MAX_RANK];
    int rank = 0;
    if ((st = broadcast(op, in, n, shape, &rank, err)) != AMBER_OK) return st;
    set_shape(out, in[0].dtype, rank, shape);
    return AMBER_OK;
}

amber_status infer_compare(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                           amber_tensor *out, am_error *err) {
    amber_status st = infer_binary(op, in, n, a, out, err);
    out->dtype = AMBER_BOOL;
    return st;
}

amber_status infer_where(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                         amber_tensor *out, am_error *err) {
    (void)a, (void)n;
    amber_status st = same_dtype(op, in + 1, 2, err);
    if (st != AMBER_OK) return st;
    int64_t shape[AMBER_MAX_RANK];
    int rank = 0;
    if ((st = broadcast(op, in, 3, shape, &rank, err)) != AMBER_OK) return st;
    set_shape(out, in[1].dtype, rank, shape);
    return AMBER_OK;
}

amber_status infer_cast(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                        amber_tensor *out, am_error *err) {
    (void)n;
    if (!am_dtype_valid((int)a->dtype))
        return am_fail(err, AMBER_ERR_DTYPE, "%s: invalid target dtype", op->name);
    set_shape(out, a->dtype, in[0].rank, in[0].shape);
    return AMBER_OK;
}

amber_status infer_matmul(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    (void)a, (void)n;
    amber_status st = same_dtype(op, in, 2, err);
    if (st != AMBER_OK) return st;
    const amber_tensor *x = &in[0], *y = &in[1];
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    if (x->rank < 2 || y->rank < 2)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: operands must have rank >= 2, got %s and %s",
                       op->name, SH(x, b1), SH(y, b2));
    if (x->shape[x->rank - 1] != y->shape[y->rank - 2])
        return am_fail(err, AMBER_ERR_SHAPE, "%s: inner dimensions differ: %s @ %s (%lld vs %lld)",
                       op->name, SH(x, b1), SH(y, b2), (long long)x->shape[x->rank - 1],
                       (long long)y->shape[y->rank - 2]);
    amber_tensor bx, by; /* copies of the used dims only (am_tensor_copy) */
    am_tensor_copy(&bx, x);
    am_tensor_copy(&by, y);
    bx.rank -= 2;
    by.rank -= 2;
    amber_tensor both[2] = {bx, by};
    int64_t shape[AMBER_MAX_RANK];
    int rank = 0;
    if ((st = broadcast(op, both, 2, shape, &rank, err)) != AMBER_OK) return st;
    if (rank + 2 > AMBER_MAX_RANK)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: result rank exceeds %d", op->name, AMBER_MAX_RANK);
    shape[rank] = x->shape[x->rank - 2];
    shape[rank + 1] = y->shape[y->rank - 1];
    set_shape(out, x->dtype, rank + 2, shape);
    return AMBER_OK;
}

/* ---------------------------------------------------------------- convolution */

static int64_t conv_out(int64_t n, int64_t k, int64_t lo, int64_t hi, int64_t s, int64_t d) {
    /* floor((n + lo + hi - d*(k-1) - 1) / s) + 1, with floor toward -inf; inputs are bounded. */
    int64_t ext, num;
    if (!am_mul_i64(d, k - 1, &ext) || ext > n + lo + hi) return 0;
    num = n + lo + hi - ext - 1;
    int64_t q = num / s;
    if (num % s != 0 && num < 0) q--;
    return q + 1;
}

/* Validates a conv configuration; out receives (N, O, OH, OW). */
static amber_status check_conv(const am_op *op, const int64_t *xs, const int64_t *ws,
                               const am_attrs *a, int64_t *out, am_error *err) {
    const int64_t lim = (int64_t)1 << 40;
    if (a->groups < 1 || a->stride[0] < 1 || a->stride[1] < 1 || a->dilation[0] < 1 ||
        a->dilation[1] < 1 || a->padding[0] < 0 || a->padding[1] < 0 || a->padding[2] < 0 ||
        a->padding[3] < 0)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: need groups, stride, dilation >= 1 and padding >= 0",
                       op->name);
    for (int i = 0; i < 4; i++)
        if (xs[i] > lim || ws[i] > lim || a->padding[i] > lim || (i < 2 && (a->stride[i] > lim ||
            a->dilation[i] > lim)) || a->groups > lim)
            return am_fail(err, AMBER_ERR_LIMIT, "%s: sizes beyond 2^40 are not supported", op->name);
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    int64_t cg_groups;
    if (!am_mul_i64(ws[1], a->groups, &cg_groups) || xs[1] != cg_groups || ws[0] % a->groups)
        return am_fail(err, AMBER_ERR_SHAPE,
                       "%s: input %s and weight %s disagree for groups=%lld: need C == "
                       "weight.shape[1] * groups and O divisible by groups",
                       op->name, am_shape_str(xs, 4, b1, sizeof b1),
                       am_shape_str(ws, 4, b2, sizeof b2), (long long)a->groups);
    int64_t oh = conv_out(xs[2], ws[2], a->padding[0], a->padding[1], a->stride[0], a->dilation[0]);
    int64_t ow = conv_out(xs[3], ws[3], a->padding[2], a->padding[3], a->stride[1], a->dilation[1]);
    if (oh < 1 || ow < 1)
        return am_fail(err, AMBER_ERR_SHAPE,
                       "%s: kernel %lldx%lld (dilation (%lld, %lld)) is larger than the padded "
                       "input %s",
                       op->name, (long long)ws[2], (long long)ws[3], (long long)a->dilation[0],
                       (long long)a->dilation[1], am_shape_str(xs, 4, b1, sizeof b1));
    out[0] = xs[0];
    out[1] = ws[0];
    out[2] = oh;
    out[3] = ow;
    return AMBER_OK;
}

static amber_status need_rank4(const am_op *op, const amber_tensor *in, am_error *err) {
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    if (in[0].rank != 4 || in[1].rank != 4)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: operands must be rank 4, got %s and %s", op->name,
                       SH(&in[0], b1), SH(&in[1], b2));
    return same_dtype(op, in, 2, err);
}

amber_status infer_conv2d(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    (void)n;
    amber_status st = need_rank4(op, in, err);
    int64_t shape[4];
    if (st == AMBER_OK) st = check_conv(op, in[0].shape, in[1].shape, a, shape, err);
    if (st == AMBER_OK) set_shape(out, in[0].dtype, 4, shape);
    return st;
}

amber_status infer_conv2d_input_grad(const am_op *op, const amber_tensor *in, int n,
                                     const am_attrs *a, amber_tensor *out, am_error *err) {
    (void)n;
    amber_status st = need_rank4(op, in, err);
    if (st != AMBER_OK) return st;
    const amber_tensor *g = &in[0], *w = &in[1];
    if (a->hw[0] < 0 || a->hw[1] < 0)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: input_hw must be non-negative", op->name);
    int64_t c;
    if (!am_mul_i64(w->shape[1], a->groups < 1 ? 1 : a->groups, &c))
        return am_fail(err, AMBER_ERR_LIMIT, "%s: channel count overflows", op->name);
    int64_t xs[4] = {g->shape[0], c, a->hw[0], a->hw[1]}, want[4];
    if ((st = check_conv(op, xs, w->shape, a, want, err)) != AMBER_OK) return st;
    if (memcmp(want, g->shape, sizeof want) != 0) {
        char b1[SHAPE_BUF], b2[SHAPE_BUF];
        return am_fail(err, AMBER_ERR_SHAPE, "%s: g has shape %s, expected %s", op->name,
                       SH(g, b1), am_shape_str(want, 4, b2, sizeof b2));
    }
    set_shape(out, g->dtype, 4, xs);
    return AMBER_OK;
}

amber_status infer_conv2d_weight_grad(const am_op *op, const amber_tensor *in, int n,
                                      const am_attrs *a, amber_tensor *out, am_error *err) {
    (void)n;
    amber_status st = need_rank4(op, in, err);
    if (st != AMBER_OK) return st;
    const amber_tensor *x = &in[0], *g = &in[1];
    if (a->kernel[0] < 0 || a->kernel[1] < 0)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: kernel_hw must be non-negative", op->name);
    if (a->groups < 1)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: need groups, stride, dilation >= 1 and padding >= 0",
                       op->name);
    int64_t ws[4] = {g->shape[1], x->shape[1] / a->groups, a->kernel[0], a->kernel[1]}, want[4];
    if ((st = check_conv(op, x->shape, ws, a, want, err)) != AMBER_OK) return st;
    if (memcmp(want, g->shape, sizeof want) != 0) {
        char b1[SHAPE_BUF], b2[SHAPE_BUF];
        return am_fail(err, AMBER_ERR_SHAPE, "%s: g has shape %s, expected %s", op->name,
                       SH(g, b1), am_shape_str(want, 4, b2, sizeof b2));
    }
    set_shape(out, x->dtype, 4, ws);
    return AMBER_OK;
}

/* ---------------------------------------------------------------- pooling */

/* Output length of one pooled dim, or 0 when the window does not fit. */
static int64_t pool_out(int64_t n, int64_t k, int64_t lo, int64_t hi, int64_t s, int64_t d,
                        bool ceil_mode) {
    int64_t ext = d * (k - 1); /* d, k <= 2^30 and n <= 2^40: no overflow */
    int64_t span = n + lo + hi - ext - 1;
    if (span < 0) return 0;
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= n + lo) out--; /* start inside the input or top pad */
    return out;
}

/* max_pool2d, max_pool2d_grad (x, g), avg_pool2d, avg_pool2d_grad (g; x's H, W from
 * input_hw): validates the window and gives the pooled shape and the result's. */
amber_status infer_pool2d(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    const int64_t lim = (int64_t)1 << 30;
    bool grad_avg = op->id == AM_OP_AVG_POOL2D_GRAD, avg = grad_avg || op->id == AM_OP_AVG_POOL2D;
    amber_status st = same_dtype(op, in, n, err);
    if (st != AMBER_OK) return st;
    for (int i = 0; i < n; i++)
        if (in[i].rank != 4)
            return am_fail(err, AMBER_ERR_SHAPE, "%s: operands must be (N, C, H, W), got %s",
                           op->name, SH(&in[i], b1));
    int64_t dil[2] = {avg ? 1 : a->dilation[0], avg ? 1 : a->dilation[1]};
    for (int i = 0; i < 2; i++) {
        if (a->kernel[i] < 1 || a->stride[i] < 1 || dil[i] < 1 || a->padding[2 * i] < 0 ||
            a->padding[2 * i + 1] < 0 || a->kernel[i] > lim || a->stride[i] > lim ||
            dil[i] > lim || (grad_avg && (a->hw[i] < 0 || a->hw[i] > ((int64_t)1 << 40))))
            return am_fail(err, AMBER_ERR_SHAPE, "%s: kernel_hw, stride and dilation must be in "
                           "1..2^30, padding >= 0 and input_hw in 0..2^40", op->name);
        int64_t ext = dil[i] * (a->kernel[i] - 1) + 1;
        if (a->padding[2 * i] > ext / 2 || a->padding[2 * i + 1] > ext / 2)
            return am_fail(err, AMBER_ERR_SHAPE, "%s: padding must be at most half of the "
                           "(dilated) kernel (%lld)", op->name, (long long)ext);
    }
    int64_t xs[4];
    memcpy(xs, in[0].shape, sizeof xs);
    if (grad_avg) xs[2] = a->hw[0], xs[3] = a->hw[1];
    int64_t want[4] = {xs[0], xs[1],
                       pool_out(xs[2], a->kernel[0], a->padding[0], a->padding[1], a->stride[0],
                                dil[0], a->ceil_mode),
                       pool_out(xs[3], a->kernel[1], a->padding[2], a->padding[3], a->stride[1],
                                dil[1], a->ceil_mode)};
    if (want[2] < 1 || want[3] < 1)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: kernel %lldx%lld is larger than the padded "
                       "input %s", op->name, (long long)a->kernel[0], (long long)a->kernel[1],
                       am_shape_str(xs, 4, b1, sizeof b1));
    const amber_tensor *g = grad_avg ? &in[0] : n == 2 ? &in[1] : NULL;
    if (g && memcmp(g->shape, want, sizeof want) != 0)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: g has shape %s, expected the pooled shape %s",
                       op->name, SH(g, b1), am_shape_str(want, 4, b2, sizeof b2));
    set_shape(out, in[0].dtype, 4, g ? xs : want);
    return AMBER_OK;
}

/* ---------------------------------------------------------------- reductions */

amber_status infer_reduce(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    bool mask[AMBER_MAX_RANK] = {false};
    for (int i = 0; i < a->n_axes; i++) {
        amber_status st = check_axis(op, a->axes[i], x->rank, err);
        if (st != AMBER_OK) return st;
        if (mask[a->axes[i]])
            return am_fail(err, AMBER_ERR_SHAPE, "%s: axes repeat dimension %lld", op->name,
                           (long long)a->axes[i]);
        mask[a->axes[i]] = true;
        if (op->id != AM_OP_SUM && x->shape[a->axes[i]] == 0) {
            char b[SHAPE_BUF];
            return am_fail(err, AMBER_ERR_SHAPE,
                           "%s: cannot reduce an empty dimension (axis %lld of shape %s) - the "
                           "result has no identity",
                           op->name, (long long)a->axes[i], SH(x, b));
        }
    }
    int64_t shape[AMBER_MAX_RANK];
    int r = 0;
    for (int d = 0; d < x->rank; d++) {
        if (!mask[d]) shape[r++] = x->shape[d];
        else if (a->keepdims) shape[r++] = 1;
    }
    set_shape(out, x->dtype, r, shape);
    return AMBER_OK;
}

amber_status infer_arg(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                       amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    amber_status st = check_axis(op, a->axis, x->rank, err);
    if (st != AMBER_OK) return st;
    if (x->shape[a->axis] == 0)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: cannot reduce an empty dimension (axis %lld)",
                       op->name, (long long)a->axis);
    int64_t shape[AMBER_MAX_RANK];
    int r = 0;
    for (int d = 0; d < x->rank; d++) {
        if (d != a->axis) shape[r++] = x->shape[d];
        else if (a->keepdims) shape[r++] = 1;
    }
    set_shape(out, AMBER_INT64, r, shape);
    return AMBER_OK;
}

/* ---------------------------------------------------------------- shape ops */

amber_status infer_reshape(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                           amber_tensor *out, am_error *err) {
    (void)n;
    int64_t total = 1;
    char b1[SHAPE_BUF], b2[SHAPE_BUF];
    for (int i = 0; i < a->n_shape; i++) {
        if (a->shape[i] < 0)
            return am_fail(err, AMBER_ERR_SHAPE, "%s: target shape %s has a negative dim", op->name,
                           am_shape_str(a->shape, a->n_shape, b1, sizeof b1));
        if (!am_mul_i64(total, a->shape[i], &total))
            return am_fail(err, AMBER_ERR_LIMIT, "%s: target shape overflows", op->name);
    }
    int64_t have = am_numel(&in[0]);
    if (have != total)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: cannot reshape %s (%lld elements) to %s (%lld elements)",
                       op->name, SH(&in[0], b1), (long long)have,
                       am_shape_str(a->shape, a->n_shape, b2, sizeof b2), (long long)total);
    set_shape(out, in[0].dtype, a->n_shape, a->shape);
    return AMBER_OK;
}

amber_status infer_transpose(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                             amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    bool seen[AMBER_MAX_RANK] = {false};
    bool ok = a->n_perm == x->rank;
    for (int i = 0; ok && i < a->n_perm; i++) {
        ok = a->perm[i] >= 0 && a->perm[i] < x->rank && !seen[a->perm[i]];
        if (ok) seen[a->perm[i]] = true;
    }
    if (!ok) {
        char b1[SHAPE_BUF], b2[SHAPE_BUF];
        return am_fail(err, AMBER_ERR_SHAPE, "%s: perm %s is not a permutation of the %d dims of %s",
                       op->name, am_shape_str(a->perm, a->n_perm, b1, sizeof b1), x->rank, SH(x, b2));
    }
    int64_t shape[AMBER_MAX_RANK];
    for (int i = 0; i < x->rank; i++) shape[i] = x->shape[a->perm[i]];
    set_shape(out, x->dtype, x->rank, shape);
    return AMBER_OK;
}

amber_status infer_broadcast_to(const am_op *op, const amber_tensor *in, int n,
                                const am_attrs *a, amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    bool ok = a->n_shape >= x->rank;
    for (int i = 0; ok && i < a->n_shape; i++) ok = a->shape[i] >= 0;
    for (int i = 0; ok && i < x->rank; i++) {
        int64_t t = a->shape[a->n_shape - x->rank + i];
        ok = x->shape[i] == 1 || x->shape[i] == t;
    }
    if (!ok) {
        char b1[SHAPE_BUF], b2[SHAPE_BUF];
        return am_fail(err, AMBER_ERR_SHAPE, "%s: cannot broadcast %s to %s", op->name, SH(x, b1),
                       am_shape_str(a->shape, a->n_shape, b2, sizeof b2));
    }
    set_shape(out, x->dtype, a->n_shape, a->shape);
    return AMBER_OK;
}

amber_status infer_slice(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                         amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    char b[SHAPE_BUF];
    if (a->n_starts != x->rank || a->n_stops != x->rank || a->n_steps != x->rank)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: need one start/stop/step per dim of %s", op->name,
                       SH(x, b));
    int64_t shape[AMBER_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        int64_t s0 = a->starts[d], s1 = a->stops[d], st = a->steps[d];
        if (st < 1 || s0 < 0 || s1 < s0 || s1 > x->shape[d])
            return am_fail(err, AMBER_ERR_SHAPE,
                           "%s: bounds %lld:%lld:%lld are invalid for dim %d of size %lld (need 0 "
                           "<= start <= stop <= size, step >= 1)",
                           op->name, (long long)s0, (long long)s1, (long long)st, d,
                           (long long)x->shape[d]);
        int64_t len = s1 - s0;
        shape[d] = len / st + (len % st != 0);
    }
    set_shape(out, x->dtype, x->rank, shape);
    return AMBER_OK;
}

amber_status infer_pad(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                       amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *x = &in[0];
    char b[SHAPE_BUF];
    if (a->n_lo != x->rank || a->n_hi != x->rank || a->n_interior != x->rank)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: need one lo/hi/interior per dim of %s", op->name,
                       SH(x, b));
    int64_t shape[AMBER_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        int64_t lo = a->lo[d], hi = a->hi[d], it = a->interior[d], s = x->shape[d], v;
        if (lo < 0 || hi < 0 || it < 0)
            return am_fail(err, AMBER_ERR_SHAPE, "%s: amounts must be non-negative (dim %d: lo=%lld, "
                           "hi=%lld, interior=%lld)", op->name, d, (long long)lo, (long long)hi,
                           (long long)it);
        bool ok = true;
        if (s == 0) v = 0;
        else ok = am_mul_i64(s - 1, it, &v) && am_add_i64(v, s, &v);
        ok = ok && am_add_i64(v, lo, &v) && am_add_i64(v, hi, &v);
        if (!ok) return am_fail(err, AMBER_ERR_LIMIT, "%s: padded size overflows", op->name);
        shape[d] = v;
    }
    set_shape(out, x->dtype, x->rank, shape);
    return AMBER_OK;
}

amber_status infer_concat(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                          amber_tensor *out, am_error *err) {
    amber_status st = same_dtype(op, in, n, err);
    if (st != AMBER_OK) return st;
    if ((st = check_axis(op, a->axis, in[0].rank, err)) != AMBER_OK) return st;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        bool ok = in[i].rank == in[0].rank;
        for (int d = 0; ok && d < in[0].rank; d++)
            ok = d == a->axis || in[i].shape[d] == in[0].shape[d];
        if (!ok) {
            char b1[SHAPE_BUF], b2[SHAPE_BUF];
            return am_fail(err, AMBER_ERR_SHAPE, "%s: shapes %s and %s differ outside axis %lld",
                           op->name, SH(&in[0], b1), SH(&in[i], b2), (long long)a->axis);
        }
        if (!am_add_i64(total, in[i].shape[a->axis], &total))
            return am_fail(err, AMBER_ERR_LIMIT, "%s: result size overflows", op->name);
    }
    set_shape(out, in[0].dtype, in[0].rank, in[0].shape);
    out->shape[a->axis] = total;
    return AMBER_OK;
}

static amber_status gather_shape(const am_op *op, const amber_tensor *x, const amber_tensor *idx,
                                 int64_t axis, int64_t *shape, int *rank, am_error *err) {
    amber_status st = check_axis(op, axis, x->rank, err);
    if (st != AMBER_OK) return st;
    if (idx->dtype != AMBER_INT32 && idx->dtype != AMBER_INT64)
        return am_fail(err, AMBER_ERR_DTYPE, "%s (index): dtype %s is not supported (expects int32, "
                       "int64)", op->name, amber_dtype_name(idx->dtype));
    int r = x->rank - 1 + idx->rank;
    if (r > AMBER_MAX_RANK)
        return am_fail(err, AMBER_ERR_SHAPE, "%s: result rank %d exceeds %d", op->name, r,
                       AMBER_MAX_RANK);
    int o = 0;
    for (int d = 0; d < axis; d++) shape[o++] = x->shape[d];
    for (int d = 0; d < idx->rank; d++) shape[o++] = idx->shape[d];
    for (int d = (int)axis + 1; d < x->rank; d++) shape[o++] = x->shape[d];
    *rank = r;
    return AMBER_OK;
}

amber_status infer_take(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                        amber_tensor *out, am_error *err) {
    (void)n;
    int64_t shape[AMBER_MAX_RANK];
    int rank = 0;
    amber_status st = gather_shape(op, &in[0], &in[1], a->axis, shape, &rank, err);
    if (st == AMBER_OK) set_shape(out, in[0].dtype, rank, shape);
    return st;
}

amber_status infer_scatter_add(const am_op *op, const amber_tensor *in, int n,
                               const am_attrs *a, amber_tensor *out, am_error *err) {
    (void)n;
    const amber_tensor *base = &in[0], *idx = &in[1], *src = &in[2];
    int64_t shape[AMBER_MAX_RANK];
    int rank = 0;
    amber_status st = gather_shape(op, base, idx, a->axis, shape, &rank, err);
    if (st != AMBER_OK) return st;
    if (src->dtype != base->dtype)
        return am_fail(err, AMBER_ERR_DTYPE,
                       "%s: operands have different dtypes (%s and %s); cast one first", op->name,
                       amber_dtype_name(base->dtype), amber_dtype_name(src->dtype));
    if (src->rank != rank || memcmp(src->shape, shape, sizeof(int64_t) * (size_t)rank) != 0) {
        char b1[SHAPE_BUF], b2[SHAPE_BUF], b3[SHAPE_BUF], b4[SHAPE_BUF];
        return am_fail(err, AMBER_ERR_SHAPE,
                       "%s: src shape %s should be %s for base %s, index %s, axis %lld", op->name,
                       SH(src, b1), am_shape_str(shape, rank, b2, sizeof b2), SH(base, b3),
                       SH(idx, b4), (long long)a->axis);
    }
    set_shape(out, base->dtype, base->rank, base->shape);
    return AMBER_OK;
}

amber_status infer_dim_value(const am_op *op, const amber_tensor *in, int n, const am_attrs *a,
                             amber_tensor *out, am_error *err) {
    (void)op, (void)in, (void)n, (void)a, (void)err;
    set_shape(out, AMBER_INT64, 0, NULL);
    return AMBER_OK;
}
