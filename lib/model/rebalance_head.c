/* LWS, DisAlign and MARC over frozen logits: forward/backward pairs (sums in double, fixed
 * order, so the same inputs give the same bits); CFR's contrastive loss, weight schedule and
 * choice of positives and hard negatives. */
#include "lib/model/rebalance_head.h"

#include <math.h>
#include <stddef.h>

#include "lib/base/rng.h"

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

/* ---- CFR ---------------------------------------------------------------------------------- */

/* F.normalize's clamp: below it the norm is replaced, so the direction is not projected out. */
#define CFR_EPS 1e-12

static double row_norm(const float *x, int D)
{
    double a = 0;
    for (int d = 0; d < D; d++)
        a += (double)x[d] * x[d];
    return sqrt(a);
}

double cx_cfr_con(const float *q, const float *pos, const float *neg, int B, int P, int K, int D,
                  double tau, cx_cfr_con_form form, float dloss, float *dq, double *work)
{
    int J = P + K;
    double *sc = work;          /* (J) s_j, then dl/ds_j */
    double *qh = work + J;      /* (D) */
    double *gh = qh + D;        /* (D) dl/dq^ */
    double total = 0;
    for (int i = 0; i < B; i++) {
        const float *qi = q + (size_t)i * D;
        double qn = row_norm(qi, D), nq = qn > CFR_EPS ? qn : CFR_EPS;
        for (int d = 0; d < D; d++)
            qh[d] = qi[d] / nq;
        double m = -INFINITY;
        for (int j = 0; j < J; j++) {
            const float *x = j < P ? pos + ((size_t)i * P + j) * D
                                   : neg + ((size_t)i * K + (j - P)) * D;
            double nx = row_norm(x, D), dot = 0;
            if (nx < CFR_EPS)
                nx = CFR_EPS;
            for (int d = 0; d < D; d++)
                dot += qh[d] * x[d];
            sc[j] = dot / (nx * tau);
            if (sc[j] > m)
                m = sc[j];
        }
        double negsum = 0, possum = 0;
        for (int k = P; k < J; k++)
            negsum += exp(sc[k] - m);
        for (int p = 0; p < P; p++)
            possum += exp(sc[p] - m);
        double l = 0;
        if (form == CX_CFR_CON_SHARED) {
            double Z = possum + negsum, lz = log(Z);
            for (int p = 0; p < P; p++)
                l += lz - (sc[p] - m);
            l /= P;
            for (int j = 0; j < J; j++)
                sc[j] = exp(sc[j] - m) / Z - (j < P ? 1.0 / P : 0.0);
        } else {
            double wneg = 0; /* sum_p 1 / (e_p + N): the weight of each e_k in dl/ds_k */
            for (int p = 0; p < P; p++) {
                double ep = exp(sc[p] - m), den = ep + negsum;
                l += log(den) - (sc[p] - m);
                wneg += 1.0 / den;
                sc[p] = -(1.0 - ep / den) / P;
            }
            l /= P;
            for (int k = P; k < J; k++)
                sc[k] = exp(sc[k] - m) * wneg / P;
        }
        total += l;
        if (!dq)
            continue;
        for (int d = 0; d < D; d++)
            gh[d] = 0;
        for (int j = 0; j < J; j++) {
            const float *x = j < P ? pos + ((size_t)i * P + j) * D
                                   : neg + ((size_t)i * K + (j - P)) * D;
            double nx = row_norm(x, D);
            if (nx < CFR_EPS)
                nx = CFR_EPS;
            double c = sc[j] / (nx * tau);
            for (int d = 0; d < D; d++)
                gh[d] += c * x[d];
        }
        double scale = (double)dloss / B, proj = 0;
        if (qn > CFR_EPS)
            for (int d = 0; d < D; d++)
                proj += qh[d] * gh[d];
        float *di = dq + (size_t)i * D;
        for (int d = 0; d < D; d++)
            di[d] = (float)(scale * (gh[d] - qh[d] * proj) / nq);
    }
    return total / B;
}

double cx_cfr_weight(int e, int E)
{
    const double two_pi = 6.283185307179586476925286766559;
    return 1.0 + 0.5 * cos(two_pi * (double)e / (double)E);
}

cx_status cx_cfr_pool_index(const int32_t *ypool, int64_t N, int C, int64_t *class_start,
                            int64_t *class_rows, cx_err *err)
{
    for (int c = 0; c <= C; c++)
        class_start[c] = 0;
    for (int64_t r = 0; r < N; r++) {
        if (ypool[r] < 0 || ypool[r] >= C)
            return cx_fail(err, CX_EDATA, "CFR pool: row %lld: label %d outside 0..%d",
                           (long long)r, (int)ypool[r], C - 1);
        class_start[ypool[r] + 1]++;
    }
    for (int c = 0; c < C; c++)
        class_start[c + 1] += class_start[c];
    /* class_start[c] serves as class c's cursor, then is shifted back. */
    for (int64_t r = 0; r < N; r++)
        class_rows[class_start[ypool[r]]++] = r;
    for (int c = C; c > 0; c--)
        class_start[c] = class_start[c - 1];
    class_start[0] = 0;
    return CX_OK;
}

cx_status cx_cfr_select(const float *q, const int32_t *yq, const int64_t *sample, int B,
                        const float *pool, const int32_t *ypool, const int64_t *class_start,
                        const int64_t *class_rows, int64_t N, int C, int D, int P, int K,
                        uint64_t seed, uint64_t epoch, int64_t *pos_idx, int64_t *neg_idx,
                        double *work, cx_err *err)
{
    for (int i = 0; i < B; i++) {
        int y = yq[i];
        if (y < 0 || y >= C)
            return cx_fail(err, CX_EDATA, "CFR calibration sample %lld: label %d outside 0..%d",
                           (long long)sample[i], y, C - 1);
        int64_t start = class_start[y], cnt = class_start[y + 1] - start;
        if (cnt <= 0)
            return cx_fail(err, CX_EDATA,
                           "CFR calibration sample %lld: class %d has no correctly classified "
                           "embedding in the pool", (long long)sample[i], y);
        if (cnt > (int64_t)UINT32_MAX)
            return cx_fail(err, CX_EDATA, "CFR pool: class %d holds %lld rows, too many", y,
                           (long long)cnt);
        if (N - cnt < K)
            return cx_fail(err, CX_EDATA,
                           "CFR calibration sample %lld: %lld pool rows outside class %d, "
                           "fewer than the %d hard negatives", (long long)sample[i],
                           (long long)(N - cnt), y, K);
        cx_rng r;
        cx_rng_seed(&r, seed, cx_rng_stream(CX_CFR_TAG_POSITIVES, epoch, (uint64_t)sample[i]));
        for (int p = 0; p < P; p++)
            pos_idx[(size_t)i * P + p] = class_rows[start + cx_rng_below(&r, (uint32_t)cnt)];

        const float *qi = q + (size_t)i * D;
        double nq = row_norm(qi, D);
        if (nq < CFR_EPS)
            nq = CFR_EPS;
        int64_t *ni = neg_idx + (size_t)i * K;
        int filled = 0;
        for (int64_t row = 0; row < N && K > 0; row++) {
            if (ypool[row] == y)
                continue;
            const float *x = pool + (size_t)row * D;
            double dot = 0, nx2 = 0;
            for (int d = 0; d < D; d++) {
                dot += (double)qi[d] * x[d];
                nx2 += (double)x[d] * x[d];
            }
            double nx = sqrt(nx2);
            double c = dot / (nq * (nx > CFR_EPS ? nx : CFR_EPS));
            /* Rows come in increasing order, so an equal cosine never displaces an earlier row. */
            if (filled == K && !(c > work[K - 1]))
                continue;
            int at = filled < K ? filled++ : K - 1;
            while (at > 0 && work[at - 1] < c) {
                work[at] = work[at - 1];
                ni[at] = ni[at - 1];
                at--;
            }
            work[at] = c;
            ni[at] = row;
        }
    }
    return CX_OK;
}
