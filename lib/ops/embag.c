/* Embedding bag (mean of token embeddings, padding ignored). Forward threads over bags; backward
 * threads over blocks of embedding columns, so two threads never add into the same float and
 * each table entry receives its contributions in (bag, position) order. */
#include "config.h"
#include "lib/ops/ops.h"

#include <string.h>

#include "lib/ops/ops_internal.h"

static int bag_count(const int32_t *tok, int T, int32_t pad)
{
    int c = 0;
    for (int t = 0; t < T; t++)
        c += tok[t] != pad;
    return c;
}

void cx_embag_mean_forward(float *out, const int32_t *tokens, const float *table, int B, int T,
                           int D, int32_t pad)
{
    if (B <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * (T > 0 ? T : 1) * D >= CX_OPS_PAR_ELEMS)
    for (int i = 0; i < B; i++) {
        const int32_t *tok = tokens + (size_t)i * (T > 0 ? T : 0);
        float *o = out + (size_t)i * D;
        memset(o, 0, sizeof *o * (size_t)D);
        int count = 0;
        for (int t = 0; t < T; t++) {
            if (tok[t] == pad)
                continue;
            const float *e = table + (size_t)tok[t] * D;
#pragma omp simd
            for (int j = 0; j < D; j++)
                o[j] += e[j];
            count++;
        }
        if (count > 1) {
            float c = (float)count;
#pragma omp simd
            for (int j = 0; j < D; j++)
                o[j] /= c;
        }
    }
}

void cx_embag_mean_backward(float *dtable, const float *dout, const int32_t *tokens, int B,
                            int T, int D, int32_t pad)
{
    if (B <= 0 || T <= 0 || D <= 0)
        return;
    int nblk = (D + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)B * T * D >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CX_OPS_COL_BLOCK;
        int nj = D - j0 < CX_OPS_COL_BLOCK ? D - j0 : CX_OPS_COL_BLOCK;
        for (int i = 0; i < B; i++) {
            const int32_t *tok = tokens + (size_t)i * T;
            int count = bag_count(tok, T, pad);
            if (count == 0)
                continue;
            const float *d = dout + (size_t)i * D + j0;
            float g[CX_OPS_COL_BLOCK];
            float c = (float)count;
#pragma omp simd
            for (int j = 0; j < nj; j++)
                g[j] = d[j] / c;
            for (int t = 0; t < T; t++) {
                if (tok[t] == pad)
                    continue;
                float *e = dtable + (size_t)tok[t] * D + j0;
#pragma omp simd
                for (int j = 0; j < nj; j++)
                    e[j] += g[j];
            }
        }
    }
}
