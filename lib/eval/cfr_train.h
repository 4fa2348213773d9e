/* CFR's training passes (methods.md section 5, issue 15 item 5 (ii)): epochs of cx_cfr_step over
 * the calibration set, positives and hard negatives drawn from the correctly classified pools
 * (cx_cfr_select), and the worst-class / worst-group accuracy a checkpoint is selected by. No
 * group label is read by the training pass. */
#ifndef CX_EVAL_CFR_TRAIN_H
#define CX_EVAL_CFR_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/eval/cfr_calib.h"
#include "lib/model/cfr_step.h"

typedef struct {
    int Din, D, C; /* the projection's input width (H: the tower's last layer, or D), its
                      output width (the run's features), evaluated classes */
    int B;         /* calibration samples per step (the last step may have fewer) */
    int P, K;      /* positives, hard negatives */
    double tau, lambda, lr;
    int epochs;    /* E of c(e) */
    int normalize; /* the classifier scores z / ||z|| (a CLIP run's zero-shot classifier) */
    uint64_t seed;
    double tsc;    /* weight of L_TSC; 0: none (epochs over the calibration set alone) */
    int queue;     /* tsc > 0: capacity of L_TSC's queue */
} cx_cfr_opts;

typedef struct {
    cx_cfr_opts o;
    uint32_t *order;   /* (n_calib) */
    float *xb;         /* (B, Din) the projection's inputs */
    float *qb;         /* (B, D) the run's frozen features of the same rows */
    int32_t *yb;       /* (B) */
    int64_t *sample;   /* (B) training rows: the identity cx_cfr_select seeds positives by */
    int64_t *pos_idx;  /* (B, P) */
    int64_t *neg_idx;  /* (B, K) */
    float *pos, *neg;  /* (B, P, D), (B, K, D) */
    double *work, *swork;
    float *fwork;
    int64_t n_calib;
    /* tsc > 0: the TSC batch, the queue, the targets, the centroids and their matching */
    int Bt;
    uint32_t *torder;  /* (N) */
    float *xt, *qt;    /* (Bt, Din), (Bt, D) */
    int32_t *yt;       /* (Bt) */
    float *queue, *targets, *cent; /* (queue, D), (C, D), (C, D) */
    int32_t *qlabel, *seen, *assign, *iwork;
    double *dwork;
    int64_t n_train;
} cx_cfr_trainer;

/* Buffers for calibration sets of n_calib rows of a training split of n_train rows; o is copied.
 * With o->tsc > 0 the targets need 2 <= C <= D (CX_EUSAGE otherwise). */
cx_status cx_cfr_trainer_init(cx_cfr_trainer *t, const cx_cfr_opts *o, int64_t n_calib,
                              int64_t n_train, cx_err *err);
void cx_cfr_trainer_free(cx_cfr_trainer *t);

/* Epoch e (0-based, of o.epochs) over the calibration rows of cal, shuffled from the stream
 * (CX_CFR_TAG_ORDER, e) of o.seed: h (N, Din) the projection's inputs, x (N, D) the run's frozen
 * training features (positives and hard negatives are chosen and taken among them), y (N) the
 * labels; the classifier logits = Wc z^ + bc (Wc (C, D) with the scale folded in, bc (C)) stays
 * frozen; W (D, Din), b (D) train. *loss receives the epoch's mean step loss. Deterministic: the
 * same inputs give the same bits. CX_EDATA when a calibration class has no pool row or fewer
 * than K pool rows lie outside it.
 * With o.tsc > 0 the epoch is a pass over all N training rows instead (as the CFR authors' loader):
 * every step pairs a batch of B training rows (shuffled from the stream (CX_CFR_TAG_TSC, e)),
 * which L_TSC sees, with the next B rows of the shuffled calibration set (cycled), which CE and
 * L_con see. The queue and the centroids start empty every epoch, so an epoch depends only on
 * W, b and e (a resume at an epoch boundary is exact). Labels only: no group is read. */
/* L_TSC's temperature and target weight (the CFR authors' T and tw). */
#define CX_CFR_TSC_T 0.07
#define CX_CFR_TSC_TW 0.2
enum { CX_CFR_TAG_ORDER = 0x4346524f /* "CFRO" */, CX_CFR_TAG_TSC = 0x43465254 /* "CFRT" */ };
cx_status cx_cfr_epoch(cx_cfr_trainer *t, const float *h, const float *x, const int32_t *y,
                       const cx_cfr_calib *cal, const float *Wc, const float *bc, float *W,
                       float *b, int e, double *loss, cx_err *err);

/* Accuracy of the worst cell on validation: pred (n) against y (n) in [0, C), the cells being
 * the classes (groups NULL) or the groups g (n) in [0, G); cells without a row are skipped.
 * NaN when n is 0. */
double cx_cfr_worst_acc(const int32_t *pred, const int32_t *y, const int32_t *g, size_t n,
                        int C, int G);

#endif
