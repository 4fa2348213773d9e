/* Vocabulary subsampling for dynamic classification (methods.md section 3): each step scores
 * only the classes present in the batch plus randomly drawn negatives, up to K classes, the
 * mechanism held responsible for CLIP's robustness to imbalance. */
#ifndef CX_OBJECTIVE_VOCAB_SAMPLER_H
#define CX_OBJECTIVE_VOCAB_SAMPLER_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"

typedef enum { CX_VOCAB_UNIFORM, CX_VOCAB_LINEAR, CX_VOCAB_SQRT } cx_vocab_weight;

typedef struct cx_vocab_sampler cx_vocab_sampler;

/* C classes with training counts (C); K >= 1 classes scored per step (K <= C). */
cx_status cx_vocab_sampler_create(cx_vocab_sampler **s, int C, int K, cx_vocab_weight weight,
                                  const int64_t *counts, cx_err *err);

/* V = distinct labels of the batch; when |V| < K, add K - |V| classes drawn without replacement
 * with weight 1, n_c or sqrt(n_c), classes in V excluded (classes of weight 0 are never drawn).
 * Writes the sorted class ids to classes (capacity max(K, B)) and each sample's column in it to
 * targets (B); returns the number of classes (K, or |V| when that is larger, or fewer when too
 * few classes have positive weight), or -1 when a label is outside [0, C). Never allocates. */
int cx_vocab_sampler_draw(cx_vocab_sampler *s, const int32_t *labels, int B, cx_rng *rng,
                          int32_t *classes, int32_t *targets);

void cx_vocab_sampler_free(cx_vocab_sampler *s);

#endif
