/* The word tokenizer and vocabulary: order and ids, minimum counts, serialisation, growth. */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/tokenizer.h"

static void build(cx_vocab *v, int64_t min_count)
{
    cx_vocab_builder b;
    cx_err err;
    ck_assert_int_eq(cx_vocab_builder_init(&b, &err), CX_OK);
    const char *texts[] = {"A photo of a T-shirt.", "a photo of a dress", "Sneaker, a SNEAKER!",
                           "ünïcode words stay", "a"};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(cx_vocab_builder_add(&b, texts[i], &err), CX_OK);
    ck_assert_int_eq(cx_vocab_builder_finish(&b, min_count, v, &err), CX_OK);
    cx_vocab_builder_free(&b);
}

START_TEST(tokenizer_vocabulary_order_and_ids)
{
    cx_vocab v;
    build(&v, 1);
    /* counts: a 6, of 2, photo 2, sneaker 2, then singletons by byte order. */
    ck_assert_str_eq(v.words[0], "<pad>");
    ck_assert_str_eq(v.words[1], "<unk>");
    ck_assert_str_eq(v.words[2], "a");
    ck_assert_str_eq(v.words[3], "of");
    ck_assert_str_eq(v.words[4], "photo");
    ck_assert_str_eq(v.words[5], "sneaker");
    ck_assert_str_eq(v.words[6], "dress");
    ck_assert_int_eq(v.size, 12);
    int32_t ids[8];
    ck_assert_int_eq(cx_tokenize(&v, "A sneaker of UNSEEN words", ids, 8), 5);
    ck_assert_int_eq(ids[0], 2);
    ck_assert_int_eq(ids[1], 5);
    ck_assert_int_eq(ids[2], 3);
    ck_assert_int_eq(ids[3], CX_TOKEN_UNK);
    ck_assert_int_eq(ids[5], CX_TOKEN_PAD);
    ck_assert_int_eq(ids[7], CX_TOKEN_PAD);
    /* Truncation keeps the first words and reports the full count. */
    ck_assert_int_eq(cx_tokenize(&v, "a a a a", ids, 2), 4);
    ck_assert_int_eq(ids[1], 2);
    ck_assert_int_eq(cx_tokenize(&v, "  ...  ", ids, 3), 0);
    ck_assert_int_eq(ids[0], CX_TOKEN_PAD);
    ck_assert_int_ne(cx_vocab_lookup(&v, "\xc3\xbc" "n" "\xc3\xaf" "code", 9), CX_TOKEN_UNK);
    cx_vocab_free(&v);
}
END_TEST

START_TEST(tokenizer_min_count_and_round_trip)
{
    cx_vocab v, w;
    build(&v, 2);
    ck_assert_int_eq(v.size, 6);
    char *s = cx_vocab_serialize(&v);
    ck_assert_str_eq(s, "<pad>\n<unk>\na\nof\nphoto\nsneaker\n");
    cx_err err;
    ck_assert_int_eq(cx_vocab_deserialize(s, &w, &err), CX_OK);
    ck_assert_int_eq(w.size, v.size);
    for (int i = 0; i < v.size; i++)
        ck_assert_str_eq(w.words[i], v.words[i]);
    ck_assert_int_eq(cx_vocab_lookup(&w, "photo", 5), 4);
    free(s);
    cx_vocab_free(&w);
    cx_vocab_free(&v);
    ck_assert_int_eq(cx_vocab_deserialize("x\n", &w, &err), CX_EDATA);
    ck_assert_int_eq(cx_vocab_deserialize("<pad>\n<unk>\na\na\n", &w, &err), CX_EDATA);
    ck_assert_int_eq(cx_vocab_deserialize("<pad>\n<unk>\n\n", &w, &err), CX_EDATA);
}
END_TEST

START_TEST(tokenizer_many_words_grow_the_table)
{
    cx_vocab_builder b;
    cx_err err;
    ck_assert_int_eq(cx_vocab_builder_init(&b, &err), CX_OK);
    char text[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(text, sizeof text, "w%d w%d", i, i % 10);
        ck_assert_int_eq(cx_vocab_builder_add(&b, text, &err), CX_OK);
    }
    cx_vocab v;
    ck_assert_int_eq(cx_vocab_builder_finish(&b, 1, &v, &err), CX_OK);
    ck_assert_int_eq(v.size, 5002);
    for (int i = 0; i < 5000; i += 97) {
        snprintf(text, sizeof text, "w%d", i);
        int32_t id = cx_vocab_lookup(&v, text, strlen(text));
        ck_assert_int_ge(id, 2);
        ck_assert_str_eq(v.words[id], text);
    }
    cx_vocab_builder_free(&b);
    cx_vocab_free(&v);
}
END_TEST

/* Words are runs of code points: every non-ASCII one is a letter, a byte that is not UTF-8
 * separates, and an over-long word keeps its first 255 bytes. */
START_TEST(tokenizer_words_are_utf8_code_points)
{
    cx_vocab_builder b;
    cx_vocab v;
    cx_err err;
    char text[400];
    memset(text, 'q', 300);
    strcpy(text + 300, " Caf\xc3\xa9\xe2\x80\x94NOIR x\xffy");
    ck_assert_int_eq(cx_vocab_builder_init(&b, &err), CX_OK);
    ck_assert_int_eq(cx_vocab_builder_add(&b, text, &err), CX_OK);
    ck_assert_int_eq(cx_vocab_builder_finish(&b, 1, &v, &err), CX_OK);
    cx_vocab_builder_free(&b);
    ck_assert_int_eq(v.size, 2 + 4);
    ck_assert_int_ge(cx_vocab_lookup(&v, "caf\xc3\xa9\xe2\x80\x94noir", 12), 2);
    ck_assert_int_ge(cx_vocab_lookup(&v, "x", 1), 2);
    ck_assert_int_ge(cx_vocab_lookup(&v, "y", 1), 2);
    int32_t id = -1;
    for (int i = 2; i < v.size; i++)
        if (v.words[i][0] == 'q')
            id = i;
    ck_assert_int_ge(id, 2);
    ck_assert_uint_eq(strlen(v.words[id]), 255);
    cx_vocab_free(&v);
}
END_TEST

static Suite *tokenizer_suite(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("vocabulary");
    tcase_add_test(tc, tokenizer_vocabulary_order_and_ids);
    tcase_add_test(tc, tokenizer_min_count_and_round_trip);
    tcase_add_test(tc, tokenizer_many_words_grow_the_table);
    tcase_add_test(tc, tokenizer_words_are_utf8_code_points);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tokenizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
