/* Softmax cross-entropy with per-sample weights and per-class logit offsets. Per-row losses
 * are summed in double per fixed block of rows, then the blocks in order, so the loss does
 * not depend on the thread count. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/ops/ops_internal.h"

/* Rows per reduction block: enough work per block to keep the slot array small. */
#define CE_MIN_BLOCK_ROWS 16

double cx_ops_ce_row(float *p, const float *z, const float *offset, int32_t y, int C)
{
    float mx = -INFINITY;
    for (int j = 0; j < C; j++) {
        float v = offset ? z[j] + offset[j] : z[j];
        p[j] = v;
        mx = v > mx ? v : mx;
    }
    double s = 0.0;
    for (int j = 0; j < C; j++) {
        float e = expf(p[j] - mx);
        p[j] = e;
        s += e;
    }
    float inv = (float)(1.0 / s);
#pragma omp simd
    for (int j = 0; j < C; j++)
        p[j] *= inv;
    float zy = offset ? z[y] + offset[y] : z[y];
    return (double)mx + log(s) - (double)zy;
}

double cx_softmax_ce_forward(float *probs, const float *logits, const int32_t *targets,
                             const float *weights, const float *offset, int B, int C)
{
    if (B <= 0 || C <= 0)
        return 0.0;
    int rows = cx_ops_block_rows(B, CE_MIN_BLOCK_ROWS);
    int nblk = (B + rows - 1) / rows;
    double part[CX_OPS_MAX_BLOCKS], wpart[CX_OPS_MAX_BLOCKS];
#pragma omp parallel for schedule(static) if ((size_t)B * C >= CX_OPS_PAR_ELEMS_DEAR)
    for (int blk = 0; blk < nblk; blk++) {
        int i1 = (blk + 1) * rows < B ? (blk + 1) * rows : B;
        double s = 0.0, sw = 0.0;
        for (int i = blk * rows; i < i1; i++) {
            double l = cx_ops_ce_row(probs + (size_t)i * C, logits + (size_t)i * C, offset, targets[i],
                              C);
            double w = weights ? weights[i] : 1.0;
            /* A zero weight masks the sample, even if its loss is infinite. */
            if (w != 0.0)
                s += w * l;
            sw += w;
        }
        part[blk] = s;
        wpart[blk] = sw;
    }
    double s = 0.0, sw = 0.0;
    for (int blk = 0; blk < nblk; blk++) {
        s += part[blk];
        sw += wpart[blk];
    }
    return sw != 0.0 ? s / sw : 0.0;
}

void cx_softmax_ce_backward(float *dlogits, const float *probs, const int32_t *targets,
                            const float *weights, int B, int C, float dloss)
{
    if (B <= 0 || C <= 0)
        return;
    /* The same sum of weights as the forward, in the same order. */
    double sw = B;
    if (weights) {
        int rows = cx_ops_block_rows(B, CE_MIN_BLOCK_ROWS);
        sw = 0.0;
        for (int i0 = 0; i0 < B; i0 += rows) {
            double p = 0.0;
            for (int i = i0; i < i0 + rows && i < B; i++)
                p += weights[i];
            sw += p;
        }
    }
#pragma omp parallel for schedule(static) if ((size_t)B * C >= CX_OPS_PAR_ELEMS)
    for (int i = 0; i < B; i++) {
        const float *p = probs + (size_t)i * C;
        float *d = dlogits + (size_t)i * C;
        double w = weights ? weights[i] : 1.0;
        float k = sw != 0.0 ? (float)((double)dloss * w / sw) : 0.0f;
#pragma omp simd
        for (int j = 0; j < C; j++)
            d[j] = k * p[j];
        /* k (p - 1), not k p - k: p - 1 is exact near p = 1, where the difference is small. */
        d[targets[i]] = k * (p[targets[i]] - 1.0f);
    }
}
