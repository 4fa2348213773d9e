/* Evaluation library: the eigen-solver and L-BFGS, every classifier on toys, chunked scoring,
 * each metric against hand-computed values, NC1 and coherence, the linear probe, and the
 * JSON / TSV writers read back. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/eval/classifier.h"
#include "lib/eval/collapse.h"
#include "lib/eval/group_metrics.h"
#include "lib/eval/lbfgs.h"
#include "lib/eval/linprobe.h"
#include "lib/eval/metrics.h"
#include "lib/eval/report.h"
#include "lib/eval/score.h"
#include "lib/eval/spd_factor.h"
#include "lib/eval/symeig.h"

#define TOL 1e-9
static const double PI = 3.14159265358979323846;

/* ---- helpers -------------------------------------------------------------------------------- */

/* Gaussian blobs: class c centred at sep * e_(c mod D), n_per vectors each, noise sd. */
static void blobs(float *x, int32_t *y, int C, int n_per, int D, double sep, double sd,
                  uint64_t seed)
{
    cx_rng r;
    cx_rng_seed(&r, seed, 0);
    for (int c = 0, i = 0; c < C; c++)
        for (int k = 0; k < n_per; k++, i++) {
            for (int d = 0; d < D; d++)
                x[(size_t)i * D + d] = (float)(sd * cx_rng_normal(&r) + (d == c % D ? sep : 0.0));
            y[i] = c;
        }
}

/* A tiny JSON reader for the round-trip test: enough for the report's own output. */
typedef struct jv {
    char type; /* 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null */
    double num;
    char *str;
    int n;
    char **keys;
    struct jv *items;
} jv;

static void skip_ws(const char **p)
{
    while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
        (*p)++;
}

static int parse_value(const char **p, jv *v);

static char *parse_string(const char **p)
{
    if (**p != '"')
        return NULL;
    (*p)++;
    size_t cap = 16, n = 0;
    char *s = malloc(cap);
    while (**p && **p != '"') {
        char c = **p;
        if (c == '\\') {
            (*p)++;
            c = **p == 'n' ? '\n' : **p == 't' ? '\t' : **p == 'r' ? '\r' : **p;
        }
        if (n + 2 > cap)
            s = realloc(s, cap *= 2);
        s[n++] = c;
        (*p)++;
    }
    if (**p != '"') {
        free(s);
        return NULL;
    }
    (*p)++;
    s[n] = '\0';
    return s;
}

static int parse_value(const char **p, jv *v)
{
    memset(v, 0, sizeof *v);
    skip_ws(p);
    if (**p == '{' || **p == '[') {
        int obj = **p == '{';
        v->type = obj ? 'o' : 'a';
        (*p)++;
        skip_ws(p);
        if (**p == (obj ? '}' : ']')) {
            (*p)++;
            return 1;
        }
        for (;;) {
            v->items = realloc(v->items, sizeof *v->items * (size_t)(v->n + 1));
            if (obj) {
                v->keys = realloc(v->keys, sizeof *v->keys * (size_t)(v->n + 1));
                skip_ws(p);
                if (!(v->keys[v->n] = parse_string(p)))
                    return 0;
                skip_ws(p);
                if (*(*p)++ != ':')
                    return 0;
            }
            if (!parse_value(p, &v->items[v->n]))
                return 0;
            v->n++;
            skip_ws(p);
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p == (obj ? '}' : ']')) {
                (*p)++;
                return 1;
            }
            return 0;
        }
    }
    if (**p == '"') {
        v->type = 's';
        return (v->str = parse_string(p)) != NULL;
    }
    if (strncmp(*p, "null", 4) == 0) {
        v->type = 'z';
        *p += 4;
        return 1;
    }
    if (strncmp(*p, "true", 4) == 0 || strncmp(*p, "false", 5) == 0) {
        v->type = 'b';
        v->num = **p == 't';
        *p += **p == 't' ? 4 : 5;
        return 1;
    }
    char *end;
    v->type = 'n';
    v->num = strtod(*p, &end);
    if (end == *p)
        return 0;
    *p = end;
    return 1;
}

static void jv_free(jv *v)
{
    for (int i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        jv_free(&v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->str);
}

static const jv *jv_get(const jv *o, const char *key)
{
    for (int i = 0; o->type == 'o' && i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

static double jv_num(const jv *o, const char *key)
{
    const jv *v = jv_get(o, key);
    ck_assert_msg(v != NULL, "key '%s' missing", key);
    ck_assert_msg(v->type == 'n', "key '%s' is not a number", key);
    return v->num;
}

static int jv_is_null(const jv *o, const char *key)
{
    const jv *v = jv_get(o, key);
    ck_assert_msg(v != NULL, "key '%s' missing", key);
    return v->type == 'z';
}

/* The crafted 6-class run: training counts 150, 101, 100, 20, 19, 0 (shots rule: head,
 * head, mid, mid, tail, tail) and a confusion with unequal test counts. */
static const int64_t crafted_train[6] = {150, 101, 100, 20, 19, 0};
static void crafted_confusion(int64_t *conf)
{
    memset(conf, 0, sizeof *conf * 36);
    conf[0 * 6 + 0] = 9, conf[0 * 6 + 1] = 1;
    conf[1 * 6 + 1] = 8, conf[1 * 6 + 0] = 2;
    conf[2 * 6 + 2] = 5, conf[2 * 6 + 0] = 5;
    conf[3 * 6 + 3] = 1, conf[3 * 6 + 2] = 3;
    conf[4 * 6 + 4] = 2, conf[4 * 6 + 3] = 2;
    conf[5 * 6 + 0] = 2;
}
static const int64_t crafted_top5[6] = {10, 10, 9, 4, 3, 1};
static const char *const crafted_names[6] = {"ant", "bee", "cat\tdog", "d\"q", NULL, "fox"};

static void crafted_report(cx_eval_report *r, int restrict_to)
{
    int64_t conf[36];
    crafted_confusion(conf);
    cx_report_opts o;
    cx_report_defaults(&o);
    o.restrict_to = restrict_to;
    cx_err err;
    ck_assert_int_eq(cx_eval_report_from_counts(r, conf, crafted_top5, 5, crafted_train,
                                                crafted_names, 6, &o, &err),
                     CX_OK);
}

/* ---- eigen-solver ----------------------------------------------------------------------------- */

START_TEST(symeig_known_tridiagonal)
{
    /* Second-difference matrix: lambda_k = 2 - 2 cos(k pi / (n + 1)), v_k(j) ~ sin(j k pi/(n+1)). */
    enum { n = 40 };
    double *a = calloc(n * n, sizeof *a), w[n];
    for (int i = 0; i < n; i++) {
        a[i * n + i] = 2.0;
        if (i > 0)
            a[i * n + i - 1] = -1.0;
    }
    cx_err err;
    ck_assert_int_eq(cx_symeig(a, w, n, &err), CX_OK);
    for (int k = 1; k <= n; k++) {
        ck_assert_double_eq_tol(w[k - 1], 2.0 - 2.0 * cos(k * PI / (n + 1)), 1e-12);
        /* The eigenvector up to sign: |<v, s>| = |s| for the normalised sine vector s. */
        double dotp = 0.0, ns = 0.0;
        for (int j = 0; j < n; j++) {
            double s = sin((j + 1) * k * PI / (n + 1));
            dotp += a[(k - 1) * n + j] * s;
            ns += s * s;
        }
        ck_assert_double_eq_tol(fabs(dotp), sqrt(ns), 1e-10);
    }
    free(a);
}
END_TEST

START_TEST(symeig_random_residual_and_orthogonality)
{
    enum { n = 150 }; /* above the size where the loops thread */
    double *a = malloc(sizeof *a * n * n), *a0 = malloc(sizeof *a0 * n * n), w[n];
    cx_rng r;
    cx_rng_seed(&r, 7, 0);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++)
            a[i * n + j] = a[j * n + i] = cx_rng_normal(&r);
    memcpy(a0, a, sizeof *a * n * n);
    cx_err err;
    ck_assert_int_eq(cx_symeig(a, w, n, &err), CX_OK);
    double trace = 0.0, sumw = 0.0;
    for (int i = 0; i < n; i++) {
        trace += a0[i * n + i];
        sumw += w[i];
        if (i > 0)
            ck_assert(w[i] >= w[i - 1]);
    }
    ck_assert_double_eq_tol(trace, sumw, 1e-9);
    for (int q = 0; q < n; q += 7) {
        for (int i = 0; i < n; i++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += a0[i * n + k] * a[q * n + k];
            ck_assert_double_eq_tol(s, w[q] * a[q * n + i], 1e-11);
        }
        for (int p = 0; p < n; p++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += a[q * n + k] * a[p * n + k];
            ck_assert_double_eq_tol(s, p == q ? 1.0 : 0.0, 1e-12);
        }
    }
    /* A non-finite entry is refused, naming it. */
    a[3 * n + 1] = NAN;
    ck_assert_int_eq(cx_symeig(a, w, n, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "(3, 1)"));
    double one = 5.0, w1;
    ck_assert_int_eq(cx_symeig(&one, &w1, 1, &err), CX_OK);
    ck_assert_double_eq(w1, 5.0);
    ck_assert_double_eq(one, 1.0);
    free(a);
    free(a0);
}
END_TEST

START_TEST(symeig_rank_deficient)
{
    /* A = B B^T with B (n, 2): two non-zero eigenvalues, those of B^T B; the rest 0. */
    enum { n = 30 };
    double b[n][2], *a = malloc(sizeof *a * n * n), w[n];
    for (int i = 0; i < n; i++) {
        b[i][0] = 1.0 + i;
        b[i][1] = (i % 3) - 1.0;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            a[i * n + j] = b[i][0] * b[j][0] + b[i][1] * b[j][1];
    double p = 0, q = 0, s = 0;
    for (int i = 0; i < n; i++) {
        p += b[i][0] * b[i][0];
        q += b[i][1] * b[i][1];
        s += b[i][0] * b[i][1];
    }
    double mid = 0.5 * (p + q), rad = sqrt(0.25 * (p - q) * (p - q) + s * s);
    cx_err err;
    ck_assert_int_eq(cx_symeig(a, w, n, &err), CX_OK);
    ck_assert_double_eq_tol(w[n - 1], mid + rad, 1e-9 * (mid + rad));
    ck_assert_double_eq_tol(w[n - 2], mid - rad, 1e-9 * (mid + rad));
    for (int i = 0; i < n - 2; i++)
        ck_assert(fabs(w[i]) < 1e-11 * (mid + rad));
    free(a);
}
END_TEST

/* ---- L-BFGS ---------------------------------------------------------------------------------- */

static double rosenbrock(void *ctx, const double *x, double *g)
{
    int n = *(const int *)ctx;
    double f = 0.0;
    memset(g, 0, sizeof *g * n);
    for (int i = 0; i < n - 1; i++) {
        double a = x[i + 1] - x[i] * x[i], b = 1.0 - x[i];
        f += 100.0 * a * a + b * b;
        g[i] += -400.0 * a * x[i] - 2.0 * b;
        g[i + 1] += 200.0 * a;
    }
    return f;
}

START_TEST(lbfgs_rosenbrock)
{
    int n = 10;
    double x[10];
    for (int i = 0; i < n; i++)
        x[i] = -1.2 + 0.1 * i;
    cx_lbfgs_opts o;
    cx_lbfgs_defaults(&o);
    o.gtol = 1e-9;
    o.ftol = 0.0;
    cx_lbfgs_info info;
    cx_err err;
    ck_assert_int_eq(cx_lbfgs_minimize(rosenbrock, &n, x, n, &o, &info, &err), CX_OK);
    ck_assert_int_eq(info.stop, CX_LBFGS_GTOL);
    ck_assert(info.gmax <= 1e-9);
    ck_assert(info.iters > 10 && info.iters < o.max_iter);
    for (int i = 0; i < n; i++)
        ck_assert_double_eq_tol(x[i], 1.0, 1e-8);
}
END_TEST

typedef struct {
    int n;
    double diag[5], b[5];
    int calls;
} quad;

static double quadratic(void *ctx, const double *x, double *g)
{
    quad *q = ctx;
    q->calls++;
    double f = 0.0;
    for (int i = 0; i < q->n; i++) {
        f += 0.5 * q->diag[i] * x[i] * x[i] - q->b[i] * x[i];
        g[i] = q->diag[i] * x[i] - q->b[i];
    }
    return f;
}

static double nan_objective(void *ctx, const double *x, double *g)
{
    g[0] = 0.0;
    return NAN;
}

START_TEST(lbfgs_quadratic_and_errors)
{
    quad q = {5, {1, 10, 100, 3, 0.5}, {1, 2, 3, 4, 5}, 0};
    double x[5] = {0};
    cx_lbfgs_info info;
    cx_err err;
    ck_assert_int_eq(cx_lbfgs_minimize(quadratic, &q, x, 5, NULL, &info, &err), CX_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_double_eq_tol(x[i], q.b[i] / q.diag[i], 1e-6);
    ck_assert_int_eq(info.evals, q.calls);
    ck_assert_double_eq_tol(info.f, -0.5 * (1 + 0.4 + 0.09 + 16.0 / 3 + 50), 1e-9);
    /* Already optimal: no iteration. */
    ck_assert_int_eq(cx_lbfgs_minimize(quadratic, &q, x, 5, NULL, &info, &err), CX_OK);
    ck_assert_int_le(info.iters, 1);
    double z = 0.0;
    ck_assert_int_eq(cx_lbfgs_minimize(nan_objective, NULL, &z, 1, NULL, &info, &err),
                     CX_EDIVERGED);
    cx_lbfgs_opts o;
    cx_lbfgs_defaults(&o);
    o.c2 = o.c1 / 2;
    ck_assert_int_eq(cx_lbfgs_minimize(quadratic, &q, x, 5, &o, &info, &err), CX_EUSAGE);
}
END_TEST

/* ---- classifiers -------------------------------------------------------------------------------- */

START_TEST(zeroshot_weights_by_hand)
{
    /* T = 2, C = 2, D = 2: class 0 from (3, 4) and (0, 2) -> mean of (0.6, 0.8) and (0, 1) =
     * (0.3, 0.9), renormalised (0.316228, 0.948683); class 1 from (-1, 0) twice -> (-1, 0). */
    float emb[2 * 2 * 2] = {3, 4, -1, 0, /* template 0: class 0, class 1 */
                            0, 2, -5, 0 /* template 1 */};
    cx_eval_classifier clf;
    cx_err err;
    ck_assert_int_eq(cx_eval_zeroshot(&clf, emb, 2, 2, 2, CX_EVAL_COSINE_SCALE, &err), CX_OK);
    ck_assert_int_eq(clf.kind, CX_CLF_LINEAR);
    ck_assert_int_eq(clf.normalize, 1);
    ck_assert_float_eq_tol(clf.w[0], 0.3f / sqrtf(0.9f), 1e-6);
    ck_assert_float_eq_tol(clf.w[1], 0.9f / sqrtf(0.9f), 1e-6);
    ck_assert_float_eq_tol(clf.w[2], -1.0f, 1e-7);
    ck_assert_float_eq_tol(clf.w[3], 0.0f, 1e-7);
    /* logits = 100 cos: x = (0, 7) -> 100 * 0.948683 and 0. */
    float x[2] = {0, 7}, logits[2];
    ck_assert_int_eq(cx_eval_logits(&clf, x, 1, logits, &err), CX_OK);
    ck_assert_float_eq_tol(logits[0], 94.86833f, 1e-3);
    ck_assert_float_eq_tol(logits[1], 0.0f, 1e-5);
    cx_eval_classifier_free(&clf);
    ck_assert_ptr_null(clf.w);
    emb[5] = NAN;
    ck_assert_int_eq(cx_eval_zeroshot(&clf, emb, 2, 2, 2, 100.0f, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "template 1, class 0"));
    ck_assert_int_eq(cx_eval_zeroshot(&clf, emb, 2, 2, 2, 0.0f, &err), CX_EUSAGE);
}
END_TEST

START_TEST(head_classifier_cosine_and_linear)
{
    float w[4] = {2, 0, 0, 3}, b[2] = {0.5f, -1.0f};
    cx_eval_classifier lin, cosc;
    cx_err err;
    ck_assert_int_eq(cx_eval_from_head(&lin, w, b, 2, 2, 0, 0.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_from_head(&cosc, w, NULL, 2, 2, 1, 10.0f, &err), CX_OK);
    float x[2] = {1, 1}, z[2];
    ck_assert_int_eq(cx_eval_logits(&lin, x, 1, z, &err), CX_OK);
    ck_assert_float_eq_tol(z[0], 2.5f, 1e-6); /* 2 + 0.5 */
    ck_assert_float_eq_tol(z[1], 2.0f, 1e-6); /* 3 - 1 */
    ck_assert_int_eq(cx_eval_logits(&cosc, x, 1, z, &err), CX_OK);
    ck_assert_float_eq_tol(z[0], 10.0f / sqrtf(2.0f), 1e-5);
    ck_assert_float_eq_tol(z[1], 10.0f / sqrtf(2.0f), 1e-5);
    cx_eval_classifier_free(&lin);
    cx_eval_classifier_free(&cosc);
}
END_TEST

START_TEST(ncm_toy)
{
    /* Class 0 around +x, class 1 around +y, class 2 has no training vector. */
    float x[4 * 2] = {2, 0.2f, 1, -0.1f, 0.1f, 3, -0.1f, 1};
    int32_t y[4] = {0, 0, 1, 1};
    cx_eval_classifier clf;
    cx_err err;
    ck_assert_int_eq(cx_eval_ncm(&clf, x, y, 4, 3, 2, CX_EVAL_COSINE_SCALE, &err), CX_OK);
    /* W_0 = normalise(n(2, .2) + n(1, -.1)). */
    double a0 = 2 / sqrt(4.04) + 1 / sqrt(1.01), a1 = 0.2 / sqrt(4.04) - 0.1 / sqrt(1.01);
    double na = sqrt(a0 * a0 + a1 * a1);
    ck_assert_float_eq_tol(clf.w[0], a0 / na, 1e-6);
    ck_assert_float_eq_tol(clf.w[1], a1 / na, 1e-6);
    ck_assert_float_eq(clf.w[4], 0.0f);
    ck_assert_float_eq(clf.w[5], 0.0f);
    float xt[3 * 2] = {5, 1, 0.5f, 4, -1, -1};
    int32_t yt[3] = {0, 1, 2};
    cx_eval_pred p;
    ck_assert_int_eq(cx_eval_score(&clf, xt, yt, 3, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.pred[0], 0);
    ck_assert_int_eq(p.pred[1], 1);
    ck_assert_int_eq(p.pred[2], 2); /* both cosines negative: the empty class's 0 wins */
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    y[3] = 3;
    ck_assert_int_eq(cx_eval_ncm(&clf, x, y, 4, 3, 2, 1.0f, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "sample 3: label 3"));
}
END_TEST

START_TEST(knn_votes_and_ties)
{
    float ref[5 * 2] = {1, 0, 0.8f, 0.6f, 0.6f, 0.8f, 0, 1, -1, 0};
    int32_t lab[5] = {0, 1, 1, 2, 0};
    cx_eval_classifier clf;
    cx_err err;
    /* k = 3 at (1, 0): neighbours ref0 (c0, 1), ref1 (c1, .8), ref2 (c1, .6): class 1 wins 2-1. */
    ck_assert_int_eq(cx_eval_knn(&clf, ref, lab, 5, 3, 2, 3, &err), CX_OK);
    float x[2] = {1, 0}, s[3];
    ck_assert_int_eq(cx_eval_logits(&clf, x, 1, s, &err), CX_OK);
    ck_assert_float_eq_tol(s[1], 2.0f + 4.4f / 7.0f, 1e-5);
    ck_assert_float_eq_tol(s[0], 1.0f + 4.0f / 7.0f, 1e-5);
    ck_assert_float_eq(s[2], 0.0f);
    int32_t y = 0;
    cx_eval_pred p;
    ck_assert_int_eq(cx_eval_score(&clf, x, &y, 1, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.pred[0], 1);
    ck_assert_float_eq_tol(p.conf[0], 2.0f / 3.0f, 1e-6);
    ck_assert_int_eq(p.topk[1], 0);
    ck_assert_int_eq(p.topk[2], 2);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    /* k = 2: a 1-1 vote; class 0's similarity sum (1) beats class 1's (.8). */
    ck_assert_int_eq(cx_eval_knn(&clf, ref, lab, 5, 3, 2, 2, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, &y, 1, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.pred[0], 0);
    ck_assert_float_eq_tol(p.conf[0], 0.5f, 1e-7);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    /* Equal votes and sums: the smaller class index. Equal similarities: the smaller
     * training index is the neighbour. */
    float twin[2 * 2] = {1, 0, 1, 0};
    int32_t tl[2] = {2, 1};
    ck_assert_int_eq(cx_eval_knn(&clf, twin, tl, 2, 3, 2, 2, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, &y, 1, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.pred[0], 1);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    ck_assert_int_eq(cx_eval_knn(&clf, twin, tl, 2, 3, 2, 1, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, &y, 1, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.pred[0], 2);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    /* k above N is clamped; k out of range is a usage error. */
    ck_assert_int_eq(cx_eval_knn(&clf, ref, lab, 5, 3, 2, 50, &err), CX_OK);
    ck_assert_int_eq(clf.k, 5);
    cx_eval_classifier_free(&clf);
    ck_assert_int_eq(cx_eval_knn(&clf, ref, lab, 5, 3, 2, 0, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_eval_knn(&clf, ref, lab, 5, 3, 2, CX_KNN_K_MAX + 1, &err), CX_EUSAGE);
}
END_TEST

START_TEST(knn_matches_brute_force)
{
    enum { C = 4, NR = 200, NT = 60, D = 6, K = 7 };
    float *xr = malloc(sizeof *xr * NR * D), *xt = malloc(sizeof *xt * NT * D);
    int32_t yr[NR], yt[NT];
    blobs(xr, yr, C, NR / C, D, 1.0, 0.8, 3);
    blobs(xt, yt, C, NT / C, D, 1.0, 0.8, 4);
    cx_eval_classifier clf;
    cx_eval_pred p;
    cx_err err;
    ck_assert_int_eq(cx_eval_knn(&clf, xr, yr, NR, C, D, K, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, xt, yt, NT, 13, &p, &err), CX_OK);
    for (int i = 0; i < NT; i++) {
        /* Brute force: sort all similarities in double, take K, majority with tie-breaks. */
        double sim[NR];
        int used[NR] = {0}, votes[C] = {0};
        double sums[C] = {0};
        for (int j = 0; j < NR; j++) {
            double dp = 0, na = 0, nb = 0;
            for (int d = 0; d < D; d++) {
                dp += (double)xt[i * D + d] * xr[j * D + d];
                na += (double)xt[i * D + d] * xt[i * D + d];
                nb += (double)xr[j * D + d] * xr[j * D + d];
            }
            sim[j] = dp / sqrt(na * nb);
        }
        for (int t = 0; t < K; t++) {
            int best = -1;
            for (int j = 0; j < NR; j++)
                if (!used[j] && (best < 0 || sim[j] > sim[best]))
                    best = j;
            used[best] = 1;
            votes[yr[best]]++;
            sums[yr[best]] += sim[best];
        }
        int want = 0;
        for (int c = 1; c < C; c++)
            if (votes[c] > votes[want] || (votes[c] == votes[want] && sums[c] > sums[want] + 1e-6))
                want = c;
        ck_assert_int_eq(p.pred[i], want);
        ck_assert_float_eq_tol(p.conf[i], (float)votes[want] / K, 1e-6);
    }
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    free(xr);
    free(xt);
}
END_TEST

/* ---- scoring --------------------------------------------------------------------------------- */

START_TEST(score_top5_by_hand)
{
    /* W = I (7 x 7), scale 1, no normalisation: the scores are the inputs. */
    enum { C = 7 };
    float w[C * C] = {0};
    for (int c = 0; c < C; c++)
        w[c * C + c] = 1.0f;
    cx_eval_classifier clf;
    cx_err err;
    ck_assert_int_eq(cx_eval_from_head(&clf, w, NULL, C, C, 0, 1.0f, &err), CX_OK);
    float x[3 * C] = {0.1f, 0.7f, 0.3f, 0.7f, 0.0f, 0.5f, 0.2f,  /* top5 1 3 5 2 6 */
                      0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f, 0.3f,  /* top5 0 1 2 3 4 */
                      0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f}; /* top5 6 0 1 2 3 */
    int32_t y[3] = {6, 5, 3};
    cx_eval_pred p;
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 3, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.K, 5);
    int want[3][5] = {{1, 3, 5, 2, 6}, {0, 1, 2, 3, 4}, {6, 0, 1, 2, 3}};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 5; t++)
            ck_assert_int_eq(p.topk[i * 5 + t], want[i][t]);
    ck_assert_int_eq(p.topk_hits[6], 1); /* label 6 is 5th in row 0 */
    ck_assert_int_eq(p.topk_hits[5], 0); /* label 5 is 6th in row 1 */
    ck_assert_int_eq(p.topk_hits[3], 1);
    /* Confidence of row 2: e / (e + 6). */
    ck_assert_float_eq_tol(p.conf[2], expf(1.0f) / (expf(1.0f) + 6.0f), 1e-6);
    cx_eval_pred_free(&p);
    /* Fewer than 5 classes: K = C. */
    cx_eval_classifier_free(&clf);
    float w2[4] = {1, 0, 0, 1}, x2[2] = {0.0f, logf(3.0f)};
    int32_t y2 = 1;
    ck_assert_int_eq(cx_eval_from_head(&clf, w2, NULL, 2, 2, 0, 1.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x2, &y2, 1, 0, &p, &err), CX_OK);
    ck_assert_int_eq(p.K, 2);
    ck_assert_float_eq_tol(p.conf[0], 0.75f, 1e-6);
    ck_assert_int_eq(p.topk_hits[1], 1);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
}
END_TEST

START_TEST(score_confusion_matrix)
{
    /* Scores are the inputs (W = I); rows predict 0, 2, 2, 1, 0 with truths 0, 2, 1, 1, 2. */
    float w[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    float x[5 * 3] = {3, 1, 2, 0, 1, 5, 0, 1, 2, -1, 4, 0, 9, 8, 7};
    int32_t y[5] = {0, 2, 1, 1, 2};
    cx_eval_classifier clf;
    cx_eval_pred p;
    cx_err err;
    ck_assert_int_eq(cx_eval_from_head(&clf, w, NULL, 3, 3, 0, 1.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 5, 2, &p, &err), CX_OK);
    int64_t want[9] = {1, 0, 0, /* truth 0 */
                       0, 1, 1, /* truth 1 */
                       1, 0, 1 /* truth 2 */};
    for (int i = 0; i < 9; i++)
        ck_assert_int_eq(p.confusion[i], want[i]);
    int64_t tc[3], pc[3], co[3];
    cx_confusion_margins(p.confusion, 3, tc, pc, co);
    ck_assert_int_eq(tc[0], 1);
    ck_assert_int_eq(tc[1], 2);
    ck_assert_int_eq(tc[2], 2);
    ck_assert_int_eq(pc[0], 2);
    ck_assert_int_eq(pc[1], 1);
    ck_assert_int_eq(pc[2], 2);
    ck_assert_int_eq(co[2], 1);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
}
END_TEST

START_TEST(score_chunked_equals_unchunked)
{
    enum { C = 37, N = 1000, D = 24, T = 3 };
    float *emb = malloc(sizeof *emb * T * C * D), *x = malloc(sizeof *x * N * D);
    int32_t *y = malloc(sizeof *y * N);
    cx_rng r;
    cx_rng_seed(&r, 11, 0);
    for (int i = 0; i < T * C * D; i++)
        emb[i] = (float)cx_rng_normal(&r);
    for (int i = 0; i < N * D; i++)
        x[i] = (float)cx_rng_normal(&r);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)cx_rng_below(&r, C);
    cx_eval_classifier clf;
    cx_err err;
    ck_assert_int_eq(cx_eval_zeroshot(&clf, emb, T, C, D, 100.0f, &err), CX_OK);
    cx_eval_pred whole, part;
    ck_assert_int_eq(cx_eval_score(&clf, x, y, N, N, &whole, &err), CX_OK);
    int chunks[4] = {1, 7, 64, 0};
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(cx_eval_score(&clf, x, y, N, chunks[k], &part, &err), CX_OK);
        ck_assert_mem_eq(part.confusion, whole.confusion, sizeof(int64_t) * C * C);
        ck_assert_mem_eq(part.topk_hits, whole.topk_hits, sizeof(int64_t) * C);
        ck_assert_mem_eq(part.topk, whole.topk, sizeof(int32_t) * N * 5);
        for (int i = 0; i < N; i++)
            ck_assert_float_eq_tol(part.conf[i], whole.conf[i], 1e-5);
        cx_eval_pred_free(&part);
    }
    /* The predictions agree with a naive argmax of 100 cos in double. */
    float *logits = malloc(sizeof *logits * N * C);
    ck_assert_int_eq(cx_eval_logits(&clf, x, N, logits, &err), CX_OK);
    int64_t right = 0;
    for (int i = 0; i < N; i++) {
        double nx = 0;
        for (int d = 0; d < D; d++)
            nx += (double)x[i * D + d] * x[i * D + d];
        int best = 0;
        double bv = -1e300;
        for (int c = 0; c < C; c++) {
            double dp = 0;
            for (int d = 0; d < D; d++)
                dp += (double)x[i * D + d] * clf.w[c * D + d];
            double v = 100.0 * dp / sqrt(nx);
            ck_assert_double_eq_tol(logits[i * C + c], v, 1e-3);
            if (v > bv) {
                bv = v;
                best = c;
            }
        }
        ck_assert_int_eq(whole.pred[i], best);
        right += best == y[i];
    }
    int64_t diag = 0;
    for (int c = 0; c < C; c++)
        diag += whole.confusion[c * C + c];
    ck_assert_int_eq(diag, right);
    cx_eval_pred_free(&whole);
    cx_eval_classifier_free(&clf);
    free(emb);
    free(x);
    free(y);
    free(logits);
}
END_TEST

START_TEST(score_rejects_bad_input)
{
    float w[4] = {1, 0, 0, 1}, x[3 * 2] = {1, 0, 0, 1, 1, 1};
    int32_t y[3] = {0, 1, 2};
    cx_eval_classifier clf;
    cx_eval_pred p;
    cx_err err;
    ck_assert_int_eq(cx_eval_from_head(&clf, w, NULL, 2, 2, 0, 1.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 3, 0, &p, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "sample 2: label 2 outside 0..1"));
    ck_assert_ptr_null(p.pred);
    y[2] = 1;
    x[3] = INFINITY;
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 3, 1, &p, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "test vector 1"));
    ck_assert_ptr_null(p.confusion);
    x[3] = 1.0f;
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 0, 0, &p, &err), CX_OK); /* no test vectors */
    ck_assert_int_eq(p.N, 0);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 3, 0, &p, &err), CX_EUSAGE); /* freed = empty */
}
END_TEST

START_TEST(same_bits_on_one_and_two_threads)
{
    /* Block boundaries do not depend on the thread count, and every sum runs in a fixed order,
     * so scoring, kNN and NC1 give the same bits on 1 and 2 threads (and on a second run). */
    enum { C = 12, N = 700, D = 20 };
    float *emb = malloc(sizeof *emb * C * D), *x = malloc(sizeof *x * N * D);
    int32_t *y = malloc(sizeof *y * N);
    blobs(x, y, C, N / C, D, 1.0, 1.0, 51);
    for (int i = (N / C) * C; i < N; i++) {
        memcpy(x + (size_t)i * D, x, sizeof *x * D);
        y[i] = 0;
    }
    cx_rng r;
    cx_rng_seed(&r, 52, 0);
    for (int i = 0; i < C * D; i++)
        emb[i] = (float)cx_rng_normal(&r);
    cx_eval_classifier zs, knn;
    cx_eval_pred p[3], q[3];
    cx_collapse col[3];
    cx_err err;
    ck_assert_int_eq(cx_eval_zeroshot(&zs, emb, 1, C, D, 100.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_knn(&knn, x, y, N, C, D, 9, &err), CX_OK);
    int threads[3] = {1, 2, 2};
    for (int k = 0; k < 3; k++) {
        cx_threads_set(threads[k]);
        ck_assert_int_eq(cx_eval_score(&zs, x, y, N, 64, &p[k], &err), CX_OK);
        ck_assert_int_eq(cx_eval_score(&knn, x, y, N, 64, &q[k], &err), CX_OK);
        ck_assert_int_eq(cx_collapse_compute(&col[k], x, y, N, C, D, zs.w, 1, &err), CX_OK);
    }
    cx_threads_set(1);
    for (int k = 1; k < 3; k++) {
        ck_assert_mem_eq(p[k].conf, p[0].conf, sizeof(float) * N);
        ck_assert_mem_eq(p[k].topk, p[0].topk, sizeof(int32_t) * N * 5);
        ck_assert_mem_eq(q[k].conf, q[0].conf, sizeof(float) * N);
        ck_assert_mem_eq(q[k].topk, q[0].topk, sizeof(int32_t) * N * 5);
        ck_assert_mem_eq(col[k].nc1_class, col[0].nc1_class, sizeof(double) * C);
        ck_assert_mem_eq(col[k].means_cos_all_class, col[0].means_cos_all_class,
                         sizeof(double) * C);
    }
    ck_assert(col[0].nc1 > 0.1); /* overlapping blobs: far from collapse */
    for (int k = 0; k < 3; k++) {
        cx_eval_pred_free(&p[k]);
        cx_eval_pred_free(&q[k]);
        cx_collapse_free(&col[k]);
    }
    cx_eval_classifier_free(&zs);
    cx_eval_classifier_free(&knn);
    free(emb);
    free(x);
    free(y);
}
END_TEST

/* ---- metric primitives ---------------------------------------------------------------------- */

START_TEST(rank_average_with_ties)
{
    double v[6] = {10, 20, 20, 30, 20, -1}, r[6];
    cx_err err;
    ck_assert_int_eq(cx_rank_average(v, 6, r, &err), CX_OK);
    double want[6] = {2, 4, 4, 6, 4, 1};
    for (int i = 0; i < 6; i++)
        ck_assert_double_eq(r[i], want[i]);
}
END_TEST

START_TEST(spearman_by_hand)
{
    cx_err err;
    double rho;
    /* Ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5). */
    double a[4] = {1, 2, 2, 3}, b[4] = {1, 3, 2, 4};
    ck_assert_int_eq(cx_spearman(a, b, 4, &rho, &err), CX_OK);
    ck_assert_double_eq_tol(rho, 4.5 / sqrt(22.5), TOL);
    ck_assert_double_eq_tol(rho, 0.94868329805051, 1e-12);
    /* Monotone in any way gives +-1; NaN pairs are skipped. */
    double c[5] = {1, 10, 100, NAN, 1000}, d[5] = {-1, -2, -3, 99, -4};
    ck_assert_int_eq(cx_spearman(c, d, 5, &rho, &err), CX_OK);
    ck_assert_double_eq_tol(rho, -1.0, TOL);
    /* Constant side or too few pairs: undefined. */
    double e[3] = {5, 5, 5};
    ck_assert_int_eq(cx_spearman(e, b, 3, &rho, &err), CX_OK);
    ck_assert(isnan(rho));
    ck_assert_int_eq(cx_spearman(a, b, 1, &rho, &err), CX_OK);
    ck_assert(isnan(rho));
}
END_TEST

START_TEST(ece_by_hand)
{
    /* Bins of width 1/15: 0.95 -> bin 14 (acc .5, conf .95), 0.55 -> bin 8 (acc 1, conf .55),
     * 0.25 -> bin 3 (acc 0, conf .25): ECE = .4 * .45 + .4 * .45 + .2 * .25 = 0.41. */
    float conf[5] = {0.95f, 0.95f, 0.55f, 0.55f, 0.25f};
    int32_t pred[5] = {1, 1, 2, 0, 3}, y[5] = {1, 0, 2, 0, 0};
    ck_assert_double_eq_tol(cx_ece(conf, pred, y, 5, 15), 0.41, 1e-7);
    /* One bin: |3/5 - mean conf| = |0.6 - 0.65| = 0.05. */
    ck_assert_double_eq_tol(cx_ece(conf, pred, y, 5, 1), 0.05, 1e-7);
    /* Perfect calibration: confidence 1 and always right. */
    float one[2] = {1.0f, 1.0f};
    ck_assert_double_eq(cx_ece(one, y, y, 2, 15), 0.0);
    ck_assert(isnan(cx_ece(conf, pred, y, 0, 15)));
    ck_assert(isnan(cx_ece(conf, pred, y, 5, 0)));
}
END_TEST

START_TEST(prf_by_hand)
{
    int64_t tc[3] = {4, 2, 0}, pc[3] = {2, 0, 4}, co[3] = {2, 0, 0};
    double p[3], r[3], f[3];
    cx_prf(tc, pc, co, 3, p, r, f);
    ck_assert_double_eq_tol(p[0], 1.0, TOL);
    ck_assert_double_eq_tol(r[0], 0.5, TOL);
    ck_assert_double_eq_tol(f[0], 2.0 / 3.0, TOL);
    ck_assert_double_eq(p[1], 0.0); /* never predicted: precision 0 by definition */
    ck_assert_double_eq(r[1], 0.0);
    ck_assert_double_eq(f[1], 0.0);
    ck_assert_double_eq(p[2], 0.0);
    ck_assert(isnan(r[2])); /* no test vectors */
    ck_assert(isnan(f[2]));
    double v[4] = {1, NAN, 3, 10};
    unsigned char m[4] = {1, 1, 1, 0};
    ck_assert_double_eq_tol(cx_mean_where(v, m, 4), 2.0, TOL);
    ck_assert_double_eq_tol(cx_min_where(v, NULL, 4), 1.0, TOL);
    unsigned char none[4] = {0};
    ck_assert(isnan(cx_mean_where(v, none, 4)));
}
END_TEST

/* ---- report --------------------------------------------------------------------------------- */

START_TEST(group_metrics_by_hand)
{
    /* Group 0: 3 of 4 right (0.75), group 1: 1 of 2 (0.5), group 2: 5 of 5 (1), group 3: no
     * test sample. worst 0.5; mean (0.75 + 0.5 + 1) / 3 = 0.75; adjusted, weighted by training
     * counts 90, 10, 50 (group 3's 7 has no accuracy): (67.5 + 5 + 50) / 150 = 0.816666... */
    const int32_t groups[11] = {0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2};
    const int32_t y[11] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    const int32_t pred[11] = {0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1};
    const int64_t train[4] = {90, 10, 50, 7};
    const char *const names[4] = {"a/0", "a/1", "b/0", NULL};
    cx_group_report g;
    cx_err err;
    ck_assert_int_eq(cx_group_report_build(&g, pred, y, groups, 11, 4, names, train, &err), CX_OK);
    ck_assert_int_eq(g.G, 4);
    ck_assert_int_eq(g.with_test, 3);
    ck_assert_double_eq_tol(g.acc[0], 0.75, 1e-12);
    ck_assert_double_eq_tol(g.acc[1], 0.5, 1e-12);
    ck_assert_double_eq_tol(g.acc[2], 1.0, 1e-12);
    ck_assert(isnan(g.acc[3]));
    ck_assert_int_eq(g.test_count[2], 5);
    ck_assert_int_eq(g.correct[0], 3);
    ck_assert_double_eq_tol(g.worst, 0.5, 1e-12);
    ck_assert_double_eq_tol(g.avg, 0.75, 1e-12);
    ck_assert_double_eq_tol(g.adjusted, 122.5 / 150.0, 1e-12);
    ck_assert_str_eq(g.names[3], "3");

    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    cx_json j;
    cx_json_init(&j, mem, 0);
    cx_json_begin_object(&j);
    cx_group_report_json_keys(&g, &j);
    cx_json_end_object(&j);
    ck_assert_int_eq(cx_group_write_tsv(&g, mem, "mem", &err), CX_OK);
    fclose(mem);
    ck_assert_msg(strstr(text, "\"worst_group\":0.5"), "%s", text);
    ck_assert_msg(strstr(text, "\"avg_group\":0.75"), "%s", text);
    ck_assert_msg(strstr(text, "\"adjusted_avg\":0.816666667"), "%s", text);
    ck_assert_msg(strstr(text, "{\"name\":\"a/1\",\"index\":1,\"train_count\":10,"
                               "\"test_count\":2,\"correct\":1,\"acc\":0.5}"),
                  "%s", text);
    ck_assert_msg(strstr(text, "\"train_count\":7,\"test_count\":0,\"correct\":0,\"acc\":null"),
                  "%s", text);
    ck_assert_msg(strstr(text, "group\tname\ttrain_count\ttest_count\tcorrect\tacc\n"
                               "0\ta/0\t90\t4\t3\t0.75\n"),
                  "%s", text);
    ck_assert_msg(strstr(text, "\n3\t3\t7\t0\t0\tNaN\n"), "%s", text);
    free(text);
    cx_group_report_free(&g);

    /* Unknown training counts: adjusted null, the rest as before. */
    ck_assert_int_eq(cx_group_report_build(&g, pred, y, groups, 11, 4, NULL, NULL, &err), CX_OK);
    ck_assert(isnan(g.adjusted));
    ck_assert_double_eq_tol(g.worst, 0.5, 1e-12);
    ck_assert_int_eq(g.train_count[0], -1);
    cx_group_report_free(&g);
    /* Training counts all on the groups without test samples: adjusted null. */
    const int64_t off[4] = {0, 0, 0, 9};
    ck_assert_int_eq(cx_group_report_build(&g, pred, y, groups, 11, 4, NULL, off, &err), CX_OK);
    ck_assert(isnan(g.adjusted));
    cx_group_report_free(&g);

    text = NULL;
    mem = open_memstream(&text, &len);
    cx_json_init(&j, mem, 0);
    cx_json_begin_object(&j);
    cx_group_report_json_keys(NULL, &j);
    cx_json_end_object(&j);
    fclose(mem);
    ck_assert_str_eq(text, "{\"worst_group\":null,\"avg_group\":null,\"adjusted_avg\":null,"
                           "\"groups\":null}");
    free(text);

    const int32_t bad[3] = {0, 4, 1};
    ck_assert_int_eq(cx_group_report_build(&g, pred, y, bad, 3, 4, NULL, NULL, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "sample 1: group 4 outside [0, 4)"), "%s", err.msg);
    ck_assert_ptr_null(g.acc);
    int64_t counts[4];
    cx_group_counts(groups, 11, 4, counts);
    ck_assert_int_eq(counts[0], 4);
    ck_assert_int_eq(counts[2], 5);
    ck_assert_int_eq(counts[3], 0);
}
END_TEST

START_TEST(report_crafted_counts)
{
    cx_eval_report r;
    crafted_report(&r, CX_REPORT_ALL);
    cx_class_split want[6] = {CX_SPLIT_HEAD, CX_SPLIT_HEAD, CX_SPLIT_MID,
                              CX_SPLIT_MID,  CX_SPLIT_TAIL, CX_SPLIT_TAIL};
    for (int c = 0; c < 6; c++)
        ck_assert_int_eq(r.split[c], want[c]);
    ck_assert_double_eq_tol(r.head, (0.9 + 0.8) / 2, TOL);
    ck_assert_double_eq_tol(r.mid, (0.5 + 0.25) / 2, TOL);
    ck_assert_double_eq_tol(r.tail, (0.5 + 0.0) / 2, TOL);
    ck_assert_double_eq_tol(r.top1, 2.95 / 6, TOL);
    ck_assert_double_eq_tol(r.acc, 25.0 / 40, TOL);
    ck_assert_double_eq_tol(r.top5, (1 + 1 + 0.9 + 1 + 0.75 + 0.5) / 6, TOL);
    ck_assert_double_eq(r.worst_class, 0.0);
    int64_t want_pred[6] = {18, 9, 8, 3, 2, 0};
    for (int c = 0; c < 6; c++)
        ck_assert_int_eq(r.pred_count[c], want_pred[c]);
    /* Ranks of counts (6 5 4 3 2 1) against acc ranks (6 5 3.5 2 3.5 1): 15.5 / sqrt(17.5 * 17). */
    ck_assert_double_eq_tol(r.corr_acc, 15.5 / sqrt(17.5 * 17.0), TOL);
    ck_assert_double_eq_tol(r.corr_pred, 1.0, TOL);
    ck_assert_double_eq_tol(r.macro_precision, (0.5 + 8.0 / 9 + 0.625 + 1.0 / 3 + 1 + 0) / 6, TOL);
    ck_assert_double_eq_tol(r.macro_recall, r.top1, TOL);
    ck_assert_double_eq_tol(r.macro_f1, 0.49881648565859, 1e-12);
    ck_assert_int_eq(r.n_test, 40);
    ck_assert_int_eq(r.n_listed, 6);
    ck_assert(isnan(r.ece) && isnan(r.nc1));
    ck_assert_str_eq(r.names[4], "4");
    cx_eval_report_free(&r);
}
END_TEST

START_TEST(report_empty_split_is_null)
{
    /* Every class above 100 training vectors: mid and tail are empty -> NaN, never 0. */
    int64_t train[3] = {500, 300, 101}, conf[9] = {5, 0, 0, 0, 4, 1, 2, 0, 3};
    cx_eval_report r;
    cx_err err;
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf, NULL, 3, train, NULL, 3, NULL, &err),
                     CX_OK);
    ck_assert_double_eq_tol(r.head, (1.0 + 0.8 + 0.6) / 3, TOL);
    ck_assert(isnan(r.mid));
    ck_assert(isnan(r.tail));
    ck_assert(isnan(r.top5)); /* no top-k counts given */
    /* A split with classes but no test vectors is also null. */
    cx_eval_report_free(&r);
    int64_t train2[3] = {500, 5, 50}, conf2[9] = {5, 0, 0, 0, 0, 0, 0, 0, 2};
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf2, NULL, 3, train2, NULL, 3, NULL, &err),
                     CX_OK);
    ck_assert(isnan(r.tail));
    ck_assert(isnan(r.class_acc[1]));
    ck_assert_double_eq_tol(r.top1, 1.0, TOL); /* the class without test vectors is left out */
    ck_assert_double_eq_tol(r.mid, 1.0, TOL);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cx_json j;
    cx_json_init(&j, fp, 0);
    cx_eval_report_json(&r, &j);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(buf, "\"tail\":null"));
    ck_assert_ptr_null(strstr(buf, "\"tail\":0"));
    free(buf);
    cx_eval_report_free(&r);
    /* Bad inputs. */
    train2[1] = -1;
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf2, NULL, 3, train2, NULL, 3, NULL, &err),
                     CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 1"));
}
END_TEST

START_TEST(report_restrict_to_tail_and_tertile)
{
    cx_eval_report r;
    crafted_report(&r, CX_SPLIT_TAIL);
    ck_assert_int_eq(r.n_listed, 2);
    ck_assert_double_eq_tol(r.top1, 0.25, TOL);
    ck_assert_double_eq_tol(r.acc, 2.0 / 6, TOL);
    ck_assert_double_eq_tol(r.macro_precision, 0.5, TOL);
    ck_assert_double_eq(r.worst_class, 0.0);
    ck_assert_double_eq_tol(r.head, 0.85, TOL); /* splits stay over all classes */
    ck_assert(!cx_eval_report_lists(&r, 0));
    ck_assert(cx_eval_report_lists(&r, 5));
    cx_eval_report_restrict(&r, CX_SPLIT_HEAD);
    ck_assert_double_eq_tol(r.top1, 0.85, TOL);
    ck_assert_double_eq_tol(r.acc, 17.0 / 20, TOL);
    cx_eval_report_restrict(&r, CX_REPORT_ALL);
    ck_assert_double_eq_tol(r.top1, 2.95 / 6, TOL);
    cx_eval_report_free(&r);

    /* Tertile rule: 6 classes -> 2 head, 2 mid, 2 tail by count rank. */
    int64_t conf[36];
    crafted_confusion(conf);
    int64_t train[6] = {5, 50, 500, 40, 4, 400};
    cx_report_opts o;
    cx_report_defaults(&o);
    o.rule = CX_SPLIT_RULE_TERTILE;
    cx_err err;
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf, NULL, 5, train, NULL, 6, &o, &err),
                     CX_OK);
    ck_assert_int_eq(r.split[2], CX_SPLIT_HEAD);
    ck_assert_int_eq(r.split[5], CX_SPLIT_HEAD);
    ck_assert_int_eq(r.split[0], CX_SPLIT_TAIL);
    ck_assert_int_eq(r.split[4], CX_SPLIT_TAIL);
    ck_assert_double_eq_tol(r.head, (0.5 + 0.0) / 2, TOL);
    ck_assert_double_eq_tol(r.mid, (0.8 + 0.25) / 2, TOL);
    ck_assert_double_eq_tol(r.tail, (0.9 + 0.5) / 2, TOL);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cx_json j;
    cx_json_init(&j, fp, 0);
    cx_eval_report_json(&r, &j);
    fclose(fp);
    ck_assert_ptr_nonnull(strstr(buf, "\"split_rule\":\"tertile\",\"thresholds\":null"));
    free(buf);
    cx_eval_report_free(&r);
    o.rule = CX_SPLIT_RULE_SHOTS;
    o.many = 10;
    o.few = 50;
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf, NULL, 5, train, NULL, 6, &o, &err),
                     CX_EUSAGE);
}
END_TEST

START_TEST(report_json_round_trip)
{
    cx_eval_report r;
    crafted_report(&r, CX_REPORT_ALL);
    r.ece = 0.125;
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cx_json j;
    cx_json_init(&j, fp, 1);
    cx_eval_report_json(&r, &j);
    fclose(fp);
    jv root;
    const char *p = buf;
    ck_assert_msg(parse_value(&p, &root), "JSON does not parse: %s", buf);
    skip_ws(&p);
    ck_assert_int_eq(*p, '\0');
    ck_assert_int_eq(root.type, 'o');
    const char *keys[] = {"top1", "top5", "acc", "head", "mid", "tail", "corr_acc", "corr_pred",
                          "worst_class", "ece", "nc1", "classes"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        ck_assert_msg(jv_get(&root, keys[k]) != NULL, "key %s missing", keys[k]);
    ck_assert_double_eq_tol(jv_num(&root, "top1"), r.top1, 1e-8);
    ck_assert_double_eq_tol(jv_num(&root, "acc"), 0.625, 1e-9);
    ck_assert_double_eq_tol(jv_num(&root, "tail"), 0.25, 1e-9);
    ck_assert_double_eq_tol(jv_num(&root, "corr_acc"), r.corr_acc, 1e-8);
    ck_assert_double_eq_tol(jv_num(&root, "ece"), 0.125, 1e-9);
    ck_assert(jv_is_null(&root, "nc1"));
    ck_assert(jv_is_null(&root, "cos_all_weights"));
    ck_assert_double_eq(jv_num(&root, "n_classes"), 6);
    const jv *th = jv_get(&root, "thresholds");
    ck_assert_double_eq(jv_num(th, "many"), 100);
    ck_assert_double_eq(jv_num(th, "few"), 20);
    ck_assert_str_eq(jv_get(&root, "split_rule")->str, "shots");
    ck_assert_str_eq(jv_get(&root, "restricted_to")->str, "all");
    const jv *cl = jv_get(&root, "classes");
    ck_assert_int_eq(cl->type, 'a');
    ck_assert_int_eq(cl->n, 6);
    ck_assert_str_eq(jv_get(&cl->items[2], "name")->str, "cat\tdog");
    ck_assert_str_eq(jv_get(&cl->items[3], "name")->str, "d\"q");
    ck_assert_str_eq(jv_get(&cl->items[4], "split")->str, "tail");
    ck_assert_double_eq(jv_num(&cl->items[0], "train_count"), 150);
    ck_assert_double_eq(jv_num(&cl->items[3], "test_count"), 4);
    ck_assert_double_eq_tol(jv_num(&cl->items[3], "acc"), 0.25, 1e-9);
    ck_assert_double_eq(jv_num(&cl->items[0], "pred_count"), 18);
    jv_free(&root);
    free(buf);

    /* Restricted to tail: the table lists the two tail classes. */
    cx_eval_report_restrict(&r, CX_SPLIT_TAIL);
    buf = NULL;
    fp = open_memstream(&buf, &len);
    cx_json_init(&j, fp, 0);
    cx_eval_report_json(&r, &j);
    fclose(fp);
    p = buf;
    ck_assert(parse_value(&p, &root));
    cl = jv_get(&root, "classes");
    ck_assert_int_eq(cl->n, 2);
    ck_assert_str_eq(jv_get(&cl->items[1], "name")->str, "fox");
    ck_assert_double_eq_tol(jv_num(&root, "top1"), 0.25, 1e-9);
    ck_assert_str_eq(jv_get(&root, "restricted_to")->str, "tail");
    jv_free(&root);
    free(buf);
    cx_eval_report_free(&r);
}
END_TEST

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/check_eval_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Lines of a file split at tabs: returns the line count, checks every line has `fields`. */
static int tsv_shape(const char *path, int fields, char first_line[512])
{
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    char line[4096];
    int lines = 0;
    while (fgets(line, sizeof line, fp)) {
        ck_assert_msg(strchr(line, '\n') != NULL, "line %d unterminated", lines + 1);
        int f = 1;
        for (char *c = line; *c; c++)
            f += *c == '\t';
        ck_assert_msg(f == fields, "%s line %d: %d fields, want %d", path, lines + 1, f, fields);
        ck_assert_ptr_null(strchr(line, '"'));
        if (lines == 0)
            snprintf(first_line, 512, "%.500s", line);
        lines++;
    }
    fclose(fp);
    return lines;
}

START_TEST(report_tsv_shape_and_atomic_files)
{
    cx_eval_report r;
    crafted_report(&r, CX_REPORT_ALL);
    char path[128], head[512];
    cx_err err;
    snprintf(path, sizeof path, "%s/per_class.tsv", tmpdir);
    ck_assert_int_eq(cx_eval_save_per_class_tsv(&r, path, &err), CX_OK);
    ck_assert_int_eq(tsv_shape(path, 16, head), 7);
    ck_assert_ptr_nonnull(strstr(head, "class\tname\tsplit\ttrain_count\ttest_count"));
    FILE *fp = fopen(path, "r");
    char line[512];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    ck_assert_str_eq(line, "0\tant\thead\t150\t10\t9\t0.9\t1\t18\t0.5\t0.642857143\tNaN\tNaN\tNaN"
                           "\tNaN\tNaN\n");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    ck_assert_ptr_nonnull(fgets(line, sizeof line, fp));
    ck_assert_ptr_nonnull(strstr(line, "2\tcat dog\tmid\t100\t"));
    fclose(fp);
    snprintf(path, sizeof path, "%s/confusion.tsv", tmpdir);
    ck_assert_int_eq(cx_eval_save_confusion_tsv(&r, path, &err), CX_OK);
    ck_assert_int_eq(tsv_shape(path, 7, head), 7);
    ck_assert_str_eq(head, "truth\tant\tbee\tcat dog\td'q\t4\tfox\n");
    snprintf(path, sizeof path, "%s/eval.json", tmpdir);
    ck_assert_int_eq(cx_eval_report_save_json(&r, path, &err), CX_OK);
    ck_assert_int_eq(access(path, R_OK), 0);
    /* Restricted: the per-class table lists the tail only; the confusion stays whole. */
    cx_eval_report_restrict(&r, CX_SPLIT_TAIL);
    snprintf(path, sizeof path, "%s/per_class.tsv", tmpdir);
    ck_assert_int_eq(cx_eval_save_per_class_tsv(&r, path, &err), CX_OK);
    ck_assert_int_eq(tsv_shape(path, 16, head), 3);
    /* A missing folder fails without leaving anything. */
    snprintf(path, sizeof path, "%s/missing/per_class.tsv", tmpdir);
    ck_assert_int_eq(cx_eval_save_per_class_tsv(&r, path, &err), CX_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "missing/per_class.tsv"));
    cx_eval_report_free(&r);
}
END_TEST

/* ---- neural collapse and coherence ------------------------------------------------------------ */

/* The 3-class toy: means (1, 0), (-1, 0), (0, 3); mu_G = (0, 1); Sigma_B = diag(2/3, 2).
 * Deviations: class 0 +-(.5, 0), class 1 +-(0, 1), class 2 +-(1, 1); N = 6:
 * NC1 = .5 * 1.5 / 6 = .125, 2 * .5 / 6 = 1/6, (2 * 1.5 + 2 * .5) / 6 = 2/3. */
static const float toy_h[6 * 2] = {1.5f, 0, 0.5f, 0, -1, 1, -1, -1, 1, 4, -1, 2};
static const int32_t toy_y[6] = {0, 0, 1, 1, 2, 2};

static void check_toy_nc1(const cx_collapse *c)
{
    ck_assert_int_eq(c->rank, 2);
    ck_assert_double_eq_tol(c->nc1_class[0], 0.125, 1e-6);
    ck_assert_double_eq_tol(c->nc1_class[1], 1.0 / 6, 1e-6);
    ck_assert_double_eq_tol(c->nc1_class[2], 2.0 / 3, 1e-6);
    ck_assert_double_eq_tol(c->nc1, (0.125 + 1.0 / 6 + 2.0 / 3) / 3, 1e-6);
}

START_TEST(nc1_toy_feature_space_path)
{
    cx_collapse c;
    cx_err err;
    /* C' = 3 > D = 2: the D x D eigen-decomposition. */
    ck_assert_int_eq(cx_collapse_compute(&c, toy_h, toy_y, 6, 3, 2, NULL, 1, &err), CX_OK);
    check_toy_nc1(&c);
    ck_assert_int_eq(c.n_present, 3);
    cx_collapse_free(&c);
}
END_TEST

START_TEST(nc1_toy_gram_path_and_absent_class)
{
    /* The toy in D = 4 with a within-class deviation along an axis the class means do not
     * span (dimension 3): Sigma_B^+ ignores it, so NC1 is unchanged. C' = 3 <= D: the C x C
     * Gram path. Class 3 has no vector: NaN, and it does not count in C'. */
    float h[6 * 4] = {0};
    for (int i = 0; i < 6; i++) {
        h[i * 4 + 0] = toy_h[i * 2 + 0];
        h[i * 4 + 1] = toy_h[i * 2 + 1];
        h[i * 4 + 3] = i % 2 ? 5.0f : -5.0f;
    }
    cx_collapse c;
    cx_err err;
    ck_assert_int_eq(cx_collapse_compute(&c, h, toy_y, 6, 4, 4, NULL, 1, &err), CX_OK);
    check_toy_nc1(&c);
    ck_assert_int_eq(c.n_present, 3);
    ck_assert(isnan(c.nc1_class[3]));
    ck_assert(isnan(c.means_cos_all_class[3]));
    cx_collapse_free(&c);
    /* One class only: undefined. */
    int32_t same[6] = {0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(cx_collapse_compute(&c, h, same, 6, 4, 4, NULL, 1, &err), CX_OK);
    ck_assert(isnan(c.nc1));
    cx_collapse_free(&c);
    h[5] = NAN;
    ck_assert_int_eq(cx_collapse_compute(&c, h, toy_y, 6, 4, 4, NULL, 1, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "feature vector 1"));
}
END_TEST

START_TEST(nc1_rank_deficient_with_more_classes_than_dimensions)
{
    /* C' = 4 > D = 3, but the class means span only the x-y plane: M^T M = diag(2, 18, 0) is
     * singular, so Cholesky is refused and the pseudo-inverse ignores z (the deviations of 5
     * along it do not count). Deviations +-(.5, 0), +-(0, 1), +-(1, 0), +-(0, 3) in x-y; with
     * Sigma_B^+ = (C' / N) diag(1/2, 1/18): NC1 = .125, 1/18, .5, .5. */
    const float h[8 * 3] = {1.5f, 0, 5, 0.5f, 0, -5, -1, 1, 5, -1, -1, -5,
                            1, 3, 5, -1, 3, -5, 0, 0, -5, 0, -6, 5};
    const int32_t y[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    cx_collapse c;
    cx_err err;
    ck_assert_int_eq(cx_collapse_compute(&c, h, y, 8, 4, 3, NULL, 1, &err), CX_OK);
    ck_assert_int_eq(c.rank, 2);
    ck_assert_double_eq_tol(c.nc1_class[0], 0.125, 1e-6);
    ck_assert_double_eq_tol(c.nc1_class[1], 1.0 / 18, 1e-6);
    ck_assert_double_eq_tol(c.nc1_class[2], 0.5, 1e-6);
    ck_assert_double_eq_tol(c.nc1_class[3], 0.5, 1e-6);
    cx_collapse_free(&c);
}
END_TEST

/* x^T A^-1 x with A^-1 by Gauss-Jordan elimination with partial pivoting, in double. */
static void invert_dense(double *a, int n, double *inv)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            inv[i * n + j] = i == j;
    for (int c = 0; c < n; c++) {
        int p = c;
        for (int r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
                p = r;
        for (int j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[p * n + j];
            a[p * n + j] = t;
            t = inv[c * n + j];
            inv[c * n + j] = inv[p * n + j];
            inv[p * n + j] = t;
        }
        double d = a[c * n + c];
        for (int j = 0; j < n; j++) {
            a[c * n + j] /= d;
            inv[c * n + j] /= d;
        }
        for (int r = 0; r < n; r++)
            if (r != c) {
                double f = a[r * n + c];
                for (int j = 0; j < n; j++) {
                    a[r * n + j] -= f * a[c * n + j];
                    inv[r * n + j] -= f * inv[c * n + j];
                }
            }
    }
}

/* NC1 of C classes in D dimensions, PER vectors each, against a dense inverse of Sigma_B
 * (well conditioned: it goes through Cholesky). */
static void nc1_against_dense_inverse(int C, int D, int PER, uint64_t seed)
{
    int N = C * PER;
    float *h = malloc(sizeof *h * (size_t)N * D);
    int32_t *y = malloc(sizeof *y * (size_t)N);
    double *mu = calloc((size_t)C * D, sizeof *mu), *g = calloc((size_t)D, sizeof *g);
    double *a = calloc((size_t)D * D, sizeof *a), *inv = malloc(sizeof *inv * (size_t)D * D);
    double *want = calloc((size_t)C, sizeof *want), *x = malloc(sizeof *x * (size_t)D);
    ck_assert(h && y && mu && g && a && inv && want && x);
    cx_rng r;
    cx_rng_seed(&r, seed, 0);
    for (int i = 0; i < N; i++) {
        y[i] = i / PER;
        for (int d = 0; d < D; d++)
            h[i * D + d] = (float)(cx_rng_normal(&r) +
                                   2.0 * cx_rng_normal(&r) * (d + 1 == y[i] % (D + 1)));
    }
    for (int i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            mu[y[i] * D + d] += h[i * D + d] / (double)PER;
    for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++)
            g[d] += mu[c * D + d] / C;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++)
                a[i * D + j] += (mu[c * D + i] - g[i]) * (mu[c * D + j] - g[j]);
    invert_dense(a, D, inv);
    for (int i = 0; i < N; i++) {
        for (int d = 0; d < D; d++)
            x[d] = h[i * D + d] - mu[y[i] * D + d];
        for (int p = 0; p < D; p++)
            for (int q = 0; q < D; q++)
                want[y[i]] += x[p] * inv[p * D + q] * x[q] * C / N;
    }
    cx_collapse c;
    cx_err err;
    ck_assert_int_eq(cx_collapse_compute(&c, h, y, N, C, D, NULL, 1, &err), CX_OK);
    ck_assert_int_eq(c.rank, D);
    for (int k = 0; k < C; k++)
        ck_assert_double_eq_tol(c.nc1_class[k], want[k], 1e-5 * want[k]);
    cx_collapse_free(&c);
    free(h);
    free(y);
    free(mu);
    free(g);
    free(a);
    free(inv);
    free(want);
    free(x);
}

START_TEST(nc1_full_rank_against_dense_inverse)
{
    /* 12 classes in 5 dimensions, 10 vectors each: Sigma_B is of full rank and well
     * conditioned, so NC1 goes through Cholesky; the reference inverts Sigma_B densely. */
    nc1_against_dense_inverse(12, 5, 10, 11);
    /* M^T M's register tiles (4 rows x 8 columns over blocks of 64 classes) with the edges
     * done one by one: 21 dimensions (two panels of 8, five columns and one row group left)
     * and 150 classes (three class blocks, the last one partial). */
    nc1_against_dense_inverse(150, 21, 3, 12);
}
END_TEST

START_TEST(spd_inverse_factor_and_its_refusals)
{
    enum { n = 17 };
    double a[n * n], linv[n * n];
    cx_rng r;
    cx_rng_seed(&r, 5, 0);
    double b[n * n];
    for (int i = 0; i < n * n; i++)
        b[i] = cx_rng_normal(&r);
    for (int i = 0; i < n; i++) /* A = B B^T + n I: symmetric, positive definite */
        for (int j = 0; j < n; j++) {
            double s = i == j ? n : 0.0;
            for (int k = 0; k < n; k++)
                s += b[i * n + k] * b[j * n + k];
            a[i * n + j] = s;
        }
    int ok = 0;
    cx_err err;
    ck_assert_int_eq(cx_spd_inverse_factor(a, n, 1e4, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 1);
    /* L^-1 A L^-T = I, and L^-1 is lower triangular. */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (j > i)
                ck_assert_double_eq(linv[i * n + j], 0.0);
            double s = 0.0;
            for (int p = 0; p < n; p++)
                for (int q = 0; q < n; q++)
                    s += linv[i * n + p] * a[p * n + q] * linv[j * n + q];
            ck_assert_double_eq_tol(s, i == j, 1e-10);
        }
    /* Ill-conditioned (10^6), singular, indefinite: refused, not an error. */
    double d[3 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 1e-6};
    ck_assert_int_eq(cx_spd_inverse_factor(d, 3, 1e4, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 0);
    ck_assert_int_eq(cx_spd_inverse_factor(d, 3, 1e7, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 1);
    ck_assert_double_eq_tol(linv[8], 1e3, 1e-6);
    d[8] = 0.0;
    ck_assert_int_eq(cx_spd_inverse_factor(d, 3, 1e30, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 0);
    d[8] = -1.0;
    ck_assert_int_eq(cx_spd_inverse_factor(d, 3, 1e30, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 0);
    d[8] = NAN;
    ck_assert_int_eq(cx_spd_inverse_factor(d, 3, 1e30, linv, &ok, &err), CX_OK);
    ck_assert_int_eq(ok, 0);
}
END_TEST

START_TEST(coherence_toy)
{
    /* Centred means (1, -1), (-1, -1), (0, 2): cosines 0, -1/sqrt2, -1/sqrt2; plus 1/(C-1) = .5:
     * |G| = .5 (0-1), .2071 (0-2, 1-2). */
    cx_collapse c;
    cx_err err;
    /* Weights: a simplex ETF in 2-D has G = 0 exactly. */
    float w[3 * 2] = {1, 0, -0.5f, 0.8660254f, -0.5f, -0.8660254f};
    ck_assert_int_eq(cx_collapse_compute(&c, toy_h, toy_y, 6, 3, 2, w, 0, &err), CX_OK);
    double g = 0.5 - 1 / sqrt(2.0);
    ck_assert_double_eq_tol(c.means_cos_all_class[0], (0.5 + fabs(g)) / 2, 1e-6);
    ck_assert_double_eq_tol(c.means_cos_all_class[2], fabs(g), 1e-6);
    ck_assert_double_eq_tol(c.means_cos_nearest_class[1], 0.5, 1e-6);
    ck_assert_double_eq_tol(c.means_cos_nearest_class[2], fabs(g), 1e-6);
    ck_assert_double_eq_tol(c.means_cos_all, 0.304737854124365, 1e-6);
    ck_assert_double_eq_tol(c.means_cos_nearest, 0.402368927062182, 1e-6);
    ck_assert_double_eq_tol(c.weights_cos_all, 0.0, 1e-6);
    ck_assert_double_eq_tol(c.weights_cos_nearest, 0.0, 1e-6);
    ck_assert_ptr_null(c.nc1_class); /* not asked for */
    ck_assert(isnan(c.nc1));
    /* Into the report and its JSON. */
    cx_eval_report r;
    int64_t conf[9] = {2, 0, 0, 0, 2, 0, 0, 0, 2}, train[3] = {2, 2, 2};
    ck_assert_int_eq(cx_eval_report_from_counts(&r, conf, NULL, 3, train, NULL, 3, NULL, &err),
                     CX_OK);
    ck_assert_int_eq(cx_eval_report_attach_collapse(&r, &c, &err), CX_OK);
    ck_assert_double_eq(r.means_cos_all, c.means_cos_all);
    ck_assert_double_eq_tol(r.weights_cos_all_class[1], 0.0, 1e-6);
    cx_collapse_free(&c);
    cx_eval_report_free(&r);
    double ca[1], cn[1];
    float one[2] = {1, 0};
    ck_assert_int_eq(cx_coherence(one, 1, 2, ca, cn, &err), CX_OK);
    ck_assert(isnan(ca[0]) && isnan(cn[0]));
}
END_TEST

/* ---- linear probe ---------------------------------------------------------------------------- */

/* f and its gradient in double by the definition, for theta = [W (C, D), b (C)]. */
static double brute_objective(const float *x, const int32_t *y, int N, int C, int D,
                              double lambda, const double *theta, double *g)
{
    const double *b = theta + C * D;
    double f = 0.0, z[16];
    memset(g, 0, sizeof *g * (C * D + C));
    for (int i = 0; i < N; i++) {
        double m = -1e300, s = 0.0;
        for (int c = 0; c < C; c++) {
            z[c] = b[c];
            for (int d = 0; d < D; d++)
                z[c] += theta[c * D + d] * x[i * D + d];
            m = fmax(m, z[c]);
        }
        for (int c = 0; c < C; c++)
            s += exp(z[c] - m);
        double lse = m + log(s);
        f += lse - z[y[i]];
        for (int c = 0; c < C; c++) {
            double p = exp(z[c] - lse) - (c == y[i]);
            for (int d = 0; d < D; d++)
                g[c * D + d] += p * x[i * D + d] / N;
            g[C * D + c] += p / N;
        }
    }
    double reg = 0.0;
    for (int k = 0; k < C * D; k++) {
        reg += theta[k] * theta[k];
        g[k] += lambda * theta[k];
    }
    return f / N + 0.5 * lambda * reg;
}

START_TEST(logreg_objective_matches_definition)
{
    enum { C = 3, D = 4, N = 50 };
    float x[N * D];
    int32_t y[N];
    blobs(x, y, C, N / C, D, 1.0, 1.0, 5);
    for (int i = (N / C) * C; i < N; i++) {
        for (int d = 0; d < D; d++)
            x[i * D + d] = 0.1f * d;
        y[i] = i % C;
    }
    double theta[C * D + C], g[C * D + C], gb[C * D + C], f;
    cx_rng r;
    cx_rng_seed(&r, 9, 0);
    for (int k = 0; k < C * D + C; k++)
        theta[k] = 0.5 * cx_rng_normal(&r);
    cx_err err;
    ck_assert_int_eq(cx_logreg_objective(x, y, N, C, D, 0.3, theta, &f, g, &err), CX_OK);
    double fb = brute_objective(x, y, N, C, D, 0.3, theta, gb);
    ck_assert_double_eq_tol(f, fb, 1e-6 * fabs(fb));
    for (int k = 0; k < C * D + C; k++)
        ck_assert_double_eq_tol(g[k], gb[k], 1e-6);
    /* Central differences agree with the analytic gradient. */
    for (int k = 0; k < C * D + C; k += 3) {
        double h = 1e-3, save = theta[k], fp, fm, tmp[C * D + C];
        theta[k] = save + h;
        fp = brute_objective(x, y, N, C, D, 0.3, theta, tmp);
        theta[k] = save - h;
        fm = brute_objective(x, y, N, C, D, 0.3, theta, tmp);
        theta[k] = save;
        ck_assert_double_eq_tol((fp - fm) / (2 * h), gb[k], 1e-6);
    }
}
END_TEST

START_TEST(linprobe_separable_reaches_100)
{
    enum { C = 3, D = 5, NP = 40, NT = 30 };
    float xtr[C * NP * D], xte[C * NT * D];
    int32_t ytr[C * NP], yte[C * NT];
    blobs(xtr, ytr, C, NP, D, 3.0, 0.4, 21);
    blobs(xte, yte, C, NT, D, 3.0, 0.4, 22);
    cx_eval_classifier clf;
    cx_probe_info info;
    cx_err err;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, xtr, ytr, C * NP, C, D, NULL, &info, &err), CX_OK);
    ck_assert_int_eq(info.grid, 45);
    ck_assert_int_eq(info.n_val, C * 8); /* round(0.2 * 40) per class */
    ck_assert_int_eq(info.n_train, C * 32);
    ck_assert_double_eq_tol(info.grid_lambda[0], 1e-6, 1e-15);
    ck_assert_double_eq_tol(info.grid_lambda[44], 1e5, 1e-6);
    ck_assert_double_eq(info.val_acc, 1.0);
    /* Ties go to the larger lambda: the winner is the largest with the best accuracy. */
    int last_best = -1;
    for (int g = 0; g < 45; g++) {
        ck_assert(info.grid_val_acc[g] <= info.val_acc);
        if (info.grid_val_acc[g] == info.val_acc)
            last_best = g;
    }
    ck_assert_double_eq(info.lambda, info.grid_lambda[last_best]);
    ck_assert_int_eq(info.fit.stop != CX_LBFGS_MAXITER, 1);
    cx_eval_pred p;
    ck_assert_int_eq(cx_eval_score(&clf, xtr, ytr, C * NP, 0, &p, &err), CX_OK);
    for (int c = 0; c < C; c++)
        ck_assert_int_eq(p.confusion[c * C + c], NP);
    cx_eval_pred_free(&p);
    ck_assert_int_eq(cx_eval_score(&clf, xte, yte, C * NT, 0, &p, &err), CX_OK);
    for (int c = 0; c < C; c++)
        ck_assert_int_eq(p.confusion[c * C + c], NT);
    cx_eval_pred_free(&p);
    /* Same options, same bits. */
    cx_eval_classifier again;
    ck_assert_int_eq(cx_eval_linear_probe(&again, xtr, ytr, C * NP, C, D, NULL, NULL, &err), CX_OK);
    ck_assert_mem_eq(again.w, clf.w, sizeof(float) * C * D);
    ck_assert_mem_eq(again.b, clf.b, sizeof(float) * C);
    cx_eval_classifier_free(&again);
    cx_eval_classifier_free(&clf);
    cx_probe_info_free(&info);
}
END_TEST

START_TEST(linprobe_gradient_zero_at_optimum)
{
    /* Overlapping classes and a fixed lambda: the L2 optimum is interior and unique. */
    enum { C = 3, D = 4, NP = 30 };
    float x[C * NP * D];
    int32_t y[C * NP];
    blobs(x, y, C, NP, D, 1.0, 1.0, 31);
    cx_probe_opts o;
    cx_probe_defaults(&o);
    o.grid = 1;
    o.lambda = 1e-2;
    o.normalize = 0;
    o.lbfgs.gtol = 1e-9;
    o.lbfgs.ftol = 0.0;
    o.chunk = 16; /* several chunks in the objective */
    cx_eval_classifier clf;
    cx_probe_info info;
    cx_err err;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, x, y, C * NP, C, D, &o, &info, &err), CX_OK);
    ck_assert_int_eq(info.n_val, 0);
    ck_assert(isnan(info.val_acc));
    ck_assert_double_eq(info.lambda, 1e-2);
    double theta[C * D + C], g[C * D + C], g0[C * D + C], zero[C * D + C] = {0};
    for (int k = 0; k < C * D; k++)
        theta[k] = clf.w[k];
    for (int c = 0; c < C; c++)
        theta[C * D + c] = clf.b[c];
    brute_objective(x, y, C * NP, C, D, 1e-2, theta, g);
    brute_objective(x, y, C * NP, C, D, 1e-2, zero, g0);
    double gmax = 0, g0max = 0;
    for (int k = 0; k < C * D + C; k++) {
        gmax = fmax(gmax, fabs(g[k]));
        g0max = fmax(g0max, fabs(g0[k]));
    }
    ck_assert_msg(gmax < 1e-5, "gradient at the returned optimum: %g", gmax);
    ck_assert(g0max > 0.1); /* the test could fail: the start is far from optimal */
    cx_eval_classifier_free(&clf);
    cx_probe_info_free(&info);
    /* Options and data errors. */
    o.grid = 0;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, x, y, C * NP, C, D, &o, NULL, &err), CX_EUSAGE);
    o.grid = 5;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, x, y, 2, C, D, &o, NULL, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "none for validation"));
    x[7] = NAN;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, x, y, C * NP, C, D, &o, NULL, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "training vector 1"));
}
END_TEST

START_TEST(linprobe_class_without_training_vectors)
{
    /* Class 3 has no training vector: the fit still ends, and never predicts it. */
    enum { C = 4, D = 5, NP = 20 };
    float x[3 * NP * D];
    int32_t y[3 * NP];
    blobs(x, y, 3, NP, D, 3.0, 0.4, 61);
    cx_probe_opts o;
    cx_probe_defaults(&o);
    o.grid = 6;
    cx_eval_classifier clf;
    cx_probe_info info;
    cx_err err;
    ck_assert_int_eq(cx_eval_linear_probe(&clf, x, y, 3 * NP, C, D, &o, &info, &err), CX_OK);
    ck_assert_int_eq(info.grid, 6);
    ck_assert_double_eq_tol(info.grid_lambda[1], pow(10.0, -6.0 + 11.0 / 5), 1e-12);
    cx_eval_pred p;
    ck_assert_int_eq(cx_eval_score(&clf, x, y, 3 * NP, 0, &p, &err), CX_OK);
    for (int c = 0; c < 3; c++)
        ck_assert_int_eq(p.confusion[c * C + c], NP);
    ck_assert(clf.b[3] < clf.b[0]);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
    cx_probe_info_free(&info);
}
END_TEST

/* ---- the whole path ------------------------------------------------------------------------- */

START_TEST(zeroshot_pipeline_report)
{
    /* Class embeddings e_c; test vectors near e_c; everything right, ECE from 100-cos softmax. */
    enum { C = 6, D = 8, NP = 20 };
    float emb[2 * C * D] = {0}, x[C * NP * D];
    int32_t y[C * NP];
    for (int t = 0; t < 2; t++)
        for (int c = 0; c < C; c++)
            emb[(t * C + c) * D + c] = 1.0f + t;
    blobs(x, y, C, NP, D, 2.0, 0.05, 41);
    cx_eval_classifier clf;
    cx_eval_pred p;
    cx_eval_report r;
    cx_collapse col;
    cx_err err;
    int64_t train[C] = {1000, 200, 100, 50, 10, 1};
    const char *names[C] = {"a", "b", "c", "d", "e", "f"};
    ck_assert_int_eq(cx_eval_zeroshot(&clf, emb, 2, C, D, 100.0f, &err), CX_OK);
    ck_assert_int_eq(cx_eval_score(&clf, x, y, C * NP, 16, &p, &err), CX_OK);
    ck_assert_int_eq(cx_eval_report_build(&r, &p, y, train, names, NULL, &err), CX_OK);
    ck_assert_int_eq(cx_collapse_compute(&col, x, y, C * NP, C, D, clf.w, 1, &err), CX_OK);
    ck_assert_int_eq(cx_eval_report_attach_collapse(&r, &col, &err), CX_OK);
    ck_assert_double_eq(r.top1, 1.0);
    ck_assert_double_eq(r.top5, 1.0);
    ck_assert_double_eq(r.head, 1.0);
    ck_assert_double_eq(r.tail, 1.0);
    ck_assert(isnan(r.corr_acc)); /* constant accuracy */
    ck_assert(isnan(r.corr_pred)); /* constant predicted counts */
    /* Confidences are near 1 and all right: ECE = 1 - mean confidence, small. */
    double mc = 0;
    for (int i = 0; i < C * NP; i++)
        mc += p.conf[i];
    mc /= C * NP;
    ck_assert_double_eq_tol(r.ece, 1.0 - mc, 1e-6);
    ck_assert(r.ece < 0.01);
    /* Tight clusters: tiny NC1; orthogonal weights: cos = 1/(C-1) everywhere. */
    ck_assert(r.nc1 > 0.0 && r.nc1 < 0.01);
    ck_assert_double_eq_tol(r.weights_cos_all, 1.0 / (C - 1), 1e-6);
    cx_collapse_free(&col);
    cx_eval_report_free(&r);
    cx_eval_pred_free(&p);
    cx_eval_classifier_free(&clf);
}
END_TEST

static Suite *eval_suite(void)
{
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("solvers");
    tcase_add_test(tc, symeig_known_tridiagonal);
    tcase_add_test(tc, symeig_random_residual_and_orthogonality);
    tcase_add_test(tc, symeig_rank_deficient);
    tcase_add_test(tc, lbfgs_rosenbrock);
    tcase_add_test(tc, lbfgs_quadratic_and_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("classifiers");
    tcase_add_test(tc, zeroshot_weights_by_hand);
    tcase_add_test(tc, head_classifier_cosine_and_linear);
    tcase_add_test(tc, ncm_toy);
    tcase_add_test(tc, knn_votes_and_ties);
    tcase_add_test(tc, knn_matches_brute_force);
    tcase_add_test(tc, score_top5_by_hand);
    tcase_add_test(tc, score_confusion_matrix);
    tcase_add_test(tc, score_chunked_equals_unchunked);
    tcase_add_test(tc, score_rejects_bad_input);
    tcase_add_test(tc, same_bits_on_one_and_two_threads);
    suite_add_tcase(s, tc);

    tc = tcase_create("metrics");
    tcase_add_test(tc, rank_average_with_ties);
    tcase_add_test(tc, spearman_by_hand);
    tcase_add_test(tc, ece_by_hand);
    tcase_add_test(tc, prf_by_hand);
    tcase_add_test(tc, report_crafted_counts);
    tcase_add_test(tc, group_metrics_by_hand);
    tcase_add_test(tc, report_empty_split_is_null);
    tcase_add_test(tc, report_restrict_to_tail_and_tertile);
    tcase_add_test(tc, report_json_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, report_tsv_shape_and_atomic_files);
    suite_add_tcase(s, tc);

    tc = tcase_create("collapse");
    tcase_add_test(tc, nc1_toy_feature_space_path);
    tcase_add_test(tc, nc1_toy_gram_path_and_absent_class);
    tcase_add_test(tc, nc1_rank_deficient_with_more_classes_than_dimensions);
    tcase_add_test(tc, nc1_full_rank_against_dense_inverse);
    tcase_add_test(tc, spd_inverse_factor_and_its_refusals);
    tcase_add_test(tc, coherence_toy);
    suite_add_tcase(s, tc);

    tc = tcase_create("probe");
    tcase_add_test(tc, logreg_objective_matches_definition);
    tcase_add_test(tc, linprobe_separable_reaches_100);
    tcase_add_test(tc, linprobe_gradient_zero_at_optimum);
    tcase_add_test(tc, linprobe_class_without_training_vectors);
    tcase_add_test(tc, zeroshot_pipeline_report);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(eval_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
