/* CFR's epochs over the calibration set and its selection accuracy. */
#include "lib/eval/cfr_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/model/rebalance_head.h"

void cx_cfr_trainer_free(cx_cfr_trainer *t)
{
    if (!t)
        return;
    free(t->order);
    free(t->xb);
    free(t->qb);
    free(t->yb);
    free(t->sample);
    free(t->pos_idx);
    free(t->neg_idx);
    free(t->pos);
    free(t->neg);
    free(t->work);
    free(t->swork);
    free(t->fwork);
    memset(t, 0, sizeof *t);
}

cx_status cx_cfr_trainer_init(cx_cfr_trainer *t, const cx_cfr_opts *o, int64_t n_calib,
                              cx_err *err)
{
    memset(t, 0, sizeof *t);
    if (o->Din < 1 || o->D < 1 || o->C < 1 || o->B < 1 || o->P < 1 || o->K < 0 || !(o->tau > 0) ||
        o->epochs < 1 || n_calib < 0 || n_calib > UINT32_MAX)
        return cx_fail(err, CX_EUSAGE, "CFR: bad shape D=%d C=%d B=%d P=%d K=%d", o->D, o->C,
                       o->B, o->P, o->K);
    t->o = *o;
    t->n_calib = n_calib;
    int B = n_calib < o->B ? (int)(n_calib ? n_calib : 1) : o->B;
    t->o.B = B;
    cx_cfr_step_shape s = {.B = B, .Din = o->Din, .Dout = o->D, .C = o->C, .P = o->P, .K = o->K};
    size_t Bz = (size_t)B, D = (size_t)o->D;
    t->order = malloc(sizeof *t->order * (size_t)(n_calib ? n_calib : 1));
    t->xb = malloc(sizeof *t->xb * Bz * (size_t)o->Din);
    t->qb = malloc(sizeof *t->qb * Bz * D);
    t->yb = malloc(sizeof *t->yb * Bz);
    t->sample = malloc(sizeof *t->sample * Bz);
    t->pos_idx = malloc(sizeof *t->pos_idx * Bz * (size_t)o->P);
    t->neg_idx = malloc(sizeof *t->neg_idx * Bz * (size_t)(o->K ? o->K : 1));
    t->pos = malloc(sizeof *t->pos * Bz * (size_t)o->P * D);
    t->neg = malloc(sizeof *t->neg * Bz * (size_t)(o->K ? o->K : 1) * D);
    t->work = malloc(sizeof *t->work * CX_CFR_STEP_WORK(&s));
    t->swork = malloc(sizeof *t->swork * (size_t)(o->K ? o->K : 1));
    t->fwork = malloc(sizeof *t->fwork * CX_CFR_STEP_FWORK(&s));
    if (!t->order || !t->xb || !t->qb || !t->yb || !t->sample || !t->pos_idx || !t->neg_idx || !t->pos ||
        !t->neg || !t->work || !t->swork || !t->fwork) {
        cx_cfr_trainer_free(t);
        return cx_fail(err, CX_ENOMEM, "CFR: out of memory for batches of %d", B);
    }
    return CX_OK;
}

cx_status cx_cfr_epoch(cx_cfr_trainer *t, const float *h, const float *x, const int32_t *y,
                       const cx_cfr_calib *cal, const float *Wc, const float *bc, float *W,
                       float *b, int e, double *loss, cx_err *err)
{
    const cx_cfr_opts *o = &t->o;
    size_t D = (size_t)o->D, Di = (size_t)o->Din, n = (size_t)cal->n_calib;
    *loss = NAN;
    if (n == 0)
        return cx_fail(err, CX_EDATA, "CFR: the calibration set is empty");
    cx_rng r;
    cx_rng_seed(&r, o->seed, cx_rng_stream(CX_CFR_TAG_ORDER, (uint64_t)e, 0));
    cx_rng_permutation(&r, t->order, n);
    double sum = 0;
    int64_t steps = 0;
    for (size_t lo = 0; lo < n; lo += (size_t)o->B, steps++) {
        int B = (int)(n - lo < (size_t)o->B ? n - lo : (size_t)o->B);
        for (int i = 0; i < B; i++) {
            int64_t row = cal->calib_rows[t->order[lo + (size_t)i]];
            memcpy(t->xb + (size_t)i * Di, h + (size_t)row * Di, sizeof(float) * Di);
            memcpy(t->qb + (size_t)i * D, x + (size_t)row * D, sizeof(float) * D);
            t->yb[i] = y[row];
            t->sample[i] = row;
        }
        /* Positives and hard negatives by the run's frozen embedding of the sample. */
        cx_status st = cx_cfr_select(t->qb, t->yb, t->sample, B, cal->pool_x, cal->pool_labels,
                                     cal->class_start, cal->class_rows, cal->n_pool, o->C, o->D,
                                     o->P, o->K, o->seed, (uint64_t)e, t->pos_idx, t->neg_idx,
                                     t->swork, err);
        if (st)
            return st;
        for (size_t j = 0; j < (size_t)B * (size_t)o->P; j++)
            memcpy(t->pos + j * D, cal->pool_x + (size_t)t->pos_idx[j] * D, sizeof(float) * D);
        for (size_t j = 0; j < (size_t)B * (size_t)o->K; j++)
            memcpy(t->neg + j * D, cal->pool_x + (size_t)t->neg_idx[j] * D, sizeof(float) * D);
        cx_cfr_step_shape s = {.B = B, .Din = o->Din, .Dout = o->D, .C = o->C, .P = o->P,
                               .K = o->K, .tau = o->tau, .lambda = o->lambda, .lr = o->lr,
                               .epoch = e, .epochs = o->epochs, .form = CX_CFR_CON_INFONCE,
                               .normalize = o->normalize};
        double l = cx_cfr_step(&s, t->xb, t->yb, W, b, Wc, bc, t->pos, t->neg, NULL, NULL,
                               t->work, t->fwork);
        if (!isfinite(l))
            return cx_fail(err, CX_EDIVERGED, "CFR: epoch %d step %lld: the loss is %g", e + 1,
                           (long long)steps + 1, l);
        sum += l;
    }
    *loss = sum / (double)steps;
    return CX_OK;
}

double cx_cfr_worst_acc(const int32_t *pred, const int32_t *y, const int32_t *g, size_t n,
                        int C, int G)
{
    int cells = g ? G : C;
    if (n == 0 || cells < 1)
        return NAN;
    int64_t *hit = calloc((size_t)cells * 2, sizeof *hit);
    if (!hit)
        return NAN;
    for (size_t i = 0; i < n; i++) {
        int c = g ? g[i] : y[i];
        if (c < 0 || c >= cells)
            continue;
        hit[2 * c] += pred[i] == y[i];
        hit[2 * c + 1]++;
    }
    double worst = NAN;
    for (int c = 0; c < cells; c++)
        if (hit[2 * c + 1]) {
            double a = (double)hit[2 * c] / (double)hit[2 * c + 1];
            if (isnan(worst) || a < worst)
                worst = a;
        }
    free(hit);
    return worst;
}
