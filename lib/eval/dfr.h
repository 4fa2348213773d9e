/* Deep feature reweighting (DFR, methods.md section 5): the probe's L2 logistic regression
 * (lib/eval/linprobe.h) refitted on balanced subsets of a held-out split of frozen features,
 * by group when the split has groups, else by class; its strength chosen on the other half by
 * worst-group (worst-class) accuracy. */
#ifndef CX_EVAL_DFR_H
#define CX_EVAL_DFR_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/eval/classifier.h"
#include "lib/eval/linprobe.h"

typedef struct {
    int draws;           /* balanced subsets drawn from the first half (10) */
    uint64_t seed;       /* of the halves and the draws (0) */
    cx_probe_opts probe; /* the solver, the normalisation and the lambda grid (45 values,
                            logspace(-6, 5)); its val_frac and seed are not used */
} cx_dfr_opts;

typedef struct {
    double lambda;        /* the chosen strength */
    double sel_acc;       /* its worst-cell accuracy on the second half */
    int by_group;         /* 1: cells are groups, 0: classes */
    int n_first, n_second;
    int per_cell;         /* rows per cell in each balanced subset */
    int grid;
    double *grid_lambda;  /* (grid), owned, increasing */
    double *grid_acc;     /* (grid), owned: worst-cell accuracy on the second half */
} cx_dfr_info;

void cx_dfr_defaults(cx_dfr_opts *o);
void cx_dfr_info_free(cx_dfr_info *info);

/* The cell of row i is cell[i] in [0, K) (a group, or the class). Splits the rows of each cell
 * in two: a seeded shuffle, then the first ceil(n_k / 2) go to *first, the rest to *second;
 * both (malloc'd) hold row indices in increasing order. CX_EDATA on a cell out of range. */
cx_status cx_dfr_halves(const int32_t *cell, size_t n, int K, uint64_t seed, int32_t **first,
                        size_t *n1, int32_t **second, size_t *n2, cx_err *err);

/* On the rows `rows` (nr) of x (N, D), y (labels in [0, C)), cell: `draws` subsets, each with
 * m = the smallest non-empty cell's count of every non-empty cell (a seeded draw without
 * replacement, rows kept in increasing order); the probe fitted on each at lambda; the mean of
 * the weights and biases in clf (a LINEAR classifier as the probe's). per_cell may be NULL. */
cx_status cx_dfr_fit_lambda(cx_eval_classifier *clf, const float *x, const int32_t *y,
                            const int32_t *cell, int K, const int32_t *rows, size_t nr, int C,
                            int D, double lambda, const cx_dfr_opts *o, int *per_cell,
                            cx_err *err);

/* The whole of DFR on x (N, D), y (N) in [0, C), groups (N) in [0, G) or NULL (then classes
 * are the cells): halves, the fit of every lambda of the probe's grid on the first half, the
 * one with the best worst-cell accuracy on the second half (ties: the larger lambda); clf is
 * that fit. info may be NULL. CX_EDATA when a half is empty. */
cx_status cx_dfr_fit(cx_eval_classifier *clf, const float *x, const int32_t *y,
                     const int32_t *groups, size_t N, int C, int G, int D, const cx_dfr_opts *o,
                     cx_dfr_info *info, cx_err *err);

#endif
