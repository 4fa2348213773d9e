/* Token embeddings (a gather), learned positional embeddings (a broadcast add) and the
 * flattening of images into patches. Gradients of tables are column sums: threads take whole
 * blocks of columns and add rows in order, so the bits do not depend on the thread count. */
#include "config.h"
#include "lib/ops/ops.h"

#include <string.h>

#include "lib/ops/ops_internal.h"

void cx_embed_forward(float *out, const int32_t *tokens, const float *table, int N, int D)
{
    if (N <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)N * D >= CX_OPS_PAR_ELEMS)
    for (int i = 0; i < N; i++)
        memcpy(out + (size_t)i * D, table + (size_t)tokens[i] * D, sizeof(float) * (size_t)D);
}

void cx_embed_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D)
{
    if (N <= 0 || D <= 0)
        return;
    int nblk = (D + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * D >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CX_OPS_COL_BLOCK;
        int nj = D - j0 < CX_OPS_COL_BLOCK ? D - j0 : CX_OPS_COL_BLOCK;
        for (int i = 0; i < N; i++) {
            const float *d = dout + (size_t)i * D + j0;
            float *e = dtable + (size_t)tokens[i] * D + j0;
#pragma omp simd
            for (int j = 0; j < nj; j++)
                e[j] += d[j];
        }
    }
}

void cx_posembed_forward(float *out, const float *in, const float *pos, int B, int T, int D)
{
    size_t td = (size_t)T * D;
    if (B <= 0 || td == 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * td >= CX_OPS_PAR_ELEMS)
    for (int b = 0; b < B; b++) {
        const float *x = in + (size_t)b * td;
        float *o = out + (size_t)b * td;
#pragma omp simd
        for (size_t k = 0; k < td; k++)
            o[k] = x[k] + pos[k];
    }
}

void cx_posembed_backward(float *dpos, const float *dout, int B, int T, int D)
{
    size_t td = (size_t)T * D;
    if (B <= 0 || td == 0)
        return;
    /* The positional table is a bias over the (T, D) grid: its gradient sums the batch. */
    cx_ops_colsum_add(dpos, dout, B, td);
}

void cx_patchify(float *out, const float *in, int B, int C, int H, int W, int p)
{
    if (B <= 0 || p <= 0)
        return;
    int gh = H / p, gw = W / p, F = C * p * p;
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W >= CX_OPS_PAR_ELEMS)
    for (int b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                float *o = out + (((size_t)b * gh + py) * gw + px) * F;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++) {
                        const float *src = in + (((size_t)b * C + c) * H + (size_t)py * p + ky) * W +
                                           (size_t)px * p;
                        memcpy(o + ((size_t)c * p + ky) * p, src, sizeof(float) * (size_t)p);
                    }
            }
}
