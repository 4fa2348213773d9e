/* The rebalancing samplers (shuffle, class-balanced, square-root: permutations, frequencies,
 * determinism) and the vocabulary sampler (the batch's classes, the laws of its negatives). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/objective/sampler.h"
#include "lib/objective/vocab_sampler.h"

static int32_t *ibuf(size_t n)
{
    int32_t *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Labels: class c has cnt[c] samples, interleaved (not grouped) so positions do not give the
 * class away. */
static int32_t *make_labels(const int *cnt, int C, size_t *n_out)
{
    size_t n = 0;
    for (int c = 0; c < C; c++)
        n += (size_t)cnt[c];
    int32_t *lab = ibuf(n);
    int *left = calloc((size_t)C, sizeof *left);
    memcpy(left, cnt, sizeof *left * (size_t)C);
    size_t i = 0;
    while (i < n)
        for (int c = 0; c < C; c++)
            if (left[c] > 0) {
                left[c]--;
                lab[i++] = c;
            }
    free(left);
    *n_out = n;
    return lab;
}

static cx_sampler *make_sampler(cx_sampler_kind kind, const int32_t *lab, size_t n, int C,
                                uint64_t seed)
{
    cx_sampler *s = NULL;
    cx_err err = {0};
    ck_assert_msg(cx_sampler_create(&s, kind, lab, n, C, seed, &err) == CX_OK, "%s", err.msg);
    return s;
}

START_TEST(sampler_shuffle_is_a_permutation_per_epoch)
{
    const int cnt[3] = {500, 40, 3};
    size_t n;
    int32_t *lab = make_labels(cnt, 3, &n);
    cx_sampler *s = make_sampler(CX_SAMPLER_SHUFFLE, lab, n, 3, 7);
    uint32_t *o = malloc(sizeof *o * n), *o2 = malloc(sizeof *o2 * n);
    char *seen = calloc(n, 1);
    for (int e = 0; e < 4; e++) {
        cx_sampler_epoch(s, e, o);
        memset(seen, 0, n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_lt(o[i], n);
            ck_assert_msg(!seen[o[i]], "epoch %d: %u twice", e, o[i]);
            seen[o[i]] = 1;
        }
        size_t fixed = 0;
        for (size_t i = 0; i < n; i++)
            fixed += o[i] == i;
        ck_assert_uint_lt(fixed, 10); /* a permutation, not the identity (expected 1) */
        if (e > 0)
            ck_assert_msg(memcmp(o, o2, sizeof *o * n) != 0, "epochs %d and %d equal", e - 1, e);
        memcpy(o2, o, sizeof *o * n);
    }
    cx_sampler_free(s);
    free(lab), free(o), free(o2), free(seen);
}
END_TEST

START_TEST(sampler_orders_depend_only_on_seed_and_epoch)
{
    const int cnt[4] = {300, 60, 9, 1};
    size_t n;
    int32_t *lab = make_labels(cnt, 4, &n);
    uint32_t *a = malloc(sizeof *a * n), *b = malloc(sizeof *b * n);
    for (int k = CX_SAMPLER_SHUFFLE; k <= CX_SAMPLER_SQRT; k++) {
        cx_sampler *s1 = make_sampler((cx_sampler_kind)k, lab, n, 4, 11);
        cx_sampler *s2 = make_sampler((cx_sampler_kind)k, lab, n, 4, 11);
        cx_sampler *s3 = make_sampler((cx_sampler_kind)k, lab, n, 4, 12);
        /* Epoch 5 from a fresh sampler, and after other epochs: the same (a resumed run). */
        cx_sampler_epoch(s1, 5, a);
        cx_sampler_epoch(s2, 0, b);
        cx_sampler_epoch(s2, 9, b);
        cx_sampler_epoch(s2, 5, b);
        ck_assert_msg(memcmp(a, b, sizeof *a * n) == 0, "kind %d: epoch 5 not reproduced", k);
        cx_sampler_epoch(s2, 6, b);
        ck_assert_msg(memcmp(a, b, sizeof *a * n) != 0, "kind %d: epochs 5 and 6 equal", k);
        cx_sampler_epoch(s3, 5, b);
        ck_assert_msg(memcmp(a, b, sizeof *a * n) != 0, "kind %d: seeds 11 and 12 equal", k);
        cx_sampler_free(s1), cx_sampler_free(s2), cx_sampler_free(s3);
    }
    free(lab), free(a), free(b);
}
END_TEST

/* Class frequencies of draws over many epochs against target probabilities, within 5
 * standard errors; each sample's frequency within its class is checked for the small classes. */
static void check_rebalanced(cx_sampler_kind kind, const double *target)
{
    const int C = 7;
    const int cnt[7] = {1000, 300, 100, 0, 30, 10, 3}; /* class 3 is empty */
    size_t n;
    int32_t *lab = make_labels(cnt, C, &n);
    cx_sampler *s = make_sampler(kind, lab, n, C, 2024);
    uint32_t *o = malloc(sizeof *o * n);
    double freq[7] = {0};
    double *per = calloc(n, sizeof *per);
    const int epochs = 40;
    for (int e = 0; e < epochs; e++) {
        cx_sampler_epoch(s, e, o);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_lt(o[i], n);
            freq[lab[o[i]]]++;
            per[o[i]]++;
        }
    }
    double N = (double)n * epochs;
    for (int c = 0; c < C; c++) {
        double p = target[c], se = sqrt(p * (1 - p) / N);
        ck_assert_msg(fabs(freq[c] / N - p) <= 5 * se + 1e-12,
                      "kind %d class %d: frequency %.5f, target %.5f (se %.5f)", (int)kind, c,
                      freq[c] / N, p, se);
    }
    ck_assert(freq[3] == 0);
    /* Within a class, each sample is equally likely: samples of classes 5 and 6. */
    for (size_t i = 0; i < n; i++) {
        int c = lab[i];
        if (c < 5)
            continue;
        double p = target[c] / cnt[c], se = sqrt(p * (1 - p) / N);
        ck_assert_msg(fabs(per[i] / N - p) <= 5 * se, "kind %d sample %zu (class %d): %.5f vs "
                      "%.5f", (int)kind, i, c, per[i] / N, p);
    }
    cx_sampler_free(s);
    free(lab), free(o), free(per);
}

START_TEST(sampler_class_balanced_frequencies)
{
    double t[7] = {1, 1, 1, 0, 1, 1, 1};
    for (int c = 0; c < 7; c++)
        t[c] /= 6.0;
    check_rebalanced(CX_SAMPLER_CLASS_BALANCED, t);
}
END_TEST

START_TEST(sampler_sqrt_frequencies)
{
    const int cnt[7] = {1000, 300, 100, 0, 30, 10, 3};
    double t[7], s = 0;
    for (int c = 0; c < 7; c++)
        s += (t[c] = sqrt((double)cnt[c]));
    for (int c = 0; c < 7; c++)
        t[c] /= s;
    check_rebalanced(CX_SAMPLER_SQRT, t);
}
END_TEST

START_TEST(sampler_create_refuses_bad_labels_and_handles_empty)
{
    int32_t lab[4] = {0, 1, 3, 1};
    cx_sampler *s = (cx_sampler *)1;
    cx_err err = {0};
    ck_assert_int_eq(cx_sampler_create(&s, CX_SAMPLER_SQRT, lab, 4, 3, 1, &err), CX_EDATA);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.msg, "sample 2") && strstr(err.msg, "label 3"), "%s", err.msg);
    lab[2] = -1;
    ck_assert_int_eq(cx_sampler_create(&s, CX_SAMPLER_SHUFFLE, lab, 4, 3, 1, &err), CX_EDATA);
    ck_assert_int_eq(cx_sampler_create(&s, CX_SAMPLER_SHUFFLE, lab, 4, 0, 1, &err), CX_EUSAGE);
    /* No samples: an epoch writes nothing (and does not crash). */
    for (int k = CX_SAMPLER_SHUFFLE; k <= CX_SAMPLER_SQRT; k++) {
        s = make_sampler((cx_sampler_kind)k, lab, 0, 3, 1);
        uint32_t o[1] = {77};
        cx_sampler_epoch(s, 0, o);
        ck_assert_uint_eq(o[0], 77);
        cx_sampler_free(s);
    }
    /* One class: every draw is one of its samples. */
    int32_t one[5] = {2, 2, 2, 2, 2};
    s = make_sampler(CX_SAMPLER_CLASS_BALANCED, one, 5, 4, 3);
    uint32_t o[5];
    cx_sampler_epoch(s, 1, o);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_lt(o[i], 5);
    cx_sampler_free(s);
    cx_sampler_free(NULL);
}
END_TEST

/* ---- vocabulary sampler ------------------------------------------------------------------- */

static cx_vocab_sampler *make_vocab(int C, int K, cx_vocab_weight w, const int64_t *counts)
{
    cx_vocab_sampler *s = NULL;
    cx_err err = {0};
    ck_assert_msg(cx_vocab_sampler_create(&s, C, K, w, counts, &err) == CX_OK, "%s", err.msg);
    return s;
}

START_TEST(vocab_holds_the_batch_sorted_distinct_and_remaps_targets)
{
    const int C = 40, K = 12, B = 16;
    int64_t counts[40];
    for (int c = 0; c < C; c++)
        counts[c] = 200 / (c + 1);
    for (int w = CX_VOCAB_UNIFORM; w <= CX_VOCAB_SQRT; w++) {
        cx_vocab_sampler *s = make_vocab(C, K, (cx_vocab_weight)w, counts);
        cx_rng r;
        cx_rng_seed(&r, 5, (uint64_t)w);
        int32_t lab[16], cls[16], tg[16];
        for (int t = 0; t < 300; t++) {
            /* Batches of 1 to 16 samples with repeats, so |V| ranges below and above K. */
            int b = 1 + (int)cx_rng_below(&r, B);
            int span = 1 + (int)cx_rng_below(&r, C);
            for (int i = 0; i < b; i++)
                lab[i] = (int32_t)cx_rng_below(&r, (uint32_t)span);
            int nv = 0;
            for (int i = 0; i < b; i++) {
                int dup = 0;
                for (int j = 0; j < i; j++)
                    dup |= lab[j] == lab[i];
                nv += !dup;
            }
            int m = cx_vocab_sampler_draw(s, lab, b, &r, cls, tg);
            ck_assert_int_eq(m, nv > K ? nv : K);
            for (int k = 1; k < m; k++)
                ck_assert_msg(cls[k - 1] < cls[k], "not sorted and distinct at %d", k);
            for (int k = 0; k < m; k++)
                ck_assert(cls[k] >= 0 && cls[k] < C);
            for (int i = 0; i < b; i++) {
                ck_assert(tg[i] >= 0 && tg[i] < m);
                ck_assert_int_eq(cls[tg[i]], lab[i]);
            }
        }
        cx_vocab_sampler_free(s);
    }
}
END_TEST

START_TEST(vocab_keeps_only_the_batch_when_it_has_k_classes)
{
    const int64_t counts[10] = {9, 9, 9, 9, 9, 9, 9, 9, 9, 9};
    cx_vocab_sampler *s = make_vocab(10, 3, CX_VOCAB_LINEAR, counts);
    cx_rng r;
    cx_rng_seed(&r, 1, 1);
    int32_t lab[6] = {8, 1, 8, 4, 6, 1}, cls[6], tg[6];
    ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 6, &r, cls, tg), 4);
    const int32_t want[4] = {1, 4, 6, 8}, wt[6] = {3, 0, 3, 1, 2, 0};
    for (int k = 0; k < 4; k++)
        ck_assert_int_eq(cls[k], want[k]);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(tg[i], wt[i]);
    /* Exactly K ({8, 1, 4}): no draw at all, the RNG is untouched. */
    cx_rng before = r;
    ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 4, &r, cls, tg), 3);
    ck_assert(memcmp(&before, &r, sizeof r) == 0);
    ck_assert_int_eq(cls[0], 1);
    ck_assert_int_eq(cls[1], 4);
    ck_assert_int_eq(cls[2], 8);
    cx_vocab_sampler_free(s);
}
END_TEST

/* Frequency of each class as the single negative next to V = {0}, against w_c / sum w. */
static void check_negative_law(cx_vocab_weight wk)
{
    const int C = 6;
    const int64_t counts[6] = {1000, 400, 100, 25, 4, 1};
    cx_vocab_sampler *s = make_vocab(C, 2, wk, counts);
    cx_rng r;
    cx_rng_seed(&r, 77, (uint64_t)wk);
    double freq[6] = {0}, w[6], tw = 0;
    for (int c = 1; c < C; c++)
        tw += (w[c] = wk == CX_VOCAB_UNIFORM  ? 1.0
                      : wk == CX_VOCAB_LINEAR ? (double)counts[c]
                                              : sqrt((double)counts[c]));
    const int T = 40000;
    int32_t lab[3] = {0, 0, 0}, cls[3], tg[3];
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 3, &r, cls, tg), 2);
        ck_assert_int_eq(cls[0], 0);
        ck_assert_int_eq(tg[0], 0);
        freq[cls[1]]++;
    }
    for (int c = 1; c < C; c++) {
        double p = w[c] / tw, se = sqrt(p * (1 - p) / T);
        ck_assert_msg(fabs(freq[c] / T - p) <= 5 * se, "weight %d class %d: %.5f vs %.5f",
                      (int)wk, c, freq[c] / T, p);
    }
    cx_vocab_sampler_free(s);
}

START_TEST(vocab_negatives_follow_their_weights)
{
    check_negative_law(CX_VOCAB_UNIFORM);
    check_negative_law(CX_VOCAB_LINEAR);
    check_negative_law(CX_VOCAB_SQRT);
}
END_TEST

START_TEST(vocab_two_negatives_inclusion_probabilities)
{
    /* Two draws without replacement, proportional to n_c: P(c drawn) = w_c / W +
     * sum_{a != c} (w_a / W) w_c / (W - w_a), over classes outside V = {2}. */
    const int C = 5;
    const int64_t counts[5] = {50, 30, 999, 15, 5};
    cx_vocab_sampler *s = make_vocab(C, 3, CX_VOCAB_LINEAR, counts);
    double W = 0, incl[5] = {0}, freq[5] = {0};
    for (int c = 0; c < C; c++)
        if (c != 2)
            W += (double)counts[c];
    for (int c = 0; c < C; c++) {
        if (c == 2)
            continue;
        incl[c] = counts[c] / W;
        for (int a = 0; a < C; a++)
            if (a != c && a != 2)
                incl[c] += counts[a] / W * counts[c] / (W - counts[a]);
    }
    cx_rng r;
    cx_rng_seed(&r, 3, 3);
    const int T = 30000;
    int32_t lab[1] = {2}, cls[3], tg[1];
    for (int t = 0; t < T; t++) {
        ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 1, &r, cls, tg), 3);
        ck_assert_int_eq(cls[tg[0]], 2);
        for (int k = 0; k < 3; k++)
            freq[cls[k]]++;
    }
    ck_assert(freq[2] == T);
    for (int c = 0; c < C; c++) {
        if (c == 2)
            continue;
        double p = incl[c], se = sqrt(p * (1 - p) / T);
        ck_assert_msg(fabs(freq[c] / T - p) <= 5 * se, "class %d: %.5f vs %.5f", c,
                      freq[c] / T, p);
    }
    cx_vocab_sampler_free(s);
}
END_TEST

START_TEST(vocab_zero_weight_classes_are_never_drawn)
{
    const int C = 8;
    const int64_t counts[8] = {10, 0, 5, 0, 0, 3, 0, 0};
    cx_rng r;
    cx_rng_seed(&r, 9, 9);
    int32_t lab[2] = {6, 0}, cls[8], tg[2];
    for (int w = CX_VOCAB_LINEAR; w <= CX_VOCAB_SQRT; w++) {
        cx_vocab_sampler *s = make_vocab(C, 4, (cx_vocab_weight)w, counts);
        for (int t = 0; t < 200; t++) {
            /* V = {0, 6}; only classes 2 and 5 have positive weight outside V. */
            ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 2, &r, cls, tg), 4);
            const int32_t want[4] = {0, 2, 5, 6};
            for (int k = 0; k < 4; k++)
                ck_assert_int_eq(cls[k], want[k]);
            ck_assert_int_eq(tg[0], 3);
            ck_assert_int_eq(tg[1], 0);
        }
        cx_vocab_sampler_free(s);
        /* K = 6 asks for 4 negatives, 2 have positive weight: 4 classes, fewer than K. */
        s = make_vocab(C, 6, (cx_vocab_weight)w, counts);
        ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 2, &r, cls, tg), 4);
        cx_vocab_sampler_free(s);
    }
    /* Uniform weights: the zero-count classes are drawn too. */
    cx_vocab_sampler *s = make_vocab(C, 8, CX_VOCAB_UNIFORM, counts);
    ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 2, &r, cls, tg), 8);
    for (int k = 0; k < 8; k++)
        ck_assert_int_eq(cls[k], k);
    ck_assert_int_eq(tg[0], 6);
    cx_vocab_sampler_free(s);
}
END_TEST

START_TEST(vocab_create_errors_bad_labels_and_determinism)
{
    const int64_t counts[4] = {4, 3, 2, 1}, neg[4] = {4, -3, 2, 1};
    cx_vocab_sampler *s = (cx_vocab_sampler *)1;
    cx_err err = {0};
    ck_assert_int_eq(cx_vocab_sampler_create(&s, 4, 5, CX_VOCAB_LINEAR, counts, &err), CX_EUSAGE);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.msg, "vocab.k") != NULL, "%s", err.msg);
    ck_assert_int_eq(cx_vocab_sampler_create(&s, 4, 0, CX_VOCAB_LINEAR, counts, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_vocab_sampler_create(&s, 4, 2, CX_VOCAB_LINEAR, neg, &err), CX_EDATA);
    ck_assert_int_eq(cx_vocab_sampler_create(&s, 4, 2, (cx_vocab_weight)9, counts, &err),
                     CX_EUSAGE);
    s = make_vocab(4, 2, CX_VOCAB_SQRT, counts);
    int32_t bad[2] = {1, 4}, cls[4], tg[2];
    cx_rng r, r2;
    cx_rng_seed(&r, 1, 2);
    ck_assert_int_eq(cx_vocab_sampler_draw(s, bad, 2, &r, cls, tg), -1);
    bad[1] = -1;
    ck_assert_int_eq(cx_vocab_sampler_draw(s, bad, 2, &r, cls, tg), -1);
    /* An empty batch draws K classes. */
    ck_assert_int_eq(cx_vocab_sampler_draw(s, bad, 0, &r, cls, tg), 2);
    /* The same RNG state gives the same vocabulary. */
    int32_t lab[1] = {3}, c1[4], c2[4];
    for (int t = 0; t < 20; t++) {
        cx_rng_seed(&r, 40, (uint64_t)t);
        cx_rng_seed(&r2, 40, (uint64_t)t);
        ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 1, &r, c1, tg), 2);
        ck_assert_int_eq(cx_vocab_sampler_draw(s, lab, 1, &r2, c2, tg), 2);
        ck_assert(c1[0] == c2[0] && c1[1] == c2[1]);
    }
    cx_vocab_sampler_free(s);
    cx_vocab_sampler_free(NULL);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("sampler");
    tcase_add_test(tc, sampler_shuffle_is_a_permutation_per_epoch);
    tcase_add_test(tc, sampler_orders_depend_only_on_seed_and_epoch);
    tcase_add_test(tc, sampler_class_balanced_frequencies);
    tcase_add_test(tc, sampler_sqrt_frequencies);
    tcase_add_test(tc, sampler_create_refuses_bad_labels_and_handles_empty);
    suite_add_tcase(s, tc);

    tc = tcase_create("vocab");
    tcase_add_test(tc, vocab_holds_the_batch_sorted_distinct_and_remaps_targets);
    tcase_add_test(tc, vocab_keeps_only_the_batch_when_it_has_k_classes);
    tcase_add_test(tc, vocab_negatives_follow_their_weights);
    tcase_add_test(tc, vocab_two_negatives_inclusion_probabilities);
    tcase_add_test(tc, vocab_zero_weight_classes_are_never_drawn);
    tcase_add_test(tc, vocab_create_errors_bad_labels_and_determinism);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sampler_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
