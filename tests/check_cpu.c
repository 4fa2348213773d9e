/* The CPU feature -> OpenBLAS core mapping and the start-up decision (pure functions). */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/cpu.h"

static cx_cpu_info cpu_with(cx_cpu_vendor vendor, int family, int model, const char *isa)
{
    cx_cpu_info c;
    memset(&c, 0, sizeof c);
    c.vendor = vendor;
    c.family = family;
    c.model = model;
    c.sse3 = c.ssse3 = c.sse41 = c.sse42 = 1;
    if (strstr(isa, "avx "))
        c.avx = 1;
    if (strstr(isa, "avx2 "))
        c.avx2 = 1;
    if (strstr(isa, "fma "))
        c.fma = 1;
    if (strstr(isa, "avx512 "))
        c.avx512f = c.avx512bw = c.avx512vl = c.avx512dq = c.avx512cd = 1;
    if (strstr(isa, "avx512f-only "))
        c.avx512f = c.avx512cd = 1;
    if (strstr(isa, "bf16 "))
        c.avx512_bf16 = 1;
    return c;
}

START_TEST(core_for_cpu_features)
{
    static const struct {
        const char *what;
        cx_cpu_vendor vendor;
        int family, model;
        const char *isa;
        const char *want; /* NULL: no better core than the SSE ones */
    } cases[] = {
        /* A Xeon newer than OpenBLAS 0.3.21 (AVX-512, BF16, AMX): still SkylakeX's kernels. */
        {"Xeon model 207", CX_CPU_INTEL, 6, 207, "avx avx2 fma avx512 bf16 ", "SkylakeX"},
        {"Xeon model 167", CX_CPU_INTEL, 6, 167, "avx avx2 fma avx512 bf16 ", "SkylakeX"},
        {"Skylake-SP", CX_CPU_INTEL, 6, 85, "avx avx2 fma avx512 ", "SkylakeX"},
        /* Knights Landing has AVX-512F but not BW/VL/DQ: SkylakeX's kernels would fault. */
        {"Xeon Phi", CX_CPU_INTEL, 6, 87, "avx avx2 fma avx512f-only ", "Haswell"},
        {"Haswell", CX_CPU_INTEL, 6, 60, "avx avx2 fma ", "Haswell"},
        {"an unknown Intel model with AVX2", CX_CPU_INTEL, 6, 250, "avx avx2 fma ", "Haswell"},
        {"Sandy Bridge", CX_CPU_INTEL, 6, 42, "avx ", "Sandybridge"},
        {"EPYC Zen 2", CX_CPU_AMD, 23, 49, "avx avx2 fma ", "Zen"},
        {"EPYC Zen 3", CX_CPU_AMD, 25, 1, "avx avx2 fma ", "Zen"},
        {"EPYC Zen 4", CX_CPU_AMD, 25, 17, "avx avx2 fma avx512 bf16 ", "SkylakeX"},
        {"Bulldozer", CX_CPU_AMD, 21, 1, "avx ", "Bulldozer"},
        /* AVX2 without FMA (no such CPU, but a hypervisor can mask FMA): not Haswell. */
        {"AVX2 without FMA", CX_CPU_INTEL, 6, 60, "avx avx2 ", "Sandybridge"},
        {"Nehalem", CX_CPU_INTEL, 6, 26, "", NULL},
        {"Core 2", CX_CPU_INTEL, 6, 23, "", NULL},
        {"another vendor with AVX2", CX_CPU_OTHER, 7, 59, "avx avx2 fma ", "Haswell"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_cpu_info c = cpu_with(cases[i].vendor, cases[i].family, cases[i].model, cases[i].isa);
        const char *got = cx_cpu_blas_core(&c);
        if (cases[i].want)
            ck_assert_msg(got && strcmp(got, cases[i].want) == 0, "%s: got %s, wanted %s",
                          cases[i].what, got ? got : "NULL", cases[i].want);
        else
            ck_assert_msg(got == NULL, "%s: got %s, wanted none", cases[i].what, got);
    }
}
END_TEST

START_TEST(core_mapping_ignores_the_model_number)
{
    /* The same features under every model number: the same core. */
    cx_cpu_info ref = cpu_with(CX_CPU_INTEL, 6, 85, "avx avx2 fma avx512 ");
    for (int model = 0; model < 256; model++) {
        cx_cpu_info c = ref;
        c.model = model;
        ck_assert_str_eq(cx_cpu_blas_core(&c), "SkylakeX");
    }
}
END_TEST

START_TEST(core_tiers)
{
    ck_assert_int_eq(cx_blas_core_tier("Prescott"), 0);
    ck_assert_int_eq(cx_blas_core_tier("Nehalem"), 0);
    ck_assert_int_eq(cx_blas_core_tier("Sandybridge"), 1);
    ck_assert_int_eq(cx_blas_core_tier("Haswell"), 2);
    ck_assert_int_eq(cx_blas_core_tier("ZEN"), 2);
    ck_assert_int_eq(cx_blas_core_tier("SkylakeX"), 3);
    ck_assert_int_eq(cx_blas_core_tier("Cooperlake"), 3);
    ck_assert_int_eq(cx_blas_core_tier("SomeFutureLake"), -1);
    ck_assert_int_eq(cx_blas_core_tier(NULL), -1);
}
END_TEST

START_TEST(decision_keeps_user_and_never_loops)
{
    /* The machine: OpenBLAS fell back to Prescott on an AVX-512 Xeon. */
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Prescott", "SkylakeX"), CX_CORE_REEXEC);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Haswell", "SkylakeX"), CX_CORE_REEXEC);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Prescott", "Zen"), CX_CORE_REEXEC);
    /* A right pick, or one as wide: nothing changes (Cooperlake = SkylakeX's tier; Haswell on
     * an AMD CPU = Zen's). */
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "SkylakeX", "SkylakeX"), CX_CORE_KEEP_PICK);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Cooperlake", "SkylakeX"),
                     CX_CORE_KEEP_PICK);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Haswell", "Zen"), CX_CORE_KEEP_PICK);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Zen", "Zen"), CX_CORE_KEEP_PICK);
    /* An old CPU, an unknown pick, or a BLAS that cannot say: keep. */
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "Prescott", NULL), CX_CORE_KEEP_PICK);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, "FutureLake", "SkylakeX"),
                     CX_CORE_KEEP_PICK);
    ck_assert_int_eq(cx_blas_core_decide(NULL, NULL, NULL, "SkylakeX"), CX_CORE_KEEP_PICK);
    /* The user's setting wins, even empty. */
    ck_assert_int_eq(cx_blas_core_decide("Prescott", NULL, "Prescott", "SkylakeX"),
                     CX_CORE_KEEP_USER);
    ck_assert_int_eq(cx_blas_core_decide("", NULL, "Prescott", "SkylakeX"), CX_CORE_KEEP_USER);
    /* Once re-executed, never again, even if OpenBLAS did not take the core. */
    ck_assert_int_eq(cx_blas_core_decide("SkylakeX", "Prescott", "Prescott", "SkylakeX"),
                     CX_CORE_REEXECUTED);
    ck_assert_int_eq(cx_blas_core_decide(NULL, "Prescott", "Prescott", "SkylakeX"),
                     CX_CORE_REEXECUTED);
}
END_TEST

START_TEST(detect_is_consistent)
{
    /* Whatever this machine is: the OS-saved feature flags nest as the ISA requires. */
    cx_cpu_info c;
    cx_cpu_detect(&c);
    if (c.avx2)
        ck_assert(c.avx);
    if (c.avx512f)
        ck_assert(c.avx2 && c.fma);
    if (c.vendor != CX_CPU_OTHER)
        ck_assert_int_gt(c.family, 0);
}
END_TEST

static Suite *cpu_suite(void)
{
    Suite *s = suite_create("cpu");
    TCase *tc = tcase_create("blas_core");
    tcase_add_test(tc, core_for_cpu_features);
    tcase_add_test(tc, core_mapping_ignores_the_model_number);
    tcase_add_test(tc, core_tiers);
    tcase_add_test(tc, decision_keeps_user_and_never_loops);
    tcase_add_test(tc, detect_is_consistent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cpu_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
