/* 2x2 max pooling with stride 2 on NCHW batches, saving the argmax for backward. Planes are
 * independent and windows do not overlap, so threads never share an output element. */
#include "config.h"
#include "lib/ops/ops.h"

#include <string.h>

#include "lib/ops/ops_internal.h"

/* Pooling sits between two convolution products, while OpenBLAS's threads of the one before
 * still spin: in the CNN step (batch 256, 32 maps of 28x28, 6.4M inputs, 2.3 ms on one core)
 * a threaded pooling made the 2-thread step slower, not faster. So it threads only from four
 * times the usual threshold (16M inputs, about 6 ms). */
#define POOL_PAR_ELEMS (4 * CX_OPS_PAR_ELEMS)

void cx_maxpool2d_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W)
{
    const int Ho = H / 2, Wo = W / 2;
    if (B <= 0 || C <= 0 || Ho <= 0 || Wo <= 0)
        return;
    const long planes = (long)B * C;
    const size_t in_plane = (size_t)H * W, out_plane = (size_t)Ho * Wo;
#pragma omp parallel for schedule(static) if ((size_t)planes * in_plane >= POOL_PAR_ELEMS)
    for (long t = 0; t < planes; t++) {
        const float *x = in + (size_t)t * in_plane;
        float *o = out + (size_t)t * out_plane;
        int32_t *ix = idx + (size_t)t * out_plane;
        for (int oh = 0; oh < Ho; oh++) {
            const float *r0 = x + (size_t)(2 * oh) * W, *r1 = r0 + W;
            float *orow = o + (size_t)oh * Wo;
            int32_t *irow = ix + (size_t)oh * Wo, top = 2 * oh * W, bottom = top + W;
            /* Row-major window order with `v > m || v != v`, as torch's kernel: the first
             * maximum wins ties, a NaN wins over numbers (the last NaN, like torch). Written
             * as selects, not branches: on data the branches are unpredictable. */
#pragma omp simd
            for (int ow = 0; ow < Wo; ow++) {
                int j = 2 * ow;
                float m = r0[j], v;
                int32_t at = top + j;
                v = r0[j + 1];
                int u = (v > m) | (v != v);
                m = u ? v : m;
                at = u ? top + j + 1 : at;
                v = r1[j];
                u = (v > m) | (v != v);
                m = u ? v : m;
                at = u ? bottom + j : at;
                v = r1[j + 1];
                u = (v > m) | (v != v);
                m = u ? v : m;
                at = u ? bottom + j + 1 : at;
                orow[ow] = m;
                irow[ow] = at;
            }
        }
    }
}

void cx_maxpool2d_backward(float *din, const float *dout, const int32_t *idx, int B, int C,
                           int H, int W)
{
    if (B <= 0 || C <= 0 || H <= 0 || W <= 0)
        return;
    const int Ho = H / 2, Wo = W / 2;
    const long planes = (long)B * C;
    const size_t in_plane = (size_t)H * W;
    const size_t out_plane = (size_t)(Ho > 0 ? Ho : 0) * (size_t)(Wo > 0 ? Wo : 0);
#pragma omp parallel for schedule(static) if ((size_t)planes * in_plane >= POOL_PAR_ELEMS)
    for (long t = 0; t < planes; t++) {
        float *dx = din + (size_t)t * in_plane;
        const float *g = dout + (size_t)t * out_plane;
        const int32_t *ix = idx + (size_t)t * out_plane;
        memset(dx, 0, sizeof *dx * in_plane);
        for (size_t i = 0; i < out_plane; i++)
            dx[ix[i]] = g[i];
    }
}
