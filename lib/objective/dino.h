/* DINO with prototype subsampling (methods.md sections 3 and 9): Sinkhorn-Knopp teacher targets,
 * the random K of P prototypes a step uses, the two-view cross-entropy and its gradient, the
 * cosine prototype layer and the EMA teacher with its cosine momentum schedule. Every function
 * works on caller-owned buffers and never allocates, so a training step sizes them once. */
#ifndef CX_OBJECTIVE_DINO_H
#define CX_OBJECTIVE_DINO_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#define CX_DINO_SINKHORN_ITERS 3 /* methods.md: 3 iterations */
#define CX_DINO_TEMP_STUDENT 0.1
#define CX_DINO_TEMP_TEACHER 0.04
#define CX_DINO_MOMENTUM 0.996
/* The purpose tag of the prototype-subsampling stream: cx_rng_stream(CX_DINO_TAG_PROTO, step, 0). */
#define CX_DINO_TAG_PROTO 0xD1A0u

/* ---- Sinkhorn-Knopp targets -------------------------------------------------------------------
 * As SwAV's and DINO's code, on Q = exp(scores / temp)^T (K prototypes x B samples):
 *     Q /= sum(Q);
 *     iters times: each row (prototype) /= its sum, then /= K;
 *                  each column (sample) /= its sum, then /= B;
 *     Q *= B;  targets = Q^T, so each sample's row of targets sums to 1.
 * scores (B, K) are the teacher's scores on the K chosen prototypes; targets (B, K) overwritten.
 * Everything is computed in double in one fixed order, serially, so the bits do not depend on
 * the thread count. exp is taken of (scores - max scores) / temp: a constant factor the first
 * division removes, so large scores / small temperatures cannot overflow. work holds
 * (B + 1) * K doubles of caller scratch. CX_EUSAGE when B < 1, K < 1, temp is not > 0 or iters < 0. */
cx_status cx_dino_sinkhorn(float *targets, const float *scores, int B, int K, double temp,
                           int iters, double *work, cx_err *err);

/* ---- prototype subsampling ---------------------------------------------------------------------
 * idx[0..k) = the first K entries of a uniformly random permutation of 0..P-1 (torch's
 * randperm(P)[:K]) drawn from the stream cx_rng_stream(CX_DINO_TAG_PROTO, step, 0) of seed,
 * then sorted ascending (the set is what matters; sorted rows are read in memory order). The
 * stream depends only on (seed, step), so student and teacher, every process and a resumed run
 * draw the same set. K = 0 (or K = P) means all prototypes: idx = 0..P-1. *k receives the count.
 * perm is caller scratch of P values; idx holds at least P (K when 0 < K < P). CX_EUSAGE when
 * P < 1 or K is outside [0, P]. */
cx_status cx_dino_sample_prototypes(int32_t *idx, int *k, uint32_t *perm, int P, int K,
                                    uint64_t seed, uint64_t step, cx_err *err);

/* ---- DINO loss over two views ------------------------------------------------------------------
 * With p = softmax(s / temp_s) row-wise and H(t, p) = -(1/B) sum_i sum_k t_ik log p_ik,
 *     loss = ( H(t_b, p(s_a)) + H(t_a, p(s_b)) ) / 2:
 * the student's view a against the teacher's view b and vice versa. s_a, s_b (B, K) student
 * scores on the chosen prototypes; t_a, t_b (B, K) teacher targets of views a and b (e.g. from
 * cx_dino_sinkhorn; treated as constants: the teacher takes no gradient). ds_a, ds_b (B, K) are
 * overwritten with d loss / d s_a and d s_b (each may be NULL to skip):
 *     d loss / d s_a[i,k] = (p_ik sum_j t_b[i,j] - t_b[i,k]) / (2 B temp_s).
 * Sums in double, row by row in index order (no threads). *loss in double.
 * CX_EUSAGE when B < 1, K < 1 or temp_s is not > 0. */
cx_status cx_dino_loss(double *loss, float *ds_a, float *ds_b, const float *s_a,
                       const float *s_b, const float *t_a, const float *t_b, int B, int K,
                       double temp_s, cx_err *err);

/* ---- cosine prototype layer --------------------------------------------------------------------
 * out (B, K) = normalize(x) normalize(W[idx])^T: the L2-normalised input rows against the
 * L2-normalised rows of the K chosen prototypes (W is (P, D), idx (K) in [0, P)). Norms are
 * max(||.||, CX_DINO_NORM_EPS) as torch.nn.functional.normalize. The forward saves, for the
 * backward: xn (B, D) and xnorm (B), the normalised input and its norms; wn (K, D) and wnorm (K),
 * the normalised chosen prototypes and their norms. All buffers are the caller's. */
#define CX_DINO_NORM_EPS 1e-12f
void cx_dino_proto_forward(float *out, float *xn, float *xnorm, float *wn, float *wnorm,
                           const float *x, const float *W, const int32_t *idx, int B, int D,
                           int K);
/* From dout (B, K): dx (B, D) overwritten (skipped when NULL); dW (P, D) ADDED to, rows idx only
 * (skipped when NULL: a frozen prototype layer). scratch holds (B + K) * D floats. idx must
 * hold distinct indices (cx_dino_sample_prototypes gives them). */
void cx_dino_proto_backward(float *dx, float *dW, float *scratch, const float *dout,
                            const float *xn, const float *xnorm, const float *wn,
                            const float *wnorm, const int32_t *idx, int B, int D, int K);

/* ---- EMA teacher -------------------------------------------------------------------------------
 * The momentum at step of total steps, rising from m0 to 1 by a half cosine (DINO's
 * cosine_scheduler from m0 to 1): m = 1 - (1 - m0) (1 + cos(pi step / total)) / 2; steps at or
 * beyond total (or total <= 0) give 1, negative steps m0. */
double cx_dino_momentum(double m0, int64_t step, int64_t total);
/* teacher (n) = m teacher + (1 - m) student, each element in double then rounded to float (so
 * the bits do not depend on how the loop is split). */
void cx_dino_ema_update(float *teacher, const float *student, size_t n, double m);

#endif
