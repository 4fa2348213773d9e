/* Subsampling profiles, apportionment, the seeded per-class choice, frequency statistics and
 * class splits, against values worked out by hand. */
#include "config.h"

#include <math.h>
#include <stdint.h>

#include "data_util.h"

#include "lib/base/rng.h"
#include "lib/data/class_split.h"
#include "lib/data/stats.h"
#include "lib/data/subsample.h"

static int64_t sum64(const int64_t *x, int n)
{
    int64_t s = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    return s;
}

static void assert_sizes(const int64_t *got, const int64_t *want, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "entry %d: %lld, wanted %lld", i, (long long)got[i],
                      (long long)want[i]);
}

/* ---- profiles
 * ------------------------------------------------------------------------------------ */

START_TEST(profile_exp_matches_the_cifar_lt_convention)
{
    int64_t s[10];
    cx_profile_exp(6000, 100, 10, s);
    const int64_t want[10] = {6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60};
    assert_sizes(s, want, 10);
    ck_assert_int_eq(sum64(s, 10), 14886);
    cx_profile_exp(5000, 10, 1, s);
    ck_assert_int_eq(s[0], 5000);
    /* CIFAR-10-LT rho 50: the last class keeps 5000 / 50. */
    cx_profile_exp(5000, 50, 10, s);
    ck_assert_int_eq(s[9], 100);
    ck_assert_int_eq(s[0], 5000);
}
END_TEST

START_TEST(profile_pareto_and_step)
{
    int64_t s[10];
    ck_assert_double_eq_tol(cx_profile_pareto_alpha(100, 10), 2.0, 1e-12);
    cx_profile_pareto(6000, 2.0, 1, 10, s);
    const int64_t want[10] = {6000, 1500, 666, 375, 240, 166, 122, 93, 74, 60};
    assert_sizes(s, want, 10);
    cx_profile_pareto(1000, 3.0, 10, 10, s);
    ck_assert_int_eq(s[0], 1000);
    ck_assert_int_eq(s[2], 37);
    ck_assert_int_eq(s[9], 10); /* 1000 / 1000 = 1, raised to the minimum */
    cx_profile_step(100, 10, 0.5, 5, s);
    const int64_t step[5] = {100, 100, 10, 10, 10};
    assert_sizes(s, step, 5);
    cx_profile_step(100, 4, 0.3, 10, s);
    const int64_t step3[10] = {100, 100, 100, 25, 25, 25, 25, 25, 25, 25};
    assert_sizes(s, step3, 10);
}
END_TEST

START_TEST(apportion_sums_exactly_and_keeps_minimums)
{
    int64_t s[5];
    double even[3] = {1, 1, 1};
    cx_apportion(even, 3, 10, 0, s);
    const int64_t w1[3] = {4, 3, 3};
    assert_sizes(s, w1, 3);
    double skew[3] = {100, 1, 0};
    cx_apportion(skew, 3, 10, 1, s);
    const int64_t w2[3] = {9, 1, 0};
    assert_sizes(s, w2, 3);
    double zipf[5] = {1, 0.5, 1.0 / 3, 0.25, 0.2};
    cx_apportion(zipf, 5, 1000, 1, s);
    ck_assert_int_eq(sum64(s, 5), 1000);
    ck_assert_int_eq(s[0], 438); /* 1000 / H_5 = 437.96 -> the largest remainder rounds it up */
    double tiny[4] = {1000, 1, 1, 1};
    cx_apportion(tiny, 4, 5, 1, s);
    const int64_t w3[4] = {2, 1, 1, 1};
    assert_sizes(s, w3, 4);
}
END_TEST

/* ---- targets ------------------------------------------------------------------------------------
 */

START_TEST(targets_exp_caps_orders_and_spares_open_world)
{
    cx_subsample_opts o;
    cx_subsample_defaults(&o);
    cx_err err;
    int64_t avail[5] = {6000, 6000, 100, 6000, 77}, t[5];
    /* Classes 0..3 evaluated, class 4 an open-world concept. */
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 5, 4, t, &err), CX_OK);
    const int64_t want[5] = {6000, 1292, 100, 60, 77}; /* class 2 has only 100 of its 278 */
    assert_sizes(t, want, 5);
    uint32_t order[4] = {3, 2, 1, 0};
    o.order = order;
    o.n_max = 1000;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 5, 4, t, &err), CX_OK);
    const int64_t rev[5] = {10, 46, 100, 1000, 77};
    assert_sizes(t, rev, 5);
    o.order = NULL;
    o.rho = 0.5;
    ck_assert_fail_msg(cx_subsample_targets(&o, avail, 5, 4, t, &err), err, CX_EUSAGE,
                       "rho: must be at least 1, not 0.5");
}
END_TEST

START_TEST(targets_scale_gives_vanished_classes_one_back)
{
    cx_subsample_opts o;
    cx_subsample_defaults(&o);
    o.profile = CX_PROFILE_SCALE;
    o.frac = 0.01;
    cx_err err;
    int64_t avail[4] = {1000, 500, 3, 1}, t[4];
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    /* 15 of 1504: 9.97, 4.99, 0.03, 0.01 -> 10, 5, 0, 0 -> vanished classes get 1 from class 0. */
    const int64_t want[4] = {8, 5, 1, 1};
    assert_sizes(t, want, 4);
    o.frac = 0;
    o.n = 1504;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    assert_sizes(t, avail, 4);
    o.n = 1505;
    ck_assert_fail_msg(cx_subsample_targets(&o, avail, 4, 4, t, &err), err, CX_EUSAGE,
                       "n: 1505 exceeds the 1504 samples available");
    o.n = 3;
    ck_assert_fail_msg(cx_subsample_targets(&o, avail, 4, 4, t, &err), err, CX_EUSAGE,
                       "keeping 3 samples cannot give each of the 4 non-empty classes one");
}
END_TEST

START_TEST(targets_trim_tail_match_and_uniform)
{
    cx_subsample_opts o;
    cx_subsample_defaults(&o);
    cx_err err;
    int64_t avail[4] = {50, 10, 10, 40}, t[4];
    o.profile = CX_PROFILE_TRIM_TAIL;
    o.tail_k = 2;
    o.cap = 1;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    const int64_t w1[4] = {50, 1, 1, 40};
    assert_sizes(t, w1, 4);
    o.tail_k = 1;
    o.cap = 0;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    const int64_t w2[4] = {50, 10, 0, 40}; /* of two equal classes the later one is the rarer */
    assert_sizes(t, w2, 4);
    o.tail_k = 5;
    ck_assert_fail_msg(cx_subsample_targets(&o, avail, 4, 4, t, &err), err, CX_EUSAGE,
                       "tail_k: 5 is out of range [0, 4]");

    cx_subsample_defaults(&o);
    o.profile = CX_PROFILE_MATCH;
    int64_t counts[4] = {5, 100, 0, 40};
    o.counts = counts;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    const int64_t w3[4] = {5, 10, 0, 40};
    assert_sizes(t, w3, 4);

    cx_subsample_defaults(&o);
    o.profile = CX_PROFILE_UNIFORM;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    const int64_t w4[4] = {10, 10, 10, 10};
    assert_sizes(t, w4, 4);
    o.n = 50;
    ck_assert_int_eq(cx_subsample_targets(&o, avail, 4, 4, t, &err), CX_OK);
    const int64_t w5[4] = {13, 10, 10, 12};
    assert_sizes(t, w5, 4);
}
END_TEST

/* ---- selection ----------------------------------------------------------------------------------
 */

START_TEST(select_keeps_targets_deterministically_and_per_class)
{
    enum { N = 1000, C = 5 };
    int32_t labels[N];
    cx_rng r;
    cx_rng_seed(&r, 3, 0);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)cx_rng_below(&r, C);
    int64_t avail[C] = {0};
    for (int i = 0; i < N; i++)
        avail[labels[i]]++;
    int64_t target[C] = {10, 0, 5, avail[3], 3};
    uint32_t *a, *b, *c;
    size_t na, nb, nc;
    cx_err err;
    ck_assert_int_eq(cx_subsample_select(labels, N, C, target, 1, &a, &na, &err), CX_OK);
    ck_assert_int_eq(cx_subsample_select(labels, N, C, target, 1, &b, &nb, &err), CX_OK);
    ck_assert_uint_eq(na, (size_t)(18 + avail[3]));
    ck_assert_uint_eq(na, nb);
    ck_assert_int_eq(memcmp(a, b, na * sizeof *a), 0);
    int64_t got[C] = {0};
    for (size_t i = 0; i < na; i++) {
        if (i)
            ck_assert_uint_gt(a[i], a[i - 1]);
        got[labels[a[i]]]++;
    }
    assert_sizes(got, target, C);
    /* Another seed, another choice. */
    ck_assert_int_eq(cx_subsample_select(labels, N, C, target, 2, &c, &nc, &err), CX_OK);
    ck_assert_uint_eq(nc, na);
    ck_assert_int_ne(memcmp(a, c, na * sizeof *a), 0);
    free(c);
    /* Changing class 0's target leaves class 2's choice alone. */
    int64_t target2[C] = {20, 0, 5, 0, 0};
    ck_assert_int_eq(cx_subsample_select(labels, N, C, target2, 1, &c, &nc, &err), CX_OK);
    uint32_t two_a[5], two_c[5];
    int ka = 0, kc = 0;
    for (size_t i = 0; i < na; i++)
        if (labels[a[i]] == 2)
            two_a[ka++] = a[i];
    for (size_t i = 0; i < nc; i++)
        if (labels[c[i]] == 2)
            two_c[kc++] = c[i];
    ck_assert_int_eq(ka, 5);
    ck_assert_int_eq(kc, 5);
    ck_assert_int_eq(memcmp(two_a, two_c, sizeof two_a), 0);
    free(a);
    free(b);
    free(c);
}
END_TEST

/* ---- statistics ---------------------------------------------------------------------------------
 */

START_TEST(stats_gini_imbalance_and_splits)
{
    int64_t eq[4] = {5, 5, 5, 5}, one[4] = {0, 0, 0, 4}, ramp[4] = {4, 1, 3, 2};
    ck_assert_double_eq_tol(cx_stats_gini(eq, 4), 0.0, 1e-15);
    ck_assert_double_eq_tol(cx_stats_gini(one, 4), 0.75, 1e-15);
    ck_assert_double_eq_tol(cx_stats_gini(ramp, 4), 0.25, 1e-15);
    int64_t fm[10] = {6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60};
    cx_class_split split[10];
    cx_stats_summary s;
    cx_stats_summarize(fm, 10, CX_SPLIT_RULE_SHOTS, 100, 20, split, &s);
    ck_assert_int_eq(s.total, 14886);
    ck_assert_int_eq(s.n_max, 6000);
    ck_assert_int_eq(s.n_min, 60);
    ck_assert_double_eq(s.imbalance, 100.0);
    ck_assert_int_eq(s.head, 8);
    ck_assert_int_eq(s.mid, 2);
    ck_assert_int_eq(s.tail, 0);
    ck_assert_int_eq(split[8], CX_SPLIT_MID);
    /* Gini by the pairwise definition, sum |xi - xj| / (2 C^2 mean), for comparison. */
    double pair = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++)
            pair += fabs((double)(fm[i] - fm[j]));
    ck_assert_double_eq_tol(s.gini, pair / (2.0 * 100 * 1488.6), 1e-12);
    int64_t holes[3] = {10, 0, 5};
    cx_stats_summarize(holes, 3, CX_SPLIT_RULE_TERTILE, 0, 0, split, &s);
    ck_assert_int_eq(s.empty, 1);
    ck_assert_double_eq(s.imbalance, 2.0);
    ck_assert_int_eq(split[0], CX_SPLIT_HEAD);
    ck_assert_int_eq(split[1], CX_SPLIT_TAIL);
    int32_t y[6] = {0, 2, 2, 1, 2, 9};
    int64_t c[3];
    cx_stats_counts(y, 6, 3, c);
    ck_assert_int_eq(c[2], 3);
    ck_assert_int_eq(c[1], 1);
}
END_TEST

/* ---- class splits ------------------------------------------------------------------------- */

START_TEST(class_splits_shots_and_tertile)
{
    int64_t counts[7] = {500, 101, 100, 20, 19, 0, 100};
    cx_class_split s[7];
    cx_class_splits(counts, 7, CX_SPLIT_RULE_SHOTS, 100, 20, s);
    cx_class_split want[7] = {CX_SPLIT_HEAD, CX_SPLIT_HEAD, CX_SPLIT_MID, CX_SPLIT_MID,
                              CX_SPLIT_TAIL, CX_SPLIT_TAIL, CX_SPLIT_MID};
    for (int c = 0; c < 7; c++)
        ck_assert_int_eq(s[c], want[c]);
    /* Ranks: 500, 101, 100(c2), 100(c6), 20, 19, 0 -> 2 head, 2 tail, 3 mid. */
    cx_class_splits(counts, 7, CX_SPLIT_RULE_TERTILE, 0, 0, s);
    cx_class_split want_t[7] = {CX_SPLIT_HEAD, CX_SPLIT_HEAD, CX_SPLIT_MID, CX_SPLIT_MID,
                                CX_SPLIT_TAIL, CX_SPLIT_TAIL, CX_SPLIT_MID};
    for (int c = 0; c < 7; c++)
        ck_assert_int_eq(s[c], want_t[c]);
    ck_assert_str_eq(cx_class_split_name(CX_SPLIT_MID), "mid");
}
END_TEST

static Suite *subsample_suite(void)
{
    Suite *s = suite_create("subsample");
    TCase *tc = tcase_create("profiles");
    tcase_add_test(tc, profile_exp_matches_the_cifar_lt_convention);
    tcase_add_test(tc, profile_pareto_and_step);
    tcase_add_test(tc, apportion_sums_exactly_and_keeps_minimums);
    tcase_add_test(tc, targets_exp_caps_orders_and_spares_open_world);
    tcase_add_test(tc, targets_scale_gives_vanished_classes_one_back);
    tcase_add_test(tc, targets_trim_tail_match_and_uniform);
    tcase_add_test(tc, select_keeps_targets_deterministically_and_per_class);
    tcase_add_test(tc, stats_gini_imbalance_and_splits);
    tcase_add_test(tc, class_splits_shots_and_tertile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(subsample_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
