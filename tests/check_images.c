/* Image files: the area resampling against hand-computed values, decoding of the committed PNG
 * and JPEG fixtures against the bytes scripts/make_image_fixtures.py computed, decoding errors,
 * and the decoded cache being written once and then reused. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conf/yaml_doc.h"
#include "lib/data/image_decode.h"
#include "lib/data/image_list.h"
#include "tests/data_util.h"

static const char *img_fixture(const char *name)
{
    const char *top = getenv("TOP_SRCDIR");
    static char dir[900];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/images", top ? top : ".");
    return path_in(dir, name);
}

START_TEST(fit_keeps_an_image_of_the_size)
{
    uint8_t src[5 * 5 * 3], out[3 * 5 * 5];
    for (int i = 0; i < 75; i++)
        src[i] = (uint8_t)(i * 37 + 11);
    ck_assert_int_eq(cx_image_fit(src, 5, 5, 3, 5, out), 0);
    for (int y = 0; y < 5; y++)
        for (int x = 0; x < 5; x++)
            for (int c = 0; c < 3; c++)
                ck_assert_uint_eq(out[(c * 5 + y) * 5 + x], src[(y * 5 + x) * 3 + c]);
}
END_TEST

START_TEST(fit_averages_boxes_and_rounds_half_up)
{
    /* 4x4 to 2x2: each output is the mean of a 2x2 block. */
    const uint8_t src[16] = {1, 2, 10, 10, 1, 2, 10, 11, 0, 0, 255, 255, 0, 1, 255, 254};
    uint8_t out[4];
    ck_assert_int_eq(cx_image_fit(src, 4, 4, 1, 2, out), 0);
    ck_assert_uint_eq(out[0], 2);   /* 1.5 -> 2 */
    ck_assert_uint_eq(out[1], 10);  /* 10.25 */
    ck_assert_uint_eq(out[2], 0);   /* 0.25 */
    ck_assert_uint_eq(out[3], 255); /* 254.75 */
}
END_TEST

START_TEST(fit_weights_fractional_areas)
{
    /* 3x3 to 2x2: output column 0 covers source [0, 1.5): (0 + 30 / 2) / 1.5 = 10; column 1
     * covers [1.5, 3): (30 / 2 + 60) / 1.5 = 50. */
    const uint8_t src[9] = {0, 30, 60, 0, 30, 60, 0, 30, 60};
    uint8_t out[4];
    ck_assert_int_eq(cx_image_fit(src, 3, 3, 1, 2, out), 0);
    ck_assert_uint_eq(out[0], 10);
    ck_assert_uint_eq(out[1], 50);
    ck_assert_uint_eq(out[2], 10);
    ck_assert_uint_eq(out[3], 50);
    /* 2x2 to 4x4: each output covers half a source pixel. */
    const uint8_t up[4] = {0, 100, 200, 50};
    uint8_t big[16];
    ck_assert_int_eq(cx_image_fit(up, 2, 2, 1, 4, big), 0);
    const uint8_t want[16] = {0, 0, 100, 100, 0, 0, 100, 100, 200, 200, 50, 50, 200, 200, 50, 50};
    ck_assert_mem_eq(big, want, 16);
}
END_TEST

START_TEST(fit_crops_the_centre_of_the_longer_side)
{
    /* 7 wide, 2 high, to 2: no scaling; the crop starts at floor((7 - 2) / 2) = 2. */
    const uint8_t src[14] = {0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 16};
    uint8_t out[4];
    ck_assert_int_eq(cx_image_fit(src, 7, 2, 1, 2, out), 0);
    const uint8_t want[4] = {2, 3, 12, 13};
    ck_assert_mem_eq(out, want, 4);
    /* 2 wide, 6 high, to 1: the height becomes 3, the crop takes its middle row, which covers
     * source rows 2 and 3 (both columns): (4 + 5 + 6 + 7) / 4 = 5.5 -> 6. */
    const uint8_t tall[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    uint8_t one;
    ck_assert_int_eq(cx_image_fit(tall, 2, 6, 1, 1, &one), 0);
    ck_assert_uint_eq(one, 6);
}
END_TEST

/* Row `row` of an expected-*.u8 fixture (per bytes a row). */
static uint8_t *expected_row(const char *name, int row, size_t per)
{
    size_t n;
    unsigned char *all = read_all(img_fixture(name), &n);
    ck_assert_uint_ge(n, (size_t)(row + 1) * per);
    uint8_t *r = malloc(per);
    memcpy(r, all + (size_t)row * per, per);
    free(all);
    return r;
}

START_TEST(decode_matches_the_fixture_bytes)
{
    if (!cx_image_decode_available())
        return;
    cx_err err;
    uint8_t got[192];
    /* Rows of train.txt: 0 a.png (RGB 20x12), 1 b.jpg (grey JPEG), 2 c.png (grey 8x8),
     * 4 e.png (palette). PNGs exactly; JPEGs within 2 (libjpeg-turbo versions). */
    const struct {
        const char *file;
        int row, tol;
    } cases[] = {{"train/cat/a.png", 0, 0},
                 {"train/cat/b.jpg", 1, 2},
                 {"train/cat/c.png", 2, 0},
                 {"train/dog/d.jpg", 3, 2},
                 {"train/dog/e.png", 4, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ck_assert_msg(cx_image_decode(img_fixture(cases[k].file), 8, 3, got, &err) == CX_OK, "%s",
                      err.msg);
        uint8_t *want = expected_row("expected-train-c3.u8", cases[k].row, 192);
        for (int i = 0; i < 192; i++)
            ck_assert_msg(abs(got[i] - want[i]) <= cases[k].tol, "%s: byte %d: %d, wanted %d",
                          cases[k].file, i, got[i], want[i]);
        free(want);
        ck_assert_int_eq(cx_image_decode(img_fixture(cases[k].file), 8, 1, got, &err), CX_OK);
        want = expected_row("expected-train-c1.u8", cases[k].row, 64);
        for (int i = 0; i < 64; i++)
            ck_assert_msg(abs(got[i] - want[i]) <= cases[k].tol, "%s grey: byte %d: %d, wanted %d",
                          cases[k].file, i, got[i], want[i]);
        free(want);
    }
}
END_TEST

START_TEST(decode_refuses_broken_files)
{
    if (!cx_image_decode_available())
        return;
    make_tmpdir();
    cx_err err;
    uint8_t out[3 * 4 * 4];
    write_text(tmp("text.png"), "not an image\n");
    ck_assert_fail_has(cx_image_decode(tmp("text.png"), 4, 3, out, &err), err, CX_EDATA,
                       "text.png: neither a PNG nor a JPEG file");
    write_text(tmp("empty.jpg"), "");
    ck_assert_fail_has(cx_image_decode(tmp("empty.jpg"), 4, 3, out, &err), err, CX_EDATA,
                       "empty.jpg: an empty file");
    ck_assert_fail_has(cx_image_decode(tmp("missing.png"), 4, 3, out, &err), err, CX_EDATA,
                       "missing.png: No such file or directory");
    size_t n;
    unsigned char *png = read_all(img_fixture("train/cat/a.png"), &n);
    write_bytes(tmp("cut.png"), png, n / 2);
    ck_assert_fail_has(cx_image_decode(tmp("cut.png"), 4, 3, out, &err), err, CX_EDATA,
                       "cut.png: broken PNG: ");
    free(png);
    unsigned char *jpg = read_all(img_fixture("train/fox/h.JPG"), &n);
    write_bytes(tmp("cut.jpg"), jpg, n / 2);
    ck_assert_fail_has(cx_image_decode(tmp("cut.jpg"), 4, 3, out, &err), err, CX_EDATA,
                       "cut.jpg: broken JPEG: ");
    jpg[n / 2] ^= 0xff; /* damaged entropy-coded data */
    jpg[n / 2 + 1] ^= 0x5a;
    write_bytes(tmp("bad.jpg"), jpg, n);
    cx_status st = cx_image_decode(tmp("bad.jpg"), 4, 3, out, &err);
    ck_assert_msg(st == CX_OK || strstr(err.msg, "bad.jpg: broken JPEG: "), "%s", err.msg);
    free(jpg);
    remove_tmpdir();
}
END_TEST

/* Damaged copies: truncations of a PNG and a JPEG fail (PNG chunks carry CRCs, a
 * JPEG must reach its end marker; a PNG cut inside its final IEND chunk still holds every pixel
 * and may decode, to the same bytes), and bytes flipped along the files either decode or fail
 * with a one-line message naming the file; run under ASan/UBSan, nothing reads out of bounds. */
START_TEST(decode_survives_damaged_copies)
{
    if (!cx_image_decode_available())
        return;
    make_tmpdir();
    const char *files[] = {"train/cat/a.png", "train/fox/h.JPG", "train/cat/b.jpg"};
    uint8_t out[3 * 8 * 8];
    cx_err err;
    for (int k = 0; k < 3; k++) {
        size_t n;
        unsigned char *b = read_all(img_fixture(files[k]), &n);
        const char *path = tmp("damaged");
        uint8_t whole[3 * 8 * 8];
        ck_assert_int_eq(cx_image_decode(img_fixture(files[k]), 8, 3, whole, &err), CX_OK);
        for (size_t cut = 0; cut < n; cut += 1 + n / 40) {
            write_bytes(path, b, cut);
            cx_err_clear(&err);
            cx_status st = cx_image_decode(path, 8, 3, out, &err);
            if (st == CX_OK) {
                /* Only the 12-byte IEND chunk may go missing: the pixels are all there. */
                ck_assert_msg(k == 0 && cut >= n - 12, "%s cut at %zu of %zu decoded", files[k],
                              cut, n);
                ck_assert_mem_eq(out, whole, sizeof whole);
                continue;
            }
            ck_assert_int_eq(st, CX_EDATA);
            ck_assert_msg(!strncmp(err.msg, path, strlen(path)) && !strchr(err.msg, '\n'),
                          "%s", err.msg);
        }
        for (size_t at = 0; at < n; at += 1 + n / 60) {
            unsigned char saved = b[at];
            b[at] ^= (unsigned char)(0x5b + at);
            write_bytes(path, b, n);
            cx_err_clear(&err);
            cx_status st = cx_image_decode(path, 8, 3, out, &err);
            ck_assert_msg(st == CX_OK || st == CX_EDATA, "%s flipped at %zu: status %d",
                          files[k], at, (int)st);
            if (st)
                ck_assert_msg(!strncmp(err.msg, path, strlen(path)) && !strchr(err.msg, '\n'),
                              "%s", err.msg);
            b[at] = saved;
        }
        free(b);
    }
    remove_tmpdir();
}
END_TEST

/* The image keys of a split written as a YAML flow mapping. */
static void spec_of(const char *yaml_text, cx_yaml_node **doc, cx_image_spec *sp)
{
    cx_err err;
    ck_assert_int_eq(cx_yaml_parse_string(yaml_text, strlen(yaml_text), "t.yaml", doc, &err),
                     CX_OK);
    memset(sp, 0, sizeof *sp);
    for (size_t i = 0; i < (*doc)->count; i++) {
        cx_status st;
        ck_assert_int_eq(cx_image_spec_key("t.yaml", &(*doc)->pairs[i], sp, &st, &err), 1);
        ck_assert_msg(st == CX_OK, "%s", err.msg);
    }
    ck_assert_int_eq(cx_image_spec_check("t.yaml", "train", *doc, sp, &err), CX_OK);
}

START_TEST(prepare_decodes_once_then_reads_the_cache)
{
    if (!cx_image_decode_available())
        return;
    make_tmpdir();
    char text[1200];
    snprintf(text, sizeof text, "{list: %s, root: %s, image_size: 8}",
             img_fixture("train.txt"), img_fixture("."));
    cx_yaml_node *doc;
    cx_image_spec sp;
    spec_of(text, &doc, &sp);
    char *names[3] = {"cat", "dog", "fox"};
    cx_image_classes cls = {3, names, "classes.txt", NULL, NULL, NULL, NULL};
    cx_image_split a, b;
    cx_err err;
    ck_assert_msg(cx_image_split_prepare(tmp("d.yaml"), tmpdir, &sp, &cls, &a, &err) == CX_OK,
                  "%s", err.msg);
    ck_assert_int_eq(a.decoded, 1);
    ck_assert_uint_eq(a.n, 9);
    ck_assert_int_eq(a.labels[0], 0);
    ck_assert_int_eq(a.labels[8], 2);
    ck_assert_ptr_nonnull(strstr(a.cache_path, "/" CX_IMAGE_CACHE_DIR "/"));
    ck_assert_int_eq(cx_image_split_prepare(tmp("d.yaml"), tmpdir, &sp, &cls, &b, &err), CX_OK);
    ck_assert_int_eq(b.decoded, 0);
    ck_assert_str_eq(a.cache_path, b.cache_path);
    /* The cache holds the decoded rows after its 128-byte header (PNG rows 0 and 2 exactly). */
    size_t n, nw;
    unsigned char *npy = read_all(a.cache_path, &n);
    unsigned char *want = read_all(img_fixture("expected-train-c3.u8"), &nw);
    ck_assert_uint_eq(n, 128 + nw);
    ck_assert_mem_eq(npy + 128, want, 192);
    ck_assert_mem_eq(npy + 128 + 2 * 192, want + 2 * 192, 192);
    free(npy);
    free(want);
    cx_image_split_free(&b);
    /* Another size is another cache file. */
    cx_yaml_free(doc);
    snprintf(text, sizeof text, "{list: %s, root: %s, image_size: 4, channels: 1}",
             img_fixture("train.txt"), img_fixture("."));
    spec_of(text, &doc, &sp);
    ck_assert_int_eq(cx_image_split_prepare(tmp("d.yaml"), tmpdir, &sp, &cls, &b, &err), CX_OK);
    ck_assert_int_eq(b.decoded, 1);
    ck_assert_str_ne(a.cache_path, b.cache_path);
    cx_image_split_free(&a);
    cx_image_split_free(&b);
    cx_yaml_free(doc);
    remove_tmpdir();
}
END_TEST

static Suite *images_suite(void)
{
    Suite *s = suite_create("images");
    TCase *tc = tcase_create("fit");
    tcase_add_test(tc, fit_keeps_an_image_of_the_size);
    tcase_add_test(tc, fit_averages_boxes_and_rounds_half_up);
    tcase_add_test(tc, fit_weights_fractional_areas);
    tcase_add_test(tc, fit_crops_the_centre_of_the_longer_side);
    suite_add_tcase(s, tc);
    tc = tcase_create("decode");
    tcase_add_test(tc, decode_matches_the_fixture_bytes);
    tcase_add_test(tc, decode_refuses_broken_files);
    tcase_add_test(tc, decode_survives_damaged_copies);
    tcase_add_test(tc, prepare_decodes_once_then_reads_the_cache);
    tcase_set_timeout(tc, 20);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(images_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
