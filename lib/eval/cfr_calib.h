/* CFR's calibration set (methods.md section 5, issue 15 item 5 (i)): the training rows the run's
 * classifier gets wrong, and pools of the rows it gets right, grouped by class in the layout
 * cx_cfr_select (lib/model/rebalance_head.h) reads. No group label is involved. */
#ifndef CX_EVAL_CFR_CALIB_H
#define CX_EVAL_CFR_CALIB_H

#include <stdint.h>

#include "lib/base/err.h"

typedef struct {
    int C, D;
    int64_t n_calib;
    int64_t *calib_rows;  /* (n_calib), owned: training rows with pred != label, increasing */
    int64_t n_pool;
    int64_t *pool_rows;   /* (n_pool), owned: training rows with pred == label, increasing */
    int32_t *pool_labels; /* (n_pool), owned: their labels (cx_cfr_select's ypool) */
    int64_t *class_start; /* (C + 1), owned: cx_cfr_pool_index of pool_labels; indices are */
    int64_t *class_rows;  /* (n_pool), owned:  positions in the pool, not training rows */
    float *pool_x;        /* (n_pool, D), owned: the pool rows' features; NULL when x was */
} cx_cfr_calib;

/* x (N, D) the training features (may be NULL: pool_x is then not gathered), y (N) labels and
 * pred (N) the run's top-1 predictions (cx_eval_pred.pred), both in [0, C). On success *out is
 * filled and owned by the caller (cx_cfr_calib_free); on failure it is left empty. An empty
 * calibration set is not an error here (the caller decides). CX_EDATA names the first row with
 * a label or prediction out of range. */
cx_status cx_cfr_calib_build(cx_cfr_calib *out, const float *x, const int32_t *y,
                             const int32_t *pred, int64_t N, int C, int D, cx_err *err);

/* Safe on a zeroed or already freed value. */
void cx_cfr_calib_free(cx_cfr_calib *c);

#endif
