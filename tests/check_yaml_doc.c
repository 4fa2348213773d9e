/* YAML documents: the tree with line and column positions, errors that name them. */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/conf/yaml_doc.h"

START_TEST(yaml_tree_with_positions)
{
    const char *text = "name: demo\n"
                       "train: {images: a.idx, labels: 'b.txt'}\n"
                       "sizes:\n"
                       "  - 1\n"
                       "  - 2\n"
                       "empty:\n";
    cx_yaml_node *root;
    cx_err err;
    ck_assert_int_eq(cx_yaml_parse_string(text, strlen(text), "t.yaml", &root, &err), CX_OK);
    ck_assert_int_eq(root->kind, CX_YAML_MAP);
    ck_assert_uint_eq(root->count, 4);
    ck_assert_str_eq(cx_yaml_get(root, "name")->scalar, "demo");
    const cx_yaml_node *train = cx_yaml_get(root, "train");
    ck_assert_int_eq(train->kind, CX_YAML_MAP);
    const cx_yaml_node *labels = cx_yaml_get(train, "labels");
    ck_assert_str_eq(labels->scalar, "b.txt");
    ck_assert_int_eq(labels->quoted, 1);
    ck_assert_int_eq(labels->line, 2);
    ck_assert_int_eq(labels->col, 32);
    const cx_yaml_pair *sizes = cx_yaml_get_pair(root, "sizes");
    ck_assert_int_eq(sizes->line, 3);
    ck_assert_int_eq(sizes->col, 1);
    ck_assert_int_eq(sizes->value->kind, CX_YAML_SEQ);
    ck_assert_uint_eq(sizes->value->count, 2);
    ck_assert_int_eq(sizes->value->items[1]->line, 5);
    ck_assert_int_eq(sizes->value->items[1]->col, 5);
    ck_assert(cx_yaml_is_null(cx_yaml_get(root, "empty")));
    ck_assert_ptr_null(cx_yaml_get(root, "missing"));
    ck_assert_ptr_null(cx_yaml_get(train->pairs[0].value, "x"));
    cx_yaml_free(root);
}
END_TEST

static void expect_yaml_error(const char *text, const char *want)
{
    cx_yaml_node *root = (cx_yaml_node *)1;
    cx_err err;
    ck_assert_int_eq(cx_yaml_parse_string(text, strlen(text), "bad.yaml", &root, &err), CX_EUSAGE);
    ck_assert_ptr_null(root);
    ck_assert_msg(strstr(err.msg, want) != NULL, "message '%s' lacks '%s'", err.msg, want);
}

START_TEST(yaml_errors_name_line_and_column)
{
    expect_yaml_error("a: 1\nb: [1, 2\n", "bad.yaml:3:1:");
    expect_yaml_error("a: 1\n  b: 2\n", "bad.yaml:2:4:");
    expect_yaml_error("a: 1\nb: 2\na: 3\n", "bad.yaml:3:1: duplicate key 'a' (first at line 1)");
    expect_yaml_error("a: &x 1\nb: *x\n", "bad.yaml:1:4: anchors");
    expect_yaml_error("a: 1\n---\nb: 2\n", "only one YAML document");
    expect_yaml_error("? [1, 2]\n: x\n", "a key must be a plain value");
    cx_yaml_node *root;
    cx_err err;
    ck_assert_int_eq(cx_yaml_parse_string("", 0, "e.yaml", &root, &err), CX_OK);
    ck_assert_int_eq(root->kind, CX_YAML_MAP);
    ck_assert_uint_eq(root->count, 0);
    cx_yaml_free(root);
    ck_assert_int_eq(cx_yaml_parse_file("/nonexistent/x.yaml", &root, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x.yaml"));
}
END_TEST

/* The duplicate-key check is a hash lookup: 100,000 keys, then a repeat of the first, are
 * refused well under a second (a pairwise check takes minutes). */
START_TEST(yaml_duplicate_check_is_fast)
{
    enum { KEYS = 100000 };
    size_t cap = (size_t)KEYS * 16 + 32, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int i = 0; i < KEYS; i++)
        len += (size_t)snprintf(text + len, cap - len, "k%d: %d\n", i, i);
    len += (size_t)snprintf(text + len, cap - len, "k0: again\n");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cx_yaml_node *root;
    cx_err err;
    ck_assert_int_eq(cx_yaml_parse_string(text, len, "big.yaml", &root, &err), CX_EUSAGE);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    ck_assert_ptr_nonnull(strstr(err.msg, "big.yaml:100001:1: duplicate key 'k0' (first at line 1)"));
    ck_assert_msg(seconds < 1.0, "100,000 keys took %.2f s", seconds);
    free(text);
}
END_TEST

static Suite *yaml_doc_suite(void)
{
    Suite *s = suite_create("yaml_doc");
    TCase *tc = tcase_create("yaml_doc");
    tcase_add_test(tc, yaml_tree_with_positions);
    tcase_add_test(tc, yaml_errors_name_line_and_column);
    tcase_add_test(tc, yaml_duplicate_check_is_fast);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(yaml_doc_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
