/* Linear and cosine classification heads, with class subsets for vocabulary subsampling. */
#include "lib/model/head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/ops/ops.h"

static const float unit_eps = 1e-12f;

cx_status cx_head_declare(cx_head *h, cx_params *p, const char *prefix, cx_head_kind kind, int C,
                          int D, unsigned flags, unsigned scale_flags, cx_err *err)
{
    memset(h, 0, sizeof *h);
    h->kind = kind;
    h->C = C;
    h->D = D;
    h->b = h->scale = -1;
    char name[CX_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", prefix);
    if ((h->w = cx_params_declare(p, name, 2, (int[]){C, D}, flags, err)) < 0)
        return cx_params_failure(h->w);
    if (kind == CX_HEAD_LINEAR) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        h->b = cx_params_declare(p, name, 1, (int[]){C}, flags | CX_PARAM_NO_DECAY, err);
    } else {
        snprintf(name, sizeof name, "%s.logit_scale", prefix);
        h->scale = cx_params_declare(p, name, 1, (int[]){1}, scale_flags | CX_PARAM_NO_DECAY, err);
    }
    if (h->b < 0 && h->scale < 0) /* the one declared failed */
        return cx_params_failure(kind == CX_HEAD_LINEAR ? h->b : h->scale);
    return CX_OK;
}

cx_status cx_head_alloc(cx_head *h, int max_batch, cx_err *err)
{
    size_t B = (size_t)max_batch, C = (size_t)h->C, D = (size_t)h->D;
    h->max_batch = max_batch;
    h->w_sel = malloc(sizeof(float) * C * D);
    h->b_sel = malloc(sizeof(float) * C);
    h->w_norms = malloc(sizeof(float) * C);
    h->h_unit = malloc(sizeof(float) * B * D);
    h->h_norms = malloc(sizeof(float) * B);
    h->logits = malloc(sizeof(float) * B * C);
    h->dw_sel = malloc(sizeof(float) * C * D);
    h->dh_unit = malloc(sizeof(float) * B * D);
    h->db_sel = malloc(sizeof(float) * C);
    if (!h->w_sel || !h->b_sel || !h->w_norms || !h->h_unit || !h->h_norms || !h->logits ||
        !h->dw_sel || !h->dh_unit || !h->db_sel) {
        cx_head_free(h);
        return cx_fail(err, CX_ENOMEM, "out of memory for the head (%d classes)", h->C);
    }
    return CX_OK;
}

void cx_head_init_params(const cx_head *h, cx_params *p, cx_rng *rng, double scale_init)
{
    float *w = cx_param_value(p, h->w);
    size_t n = (size_t)h->C * (size_t)h->D;
    if (h->kind == CX_HEAD_LINEAR) {
        double bound = 1.0 / sqrt((double)h->D);
        for (size_t i = 0; i < n; i++)
            w[i] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
        float *b = cx_param_value(p, h->b);
        for (int c = 0; c < h->C; c++)
            b[c] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
    } else {
        double std = 1.0 / sqrt((double)h->D);
        for (size_t i = 0; i < n; i++)
            w[i] = (float)(cx_rng_normal(rng) * std);
        cx_param_value(p, h->scale)[0] = (float)log(scale_init);
    }
}

/* Rows classes[0..K) of src (C, D) into dst (K, D). */
static void gather_rows(float *dst, const float *src, const int32_t *classes, int K, int D)
{
    for (int k = 0; k < K; k++)
        memcpy(dst + (size_t)k * (size_t)D, src + (size_t)classes[k] * (size_t)D,
               sizeof(float) * (size_t)D);
}

/* dst rows classes[k] += src row k. */
static void scatter_add_rows(float *dst, const float *src, const int32_t *classes, int K, int D)
{
#pragma omp parallel for schedule(static) if ((long)K * D > 65536)
    for (int k = 0; k < K; k++) {
        float *d = dst + (size_t)classes[k] * (size_t)D;
        const float *s = src + (size_t)k * (size_t)D;
        for (int j = 0; j < D; j++)
            d[j] += s[j];
    }
}

const float *cx_head_forward(cx_head *h, const cx_params *p, const float *feat, int B,
                             const int32_t *classes, int K)
{
    const float *w = cx_param_value(p, h->w);
    h->classes = classes;
    h->K = classes ? K : h->C;
    K = h->K;
    if (h->kind == CX_HEAD_LINEAR) {
        if (!classes) {
            cx_linear_forward(h->logits, feat, w, cx_param_value(p, h->b), B, h->D, h->C);
            return h->logits;
        }
        gather_rows(h->w_sel, w, classes, K, h->D);
        const float *b = cx_param_value(p, h->b);
        for (int k = 0; k < K; k++)
            h->b_sel[k] = b[classes[k]];
        cx_linear_forward(h->logits, feat, h->w_sel, h->b_sel, B, h->D, K);
        return h->logits;
    }
    /* Cosine: unit rows of the scored classes and unit features, scaled by exp(theta). */
    if (classes)
        gather_rows(h->w_sel, w, classes, K, h->D);
    else
        memcpy(h->w_sel, w, sizeof(float) * (size_t)K * (size_t)h->D);
    cx_l2norm_forward(h->w_sel, h->w_norms, h->w_sel, K, h->D, unit_eps);
    cx_l2norm_forward(h->h_unit, h->h_norms, feat, B, h->D, unit_eps);
    float s = expf(cx_param_value(p, h->scale)[0]);
    cx_sgemm(0, 1, B, K, h->D, s, h->h_unit, h->D, h->w_sel, h->D, 0.0f, h->logits, K);
    return h->logits;
}

void cx_head_backward(cx_head *h, cx_params *p, const float *feat, const float *dlogits,
                      float *dfeat, int B)
{
    int K = h->K, D = h->D;
    if (h->kind == CX_HEAD_LINEAR) {
        if (p->info[h->w].flags & CX_PARAM_FROZEN) {
            if (dfeat)
                cx_sgemm(0, 0, B, D, K, 1.0f, dlogits, K, h->classes ? h->w_sel : cx_param_value(p, h->w),
                         D, 0.0f, dfeat, D);
            return;
        }
        if (!h->classes) {
            cx_linear_backward(dfeat, cx_param_grad(p, h->w), cx_param_grad(p, h->b), dlogits, feat,
                               cx_param_value(p, h->w), B, D, K);
            return;
        }
        memset(h->dw_sel, 0, sizeof(float) * (size_t)K * (size_t)D);
        memset(h->db_sel, 0, sizeof(float) * (size_t)K);
        cx_linear_backward(dfeat, h->dw_sel, h->db_sel, dlogits, feat, h->w_sel, B, D, K);
        scatter_add_rows(cx_param_grad(p, h->w), h->dw_sel, h->classes, K, D);
        float *db = cx_param_grad(p, h->b);
        for (int k = 0; k < K; k++)
            db[h->classes[k]] += h->db_sel[k];
        return;
    }
    /* logits = s * U V^T with U unit features, V unit rows: dtheta = sum(dlogits .* logits),
     * dU = s dlogits V, dV = s dlogits^T U, then back through both normalisations. */
    float s = expf(cx_param_value(p, h->scale)[0]);
    double dtheta = 0.0;
    size_t n = (size_t)B * (size_t)K;
    for (size_t i = 0; i < n; i++)
        dtheta += (double)dlogits[i] * (double)h->logits[i];
    cx_param_grad(p, h->scale)[0] += (float)dtheta;
    if (dfeat) {
        cx_sgemm(0, 0, B, D, K, s, dlogits, K, h->w_sel, D, 0.0f, h->dh_unit, D);
        cx_l2norm_backward(dfeat, h->dh_unit, h->h_unit, h->h_norms, B, D, unit_eps);
    }
    if (p->info[h->w].flags & CX_PARAM_FROZEN)
        return;
    cx_sgemm(1, 0, K, D, B, s, dlogits, K, h->h_unit, D, 0.0f, h->dw_sel, D);
    cx_l2norm_backward(h->dw_sel, h->dw_sel, h->w_sel, h->w_norms, K, D, unit_eps);
    if (h->classes) {
        scatter_add_rows(cx_param_grad(p, h->w), h->dw_sel, h->classes, K, D);
    } else {
        float *dw = cx_param_grad(p, h->w);
        size_t nw = (size_t)K * (size_t)D;
        for (size_t i = 0; i < nw; i++)
            dw[i] += h->dw_sel[i];
    }
}

void cx_head_free(cx_head *h)
{
    free(h->w_sel);
    free(h->b_sel);
    free(h->w_norms);
    free(h->h_unit);
    free(h->h_norms);
    free(h->logits);
    free(h->dw_sel);
    free(h->dh_unit);
    free(h->db_sel);
    h->w_sel = h->b_sel = h->w_norms = h->h_unit = h->h_norms = h->logits = NULL;
    h->dw_sel = h->dh_unit = h->db_sel = NULL;
}
