/* The DINO step: views, teacher targets, student loss and backward (see dino_step.h). */
#include "lib/train/dino_step.h"

#include <stdlib.h>
#include <string.h>

#include "lib/objective/dino.h"

cx_status cx_dino_step_init(cx_dino_step *d, const cx_model *m, int max_batch, int K, int iters,
                            double temp_s, double temp_t, const cx_dist *dist, cx_err *err)
{
    memset(d, 0, sizeof *d);
    const cx_model_spec *s = &m->spec;
    if (s->objective != CX_OBJECTIVE_DINO)
        return cx_fail(err, CX_EUSAGE, "the DINO step needs a DINO model");
    if (K < 0 || K > s->dino_prototypes)
        return cx_fail(err, CX_EUSAGE, "dino.sample_k: %d is above dino.prototypes (%d); set "
                       "dino.sample_k to at most %d (0 uses all)", K, s->dino_prototypes,
                       s->dino_prototypes);
    d->max_batch = max_batch;
    d->in_dim = s->in_dim;
    d->P = s->dino_prototypes;
    d->K = K;
    d->D = s->dino_bottleneck;
    d->iters = iters;
    d->temp_s = temp_s;
    d->temp_t = temp_t;
    d->dist = dist;
    d->world = dist && dist->size > 1 ? dist->size : 1;
    size_t R = 2 * (size_t)max_batch, P = (size_t)d->P, D = (size_t)d->D;
    size_t E = (size_t)s->embed_dim;
    d->views = malloc(sizeof(float) * R * (size_t)d->in_dim);
    d->idx = malloc(sizeof(int32_t) * P);
    d->perm = malloc(sizeof(uint32_t) * P);
    d->s_scores = malloc(sizeof(float) * R * P);
    d->t_scores = malloc(sizeof(float) * R * P);
    d->targets = malloc(sizeof(float) * R * P);
    d->ds = malloc(sizeof(float) * R * P);
    d->s_xn = malloc(sizeof(float) * R * D);
    d->t_xn = malloc(sizeof(float) * R * D);
    d->dz = malloc(sizeof(float) * R * D);
    d->s_xnorm = malloc(sizeof(float) * R);
    d->t_xnorm = malloc(sizeof(float) * R);
    d->s_wn = malloc(sizeof(float) * P * D);
    d->t_wn = malloc(sizeof(float) * P * D);
    d->s_wnorm = malloc(sizeof(float) * P);
    d->t_wnorm = malloc(sizeof(float) * P);
    d->dfeat = malloc(sizeof(float) * R * E);
    d->scratch = malloc(sizeof(float) * (R + P) * D);
    size_t G = (size_t)d->world * (size_t)max_batch; /* the global batch's rows */
    d->work = malloc(sizeof(double) * (G + 1) * P);
    if (d->world > 1) {
        d->g_scores = malloc(sizeof(float) * G * P);
        d->g_targets = malloc(sizeof(float) * G * P);
    }
    if (!d->views || !d->idx || !d->perm || !d->s_scores || !d->t_scores || !d->targets ||
        !d->ds || !d->s_xn || !d->t_xn || !d->dz || !d->s_xnorm || !d->t_xnorm || !d->s_wn ||
        !d->t_wn || !d->s_wnorm || !d->t_wnorm || !d->dfeat || !d->scratch || !d->work ||
        (d->world > 1 && (!d->g_scores || !d->g_targets))) {
        cx_dino_step_free(d);
        return cx_fail(err, CX_ENOMEM, "out of memory for the DINO step's buffers (batch %d, "
                       "%d prototypes)", max_batch, (int)P);
    }
    return CX_OK;
}

/* One view's targets (B, k) from its teacher scores (B, k): Sinkhorn-Knopp over the global
 * batch, whose rows under MPI are every process's, gathered in rank order. */
static cx_status view_targets(cx_dino_step *d, float *targets, const float *scores, int B, int k,
                              cx_err *err)
{
    if (d->world == 1)
        return cx_dino_sinkhorn(targets, scores, B, k, d->temp_t, d->iters, d->work, err);
    size_t mine = (size_t)B * (size_t)k;
    cx_status st = cx_dist_allgather(d->dist, scores, mine, d->g_scores, err);
    if (st)
        return st;
    if ((st = cx_dino_sinkhorn(d->g_targets, d->g_scores, d->world * B, k, d->temp_t, d->iters,
                               d->work, err)))
        return st;
    memcpy(targets, d->g_targets + (size_t)d->dist->rank * mine, sizeof(float) * mine);
    return CX_OK;
}

cx_status cx_dino_step_run(cx_dino_step *d, cx_model *m, const cx_aug_config *aug,
                           const cx_aug_shape *shape, uint64_t seed, uint64_t step,
                           const uint64_t *samples, const float *in, int B, double *loss,
                           cx_err *err)
{
    if (B < 1 || B > d->max_batch)
        return cx_fail(err, CX_EUSAGE, "DINO step of %d samples, at most %d", B, d->max_batch);
    const int R = 2 * B, D = d->D;
    cx_params *p = &m->params;
    /* Rows 0..B are view a, B..2B view b: one forward of each tower over both views. */
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 0, in, d->views);
    cx_aug_batch_view(aug, shape, seed, step, samples, (size_t)B, 1, in,
                      d->views + (size_t)B * (size_t)d->in_dim);
    int k;
    cx_status st = cx_dino_sample_prototypes(d->idx, &k, d->perm, d->P, d->K, seed, step, err);
    if (st)
        return st;
    const size_t half = (size_t)B * (size_t)k;

    /* The teacher first: the towers of a ViT share block scratch, and the student's backward
     * follows its own forward. */
    const float *tf = cx_model_teacher_image_forward(m, d->views, R);
    const float *tz = cx_dino_head_forward(&m->teacher_head, p, tf, R);
    cx_dino_proto_forward(d->t_scores, d->t_xn, d->t_xnorm, d->t_wn, d->t_wnorm, tz,
                          cx_param_value(p, m->teacher_prototypes), d->idx, R, D, k);
    for (int v = 0; v < 2; v++)
        if ((st = view_targets(d, d->targets + v * half, d->t_scores + v * half, B, k, err)))
            return st;

    const float *sf = cx_model_image_forward(m, d->views, R);
    const float *sz = cx_dino_head_forward(&m->dino_head, p, sf, R);
    cx_dino_proto_forward(d->s_scores, d->s_xn, d->s_xnorm, d->s_wn, d->s_wnorm, sz,
                          cx_param_value(p, m->prototypes), d->idx, R, D, k);
    if ((st = cx_dino_loss(loss, d->ds, d->ds + half, d->s_scores, d->s_scores + half,
                           d->targets, d->targets + half, B, k, d->temp_s, err)))
        return st;
    if (d->world > 1) {
        /* The processes' gradients are summed: each contributes its rows' share of the global
         * mean. The loss is the mean of the processes' equal-sized means. */
        const float share = 1.0f / (float)d->world;
        for (size_t j = 0; j < 2 * half; j++)
            d->ds[j] *= share;
        if ((st = cx_dist_allreduce_sum_f64(d->dist, loss, 1, err)))
            return st;
        *loss /= (double)d->world;
    }

    cx_dino_proto_backward(d->dz, cx_param_grad(p, m->prototypes), d->scratch, d->ds, d->s_xn,
                           d->s_xnorm, d->s_wn, d->s_wnorm, d->idx, R, D, k);
    int tower = cx_model_image_trainable(m);
    cx_dino_head_backward(&m->dino_head, p, sf, d->dz, tower ? d->dfeat : NULL, R);
    if (tower)
        cx_model_image_backward(m, d->views, d->dfeat, R);
    return CX_OK;
}

void cx_dino_step_free(cx_dino_step *d)
{
    free(d->views);
    free(d->idx);
    free(d->perm);
    free(d->s_scores);
    free(d->t_scores);
    free(d->targets);
    free(d->ds);
    free(d->s_xn);
    free(d->t_xn);
    free(d->dz);
    free(d->s_xnorm);
    free(d->t_xnorm);
    free(d->s_wn);
    free(d->t_wn);
    free(d->s_wnorm);
    free(d->t_wnorm);
    free(d->dfeat);
    free(d->scratch);
    free(d->work);
    free(d->g_scores);
    free(d->g_targets);
    memset(d, 0, sizeof *d);
}
