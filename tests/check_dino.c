/* DINO's core (lib/objective/dino.h): Sinkhorn-Knopp against a naive implementation, prototype
 * subsampling's law and determinism, the two-view loss and the cosine prototype layer against
 * naive references and finite differences (K < P), the momentum schedule and EMA, and all of it
 * against PyTorch (tests/fixtures/dino.fx, scripts/make_fixtures_dino.py). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/objective/dino.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

/* ---- naive references (double) ------------------------------------------------------------ */

/* Sinkhorn-Knopp as written in methods.md, on an explicit K x B matrix Q. */
static void naive_sinkhorn(double *targets, const float *scores, int B, int K, double eps,
                           int iters)
{
    double *Q = calloc((size_t)K * B, sizeof *Q);
    ck_assert_ptr_nonnull(Q);
    for (int k = 0; k < K; k++)
        for (int i = 0; i < B; i++)
            Q[k * B + i] = exp(scores[i * K + k] / eps);
    double total = 0;
    for (int j = 0; j < K * B; j++)
        total += Q[j];
    for (int j = 0; j < K * B; j++)
        Q[j] /= total;
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < K; k++) {
            double s = 0;
            for (int i = 0; i < B; i++)
                s += Q[k * B + i];
            for (int i = 0; i < B; i++)
                Q[k * B + i] = Q[k * B + i] / s / K;
        }
        for (int i = 0; i < B; i++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += Q[k * B + i];
            for (int k = 0; k < K; k++)
                Q[k * B + i] = Q[k * B + i] / s / B;
        }
    }
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++)
            targets[i * K + k] = Q[k * B + i] * B;
    free(Q);
}

static double naive_ce(const float *s, const float *t, int B, int K, double temp)
{
    double sum = 0;
    for (int i = 0; i < B; i++) {
        double z = 0;
        for (int k = 0; k < K; k++)
            z += exp(s[i * K + k] / temp);
        for (int k = 0; k < K; k++)
            sum -= t[i * K + k] * (s[i * K + k] / temp - log(z));
    }
    return sum / B;
}

static void naive_proto(double *out, const float *x, const float *W, const int32_t *idx, int B,
                        int D, int K)
{
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++) {
            const float *w = W + (size_t)idx[k] * D;
            double xx = 0, ww = 0, xw = 0;
            for (int j = 0; j < D; j++) {
                xx += (double)x[i * D + j] * x[i * D + j];
                ww += (double)w[j] * w[j];
                xw += (double)x[i * D + j] * w[j];
            }
            out[i * K + k] = xw / (sqrt(xx) * sqrt(ww));
        }
}

static float *uniform_scores(size_t n, uint64_t seed, double lo, double hi)
{
    float *v = gc_fbuf(n);
    cx_rng r;
    cx_rng_seed(&r, seed, 7);
    for (size_t j = 0; j < n; j++)
        v[j] = (float)(lo + (hi - lo) * cx_rng_uniform(&r));
    return v;
}

/* ---- Sinkhorn ------------------------------------------------------------------------------ */

START_TEST(sinkhorn_matches_naive)
{
    static const struct {
        int B, K, iters;
        double temp;
    } cases[] = {{7, 5, 3, 0.04}, {1, 4, 3, 0.04}, {6, 1, 3, 0.04}, {9, 13, 0, 0.05},
                 {4, 6, 1, 0.1},  {16, 8, 10, 0.04}, {3, 3, 3, 1.0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c].B, K = cases[c].K;
        size_t n = (size_t)B * K;
        float *s = uniform_scores(n, 100 + c, -1, 1);
        float *t = gc_fbuf(n);
        double *work = gc_dbuf(n + K), *want = gc_dbuf(n);
        cx_err err;
        gc_fill_nan(t, n);
        ck_assert_int_eq(cx_dino_sinkhorn(t, s, B, K, cases[c].temp, cases[c].iters, work, &err),
                         CX_OK);
        naive_sinkhorn(want, s, B, K, cases[c].temp, cases[c].iters);
        char what[64];
        snprintf(what, sizeof what, "sinkhorn case %zu", c);
        gc_assert_close(t, want, n, 1e-6, 1e-9, what);
        if (cases[c].iters > 0)
            for (int i = 0; i < B; i++) {
                double rs = 0;
                for (int k = 0; k < K; k++)
                    rs += t[i * K + k];
                ck_assert_msg(fabs(rs - 1) < 1e-5, "%s: row %d sums to %g", what, i, rs);
            }
        free(s);
        free(t);
        free(work);
        free(want);
    }
}
END_TEST

START_TEST(sinkhorn_balances_prototypes_and_survives_large_scores)
{
    /* Many iterations: every prototype gets B/K of the mass (at a mild temperature: at 0.04
     * entries span e^50 and convergence takes thousands of iterations). */
    int B = 12, K = 4;
    size_t n = (size_t)B * K;
    float *s = uniform_scores(n, 5, -1, 1);
    float *t = gc_fbuf(n);
    double *work = gc_dbuf(n + K);
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, B, K, 0.25, 200, work, NULL), CX_OK);
    for (int k = 0; k < K; k++) {
        double cs = 0;
        for (int i = 0; i < B; i++)
            cs += t[i * K + k];
        ck_assert_msg(fabs(cs - (double)B / K) < 1e-4, "prototype %d holds %g", k, cs);
    }
    /* exp(100 / 0.04) overflows a double; the shifted exponent does not. */
    for (size_t j = 0; j < n; j++)
        s[j] += 100.0f;
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, B, K, 0.04, 3, work, NULL), CX_OK);
    for (int i = 0; i < B; i++) {
        double rs = 0;
        for (int k = 0; k < K; k++) {
            ck_assert(isfinite(t[i * K + k]) && t[i * K + k] >= 0);
            rs += t[i * K + k];
        }
        ck_assert(fabs(rs - 1) < 1e-5);
    }
    free(s);
    free(t);
    free(work);
}
END_TEST

START_TEST(sinkhorn_bits_do_not_depend_on_threads)
{
    int B = 64, K = 96;
    size_t n = (size_t)B * K;
    float *s = uniform_scores(n, 9, -1, 1);
    float *t1 = gc_fbuf(n), *t2 = gc_fbuf(n);
    double *work = gc_dbuf(n + K);
    cx_threads_set(1);
    ck_assert_int_eq(cx_dino_sinkhorn(t1, s, B, K, 0.04, 3, work, NULL), CX_OK);
    cx_threads_set(2);
    ck_assert_int_eq(cx_dino_sinkhorn(t2, s, B, K, 0.04, 3, work, NULL), CX_OK);
    cx_threads_set(1);
    ck_assert(memcmp(t1, t2, n * sizeof *t1) == 0);
    free(s);
    free(t1);
    free(t2);
    free(work);
}
END_TEST

START_TEST(sinkhorn_refuses_bad_arguments)
{
    float s[4] = {0}, t[4];
    double w[6];
    cx_err err;
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 0, 4, 0.04, 3, w, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 4, 0, 0.04, 3, w, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 2, 2, 0.0, 3, w, &err), CX_EUSAGE);
    ck_assert(strstr(err.msg, "temperature") != NULL);
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 2, 2, NAN, 3, w, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 2, 2, 0.04, -1, w, NULL), CX_EUSAGE);
    s[1] = NAN;
    s[0] = INFINITY;
    ck_assert_int_eq(cx_dino_sinkhorn(t, s, 2, 2, 0.04, 3, w, &err), CX_EDATA);
}
END_TEST

/* ---- prototype subsampling ------------------------------------------------------------------ */

START_TEST(subsample_all_when_k_is_zero_or_p)
{
    int32_t idx[12];
    uint32_t perm[12];
    int k = -1;
    ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, 12, 0, 1, 5, NULL), CX_OK);
    ck_assert_int_eq(k, 12);
    for (int j = 0; j < 12; j++)
        ck_assert_int_eq(idx[j], j);
    k = -1;
    memset(idx, 0xff, sizeof idx);
    ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, 12, 12, 1, 5, NULL), CX_OK);
    ck_assert_int_eq(k, 12);
    for (int j = 0; j < 12; j++)
        ck_assert_int_eq(idx[j], j);
    cx_err err;
    ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, 12, 13, 1, 5, &err), CX_EUSAGE);
    ck_assert(strstr(err.msg, "dino.sample_k") != NULL);
    ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, 12, -1, 1, 5, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, 0, 0, 1, 5, &err), CX_EUSAGE);
}
END_TEST

START_TEST(subsample_is_keyed_by_seed_and_step_and_uniform)
{
    enum { P = 10, K = 3, STEPS = 20000 };
    int32_t idx[P], again[P];
    uint32_t perm[P];
    long hits[P] = {0};
    int differ = 0, k;
    int32_t prev[K] = {0};
    for (int step = 0; step < STEPS; step++) {
        ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, P, K, 42, (uint64_t)step,
                                                   NULL), CX_OK);
        ck_assert_int_eq(k, K);
        for (int j = 0; j < K; j++) {
            ck_assert(idx[j] >= 0 && idx[j] < P);
            if (j > 0)
                ck_assert_msg(idx[j - 1] < idx[j], "step %d: not sorted and distinct", step);
            hits[idx[j]]++;
        }
        if (step > 0 && memcmp(prev, idx, sizeof prev) != 0)
            differ++;
        memcpy(prev, idx, sizeof prev);
        if (step % 997 == 0) {
            /* The same (seed, step) gives the same set: student and teacher share it. */
            ck_assert_int_eq(cx_dino_sample_prototypes(again, &k, perm, P, K, 42,
                                                       (uint64_t)step, NULL), CX_OK);
            ck_assert(memcmp(again, idx, K * sizeof *idx) == 0);
        }
    }
    /* C(10,3) = 120 sets: consecutive steps repeat a set about 1/120 of the time. */
    ck_assert_int_gt(differ, STEPS * 9 / 10);
    double want = (double)STEPS * K / P, sd = sqrt(STEPS * (K / (double)P) * (1 - K / (double)P));
    for (int j = 0; j < P; j++)
        ck_assert_msg(fabs(hits[j] - want) < 5 * sd, "prototype %d drawn %ld times, want %g", j,
                      hits[j], want);
    /* Another seed draws other sets. */
    int same = 0;
    for (int step = 0; step < 50; step++) {
        ck_assert_int_eq(cx_dino_sample_prototypes(idx, &k, perm, P, K, 42, (uint64_t)step,
                                                   NULL), CX_OK);
        ck_assert_int_eq(cx_dino_sample_prototypes(again, &k, perm, P, K, 43, (uint64_t)step,
                                                   NULL), CX_OK);
        same += memcmp(again, idx, K * sizeof *idx) == 0;
    }
    ck_assert_int_lt(same, 10);
}
END_TEST

/* ---- the loss --------------------------------------------------------------------------------- */

typedef struct {
    int B, D, P, K;
    float *x_a, *x_b, *W; /* (B, D), (B, D), (P, D) */
    int32_t *idx;         /* (K) */
    float *t_a, *t_b;     /* (B, K) */
    float *s_a, *s_b;     /* (B, K), scratch or the checked input */
    float *xn, *xnorm, *wn, *wnorm;
    int through_layer;    /* 1: f(x_a, x_b, W); 0: f(s_a, s_b) */
    double temp;
} loss_ctx;

static double loss_f(void *p)
{
    loss_ctx *c = p;
    if (c->through_layer) {
        cx_dino_proto_forward(c->s_a, c->xn, c->xnorm, c->wn, c->wnorm, c->x_a, c->W, c->idx,
                              c->B, c->D, c->K);
        cx_dino_proto_forward(c->s_b, c->xn, c->xnorm, c->wn, c->wnorm, c->x_b, c->W, c->idx,
                              c->B, c->D, c->K);
    }
    double l;
    ck_assert_int_eq(cx_dino_loss(&l, NULL, NULL, c->s_a, c->s_b, c->t_a, c->t_b, c->B, c->K,
                                  c->temp, NULL), CX_OK);
    return l;
}

START_TEST(loss_matches_naive_and_finite_differences)
{
    /* Targets need not sum to 1 here: the general gradient formula is checked. */
    int B = 6, K = 5;
    size_t n = (size_t)B * K;
    loss_ctx c = {.B = B, .K = K, .temp = 0.1};
    c.s_a = uniform_scores(n, 1, -1, 1);
    c.s_b = uniform_scores(n, 2, -1, 1);
    c.t_a = uniform_scores(n, 3, 0, 0.5);
    c.t_b = uniform_scores(n, 4, 0, 0.5);
    float *ds_a = gc_fbuf(n), *ds_b = gc_fbuf(n);
    gc_fill_nan(ds_a, n);
    gc_fill_nan(ds_b, n);
    double l;
    ck_assert_int_eq(cx_dino_loss(&l, ds_a, ds_b, c.s_a, c.s_b, c.t_a, c.t_b, B, K, 0.1, NULL),
                     CX_OK);
    double want = (naive_ce(c.s_a, c.t_b, B, K, 0.1) + naive_ce(c.s_b, c.t_a, B, K, 0.1)) / 2;
    ck_assert_msg(fabs(l - want) <= 1e-12 * fabs(want) + 1e-12, "loss %.17g, naive %.17g", l,
                  want);
    gc_var vars[2] = {{"ds_a", c.s_a, ds_a, n}, {"ds_b", c.s_b, ds_b, n}};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.max_coords = 0;
    gc_report rep;
    gc_assert_passed(gc_check(loss_f, NULL, &c, vars, 2, &o, &rep), &rep, "dino loss");
    /* Swapping the views swaps the gradients. */
    float *e_a = gc_fbuf(n), *e_b = gc_fbuf(n);
    double l2;
    ck_assert_int_eq(cx_dino_loss(&l2, e_b, e_a, c.s_b, c.s_a, c.t_b, c.t_a, B, K, 0.1, NULL),
                     CX_OK);
    ck_assert(l2 == l);
    ck_assert(memcmp(e_a, ds_a, n * sizeof *e_a) == 0 && memcmp(e_b, ds_b, n * sizeof *e_b) == 0);
    cx_err err;
    ck_assert_int_eq(cx_dino_loss(&l, NULL, NULL, c.s_a, c.s_b, c.t_a, c.t_b, B, K, 0, &err),
                     CX_EUSAGE);
    ck_assert_int_eq(cx_dino_loss(&l, NULL, NULL, c.s_a, c.s_b, c.t_a, c.t_b, 0, K, 0.1, &err),
                     CX_EUSAGE);
    free(e_a);
    free(e_b);
    free(ds_a);
    free(ds_b);
    free(c.s_a);
    free(c.s_b);
    free(c.t_a);
    free(c.t_b);
}
END_TEST

START_TEST(loss_through_k_of_p_prototypes_finite_differences)
{
    /* The whole differentiable path with K < P: features -> cosine layer on the chosen
     * prototypes -> loss against Sinkhorn targets. Unchosen prototypes get zero gradient. */
    loss_ctx c = {.B = 5, .D = 6, .P = 9, .K = 4, .through_layer = 1, .temp = 0.1};
    int B = c.B, D = c.D, P = c.P, K = c.K;
    size_t nk = (size_t)B * K;
    c.x_a = gc_frand((size_t)B * D, 11, 1.0);
    c.x_b = gc_frand((size_t)B * D, 12, 1.0);
    c.W = gc_frand((size_t)P * D, 13, 0.5);
    c.idx = calloc((size_t)P, sizeof *c.idx);
    uint32_t *perm = calloc((size_t)P, sizeof *perm);
    ck_assert_ptr_nonnull(c.idx);
    ck_assert_ptr_nonnull(perm);
    int k;
    ck_assert_int_eq(cx_dino_sample_prototypes(c.idx, &k, perm, P, K, 7, 3, NULL), CX_OK);
    ck_assert_int_eq(k, K);
    c.s_a = gc_fbuf(nk);
    c.s_b = gc_fbuf(nk);
    c.t_a = gc_fbuf(nk);
    c.t_b = gc_fbuf(nk);
    c.xn = gc_fbuf((size_t)B * D);
    c.xnorm = gc_fbuf((size_t)B);
    c.wn = gc_fbuf((size_t)K * D);
    c.wnorm = gc_fbuf((size_t)K);
    double *work = gc_dbuf(nk + K);
    float *ts = uniform_scores(nk, 14, -1, 1);
    ck_assert_int_eq(cx_dino_sinkhorn(c.t_a, ts, B, K, 0.04, 3, work, NULL), CX_OK);
    float *ts2 = uniform_scores(nk, 15, -1, 1);
    ck_assert_int_eq(cx_dino_sinkhorn(c.t_b, ts2, B, K, 0.04, 3, work, NULL), CX_OK);

    /* Analytic gradients: forward each view, loss, backward each view. */
    float *xn_a = gc_fbuf((size_t)B * D), *xnorm_a = gc_fbuf((size_t)B);
    float *xn_b = gc_fbuf((size_t)B * D), *xnorm_b = gc_fbuf((size_t)B);
    cx_dino_proto_forward(c.s_a, xn_a, xnorm_a, c.wn, c.wnorm, c.x_a, c.W, c.idx, B, D, K);
    cx_dino_proto_forward(c.s_b, xn_b, xnorm_b, c.wn, c.wnorm, c.x_b, c.W, c.idx, B, D, K);
    float *ds_a = gc_fbuf(nk), *ds_b = gc_fbuf(nk);
    double l;
    ck_assert_int_eq(cx_dino_loss(&l, ds_a, ds_b, c.s_a, c.s_b, c.t_a, c.t_b, B, K, 0.1, NULL),
                     CX_OK);
    float *dx_a = gc_fbuf((size_t)B * D), *dx_b = gc_fbuf((size_t)B * D);
    float *dW = gc_fbuf((size_t)P * D), *scratch = gc_fbuf((size_t)(B + K) * D);
    cx_dino_proto_backward(dx_a, dW, scratch, ds_a, xn_a, xnorm_a, c.wn, c.wnorm, c.idx, B, D,
                           K);
    cx_dino_proto_backward(dx_b, dW, scratch, ds_b, xn_b, xnorm_b, c.wn, c.wnorm, c.idx, B, D,
                           K);
    for (int p = 0; p < P; p++) {
        int chosen = 0;
        double mag = 0;
        for (int j = 0; j < K; j++)
            chosen |= c.idx[j] == p;
        for (int j = 0; j < D; j++)
            mag += fabs(dW[p * D + j]);
        ck_assert_msg(chosen ? mag > 0 : mag == 0, "prototype %d chosen %d, |dW| %g", p, chosen,
                      mag);
    }
    gc_var vars[3] = {{"dx_a", c.x_a, dx_a, (size_t)B * D},
                      {"dx_b", c.x_b, dx_b, (size_t)B * D},
                      {"dW", c.W, dW, (size_t)P * D}};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.max_coords = 0;
    gc_report rep;
    gc_assert_passed(gc_check(loss_f, NULL, &c, vars, 3, &o, &rep), &rep, "dino loss, K < P");
    free(xn_a); free(xnorm_a); free(xn_b); free(xnorm_b);
    free(ds_a); free(ds_b); free(dx_a); free(dx_b); free(dW); free(scratch);
    free(ts); free(ts2); free(work); free(perm);
    free(c.x_a); free(c.x_b); free(c.W); free(c.idx);
    free(c.s_a); free(c.s_b); free(c.t_a); free(c.t_b);
    free(c.xn); free(c.xnorm); free(c.wn); free(c.wnorm);
}
END_TEST

/* ---- the cosine prototype layer ------------------------------------------------------------ */

typedef struct {
    int B, D, K;
    float *x, *W, *out, *xn, *xnorm, *wn, *wnorm;
    const int32_t *idx;
    gc_proj proj;
} proto_ctx;

static double proto_f(void *p)
{
    proto_ctx *c = p;
    cx_dino_proto_forward(c->out, c->xn, c->xnorm, c->wn, c->wnorm, c->x, c->W, c->idx, c->B,
                          c->D, c->K);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(proto_layer_matches_naive_and_finite_differences)
{
    static const int32_t idx[] = {1, 4, 8};
    int B = 4, D = 7, P = 10, K = 3;
    proto_ctx c = {.B = B, .D = D, .K = K, .idx = idx};
    c.x = gc_frand((size_t)B * D, 21, 1.0);
    c.W = gc_frand((size_t)P * D, 22, 0.3);
    c.out = gc_fbuf((size_t)B * K);
    c.xn = gc_fbuf((size_t)B * D);
    c.xnorm = gc_fbuf((size_t)B);
    c.wn = gc_fbuf((size_t)K * D);
    c.wnorm = gc_fbuf((size_t)K);
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)B * K, 23), 0);
    gc_fill_nan(c.out, (size_t)B * K);
    proto_f(&c);
    double *want = gc_dbuf((size_t)B * K);
    naive_proto(want, c.x, c.W, idx, B, D, K);
    gc_assert_close(c.out, want, (size_t)B * K, 1e-5, 1e-6, "cosine prototypes");

    float *dout = gc_fbuf((size_t)B * K), *dx = gc_fbuf((size_t)B * D);
    float *dW = gc_fbuf((size_t)P * D), *scratch = gc_fbuf((size_t)(B + K) * D);
    gc_proj_dout(&c.proj, dout);
    gc_fill_nan(dx, (size_t)B * D);
    cx_dino_proto_backward(dx, dW, scratch, dout, c.xn, c.xnorm, c.wn, c.wnorm, idx, B, D, K);
    gc_var vars[2] = {{"dx", c.x, dx, (size_t)B * D}, {"dW", c.W, dW, (size_t)P * D}};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.max_coords = 0;
    gc_report rep;
    gc_assert_passed(gc_check(proto_f, NULL, &c, vars, 2, &o, &rep), &rep, "cosine prototypes");

    /* dW is added to (twice the gradient after a second call); dx is overwritten; NULLs skip. */
    float *dW2 = gc_fbuf((size_t)P * D), *dx2 = gc_fbuf((size_t)B * D);
    memcpy(dW2, dW, (size_t)P * D * sizeof *dW);
    proto_f(&c);
    for (size_t j = 0; j < (size_t)B * D; j++)
        dx2[j] = 99.0f;
    cx_dino_proto_backward(dx2, dW2, scratch, dout, c.xn, c.xnorm, c.wn, c.wnorm, idx, B, D, K);
    for (size_t j = 0; j < (size_t)P * D; j++)
        ck_assert(fabsf(dW2[j] - 2 * dW[j]) <= 1e-6f * (1 + fabsf(dW[j])));
    ck_assert(memcmp(dx2, dx, (size_t)B * D * sizeof *dx) == 0);
    memcpy(dW2, dW, (size_t)P * D * sizeof *dW);
    cx_dino_proto_backward(NULL, dW2, scratch, dout, c.xn, c.xnorm, c.wn, c.wnorm, idx, B, D, K);
    cx_dino_proto_backward(dx2, NULL, scratch, dout, c.xn, c.xnorm, c.wn, c.wnorm, idx, B, D, K);
    ck_assert(memcmp(dx2, dx, (size_t)B * D * sizeof *dx) == 0);

    gc_proj_free(&c.proj);
    free(want); free(dout); free(dx); free(dW); free(dW2); free(dx2); free(scratch);
    free(c.x); free(c.W); free(c.out); free(c.xn); free(c.xnorm); free(c.wn); free(c.wnorm);
}
END_TEST

/* ---- EMA teacher ------------------------------------------------------------------------------- */

START_TEST(momentum_schedule_and_ema)
{
    ck_assert(cx_dino_momentum(0.996, 0, 100) == 0.996);
    ck_assert(cx_dino_momentum(0.996, 100, 100) == 1.0);
    ck_assert(cx_dino_momentum(0.996, 250, 100) == 1.0);
    ck_assert(cx_dino_momentum(0.996, 5, 0) == 1.0);
    ck_assert(fabs(cx_dino_momentum(0.996, 50, 100) - 0.998) < 1e-15);
    /* DINO's cosine_scheduler(0.996, 1): final + (base - final) (1 + cos(pi i / n)) / 2 */
    double prev = 0;
    for (int s = 0; s <= 100; s++) {
        double m = cx_dino_momentum(0.996, s, 100);
        double want = 1 + (0.996 - 1) * (1 + cos(3.14159265358979323846 * s / 100)) / 2;
        ck_assert(fabs(m - want) < 1e-15);
        ck_assert(m >= prev);
        prev = m;
    }
    float t[3] = {1.0f, -2.0f, 0.5f};
    const float s[3] = {3.0f, 2.0f, 0.5f};
    cx_dino_ema_update(t, s, 3, 0.75);
    ck_assert(t[0] == 1.5f && t[1] == -1.0f && t[2] == 0.5f);
    cx_dino_ema_update(t, s, 3, 1.0);
    ck_assert(t[0] == 1.5f && t[1] == -1.0f && t[2] == 0.5f);
    cx_dino_ema_update(t, s, 3, 0.0);
    ck_assert(t[0] == 3.0f && t[1] == 2.0f && t[2] == 0.5f);
}
END_TEST

/* ---- PyTorch ---------------------------------------------------------------------------------- */

static void check_fixture_case(const fx_file *f, const char *p)
{
    cx_err err;
    int32_t dims[5];
    ck_assert_msg(fx_to_int32(fx_need(f, p, "dims", 5), dims, &err) == CX_OK, "%s", err.msg);
    int B = dims[0], D = dims[1], P = dims[2], K = dims[3], iters = dims[4];
    const fx_tensor *temps = fx_need(f, p, "temps", 2);
    double temp_s = temps->v[0], temp_t = temps->v[1];
    size_t nk = (size_t)B * K, nx = (size_t)B * D, nw = (size_t)P * D;
    int32_t *idx = calloc((size_t)K, sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    ck_assert_msg(fx_to_int32(fx_need(f, p, "idx", (size_t)K), idx, &err) == CX_OK, "%s",
                  err.msg);
    float *ts_a = gc_fbuf(nk), *ts_b = gc_fbuf(nk), *t_a = gc_fbuf(nk), *t_b = gc_fbuf(nk);
    double *work = gc_dbuf(nk + K);
    fx_to_float(fx_need(f, p, "tscores_a", nk), ts_a);
    fx_to_float(fx_need(f, p, "tscores_b", nk), ts_b);
    ck_assert_int_eq(cx_dino_sinkhorn(t_a, ts_a, B, K, temp_t, iters, work, NULL), CX_OK);
    ck_assert_int_eq(cx_dino_sinkhorn(t_b, ts_b, B, K, temp_t, iters, work, NULL), CX_OK);
    fx_assert_close(t_a, f, p, "targets_a", nk, 1e-6);
    fx_assert_close(t_b, f, p, "targets_b", nk, 1e-6);

    float *x_a = gc_fbuf(nx), *x_b = gc_fbuf(nx), *W = gc_fbuf(nw);
    fx_to_float(fx_need(f, p, "x_a", nx), x_a);
    fx_to_float(fx_need(f, p, "x_b", nx), x_b);
    fx_to_float(fx_need(f, p, "w", nw), W);
    float *s_a = gc_fbuf(nk), *s_b = gc_fbuf(nk);
    float *xn_a = gc_fbuf(nx), *xn_b = gc_fbuf(nx), *xnorm_a = gc_fbuf((size_t)B);
    float *xnorm_b = gc_fbuf((size_t)B), *wn = gc_fbuf((size_t)K * D), *wnorm = gc_fbuf((size_t)K);
    cx_dino_proto_forward(s_a, xn_a, xnorm_a, wn, wnorm, x_a, W, idx, B, D, K);
    cx_dino_proto_forward(s_b, xn_b, xnorm_b, wn, wnorm, x_b, W, idx, B, D, K);
    fx_assert_close(s_a, f, p, "s_a", nk, 1e-6);
    fx_assert_close(s_b, f, p, "s_b", nk, 1e-6);

    float *ds_a = gc_fbuf(nk), *ds_b = gc_fbuf(nk);
    double l;
    ck_assert_int_eq(cx_dino_loss(&l, ds_a, ds_b, s_a, s_b, t_a, t_b, B, K, temp_s, NULL),
                     CX_OK);
    double want = fx_need(f, p, "loss", 1)->v[0];
    ck_assert_msg(fabs(l - want) <= 1e-5 * fabs(want), "%s: loss %.9g, torch %.9g", p, l, want);
    fx_assert_close(ds_a, f, p, "ds_a", nk, 1e-5);
    fx_assert_close(ds_b, f, p, "ds_b", nk, 1e-5);

    float *dx_a = gc_fbuf(nx), *dx_b = gc_fbuf(nx), *dW = gc_fbuf(nw);
    float *scratch = gc_fbuf((size_t)(B + K) * D);
    cx_dino_proto_backward(dx_a, dW, scratch, ds_a, xn_a, xnorm_a, wn, wnorm, idx, B, D, K);
    cx_dino_proto_backward(dx_b, dW, scratch, ds_b, xn_b, xnorm_b, wn, wnorm, idx, B, D, K);
    fx_assert_close(dx_a, f, p, "dx_a", nx, 1e-5);
    fx_assert_close(dx_b, f, p, "dx_b", nx, 1e-5);
    fx_assert_close(dW, f, p, "dw", nw, 1e-5);

    free(idx); free(ts_a); free(ts_b); free(t_a); free(t_b); free(work);
    free(x_a); free(x_b); free(W); free(s_a); free(s_b); free(xn_a); free(xn_b);
    free(xnorm_a); free(xnorm_b); free(wn); free(wnorm); free(ds_a); free(ds_b);
    free(dx_a); free(dx_b); free(dW); free(scratch);
}

START_TEST(pytorch_fixture)
{
    fx_file f;
    fx_load_named(&f, "dino.fx");
    check_fixture_case(&f, "sub");
    check_fixture_case(&f, "all");
    check_fixture_case(&f, "one");
    fx_free(&f);
}
END_TEST

static Suite *dino_suite(void)
{
    Suite *s = suite_create("dino");
    TCase *tc = tcase_create("sinkhorn");
    tcase_add_test(tc, sinkhorn_matches_naive);
    tcase_add_test(tc, sinkhorn_balances_prototypes_and_survives_large_scores);
    tcase_add_test(tc, sinkhorn_bits_do_not_depend_on_threads);
    tcase_add_test(tc, sinkhorn_refuses_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("subsample");
    tcase_add_test(tc, subsample_all_when_k_is_zero_or_p);
    tcase_add_test(tc, subsample_is_keyed_by_seed_and_step_and_uniform);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradients");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, loss_matches_naive_and_finite_differences);
    tcase_add_test(tc, loss_through_k_of_p_prototypes_finite_differences);
    tcase_add_test(tc, proto_layer_matches_naive_and_finite_differences);
    tcase_add_test(tc, momentum_schedule_and_ema);
    suite_add_tcase(s, tc);

    tc = tcase_create("pytorch");
    tcase_add_test(tc, pytorch_fixture);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dino_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
