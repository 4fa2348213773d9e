/* CFR's calibration set and correctly classified pools from the run's own predictions. */
#include "lib/eval/cfr_calib.h"

#include <stdlib.h>
#include <string.h>

#include "lib/model/rebalance_head.h"

void cx_cfr_calib_free(cx_cfr_calib *c)
{
    if (!c)
        return;
    free(c->calib_rows);
    free(c->pool_rows);
    free(c->pool_labels);
    free(c->class_start);
    free(c->class_rows);
    free(c->pool_x);
    memset(c, 0, sizeof *c);
}

cx_status cx_cfr_calib_build(cx_cfr_calib *out, const float *x, const int32_t *y,
                             const int32_t *pred, int64_t N, int C, int D, cx_err *err)
{
    memset(out, 0, sizeof *out);
    if (N < 0 || C < 1 || (x && D < 1))
        return cx_fail(err, CX_EUSAGE, "CFR calibration: bad shape N=%lld C=%d D=%d",
                       (long long)N, C, D);
    int64_t wrong = 0;
    for (int64_t r = 0; r < N; r++) {
        if (y[r] < 0 || y[r] >= C)
            return cx_fail(err, CX_EDATA, "CFR calibration: training row %lld: label %d outside "
                           "0..%d", (long long)r, (int)y[r], C - 1);
        if (pred[r] < 0 || pred[r] >= C)
            return cx_fail(err, CX_EDATA, "CFR calibration: training row %lld: prediction %d "
                           "outside 0..%d", (long long)r, (int)pred[r], C - 1);
        wrong += pred[r] != y[r];
    }
    out->C = C;
    out->D = x ? D : 0;
    out->n_calib = wrong;
    out->n_pool = N - wrong;
    /* One extra element so an empty set still gets a non-NULL buffer. */
    size_t nc = (size_t)out->n_calib + 1, np = (size_t)out->n_pool + 1;
    out->calib_rows = malloc(sizeof *out->calib_rows * nc);
    out->pool_rows = malloc(sizeof *out->pool_rows * np);
    out->pool_labels = malloc(sizeof *out->pool_labels * np);
    out->class_start = malloc(sizeof *out->class_start * ((size_t)C + 1));
    out->class_rows = malloc(sizeof *out->class_rows * np);
    if (x)
        out->pool_x = malloc(sizeof *out->pool_x * np * (size_t)D);
    if (!out->calib_rows || !out->pool_rows || !out->pool_labels || !out->class_start ||
        !out->class_rows || (x && !out->pool_x)) {
        cx_cfr_calib_free(out);
        return cx_fail(err, CX_ENOMEM, "CFR calibration: out of memory for %lld rows",
                       (long long)N);
    }
    int64_t ic = 0, ip = 0;
    for (int64_t r = 0; r < N; r++) {
        if (pred[r] != y[r]) {
            out->calib_rows[ic++] = r;
            continue;
        }
        out->pool_rows[ip] = r;
        out->pool_labels[ip] = y[r];
        if (x)
            memcpy(out->pool_x + (size_t)ip * D, x + (size_t)r * D, sizeof *x * (size_t)D);
        ip++;
    }
    cx_status st = cx_cfr_pool_index(out->pool_labels, out->n_pool, C, out->class_start,
                                     out->class_rows, err);
    if (st)
        cx_cfr_calib_free(out);
    return st;
}
