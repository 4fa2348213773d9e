/* Linear probe: multinomial logistic regression with L2 on frozen features, fitted by L-BFGS
 * (lib/eval/lbfgs.h), its strength picked on a seeded stratified validation split of the
 * training set, then refit on all of it (methods.md section 7). */
#ifndef CX_EVAL_LINPROBE_H
#define CX_EVAL_LINPROBE_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/eval/classifier.h"
#include "lib/eval/lbfgs.h"

/* The objective, with theta = [W (C, D) row-major, b (C)]:
 *   f = (1/N) sum_i CE(W x_i + b, y_i) + (lambda / 2) |W|_F^2   (the bias is not penalised).
 * lambda = 1 / (C_sklearn N) relates it to scikit-learn's LogisticRegression(C=...). */
typedef struct {
    int grid;            /* lambdas tried (45, the paper's); 1: no validation, use `lambda` */
    double log10_min;    /* grid = logspace(log10_min, log10_max, grid) (-6) */
    double log10_max;    /* (5) */
    double lambda;       /* the strength when grid == 1 (1e-4) */
    double val_frac;     /* share of each class held out for validation (0.2) */
    uint64_t seed;       /* of the validation split (0) */
    int normalize;       /* L2-normalise the features first, and at scoring time (1) */
    int chunk;           /* rows per block (sgemm) in the objective (CX_EVAL_CHUNK_DEFAULT) */
    cx_lbfgs_opts lbfgs; /* solver (cx_lbfgs_defaults, max_iter 1000, gtol 1e-5) */
} cx_probe_opts;

typedef struct {
    double lambda;        /* the strength of the returned classifier */
    double val_acc;       /* its class-mean accuracy on the validation split (NaN if grid == 1) */
    int n_train, n_val;   /* sizes of the split used for the search (n_val 0 if grid == 1) */
    int grid;
    double *grid_lambda;  /* (grid), owned: the strengths tried, in increasing order */
    double *grid_val_acc; /* (grid), owned: class-mean validation accuracy of each */
    int32_t *val_rows;    /* (n_val), owned: the validation rows (indices into x), increasing;
                             NULL if grid == 1. The rest of x is the search's training part. */
    cx_lbfgs_info fit;    /* solver report of the final fit on all training vectors */
} cx_probe_info;

void cx_probe_defaults(cx_probe_opts *o);

/* Fit on x (N, D), y (N) in [0, C) and return a LINEAR classifier (scale 1, bias) in clf.
 * info may be NULL; otherwise free it with cx_probe_info_free. Each lambda of the grid is
 * fitted on the training part, warm-started from the next larger one; the best class-mean
 * validation accuracy wins, ties going to the larger lambda. Classes whose count leaves none
 * for validation (n_c * val_frac rounds to 0, or n_c == 1) train only. CX_EDATA when the
 * split leaves no validation vector, on bad labels or non-finite features. Threaded like
 * lib/eval/score.h; same bits for the same options and thread count. */
cx_status cx_eval_linear_probe(cx_eval_classifier *clf, const float *x, const int32_t *y, int N,
                               int C, int D, const cx_probe_opts *o, cx_probe_info *info,
                               cx_err *err);

void cx_probe_info_free(cx_probe_info *info);

/* The objective and its gradient (grad: C * D + C doubles, may be NULL) at theta for x (N, D)
 * used as given (no normalisation). For tests and diagnostics. */
cx_status cx_logreg_objective(const float *x, const int32_t *y, int N, int C, int D,
                              double lambda, const double *theta, double *f, double *grad,
                              cx_err *err);

#endif
