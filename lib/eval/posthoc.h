/* Post-hoc rebalancing of a fitted linear classifier (methods.md sections 4, 5 and 9): logit
 * adjustment (subtract tau log pi_c from the logits) and tau-normalisation
 * (W_c <- W_c / ||W_c||^tau), with tau given or chosen on validation data by class-mean
 * accuracy over a grid; and the validation data itself: the dataset's `val:` split, or
 * class-balanced training rows outside the run's SUBSET. Never the test split. */
#ifndef CX_EVAL_POSTHOC_H
#define CX_EVAL_POSTHOC_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/eval/classifier.h"

typedef enum { CX_POSTHOC_NONE, CX_POSTHOC_LOGIT_ADJUST, CX_POSTHOC_TAU_NORM } cx_posthoc_kind;

/* "logit-adjust", "tau-norm" ("none"). */
const char *cx_posthoc_name(cx_posthoc_kind k);

/* The grids of methods.md section 9: 0, 0.1, ..., 2 (logit adjustment), 0 ... 1 (tau-norm). */
int cx_posthoc_default_grid(cx_posthoc_kind k, double *grid, int cap);

/* Apply kind with tau to clf in place; counts (C) are the training counts (pi_c from
 * max(n_c, 1)). tau-norm needs an unnormalised (linear) classifier: CX_EUSAGE otherwise. */
cx_status cx_posthoc_apply(cx_eval_classifier *clf, cx_posthoc_kind kind, double tau,
                           const int64_t *counts, cx_err *err);

/* Class-mean accuracy (over classes with samples) of clf on x (n, D), y (n). */
cx_status cx_eval_class_mean_acc(const cx_eval_classifier *clf, const float *x, const int32_t *y,
                                 size_t n, double *acc, cx_err *err);

/* The grid's tau with the best class-mean accuracy on (x, y) (the first on ties); grid_acc
 * (ng) receives every candidate's accuracy unless NULL. clf is not changed. */
cx_status cx_posthoc_select(const cx_eval_classifier *clf, cx_posthoc_kind kind,
                            const double *grid, int ng, const int64_t *counts, const float *x,
                            const int32_t *y, size_t n, double *tau, double *acc,
                            double *grid_acc, cx_err *err);

#endif
