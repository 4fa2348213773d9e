/* Dynamic classification's vocabulary: the batch's classes plus negatives drawn without
 * replacement (methods.md section 3), sorted by a scan over the class marks so that a draw costs
 * O(C + B) and never allocates. */
#include "config.h"
#include "lib/objective/vocab_sampler.h"

#include <math.h>
#include <stdlib.h>

struct cx_vocab_sampler {
    int C, K;
    double *weight;  /* (C) draw weight of each class */
    double *work;    /* (C) the same, except that the batch's classes are 0 during a draw */
    double *keys;    /* (C) scratch of cx_rng_sample_weighted */
    uint32_t *drawn; /* (C) the negatives of a draw */
    uint8_t *mark;   /* (C) class is in the step's vocabulary; all 0 between draws */
    int32_t *column; /* (C) column of a marked class */
};

void cx_vocab_sampler_free(cx_vocab_sampler *s)
{
    if (!s)
        return;
    free(s->weight);
    free(s->work);
    free(s->keys);
    free(s->drawn);
    free(s->mark);
    free(s->column);
    free(s);
}

cx_status cx_vocab_sampler_create(cx_vocab_sampler **out, int C, int K, cx_vocab_weight weight,
                                  const int64_t *counts, cx_err *err)
{
    *out = NULL;
    if ((unsigned)weight > CX_VOCAB_SQRT)
        return cx_fail(err, CX_EUSAGE, "vocab.weight: unknown kind %d", (int)weight);
    if (C < 1)
        return cx_fail(err, CX_EUSAGE, "vocab: %d classes (at least 1 needed)", C);
    if (K < 1 || K > C)
        return cx_fail(err, CX_EUSAGE, "vocab.k: %d classes per step, outside [1, %d] (the "
                       "number of classes)", K, C);
    for (int c = 0; c < C; c++)
        if (counts[c] < 0)
            return cx_fail(err, CX_EDATA, "vocab: class %d has a negative count %lld", c,
                           (long long)counts[c]);
    cx_vocab_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return cx_fail(err, CX_ENOMEM, "vocab: out of memory");
    size_t nc = (size_t)C;
    s->C = C;
    s->K = K;
    s->weight = malloc(sizeof *s->weight * nc);
    s->work = malloc(sizeof *s->work * nc);
    s->keys = malloc(sizeof *s->keys * nc);
    s->drawn = malloc(sizeof *s->drawn * nc);
    s->mark = calloc(nc, 1);
    s->column = malloc(sizeof *s->column * nc);
    if (!s->weight || !s->work || !s->keys || !s->drawn || !s->mark || !s->column) {
        cx_vocab_sampler_free(s);
        return cx_fail(err, CX_ENOMEM, "vocab: out of memory for %d classes", C);
    }
    for (int c = 0; c < C; c++)
        s->weight[c] = weight == CX_VOCAB_UNIFORM ? 1.0
                       : weight == CX_VOCAB_LINEAR ? (double)counts[c]
                                                   : sqrt((double)counts[c]);
    for (int c = 0; c < C; c++)
        s->work[c] = s->weight[c];
    *out = s;
    return CX_OK;
}

int cx_vocab_sampler_draw(cx_vocab_sampler *s, const int32_t *labels, int B, cx_rng *rng,
                          int32_t *classes, int32_t *targets)
{
    int C = s->C;
    for (int i = 0; i < B; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return -1;
    /* V: mark the batch's classes, listing them in classes[] (capacity max(K, B)). */
    int nv = 0;
    for (int i = 0; i < B; i++)
        if (!s->mark[labels[i]]) {
            s->mark[labels[i]] = 1;
            classes[nv++] = labels[i];
        }
    if (nv < s->K) {
        /* Negatives: V's classes weigh 0 for this draw only. */
        for (int j = 0; j < nv; j++)
            s->work[classes[j]] = 0.0;
        size_t got = cx_rng_sample_weighted(rng, s->work, (size_t)C, (size_t)(s->K - nv),
                                            s->drawn, s->keys);
        for (int j = 0; j < nv; j++)
            s->work[classes[j]] = s->weight[classes[j]];
        for (size_t j = 0; j < got; j++)
            s->mark[s->drawn[j]] = 1;
    }
    /* Sorted by a scan of the marks, which also clears them for the next draw. */
    int m = 0;
    for (int c = 0; c < C; c++)
        if (s->mark[c]) {
            s->mark[c] = 0;
            s->column[c] = m;
            classes[m++] = c;
        }
    for (int i = 0; i < B; i++)
        targets[i] = s->column[labels[i]];
    return m;
}
