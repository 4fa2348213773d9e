/* Fuzz target: the line-list readers of a dataset. The first input byte picks the reader, the
 * rest is the file: class lists, prompt templates, labels (text, IDX or NPY, sniffed from the
 * bytes), group names and per-sample groups. Each must succeed with values that keep its
 * promises or fail with a message. */
#include "tests/fuzz/fuzz.h"

#include "lib/data/annotations.h"
#include "lib/data/groups.h"

enum { NUM_CLASSES = 5, NUM_GROUPS = 4 };

static void classes(const char *path)
{
    cx_classes c;
    cx_err err;
    if (cx_classes_read(path, &c, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    for (int i = 0; i < c.count; i++) {
        FUZZ_ASSERT(cx_classes_find(&c, c.names[i]) == i);
        FUZZ_ASSERT(strchr(c.names[i], '\t') == NULL);
        FUZZ_ASSERT(c.num_synonyms[i] >= 1 && c.num_vetoes[i] >= 0);
    }
    cx_classes_free(&c);
}

static void templates(const char *path)
{
    char **t;
    int n;
    cx_err err;
    if (cx_templates_read(path, &t, &n, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    FUZZ_ASSERT(n >= 1);
    for (int i = 0; i < n; i++)
        FUZZ_ASSERT(strstr(t[i], "{}") != NULL);
    cx_strings_free(t, n);
}

static void labels(const char *path)
{
    int32_t *y;
    size_t n;
    cx_err err;
    if (cx_labels_read(path, NUM_CLASSES, "classes.txt", &y, &n, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(y[i] >= 0 && y[i] < NUM_CLASSES);
    free(y);
}

static void group_names(const char *path)
{
    char **names;
    int n;
    cx_err err;
    if (cx_group_names_read(path, &names, &n, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    FUZZ_ASSERT(n >= 1 && n <= CX_GROUPS_MAX);
    for (int i = 0; i < n; i++) {
        FUZZ_ASSERT(strchr(names[i], '\t') == NULL);
        for (int j = 0; j < i; j++)
            FUZZ_ASSERT(strcmp(names[i], names[j]) != 0);
    }
    cx_strings_free(names, n);
}

/* The same file as a column of groups: read with its own length it must pass with the same
 * values; with one row more it must fail. */
static void groups(const char *path)
{
    int32_t *col, *g;
    size_t n;
    cx_err err;
    if (cx_int_column_read(path, NUM_GROUPS, "group_names.txt", "group", "groups", &col, &n,
                           &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    if (n > 0) {
        FUZZ_ASSERT(cx_groups_read(path, NUM_GROUPS, "group_names.txt", n, "labels", &g, &err) ==
                    CX_OK);
        FUZZ_ASSERT(memcmp(g, col, n * sizeof *g) == 0);
        free(g);
        FUZZ_ASSERT(cx_groups_read(path, NUM_GROUPS, "group_names.txt", n + 1, "labels", &g,
                                   &err) != CX_OK);
    }
    free(col);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_file("list", data + 1, size - 1);
    switch (data[0] % 5) {
    case 0: classes(path); break;
    case 1: templates(path); break;
    case 2: labels(path); break;
    case 3: group_names(path); break;
    default: groups(path); break;
    }
    return 0;
}
