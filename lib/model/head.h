/* Classification heads of the supervised objective: linear (W h + b) or cosine
 * (exp(theta) * cos(h, W_c), the scale learnable as in CLIP), optionally over a subset of the
 * classes (vocabulary subsampling: only the K sampled classes are scored and updated). A frozen
 * cosine head holds a CLIP run's text embeddings of the class prompts. */
#ifndef CX_MODEL_HEAD_H
#define CX_MODEL_HEAD_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/params.h"

typedef enum { CX_HEAD_LINEAR, CX_HEAD_COSINE } cx_head_kind;

typedef struct {
    cx_head_kind kind;
    int C, D, max_batch;
    int w;           /* parameter index: PREFIX.weight (C, D) */
    int b;           /* PREFIX.bias (C), linear only, else -1 */
    int scale;       /* PREFIX.logit_scale (1) = theta, cosine only, else -1 */
    int K;           /* classes scored by the last forward */
    const int32_t *classes; /* (K) the last forward's class ids, or NULL for all */
    /* Owned buffers: */
    float *w_sel;    /* (C, D) gathered rows (linear with a subset) or unit rows (cosine) */
    float *b_sel;    /* (C) gathered biases */
    float *w_norms;  /* (C) row norms (cosine) */
    float *h_unit;   /* (max_batch, D) unit features (cosine) */
    float *h_norms;  /* (max_batch) */
    float *logits;   /* (max_batch, C) */
    float *dw_sel;   /* (C, D) scratch */
    float *dh_unit;  /* (max_batch, D) scratch */
    float *db_sel;   /* (C) scratch */
} cx_head;

/* flags go to the weight (and bias) tensors, e.g. CX_PARAM_FROZEN for a text head; the scale
 * gets scale_flags (CX_PARAM_FROZEN for a fixed scale such as LDAM's). */
cx_status cx_head_declare(cx_head *h, cx_params *p, const char *prefix, cx_head_kind kind, int C,
                          int D, unsigned flags, unsigned scale_flags, cx_err *err);
cx_status cx_head_alloc(cx_head *h, int max_batch, cx_err *err);
/* Linear: torch.nn.Linear's default; cosine: N(0, std 1/sqrt(D)) and theta = log(scale_init). */
void cx_head_init_params(const cx_head *h, cx_params *p, cx_rng *rng, double scale_init);

/* Logits (B, K) for feat (B, D) over classes[0..K) (sorted, distinct) or, when classes is NULL,
 * all C classes (K = C). A buffer of h. */
const float *cx_head_forward(cx_head *h, const cx_params *p, const float *feat, int B,
                             const int32_t *classes, int K);
/* Adds parameter gradients (only the scored rows) and writes dfeat (B, D) unless NULL. */
void cx_head_backward(cx_head *h, cx_params *p, const float *feat, const float *dlogits,
                      float *dfeat, int B);
void cx_head_free(cx_head *h);

#endif
