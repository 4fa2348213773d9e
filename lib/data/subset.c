/* SUBSET and frequency files. */
#include "lib/data/subset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"
#include "lib/base/gzfile.h"
#include "lib/base/strmap.h"

/* A non-negative decimal integer filling s[0..n) exactly; -1 when it is not one (or > 2^62). */
static int64_t parse_count(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

cx_status cx_subset_read(const char *path, const int32_t *labels, size_t n_labels,
                         const char *labels_path, uint32_t **idx, size_t *n, cx_err *err)
{
    *idx = NULL;
    *n = 0;
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    size_t cap = 0;
    int64_t prev = -1;
    int header = 0;
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_gzfile_getline(&f, &line, &len, &got, err)) || !got)
            break;
        if (!header) {
            if (len != 11 || memcmp(line, "index\tlabel", 11) != 0) {
                st = cx_fail(err, CX_EDATA,
                             "%s: line 1: not a SUBSET file (the header must be 'index<TAB>label')",
                             path);
                break;
            }
            header = 1;
            continue;
        }
        char *tab = memchr(line, '\t', len);
        if (!tab) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: wanted 'INDEX<TAB>LABEL'", path, f.line_no);
            break;
        }
        int64_t i = parse_count(line, (size_t)(tab - line));
        int64_t y = parse_count(tab + 1, len - (size_t)(tab - line) - 1);
        if (i < 0 || y < 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: '%.60s' is not two non-negative integers",
                         path, f.line_no, line);
            break;
        }
        if (i <= prev) {
            st = cx_fail(err, CX_EDATA,
                         "%s: line %ld: index %lld does not follow %lld (indices must ascend)",
                         path, f.line_no, (long long)i, (long long)prev);
            break;
        }
        if ((uint64_t)i >= n_labels) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: index %lld is beyond the %zu samples of %s",
                         path, f.line_no, (long long)i, n_labels, labels_path);
            break;
        }
        if (y != labels[i]) {
            st = cx_fail(err, CX_EDATA,
                         "%s: line %ld: label %lld differs from label %d of sample %lld in %s",
                         path, f.line_no, (long long)y, labels[i], (long long)i, labels_path);
            break;
        }
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            uint32_t *p = realloc(*idx, ncap * sizeof *p);
            if (!p) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
            *idx = p;
            cap = ncap;
        }
        (*idx)[(*n)++] = (uint32_t)i;
        prev = i;
    }
    if (!st && !header)
        st = cx_fail(err, CX_EDATA,
                     "%s: line 1: empty file, not a SUBSET (no 'index<TAB>label' header)", path);
    cx_gzfile_close(&f);
    if (st) {
        free(*idx);
        *idx = NULL;
        *n = 0;
    }
    return st;
}

cx_status cx_subset_write(const char *path, const uint32_t *idx, const int32_t *labels, size_t n,
                          cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    fputs("index\tlabel\n", f.fp);
    for (size_t i = 0; i < n; i++)
        fprintf(f.fp, "%u\t%d\n", idx[i], labels[i]);
    if (ferror(f.fp)) {
        int e = errno;
        cx_afile_abort(&f);
        return cx_fail_errno(err, CX_EIO, e, "%s: write failed", path);
    }
    return cx_afile_commit(&f, err);
}

cx_status cx_freq_read(const char *path, char *const *names, int C, int64_t *counts, cx_err *err)
{
    long *seen = calloc((size_t)C, sizeof *seen);
    cx_strmap map;
    int map_ok = cx_strmap_init(&map, (size_t)C) == 0;
    for (int c = 0; map_ok && c < C; c++)
        map_ok = cx_strmap_put(&map, names[c], strlen(names[c]), c) >= 0;
    if (!seen || !map_ok) {
        free(seen);
        cx_strmap_free(&map);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st) {
        free(seen);
        cx_strmap_free(&map);
        return st;
    }
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_gzfile_getline(&f, &line, &len, &got, err)) || !got)
            break;
        if (len == 0)
            continue;
        char *tab = memchr(line, '\t', len);
        if (!tab) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: wanted 'NAME<TAB>COUNT'", path, f.line_no);
            break;
        }
        int64_t v = parse_count(tab + 1, len - (size_t)(tab - line) - 1);
        if (v < 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: '%.40s' is not a non-negative count", path,
                         f.line_no, tab + 1);
            break;
        }
        *tab = '\0';
        int c = cx_strmap_get(&map, line, (size_t)(tab - line));
        if (c < 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: '%.60s' is not a class of the dataset", path,
                         f.line_no, line);
            break;
        }
        if (seen[c]) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: class '%s' repeats line %ld", path,
                         f.line_no, names[c], seen[c]);
            break;
        }
        seen[c] = f.line_no;
        counts[c] = v;
    }
    for (int c = 0; !st && c < C; c++)
        if (!seen[c])
            st = cx_fail(err, CX_EDATA, "%s: class '%s' is missing (every class needs a line)",
                         path, names[c]);
    cx_gzfile_close(&f);
    free(seen);
    cx_strmap_free(&map);
    return st;
}

cx_status cx_freq_write(const char *path, char *const *names, const int64_t *counts, int C,
                        cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    for (int c = 0; c < C; c++)
        fprintf(f.fp, "%s\t%lld\n", names[c], (long long)counts[c]);
    if (ferror(f.fp)) {
        int e = errno;
        cx_afile_abort(&f);
        return cx_fail_errno(err, CX_EIO, e, "%s: write failed", path);
    }
    return cx_afile_commit(&f, err);
}
