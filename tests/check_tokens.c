/* Token batches of training captions: the rows made once per run give exactly the ids of
 * tokenising every batch, for stored captions, composed captions and the uncached fallback. */
#include "config.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data_util.h"
#include "lib/data/dataset.h"
#include "lib/train/tokens.h"

enum { L = 6, CAP = 4096 };

static void expect_same_ids(const cx_dataset *ds, const cx_vocab *v, size_t max_bytes,
                            int cached)
{
    static const uint32_t rows[] = {5, 0, 3, 3, 1, 4, 2};
    enum { N = sizeof rows / sizeof rows[0] };
    cx_err err = {0};
    cx_caption_tokens ct;
    ck_assert_int_eq(cx_caption_tokens_init(&ct, ds, v, L, max_bytes, &err), CX_OK);
    ck_assert_int_eq(ct.by_row != NULL || ct.by_prompt != NULL, cached);
    ck_assert_int_eq(ct.by_row != NULL, cached && ds->train.captions != NULL);
    char *buf = malloc(CAP);
    int32_t want[N * L], got[N * L];
    for (uint64_t seed = 0; seed < 16; seed++) {
        cx_tokens_captions(ds, v, rows, N, seed, L, want, buf, CAP);
        memset(got, 0x7f, sizeof got);
        cx_caption_tokens_batch(&ct, ds, v, rows, N, seed, got, buf, CAP);
        ck_assert_mem_eq(got, want, sizeof want);
    }
    free(buf);
    cx_caption_tokens_free(&ct);
    ck_assert_ptr_null(ct.by_row);
    ck_assert_ptr_null(ct.by_prompt);
}

START_TEST(cached_rows_equal_tokenising_each_batch)
{
    cx_err err = {0};
    cx_dataset ds;
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_ptr_nonnull(ds.train.captions);
    ck_assert_int_ge(ds.num_templates, 2); /* composed captions differ by template */
    for (int seq = 0; seq < 2; seq++) {
        cx_vocab v;
        ck_assert_int_eq(cx_tokens_vocab(&ds, 1, seq, &v, &err), CX_OK);
        expect_same_ids(&ds, &v, SIZE_MAX, 1);
        expect_same_ids(&ds, &v, 8, 0); /* too little room: tokenised per batch */
        /* The same split without its captions composes them from templates. */
        char **stored = ds.train.captions;
        ds.train.captions = NULL;
        expect_same_ids(&ds, &v, SIZE_MAX, 1);
        expect_same_ids(&ds, &v, 0, 0);
        ds.train.captions = stored;
        cx_vocab_free(&v);
    }
    cx_dataset_free(&ds);
}
END_TEST

static Suite *tokens_suite(void)
{
    Suite *s = suite_create("tokens");
    TCase *tc = tcase_create("captions");
    tcase_add_test(tc, cached_rows_equal_tokenising_each_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokens_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
