/* Post-hoc logit adjustment and tau-normalisation, their tau on validation data, and the
 * validation data (the val split or held-out training rows, lib/eval/run_eval.c). */
#include "lib/eval/posthoc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/eval/score.h"

const char *cx_posthoc_name(cx_posthoc_kind k)
{
    return k == CX_POSTHOC_LOGIT_ADJUST ? "logit-adjust"
           : k == CX_POSTHOC_TAU_NORM   ? "tau-norm"
                                        : "none";
}

int cx_posthoc_default_grid(cx_posthoc_kind k, double *grid, int cap)
{
    int n = k == CX_POSTHOC_LOGIT_ADJUST ? 21 : 11;
    if (n > cap)
        n = cap;
    for (int i = 0; i < n; i++)
        grid[i] = i / 10.0;
    return n;
}

cx_status cx_posthoc_apply(cx_eval_classifier *clf, cx_posthoc_kind kind, double tau,
                           const int64_t *counts, cx_err *err)
{
    if (clf->kind != CX_CLF_LINEAR)
        return cx_fail(err, CX_EUSAGE, "%s applies to linear classifiers, not kNN",
                       cx_posthoc_name(kind));
    int C = clf->C, D = clf->D;
    if (kind == CX_POSTHOC_LOGIT_ADJUST) {
        if (!clf->b && !(clf->b = calloc((size_t)C, sizeof *clf->b)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        double N = 0;
        for (int c = 0; c < C; c++)
            N += (double)(counts[c] > 0 ? counts[c] : 1);
        for (int c = 0; c < C; c++) {
            double pi = (double)(counts[c] > 0 ? counts[c] : 1) / N;
            clf->b[c] = (float)(clf->b[c] - tau * log(pi));
        }
        return CX_OK;
    }
    if (kind == CX_POSTHOC_TAU_NORM) {
        if (clf->normalize)
            return cx_fail(err, CX_EUSAGE,
                           "tau-norm needs a linear classifier: this one's rows are normalised "
                           "already (a cosine or zero-shot classifier)");
        for (int c = 0; c < C; c++) {
            float *w = clf->w + (size_t)c * D;
            double s = 0;
            for (int d = 0; d < D; d++)
                s += (double)w[d] * w[d];
            double norm = sqrt(s);
            if (norm > 0) {
                float f = (float)(1.0 / pow(norm, tau));
                for (int d = 0; d < D; d++)
                    w[d] *= f;
            }
        }
        return CX_OK;
    }
    return CX_OK;
}

cx_status cx_eval_class_mean_acc(const cx_eval_classifier *clf, const float *x, const int32_t *y,
                                 size_t n, double *acc, cx_err *err)
{
    cx_eval_pred p;
    cx_status st = cx_eval_score(clf, x, y, (int)n, 0, &p, err);
    if (st)
        return st;
    double sum = 0;
    int k = 0;
    for (int c = 0; c < p.C; c++) {
        int64_t tot = 0;
        for (int j = 0; j < p.C; j++)
            tot += p.confusion[(size_t)c * p.C + j];
        if (tot > 0) {
            sum += (double)p.confusion[(size_t)c * p.C + c] / (double)tot;
            k++;
        }
    }
    *acc = k ? sum / k : NAN;
    cx_eval_pred_free(&p);
    return CX_OK;
}

static cx_status clf_copy(cx_eval_classifier *dst, const cx_eval_classifier *src, cx_err *err)
{
    *dst = *src;
    dst->w = NULL;
    dst->b = NULL;
    dst->ref = NULL;
    dst->ref_labels = NULL;
    size_t wn = (size_t)src->C * src->D;
    if (!(dst->w = malloc(sizeof *dst->w * wn)) ||
        (src->b && !(dst->b = malloc(sizeof *dst->b * (size_t)src->C)))) {
        cx_eval_classifier_free(dst);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    memcpy(dst->w, src->w, sizeof *dst->w * wn);
    if (src->b)
        memcpy(dst->b, src->b, sizeof *dst->b * (size_t)src->C);
    return CX_OK;
}

cx_status cx_posthoc_select(const cx_eval_classifier *clf, cx_posthoc_kind kind,
                            const double *grid, int ng, const int64_t *counts, const float *x,
                            const int32_t *y, size_t n, double *tau, double *acc,
                            double *grid_acc, cx_err *err)
{
    if (clf->kind != CX_CLF_LINEAR)
        return cx_fail(err, CX_EUSAGE, "%s applies to linear classifiers, not kNN",
                       cx_posthoc_name(kind));
    if (n == 0 || ng < 1)
        return cx_fail(err, CX_EUSAGE, "%s: no validation samples or no candidate tau",
                       cx_posthoc_name(kind));
    *tau = NAN;
    *acc = -1;
    for (int g = 0; g < ng; g++) {
        cx_eval_classifier c;
        cx_status st = clf_copy(&c, clf, err);
        if (st)
            return st;
        double a = NAN;
        if ((st = cx_posthoc_apply(&c, kind, grid[g], counts, err)) ||
            (st = cx_eval_class_mean_acc(&c, x, y, n, &a, err))) {
            cx_eval_classifier_free(&c);
            return st;
        }
        cx_eval_classifier_free(&c);
        if (grid_acc)
            grid_acc[g] = a;
        if (a > *acc) {
            *acc = a;
            *tau = grid[g];
        }
    }
    return CX_OK;
}
