/* One CFR step on a linear image projection (methods.md section 5): z = W x + b, logits through a
 * frozen linear classifier (of z, or with normalize of z / ||z||, as a CLIP run's zero-shot
 * classifier scores), loss c(e) CE(logits, y) + c(e) lambda L_con(z), then plain SGD on W, b.
 * Caller-owned buffers, never allocating. */
#ifndef CX_MODEL_CFR_STEP_H
#define CX_MODEL_CFR_STEP_H

#include <stdint.h>

#include "lib/model/rebalance_head.h"

typedef struct {
    int B, Din, Dout, C, P, K;
    double tau, lambda, lr;
    int epoch, epochs; /* c(e) = cx_cfr_weight(epoch, epochs) */
    cx_cfr_con_form form;
    int normalize; /* 1: the classifier scores z / max(||z||, 1e-12) (L_con normalises anyway) */
} cx_cfr_step_shape;

/* Doubles of scratch cx_cfr_step needs. */
#define CX_CFR_STEP_WORK(s) \
    ((size_t)(s)->B * (size_t)(s)->C + CX_CFR_CON_WORK((s)->P, (s)->K, (s)->Dout))
/* Floats of scratch: z, dz, dz_con, z^ (B, Dout each). */
#define CX_CFR_STEP_FWORK(s) (4 * (size_t)(s)->B * (size_t)(s)->Dout)

/* x (B, Din), y (B); W (Dout, Din), b (Dout) updated in place; Wc (C, Dout), bc (C) frozen;
 * pos (B, P, Dout), neg (B, K, Dout) fixed embeddings. dW, db (when not NULL) receive the
 * gradient before the update. Returns the loss. Sums in double in index order. */
double cx_cfr_step(const cx_cfr_step_shape *s, const float *x, const int32_t *y, float *W, float *b,
                   const float *Wc, const float *bc, const float *pos, const float *neg,
                   float *dW, float *db, double *work, float *fwork);

#endif
