/* Synonym matching over caption word sets, with an index from each phrase's first word. */
#include "lib/data/count.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/gzfile.h"
#include "lib/base/strmap.h"
#include "lib/base/utf8.h"
#include "lib/data/annotations.h"
#include "lib/data/lemmas.h"

typedef struct {
    int cls;
    int veto;
    int nwords;
    int *words; /* (nwords) distinct word ids */
} phrase;

struct cx_matcher {
    int C;
    unsigned flags;
    cx_strmap vocab; /* word -> id */
    phrase *phrases;
    int num_phrases;
    int *first_start; /* (V + 1) CSR: phrases whose first word is w */
    int *first_list;
    unsigned *word_seen; /* (V) caption stamp of each word */
    unsigned *cls_hit;   /* (C) caption stamp of a synonym match */
    unsigned *cls_veto;  /* (C) caption stamp of a veto match */
    int *present;        /* (V) word ids of the current caption */
    int num_present;
    unsigned stamp;
    int *hits; /* (C) classes matched by the current caption */
    int num_hits;
    const cx_lemmas *lemmas; /* borrowed; NULL: words as they are */
};

/* ASCII letters and every non-ASCII code point, so non-English words stay whole. */
static int is_letter(uint32_t cp)
{
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp >= 0x80;
}

/* Length of the letter at s[0..n), or 0 when there is none (a separator, a byte that is not
 * UTF-8, the end). */
static size_t letter_at(const char *s, size_t n)
{
    uint32_t cp;
    size_t len = cx_utf8_next(s, n, &cp);
    return len && is_letter(cp) ? len : 0;
}

/* Crude English plural folding, applied alike to synonyms and captions: returns the new
 * length of w, which it may rewrite (ponies -> pony, boxes -> box, cats -> cat). */
static size_t fold_plural(char *w, size_t n)
{
    if (n > 4 && memcmp(w + n - 3, "ies", 3) == 0) {
        w[n - 3] = 'y';
        return n - 2;
    }
    if (n > 4 && (memcmp(w + n - 4, "ches", 4) == 0 || memcmp(w + n - 4, "shes", 4) == 0))
        return n - 2;
    if (n > 3 && (memcmp(w + n - 3, "xes", 3) == 0 || memcmp(w + n - 3, "zes", 3) == 0))
        return n - 2;
    if (n > 4 && memcmp(w + n - 4, "sses", 4) == 0)
        return n - 2;
    if (n > 3 && w[n - 1] == 's' && w[n - 2] != 's' && w[n - 2] != 'u' && w[n - 2] != 'i')
        return n - 1;
    return n;
}

size_t cx_caption_words(const char *s, size_t n, unsigned flags,
                        void (*fn)(void *ctx, const char *w, size_t len), void *ctx)
{
    char word[256];
    size_t count = 0, i = 0;
    while (i < n) {
        while (i < n && !letter_at(s + i, n - i))
            i++;
        size_t len = 0, k;
        while ((k = letter_at(s + i, n - i)) > 0) {
            for (; k > 0; k--) {
                char c = s[i++];
                if (len < sizeof word)
                    word[len++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
            }
        }
        if (!len)
            continue;
        if (flags & CX_MATCH_PLURALS)
            len = fold_plural(word, len);
        count++;
        if (fn)
            fn(ctx, word, len);
    }
    return count;
}

void cx_matcher_free(cx_matcher *m)
{
    if (!m)
        return;
    cx_strmap_free(&m->vocab);
    for (int i = 0; i < m->num_phrases; i++)
        free(m->phrases[i].words);
    free(m->phrases);
    free(m->first_start);
    free(m->first_list);
    free(m->word_seen);
    free(m->cls_hit);
    free(m->cls_veto);
    free(m->present);
    free(m->hits);
    free(m);
}

typedef struct {
    cx_matcher *m;
    int *ids;
    int n, cap;
    int oom;
} phrase_build;

static void add_phrase_word(void *ctx, const char *w, size_t len)
{
    phrase_build *b = ctx;
    int id = cx_strmap_put(&b->m->vocab, w, len, (int)b->m->vocab.count);
    if (id < 0) {
        b->oom = 1;
        return;
    }
    for (int i = 0; i < b->n; i++)
        if (b->ids[i] == id)
            return;
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 8;
        int *p = realloc(b->ids, (size_t)cap * sizeof *p);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->ids = p;
        b->cap = cap;
    }
    b->ids[b->n++] = id;
}

cx_status cx_matcher_new(char **const *synonyms, const int *num_synonyms, char **const *vetoes,
                         const int *num_vetoes, int C, unsigned flags, cx_matcher **out,
                         cx_err *err)
{
    *out = NULL;
    cx_matcher *m = calloc(1, sizeof *m);
    if (!m || cx_strmap_init(&m->vocab, 1024)) {
        free(m);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    m->C = C;
    m->flags = flags;
    int total = 0;
    for (int c = 0; c < C; c++)
        total += num_synonyms[c] + (vetoes && num_vetoes ? num_vetoes[c] : 0);
    m->phrases = calloc((size_t)(total ? total : 1), sizeof *m->phrases);
    if (!m->phrases)
        goto fail;
    for (int c = 0; c < C; c++) {
        int nv = vetoes && num_vetoes ? num_vetoes[c] : 0;
        for (int k = 0; k < num_synonyms[c] + nv; k++) {
            int veto = k >= num_synonyms[c];
            const char *text = veto ? vetoes[c][k - num_synonyms[c]] : synonyms[c][k];
            phrase_build b = {m, NULL, 0, 0, 0};
            cx_caption_words(text, strlen(text), flags, add_phrase_word, &b);
            if (b.oom) {
                free(b.ids);
                goto fail;
            }
            if (b.n == 0) {
                free(b.ids);
                cx_matcher_free(m);
                return cx_fail(err, CX_EDATA,
                               "class %d: %s '%s' has no letters, so no caption can match it", c,
                               veto ? "veto" : "synonym", text);
            }
            phrase *p = &m->phrases[m->num_phrases++];
            p->cls = c;
            p->veto = veto;
            p->nwords = b.n;
            p->words = b.ids;
        }
    }
    int V = (int)m->vocab.count;
    m->first_start = calloc((size_t)V + 1, sizeof *m->first_start);
    m->first_list = malloc((size_t)(m->num_phrases ? m->num_phrases : 1) * sizeof *m->first_list);
    m->word_seen = calloc((size_t)(V ? V : 1), sizeof *m->word_seen);
    m->present = malloc((size_t)(V ? V : 1) * sizeof *m->present);
    m->cls_hit = calloc((size_t)C, sizeof *m->cls_hit);
    m->cls_veto = calloc((size_t)C, sizeof *m->cls_veto);
    m->hits = malloc((size_t)C * sizeof *m->hits);
    if (!m->first_start || !m->first_list || !m->word_seen || !m->present || !m->cls_hit ||
        !m->cls_veto || !m->hits)
        goto fail;
    for (int i = 0; i < m->num_phrases; i++)
        m->first_start[m->phrases[i].words[0] + 1]++;
    for (int w = 0; w < V; w++)
        m->first_start[w + 1] += m->first_start[w];
    int *fill = malloc(((size_t)V + 1) * sizeof *fill);
    if (!fill)
        goto fail;
    memcpy(fill, m->first_start, ((size_t)V + 1) * sizeof *fill);
    for (int i = 0; i < m->num_phrases; i++)
        m->first_list[fill[m->phrases[i].words[0]]++] = i;
    free(fill);
    *out = m;
    return CX_OK;
fail: /* every jump here is a failed allocation */
    cx_matcher_free(m);
    return cx_fail(err, CX_ENOMEM, "out of memory");
}

static void note_form(void *ctx, const char *w, size_t len)
{
    cx_matcher *m = ctx;
    int id = cx_strmap_get(&m->vocab, w, len);
    if (id >= 0 && m->word_seen[id] != m->stamp) {
        m->word_seen[id] = m->stamp;
        m->present[m->num_present++] = id;
    }
}

/* A caption word, and with lemmas every lemma candidate that is a synonym's word. */
static void note_word(void *ctx, const char *w, size_t len)
{
    cx_matcher *m = ctx;
    note_form(m, w, len);
    if (m->lemmas)
        cx_lemmas_each(m->lemmas, w, len, note_form, m);
}

void cx_matcher_use_lemmas(cx_matcher *m, const cx_lemmas *lemmas)
{
    m->lemmas = lemmas;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int cx_matcher_match(cx_matcher *m, const char *caption, size_t len, int *out)
{
    if (++m->stamp == 0) {
        /* The stamp wrapped: forget every old mark once every 2^32 captions. */
        memset(m->word_seen, 0, m->vocab.count * sizeof *m->word_seen);
        memset(m->cls_hit, 0, (size_t)m->C * sizeof *m->cls_hit);
        memset(m->cls_veto, 0, (size_t)m->C * sizeof *m->cls_veto);
        m->stamp = 1;
    }
    m->num_present = 0;
    m->num_hits = 0;
    cx_caption_words(caption, len, m->flags, note_word, m);
    for (int k = 0; k < m->num_present; k++) {
        int w = m->present[k];
        for (int j = m->first_start[w]; j < m->first_start[w + 1]; j++) {
            const phrase *p = &m->phrases[m->first_list[j]];
            int all = 1;
            for (int i = 1; i < p->nwords && all; i++)
                all = m->word_seen[p->words[i]] == m->stamp;
            if (!all)
                continue;
            if (p->veto) {
                m->cls_veto[p->cls] = m->stamp;
            } else if (m->cls_hit[p->cls] != m->stamp) {
                m->cls_hit[p->cls] = m->stamp;
                m->hits[m->num_hits++] = p->cls;
            }
        }
    }
    int n = 0;
    for (int k = 0; k < m->num_hits; k++)
        if (m->cls_veto[m->hits[k]] != m->stamp)
            out[n++] = m->hits[k];
    qsort(out, (size_t)n, sizeof *out, cmp_int);
    return n;
}

cx_status cx_count_file(cx_matcher *m, const char *path, const uint32_t *keep, size_t nkeep,
                        FILE *rows, int64_t *counts, size_t *lines, size_t *matched, cx_err *err)
{
    *lines = 0;
    if (matched)
        *matched = 0;
    int *hits = malloc((size_t)m->C * sizeof *hits);
    if (!hits)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    size_t k = 0;
    while (!st) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_utf8_getline(&f, &line, &len, &got, err)) || !got)
            break;
        size_t idx = (*lines)++;
        if (keep) {
            if (k >= nkeep || keep[k] != idx)
                continue;
            k++;
        }
        int n = cx_matcher_match(m, line, len, hits);
        if (matched && n > 0)
            ++*matched;
        for (int i = 0; i < n; i++) {
            counts[hits[i]]++;
            if (rows && fprintf(rows, "%zu\t%d\n", idx, hits[i]) < 0) {
                st = cx_fail(err, CX_EIO, "writing the matched rows: %s", strerror(errno));
                break;
            }
        }
    }
    if (!st && keep && k < nkeep)
        st = cx_fail(err, CX_EDATA, "%s: kept line %u is beyond the %zu captions", path,
                     keep[k] + 1, *lines);
    cx_gzfile_close(&f);
    free(hits);
    return st;
}
