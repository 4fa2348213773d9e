/* Thin wrapper over cblas_sgemm; degenerate shapes are handled here so callers need no guards. */
#include "config.h"
#include "lib/base/blas.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <string.h>

void cx_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0 || alpha == 0.0f) {
        /* BLAS semantics: C = beta * C, with beta == 0 meaning "overwrite". */
        for (int i = 0; i < m; i++) {
            float *row = c + (long)i * ldc;
            if (beta == 0.0f)
                memset(row, 0, sizeof *row * (size_t)n);
            else
                for (int j = 0; j < n; j++)
                    row[j] *= beta;
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void gemm_run(const cx_gemm *g)
{
    cx_sgemm(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a, g->lda, g->b, g->ldb,
             g->beta, g->c, g->ldc);
}

void cx_sgemm_pair(const cx_gemm *first, const cx_gemm *second)
{
#ifdef _OPENMP
    /* Below ~64 kflop a product is over before a region's threads wake. */
    int threads = omp_get_max_threads();
    double flops = 2.0 * first->m * first->n * first->k;
    if (threads == 2 && !omp_in_parallel() && flops >= 65536.0) {
        /* OpenBLAS to one thread for the region: with its OpenMP build this also sets the
         * calling thread's OpenMP count, so the region names its two threads itself. Left at
         * two threads, two concurrent calls run at half speed here (OpenBLAS 0.3.21). */
        cx_blas_set_threads(1);
#pragma omp parallel num_threads(2)
        gemm_run(omp_get_thread_num() == 0 ? first : second);
        omp_set_num_threads(threads);
        cx_blas_set_threads(threads);
        return;
    }
#endif
    gemm_run(first);
    gemm_run(second);
}

void cx_strmm_right_upper(int m, int n, const float *u, int ldu, float *b, int ldb)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_strmm(CblasRowMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, m, n, 1.0f, u,
                ldu, b, ldb);
}

void cx_blas_set_threads(int n)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    openblas_set_num_threads(n < 1 ? 1 : n);
#else
    (void)n;
#endif
}

/* OpenBLAS built for OpenMP shares OpenMP's thread count and pool. */
static int blas_uses_openmp(void)
{
#ifdef HAVE_OPENBLAS_GET_PARALLEL
    return openblas_get_parallel() == 2;
#else
    return 0;
#endif
}

void cx_blas_serial_begin(void)
{
#ifdef _OPENMP
    /* With OpenBLAS's OpenMP build this also sets OpenMP's count: give it back, so the region
     * that follows keeps its threads while each of its products runs on one. */
    int threads = omp_get_max_threads();
    cx_blas_set_threads(1);
    if (blas_uses_openmp())
        omp_set_num_threads(threads);
#else
    cx_blas_set_threads(1);
#endif
}

void cx_blas_serial_end(int n)
{
    cx_blas_set_threads(n);
}

const char *cx_blas_core_name(void)
{
#ifdef HAVE_OPENBLAS_GET_CORENAME
    return openblas_get_corename();
#else
    return NULL;
#endif
}

const char *cx_blas_threading(void)
{
#ifdef HAVE_OPENBLAS_GET_PARALLEL
    switch (openblas_get_parallel()) {
    case 0:
        return "serial";
    case 1:
        return "pthreads";
    case 2:
        return "openmp";
    }
#endif
    return "unknown";
}

const char *cx_blas_describe(void)
{
    static char buf[256];
    const char *config = "BLAS";
#ifdef HAVE_OPENBLAS_GET_CONFIG
    config = openblas_get_config();
#endif
    const char *threading = "";
#ifdef HAVE_OPENBLAS_GET_PARALLEL
    switch (openblas_get_parallel()) {
    case 0:
        threading = " (sequential)";
        break;
    case 1:
        threading = " (pthreads)";
        break;
    case 2:
        threading = " (openmp)";
        break;
    }
#endif
    snprintf(buf, sizeof buf, "%s%s", config, threading);
    return buf;
}
