/* cpuid feature detection and the feature -> OpenBLAS core mapping. */
#include "config.h"
#include "lib/base/cpu.h"

#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0: which register states the OS saves on a context switch. */
static unsigned long long read_xcr0(void)
{
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

void cx_cpu_detect(cx_cpu_info *cpu)
{
    memset(cpu, 0, sizeof *cpu);
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return;
    unsigned int max_leaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    if (strcmp(vendor, "GenuineIntel") == 0)
        cpu->vendor = CX_CPU_INTEL;
    else if (strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0)
        cpu->vendor = CX_CPU_AMD;

    __get_cpuid(1, &a, &b, &c, &d);
    int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
    cpu->family = base_family == 0xf ? base_family + (int)((a >> 20) & 0xff) : base_family;
    cpu->model = (base_family == 0x6 || base_family == 0xf)
                     ? base_model + (int)(((a >> 16) & 0xf) << 4)
                     : base_model;
    cpu->sse3 = (c >> 0) & 1;
    cpu->ssse3 = (c >> 9) & 1;
    cpu->sse41 = (c >> 19) & 1;
    cpu->sse42 = (c >> 20) & 1;
    int osxsave = (c >> 27) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    int os_ymm = (xcr0 & 0x6) == 0x6;     /* SSE and AVX state */
    int os_zmm = (xcr0 & 0xe6) == 0xe6;   /* and opmask, ZMM0-15 upper, ZMM16-31 */
    cpu->avx = os_ymm && ((c >> 28) & 1);
    cpu->fma = os_ymm && ((c >> 12) & 1);
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        cpu->avx2 = os_ymm && ((b >> 5) & 1);
        cpu->avx512f = os_zmm && ((b >> 16) & 1);
        cpu->avx512dq = os_zmm && ((b >> 17) & 1);
        cpu->avx512cd = os_zmm && ((b >> 28) & 1);
        cpu->avx512bw = os_zmm && ((b >> 30) & 1);
        cpu->avx512vl = os_zmm && ((b >> 31) & 1);
        unsigned int max_sub = a;
        if (max_sub >= 1) {
            __cpuid_count(7, 1, a, b, c, d);
            cpu->avx512_bf16 = os_zmm && ((a >> 5) & 1);
        }
    }
    __get_cpuid(0x80000000, &a, &b, &c, &d);
    if (a >= 0x80000004) {
        unsigned int r[12];
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(cpu->brand, r, 48);
        cpu->brand[48] = '\0';
        /* Some CPUs pad the brand string with leading spaces. */
        char *s = cpu->brand;
        while (*s == ' ')
            s++;
        memmove(cpu->brand, s, strlen(s) + 1);
    }
}
#else
void cx_cpu_detect(cx_cpu_info *cpu)
{
    memset(cpu, 0, sizeof *cpu);
}
#endif

const char *cx_cpu_blas_core(const cx_cpu_info *cpu)
{
    /* SkylakeX's kernels need exactly these five; AMD's Zen 4 has them too. */
    if (cpu->avx512f && cpu->avx512bw && cpu->avx512vl && cpu->avx512dq && cpu->avx512cd)
        return "SkylakeX";
    if (cpu->avx2 && cpu->fma)
        return cpu->vendor == CX_CPU_AMD ? "Zen" : "Haswell";
    if (cpu->avx)
        return cpu->vendor == CX_CPU_AMD ? "Bulldozer" : "Sandybridge";
    return NULL;
}

/* OpenBLAS 0.3.21's x86-64 core names by the widest vectors their kernels use. */
static const struct {
    const char *name;
    int tier;
} core_tiers[] = {
    {"Unknown", 0},     {"Katmai", 0},       {"Coppermine", 0},     {"Northwood", 0},
    {"Prescott", 0},    {"Banias", 0},       {"Atom", 0},           {"Core2", 0},
    {"Penryn", 0},      {"Dunnington", 0},   {"Nehalem", 0},        {"Athlon", 0},
    {"Opteron", 0},     {"Opteron_SSE3", 0}, {"Barcelona", 0},      {"Nano", 0},
    {"Bobcat", 0},      {"Sandybridge", 1},  {"Bulldozer", 1},      {"Piledriver", 1},
    {"Steamroller", 1}, {"Haswell", 2},      {"Excavator", 2},      {"Zen", 2},
    {"SkylakeX", 3},    {"Cooperlake", 3},   {"SapphireRapids", 3},
};

int cx_blas_core_tier(const char *core)
{
    if (!core)
        return -1;
    for (size_t i = 0; i < sizeof core_tiers / sizeof core_tiers[0]; i++)
        if (strcasecmp(core, core_tiers[i].name) == 0)
            return core_tiers[i].tier;
    return -1;
}

cx_core_action cx_blas_core_decide(const char *user_coretype, const char *reexec_guard,
                                   const char *picked, const char *best)
{
    /* The guard first: whatever happens, at most one re-execution. */
    if (reexec_guard)
        return CX_CORE_REEXECUTED;
    if (user_coretype)
        return CX_CORE_KEEP_USER;
    int have = cx_blas_core_tier(picked), want = cx_blas_core_tier(best);
    if (best && have >= 0 && want > have)
        return CX_CORE_REEXEC;
    return CX_CORE_KEEP_PICK;
}
