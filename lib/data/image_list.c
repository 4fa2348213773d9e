/* Image-file splits: the sample list from a list file, a class folder or open_clip's CSV, its
 * content hash, and the decoded cache (one uint8 NPY per sample list) that every later load reads. */
/* realpath(3), to key the cache by the real root whatever path the YAML was named by. */
#define _XOPEN_SOURCE 700
#include "lib/data/image_list.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/base/afile.h"
#include "lib/base/gzfile.h"
#include "lib/base/path.h"
#include "lib/base/utf8.h"
#include "lib/data/array.h"
#include "lib/data/count.h"
#include "lib/data/image_decode.h"
#include "lib/data/npy.h"

/* ---- the YAML keys ------------------------------------------------------------------------ */

__attribute__((format(printf, 4, 5))) static cx_status
at_node(cx_err *err, const char *yaml, const cx_yaml_node *n, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cx_fail(err, CX_EUSAGE, "%s:%d:%d: %s", yaml, n->line, n->col, msg);
}

static int is_text(const cx_yaml_node *v)
{
    return v->kind == CX_YAML_SCALAR && !cx_yaml_is_null(v) && v->scalar[0];
}

static cx_status small_int(const char *yaml, const cx_yaml_node *v, const char *key, int lo,
                           int hi, int *out, cx_err *err)
{
    char *end = NULL;
    long x = 0;
    if (v->kind == CX_YAML_SCALAR && !v->quoted && v->scalar[0])
        x = strtol(v->scalar, &end, 10);
    if (!end || *end || x < lo || x > hi)
        return at_node(err, yaml, v, "'%s' must be an integer in [%d, %d]", key, lo, hi);
    *out = (int)x;
    return CX_OK;
}

int cx_image_spec_key(const char *yaml, const cx_yaml_pair *p, cx_image_spec *sp, cx_status *st,
                      cx_err *err)
{
    const cx_yaml_node *v = p->value;
    const char *k = p->key;
    *st = CX_OK;
    if (!strcmp(k, "list") || !strcmp(k, "folder") || !strcmp(k, "csv")) {
        if (sp->kind != CX_IMAGES_NONE)
            *st = at_node(err, yaml, v, "'%s' and '%s' both name the split's images: one only", k,
                          sp->source_key);
        else if (!is_text(v))
            *st = at_node(err, yaml, v, "'%s' must be a %s name", k, k[0] == 'f' ? "folder" : "file");
        sp->kind = k[0] == 'l' ? CX_IMAGES_LIST : k[0] == 'f' ? CX_IMAGES_FOLDER : CX_IMAGES_CSV;
        sp->source = v;
        sp->source_key = k[0] == 'l' ? "list" : k[0] == 'f' ? "folder" : "csv";
    } else if (!strcmp(k, "root")) {
        if (!is_text(v))
            *st = at_node(err, yaml, v, "'root' must be a folder name");
        sp->root = v;
    } else if (!strcmp(k, "image_size")) {
        *st = small_int(yaml, v, k, 1, CX_IMAGE_MAX_SIZE, &sp->image_size, err);
        sp->size_node = v;
    } else if (!strcmp(k, "channels")) {
        *st = small_int(yaml, v, k, 1, 3, &sp->channels, err);
        if (!*st && sp->channels == 2)
            *st = at_node(err, yaml, v, "'channels' must be 1 (grey) or 3 (RGB)");
        sp->channels_node = v;
    } else if (!strcmp(k, "csv_img_key") || !strcmp(k, "csv_caption_key")) {
        if (!is_text(v))
            *st = at_node(err, yaml, v, "'%s' must be a column name", k);
        if (k[4] == 'i')
            sp->img_key = v;
        else
            sp->caption_key = v;
    } else if (!strcmp(k, "csv_separator")) {
        /* One character; "\t" as YAML writes a tab in double quotes, or the two characters. */
        if (v->kind != CX_YAML_SCALAR || !(strlen(v->scalar) == 1 || !strcmp(v->scalar, "\\t")) ||
            v->scalar[0] == '"' || v->scalar[0] == '\n')
            *st = at_node(err, yaml, v, "'csv_separator' must be one character, e.g. \"\\t\" or \",\"");
        sp->separator = v;
    } else {
        return 0;
    }
    return 1;
}

cx_status cx_image_spec_check(const char *yaml, const char *which, const cx_yaml_node *split,
                              const cx_image_spec *sp, cx_err *err)
{
    const cx_yaml_node *stray = sp->root       ? sp->root
                                : sp->size_node ? sp->size_node
                                : sp->channels_node ? sp->channels_node
                                : sp->img_key      ? sp->img_key
                                : sp->caption_key  ? sp->caption_key
                                                   : sp->separator;
    if (sp->kind == CX_IMAGES_NONE) {
        if (stray)
            return at_node(err, yaml, stray, "'%s' sets image-file keys without 'list', 'folder' or "
                           "'csv'", which);
        return CX_OK;
    }
    if (!sp->size_node)
        return at_node(err, yaml, split, "'%s' names image files ('%s') but no 'image_size'", which,
                       sp->source_key);
    if (sp->kind == CX_IMAGES_FOLDER && sp->root)
        return at_node(err, yaml, sp->root, "'root' applies to 'list' and 'csv', not 'folder'");
    const cx_yaml_node *csv_only =
        sp->img_key ? sp->img_key : sp->caption_key ? sp->caption_key : sp->separator;
    if (sp->kind != CX_IMAGES_CSV && csv_only)
        return at_node(err, yaml, csv_only, "csv_* keys apply to 'csv' only");
    if (!cx_image_decode_available())
        return at_node(err, yaml, sp->source, "'%s' names image files, but this clipx was built "
                       "without libpng and libjpeg (install them: scripts/deps.sh build; then "
                       "./configure)", which);
    return CX_OK;
}

/* ---- the sample list ---------------------------------------------------------------------- */

typedef struct {
    char *path; /* owned, as resolved for messages */
    char *rel;  /* owned: the path as listed (relative to the root), hashed */
    long line;  /* line of the list or CSV, 0 for a folder */
    int32_t label;
    char *caption; /* owned, CSV only */
    long long size, mtime_s, mtime_ns;
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
} entries;

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->e[i].path);
        free(es->e[i].rel);
        free(es->e[i].caption);
    }
    free(es->e);
    memset(es, 0, sizeof *es);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Append a sample; rel is copied, caption (may be NULL) too. */
static cx_status entries_add(entries *es, const char *root, const char *rel, size_t rel_len,
                             long line, int32_t label, const char *caption, size_t cap_len,
                             const char *what, cx_err *err)
{
    if (es->n == es->cap) {
        size_t ncap = es->cap ? 2 * es->cap : 256;
        entry *p = realloc(es->e, ncap * sizeof *p);
        if (!p)
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", what);
        es->e = p;
        es->cap = ncap;
    }
    entry *e = &es->e[es->n];
    memset(e, 0, sizeof *e);
    e->line = line;
    e->label = label;
    e->rel = dup_n(rel, rel_len);
    e->path = e->rel ? cx_path_join(root, e->rel) : NULL;
    e->caption = caption ? dup_n(caption, cap_len) : NULL;
    es->n++; /* counted now, so entries_free frees a half-made entry */
    if (!e->rel || !e->path || (caption && !e->caption))
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", what);
    return CX_OK;
}

static cx_status parse_label(const char *s, size_t n, const char *what, long line,
                             const cx_image_classes *cls, int32_t *out, cx_err *err)
{
    char buf[32];
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return cx_fail(err, CX_EDATA, "%s: line %ld: label '%.*s' is not an integer", what, line,
                       (int)(n < 40 ? n : 40), s);
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno)
        return cx_fail(err, CX_EDATA, "%s: line %ld: label '%s' is not an integer", what, line, buf);
    if (v < 0 || v >= cls->num_classes)
        return cx_fail(err, CX_EDATA, "%s: line %ld: label %lld is outside the %d classes of %s",
                       what, line, v, cls->num_classes, cls->classes_path);
    *out = (int32_t)v;
    return CX_OK;
}

/* "relative/path label" a line (ImageNet-LT's format); the label follows the last blank, so a
 * path may hold spaces. Blank lines are skipped. */
static cx_status read_list(const char *path, const char *root, const cx_image_classes *cls,
                           entries *es, cx_err *err)
{
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    while (!st) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        size_t sp = len;
        while (sp && line[sp - 1] != ' ' && line[sp - 1] != '\t')
            sp--;
        size_t plen = sp;
        while (plen && (line[plen - 1] == ' ' || line[plen - 1] == '\t'))
            plen--;
        if (!sp || !plen) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: want 'relative/path label'", path,
                         f.line_no);
            break;
        }
        int32_t y;
        if ((st = parse_label(line + sp, len - sp, path, f.line_no, cls, &y, err)))
            break;
        st = entries_add(es, root, line, plen, f.line_no, y, NULL, 0, path, err);
    }
    cx_gzfile_close(&f);
    return st;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *s)
{
    size_t n = strlen(s);
    return (n > 4 && (!strcasecmp(s + n - 4, ".png") || !strcasecmp(s + n - 4, ".jpg"))) ||
           (n > 5 && !strcasecmp(s + n - 5, ".jpeg"));
}

/* Names in folder path, sorted; hidden ones skipped. want_dirs: subfolders, else files of
 * image names (a subfolder there is refused: ImageFolder would walk it). */
static cx_status list_folder(const char *path, int want_dirs, char ***names, size_t *count,
                             cx_err *err)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(path);
    if (!d)
        return cx_fail_errno(err, CX_EDATA, errno, "%s", path);
    cx_status st = CX_OK;
    size_t cap = 0;
    struct dirent *de;
    while (!st && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *full = cx_path_join(path, de->d_name);
        struct stat sb;
        if (!full) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        int ok = stat(full, &sb) == 0;
        int isdir = ok && S_ISDIR(sb.st_mode);
        if (!ok)
            st = cx_fail_errno(err, CX_EDATA, errno, "%s", full);
        else if (!want_dirs && isdir)
            st = cx_fail(err, CX_EDATA, "%s: a folder inside a class folder (clipx reads the "
                         "images directly in each class folder)", full);
        free(full);
        if (st || (want_dirs ? !isdir : (isdir || !is_image_name(de->d_name))))
            continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = realloc(*names, cap * sizeof *p);
            if (!p) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
            *names = p;
        }
        if (!((*names)[*count] = strdup(de->d_name)))
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        else
            (*count)++;
    }
    closedir(d);
    if (*count)
        qsort(*names, *count, sizeof **names, by_name);
    return st;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ImageFolder's layout: class folders in sorted order are the classes 0, 1, ... */
static cx_status read_folder(const char *path, const cx_image_classes *cls, entries *es,
                             cx_err *err)
{
    char **dirs = NULL, **files = NULL;
    size_t nd = 0, nf = 0;
    cx_status st = list_folder(path, 1, &dirs, &nd, err);
    if (!st && nd != (size_t)cls->num_classes)
        st = cx_fail(err, CX_EDATA, "%s: %zu class folders, but %s lists %d classes (the sorted "
                     "folder names must be the class list)", path, nd, cls->classes_path,
                     cls->num_classes);
    for (size_t c = 0; !st && c < nd; c++)
        if (strcmp(dirs[c], cls->class_names[c]))
            st = cx_fail(err, CX_EDATA, "%s: class folder %zu (sorted) is '%s', but class %zu of "
                         "%s is '%s' (the sorted folder names must be the class list)", path, c,
                         dirs[c], c, cls->classes_path, cls->class_names[c]);
    for (size_t c = 0; !st && c < nd; c++) {
        char *sub = cx_path_join(path, dirs[c]);
        if (!sub) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        st = list_folder(sub, 0, &files, &nf, err);
        free(sub);
        for (size_t i = 0; !st && i < nf; i++) {
            size_t ld = strlen(dirs[c]), lf = strlen(files[i]);
            char *rel = malloc(ld + lf + 2);
            if (!rel) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                break;
            }
            memcpy(rel, dirs[c], ld);
            rel[ld] = '/';
            memcpy(rel + ld + 1, files[i], lf + 1);
            st = entries_add(es, path, rel, ld + lf + 1, 0, (int32_t)c, NULL, 0, path, err);
            free(rel);
        }
        names_free(files, nf);
        files = NULL;
        nf = 0;
    }
    names_free(dirs, nd);
    return st;
}

/* Split a CSV line in place into at most max fields (pandas' default quoting: a field in double
 * quotes may hold the separator, "" is a quote). Returns the field count, or -1 for a quote
 * that does not close on the line. */
static int csv_fields(char *s, size_t n, char sep, char **f, size_t *flen, int max)
{
    int k = 0;
    size_t i = 0;
    for (;;) {
        if (k == max)
            return max + 1;
        char *out = s + i;
        size_t len = 0;
        if (i < n && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n)
                    return -1;
                if (s[i] == '"') {
                    if (i + 1 < n && s[i + 1] == '"') {
                        out[len++] = '"';
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                out[len++] = s[i++];
            }
            while (i < n && s[i] != sep) /* text after the closing quote stays, as pandas does */
                out[len++] = s[i++];
        } else {
            while (i < n && s[i] != sep)
                i++;
            len = (size_t)(s + i - out);
        }
        f[k] = out;
        flen[k++] = len;
        if (i >= n)
            return k;
        i++; /* the separator */
    }
}

enum { CSV_MAX_COLS = 256 };

static cx_status read_csv(const char *path, const char *root, const cx_image_spec *sp,
                          const cx_image_classes *cls, entries *es, cx_err *err)
{
    const char *img_key = sp->img_key ? sp->img_key->scalar : "filepath";
    const char *cap_key = sp->caption_key ? sp->caption_key->scalar : "title";
    char sep = '\t';
    if (sp->separator && strcmp(sp->separator->scalar, "\\t"))
        sep = sp->separator->scalar[0];
    char **f = malloc(sizeof(char *) * (CSV_MAX_COLS + 1));
    size_t *fl = malloc(sizeof(size_t) * (CSV_MAX_COLS + 1));
    cx_gzfile gf;
    memset(&gf, 0, sizeof gf);
    if (!f || !fl) {
        free(f);
        free(fl);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    cx_status st = cx_gzfile_open(&gf, path, err);
    int ncol = 0, ci = -1, cc = -1, cl = -1;
    cx_matcher *m = NULL;
    int *matched = NULL;
    while (!st) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&gf, &line, &len, &got, err)))
            break;
        if (!got) {
            if (gf.line_no == 0)
                st = cx_fail(err, CX_EDATA, "%s: empty file (a CSV starts with a header line)",
                             path);
            break;
        }
        int k = csv_fields(line, len, sep, f, fl, CSV_MAX_COLS);
        if (k < 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: a quoted field does not end on its line",
                         path, gf.line_no);
            break;
        }
        if (k > CSV_MAX_COLS) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: more than %d columns", path, gf.line_no,
                         CSV_MAX_COLS);
            break;
        }
        if (gf.line_no == 1) {
            ncol = k;
            for (int j = 0; j < k; j++) {
                if (fl[j] == strlen(img_key) && !memcmp(f[j], img_key, fl[j]))
                    ci = j;
                if (fl[j] == strlen(cap_key) && !memcmp(f[j], cap_key, fl[j]))
                    cc = j;
                if (fl[j] == 5 && !memcmp(f[j], "label", 5))
                    cl = j;
            }
            const char *missing = ci < 0                    ? img_key
                                  : cc < 0                    ? cap_key
                                  : cl < 0 && !cls->synonyms ? "label"
                                                             : NULL;
            if (!missing && cl < 0) {
                if ((st = cx_matcher_new(cls->synonyms, cls->num_synonyms, cls->vetoes,
                                         cls->num_vetoes, cls->num_classes, 0u, &m, err)))
                    break;
                if (!(matched = malloc(sizeof *matched * (size_t)cls->num_classes))) {
                    st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
                    break;
                }
            }
            if (missing) {
                char sepname[8] = "tab";
                if (sep != '\t')
                    snprintf(sepname, sizeof sepname, "'%c'", sep);
                st = cx_fail(err, CX_EDATA, "%s: line 1: no column '%s' in the header (separator "
                             "%s)%s", path, missing, sepname,
                             cl < 0 && ci >= 0 && cc >= 0 ? "; clipx needs a class per image"
                                                          : "");
                break;
            }
            continue;
        }
        if (len == 0)
            continue;
        if (k != ncol) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: %d fields, the header has %d", path,
                         gf.line_no, k, ncol);
            break;
        }
        if (!fl[ci]) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: an empty '%s'", path, gf.line_no, img_key);
            break;
        }
        int32_t y;
        if (cl >= 0) {
            if ((st = parse_label(f[cl], fl[cl], path, gf.line_no, cls, &y, err)))
                break;
        } else {
            /* Matches come ascending: the first is the earliest class in the list. */
            if (cx_matcher_match(m, f[cc], fl[cc], matched) == 0) {
                st = cx_fail(err, CX_EDATA, "%s: line %ld: no 'label' column, and the caption "
                             "'%.*s' names no class of %s", path, gf.line_no,
                             (int)(fl[cc] < 60 ? fl[cc] : 60), f[cc], cls->classes_path);
                break;
            }
            y = matched[0];
        }
        st = entries_add(es, root, f[ci], fl[ci], gf.line_no, y, f[cc], fl[cc], path, err);
    }
    cx_gzfile_close(&gf);
    cx_matcher_free(m);
    free(matched);
    free(f);
    free(fl);
    return st;
}

/* ---- the key and the cache ---------------------------------------------------------------- */

/* Two independent 64-bit hashes (FNV-1a and a multiply-rotate one) side by side: 128 bits, so
 * distinct sample lists do not meet by chance. */
typedef struct {
    uint64_t a, b;
} hash128;

static void hash_bytes(hash128 *h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h->a = (h->a ^ s[i]) * 0x100000001b3ull;
        h->b = (h->b + s[i] + 1) * 0x9e3779b97f4a7c15ull;
        h->b ^= h->b >> 29;
    }
}

static void hash_str(hash128 *h, const char *s) { hash_bytes(h, s, strlen(s) + 1); }

static void hash_int(hash128 *h, long long v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((unsigned long long)v >> (8 * i));
    hash_bytes(h, b, 8);
}

static cx_status stat_entries(entries *es, const char *what, cx_err *err)
{
    for (size_t i = 0; i < es->n; i++) {
        entry *e = &es->e[i];
        struct stat sb;
        int found = stat(e->path, &sb) == 0, errnum = errno;
        if (!found || !S_ISREG(sb.st_mode)) {
            const char *why = found ? "not a regular file" : strerror(errnum);
            if (e->line)
                return cx_fail(err, CX_EDATA, "%s: line %ld: %s: %s", what, e->line, e->path, why);
            return cx_fail(err, CX_EDATA, "%s: %s", e->path, why);
        }
        e->size = (long long)sb.st_size;
        e->mtime_s = (long long)sb.st_mtim.tv_sec;
        e->mtime_ns = (long long)sb.st_mtim.tv_nsec;
    }
    return CX_OK;
}

static hash128 sample_key(const entries *es, const char *real_root, int size, int channels)
{
    hash128 h = {0xcbf29ce484222325ull, 0x243f6a8885a308d3ull};
    hash_str(&h, "clipx image cache 1");
    hash_int(&h, size);
    hash_int(&h, channels);
    hash_str(&h, real_root);
    hash_int(&h, (long long)es->n);
    for (size_t i = 0; i < es->n; i++) {
        const entry *e = &es->e[i];
        hash_str(&h, e->rel);
        hash_int(&h, e->label);
        hash_int(&h, e->size);
        hash_int(&h, e->mtime_s);
        hash_int(&h, e->mtime_ns);
    }
    return h;
}

/* 1 when path is an NPY of uint8 (n, c, s, s) whose data is all there. */
static int cache_usable(const char *path, size_t n, int c, int s)
{
    cx_array_file a;
    int ok = cx_array_open(&a, path, CX_FORMAT_NPY, NULL) == CX_OK && a.elem == CX_ELEM_U8 &&
             a.rank == 4 && a.shape[0] == n && a.shape[1] == (uint64_t)c &&
             a.shape[2] == (uint64_t)s && a.shape[3] == (uint64_t)s && !a.f.compressed;
    cx_array_close(&a);
    return ok;
}

/* Decode every sample into one buffer and write it to path atomically. Images differ in cost,
 * so the loop is scheduled dynamically: each image's bytes depend on its file alone. */
static cx_status decode_all(const entries *es, const char *what, int size, int channels,
                            const char *path, cx_err *err)
{
    const size_t per = (size_t)channels * (size_t)size * (size_t)size;
    uint8_t *x = malloc(per * (es->n ? es->n : 1));
    cx_status *sts = calloc(es->n ? es->n : 1, sizeof *sts);
    if (!x || !sts) {
        free(x);
        free(sts);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu decoded images", what, es->n);
    }
    const long n = (long)es->n;
#pragma omp parallel for schedule(dynamic, 1)
    for (long i = 0; i < n; i++)
        sts[i] = cx_image_decode(es->e[i].path, size, channels, x + (size_t)i * per, NULL);
    cx_status st = CX_OK;
    for (size_t i = 0; i < es->n && !st; i++)
        if (sts[i]) {
            /* Decoded again on its own for the message: the first failure in list order. */
            const entry *e = &es->e[i];
            st = cx_image_decode(e->path, size, channels, x + i * per, err);
            if (!st)
                st = cx_fail(err, sts[i], "%s: failed to decode, then decoded", e->path);
            if (e->line)
                st = cx_err_prefix(err, st, "%s: line %ld", what, e->line);
        }
    if (!st) {
        uint64_t shape[4] = {es->n, (uint64_t)channels, (uint64_t)size, (uint64_t)size};
        st = cx_npy_write(path, CX_ELEM_U8, 4, shape, x, err);
    }
    free(x);
    free(sts);
    return st;
}

static char *cache_file(const char *cache_dir, hash128 h, const char *suffix)
{
    char name[64];
    snprintf(name, sizeof name, "%016llx%016llx%s", (unsigned long long)h.a,
             (unsigned long long)h.b, suffix);
    return cx_path_join(cache_dir, name);
}

/* The CSV's captions, one a line, into the cache (named by their own hash). */
static cx_status write_captions(const entries *es, const char *cache_dir, char **out,
                                cx_err *err)
{
    hash128 h = {0xcbf29ce484222325ull, 0x243f6a8885a308d3ull};
    size_t total = 0;
    for (size_t i = 0; i < es->n; i++) {
        hash_str(&h, es->e[i].caption);
        total += strlen(es->e[i].caption) + 1;
    }
    if (!(*out = cache_file(cache_dir, h, ".captions.txt")))
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", cache_dir);
    if (cx_path_exists(*out))
        return CX_OK;
    char *text = malloc(total ? total : 1);
    if (!text)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", cache_dir);
    size_t at = 0;
    for (size_t i = 0; i < es->n; i++) {
        size_t k = strlen(es->e[i].caption);
        memcpy(text + at, es->e[i].caption, k);
        text[at + k] = '\n';
        at += k + 1;
    }
    cx_status st = cx_afile_write_all(*out, text, total, err);
    free(text);
    return st;
}

cx_status cx_image_split_prepare(const char *yaml, const char *dir, const cx_image_spec *sp,
                                 const cx_image_classes *cls, cx_image_split *out, cx_err *err)
{
    memset(out, 0, sizeof *out);
    entries es;
    memset(&es, 0, sizeof es);
    char *root = NULL, *cache_dir = NULL, real_root[PATH_MAX];
    int channels = sp->channels_node ? sp->channels : 3;
    cx_status st = CX_OK;
    if (!(out->source_path = cx_path_join(dir, sp->source->scalar)) ||
        !(root = sp->kind == CX_IMAGES_FOLDER ? strdup(out->source_path)
                 : sp->root                    ? cx_path_join(dir, sp->root->scalar)
                                               : strdup(dir)) ||
        !(cache_dir = cx_path_join(dir, CX_IMAGE_CACHE_DIR))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml);
        goto fail;
    }
    if (sp->kind == CX_IMAGES_LIST)
        st = read_list(out->source_path, root, cls, &es, err);
    else if (sp->kind == CX_IMAGES_FOLDER)
        st = read_folder(out->source_path, cls, &es, err);
    else
        st = read_csv(out->source_path, root, sp, cls, &es, err);
    if (st || (st = stat_entries(&es, out->source_path, err)))
        goto fail;
    if (!realpath(root, real_root)) {
        st = cx_fail_errno(err, CX_EDATA, errno, "%s", root);
        goto fail;
    }
    hash128 key = sample_key(&es, real_root, sp->image_size, channels);
    if (!(out->cache_path = cache_file(cache_dir, key, ".npy")) ||
        !(out->labels = malloc((es.n ? es.n : 1) * sizeof *out->labels))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", yaml);
        goto fail;
    }
    out->n = es.n;
    for (size_t i = 0; i < es.n; i++)
        out->labels[i] = es.e[i].label;
    if (!cache_usable(out->cache_path, es.n, channels, sp->image_size)) {
        if ((st = cx_mkdir_p(cache_dir, err)) ||
            (st = decode_all(&es, out->source_path, sp->image_size, channels, out->cache_path,
                             err)))
            goto fail;
        out->decoded = 1;
    }
    if (sp->kind == CX_IMAGES_CSV && (st = write_captions(&es, cache_dir, &out->captions_path, err)))
        goto fail;
fail:
    free(root);
    free(cache_dir);
    entries_free(&es);
    return st;
}

void cx_image_split_free(cx_image_split *s)
{
    free(s->labels);
    free(s->source_path);
    free(s->cache_path);
    free(s->captions_path);
    memset(s, 0, sizeof *s);
}
