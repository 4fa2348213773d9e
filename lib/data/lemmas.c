/* WordNet noun lemmas: the exception list in a string map, the suffix rules applied on the fly. */
#include "lib/data/lemmas.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/gzfile.h"
#include "lib/base/path.h"
#include "lib/base/strmap.h"

struct cx_lemmas {
    cx_strmap forms; /* inflected form -> its index */
    char *pool;      /* lemmas, NUL-terminated, back to back */
    size_t pool_len, pool_cap;
    size_t *starts; /* (num_lemmas) offsets into pool */
    size_t num_lemmas, starts_cap;
    size_t *form_first; /* (num_forms + 1) CSR: form f's lemmas are [form_first[f], [f + 1]) */
    size_t form_cap;
    int num_forms;
};

void cx_lemmas_free(cx_lemmas *l)
{
    if (!l)
        return;
    cx_strmap_free(&l->forms);
    free(l->pool);
    free(l->starts);
    free(l->form_first);
    free(l);
}

size_t cx_lemmas_count(const cx_lemmas *l)
{
    return (size_t)l->num_forms;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int add_lemma(cx_lemmas *l, const char *w, size_t n)
{
    if (grow((void **)&l->pool, &l->pool_cap, l->pool_len + n + 1, 1) ||
        grow((void **)&l->starts, &l->starts_cap, l->num_lemmas + 1, sizeof *l->starts))
        return -1;
    l->starts[l->num_lemmas++] = l->pool_len;
    memcpy(l->pool + l->pool_len, w, n);
    l->pool_len += n;
    l->pool[l->pool_len++] = '\0';
    return 0;
}

/* A word of the list: lower-case ASCII letters, hyphens, apostrophes and dots (WordNet's own). */
static int plain_word(const char *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (w[i] == '_' || w[i] < ' ' || (unsigned char)w[i] >= 0x80)
            return 0;
    return n > 0;
}

/* One line "form lemma [lemma ...]"; multi-word forms and lemmas are skipped. */
static cx_status add_line(cx_lemmas *l, char *line, size_t len, const char *path, size_t lineno,
                          cx_err *err)
{
    char *tok[16];
    size_t tlen[16];
    int nt = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
            i++;
        if (i >= len)
            break;
        size_t s = i;
        while (i < len && line[i] != ' ' && line[i] != '\t' && line[i] != '\r')
            i++;
        if (nt == 16)
            return cx_fail(err, CX_EDATA, "%s: line %zu: more than 15 lemmas for one form", path,
                           lineno);
        tok[nt] = line + s;
        tlen[nt++] = i - s;
    }
    if (nt == 0)
        return CX_OK;
    if (nt == 1)
        return cx_fail(err, CX_EDATA, "%s: line %zu: '%.*s' has no lemma (\"form lemma\" a line)",
                       path, lineno, (int)tlen[0], tok[0]);
    if (!plain_word(tok[0], tlen[0]))
        return CX_OK;
    if (cx_strmap_get(&l->forms, tok[0], tlen[0]) >= 0) /* listed twice: the first stands */
        return CX_OK;
    size_t first = l->num_lemmas;
    for (int t = 1; t < nt; t++)
        if (plain_word(tok[t], tlen[t]) && add_lemma(l, tok[t], tlen[t]))
            return cx_fail(err, CX_ENOMEM, "out of memory");
    if (l->num_lemmas == first)
        return CX_OK;
    if (grow((void **)&l->form_first, &l->form_cap, (size_t)l->num_forms + 2,
             sizeof *l->form_first) ||
        cx_strmap_put(&l->forms, tok[0], tlen[0], l->num_forms) < 0)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    l->form_first[l->num_forms++] = first;
    l->form_first[l->num_forms] = l->num_lemmas;
    return CX_OK;
}

cx_status cx_lemmas_load(const char *dir, cx_lemmas **out, cx_err *err)
{
    *out = NULL;
    char *path = cx_path_join(dir, "noun.exc");
    cx_lemmas *l = calloc(1, sizeof *l);
    if (!path || !l || cx_strmap_init(&l->forms, 4096)) {
        free(path);
        free(l);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    size_t lineno = 0;
    while (!st) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_gzfile_getline(&f, &line, &len, &got, err)) || !got)
            break;
        st = add_line(l, line, len, path, ++lineno, err);
    }
    cx_gzfile_close(&f);
    if (!st && l->num_forms == 0)
        st = cx_fail(err, CX_EDATA, "%s: no noun exceptions in the file", path);
    free(path);
    if (st) {
        cx_lemmas_free(l);
        return st;
    }
    *out = l;
    return CX_OK;
}

/* morphy's noun detachments: (suffix, replacement), tried in this order. */
static const struct {
    const char *suffix, *ending;
} noun_rules[] = {
    {"s", ""}, {"ses", "s"}, {"xes", "x"}, {"zes", "z"}, {"ches", "ch"}, {"shes", "sh"},
    {"men", "man"}, {"ies", "y"},
};

void cx_lemmas_each(const cx_lemmas *l, const char *w, size_t n,
                    void (*fn)(void *ctx, const char *cand, size_t len), void *ctx)
{
    int f = cx_strmap_get(&l->forms, w, n);
    if (f >= 0)
        for (size_t k = l->form_first[f]; k < l->form_first[f + 1]; k++) {
            const char *c = l->pool + l->starts[k];
            fn(ctx, c, strlen(c));
        }
    char buf[256];
    for (size_t r = 0; r < sizeof noun_rules / sizeof noun_rules[0]; r++) {
        size_t sl = strlen(noun_rules[r].suffix), el = strlen(noun_rules[r].ending);
        if (n <= sl || n - sl + el > sizeof buf || memcmp(w + n - sl, noun_rules[r].suffix, sl))
            continue;
        /* "ss" words are not plurals of "s" words (glass, not glas) */
        if (sl == 1 && n >= 2 && w[n - 2] == 's')
            continue;
        memcpy(buf, w, n - sl);
        memcpy(buf + n - sl, noun_rules[r].ending, el);
        fn(ctx, buf, n - sl + el);
    }
}
