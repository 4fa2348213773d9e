/* Shared by the files of lib/ops/: when to thread, and fixed-order reductions that give the
 * same bits whatever the thread count. Not part of the public API. */
#ifndef CX_OPS_INTERNAL_H
#define CX_OPS_INTERNAL_H

#include <stddef.h>

/* Threads pay for themselves above about this many cheap (load, compare, store) elements;
 * below it a parallel region costs more than the loop. */
#define CX_OPS_PAR_ELEMS ((size_t)1 << 16)
/* Elements with a transcendental each (erf, exp) are dearer, so threading starts sooner. */
#define CX_OPS_PAR_ELEMS_DEAR ((size_t)1 << 12)

/* Reductions over rows are summed per fixed block of rows into slots, then the slots are
 * added in block order. Blocks depend on the row count only, never on the thread count, so
 * a loss has the same bits on 1 or 8 threads. Slots live on the stack: at most this many. */
#define CX_OPS_MAX_BLOCKS 512

/* Rows per block for n rows: at least min_rows, and few enough blocks to fit the slots. */
static inline int cx_ops_block_rows(int n, int min_rows)
{
    int r = (n + CX_OPS_MAX_BLOCKS - 1) / CX_OPS_MAX_BLOCKS;
    return r < min_rows ? min_rows : r;
}

/* Column reductions (bias, gain and embedding gradients) give each thread whole blocks of
 * this many columns: each column is summed over rows in row order by one thread, so the
 * result is independent of the thread count, and 64 floats keep threads off each other's
 * cache lines. */
#define CX_OPS_COL_BLOCK 64

#endif
