/* CFR's targeted supervised-contrastive term L_TSC (methods.md section 5; the TSC module of the
 * CFR authors' code): a batch's normalised embeddings against a queue of earlier embeddings and
 * C fixed targets. For sample i with q = z / ||z||, the logits over [itself, queue, targets] are
 * (1, q . k_j, q . t_c) / T; its positives are the queue entries of its class and the target
 * assigned to its class; with lp the log-softmax over that row and n_i = 2 + (queue positives),
 *   loss_i = -(lp_self + sum_queue-pos lp) / n_i - tw lp_target / n_i - lp_self,
 * L_TSC = mean_i loss_i. */
#ifndef CX_MODEL_TSC_LOSS_H
#define CX_MODEL_TSC_LOSS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const float *queue;    /* (Q, D) unit embeddings of earlier batches (no gradient) */
    const int32_t *qlabel; /* (Q) their classes */
    int Q;                 /* entries filled, >= 0 */
    const float *targets;  /* (C, D) fixed unit targets */
    const int32_t *assign; /* (C): the target row class c is pulled to */
    int C;
    double T, tw;          /* temperature, weight of the target term */
} cx_tsc_bank;

/* Doubles of scratch cx_tsc_loss needs. */
#define CX_TSC_WORK(Q, C, D) ((size_t)(Q) + (size_t)(C) + 2 * (size_t)(D))

/* Returns L_TSC of z (B, D) labelled y (B) in [0, C); dz (B, D), when not NULL, is overwritten
 * with dloss * dL_TSC/dz. Sums in double in index order. */
double cx_tsc_loss(const float *z, const int32_t *y, int B, int D, const cx_tsc_bank *bank,
                   float dloss, float *dz, double *work);

#endif
