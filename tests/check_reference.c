/* Ops against PyTorch: the fixtures under tests/fixtures/ (scripts/make_fixtures.py, torch
 * autograd in float64) for softmax CE, InfoNCE after F.normalize, LayerNorm, GELU, the
 * embedding bag and linear; and the fixture reader's refusal of malformed files. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops.h"
#include "tests/fixture.h"

/* Measured worst errors are about 3e-7 of the scale (float inputs, float32 arithmetic).
 * Loss: relative; gradients and outputs: |got - want| <= GRAD_TOL * max(1, max |want|). */
#define LOSS_RTOL 1e-6
#define GRAD_TOL 2e-6

/* A tensor as a fresh float array (caller frees); NULL when absent and optional. */
static float *floats(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    const fx_tensor *t = fx_need(f, prefix, name, n);
    float *p = malloc(sizeof *p * (t->n ? t->n : 1));
    ck_assert_ptr_nonnull(p);
    fx_to_float(t, p);
    return p;
}

static int32_t *ints(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    const fx_tensor *t = fx_need(f, prefix, name, n);
    int32_t *p = malloc(sizeof *p * (t->n ? t->n : 1));
    ck_assert_ptr_nonnull(p);
    cx_err err = {0};
    ck_assert_msg(fx_to_int32(t, p, &err) == CX_OK, "%s", err.msg);
    return p;
}

static int64_t dim(const fx_file *f, const char *prefix, const char *name, int d)
{
    const fx_tensor *t = fx_need(f, prefix, name, (size_t)-1);
    ck_assert_int_gt(t->ndim, d);
    return t->dims[d];
}

static void assert_loss(double got, const fx_file *f, const char *prefix)
{
    double want = fx_need(f, prefix, "loss", 1)->v[0];
    ck_assert_msg(fabs(got - want) <= LOSS_RTOL * fabs(want), "%s loss: got %.12g, torch %.12g",
                  prefix, got, want);
}

/* ---- softmax cross-entropy ---------------------------------------------------------------- */

static void check_ce_case(const fx_file *f, const char *prefix)
{
    int B = (int)dim(f, prefix, "logits", 0), C = (int)dim(f, prefix, "logits", 1);
    size_t n = (size_t)B * C;
    float *z = floats(f, prefix, "logits", n);
    int32_t *y = ints(f, prefix, "targets", B);
    char full[FX_NAME_MAX * 2];
    snprintf(full, sizeof full, "%s_weights", prefix);
    float *w = fx_get(f, full) ? floats(f, prefix, "weights", B) : NULL;
    snprintf(full, sizeof full, "%s_offset", prefix);
    float *off = fx_get(f, full) ? floats(f, prefix, "offset", C) : NULL;
    float *p = malloc(sizeof *p * n), *dz = malloc(sizeof *dz * n);
    double loss = cx_softmax_ce_forward(p, z, y, w, off, B, C);
    assert_loss(loss, f, prefix);
    cx_softmax_ce_backward(dz, p, y, w, B, C, 1.0f);
    fx_assert_close(dz, f, prefix, "dlogits", n, GRAD_TOL);
    free(z), free(y), free(w), free(off), free(p), free(dz);
}

START_TEST(reference_softmax_ce_plain_and_large)
{
    fx_file f;
    fx_load_named(&f, "softmax_ce.fx");
    check_ce_case(&f, "plain");
    check_ce_case(&f, "large");
    fx_free(&f);
}
END_TEST

START_TEST(reference_softmax_ce_weights)
{
    fx_file f;
    fx_load_named(&f, "softmax_ce.fx");
    check_ce_case(&f, "weighted"); /* per-sample weights, two of them zero */
    check_ce_case(&f, "classw");   /* F.cross_entropy(weight=) normalisation */
    fx_free(&f);
}
END_TEST

START_TEST(reference_softmax_ce_balanced_offsets)
{
    fx_file f;
    fx_load_named(&f, "softmax_ce.fx");
    check_ce_case(&f, "balanced");
    check_ce_case(&f, "balanced_weighted");
    fx_free(&f);
}
END_TEST

/* ---- InfoNCE after L2 normalisation ------------------------------------------------------- */

static void check_infonce_case(const fx_file *f, const char *prefix)
{
    int B = (int)dim(f, prefix, "img", 0), D = (int)dim(f, prefix, "img", 1);
    size_t n = (size_t)B * D, bb = (size_t)B * B;
    float *img = floats(f, prefix, "img", n), *txt = floats(f, prefix, "txt", n);
    float theta = (float)fx_need(f, prefix, "theta", 1)->v[0];
    float *fi = malloc(sizeof *fi * n), *ft = malloc(sizeof *ft * n);
    float *ni = malloc(sizeof *ni * B), *nt = malloc(sizeof *nt * B);
    float *lg = malloc(sizeof *lg * bb), *pr = malloc(sizeof *pr * bb), *pc = malloc(sizeof *pc * bb);
    float *sc = malloc(sizeof *sc * bb), *dfi = malloc(sizeof *dfi * n), *dft = malloc(sizeof *dft * n);
    float *di = malloc(sizeof *di * n), *dt = malloc(sizeof *dt * n);
    float scale = expf(theta), dtheta = 0.0f;

    cx_l2norm_forward(fi, ni, img, B, D, 1e-12f);
    cx_l2norm_forward(ft, nt, txt, B, D, 1e-12f);
    double loss = cx_infonce_forward(lg, pr, pc, fi, ft, scale, B, D);
    assert_loss(loss, f, prefix);
    fx_assert_close(lg, f, prefix, "logits", bb, GRAD_TOL);
    cx_infonce_backward(dfi, dft, &dtheta, sc, pr, pc, lg, fi, ft, scale, B, D, 1.0f);
    cx_l2norm_backward(di, dfi, fi, ni, B, D, 1e-12f);
    cx_l2norm_backward(dt, dft, ft, nt, B, D, 1e-12f);
    fx_assert_close(di, f, prefix, "dimg", n, GRAD_TOL);
    fx_assert_close(dt, f, prefix, "dtxt", n, GRAD_TOL);
    fx_assert_close(&dtheta, f, prefix, "dtheta", 1, GRAD_TOL);
    free(img), free(txt), free(fi), free(ft), free(ni), free(nt), free(lg), free(pr), free(pc);
    free(sc), free(dfi), free(dft), free(di), free(dt);
}

START_TEST(reference_infonce_after_normalize)
{
    fx_file f;
    fx_load_named(&f, "infonce.fx");
    check_infonce_case(&f, "b3_d8");
    check_infonce_case(&f, "b17_d8");
    check_infonce_case(&f, "b17_d5");
    fx_free(&f);
}
END_TEST

/* ---- LayerNorm, GELU, embedding bag, linear ----------------------------------------------- */

START_TEST(reference_layernorm)
{
    fx_file f;
    fx_load_named(&f, "layernorm.fx");
    const char *cases[] = {"b3_d17", "b17_d64"};
    for (int c = 0; c < 2; c++) {
        const char *pf = cases[c];
        int B = (int)dim(&f, pf, "in", 0), D = (int)dim(&f, pf, "in", 1);
        size_t n = (size_t)B * D;
        float *in = floats(&f, pf, "in", n), *g = floats(&f, pf, "gamma", D);
        float *b = floats(&f, pf, "beta", D), *dout = floats(&f, pf, "dout", n);
        float eps = (float)fx_need(&f, pf, "eps", 1)->v[0];
        float *out = malloc(sizeof *out * n), *din = malloc(sizeof *din * n);
        float *m = malloc(sizeof *m * B), *r = malloc(sizeof *r * B);
        float *dg = calloc(D, sizeof *dg), *db = calloc(D, sizeof *db);
        cx_layernorm_forward(out, m, r, in, g, b, B, D, eps);
        fx_assert_close(out, &f, pf, "out", n, GRAD_TOL);
        cx_layernorm_backward(din, dg, db, dout, in, m, r, g, B, D);
        fx_assert_close(din, &f, pf, "din", n, GRAD_TOL);
        fx_assert_close(dg, &f, pf, "dgamma", D, GRAD_TOL);
        fx_assert_close(db, &f, pf, "dbeta", D, GRAD_TOL);
        free(in), free(g), free(b), free(dout), free(out), free(din), free(m), free(r), free(dg),
            free(db);
    }
    fx_free(&f);
}
END_TEST

START_TEST(reference_gelu)
{
    fx_file f;
    fx_load_named(&f, "gelu.fx");
    size_t n = fx_need(&f, "", "x", (size_t)-1)->n;
    float *x = floats(&f, "", "x", n), *dout = floats(&f, "", "g_dout", n);
    float *y = malloc(sizeof *y * n), *din = malloc(sizeof *din * n);
    cx_gelu_forward(y, x, n);
    cx_gelu_backward(din, dout, x, n);
    fx_assert_close(y, &f, "", "out", n, GRAD_TOL);
    fx_assert_close(din, &f, "", "din", n, GRAD_TOL);
    free(x), free(dout), free(y), free(din);
    fx_free(&f);
}
END_TEST

START_TEST(reference_embag_mean_padding)
{
    fx_file f;
    fx_load_named(&f, "embag.fx");
    int B = (int)dim(&f, "", "tokens", 0), T = (int)dim(&f, "", "tokens", 1);
    int V = (int)dim(&f, "", "table", 0), D = (int)dim(&f, "", "table", 1);
    int32_t *pad = ints(&f, "", "pad", 1), *tok = ints(&f, "", "tokens", (size_t)B * T);
    float *table = floats(&f, "", "table", (size_t)V * D);
    float *dout = floats(&f, "", "e_dout", (size_t)B * D);
    float *out = malloc(sizeof *out * B * D), *dtable = calloc((size_t)V * D, sizeof *dtable);
    cx_embag_mean_forward(out, tok, table, B, T, D, *pad);
    fx_assert_close(out, &f, "", "out", (size_t)B * D, GRAD_TOL);
    cx_embag_mean_backward(dtable, dout, tok, B, T, D, *pad);
    fx_assert_close(dtable, &f, "", "dtable", (size_t)V * D, GRAD_TOL);
    free(pad), free(tok), free(table), free(dout), free(out), free(dtable);
    fx_free(&f);
}
END_TEST

START_TEST(reference_linear)
{
    fx_file f;
    fx_load_named(&f, "linear.fx");
    int B = (int)dim(&f, "", "in", 0), K = (int)dim(&f, "", "in", 1), N = (int)dim(&f, "", "w", 0);
    float *in = floats(&f, "", "in", (size_t)B * K), *w = floats(&f, "", "w", (size_t)N * K);
    float *b = floats(&f, "", "b", N), *dout = floats(&f, "", "l_dout", (size_t)B * N);
    float *out = malloc(sizeof *out * B * N), *din = malloc(sizeof *din * B * K);
    float *dw = calloc((size_t)N * K, sizeof *dw), *db = calloc(N, sizeof *db);
    cx_linear_forward(out, in, w, b, B, K, N);
    fx_assert_close(out, &f, "", "out", (size_t)B * N, GRAD_TOL);
    cx_linear_backward(din, dw, db, dout, in, w, B, K, N);
    fx_assert_close(din, &f, "", "din", (size_t)B * K, GRAD_TOL);
    fx_assert_close(dw, &f, "", "dw", (size_t)N * K, GRAD_TOL);
    fx_assert_close(db, &f, "", "db", N, GRAD_TOL);
    free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
    fx_free(&f);
}
END_TEST

/* ---- the fixture reader ------------------------------------------------------------------- */

START_TEST(fixture_parses_comments_scalars_and_shapes)
{
    const char *text = "# a comment\n\nclipx-fixture 1\n"
                       "tensor s 0\n-2.5 # trailing comment\n"
                       "tensor m 2 2 3\n1 2 3\n4 5e-1 -6\n"
                       "tensor empty 2 0 4\n"
                       "tensor ids 1 3\n0 7 -1\n"
                       "end\n# done\n";
    fx_file f;
    cx_err err = {0};
    ck_assert_msg(fx_parse(&f, text, strlen(text), "t.fx", &err) == CX_OK, "%s", err.msg);
    ck_assert_int_eq(f.count, 4);
    const fx_tensor *s = fx_get(&f, "s"), *m = fx_get(&f, "m"), *e = fx_get(&f, "empty");
    ck_assert_int_eq(s->ndim, 0);
    ck_assert_uint_eq(s->n, 1);
    ck_assert_double_eq(s->v[0], -2.5);
    ck_assert_int_eq(m->ndim, 2);
    ck_assert_int_eq(m->dims[0], 2);
    ck_assert_int_eq(m->dims[1], 3);
    ck_assert_double_eq(m->v[4], 0.5);
    ck_assert_double_eq(m->v[5], -6.0);
    ck_assert_uint_eq(e->n, 0);
    int32_t ids[3];
    ck_assert_int_eq(fx_to_int32(fx_get(&f, "ids"), ids, &err), CX_OK);
    ck_assert_int_eq(ids[1], 7);
    ck_assert_int_eq(ids[2], -1);
    ck_assert_int_eq(fx_to_int32(m, (int32_t[6]){0}, &err), CX_EDATA); /* 0.5 */
    ck_assert_msg(strstr(err.msg, "'m' value 5") != NULL, "%s", err.msg);
    ck_assert_ptr_null(fx_get(&f, "missing"));
    fx_free(&f);
}
END_TEST

/* text must be refused with a message holding want. */
static void refuse(const char *text, const char *want)
{
    fx_file f;
    cx_err err = {0};
    cx_status st = fx_parse(&f, text, strlen(text), "bad.fx", &err);
    ck_assert_msg(st == CX_EDATA, "accepted: %s", text);
    ck_assert_msg(strncmp(err.msg, "bad.fx: line ", 13) == 0, "no position: %s", err.msg);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
    ck_assert_int_eq(f.count, 0);
    ck_assert_ptr_null(f.t);
}

START_TEST(fixture_refuses_bad_headers)
{
    refuse("", "not a clipx fixture");
    refuse("tensor a 0\n1\nend\n", "not a clipx fixture");
    refuse("clipx-fixture 2\nend\n", "version 2");
    refuse("clipx-fixture x\nend\n", "non-negative integer");
    refuse("clipx-fixture 1\ntensor a 5 1 1 1 1 1\n1\nend\n", "exceeds 4");
    refuse("clipx-fixture 1\ntensor a -1\nend\n", "non-negative integer");
    refuse("clipx-fixture 1\ntensor a 1 3x\n1 2 3\nend\n", "non-negative integer");
    refuse("clipx-fixture 1\ntensor bad-name 0\n1\nend\n", "tensor name 'bad-name'");
    refuse("clipx-fixture 1\ntensor a 0\n1\ntensor a 0\n2\nend\n", "'a' defined twice");
    refuse("clipx-fixture 1\ntensr a 0\n1\nend\n", "expected 'tensor' or 'end'");
}
END_TEST

START_TEST(fixture_refuses_bad_values_and_truncation)
{
    refuse("clipx-fixture 1\ntensor a 1 3\n1 2\n", "has 2 of its 3 values");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 2\n", "no 'end'");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 2 3\nend\n", "more values than the header");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 zwei\nend\n", "'zwei' is not a number");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 2.5.1\nend\n", "is not a number");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 nan\nend\n", "is not finite");
    refuse("clipx-fixture 1\ntensor a 1 2\n1 1e999\nend\n", "is not finite");
    refuse("clipx-fixture 1\nend\nextra\n", "after 'end'");
    /* The error names the line where the problem is. */
    refuse("clipx-fixture 1\ntensor a 2 2 2\n1 2\n3 x\nend\n", "line 4:");
}
END_TEST

START_TEST(fixture_refuses_oversized_claims_before_allocating)
{
    /* 2^31-1 x 2^31-1 x 4 values cannot be in a 60-byte file: refused without a 32 EiB malloc. */
    refuse("clipx-fixture 1\ntensor a 3 2147483647 2147483647 4\n1\nend\n", "claims");
    refuse("clipx-fixture 1\ntensor a 2 1000 1000\n1 2 3\nend\n", "holds at most");
    refuse("clipx-fixture 1\ntensor a 1 99999999999\n1\nend\n", "exceeds");
    fx_file f;
    cx_err err = {0};
    ck_assert_int_eq(fx_load(&f, "/nonexistent/clipx/x.fx", &err), CX_EIO);
    ck_assert_msg(strstr(err.msg, "/nonexistent/clipx/x.fx") != NULL, "%s", err.msg);
}
END_TEST

static Suite *reference_suite(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("torch");
    tcase_add_test(tc, reference_softmax_ce_plain_and_large);
    tcase_add_test(tc, reference_softmax_ce_weights);
    tcase_add_test(tc, reference_softmax_ce_balanced_offsets);
    tcase_add_test(tc, reference_infonce_after_normalize);
    tcase_add_test(tc, reference_layernorm);
    tcase_add_test(tc, reference_gelu);
    tcase_add_test(tc, reference_embag_mean_padding);
    tcase_add_test(tc, reference_linear);
    suite_add_tcase(s, tc);

    tc = tcase_create("fixture_reader");
    tcase_add_test(tc, fixture_parses_comments_scalars_and_shapes);
    tcase_add_test(tc, fixture_refuses_bad_headers);
    tcase_add_test(tc, fixture_refuses_bad_values_and_truncation);
    tcase_add_test(tc, fixture_refuses_oversized_claims_before_allocating);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reference_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
