/* Fully connected layer: out = in W^T + b through cx_sgemm; the bias gradient is a column sum
 * whose order (rows in order, per column) does not depend on the thread count. */
#include "config.h"
#include "lib/ops/ops.h"

#include "lib/base/blas.h"
#include "lib/ops/ops_internal.h"

void cx_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int K,
                       int N)
{
    if (B <= 0 || N <= 0)
        return;
    float beta = 0.0f;
    if (b) {
        /* Start from the bias and let the product add onto it: one pass over out, not two. */
#pragma omp parallel for schedule(static) if ((size_t)B * N >= CX_OPS_PAR_ELEMS)
        for (int i = 0; i < B; i++) {
            float *o = out + (size_t)i * N;
#pragma omp simd
            for (int j = 0; j < N; j++)
                o[j] = b[j];
        }
        beta = 1.0f;
    }
    cx_sgemm(0, 1, B, N, K, 1.0f, in, K, w, K, beta, out, N);
}

void cx_ops_colsum_add(float *dst, const float *src, int rows, size_t cols)
{
    long nblk = (long)((cols + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK);
#pragma omp parallel for schedule(static) if ((size_t)rows * cols >= CX_OPS_PAR_ELEMS)
    for (long blk = 0; blk < nblk; blk++) {
        size_t j0 = (size_t)blk * CX_OPS_COL_BLOCK;
        size_t nj = cols - j0 < CX_OPS_COL_BLOCK ? cols - j0 : CX_OPS_COL_BLOCK;
        double acc[CX_OPS_COL_BLOCK] = {0};
        for (int i = 0; i < rows; i++) {
            const float *d = src + (size_t)i * cols + j0;
#pragma omp simd
            for (size_t j = 0; j < nj; j++)
                acc[j] += d[j];
        }
        for (size_t j = 0; j < nj; j++)
            dst[j0 + j] += (float)acc[j];
    }
}

void cx_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int K, int N)
{
    if (B <= 0)
        return;
    /* cx_sgemm treats the empty cases (N == 0 leaves din zero, K == 0 has nothing to touch). */
    const cx_gemm weight_grad = {1, 0, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw, K};
    if (din) {
        const cx_gemm input_grad = {0, 0, B, K, N, 1.0f, dout, N, w, K, 0.0f, din, K};
        cx_sgemm_pair(&input_grad, &weight_grad);
    } else {
        cx_sgemm(1, 0, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw, K);
    }
    if (db)
        cx_ops_colsum_add(db, dout, B, (size_t)N);
}
