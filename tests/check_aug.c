/* Augmentations (lib/data/augment.h): boxes and bilinear values worked out by hand on 4x4
 * images, EDA on fixed captions, determinism and independence from the batch position. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/data/augment.h"

/* in[y][x] = 4 y + x: bilinear resampling of a linear image is exact. */
static void ramp(float *x)
{
    for (int i = 0; i < 16; i++)
        x[i] = (float)i;
}

/* The destination-to-source positions of a 2-pixel crop upsampled to 4 (half-pixel centres,
 * clamped): (d + 0.5) / 2 - 0.5 = -0.25 -> 0, 0.25, 0.75, 1.25 -> the last pixel, 1. */
static const float pos2[4] = {0.0f, 0.25f, 0.75f, 1.0f};

START_TEST(resized_crop_bilinear_by_hand)
{
    float in[16], out[16];
    ramp(in);
    cx_aug_resized_crop(out, in, 1, 4, 4, 1, 1, 2, 2); /* crop [[5, 6], [9, 10]] */
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            ck_assert_float_eq_tol(out[y * 4 + x], 5 + 4 * pos2[y] + pos2[x], 1e-6f);
    ck_assert_float_eq(out[0], 5.0f);
    ck_assert_float_eq(out[1 * 4 + 2], 6.75f);
    ck_assert_float_eq(out[15], 10.0f);
    /* One bright pixel: the product of the two axis weights. */
    float dot[16] = {0};
    dot[1 * 4 + 1] = 1.0f; /* top-left of the crop (1, 1, 2, 2) */
    cx_aug_resized_crop(out, dot, 1, 4, 4, 1, 1, 2, 2);
    ck_assert_float_eq(out[0], 1.0f);
    ck_assert_float_eq(out[1 * 4 + 1], 0.75f * 0.75f);
    ck_assert_float_eq(out[1 * 4 + 2], 0.75f * 0.25f);
    ck_assert_float_eq(out[3 * 4 + 3], 0.0f);
    /* The whole image is the identity; two channels are resampled alike. */
    float two[32], o2[32];
    ramp(two);
    ramp(two + 16);
    cx_aug_resized_crop(o2, two, 2, 4, 4, 0, 0, 4, 4);
    ck_assert_mem_eq(o2, two, sizeof two);
    cx_aug_resized_crop(o2, two, 2, 4, 4, 1, 1, 2, 2);
    ck_assert_mem_eq(o2, o2 + 16, 16 * sizeof(float));
    /* A 1x4 strip (aspect 4) stretched over rows: every row is the strip. */
    cx_aug_resized_crop(out, in, 1, 4, 4, 2, 0, 1, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            ck_assert_float_eq(out[y * 4 + x], (float)(8 + x));
}
END_TEST

START_TEST(crop_box_rules)
{
    cx_rng r;
    cx_rng_seed(&r, 1, 2);
    int top, left, h, w;
    double full[2] = {1, 1}, one[2] = {1, 1}, quarter[2] = {0.25, 0.25}, wide[2] = {2, 2};
    cx_aug_crop_box(&r, 4, 4, full, one, &top, &left, &h, &w);
    ck_assert_int_eq(top, 0); ck_assert_int_eq(left, 0); ck_assert_int_eq(h, 4); ck_assert_int_eq(w, 4);
    for (int k = 0; k < 50; k++) {
        cx_aug_crop_box(&r, 4, 4, quarter, one, &top, &left, &h, &w);
        ck_assert_int_eq(h, 2); ck_assert_int_eq(w, 2);
        ck_assert(top >= 0 && top <= 2 && left >= 0 && left <= 2);
    }
    /* Aspect 2 at full area never fits (w = round(sqrt(32)) = 6): torchvision's fallback is the
     * central crop of the clamped aspect, w = 4, h = round(4 / 2) = 2, top = 1. */
    cx_aug_crop_box(&r, 4, 4, full, wide, &top, &left, &h, &w);
    ck_assert_int_eq(top, 1); ck_assert_int_eq(left, 0); ck_assert_int_eq(h, 2); ck_assert_int_eq(w, 4);
    /* Area 0.5 of 4x4 at aspect 1: sqrt(8) = 2.83 rounds to 3. */
    double half[2] = {0.5, 0.5};
    cx_aug_crop_box(&r, 4, 4, half, one, &top, &left, &h, &w);
    ck_assert_int_eq(h, 3); ck_assert_int_eq(w, 3);
}
END_TEST

START_TEST(erase_box_and_flip)
{
    cx_rng r;
    cx_rng_seed(&r, 3, 4);
    int top, left, h, w;
    double one[2] = {1, 1}, quarter[2] = {0.25, 0.25};
    /* The whole image never fits (h < H is required): nothing to erase. */
    ck_assert_int_eq(cx_aug_erase_box(&r, 4, 4, one, one, &top, &left, &h, &w), 0);
    ck_assert_int_eq(cx_aug_erase_box(&r, 4, 4, quarter, one, &top, &left, &h, &w), 1);
    ck_assert_int_eq(h, 2); ck_assert_int_eq(w, 2);
    float x[16];
    ramp(x);
    cx_aug_erase(x, 1, 4, 4, 1, 2, 2, 2);
    float want[16] = {0, 1, 2, 3, 4, 5, 0, 0, 8, 9, 0, 0, 12, 13, 14, 15};
    ck_assert_mem_eq(x, want, sizeof want);
    float f[6] = {1, 2, 3, 4, 5, 6};
    cx_aug_hflip(f, 1, 2, 3);
    float fw[6] = {3, 2, 1, 6, 5, 4};
    ck_assert_mem_eq(f, fw, sizeof fw);
}
END_TEST

static cx_aug_config image_crop(void)
{
    cx_aug_config a;
    memset(&a, 0, sizeof a);
    a.crop = 1;
    a.crop_scale[0] = a.crop_scale[1] = 0.25;
    a.crop_ratio[0] = a.crop_ratio[1] = 1;
    return a;
}

START_TEST(crop_view_on_fixed_seed)
{
    cx_aug_config a = image_crop();
    cx_aug_shape sh = {1, 4, 4, 16};
    float in[16], out[16];
    ramp(in);
    /* Seed 7, step 0, sample 5, view 0 draws the 2x2 box at (top 0, left 1) (recorded once,
     * then worked out): out[y][x] = 4 top + left + 4 pos2[y] + pos2[x]. */
    cx_aug_sample_view(&a, &sh, 7, 0, 5, 0, in, out);
    int top = 0, left = 1;
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            ck_assert_float_eq_tol(out[y * 4 + x], 4 * top + left + 4 * pos2[y] + pos2[x],
                                   1e-6f);
    /* Nothing active: a copy. */
    cx_aug_config none;
    memset(&none, 0, sizeof none);
    cx_aug_sample_view(&none, &sh, 7, 0, 5, 0, in, out);
    ck_assert_mem_eq(out, in, sizeof in);
    ck_assert_int_eq(cx_aug_active(&none), 0);
    ck_assert_int_eq(cx_aug_active(&a), 1);
}
END_TEST

START_TEST(erase_view_zeroes_one_box)
{
    cx_aug_config a;
    memset(&a, 0, sizeof a);
    a.erase_p = 1;
    a.erase_scale[0] = a.erase_scale[1] = 0.25;
    a.erase_ratio[0] = a.erase_ratio[1] = 1;
    cx_aug_shape sh = {1, 4, 4, 16};
    float in[16], out[16];
    for (int i = 0; i < 16; i++)
        in[i] = 1;
    for (uint64_t s = 0; s < 20; s++) {
        cx_aug_sample_view(&a, &sh, 1, 3, s, 0, in, out);
        int zeros = 0, y0 = 9, x0 = 9;
        for (int i = 0; i < 16; i++)
            if (out[i] == 0) {
                zeros++;
                if (y0 == 9)
                    y0 = i / 4, x0 = i % 4;
            }
        ck_assert_int_eq(zeros, 4);
        ck_assert(out[y0 * 4 + x0 + 1] == 0 && out[(y0 + 1) * 4 + x0] == 0 &&
                  out[(y0 + 1) * 4 + x0 + 1] == 0);
    }
    /* Probability 0 and a flip that is off: untouched. */
    a.erase_p = 0;
    cx_aug_sample_view(&a, &sh, 1, 3, 0, 0, in, out);
    ck_assert_mem_eq(out, in, sizeof in);
}
END_TEST

START_TEST(flip_view_half_the_samples)
{
    cx_aug_config a;
    memset(&a, 0, sizeof a);
    a.flip = 1;
    cx_aug_shape sh = {1, 4, 4, 16};
    float in[16], out[16], flipped[16];
    ramp(in);
    memcpy(flipped, in, sizeof in);
    cx_aug_hflip(flipped, 1, 4, 4);
    int nflip = 0;
    for (uint64_t s = 0; s < 400; s++) {
        cx_aug_sample_view(&a, &sh, 2, 0, s, 0, in, out);
        int f = memcmp(out, flipped, sizeof out) == 0;
        ck_assert(f || memcmp(out, in, sizeof out) == 0);
        nflip += f;
    }
    ck_assert(nflip > 150 && nflip < 250);
}
END_TEST

START_TEST(vector_noise_and_dropout)
{
    enum { D = 4096 };
    cx_aug_shape sh = {0, 0, 0, D};
    float *in = malloc(sizeof(float) * D), *out = malloc(sizeof(float) * D);
    for (int i = 0; i < D; i++)
        in[i] = 1;
    cx_aug_config a;
    memset(&a, 0, sizeof a);
    a.noise = 0.5;
    cx_aug_sample_view(&a, &sh, 9, 1, 2, 0, in, out);
    double m = 0, v = 0;
    for (int i = 0; i < D; i++)
        m += out[i] - 1.0;
    m /= D;
    for (int i = 0; i < D; i++)
        v += (out[i] - 1.0 - m) * (out[i] - 1.0 - m);
    double sd = sqrt(v / D);
    ck_assert(fabs(m) < 0.05 && fabs(sd - 0.5) < 0.03);
    a.noise = 0;
    a.dropout = 0.25;
    cx_aug_sample_view(&a, &sh, 9, 1, 2, 0, in, out);
    int zeros = 0;
    for (int i = 0; i < D; i++) {
        ck_assert(out[i] == 0.0f || out[i] == (float)(1.0 / 0.75));
        zeros += out[i] == 0.0f;
    }
    ck_assert(zeros > 0.22 * D && zeros < 0.28 * D);
    free(in), free(out);
}
END_TEST

START_TEST(views_are_deterministic_and_independent_of_batch)
{
    cx_aug_config a = image_crop();
    a.flip = 1;
    a.noise = 0.1;
    a.erase_p = 0.5;
    a.erase_scale[0] = 0.1, a.erase_scale[1] = 0.3;
    a.erase_ratio[0] = 0.5, a.erase_ratio[1] = 2;
    a.crop_scale[0] = 0.3;
    a.crop_ratio[0] = 0.75, a.crop_ratio[1] = 4.0 / 3;
    cx_aug_shape sh = {2, 4, 4, 32};
    float in[3 * 32], o1[3 * 32], o2[3 * 32], single[32], again[32], view1[32];
    for (int i = 0; i < 3 * 32; i++)
        in[i] = (float)(i % 17) / 17.0f;
    uint64_t s1[3] = {7, 3, 11}, s2[3] = {3, 11, 7};
    float in2[3 * 32];
    memcpy(in2, in + 32, 32 * sizeof(float));      /* sample 3 */
    memcpy(in2 + 32, in + 64, 32 * sizeof(float)); /* sample 11 */
    memcpy(in2 + 64, in, 32 * sizeof(float));      /* sample 7 */
    cx_aug_batch_view(&a, &sh, 42, 10, s1, 3, 0, in, o1);
    cx_aug_batch_view(&a, &sh, 42, 10, s2, 3, 0, in2, o2);
    ck_assert_mem_eq(o1 + 32, o2, 32 * sizeof(float));
    ck_assert_mem_eq(o1 + 64, o2 + 32, 32 * sizeof(float));
    ck_assert_mem_eq(o1, o2 + 64, 32 * sizeof(float));
    cx_aug_sample_view(&a, &sh, 42, 10, 3, 0, in + 32, single);
    cx_aug_sample_view(&a, &sh, 42, 10, 3, 0, in + 32, again);
    ck_assert_mem_eq(single, o1 + 32, sizeof single);
    ck_assert_mem_eq(single, again, sizeof single);
    /* Another view, step or seed is another draw. */
    cx_aug_sample_view(&a, &sh, 42, 10, 3, 1, in + 32, view1);
    ck_assert(memcmp(view1, single, sizeof single) != 0);
    cx_aug_sample_view(&a, &sh, 42, 11, 3, 0, in + 32, view1);
    ck_assert(memcmp(view1, single, sizeof single) != 0);
    cx_aug_sample_view(&a, &sh, 43, 10, 3, 0, in + 32, view1);
    ck_assert(memcmp(view1, single, sizeof single) != 0);
}
END_TEST

static cx_aug_config eda(double sr, double rs, double rd)
{
    cx_aug_config a;
    memset(&a, 0, sizeof a);
    a.eda_sr = sr, a.eda_rs = rs, a.eda_rd = rd;
    return a;
}

START_TEST(eda_synonyms_longest_match_and_file)
{
    cx_aug_synonyms s;
    cx_aug_synonyms_init(&s);
    cx_err err;
    const char *boot[] = {"ankle boot", "bootie"};
    const char *ankle[] = {"ankle", "talus joint"};
    const char *lonely[] = {"shirt"};
    ck_assert_int_eq(cx_aug_synonyms_add(&s, boot, 2, &err), CX_OK);
    ck_assert_int_eq(cx_aug_synonyms_add(&s, ankle, 2, &err), CX_OK);
    ck_assert_int_eq(cx_aug_synonyms_add(&s, lonely, 1, &err), CX_OK); /* dropped */
    char path[] = "/tmp/check_aug_synXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *fp = fdopen(fd, "w");
    fputs("# groups\n\nshirt|Blouse\nsneaker|trainer\n", fp);
    fclose(fp);
    ck_assert_int_eq(cx_aug_synonyms_add_file(&s, path, &err), CX_OK);
    ck_assert_int_eq(s.ngroups, 4);
    cx_aug_config a = eda(1, 0, 0);
    char out[256];
    size_t n = cx_aug_text_view(&a, &s, 1, 0, 0, 0, "an  Ankle boot and a sneaker", out,
                                sizeof out);
    ck_assert_str_eq(out, "an bootie and a trainer");
    ck_assert_uint_eq(n, strlen(out));
    cx_aug_text_view(&a, &s, 1, 0, 0, 0, "my ankle hurts in a shirt", out, sizeof out);
    ck_assert_str_eq(out, "my talus joint hurts in a blouse");
    /* Probability 0 leaves every word; truncation stops at a word boundary. */
    a.eda_sr = 0;
    a.eda_rd = 0;
    cx_aug_config off = eda(0, 0, 0);
    cx_aug_text_view(&off, &s, 1, 0, 0, 0, "a sneaker", out, sizeof out);
    ck_assert_str_eq(out, "a sneaker");
    cx_aug_text_view(&off, &s, 1, 0, 0, 0, "a sneaker", out, 6);
    ck_assert_str_eq(out, "a");
    /* A bad file: one phrase on a line. */
    fp = fopen(path, "w");
    fputs("sneaker|trainer\nalone\n", fp);
    fclose(fp);
    ck_assert_int_eq(cx_aug_synonyms_add_file(&s, path, &err), CX_EDATA);
    ck_assert(strstr(err.msg, "line 2") != NULL);
    unlink(path);
    cx_aug_synonyms_free(&s);
}
END_TEST

START_TEST(eda_swap_and_delete)
{
    char out[256];
    /* Swap with probability 1 on two words: 0 <-> 1, then 1 <-> 0: back in order. */
    cx_aug_config a = eda(0, 1, 0);
    cx_aug_text_view(&a, NULL, 5, 0, 0, 0, "a b", out, sizeof out);
    ck_assert_str_eq(out, "a b");
    /* Three words: a permutation of them. */
    cx_aug_text_view(&a, NULL, 5, 0, 0, 0, "x y z", out, sizeof out);
    ck_assert_uint_eq(strlen(out), 5);
    ck_assert(strchr(out, 'x') && strchr(out, 'y') && strchr(out, 'z'));
    /* Deletion with probability 1 keeps exactly one word. */
    a = eda(0, 0, 1);
    cx_aug_text_view(&a, NULL, 5, 0, 0, 0, "one two three", out, sizeof out);
    ck_assert(!strcmp(out, "one") || !strcmp(out, "two") || !strcmp(out, "three"));
    /* Deletion 1/2 over many samples removes about half of the words, deterministically. */
    a = eda(0, 0, 0.5);
    size_t total = 0;
    for (uint64_t s = 0; s < 200; s++) {
        char again[256];
        cx_aug_text_view(&a, NULL, 5, 0, s, 0, "a b c d e f g h", out, sizeof out);
        cx_aug_text_view(&a, NULL, 5, 0, s, 0, "a b c d e f g h", again, sizeof again);
        ck_assert_str_eq(out, again);
        total += (strlen(out) + 1) / 2;
    }
    ck_assert(total > 700 && total < 900);
}
END_TEST

static Suite *aug_suite(void)
{
    Suite *s = suite_create("aug");
    TCase *tc = tcase_create("image");
    tcase_add_test(tc, resized_crop_bilinear_by_hand);
    tcase_add_test(tc, crop_box_rules);
    tcase_add_test(tc, erase_box_and_flip);
    tcase_add_test(tc, crop_view_on_fixed_seed);
    tcase_add_test(tc, erase_view_zeroes_one_box);
    tcase_add_test(tc, flip_view_half_the_samples);
    suite_add_tcase(s, tc);
    tc = tcase_create("vector");
    tcase_add_test(tc, vector_noise_and_dropout);
    tcase_add_test(tc, views_are_deterministic_and_independent_of_batch);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_add_test(tc, eda_synonyms_longest_match_and_file);
    tcase_add_test(tc, eda_swap_and_delete);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(aug_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
