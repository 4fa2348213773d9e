/* Checkpoint container: round trip, corruption at every byte, other versions. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/run/ckpt.h"
#include "lib/run/run.h"

static char path[256];

static void setup(void)
{
    snprintf(path, sizeof path, "/tmp/clipx-ckpt-%ld.bin", (long)getpid());
}

static void teardown(void)
{
    unlink(path);
}

static void write_sample(void)
{
    cx_ckpt c;
    cx_err err;
    cx_ckpt_init(&c);
    float w[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    int64_t shape[2] = {2, 3};
    ck_assert_int_eq(cx_ckpt_add(&c, "model.w", CX_CKPT_F32, 2, shape, w, &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_add_i64(&c, "step", 1234567890123LL, &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_add_f64(&c, "loss_sum", 0.1 + 0.2, &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_add_string(&c, "vocab", "<pad>\n<unk>\ncat\n", &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_add_i64(&c, "step", 1, &err), CX_EUSAGE);
    ck_assert_int_eq(cx_ckpt_write(&c, path, &err), CX_OK);
    cx_ckpt_free(&c);
}

START_TEST(ckpt_round_trip)
{
    write_sample();
    cx_ckpt c;
    cx_err err;
    ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_OK);
    ck_assert_int_eq(c.count, 4);
    float w[6];
    ck_assert_int_eq(cx_ckpt_get_f32(&c, path, "model.w", w, 6, &err), CX_OK);
    ck_assert_float_eq(w[2], 3.5f);
    ck_assert_float_eq(w[4], 1e-30f);
    const cx_ckpt_entry *e = cx_ckpt_find(&c, "model.w");
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[1], 3);
    int64_t step;
    ck_assert_int_eq(cx_ckpt_get_i64(&c, path, "step", &step, &err), CX_OK);
    ck_assert_int_eq(step, 1234567890123LL);
    double loss;
    ck_assert_int_eq(cx_ckpt_get_f64(&c, path, "loss_sum", &loss, &err), CX_OK);
    ck_assert(loss == 0.1 + 0.2);
    char *s;
    ck_assert_int_eq(cx_ckpt_get_string(&c, path, "vocab", &s, &err), CX_OK);
    ck_assert_str_eq(s, "<pad>\n<unk>\ncat\n");
    free(s);
    ck_assert_int_eq(cx_ckpt_get_f32(&c, path, "model.w", w, 5, &err), CX_EDATA);
    ck_assert_int_eq(cx_ckpt_get_i64(&c, path, "missing", &step, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "no entry 'missing'"));
    cx_ckpt_free(&c);
}
END_TEST

static size_t slurp(unsigned char *buf, size_t cap)
{
    FILE *fp = fopen(path, "rb");
    size_t n = fread(buf, 1, cap, fp);
    fclose(fp);
    return n;
}

static void spit(const unsigned char *buf, size_t n)
{
    FILE *fp = fopen(path, "wb");
    fwrite(buf, 1, n, fp);
    fclose(fp);
}

START_TEST(ckpt_refuses_every_truncation_and_bit_flip)
{
    write_sample();
    unsigned char good[4096];
    size_t n = slurp(good, sizeof good);
    cx_ckpt c;
    cx_err err;
    for (size_t cut = 0; cut < n; cut++) {
        spit(good, cut);
        ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
        ck_assert_ptr_nonnull(strstr(err.msg, path));
        ck_assert_ptr_nonnull(strstr(err.msg, "byte "));
    }
    unsigned char bad[4096];
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(bad, good, n);
            bad[i] ^= (unsigned char)(1u << bit);
            spit(bad, n);
            ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
        }
    unlink(path);
    ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
}
END_TEST

START_TEST(ckpt_refuses_other_version)
{
    write_sample();
    unsigned char buf[4096];
    size_t n = slurp(buf, sizeof buf);
    buf[8] = 9; /* version; the CRC is now wrong too, so it is checked first */
    spit(buf, n);
    cx_ckpt c;
    cx_err err;
    ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "checksum"));
}
END_TEST

START_TEST(ckpt_refuses_a_folder)
{
    ck_assert_int_eq(mkdir(path, 0700), 0);
    cx_ckpt c;
    cx_err err;
    ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    rmdir(path);
}
END_TEST

/* Found by fuzzing (tests/fuzz/fuzz_ckpt.c): an entry name or a format string from the file
 * went into the message as it was, so a newline in it broke the one-line error. */
START_TEST(ckpt_refuses_control_bytes_in_names)
{
    cx_ckpt c;
    cx_err err;
    cx_ckpt_init(&c);
    ck_assert_int_eq(cx_ckpt_add_i64(&c, "step", 1, &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_add_i64(&c, "bad\nname", 2, &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_write(&c, path, &err), CX_OK);
    cx_ckpt_free(&c);
    ck_assert_int_eq(cx_ckpt_read(path, &c, &err), CX_EDATA);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_ptr_nonnull(strstr(err.msg, "byte 0x0a"));
    ck_assert_int_eq(c.count, 0);

    cx_ckpt_init(&c);
    ck_assert_int_eq(cx_ckpt_add_string(&c, "meta/format", "clipx\nrun", &err), CX_OK);
    ck_assert_int_eq(cx_ckpt_write(&c, path, &err), CX_OK);
    cx_ckpt_free(&c);
    cx_run_meta meta;
    ck_assert_int_eq(cx_run_read_ckpt(path, &c, &meta, &err), CX_EDATA);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_ptr_nonnull(strstr(err.msg, "not a clipx run checkpoint"));
    cx_run_meta_free(&meta);
    cx_ckpt_free(&c);
}
END_TEST

static Suite *ckpt_suite(void)
{
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("container");
    tcase_add_checked_fixture(tc, setup, teardown);
    /* 1.8 s under ASan and UBSan at most (a read per truncation and bit flip); about 5x that. */
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, ckpt_round_trip);
    tcase_add_test(tc, ckpt_refuses_every_truncation_and_bit_flip);
    tcase_add_test(tc, ckpt_refuses_other_version);
    tcase_add_test(tc, ckpt_refuses_a_folder);
    tcase_add_test(tc, ckpt_refuses_control_bytes_in_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ckpt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
