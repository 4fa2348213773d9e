/* Caption-based class counting: the word splitter (UTF-8 letters, plurals), synonym and veto
 * matching, and counting a caption file with and without kept lines. */
#include "config.h"

#include <stdint.h>

#include "data_util.h"

#include "lib/data/count.h"

typedef struct {
    char words[16][32];
    int n;
} word_list;

static void collect(void *ctx, const char *w, size_t len)
{
    word_list *l = ctx;
    if (l->n < 16) {
        memcpy(l->words[l->n], w, len);
        l->words[l->n++][len] = '\0';
    }
}

START_TEST(count_words_and_plurals)
{
    word_list l = {.n = 0};
    const char *s = "Hello, WORLD-wide 3x caf\xc3\xa9!";
    ck_assert_uint_eq(cx_caption_words(s, strlen(s), 0, collect, &l), 5);
    ck_assert_str_eq(l.words[0], "hello");
    ck_assert_str_eq(l.words[1], "world");
    ck_assert_str_eq(l.words[2], "wide");
    ck_assert_str_eq(l.words[3], "x");
    ck_assert_str_eq(l.words[4], "caf\xc3\xa9");
    l.n = 0;
    s = "na\xc3\xafve\xff\xe2\x80\x94ok"; /* a stray byte separates; U+2014 is a letter */
    ck_assert_uint_eq(cx_caption_words(s, strlen(s), 0, collect, &l), 2);
    ck_assert_str_eq(l.words[0], "na\xc3\xafve");
    ck_assert_str_eq(l.words[1], "\xe2\x80\x94ok");
    l.n = 0;
    s = "ponies boxes classes cats bus glass churches";
    cx_caption_words(s, strlen(s), CX_MATCH_PLURALS, collect, &l);
    const char *want[] = {"pony", "box", "class", "cat", "bus", "glass", "church"};
    ck_assert_int_eq(l.n, 7);
    for (int i = 0; i < 7; i++)
        ck_assert_str_eq(l.words[i], want[i]);
}
END_TEST

static char *syn0[] = {"dog", "puppy"}, *syn1[] = {"ankle boot", "boot"}, *syn2[] = {"t-shirt"},
            *syn3[] = {"shirt"}, *veto0[] = {"hot dog"}, *veto3[] = {"t"};
static char **synonyms[4] = {syn0, syn1, syn2, syn3};
static char **vetoes[4] = {veto0, NULL, NULL, veto3};
static int num_syn[4] = {2, 2, 1, 1}, num_veto[4] = {1, 0, 0, 1};

static int match(cx_matcher *m, const char *caption, int *out)
{
    return cx_matcher_match(m, caption, strlen(caption), out);
}

START_TEST(count_matching_synonyms_and_vetoes)
{
    cx_matcher *m;
    cx_err err;
    ck_assert_int_eq(cx_matcher_new(synonyms, num_syn, vetoes, num_veto, 4, 0, &m, &err), CX_OK);
    int out[4];
    ck_assert_int_eq(match(m, "A Dog and a PUPPY", out), 1); /* once per class */
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(match(m, "hot dog stand", out), 0);  /* vetoed */
    ck_assert_int_eq(match(m, "the dog is hot", out), 0); /* a veto is a word set, too */
    ck_assert_int_eq(match(m, "ankle-boots for sale", out), 0);
    ck_assert_int_eq(match(m, "a boot by the ankle", out), 1);
    ck_assert_int_eq(out[0], 1);
    ck_assert_int_eq(match(m, "my t-shirt", out), 1); /* "shirt" vetoed by "t" */
    ck_assert_int_eq(out[0], 2);
    ck_assert_int_eq(match(m, "a shirt, a boot and a dog", out), 3);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 1);
    ck_assert_int_eq(out[2], 3);
    ck_assert_int_eq(match(m, "", out), 0);
    cx_matcher_free(m);

    ck_assert_int_eq(
        cx_matcher_new(synonyms, num_syn, vetoes, num_veto, 4, CX_MATCH_PLURALS, &m, &err), CX_OK);
    ck_assert_int_eq(match(m, "ankle-boots for sale", out), 1);
    ck_assert_int_eq(out[0], 1);
    ck_assert_int_eq(match(m, "puppies", out), 1);
    cx_matcher_free(m);

    char *bad[] = {"--"};
    char **badsyn[1] = {bad};
    int one = 1;
    ck_assert_fail_msg(cx_matcher_new(badsyn, &one, NULL, NULL, 1, 0, &m, &err), err, CX_EDATA,
                       "class 0: synonym '--' has no letters, so no caption can match it");
}
END_TEST

START_TEST(count_file_with_and_without_kept_lines)
{
    write_text(tmp("caps.txt"), "a dog\nhot dog\nboots and a dog\na shirt\nt shirt\n");
    cx_matcher *m;
    cx_err err;
    ck_assert_int_eq(cx_matcher_new(synonyms, num_syn, vetoes, num_veto, 4, 0, &m, &err), CX_OK);
    int64_t counts[4] = {0};
    size_t lines, matched;
    ck_assert_int_eq(cx_count_file(m, tmp("caps.txt"), NULL, 0, counts, &lines, &matched, &err),
                     CX_OK);
    ck_assert_uint_eq(lines, 5);
    ck_assert_uint_eq(matched, 4);
    const int64_t want[4] = {2, 0, 1, 1}; /* "t shirt" is the t-shirt class, not the shirt class */
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(counts[c], want[c]);
    int64_t kc[4] = {0};
    uint32_t keep[2] = {1, 2};
    ck_assert_int_eq(cx_count_file(m, tmp("caps.txt"), keep, 2, kc, &lines, &matched, &err), CX_OK);
    const int64_t wk[4] = {1, 0, 0, 0};
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(kc[c], wk[c]);
    uint32_t beyond[1] = {9};
    char want_msg[600];
    snprintf(want_msg, sizeof want_msg, "%s: kept line 10 is beyond the 5 captions",
             tmp("caps.txt"));
    ck_assert_fail_msg(cx_count_file(m, tmp("caps.txt"), beyond, 1, kc, &lines, &matched, &err),
                       err, CX_EDATA, want_msg);
    cx_matcher_free(m);
}
END_TEST

static Suite *count_suite(void)
{
    Suite *s = suite_create("count");
    TCase *tc = tcase_create("count");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, count_words_and_plurals);
    tcase_add_test(tc, count_matching_synonyms_and_vetoes);
    tcase_add_test(tc, count_file_with_and_without_kept_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(count_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
