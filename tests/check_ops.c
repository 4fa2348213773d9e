/* Ops: every forward against a naive double-precision reference written here, every gradient
 * (inputs, parameters, the logit scale) against finite differences, edge cases, the convolution
 * and pooling against PyTorch fixtures, and determinism under threads. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/ops/ops.h"
#include "lib/ops/ops_internal.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static const int odd_batches[] = {1, 3, 17};

/* ---- naive references (double) ------------------------------------------------------------ */

static void naive_linear(double *out, const float *in, const float *w, const float *b, int B,
                         int K, int N)
{
    for (int i = 0; i < B; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)in[i * K + k] * w[j * K + k];
            out[i * N + j] = s;
        }
}

static double naive_gelu(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static void naive_layernorm(double *out, double *mean, double *rstd, const float *in,
                            const float *g, const float *b, int B, int D, double eps)
{
    for (int i = 0; i < B; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < D; j++)
            m += in[i * D + j];
        m /= D;
        for (int j = 0; j < D; j++)
            v += (in[i * D + j] - m) * (in[i * D + j] - m);
        v /= D;
        double rs = 1.0 / sqrt(v + eps);
        mean[i] = m;
        rstd[i] = rs;
        for (int j = 0; j < D; j++)
            out[i * D + j] = (in[i * D + j] - m) * rs * g[j] + b[j];
    }
}

static void naive_l2norm(double *out, double *norm, const float *in, int B, int D, double eps)
{
    for (int i = 0; i < B; i++) {
        double s = 0;
        for (int j = 0; j < D; j++)
            s += (double)in[i * D + j] * in[i * D + j];
        double n = fmax(sqrt(s), eps);
        norm[i] = n;
        for (int j = 0; j < D; j++)
            out[i * D + j] = in[i * D + j] / n;
    }
}

static void naive_embag(double *out, const int32_t *tok, const float *table, int B, int T, int D,
                        int32_t pad)
{
    for (int i = 0; i < B; i++) {
        int c = 0;
        for (int j = 0; j < D; j++)
            out[i * D + j] = 0;
        for (int t = 0; t < T; t++)
            if (tok[i * T + t] != pad) {
                c++;
                for (int j = 0; j < D; j++)
                    out[i * D + j] += table[tok[i * T + t] * D + j];
            }
        for (int j = 0; j < D && c > 0; j++)
            out[i * D + j] /= c;
    }
}

/* Weighted mean of -log softmax(z + offset)[y]; probs (B, C) when non-NULL. */
static double naive_ce(double *probs, const float *z, const int32_t *y, const float *w,
                       const float *off, int B, int C)
{
    double num = 0, den = 0;
    for (int i = 0; i < B; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < C; j++)
            mx = fmax(mx, (double)z[i * C + j] + (off ? off[j] : 0));
        for (int j = 0; j < C; j++)
            s += exp((double)z[i * C + j] + (off ? off[j] : 0) - mx);
        for (int j = 0; j < C && probs; j++)
            probs[i * C + j] = exp((double)z[i * C + j] + (off ? off[j] : 0) - mx) / s;
        double l = mx + log(s) - ((double)z[i * C + y[i]] + (off ? off[y[i]] : 0));
        double wi = w ? w[i] : 1.0;
        if (wi != 0)
            num += wi * l;
        den += wi;
    }
    return den != 0 ? num / den : 0.0;
}

/* logits (B, B), row and column softmaxes, loss. */
static double naive_infonce(double *logits, double *prow, double *pcol, const float *img,
                            const float *txt, double scale, int B, int D)
{
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double s = 0;
            for (int k = 0; k < D; k++)
                s += (double)img[i * D + k] * txt[j * D + k];
            logits[i * B + j] = scale * s;
        }
    double loss = 0;
    for (int i = 0; i < B; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < B; j++)
            mx = fmax(mx, logits[i * B + j]);
        for (int j = 0; j < B; j++)
            s += exp(logits[i * B + j] - mx);
        for (int j = 0; j < B; j++)
            prow[i * B + j] = exp(logits[i * B + j] - mx) / s;
        loss += mx + log(s) - logits[i * B + i];
    }
    for (int j = 0; j < B; j++) {
        double mx = -INFINITY, s = 0;
        for (int i = 0; i < B; i++)
            mx = fmax(mx, logits[i * B + j]);
        for (int i = 0; i < B; i++)
            s += exp(logits[i * B + j] - mx);
        for (int i = 0; i < B; i++)
            pcol[i * B + j] = exp(logits[i * B + j] - mx) / s;
        loss += mx + log(s) - logits[j * B + j];
    }
    return loss / (2.0 * B);
}

/* ---- linear ------------------------------------------------------------------------------- */

START_TEST(linear_forward_matches_naive)
{
    const int K = 13, N = 9;
    for (int bi = 0; bi < 3; bi++) {
        int B = odd_batches[bi];
        float *in = gc_frand((size_t)B * K, 10 + bi, 1.0), *w = gc_frand((size_t)N * K, 20, 0.3);
        float *b = gc_frand(N, 30, 0.5), *out = gc_fbuf((size_t)B * N);
        double *ref = gc_dbuf((size_t)B * N);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bb = with_bias ? b : NULL;
            for (size_t i = 0; i < (size_t)B * N; i++)
                out[i] = NAN; /* out is overwritten, whatever it held */
            cx_linear_forward(out, in, w, bb, B, K, N);
            naive_linear(ref, in, w, bb, B, K, N);
            gc_assert_close(out, ref, (size_t)B * N, 1e-5, 1e-5, "linear out");
        }
        free(in), free(w), free(b), free(out), free(ref);
    }
}
END_TEST

typedef struct {
    int B, K, N;
    float *in, *w, *b, *out;
    gc_proj proj;
} lin_ctx;

static double lin_f(void *p)
{
    lin_ctx *c = p;
    cx_linear_forward(c->out, c->in, c->w, c->b, c->B, c->K, c->N);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(linear_gradients_match_finite_differences)
{
    for (int bi = 0; bi < 3; bi++) {
        lin_ctx c = {.B = odd_batches[bi], .K = 11, .N = 7};
        size_t nin = (size_t)c.B * c.K, nw = (size_t)c.N * c.K;
        c.in = gc_frand(nin, 40 + bi, 1.0);
        c.w = gc_frand(nw, 50, 0.4);
        c.b = gc_frand(c.N, 60, 0.5);
        c.out = gc_fbuf((size_t)c.B * c.N);
        ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * c.N, 70 + bi), 0);
        float *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(c.N);
        lin_f(&c);
        cx_linear_backward(din, dw, db, c.proj.r, c.in, c.w, c.B, c.K, c.N);
        gc_var vars[] = {{"din", c.in, din, nin}, {"dw", c.w, dw, nw}, {"db", c.b, db, c.N}};
        gc_opts o = gc_opts_default();
        o.max_coords = 40;
        gc_report rep;
        gc_assert_passed(gc_check(lin_f, NULL, &c, vars, 3, &o, &rep), &rep, "linear");
        gc_proj_free(&c.proj);
        free(c.in), free(c.w), free(c.b), free(c.out), free(din), free(dw), free(db);
    }
}
END_TEST

START_TEST(linear_backward_adds_params_and_skips_null)
{
    const int B = 17, K = 5, N = 4;
    float *in = gc_frand(B * K, 1, 1.0), *w = gc_frand(N * K, 2, 1.0);
    float *dout = gc_frand(B * N, 3, 1.0);
    float *dw = gc_fbuf(N * K), *db = gc_fbuf(N), *din = gc_fbuf(B * K);
    for (int i = 0; i < N * K; i++)
        dw[i] = 0.25f;
    for (int j = 0; j < N; j++)
        db[j] = -1.0f;
    for (int i = 0; i < B * K; i++)
        din[i] = 123.0f;
    /* din NULL: the input gradient is skipped; parameter gradients are added, twice. */
    cx_linear_backward(NULL, dw, db, dout, in, w, B, K, N);
    cx_linear_backward(NULL, dw, db, dout, in, w, B, K, N);
    for (int j = 0; j < N; j++) {
        double s = 0;
        for (int i = 0; i < B; i++)
            s += dout[i * N + j];
        ck_assert_double_eq_tol(db[j], -1.0 + 2 * s, 1e-5);
        for (int k = 0; k < K; k++) {
            double t = 0;
            for (int i = 0; i < B; i++)
                t += (double)dout[i * N + j] * in[i * K + k];
            ck_assert_double_eq_tol(dw[j * K + k], 0.25 + 2 * t, 1e-4);
        }
    }
    /* db NULL: only the weight gradient and din; din is overwritten, not added. */
    cx_linear_backward(din, dw, NULL, dout, in, w, B, K, N);
    double *ref = gc_dbuf(B * K);
    for (int i = 0; i < B; i++)
        for (int k = 0; k < K; k++)
            for (int j = 0; j < N; j++)
                ref[i * K + k] += (double)dout[i * N + j] * w[j * K + k];
    gc_assert_close(din, ref, B * K, 1e-5, 1e-5, "din");
    free(in), free(w), free(dout), free(dw), free(db), free(din), free(ref);
}
END_TEST

/* ---- activations -------------------------------------------------------------------------- */

START_TEST(relu_values_nan_and_in_place)
{
    float in[6] = {-2.0f, -0.0f, 0.0f, 1e-30f, 3.5f, NAN};
    float out[6], din[6], dout[6] = {1, 2, 3, 4, 5, 6};
    cx_relu_forward(out, in, 6);
    ck_assert_float_eq(out[0], 0.0f);
    ck_assert_float_eq(out[1], 0.0f);
    ck_assert_float_eq(out[2], 0.0f);
    ck_assert_float_eq(out[3], 1e-30f);
    ck_assert_float_eq(out[4], 3.5f);
    ck_assert_msg(isnan(out[5]), "relu must keep NaN so divergence shows");
    cx_relu_backward(din, dout, out, 6);
    float want[6] = {0, 0, 0, 4, 5, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(din[i], want[i]);
    /* In place: out == in, din == dout. */
    cx_relu_forward(in, in, 6);
    cx_relu_backward(dout, dout, in, 6);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(dout[i], want[i]);
}
END_TEST

typedef struct {
    size_t n;
    float *in, *out;
    gc_proj proj;
    int gelu;
} act_ctx;

static double act_f(void *p)
{
    act_ctx *c = p;
    if (c->gelu)
        cx_gelu_forward(c->out, c->in, c->n);
    else
        cx_relu_forward(c->out, c->in, c->n);
    return gc_proj_dot(&c->proj, c->out);
}

static int relu_skip(void *p, int var, size_t i, double h)
{
    act_ctx *c = p;
    return fabsf(c->in[i]) < h;
}

START_TEST(relu_gradient_skips_kinks)
{
    act_ctx c = {.n = 200};
    c.in = gc_frand(c.n, 80, 1.0);
    for (size_t i = 0; i < c.n; i += 25)
        c.in[i] = 0.0f; /* exactly on the kink */
    c.out = gc_fbuf(c.n);
    ck_assert_int_eq(gc_proj_init(&c.proj, c.n, 81), 0);
    float *din = gc_fbuf(c.n);
    act_f(&c);
    cx_relu_backward(din, c.proj.r, c.out, c.n);
    gc_var v = {"din", c.in, din, c.n};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    gc_report rep;
    /* Known kinks skipped by the predicate... */
    gc_assert_passed(gc_check(act_f, relu_skip, &c, &v, 1, &o, &rep), &rep, "relu");
    ck_assert_uint_ge(rep.skipped, 8);
    ck_assert_uint_ge(rep.checked, 150);
    /* ...or found by the one-sided differences when no predicate is given. */
    gc_assert_passed(gc_check(act_f, NULL, &c, &v, 1, &o, &rep), &rep, "relu auto");
    ck_assert_uint_ge(rep.skipped, 8);
    gc_proj_free(&c.proj);
    free(c.in), free(c.out), free(din);
}
END_TEST

START_TEST(gelu_matches_erf_and_in_place)
{
    const size_t n = 101;
    float *x = gc_fbuf(n), *y = gc_fbuf(n), *d = gc_fbuf(n), *one = gc_fbuf(n);
    for (size_t i = 0; i < n; i++) {
        x[i] = -10.0f + 0.2f * (float)i;
        one[i] = 1.0f;
    }
    cx_gelu_forward(y, x, n);
    cx_gelu_backward(d, one, x, n);
    for (size_t i = 0; i < n; i++) {
        double xd = x[i];
        ck_assert_double_eq_tol(y[i], naive_gelu(xd), 1e-6 * (1 + fabs(xd)));
        double dref = 0.5 * (1 + erf(xd / sqrt(2.0))) + xd * exp(-0.5 * xd * xd) / 2.5066282746310002;
        ck_assert_double_eq_tol(d[i], dref, 1e-6);
    }
    ck_assert_float_eq(y[50], 0.0f); /* x = 0 */
    /* In place. */
    memcpy(d, x, n * sizeof *x);
    cx_gelu_forward(d, d, n);
    ck_assert_mem_eq(d, y, n * sizeof *y);
    free(x), free(y), free(d), free(one);
}
END_TEST

START_TEST(gelu_gradient_matches_finite_differences)
{
    act_ctx c = {.n = 150, .gelu = 1};
    c.in = gc_frand(c.n, 90, 2.0);
    c.out = gc_fbuf(c.n);
    ck_assert_int_eq(gc_proj_init(&c.proj, c.n, 91), 0);
    float *din = gc_fbuf(c.n);
    act_f(&c);
    cx_gelu_backward(din, c.proj.r, c.in, c.n);
    gc_var v = {"din", c.in, din, c.n};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    o.max_skip_frac = 0.0; /* smooth: nothing may be skipped */
    gc_report rep;
    gc_assert_passed(gc_check(act_f, NULL, &c, &v, 1, &o, &rep), &rep, "gelu");
    ck_assert_uint_eq(rep.checked, c.n);
    gc_proj_free(&c.proj);
    free(c.in), free(c.out), free(din);
}
END_TEST

/* ---- batch norm (BatchNorm1d) ------------------------------------------------------------- */

static void naive_batchnorm(double *out, double *mean, double *var, const float *in,
                            const float *g, const float *b, int B, int D, double eps)
{
    for (int j = 0; j < D; j++) {
        double s = 0, v = 0;
        for (int i = 0; i < B; i++)
            s += in[(size_t)i * D + j];
        s /= B;
        for (int i = 0; i < B; i++)
            v += (in[(size_t)i * D + j] - s) * (in[(size_t)i * D + j] - s);
        v /= B;
        mean[j] = s;
        var[j] = v;
        for (int i = 0; i < B; i++) {
            double y = (in[(size_t)i * D + j] - s) / sqrt(v + eps);
            out[(size_t)i * D + j] = g ? y * g[j] + b[j] : y;
        }
    }
}

START_TEST(batchnorm_forward_matches_naive_and_running_stats)
{
    const int D = 19;
    const int batches[] = {3, 17, 64};
    for (int bi = 0; bi < 3; bi++) {
        int B = batches[bi];
        float *in = gc_frand(B * D, 200 + bi, 3.0), *g = gc_frand(D, 201, 1.0);
        float *b = gc_frand(D, 202, 1.0);
        for (int i = 0; i < B * D; i++)
            in[i] += 5.0f;
        float *out = gc_fbuf(B * D), *mean = gc_fbuf(D), *rstd = gc_fbuf(D);
        float *rm = gc_fbuf(D), *rv = gc_fbuf(D);
        for (int j = 0; j < D; j++)
            rm[j] = 0.5f, rv[j] = 2.0f;
        double *ref = gc_dbuf(B * D), *m = gc_dbuf(D), *v = gc_dbuf(D);
        for (int affine = 0; affine < 2; affine++) {
            cx_batchnorm_forward_train(out, mean, rstd, affine ? NULL : rm, affine ? NULL : rv, in,
                                       affine ? g : NULL, affine ? b : NULL, B, D, 1e-5f, 0.1f);
            naive_batchnorm(ref, m, v, in, affine ? g : NULL, affine ? b : NULL, B, D, 1e-5);
            gc_assert_close(out, ref, B * D, 1e-5, 2e-5, "batchnorm out");
            gc_assert_close(mean, m, D, 1e-6, 1e-6, "batchnorm mean");
        }
        /* Running statistics: momentum 0.1 and the unbiased variance (B - 1). */
        for (int j = 0; j < D; j++) {
            ck_assert_double_eq_tol(rm[j], 0.9 * 0.5 + 0.1 * m[j], 1e-5);
            ck_assert_double_eq_tol(rv[j], 0.9 * 2.0 + 0.1 * v[j] * B / (B - 1),
                                    1e-5 * (1 + rv[j]));
            ck_assert_double_eq_tol(rstd[j], 1 / sqrt(v[j] + 1e-5), 1e-6 / sqrt(v[j] + 1e-5));
        }
        /* Eval mode normalises by the running statistics. */
        cx_batchnorm_forward_eval(out, in, rm, rv, g, b, B, D, 1e-5f);
        for (int i = 0; i < B; i++)
            for (int j = 0; j < D; j++) {
                double want = (in[i * D + j] - (double)rm[j]) / sqrt((double)rv[j] + 1e-5) * g[j] +
                              b[j];
                ck_assert_double_eq_tol(out[i * D + j], want, 2e-5 * (1 + fabs(want)));
            }
        free(in), free(g), free(b), free(out), free(mean), free(rstd), free(rm), free(rv),
            free(ref), free(m), free(v);
    }
}
END_TEST

typedef struct {
    int B, D, affine;
    float *in, *g, *b, *out, *mean, *rstd;
    gc_proj proj;
} bn_ctx;

static double bn_f(void *p)
{
    bn_ctx *c = p;
    cx_batchnorm_forward_train(c->out, c->mean, c->rstd, NULL, NULL, c->in,
                               c->affine ? c->g : NULL, c->affine ? c->b : NULL, c->B, c->D,
                               1e-5f, 0.1f);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(batchnorm_gradients_match_finite_differences)
{
    const int batches[] = {2, 5, 17};
    for (int bi = 0; bi < 3; bi++)
        for (int affine = 0; affine < 2; affine++) {
            bn_ctx c = {.B = batches[bi], .D = 11, .affine = affine};
            size_t n = (size_t)c.B * c.D;
            c.in = gc_frand(n, 210 + bi, 2.0);
            c.g = gc_frand(c.D, 211, 1.0);
            c.b = gc_frand(c.D, 212, 1.0);
            c.out = gc_fbuf(n);
            c.mean = gc_fbuf(c.D);
            c.rstd = gc_fbuf(c.D);
            ck_assert_int_eq(gc_proj_init(&c.proj, n, 213 + bi), 0);
            float *din = gc_fbuf(n), *dg = gc_fbuf(c.D), *db = gc_fbuf(c.D);
            bn_f(&c);
            cx_batchnorm_backward(din, affine ? dg : NULL, affine ? db : NULL, c.proj.r, c.in,
                                  c.mean, c.rstd, affine ? c.g : NULL, c.B, c.D);
            gc_var vars[] = {{"din", c.in, din, n}, {"dgamma", c.g, dg, c.D},
                             {"dbeta", c.b, db, c.D}};
            gc_opts o = gc_opts_default();
            o.max_skip_frac = 0.0;
            o.h = 1e-2;
            gc_report rep;
            gc_assert_passed(gc_check(bn_f, NULL, &c, vars, affine ? 3 : 1, &o, &rep), &rep,
                             "batchnorm");
            /* din may alias dout; parameter gradients are added. The check's last evaluation
             * left the statistics of a perturbed input: recompute them. */
            bn_f(&c);
            float *dout = gc_fbuf(n), *dg2 = gc_fbuf(c.D), *db2 = gc_fbuf(c.D);
            memcpy(dout, c.proj.r, n * sizeof *dout);
            cx_batchnorm_backward(dout, dg2, db2, dout, c.in, c.mean, c.rstd,
                                  affine ? c.g : NULL, c.B, c.D);
            ck_assert_mem_eq(dout, din, n * sizeof *din);
            if (affine) {
                cx_batchnorm_backward(NULL, dg2, db2, c.proj.r, c.in, c.mean, c.rstd, c.g, c.B,
                                      c.D);
                for (int j = 0; j < c.D; j++)
                    ck_assert_float_eq_tol(dg2[j], 2 * dg[j], 1e-6f * (1 + fabsf(dg[j])));
            }
            gc_proj_free(&c.proj);
            free(c.in), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(din),
                free(dg), free(db), free(dout), free(dg2), free(db2);
        }
}
END_TEST

/* tests/fixtures/bn.fx (scripts/make_fixtures_bn.py): torch.nn.BatchNorm1d in training mode,
 * two steps from given running statistics, then eval mode. */
START_TEST(batchnorm_matches_pytorch)
{
    fx_file f;
    fx_load_named(&f, "bn.fx");
    const char *cases[] = {"b4_d6", "b33_d40", "b7_d5_noaffine"};
    for (int k = 0; k < 3; k++) {
        const char *pf = cases[k];
        const fx_tensor *t = fx_need(&f, pf, "in", (size_t)-1);
        int B = (int)t->dims[0], D = (int)t->dims[1];
        size_t n = (size_t)B * D;
        int affine = strstr(pf, "noaffine") == NULL;
        float *in = gc_fbuf(n), *in2 = gc_fbuf(n), *dout = gc_fbuf(n), *g = gc_fbuf(D),
              *b = gc_fbuf(D), *rm = gc_fbuf(D), *rv = gc_fbuf(D);
        fx_to_float(t, in);
        fx_to_float(fx_need(&f, pf, "in2", n), in2);
        fx_to_float(fx_need(&f, pf, "dout", n), dout);
        fx_to_float(fx_need(&f, pf, "rm0", D), rm);
        fx_to_float(fx_need(&f, pf, "rv0", D), rv);
        if (affine) {
            fx_to_float(fx_need(&f, pf, "gamma", D), g);
            fx_to_float(fx_need(&f, pf, "beta", D), b);
        }
        float *out = gc_fbuf(n), *din = gc_fbuf(n), *mean = gc_fbuf(D), *rstd = gc_fbuf(D);
        float *dg = gc_fbuf(D), *db = gc_fbuf(D);
        cx_batchnorm_forward_train(out, mean, rstd, rm, rv, in, affine ? g : NULL,
                                   affine ? b : NULL, B, D, 1e-5f, 0.1f);
        fx_assert_close(out, &f, pf, "out", n, 1e-5);
        cx_batchnorm_backward(din, affine ? dg : NULL, affine ? db : NULL, dout, in, mean, rstd,
                              affine ? g : NULL, B, D);
        fx_assert_close(din, &f, pf, "din", n, 1e-5);
        if (affine) {
            fx_assert_close(dg, &f, pf, "dgamma", D, 1e-5);
            fx_assert_close(db, &f, pf, "dbeta", D, 1e-5);
        }
        fx_assert_close(rm, &f, pf, "rm1", D, 1e-6);
        fx_assert_close(rv, &f, pf, "rv1", D, 1e-6);
        cx_batchnorm_forward_train(out, mean, rstd, rm, rv, in2, affine ? g : NULL,
                                   affine ? b : NULL, B, D, 1e-5f, 0.1f);
        fx_assert_close(rm, &f, pf, "rm2", D, 1e-6);
        fx_assert_close(rv, &f, pf, "rv2", D, 1e-6);
        cx_batchnorm_forward_eval(out, in, rm, rv, affine ? g : NULL, affine ? b : NULL, B, D,
                                  1e-5f);
        fx_assert_close(out, &f, pf, "eval_out", n, 1e-5);
        free(in), free(in2), free(dout), free(g), free(b), free(rm), free(rv), free(out),
            free(din), free(mean), free(rstd), free(dg), free(db);
    }
    fx_free(&f);
}
END_TEST

/* ---- layer norm --------------------------------------------------------------------------- */

START_TEST(layernorm_forward_matches_naive)
{
    const int D = 19;
    for (int bi = 0; bi < 3; bi++) {
        int B = odd_batches[bi];
        float *in = gc_frand(B * D, 100 + bi, 3.0), *g = gc_frand(D, 101, 1.0);
        float *b = gc_frand(D, 102, 1.0);
        for (int i = 0; i < B * D; i++)
            in[i] += 5.0f; /* an offset the statistics must remove */
        float *out = gc_fbuf(B * D), *mean = gc_fbuf(B), *rstd = gc_fbuf(B);
        double *ref = gc_dbuf(B * D), *rm = gc_dbuf(B), *rr = gc_dbuf(B);
        cx_layernorm_forward(out, mean, rstd, in, g, b, B, D, 1e-5f);
        naive_layernorm(ref, rm, rr, in, g, b, B, D, 1e-5);
        gc_assert_close(out, ref, B * D, 1e-5, 2e-5, "layernorm out");
        gc_assert_close(mean, rm, B, 1e-6, 1e-6, "mean");
        gc_assert_close(rstd, rr, B, 1e-6, 0, "rstd");
        free(in), free(g), free(b), free(out), free(mean), free(rstd), free(ref), free(rm),
            free(rr);
    }
}
END_TEST

typedef struct {
    int B, D;
    float *in, *g, *b, *out, *mean, *rstd;
    gc_proj proj;
} ln_ctx;

static double ln_f(void *p)
{
    ln_ctx *c = p;
    cx_layernorm_forward(c->out, c->mean, c->rstd, c->in, c->g, c->b, c->B, c->D, 1e-5f);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(layernorm_gradients_match_finite_differences)
{
    for (int bi = 0; bi < 3; bi++) {
        ln_ctx c = {.B = odd_batches[bi], .D = 17};
        size_t n = (size_t)c.B * c.D;
        c.in = gc_frand(n, 110 + bi, 2.0);
        c.g = gc_frand(c.D, 111, 1.0);
        c.b = gc_frand(c.D, 112, 1.0);
        c.out = gc_fbuf(n);
        c.mean = gc_fbuf(c.B);
        c.rstd = gc_fbuf(c.B);
        ck_assert_int_eq(gc_proj_init(&c.proj, n, 113 + bi), 0);
        float *din = gc_fbuf(n), *dg = gc_fbuf(c.D), *db = gc_fbuf(c.D);
        ln_f(&c);
        cx_layernorm_backward(din, dg, db, c.proj.r, c.in, c.mean, c.rstd, c.g, c.B, c.D);
        gc_var vars[] = {{"din", c.in, din, n}, {"dgamma", c.g, dg, c.D}, {"dbeta", c.b, db, c.D}};
        gc_opts o = gc_opts_default();
        o.max_skip_frac = 0.0;
        gc_report rep;
        gc_assert_passed(gc_check(ln_f, NULL, &c, vars, 3, &o, &rep), &rep, "layernorm");
        /* din may alias dout: same values. */
        float *dout = gc_fbuf(n);
        memcpy(dout, c.proj.r, n * sizeof *dout);
        float *dg2 = gc_fbuf(c.D), *db2 = gc_fbuf(c.D);
        cx_layernorm_backward(dout, dg2, db2, dout, c.in, c.mean, c.rstd, c.g, c.B, c.D);
        ck_assert_mem_eq(dout, din, n * sizeof *din);
        ck_assert_mem_eq(dg2, dg, c.D * sizeof *dg);
        /* Parameter gradients are added: a second backward doubles them. */
        cx_layernorm_backward(NULL, dg2, db2, c.proj.r, c.in, c.mean, c.rstd, c.g, c.B, c.D);
        for (int j = 0; j < c.D; j++) {
            ck_assert_float_eq_tol(dg2[j], 2 * dg[j], 1e-6f * (1 + fabsf(dg[j])));
            ck_assert_float_eq_tol(db2[j], 2 * db[j], 1e-6f * (1 + fabsf(db[j])));
        }
        gc_proj_free(&c.proj);
        free(c.in), free(c.g), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(din),
            free(dg), free(db), free(dout), free(dg2), free(db2);
    }
}
END_TEST

START_TEST(layernorm_constant_row_is_finite)
{
    /* Zero variance: rstd = 1/sqrt(eps), out = beta, gradients finite. */
    const int B = 2, D = 8;
    float in[16], g[8], b[8], out[16], mean[2], rstd[2], dout[16], din[16], dg[8] = {0}, db[8] = {0};
    for (int i = 0; i < 16; i++) {
        in[i] = i < 8 ? 4.0f : (float)i;
        dout[i] = 0.1f * (float)i;
    }
    for (int j = 0; j < 8; j++) {
        g[j] = 1.0f + 0.1f * j;
        b[j] = -0.5f + 0.25f * j;
    }
    cx_layernorm_forward(out, mean, rstd, in, g, b, B, D, 1e-5f);
    ck_assert_float_eq_tol(rstd[0], (float)(1.0 / sqrt(1e-5)), 1e-2);
    for (int j = 0; j < 8; j++)
        ck_assert_float_eq(out[j], b[j]);
    cx_layernorm_backward(din, dg, db, dout, in, mean, rstd, g, B, D);
    for (int i = 0; i < 16; i++)
        ck_assert(isfinite(din[i]));
}
END_TEST

/* ---- L2 normalisation --------------------------------------------------------------------- */

START_TEST(l2norm_forward_matches_naive_and_in_place)
{
    const int D = 23;
    for (int bi = 0; bi < 3; bi++) {
        int B = odd_batches[bi];
        float *in = gc_frand(B * D, 120 + bi, 2.0), *out = gc_fbuf(B * D), *norm = gc_fbuf(B);
        double *ref = gc_dbuf(B * D), *rn = gc_dbuf(B);
        cx_l2norm_forward(out, norm, in, B, D, 1e-12f);
        naive_l2norm(ref, rn, in, B, D, 1e-12);
        gc_assert_close(out, ref, B * D, 1e-6, 1e-7, "l2norm out");
        gc_assert_close(norm, rn, B, 1e-6, 0, "norm");
        for (int i = 0; i < B; i++) {
            double s = 0;
            for (int j = 0; j < D; j++)
                s += (double)out[i * D + j] * out[i * D + j];
            ck_assert_double_eq_tol(s, 1.0, 1e-6);
        }
        cx_l2norm_forward(in, norm, in, B, D, 1e-12f);
        ck_assert_mem_eq(in, out, B * D * sizeof *in);
        free(in), free(out), free(norm), free(ref), free(rn);
    }
}
END_TEST

typedef struct {
    int B, D;
    float eps;
    float *in, *out, *norm;
    gc_proj proj;
} l2_ctx;

static double l2_f(void *p)
{
    l2_ctx *c = p;
    cx_l2norm_forward(c->out, c->norm, c->in, c->B, c->D, c->eps);
    return gc_proj_dot(&c->proj, c->out);
}

static void l2_gradcheck(l2_ctx *c, gc_opts o, const char *what)
{
    size_t n = (size_t)c->B * c->D;
    c->out = gc_fbuf(n);
    c->norm = gc_fbuf(c->B);
    ck_assert_int_eq(gc_proj_init(&c->proj, n, 131), 0);
    float *din = gc_fbuf(n);
    l2_f(c);
    cx_l2norm_backward(din, c->proj.r, c->out, c->norm, c->B, c->D, c->eps);
    gc_var v = {"din", c->in, din, n};
    gc_report rep;
    gc_assert_passed(gc_check(l2_f, NULL, c, &v, 1, &o, &rep), &rep, what);
    gc_proj_free(&c->proj);
    free(c->out), free(c->norm), free(din);
}

START_TEST(l2norm_gradient_matches_finite_differences)
{
    for (int bi = 0; bi < 3; bi++) {
        l2_ctx c = {.B = odd_batches[bi], .D = 9, .eps = 1e-12f};
        c.in = gc_frand((size_t)c.B * c.D, 130 + bi, 1.0);
        gc_opts o = gc_opts_default();
        o.h = 3e-3;
        o.max_skip_frac = 0.0;
        l2_gradcheck(&c, o, "l2norm");
        free(c.in);
    }
}
END_TEST

START_TEST(l2norm_eps_branch)
{
    const int B = 3, D = 4;
    const float eps = 1e-12f;
    /* Row 0 is zero, row 1 has norm 5e-13 < eps, row 2 is ordinary. */
    float in[12] = {0, 0, 0, 0, 3e-13f, 4e-13f, 0, 0, 1, 2, 2, 0};
    float out[12], norm[3], din[12], dout[12];
    for (int i = 0; i < 12; i++)
        dout[i] = 0.5f * (float)(i + 1);
    cx_l2norm_forward(out, norm, in, B, D, eps);
    ck_assert_float_eq(norm[0], eps);
    ck_assert_float_eq(norm[1], eps);
    ck_assert_float_eq_tol(norm[2], 3.0f, 1e-6);
    for (int j = 0; j < 4; j++)
        ck_assert_float_eq(out[j], 0.0f);
    ck_assert_float_eq_tol(out[4], 0.3f, 1e-6);
    ck_assert_float_eq_tol(out[5], 0.4f, 1e-6);
    cx_l2norm_backward(din, dout, out, norm, B, D, eps);
    for (int i = 0; i < 8; i++) /* the clamped rows: dout / eps */
        ck_assert_float_eq_tol(din[i], dout[i] / eps, 1e-6 * dout[i] / eps);
    ck_assert(isfinite(din[8]));

    /* Finite differences inside the clamped branch with a large eps: rows of norm below and
     * above eps = 1 both match. */
    l2_ctx c = {.B = 6, .D = 5, .eps = 1.0f};
    c.in = gc_frand(30, 140, 0.15); /* norms about 0.3 */
    for (int j = 0; j < 5; j++) {
        c.in[0 * 5 + j] *= 10; /* norm about 3 */
        c.in[3 * 5 + j] *= 12;
    }
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    o.h = 1e-3;
    o.max_skip_frac = 0.1; /* a coordinate may cross the clamp */
    l2_gradcheck(&c, o, "l2norm eps");
    free(c.in);
}
END_TEST

/* ---- embedding bag ------------------------------------------------------------------------ */

typedef struct {
    int B, T, D, V;
    int32_t pad;
    int32_t *tok;
    float *table, *out;
    gc_proj proj;
} eb_ctx;

static double eb_f(void *p)
{
    eb_ctx *c = p;
    cx_embag_mean_forward(c->out, c->tok, c->table, c->B, c->T, c->D, c->pad);
    return gc_proj_dot(&c->proj, c->out);
}

/* Tokens in [0, V) with about a third padding, bag 1 all padding. */
static int32_t *make_tokens(int B, int T, int V, int32_t pad, uint64_t seed)
{
    int32_t *tok = malloc(sizeof *tok * (size_t)B * T);
    ck_assert_ptr_nonnull(tok);
    cx_rng r;
    cx_rng_seed(&r, seed, 0);
    for (int i = 0; i < B * T; i++) {
        int32_t id = (int32_t)cx_rng_below(&r, (uint32_t)V);
        tok[i] = cx_rng_below(&r, 3) == 0 || id == pad ? pad : id;
    }
    if (B > 1)
        for (int t = 0; t < T; t++)
            tok[1 * T + t] = pad;
    return tok;
}

START_TEST(embag_forward_matches_naive_with_padding)
{
    const int T = 6, D = 10, V = 13;
    const int32_t pads[2] = {0, -1};
    for (int pi = 0; pi < 2; pi++)
        for (int bi = 0; bi < 3; bi++) {
            int B = odd_batches[bi];
            int32_t *tok = make_tokens(B, T, V, pads[pi], 150 + bi);
            float *table = gc_frand(V * D, 151, 1.0), *out = gc_fbuf(B * D);
            double *ref = gc_dbuf(B * D);
            for (int i = 0; i < B * D; i++)
                out[i] = NAN;
            cx_embag_mean_forward(out, tok, table, B, T, D, pads[pi]);
            naive_embag(ref, tok, table, B, T, D, pads[pi]);
            gc_assert_close(out, ref, B * D, 1e-6, 1e-6, "embag out");
            if (B > 1)
                for (int j = 0; j < D; j++)
                    ck_assert_float_eq(out[1 * D + j], 0.0f); /* the all-padding bag */
            free(tok), free(table), free(out), free(ref);
        }
}
END_TEST

START_TEST(embag_gradient_matches_finite_differences)
{
    for (int bi = 0; bi < 3; bi++) {
        eb_ctx c = {.B = odd_batches[bi], .T = 5, .D = 7, .V = 9, .pad = 0};
        c.tok = make_tokens(c.B, c.T, c.V, c.pad, 160 + bi);
        c.table = gc_frand((size_t)c.V * c.D, 161, 1.0);
        c.out = gc_fbuf((size_t)c.B * c.D);
        ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * c.D, 162), 0);
        float *dt = gc_fbuf((size_t)c.V * c.D);
        eb_f(&c);
        cx_embag_mean_backward(dt, c.proj.r, c.tok, c.B, c.T, c.D, c.pad);
        gc_var v = {"dtable", c.table, dt, (size_t)c.V * c.D};
        gc_opts o = gc_opts_default();
        o.max_coords = 0;
        o.max_skip_frac = 0.0;
        gc_report rep;
        gc_assert_passed(gc_check(eb_f, NULL, &c, &v, 1, &o, &rep), &rep, "embag");
        /* The padding row gets nothing; a second backward adds the same again. */
        for (int j = 0; j < c.D; j++)
            ck_assert_float_eq(dt[c.pad * c.D + j], 0.0f);
        float *dt2 = gc_fbuf((size_t)c.V * c.D);
        memcpy(dt2, dt, sizeof *dt * (size_t)c.V * c.D);
        cx_embag_mean_backward(dt2, c.proj.r, c.tok, c.B, c.T, c.D, c.pad);
        for (int i = 0; i < c.V * c.D; i++)
            ck_assert_float_eq_tol(dt2[i], 2 * dt[i], 1e-6f * (1 + fabsf(dt[i])));
        gc_proj_free(&c.proj);
        free(c.tok), free(c.table), free(c.out), free(dt), free(dt2);
    }
}
END_TEST

/* ---- softmax cross-entropy ---------------------------------------------------------------- */

START_TEST(softmax_ce_forward_matches_naive)
{
    const int C = 11;
    for (int bi = 0; bi < 3; bi++) {
        int B = odd_batches[bi];
        float *z = gc_frand(B * C, 170 + bi, 3.0), *w = gc_frand(B, 171, 1.0);
        float *off = gc_frand(C, 172, 1.0);
        for (int i = 0; i < B; i++)
            w[i] = fabsf(w[i]) + 0.1f;
        int32_t *y = malloc(sizeof *y * B);
        for (int i = 0; i < B; i++)
            y[i] = (i * 7 + 3) % C;
        float *p = gc_fbuf(B * C);
        double *rp = gc_dbuf(B * C);
        for (int variant = 0; variant < 4; variant++) {
            const float *ww = variant & 1 ? w : NULL, *oo = variant & 2 ? off : NULL;
            double loss = cx_softmax_ce_forward(p, z, y, ww, oo, B, C);
            double ref = naive_ce(rp, z, y, ww, oo, B, C);
            ck_assert_msg(fabs(loss - ref) <= 1e-6 * fabs(ref), "variant %d: loss %.9g, want %.9g",
                          variant, loss, ref);
            gc_assert_close(p, rp, B * C, 1e-5, 1e-7, "probs");
        }
        free(z), free(w), free(off), free(y), free(p), free(rp);
    }
}
END_TEST

typedef struct {
    int B, C;
    float *z, *w, *off, *p;
    int32_t *y;
    double k;
} ce_ctx;

static double ce_f(void *p)
{
    ce_ctx *c = p;
    return c->k * cx_softmax_ce_forward(c->p, c->z, c->y, c->w, c->off, c->B, c->C);
}

START_TEST(softmax_ce_gradients_match_finite_differences)
{
    for (int bi = 0; bi < 3; bi++)
        for (int variant = 0; variant < 4; variant++) {
            ce_ctx c = {.B = odd_batches[bi], .C = 6, .k = 0.7};
            size_t n = (size_t)c.B * c.C;
            c.z = gc_frand(n, 180 + bi, 2.0);
            c.w = variant & 1 ? gc_frand(c.B, 181, 1.0) : NULL;
            for (int i = 0; c.w && i < c.B; i++)
                c.w[i] = i == 1 ? 0.0f : fabsf(c.w[i]) + 0.2f; /* one masked sample */
            c.off = variant & 2 ? gc_frand(c.C, 182, 1.0) : NULL;
            c.p = gc_fbuf(n);
            c.y = malloc(sizeof *c.y * c.B);
            for (int i = 0; i < c.B; i++)
                c.y[i] = (i * 5 + 1) % c.C;
            float *dz = gc_fbuf(n);
            ce_f(&c);
            cx_softmax_ce_backward(dz, c.p, c.y, c.w, c.B, c.C, (float)c.k);
            gc_var v = {"dlogits", c.z, dz, n};
            gc_opts o = gc_opts_default();
            o.max_coords = 0;
            o.max_skip_frac = 0.0;
            gc_report rep;
            gc_assert_passed(gc_check(ce_f, NULL, &c, &v, 1, &o, &rep), &rep, "softmax ce");
            /* Gradient rows sum to zero (softmax shift invariance). */
            for (int i = 0; i < c.B; i++) {
                double s = 0;
                for (int j = 0; j < c.C; j++)
                    s += dz[i * c.C + j];
                ck_assert_double_eq_tol(s, 0.0, 1e-6);
            }
            free(c.z), free(c.w), free(c.off), free(c.p), free(c.y), free(dz);
        }
}
END_TEST

START_TEST(softmax_ce_zero_weights_mask_samples)
{
    const int B = 5, C = 4;
    float z[20], p[20], dz[20];
    gc_fill_normal(z, 20, 190, 2.0);
    int32_t y[5] = {0, 3, 2, 1, 3};
    float w[5] = {1.0f, 0.0f, 2.0f, 0.0f, 0.5f};
    /* A masked sample may even be infinitely wrong. */
    z[1 * C + 3] = -INFINITY;
    double loss = cx_softmax_ce_forward(p, z, y, w, NULL, B, C);
    ck_assert(isfinite(loss));
    /* Same as the batch without the masked samples. */
    float z3[12], p3[12];
    memcpy(z3, z + 0, 4 * sizeof *z);
    memcpy(z3 + 4, z + 8, 4 * sizeof *z);
    memcpy(z3 + 8, z + 16, 4 * sizeof *z);
    int32_t y3[3] = {0, 2, 3};
    float w3[3] = {1.0f, 2.0f, 0.5f};
    ck_assert_double_eq_tol(loss, cx_softmax_ce_forward(p3, z3, y3, w3, NULL, 3, C), 1e-12);
    cx_softmax_ce_backward(dz, p, y, w, B, C, 1.0f);
    for (int j = 0; j < C; j++) {
        ck_assert_float_eq(dz[1 * C + j], 0.0f);
        ck_assert_float_eq(dz[3 * C + j], 0.0f);
    }
    /* Every weight zero: loss 0 and zero gradient, never NaN. */
    float w0[5] = {0};
    ck_assert_double_eq(cx_softmax_ce_forward(p, z, y, w0, NULL, B, C), 0.0);
    cx_softmax_ce_backward(dz, p, y, w0, B, C, 1.0f);
    for (int i = 0; i < B * C; i++)
        ck_assert_float_eq(dz[i], 0.0f);
}
END_TEST

START_TEST(softmax_ce_offsets_are_balanced_softmax)
{
    /* Balanced softmax: CE(z + log pi) equals CE of z with the prior folded into the logits,
     * and a constant offset changes nothing. */
    const int B = 3, C = 5;
    float z[15], zb[15], p[15], off[5], cst[5];
    gc_fill_normal(z, 15, 200, 1.5);
    const double counts[5] = {500, 120, 40, 9, 2};
    double total = 0;
    for (int j = 0; j < C; j++)
        total += counts[j];
    for (int j = 0; j < C; j++) {
        off[j] = (float)log(counts[j] / total);
        cst[j] = 3.25f;
    }
    for (int i = 0; i < B; i++)
        for (int j = 0; j < C; j++)
            zb[i * C + j] = z[i * C + j] + off[j];
    int32_t y[3] = {4, 0, 2};
    double a = cx_softmax_ce_forward(p, z, y, NULL, off, B, C);
    double b = cx_softmax_ce_forward(p, zb, y, NULL, NULL, B, C);
    ck_assert_double_eq_tol(a, b, 1e-12);
    ck_assert_double_eq_tol(cx_softmax_ce_forward(p, z, y, NULL, cst, B, C),
                            cx_softmax_ce_forward(p, z, y, NULL, NULL, B, C), 1e-6);
    /* The rare class (4) is pushed down by the prior: its loss is larger with the offset. */
    int32_t y4[1] = {4};
    ck_assert(cx_softmax_ce_forward(p, z, y4, NULL, off, 1, C) >
              cx_softmax_ce_forward(p, z, y4, NULL, NULL, 1, C) + 1.0);
}
END_TEST

START_TEST(softmax_ce_large_logits_are_stable)
{
    const int B = 2, C = 3;
    float z[6] = {1000.0f, 0.0f, -1000.0f, -500.0f, 499.0f, 500.0f};
    int32_t y[2] = {1, 2};
    float p[6], dz[6];
    double loss = cx_softmax_ce_forward(p, z, y, NULL, NULL, B, C);
    /* Row 0: loss 1000; row 1: log(1 + e^-1) (e^-1000 vanishes). */
    double want = (1000.0 + log1p(exp(-1.0))) / 2;
    ck_assert_double_eq_tol(loss, want, 1e-9 * want);
    cx_softmax_ce_backward(dz, p, y, NULL, B, C, 1.0f);
    for (int i = 0; i < 6; i++)
        ck_assert(isfinite(dz[i]));
    ck_assert_float_eq_tol(dz[0], 0.5f, 1e-7);
    ck_assert_float_eq_tol(dz[1], -0.5f, 1e-7);
}
END_TEST

/* ---- InfoNCE ------------------------------------------------------------------------------ */

START_TEST(infonce_forward_matches_naive)
{
    const int D = 8;
    for (int bi = 0; bi < 3; bi++) {
        int B = odd_batches[bi];
        float *img = gc_frand(B * D, 210 + bi, 1.0), *txt = gc_frand(B * D, 211 + bi, 1.0);
        float *nrm = gc_fbuf(B);
        cx_l2norm_forward(img, nrm, img, B, D, 1e-12f);
        cx_l2norm_forward(txt, nrm, txt, B, D, 1e-12f);
        float *lg = gc_fbuf(B * B), *pr = gc_fbuf(B * B), *pc = gc_fbuf(B * B);
        double *rl = gc_dbuf(B * B), *rr = gc_dbuf(B * B), *rc = gc_dbuf(B * B);
        const float scale = 14.285714f;
        double loss = cx_infonce_forward(lg, pr, pc, img, txt, scale, B, D);
        double ref = naive_infonce(rl, rr, rc, img, txt, scale, B, D);
        ck_assert_msg(fabs(loss - ref) <= 1e-6 * fabs(ref) + 1e-7, "B %d: loss %.9g, want %.9g",
                      B, loss, ref);
        gc_assert_close(lg, rl, B * B, 1e-5, 1e-5, "logits");
        gc_assert_close(pr, rr, B * B, 1e-5, 1e-7, "p_row");
        gc_assert_close(pc, rc, B * B, 1e-5, 1e-7, "p_col");
        if (B == 1)
            ck_assert_double_eq_tol(loss, 0.0, 1e-12); /* one pair: nothing to contrast */
        free(img), free(txt), free(nrm), free(lg), free(pr), free(pc), free(rl), free(rr),
            free(rc);
    }
}
END_TEST

typedef struct {
    int B, D;
    float *img, *txt, theta;
    float *lg, *pr, *pc;
    /* the normalise-then-InfoNCE chain: img/txt are raw, fi/ft normalised */
    int chain;
    float *fi, *ft, *ni, *nt;
    double k;
} nce_ctx;

static double nce_f(void *p)
{
    nce_ctx *c = p;
    const float *a = c->img, *b = c->txt;
    if (c->chain) {
        cx_l2norm_forward(c->fi, c->ni, c->img, c->B, c->D, 1e-12f);
        cx_l2norm_forward(c->ft, c->nt, c->txt, c->B, c->D, 1e-12f);
        a = c->fi, b = c->ft;
    }
    return c->k * cx_infonce_forward(c->lg, c->pr, c->pc, a, b, expf(c->theta), c->B, c->D);
}

static void nce_alloc(nce_ctx *c, uint64_t seed)
{
    size_t n = (size_t)c->B * c->D, bb = (size_t)c->B * c->B;
    c->img = gc_frand(n, seed, 1.0);
    c->txt = gc_frand(n, seed + 1, 1.0);
    c->lg = gc_fbuf(bb), c->pr = gc_fbuf(bb), c->pc = gc_fbuf(bb);
    c->fi = gc_fbuf(n), c->ft = gc_fbuf(n), c->ni = gc_fbuf(c->B), c->nt = gc_fbuf(c->B);
    /* Make the pairs related, so the loss is neither trivial nor saturated. */
    for (size_t i = 0; i < n; i++)
        c->txt[i] = 0.6f * c->img[i] + 0.8f * c->txt[i];
}

static void nce_free(nce_ctx *c)
{
    free(c->img), free(c->txt), free(c->lg), free(c->pr), free(c->pc), free(c->fi), free(c->ft),
        free(c->ni), free(c->nt);
}

START_TEST(infonce_gradients_match_finite_differences)
{
    for (int bi = 0; bi < 3; bi++) {
        nce_ctx c = {.B = odd_batches[bi], .D = 6, .theta = 2.0f, .k = 1.3};
        nce_alloc(&c, 220 + bi);
        size_t n = (size_t)c.B * c.D;
        /* Unit rows, as the contract expects (the gradient holds for any rows). */
        cx_l2norm_forward(c.img, c.ni, c.img, c.B, c.D, 1e-12f);
        cx_l2norm_forward(c.txt, c.nt, c.txt, c.B, c.D, 1e-12f);
        float *di = gc_fbuf(n), *dt = gc_fbuf(n), *sc = gc_fbuf((size_t)c.B * c.B), dth = 0.5f;
        nce_f(&c);
        cx_infonce_backward(di, dt, &dth, sc, c.pr, c.pc, c.lg, c.img, c.txt, expf(c.theta), c.B,
                            c.D, (float)c.k);
        dth -= 0.5f; /* it was added */
        gc_var vars[] = {{"dimg", c.img, di, n}, {"dtxt", c.txt, dt, n}, {"dtheta", &c.theta, &dth, 1}};
        gc_opts o = gc_opts_default();
        o.h = 3e-3;
        o.max_coords = 0;
        o.max_skip_frac = 0.0;
        gc_report rep;
        gc_assert_passed(gc_check(nce_f, NULL, &c, vars, 3, &o, &rep), &rep, "infonce");
        if (c.B == 1) /* a single pair has zero loss and zero gradient */
            ck_assert_float_eq_tol(dth, 0.0f, 1e-7);
        else
            ck_assert(fabsf(dth) > 1e-3f);
        free(di), free(dt), free(sc);
        nce_free(&c);
    }
}
END_TEST

START_TEST(infonce_after_l2norm_chain_gradients)
{
    nce_ctx c = {.B = 17, .D = 7, .theta = logf(1.0f / 0.07f), .chain = 1, .k = 1.0};
    nce_alloc(&c, 230);
    size_t n = (size_t)c.B * c.D;
    float *dfi = gc_fbuf(n), *dft = gc_fbuf(n), *sc = gc_fbuf((size_t)c.B * c.B), dth = 0.0f;
    float *di = gc_fbuf(n), *dt = gc_fbuf(n);
    nce_f(&c);
    cx_infonce_backward(dfi, dft, &dth, sc, c.pr, c.pc, c.lg, c.fi, c.ft, expf(c.theta), c.B, c.D,
                        1.0f);
    cx_l2norm_backward(di, dfi, c.fi, c.ni, c.B, c.D, 1e-12f);
    cx_l2norm_backward(dt, dft, c.ft, c.nt, c.B, c.D, 1e-12f);
    gc_var vars[] = {{"dimg_raw", c.img, di, n}, {"dtxt_raw", c.txt, dt, n}, {"dtheta", &c.theta, &dth, 1}};
    gc_opts o = gc_opts_default();
    o.h = 3e-3;
    o.max_coords = 60;
    o.max_skip_frac = 0.0;
    gc_report rep;
    gc_assert_passed(gc_check(nce_f, NULL, &c, vars, 3, &o, &rep), &rep, "normalize+infonce");
    /* Skipped gradients: NULL dimg, dtxt and dtheta leave their buffers alone. */
    float sentinel = 42.0f;
    for (size_t i = 0; i < n; i++)
        dfi[i] = sentinel;
    cx_infonce_backward(NULL, NULL, NULL, sc, c.pr, c.pc, c.lg, c.fi, c.ft, expf(c.theta), c.B, c.D,
                        1.0f);
    cx_infonce_backward(NULL, dft, NULL, sc, c.pr, c.pc, c.lg, c.fi, c.ft, expf(c.theta), c.B, c.D,
                        1.0f);
    for (size_t i = 0; i < n; i++)
        ck_assert_float_eq(dfi[i], sentinel);
    free(dfi), free(dft), free(sc), free(di), free(dt);
    nce_free(&c);
}
END_TEST

/* ---- wide shapes: several column and row blocks, ragged last blocks ---------------------- */

START_TEST(wide_shapes_match_naive_forward_and_backward)
{
    /* D = 150 spans the 64-column blocks of the column reductions as 64 + 64 + 22. */
    const int B = 5, D = 150;
    float *x = gc_frand(B * D, 300, 2.0), *g = gc_frand(D, 301, 1.0), *b = gc_frand(D, 302, 1.0);
    float *d = gc_frand(B * D, 303, 1.0), *y = gc_fbuf(B * D), *m = gc_fbuf(B), *r = gc_fbuf(B);
    float *dx = gc_fbuf(B * D), *dg = gc_fbuf(D), *db = gc_fbuf(D);
    double *ref = gc_dbuf(B * D), *rm = gc_dbuf(B), *rr = gc_dbuf(B), *rg = gc_dbuf(D);
    double *rb = gc_dbuf(D);
    cx_layernorm_forward(y, m, r, x, g, b, B, D, 1e-5f);
    cx_layernorm_backward(dx, dg, db, d, x, m, r, g, B, D);
    naive_layernorm(ref, rm, rr, x, g, b, B, D, 1e-5);
    gc_assert_close(y, ref, B * D, 1e-5, 2e-5, "wide layernorm out");
    for (int i = 0; i < B; i++) {
        double s1 = 0, s2 = 0;
        for (int j = 0; j < D; j++) {
            double xh = (x[i * D + j] - rm[i]) * rr[i], gg = (double)d[i * D + j] * g[j];
            rg[j] += d[i * D + j] * xh;
            rb[j] += d[i * D + j];
            s1 += gg;
            s2 += gg * xh;
        }
        for (int j = 0; j < D; j++) {
            double xh = (x[i * D + j] - rm[i]) * rr[i];
            ref[i * D + j] = rr[i] * ((double)d[i * D + j] * g[j] - s1 / D - xh * s2 / D);
        }
    }
    gc_assert_close(dx, ref, B * D, 1e-4, 1e-5, "wide layernorm din");
    gc_assert_close(dg, rg, D, 1e-5, 1e-5, "wide dgamma");
    gc_assert_close(db, rb, D, 1e-5, 1e-5, "wide dbeta");

    /* Linear bias gradient over N = 150 columns. */
    float *dbias = gc_fbuf(D), *dw = gc_fbuf(1);
    cx_linear_backward(NULL, dw, dbias, d, x, x, B, 0, D);
    gc_assert_close(dbias, rb, D, 1e-5, 1e-5, "wide bias gradient");

    /* Embedding bag with D = 150. */
    const int T = 7, V = 20;
    int32_t *tok = make_tokens(B, T, V, 0, 304);
    float *table = gc_frand(V * D, 305, 1.0), *dt = gc_fbuf(V * D);
    double *rt = gc_dbuf(V * D);
    cx_embag_mean_forward(y, tok, table, B, T, D, 0);
    naive_embag(ref, tok, table, B, T, D, 0);
    gc_assert_close(y, ref, B * D, 1e-6, 1e-6, "wide embag out");
    cx_embag_mean_backward(dt, d, tok, B, T, D, 0);
    for (int i = 0; i < B; i++) {
        int c = 0;
        for (int t = 0; t < T; t++)
            c += tok[i * T + t] != 0;
        for (int t = 0; t < T; t++)
            if (tok[i * T + t] != 0)
                for (int j = 0; j < D; j++)
                    rt[tok[i * T + t] * D + j] += (double)d[i * D + j] / c;
    }
    gc_assert_close(dt, rt, V * D, 1e-5, 1e-6, "wide embag dtable");
    free(x), free(g), free(b), free(d), free(y), free(m), free(r), free(dx), free(dg), free(db);
    free(ref), free(rm), free(rr), free(rg), free(rb), free(dbias), free(dw), free(tok);
    free(table), free(dt), free(rt);
}
END_TEST

START_TEST(wide_infonce_matches_naive_forward_and_backward)
{
    /* B = 150: three column blocks (64 + 64 + 22) and 19 row blocks. */
    const int B = 150, D = 16;
    const float scale = 10.0f;
    float *img = gc_frand(B * D, 310, 1.0), *txt = gc_frand(B * D, 311, 1.0), *nn = gc_fbuf(B);
    for (int i = 0; i < B * D; i++)
        txt[i] = 0.7f * img[i] + 0.7f * txt[i];
    cx_l2norm_forward(img, nn, img, B, D, 1e-12f);
    cx_l2norm_forward(txt, nn, txt, B, D, 1e-12f);
    size_t bb = (size_t)B * B;
    float *lg = gc_fbuf(bb), *pr = gc_fbuf(bb), *pc = gc_fbuf(bb), *sc = gc_fbuf(bb);
    float *di = gc_fbuf(B * D), *dt = gc_fbuf(B * D), dth = 0.0f;
    double *rl = gc_dbuf(bb), *rr = gc_dbuf(bb), *rc = gc_dbuf(bb), *rdi = gc_dbuf(B * D);
    double *rdt = gc_dbuf(B * D);
    double loss = cx_infonce_forward(lg, pr, pc, img, txt, scale, B, D);
    double want = naive_infonce(rl, rr, rc, img, txt, scale, B, D);
    ck_assert_msg(fabs(loss - want) <= 1e-6 * want, "loss %.9g, want %.9g", loss, want);
    gc_assert_close(pr, rr, bb, 1e-5, 1e-8, "wide p_row");
    gc_assert_close(pc, rc, bb, 1e-5, 1e-8, "wide p_col");
    const float dloss = 0.8f;
    cx_infonce_backward(di, dt, &dth, sc, pr, pc, lg, img, txt, scale, B, D, dloss);
    double rth = 0;
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double gij = dloss * (rr[i * B + j] + rc[i * B + j] - 2.0 * (i == j)) / (2.0 * B);
            rth += gij * rl[i * B + j];
            for (int k = 0; k < D; k++) {
                rdi[i * D + k] += scale * gij * txt[j * D + k];
                rdt[j * D + k] += scale * gij * img[i * D + k];
            }
        }
    gc_assert_close(di, rdi, B * D, 1e-4, 1e-6, "wide dimg");
    gc_assert_close(dt, rdt, B * D, 1e-4, 1e-6, "wide dtxt");
    ck_assert_double_eq_tol(dth, rth, 1e-5 * (1 + fabs(rth)));
    free(img), free(txt), free(nn), free(lg), free(pr), free(pc), free(sc), free(di), free(dt);
    free(rl), free(rr), free(rc), free(rdi), free(rdt);
}
END_TEST

START_TEST(wide_softmax_ce_many_row_blocks)
{
    /* 9001 rows: more rows than 512 blocks of 16, so the block size adapts. */
    const int B = 9001, C = 3;
    float *z = gc_frand((size_t)B * C, 320, 2.0), *w = gc_frand(B, 321, 1.0);
    float *p = gc_fbuf((size_t)B * C);
    float *dz = gc_fbuf((size_t)B * C);
    int32_t *y = malloc(sizeof *y * B);
    for (int i = 0; i < B; i++) {
        y[i] = i % C;
        w[i] = fabsf(w[i]);
    }
    double loss = cx_softmax_ce_forward(p, z, y, w, NULL, B, C);
    double *rp = gc_dbuf((size_t)B * C);
    double want = naive_ce(rp, z, y, w, NULL, B, C);
    ck_assert_msg(fabs(loss - want) <= 1e-9 * want, "loss %.12g, want %.12g", loss, want);
    cx_softmax_ce_backward(dz, p, y, w, B, C, 1.0f);
    double sw = 0;
    for (int i = 0; i < B; i++)
        sw += w[i];
    for (int i = 0; i < B; i += 97)
        for (int j = 0; j < C; j++) {
            double g = w[i] / sw * (rp[i * C + j] - (j == y[i]));
            ck_assert_double_eq_tol(dz[i * C + j], g, 1e-5 * fabs(g) + 1e-12);
        }
    free(z), free(w), free(p), free(dz), free(y), free(rp);
}
END_TEST

/* ---- convolution and pooling: naive references (double) ----------------------------------- */

static double at_in(const float *in, const cx_conv2d_dims *d, int s, int ci, int ih, int iw)
{
    if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
        return 0.0;
    return in[(((size_t)s * d->cin + ci) * d->h + ih) * d->w + iw];
}

static void naive_conv(double *out, const float *in, const float *w, const float *b, int B,
                       const cx_conv2d_dims *d)
{
    int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d), k = d->k;
    for (int s = 0; s < B; s++)
        for (int co = 0; co < d->cout; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < d->cin; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++)
                                acc += at_in(in, d, s, ci, oh + ki - d->pad, ow + kj - d->pad) *
                                       w[((co * d->cin + ci) * k + ki) * k + kj];
                    out[(((size_t)s * d->cout + co) * Ho + oh) * Wo + ow] = acc;
                }
}

/* din, dw, db of sum(dout .* conv(in, w) + b); din and dw are (re)set, not added. */
static void naive_conv_backward(double *din, double *dw, double *db, const float *dout,
                                const float *in, const float *w, int B, const cx_conv2d_dims *d)
{
    int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d), k = d->k;
    memset(din, 0, sizeof *din * (size_t)B * d->cin * d->h * d->w);
    memset(dw, 0, sizeof *dw * (size_t)d->cout * d->cin * k * k);
    memset(db, 0, sizeof *db * (size_t)d->cout);
    for (int s = 0; s < B; s++)
        for (int co = 0; co < d->cout; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double g = dout[(((size_t)s * d->cout + co) * Ho + oh) * Wo + ow];
                    db[co] += g;
                    for (int ci = 0; ci < d->cin; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int ih = oh + ki - d->pad, iw = ow + kj - d->pad;
                                size_t wi = ((size_t)(co * d->cin + ci) * k + ki) * k + kj;
                                dw[wi] += g * at_in(in, d, s, ci, ih, iw);
                                if (ih >= 0 && ih < d->h && iw >= 0 && iw < d->w)
                                    din[(((size_t)s * d->cin + ci) * d->h + ih) * d->w + iw] +=
                                        g * w[wi];
                            }
                }
}

/* ---- convolution -------------------------------------------------------------------------- */

/* Odd sizes, 1 and 3 input channels, kernels 1, 3 and 5, padding 0, 'same' and more than k-1. */
static const cx_conv2d_dims conv_shapes[] = {
    {.cin = 1, .h = 7, .w = 9, .cout = 4, .k = 3, .pad = 1},
    {.cin = 3, .h = 7, .w = 9, .cout = 5, .k = 3, .pad = 1},
    {.cin = 3, .h = 6, .w = 5, .cout = 2, .k = 3, .pad = 0},
    {.cin = 2, .h = 8, .w = 7, .cout = 3, .k = 5, .pad = 2},
    {.cin = 2, .h = 4, .w = 3, .cout = 2, .k = 3, .pad = 2},
    {.cin = 3, .h = 5, .w = 6, .cout = 4, .k = 1, .pad = 0},
};
#define NCONV_SHAPES (int)(sizeof conv_shapes / sizeof conv_shapes[0])

static size_t conv_in_n(const cx_conv2d_dims *d, int B)
{
    return (size_t)B * d->cin * d->h * d->w;
}

static size_t conv_out_n(const cx_conv2d_dims *d, int B)
{
    return (size_t)B * d->cout * cx_conv2d_out_h(d) * cx_conv2d_out_w(d);
}

static size_t conv_w_n(const cx_conv2d_dims *d)
{
    return (size_t)d->cout * d->cin * d->k * d->k;
}

START_TEST(conv2d_forward_matches_naive)
{
    const int batches[] = {1, 3, 17};
    for (int si = 0; si < NCONV_SHAPES; si++)
        for (int bi = 0; bi < 3; bi++) {
            const cx_conv2d_dims *d = &conv_shapes[si];
            int B = batches[bi];
            float *in = gc_frand(conv_in_n(d, B), 10 + si, 1.0);
            float *w = gc_frand(conv_w_n(d), 11, 0.4);
            float *b = gc_frand(d->cout, 12, 0.5), *out = gc_fbuf(conv_out_n(d, B));
            float *scratch = gc_fbuf(cx_conv2d_scratch_floats(d, B));
            double *ref = gc_dbuf(conv_out_n(d, B));
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bb = with_bias ? b : NULL;
                gc_fill_nan(out, conv_out_n(d, B)); /* out is overwritten, whatever it held */
                cx_conv2d_forward(out, scratch, in, w, bb, B, d);
                naive_conv(ref, in, w, bb, B, d);
                gc_assert_close(out, ref, conv_out_n(d, B), 1e-5, 1e-5, "conv out");
            }
            free(in), free(w), free(b), free(out), free(scratch), free(ref);
        }
}
END_TEST

START_TEST(conv2d_backward_matches_naive_adds_and_skips)
{
    for (int si = 0; si < NCONV_SHAPES; si++) {
        const cx_conv2d_dims *d = &conv_shapes[si];
        const int B = 3;
        size_t nin = conv_in_n(d, B), nout = conv_out_n(d, B), nw = conv_w_n(d);
        float *in = gc_frand(nin, 20 + si, 1.0), *w = gc_frand(nw, 21, 0.4);
        float *dout = gc_frand(nout, 22, 1.0);
        float *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(d->cout);
        float *scratch = gc_fbuf(cx_conv2d_scratch_floats(d, B));
        double *rin = gc_dbuf(nin), *rw = gc_dbuf(nw), *rb = gc_dbuf(d->cout);
        naive_conv_backward(rin, rw, rb, dout, in, w, B, d);
        /* Parameter gradients are added to what the buffers hold; din is overwritten. */
        for (size_t i = 0; i < nw; i++)
            dw[i] = 0.5f;
        for (int c = 0; c < d->cout; c++)
            db[c] = -1.0f;
        gc_fill_nan(din, nin);
        gc_fill_nan(scratch, cx_conv2d_scratch_floats(d, B)); /* scratch needs no initialisation */
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, d);
        gc_assert_close(din, rin, nin, 1e-5, 1e-5, "conv din");
        for (size_t i = 0; i < nw; i++)
            rw[i] += 0.5;
        for (int c = 0; c < d->cout; c++)
            rb[c] -= 1.0;
        gc_assert_close(dw, rw, nw, 1e-5, 1e-5, "conv dw");
        gc_assert_close(db, rb, d->cout, 1e-5, 1e-5, "conv db");
        /* NULL din and db: only the weight gradient, added once more. */
        float *dw2 = gc_fbuf(nw);
        memcpy(dw2, dw, sizeof *dw * nw);
        cx_conv2d_backward(NULL, dw2, NULL, scratch, dout, in, w, B, d);
        for (size_t i = 0; i < nw; i++)
            ck_assert_double_eq_tol(dw2[i], 2.0 * rw[i] - 0.5, 1e-5 * (1 + fabs(rw[i])));
        free(in), free(w), free(dout), free(din), free(dw), free(db), free(scratch), free(rin);
        free(rw), free(rb), free(dw2);
    }
}
END_TEST

typedef struct {
    cx_conv2d_dims d;
    int B;
    float *in, *w, *b, *out, *scratch;
    gc_proj proj;
} conv_ctx;

static double conv_f(void *p)
{
    conv_ctx *c = p;
    cx_conv2d_forward(c->out, c->scratch, c->in, c->w, c->b, c->B, &c->d);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(conv2d_gradients_match_finite_differences)
{
    const int pick[] = {0, 1, 3, 4};
    for (int pi = 0; pi < 4; pi++) {
        conv_ctx c = {.d = conv_shapes[pick[pi]], .B = 2};
        size_t nin = conv_in_n(&c.d, c.B), nout = conv_out_n(&c.d, c.B), nw = conv_w_n(&c.d);
        c.in = gc_frand(nin, 30 + pi, 1.0);
        c.w = gc_frand(nw, 31, 0.4);
        c.b = gc_frand(c.d.cout, 32, 0.5);
        c.out = gc_fbuf(nout);
        c.scratch = gc_fbuf(cx_conv2d_scratch_floats(&c.d, c.B));
        ck_assert_int_eq(gc_proj_init(&c.proj, nout, 33 + pi), 0);
        float *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(c.d.cout);
        conv_f(&c);
        cx_conv2d_backward(din, dw, db, c.scratch, c.proj.r, c.in, c.w, c.B, &c.d);
        gc_var vars[] = {{"din", c.in, din, nin}, {"dw", c.w, dw, nw}, {"db", c.b, db, c.d.cout}};
        gc_opts o = gc_opts_default();
        o.max_coords = 48;
        o.max_skip_frac = 0.0; /* linear: nothing to skip */
        gc_report rep;
        gc_assert_passed(gc_check(conv_f, NULL, &c, vars, 3, &o, &rep), &rep, "conv2d");
        gc_proj_free(&c.proj);
        free(c.in), free(c.w), free(c.b), free(c.out), free(c.scratch), free(din), free(dw);
        free(db);
    }
}
END_TEST

START_TEST(conv2d_many_chunks_match_naive)
{
    /* One sample needs (16*9 + 8) * 48 * 48 = 350,208 floats of scratch: two samples per chunk,
     * so a batch of 5 runs as chunks of 2, 2 and 1. */
    const cx_conv2d_dims d = {.cin = 16, .h = 48, .w = 48, .cout = 8, .k = 3, .pad = 1};
    const int B = 5;
    size_t per = (size_t)(16 * 9 + 8) * 48 * 48;
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&d, B), 2 * per);
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&d, 1), per);
    size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
    float *in = gc_frand(nin, 40, 1.0), *w = gc_frand(nw, 41, 0.1), *b = gc_frand(d.cout, 42, 0.5);
    float *out = gc_fbuf(nout), *dout = gc_frand(nout, 43, 1.0), *din = gc_fbuf(nin);
    float *dw = gc_fbuf(nw);
    float *db = gc_fbuf(d.cout), *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
    double *ref = gc_dbuf(nout), *rin = gc_dbuf(nin), *rw = gc_dbuf(nw), *rb = gc_dbuf(d.cout);
    cx_conv2d_forward(out, scratch, in, w, b, B, &d);
    naive_conv(ref, in, w, b, B, &d);
    gc_assert_close(out, ref, nout, 1e-5, 1e-5, "chunked conv out");
    cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
    naive_conv_backward(rin, rw, rb, dout, in, w, B, &d);
    gc_assert_close(din, rin, nin, 1e-5, 1e-5, "chunked conv din");
    gc_assert_close(dw, rw, nw, 1e-5, 2e-4, "chunked conv dw"); /* sums of 11,520 products */
    gc_assert_close(db, rb, d.cout, 1e-5, 1e-4, "chunked conv db");
    free(in), free(w), free(b), free(out), free(dout), free(din), free(dw), free(db), free(scratch);
    free(ref), free(rin), free(rw), free(rb);
}
END_TEST

START_TEST(conv2d_scratch_bound)
{
    /* The training shapes (batch 256 of 28x28, channels [32, 64]) stay within the bound. */
    const cx_conv2d_dims c1 = {.cin = 1, .h = 28, .w = 28, .cout = 32, .k = 3, .pad = 1};
    const cx_conv2d_dims c2 = {.cin = 32, .h = 14, .w = 14, .cout = 64, .k = 3, .pad = 1};
    size_t s1 = cx_conv2d_scratch_floats(&c1, 256), s2 = cx_conv2d_scratch_floats(&c2, 256);
    ck_assert_uint_le(s1, CX_CONV2D_CHUNK_FLOATS);
    ck_assert_uint_le(s2, CX_CONV2D_CHUNK_FLOATS);
    /* ...and fill most of it (chunks are not needlessly small): 32 and 15 samples. */
    ck_assert_uint_eq(s1, 32 * (size_t)(9 + 32) * 784);
    ck_assert_uint_eq(s2, 15 * (size_t)(288 + 64) * 196);
    /* A small batch needs only its own samples. */
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&c1, 3), 3 * (size_t)(9 + 32) * 784);
    /* A kernel larger than the padded input: no output, no scratch, and a zero input
     * gradient (din is still overwritten). */
    const cx_conv2d_dims none = {.cin = 2, .h = 2, .w = 2, .cout = 3, .k = 5, .pad = 0};
    ck_assert_int_le(cx_conv2d_out_h(&none), 0);
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&none, 4), 0);
    float x[16], dx[16], wt[150], dwt[150] = {0}, dbias[3] = {0}, one = 0.0f, dummy = 1.0f;
    for (int i = 0; i < 16; i++)
        x[i] = 1.0f, dx[i] = NAN;
    for (int i = 0; i < 150; i++)
        wt[i] = 1.0f;
    cx_conv2d_forward(&dummy, &one, x, wt, NULL, 2, &none);
    ck_assert_float_eq(dummy, 1.0f); /* nothing written */
    cx_conv2d_backward(dx, dwt, dbias, &one, &dummy, x, wt, 2, &none);
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq(dx[i], 0.0f);
    for (int i = 0; i < 150; i++)
        ck_assert_float_eq(dwt[i], 0.0f);
}
END_TEST

/* PyTorch's float32 results, as tests/check_reference.c: 2e-6 of max(1, max |torch|). */
#define TORCH_TOL 2e-6

static float *fx_floats(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    const fx_tensor *t = fx_need(f, prefix, name, n);
    float *p = gc_fbuf(t->n);
    fx_to_float(t, p);
    return p;
}

START_TEST(conv2d_matches_pytorch)
{
    fx_file f;
    fx_load_named(&f, "conv2d.fx");
    const char *cases[] = {"a", "b", "c", "d", "e"};
    for (int ci = 0; ci < 5; ci++) {
        const char *pf = cases[ci];
        const fx_tensor *dims = fx_need(&f, pf, "dims", 6);
        cx_conv2d_dims d = {.cin = (int)dims->v[0], .h = (int)dims->v[1], .w = (int)dims->v[2],
                            .cout = (int)dims->v[3], .k = (int)dims->v[4], .pad = (int)dims->v[5]};
        const fx_tensor *tin = fx_need(&f, pf, "in", (size_t)-1);
        ck_assert_int_eq(tin->ndim, 4);
        int B = (int)tin->dims[0];
        size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
        float *in = fx_floats(&f, pf, "in", nin), *w = fx_floats(&f, pf, "w", nw);
        float *b = fx_floats(&f, pf, "b", d.cout), *dout = fx_floats(&f, pf, "dout", nout);
        float *out = gc_fbuf(nout), *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(d.cout);
        float *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
        cx_conv2d_forward(out, scratch, in, w, b, B, &d);
        fx_assert_close(out, &f, pf, "out", nout, TORCH_TOL);
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
        fx_assert_close(din, &f, pf, "din", nin, TORCH_TOL);
        fx_assert_close(dw, &f, pf, "dw", nw, TORCH_TOL);
        fx_assert_close(db, &f, pf, "db", d.cout, TORCH_TOL);
        free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
        free(scratch);
    }
    fx_free(&f);
}
END_TEST

/* ---- max pooling -------------------------------------------------------------------------- */

START_TEST(maxpool2d_forward_backward_odd_sizes_ties_nan)
{
    const int sizes[][2] = {{7, 9}, {8, 8}, {3, 2}, {2, 5}, {1, 4}};
    for (int si = 0; si < 5; si++) {
        const int B = 3, C = 2, H = sizes[si][0], W = sizes[si][1], Ho = H / 2, Wo = W / 2;
        size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * Ho * Wo;
        float *in = gc_frand(nin, 50 + si, 1.0), *out = gc_fbuf(nout), *din = gc_fbuf(nin);
        float *dout = gc_frand(nout, 51, 1.0);
        int32_t *idx = calloc(nout ? nout : 1, sizeof *idx);
        double *din_in = gc_dbuf(nin), *ref = gc_dbuf(nout);
        int32_t *ridx = calloc(nout ? nout : 1, sizeof *ridx);
        if (H >= 2 && W >= 4) {
            in[0] = in[1] = in[W] = in[W + 1] = 0.75f; /* four equal: the first wins */
            in[2] = in[3] = 2.5f;                      /* a tie on the top row */
        }
        for (size_t i = 0; i < nin; i++)
            din_in[i] = in[i];
        cx_maxpool2d_forward(out, idx, in, B, C, H, W);
        gc_naive_maxpool2x2(ref, ridx, din_in, B, C, H, W);
        gc_assert_close(out, ref, nout, 0, 0, "pool out");
        for (size_t i = 0; i < nout; i++)
            ck_assert_int_eq(idx[i], ridx[i]);
        if (H >= 2 && W >= 4) {
            ck_assert_int_eq(idx[0], 0);
            ck_assert_int_eq(idx[1], 2);
        }
        /* Backward: dout at each maximum, zero elsewhere (the dropped row and column too). */
        gc_fill_nan(din, nin);
        cx_maxpool2d_backward(din, dout, idx, B, C, H, W);
        for (size_t t = 0; t < (size_t)B * C; t++)
            for (int i = 0; i < H * W; i++) {
                double want = 0.0;
                for (int j = 0; j < Ho * Wo; j++)
                    if (ridx[t * Ho * Wo + j] == i)
                        want = dout[t * Ho * Wo + j];
                ck_assert_msg(din[t * H * W + i] == (float)want, "pool din[%zu][%d] = %g, want %g",
                              t, i, (double)din[t * H * W + i], want);
            }
        free(in), free(out), free(din), free(dout), free(idx), free(din_in), free(ref), free(ridx);
    }
    /* NaN wins its window (the last NaN, as torch), so divergence propagates. */
    float x[8] = {1.0f, NAN, 3.0f, NAN, 5.0f, 6.0f, 7.0f, 8.0f}, o[2];
    int32_t ix[2];
    cx_maxpool2d_forward(o, ix, x, 1, 1, 2, 4);
    ck_assert(isnan(o[0]));
    ck_assert_int_eq(ix[0], 1);
    ck_assert(isnan(o[1]));
    ck_assert_int_eq(ix[1], 3);
    x[1] = x[3] = 0.0f;
    x[2] = NAN;
    x[6] = NAN;
    cx_maxpool2d_forward(o, ix, x, 1, 1, 2, 4);
    ck_assert_int_eq(ix[1], 6); /* the last of two NaN in the window */
    ck_assert_float_eq(o[0], 6.0f);
    ck_assert_int_eq(ix[0], 5);
}
END_TEST

START_TEST(maxpool2d_matches_pytorch)
{
    fx_file f;
    fx_load_named(&f, "maxpool2d.fx");
    const fx_tensor *dims = fx_need(&f, "", "dims", 4);
    int B = (int)dims->v[0], C = (int)dims->v[1], H = (int)dims->v[2], W = (int)dims->v[3];
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * (H / 2) * (W / 2);
    float *in = fx_floats(&f, "", "in", nin), *dout = fx_floats(&f, "p", "dout", nout);
    float *out = gc_fbuf(nout), *din = gc_fbuf(nin);
    int32_t *idx = calloc(nout, sizeof *idx), *tidx = calloc(nout, sizeof *tidx);
    cx_err err = {0};
    ck_assert_int_eq(fx_to_int32(fx_need(&f, "", "idx", nout), tidx, &err), CX_OK);
    cx_maxpool2d_forward(out, idx, in, B, C, H, W);
    fx_assert_close(out, &f, "", "out", nout, TORCH_TOL);
    for (size_t i = 0; i < nout; i++)
        ck_assert_msg(idx[i] == tidx[i], "idx[%zu] = %d, torch %d", i, idx[i], tidx[i]);
    cx_maxpool2d_backward(din, dout, idx, B, C, H, W);
    fx_assert_close(din, &f, "", "din", nin, TORCH_TOL);
    free(in), free(dout), free(out), free(din), free(idx), free(tidx);
    fx_free(&f);
}
END_TEST

typedef struct {
    int B, C, H, W;
    float *in, *out;
    int32_t *idx;
    gc_proj proj;
} pool_ctx;

static double pool_f(void *p)
{
    pool_ctx *c = p;
    cx_maxpool2d_forward(c->out, c->idx, c->in, c->B, c->C, c->H, c->W);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(maxpool2d_gradient_matches_finite_differences)
{
    pool_ctx c = {.B = 2, .C = 3, .H = 7, .W = 9};
    size_t nin = (size_t)c.B * c.C * c.H * c.W, nout = (size_t)c.B * c.C * (c.H / 2) * (c.W / 2);
    c.in = gc_frand(nin, 60, 1.0);
    c.out = gc_fbuf(nout);
    c.idx = calloc(nout, sizeof *c.idx);
    ck_assert_int_eq(gc_proj_init(&c.proj, nout, 61), 0);
    float *din = gc_fbuf(nin);
    pool_f(&c);
    cx_maxpool2d_backward(din, c.proj.r, c.idx, c.B, c.C, c.H, c.W);
    gc_var v = {"din", c.in, din, nin};
    gc_opts o = gc_opts_default();
    o.max_coords = 0; /* all 378, the dropped row and column included */
    o.h = 1e-3;
    gc_report rep;
    gc_assert_passed(gc_check(pool_f, NULL, &c, &v, 1, &o, &rep), &rep, "maxpool");
    ck_assert_uint_ge(rep.checked, nin * 9 / 10);
    gc_proj_free(&c.proj);
    free(c.in), free(c.out), free(c.idx), free(din);
}
END_TEST

START_TEST(conv2d_maxpool_bit_identical_on_two_threads)
{
    /* Shapes that cross the OpenMP thresholds of ops_internal.h (checked, so raising one cannot
     * quietly make this single-threaded): one sample's column matrix of 32 x 9 x 128 x 128
     * floats exceeds a chunk, so im2col and col2im run threaded on whole samples; pooling runs
     * threaded over 16 x 64 planes of 128 x 128. */
    const cx_conv2d_dims d = {.cin = 32, .h = 128, .w = 128, .cout = 8, .k = 3, .pad = 1};
    const int B = 2, PB = 16, PC = 64, PH = 128, PW = 128;
    ck_assert_uint_ge((size_t)d.cin * 9 * d.h * d.w, CX_OPS_PAR_ELEMS);
    ck_assert_uint_ge((size_t)PB * PC * PH * PW, 4 * CX_OPS_PAR_ELEMS); /* maxpool2d.c */
    size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
    size_t npin = (size_t)PB * PC * PH * PW, npool = npin / 4;
    float *in = gc_frand(nin, 70, 1.0), *w = gc_frand(nw, 71, 0.05), *b = gc_frand(d.cout, 72, 0.1);
    float *dout = gc_frand(nout, 73, 1.0), *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
    float *out = gc_fbuf(nout), *din = gc_fbuf(nin), *pin = gc_frand(npin, 74, 1.0);
    float *pool = gc_fbuf(npool), *dpool = gc_frand(npool, 75, 1.0), *dpin = gc_fbuf(npin);
    int32_t *idx = calloc(npool, sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    uint64_t h[3][8] = {{0}};
    for (int run = 0; run < 3; run++) {
        /* Runs 0 and 1 on two threads; run 2 on one, for the pooling (no matrix product). */
        cx_threads_set(run < 2 ? 2 : 1);
        float *dw = gc_fbuf(nw), *db = gc_fbuf(d.cout);
        cx_conv2d_forward(out, scratch, in, w, b, B, &d);
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
        cx_maxpool2d_forward(pool, idx, pin, PB, PC, PH, PW);
        cx_maxpool2d_backward(dpin, dpool, idx, PB, PC, PH, PW);
        h[run][0] = gc_hash_bytes(out, sizeof *out * nout);
        h[run][1] = gc_hash_bytes(din, sizeof *din * nin);
        h[run][2] = gc_hash_bytes(dw, sizeof *dw * nw);
        h[run][3] = gc_hash_bytes(db, sizeof *db * d.cout);
        h[run][4] = gc_hash_bytes(pool, sizeof *pool * npool);
        h[run][5] = gc_hash_bytes(idx, sizeof *idx * npool);
        h[run][6] = gc_hash_bytes(dpin, sizeof *dpin * npin);
        free(dw), free(db);
    }
    for (int i = 0; i < 7; i++)
        ck_assert_msg(h[0][i] == h[1][i], "output %d differs between two runs on 2 threads", i);
    for (int i = 4; i < 7; i++)
        ck_assert_msg(h[0][i] == h[2][i], "pooling output %d differs between 1 and 2 threads", i);
    /* The threaded passes computed the right thing: a few output values against the naive
     * sum (the full naive convolution of this size would be slow). */
    for (int t = 0; t < 5; t++) {
        int s = t % B, co = (3 * t) % d.cout, oh = (37 * t) % d.h, ow = (91 * t + 5) % d.w;
        double acc = b[co];
        for (int ci = 0; ci < d.cin; ci++)
            for (int ki = 0; ki < 3; ki++)
                for (int kj = 0; kj < 3; kj++)
                    acc += at_in(in, &d, s, ci, oh + ki - 1, ow + kj - 1) *
                           w[((co * d.cin + ci) * 3 + ki) * 3 + kj];
        float got = out[(((size_t)s * d.cout + co) * d.h + oh) * d.w + ow];
        ck_assert_double_eq_tol(got, acc, 1e-5 * (1 + fabs(acc)));
    }
    free(in), free(w), free(b), free(dout), free(scratch), free(out), free(din), free(pin);
    free(pool), free(dpool), free(dpin), free(idx);
}
END_TEST

/* ---- the gradient checker itself ---------------------------------------------------------- */

typedef struct {
    float x[4];
} quad_ctx;

/* f = sum x_i^3 + x0 x1: gradient (3x0^2 + x1, 3x1^2 + x0, 3x2^2, 3x3^2). */
static double quad_f(void *p)
{
    quad_ctx *c = p;
    double s = (double)c->x[0] * c->x[1];
    for (int i = 0; i < 4; i++)
        s += (double)c->x[i] * c->x[i] * c->x[i];
    return s;
}

START_TEST(gradcheck_catches_wrong_gradients)
{
    quad_ctx c = {{0.5f, -1.25f, 2.0f, 0.75f}};
    float g[4] = {3 * 0.25f - 1.25f, 3 * 1.5625f + 0.5f, 12.0f, 3 * 0.5625f};
    gc_var v = {"x", c.x, g, 4};
    gc_opts o = gc_opts_default();
    o.max_skip_frac = 0.0;
    gc_report rep;
    ck_assert_int_eq(gc_check(quad_f, NULL, &c, &v, 1, &o, &rep), 0);
    ck_assert_uint_eq(rep.checked, 4);
    ck_assert_float_eq(c.x[1], -1.25f); /* restored */
    /* A 5% error in one coordinate is caught and named. */
    g[2] *= 1.05f;
    ck_assert_int_eq(gc_check(quad_f, NULL, &c, &v, 1, &o, &rep), -1);
    ck_assert_msg(strstr(rep.msg, "x[2]") != NULL, "message: %s", rep.msg);
    g[2] = 12.0f;
    /* A sign error, a missing cross term. */
    g[0] = -g[0];
    ck_assert_int_eq(gc_check(quad_f, NULL, &c, &v, 1, &o, &rep), -1);
    g[0] = 3 * 0.25f;
    ck_assert_int_eq(gc_check(quad_f, NULL, &c, &v, 1, &o, &rep), -1);
}
END_TEST

typedef struct {
    float x[50];
    float out[50];
    gc_proj proj;
} relu_only_ctx;

static double relu_only_f(void *p)
{
    relu_only_ctx *c = p;
    cx_relu_forward(c->out, c->x, 50);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(gradcheck_skip_budget_and_subset)
{
    relu_only_ctx c;
    ck_assert_int_eq(gc_proj_init(&c.proj, 50, 240), 0);
    for (int i = 0; i < 50; i++)
        c.x[i] = i % 2 ? 0.0f : 1.0f + 0.01f * i; /* half on the kink */
    float g[50];
    relu_only_f(&c);
    cx_relu_backward(g, c.proj.r, c.out, 50);
    gc_var v = {"x", c.x, g, 50};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    gc_report rep;
    /* Half skipped exceeds a 20% budget: fail rather than pass on few coordinates. */
    ck_assert_int_eq(gc_check(relu_only_f, NULL, &c, &v, 1, &o, &rep), -1);
    ck_assert_uint_eq(rep.skipped, 25);
    ck_assert_msg(strstr(rep.msg, "skipped") != NULL, "message: %s", rep.msg);
    o.max_skip_frac = 0.6;
    ck_assert_int_eq(gc_check(relu_only_f, NULL, &c, &v, 1, &o, &rep), 0);
    ck_assert_uint_eq(rep.checked, 25);
    /* A capped subset checks exactly max_coords coordinates, the same ones for a seed. */
    o.max_coords = 10;
    o.max_skip_frac = 1.0;
    gc_report r1, r2;
    ck_assert_int_eq(gc_check(relu_only_f, NULL, &c, &v, 1, &o, &r1), 0);
    ck_assert_int_eq(gc_check(relu_only_f, NULL, &c, &v, 1, &o, &r2), 0);
    ck_assert_uint_eq(r1.checked + r1.skipped, 10);
    ck_assert_uint_eq(r1.skipped, r2.skipped);
    gc_proj_free(&c.proj);
}
END_TEST

/* ---- determinism -------------------------------------------------------------------------- */

/* Every op on inputs big enough to cross the threading thresholds of lib/ops/ops_internal.h
 * (checked below, so raising a threshold cannot quietly make these tests single-threaded).
 * Outputs are recorded as 64-bit hashes of their bytes, in order. */
typedef struct {
    uint64_t h[64];
    int n;
} digests;

static void put(digests *d, const void *p, size_t bytes)
{
    ck_assert_int_lt(d->n, 64);
    const unsigned char *c = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ bytes;
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        uint64_t w;
        memcpy(&w, c + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (; i < bytes; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    d->h[d->n++] = h;
}

#define PUTF(d, p, n) put(d, p, sizeof(float) * (size_t)(n))

static void run_all_ops(digests *o, int include_gemm)
{
    const int B = 4096, D = 1024, T = 4, DE = 256, V = 300, C = 64, BN = 2048, DN = 64;
    const size_t n = (size_t)B * D;
    ck_assert_uint_ge(n, CX_OPS_PAR_ELEMS);                       /* relu, bias, LN backward */
    ck_assert_uint_ge((size_t)B * T * DE, CX_OPS_PAR_ELEMS);      /* embedding bag */
    ck_assert_uint_ge(n / C * C, CX_OPS_PAR_ELEMS);               /* softmax CE backward */
    ck_assert_uint_ge((size_t)BN * BN, CX_OPS_PAR_ELEMS);         /* InfoNCE */
    ck_assert_uint_ge((size_t)B * DE, CX_OPS_PAR_ELEMS_DEAR);     /* l2norm on (B, DE) */

    float *x = gc_frand(n, 250, 1.0), *y = gc_fbuf(n), *d = gc_frand(n, 251, 1.0);
    float *g = gc_frand(D, 252, 1.0);
    float *b = gc_frand(D, 253, 1.0), *m = gc_fbuf(B), *r = gc_fbuf(B), *dg = gc_fbuf(D);
    float *db = gc_fbuf(D);
    float *dx = gc_fbuf(n);
    cx_relu_forward(y, x, n);
    cx_relu_backward(dx, d, y, n);
    PUTF(o, y, n), PUTF(o, dx, n);
    cx_gelu_forward(y, x, n);
    cx_gelu_backward(dx, d, x, n);
    PUTF(o, y, n), PUTF(o, dx, n);
    cx_layernorm_forward(y, m, r, x, g, b, B, D, 1e-5f);
    cx_layernorm_backward(dx, dg, db, d, x, m, r, g, B, D);
    PUTF(o, y, n), PUTF(o, m, B), PUTF(o, r, B), PUTF(o, dx, n), PUTF(o, dg, D), PUTF(o, db, D);
    cx_l2norm_forward(y, m, x, B, D, 1e-12f);
    cx_l2norm_backward(dx, d, y, m, B, D, 1e-12f);
    PUTF(o, y, n), PUTF(o, dx, n);

    /* The bias gradient alone: with K = 0 there is no product, only the column sums of
     * dout (B, D). */
    float *dbias = gc_fbuf(D), *wdummy = gc_fbuf(1);
    cx_linear_backward(NULL, wdummy, dbias, d, x, x, B, 0, D);
    PUTF(o, dbias, D);

    int32_t *tok = make_tokens(B, T, V, 0, 254);
    float *table = gc_frand((size_t)V * DE, 255, 1.0), *dtable = gc_fbuf((size_t)V * DE);
    cx_embag_mean_forward(y, tok, table, B, T, DE, 0);
    cx_embag_mean_backward(dtable, d, tok, B, T, DE, 0);
    PUTF(o, y, (size_t)B * DE), PUTF(o, dtable, (size_t)V * DE);

    /* Softmax CE over the (n / C, C) rows of x: many reduction blocks. */
    int BC = (int)(n / C);
    int32_t *tg = malloc(sizeof *tg * BC);
    ck_assert_ptr_nonnull(tg);
    for (int i = 0; i < BC; i++)
        tg[i] = (i * 37) % C;
    float *w = gc_frand(BC, 256, 1.0);
    double loss = cx_softmax_ce_forward(y, x, tg, w, g, BC, C);
    cx_softmax_ce_backward(dx, y, tg, w, BC, C, 1.0f);
    put(o, &loss, sizeof loss), PUTF(o, y, (size_t)BC * C), PUTF(o, dx, (size_t)BC * C);
    free(x), free(y), free(d), free(g), free(b), free(m), free(r), free(dg), free(db), free(dx);
    free(dbias), free(wdummy), free(tok), free(table), free(dtable), free(tg), free(w);

    /* InfoNCE: the softmaxes and sums are ours; the products are OpenBLAS's. */
    size_t bb = (size_t)BN * BN;
    float *fi = gc_frand((size_t)BN * DN, 257, 1.0), *ft = gc_frand((size_t)BN * DN, 258, 1.0);
    float *nn = gc_fbuf(BN), *lg = gc_fbuf(bb), *pr = gc_fbuf(bb), *pc = gc_fbuf(bb);
    float *sc = gc_fbuf(bb);
    cx_l2norm_forward(fi, nn, fi, BN, DN, 1e-12f);
    cx_l2norm_forward(ft, nn, ft, BN, DN, 1e-12f);
    if (include_gemm) {
        float *di = gc_fbuf((size_t)BN * DN), *dt = gc_fbuf((size_t)BN * DN), dth = 0;
        double nl = cx_infonce_forward(lg, pr, pc, fi, ft, 20.0f, BN, DN);
        cx_infonce_backward(di, dt, &dth, sc, pr, pc, lg, fi, ft, 20.0f, BN, DN, 1.0f);
        put(o, &nl, sizeof nl), PUTF(o, pr, bb), PUTF(o, pc, bb), PUTF(o, di, (size_t)BN * DN);
        PUTF(o, dt, (size_t)BN * DN), PUTF(o, &dth, 1);
        free(di), free(dt);

        const int BL = 96, K = 784, N = 256;
        float *in = gc_frand((size_t)BL * K, 259, 1.0), *wt = gc_frand((size_t)N * K, 260, 0.05);
        float *bl = gc_frand(N, 261, 0.1), *out = gc_fbuf((size_t)BL * N);
        float *dw = gc_fbuf((size_t)N * K);
        float *dbb = gc_fbuf(N), *din = gc_fbuf((size_t)BL * K);
        cx_linear_forward(out, in, wt, bl, BL, K, N);
        cx_linear_backward(din, dw, dbb, out, in, wt, BL, K, N);
        PUTF(o, out, (size_t)BL * N), PUTF(o, dw, (size_t)N * K), PUTF(o, dbb, N);
        PUTF(o, din, (size_t)BL * K);
        free(in), free(wt), free(bl), free(out), free(dw), free(dbb), free(din);
    } else {
        /* Without depending on OpenBLAS: D = 1 and txt[j] a power of two make every logit
         * img[i] * txt[j] exact whatever the kernel, so only our passes are compared. */
        for (int i = 0; i < BN; i++) {
            fi[i] = 3.0f * fi[i * DN];
            ft[i] = ldexpf(1.0f, i % 5 - 2);
        }
        float dth = 0;
        double nl = cx_infonce_forward(lg, pr, pc, fi, ft, 1.0f, BN, 1);
        cx_infonce_backward(NULL, NULL, &dth, sc, pr, pc, lg, fi, ft, 1.0f, BN, 1, 1.0f);
        put(o, &nl, sizeof nl), PUTF(o, pr, bb), PUTF(o, pc, bb), PUTF(o, sc, bb);
        PUTF(o, &dth, 1);
    }
    free(fi), free(ft), free(nn), free(lg), free(pr), free(pc), free(sc);
}

START_TEST(ops_bit_identical_on_two_threads)
{
    ck_assert_int_eq(cx_threads_set(2), 2);
    digests a = {0}, b = {0};
    run_all_ops(&a, 1);
    run_all_ops(&b, 1);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++)
        ck_assert_msg(a.h[i] == b.h[i], "output %d differs between two runs", i);
}
END_TEST

START_TEST(ops_independent_of_thread_count)
{
    /* The reductions are blocked by shape, not by thread: 1 and 2 threads agree bit for bit
     * (the matrix products, OpenBLAS's business, are left out). */
    digests a = {0}, b = {0};
    cx_threads_set(1);
    run_all_ops(&a, 0);
    cx_threads_set(2);
    run_all_ops(&b, 0);
    ck_assert_int_eq(a.n, b.n);
    for (int i = 0; i < a.n; i++)
        ck_assert_msg(a.h[i] == b.h[i], "output %d differs between 1 and 2 threads", i);
}
END_TEST

static Suite *ops_suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("linear");
    tcase_add_test(tc, linear_forward_matches_naive);
    tcase_add_test(tc, linear_gradients_match_finite_differences);
    tcase_add_test(tc, linear_backward_adds_params_and_skips_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("activation");
    tcase_add_test(tc, relu_values_nan_and_in_place);
    tcase_add_test(tc, relu_gradient_skips_kinks);
    tcase_add_test(tc, gelu_matches_erf_and_in_place);
    tcase_add_test(tc, gelu_gradient_matches_finite_differences);
    suite_add_tcase(s, tc);

    tc = tcase_create("norms");
    tcase_add_test(tc, layernorm_forward_matches_naive);
    tcase_add_test(tc, layernorm_gradients_match_finite_differences);
    tcase_add_test(tc, batchnorm_forward_matches_naive_and_running_stats);
    tcase_add_test(tc, batchnorm_gradients_match_finite_differences);
    tcase_add_test(tc, batchnorm_matches_pytorch);
    tcase_add_test(tc, layernorm_constant_row_is_finite);
    tcase_add_test(tc, l2norm_forward_matches_naive_and_in_place);
    tcase_add_test(tc, l2norm_gradient_matches_finite_differences);
    tcase_add_test(tc, l2norm_eps_branch);
    suite_add_tcase(s, tc);

    tc = tcase_create("embag");
    tcase_add_test(tc, embag_forward_matches_naive_with_padding);
    tcase_add_test(tc, embag_gradient_matches_finite_differences);
    suite_add_tcase(s, tc);

    tc = tcase_create("losses");
    tcase_add_test(tc, softmax_ce_forward_matches_naive);
    tcase_add_test(tc, softmax_ce_gradients_match_finite_differences);
    tcase_add_test(tc, softmax_ce_zero_weights_mask_samples);
    tcase_add_test(tc, softmax_ce_offsets_are_balanced_softmax);
    tcase_add_test(tc, softmax_ce_large_logits_are_stable);
    tcase_add_test(tc, infonce_forward_matches_naive);
    tcase_add_test(tc, infonce_gradients_match_finite_differences);
    tcase_add_test(tc, infonce_after_l2norm_chain_gradients);
    suite_add_tcase(s, tc);

    tc = tcase_create("wide");
    tcase_add_test(tc, wide_shapes_match_naive_forward_and_backward);
    tcase_add_test(tc, wide_infonce_matches_naive_forward_and_backward);
    tcase_add_test(tc, wide_softmax_ce_many_row_blocks);
    suite_add_tcase(s, tc);

    tc = tcase_create("conv2d");
    tcase_add_test(tc, conv2d_forward_matches_naive);
    tcase_add_test(tc, conv2d_backward_matches_naive_adds_and_skips);
    tcase_add_test(tc, conv2d_gradients_match_finite_differences);
    tcase_add_test(tc, conv2d_many_chunks_match_naive);
    tcase_add_test(tc, conv2d_scratch_bound);
    tcase_add_test(tc, conv2d_matches_pytorch);
    suite_add_tcase(s, tc);

    tc = tcase_create("maxpool2d");
    tcase_add_test(tc, maxpool2d_forward_backward_odd_sizes_ties_nan);
    tcase_add_test(tc, maxpool2d_matches_pytorch);
    tcase_add_test(tc, maxpool2d_gradient_matches_finite_differences);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradcheck");
    tcase_add_test(tc, gradcheck_catches_wrong_gradients);
    tcase_add_test(tc, gradcheck_skip_budget_and_subset);
    suite_add_tcase(s, tc);

    tc = tcase_create("determinism");
    /* 2.9 s under ASan and UBSan at most (every op on 1 and 2 threads); about 5x that. */
    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, ops_bit_identical_on_two_threads);
    tcase_add_test(tc, ops_independent_of_thread_count);
    tcase_add_test(tc, conv2d_maxpool_bit_identical_on_two_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ops_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
