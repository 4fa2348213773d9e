/* Symmetric eigen-solver. Row-major throughout: the Householder vectors live in the rows of a,
 * and eigenvectors are kept as rows (the transpose of the usual column layout) so that every
 * update, including the QL rotations, runs along contiguous memory.
 * Serial on purpose: the algorithm needs a synchronisation per Householder step and per QL
 * sweep (thousands for n = 512), and on a shared 2-core machine OpenMP barriers that often
 * made it up to 50x slower than one thread (measured 9.4 s against 0.17 s). */
#include "lib/eval/symeig.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/eval/internal.h"

enum { ROT_BLOCK = 64, MAX_SWEEPS = 60 };

/* a . b with four running sums: independent chains (and SSE2 pairs) instead of one long
 * dependent chain; the order is fixed, so results do not depend on vectorisation. */
#if defined(__GNUC__)
__attribute__((always_inline)) /* into each vector clone of its callers */
#endif
static inline double dot(const double *a, const double *b, int n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int k = 0;
    for (; k + 4 <= n; k += 4) {
        s0 += a[k] * b[k];
        s1 += a[k + 1] * b[k + 1];
        s2 += a[k + 2] * b[k + 2];
        s3 += a[k + 3] * b[k + 3];
    }
    for (; k < n; k++)
        s0 += a[k] * b[k];
    return (s0 + s1) + (s2 + s3);
}

/* Householder reduction of the full symmetric a to tridiagonal form T = Q^T A Q.
 * Afterwards d (n) is T's diagonal, off[i] (n) couples i and i+1 (off[n-1] = 0), row i of a
 * holds the Householder vector v_i in a[i][0..i-1] and h[i] its scale (H_i = I - v v^T / h[i],
 * h[i] == 0 when no reflection was needed). p (n) is scratch. */
CX_EVAL_CLONES
static void tridiagonalise(double *a, int n, double *d, double *off, double *h, double *p)
{
    for (int i = n - 1; i >= 1; i--) {
        double *v = a + (size_t)i * n;
        int l = i; /* reflect coordinates 0..l-1 so that row i keeps only a[i][l-1] */
        h[i] = 0.0;
        if (l == 1) {
            off[0] = v[0];
            continue;
        }
        double sc = 0.0;
        for (int k = 0; k < l; k++)
            sc = fmax(sc, fabs(v[k]));
        if (sc == 0.0) {
            off[i - 1] = 0.0;
            continue;
        }
        double sigma2 = 0.0;
        for (int k = 0; k < l; k++) {
            v[k] /= sc;
            sigma2 += v[k] * v[k];
        }
        double x_last = v[l - 1];
        double alpha = -copysign(sqrt(sigma2), x_last);
        v[l - 1] = x_last - alpha;
        double hh = sigma2 - x_last * alpha; /* = v.v / 2 > 0 */
        h[i] = hh;
        off[i - 1] = alpha * sc;

        /* B <- H B H on the leading l x l block: p = B v / h, q = p - (v.p / 2h) v,
         * B -= v q^T + q v^T. */
        for (int j = 0; j < l; j++)
            p[j] = dot(a + (size_t)j * n, v, l) / hh;
        double kk = dot(v, p, l) / (2.0 * hh);
        for (int k = 0; k < l; k++)
            p[k] -= kk * v[k];
        for (int j = 0; j < l; j++) {
            double *restrict row = a + (size_t)j * n;
            double vj = v[j], qj = p[j];
#pragma omp simd
            for (int k = 0; k < l; k++)
                row[k] -= vj * p[k] + qj * v[k];
        }
    }
    for (int i = 0; i < n; i++)
        d[i] = a[(size_t)i * n + i];
    off[n - 1] = 0.0;
}

/* r (n, n) = Q^T = H_2 H_3 ... H_{n-1}, built by right products so that the identity part
 * beyond the current block is never touched. */
CX_EVAL_CLONES
static void accumulate(const double *a, const double *h, int n, double *r)
{
    memset(r, 0, sizeof *r * (size_t)n * n);
    for (int i = 0; i < n; i++)
        r[(size_t)i * n + i] = 1.0;
    for (int j = 2; j < n; j++) {
        if (h[j] == 0.0)
            continue;
        const double *v = a + (size_t)j * n;
        double hj = h[j];
        /* Rows 0..j-1 of r are the only ones non-zero in columns 0..j-1. */
        for (int row = 0; row < j; row++) {
            double *restrict rr = r + (size_t)row * n;
            double s = dot(rr, v, j) / hj;
#pragma omp simd
            for (int k = 0; k < j; k++)
                rr[k] -= s * v[k];
        }
    }
}

/* Apply the plane rotations of one QL sweep to rows of r: rotation t mixes rows i = top - t
 * and i + 1. Column blocks keep the rows being mixed in cache across the whole sweep. */
CX_EVAL_CLONES
static void apply_rotations(double *r, int n, int top, int count, const double *rc,
                            const double *rs)
{
    int blocks = (n + ROT_BLOCK - 1) / ROT_BLOCK;
    for (int b = 0; b < blocks; b++) {
        int k0 = b * ROT_BLOCK, k1 = k0 + ROT_BLOCK < n ? k0 + ROT_BLOCK : n;
        for (int t = 0; t < count; t++) {
            int i = top - t;
            double c = rc[t], s = rs[t];
            double *restrict ri = r + (size_t)i * n, *restrict rj = ri + n;
#pragma omp simd
            for (int k = k0; k < k1; k++) {
                double f = rj[k];
                rj[k] = s * ri[k] + c * f;
                ri[k] = c * ri[k] - s * f;
            }
        }
    }
}

/* Implicit QL with Wilkinson shifts on the tridiagonal (d, off), rotating rows of r. */
static int ql_iterate(double *d, double *off, int n, double *r, double *rc, double *rs)
{
    for (int l = 0; l < n; l++) {
        for (int sweep = 0;; sweep++) {
            int m = l;
            while (m < n - 1) {
                double dd = fabs(d[m]) + fabs(d[m + 1]);
                if (fabs(off[m]) <= DBL_EPSILON * dd)
                    break;
                m++;
            }
            if (m == l)
                break;
            if (sweep == MAX_SWEEPS)
                return l;
            /* Shift: the eigenvalue of the leading 2x2 block closer to d[l]. */
            double g = (d[l + 1] - d[l]) / (2.0 * off[l]);
            double rr = hypot(g, 1.0);
            g = d[m] - d[l] + off[l] / (g + copysign(rr, g));
            double s = 1.0, c = 1.0, p = 0.0;
            int count = 0, underflow = 0;
            for (int i = m - 1; i >= l; i--) {
                double f = s * off[i], b = c * off[i];
                rr = hypot(f, g);
                off[i + 1] = rr;
                if (rr == 0.0) {
                    /* The bulge vanished: the matrix splits here; restart on the part. */
                    d[i + 1] -= p;
                    off[m] = 0.0;
                    underflow = 1;
                    break;
                }
                s = f / rr;
                c = g / rr;
                g = d[i + 1] - p;
                rr = (d[i] - g) * s + 2.0 * c * b;
                p = s * rr;
                d[i + 1] = g + p;
                g = c * rr - b;
                rc[count] = c;
                rs[count] = s;
                count++;
            }
            apply_rotations(r, n, m - 1, count, rc, rs);
            if (underflow)
                continue;
            d[l] -= p;
            off[l] = g;
            off[m] = 0.0;
        }
    }
    return -1;
}

cx_status cx_symeig(double *a, double *w, int n, cx_err *err)
{
    if (n < 1)
        return cx_fail(err, CX_EUSAGE, "eigen-decomposition: matrix size %d < 1", n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double x = a[(size_t)i * n + j];
            if (!isfinite(x))
                return cx_fail(err, CX_EDATA,
                               "eigen-decomposition: entry (%d, %d) is not finite", i, j);
            a[(size_t)j * n + i] = x;
        }
    if (n == 1) {
        w[0] = a[0];
        a[0] = 1.0;
        return CX_OK;
    }
    double *r = malloc(sizeof *r * (size_t)n * n);
    double *work = malloc(sizeof *work * (size_t)n * 5);
    int *order = malloc(sizeof *order * (size_t)n);
    if (!r || !work || !order) {
        free(r);
        free(work);
        free(order);
        return cx_fail(err, CX_ENOMEM, "eigen-decomposition: out of memory for a %d x %d matrix",
                       n, n);
    }
    double *off = work, *h = work + n, *p = work + 2 * (size_t)n;
    double *rc = work + 3 * (size_t)n, *rs = work + 4 * (size_t)n;

    tridiagonalise(a, n, w, off, h, p);
    accumulate(a, h, n, r);
    int bad = ql_iterate(w, off, n, r, rc, rs);
    if (bad >= 0) {
        free(r);
        free(work);
        free(order);
        return cx_fail(err, CX_EDATA, "eigen-decomposition: eigenvalue %d did not converge in %d sweeps",
                       bad, MAX_SWEEPS);
    }
    /* Ascending order; insertion sort keeps equal eigenvalues in QL order (n is at most a few
     * thousand and the QL output is nearly sorted in practice). */
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 1; i < n; i++) {
        int o = order[i];
        int j = i;
        while (j > 0 && w[order[j - 1]] > w[o]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = o;
    }
    for (int i = 0; i < n; i++) {
        memcpy(a + (size_t)i * n, r + (size_t)order[i] * n, sizeof *a * (size_t)n);
        p[i] = w[order[i]];
    }
    memcpy(w, p, sizeof *w * (size_t)n);
    free(r);
    free(work);
    free(order);
    return CX_OK;
}
