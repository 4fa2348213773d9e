/* Losses: every loss's gradient against finite differences (all classes, a subset, DRW before
 * and after, zero-count classes), every loss against PyTorch (tests/fixtures/loss.fx),
 * hand-computed identities, determinism. The samplers are tested in check_sampler. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/objective/loss.h"
#include "lib/ops/ops.h"
#include "lib/ops/ops_internal.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static int32_t *ibuf(size_t n)
{
    int32_t *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Targets in [0, K) from seed. */
static int32_t *rand_targets(int B, int K, uint64_t seed)
{
    int32_t *y = ibuf((size_t)B);
    cx_rng r;
    cx_rng_seed(&r, seed, 7);
    for (int i = 0; i < B; i++)
        y[i] = (int32_t)cx_rng_below(&r, (uint32_t)K);
    return y;
}

static cx_loss_config config(cx_loss_kind kind)
{
    cx_loss_config c = {.kind = kind, .focal_gamma = 2.0, .la_tau = 1.0, .effnum_beta = 0.999,
                        .grw_p = 1.2, .ldam_max_margin = 0.5, .lade_lambda = 0.1,
                        .drw_epoch = 0};
    return c;
}

static cx_loss *make(const cx_loss_config *cfg, const int64_t *counts, int C, int max_batch)
{
    cx_loss *l = NULL;
    cx_err err = {0};
    cx_status st = cx_loss_create(&l, cfg, counts, C, max_batch, &err);
    ck_assert_msg(st == CX_OK, "cx_loss_create: %s", err.msg);
    ck_assert_ptr_nonnull(l);
    return l;
}

/* A loss computed once into a fresh dlogits (caller frees). */
static double run(const cx_loss_config *cfg, const int64_t *counts, int C, const float *z,
                  const int32_t *y, const int32_t *cls, int B, int K, float scale, int epoch,
                  float **dz)
{
    cx_loss *l = make(cfg, counts, C, B);
    *dz = gc_fbuf((size_t)B * K);
    double v = cx_loss_compute(l, z, y, cls, B, K, scale, epoch, *dz);
    cx_loss_free(l);
    return v;
}

/* -log softmax(v)[y] in double. */
static double naive_ce_row(const double *v, int y, int K, double *p)
{
    double mx = -INFINITY, s = 0.0;
    for (int j = 0; j < K; j++)
        mx = fmax(mx, v[j]);
    for (int j = 0; j < K; j++)
        s += exp(v[j] - mx);
    for (int j = 0; j < K && p; j++)
        p[j] = exp(v[j] - mx) / s;
    return mx + log(s) - v[y];
}

static void assert_rel(double got, double want, double rtol, const char *what)
{
    ck_assert_msg(fabs(got - want) <= rtol * fabs(want) + 1e-300, "%s: got %.15g, want %.15g",
                  what, got, want);
}

static void assert_same_bits(const float *a, const float *b, size_t n, const char *what)
{
    ck_assert_msg(memcmp(a, b, sizeof *a * n) == 0, "%s: results differ", what);
}

/* ---- creation ----------------------------------------------------------------------------- */

static void expect_create_fails(const cx_loss_config *cfg, const int64_t *counts, int C, int mb,
                                cx_status code, const char *needle)
{
    cx_loss *l = (cx_loss *)1;
    cx_err err = {0};
    cx_status st = cx_loss_create(&l, cfg, counts, C, mb, &err);
    ck_assert_int_eq(st, code);
    ck_assert_ptr_null(l);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
}

START_TEST(loss_create_refuses_bad_settings)
{
    const int64_t counts[3] = {10, 5, 0}, neg[3] = {10, -1, 3};
    cx_loss_config c = config(CX_LOSS_FOCAL);
    c.focal_gamma = -0.5;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "focal.gamma");
    c = config(CX_LOSS_EFFNUM);
    c.effnum_beta = 1.0;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "effnum.beta");
    c = config(CX_LOSS_GRW);
    c.grw_p = NAN;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "grw.p");
    c = config(CX_LOSS_LDAM);
    c.ldam_max_margin = 0.0;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "ldam.max_margin");
    c = config(CX_LOSS_LADE);
    c.lade_lambda = -1.0;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "lade.lambda");
    c = config(CX_LOSS_LOGIT_ADJUST);
    c.la_tau = INFINITY;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "logit_adjust.tau");
    /* DRW on a loss that is already class-weighted, as the configuration refuses it. */
    c = config(CX_LOSS_CBW);
    c.drw_epoch = 2;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "drw.epoch");
    c = config(CX_LOSS_CE);
    c.drw_epoch = -1;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "drw.epoch");
    c = config(CX_LOSS_CE);
    expect_create_fails(&c, counts, 0, 4, CX_EUSAGE, "classes");
    expect_create_fails(&c, counts, 3, 0, CX_EUSAGE, "batch");
    expect_create_fails(&c, neg, 3, 4, CX_EDATA, "class 1");
    c.kind = (cx_loss_kind)42;
    expect_create_fails(&c, counts, 3, 4, CX_EUSAGE, "kind");
    cx_loss_free(NULL);
}
END_TEST

START_TEST(loss_calls_outside_the_contract_give_nan)
{
    const int64_t counts[4] = {9, 3, 1, 0};
    cx_loss_config c = config(CX_LOSS_CE);
    cx_loss *l = make(&c, counts, 4, 3);
    float z[16] = {0}, dz[16];
    int32_t y[4] = {0, 1, 2, 3}, cls[2] = {0, 3};
    ck_assert(isnan(cx_loss_compute(l, z, y, NULL, 4, 4, 1.0f, 0, dz))); /* B > max_batch */
    ck_assert(isnan(cx_loss_compute(l, z, y, NULL, 3, 3, 1.0f, 0, dz))); /* K != C, no classes */
    ck_assert(isnan(cx_loss_compute(l, z, y, cls, 3, 2, 1.0f, 0, dz)));  /* target 2 >= K */
    int32_t bad_cls[2] = {0, 4};
    int32_t y2[2] = {0, 1};
    ck_assert(isnan(cx_loss_compute(l, z, y2, bad_cls, 2, 2, 1.0f, 0, dz)));
    ck_assert(isnan(cx_loss_compute(l, z, y2, cls, 2, 5, 1.0f, 0, dz))); /* K > C */
    /* An empty batch is a loss of 0. */
    ck_assert(cx_loss_compute(l, z, y, NULL, 0, 4, 1.0f, 0, dz) == 0.0);
    /* Uniform logits: log 4 exactly, whatever the class. */
    ck_assert_double_eq_tol(cx_loss_compute(l, z, y, NULL, 3, 4, 1.0f, 0, dz), log(4.0), 1e-15);
    ck_assert_float_eq_tol(dz[0], (0.25f - 1.0f) / 3.0f, 1e-7f);
    ck_assert_float_eq_tol(dz[1], 0.25f / 3.0f, 1e-7f);
    cx_loss_free(l);
}
END_TEST

/* ---- finite differences ------------------------------------------------------------------- */

typedef struct {
    cx_loss *l;
    float *z;
    const int32_t *y, *cls;
    int B, K, epoch;
    float scale;
    float *dz;
} loss_ctx;

static double loss_f(void *p)
{
    loss_ctx *c = p;
    return cx_loss_compute(c->l, c->z, c->y, c->cls, c->B, c->K, c->scale, c->epoch, c->dz);
}

/* Six classes, class 4 with no sample; the subset holds it and skips classes 1 and 3. */
static const int64_t gc_counts[6] = {300, 80, 20, 6, 0, 2};
static const int32_t gc_subset[4] = {0, 2, 4, 5};

/* Checks every coordinate of dlogits for one setting: all classes or the subset, DRW from
 * drw_epoch (0: none) at 0-based epoch. */
static void gc_loss(cx_loss_config c, int subset, int drw_epoch, int epoch, uint64_t seed)
{
    const int B = 9, C = 6;
    int K = subset ? 4 : C;
    c.drw_epoch = drw_epoch;
    cx_loss *l = make(&c, gc_counts, C, B);
    float *z = gc_frand((size_t)B * K, seed, 1.5), *dz = gc_fbuf((size_t)B * K);
    float *scratch = gc_fbuf((size_t)B * K);
    int32_t *y = rand_targets(B, K, seed);
    y[0] = subset ? 2 : 4; /* the zero-count class is a target */
    y[1] = y[2];
    const int32_t *cls = subset ? gc_subset : NULL;
    float scale = c.kind == CX_LOSS_LDAM ? 4.0f : 1.0f;
    double v = cx_loss_compute(l, z, y, cls, B, K, scale, epoch, dz);
    ck_assert_msg(isfinite(v), "loss %g", v);
    loss_ctx ctx = {l, z, y, cls, B, K, epoch, scale, scratch};
    gc_var var = {"dlogits", z, dz, (size_t)B * K};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.rtol = 1e-3;
    o.atol = 1e-6;
    o.max_coords = 0;
    o.max_skip_frac = 0.0;
    gc_report rep;
    int rc = gc_check(loss_f, NULL, &ctx, &var, 1, &o, &rep);
    ck_assert_msg(rc == 0, "kind %d subset %d drw %d epoch %d: %s", (int)c.kind, subset,
                  drw_epoch, epoch, rep.msg);
    ck_assert_uint_eq(rep.checked, (size_t)B * K);
    cx_loss_free(l);
    free(z), free(dz), free(scratch), free(y);
}

/* All classes and the subset; for the losses that DRW applies to, also DRW before and after. */
static void gc_kind(cx_loss_config c)
{
    int weighted = c.kind == CX_LOSS_CBW || c.kind == CX_LOSS_EFFNUM || c.kind == CX_LOSS_GRW;
    for (int subset = 0; subset < 2; subset++) {
        gc_loss(c, subset, 0, 0, 100 + subset);
        if (!weighted) {
            gc_loss(c, subset, 3, 1, 200 + subset); /* before: epoch 2 of 1-based 3 */
            gc_loss(c, subset, 3, 2, 300 + subset); /* from epoch 3 on */
        }
    }
}

START_TEST(gradient_ce)
{
    gc_kind(config(CX_LOSS_CE));
}
END_TEST

START_TEST(gradient_focal)
{
    cx_loss_config c = config(CX_LOSS_FOCAL);
    gc_kind(c);
    c.focal_gamma = 0.5; /* (1 - p)^(gamma - 1) is singular at p = 1 for gamma < 1 */
    gc_kind(c);
}
END_TEST

START_TEST(gradient_balanced_softmax)
{
    gc_kind(config(CX_LOSS_BALANCED_SOFTMAX));
}
END_TEST

START_TEST(gradient_logit_adjust)
{
    cx_loss_config c = config(CX_LOSS_LOGIT_ADJUST);
    c.la_tau = 1.7;
    gc_kind(c);
}
END_TEST

START_TEST(gradient_class_weighted)
{
    gc_kind(config(CX_LOSS_CBW));
    cx_loss_config c = config(CX_LOSS_EFFNUM);
    c.effnum_beta = 0.99;
    gc_kind(c);
    gc_kind(config(CX_LOSS_GRW));
}
END_TEST

START_TEST(gradient_ldam)
{
    cx_loss_config c = config(CX_LOSS_LDAM);
    c.effnum_beta = 0.99;
    gc_kind(c);
}
END_TEST

START_TEST(gradient_lade)
{
    cx_loss_config c = config(CX_LOSS_LADE);
    gc_kind(c);
    c.lade_lambda = 2.0; /* the regulariser dominates */
    gc_kind(c);
}
END_TEST

/* ---- PyTorch reference ------------------------------------------------------------------- */

#define LOSS_RTOL 1e-6
#define GRAD_TOL 2e-6

typedef struct {
    const char *name;
    cx_loss_kind kind;
} ref_case;

static double scalar_or(const fx_file *f, const char *prefix, const char *key, double dflt)
{
    char name[FX_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s_%s", prefix, key);
    const fx_tensor *t = fx_get(f, name);
    if (!t)
        return dflt;
    ck_assert_uint_eq(t->n, 1);
    return t->v[0];
}

static void check_ref(const fx_file *f, const ref_case *rc)
{
    const char *p = rc->name;
    const fx_tensor *tc = fx_need(f, "", "counts", (size_t)-1);
    const fx_tensor *tz = fx_need(f, p, "logits", (size_t)-1);
    int C = (int)tc->n, B = (int)tz->dims[0], K = (int)tz->dims[1];
    int64_t *counts = calloc((size_t)C, sizeof *counts);
    for (int c = 0; c < C; c++)
        counts[c] = (int64_t)tc->v[c];
    float *z = gc_fbuf(tz->n), *dz = gc_fbuf(tz->n);
    fx_to_float(tz, z);
    int32_t *y = ibuf((size_t)B), *cls = NULL;
    cx_err err = {0};
    ck_assert_msg(fx_to_int32(fx_need(f, p, "targets", (size_t)-1), y, &err) == CX_OK, "%s",
                  err.msg);
    char name[FX_NAME_MAX * 2];
    snprintf(name, sizeof name, "%s_classes", p);
    if (fx_get(f, name)) {
        cls = ibuf((size_t)K);
        ck_assert_msg(fx_to_int32(fx_get(f, name), cls, &err) == CX_OK, "%s", err.msg);
    }
    cx_loss_config c = config(rc->kind);
    c.focal_gamma = scalar_or(f, p, "gamma", 2.0);
    c.la_tau = scalar_or(f, p, "tau", 1.0);
    c.effnum_beta = scalar_or(f, p, "beta", 0.999);
    c.grw_p = scalar_or(f, p, "p", 1.2);
    c.ldam_max_margin = scalar_or(f, p, "margin", 0.5);
    c.lade_lambda = scalar_or(f, p, "lam", 0.1);
    c.drw_epoch = (int)scalar_or(f, p, "drw", 0);
    float scale = (float)scalar_or(f, p, "scale", 1.0);
    int epoch = (int)scalar_or(f, p, "epoch", 0);
    cx_loss *l = make(&c, counts, C, B);
    double v = cx_loss_compute(l, z, y, cls, B, K, scale, epoch, dz);
    double want = fx_need(f, p, "loss", (size_t)-1)->v[0];
    ck_assert_msg(fabs(v - want) <= LOSS_RTOL * fabs(want), "%s loss: got %.12g, torch %.12g", p,
                  v, want);
    const fx_tensor *tg = fx_need(f, p, "dlogits", (size_t)-1);
    ck_assert_uint_eq(tg->n, tz->n);
    double sc = 1.0;
    for (size_t i = 0; i < tg->n; i++)
        sc = fmax(sc, fabs(tg->v[i]));
    for (size_t i = 0; i < tg->n; i++)
        ck_assert_msg(fabs(dz[i] - tg->v[i]) <= GRAD_TOL * sc,
                      "%s dlogits[%zu]: got %.9g, torch %.9g", p, i, (double)dz[i], tg->v[i]);
    cx_loss_free(l);
    free(counts), free(z), free(dz), free(y), free(cls);
}

static void check_refs(const ref_case *cases, int n)
{
    fx_file f;
    fx_load_named(&f, "loss.fx");
    for (int i = 0; i < n; i++)
        check_ref(&f, &cases[i]);
    fx_free(&f);
}

START_TEST(reference_ce_and_focal)
{
    static const ref_case cases[] = {
        {"ce_full", CX_LOSS_CE},          {"ce_sub", CX_LOSS_CE},
        {"focal_full", CX_LOSS_FOCAL},    {"focal_sub", CX_LOSS_FOCAL},
        {"focal_large", CX_LOSS_FOCAL},
    };
    check_refs(cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(reference_prior_offsets)
{
    static const ref_case cases[] = {
        {"bs_full", CX_LOSS_BALANCED_SOFTMAX}, {"bs_sub", CX_LOSS_BALANCED_SOFTMAX},
        {"la_full", CX_LOSS_LOGIT_ADJUST},     {"la_sub", CX_LOSS_LOGIT_ADJUST},
    };
    check_refs(cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(reference_class_weights)
{
    static const ref_case cases[] = {
        {"cbw_full", CX_LOSS_CBW}, {"cbw_sub", CX_LOSS_CBW},
        {"effnum_full", CX_LOSS_EFFNUM}, {"effnum_sub", CX_LOSS_EFFNUM},
        {"grw_full", CX_LOSS_GRW}, {"grw_sub", CX_LOSS_GRW},
    };
    check_refs(cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(reference_ldam_and_drw)
{
    static const ref_case cases[] = {
        {"ldam_full", CX_LOSS_LDAM},
        {"ldam_sub", CX_LOSS_LDAM},
        {"ldam_drw_before_full", CX_LOSS_LDAM},
        {"ldam_drw_before_sub", CX_LOSS_LDAM},
        {"ldam_drw_after_full", CX_LOSS_LDAM},
        {"ldam_drw_after_sub", CX_LOSS_LDAM},
        {"ce_drw_after_full", CX_LOSS_CE},
        {"ce_drw_after_sub", CX_LOSS_CE},
        {"focal_drw_after_full", CX_LOSS_FOCAL},
        {"focal_drw_after_sub", CX_LOSS_FOCAL},
    };
    check_refs(cases, sizeof cases / sizeof cases[0]);
}
END_TEST

START_TEST(reference_lade)
{
    static const ref_case cases[] = {{"lade_full", CX_LOSS_LADE}, {"lade_sub", CX_LOSS_LADE}};
    check_refs(cases, sizeof cases / sizeof cases[0]);
}
END_TEST

/* ---- hand-computed cases ------------------------------------------------------------------ */

/* The rows' exponentials are computed in 8 vector lanes with their own exp (lib/objective/
 * loss.c): the loss and gradient match a long double reference over rows with K around the
 * lane width, targets in the vector part and the tail, and logits spread over the whole range
 * where exp underflows; a NaN or +inf logit anywhere still gives NaN, -inf gives the loss
 * without that column. */
static long double ref_ce_row(const float *z, int y, int K, long double *p)
{
    long double mx = -INFINITY, s = 0.0L;
    for (int j = 0; j < K; j++)
        mx = fmaxl(mx, (long double)z[j]);
    for (int j = 0; j < K; j++)
        s += expl((long double)z[j] - mx);
    for (int j = 0; j < K; j++)
        p[j] = expl((long double)z[j] - mx) / s;
    return mx + logl(s) - (long double)z[y];
}

START_TEST(ce_rows_match_a_long_double_reference)
{
    static const int Ks[] = {1, 7, 8, 9, 16, 23, 1000};
    cx_loss_config cfg = config(CX_LOSS_CE);
    for (size_t a = 0; a < sizeof Ks / sizeof Ks[0]; a++) {
        int K = Ks[a], B = 5;
        int64_t *counts = calloc((size_t)K, sizeof *counts);
        for (int c = 0; c < K; c++)
            counts[c] = 1 + c;
        float *z = gc_fbuf((size_t)B * K);
        int32_t *y = ibuf((size_t)B);
        cx_rng r;
        cx_rng_seed(&r, 11, (uint64_t)K);
        for (int i = 0; i < B; i++) {
            /* Row 0 small logits, later rows wider, the last beyond exp's underflow. */
            double spread = i == B - 1 ? 900.0 : 3.0 * (i + 1);
            for (int j = 0; j < K; j++)
                z[(size_t)i * K + j] = (float)(spread * (2.0 * cx_rng_uniform(&r) - 1.0));
            y[i] = i == 0 ? K - 1 : (int32_t)cx_rng_below(&r, (uint32_t)K);
        }
        float *dz;
        double got = run(&cfg, counts, K, z, y, NULL, B, K, 1.0f, 0, &dz);
        long double want = 0.0L, *p = calloc((size_t)K, sizeof *p);
        for (int i = 0; i < B; i++) {
            want += ref_ce_row(z + (size_t)i * K, y[i], K, p) / B;
            for (int j = 0; j < K; j++) {
                double g = (double)((p[j] - (j == y[i])) / B);
                double d = dz[(size_t)i * K + j];
                ck_assert_msg(fabs(d - g) <= 1e-6 * fabs(g) + 1e-12,
                              "K %d row %d col %d: gradient %.9g, want %.9g", K, i, j, d, g);
            }
        }
        assert_rel(got, (double)want, 1e-14, "CE over lanes");
        /* NaN or +inf at a column other than the target: NaN; -inf: that column drops out. */
        if (K > 1) {
            int j = y[0] == 0 ? 1 : 0;
            float keep = z[j];
            z[j] = NAN;
            free(dz);
            ck_assert(isnan(run(&cfg, counts, K, z, y, NULL, 1, K, 1.0f, 0, &dz)));
            z[j] = INFINITY;
            free(dz);
            ck_assert(isnan(run(&cfg, counts, K, z, y, NULL, 1, K, 1.0f, 0, &dz)));
            z[j] = -INFINITY;
            free(dz);
            double one = run(&cfg, counts, K, z, y, NULL, 1, K, 1.0f, 0, &dz);
            ck_assert(isfinite(one));
            assert_rel(one, (double)ref_ce_row(z, y[0], K, p), 1e-14, "-inf column");
            ck_assert_float_eq(dz[j], 0.0f);
            z[j] = keep;
        }
        free(p);
        free(counts);
        free(dz);
        free(z);
        free(y);
    }
}
END_TEST

START_TEST(focal_gamma_zero_is_ce)
{
    const int B = 11, C = 5, K = 3;
    const int64_t counts[5] = {50, 20, 8, 3, 1};
    const int32_t cls[3] = {1, 3, 4};
    float *z = gc_frand((size_t)B * C, 40, 3.0), *dce, *dfo;
    int32_t *y = rand_targets(B, C, 41), *ys = rand_targets(B, K, 42);
    cx_loss_config fo = config(CX_LOSS_FOCAL), ce = config(CX_LOSS_CE);
    fo.focal_gamma = 0.0;
    double a = run(&ce, counts, C, z, y, NULL, B, C, 1.0f, 0, &dce);
    double b = run(&fo, counts, C, z, y, NULL, B, C, 1.0f, 0, &dfo);
    ck_assert(a == b);
    assert_same_bits(dce, dfo, (size_t)B * C, "focal gamma 0 vs CE");
    free(dce), free(dfo);
    a = run(&ce, counts, C, z, ys, cls, B, K, 1.0f, 0, &dce);
    b = run(&fo, counts, C, z, ys, cls, B, K, 1.0f, 0, &dfo);
    ck_assert(a == b);
    assert_same_bits(dce, dfo, (size_t)B * K, "focal gamma 0 vs CE on a subset");
    /* gamma 2 is smaller than CE (each term shrinks by (1 - p)^2 < 1) */
    fo.focal_gamma = 2.0;
    free(dfo);
    ck_assert(run(&fo, counts, C, z, ys, cls, B, K, 1.0f, 0, &dfo) < a);
    free(dce), free(dfo), free(z), free(y), free(ys);
}
END_TEST

START_TEST(focal_is_stable_at_extreme_probabilities)
{
    /* p_y = 1 to double precision, p_y -> 0, and p_y near 1 with gamma < 1. */
    const int C = 3, B = 3;
    const int64_t counts[3] = {1, 1, 1};
    float z[9] = {800.0f, -800.0f, 0.0f, -700.0f, 700.0f, 0.0f, 30.0f, 0.0f, 0.0f};
    int32_t y[3] = {0, 0, 0};
    for (int gi = 0; gi < 3; gi++) {
        cx_loss_config c = config(CX_LOSS_FOCAL);
        c.focal_gamma = (double[]){0.5, 1.0, 2.0}[gi];
        float *dz;
        double v = run(&c, counts, C, z, y, NULL, B, C, 1.0f, 0, &dz);
        /* Row 2: l = 1400 (1 - e^-1400)^g = 1400; rows 1 and 3 are (nearly) 0. */
        ck_assert_msg(isfinite(v), "gamma %g: loss %g", c.focal_gamma, v);
        assert_rel(v, 1400.0 / 3.0, 1e-9, "focal extreme loss");
        for (int j = 0; j < 9; j++)
            ck_assert_msg(isfinite(dz[j]), "gamma %g: dz[%d] = %g", c.focal_gamma, j, dz[j]);
        ck_assert_float_eq(dz[0], 0.0f);
        /* Row 2: d/dz_y = -(1/B) (1-p)^g (1 - g p lp/(1-p)) -> -(1/3). */
        ck_assert_float_eq_tol(dz[3], -1.0f / 3.0f, 1e-6f);
        ck_assert_float_eq_tol(dz[4], 1.0f / 3.0f, 1e-6f);
        /* Row 3: p = 1 - 2e^-30 (1-p ~ 1.9e-13): (1-p)^g scales the gradient to about 0. */
        ck_assert(fabsf(dz[6]) < 1e-5f && fabsf(dz[7]) < 1e-5f);
        free(dz);
    }
}
END_TEST

START_TEST(balanced_softmax_with_uniform_counts_is_ce)
{
    const int B = 13, C = 6;
    const int64_t counts[6] = {7, 7, 7, 7, 7, 7};
    float *z = gc_frand((size_t)B * C, 50, 2.0), *dce, *dbs, *dla;
    int32_t *y = rand_targets(B, C, 51);
    cx_loss_config ce = config(CX_LOSS_CE), bs = config(CX_LOSS_BALANCED_SOFTMAX);
    cx_loss_config la = config(CX_LOSS_LOGIT_ADJUST), lade = config(CX_LOSS_LADE);
    la.la_tau = 3.0;
    lade.lade_lambda = 0.0;
    double a = run(&ce, counts, C, z, y, NULL, B, C, 1.0f, 0, &dce);
    double b = run(&bs, counts, C, z, y, NULL, B, C, 1.0f, 0, &dbs);
    double d = run(&la, counts, C, z, y, NULL, B, C, 1.0f, 0, &dla);
    assert_rel(b, a, 1e-13, "balanced softmax, uniform counts");
    assert_rel(d, a, 1e-13, "logit adjustment, uniform counts");
    for (int i = 0; i < B * C; i++) {
        ck_assert_float_eq_tol(dbs[i], dce[i], 1e-7f);
        ck_assert_float_eq_tol(dla[i], dce[i], 1e-7f);
    }
    free(dbs);
    /* LADE with lambda 0 is balanced softmax. */
    double e = run(&lade, counts, C, z, y, NULL, B, C, 1.0f, 0, &dbs);
    assert_rel(e, a, 1e-13, "LADE lambda 0, uniform counts");
    free(dce), free(dbs), free(dla), free(z), free(y);
}
END_TEST

START_TEST(logit_adjust_tau_one_is_balanced_softmax_tau_zero_is_ce)
{
    const int B = 8, C = 4;
    const int64_t counts[4] = {400, 30, 5, 0};
    float *z = gc_frand((size_t)B * C, 60, 2.0), *d1, *d2;
    int32_t *y = rand_targets(B, C, 61);
    cx_loss_config la = config(CX_LOSS_LOGIT_ADJUST), bs = config(CX_LOSS_BALANCED_SOFTMAX);
    cx_loss_config ce = config(CX_LOSS_CE);
    double a = run(&la, counts, C, z, y, NULL, B, C, 1.0f, 0, &d1);
    double b = run(&bs, counts, C, z, y, NULL, B, C, 1.0f, 0, &d2);
    ck_assert(a == b);
    assert_same_bits(d1, d2, (size_t)B * C, "LA tau 1 vs balanced softmax");
    free(d1), free(d2);
    la.la_tau = 0.0;
    a = run(&la, counts, C, z, y, NULL, B, C, 1.0f, 0, &d1);
    b = run(&ce, counts, C, z, y, NULL, B, C, 1.0f, 0, &d2);
    ck_assert(a == b);
    assert_same_bits(d1, d2, (size_t)B * C, "LA tau 0 vs CE");
    /* Balanced softmax by hand: CE(z + log pi), pi from max(n, 1) = {400, 30, 5, 1} / 436. */
    double n[4] = {400, 30, 5, 1}, v[4], want = 0.0;
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < C; j++)
            v[j] = z[i * C + j] + log(n[j] / 436.0);
        want += naive_ce_row(v, y[i], C, NULL) / B;
    }
    free(d1);
    assert_rel(run(&bs, counts, C, z, y, NULL, B, C, 1.0f, 0, &d1), want, 1e-13,
               "balanced softmax by hand");
    free(d1), free(d2), free(z), free(y);
}
END_TEST

/* The loss of a batch of two samples (classes a and b, a != b), each class weight recovered
 * from it: torch's convention gives (wa la + wb lb) / (wa + wb). */
static void check_two_sample_weights(cx_loss_kind kind, const int64_t *counts, int C,
                                     const double *w)
{
    float z[2 * 8];
    gc_fill_normal(z, (size_t)2 * C, 70, 1.0);
    cx_loss_config c = config(kind);
    c.effnum_beta = 0.9;
    c.grw_p = 0.7;
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++) {
            if (a == b)
                continue;
            int32_t y[2] = {a, b};
            double la = 0, lb = 0, v[8], pa[8], pb[8];
            for (int j = 0; j < C; j++)
                v[j] = z[j];
            la = naive_ce_row(v, a, C, pa);
            for (int j = 0; j < C; j++)
                v[j] = z[C + j];
            lb = naive_ce_row(v, b, C, pb);
            float *dz;
            double got = run(&c, counts, C, z, y, NULL, 2, C, 1.0f, 0, &dz);
            assert_rel(got, (w[a] * la + w[b] * lb) / (w[a] + w[b]), 1e-12, "weighted CE");
            double ka = w[a] / (w[a] + w[b]), kb = w[b] / (w[a] + w[b]);
            for (int j = 0; j < C; j++) {
                ck_assert_double_eq_tol(dz[j], ka * (pa[j] - (j == a)), 2e-7);
                ck_assert_double_eq_tol(dz[C + j], kb * (pb[j] - (j == b)), 2e-7);
            }
            free(dz);
        }
}

START_TEST(class_weights_and_their_normalisations)
{
    const int C = 4;
    const int64_t counts[4] = {100, 10, 1, 0}; /* as {100, 10, 1, 1}: N' = 112 */
    const double n[4] = {100, 10, 1, 1};
    double w[4], s = 0;
    /* CBW: N / (C n_c). */
    for (int c = 0; c < C; c++)
        w[c] = 112.0 / (4.0 * n[c]);
    ck_assert_double_eq_tol(w[0], 0.28, 1e-15);
    ck_assert_double_eq_tol(w[2], 28.0, 1e-13);
    check_two_sample_weights(CX_LOSS_CBW, counts, C, w);
    /* Effective number, beta 0.9: (1 - beta) / (1 - beta^n), normalised to sum C. */
    for (int c = 0; c < C; c++)
        s += (w[c] = 0.1 / (1.0 - pow(0.9, n[c])));
    for (int c = 0; c < C; c++)
        w[c] *= C / s;
    ck_assert_double_eq_tol(w[0] + w[1] + w[2] + w[3], 4.0, 1e-12);
    ck_assert_double_eq_tol(w[2] / w[0], (1.0 - pow(0.9, 100)) / 0.1, 1e-9);
    check_two_sample_weights(CX_LOSS_EFFNUM, counts, C, w);
    /* GRW, p = 0.7: C pi^-p / sum_k pi_k^-p. */
    s = 0;
    for (int c = 0; c < C; c++)
        s += (w[c] = pow(n[c] / 112.0, -0.7));
    for (int c = 0; c < C; c++)
        w[c] *= C / s;
    ck_assert_double_eq_tol(w[0] + w[1] + w[2] + w[3], 4.0, 1e-12);
    check_two_sample_weights(CX_LOSS_GRW, counts, C, w);

    /* The weights are normalised by the batch's sum of w_y: a batch of one class is plain CE. */
    const int B = 6;
    float *zz = gc_frand((size_t)B * C, 71, 2.0), *d1, *d2;
    int32_t y[6] = {2, 2, 2, 2, 2, 2};
    cx_loss_config ce = config(CX_LOSS_CE);
    double want = run(&ce, counts, C, zz, y, NULL, B, C, 1.0f, 0, &d1);
    cx_loss_kind kinds[3] = {CX_LOSS_CBW, CX_LOSS_EFFNUM, CX_LOSS_GRW};
    for (int k = 0; k < 3; k++) {
        cx_loss_config c = config(kinds[k]);
        assert_rel(run(&c, counts, C, zz, y, NULL, B, C, 1.0f, 0, &d2), want, 1e-14,
                   "one-class batch");
        for (int i = 0; i < B * C; i++)
            ck_assert_float_eq_tol(d2[i], d1[i], 1e-8f);
        free(d2);
    }
    free(d1), free(zz);
}
END_TEST

START_TEST(ldam_margins_for_counts_100_10_1)
{
    const int C = 3;
    const int64_t counts[3] = {100, 10, 1};
    /* m_c = 0.5 n_c^-1/4 / max_k n_k^-1/4 = 0.5 {0.316228, 0.562341, 1}. */
    const double m[3] = {0.5 * pow(100, -0.25), 0.5 * pow(10, -0.25), 0.5};
    ck_assert_double_eq_tol(m[0], 0.158113883008419, 1e-14);
    ck_assert_double_eq_tol(m[1], 0.281170662595175, 1e-14);
    const float scale = 30.0f;
    cx_loss_config c = config(CX_LOSS_LDAM);
    cx_loss *l = make(&c, counts, C, 1);
    float z[3] = {0.3f, -0.2f, 0.1f}, dz[3];
    for (int y = 0; y < C; y++) {
        int32_t t = y;
        double v[3] = {z[0], z[1], z[2]}, p[3];
        v[y] -= scale * m[y];
        double want = naive_ce_row(v, y, C, p);
        double got = cx_loss_compute(l, z, &t, NULL, 1, C, scale, 0, dz);
        assert_rel(got, want, 1e-13, "LDAM single sample");
        for (int j = 0; j < C; j++)
            ck_assert_double_eq_tol(dz[j], p[j] - (j == y), 1e-7);
    }
    /* A subset looks margins up by class id: column 0 is class 2 (margin 0.5). */
    int32_t cls[2] = {2, 0}, t = 0;
    float zs[2] = {0.1f, 0.3f};
    double v[2] = {(double)zs[0] - scale * 0.5, zs[1]};
    assert_rel(cx_loss_compute(l, zs, &t, cls, 1, 2, scale, 0, dz), naive_ce_row(v, 0, 2, NULL),
               1e-13, "LDAM margin through classes");
    /* The scale passed in is the one used. */
    v[0] = (double)zs[0] - 2.0 * 0.5;
    assert_rel(cx_loss_compute(l, zs, &t, cls, 1, 2, 2.0f, 0, dz), naive_ce_row(v, 0, 2, NULL),
               1e-13, "LDAM scale");
    cx_loss_free(l);
}
END_TEST

START_TEST(drw_switches_at_its_one_based_epoch)
{
    const int B = 10, C = 5;
    const int64_t counts[5] = {200, 50, 10, 2, 0};
    float *z = gc_frand((size_t)B * C, 80, 1.0), *d0 = gc_fbuf((size_t)B * C);
    float *d1 = gc_fbuf((size_t)B * C);
    int32_t *y = rand_targets(B, C, 81);
    cx_loss_kind kinds[3] = {CX_LOSS_CE, CX_LOSS_FOCAL, CX_LOSS_LDAM};
    for (int k = 0; k < 3; k++) {
        cx_loss_config plain = config(kinds[k]), drw = plain;
        drw.drw_epoch = 3;
        drw.effnum_beta = 0.99;
        cx_loss *lp = make(&plain, counts, C, B), *ld = make(&drw, counts, C, B);
        /* 0-based epochs 0 and 1 (1-based 1 and 2): unweighted. */
        for (int e = 0; e < 2; e++) {
            double a = cx_loss_compute(lp, z, y, NULL, B, C, 3.0f, e, d0);
            double b = cx_loss_compute(ld, z, y, NULL, B, C, 3.0f, e, d1);
            ck_assert(a == b);
            assert_same_bits(d0, d1, (size_t)B * C, "before DRW");
        }
        /* From 0-based epoch 2 on: the effective-number weights. */
        double w[5], s = 0, n[5] = {200, 50, 10, 2, 1};
        for (int c = 0; c < C; c++)
            s += (w[c] = 0.01 / (1.0 - pow(0.99, n[c])));
        for (int e = 2; e < 6; e += 3) {
            double a = cx_loss_compute(lp, z, y, NULL, B, C, 3.0f, e, d0);
            double b = cx_loss_compute(ld, z, y, NULL, B, C, 3.0f, e, d1);
            ck_assert_msg(fabs(a - b) > 1e-3, "kind %d epoch %d: DRW changed nothing",
                          (int)kinds[k], e);
            /* The weighted mean of the unweighted per-sample losses (batches of one). */
            double num = 0, den = 0;
            for (int i = 0; i < B; i++) {
                float row[5];
                int32_t t = y[i];
                double li = cx_loss_compute(lp, z + i * C, &t, NULL, 1, C, 3.0f, e, row);
                num += w[y[i]] * li;
                den += w[y[i]];
            }
            assert_rel(b, num / den, 1e-12, "DRW weighted mean");
        }
        /* drw_epoch 0: never, however late. */
        cx_loss_config never = plain;
        never.drw_epoch = 0;
        cx_loss *ln = make(&never, counts, C, B);
        double a = cx_loss_compute(lp, z, y, NULL, B, C, 3.0f, 999, d0);
        double b = cx_loss_compute(ln, z, y, NULL, B, C, 3.0f, 999, d1);
        ck_assert(a == b);
        cx_loss_free(lp), cx_loss_free(ld), cx_loss_free(ln);
    }
    free(z), free(d0), free(d1), free(y);
}
END_TEST

/* The LADE regulariser by hand, over the present classes only; logits (B, K) of classes cls. */
static double naive_lade_term(const float *z, const int32_t *y, const int32_t *cls, int B, int K,
                              const double *prior, int C)
{
    double L = 0.0;
    for (int k = 0; k < K; k++) {
        int c = cls ? cls[k] : k, nk = 0;
        double first = 0.0, mx = -INFINITY, s = 0.0;
        double a = -log(prior[c]) + log(1.0 / C);
        for (int i = 0; i < B; i++)
            if (y[i] == k) {
                nk++;
                first += z[i * K + k];
            }
        if (nk == 0)
            continue;
        first /= nk;
        for (int i = 0; i < B; i++)
            mx = fmax(mx, z[i * K + k] + a);
        for (int i = 0; i < B; i++)
            s += exp(z[i * K + k] + a - mx);
        double second = mx + log(s) - log((double)B);
        L -= prior[c] * (first - second - 0.1 * second * second);
    }
    return L;
}

START_TEST(lade_by_hand_and_on_a_subset)
{
    const int B = 7, C = 5, K = 3;
    const int64_t counts[5] = {60, 25, 9, 0, 4};
    const double n[5] = {60, 25, 9, 1, 4};
    double prior[5];
    for (int c = 0; c < C; c++)
        prior[c] = n[c] / 99.0;
    float *z = gc_frand((size_t)B * C, 90, 1.5), *dl, *db;
    int32_t y[7] = {0, 3, 3, 1, 0, 0, 3}; /* classes 2 and 4 absent */
    cx_loss_config lade = config(CX_LOSS_LADE), bs = config(CX_LOSS_BALANCED_SOFTMAX);
    lade.lade_lambda = 0.3;
    double v = run(&lade, counts, C, z, y, NULL, B, C, 1.0f, 0, &dl);
    double ce = run(&bs, counts, C, z, y, NULL, B, C, 1.0f, 0, &db);
    double term = naive_lade_term(z, y, NULL, B, C, prior, C);
    assert_rel(v, ce + 0.3 * term, 1e-12, "LADE by hand");
    ck_assert_msg(fabs(term) > 1e-3, "the regulariser is not exercised (%g)", term);
    /* Absent classes' columns get only the CE gradient. */
    for (int i = 0; i < B; i++) {
        ck_assert_float_eq_tol(dl[i * C + 2], db[i * C + 2], 1e-8f);
        ck_assert_float_eq_tol(dl[i * C + 4], db[i * C + 4], 1e-8f);
    }
    free(dl), free(db);

    /* A subset of classes {0, 1, 3} holding all present classes: the regulariser is the
     * full set's exactly (same logits in those columns), the CE part is over the subset. */
    const int32_t cls[3] = {0, 1, 3};
    float *zs = gc_fbuf((size_t)B * K);
    int32_t ys[7];
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < K; k++)
            zs[i * K + k] = z[i * C + cls[k]];
        ys[i] = y[i] == 3 ? 2 : y[i];
    }
    double vs = run(&lade, counts, C, zs, ys, cls, B, K, 1.0f, 0, &dl);
    double ces = run(&bs, counts, C, zs, ys, cls, B, K, 1.0f, 0, &db);
    assert_rel(vs - ces, v - ce, 1e-9, "LADE term on the subset vs all classes");
    assert_rel(vs, ces + 0.3 * naive_lade_term(zs, ys, cls, B, K, prior, C), 1e-12,
               "LADE on a subset by hand");
    free(dl), free(db), free(z), free(zs);
}
END_TEST

START_TEST(subset_of_all_classes_equals_no_subset)
{
    const int B = 9, C = 6;
    int32_t ident[6] = {0, 1, 2, 3, 4, 5};
    float *z = gc_frand((size_t)B * C, 95, 2.0), *d1, *d2;
    int32_t *y = rand_targets(B, C, 96);
    for (int k = CX_LOSS_CE; k <= CX_LOSS_LADE; k++) {
        cx_loss_config c = config((cx_loss_kind)k);
        double a = run(&c, gc_counts, C, z, y, NULL, B, C, 2.0f, 0, &d1);
        double b = run(&c, gc_counts, C, z, y, ident, B, C, 2.0f, 0, &d2);
        ck_assert_msg(a == b, "kind %d: %.17g vs %.17g", k, a, b);
        assert_same_bits(d1, d2, (size_t)B * C, "identity subset");
        free(d1), free(d2);
    }
    free(z), free(y);
}
END_TEST

START_TEST(zero_count_classes_count_as_one)
{
    const int B = 8, C = 4;
    const int64_t zero[4] = {50, 0, 7, 0}, one[4] = {50, 1, 7, 1};
    float *z = gc_frand((size_t)B * C, 97, 2.0), *d1, *d2;
    int32_t *y = rand_targets(B, C, 98);
    y[0] = 1;
    y[1] = 3;
    for (int k = CX_LOSS_CE; k <= CX_LOSS_LADE; k++) {
        cx_loss_config c = config((cx_loss_kind)k);
        double a = run(&c, zero, C, z, y, NULL, B, C, 5.0f, 0, &d1);
        double b = run(&c, one, C, z, y, NULL, B, C, 5.0f, 0, &d2);
        ck_assert_msg(isfinite(a) && a == b, "kind %d: %.17g vs %.17g", k, a, b);
        assert_same_bits(d1, d2, (size_t)B * C, "zero counts as one");
        free(d1), free(d2);
    }
    /* Every class empty: uniform prior, every weight equal. */
    const int64_t none[4] = {0, 0, 0, 0};
    cx_loss_config c = config(CX_LOSS_GRW), ce = config(CX_LOSS_CE);
    assert_rel(run(&c, none, C, z, y, NULL, B, C, 1.0f, 0, &d1),
               run(&ce, none, C, z, y, NULL, B, C, 1.0f, 0, &d2), 1e-14, "all classes empty");
    free(d1), free(d2), free(z), free(y);
}
END_TEST

START_TEST(log_prior_is_tau_log_pi)
{
    const int64_t counts[4] = {30, 10, 0, 9}; /* as {30, 10, 1, 9}: N' = 50 */
    cx_loss_config c = config(CX_LOSS_CE);
    c.la_tau = 0.5;
    cx_loss *l = make(&c, counts, 4, 2);
    const float *lp = cx_loss_log_prior(l);
    const double n[4] = {30, 10, 1, 9};
    for (int k = 0; k < 4; k++)
        ck_assert_float_eq_tol(lp[k], (float)(0.5 * log(n[k] / 50.0)), 1e-7f);
    cx_loss_free(l);
}
END_TEST

START_TEST(loss_bit_identical_on_one_and_two_threads)
{
    /* B K above the threading threshold, so the two-thread run really is parallel. */
    const int B = 1200, C = 300, K = 240;
    ck_assert_uint_ge((size_t)B * K, CX_OPS_PAR_ELEMS_DEAR);
    int64_t *counts = calloc(C, sizeof *counts);
    for (int c = 0; c < C; c++)
        counts[c] = (int64_t)(1000.0 * pow(0.98, c)) - 2; /* some zero counts at the tail */
    for (int c = 0; c < C; c++)
        if (counts[c] < 0)
            counts[c] = 0;
    int32_t *cls = ibuf(K);
    for (int k = 0; k < K; k++)
        cls[k] = (int32_t)(k * C / K);
    float *z = gc_frand((size_t)B * K, 99, 3.0);
    float *d1 = gc_fbuf((size_t)B * K), *d2 = gc_fbuf((size_t)B * K);
    int32_t *y = rand_targets(B, K, 100);
    int saved = cx_threads_get();
    for (int k = CX_LOSS_CE; k <= CX_LOSS_LADE; k++) {
        cx_loss_config c = config((cx_loss_kind)k);
        cx_loss *l = make(&c, counts, C, B);
        cx_threads_set(1);
        double a = cx_loss_compute(l, z, y, cls, B, K, 10.0f, 0, d1);
        cx_threads_set(2);
        double b = cx_loss_compute(l, z, y, cls, B, K, 10.0f, 0, d2);
        ck_assert_msg(a == b && isfinite(a), "kind %d: %.17g vs %.17g", k, a, b);
        assert_same_bits(d1, d2, (size_t)B * K, "threads");
        cx_loss_free(l);
    }
    cx_threads_set(saved);
    free(counts), free(cls), free(z), free(d1), free(d2), free(y);
}
END_TEST

static Suite *loss_suite(void)
{
    Suite *s = suite_create("loss");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, loss_create_refuses_bad_settings);
    tcase_add_test(tc, loss_calls_outside_the_contract_give_nan);
    tcase_add_test(tc, ce_rows_match_a_long_double_reference);
    tcase_add_test(tc, focal_gamma_zero_is_ce);
    tcase_add_test(tc, focal_is_stable_at_extreme_probabilities);
    tcase_add_test(tc, balanced_softmax_with_uniform_counts_is_ce);
    tcase_add_test(tc, logit_adjust_tau_one_is_balanced_softmax_tau_zero_is_ce);
    tcase_add_test(tc, class_weights_and_their_normalisations);
    tcase_add_test(tc, ldam_margins_for_counts_100_10_1);
    tcase_add_test(tc, drw_switches_at_its_one_based_epoch);
    tcase_add_test(tc, lade_by_hand_and_on_a_subset);
    tcase_add_test(tc, subset_of_all_classes_equals_no_subset);
    tcase_add_test(tc, zero_count_classes_count_as_one);
    tcase_add_test(tc, log_prior_is_tau_log_pi);
    suite_add_tcase(s, tc);

    tc = tcase_create("gradients");
    tcase_add_test(tc, gradient_ce);
    tcase_add_test(tc, gradient_focal);
    tcase_add_test(tc, gradient_balanced_softmax);
    tcase_add_test(tc, gradient_logit_adjust);
    tcase_add_test(tc, gradient_class_weighted);
    tcase_add_test(tc, gradient_ldam);
    tcase_add_test(tc, gradient_lade);
    suite_add_tcase(s, tc);

    tc = tcase_create("torch");
    tcase_add_test(tc, reference_ce_and_focal);
    tcase_add_test(tc, reference_prior_offsets);
    tcase_add_test(tc, reference_class_weights);
    tcase_add_test(tc, reference_ldam_and_drw);
    tcase_add_test(tc, reference_lade);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_add_test(tc, loss_bit_identical_on_one_and_two_threads);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(loss_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
