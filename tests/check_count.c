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
    ck_assert_int_eq(cx_count_file(m, tmp("caps.txt"), NULL, 0, NULL, counts, &lines, &matched, &err),
                     CX_OK);
    ck_assert_uint_eq(lines, 5);
    ck_assert_uint_eq(matched, 4);
    const int64_t want[4] = {2, 0, 1, 1}; /* "t shirt" is the t-shirt class, not the shirt class */
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(counts[c], want[c]);
    int64_t kc[4] = {0};
    uint32_t keep[2] = {1, 2};
    ck_assert_int_eq(cx_count_file(m, tmp("caps.txt"), keep, 2, NULL, kc, &lines, &matched, &err), CX_OK);
    const int64_t wk[4] = {1, 0, 0, 0};
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(kc[c], wk[c]);
    uint32_t beyond[1] = {9};
    char want_msg[600];
    snprintf(want_msg, sizeof want_msg, "%s: kept line 10 is beyond the 5 captions",
             tmp("caps.txt"));
    ck_assert_fail_msg(cx_count_file(m, tmp("caps.txt"), beyond, 1, NULL, kc, &lines, &matched, &err),
                       err, CX_EDATA, want_msg);
    cx_matcher_free(m);
}
END_TEST

typedef struct {
    char seen[16][32];
    int n;
} cand_list;

static void collect_cand(void *ctx, const char *w, size_t len)
{
    cand_list *l = ctx;
    ck_assert_uint_lt(len, 32);
    ck_assert_int_lt(l->n, 16);
    memcpy(l->seen[l->n], w, len);
    l->seen[l->n++][len] = '\0';
}

static int has_cand(const cx_lemmas *lem, const char *w, const char *want)
{
    cand_list l = {.n = 0};
    cx_lemmas_each(lem, w, strlen(w), collect_cand, &l);
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.seen[i], want))
            return 1;
    return 0;
}

START_TEST(count_lemmas_exceptions_and_rules)
{
    cx_err err;
    cx_lemmas *lem;
    /* WordNet's layout: "form lemma [lemma ...]"; multi-word entries ('_') are skipped. */
    write_text(tmp("noun.exc"), "geese goose\nwolves wolf\nbrothers_in_law brother_in_law\n"
                                "axes axis axe\n\nmice mouse\n");
    ck_assert_int_eq(cx_lemmas_load(tmp(""), &lem, &err), CX_OK);
    ck_assert_uint_eq(cx_lemmas_count(lem), 4);
    ck_assert(has_cand(lem, "geese", "goose"));
    ck_assert(has_cand(lem, "wolves", "wolf"));
    ck_assert(has_cand(lem, "axes", "axis") && has_cand(lem, "axes", "axe"));
    ck_assert(has_cand(lem, "boxes", "box"));
    ck_assert(has_cand(lem, "ponies", "pony"));
    ck_assert(has_cand(lem, "glasses", "glass"));
    ck_assert(has_cand(lem, "churches", "church"));
    ck_assert(has_cand(lem, "women", "woman"));
    ck_assert(has_cand(lem, "cats", "cat"));
    ck_assert(!has_cand(lem, "glass", "glas")); /* "ss" is no plural */
    ck_assert(!has_cand(lem, "goose", "goose")); /* the word itself is not a candidate */

    /* Through the matcher: a lemma counts only for a synonym's word, vetoes too. */
    static char *s0[] = {"goose"}, *s1[] = {"wolf"}, *s2[] = {"box"}, *v2[] = {"mouse"};
    static char **syn[3] = {s0, s1, s2}, **veto[3] = {NULL, NULL, v2};
    int ns[3] = {1, 1, 1}, nv[3] = {0, 0, 1};
    cx_matcher *m;
    ck_assert_int_eq(cx_matcher_new(syn, ns, veto, nv, 3, 0, &m, &err), CX_OK);
    int out[3];
    ck_assert_int_eq(match(m, "geese and wolves", out), 0);
    cx_matcher_use_lemmas(m, lem);
    ck_assert_int_eq(match(m, "geese and wolves", out), 2);
    ck_assert_int_eq(out[0], 0);
    ck_assert_int_eq(out[1], 1);
    ck_assert_int_eq(match(m, "boxes", out), 1);
    ck_assert_int_eq(match(m, "boxes of mice", out), 0); /* the veto matched through "mice" */
    cx_matcher_free(m);
    cx_lemmas_free(lem);

    /* A form without a lemma, and a missing file, are errors naming the file. */
    write_text(tmp("noun.exc"), "geese goose\nlonely\n");
    char want[600];
    snprintf(want, sizeof want, "%s: line 2: 'lonely' has no lemma (\"form lemma\" a line)",
             tmp("noun.exc"));
    ck_assert_fail_msg(cx_lemmas_load(tmp(""), &lem, &err), err, CX_EDATA, want);
    snprintf(want, sizeof want, "%s/noun.exc: No such file or directory", tmp("none"));
    ck_assert_fail_msg(cx_lemmas_load(tmp("none"), &lem, &err), err, CX_EDATA, want);
}
END_TEST

/* The multi-label rows: one "line<TAB>class" per match, ascending. */
START_TEST(count_file_multi_label_rows)
{
    write_text(tmp("caps.txt"), "a dog\nhot dog\nboots and a dog\na shirt\n");
    cx_matcher *m;
    cx_err err;
    ck_assert_int_eq(cx_matcher_new(synonyms, num_syn, vetoes, num_veto, 4, 0, &m, &err), CX_OK);
    int64_t counts[4] = {0};
    size_t lines, matched;
    FILE *rows = fopen(tmp("rows.tsv"), "w");
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_eq(cx_count_file(m, tmp("caps.txt"), NULL, 0, rows, counts, &lines, &matched,
                                   &err),
                     CX_OK);
    fclose(rows);
    cx_matcher_free(m);
    FILE *f = fopen(tmp("rows.tsv"), "r");
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_str_eq(buf, "0\t0\n2\t0\n3\t3\n"); /* "boots" is not "boot" */
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
    tcase_add_test(tc, count_lemmas_exceptions_and_rules);
    tcase_add_test(tc, count_file_multi_label_rows);
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
