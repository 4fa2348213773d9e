/* The DeCLIP step: views, towers, cx_declip_loss, backward, the queue (see declip_step.h). */
#include "lib/train/declip_step.h"

#include <stdlib.h>
#include <string.h>

cx_status cx_declip_step_init(cx_declip_step *d, const cx_model *m, int max_batch, double w_mv,
                              double w_nns, double w_iss, cx_err *err)
{
    memset(d, 0, sizeof *d);
    const cx_model_spec *s = &m->spec;
    if (s->objective != CX_OBJECTIVE_CLIP || s->max_batch < 2 * max_batch)
        return cx_fail(err, CX_EUSAGE, "the DeCLIP step needs a CLIP model of %d rows",
                       2 * max_batch);
    if (w_nns > 0 && m->queue < 0)
        return cx_fail(err, CX_EUSAGE, "declip.nns: the model holds no caption queue");
    if (w_iss > 0 && !s->declip_iss)
        return cx_fail(err, CX_EUSAGE, "declip.iss: the model holds no SimSiam head");
    d->max_batch = max_batch;
    d->in_dim = s->in_dim;
    d->D = s->embed_dim;
    d->Q = w_nns > 0 ? s->declip_queue : 0;
    d->w_mv = w_mv;
    d->w_nns = w_nns;
    d->w_iss = w_iss;
    size_t R = 2 * (size_t)max_batch, D = (size_t)d->D;
    d->views = malloc(sizeof(float) * R * (size_t)d->in_dim);
    d->d_img = malloc(sizeof(float) * R * D);
    d->d_txt = malloc(sizeof(float) * R * D);
    if (!d->views || !d->d_img || !d->d_txt ||
        cx_declip_work_alloc(&d->work, max_batch, d->D, d->Q)) {
        cx_declip_step_free(d);
        return cx_fail(err, CX_ENOMEM, "out of memory for the DeCLIP step's buffers (batch %d, "
                       "queue %d)", max_batch, d->Q);
    }
    return CX_OK;
}

cx_status cx_declip_step_run(cx_declip_step *d, cx_model *m, const cx_aug_config *aug,
                             const cx_aug_shape *shape, uint64_t seed, uint64_t step,
                             const uint64_t *samples, const float *in, const int32_t *tokens,
                             int B, double *loss, cx_err *err)
{
    if (B < 1 || B > d->max_batch)
        return cx_fail(err, CX_EUSAGE, "DeCLIP step of %d samples, at most %d", B, d->max_batch);
    const int R = 2 * B, D = d->D;
    cx_params *p = &m->params;
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 0, in, d->views);
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 1, in,
                      d->views + (size_t)B * (size_t)d->in_dim);
    int image_grad = cx_model_image_trainable(m), text_grad = !m->spec.text_frozen;
    const float *f = cx_model_image_forward(m, d->views, R);
    const float *g = cx_model_text_forward(m, tokens, R);
    float *pos = d->Q > 0 ? cx_param_value(p, m->queue_pos) : NULL;
    int qpos = pos ? (int)pos[0] : 0, filled = pos ? (int)pos[1] : 0;
    float *queue = d->Q > 0 ? cx_param_value(p, m->queue) : NULL;
    *loss = cx_declip_loss(&d->work, image_grad ? d->d_img : NULL, text_grad ? d->d_txt : NULL,
                           cx_param_grad(p, m->logit_scale), f, g, cx_model_logit_scale(m),
                           queue, filled, B, D, d->w_mv, d->w_nns);
    /* ISS on the image tower's raw output: its gradient joins the image side's. */
    if (d->w_iss > 0)
        *loss += d->w_iss * cx_simsiam_loss(&m->simsiam, p, f, image_grad ? d->d_img : NULL, B,
                                            (float)d->w_iss);
    if (image_grad)
        cx_model_image_backward(m, d->views, d->d_img, R);
    if (text_grad)
        cx_model_text_backward(m, tokens, d->d_txt, R);
    /* Queried first; then the original captions join the queue, detached. */
    if (d->Q > 0) {
        cx_declip_enqueue(queue, d->Q, &qpos, &filled, d->work.txt, B, D);
        pos[0] = (float)qpos;
        pos[1] = (float)filled;
    }
    return CX_OK;
}

void cx_declip_step_free(cx_declip_step *d)
{
    free(d->views);
    free(d->d_img);
    free(d->d_txt);
    cx_declip_work_free(&d->work);
    memset(d, 0, sizeof *d);
}
