/* Reading plain and gzip files alike: lines, truncated and damaged streams, missing files, and
 * headers that claim more than the file holds; UTF-8 decoding with its rules. */
#include "config.h"

#include <stdint.h>

#include "data_util.h"

#include "lib/base/gzfile.h"
#include "lib/base/utf8.h"

/* ---- gzip / plain reading ----------------------------------------------------------------------
 */

START_TEST(gz_plain_and_gzip_lines_agree)
{
    const char *text = "hello\nworld\r\n\nlast";
    write_text(tmp("a.txt"), text);
    write_gz(tmp("a.txt.gz"), text, strlen(text));
    const char *want[] = {"hello", "world", "", "last"};
    for (int k = 0; k < 2; k++) {
        cx_gzfile f;
        cx_err err;
        ck_assert_int_eq(cx_gzfile_open(&f, tmp(k ? "a.txt.gz" : "a.txt"), &err), CX_OK);
        ck_assert_int_eq(f.compressed, k);
        char *line;
        size_t len;
        int got, n = 0;
        while (cx_gzfile_getline(&f, &line, &len, &got, &err) == CX_OK && got) {
            ck_assert_int_lt(n, 4);
            ck_assert_str_eq(line, want[n]);
            ck_assert_uint_eq(len, strlen(want[n]));
            n++;
        }
        ck_assert_int_eq(n, 4);
        ck_assert_int_eq(f.line_no, 4);
        ck_assert_uint_eq(f.offset, strlen(text));
        cx_gzfile_close(&f);
    }
}
END_TEST

START_TEST(gz_truncated_and_damaged_streams_are_errors)
{
    enum { N = 200000 };
    unsigned char *data = malloc(N);
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) { /* poorly compressible, so truncation cuts real data */
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 24);
    }
    write_gz(tmp("d.gz"), data, N);
    size_t n;
    unsigned char *z = read_all(tmp("d.gz"), &n);
    write_bytes(tmp("half.gz"), z, n / 2);
    cx_gzfile f;
    cx_err err;
    unsigned char *out = malloc(N);
    ck_assert_int_eq(cx_gzfile_open(&f, tmp("half.gz"), &err), CX_OK);
    ck_assert_fail_has(cx_gzfile_read(&f, out, N, "data", &err), err, CX_EDATA, tmp("half.gz"),
                       ": byte ", "truncated gzip stream (the file ends early)");
    cx_gzfile_close(&f);

    /* A flipped bit in the CRC trailer: all data arrives, the end check fails. */
    z[n - 6] ^= 0x10;
    write_bytes(tmp("crc.gz"), z, n);
    ck_assert_int_eq(cx_gzfile_open(&f, tmp("crc.gz"), &err), CX_OK);
    cx_status st = cx_gzfile_read(&f, out, N, "data", &err);
    if (st == CX_OK) /* zlib checks the trailer when the data's end is reached, maybe only here */
        st = cx_gzfile_expect_end(&f, &err);
    ck_assert_int_eq(st, CX_EDATA);
    ck_assert_msg(strstr(err.msg, "damaged gzip data (incorrect data check)"), "%s", err.msg);
    cx_gzfile_close(&f);
    free(z);
    free(out);
    free(data);
}
END_TEST

START_TEST(gz_missing_file_and_folder)
{
    cx_gzfile f;
    cx_err err;
    char want[600];
    snprintf(want, sizeof want, "%s: No such file or directory", tmp("nope.gz"));
    ck_assert_fail_msg(cx_gzfile_open(&f, tmp("nope.gz"), &err), err, CX_EDATA, want);
    cx_gzfile_close(&f);
    snprintf(want, sizeof want, "%s: is a folder, not a file", tmpdir);
    ck_assert_fail_msg(cx_gzfile_open(&f, tmpdir, &err), err, CX_EDATA, want);
    cx_gzfile_close(&f);
}
END_TEST

START_TEST(gz_require_refuses_claims_beyond_the_file)
{
    unsigned char ten[10] = {0};
    write_bytes(tmp("ten"), ten, 10);
    write_gz(tmp("ten.gz"), ten, 10);
    cx_gzfile f;
    cx_err err;
    char want[600];
    for (int k = 0; k < 2; k++) {
        const char *p = tmp(k ? "ten.gz" : "ten");
        ck_assert_int_eq(cx_gzfile_open(&f, p, &err), CX_OK);
        ck_assert_int_eq(cx_gzfile_require(&f, 10, 0, "x", &err), CX_OK);
        snprintf(want, sizeof want,
                 "%s: byte 4: header claims 11 things (11 bytes), the file holds 10", p);
        ck_assert_fail_msg(cx_gzfile_require(&f, 11, 4, "11 things", &err), err, CX_EDATA, want);
        cx_gzfile_close(&f);
    }
    /* Two gzip members: the trailer only knows the last one, so the reader measures. */
    size_t n1, n2;
    write_gz(tmp("m1.gz"), ten, 10);
    write_gz(tmp("m2.gz"), ten, 3);
    unsigned char *a = read_all(tmp("m1.gz"), &n1), *b = read_all(tmp("m2.gz"), &n2);
    unsigned char *ab = malloc(n1 + n2);
    memcpy(ab, a, n1);
    memcpy(ab + n1, b, n2);
    write_bytes(tmp("multi.gz"), ab, n1 + n2);
    ck_assert_int_eq(cx_gzfile_open(&f, tmp("multi.gz"), &err), CX_OK);
    ck_assert_int_eq(cx_gzfile_require(&f, 13, 0, "13 bytes", &err), CX_OK);
    ck_assert_int_eq(cx_gzfile_require(&f, 14, 0, "14 bytes", &err), CX_EDATA);
    unsigned char got[13];
    ck_assert_int_eq(cx_gzfile_read(&f, got, 13, "all", &err), CX_OK);
    ck_assert_int_eq(cx_gzfile_expect_end(&f, &err), CX_OK);
    cx_gzfile_close(&f);
    free(a);
    free(b);
    free(ab);
}
END_TEST

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

START_TEST(utf8_decoder_rules)
{
    ck_assert_uint_eq(cx_utf8_check("plain", 5), 5);
    ck_assert_uint_eq(cx_utf8_check("\xe2\x82\xac ok", 6), 6);
    ck_assert_uint_eq(cx_utf8_check("a\xc0\xafz", 4), 1);       /* overlong */
    ck_assert_uint_eq(cx_utf8_check("ab\xed\xa0\x80", 5), 2);   /* surrogate */
    ck_assert_uint_eq(cx_utf8_check("\xf4\x90\x80\x80", 4), 0); /* above U+10FFFF */
    ck_assert_uint_eq(cx_utf8_check("x\xe2\x82", 3), 1);        /* cut short */
    ck_assert_uint_eq(cx_utf8_check("a\0b", 3), 1);

    uint32_t cp = 0;
    ck_assert_uint_eq(cx_utf8_next("A", 1, &cp), 1);
    ck_assert_uint_eq(cp, 'A');
    ck_assert_uint_eq(cx_utf8_next("\xc3\xa9", 2, &cp), 2);
    ck_assert_uint_eq(cp, 0xe9);
    ck_assert_uint_eq(cx_utf8_next("\xe2\x82\xac", 3, &cp), 3);
    ck_assert_uint_eq(cp, 0x20ac);
    ck_assert_uint_eq(cx_utf8_next("\xf0\x9f\x99\x82", SIZE_MAX, &cp), 4);
    ck_assert_uint_eq(cp, 0x1f642);
    ck_assert_uint_eq(cx_utf8_next("\xe2\x82\xac", 2, &cp), 0); /* cut short by n */
    ck_assert_uint_eq(cx_utf8_next("\xe2\x82", SIZE_MAX, &cp), 0); /* stops at the NUL */
    ck_assert_uint_eq(cx_utf8_next("\xa9", 1, &cp), 0);          /* stray continuation */
    ck_assert_uint_eq(cx_utf8_next("\xc1\xbf", 2, &cp), 0);      /* overlong */
    ck_assert_uint_eq(cx_utf8_next("\xf5\x80\x80\x80", 4, &cp), 0);
    ck_assert_uint_eq(cx_utf8_next("", 0, &cp), 0);
}
END_TEST

static Suite *gzfile_suite(void)
{
    Suite *s = suite_create("gzfile");
    TCase *tc = tcase_create("gzfile");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, gz_plain_and_gzip_lines_agree);
    tcase_add_test(tc, gz_truncated_and_damaged_streams_are_errors);
    tcase_add_test(tc, gz_missing_file_and_folder);
    tcase_add_test(tc, gz_require_refuses_claims_beyond_the_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_decoder_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gzfile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
