/* Classification losses of the supervised objective, the imbalance-aware ones included
 * (methods.md section 4): plain cross-entropy, focal, balanced softmax, logit adjustment,
 * class-balanced (CBW), effective-number and GRW weights, LDAM (with DRW) and LADE.
 *
 * Logits may cover a subset of the classes (vocabulary subsampling): column k of the logits is
 * class classes[k]; targets are column indices. Every class statistic (prior, weight, margin)
 * is looked up through classes[], so a subset behaves exactly like the full set restricted to
 * those columns. */
#ifndef CX_OBJECTIVE_LOSS_H
#define CX_OBJECTIVE_LOSS_H

#include <stdint.h>

#include "lib/base/err.h"

typedef enum {
    CX_LOSS_CE,
    CX_LOSS_FOCAL,             /* -(1 - p_y)^gamma log p_y, batch mean */
    CX_LOSS_BALANCED_SOFTMAX,  /* CE(z + log pi) */
    CX_LOSS_LOGIT_ADJUST,      /* CE(z + tau log pi) */
    CX_LOSS_CBW,               /* CE weighted by w_c = N / (C n_c), normalised by sum of w_y */
    CX_LOSS_EFFNUM,            /* CE weighted by (1 - beta) / (1 - beta^n_c), normalised to sum C */
    CX_LOSS_GRW,               /* CE weighted by C pi_c^-p / sum_k pi_k^-p */
    CX_LOSS_LDAM,              /* CE(z - scale * m_y e_y), m_c = max_margin n_c^-1/4 / max_k n_k^-1/4 */
    CX_LOSS_LADE               /* CE(z + log pi) + lambda * L_LADE */
} cx_loss_kind;

typedef struct {
    cx_loss_kind kind;
    double focal_gamma;     /* 2 */
    double la_tau;          /* 1 */
    double effnum_beta;     /* 0.999 */
    double grw_p;           /* 1.2 */
    double ldam_max_margin; /* 0.5 */
    double lade_lambda;     /* 0.1 */
    int drw_epoch;          /* deferred re-weighting: from this 1-based epoch on (epoch + 1 >=
                               drw_epoch), weight samples by the effective-number weights;
                               0: never (the meaning of the config key drw.epoch) */
} cx_loss_config;

typedef struct cx_loss cx_loss;

/* counts (C): training samples per class. Classes with no samples are allowed (a trimmed tail):
 * statistics that need a positive count use max(n_c, 1), which is documented in the man page. */
cx_status cx_loss_create(cx_loss **l, const cx_loss_config *cfg, const int64_t *counts, int C,
                         int max_batch, cx_err *err);

/* Loss of logits (B, K) against targets (B, values in [0, K)); classes (K) maps columns to
 * class ids, or is NULL for all C classes (then K == C). scale is the head's current logit
 * scale (LDAM subtracts scale * m_y from the target logit; other losses ignore it); epoch is
 * 0-based (DRW). Writes dlogits (B, K) = d loss / d logits and returns the loss. Never
 * allocates; deterministic for a fixed thread count. Class-weighted losses (CBW, EFFNUM, GRW and
 * DRW) all divide by the batch's sum of w_y, torch's F.cross_entropy(weight=) convention. A call
 * outside this contract (B > max_batch, K > C, a target or class id out of range) returns NaN
 * and leaves dlogits unspecified. */
double cx_loss_compute(cx_loss *l, const float *logits, const int32_t *targets,
                       const int32_t *classes, int B, int K, float scale, int epoch,
                       float *dlogits);

/* The per-class offsets a post-hoc logit adjustment would subtract (tau log pi), for eval. */
const float *cx_loss_log_prior(const cx_loss *l);

void cx_loss_free(cx_loss *l);

#endif
