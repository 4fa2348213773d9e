/* Thin wrapper over cblas_sgemm; degenerate shapes are handled here so callers need no guards. */
#include "config.h"
#include "lib/base/blas.h"

#include <cblas.h>
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
    if (!blas_uses_openmp())
        cx_blas_set_threads(1);
}

void cx_blas_serial_end(int n)
{
    if (!blas_uses_openmp())
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
