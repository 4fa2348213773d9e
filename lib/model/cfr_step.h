/* One CFR step on a linear image projection (methods.md section 5): z = W x + b, logits through a
 * frozen linear classifier (of z, or with normalize of z / ||z||, as a CLIP run's zero-shot
 * classifier scores), loss c(e) CE(logits, y) + c(e) lambda L_con(z) + tsc L_TSC(W xt + b) (a batch
 * xt of training rows against a queue and fixed targets, lib/model/tsc_loss.h; tsc 0: no such
 * batch), then plain SGD on W, b. Caller-owned buffers, never allocating. */
#ifndef CX_MODEL_CFR_STEP_H
#define CX_MODEL_CFR_STEP_H

#include <stdint.h>

#include "lib/model/rebalance_head.h"
#include "lib/model/tsc_loss.h"

typedef struct {
    int B, Din, Dout, C, P, K;
    double tau, lambda, lr;
    int epoch, epochs; /* c(e) = cx_cfr_weight(epoch, epochs) */
    cx_cfr_con_form form;
    int normalize; /* 1: the classifier scores z / max(||z||, 1e-12) (L_con normalises anyway) */
    double tsc;    /* weight of L_TSC; 0: none (the bytes of the step without it) */
    int Bt, Q;     /* tsc > 0: rows of the TSC batch, the queue's capacity */
} cx_cfr_step_shape;

/* The TSC batch of a step (tsc > 0): xt (Bt, Din) training rows, yt (Bt) their labels, the bank
 * (queue, targets, matching; bank->Q <= Q filled). */
typedef struct {
    const float *xt;
    const int32_t *yt;
    const cx_tsc_bank *bank;
} cx_cfr_tsc_batch;

/* Doubles of scratch cx_cfr_step needs. */
#define CX_CFR_STEP_WORK(s) \
    ((size_t)(s)->B * (size_t)(s)->C + CX_CFR_CON_WORK((s)->P, (s)->K, (s)->Dout) + \
     ((s)->tsc > 0 ? CX_TSC_WORK((s)->Q, (s)->C, (s)->Dout) : 0))
/* Floats of scratch: z, dz, dz_con, z^ (B, Dout each); with tsc, zt and dzt (Bt, Dout each). */
#define CX_CFR_STEP_FWORK(s) \
    (4 * (size_t)(s)->B * (size_t)(s)->Dout + \
     ((s)->tsc > 0 ? 2 * (size_t)(s)->Bt * (size_t)(s)->Dout : 0))

/* x (B, Din), y (B); W (Dout, Din), b (Dout) updated in place; Wc (C, Dout), bc (C) frozen;
 * pos (B, P, Dout), neg (B, K, Dout) fixed embeddings; tb the TSC batch (read only when tsc > 0,
 * may be NULL otherwise). dW, db (when not NULL) receive the
 * gradient before the update. Returns the loss. Sums in double in index order. */
double cx_cfr_step(const cx_cfr_step_shape *s, const float *x, const int32_t *y, float *W, float *b,
                   const float *Wc, const float *bc, const float *pos, const float *neg,
                   const cx_cfr_tsc_batch *tb, float *dW, float *db, double *work, float *fwork);

#endif
