/* NC1 through a pseudo-inverse of Sigma_B obtained from the eigen-decomposition of the smaller
 * of M M^T (C' x C') and M^T M (D x D), both in double (or, for a well-conditioned M^T M, its
 * inverse through Cholesky). With (M^T M)^+ = P P^T,
 * NC1_c = (C' / N) sum_{i in c} |P^T (h_i - mu_c)|^2, so the N feature vectors are projected
 * once by sgemm in chunks and no D x D matrix per class is ever formed. */
#include "lib/eval/collapse.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/eval/classifier.h"
#include "lib/eval/internal.h"
#include "lib/eval/spd_factor.h"
#include "lib/eval/symeig.h"

enum { PROJ_BLOCK = 256 };

/* Eigenvalues of M^T M below lambda_max * RANK_TOL(C', D) are rounding noise of the double
 * Gram matrix (its entries carry relative error ~ n eps; the centring adds an exact null
 * direction) and the pseudo-inverse drops them. */
#define RANK_TOL(cp, d) ((double)((cp) > (d) ? (cp) : (d)) * 16.0 * DBL_EPSILON)

void cx_collapse_free(cx_collapse *c)
{
    if (!c)
        return;
    free(c->nc1_class);
    free(c->means_cos_all_class);
    free(c->means_cos_nearest_class);
    free(c->weights_cos_all_class);
    free(c->weights_cos_nearest_class);
    memset(c, 0, sizeof *c);
}

/* Square tiles of the Gram matrix: n = 8,142 rows would make G 265 MB, and only the lower
 * triangle of tiles is needed (G is symmetric), half the product. */
enum { COH_TILE = 512 };

typedef struct {
    double row_sum[COH_TILE], row_max[COH_TILE]; /* over the tile's columns, per row */
    double col_sum[COH_TILE], col_max[COH_TILE]; /* over the tile's rows, per column */
} coh_partial;

cx_status cx_coherence(const float *v, int n, int D, double *cos_all, double *cos_nearest,
                       cx_err *err)
{
    for (int i = 0; i < n; i++)
        cos_all[i] = cos_nearest[i] = NAN;
    if (n < 2)
        return CX_OK;
    int tiles = (n + COH_TILE - 1) / COH_TILE;
    size_t pairs = (size_t)tiles * (tiles + 1) / 2;
    int nth = cx_eval_max_threads();
    float *vn = malloc(sizeof *vn * (size_t)n * D);
    float *g = malloc(sizeof *g * (size_t)nth * COH_TILE * COH_TILE);
    coh_partial *part = malloc(sizeof *part * pairs);
    if (!vn || !g || !part) {
        free(vn);
        free(g);
        free(part);
        return cx_fail(err, CX_ENOMEM, "coherence: out of memory for %d vectors", n);
    }
    for (int i = 0; i < n; i++) {
        const float *vi = v + (size_t)i * D;
        double s = 0.0;
        for (int d = 0; d < D; d++)
            s += (double)vi[d] * vi[d];
        float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
        for (int d = 0; d < D; d++)
            vn[(size_t)i * D + d] = vi[d] * inv;
    }
    double shift = 1.0 / (n - 1);
    /* Tile pair q = (I, J), J <= I, in row-major order of the lower triangle. Each thread
     * multiplies its own tiles (single-threaded sgemm) and reduces them to partial sums and
     * maxima; the partials are combined below in a fixed order, so the bits do not depend on
     * the thread count. */
    cx_eval_blas_serial();
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t q = 0; q < pairs; q++) {
        int I = (int)((sqrt(8.0 * (double)q + 1.0) - 1.0) / 2.0);
        while ((size_t)I * (I + 1) / 2 > q)
            I--;
        while ((size_t)(I + 1) * (I + 2) / 2 <= q)
            I++;
        int J = (int)(q - (size_t)I * (I + 1) / 2);
        int i0 = I * COH_TILE, j0 = J * COH_TILE;
        int ni = n - i0 < COH_TILE ? n - i0 : COH_TILE;
        int nj = n - j0 < COH_TILE ? n - j0 : COH_TILE;
        float *gt = g + (size_t)cx_eval_thread_id() * COH_TILE * COH_TILE;
        coh_partial *pp = part + q;
        cx_sgemm(0, 1, ni, nj, D, 1.0f, vn + (size_t)i0 * D, D, vn + (size_t)j0 * D, D, 0.0f, gt,
                 nj);
        for (int b = 0; b < nj; b++)
            pp->col_sum[b] = pp->col_max[b] = 0.0;
        for (int a = 0; a < ni; a++) {
            const float *ga = gt + (size_t)a * nj;
            double sum = 0.0, mx = 0.0;
            for (int b = 0; b < nj; b++) {
                if (I == J && b >= a)
                    break; /* the diagonal tile: its strict lower triangle only */
                double x = fabs((double)ga[b] + shift);
                sum += x;
                mx = x > mx ? x : mx;
                pp->col_sum[b] += x;
                pp->col_max[b] = x > pp->col_max[b] ? x : pp->col_max[b];
            }
            pp->row_sum[a] = sum;
            pp->row_max[a] = mx;
        }
    }
    cx_eval_blas_restore();
    /* Row i of tile row I: tiles (I, 0..I) give its columns j <= i, tiles (K, I) for K > I
     * (transposed) the columns after; on the diagonal tile the upper part comes from its own
     * column partials. Tiles are added in column order. */
    for (int I = 0; I < tiles; I++) {
        int i0 = I * COH_TILE, ni = n - i0 < COH_TILE ? n - i0 : COH_TILE;
        for (int a = 0; a < ni; a++) {
            double sum = 0.0, mx = 0.0;
            for (int J = 0; J <= I; J++) {
                const coh_partial *pp = part + (size_t)I * (I + 1) / 2 + J;
                sum += pp->row_sum[a];
                mx = pp->row_max[a] > mx ? pp->row_max[a] : mx;
            }
            for (int K = I; K < tiles; K++) {
                const coh_partial *pp = part + (size_t)K * (K + 1) / 2 + I;
                sum += pp->col_sum[a];
                mx = pp->col_max[a] > mx ? pp->col_max[a] : mx;
            }
            cos_all[i0 + a] = sum / (n - 1);
            cos_nearest[i0 + a] = mx;
        }
    }
    free(vn);
    free(g);
    free(part);
    return CX_OK;
}

/* sum (C, D) of each class's vectors in double and count (C). Each thread owns one range of
 * columns and walks all rows in order: one pass over h, and a fixed summation order. */
static void class_sums(const float *h, const int32_t *y, int N, int C, int D, double *sum,
                       int64_t *count)
{
    memset(sum, 0, sizeof *sum * (size_t)C * D);
    memset(count, 0, sizeof *count * (size_t)C);
    for (int i = 0; i < N; i++)
        count[y[i]]++;
    int parts = cx_eval_max_threads();
    int width = (D + parts - 1) / parts;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < parts; b++) {
        int d0 = b * width, d1 = d0 + width < D ? d0 + width : D;
        for (int i = 0; i < N; i++) {
            const float *restrict hi = h + (size_t)i * D;
            double *restrict s = sum + (size_t)y[i] * D;
#pragma omp simd
            for (int d = d0; d < d1; d++)
                s[d] += hi[d];
        }
    }
}

/* a = M^T M (n x n, n = D) from M (Cp, D): every entry a[i][j], j <= i, is
 * sum_c m[c][i] m[c][j] added over c in increasing order, one rounded product and one rounded
 * sum a class, the same bits whatever the blocking or the vector width (this sum used to be
 * most of NC1's time for 8,142 classes). Blocks of GRAM_CLASSES classes are packed by each
 * thread into panels of 8 columns, [panel][class][8], so that a register tile of 4 rows x 8
 * columns reads two contiguous streams; the tile's entries above the diagonal are computed
 * too (they equal their mirror images) and nothing reads them. Threads own groups of 4 rows,
 * cyclically (the triangle is balanced), and walk the class blocks in order without waiting
 * for each other. */
enum { GRAM_CLASSES = 64, GRAM_ROWS = 4, GRAM_COLS = 8 };

#if defined(__GNUC__)
typedef double v4d __attribute__((vector_size(32)));
#pragma GCC diagnostic ignored "-Wpsabi"

/* a0 (4 rows of stride n, 8 columns) += sum over nc classes of pi[c*8 + r] pj[c*8 + 0..7];
 * the 8 accumulators are named so that GCC keeps them in registers. */
CX_EVAL_CLONES
static void gram_tile(const double *pi, const double *pj, int nc, double *a0, int n)
{
    double *a1 = a0 + n, *a2 = a1 + n, *a3 = a2 + n;
    v4d s00, s01, s10, s11, s20, s21, s30, s31;
    memcpy(&s00, a0, 32);
    memcpy(&s01, a0 + 4, 32);
    memcpy(&s10, a1, 32);
    memcpy(&s11, a1 + 4, 32);
    memcpy(&s20, a2, 32);
    memcpy(&s21, a2 + 4, 32);
    memcpy(&s30, a3, 32);
    memcpy(&s31, a3 + 4, 32);
    for (int c = 0; c < nc; c++) {
        const double *bi = pi + (size_t)c * GRAM_COLS, *bj = pj + (size_t)c * GRAM_COLS;
        v4d b0, b1;
        memcpy(&b0, bj, sizeof b0);
        memcpy(&b1, bj + 4, sizeof b1);
        v4d f0 = {bi[0], bi[0], bi[0], bi[0]};
        v4d f1 = {bi[1], bi[1], bi[1], bi[1]};
        v4d f2 = {bi[2], bi[2], bi[2], bi[2]};
        v4d f3 = {bi[3], bi[3], bi[3], bi[3]};
        s00 += f0 * b0;
        s01 += f0 * b1;
        s10 += f1 * b0;
        s11 += f1 * b1;
        s20 += f2 * b0;
        s21 += f2 * b1;
        s30 += f3 * b0;
        s31 += f3 * b1;
    }
    memcpy(a0, &s00, 32);
    memcpy(a0 + 4, &s01, 32);
    memcpy(a1, &s10, 32);
    memcpy(a1 + 4, &s11, 32);
    memcpy(a2, &s20, 32);
    memcpy(a2 + 4, &s21, 32);
    memcpy(a3, &s30, 32);
    memcpy(a3 + 4, &s31, 32);
}
#else
static void gram_tile(const double *pi, const double *pj, int nc, double *a0, int n)
{
    for (int r = 0; r < GRAM_ROWS; r++)
        for (int j = 0; j < GRAM_COLS; j++) {
            double t = a0[(size_t)r * n + j];
            for (int c = 0; c < nc; c++)
                t += pi[(size_t)c * GRAM_COLS + r] * pj[(size_t)c * GRAM_COLS + j];
            a0[(size_t)r * n + j] = t;
        }
}
#endif

/* pack (nth, GRAM_CLASSES, D / 8 * 8) is scratch. */
static void gram_lower(const double *m, int Cp, int D, double *a, double *pack)
{
    int n = D, groups = (n + GRAM_ROWS - 1) / GRAM_ROWS, panels = D / GRAM_COLS;
    memset(a, 0, sizeof *a * (size_t)n * n);
#pragma omp parallel
    {
        double *pk = pack + (size_t)cx_eval_thread_id() * GRAM_CLASSES * panels * GRAM_COLS;
        for (int c0 = 0; c0 < Cp; c0 += GRAM_CLASSES) {
            int nc = Cp - c0 < GRAM_CLASSES ? Cp - c0 : GRAM_CLASSES;
            for (int c = 0; c < nc; c++) {
                const double *mc = m + (size_t)(c0 + c) * D;
                for (int q = 0; q < panels; q++)
                    memcpy(pk + ((size_t)q * nc + c) * GRAM_COLS, mc + (size_t)q * GRAM_COLS,
                           sizeof *pk * GRAM_COLS);
            }
#pragma omp for schedule(static, 1) nowait
            for (int g = 0; g < groups; g++) {
                int i0 = g * GRAM_ROWS, i1 = i0 + GRAM_ROWS < n ? i0 + GRAM_ROWS : n;
                int j0 = 0;
                /* Full tiles where rows and columns are packed; the rest one by one. */
                if (i0 + GRAM_ROWS <= panels * GRAM_COLS) {
                    const double *pi = pk + (size_t)(i0 / GRAM_COLS) * nc * GRAM_COLS +
                                       i0 % GRAM_COLS;
                    for (; j0 < i1 && j0 + GRAM_COLS <= panels * GRAM_COLS; j0 += GRAM_COLS)
                        gram_tile(pi, pk + (size_t)(j0 / GRAM_COLS) * nc * GRAM_COLS, nc,
                                  a + (size_t)i0 * n + j0, n);
                }
                for (int i = i0; i < i1; i++)
                    for (int j = j0; j <= i; j++) {
                        double t = a[(size_t)i * n + j];
                        for (int c = c0; c < c0 + nc; c++)
                            t += m[(size_t)c * D + i] * m[(size_t)c * D + j];
                        a[(size_t)i * n + j] = t;
                    }
            }
        }
    }
}

/* P (D, r) as floats with (M^T M)^+ = P P^T, from M (Cp, D) in double. Returns the rank r
 * through *rank; *p is NULL when r == 0; *upper = 1 when P is upper triangular (r = D). */
static cx_status pinv_factor(const double *m, int Cp, int D, float **p, int *rank, int *upper,
                             cx_err *err)
{
    *p = NULL;
    *rank = 0;
    *upper = 0;
    int gram = Cp <= D; /* decompose the smaller side */
    int n = gram ? Cp : D;
    double *a = malloc(sizeof *a * (size_t)n * n);
    double *w = malloc(sizeof *w * (size_t)n);
    double *pack = gram ? NULL
                        : malloc(sizeof *pack * (size_t)cx_eval_max_threads() * GRAM_CLASSES *
                                 (D / GRAM_COLS * GRAM_COLS + 1));
    if (!a || !w || (!gram && !pack)) {
        free(a);
        free(w);
        free(pack);
        return cx_fail(err, CX_ENOMEM, "NC1: out of memory for a %d x %d matrix", n, n);
    }
    if (gram) {
        /* a = M M^T, lower triangle (cyclic rows balance the triangle). */
#pragma omp parallel for schedule(static, 1)
        for (int i = 0; i < n; i++)
            for (int j = 0; j <= i; j++) {
                const double *mi = m + (size_t)i * D, *mj = m + (size_t)j * D;
                double s = 0.0;
                for (int d = 0; d < D; d++)
                    s += mi[d] * mj[d];
                a[(size_t)i * n + j] = s;
            }
    } else {
        gram_lower(m, Cp, D, a, pack);
        free(pack);
    }
    if (!gram) {
        /* M^T M of full rank by the pseudo-inverse's own rule (every eigenvalue above the
         * noise cut, with a factor 2 for the estimate of the condition number): the
         * pseudo-inverse is the inverse, P = L^-T through Cholesky gives the same P P^T at a
         * twentieth of the eigen-solver's cost (measured on a trained run with condition
         * number 5e10: NC1 agrees to 2e-7). */
        double max_cond = 1.0 / (2.0 * RANK_TOL(Cp, D));
        double *linv = malloc(sizeof *linv * (size_t)n * n);
        float *pf = malloc(sizeof *pf * (size_t)n * n);
        int ok = 0;
        cx_status st = linv && pf ? cx_spd_inverse_factor(a, n, max_cond, linv, &ok, err)
                                  : cx_fail(err, CX_ENOMEM, "out of memory for a %d x %d matrix",
                                            n, n);
        if (!st && ok) {
            for (int d = 0; d < n; d++)
                for (int j = 0; j < n; j++)
                    pf[(size_t)d * n + j] = (float)linv[(size_t)j * n + d];
            free(linv);
            free(a);
            free(w);
            *p = pf;
            *rank = n;
            *upper = 1;
            return CX_OK;
        }
        free(linv);
        free(pf);
        if (st) {
            free(a);
            free(w);
            return cx_err_prefix(err, st, "NC1");
        }
    }
    cx_status st = cx_symeig(a, w, n, err);
    if (st) {
        free(a);
        free(w);
        return cx_err_prefix(err, st, "NC1");
    }
    double lmax = w[n - 1];
    double tol = lmax * RANK_TOL(Cp, D);
    int first = n;
    while (first > 0 && w[first - 1] > tol)
        first--;
    int r = n - first;
    if (!(lmax > 0.0) || r == 0) {
        free(a);
        free(w);
        return CX_OK;
    }
    float *pf = malloc(sizeof *pf * (size_t)D * r);
    if (!pf) {
        free(a);
        free(w);
        return cx_fail(err, CX_ENOMEM, "NC1: out of memory for a %d x %d projection", D, r);
    }
    if (gram) {
        /* P = M^T U_r diag(1 / lambda): column j = sum_c U[j][c] M[c][.] / lambda_j. */
#pragma omp parallel for schedule(static)
        for (int j = 0; j < r; j++) {
            const double *u = a + (size_t)(first + j) * n;
            double inv = 1.0 / w[first + j];
            for (int d = 0; d < D; d++) {
                double s = 0.0;
                for (int c = 0; c < Cp; c++)
                    s += u[c] * m[(size_t)c * D + d];
                pf[(size_t)d * r + j] = (float)(s * inv);
            }
        }
    } else {
        /* P = V_r diag(lambda^-1/2). */
        for (int j = 0; j < r; j++) {
            const double *v = a + (size_t)(first + j) * n;
            double inv = 1.0 / sqrt(w[first + j]);
            for (int d = 0; d < D; d++)
                pf[(size_t)d * r + j] = (float)(v[d] * inv);
        }
    }
    free(a);
    free(w);
    *p = pf;
    *rank = r;
    return CX_OK;
}

/* nc1_class[c] = (Cp / N) sum_{i in c} |P^T (h_i - mu_c)|^2 for present classes. Threads own
 * row blocks (single-threaded sgemm each); the per-row sums are added up in row order. */
static cx_status project_within(const float *h, const int32_t *y, int N, int C, int D,
                                const double *mu, const float *p, int r, int upper, int Cp,
                                double *nc1_class, cx_err *err)
{
    int nth = cx_eval_max_threads();
    int block = N < PROJ_BLOCK ? (N > 0 ? N : 1) : PROJ_BLOCK;
    float *xc = malloc(sizeof *xc * (size_t)nth * block * D);
    float *z = malloc(sizeof *z * (size_t)nth * block * r);
    double *sq = malloc(sizeof *sq * (size_t)(N > 0 ? N : 1));
    if (!xc || !z || !sq) {
        free(xc);
        free(z);
        free(sq);
        return cx_fail(err, CX_ENOMEM, "NC1: out of memory for blocks of %d rows", block);
    }
    int blocks = (N + block - 1) / block;
    cx_eval_blas_serial();
#pragma omp parallel for schedule(static)
    for (int b = 0; b < blocks; b++) {
        int tid = cx_eval_thread_id();
        int r0 = b * block, nr = N - r0 < block ? N - r0 : block;
        float *xb = xc + (size_t)tid * block * D, *zb = z + (size_t)tid * block * r;
        for (int i = 0; i < nr; i++) {
            const float *hi = h + (size_t)(r0 + i) * D;
            const double *mc = mu + (size_t)y[r0 + i] * D;
            float *xi = xb + (size_t)i * D;
            for (int d = 0; d < D; d++)
                xi[d] = (float)(hi[d] - mc[d]);
        }
        const float *zrows = zb;
        if (upper) {
            cx_strmm_right_upper(nr, D, p, D, xb, D);
            zrows = xb;
        } else {
            cx_sgemm(0, 0, nr, r, D, 1.0f, xb, D, p, r, 0.0f, zb, r);
        }
        for (int i = 0; i < nr; i++) {
            const float *zi = zrows + (size_t)i * r;
            double s = 0.0;
            for (int j = 0; j < r; j++)
                s += (double)zi[j] * zi[j];
            sq[r0 + i] = s;
        }
    }
    cx_eval_blas_restore();
    for (int c = 0; c < C; c++)
        if (!isnan(nc1_class[c]))
            nc1_class[c] = 0.0;
    for (int i = 0; i < N; i++)
        nc1_class[y[i]] += sq[i];
    for (int c = 0; c < C; c++)
        if (!isnan(nc1_class[c]))
            nc1_class[c] *= (double)Cp / N;
    free(xc);
    free(z);
    free(sq);
    return CX_OK;
}

static double mean_of(const double *v, int n)
{
    double s = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            k++;
        }
    return k ? s / k : NAN;
}

cx_status cx_collapse_compute(cx_collapse *out, const float *h, const int32_t *y, int N, int C,
                              int D, const float *w, int want_nc1, cx_err *err)
{
    memset(out, 0, sizeof *out);
    out->nc1 = out->means_cos_all = out->means_cos_nearest = NAN;
    out->weights_cos_all = out->weights_cos_nearest = NAN;
    if (C < 1 || D < 1 || N < 0)
        return cx_fail(err, CX_EUSAGE, "neural collapse: bad shape (N %d, C %d, D %d)", N, C, D);
    cx_status st = cx_eval_check_labels(y, N, C, "neural collapse: labels", err);
    if (st)
        return st;
    for (long i = 0; i < (long)N * D; i++)
        if (!isfinite(h[i]))
            return cx_fail(err, CX_EDATA, "neural collapse: feature vector %ld is not finite",
                           i / D);
    out->C = C;
    double *mu = malloc(sizeof *mu * (size_t)C * D);
    double *m = malloc(sizeof *m * (size_t)C * D);
    float *mf = malloc(sizeof *mf * (size_t)C * D);
    int64_t *count = malloc(sizeof *count * (size_t)C);
    int *present = malloc(sizeof *present * (size_t)C);
    double *tmp = malloc(sizeof *tmp * (size_t)C * 2);
    float *p = NULL;
    out->means_cos_all_class = malloc(sizeof(double) * (size_t)C);
    out->means_cos_nearest_class = malloc(sizeof(double) * (size_t)C);
    if (want_nc1)
        out->nc1_class = malloc(sizeof(double) * (size_t)C);
    if (w) {
        out->weights_cos_all_class = malloc(sizeof(double) * (size_t)C);
        out->weights_cos_nearest_class = malloc(sizeof(double) * (size_t)C);
    }
    if (!mu || !m || !mf || !count || !present || !tmp || !out->means_cos_all_class ||
        !out->means_cos_nearest_class || (want_nc1 && !out->nc1_class) ||
        (w && (!out->weights_cos_all_class || !out->weights_cos_nearest_class))) {
        st = cx_fail(err, CX_ENOMEM, "neural collapse: out of memory for %d classes", C);
        goto fail;
    }
    class_sums(h, y, N, C, D, mu, count);
    int Cp = 0;
    for (int c = 0; c < C; c++) {
        if (count[c] > 0) {
            for (int d = 0; d < D; d++)
                mu[(size_t)c * D + d] /= (double)count[c];
            present[Cp++] = c;
        }
        out->means_cos_all_class[c] = out->means_cos_nearest_class[c] = NAN;
        if (want_nc1)
            out->nc1_class[c] = NAN;
    }
    out->n_present = Cp;
    /* M over present classes, centred on the unweighted mean of their means. */
    /* Row by row (the same sums in the same order as per column, without striding over
     * C x D doubles). */
    double *gmean = calloc((size_t)D, sizeof *gmean);
    if (!gmean) {
        st = cx_fail(err, CX_ENOMEM, "neural collapse: out of memory for %d classes", C);
        goto fail;
    }
    for (int k = 0; k < Cp; k++) {
        const double *mk = mu + (size_t)present[k] * D;
        for (int d = 0; d < D; d++)
            gmean[d] += mk[d];
    }
    for (int d = 0; d < D; d++)
        gmean[d] = Cp ? gmean[d] / Cp : 0.0;
    for (int k = 0; k < Cp; k++) {
        const double *mk = mu + (size_t)present[k] * D;
        for (int d = 0; d < D; d++) {
            double v = mk[d] - gmean[d];
            m[(size_t)k * D + d] = v;
            mf[(size_t)k * D + d] = (float)v;
        }
    }
    free(gmean);
    if (Cp >= 2) {
        double *ca = tmp, *cn = tmp + C;
        if ((st = cx_coherence(mf, Cp, D, ca, cn, err)))
            goto fail;
        for (int k = 0; k < Cp; k++) {
            out->means_cos_all_class[present[k]] = ca[k];
            out->means_cos_nearest_class[present[k]] = cn[k];
        }
        out->means_cos_all = mean_of(ca, Cp);
        out->means_cos_nearest = mean_of(cn, Cp);
    }
    if (w) {
        for (long i = 0; i < (long)C * D; i++)
            if (!isfinite(w[i])) {
                st = cx_fail(err, CX_EDATA, "neural collapse: class %ld: weights are not finite",
                             i / D);
                goto fail;
            }
        if ((st = cx_coherence(w, C, D, out->weights_cos_all_class,
                               out->weights_cos_nearest_class, err)))
            goto fail;
        out->weights_cos_all = mean_of(out->weights_cos_all_class, C);
        out->weights_cos_nearest = mean_of(out->weights_cos_nearest_class, C);
    }
    if (want_nc1 && Cp >= 2) {
        int r, upper;
        if ((st = pinv_factor(m, Cp, D, &p, &r, &upper, err)))
            goto fail;
        out->rank = r;
        for (int k = 0; k < Cp; k++)
            out->nc1_class[present[k]] = 0.0;
        if (r > 0 && (st = project_within(h, y, N, C, D, mu, p, r, upper, Cp, out->nc1_class, err)))
            goto fail;
        out->nc1 = r > 0 ? mean_of(out->nc1_class, C) : NAN;
        if (r == 0)
            for (int k = 0; k < Cp; k++)
                out->nc1_class[present[k]] = NAN;
    }
fail:
    free(mu);
    free(m);
    free(mf);
    free(count);
    free(present);
    free(tmp);
    free(p);
    if (st)
        cx_collapse_free(out);
    return st;
}
