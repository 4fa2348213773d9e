/* The order in which an epoch visits the training samples: a seeded shuffle, or draws with
 * replacement that rebalance classes (class-balanced: each class equally likely; square-root:
 * classes in proportion to sqrt(n_c)); methods.md section 4. Each epoch's order depends only on
 * (seed, epoch), so a resumed run visits the same samples. */
#ifndef CX_OBJECTIVE_SAMPLER_H
#define CX_OBJECTIVE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

typedef enum { CX_SAMPLER_SHUFFLE, CX_SAMPLER_CLASS_BALANCED, CX_SAMPLER_SQRT } cx_sampler_kind;

typedef struct cx_sampler cx_sampler;

/* labels (n) in [0, C); the sampler keeps what it needs (per-class index lists). */
cx_status cx_sampler_create(cx_sampler **s, cx_sampler_kind kind, const int32_t *labels, size_t n,
                            int C, uint64_t seed, cx_err *err);
/* order (n) for 0-based epoch `epoch`: a permutation of 0..n-1 (shuffle) or n draws with
 * replacement (the rebalancing kinds). */
void cx_sampler_epoch(cx_sampler *s, int64_t epoch, uint32_t *order);
void cx_sampler_free(cx_sampler *s);

#endif
