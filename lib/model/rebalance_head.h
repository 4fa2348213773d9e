/* The differentiable pieces of the second-stage methods over a frozen classifier's logits z
 * (B, C) (methods.md section 5), on caller-owned buffers, never allocating:
 *   LWS:      z'_c = s_c z_c                                   (s (C), init 1)
 *   DisAlign: g = sigmoid(w . f + b0), z'_c = (1 + g alpha_c) z_c + g beta_c
 *             (w (D), b0 (1), alpha (C) init 1, beta (C) init 0, f the frozen feature)
 *   MARC:     z'_c = a_c z_c + b_c ||W_c||                     (a (C) init 1, b (C) init 0)
 * Backward passes add parameter gradients and ignore dz (the classifier is frozen).
 * CFR (methods.md section 5): the contrastive loss L_con over calibration embeddings, its
 * weight schedule c(e) and the choice of positives and hard negatives from a pool. */
#ifndef CX_MODEL_REBALANCE_HEAD_H
#define CX_MODEL_REBALANCE_HEAD_H

#include <stdint.h>

#include "lib/base/err.h"

/* out (B, C) = s_c z (B, C); out may not alias z. */
void cx_lws_forward(const float *z, const float *s, int B, int C, float *out);
/* ds (C) += sum_i dout_ic z_ic. */
void cx_lws_backward(const float *z, const float *dout, int B, int C, float *ds);

/* gate (B) receives g; out (B, C). */
void cx_disalign_forward(const float *z, const float *f, const float *w, const float *b0,
                         const float *alpha, const float *beta, int B, int C, int D, float *gate,
                         float *out);
/* dw (D), db0 (1), dalpha (C), dbeta (C) added; gate from the forward. */
void cx_disalign_backward(const float *z, const float *f, const float *alpha, const float *beta,
                          const float *gate, const float *dout, int B, int C, int D, float *dw,
                          float *db0, float *dalpha, float *dbeta);

/* norms (C): ||W_c|| of the frozen classifier. */
void cx_marc_forward(const float *z, const float *norms, const float *a, const float *b, int B,
                     int C, float *out);
void cx_marc_backward(const float *z, const float *norms, const float *dout, int B, int C,
                      float *da, float *db);

/* ---- CFR ---------------------------------------------------------------------------------
 * Every embedding is L2-normalised inside (q / max(||q||, 1e-12), as F.normalize); with
 * s_j = q^ . x^_j / tau over the P positives and K negatives of calibration sample i,
 *   CX_CFR_CON_INFONCE (methods.md: InfoNCE, one positive against the K hard negatives, averaged
 *   over the P positives):  l_i = -(1/P) sum_p log( e^{s_p} / (e^{s_p} + sum_k e^{s_k}) )
 *   CX_CFR_CON_SHARED (all positives in one denominator, SupCon's form):
 *                           l_i = -(1/P) sum_p log( e^{s_p} / (sum_p' e^{s_p'} + sum_k e^{s_k}) )
 * The two agree when P = 1. L_con = (1/B) sum_i l_i. */
typedef enum { CX_CFR_CON_INFONCE = 0, CX_CFR_CON_SHARED = 1 } cx_cfr_con_form;

/* Doubles of scratch cx_cfr_con needs. */
#define CX_CFR_CON_WORK(P, K, D) ((size_t)(P) + (size_t)(K) + 2 * (size_t)(D))

/* Returns L_con; all sums in double in index order, so the same inputs give the same bits.
 * q (B, D): the calibration embeddings; pos (B, P, D) and neg (B, K, D): fixed embeddings (no
 * gradient). dq (B, D), when not NULL, is overwritten with dloss * dL_con/dq. work holds
 * CX_CFR_CON_WORK(P, K, D) doubles, caller-owned. B, P, D >= 1, K >= 0, tau > 0. */
double cx_cfr_con(const float *q, const float *pos, const float *neg, int B, int P, int K, int D,
                  double tau, cx_cfr_con_form form, float dloss, float *dq, double *work);

/* c(e) = 1 + 0.5 cos(2 pi e / E), the weight of CE and L_con in epoch e of E (E >= 1). */
double cx_cfr_weight(int e, int E);

/* The pool's rows grouped by class: rows of class c are class_rows[class_start[c] ..
 * class_start[c + 1]) in increasing order. ypool (N) labels the pool; class_start (C + 1) and
 * class_rows (N) are caller-owned. Fails (CX_EDATA) on a label outside 0..C-1. */
cx_status cx_cfr_pool_index(const int32_t *ypool, int64_t N, int C, int64_t *class_start,
                            int64_t *class_rows, cx_err *err);

/* For each calibration sample i (embedding q (B, D), label yq[i], identity sample[i]):
 *   neg_idx (B, K): the K pool rows of other classes with the largest cosine to q_i, the
 *     largest first, ties to the lower row index;
 *   pos_idx (B, P): P rows of class yq[i], uniformly with replacement, from the stream
 *     cx_rng_stream(CX_CFR_TAG_POSITIVES, epoch, sample[i]) of seed, so a sample draws the same
 *     positives in an epoch whatever the batch it sits in.
 * pool (N, D) with its index from cx_cfr_pool_index; work holds K doubles, caller-owned.
 * Fails (CX_EDATA) when a label is out of range, a class has no pool row, or fewer than K rows
 * lie outside the class. */
enum { CX_CFR_TAG_POSITIVES = 0x43465250 /* "CFRP" */ };
cx_status cx_cfr_select(const float *q, const int32_t *yq, const int64_t *sample, int B,
                        const float *pool, const int32_t *ypool, const int64_t *class_start,
                        const int64_t *class_rows, int64_t N, int C, int D, int P, int K,
                        uint64_t seed, uint64_t epoch, int64_t *pos_idx, int64_t *neg_idx,
                        double *work, cx_err *err);

#endif
