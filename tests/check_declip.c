/* DeCLIP's losses (lib/objective/declip.h): the nearest-neighbour search and the FIFO queue
 * against hand-worked cases, the NNS loss against a naive reference and finite differences,
 * the whole weighted loss (multi-view and NNS) against finite differences in the towers'
 * outputs and theta, and against PyTorch (tests/fixtures/declip.fx,
 * scripts/make_fixtures_declip.py). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/simsiam.h"
#include "lib/objective/declip.h"
#include "lib/base/rng.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

static void normalize_rows(float *x, int n, int D)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < D; j++)
            s += (double)x[i * D + j] * x[i * D + j];
        for (int j = 0; j < D; j++)
            x[i * D + j] = (float)(x[i * D + j] / sqrt(s));
    }
}

START_TEST(nearest_and_queue)
{
    /* Queue rows: e0, e1, -e0, (e0 + e1)/sqrt2 in 2-D. */
    float queue[4 * 2] = {1, 0, 0, 1, -1, 0, 0.70710678f, 0.70710678f};
    float q[3 * 2] = {0.9f, 0.1f, -0.2f, -0.9f, 0.5f, 0.6f};
    int32_t nn[3];
    float sims[3 * 4];
    cx_declip_nearest(nn, sims, q, 3, queue, 4, 2);
    ck_assert_int_eq(nn[0], 0);
    ck_assert_int_eq(nn[1], 2);
    ck_assert_int_eq(nn[2], 3);
    /* Only the filled rows count: with 2, row 3 is not seen. */
    cx_declip_nearest(nn, sims, q, 3, queue, 2, 2);
    ck_assert_int_eq(nn[2], 1);
    ck_assert_int_eq(nn[1], 0); /* -0.2 beats -0.9 */
    /* FIFO: 3 rows into a queue of 4 at 2, wrapping; then 5 rows keep the last 4. */
    float ring[4 * 2] = {0};
    int pos = 2, filled = 2;
    float x[5 * 2] = {1, 1, 2, 2, 3, 3, 4, 4, 5, 5};
    cx_declip_enqueue(ring, 4, &pos, &filled, x, 3, 2);
    ck_assert_int_eq(pos, 1);
    ck_assert_int_eq(filled, 4);
    ck_assert(ring[4] == 1 && ring[6] == 2 && ring[0] == 3 && ring[2] == 0);
    pos = 0;
    filled = 0;
    cx_declip_enqueue(ring, 4, &pos, &filled, x, 5, 2);
    ck_assert_int_eq(pos, 0);
    ck_assert_int_eq(filled, 4);
    ck_assert(ring[0] == 2 && ring[2] == 3 && ring[4] == 4 && ring[6] == 5);
}
END_TEST

/* ---- the NNS loss -------------------------------------------------------------------------- */

enum { NB = 5, ND = 4 };

typedef struct {
    float img[NB * ND], nn[NB * ND], theta;
    float logits[NB * NB], prob[NB * NB];
    float dloss;
} nns_ctx;

static double nns_f(void *ctx)
{
    nns_ctx *c = ctx;
    return c->dloss * cx_declip_nns_loss(NULL, NULL, c->logits, c->prob, c->img, c->nn,
                                         expf(c->theta), NB, ND, 1.0f);
}

START_TEST(nns_loss_naive_and_finite_differences)
{
    nns_ctx c;
    gc_fill_normal(c.img, NB * ND, 3, 0.7);
    gc_fill_normal(c.nn, NB * ND, 4, 1.0);
    normalize_rows(c.nn, NB, ND);
    c.theta = 1.1f;
    c.dloss = 0.6f;
    float scale = expf(c.theta);
    /* Naive: mean over rows of logsumexp - the diagonal. */
    double want = 0;
    for (int i = 0; i < NB; i++) {
        double z[NB], mx = -INFINITY, s = 0;
        for (int j = 0; j < NB; j++) {
            z[j] = 0;
            for (int k = 0; k < ND; k++)
                z[j] += (double)c.img[i * ND + k] * c.nn[j * ND + k];
            z[j] *= scale;
            mx = z[j] > mx ? z[j] : mx;
        }
        for (int j = 0; j < NB; j++)
            s += exp(z[j] - mx);
        want += mx + log(s) - z[i];
    }
    want /= NB;
    float dimg[NB * ND], dtheta = 0;
    double got = cx_declip_nns_loss(dimg, &dtheta, c.logits, c.prob, c.img, c.nn, scale, NB, ND,
                                    c.dloss);
    ck_assert_msg(fabs(got - want) < 1e-5, "nns loss %.9g, naive %.9g", got, want);
    gc_var vars[] = {{"img", c.img, dimg, NB * ND}, {"theta", &c.theta, &dtheta, 1}};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    gc_report rep;
    ck_assert_msg(gc_check(nns_f, NULL, &c, vars, 2, &o, &rep) == 0, "%s", rep.msg);
}
END_TEST

/* ---- the whole loss ------------------------------------------------------------------------ */

enum { LB = 4, LD = 5, LQ = 7 };

typedef struct {
    cx_declip_work w;
    float f[2 * LB * LD], g[2 * LB * LD], theta;
    float queue[LQ * LD];
    int filled;
    double w_mv, w_nns;
} loss_ctx;

static double loss_f(void *ctx)
{
    loss_ctx *c = ctx;
    return cx_declip_loss(&c->w, NULL, NULL, NULL, c->f, c->g, expf(c->theta), c->queue,
                          c->filled, LB, LD, c->w_mv, c->w_nns);
}

static void loss_case(int filled, double w_mv, double w_nns, uint64_t seed)
{
    loss_ctx c;
    ck_assert_int_eq(cx_declip_work_alloc(&c.w, LB, LD, LQ), 0);
    gc_fill_normal(c.f, 2 * LB * LD, seed, 1.0);
    gc_fill_normal(c.g, 2 * LB * LD, seed + 1, 1.0);
    gc_fill_normal(c.queue, LQ * LD, seed + 2, 1.0);
    normalize_rows(c.queue, LQ, LD);
    c.theta = 0.9f;
    c.filled = filled;
    c.w_mv = w_mv;
    c.w_nns = w_nns;
    float df[2 * LB * LD], dg[2 * LB * LD], dtheta = 0;
    double l = cx_declip_loss(&c.w, df, dg, &dtheta, c.f, c.g, expf(c.theta), c.queue, filled,
                              LB, LD, w_mv, w_nns);
    ck_assert(isfinite(l) && l > 0);
    gc_var vars[] = {{"f", c.f, df, 2 * LB * LD}, {"g", c.g, dg, 2 * LB * LD},
                     {"theta", &c.theta, &dtheta, 1}};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    gc_report rep;
    ck_assert_msg(gc_check(loss_f, NULL, &c, vars, 3, &o, &rep) == 0, "filled %d mv %g nns %g: %s",
                  filled, w_mv, w_nns, rep.msg);
    cx_declip_work_free(&c.w);
}

START_TEST(loss_finite_differences)
{
    loss_case(LQ, 0.4, 0.2, 10);  /* both terms */
    loss_case(0, 1.0, 0.2, 20);   /* an empty queue: the multi-view term alone */
    loss_case(3, 0.0, 0.8, 30);   /* NNS alone: the captions get no gradient */
}
END_TEST

/* The weights scale their terms: mv alone plus nns alone is both. */
START_TEST(loss_is_the_weighted_sum)
{
    loss_ctx c;
    ck_assert_int_eq(cx_declip_work_alloc(&c.w, LB, LD, LQ), 0);
    gc_fill_normal(c.f, 2 * LB * LD, 5, 1.0);
    gc_fill_normal(c.g, 2 * LB * LD, 6, 1.0);
    gc_fill_normal(c.queue, LQ * LD, 7, 1.0);
    normalize_rows(c.queue, LQ, LD);
    float s = 2.0f;
    double mv = cx_declip_loss(&c.w, NULL, NULL, NULL, c.f, c.g, s, c.queue, LQ, LB, LD, 1, 0);
    double nn = cx_declip_loss(&c.w, NULL, NULL, NULL, c.f, c.g, s, c.queue, LQ, LB, LD, 0, 1);
    double both = cx_declip_loss(&c.w, NULL, NULL, NULL, c.f, c.g, s, c.queue, LQ, LB, LD, 0.4,
                                 0.2);
    ck_assert(mv > 0 && nn > 0);
    ck_assert_msg(fabs(both - (0.4 * mv + 0.2 * nn)) < 1e-6, "%.9g vs %.9g", both,
                  0.4 * mv + 0.2 * nn);
    cx_declip_work_free(&c.w);
}
END_TEST

/* ---- SimSiam (ISS) ------------------------------------------------------------------------- */

enum { SB = 5, SE = 8 };

typedef struct {
    cx_simsiam s;
    cx_params p;
    float f[2 * SB * SE];
    float z[2 * SB * SE]; /* the stop-gradient targets, fixed */
} ss_ctx;

static double ss_f(void *ctx)
{
    ss_ctx *c = ctx;
    return 0.7 * cx_simsiam_loss_to(&c->s, &c->p, c->f, NULL, SB, 0.7f, c->z);
}

/* The gradient of the stop-gradient loss (targets z1, z2 constants) in every parameter and in
 * the features against finite differences of the loss with those targets held fixed; without
 * the stop-gradient (targets moving with the inputs) the finite differences differ. */
START_TEST(simsiam_stop_gradient_finite_differences)
{
    ss_ctx c;
    cx_err err;
    cx_params_init(&c.p);
    ck_assert_int_eq(cx_simsiam_declare(&c.s, &c.p, "iss", SE, &err), CX_OK);
    ck_assert_int_eq(cx_params_alloc(&c.p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_simsiam_alloc(&c.s, SB, &err), CX_OK);
    ck_assert_int_eq(c.s.P, 2);
    cx_rng rng;
    cx_rng_seed(&rng, 4, 1);
    cx_simsiam_init_params(&c.s, &c.p, &rng);
    /* Gains and shifts away from 1 and 0. */
    for (int k = 0; k < CX_SIMSIAM_BNS; k++) {
        gc_fill_normal(cx_param_value(&c.p, c.s.beta[k]), (size_t)c.s.out[k], 40 + k, 0.3);
        float *g = cx_param_value(&c.p, c.s.gamma[k]);
        for (int i = 0; i < c.s.out[k]; i++)
            g[i] = 1.0f + 0.1f * (float)(i % 3);
    }
    /* (Inputs whose ReLUs after batch norm sit clear of 0 within h: a column's perturbation
     * moves every row's normalised value, so a kink is likelier than for one row.) */
    gc_fill_normal(c.f, 2 * SB * SE, 13, 1.0);
    float df[2 * SB * SE] = {0};
    cx_params_zero_grad(&c.p);
    double l = cx_simsiam_loss(&c.s, &c.p, c.f, df, SB, 0.7f);
    ck_assert(l > -0.71 && l < 0.71);
    float *grad = malloc(sizeof(float) * c.p.total);
    memcpy(grad, c.p.grad, sizeof(float) * c.p.total);
    /* The targets: z1 and z2 of this forward. */
    memcpy(c.z, c.s.act[0][2], sizeof(float) * SB * SE);
    memcpy(c.z + SB * SE, c.s.act[1][2], sizeof(float) * SB * SE);
    ck_assert(fabs(ss_f(&c) - 0.7 * l) < 1e-6);
    gc_var vars[32];
    int n = 0;
    for (int t = 0; t < c.p.count; t++) {
        if (c.p.info[t].flags & CX_PARAM_FROZEN)
            continue;
        vars[n++] = (gc_var){c.p.info[t].name, cx_param_value(&c.p, t), grad + c.p.info[t].offset,
                             c.p.info[t].size};
    }
    vars[n++] = (gc_var){"f", c.f, df, 2 * SB * SE};
    gc_opts o = gc_opts_default();
    o.h = 3e-4;
    o.atol = 2e-4;
    gc_report rep;
    ck_assert_msg(gc_check(ss_f, NULL, &c, vars, n, &o, &rep) == 0, "%s", rep.msg);
    /* The running statistics moved (train mode) and take no gradient. */
    ck_assert(cx_param_value(&c.p, c.s.rvar[0])[0] != 1.0f);
    free(grad);
    cx_simsiam_free(&c.s);
    cx_params_free(&c.p);
}
END_TEST

/* ---- PyTorch ------------------------------------------------------------------------------- */

static void fixture_case(const fx_file *f, const char *p)
{
    cx_err err;
    int32_t dims[3];
    ck_assert_msg(fx_to_int32(fx_need(f, p, "dims", 3), dims, &err) == CX_OK, "%s", err.msg);
    int B = dims[0], D = dims[1], filled = dims[2];
    const fx_tensor *w = fx_need(f, p, "weights", 2);
    size_t n = 2 * (size_t)B * D, nq = (size_t)(filled > 0 ? filled : 1) * D;
    float *fv = gc_fbuf(n), *gv = gc_fbuf(n), *queue = gc_fbuf(nq);
    float *df = gc_fbuf(n), *dg = gc_fbuf(n), theta, dtheta = 0;
    fx_to_float(fx_need(f, p, "f", n), fv);
    fx_to_float(fx_need(f, p, "g", n), gv);
    fx_to_float(fx_need(f, p, "theta", 1), &theta);
    fx_to_float(fx_need(f, p, "queue", nq), queue);
    cx_declip_work work;
    ck_assert_int_eq(cx_declip_work_alloc(&work, B, D, filled), 0);
    double l = cx_declip_loss(&work, df, dg, &dtheta, fv, gv, expf(theta), queue, filled, B, D,
                              w->v[0], w->v[1]);
    double want = fx_need(f, p, "loss", 1)->v[0];
    ck_assert_msg(fabs(l - want) <= 1e-5 * fabs(want), "%s: loss %.9g, torch %.9g", p, l, want);
    fx_assert_close(df, f, p, "df", n, 1e-5);
    fx_assert_close(dg, f, p, "dg", n, 1e-5);
    fx_assert_close(&dtheta, f, p, "dtheta", 1, 1e-5);
    cx_declip_work_free(&work);
    free(fv); free(gv); free(queue); free(df); free(dg);
}

/* SimSiam against torch: the fixture's parameters loaded by name (iss_fc0_weight is the
 * tensor iss.fc0.weight), the loss, d features and every parameter's gradient. */
static void simsiam_fixture_case(const fx_file *f)
{
    cx_err err;
    int32_t dims[2];
    ck_assert_msg(fx_to_int32(fx_need(f, "iss", "dims", 2), dims, &err) == CX_OK, "%s", err.msg);
    int B = dims[0], E = dims[1];
    cx_simsiam s;
    cx_params p;
    cx_params_init(&p);
    ck_assert_int_eq(cx_simsiam_declare(&s, &p, "iss", E, &err), CX_OK);
    ck_assert_int_eq(cx_params_alloc(&p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_simsiam_alloc(&s, B, &err), CX_OK);
    cx_rng rng;
    cx_rng_seed(&rng, 1, 1);
    cx_simsiam_init_params(&s, &p, &rng); /* running statistics 0 and 1 */
    char name[CX_PARAM_NAME_MAX];
    for (int t = 0; t < p.count; t++) {
        if (p.info[t].flags & CX_PARAM_FROZEN)
            continue;
        snprintf(name, sizeof name, "%s", p.info[t].name + 4); /* after "iss." */
        for (char *c = name; *c; c++)
            *c = *c == '.' ? '_' : *c;
        fx_to_float(fx_need(f, "iss", name, p.info[t].size), cx_param_value(&p, t));
    }
    size_t n = 2 * (size_t)B * E;
    float *fv = gc_fbuf(n), *df = gc_fbuf(n);
    memset(df, 0, sizeof(float) * n);
    fx_to_float(fx_need(f, "iss", "f", n), fv);
    cx_params_zero_grad(&p);
    double l = cx_simsiam_loss(&s, &p, fv, df, B, 1.0f);
    double want = fx_need(f, "iss", "loss", 1)->v[0];
    ck_assert_msg(fabs(l - want) <= 1e-5 * fabs(want), "iss: loss %.9g, torch %.9g", l, want);
    fx_assert_close(df, f, "iss", "df", n, 1e-5);
    for (int t = 0; t < p.count; t++) {
        if (p.info[t].flags & CX_PARAM_FROZEN)
            continue;
        name[0] = 'd';
        snprintf(name + 1, sizeof name - 1, "%s", p.info[t].name + 4);
        for (char *c = name; *c; c++)
            *c = *c == '.' ? '_' : *c;
        fx_assert_close(cx_param_grad(&p, t), f, "iss", name, p.info[t].size, 1e-5);
    }
    free(fv);
    free(df);
    cx_simsiam_free(&s);
    cx_params_free(&p);
}

START_TEST(pytorch_fixture)
{
    fx_file f;
    fx_load_named(&f, "declip.fx");
    fixture_case(&f, "both");
    fixture_case(&f, "mv");
    fixture_case(&f, "nns");
    simsiam_fixture_case(&f);
    fx_free(&f);
}
END_TEST

static Suite *declip_suite(void)
{
    Suite *s = suite_create("declip");
    TCase *tc = tcase_create("queue");
    tcase_add_test(tc, nearest_and_queue);
    suite_add_tcase(s, tc);
    tc = tcase_create("loss");
    tcase_add_test(tc, nns_loss_naive_and_finite_differences);
    tcase_add_test(tc, loss_finite_differences);
    tcase_add_test(tc, loss_is_the_weighted_sum);
    tcase_add_test(tc, simsiam_stop_gradient_finite_differences);
    suite_add_tcase(s, tc);
    tc = tcase_create("pytorch");
    tcase_add_test(tc, pytorch_fixture);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(declip_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
