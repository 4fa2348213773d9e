/* Cholesky, condition estimate and triangular inverse, row-major, in double. */
#include "lib/eval/spd_factor.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { COND_ITERATIONS = 30 };

static double dot(const double *a, const double *b, int n)
{
    double s0 = 0.0, s1 = 0.0;
    int k = 0;
    for (; k + 2 <= n; k += 2) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
    }
    if (k < n)
        s0 += a[k] * b[k];
    return s0 + s1;
}

/* In place: l's lower triangle becomes L with A = L L^T. 0 when a pivot is not positive. */
static int cholesky(double *l, int n)
{
    for (int j = 0; j < n; j++) {
        double *lj = l + (size_t)j * n;
        double d = lj[j] - dot(lj, lj, j);
        if (!(d > 0.0) || !isfinite(d))
            return 0;
        d = sqrt(d);
        lj[j] = d;
        for (int i = j + 1; i < n; i++) {
            double *li = l + (size_t)i * n;
            li[j] = (li[j] - dot(li, lj, j)) / d;
        }
    }
    return 1;
}

/* y = A x from A's lower triangle. */
static void sym_matvec(const double *a, int n, const double *x, double *y)
{
    for (int i = 0; i < n; i++)
        y[i] = 0.0;
    for (int i = 0; i < n; i++) {
        const double *ai = a + (size_t)i * n;
        y[i] += dot(ai, x, i) + ai[i] * x[i];
        for (int j = 0; j < i; j++)
            y[j] += ai[j] * x[i];
    }
}

/* x = A^-1 x through L y = x, then L^T x = y. */
static void spd_solve(const double *l, int n, double *x)
{
    for (int i = 0; i < n; i++) {
        const double *li = l + (size_t)i * n;
        x[i] = (x[i] - dot(li, x, i)) / li[i];
    }
    for (int i = n - 1; i >= 0; i--) {
        x[i] /= l[(size_t)i * n + i];
        const double *li = l + (size_t)i * n;
        for (int j = 0; j < i; j++)
            x[j] -= li[j] * x[i];
    }
}

static void normalise(double *x, int n)
{
    double s = sqrt(dot(x, x, n));
    for (int i = 0; i < n; i++)
        x[i] /= s;
}

/* A fixed start with no special structure: power iteration must not begin orthogonal to the
 * extreme eigenvectors of a structured matrix. */
static void start_vector(double *x, int n)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = 0.5 + (double)(s >> 11) / 9007199254740992.0;
    }
    normalise(x, n);
}

cx_status cx_spd_inverse_factor(const double *a, int n, double max_cond, double *linv, int *ok,
                                cx_err *err)
{
    *ok = 0;
    double *l = malloc(sizeof *l * (size_t)n * n);
    double *x = malloc(sizeof *x * (size_t)n);
    double *y = malloc(sizeof *y * (size_t)n);
    if (!l || !x || !y) {
        free(l);
        free(x);
        free(y);
        return cx_fail(err, CX_ENOMEM, "Cholesky: out of memory for a %d x %d matrix", n, n);
    }
    for (int i = 0; i < n; i++)
        memcpy(l + (size_t)i * n, a + (size_t)i * n, sizeof *l * (size_t)(i + 1));
    if (!cholesky(l, n))
        goto fail;
    /* Rayleigh quotients: lambda_max from below, lambda_min from above, so the estimate of the
     * condition number can only be low by the iterations' shortfall, which is far inside the
     * margin callers leave below the rounding-noise level. */
    start_vector(x, n);
    double lmax = 0.0;
    for (int it = 0; it < COND_ITERATIONS; it++) {
        sym_matvec(a, n, x, y);
        lmax = dot(x, y, n);
        memcpy(x, y, sizeof *x * (size_t)n);
        normalise(x, n);
    }
    start_vector(x, n);
    double inv_lmin = 0.0;
    for (int it = 0; it < COND_ITERATIONS; it++) {
        memcpy(y, x, sizeof *y * (size_t)n);
        spd_solve(l, n, y);
        inv_lmin = dot(x, y, n);
        memcpy(x, y, sizeof *x * (size_t)n);
        normalise(x, n);
    }
    if (!(lmax > 0.0) || !(inv_lmin > 0.0) || !(lmax * inv_lmin <= max_cond))
        goto fail;
    /* L^-1 row by row from L X = I: X[i][j] = (delta_ij - sum_{k<i} L[i][k] X[k][j]) / L[i][i],
     * with X[k][j] = 0 for j > k. */
    memset(linv, 0, sizeof *linv * (size_t)n * n);
    for (int i = 0; i < n; i++) {
        const double *li = l + (size_t)i * n;
        double *ri = linv + (size_t)i * n;
        for (int k = 0; k < i; k++) {
            const double *rk = linv + (size_t)k * n;
            double f = li[k];
            for (int j = 0; j <= k; j++)
                ri[j] -= f * rk[j];
        }
        double inv = 1.0 / li[i];
        for (int j = 0; j < i; j++)
            ri[j] *= inv;
        ri[i] = inv;
    }
    *ok = 1;
fail:
    free(l);
    free(x);
    free(y);
    return CX_OK;
}
