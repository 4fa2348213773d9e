/* Classifiers on feature vectors, all in one shape so evaluation is one code path: a weight
 * matrix W (C, D) with an optional bias (zero-shot, the model's head, NCM, linear probe), or
 * the stored training features of a cosine kNN. Scoring lives in lib/eval/score.h; the linear
 * probe's builder in lib/eval/linprobe.h. */
#ifndef CX_EVAL_CLASSIFIER_H
#define CX_EVAL_CLASSIFIER_H

#include <stdint.h>

#include "lib/base/err.h"

typedef enum {
    CX_CLF_LINEAR, /* scores = scale * x W^T + b */
    CX_CLF_KNN     /* scores from the votes of the k most cosine-similar training vectors */
} cx_clf_kind;

/* logits = 100 cos, as CLIP's zero-shot classifier (methods.md section 7). */
#define CX_EVAL_COSINE_SCALE 100.0f
#define CX_KNN_K_DEFAULT 20
/* Votes must stay exact next to the similarity fraction in a float score (see cx_eval_knn). */
#define CX_KNN_K_MAX 1024

typedef struct {
    cx_clf_kind kind;
    int C, D;
    int normalize;   /* L2-normalise each input row before scoring (cosine classifiers) */
    float scale;     /* LINEAR: logits = scale * x W^T + b; also the softmax temperature of
                        the confidences used by ECE */
    float *w;        /* (C, D), owned; LINEAR */
    float *b;        /* (C) or NULL, owned; LINEAR; added after scaling */
    int k;           /* KNN: neighbours that vote */
    int n_ref;       /* KNN: stored training vectors */
    float *ref;      /* (n_ref, D), owned; KNN: L2-normalised training features */
    int32_t *ref_labels; /* (n_ref), owned; KNN */
} cx_eval_classifier;

/* Zero-shot: emb (T, C, D) holds the text-tower embedding of template t for class c at
 * emb[(t * C + c) * D]. W_c = normalise(mean_t normalise(emb[t, c])); inputs are normalised;
 * scale is the logit scale (CX_EVAL_COSINE_SCALE, or the model's learnt one). */
cx_status cx_eval_zeroshot(cx_eval_classifier *clf, const float *emb, int T, int C, int D,
                           float scale, cx_err *err);

/* The model's own head, copied: cosine heads (cosine != 0) normalise W's rows and the inputs
 * and use scale s (logits = s cos); plain linear heads use scale 1 and the bias b (C) or NULL. */
cx_status cx_eval_from_head(cx_eval_classifier *clf, const float *w, const float *b, int C, int D,
                            int cosine, float scale, cx_err *err);

/* Nearest class mean: W_c = normalise(mean of the normalised x_i with y_i = c), cosine scores
 * scaled by scale. A class without training vectors gets W_c = 0 (it scores 0 everywhere).
 * x (N, D), y (N) in [0, C). */
cx_status cx_eval_ncm(cx_eval_classifier *clf, const float *x, const int32_t *y, int N, int C,
                      int D, float scale, cx_err *err);

/* Cosine kNN over the training vectors x (N, D), y (N) in [0, C): keeps normalised copies.
 * Each test vector's k nearest training vectors (ties: smaller training index first) vote.
 * Score of class c = votes_c + (sims_c + k) / (2k + 1) when votes_c > 0, else 0, where sims_c
 * is the sum of the similarities of c's voters. So the top-1 is the majority class, ties
 * broken by the larger similarity sum, then by the smaller class index; the same order ranks
 * the top-5; the confidence used by ECE is votes_top1 / k. 1 <= k <= CX_KNN_K_MAX; k is then
 * clamped to N. */
cx_status cx_eval_knn(cx_eval_classifier *clf, const float *x, const int32_t *y, int N, int C,
                      int D, int k, cx_err *err);

/* Safe on a zeroed or half-built classifier; leaves it zeroed. */
void cx_eval_classifier_free(cx_eval_classifier *clf);

/* Labels y (N) must lie in [0, C): CX_EDATA naming WHAT and the first bad sample otherwise. */
cx_status cx_eval_check_labels(const int32_t *y, int N, int C, const char *what, cx_err *err);

/* out (D) = x / max(||x||, 1e-12) as torch's F.normalize; out may equal x. */
void cx_eval_normalize_row(float *out, const float *x, int D);

#endif
