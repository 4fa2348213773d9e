/* DFR: halves of a held-out split, balanced draws, the probe's solver at each lambda of its
 * grid, the mean classifier, and the lambda with the best worst-cell accuracy. */
#include "lib/eval/dfr.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/eval/score.h"

enum { TAG_DFR = 0x44465231 /* "DFR1" */ };

void cx_dfr_defaults(cx_dfr_opts *o)
{
    memset(o, 0, sizeof *o);
    o->draws = 10;
    o->seed = 0;
    cx_probe_defaults(&o->probe);
}

void cx_dfr_info_free(cx_dfr_info *info)
{
    if (!info)
        return;
    free(info->grid_lambda);
    free(info->grid_acc);
    info->grid_lambda = info->grid_acc = NULL;
}

static cx_status check_cells(const int32_t *cell, size_t n, int K, cx_err *err)
{
    for (size_t i = 0; i < n; i++)
        if (cell[i] < 0 || cell[i] >= K)
            return cx_fail(err, CX_EDATA, "dfr: row %zu: cell %d is outside [0, %d)", i, cell[i],
                           K);
    return CX_OK;
}

cx_status cx_dfr_halves(const int32_t *cell, size_t n, int K, uint64_t seed, int32_t **first,
                        size_t *n1, int32_t **second, size_t *n2, cx_err *err)
{
    *first = *second = NULL;
    *n1 = *n2 = 0;
    cx_status st = check_cells(cell, n, K, err);
    if (st)
        return st;
    size_t *start = calloc((size_t)K + 1, sizeof *start);
    uint32_t *byc = malloc(sizeof *byc * (n ? n : 1));
    unsigned char *in1 = calloc(n ? n : 1, 1);
    *first = malloc(sizeof **first * (n ? n : 1));
    *second = malloc(sizeof **second * (n ? n : 1));
    if (!start || !byc || !in1 || !*first || !*second) {
        st = cx_fail(err, CX_ENOMEM, "dfr: out of memory for %zu rows", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        start[cell[i] + 1]++;
    for (int k = 0; k < K; k++)
        start[k + 1] += start[k];
    {
        size_t *pos = malloc(sizeof *pos * ((size_t)K + 1));
        if (!pos) {
            st = cx_fail(err, CX_ENOMEM, "dfr: out of memory");
            goto fail;
        }
        memcpy(pos, start, sizeof *pos * ((size_t)K + 1));
        for (size_t i = 0; i < n; i++)
            byc[pos[cell[i]]++] = (uint32_t)i;
        free(pos);
    }
    for (int k = 0; k < K; k++) {
        size_t nk = start[k + 1] - start[k];
        cx_rng r;
        cx_rng_seed(&r, seed, cx_rng_stream(TAG_DFR, 0, (uint64_t)k));
        cx_rng_shuffle(&r, byc + start[k], nk);
        for (size_t j = 0; j < (nk + 1) / 2; j++)
            in1[byc[start[k] + j]] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (in1[i])
            (*first)[(*n1)++] = (int32_t)i;
        else
            (*second)[(*n2)++] = (int32_t)i;
    }
    free(start);
    free(byc);
    free(in1);
    return CX_OK;
fail:
    free(start);
    free(byc);
    free(in1);
    free(*first);
    free(*second);
    *first = *second = NULL;
    return st;
}

cx_status cx_dfr_fit_lambda(cx_eval_classifier *clf, const float *x, const int32_t *y,
                            const int32_t *cell, int K, const int32_t *rows, size_t nr, int C,
                            int D, double lambda, const cx_dfr_opts *o, int *per_cell,
                            cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    if (o->draws < 1)
        return cx_fail(err, CX_EUSAGE, "dfr.draws: %d, must be at least 1", o->draws);
    cx_status st = CX_OK;
    int64_t *count = calloc((size_t)K, sizeof *count);
    size_t *start = calloc((size_t)K + 1, sizeof *start);
    uint32_t *byc = malloc(sizeof *byc * (nr ? nr : 1));
    uint32_t *perm = malloc(sizeof *perm * (nr ? nr : 1));
    unsigned char *pick = malloc(nr ? nr : 1);
    float *xs = NULL;
    int32_t *ys = NULL;
    double *sw = calloc((size_t)C * D + C, sizeof *sw);
    if (!count || !start || !byc || !perm || !pick || !sw) {
        st = cx_fail(err, CX_ENOMEM, "dfr: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nr; i++) {
        int k = cell[rows[i]];
        if (k < 0 || k >= K) {
            st = cx_fail(err, CX_EDATA, "dfr: row %d: cell %d is outside [0, %d)", rows[i], k, K);
            goto fail;
        }
        count[k]++;
    }
    int64_t m = -1;
    int cells = 0;
    for (int k = 0; k < K; k++) {
        start[k + 1] = start[k] + (size_t)count[k];
        if (count[k] > 0) {
            cells++;
            if (m < 0 || count[k] < m)
                m = count[k];
        }
    }
    if (cells == 0) {
        st = cx_fail(err, CX_EDATA, "dfr: no rows to fit on");
        goto fail;
    }
    {
        int64_t *pos = calloc((size_t)K, sizeof *pos);
        if (!pos) {
            st = cx_fail(err, CX_ENOMEM, "dfr: out of memory");
            goto fail;
        }
        for (size_t i = 0; i < nr; i++) {
            int k = cell[rows[i]];
            byc[start[k] + (size_t)pos[k]++] = (uint32_t)i;
        }
        free(pos);
    }
    size_t ns = (size_t)m * (size_t)cells;
    xs = malloc(sizeof *xs * ns * (size_t)D);
    ys = malloc(sizeof *ys * ns);
    if (!xs || !ys) {
        st = cx_fail(err, CX_ENOMEM, "dfr: out of memory for %zu rows", ns);
        goto fail;
    }
    cx_probe_opts po = o->probe;
    po.grid = 1;
    po.lambda = lambda;
    for (int d = 0; d < o->draws; d++) {
        cx_rng r;
        cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_DFR, 1, (uint64_t)d));
        memset(pick, 0, nr ? nr : 1);
        for (int k = 0; k < K; k++) {
            size_t nk = (size_t)count[k];
            if (!nk)
                continue;
            cx_rng_permutation(&r, perm, nk);
            for (int64_t j = 0; j < m; j++)
                pick[byc[start[k] + perm[j]]] = 1;
        }
        size_t s = 0;
        for (size_t i = 0; i < nr; i++)
            if (pick[i]) {
                memcpy(xs + s * (size_t)D, x + (size_t)rows[i] * D, sizeof *xs * (size_t)D);
                ys[s++] = y[rows[i]];
            }
        cx_eval_classifier one;
        if ((st = cx_eval_linear_probe(&one, xs, ys, (int)ns, C, D, &po, NULL, err)))
            goto fail;
        for (size_t i = 0; i < (size_t)C * D; i++)
            sw[i] += one.w[i];
        for (int c = 0; c < C; c++)
            sw[(size_t)C * D + c] += one.b[c];
        if (d == o->draws - 1) {
            /* The last fit's shape and normalisation, the mean's values. */
            *clf = one;
            for (size_t i = 0; i < (size_t)C * D; i++)
                clf->w[i] = (float)(sw[i] / o->draws);
            for (int c = 0; c < C; c++)
                clf->b[c] = (float)(sw[(size_t)C * D + c] / o->draws);
        } else {
            cx_eval_classifier_free(&one);
        }
    }
    if (per_cell)
        *per_cell = (int)m;
fail:
    free(count);
    free(start);
    free(byc);
    free(perm);
    free(pick);
    free(xs);
    free(ys);
    free(sw);
    return st;
}

/* min over cells with rows of the accuracy of clf on x's rows `rows`; NaN without rows. */
static cx_status worst_cell(const cx_eval_classifier *clf, const float *x, const int32_t *y,
                            const int32_t *cell, int K, const int32_t *rows, size_t nr, int C,
                            int D, float *xs, float *logits, int64_t *hits, double *out,
                            cx_err *err)
{
    for (size_t i = 0; i < nr; i++)
        memcpy(xs + i * (size_t)D, x + (size_t)rows[i] * D, sizeof *xs * (size_t)D);
    cx_status st = cx_eval_logits(clf, xs, (int)nr, logits, err);
    if (st)
        return st;
    memset(hits, 0, sizeof *hits * 2 * (size_t)K);
    for (size_t i = 0; i < nr; i++) {
        const float *z = logits + i * (size_t)C;
        int best = 0;
        for (int c = 1; c < C; c++)
            if (z[c] > z[best])
                best = c;
        int k = cell[rows[i]];
        hits[K + k]++;
        hits[k] += best == y[rows[i]];
    }
    double w = NAN;
    for (int k = 0; k < K; k++)
        if (hits[K + k]) {
            double a = (double)hits[k] / (double)hits[K + k];
            if (isnan(w) || a < w)
                w = a;
        }
    *out = w;
    return CX_OK;
}

cx_status cx_dfr_fit(cx_eval_classifier *clf, const float *x, const int32_t *y,
                     const int32_t *groups, size_t N, int C, int G, int D, const cx_dfr_opts *o,
                     cx_dfr_info *info, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    if (info)
        memset(info, 0, sizeof *info);
    cx_dfr_opts def;
    if (!o) {
        cx_dfr_defaults(&def);
        o = &def;
    }
    if (C < 1 || D < 1 || N < 2 || (groups && G < 1))
        return cx_fail(err, CX_EDATA, "dfr: bad shape (%zu rows, %d classes, dim %d)", N, C, D);
    cx_status st = cx_eval_check_labels(y, (int)N, C, "dfr: validation labels", err);
    if (st)
        return st;
    const int32_t *cell = groups ? groups : y;
    int K = groups ? G : C;
    int ng = o->probe.grid;
    int32_t *first = NULL, *second = NULL;
    size_t n1 = 0, n2 = 0;
    float *xs = NULL, *logits = NULL;
    int64_t *hits = NULL;
    double *gl = malloc(sizeof *gl * (size_t)(ng > 0 ? ng : 1));
    double *ga = malloc(sizeof *ga * (size_t)(ng > 0 ? ng : 1));
    cx_eval_classifier cur, best;
    memset(&cur, 0, sizeof cur);
    memset(&best, 0, sizeof best);
    double best_acc = -1, best_lambda = NAN;
    int per_cell = 0;
    if (ng < 1 || !gl || !ga) {
        st = cx_fail(err, ng < 1 ? CX_EUSAGE : CX_ENOMEM, "dfr: lambda grid of %d values", ng);
        goto fail;
    }
    if ((st = cx_dfr_halves(cell, N, K, o->seed, &first, &n1, &second, &n2, err)))
        goto fail;
    if (n1 == 0 || n2 == 0) {
        st = cx_fail(err, CX_EDATA,
                     "dfr: %zu validation rows leave a half empty (first %zu, second %zu)", N,
                     n1, n2);
        goto fail;
    }
    xs = malloc(sizeof *xs * n2 * (size_t)D);
    logits = malloc(sizeof *logits * n2 * (size_t)C);
    hits = malloc(sizeof *hits * 2 * (size_t)K);
    if (!xs || !logits || !hits) {
        st = cx_fail(err, CX_ENOMEM, "dfr: out of memory");
        goto fail;
    }
    for (int g = ng - 1; g >= 0; g--) {
        double lg = ng == 1 ? log10(o->probe.lambda)
                            : o->probe.log10_min +
                                  (o->probe.log10_max - o->probe.log10_min) * g / (ng - 1);
        gl[g] = ng == 1 ? o->probe.lambda : pow(10.0, lg);
        if ((st = cx_dfr_fit_lambda(&cur, x, y, cell, K, first, n1, C, D, gl[g], o, &per_cell,
                                    err)) ||
            (st = worst_cell(&cur, x, y, cell, K, second, n2, C, D, xs, logits, hits, &ga[g],
                             err)))
            goto fail;
        /* Strictly better: ties go to the larger lambda, tried first. */
        if (ga[g] > best_acc) {
            best_acc = ga[g];
            best_lambda = gl[g];
            cx_eval_classifier_free(&best);
            best = cur;
            memset(&cur, 0, sizeof cur);
        } else {
            cx_eval_classifier_free(&cur);
        }
    }
    *clf = best;
    memset(&best, 0, sizeof best);
    if (info) {
        info->lambda = best_lambda;
        info->sel_acc = best_acc;
        info->by_group = groups != NULL;
        info->n_first = (int)n1;
        info->n_second = (int)n2;
        info->per_cell = per_cell;
        info->grid = ng;
        info->grid_lambda = gl;
        info->grid_acc = ga;
        gl = ga = NULL;
    }
fail:
    cx_eval_classifier_free(&cur);
    cx_eval_classifier_free(&best);
    free(first);
    free(second);
    free(xs);
    free(logits);
    free(hits);
    free(gl);
    free(ga);
    return st;
}
