/* 2-D convolution, stride 1 with zero padding, as im2col plus one cx_sgemm per chunk of samples.
 * The matrix products carry the parallelism; the lowering passes thread only above the
 * thresholds of ops_internal.h, each output element written by one thread in a fixed order. */
#include "config.h"
#include "lib/ops/ops.h"

#include <string.h>

#include "lib/base/blas.h"
#include "lib/ops/ops_internal.h"

/* Scratch layout for a chunk of n samples, P = Ho Wo positions per sample, KK = cin k k:
 *   col  (KK, n P): column s P + p of row (ci, ki, kj) is input (ci, oh + ki - pad,
 *        ow + kj - pad) of sample s at output position p = oh Wo + ow, or 0 in the padding;
 *   tmp  (cout, n P): the product W col, channel-major (forward) or dout in that layout. */
static size_t per_sample(const cx_conv2d_dims *d)
{
    size_t P = (size_t)cx_conv2d_out_h(d) * (size_t)cx_conv2d_out_w(d);
    return ((size_t)d->cin * (size_t)d->k * (size_t)d->k + (size_t)d->cout) * P;
}

/* Samples per chunk: a function of the shape only (see CX_CONV2D_CHUNK_FLOATS). */
static int chunk_samples(const cx_conv2d_dims *d, int B)
{
    size_t per = per_sample(d);
    size_t n = per > 0 ? CX_CONV2D_CHUNK_FLOATS / per : (size_t)B;
    if (n < 1)
        n = 1;
    return n < (size_t)B ? (int)n : B;
}

size_t cx_conv2d_scratch_floats(const cx_conv2d_dims *d, int max_batch)
{
    if (max_batch <= 0 || cx_conv2d_out_h(d) <= 0 || cx_conv2d_out_w(d) <= 0)
        return 0;
    return (size_t)chunk_samples(d, max_batch) * per_sample(d);
}

/* Where row (ki, kj) of a column matrix reads its plane: output column ow reads input column
 * ow + shift, valid for ow in [lo, hi); output row oh reads input row oh + ki - pad, valid for
 * oh in [oh0, oh1). */
typedef struct {
    int shift, lo, hi, oh0, oh1;
} span;

static span row_span(const cx_conv2d_dims *d, int ki, int kj)
{
    const int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d);
    span v;
    v.shift = kj - d->pad;
    v.lo = v.shift < 0 ? -v.shift : 0;
    v.hi = d->w - v.shift < Wo ? d->w - v.shift : Wo;
    if (v.hi < v.lo)
        v.hi = v.lo;
    v.oh0 = d->pad - ki > 0 ? d->pad - ki : 0;
    v.oh1 = d->h + d->pad - ki < Ho ? d->h + d->pad - ki : Ho;
    if (v.oh1 < v.oh0)
        v.oh1 = v.oh0;
    return v;
}

/* col (KK, n P) from samples in (n, cin, h, w). */
static void im2col(float *col, const float *in, int n, const cx_conv2d_dims *d)
{
    const int k = d->k, H = d->h, W = d->w;
    const int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d);
    const size_t P = (size_t)Ho * Wo, ld = (size_t)n * P;
    const int rows = d->cin * k * k;
    /* One task per (row, sample): a contiguous run of P floats of col. */
    const long tasks = (long)rows * n;
#pragma omp parallel for schedule(static) if ((size_t)tasks * P >= CX_OPS_PAR_ELEMS)
    for (long t = 0; t < tasks; t++) {
        int r = (int)(t / n), s = (int)(t % n);
        int ci = r / (k * k), ki = r / k % k, kj = r % k;
        float *dst = col + (size_t)r * ld + (size_t)s * P;
        const float *plane = in + ((size_t)s * d->cin + (size_t)ci) * (size_t)H * W;
        span v = row_span(d, ki, kj);
        memset(dst, 0, sizeof *dst * (size_t)v.oh0 * Wo);
        memset(dst + (size_t)v.oh1 * Wo, 0, sizeof *dst * (size_t)(Ho - v.oh1) * Wo);
        if (v.lo == v.hi) {
            memset(dst + (size_t)v.oh0 * Wo, 0, sizeof *dst * (size_t)(v.oh1 - v.oh0) * Wo);
            continue;
        }
        const float *src = plane + (size_t)(v.oh0 + ki - d->pad) * W;
        if (Wo == W) {
            /* Rows of the same length ('same' padding): the valid rows are one run of the
             * plane shifted by `shift`; copy it whole, then clear the columns that wrapped
             * around from the neighbouring row. */
            float *o = dst + (size_t)v.oh0 * Wo;
            size_t len = (size_t)(v.oh1 - v.oh0) * W;
            size_t run = len - (size_t)v.lo - (size_t)(W - v.hi);
            memcpy(o + v.lo, src + v.lo + v.shift, sizeof *o * run);
            for (int oh = v.oh0; oh < v.oh1; oh++, o += Wo) {
                for (int ow = 0; ow < v.lo; ow++)
                    o[ow] = 0.0f;
                for (int ow = v.hi; ow < Wo; ow++)
                    o[ow] = 0.0f;
            }
            continue;
        }
        float *o = dst + (size_t)v.oh0 * Wo;
        for (int oh = v.oh0; oh < v.oh1; oh++, o += Wo, src += W) {
            for (int ow = 0; ow < v.lo; ow++)
                o[ow] = 0.0f;
#pragma omp simd
            for (int ow = v.lo; ow < v.hi; ow++)
                o[ow] = src[ow + v.shift];
            for (int ow = v.hi; ow < Wo; ow++)
                o[ow] = 0.0f;
        }
    }
}

/* din (n, cin, h, w) = the sum of col (KK, n P) back onto the input positions it was copied
 * from; col's entries for padding positions are cleared on the way (it is scratch). One thread
 * per input plane; each element receives its terms in (ki, kj, oh) order. */
static void col2im(float *din, float *col, int n, const cx_conv2d_dims *d)
{
    const int k = d->k, H = d->h, W = d->w;
    const int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d);
    const size_t P = (size_t)Ho * Wo, ld = (size_t)n * P;
    const long planes = (long)n * d->cin;
#pragma omp parallel for schedule(static) if ((size_t)planes * k * k * P >= CX_OPS_PAR_ELEMS)
    for (long t = 0; t < planes; t++) {
        int s = (int)(t / d->cin), ci = (int)(t % d->cin);
        float *plane = din + (size_t)t * (size_t)H * W;
        memset(plane, 0, sizeof *plane * (size_t)H * W);
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                span v = row_span(d, ki, kj);
                if (v.lo == v.hi)
                    continue;
                int r = (ci * k + ki) * k + kj;
                float *src = col + (size_t)r * ld + (size_t)s * P + (size_t)v.oh0 * Wo;
                float *dst = plane + (size_t)(v.oh0 + ki - d->pad) * W;
                if (Wo == W) {
                    /* As in im2col: one shifted run, the wrapped columns cleared first so they
                     * add nothing. */
                    float *c = src;
                    for (int oh = v.oh0; oh < v.oh1; oh++, c += Wo) {
                        for (int ow = 0; ow < v.lo; ow++)
                            c[ow] = 0.0f;
                        for (int ow = v.hi; ow < Wo; ow++)
                            c[ow] = 0.0f;
                    }
                    size_t a = (size_t)v.lo, b = (size_t)(v.oh1 - v.oh0) * W - (size_t)(W - v.hi);
                    float *o = dst + v.shift;
#pragma omp simd
                    for (size_t j = a; j < b; j++)
                        o[j] += src[j];
                    continue;
                }
                for (int oh = v.oh0; oh < v.oh1; oh++, src += Wo, dst += W) {
#pragma omp simd
                    for (int ow = v.lo; ow < v.hi; ow++)
                        dst[ow + v.shift] += src[ow];
                }
            }
    }
}

void cx_conv2d_forward(float *out, float *scratch, const float *in, const float *w,
                       const float *b, int B, const cx_conv2d_dims *d)
{
    const int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d);
    if (B <= 0 || d->cout <= 0 || Ho <= 0 || Wo <= 0)
        return;
    const int S = chunk_samples(d, B), KK = d->cin * d->k * d->k, C = d->cout;
    const size_t P = (size_t)Ho * Wo, in_sample = (size_t)d->cin * d->h * d->w;
    float *col = scratch;
    for (int s0 = 0; s0 < B; s0 += S) {
        int n = B - s0 < S ? B - s0 : S;
        int np = (int)((size_t)n * P);
        float *tmp = col + (size_t)KK * np;
        im2col(col, in + (size_t)s0 * in_sample, n, d);
        cx_sgemm(0, 0, C, np, KK, 1.0f, w, KK, col, np, 0.0f, tmp, np);
        /* Channel-major tmp (C, n P) into NCHW out, adding the bias on the way. */
        float *o = out + (size_t)s0 * C * P;
        const long tasks = (long)n * C;
#pragma omp parallel for schedule(static) if ((size_t)tasks * P >= CX_OPS_PAR_ELEMS)
        for (long t = 0; t < tasks; t++) {
            int s = (int)(t / C), c = (int)(t % C);
            const float *src = tmp + (size_t)c * np + (size_t)s * P;
            float *dst = o + (size_t)t * P, bias = b ? b[c] : 0.0f;
#pragma omp simd
            for (size_t p = 0; p < P; p++)
                dst[p] = src[p] + bias;
        }
    }
}

void cx_conv2d_backward(float *din, float *dw, float *db, float *scratch, const float *dout,
                        const float *in, const float *w, int B, const cx_conv2d_dims *d)
{
    const int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d);
    if (B <= 0)
        return;
    const size_t P = Ho > 0 && Wo > 0 ? (size_t)Ho * Wo : 0;
    const size_t in_sample = (size_t)d->cin * d->h * d->w;
    if (P == 0 || d->cout <= 0) {
        /* No output: the input had no influence. */
        if (din)
            memset(din, 0, sizeof *din * (size_t)B * in_sample);
        return;
    }
    const int S = chunk_samples(d, B), KK = d->cin * d->k * d->k, C = d->cout;
    float *col = scratch;
    for (int s0 = 0; s0 < B; s0 += S) {
        int n = B - s0 < S ? B - s0 : S;
        int np = (int)((size_t)n * P);
        float *tmp = col + (size_t)KK * np;
        const float *g = dout + (size_t)s0 * C * P;
        /* dout (n, C, P) into channel-major tmp (C, n P). */
        const long tasks = (long)n * C;
#pragma omp parallel for schedule(static) if ((size_t)tasks * P >= CX_OPS_PAR_ELEMS)
        for (long t = 0; t < tasks; t++) {
            int s = (int)(t / C), c = (int)(t % C);
            memcpy(tmp + (size_t)c * np + (size_t)s * P, g + (size_t)t * P, sizeof(float) * P);
        }
        /* The bias gradient: each channel's row of tmp summed in double by one thread and added
         * chunk by chunk; the vector lanes split a row the same way on any thread count. */
        if (db) {
#pragma omp parallel for schedule(static) if ((size_t)np * C >= CX_OPS_PAR_ELEMS)
            for (int c = 0; c < C; c++) {
                const float *row = tmp + (size_t)c * np;
                double a = 0.0;
#pragma omp simd reduction(+ : a)
                for (int p = 0; p < np; p++)
                    a += row[p];
                db[c] += (float)a;
            }
        }
        im2col(col, in + (size_t)s0 * in_sample, n, d);
        /* dw (C, KK) += tmp (C, n P) col^T: chunks add in chunk order. */
        cx_sgemm(0, 1, C, KK, np, 1.0f, tmp, np, col, np, 1.0f, dw, KK);
        if (din) {
            /* dcol (KK, n P) = W^T tmp, over col (no longer needed), then back onto din. */
            cx_sgemm(1, 0, KK, np, C, 1.0f, w, KK, tmp, np, 0.0f, col, np);
            col2im(din + (size_t)s0 * in_sample, col, n, d);
        }
    }
}
