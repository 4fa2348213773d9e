/* What the CPU can run (cpuid), and which OpenBLAS core fits it best. The mapping is by features,
 * never by CPU model, so a CPU newer than the OpenBLAS build still gets its fastest kernels. */
#ifndef CX_BASE_CPU_H
#define CX_BASE_CPU_H

typedef enum { CX_CPU_OTHER = 0, CX_CPU_INTEL, CX_CPU_AMD } cx_cpu_vendor;

typedef struct {
    cx_cpu_vendor vendor; /* AMD includes Hygon (the same cores) */
    int family, model;    /* display family and model (base + extended) */
    char brand[49];       /* e.g. "Intel(R) Xeon(R) Processor", "" when unknown */
    /* Instruction sets the CPU has AND the OS saves the registers of (XCR0). */
    int sse3, ssse3, sse41, sse42;
    int avx, fma, avx2;
    int avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512_bf16;
} cx_cpu_info;

/* This machine's CPU; all zero on a non-x86 build. */
void cx_cpu_detect(cx_cpu_info *cpu);

/* The OpenBLAS core (a name OPENBLAS_CORETYPE accepts) with the fastest single-precision kernels
 * this CPU can run: "SkylakeX" for AVX-512 F/BW/VL/DQ/CD (Intel or AMD), "Zen" (AMD) or
 * "Haswell" for AVX2 with FMA, "Sandybridge" for AVX. NULL when there is nothing to gain over
 * the SSE kernels (an old CPU): OpenBLAS's pick is then kept. Pure. */
const char *cx_cpu_blas_core(const cx_cpu_info *cpu);

/* A core's vector tier: 0 SSE, 1 AVX, 2 AVX2 with FMA, 3 AVX-512; -1 for a name this table
 * does not know (never judged weaker). Case-insensitive. */
int cx_blas_core_tier(const char *core);

/* What clipx does about the kernels at start-up, decided from the environment and OpenBLAS's
 * pick. */
typedef enum {
    CX_CORE_KEEP_PICK,   /* OpenBLAS's own pick is as good as it gets */
    CX_CORE_KEEP_USER,   /* OPENBLAS_CORETYPE is set (even empty): the user's choice wins */
    CX_CORE_REEXEC,      /* re-execute once with OPENBLAS_CORETYPE = the best core */
    CX_CORE_REEXECUTED,  /* this process is that re-execution: keep what it got */
} cx_core_action;

/* user_coretype: OPENBLAS_CORETYPE or NULL when unset; reexec_guard: clipx's guard variable or
 * NULL; picked: openblas_get_corename() (NULL if unknown); best: cx_cpu_blas_core(). Pure. */
cx_core_action cx_blas_core_decide(const char *user_coretype, const char *reexec_guard,
                                   const char *picked, const char *best);

#endif
