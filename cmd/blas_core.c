/* Re-executing with the right OpenBLAS core: OpenBLAS reads OPENBLAS_CORETYPE only while it is
 * loaded, before main, so the only way to change a dynamically linked OpenBLAS's pick is to
 * start again with the variable set. */
#include "config.h"
#include "cmd/blas_core.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/base/blas.h"
#include "lib/base/cpu.h"

/* Set in the re-executed process only, to OpenBLAS's pick before it; never passed further. */
#define GUARD_ENV "CLIPX_BLAS_CORE_WAS"
/* Tests only: treat a set OPENBLAS_CORETYPE as OpenBLAS's own pick, which exercises the
 * re-execution on a CPU that OpenBLAS knows (OPENBLAS_CORETYPE=Prescott plays the wrong pick). */
#define TEST_ENV "CLIPX_TEST_CORETYPE_AS_PICK"

static cx_core_action action = CX_CORE_KEEP_PICK;
static char was[64];       /* OpenBLAS's pick before the re-execution */
static char asked[64];     /* what clipx set OPENBLAS_CORETYPE to */

void clipx_blas_core_choose(char **argv)
{
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *guard = getenv(GUARD_ENV);
    const char *test = getenv(TEST_ENV);
    if (test && *test && user && !guard)
        user = NULL;
    cx_cpu_info cpu;
    cx_cpu_detect(&cpu);
    const char *best = cx_cpu_blas_core(&cpu);
    const char *picked = cx_blas_core_name();
    action = cx_blas_core_decide(user, guard, picked, best);
    if (action == CX_CORE_REEXECUTED) {
        snprintf(was, sizeof was, "%s", guard);
        const char *now = getenv("OPENBLAS_CORETYPE");
        snprintf(asked, sizeof asked, "%s", now ? now : "");
        /* Whatever this process starts is not a re-execution. */
        unsetenv(GUARD_ENV);
        unsetenv(TEST_ENV);
        return;
    }
    if (action != CX_CORE_REEXEC)
        return;
    if (setenv(GUARD_ENV, picked, 1) == 0 && setenv("OPENBLAS_CORETYPE", best, 1) == 0)
        execv("/proc/self/exe", argv);
    /* No /proc, or exec refused: go on with OpenBLAS's pick, and leave no trace in the
     * environment that would make a child believe it was chosen. */
    unsetenv(GUARD_ENV);
    if (user)
        setenv("OPENBLAS_CORETYPE", user, 1);
    else
        unsetenv("OPENBLAS_CORETYPE");
    action = CX_CORE_KEEP_PICK;
}

void clipx_blas_core_print(FILE *fp)
{
    const char *core = cx_blas_core_name();
    if (!core)
        core = "unknown";
    fprintf(fp, "blas: %s\n", cx_blas_describe());
    fprintf(fp, "blas threading: %s\n", cx_blas_threading());
    switch (action) {
    case CX_CORE_KEEP_PICK:
        fprintf(fp, "blas core: %s (OpenBLAS's own pick)\n", core);
        break;
    case CX_CORE_KEEP_USER: {
        const char *user = getenv("OPENBLAS_CORETYPE");
        if (user && *user)
            fprintf(fp, "blas core: %s (set by OPENBLAS_CORETYPE=%s)\n", core, user);
        else
            fprintf(fp, "blas core: %s (set by OPENBLAS_CORETYPE, empty: OpenBLAS's fallback)\n",
                    core);
        break;
    }
    case CX_CORE_REEXEC:
    case CX_CORE_REEXECUTED:
        if (strcasecmp(core, asked) == 0)
            fprintf(fp, "blas core: %s (chosen by clipx for this CPU, was %s)\n", core, was);
        else
            fprintf(fp, "blas core: %s (clipx asked for %s for this CPU, was %s)\n", core, asked,
                    was);
        break;
    }
    cx_cpu_info cpu;
    cx_cpu_detect(&cpu);
    const char *best = cx_cpu_blas_core(&cpu);
    fprintf(fp, "cpu: %s (%s family %d model %d;%s%s%s%s%s; best core %s)\n",
            cpu.brand[0] ? cpu.brand : "unknown",
            cpu.vendor == CX_CPU_INTEL ? "Intel" : cpu.vendor == CX_CPU_AMD ? "AMD" : "other",
            cpu.family, cpu.model, cpu.avx ? " avx" : "", cpu.avx2 ? " avx2" : "",
            cpu.fma ? " fma" : "",
            cpu.avx512f && cpu.avx512bw && cpu.avx512vl && cpu.avx512dq ? " avx512f/bw/vl/dq" : "",
            cpu.avx512_bf16 ? " avx512_bf16" : "", best ? best : "none (SSE)");
}
