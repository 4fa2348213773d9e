/* Layer normalisation over the last dimension. Row statistics are summed in double; the
 * gain and bias gradients are column sums taken in row order by one thread per column block. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/ops/ops_internal.h"

void cx_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                          const float *gamma, const float *beta, int B, int D, float eps)
{
    if (B <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * D >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < B; i++) {
        const float *x = in + (size_t)i * D;
        float *o = out + (size_t)i * D;
        double s = 0.0;
        for (int j = 0; j < D; j++)
            s += x[j];
        double m = s / D;
        /* Two passes: the variance of shifted values does not cancel catastrophically. */
        double v = 0.0;
        for (int j = 0; j < D; j++) {
            double c = x[j] - m;
            v += c * c;
        }
        float mf = (float)m;
        float rs = (float)(1.0 / sqrt(v / D + (double)eps));
        mean[i] = mf;
        rstd[i] = rs;
#pragma omp simd
        for (int j = 0; j < D; j++)
            o[j] = (x[j] - mf) * rs * gamma[j] + beta[j];
    }
}

void cx_layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                           const float *in, const float *mean, const float *rstd,
                           const float *gamma, int B, int D)
{
    if (B <= 0 || D <= 0)
        return;
    size_t work = (size_t)B * D;

    /* Parameter gradients first, so the row pass below may overwrite dout (din == dout). */
    int nblk = (D + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if (work >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CX_OPS_COL_BLOCK;
        int nj = D - j0 < CX_OPS_COL_BLOCK ? D - j0 : CX_OPS_COL_BLOCK;
        double ag[CX_OPS_COL_BLOCK] = {0}, ab[CX_OPS_COL_BLOCK] = {0};
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            const float *d = dout + (size_t)i * D + j0;
            float m = mean[i], rs = rstd[i];
#pragma omp simd
            for (int j = 0; j < nj; j++) {
                float xhat = (x[j] - m) * rs;
                ag[j] += d[j] * xhat;
                ab[j] += d[j];
            }
        }
        for (int j = 0; j < nj; j++) {
            dgamma[j0 + j] += (float)ag[j];
            dbeta[j0 + j] += (float)ab[j];
        }
    }
    if (!din)
        return;

    /* din = rstd (g - mean(g) - xhat mean(g xhat)) with g = dout * gamma. */
#pragma omp parallel for schedule(static) if (work >= CX_OPS_PAR_ELEMS)
    for (int i = 0; i < B; i++) {
        const float *x = in + (size_t)i * D;
        const float *d = dout + (size_t)i * D;
        float *o = din + (size_t)i * D;
        float m = mean[i], rs = rstd[i];
        double s1 = 0.0, s2 = 0.0;
        for (int j = 0; j < D; j++) {
            float g = d[j] * gamma[j];
            s1 += g;
            s2 += (double)g * ((x[j] - m) * rs);
        }
        float c1 = (float)(s1 / D), c2 = (float)(s2 / D);
#pragma omp simd
        for (int j = 0; j < D; j++) {
            float xhat = (x[j] - m) * rs;
            o[j] = rs * (d[j] * gamma[j] - c1 - xhat * c2);
        }
    }
}
