/* Limited-memory BFGS minimisation with a line search that satisfies the strong Wolfe
 * conditions (Nocedal & Wright, Numerical Optimization, algorithms 7.4, 3.5 and 3.6). */
#ifndef CX_EVAL_LBFGS_H
#define CX_EVAL_LBFGS_H

#include "lib/base/err.h"

/* The objective: returns f(x) and writes its gradient into g (n). A non-finite return value
 * tells the line search the step went too far. */
typedef double (*cx_lbfgs_fn)(void *ctx, const double *x, double *g);

typedef struct {
    int m;          /* correction pairs kept (10) */
    int max_iter;   /* iterations (500) */
    double gtol;    /* stop when max_i |g_i| <= gtol (1e-6) */
    double ftol;    /* stop when (f_prev - f) <= ftol * max(|f_prev|, |f|, 1) (1e-10) */
    int max_ls;     /* objective evaluations per line search (40) */
    double c1, c2;  /* sufficient decrease and curvature constants (1e-4, 0.9) */
} cx_lbfgs_opts;

typedef enum {
    CX_LBFGS_GTOL,      /* gradient small enough */
    CX_LBFGS_FTOL,      /* no more relative progress */
    CX_LBFGS_MAXITER,   /* iteration budget spent */
    CX_LBFGS_LINESEARCH /* no Wolfe step found: at the noise floor of f; x is the best point */
} cx_lbfgs_stop;

typedef struct {
    int iters, evals;
    double f;           /* objective at the returned x */
    double gmax;        /* max |g_i| at the returned x */
    cx_lbfgs_stop stop;
} cx_lbfgs_info;

void cx_lbfgs_defaults(cx_lbfgs_opts *o);

/* Minimise fn from x (n), in place. info may be NULL. CX_EDIVERGED when f(x0) is not finite,
 * CX_EUSAGE on bad options, CX_ENOMEM when the history (2 m n doubles) is refused. Otherwise
 * CX_OK whatever the stop reason (see info). Deterministic: no randomness, fixed-order sums. */
cx_status cx_lbfgs_minimize(cx_lbfgs_fn fn, void *ctx, double *x, int n, const cx_lbfgs_opts *o,
                            cx_lbfgs_info *info, cx_err *err);

/* Human-readable stop reason. */
const char *cx_lbfgs_stop_name(cx_lbfgs_stop s);

#endif
