/* Class lists, templates, labels and captions. */
#include "lib/data/annotations.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/gzfile.h"
#include "lib/base/strmap.h"
#include "lib/data/array.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim s[0..*n) in place: returns the new start, updates *n. */
static const char *trim(const char *s, size_t *n)
{
    size_t a = 0, b = *n;
    while (a < b && is_space(s[a]))
        a++;
    while (b > a && is_space(s[b - 1]))
        b--;
    *n = b - a;
    return s + a;
}

void cx_strings_free(char **s, int count)
{
    for (int i = 0; s && i < count; i++)
        free(s[i]);
    free(s);
}

/* ---- classes ------------------------------------------------------------------------------ */

void cx_classes_free(cx_classes *c)
{
    for (int i = 0; i < c->count; i++) {
        if (c->synonyms)
            cx_strings_free(c->synonyms[i], c->num_synonyms[i]);
        if (c->vetoes)
            cx_strings_free(c->vetoes[i], c->num_vetoes[i]);
    }
    cx_strings_free(c->names, c->count);
    free(c->synonyms);
    free(c->num_synonyms);
    free(c->vetoes);
    free(c->num_vetoes);
    memset(c, 0, sizeof *c);
}

int cx_classes_find(const cx_classes *c, const char *name)
{
    for (int i = 0; i < c->count; i++)
        if (strcmp(c->names[i], name) == 0)
            return i;
    return -1;
}

static int grow(void **p, size_t elem, int *cap, int need)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *q = realloc(*p, (size_t)ncap * elem);
    if (!q)
        return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(ncap - *cap) * elem);
    *p = q;
    *cap = ncap;
    return 0;
}

/* Split a class line into its name, synonyms and vetoes (entry c of out, already sized). */
static cx_status parse_class_line(const char *path, long line_no, const char *line, size_t len,
                                  cx_classes *out, int c, cx_err *err)
{
    int nfields = 1;
    for (size_t i = 0; i < len; i++)
        nfields += line[i] == '|';
    out->synonyms[c] = calloc((size_t)nfields, sizeof(char *));
    out->vetoes[c] = calloc((size_t)nfields, sizeof(char *));
    if (!out->synonyms[c] || !out->vetoes[c])
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    size_t start = 0;
    for (int f = 0; f < nfields; f++) {
        size_t end = start;
        while (end < len && line[end] != '|')
            end++;
        size_t n = end - start;
        const char *field = trim(line + start, &n);
        int veto = n > 0 && field[0] == '!';
        if (veto) {
            field++;
            n--;
            field = trim(field, &n);
        }
        if (n == 0)
            return cx_fail(err, CX_EDATA, "%s: line %ld: field %d (%s) is empty", path, line_no,
                           f + 1,
                           f == 0 ? "the class name"
                           : veto ? "a veto"
                                  : "a synonym");
        if (memchr(field, '\t', n))
            return cx_fail(err, CX_EDATA, "%s: line %ld: field %d holds a tab", path, line_no,
                           f + 1);
        if (f == 0 && veto)
            return cx_fail(err, CX_EDATA, "%s: line %ld: the class name cannot be a veto ('!')",
                           path, line_no);
        char *s = strndup(field, n);
        if (!s)
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        if (veto)
            out->vetoes[c][out->num_vetoes[c]++] = s;
        else
            out->synonyms[c][out->num_synonyms[c]++] = s;
        if (f == 0 && !(out->names[c] = strndup(field, n)))
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        start = end + 1;
    }
    if (out->num_vetoes[c] == 0) {
        free(out->vetoes[c]);
        out->vetoes[c] = NULL;
    }
    return CX_OK;
}

cx_status cx_classes_read(const char *path, cx_classes *out, cx_err *err)
{
    memset(out, 0, sizeof *out);
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    int cap = 0;
    long *lines = NULL; /* line of each class, for duplicate messages */
    cx_strmap seen;
    if (cx_strmap_init(&seen, 64)) {
        cx_gzfile_close(&f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        size_t tl = len;
        trim(line, &tl);
        if (tl == 0)
            continue;
        int c = out->count;
        if (c == cap) {
            int cap0 = cap, ok = 1;
            ok &= grow((void **)&out->names, sizeof(char *), &cap, c + 1) == 0;
            int c1 = cap0;
            ok &= grow((void **)&out->synonyms, sizeof(char **), &c1, cap) == 0;
            c1 = cap0;
            ok &= grow((void **)&out->vetoes, sizeof(char **), &c1, cap) == 0;
            c1 = cap0;
            ok &= grow((void **)&out->num_synonyms, sizeof(int), &c1, cap) == 0;
            c1 = cap0;
            ok &= grow((void **)&out->num_vetoes, sizeof(int), &c1, cap) == 0;
            c1 = cap0;
            ok &= grow((void **)&lines, sizeof(long), &c1, cap) == 0;
            if (!ok) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
        }
        out->count++;
        if ((st = parse_class_line(path, f.line_no, line, len, out, c, err)))
            break;
        lines[c] = f.line_no;
        int prev = cx_strmap_put(&seen, out->names[c], strlen(out->names[c]), c);
        if (prev == -2) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        if (prev != c) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: class '%s' repeats line %ld", path,
                         f.line_no, out->names[c], lines[prev]);
            break;
        }
    }
    if (!st && out->count == 0)
        st = cx_fail(err, CX_EDATA, "%s: no classes", path);
    free(lines);
    cx_strmap_free(&seen);
    cx_gzfile_close(&f);
    if (st)
        cx_classes_free(out);
    return st;
}

/* ---- templates ---------------------------------------------------------------------------- */

cx_status cx_templates_read(const char *path, char ***out, int *count, cx_err *err)
{
    *out = NULL;
    *count = 0;
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    int cap = 0;
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        const char *t = trim(line, &len);
        if (len == 0)
            continue;
        char *s = strndup(t, len);
        if (!s || grow((void **)out, sizeof(char *), &cap, *count + 1)) {
            free(s);
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        (*out)[(*count)++] = s;
        if (!strstr(s, "{}")) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: template has no '{}' for the class name",
                         path, f.line_no);
            break;
        }
    }
    if (!st && *count == 0)
        st = cx_fail(err, CX_EDATA, "%s: no templates", path);
    cx_gzfile_close(&f);
    if (st) {
        cx_strings_free(*out, *count);
        *out = NULL;
        *count = 0;
    }
    return st;
}

/* ---- labels ------------------------------------------------------------------------------- */

static cx_status labels_text(cx_gzfile *f, int num_classes, const char *classes_path,
                             const char *noun, const char *plural, int32_t **labels, size_t *n,
                             cx_err *err)
{
    size_t cap = 0;
    cx_status st = CX_OK;
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_gzfile_getline(f, &line, &len, &got, err)) || !got)
            break;
        const char *t = trim(line, &len);
        if (len == 0)
            return cx_fail(err, CX_EDATA, "%s: line %ld: empty line where a %s should be",
                           f->path, f->line_no, noun);
        int neg = t[0] == '-';
        size_t i = neg || t[0] == '+';
        long long v = 0;
        if (i == len)
            return cx_fail(err, CX_EDATA, "%s: line %ld: '%.40s' is not an integer %s", f->path,
                           f->line_no, t, noun);
        for (; i < len; i++) {
            if (t[i] < '0' || t[i] > '9')
                return cx_fail(err, CX_EDATA, "%s: line %ld: '%.*s' is not an integer %s",
                               f->path, f->line_no, (int)(len < 40 ? len : 40), t, noun);
            if (v < 1000000000000LL)
                v = v * 10 + (t[i] - '0');
        }
        if (neg)
            v = -v;
        if (v < 0 || v >= num_classes)
            return cx_fail(err, CX_EDATA,
                           "%s: line %ld: %s %lld is outside the %d %s of %s", f->path,
                           f->line_no, noun, v, num_classes, plural, classes_path);
        if (*n == cap) {
            size_t ncap = cap ? 2 * cap : 1024;
            int32_t *p = realloc(*labels, ncap * sizeof *p);
            if (!p)
                return cx_fail(err, CX_ENOMEM, "%s: out of memory", f->path);
            *labels = p;
            cap = ncap;
        }
        (*labels)[(*n)++] = (int32_t)v;
    }
    if (!st && *n == 0)
        st = cx_fail(err, CX_EDATA, "%s: no %ss", f->path, noun);
    return st;
}

static cx_status labels_array(const char *path, int num_classes, const char *classes_path,
                              const char *noun, const char *plural, int32_t **labels, size_t *n,
                              cx_err *err)
{
    cx_array_file a;
    cx_status st = cx_array_open(&a, path, CX_FORMAT_ANY, err);
    int64_t *wide = NULL;
    if (st)
        goto fail;
    if (a.rank != 1) {
        st = a.format == CX_FORMAT_IDX
                 ? cx_fail(err, CX_EDATA, "%s: byte 3: IDX rank %d where %ss need rank 1 (idx1)",
                           path, a.rank, noun)
                 : cx_fail(err, CX_EDATA,
                           "%s: byte 10: NPY %ss need shape (n,), this array has rank %d", path,
                           noun, a.rank);
        goto fail;
    }
    if (a.elem == CX_ELEM_F32 || a.elem == CX_ELEM_F64) {
        st = cx_fail(err, CX_EDATA, "%s: byte 10: NPY %ss must be integers, not %s", path,
                     noun, cx_elem_name(a.elem));
        goto fail;
    }
    if (a.records == 0) {
        st = cx_fail(err, CX_EDATA, "%s: no %ss", path, noun);
        goto fail;
    }
    uint64_t data_at = a.f.offset;
    size_t es = cx_elem_size(a.elem);
    wide = malloc((size_t)a.records * sizeof *wide);
    *labels = malloc((size_t)a.records * sizeof **labels);
    if (!wide || !*labels) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((st = cx_array_read(&a, NULL, 0, CX_ELEM_I64, wide, err)))
        goto fail;
    for (size_t i = 0; i < a.records; i++) {
        if (wide[i] < 0 || wide[i] >= num_classes) {
            st = cx_fail(err, CX_EDATA,
                         "%s: byte %llu: %s %lld (record %zu) is outside the %d %s of %s",
                         path, (unsigned long long)(data_at + i * es), noun, (long long)wide[i],
                         i, num_classes, plural, classes_path);
            goto fail;
        }
        (*labels)[i] = (int32_t)wide[i];
    }
    *n = (size_t)a.records;
fail:
    free(wide);
    cx_array_close(&a);
    return st;
}

cx_status cx_labels_read(const char *path, int num_classes, const char *classes_path,
                         int32_t **labels, size_t *n, cx_err *err)
{
    return cx_int_column_read(path, num_classes, classes_path, "label", "classes", labels, n,
                              err);
}

cx_status cx_int_column_read(const char *path, int limit, const char *limit_path,
                             const char *noun, const char *plural, int32_t **labels, size_t *n,
                             cx_err *err)
{
    const int num_classes = limit;
    const char *classes_path = limit_path;
    *labels = NULL;
    *n = 0;
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    unsigned char head[8];
    size_t got;
    st = cx_gzfile_peek(&f, head, sizeof head, &got, err);
    cx_array_format fmt = st ? CX_FORMAT_ANY : cx_array_sniff(path, head, got);
    if (!st && (fmt == CX_FORMAT_IDX || fmt == CX_FORMAT_NPY)) {
        cx_gzfile_close(&f);
        st = labels_array(path, num_classes, classes_path, noun, plural, labels, n, err);
    } else {
        if (!st)
            st = labels_text(&f, num_classes, classes_path, noun, plural, labels, n, err);
        cx_gzfile_close(&f);
    }
    if (st) {
        free(*labels);
        *labels = NULL;
        *n = 0;
    }
    return st;
}

/* ---- captions ----------------------------------------------------------------------------- */

enum { CAPTION_BLOCK = 1 << 20 };

void cx_captions_free(cx_captions *c)
{
    for (size_t i = 0; i < c->num_blocks; i++)
        free(c->blocks[i]);
    free(c->blocks);
    free(c->items);
    memset(c, 0, sizeof *c);
}

/* Room for len + 1 bytes in the current block, or a new block. */
static char *arena_alloc(cx_captions *c, size_t *used, size_t len)
{
    size_t block = len + 1 > CAPTION_BLOCK ? len + 1 : CAPTION_BLOCK;
    if (c->num_blocks == 0 || *used + len + 1 > CAPTION_BLOCK) {
        char **nb = realloc(c->blocks, (c->num_blocks + 1) * sizeof *nb);
        if (!nb)
            return NULL;
        c->blocks = nb;
        if (!(nb[c->num_blocks] = malloc(block)))
            return NULL;
        c->num_blocks++;
        *used = 0;
    }
    char *p = c->blocks[c->num_blocks - 1] + *used;
    *used += len + 1;
    return p;
}

cx_status cx_captions_read(const char *path, size_t expect_n, const char *images_path,
                           const uint32_t *keep, size_t nkeep, cx_captions *out, cx_err *err)
{
    memset(out, 0, sizeof *out);
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    if (st)
        return st;
    size_t cap = keep ? nkeep : expect_n;
    if (cap && !(out->items = malloc(cap * sizeof *out->items))) {
        cx_gzfile_close(&f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    size_t used = 0, k = 0;
    for (;;) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        size_t idx = out->lines++;
        if (expect_n && idx >= expect_n) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: more captions than the %zu images of %s",
                         path, f.line_no, expect_n, images_path);
            break;
        }
        if (keep && (k >= nkeep || keep[k] != idx))
            continue;
        if (out->n == cap) {
            size_t ncap = cap ? 2 * cap : 4096;
            char **p = realloc(out->items, ncap * sizeof *p);
            if (!p) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
            out->items = p;
            cap = ncap;
        }
        char *s = arena_alloc(out, &used, len);
        if (!s) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        memcpy(s, line, len);
        s[len] = '\0';
        out->items[out->n++] = s;
        k++;
    }
    if (!st && expect_n && out->lines < expect_n)
        st = cx_fail(err, CX_EDATA, "%s: line %zu: %zu captions for the %zu images of %s", path,
                     out->lines + 1, out->lines, expect_n, images_path);
    if (!st && keep && k < nkeep)
        st = cx_fail(err, CX_EUSAGE, "%s: kept line %u is beyond the %zu captions", path,
                     keep[k] + 1, out->lines);
    cx_gzfile_close(&f);
    if (st)
        cx_captions_free(out);
    return st;
}
