/* Eigen-decomposition of a real symmetric matrix (LAPACK's dsyev is not a dependency of clipx):
 * Householder reduction to tridiagonal form, then implicit QL iterations with Wilkinson shifts. */
#ifndef CX_EVAL_SYMEIG_H
#define CX_EVAL_SYMEIG_H

#include "lib/base/err.h"

/* a (n, n) row-major: only the lower triangle (a[i*n + j], j <= i) is read. On success a is
 * overwritten so that row i holds the unit eigenvector of eigenvalue w[i], and w (n) holds the
 * eigenvalues in ascending order: A = sum_i w[i] a_i a_i^T. Cost about 9 n^3 flops, on one
 * thread (about 0.15 s for n = 512 here); deterministic. Fails with CX_EDATA on a non-finite entry or if
 * an eigenvalue does not converge, CX_ENOMEM when scratch (n^2 + 4n doubles) is refused; on
 * failure a and w hold garbage. */
cx_status cx_symeig(double *a, double *w, int n, cx_err *err);

#endif
