/* Data-parallel training across processes (Open MPI when built --with-mpi): ranks, gradient
 * all-reduce, feature all-gather. Without MPI, or when not started by mpirun, a single process
 * of rank 0 and size 1 whose operations are identities, so callers need no special case. */
#ifndef CX_BASE_DIST_H
#define CX_BASE_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

struct cx_dist_shm;

typedef struct {
    int rank, size;
    int initialised_mpi;     /* this process called MPI_Init and must call MPI_Finalize */
    struct cx_dist_shm *shm; /* the buffers shared by cx_dist_share_buffers, or NULL */
} cx_dist;

/* Join the job when started by mpirun (Open MPI's environment says so); else rank 0 of 1. */
cx_status cx_dist_init(cx_dist *d, cx_err *err);
void cx_dist_finish(cx_dist *d);

/* 1 when this build has MPI. */
int cx_dist_available(void);

/* buf (n) = elementwise sum over ranks, in place. */
cx_status cx_dist_allreduce_sum(const cx_dist *d, float *buf, size_t n, cx_err *err);
cx_status cx_dist_allreduce_sum_f64(const cx_dist *d, double *buf, size_t n, cx_err *err);
/* all (size * n) = every rank's local (n), in rank order; local may be this rank's own slot of
 * all (all + rank * n), which is then gathered in place. */
cx_status cx_dist_allgather(const cx_dist *d, const float *local, size_t n, float *all, cx_err *err);
cx_status cx_dist_allgather_i32(const cx_dist *d, const int32_t *local, size_t n, int32_t *all,
                                cx_err *err);
/* This rank's shard [*lo, *hi) of a buffer of n floats split among the ranks in blocks that are
 * multiples of 16 floats (the last may be shorter or empty). */
void cx_dist_shard(const cx_dist *d, size_t n, size_t *lo, size_t *hi);
/* Every rank's shard of buf (n) to every rank, in place: after each rank has written its own
 * shard (cx_dist_shard), every rank holds all of them. On the shared value buffer each rank
 * copies the others' shards from where they lie; a rank must not write its shard again before
 * the others have passed a later collective (the next reduce-scatter is one). */
cx_status cx_dist_allgather_shards(const cx_dist *d, float *buf, size_t n, cx_err *err);

/* After it, this rank's shard (cx_dist_shard) of buf (n) holds the sum over ranks of that shard
 * (the rest of buf is left in an unspecified state): a ring reduce-scatter, each shard summed
 * in the same order on whichever rank owns it. scratch holds one shard (cx_dist_shard_max;
 * NULL will do on the shared buffer).
 * On the shared buffer the same sums in the same order, read in place: the same bits. The
 * other ranks must not write their buffers again before this rank has passed a later
 * collective (the all-gather of the updated shards is one). */
cx_status cx_dist_reduce_scatter_shards(const cx_dist *d, float *buf, size_t n, float *scratch,
                                        cx_err *err);
/* Two buffers of n floats each (zeroed) that the processes of one machine share, for the
 * gradients and the parameter values: cx_dist_reduce_scatter_shards on the first and
 * cx_dist_allgather_shards on the second then read the other processes' shards where they lie
 * instead of sending copies through the kernel. Collective. *grad and *value stay NULL, and
 * the message path is used, with one process, when the processes span machines, or when the
 * environment sets CLIPX_MPI_SHM=0; with CLIPX_MPI_SHM=1 that fallback is an error instead. */
cx_status cx_dist_share_buffers(cx_dist *d, size_t n, float **grad, float **value, cx_err *err);

/* Release the shared buffers (collective: every rank calls it, at the same point). */
void cx_dist_unshare(cx_dist *d);

/* The largest shard of a buffer of n floats. */
size_t cx_dist_shard_max(const cx_dist *d, size_t n);

/* Wait for every rank. */
cx_status cx_dist_barrier(const cx_dist *d, cx_err *err);
/* Every rank learns whether any rank failed (so all stop together): returns local when it
 * failed, else the failure of another rank (with a message saying so), else CX_OK. */
cx_status cx_dist_agree(const cx_dist *d, cx_status local, cx_err *err);

#endif
