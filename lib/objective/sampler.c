/* Epoch orders: a seeded permutation, or class-rebalancing draws with replacement (a class from
 * an alias table, then a sample uniformly within it: O(1) per draw, O(n) per epoch). */
#include "config.h"
#include "lib/objective/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "lib/base/rng.h"

/* Stream tag of the epoch orders ("smpl"); the epoch and the kind are the stream's counters. */
#define SAMPLER_TAG 0x736d706cULL

struct cx_sampler {
    cx_sampler_kind kind;
    size_t n;
    uint64_t seed;
    /* Rebalancing kinds only (NULL for shuffle): */
    int m;            /* classes with at least one sample */
    int32_t *cls;     /* (m) their ids */
    size_t *start;    /* (C + 1) class c's samples are members[start[c] .. start[c + 1]) */
    uint32_t *members; /* (n) sample indices grouped by class, ascending within a class */
    double *prob;     /* (m) alias table: keep slot j with this probability ... */
    int32_t *alias;   /* (m) ... else take slot alias[j] */
};

void cx_sampler_free(cx_sampler *s)
{
    if (!s)
        return;
    free(s->cls);
    free(s->start);
    free(s->members);
    free(s->prob);
    free(s->alias);
    free(s);
}

/* Vose's alias method over weights w (m), all positive: exact in exact arithmetic, and in
 * double the rounding leftovers go to probability 1 (the usual treatment). work is (m) ints. */
static void build_alias(double *prob, int32_t *alias, const double *w, int m, int32_t *work)
{
    double total = 0.0;
    for (int j = 0; j < m; j++)
        total += w[j];
    /* Small slots fill work from the front, large ones from the back. */
    int ns = 0, nl = 0;
    for (int j = 0; j < m; j++) {
        prob[j] = w[j] * m / total;
        alias[j] = j;
        if (prob[j] < 1.0)
            work[ns++] = j;
        else
            work[m - 1 - nl++] = j;
    }
    while (ns > 0 && nl > 0) {
        int32_t sm = work[--ns], lg = work[m - nl];
        alias[sm] = lg;
        prob[lg] -= 1.0 - prob[sm];
        if (prob[lg] < 1.0) {
            nl--;
            work[ns++] = lg;
        }
    }
    while (nl > 0)
        prob[work[m - nl--]] = 1.0;
    while (ns > 0)
        prob[work[--ns]] = 1.0;
}

cx_status cx_sampler_create(cx_sampler **out, cx_sampler_kind kind, const int32_t *labels,
                            size_t n, int C, uint64_t seed, cx_err *err)
{
    *out = NULL;
    if ((unsigned)kind > CX_SAMPLER_SQRT)
        return cx_fail(err, CX_EUSAGE, "sampler: unknown kind %d", (int)kind);
    if (C < 1)
        return cx_fail(err, CX_EUSAGE, "sampler: %d classes (at least 1 needed)", C);
    if (n > UINT32_MAX)
        return cx_fail(err, CX_EUSAGE, "sampler: %zu samples, more than the %lu an order can "
                       "index", n, (unsigned long)UINT32_MAX);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= C)
            return cx_fail(err, CX_EDATA, "sampler: sample %zu has label %d, outside [0, %d)", i,
                           (int)labels[i], C);
    cx_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return cx_fail(err, CX_ENOMEM, "sampler: out of memory");
    s->kind = kind;
    s->n = n;
    s->seed = seed;
    if (kind == CX_SAMPLER_SHUFFLE) {
        *out = s;
        return CX_OK;
    }

    size_t nc = (size_t)C;
    s->start = calloc(nc + 1, sizeof *s->start);
    s->members = malloc(sizeof *s->members * (n ? n : 1));
    s->cls = malloc(sizeof *s->cls * nc);
    s->prob = malloc(sizeof *s->prob * nc);
    s->alias = malloc(sizeof *s->alias * nc);
    double *w = malloc(sizeof *w * nc);
    int32_t *work = malloc(sizeof *work * nc);
    size_t *fill = malloc(sizeof *fill * nc);
    if (!s->start || !s->members || !s->cls || !s->prob || !s->alias || !w || !work || !fill) {
        free(w), free(work), free(fill);
        cx_sampler_free(s);
        return cx_fail(err, CX_ENOMEM, "sampler: out of memory for %zu samples", n);
    }
    /* Counting sort of the sample indices by label. */
    for (size_t i = 0; i < n; i++)
        s->start[labels[i] + 1]++;
    for (int c = 0; c < C; c++)
        s->start[c + 1] += s->start[c];
    for (int c = 0; c < C; c++)
        fill[c] = s->start[c];
    for (size_t i = 0; i < n; i++)
        s->members[fill[labels[i]]++] = (uint32_t)i;
    for (int c = 0; c < C; c++) {
        size_t nc_c = s->start[c + 1] - s->start[c];
        if (nc_c == 0)
            continue;
        s->cls[s->m] = c;
        w[s->m] = kind == CX_SAMPLER_SQRT ? sqrt((double)nc_c) : 1.0;
        s->m++;
    }
    if (s->m > 0)
        build_alias(s->prob, s->alias, w, s->m, work);
    free(w), free(work), free(fill);
    *out = s;
    return CX_OK;
}

void cx_sampler_epoch(cx_sampler *s, int64_t epoch, uint32_t *order)
{
    cx_rng r;
    cx_rng_seed(&r, s->seed, cx_rng_stream(SAMPLER_TAG, (uint64_t)epoch, (uint64_t)s->kind));
    if (s->kind == CX_SAMPLER_SHUFFLE) {
        cx_rng_permutation(&r, order, s->n);
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        uint32_t j = cx_rng_below(&r, (uint32_t)s->m);
        int32_t c = s->cls[cx_rng_uniform(&r) < s->prob[j] ? (int32_t)j : s->alias[j]];
        size_t lo = s->start[c], cnt = s->start[c + 1] - lo;
        order[i] = s->members[lo + cx_rng_below(&r, (uint32_t)cnt)];
    }
}
