/* Profiles, apportionment and the seeded per-class choice of kept samples. */
#include "lib/data/subsample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"

enum { TAG_SUBSAMPLE = 0x53554253 /* "SUBS" */ };

static const char *const profile_names[] = {"exp",   "pareto", "step",     "uniform",
                                            "match", "scale",  "trim-tail"};

int cx_profile_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof profile_names / sizeof profile_names[0]); i++)
        if (strcmp(name, profile_names[i]) == 0)
            return i;
    return -1;
}

const char *cx_profile_name(cx_profile p)
{
    return (unsigned)p < sizeof profile_names / sizeof profile_names[0] ? profile_names[p] : "?";
}

void cx_subsample_defaults(cx_subsample_opts *o)
{
    memset(o, 0, sizeof *o);
    o->profile = CX_PROFILE_EXP;
    o->rho = 100.0;
    o->mu = 0.5;
    o->n_min = 1;
}

double cx_profile_pareto_alpha(double rho, int C)
{
    return C > 1 ? log(rho) / log((double)C) : 0.0;
}

double cx_profile_size(cx_profile p, double head, int i, int C, double rho, double alpha,
                       double mu)
{
    switch (p) {
    case CX_PROFILE_EXP:
        /* As the CIFAR-LT code computes it (n_max * (1/rho)^(i/(C-1))), so truncated counts
         * match the literature's exactly, e.g. 6000, 3596, ..., 60 for 10 classes and rho 100. */
        return C > 1 ? head * pow(1.0 / rho, (double)i / (C - 1.0)) : head;
    case CX_PROFILE_PARETO:
        return head * pow((double)(i + 1), -alpha);
    case CX_PROFILE_STEP:
        return i < (int)floor(mu * C + 1e-9) ? head : head / rho;
    default:
        return head;
    }
}

void cx_profile_exp(int64_t n_max, double rho, int C, int64_t *sizes)
{
    for (int i = 0; i < C; i++)
        sizes[i] = (int64_t)cx_profile_size(CX_PROFILE_EXP, (double)n_max, i, C, rho, 0, 0);
}

void cx_profile_pareto(int64_t n_max, double alpha, int64_t n_min, int C, int64_t *sizes)
{
    for (int i = 0; i < C; i++) {
        int64_t v = (int64_t)cx_profile_size(CX_PROFILE_PARETO, (double)n_max, i, C, 0, alpha, 0);
        sizes[i] = v < n_min ? n_min : v;
    }
}

void cx_profile_step(int64_t n_max, double rho, double mu, int C, int64_t *sizes)
{
    for (int i = 0; i < C; i++)
        sizes[i] = (int64_t)cx_profile_size(CX_PROFILE_STEP, (double)n_max, i, C, rho, 0, mu);
}

/* ---- apportionment ------------------------------------------------------------------------- */

typedef struct {
    double rem;
    int idx;
} rem_item;

static int by_rem_desc(const void *a, const void *b)
{
    const rem_item *x = a, *y = b;
    if (x->rem != y->rem)
        return x->rem > y->rem ? -1 : 1;
    return x->idx - y->idx;
}

/* Max-heap of class indices by (size desc, index asc). */
static int heap_above(const int64_t *s, int a, int b)
{
    return s[a] > s[b] || (s[a] == s[b] && a < b);
}

static void heap_down(int *h, int n, int i, const int64_t *s)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && heap_above(s, h[l], h[m]))
            m = l;
        if (r < n && heap_above(s, h[r], h[m]))
            m = r;
        if (m == i)
            return;
        int t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Take `excess` from the largest classes one at a time, never below floor_of[c]. */
static void take_from_largest(int64_t *sizes, const int64_t *floor_of, int C, int64_t excess)
{
    int *h = malloc((size_t)C * sizeof *h);
    if (!h)
        return; /* only reachable out of memory; sizes then sum to more than asked */
    int n = 0;
    for (int c = 0; c < C; c++)
        if (sizes[c] > floor_of[c])
            h[n++] = c;
    for (int i = n / 2 - 1; i >= 0; i--)
        heap_down(h, n, i, sizes);
    while (excess > 0 && n > 0) {
        int c = h[0];
        sizes[c]--;
        excess--;
        if (sizes[c] <= floor_of[c])
            h[0] = h[--n];
        heap_down(h, n, 0, sizes);
    }
    free(h);
}

void cx_apportion(const double *w, int C, int64_t total, int64_t min_each, int64_t *sizes)
{
    double sum = 0;
    for (int c = 0; c < C; c++)
        if (w[c] > 0)
            sum += w[c];
    rem_item *items = malloc((size_t)(C > 0 ? C : 1) * sizeof *items);
    int64_t *floors = malloc((size_t)(C > 0 ? C : 1) * sizeof *floors);
    int64_t given = 0;
    for (int c = 0; c < C; c++) {
        double share = w[c] > 0 && sum > 0 ? w[c] * (double)total / sum : 0.0;
        sizes[c] = (int64_t)floor(share);
        given += sizes[c];
        if (items) {
            items[c].rem = share - floor(share);
            items[c].idx = c;
        }
    }
    int64_t deficit = total - given;
    if (items) {
        qsort(items, (size_t)C, sizeof *items, by_rem_desc);
        for (int k = 0; k < C && deficit > 0; k++)
            if (w[items[k].idx] > 0) {
                sizes[items[k].idx]++;
                deficit--;
            }
    }
    int64_t excess = 0;
    for (int c = 0; c < C; c++) {
        int64_t lo = w[c] > 0 ? min_each : 0;
        if (floors)
            floors[c] = lo;
        if (sizes[c] < lo) {
            excess += lo - sizes[c];
            sizes[c] = lo;
        }
    }
    if (excess > 0 && floors)
        take_from_largest(sizes, floors, C, excess);
    free(items);
    free(floors);
}

/* ---- targets ------------------------------------------------------------------------------- */

cx_status cx_subsample_targets(const cx_subsample_opts *o, const int64_t *avail, int C, int C_eval,
                               int64_t *target, cx_err *err)
{
    if (C_eval < 1 || C_eval > C)
        return cx_fail(err, CX_EUSAGE, "evaluated classes %d out of range [1, %d]", C_eval, C);
    int64_t max_av = 0, min_av = INT64_MAX, total = 0;
    for (int c = 0; c < C_eval; c++) {
        if (avail[c] > max_av)
            max_av = avail[c];
        if (avail[c] < min_av)
            min_av = avail[c];
    }
    for (int c = 0; c < C; c++) {
        total += avail[c];
        target[c] = avail[c]; /* open-world concepts keep everything unless said otherwise */
    }
    int64_t n_max = o->n_max > 0 ? o->n_max : max_av;
    if ((o->profile == CX_PROFILE_EXP || o->profile == CX_PROFILE_PARETO ||
         o->profile == CX_PROFILE_STEP) &&
        !(o->rho >= 1.0))
        return cx_fail(err, CX_EUSAGE, "rho: must be at least 1, not %g", o->rho);

    int64_t *sizes = malloc((size_t)C * sizeof *sizes);
    if (!sizes)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_status st = CX_OK;
    switch (o->profile) {
    case CX_PROFILE_EXP:
    case CX_PROFILE_PARETO:
    case CX_PROFILE_STEP:
        if (o->profile == CX_PROFILE_EXP)
            cx_profile_exp(n_max, o->rho, C_eval, sizes);
        else if (o->profile == CX_PROFILE_PARETO)
            cx_profile_pareto(n_max,
                              o->alpha > 0 ? o->alpha : cx_profile_pareto_alpha(o->rho, C_eval),
                              o->n_min, C_eval, sizes);
        else if (o->mu < 0 || o->mu > 1)
            st = cx_fail(err, CX_EUSAGE, "mu: must lie in [0, 1], not %g", o->mu);
        else
            cx_profile_step(n_max, o->rho, o->mu, C_eval, sizes);
        for (int i = 0; !st && i < C_eval; i++) {
            int c = o->order ? (int)o->order[i] : i;
            target[c] = sizes[i] < avail[c] ? sizes[i] : avail[c];
        }
        break;
    case CX_PROFILE_UNIFORM: {
        for (int c = 0; c < C_eval; c++) {
            int64_t per = o->n_max > 0 ? o->n_max
                          : o->n > 0   ? o->n / C_eval + (c < o->n % C_eval)
                                       : min_av;
            target[c] = per < avail[c] ? per : avail[c];
        }
        break;
    }
    case CX_PROFILE_MATCH:
        if (!o->counts) {
            st = cx_fail(err, CX_EUSAGE, "the match profile needs counts");
            break;
        }
        for (int c = 0; c < C; c++)
            target[c] = o->counts[c] < avail[c] ? o->counts[c] : avail[c];
        break;
    case CX_PROFILE_SCALE: {
        int64_t n = o->n > 0 ? o->n : (int64_t)floor(o->frac * (double)total + 0.5);
        int nonempty = 0;
        for (int c = 0; c < C; c++)
            nonempty += avail[c] > 0;
        if (o->n <= 0 && !(o->frac > 0 && o->frac <= 1))
            st = cx_fail(err, CX_EUSAGE, "the scale profile needs n, or frac in (0, 1]");
        else if (n > total)
            st = cx_fail(err, CX_EUSAGE, "n: %lld exceeds the %lld samples available",
                         (long long)n, (long long)total);
        else if (n < nonempty)
            st = cx_fail(err, CX_EUSAGE,
                         "keeping %lld samples cannot give each of the %d non-empty classes one",
                         (long long)n, nonempty);
        else {
            double *w = malloc((size_t)C * sizeof *w);
            if (!w) {
                st = cx_fail(err, CX_ENOMEM, "out of memory");
                break;
            }
            for (int c = 0; c < C; c++)
                w[c] = (double)avail[c];
            cx_apportion(w, C, n, 1, target);
            free(w);
        }
        break;
    }
    case CX_PROFILE_TRIM_TAIL: {
        if (o->tail_k < 0 || o->tail_k > C_eval) {
            st = cx_fail(err, CX_EUSAGE, "tail_k: %d is out of range [0, %d]", o->tail_k, C_eval);
            break;
        }
        if (o->cap < 0) {
            st = cx_fail(err, CX_EUSAGE, "cap: must not be negative");
            break;
        }
        /* The k rarest: fewest samples first; among equals the later class is the rarer one. */
        int *order = malloc((size_t)C_eval * sizeof *order);
        if (!order) {
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            break;
        }
        for (int c = 0; c < C_eval; c++)
            order[c] = c;
        for (int i = 1; i < C_eval; i++) { /* insertion sort: stable and C is small */
            int v = order[i], j = i;
            while (j > 0 && (avail[order[j - 1]] > avail[v] ||
                             (avail[order[j - 1]] == avail[v] && order[j - 1] < v))) {
                order[j] = order[j - 1];
                j--;
            }
            order[j] = v;
        }
        for (int k = 0; k < o->tail_k; k++) {
            int c = order[k];
            target[c] = o->cap < avail[c] ? o->cap : avail[c];
        }
        free(order);
        break;
    }
    default:
        st = cx_fail(err, CX_EUSAGE, "unknown profile %d", (int)o->profile);
    }
    free(sizes);
    return st;
}

/* ---- selection ---------------------------------------------------------------------------- */

cx_status cx_subsample_select(const int32_t *labels, size_t n, int C, const int64_t *target,
                              uint64_t seed, uint32_t **kept, size_t *nkept, cx_err *err)
{
    *kept = NULL;
    *nkept = 0;
    size_t *start = calloc((size_t)C + 1, sizeof *start);
    uint32_t *by_class = malloc((n ? n : 1) * sizeof *by_class);
    unsigned char *keep = calloc(n ? n : 1, 1);
    cx_status st = CX_OK;
    if (!start || !by_class || !keep) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    /* Counting sort of positions by class, ascending within a class. */
    for (size_t i = 0; i < n; i++)
        start[labels[i] + 1]++;
    for (int c = 0; c < C; c++)
        start[c + 1] += start[c];
    {
        size_t *fill = malloc(((size_t)C + 1) * sizeof *fill);
        if (!fill) {
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(fill, start, ((size_t)C + 1) * sizeof *fill);
        for (size_t i = 0; i < n; i++)
            by_class[fill[labels[i]]++] = (uint32_t)i;
        free(fill);
    }
    size_t total = 0;
    for (int c = 0; c < C; c++) {
        uint32_t *m = by_class + start[c];
        size_t have = start[c + 1] - start[c];
        size_t want = target[c] < 0 ? 0 : (size_t)target[c] < have ? (size_t)target[c] : have;
        if (want < have) {
            cx_rng r;
            cx_rng_seed(&r, seed, cx_rng_stream(TAG_SUBSAMPLE, (uint64_t)c, 0));
            for (size_t i = 0; i < want; i++) {
                size_t j = i + cx_rng_below(&r, (uint32_t)(have - i));
                uint32_t t = m[i];
                m[i] = m[j];
                m[j] = t;
            }
        }
        for (size_t i = 0; i < want; i++)
            keep[m[i]] = 1;
        total += want;
    }
    *kept = malloc((total ? total : 1) * sizeof **kept);
    if (!*kept) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (keep[i])
            (*kept)[(*nkept)++] = (uint32_t)i;
fail:
    free(start);
    free(by_class);
    free(keep);
    return st;
}
