/* The one door to BLAS: row-major single-precision matrix products. No other file includes cblas.h. */
#ifndef CX_BASE_BLAS_H
#define CX_BASE_BLAS_H

/* C (m x n) = alpha * op(A) * op(B) + beta * C, all row-major.
 * op(A) is (m x k): A is (m x k) with lda >= k, or (k x m) with lda >= m when trans_a.
 * op(B) is (k x n): B is (k x n) with ldb >= n, or (n x k) with ldb >= k when trans_b.
 * With beta == 0, C need not be initialised (NaN in C does not propagate). */
void cx_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* One product's arguments, as cx_sgemm takes them. */
typedef struct {
    int trans_a, trans_b, m, n, k;
    float alpha;
    const float *a;
    int lda;
    const float *b;
    int ldb;
    float beta;
    float *c; /* must not overlap the other product's a, b or c */
    int ldc;
} cx_gemm;

/* Two independent products. With two threads in force and OpenMP, they run side by side, each
 * on one thread: a layer's input and weight gradients cost the same flops, and two one-thread
 * products finish sooner than the same two in turn, each split over both cores (no partition
 * into thin blocks, no join). Each product then has the bits it has on one thread, which at
 * some shapes differ in rounding from OpenBLAS's two-thread split (W1's shapes: the same bits;
 * tests/check_blas.c). Otherwise, in turn. Deterministic either way. */
void cx_sgemm_pair(const cx_gemm *first, const cx_gemm *second);

/* B (m x n) = B * U in place, U (n x n) upper triangular (entries below the diagonal are not
 * read), row-major: half the flops of a general product for a triangular factor. */
void cx_strmm_right_upper(int m, int n, const float *u, int ldu, float *b, int ldb);

/* Threads OpenBLAS may use for one product. */
void cx_blas_set_threads(int n);

/* Around an OpenMP region whose threads each call cx_sgemm on their own blocks: products inside
 * run on one thread. OpenBLAS is set to one thread for the region even in its OpenMP build,
 * where a call inside a parallel region would run on one thread anyway: two threads calling it
 * at once measured 5-10% slower there than with the count set to one (OpenBLAS 0.3.21, eval's
 * scoring and NC1 blocks). OpenMP's own count is kept for the region. */
void cx_blas_serial_begin(void);
void cx_blas_serial_end(int n);

/* The core (kernel set) OpenBLAS runs, e.g. "SkylakeX"; NULL when the BLAS cannot say. */
const char *cx_blas_core_name(void);

/* Its threading build: "openmp", "pthreads", "serial", or "unknown". */
const char *cx_blas_threading(void);

/* The BLAS in use, e.g. "OpenBLAS 0.3.21 ... (openmp)", for `clipx version`. */
const char *cx_blas_describe(void);

#endif
