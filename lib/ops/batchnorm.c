/* Batch normalisation over the rows (BatchNorm1d on (B, D)): column statistics summed in double
 * in row order, one thread per column block, so any thread count gives the same bits. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/ops/ops_internal.h"

void cx_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma,
                                const float *beta, int B, int D, float eps, float momentum)
{
    if (B <= 0 || D <= 0)
        return;
    size_t work = (size_t)B * D;
    int nblk = (D + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if (work >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CX_OPS_COL_BLOCK;
        int nj = D - j0 < CX_OPS_COL_BLOCK ? D - j0 : CX_OPS_COL_BLOCK;
        double s[CX_OPS_COL_BLOCK] = {0}, v[CX_OPS_COL_BLOCK] = {0};
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            for (int j = 0; j < nj; j++)
                s[j] += x[j];
        }
        for (int j = 0; j < nj; j++)
            s[j] /= B;
        /* Two passes: the variance of shifted values does not cancel catastrophically. */
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            for (int j = 0; j < nj; j++) {
                double c = x[j] - s[j];
                v[j] += c * c;
            }
        }
        for (int j = 0; j < nj; j++) {
            double var = v[j] / B;
            mean[j0 + j] = (float)s[j];
            rstd[j0 + j] = (float)(1.0 / sqrt(var + (double)eps));
            if (running_mean)
                running_mean[j0 + j] = (float)((1.0 - momentum) * running_mean[j0 + j] +
                                               momentum * s[j]);
            if (running_var) {
                /* PyTorch keeps the unbiased variance (one row: the biased one, 0). */
                double unbiased = B > 1 ? v[j] / (B - 1) : var;
                running_var[j0 + j] = (float)((1.0 - momentum) * running_var[j0 + j] +
                                              momentum * unbiased);
            }
        }
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            float *o = out + (size_t)i * D + j0;
            for (int j = 0; j < nj; j++) {
                float y = (x[j] - mean[j0 + j]) * rstd[j0 + j];
                o[j] = gamma ? y * gamma[j0 + j] + beta[j0 + j] : y;
            }
        }
    }
}

void cx_batchnorm_forward_eval(float *out, const float *in, const float *running_mean,
                               const float *running_var, const float *gamma, const float *beta,
                               int B, int D, float eps)
{
    if (B <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * D >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < B; i++) {
        const float *x = in + (size_t)i * D;
        float *o = out + (size_t)i * D;
        for (int j = 0; j < D; j++) {
            float rs = (float)(1.0 / sqrt((double)running_var[j] + (double)eps));
            float y = (x[j] - running_mean[j]) * rs;
            o[j] = gamma ? y * gamma[j] + beta[j] : y;
        }
    }
}

void cx_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                           const float *in, const float *mean, const float *rstd,
                           const float *gamma, int B, int D)
{
    if (B <= 0 || D <= 0)
        return;
    size_t work = (size_t)B * D;
    int nblk = (D + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if (work >= CX_OPS_PAR_ELEMS)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * CX_OPS_COL_BLOCK;
        int nj = D - j0 < CX_OPS_COL_BLOCK ? D - j0 : CX_OPS_COL_BLOCK;
        double sg[CX_OPS_COL_BLOCK] = {0}, sgx[CX_OPS_COL_BLOCK] = {0};
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            const float *d = dout + (size_t)i * D + j0;
            for (int j = 0; j < nj; j++) {
                float xhat = (x[j] - mean[j0 + j]) * rstd[j0 + j];
                sg[j] += d[j];
                sgx[j] += (double)d[j] * xhat;
            }
        }
        if (dgamma)
            for (int j = 0; j < nj; j++) {
                dgamma[j0 + j] += (float)sgx[j];
                dbeta[j0 + j] += (float)sg[j];
            }
        if (!din)
            continue;
        /* din = rstd (g - mean(g) - xhat mean(g xhat)) with g = dout * gamma: the column sums
         * above are of dout, so gamma scales them. din may equal dout: each element is read
         * before it is written. */
        for (int i = 0; i < B; i++) {
            const float *x = in + (size_t)i * D + j0;
            const float *d = dout + (size_t)i * D + j0;
            float *o = din + (size_t)i * D + j0;
            for (int j = 0; j < nj; j++) {
                float gm = gamma ? gamma[j0 + j] : 1.0f;
                float c1 = (float)(sg[j] / B) * gm, c2 = (float)(sgx[j] / B) * gm;
                float xhat = (x[j] - mean[j0 + j]) * rstd[j0 + j];
                o[j] = rstd[j0 + j] * (d[j] * gm - c1 - xhat * c2);
            }
        }
    }
}
