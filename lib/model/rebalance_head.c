/* LWS, DisAlign and MARC over frozen logits: forward/backward pairs (sums in double, fixed
 * order, so the same inputs give the same bits). */
#include "lib/model/rebalance_head.h"

#include <math.h>
#include <stddef.h>

void cx_lws_forward(const float *z, const float *s, int B, int C, float *out)
{
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++)
            out[(size_t)i * C + c] = s[c] * z[(size_t)i * C + c];
}

void cx_lws_backward(const float *z, const float *dout, int B, int C, float *ds)
{
    for (int c = 0; c < C; c++) {
        double acc = 0;
        for (int i = 0; i < B; i++)
            acc += (double)dout[(size_t)i * C + c] * z[(size_t)i * C + c];
        ds[c] += (float)acc;
    }
}

void cx_disalign_forward(const float *z, const float *f, const float *w, const float *b0,
                         const float *alpha, const float *beta, int B, int C, int D, float *gate,
                         float *out)
{
    for (int i = 0; i < B; i++) {
        double a = b0[0];
        for (int d = 0; d < D; d++)
            a += (double)w[d] * f[(size_t)i * D + d];
        float g = (float)(1.0 / (1.0 + exp(-a)));
        gate[i] = g;
        for (int c = 0; c < C; c++) {
            size_t k = (size_t)i * C + c;
            out[k] = (1.0f + g * alpha[c]) * z[k] + g * beta[c];
        }
    }
}

void cx_disalign_backward(const float *z, const float *f, const float *alpha, const float *beta,
                          const float *gate, const float *dout, int B, int C, int D, float *dw,
                          float *db0, float *dalpha, float *dbeta)
{
    for (int c = 0; c < C; c++) {
        double da = 0, dbt = 0;
        for (int i = 0; i < B; i++) {
            size_t k = (size_t)i * C + c;
            da += (double)dout[k] * gate[i] * z[k];
            dbt += (double)dout[k] * gate[i];
        }
        dalpha[c] += (float)da;
        dbeta[c] += (float)dbt;
    }
    double dbias = 0;
    for (int i = 0; i < B; i++) {
        double dg = 0;
        for (int c = 0; c < C; c++) {
            size_t k = (size_t)i * C + c;
            dg += (double)dout[k] * ((double)alpha[c] * z[k] + beta[c]);
        }
        double dpre = dg * gate[i] * (1.0 - gate[i]);
        dbias += dpre;
        for (int d = 0; d < D; d++)
            dw[d] += (float)(dpre * f[(size_t)i * D + d]);
    }
    db0[0] += (float)dbias;
}

void cx_marc_forward(const float *z, const float *norms, const float *a, const float *b, int B,
                     int C, float *out)
{
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) {
            size_t k = (size_t)i * C + c;
            out[k] = a[c] * z[k] + b[c] * norms[c];
        }
}

void cx_marc_backward(const float *z, const float *norms, const float *dout, int B, int C,
                      float *da, float *db)
{
    for (int c = 0; c < C; c++) {
        double sa = 0, sb = 0;
        for (int i = 0; i < B; i++) {
            size_t k = (size_t)i * C + c;
            sa += (double)dout[k] * z[k];
            sb += dout[k];
        }
        da[c] += (float)sa;
        db[c] += (float)(sb * norms[c]);
    }
}
