/* DeCLIP's NNS queue and loss (see declip.h). */
#include "lib/objective/declip.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/ops/ops.h"

static const float unit_eps = 1e-12f; /* as the CLIP step's */

void cx_declip_nearest(int32_t *nn, float *sims, const float *q, int n, const float *queue,
                       int filled, int D)
{
    cx_sgemm(0, 1, n, filled, D, 1.0f, q, D, queue, D, 0.0f, sims, filled);
    for (int i = 0; i < n; i++) {
        const float *r = sims + (size_t)i * (size_t)filled;
        int best = 0;
        for (int j = 1; j < filled; j++)
            if (r[j] > r[best])
                best = j;
        nn[i] = best;
    }
}

void cx_declip_enqueue(float *queue, int Q, int *pos, int *filled, const float *x, int n, int D)
{
    int first = n > Q ? n - Q : 0;
    for (int i = first; i < n; i++) {
        memcpy(queue + (size_t)*pos * (size_t)D, x + (size_t)i * (size_t)D, sizeof(float) * (size_t)D);
        *pos = (*pos + 1) % Q;
        if (*filled < Q)
            (*filled)++;
    }
}

double cx_declip_nns_loss(float *dimg, float *dtheta, float *logits, float *prob,
                          const float *img, const float *nn, float scale, int B, int D,
                          float dloss)
{
    cx_sgemm(0, 1, B, B, D, scale, img, D, nn, D, 0.0f, logits, B);
    double loss = 0.0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * (size_t)B;
        float *p = prob + (size_t)i * (size_t)B;
        float mx = z[0];
        for (int j = 1; j < B; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < B; j++)
            sum += (double)(p[j] = expf(z[j] - mx));
        for (int j = 0; j < B; j++)
            p[j] = (float)((double)p[j] / sum);
        loss += (double)mx + log(sum) - (double)z[i];
    }
    loss /= (double)B;
    /* G = dloss (P - I) / B: the gradient of L in the logits. */
    double dth = 0.0;
    for (int i = 0; i < B; i++) {
        float *g = prob + (size_t)i * (size_t)B;
        const float *z = logits + (size_t)i * (size_t)B;
        g[i] -= 1.0f;
        for (int j = 0; j < B; j++) {
            g[j] *= dloss / (float)B;
            dth += (double)g[j] * (double)z[j];
        }
    }
    if (dtheta)
        *dtheta += (float)dth;
    if (dimg)
        cx_sgemm(0, 0, B, D, B, scale, prob, B, nn, D, 0.0f, dimg, D);
    return loss;
}

int cx_declip_work_alloc(cx_declip_work *w, int B, int D, int Q)
{
    memset(w, 0, sizeof *w);
    size_t b = (size_t)B, R = 2 * b, d = (size_t)D;
    w->img = malloc(sizeof(float) * R * d);
    w->txt = malloc(sizeof(float) * R * d);
    w->img_norm = malloc(sizeof(float) * R);
    w->txt_norm = malloc(sizeof(float) * R);
    w->tmp_img = malloc(sizeof(float) * b * d);
    w->tmp_txt = malloc(sizeof(float) * b * d);
    w->logits = malloc(sizeof(float) * b * b);
    w->p_row = malloc(sizeof(float) * b * b);
    w->p_col = malloc(sizeof(float) * b * b);
    w->scratch = malloc(sizeof(float) * b * b);
    w->nn = malloc(sizeof(float) * b * d);
    w->nn_idx = malloc(sizeof(int32_t) * b);
    w->sims = malloc(sizeof(float) * b * (size_t)(Q > 0 ? Q : 1));
    if (!w->img || !w->txt || !w->img_norm || !w->txt_norm || !w->tmp_img || !w->tmp_txt ||
        !w->logits || !w->p_row || !w->p_col || !w->scratch || !w->nn || !w->nn_idx ||
        !w->sims) {
        cx_declip_work_free(w);
        return -1;
    }
    return 0;
}

void cx_declip_work_free(cx_declip_work *w)
{
    free(w->img);
    free(w->txt);
    free(w->img_norm);
    free(w->txt_norm);
    free(w->tmp_img);
    free(w->tmp_txt);
    free(w->logits);
    free(w->p_row);
    free(w->p_col);
    free(w->scratch);
    free(w->nn);
    free(w->nn_idx);
    free(w->sims);
    memset(w, 0, sizeof *w);
}

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

double cx_declip_loss(cx_declip_work *w, float *df, float *dg, float *dtheta, const float *f,
                      const float *g, float scale, const float *queue, int filled, int B, int D,
                      double w_mv, double w_nns)
{
    const int R = 2 * B;
    const size_t half = (size_t)B * (size_t)D;
    cx_l2norm_forward(w->img, w->img_norm, f, R, D, unit_eps);
    cx_l2norm_forward(w->txt, w->txt_norm, g, R, D, unit_eps);
    if (df)
        memset(df, 0, sizeof(float) * 2 * half);
    if (dg)
        memset(dg, 0, sizeof(float) * 2 * half);
    double total = 0.0;
    /* MVS: image view a against caption view b, each a quarter of the term. */
    if (w_mv > 0) {
        double mv = 0.0;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                const float *ia = w->img + a * half, *tb = w->txt + b * half;
                mv += cx_infonce_forward(w->logits, w->p_row, w->p_col, ia, tb, scale, B, D);
                cx_infonce_backward(df ? w->tmp_img : NULL, dg ? w->tmp_txt : NULL, dtheta,
                                    w->scratch, w->p_row, w->p_col, w->logits, ia, tb, scale, B,
                                    D, (float)(w_mv / 4.0));
                if (df)
                    add_into(df + a * half, w->tmp_img, half);
                if (dg)
                    add_into(dg + b * half, w->tmp_txt, half);
            }
        total += w_mv * mv / 4.0;
    }
    /* NNS: each caption view's neighbours are constants (the queue is detached). */
    if (w_nns > 0 && filled > 0) {
        double nns = 0.0;
        for (int v = 0; v < 2; v++) {
            cx_declip_nearest(w->nn_idx, w->sims, w->txt + v * half, B, queue, filled, D);
            for (int i = 0; i < B; i++)
                memcpy(w->nn + (size_t)i * (size_t)D, queue + (size_t)w->nn_idx[i] * (size_t)D,
                       sizeof(float) * (size_t)D);
            nns += cx_declip_nns_loss(df ? w->tmp_img : NULL, dtheta, w->logits, w->p_row,
                                      w->img + v * half, w->nn, scale, B, D, (float)(w_nns / 2.0));
            if (df)
                add_into(df + v * half, w->tmp_img, half);
        }
        total += w_nns * nns / 2.0;
    }
    if (df)
        cx_l2norm_backward(df, df, w->img, w->img_norm, R, D, unit_eps);
    if (dg)
        cx_l2norm_backward(dg, dg, w->txt, w->txt_norm, R, D, unit_eps);
    return total;
}
