/* CFR's epochs over the calibration set and its selection accuracy. */
#include "lib/eval/cfr_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/model/rebalance_head.h"
#include "lib/model/tsc_targets.h"

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
    free(t->torder);
    free(t->xt);
    free(t->qt);
    free(t->yt);
    free(t->queue);
    free(t->targets);
    free(t->cent);
    free(t->qlabel);
    free(t->seen);
    free(t->assign);
    free(t->iwork);
    free(t->dwork);
    memset(t, 0, sizeof *t);
}

/* L_TSC's buffers and targets. */
static cx_status tsc_init(cx_cfr_trainer *t, cx_err *err)
{
    const cx_cfr_opts *o = &t->o;
    size_t D = (size_t)o->D, C = (size_t)o->C, Bt = (size_t)t->Bt, Q = (size_t)o->queue;
    t->torder = malloc(sizeof *t->torder * (size_t)(t->n_train ? t->n_train : 1));
    t->xt = malloc(sizeof *t->xt * Bt * (size_t)o->Din);
    t->qt = malloc(sizeof *t->qt * Bt * D);
    t->yt = malloc(sizeof *t->yt * Bt);
    t->queue = malloc(sizeof *t->queue * Q * D);
    t->qlabel = malloc(sizeof *t->qlabel * Q);
    t->targets = malloc(sizeof *t->targets * C * D);
    t->cent = malloc(sizeof *t->cent * C * D);
    t->seen = malloc(sizeof *t->seen * C);
    t->assign = malloc(sizeof *t->assign * C);
    t->iwork = malloc(sizeof *t->iwork * CX_TSC_ASSIGN_IWORK(C));
    t->dwork = malloc(sizeof *t->dwork * (CX_TSC_ASSIGN_DWORK(C) + D));
    if (!t->torder || !t->xt || !t->qt || !t->yt || !t->queue || !t->qlabel || !t->targets ||
        !t->cent || !t->seen || !t->assign || !t->iwork || !t->dwork) {
        cx_cfr_trainer_free(t);
        return cx_fail(err, CX_ENOMEM, "CFR: out of memory for L_TSC's queue of %d", o->queue);
    }
    if (cx_tsc_simplex(o->C, o->D, t->targets)) {
        cx_cfr_trainer_free(t);
        return cx_fail(err, CX_EUSAGE, "cfr.tsc: L_TSC's targets need 2 to %d classes (the "
                       "features' width), not %d", o->D, o->C);
    }
    return CX_OK;
}

cx_status cx_cfr_trainer_init(cx_cfr_trainer *t, const cx_cfr_opts *o, int64_t n_calib,
                              int64_t n_train, cx_err *err)
{
    memset(t, 0, sizeof *t);
    if (o->Din < 1 || o->D < 1 || o->C < 1 || o->B < 1 || o->P < 1 || o->K < 0 || !(o->tau > 0) ||
        o->epochs < 1 || n_calib < 0 || n_calib > UINT32_MAX || n_train < n_calib ||
        n_train > UINT32_MAX || o->tsc < 0 || (o->tsc > 0 && o->queue < 1))
        return cx_fail(err, CX_EUSAGE, "CFR: bad shape D=%d C=%d B=%d P=%d K=%d", o->D, o->C,
                       o->B, o->P, o->K);
    t->o = *o;
    t->n_calib = n_calib;
    int B = n_calib < o->B ? (int)(n_calib ? n_calib : 1) : o->B;
    t->o.B = B;
    t->n_train = n_train;
    t->Bt = o->tsc > 0 ? (n_train < o->B ? (int)(n_train ? n_train : 1) : o->B) : 0;
    cx_cfr_step_shape s = {.B = B, .Din = o->Din, .Dout = o->D, .C = o->C, .P = o->P, .K = o->K,
                           .tsc = o->tsc, .Bt = t->Bt, .Q = o->queue};
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
    if (o->tsc > 0)
        return tsc_init(t, err);
    return CX_OK;
}

/* The calibration batch of B rows from position lo of the shuffled calibration set (cycling),
 * with its positives and hard negatives. */
static cx_status calib_batch(cx_cfr_trainer *t, const float *h, const float *x, const int32_t *y,
                             const cx_cfr_calib *cal, size_t lo, int B, int e, cx_err *err)
{
    const cx_cfr_opts *o = &t->o;
    size_t D = (size_t)o->D, Di = (size_t)o->Din, n = (size_t)cal->n_calib;
    for (int i = 0; i < B; i++) {
        int64_t row = cal->calib_rows[t->order[(lo + (size_t)i) % n]];
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
    return CX_OK;
}

/* The TSC batch's unit embeddings under the current W, b (what the centroids move with and
 * the queue receives after the step). */
static void tsc_embed(cx_cfr_trainer *t, const float *W, const float *b)
{
    int Do = t->o.D, Di = t->o.Din;
    for (int i = 0; i < t->Bt; i++) {
        float *q = t->qt + (size_t)i * Do;
        double nn = 0;
        for (int o = 0; o < Do; o++) {
            double a = b[o];
            for (int d = 0; d < Di; d++)
                a += (double)W[(size_t)o * Di + d] * t->xt[(size_t)i * Di + d];
            q[o] = (float)a;
            nn += a * a;
        }
        double inv = 1.0 / fmax(sqrt(nn), 1e-12);
        for (int o = 0; o < Do; o++)
            q[o] = (float)(q[o] * inv);
    }
}

/* An epoch with L_TSC: a pass over the N training rows, each step's calibration batch cycled. */
static cx_status tsc_epoch(cx_cfr_trainer *t, const float *h, const float *x, const int32_t *y,
                           const cx_cfr_calib *cal, const float *Wc, const float *bc, float *W,
                           float *b, int e, double *loss, cx_err *err)
{
    const cx_cfr_opts *o = &t->o;
    size_t D = (size_t)o->D, Di = (size_t)o->Din, N = (size_t)t->n_train;
    cx_rng r;
    cx_rng_seed(&r, o->seed, cx_rng_stream(CX_CFR_TAG_TSC, (uint64_t)e, 0));
    cx_rng_permutation(&r, t->torder, N);
    memset(t->seen, 0, sizeof *t->seen * (size_t)o->C);
    int filled = 0, ptr = 0;
    double sum = 0;
    int64_t steps = 0;
    size_t clo = 0;
    for (size_t lo = 0; lo < N; lo += (size_t)t->Bt, steps++) {
        int Bt = (int)(N - lo < (size_t)t->Bt ? N - lo : (size_t)t->Bt);
        for (int i = 0; i < Bt; i++) {
            size_t row = t->torder[lo + (size_t)i];
            memcpy(t->xt + (size_t)i * Di, h + row * Di, sizeof(float) * Di);
            t->yt[i] = y[row];
        }
        cx_status st = calib_batch(t, h, x, y, cal, clo, o->B, e, err);
        if (st)
            return st;
        clo = (clo + (size_t)o->B) % (size_t)cal->n_calib;
        /* The centroids move with this batch, then classes are matched to targets. */
        int save = t->Bt;
        t->Bt = Bt;
        tsc_embed(t, W, b);
        t->Bt = save;
        cx_tsc_centroids_update(t->cent, t->seen, t->qt, t->yt, Bt, o->C, o->D, 0.9,
                                t->dwork + CX_TSC_ASSIGN_DWORK(o->C));
        cx_tsc_assign(t->cent, t->seen, t->targets, o->C, o->D, t->assign, t->dwork, t->iwork);
        cx_tsc_bank bank = {.queue = t->queue, .qlabel = t->qlabel, .Q = filled,
                            .targets = t->targets, .assign = t->assign, .C = o->C,
                            .T = CX_CFR_TSC_T, .tw = CX_CFR_TSC_TW};
        cx_cfr_tsc_batch tb = {.xt = t->xt, .yt = t->yt, .bank = &bank};
        cx_cfr_step_shape s = {.B = o->B, .Din = o->Din, .Dout = o->D, .C = o->C, .P = o->P,
                               .K = o->K, .tau = o->tau, .lambda = o->lambda, .lr = o->lr,
                               .epoch = e, .epochs = o->epochs, .form = CX_CFR_CON_INFONCE,
                               .normalize = o->normalize, .tsc = o->tsc, .Bt = Bt,
                               .Q = o->queue};
        double l = cx_cfr_step(&s, t->xb, t->yb, W, b, Wc, bc, t->pos, t->neg, &tb, NULL, NULL,
                               t->work, t->fwork);
        if (!isfinite(l))
            return cx_fail(err, CX_EDIVERGED, "CFR: epoch %d step %lld: the loss is %g", e + 1,
                           (long long)steps + 1, l);
        /* The batch's embeddings before the step join the queue (oldest out first). */
        for (int i = 0; i < Bt; i++) {
            memcpy(t->queue + (size_t)ptr * D, t->qt + (size_t)i * D, sizeof(float) * D);
            t->qlabel[ptr] = t->yt[i];
            ptr = (ptr + 1) % o->queue;
            if (filled < o->queue)
                filled++;
        }
        sum += l;
    }
    *loss = sum / (double)steps;
    return CX_OK;
}

cx_status cx_cfr_epoch(cx_cfr_trainer *t, const float *h, const float *x, const int32_t *y,
                       const cx_cfr_calib *cal, const float *Wc, const float *bc, float *W,
                       float *b, int e, double *loss, cx_err *err)
{
    const cx_cfr_opts *o = &t->o;
    size_t n = (size_t)cal->n_calib;
    *loss = NAN;
    if (n == 0)
        return cx_fail(err, CX_EDATA, "CFR: the calibration set is empty");
    cx_rng r;
    cx_rng_seed(&r, o->seed, cx_rng_stream(CX_CFR_TAG_ORDER, (uint64_t)e, 0));
    cx_rng_permutation(&r, t->order, n);
    if (o->tsc > 0)
        return tsc_epoch(t, h, x, y, cal, Wc, bc, W, b, e, loss, err);
    double sum = 0;
    int64_t steps = 0;
    for (size_t lo = 0; lo < n; lo += (size_t)o->B, steps++) {
        int B = (int)(n - lo < (size_t)o->B ? n - lo : (size_t)o->B);
        cx_status st = calib_batch(t, h, x, y, cal, lo, B, e, err);
        if (st)
            return st;
        cx_cfr_step_shape s = {.B = B, .Din = o->Din, .Dout = o->D, .C = o->C, .P = o->P,
                               .K = o->K, .tau = o->tau, .lambda = o->lambda, .lr = o->lr,
                               .epoch = e, .epochs = o->epochs, .form = CX_CFR_CON_INFONCE,
                               .normalize = o->normalize};
        double l = cx_cfr_step(&s, t->xb, t->yb, W, b, Wc, bc, t->pos, t->neg, NULL, NULL, NULL,
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
