/* Process groups over MPI, or the trivial group of one. */
#include "config.h"
#include "lib/base/dist.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

struct cx_dist_shm {
#ifdef HAVE_MPI
    MPI_Comm node; /* the processes of this machine: all of them */
    MPI_Win win;
#endif
    float **peer; /* (size) every rank's buffers, mapped here: gradients, then values */
    size_t n;     /* floats per buffer */
};

int cx_dist_available(void)
{
#ifdef HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

cx_status cx_dist_init(cx_dist *d, cx_err *err)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
#ifdef HAVE_MPI
    /* Only a process that mpirun started joins: a plain `clipx train` stays a single process
     * and never pays MPI's start-up. */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK"))
        return CX_OK;
    int flag = 0;
    MPI_Initialized(&flag);
    if (!flag) {
        if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
            return cx_fail(err, CX_EIO, "MPI_Init failed");
        d->initialised_mpi = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
#else
    (void)err;
#endif
    return CX_OK;
}

void cx_dist_finish(cx_dist *d)
{
#ifdef HAVE_MPI
    if (d->initialised_mpi)
        MPI_Finalize();
#endif
    d->initialised_mpi = 0;
}

#ifdef HAVE_MPI
static cx_status mpi_check(int rc, const char *what, cx_err *err)
{
    if (rc == MPI_SUCCESS)
        return CX_OK;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return cx_fail(err, CX_EIO, "%s: %.*s", what, len, msg);
}

/* MPI counts are int: move large buffers in pieces. */
enum { CHUNK = 1 << 28 };
#endif

cx_status cx_dist_allreduce_sum(const cx_dist *d, float *buf, size_t n, cx_err *err)
{
    if (d->size <= 1)
        return CX_OK;
#ifdef HAVE_MPI
    for (size_t off = 0; off < n; off += CHUNK) {
        int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        cx_status st = mpi_check(MPI_Allreduce(MPI_IN_PLACE, buf + off, count, MPI_FLOAT, MPI_SUM,
                                               MPI_COMM_WORLD), "MPI_Allreduce", err);
        if (st)
            return st;
    }
#endif
    return CX_OK;
}

cx_status cx_dist_allreduce_sum_f64(const cx_dist *d, double *buf, size_t n, cx_err *err)
{
    if (d->size <= 1)
        return CX_OK;
#ifdef HAVE_MPI
    return mpi_check(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
                     "MPI_Allreduce", err);
#else
    return CX_OK;
#endif
}

cx_status cx_dist_allgather(const cx_dist *d, const float *local, size_t n, float *all, cx_err *err)
{
    if (d->size <= 1) {
        if (all != local)
            memcpy(all, local, sizeof *all * n);
        return CX_OK;
    }
#ifdef HAVE_MPI
    const void *send = local == all + (size_t)d->rank * n ? MPI_IN_PLACE : (const void *)local;
    return mpi_check(MPI_Allgather(send, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD),
                     "MPI_Allgather", err);
#else
    return CX_OK;
#endif
}

cx_status cx_dist_allgather_i32(const cx_dist *d, const int32_t *local, size_t n, int32_t *all,
                                cx_err *err)
{
    if (d->size <= 1) {
        if (all != local)
            memcpy(all, local, sizeof *all * n);
        return CX_OK;
    }
#ifdef HAVE_MPI
    const void *send = local == all + (size_t)d->rank * n ? MPI_IN_PLACE : (const void *)local;
    return mpi_check(MPI_Allgather(send, (int)n, MPI_INT32_T, all, (int)n, MPI_INT32_T,
                                   MPI_COMM_WORLD), "MPI_Allgather", err);
#else
    return CX_OK;
#endif
}

static size_t shard_size(int size, size_t n)
{
    size_t s = (n + (size_t)size - 1) / (size_t)size;
    return (s + 15) / 16 * 16;
}

void cx_dist_shard(const cx_dist *d, size_t n, size_t *lo, size_t *hi)
{
    size_t s = shard_size(d->size, n);
    size_t a = (size_t)d->rank * s, b = a + s;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

size_t cx_dist_shard_max(const cx_dist *d, size_t n)
{
    size_t s = shard_size(d->size, n);
    return s < n ? s : n;
}

cx_status cx_dist_share_buffers(cx_dist *d, size_t n, float **grad, float **value, cx_err *err)
{
    *grad = *value = NULL;
    if (d->size <= 1 || d->shm)
        return CX_OK;
#ifdef HAVE_MPI
    const char *env = getenv("CLIPX_MPI_SHM");
    MPI_Comm node;
    int rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    if (rc != MPI_SUCCESS)
        return mpi_check(rc, "MPI_Comm_split_type", err);
    int node_size = 0;
    MPI_Comm_size(node, &node_size);
    struct cx_dist_shm *shm = calloc(1, sizeof *shm);
    float **peer = calloc((size_t)d->size, sizeof *peer);
    /* Every rank must take the same road (a rank short of memory sends all to messages). */
    int ok = node_size == d->size && !(env && strcmp(env, "0") == 0) && shm && peer;
    if ((rc = MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD)) != MPI_SUCCESS ||
        !ok) {
        free(peer);
        free(shm);
        MPI_Comm_free(&node);
        if (rc == MPI_SUCCESS && env && strcmp(env, "1") == 0)
            return cx_fail(err, CX_EUSAGE, "CLIPX_MPI_SHM=1, but the %d processes cannot share "
                           "memory (%d of them on this machine)", d->size, node_size);
        return mpi_check(rc, "MPI_Allreduce", err);
    }
    MPI_Info info;
    MPI_Info_create(&info);
    /* Each rank's part on its own pages, near the core that writes it. */
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    float *own = NULL;
    n = (n + 15) / 16 * 16; /* the value buffer aligned like the first */
    rc = MPI_Win_allocate_shared((MPI_Aint)(2 * n + 16) * (MPI_Aint)sizeof(float), (int)sizeof(float),
                                 info, node, &own, &shm->win);
    MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        free(peer);
        free(shm);
        MPI_Comm_free(&node);
        return mpi_check(rc, "MPI_Win_allocate_shared", err);
    }
    for (int q = 0; q < d->size; q++) {
        MPI_Aint size;
        int unit;
        MPI_Win_shared_query(shm->win, q, &size, &unit, &peer[q]);
    }
    memset(own, 0, sizeof *own * 2 * n);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, shm->win);
    shm->node = node;
    shm->peer = peer;
    shm->n = n;
    d->shm = shm;
    *grad = own;
    *value = own + n;
    return CX_OK;
#else
    (void)n;
    (void)err;
    return CX_OK;
#endif
}

void cx_dist_unshare(cx_dist *d)
{
    if (!d->shm)
        return;
#ifdef HAVE_MPI
    MPI_Win_unlock_all(d->shm->win);
    MPI_Win_free(&d->shm->win);
    MPI_Comm_free(&d->shm->node);
#endif
    free(d->shm->peer);
    free(d->shm);
    d->shm = NULL;
}

cx_status cx_dist_reduce_scatter_shards(const cx_dist *d, float *buf, size_t n, float *scratch,
                                        cx_err *err)
{
    if (d->size <= 1)
        return CX_OK;
#ifdef HAVE_MPI
    int P = d->size, r = d->rank;
    size_t s = shard_size(P, n);
    if (d->shm && buf == d->shm->peer[r] && n <= d->shm->n) {
        /* Every rank's gradients complete and visible, then this rank's shard summed as the
         * ring below sums it: g_r + (g_{r-1} + (... + (g_{r+2} + g_{r+1}))). */
        MPI_Win_sync(d->shm->win);
        cx_status st = mpi_check(MPI_Barrier(d->shm->node), "MPI_Barrier", err);
        if (st)
            return st;
        MPI_Win_sync(d->shm->win);
        size_t lo, hi;
        cx_dist_shard(d, n, &lo, &hi);
        float *const *peer = d->shm->peer;
        long len = (long)(hi - lo);
        float *restrict dst = buf + lo;
        const float *restrict next = peer[(r + 1) % P] + lo;
        if (P == 2) {
#pragma omp parallel for simd schedule(static) if (parallel : len > (1L << 20))
            for (long i = 0; i < len; i++)
                dst[i] = dst[i] + next[i];
            return CX_OK;
        }
#pragma omp parallel for schedule(static) if (len > (1L << 20))
        for (long i = 0; i < len; i++) {
            float acc = next[i];
            for (int j = 2; j < P; j++)
                acc = peer[(r + j) % P][lo + (size_t)i] + acc;
            dst[i] = dst[i] + acc;
        }
        return CX_OK;
    }
    if (s > (size_t)1 << 30)
        return cx_fail(err, CX_EIO, "reduce-scatter: shards of %zu floats exceed one call", s);
    int right = (r + 1) % P, left = (r + P - 1) % P;
    /* Step k: send chunk (r - k - 1) to the right, add the left's chunk (r - k - 2) into ours;
     * after P - 1 steps chunk r is complete here. */
    for (int k = 0; k < P - 1; k++) {
        int send = ((r - k - 1) % P + P) % P, recv = ((r - k - 2) % P + P) % P;
        size_t sa = (size_t)send * s < n ? (size_t)send * s : n;
        size_t sb = sa + s < n ? sa + s : n;
        size_t ra = (size_t)recv * s < n ? (size_t)recv * s : n;
        size_t rb = ra + s < n ? ra + s : n;
        cx_status st = mpi_check(MPI_Sendrecv(buf + sa, (int)(sb - sa), MPI_FLOAT, right, 0, scratch,
                                              (int)(rb - ra), MPI_FLOAT, left, 0, MPI_COMM_WORLD,
                                              MPI_STATUS_IGNORE), "MPI_Sendrecv", err);
        if (st)
            return st;
        float *dst = buf + ra;
        long len = (long)(rb - ra);
#pragma omp parallel for simd schedule(static) if (parallel : len > (1L << 20))
        for (long i = 0; i < len; i++)
            dst[i] += scratch[i];
    }
    return CX_OK;
#else
    (void)buf;
    (void)n;
    (void)scratch;
    (void)err;
    return CX_OK;
#endif
}

cx_status cx_dist_allgather_shards(const cx_dist *d, float *buf, size_t n, cx_err *err)
{
    if (d->size <= 1)
        return CX_OK;
#ifdef HAVE_MPI
    if (n > (size_t)1 << 30)
        return cx_fail(err, CX_EIO, "MPI_Allgatherv: %zu floats exceed one call", n);
    size_t s = shard_size(d->size, n);
    if (d->shm && buf == d->shm->peer[d->rank] + d->shm->n && n <= d->shm->n) {
        /* Every rank's updated shard visible, then copied from where it lies. */
        MPI_Win_sync(d->shm->win);
        cx_status st = mpi_check(MPI_Barrier(d->shm->node), "MPI_Barrier", err);
        if (st)
            return st;
        MPI_Win_sync(d->shm->win);
        for (int q = 0; q < d->size; q++) {
            size_t a = (size_t)q * s < n ? (size_t)q * s : n;
            size_t b = a + s < n ? a + s : n;
            if (q != d->rank && b > a)
                memcpy(buf + a, d->shm->peer[q] + d->shm->n + a, sizeof *buf * (b - a));
        }
        return CX_OK;
    }
    int counts[d->size], displs[d->size];
    for (int r = 0; r < d->size; r++) {
        size_t a = (size_t)r * s < n ? (size_t)r * s : n;
        size_t b = a + s < n ? a + s : n;
        counts[r] = (int)(b - a);
        displs[r] = (int)a;
    }
    return mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs,
                                    MPI_FLOAT, MPI_COMM_WORLD), "MPI_Allgatherv", err);
#else
    (void)buf;
    (void)n;
    (void)err;
    return CX_OK;
#endif
}

cx_status cx_dist_barrier(const cx_dist *d, cx_err *err)
{
    if (d->size <= 1)
        return CX_OK;
#ifdef HAVE_MPI
    return mpi_check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", err);
#else
    return CX_OK;
#endif
}

cx_status cx_dist_agree(const cx_dist *d, cx_status local, cx_err *err)
{
    if (d->size <= 1)
        return local;
#ifdef HAVE_MPI
    int code = (int)local, any = 0;
    /* The largest status of any rank wins, so every rank stops when one fails. */
    if (MPI_Allreduce(&code, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return cx_fail(err, CX_EIO, "MPI_Allreduce failed");
    if (any != CX_OK && local == CX_OK)
        return cx_fail(err, (cx_status)any, "another process failed (rank 0 reports why)");
    return (cx_status)any == CX_OK ? CX_OK : local;
#else
    return local;
#endif
}
