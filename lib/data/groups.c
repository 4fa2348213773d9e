/* Group names and per-sample group files (see groups.h). */
#include "lib/data/groups.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/gzfile.h"
#include "lib/base/strmap.h"
#include "lib/base/utf8.h"
#include "lib/data/annotations.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

cx_status cx_group_names_read(const char *path, char ***names, int *count, cx_err *err)
{
    *names = NULL;
    *count = 0;
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    cx_strmap seen;
    if (cx_strmap_init(&seen, 64)) {
        cx_gzfile_close(&f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    long *lines = NULL; /* line of each name, for duplicate messages */
    int cap = 0;
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        size_t a = 0, b = len;
        while (a < b && is_space(line[a]))
            a++;
        while (b > a && is_space(line[b - 1]))
            b--;
        if (a == b)
            continue;
        if (memchr(line + a, '\t', b - a)) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: a group name holds a tab", path, f.line_no);
            break;
        }
        if (*count == CX_GROUPS_MAX) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: more than %d groups", path, f.line_no,
                         CX_GROUPS_MAX);
            break;
        }
        int prev = cx_strmap_get(&seen, line + a, b - a);
        if (prev >= 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: group '%.*s' already named on line %ld",
                         path, f.line_no, (int)(b - a < 60 ? b - a : 60), line + a, lines[prev]);
            break;
        }
        if (*count == cap) {
            int ncap = cap ? 2 * cap : 16;
            char **p = realloc(*names, (size_t)ncap * sizeof *p);
            long *q = p ? realloc(lines, (size_t)ncap * sizeof *q) : NULL;
            if (p)
                *names = p;
            if (q)
                lines = q;
            if (!p || !q) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
            cap = ncap;
        }
        char *s = strndup(line + a, b - a);
        if (!s || cx_strmap_put(&seen, line + a, b - a, *count) < 0) {
            free(s);
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        lines[*count] = f.line_no;
        (*names)[(*count)++] = s;
    }
    if (!st && *count == 0)
        st = cx_fail(err, CX_EDATA, "%s: no group names", path);
    cx_gzfile_close(&f);
    cx_strmap_free(&seen);
    free(lines);
    if (st) {
        cx_strings_free(*names, *count);
        *names = NULL;
        *count = 0;
    }
    return st;
}

cx_status cx_groups_read(const char *path, int num_groups, const char *names_path,
                         size_t expect_n, const char *labels_path, int32_t **groups, cx_err *err)
{
    size_t n = 0;
    cx_status st = cx_int_column_read(path, num_groups, names_path, "group", "groups", groups,
                                      &n, err);
    if (st)
        return st;
    if (n != expect_n) {
        st = n > expect_n ? cx_fail(err, CX_EDATA,
                                    "%s: record %zu: more groups than the %zu labels of %s",
                                    path, expect_n, expect_n, labels_path)
                          : cx_fail(err, CX_EDATA,
                                    "%s: record %zu: %zu groups for the %zu labels of %s", path,
                                    n, n, expect_n, labels_path);
        free(*groups);
        *groups = NULL;
    }
    return st;
}
