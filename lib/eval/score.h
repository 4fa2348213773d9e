/* Scoring N test vectors with any classifier of lib/eval/classifier.h, in blocks of rows (one
 * sgemm per block; the N x C score matrix is never held whole): top-1 and top-5 per row, the
 * confidence used by ECE, the confusion matrix and the per-class top-5 hits. Threaded with
 * OpenMP (static schedule over blocks, each thread running single-threaded sgemm on its own
 * blocks); the same inputs give the same bits whatever the thread count (block boundaries do
 * not depend on it). Block size changes nothing but rounding inside sgemm. During a call
 * OpenBLAS runs single-threaded; afterwards it is set to cx_threads_get() threads
 * (lib/threads.h), so callers set the thread count with cx_threads_set first. */
#ifndef CX_EVAL_SCORE_H
#define CX_EVAL_SCORE_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/eval/classifier.h"

enum { CX_EVAL_TOPK = 5 };
/* Rows per block: each thread scores its own blocks (256 x 1000 classes is 1 MB of scores). */
#define CX_EVAL_CHUNK_DEFAULT 256
/* kNN blocks are also capped so that all threads' similarities stay near 16 MB. */
#define CX_EVAL_KNN_SIMS_MAX (4L << 20)

typedef struct {
    int N, C;
    int K;              /* min(CX_EVAL_TOPK, C) */
    int32_t *pred;      /* (N), owned: top-1 class; ties go to the smaller class index */
    int32_t *topk;      /* (N, K), owned: classes by decreasing score, pred first */
    float *conf;        /* (N), owned: confidence of pred (softmax maximum; kNN: votes / k) */
    int64_t *confusion; /* (C, C), owned: [truth * C + predicted] counts */
    int64_t *topk_hits; /* (C), owned: test vectors of class c whose label is among the top K */
} cx_eval_pred;

/* out (n, C) = the scores of x (n, D) (LINEAR: scale * x W^T + b; KNN: the vote scores).
 * Allocates its scratch; CX_EDATA when a score is not finite (names the row). */
cx_status cx_eval_logits(const cx_eval_classifier *clf, const float *x, int n, float *out,
                         cx_err *err);

/* Score x (N, D) with labels y (N) in [0, C) in blocks of `chunk` rows (<= 0: the default).
 * On success out is filled and owned by the caller (cx_eval_pred_free); on failure it is
 * left empty. CX_EDATA names the first bad label or non-finite score. */
cx_status cx_eval_score(const cx_eval_classifier *clf, const float *x, const int32_t *y, int N,
                        int chunk, cx_eval_pred *out, cx_err *err);

/* Safe on a zeroed or already freed value. */
void cx_eval_pred_free(cx_eval_pred *p);

#endif
