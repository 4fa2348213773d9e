/* DINO's differentiable core: Sinkhorn-Knopp targets, prototype subsampling, the two-view loss,
 * the cosine prototype layer and the EMA teacher (see dino.h for the formulas). */
#include "config.h"
#include "lib/objective/dino.h"

#include <math.h>
#include <stdlib.h>

#include "lib/base/blas.h"
#include "lib/base/rng.h"
#include "lib/ops/ops.h"

cx_status cx_dino_sinkhorn(float *targets, const float *scores, int B, int K, double temp,
                           int iters, double *work, cx_err *err)
{
    if (B < 1 || K < 1)
        return cx_fail(err, CX_EUSAGE, "dino sinkhorn: %d samples x %d prototypes, need >= 1",
                       B, K);
    if (!(temp > 0.0) || !isfinite(temp))
        return cx_fail(err, CX_EUSAGE, "dino sinkhorn: temperature %g, need > 0", temp);
    if (iters < 0)
        return cx_fail(err, CX_EUSAGE, "dino sinkhorn: %d iterations, need >= 0", iters);
    size_t n = (size_t)B * K;
    /* work is Q^T: work[i*K + k] = Q[k][i]; rows of Q are work's columns. Every pass walks it
     * row by row (contiguous); the prototypes' sums are kept in work[n..n+K). */
    double *proto = work + n;
    double mx = -INFINITY;
    for (size_t j = 0; j < n; j++)
        if (scores[j] > mx)
            mx = scores[j];
    if (!isfinite(mx))
        return cx_fail(err, CX_EDATA, "dino sinkhorn: teacher scores are not finite");
    const double inv_temp = 1.0 / temp;
    double total = 0.0;
    for (size_t j = 0; j < n; j++) {
        work[j] = exp(((double)scores[j] - mx) * inv_temp);
        total += work[j];
    }
    /* Q /= sum(Q), the prototypes' sums gathered in the same pass. */
    const double inv_total = 1.0 / total;
    for (int k = 0; k < K; k++)
        proto[k] = 0.0;
    for (int i = 0; i < B; i++) {
        double *w = work + (size_t)i * K;
        for (int k = 0; k < K; k++) {
            w[k] *= inv_total;
            proto[k] += w[k];
        }
    }
    for (int it = 0; it < iters; it++) {
        /* rows of Q (each prototype over the batch) to 1/K, then columns (each sample over the
         * prototypes) to 1/B, gathering the next iteration's prototype sums on the way. */
        for (int k = 0; k < K; k++)
            proto[k] = 1.0 / (proto[k] * K);
        for (int i = 0; i < B; i++) {
            double *w = work + (size_t)i * K;
            double s = 0.0;
            for (int k = 0; k < K; k++) {
                w[k] *= proto[k];
                s += w[k];
            }
            const double inv = 1.0 / (s * B);
            for (int k = 0; k < K; k++)
                w[k] *= inv;
        }
        if (it + 1 < iters) {
            for (int k = 0; k < K; k++)
                proto[k] = 0.0;
            for (int i = 0; i < B; i++) {
                const double *w = work + (size_t)i * K;
                for (int k = 0; k < K; k++)
                    proto[k] += w[k];
            }
        }
    }
    for (size_t j = 0; j < n; j++)
        targets[j] = (float)(work[j] * B);
    return CX_OK;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

cx_status cx_dino_sample_prototypes(int32_t *idx, int *k, uint32_t *perm, int P, int K,
                                    uint64_t seed, uint64_t step, cx_err *err)
{
    if (P < 1)
        return cx_fail(err, CX_EUSAGE, "dino.prototypes: %d, need >= 1", P);
    if (K < 0 || K > P)
        return cx_fail(err, CX_EUSAGE, "dino.sample_k: %d, need 0 (all) up to %d prototypes",
                       K, P);
    if (K == 0 || K == P) {
        for (int j = 0; j < P; j++)
            idx[j] = j;
        *k = P;
        return CX_OK;
    }
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(CX_DINO_TAG_PROTO, step, 0));
    cx_rng_permutation(&r, perm, (size_t)P);
    for (int j = 0; j < K; j++)
        idx[j] = (int32_t)perm[j];
    qsort(idx, (size_t)K, sizeof *idx, cmp_i32);
    *k = K;
    return CX_OK;
}

/* One view's H(t, softmax(s / temp)) summed over the rows (not yet divided by B), and its
 * gradient scaled by g into ds when ds is not NULL. */
static double view_ce(float *ds, const float *s, const float *t, int B, int K, double temp,
                      double g)
{
    double sum = 0.0;
    for (int i = 0; i < B; i++) {
        const float *si = s + (size_t)i * K;
        const float *ti = t + (size_t)i * K;
        double mx = -INFINITY;
        for (int k = 0; k < K; k++)
            if (si[k] > mx)
                mx = si[k];
        double z = 0.0, tsum = 0.0, dot = 0.0;
        for (int k = 0; k < K; k++) {
            double u = ((double)si[k] - mx) / temp;
            z += exp(u);
            tsum += ti[k];
            dot += (double)ti[k] * u;
        }
        double lz = log(z);
        /* -sum_k t_k (u_k - log z) */
        sum += tsum * lz - dot;
        if (ds) {
            float *di = ds + (size_t)i * K;
            for (int k = 0; k < K; k++) {
                double p = exp(((double)si[k] - mx) / temp - lz);
                di[k] = (float)(g * (p * tsum - (double)ti[k]));
            }
        }
    }
    return sum;
}

cx_status cx_dino_loss(double *loss, float *ds_a, float *ds_b, const float *s_a,
                       const float *s_b, const float *t_a, const float *t_b, int B, int K,
                       double temp_s, cx_err *err)
{
    if (B < 1 || K < 1)
        return cx_fail(err, CX_EUSAGE, "dino loss: %d samples x %d prototypes, need >= 1", B,
                       K);
    if (!(temp_s > 0.0) || !isfinite(temp_s))
        return cx_fail(err, CX_EUSAGE, "dino loss: student temperature %g, need > 0", temp_s);
    double g = 1.0 / (2.0 * B * temp_s);
    double la = view_ce(ds_a, s_a, t_b, B, K, temp_s, g);
    double lb = view_ce(ds_b, s_b, t_a, B, K, temp_s, g);
    *loss = (la + lb) / (2.0 * B);
    return CX_OK;
}

void cx_dino_proto_forward(float *out, float *xn, float *xnorm, float *wn, float *wnorm,
                           const float *x, const float *W, const int32_t *idx, int B, int D,
                           int K)
{
    if (B <= 0 || D <= 0 || K <= 0)
        return;
    for (int k = 0; k < K; k++) {
        const float *src = W + (size_t)idx[k] * D;
        float *dst = wn + (size_t)k * D;
        for (int j = 0; j < D; j++)
            dst[j] = src[j];
    }
    cx_l2norm_forward(wn, wnorm, wn, K, D, CX_DINO_NORM_EPS);
    cx_l2norm_forward(xn, xnorm, x, B, D, CX_DINO_NORM_EPS);
    cx_sgemm(0, 1, B, K, D, 1.0f, xn, D, wn, D, 0.0f, out, K);
}

void cx_dino_proto_backward(float *dx, float *dW, float *scratch, const float *dout,
                            const float *xn, const float *xnorm, const float *wn,
                            const float *wnorm, const int32_t *idx, int B, int D, int K)
{
    if (B <= 0 || D <= 0 || K <= 0)
        return;
    float *dxn = scratch;                  /* (B, D) */
    float *dwn = scratch + (size_t)B * D;  /* (K, D) */
    if (dx) {
        cx_sgemm(0, 0, B, D, K, 1.0f, dout, K, wn, D, 0.0f, dxn, D);
        cx_l2norm_backward(dx, dxn, xn, xnorm, B, D, CX_DINO_NORM_EPS);
    }
    if (dW) {
        cx_sgemm(1, 0, K, D, B, 1.0f, dout, K, xn, D, 0.0f, dwn, D);
        cx_l2norm_backward(dwn, dwn, wn, wnorm, K, D, CX_DINO_NORM_EPS);
        for (int k = 0; k < K; k++) {
            float *dst = dW + (size_t)idx[k] * D;
            const float *src = dwn + (size_t)k * D;
            for (int j = 0; j < D; j++)
                dst[j] += src[j];
        }
    }
}

double cx_dino_momentum(double m0, int64_t step, int64_t total)
{
    if (total <= 0 || step >= total)
        return 1.0;
    if (step <= 0)
        return m0;
    const double pi = 3.14159265358979323846;
    return 1.0 - (1.0 - m0) * (1.0 + cos(pi * (double)step / (double)total)) / 2.0;
}

void cx_dino_ema_update(float *teacher, const float *student, size_t n, double m)
{
    double a = 1.0 - m;
    for (size_t j = 0; j < n; j++)
        teacher[j] = (float)(m * teacher[j] + a * student[j]);
}
