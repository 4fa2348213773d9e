/* The inverse Cholesky factor of a well-conditioned symmetric positive definite matrix: the
 * cheap road to A^-1 = L^-T L^-1 when A is known to be of full rank (n^3 / 3 flops against the
 * eigen-decomposition's 9 n^3), refused when A is singular or ill-conditioned so that callers
 * can fall back to a pseudo-inverse (lib/eval/symeig.h). */
#ifndef CX_EVAL_SPD_FACTOR_H
#define CX_EVAL_SPD_FACTOR_H

#include "lib/base/err.h"

/* a (n, n) row-major, only the lower triangle read. On success *ok = 1 and linv (n, n) holds
 * L^-1, lower triangular (zeros above the diagonal), with A = L L^T. *ok = 0 (linv garbage)
 * when a pivot is not positive or finite, or when the estimated condition number
 * lambda_max / lambda_min (power and inverse power iteration from a fixed start) exceeds
 * max_cond. Deterministic, one thread. CX_ENOMEM when scratch (n^2 + 2n doubles) is refused. */
cx_status cx_spd_inverse_factor(const double *a, int n, double max_cond, double *linv, int *ok,
                                cx_err *err);

#endif
