/* Helpers shared by the files of lib/eval/ only (not a public interface). */
#ifndef CX_EVAL_INTERNAL_H
#define CX_EVAL_INTERNAL_H

#include "lib/base/blas.h"
#include "lib/base/threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Loops on doubles and floats that GCC vectorises: AVX2 where the CPU has it, chosen at load
 * time. clipx compiles as ISO C (-std=c11), so GCC contracts no multiply-add into an FMA and
 * every clone computes the same bits as the baseline SSE2 code. Not under ASan (its
 * instrumentation and the resolver do not mix) nor with Clang. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    !defined(__SANITIZE_ADDRESS__)
#define CX_EVAL_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CX_EVAL_CLONES
#endif

/* Threads a parallel region may start, and the caller's slot inside one: per-thread scratch
 * is allocated before the region as cx_eval_max_threads() slots. */
static inline int cx_eval_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int cx_eval_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Big products in lib/eval run inside one OpenMP region in which each thread multiplies its
 * own row blocks with a single-threaded sgemm. Alternating threaded OpenBLAS calls with
 * OpenMP loops instead makes the two thread pools spin against each other on few cores
 * (measured here: about 2x slower). These switch OpenBLAS to one thread and back to the count
 * in force (lib/threads.h). */
static inline void cx_eval_blas_serial(void)
{
    cx_blas_serial_begin();
}

static inline void cx_eval_blas_restore(void)
{
    cx_blas_serial_end(cx_threads_get());
}

#endif
