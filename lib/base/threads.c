/* Thread count shared by OpenMP and OpenBLAS, so `--threads N` means N everywhere. */
#include "config.h"
#include "lib/base/threads.h"

#include "lib/base/blas.h"

#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static int threads_in_force = 1;

int cx_threads_available(void)
{
#ifdef _OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n < 1 ? 1 : (int)n;
}

int cx_threads_set(int n)
{
    if (n < 1)
        n = cx_threads_available();
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    cx_blas_set_threads(n);
    threads_in_force = n;
    return n;
}

int cx_threads_get(void)
{
    return threads_in_force;
}
