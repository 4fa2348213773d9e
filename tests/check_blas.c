/* cx_sgemm against a naive triple loop in double: shapes from {1, 3, 17, 255}, the four
 * transpose combinations, padded leading dimensions, alpha and beta, beta = 0 over NaN, k = 0.
 * cx_strmm_right_upper likewise, with NaN below U's diagonal (never read). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/base/rng.h"
#include "lib/base/threads.h"

static const int sizes[] = {1, 3, 17, 255};

static float *rand_matrix(size_t n, uint64_t seed)
{
    float *p = malloc(sizeof *p * (n ? n : 1));
    ck_assert_ptr_nonnull(p);
    cx_rng r;
    cx_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(2.0 * cx_rng_uniform(&r) - 1.0);
    return p;
}

/* Element (i, l) of op(A) for row-major A with leading dimension lda. */
static double at(const float *a, int lda, int trans, int i, int l)
{
    return trans ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l];
}

typedef struct {
    int ta, tb, m, n, k, pad;
    float alpha, beta;
    int nan_c; /* fill C with NaN before (only with beta = 0) */
} gemm_case;

/* Runs one product and compares every element of C, and checks that the padding columns of
 * C (between n and ldc) are untouched. */
static void check_case(const gemm_case *c, uint64_t seed)
{
    int ar = c->ta ? c->k : c->m, ac = c->ta ? c->m : c->k; /* stored shape of A */
    int br = c->tb ? c->n : c->k, bc = c->tb ? c->k : c->n;
    int lda = ac + c->pad, ldb = bc + c->pad, ldc = c->n + c->pad;
    if (lda < 1)
        lda = 1;
    if (ldb < 1)
        ldb = 1;
    float *a = rand_matrix((size_t)ar * lda, seed), *b = rand_matrix((size_t)br * ldb, seed + 1);
    float *cm = rand_matrix((size_t)c->m * ldc, seed + 2);
    size_t nc = (size_t)c->m * ldc;
    float *c0 = malloc(sizeof *c0 * (nc ? nc : 1));
    ck_assert_ptr_nonnull(c0);
    if (c->nan_c)
        for (int i = 0; i < c->m; i++)
            for (int j = 0; j < c->n; j++)
                cm[(size_t)i * ldc + j] = NAN;
    memcpy(c0, cm, sizeof *c0 * (size_t)c->m * ldc);
    cx_sgemm(c->ta, c->tb, c->m, c->n, c->k, c->alpha, a, lda, b, ldb, c->beta, cm, ldc);
    for (int i = 0; i < c->m; i++) {
        for (int j = 0; j < c->n; j++) {
            double s = 0, sabs = 0;
            for (int l = 0; l < c->k; l++) {
                double p = at(a, lda, c->ta, i, l) * at(b, ldb, c->tb, l, j);
                s += p;
                sabs += fabs(p);
            }
            double old = c->beta == 0.0f ? 0.0 : c0[(size_t)i * ldc + j];
            double want = c->alpha * s + c->beta * old;
            /* Float rounding bound: k products and sums, plus the beta term. */
            double tol = 2e-7 * ((c->k + 4) * fabs(c->alpha) * sabs + 2 * fabs(c->beta * old)) +
                         1e-30;
            double got = cm[(size_t)i * ldc + j];
            ck_assert_msg(fabs(got - want) <= tol,
                          "ta %d tb %d m %d n %d k %d pad %d alpha %g beta %g: C[%d][%d] = %.9g, "
                          "want %.9g",
                          c->ta, c->tb, c->m, c->n, c->k, c->pad, c->alpha, c->beta, i, j, got,
                          want);
        }
        for (int j = c->n; j < ldc; j++)
            ck_assert_msg(memcmp(&cm[(size_t)i * ldc + j], &c0[(size_t)i * ldc + j],
                                 sizeof(float)) == 0,
                          "padding C[%d][%d] was written", i, j);
    }
    free(a), free(b), free(cm), free(c0);
}

START_TEST(sgemm_all_shapes_and_transposes)
{
    /* Every (m, n, k) from the size set with every transpose pair; alpha and beta rotate so
     * all of them meet every shape class. */
    const float alphas[] = {1.0f, -0.5f, 2.0f};
    const float betas[] = {0.0f, 1.0f, 0.25f};
    int count = 0;
    for (int t = 0; t < 4; t++)
        for (int mi = 0; mi < 4; mi++)
            for (int ni = 0; ni < 4; ni++)
                for (int ki = 0; ki < 4; ki++) {
                    gemm_case c = {.ta = t & 1, .tb = t >> 1, .m = sizes[mi], .n = sizes[ni],
                                   .k = sizes[ki], .alpha = alphas[count % 3],
                                   .beta = betas[(count / 3) % 3]};
                    /* The biggest products once per transpose pair only: keep it fast. */
                    if (mi == 3 && ni == 3 && ki == 3 && t % 2)
                        continue;
                    check_case(&c, 1000 + count);
                    count++;
                }
    ck_assert_int_eq(count, 254);
}
END_TEST

START_TEST(sgemm_padded_leading_dimensions)
{
    for (int t = 0; t < 4; t++)
        for (int si = 0; si < 3; si++) {
            int s = sizes[si + 1];
            gemm_case c = {.ta = t & 1, .tb = t >> 1, .m = s, .n = sizes[si], .k = 17, .pad = 5,
                           .alpha = 1.0f, .beta = 0.5f};
            check_case(&c, 2000 + 10 * t + si);
            c.pad = 1;
            c.beta = 0.0f;
            check_case(&c, 2100 + 10 * t + si);
        }
}
END_TEST

START_TEST(sgemm_alpha_beta_exact_values)
{
    /* [1 2; 3 4] [5 6; 7 8] = [19 22; 43 50]; C = 2 * AB - 1 * C. */
    float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {1, 1, 1, 1};
    cx_sgemm(0, 0, 2, 2, 2, 2.0f, a, 2, b, 2, -1.0f, c, 2);
    ck_assert_float_eq(c[0], 37.0f);
    ck_assert_float_eq(c[1], 43.0f);
    ck_assert_float_eq(c[2], 85.0f);
    ck_assert_float_eq(c[3], 99.0f);
    /* A^T B^T = (BA)^T: [5 6; 7 8][1 2; 3 4] = [23 34; 31 46], transposed. */
    float d[4];
    cx_sgemm(1, 1, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, d, 2);
    ck_assert_float_eq(d[0], 23.0f);
    ck_assert_float_eq(d[1], 31.0f);
    ck_assert_float_eq(d[2], 34.0f);
    ck_assert_float_eq(d[3], 46.0f);
    /* alpha = 0: C = beta C, A and B not even read (NaN there must not leak). */
    float an[4] = {NAN, NAN, NAN, NAN}, e[4] = {1, 2, 3, 4};
    cx_sgemm(0, 0, 2, 2, 2, 0.0f, an, 2, an, 2, 3.0f, e, 2);
    ck_assert_float_eq(e[0], 3.0f);
    ck_assert_float_eq(e[3], 12.0f);
}
END_TEST

START_TEST(sgemm_beta_zero_ignores_nan_in_c)
{
    for (int t = 0; t < 4; t++)
        for (int si = 0; si < 4; si++) {
            gemm_case c = {.ta = t & 1, .tb = t >> 1, .m = sizes[si], .n = sizes[3 - si],
                           .k = sizes[(si + 1) % 4], .pad = si % 2 ? 3 : 0, .alpha = 1.5f,
                           .beta = 0.0f, .nan_c = 1};
            check_case(&c, 3000 + 10 * t + si);
        }
}
END_TEST

START_TEST(sgemm_k_zero_scales_c)
{
    for (int si = 0; si < 4; si++) {
        int m = sizes[si], n = sizes[(si + 2) % 4];
        gemm_case c = {.m = m, .n = n, .k = 0, .pad = 2, .alpha = 1.0f, .beta = 0.5f};
        check_case(&c, 4000 + si); /* C = 0.5 C */
        c.beta = 0.0f;
        c.nan_c = 1;
        check_case(&c, 4100 + si); /* C = 0, NaN gone */
        c.ta = c.tb = 1;
        c.beta = 1.0f;
        c.nan_c = 0;
        check_case(&c, 4200 + si); /* C unchanged */
    }
    /* Exact: beta 0 with k 0 writes zeros over NaN. */
    float cz[3] = {NAN, NAN, NAN};
    cx_sgemm(0, 0, 1, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.0f, cz, 3);
    for (int j = 0; j < 3; j++)
        ck_assert_float_eq(cz[j], 0.0f);
}
END_TEST

START_TEST(sgemm_empty_output_is_a_no_op)
{
    float c[2] = {7.0f, 8.0f};
    cx_sgemm(0, 0, 0, 2, 3, 1.0f, NULL, 3, NULL, 2, 0.0f, c, 2);
    cx_sgemm(0, 0, 1, 0, 3, 1.0f, NULL, 3, NULL, 1, 0.0f, c, 1);
    ck_assert_float_eq(c[0], 7.0f);
    ck_assert_float_eq(c[1], 8.0f);
}
END_TEST

START_TEST(strmm_right_upper_against_naive)
{
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++)
        for (size_t sj = 0; sj < sizeof sizes / sizeof *sizes; sj++) {
            int m = sizes[si], n = sizes[sj], ldb = n + 2, ldu = n + 1;
            float *b = rand_matrix((size_t)m * ldb, 40 + si);
            float *u = rand_matrix((size_t)n * ldu, 50 + sj);
            for (int i = 0; i < n; i++)
                for (int j = 0; j < i; j++)
                    u[(size_t)i * ldu + j] = NAN;
            double *want = malloc(sizeof *want * (size_t)m * n);
            ck_assert_ptr_nonnull(want);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double acc = 0.0;
                    for (int l = 0; l <= j; l++)
                        acc += (double)b[(size_t)i * ldb + l] * u[(size_t)l * ldu + j];
                    want[(size_t)i * n + j] = acc;
                }
            float pad0 = b[n], padlast = b[(size_t)(m - 1) * ldb + n + 1];
            cx_strmm_right_upper(m, n, u, ldu, b, ldb);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double w = want[(size_t)i * n + j];
                    ck_assert_msg(fabs(b[(size_t)i * ldb + j] - w) <= 1e-5 * (1.0 + sqrt((double)n)),
                                  "m %d n %d: (%d, %d) = %g, want %g", m, n, i, j,
                                  b[(size_t)i * ldb + j], w);
                }
            ck_assert(b[n] == pad0 && b[(size_t)(m - 1) * ldb + n + 1] == padlast);
            free(b);
            free(u);
            free(want);
        }
}
END_TEST

/* A linear layer's two gradient products through cx_sgemm_pair on two threads give the bits of
 * the same two products on one thread (each runs one-threaded), and match the two-threaded
 * products in turn to float rounding (OpenBLAS's split of an output can change the bits at odd
 * shapes): at W1's shapes and at odd ones that leave partial kernel tiles. */
START_TEST(sgemm_pair_is_the_one_thread_products)
{
    const int shapes[][3] = {{256, 1024, 1024}, {256, 1024, 256}, {256, 256, 10},
                             {37, 129, 300}, {255, 77, 513}};
    cx_threads_set(2);
    cx_rng r;
    cx_rng_seed(&r, 7, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int B = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *dout = malloc(sizeof(float) * (size_t)B * N), *in = malloc(sizeof(float) * (size_t)B * K);
        float *w = malloc(sizeof(float) * (size_t)N * K);
        float *din[2], *dw[2];
        for (int v = 0; v < 2; v++) {
            din[v] = malloc(sizeof(float) * (size_t)B * K);
            dw[v] = malloc(sizeof(float) * (size_t)N * K);
        }
        for (size_t i = 0; i < (size_t)B * N; i++)
            dout[i] = (float)cx_rng_normal(&r);
        for (size_t i = 0; i < (size_t)B * K; i++)
            in[i] = (float)cx_rng_normal(&r);
        for (size_t i = 0; i < (size_t)N * K; i++) {
            w[i] = (float)cx_rng_normal(&r);
            dw[0][i] = dw[1][i] = (float)cx_rng_normal(&r); /* accumulated onto (beta 1) */
        }
        float *dw_init = malloc(sizeof(float) * (size_t)N * K);
        memcpy(dw_init, dw[0], sizeof(float) * (size_t)N * K);
        cx_sgemm(0, 0, B, K, N, 1.0f, dout, N, w, K, 0.0f, din[0], K);
        cx_sgemm(1, 0, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw[0], K);
        /* Two threads in turn, kept for the rounding comparison below. */
        float *din2 = malloc(sizeof(float) * (size_t)B * K);
        float *dw2 = malloc(sizeof(float) * (size_t)N * K);
        memcpy(din2, din[0], sizeof(float) * (size_t)B * K);
        memcpy(dw2, dw[0], sizeof(float) * (size_t)N * K);
        /* One thread in turn: the reference bits. */
        cx_threads_set(1);
        memcpy(dw[0], dw_init, sizeof(float) * (size_t)N * K);
        cx_sgemm(0, 0, B, K, N, 1.0f, dout, N, w, K, 0.0f, din[0], K);
        cx_sgemm(1, 0, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw[0], K);
        cx_threads_set(2);
        const cx_gemm input_grad = {0, 0, B, K, N, 1.0f, dout, N, w, K, 0.0f, din[1], K};
        const cx_gemm weight_grad = {1, 0, N, K, B, 1.0f, dout, N, in, K, 1.0f, dw[1], K};
        cx_sgemm_pair(&input_grad, &weight_grad);
        ck_assert_msg(memcmp(din[0], din[1], sizeof(float) * (size_t)B * K) == 0,
                      "input gradient of (%d, %d, %d) differs", B, K, N);
        ck_assert_msg(memcmp(dw[0], dw[1], sizeof(float) * (size_t)N * K) == 0,
                      "weight gradient of (%d, %d, %d) differs", B, K, N);
        ck_assert_int_eq(cx_threads_get(), 2); /* the count in force is restored */
        /* Rounding of a sum of L unit-normal products: well under 2e-6 * L. */
        float tol_in = 2e-6f * (float)N, tol_w = 2e-6f * (float)B;
        for (size_t i = 0; i < (size_t)B * K; i++)
            ck_assert_msg(fabsf(din2[i] - din[1][i]) <= tol_in,
                          "input gradient %zu: %g two-threaded vs %g paired", i, din2[i], din[1][i]);
        for (size_t i = 0; i < (size_t)N * K; i++)
            ck_assert_msg(fabsf(dw2[i] - dw[1][i]) <= tol_w,
                          "weight gradient %zu: %g two-threaded vs %g paired", i, dw2[i], dw[1][i]);
        free(din2), free(dw2), free(dw_init);
        for (int v = 0; v < 2; v++)
            free(din[v]), free(dw[v]);
        free(dout), free(in), free(w);
    }
}
END_TEST

static Suite *blas_suite(void)
{
    Suite *s = suite_create("blas");
    TCase *tc = tcase_create("sgemm");
    /* 1.8 s under ASan and UBSan at most (every shape and transpose). The timeout only guards
     * against a hang: on a machine shared by several builds 10 s was not enough. */
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, sgemm_all_shapes_and_transposes);
    tcase_add_test(tc, sgemm_padded_leading_dimensions);
    tcase_add_test(tc, sgemm_alpha_beta_exact_values);
    tcase_add_test(tc, sgemm_beta_zero_ignores_nan_in_c);
    tcase_add_test(tc, sgemm_k_zero_scales_c);
    tcase_add_test(tc, sgemm_empty_output_is_a_no_op);
    tcase_add_test(tc, strmm_right_upper_against_naive);
    tcase_add_test(tc, sgemm_pair_is_the_one_thread_products);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(blas_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
