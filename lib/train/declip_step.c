/* The DeCLIP step: views, the multi-view and nearest-neighbour losses, backward, the queue
 * (see declip_step.h). */
#include "lib/train/declip_step.h"

#include <stdlib.h>
#include <string.h>

#include "lib/objective/declip.h"
#include "lib/ops/ops.h"

static const float unit_eps = 1e-12f; /* as the CLIP step's */

cx_status cx_declip_step_init(cx_declip_step *d, const cx_model *m, int max_batch, double w_mv,
                              double w_nns, cx_err *err)
{
    memset(d, 0, sizeof *d);
    const cx_model_spec *s = &m->spec;
    if (s->objective != CX_OBJECTIVE_CLIP || s->max_batch < 2 * max_batch)
        return cx_fail(err, CX_EUSAGE, "the DeCLIP step needs a CLIP model of %d rows",
                       2 * max_batch);
    if (w_nns > 0 && m->queue < 0)
        return cx_fail(err, CX_EUSAGE, "declip.nns: the model holds no caption queue");
    d->max_batch = max_batch;
    d->in_dim = s->in_dim;
    d->D = s->embed_dim;
    d->Q = w_nns > 0 ? s->declip_queue : 0;
    d->w_mv = w_mv;
    d->w_nns = w_nns;
    size_t B = (size_t)max_batch, R = 2 * B, D = (size_t)d->D;
    d->views = malloc(sizeof(float) * R * (size_t)d->in_dim);
    d->img = malloc(sizeof(float) * R * D);
    d->txt = malloc(sizeof(float) * R * D);
    d->img_norm = malloc(sizeof(float) * R);
    d->txt_norm = malloc(sizeof(float) * R);
    d->d_img = malloc(sizeof(float) * R * D);
    d->d_txt = malloc(sizeof(float) * R * D);
    d->tmp_img = malloc(sizeof(float) * B * D);
    d->tmp_txt = malloc(sizeof(float) * B * D);
    d->logits = malloc(sizeof(float) * B * B);
    d->p_row = malloc(sizeof(float) * B * B);
    d->p_col = malloc(sizeof(float) * B * B);
    d->scratch = malloc(sizeof(float) * B * B);
    d->nn = malloc(sizeof(float) * B * D);
    d->nn_idx = malloc(sizeof(int32_t) * B);
    d->sims = malloc(sizeof(float) * B * (size_t)(d->Q > 0 ? d->Q : 1));
    if (!d->views || !d->img || !d->txt || !d->img_norm || !d->txt_norm || !d->d_img ||
        !d->d_txt || !d->tmp_img || !d->tmp_txt || !d->logits || !d->p_row || !d->p_col ||
        !d->scratch || !d->nn || !d->nn_idx || !d->sims) {
        cx_declip_step_free(d);
        return cx_fail(err, CX_ENOMEM, "out of memory for the DeCLIP step's buffers (batch %d, "
                       "queue %d)", max_batch, d->Q);
    }
    return CX_OK;
}

static void add_into(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

cx_status cx_declip_step_run(cx_declip_step *d, cx_model *m, const cx_aug_config *aug,
                             const cx_aug_shape *shape, uint64_t seed, uint64_t step,
                             const uint64_t *samples, const float *in, const int32_t *tokens,
                             int B, double *loss, cx_err *err)
{
    if (B < 1 || B > d->max_batch)
        return cx_fail(err, CX_EUSAGE, "DeCLIP step of %d samples, at most %d", B, d->max_batch);
    const int R = 2 * B, D = d->D;
    const size_t half = (size_t)B * (size_t)D;
    cx_params *p = &m->params;
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 0, in, d->views);
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 1, in,
                      d->views + (size_t)B * (size_t)d->in_dim);
    int image_grad = cx_model_image_trainable(m), text_grad = !m->spec.text_frozen;
    const float *f = cx_model_image_forward(m, d->views, R);
    cx_l2norm_forward(d->img, d->img_norm, f, R, D, unit_eps);
    const float *g = cx_model_text_forward(m, tokens, R);
    cx_l2norm_forward(d->txt, d->txt_norm, g, R, D, unit_eps);
    memset(d->d_img, 0, sizeof(float) * 2 * half);
    memset(d->d_txt, 0, sizeof(float) * 2 * half);
    float scale = cx_model_logit_scale(m);
    float *dtheta = cx_param_grad(p, m->logit_scale);
    double total = 0.0;

    /* MVS: image view a against caption view b, each a quarter of the term. */
    if (d->w_mv > 0) {
        double mv = 0.0;
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                const float *ia = d->img + a * half, *tb = d->txt + b * half;
                mv += cx_infonce_forward(d->logits, d->p_row, d->p_col, ia, tb, scale, B, D);
                cx_infonce_backward(d->tmp_img, d->tmp_txt, dtheta, d->scratch, d->p_row,
                                    d->p_col, d->logits, ia, tb, scale, B, D,
                                    (float)(d->w_mv / 4.0));
                add_into(d->d_img + a * half, d->tmp_img, half);
                add_into(d->d_txt + b * half, d->tmp_txt, half);
            }
        total += d->w_mv * mv / 4.0;
    }

    /* NNS: each view's captions query the queue before this batch joins it. */
    float *pos = d->Q > 0 ? cx_param_value(p, m->queue_pos) : NULL;
    int qpos = pos ? (int)pos[0] : 0, filled = pos ? (int)pos[1] : 0;
    if (d->Q > 0 && filled > 0) {
        const float *queue = cx_param_value(p, m->queue);
        double nns = 0.0;
        for (int v = 0; v < 2; v++) {
            cx_declip_nearest(d->nn_idx, d->sims, d->txt + v * half, B, queue, filled, D);
            for (int i = 0; i < B; i++)
                memcpy(d->nn + (size_t)i * (size_t)D, queue + (size_t)d->nn_idx[i] * (size_t)D,
                       sizeof(float) * (size_t)D);
            nns += cx_declip_nns_loss(d->tmp_img, dtheta, d->logits, d->p_row, d->img + v * half,
                                      d->nn, scale, B, D, (float)(d->w_nns / 2.0));
            add_into(d->d_img + v * half, d->tmp_img, half);
        }
        total += d->w_nns * nns / 2.0;
    }
    *loss = total;

    if (image_grad) {
        cx_l2norm_backward(d->d_img, d->d_img, d->img, d->img_norm, R, D, unit_eps);
        cx_model_image_backward(m, d->views, d->d_img, R);
    }
    if (text_grad) {
        cx_l2norm_backward(d->d_txt, d->d_txt, d->txt, d->txt_norm, R, D, unit_eps);
        cx_model_text_backward(m, tokens, d->d_txt, R);
    }
    /* Then the original captions join the queue, detached. */
    if (d->Q > 0) {
        cx_declip_enqueue(cx_param_value(p, m->queue), d->Q, &qpos, &filled, d->txt, B, D);
        pos[0] = (float)qpos;
        pos[1] = (float)filled;
    }
    return CX_OK;
}

void cx_declip_step_free(cx_declip_step *d)
{
    free(d->views);
    free(d->img);
    free(d->txt);
    free(d->img_norm);
    free(d->txt_norm);
    free(d->d_img);
    free(d->d_txt);
    free(d->tmp_img);
    free(d->tmp_txt);
    free(d->logits);
    free(d->p_row);
    free(d->p_col);
    free(d->scratch);
    free(d->nn);
    free(d->nn_idx);
    free(d->sims);
    memset(d, 0, sizeof *d);
}
