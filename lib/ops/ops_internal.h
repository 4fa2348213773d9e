/* Shared by the files of lib/ops/: when to thread, and fixed-order reductions that give the
 * same bits whatever the thread count. Not part of the public API. */
#ifndef CX_OPS_OPS_INTERNAL_H
#define CX_OPS_OPS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* When to use OpenMP threads. The thresholds are high on purpose: OpenBLAS (pthreads) runs its
 * own worker threads, and after every parallel region libgomp's idle workers spin (by default
 * for some milliseconds) before they sleep, taking a core from the next cx_sgemm. On 2 cores a
 * region that saves 50 us can cost a millisecond of the product that follows. So elementwise
 * work is threaded only when it takes about a millisecond or more on one core: the W1
 * training step (ReLU and bias over 256 x 1024, InfoNCE over 256 x 256) stays on the calling
 * thread, evaluation over large matrices and big gathered batches are threaded. */
/* Cheap elements (load, compare or add, store), about 0.25 ns each. */
#define CX_OPS_PAR_ELEMS ((size_t)1 << 22)
/* Elements with a transcendental (erf, exp) or a row reduction, about 5-10 ns each. */
#define CX_OPS_PAR_ELEMS_DEAR ((size_t)1 << 18)

/* Reductions over rows are summed per fixed block of rows into slots, then the slots are
 * added in block order. Blocks depend on the row count only, never on the thread count, so
 * a loss has the same bits on 1 or 8 threads. Slots live on the stack: at most this many. */
#define CX_OPS_MAX_BLOCKS 512

/* Rows per block for n rows: at least min_rows, and few enough blocks to fit the slots. */
/* One row of softmax cross-entropy (lib/ops/softmax_ce.c): p (n) = softmax(z + offset), offset
 * may be NULL; returns -log p[y] computed as logsumexp - z_y - offset_y. */
double cx_ops_ce_row(float *p, const float *z, const float *offset, int32_t y, int n);

static inline int cx_ops_block_rows(int n, int min_rows)
{
    int r = n / CX_OPS_MAX_BLOCKS + (n % CX_OPS_MAX_BLOCKS != 0); /* no overflow near INT_MAX */
    return r < min_rows ? min_rows : r;
}

/* Column reductions (bias, gain and embedding gradients) give each thread whole blocks of
 * this many columns: each column is summed over rows in row order by one thread, so the
 * result is independent of the thread count, and 64 floats keep threads off each other's
 * cache lines. */
#define CX_OPS_COL_BLOCK 64

/* dst (cols) += the column sums of src (rows, cols), each column summed in double in row
 * order over blocks of CX_OPS_COL_BLOCK columns (bias and positional-table gradients). */
void cx_ops_colsum_add(float *dst, const float *src, int rows, size_t cols);

#endif
