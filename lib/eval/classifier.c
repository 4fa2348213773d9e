/* Builders of the evaluation classifiers: zero-shot prompt ensembles, the model's head,
 * nearest class means and the kNN reference set. */
#include "lib/eval/classifier.h"

#include "lib/eval/internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cx_eval_normalize_row(float *out, const float *x, int D)
{
    double s = 0.0;
    for (int d = 0; d < D; d++)
        s += (double)x[d] * x[d];
    double norm = sqrt(s);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (int d = 0; d < D; d++)
        out[d] = x[d] * inv;
}

cx_status cx_eval_check_labels(const int32_t *y, int N, int C, const char *what, cx_err *err)
{
    for (int i = 0; i < N; i++)
        if (y[i] < 0 || y[i] >= C)
            return cx_fail(err, CX_EDATA, "%s: sample %d: label %d outside 0..%d", what, i,
                           (int)y[i], C - 1);
    return CX_OK;
}

/* First non-finite value of x (n rows of D), or -1. */
static long first_non_finite(const float *x, long n, int D)
{
    for (long i = 0; i < n * D; i++)
        if (!isfinite(x[i]))
            return i / D;
    return -1;
}

static cx_status check_shape(const char *what, int C, int D, cx_err *err)
{
    if (C < 1 || D < 1)
        return cx_fail(err, CX_EUSAGE, "%s: need at least one class and one feature (C %d, D %d)",
                       what, C, D);
    return CX_OK;
}

static cx_status check_scale(const char *what, float scale, cx_err *err)
{
    if (!isfinite(scale) || !(scale > 0.0f))
        return cx_fail(err, CX_EUSAGE, "%s: logit scale %g must be finite and positive", what,
                       (double)scale);
    return CX_OK;
}

void cx_eval_classifier_free(cx_eval_classifier *clf)
{
    if (!clf)
        return;
    free(clf->w);
    free(clf->b);
    free(clf->ref);
    free(clf->ref_labels);
    memset(clf, 0, sizeof *clf);
}

static cx_status alloc_linear(cx_eval_classifier *clf, const char *what, int C, int D, int bias,
                              cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    clf->kind = CX_CLF_LINEAR;
    clf->C = C;
    clf->D = D;
    clf->w = calloc((size_t)C * D, sizeof *clf->w);
    if (bias)
        clf->b = calloc((size_t)C, sizeof *clf->b);
    if (!clf->w || (bias && !clf->b)) {
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for a %d x %d weight matrix", what, C, D);
    }
    return CX_OK;
}

cx_status cx_eval_zeroshot(cx_eval_classifier *clf, const float *emb, int T, int C, int D,
                           float scale, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    cx_status st = check_shape("zero-shot classifier", C, D, err);
    if (st)
        return st;
    if (T < 1)
        return cx_fail(err, CX_EUSAGE, "zero-shot classifier: need at least one template");
    if ((st = check_scale("zero-shot classifier", scale, err)))
        return st;
    long bad = first_non_finite(emb, (long)T * C, D);
    if (bad >= 0)
        return cx_fail(err, CX_EDATA,
                       "zero-shot classifier: template %ld, class %ld: embedding is not finite",
                       bad / C, bad % C);
    if ((st = alloc_linear(clf, "zero-shot classifier", C, D, 0, err)))
        return st;
    clf->normalize = 1;
    clf->scale = scale;
    int nth = cx_eval_max_threads();
    float *tmp_all = malloc(sizeof *tmp_all * (size_t)nth * D);
    double *acc_all = malloc(sizeof *acc_all * (size_t)nth * D);
    if (!tmp_all || !acc_all) {
        free(tmp_all);
        free(acc_all);
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "zero-shot classifier: out of memory");
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        float *tmp = tmp_all + (size_t)cx_eval_thread_id() * D;
        double *acc = acc_all + (size_t)cx_eval_thread_id() * D;
        memset(acc, 0, sizeof *acc * (size_t)D);
        for (int t = 0; t < T; t++) {
            cx_eval_normalize_row(tmp, emb + ((size_t)t * C + c) * D, D);
            for (int d = 0; d < D; d++)
                acc[d] += tmp[d];
        }
        for (int d = 0; d < D; d++)
            tmp[d] = (float)(acc[d] / T);
        cx_eval_normalize_row(clf->w + (size_t)c * D, tmp, D);
    }
    free(tmp_all);
    free(acc_all);
    return CX_OK;
}

cx_status cx_eval_from_head(cx_eval_classifier *clf, const float *w, const float *b, int C, int D,
                            int cosine, float scale, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    cx_status st = check_shape("head classifier", C, D, err);
    if (st)
        return st;
    if (cosine && (st = check_scale("head classifier", scale, err)))
        return st;
    long bad = first_non_finite(w, C, D);
    if (bad >= 0)
        return cx_fail(err, CX_EDATA, "head classifier: class %ld: weights are not finite", bad);
    if (!cosine && b && (bad = first_non_finite(b, C, 1)) >= 0)
        return cx_fail(err, CX_EDATA, "head classifier: class %ld: bias is not finite", bad);
    if ((st = alloc_linear(clf, "head classifier", C, D, !cosine && b, err)))
        return st;
    clf->normalize = cosine != 0;
    clf->scale = cosine ? scale : 1.0f;
    for (int c = 0; c < C; c++) {
        if (cosine)
            cx_eval_normalize_row(clf->w + (size_t)c * D, w + (size_t)c * D, D);
        else
            memcpy(clf->w + (size_t)c * D, w + (size_t)c * D, sizeof *w * (size_t)D);
    }
    if (clf->b)
        memcpy(clf->b, b, sizeof *b * (size_t)C);
    return CX_OK;
}

cx_status cx_eval_ncm(cx_eval_classifier *clf, const float *x, const int32_t *y, int N, int C,
                      int D, float scale, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    cx_status st = check_shape("NCM classifier", C, D, err);
    if (st)
        return st;
    if (N < 0)
        return cx_fail(err, CX_EUSAGE, "NCM classifier: %d training vectors", N);
    if ((st = check_scale("NCM classifier", scale, err)) ||
        (st = cx_eval_check_labels(y, N, C, "NCM classifier: training labels", err)))
        return st;
    long bad = first_non_finite(x, N, D);
    if (bad >= 0)
        return cx_fail(err, CX_EDATA, "NCM classifier: training vector %ld is not finite", bad);
    if ((st = alloc_linear(clf, "NCM classifier", C, D, 0, err)))
        return st;
    clf->normalize = 1;
    clf->scale = scale;
    double *sum = calloc((size_t)C * D, sizeof *sum);
    double *inv = malloc(sizeof *inv * (size_t)(N > 0 ? N : 1));
    if (!sum || !inv) {
        free(sum);
        free(inv);
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "NCM classifier: out of memory");
    }
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        double s = 0.0;
        for (int d = 0; d < D; d++)
            s += (double)x[(size_t)i * D + d] * x[(size_t)i * D + d];
        double norm = sqrt(s);
        inv[i] = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    }
    /* Each thread owns one range of columns and walks all rows in order: one pass over x and
     * a fixed summation order. */
    int parts = cx_eval_max_threads();
    int width = (D + parts - 1) / parts;
#pragma omp parallel for schedule(static)
    for (int bk = 0; bk < parts; bk++) {
        int d0 = bk * width, d1 = d0 + width < D ? d0 + width : D;
        for (int i = 0; i < N; i++) {
            const float *restrict xi = x + (size_t)i * D;
            double *restrict sc = sum + (size_t)y[i] * D;
            float f = (float)inv[i];
#pragma omp simd
            for (int d = d0; d < d1; d++)
                sc[d] += xi[d] * f;
        }
    }
    for (int c = 0; c < C; c++) {
        float *wc = clf->w + (size_t)c * D;
        for (int d = 0; d < D; d++)
            wc[d] = (float)sum[(size_t)c * D + d];
        cx_eval_normalize_row(wc, wc, D); /* the mean's direction: 1/n_c does not matter */
    }
    free(sum);
    free(inv);
    return CX_OK;
}

cx_status cx_eval_knn(cx_eval_classifier *clf, const float *x, const int32_t *y, int N, int C,
                      int D, int k, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    cx_status st = check_shape("kNN classifier", C, D, err);
    if (st)
        return st;
    if (k < 1 || k > CX_KNN_K_MAX)
        return cx_fail(err, CX_EUSAGE, "kNN classifier: k = %d, must lie in 1..%d", k,
                       CX_KNN_K_MAX);
    if (N < 1)
        return cx_fail(err, CX_EDATA, "kNN classifier: no training vectors");
    if ((st = cx_eval_check_labels(y, N, C, "kNN classifier: training labels", err)))
        return st;
    long bad = first_non_finite(x, N, D);
    if (bad >= 0)
        return cx_fail(err, CX_EDATA, "kNN classifier: training vector %ld is not finite", bad);
    clf->kind = CX_CLF_KNN;
    clf->C = C;
    clf->D = D;
    clf->normalize = 1;
    clf->scale = 1.0f;
    clf->k = k < N ? k : N;
    clf->n_ref = N;
    clf->ref = malloc(sizeof *clf->ref * (size_t)N * D);
    clf->ref_labels = malloc(sizeof *clf->ref_labels * (size_t)N);
    if (!clf->ref || !clf->ref_labels) {
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "kNN classifier: out of memory for %d x %d vectors", N, D);
    }
    memcpy(clf->ref_labels, y, sizeof *y * (size_t)N);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++)
        cx_eval_normalize_row(clf->ref + (size_t)i * D, x + (size_t)i * D, D);
    return CX_OK;
}
