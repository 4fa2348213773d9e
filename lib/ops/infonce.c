/* Symmetric InfoNCE (CLIP loss) with logit scale exp(theta). The similarity and gradient
 * products go through cx_sgemm; the row and column softmaxes and the loss sums are split into
 * fixed blocks whose partial sums are added in block order (independent of the thread count). */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/base/blas.h"
#include "lib/ops/ops_internal.h"

#define NCE_MIN_BLOCK_ROWS 8

/* Column softmax of columns [j0, j0 + nj) into p_col; returns the sum over those columns of
 * logsumexp(column j) - logits[j][j]. Walks whole rows of the block so memory is read in
 * order. */
static double nce_cols(float *p_col, const float *logits, int j0, int nj, int B)
{
    float mx[CX_OPS_COL_BLOCK];
    double s[CX_OPS_COL_BLOCK];
    for (int j = 0; j < nj; j++) {
        mx[j] = -INFINITY;
        s[j] = 0.0;
    }
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * B + j0;
#pragma omp simd
        for (int j = 0; j < nj; j++)
            mx[j] = z[j] > mx[j] ? z[j] : mx[j];
    }
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * B + j0;
        float *p = p_col + (size_t)i * B + j0;
        for (int j = 0; j < nj; j++) {
            float e = expf(z[j] - mx[j]);
            p[j] = e;
            s[j] += e;
        }
    }
    float inv[CX_OPS_COL_BLOCK];
    double loss = 0.0;
    for (int j = 0; j < nj; j++) {
        inv[j] = (float)(1.0 / s[j]);
        loss += (double)mx[j] + log(s[j]) - (double)logits[(size_t)(j0 + j) * B + j0 + j];
    }
    for (int i = 0; i < B; i++) {
        float *p = p_col + (size_t)i * B + j0;
#pragma omp simd
        for (int j = 0; j < nj; j++)
            p[j] *= inv[j];
    }
    return loss;
}

double cx_infonce_forward(float *logits, float *p_row, float *p_col, const float *img,
                          const float *txt, float scale, int B, int D)
{
    if (B <= 0)
        return 0.0;
    cx_sgemm(0, 1, B, B, D, scale, img, D, txt, D, 0.0f, logits, B);
    int par = (size_t)B * B >= CX_OPS_PAR_ELEMS_DEAR;
    double part[CX_OPS_MAX_BLOCKS];

    /* Rows: the image -> text direction. */
    int rows = cx_ops_block_rows(B, NCE_MIN_BLOCK_ROWS);
    int nblk = (B + rows - 1) / rows;
#pragma omp parallel for schedule(static) if (par)
    for (int blk = 0; blk < nblk; blk++) {
        int i1 = (blk + 1) * rows < B ? (blk + 1) * rows : B;
        double s = 0.0;
        for (int i = blk * rows; i < i1; i++)
            s += cx_ops_ce_row(p_row + (size_t)i * B, logits + (size_t)i * B, NULL, i, B);
        part[blk] = s;
    }
    double loss_row = 0.0;
    for (int blk = 0; blk < nblk; blk++)
        loss_row += part[blk];

    /* Columns: the text -> image direction, in groups of at most CX_OPS_MAX_BLOCKS column
     * blocks so any B fits the slots. */
    double loss_col = 0.0;
    int ncb = (B + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
    for (int g0 = 0; g0 < ncb; g0 += CX_OPS_MAX_BLOCKS) {
        int g1 = g0 + CX_OPS_MAX_BLOCKS < ncb ? g0 + CX_OPS_MAX_BLOCKS : ncb;
#pragma omp parallel for schedule(static) if (par)
        for (int cb = g0; cb < g1; cb++) {
            int j0 = cb * CX_OPS_COL_BLOCK;
            int nj = B - j0 < CX_OPS_COL_BLOCK ? B - j0 : CX_OPS_COL_BLOCK;
            part[cb - g0] = nce_cols(p_col, logits, j0, nj, B);
        }
        for (int cb = g0; cb < g1; cb++)
            loss_col += part[cb - g0];
    }
    return (loss_row + loss_col) / (2.0 * B);
}

void cx_infonce_backward(float *dimg, float *dtxt, float *dtheta, float *scratch,
                         const float *p_row, const float *p_col, const float *logits,
                         const float *img, const float *txt, float scale, int B, int D,
                         float dloss)
{
    if (B <= 0)
        return;
    float c = (float)((double)dloss / (2.0 * B));
    int rows = cx_ops_block_rows(B, NCE_MIN_BLOCK_ROWS);
    int nblk = (B + rows - 1) / rows;
    double part[CX_OPS_MAX_BLOCKS];
#pragma omp parallel for schedule(static) if ((size_t)B * B >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int i1 = (blk + 1) * rows < B ? (blk + 1) * rows : B;
        double s = 0.0;
        for (int i = blk * rows; i < i1; i++) {
            const float *pr = p_row + (size_t)i * B, *pc = p_col + (size_t)i * B;
            const float *z = logits + (size_t)i * B;
            float *g = scratch + (size_t)i * B;
#pragma omp simd
            for (int j = 0; j < B; j++)
                g[j] = c * (pr[j] + pc[j]);
            /* (p - 1) terms are exact near p = 1, where the diagonal's gradient is small. */
            g[i] = c * ((pr[i] - 1.0f) + (pc[i] - 1.0f));
            for (int j = 0; j < B; j++)
                s += (double)g[j] * z[j];
        }
        part[blk] = s;
    }
    if (dtheta) {
        double s = 0.0;
        for (int blk = 0; blk < nblk; blk++)
            s += part[blk];
        /* logits = exp(theta) S, so d logits / d theta = logits. */
        *dtheta += (float)s;
    }
    if (dimg)
        cx_sgemm(0, 0, B, D, B, scale, scratch, B, txt, D, 0.0f, dimg, D);
    if (dtxt)
        cx_sgemm(1, 0, B, D, B, scale, scratch, B, img, D, 0.0f, dtxt, D);
}
