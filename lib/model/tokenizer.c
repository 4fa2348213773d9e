/* Word tokenizer and vocabulary. */
#include "lib/model/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/utf8.h"

/* Letters and digits: ASCII ones and every non-ASCII code point, so non-English words stay whole. */
static int is_word_char(uint32_t cp)
{
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp >= 0x80;
}

static uint64_t hash_word(const char *w, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)w[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Length of the word character at text + i, or 0 when there is none (a separator, a byte that
 * is not UTF-8, the end). */
static size_t word_char_at(const char *text, size_t i)
{
    uint32_t cp;
    size_t len = cx_utf8_next(text + i, SIZE_MAX, &cp);
    return len && is_word_char(cp) ? len : 0;
}

/* Next word of text starting at *pos: ASCII lower-cased into buf (truncated to cap - 1 bytes).
 * Returns the word's length, 0 at the end. */
static size_t next_word(const char *text, size_t *pos, char *buf, size_t cap)
{
    size_t i = *pos, len;
    while (text[i] && !word_char_at(text, i))
        i++;
    size_t n = 0;
    while ((len = word_char_at(text, i)) > 0) {
        for (size_t k = 0; k < len; k++, i++) {
            char c = text[i];
            if (n + 1 < cap)
                buf[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        }
    }
    buf[n] = '\0';
    *pos = i;
    return n;
}

enum { WORD_MAX = 256 };

/* ---- builder ----------------------------------------------------------------------------- */

cx_status cx_vocab_builder_init(cx_vocab_builder *b, cx_err *err)
{
    memset(b, 0, sizeof *b);
    b->nslots = 1024;
    b->slots = malloc(sizeof *b->slots * b->nslots);
    if (!b->slots)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    memset(b->slots, 0xff, sizeof *b->slots * b->nslots);
    return CX_OK;
}

static cx_status builder_grow(cx_vocab_builder *b, cx_err *err)
{
    size_t ns = b->nslots * 2;
    int32_t *slots = malloc(sizeof *slots * ns);
    if (!slots)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    memset(slots, 0xff, sizeof *slots * ns);
    for (size_t i = 0; i < b->n; i++) {
        size_t s = hash_word(b->words[i], strlen(b->words[i])) & (ns - 1);
        while (slots[s] >= 0)
            s = (s + 1) & (ns - 1);
        slots[s] = (int32_t)i;
    }
    free(b->slots);
    b->slots = slots;
    b->nslots = ns;
    return CX_OK;
}

cx_status cx_vocab_builder_add(cx_vocab_builder *b, const char *text, cx_err *err)
{
    char w[WORD_MAX];
    size_t pos = 0, n;
    while ((n = next_word(text, &pos, w, sizeof w)) > 0) {
        size_t s = hash_word(w, n) & (b->nslots - 1);
        while (b->slots[s] >= 0 && strcmp(b->words[b->slots[s]], w) != 0)
            s = (s + 1) & (b->nslots - 1);
        if (b->slots[s] >= 0) {
            b->counts[b->slots[s]]++;
            continue;
        }
        if (b->n == b->cap) {
            size_t ncap = b->cap ? 2 * b->cap : 256;
            char **nw = realloc(b->words, sizeof *nw * ncap);
            if (!nw)
                return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
            b->words = nw;
            int64_t *nc = realloc(b->counts, sizeof *nc * ncap);
            if (!nc)
                return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
            b->counts = nc;
            b->cap = ncap;
        }
        if (!(b->words[b->n] = strndup(w, n)))
            return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        b->counts[b->n] = 1;
        b->slots[s] = (int32_t)b->n;
        b->n++;
        if (2 * b->n > b->nslots) {
            cx_status st = builder_grow(b, err);
            if (st)
                return st;
        }
    }
    return CX_OK;
}

void cx_vocab_builder_free(cx_vocab_builder *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->words[i]);
    free(b->words);
    free(b->counts);
    free(b->slots);
    memset(b, 0, sizeof *b);
}

/* ---- vocabulary -------------------------------------------------------------------------- */

static cx_status vocab_index(cx_vocab *v, cx_err *err)
{
    size_t ns = 64;
    while (ns < 2 * (size_t)v->size)
        ns *= 2;
    v->slots = malloc(sizeof *v->slots * ns);
    if (!v->slots)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    memset(v->slots, 0xff, sizeof *v->slots * ns);
    v->nslots = ns;
    for (int i = 2; i < v->size; i++) {
        size_t s = hash_word(v->words[i], strlen(v->words[i])) & (ns - 1);
        while (v->slots[s] >= 0) {
            if (strcmp(v->words[v->slots[s]], v->words[i]) == 0)
                return cx_fail(err, CX_EDATA, "vocabulary: word '%s' appears twice", v->words[i]);
            s = (s + 1) & (ns - 1);
        }
        v->slots[s] = i;
    }
    return CX_OK;
}

typedef struct {
    int64_t count;
    const char *word;
} ranked_word;

static int by_count_then_word(const void *a, const void *b)
{
    const ranked_word *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->word, y->word);
}

static cx_status vocab_start(cx_vocab *v, int size, cx_err *err)
{
    memset(v, 0, sizeof *v);
    v->words = calloc((size_t)size, sizeof *v->words);
    if (!v->words)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    v->words[0] = strndup("<pad>", 5);
    v->words[1] = strndup("<unk>", 5);
    v->size = 2;
    if (!v->words[0] || !v->words[1])
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    return CX_OK;
}

cx_status cx_vocab_builder_finish(cx_vocab_builder *b, int64_t min_count, cx_vocab *v,
                                  cx_err *err)
{
    ranked_word *ranked = malloc(sizeof *ranked * (b->n ? b->n : 1));
    if (!ranked)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->counts[i] >= min_count)
            ranked[kept++] = (ranked_word){b->counts[i], b->words[i]};
    qsort(ranked, kept, sizeof *ranked, by_count_then_word);
    cx_status st = vocab_start(v, (int)kept + 2, err);
    for (size_t k = 0; !st && k < kept; k++) {
        v->words[v->size] = strndup(ranked[k].word, strlen(ranked[k].word));
        if (!v->words[v->size])
            st = cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        else
            v->size++;
    }
    free(ranked);
    if (!st)
        st = vocab_index(v, err);
    if (st)
        cx_vocab_free(v);
    return st;
}

int32_t cx_vocab_lookup(const cx_vocab *v, const char *word, size_t len)
{
    size_t s = hash_word(word, len) & (v->nslots - 1);
    while (v->slots[s] >= 0) {
        const char *w = v->words[v->slots[s]];
        if (strlen(w) == len && memcmp(w, word, len) == 0)
            return v->slots[s];
        s = (s + 1) & (v->nslots - 1);
    }
    return CX_TOKEN_UNK;
}

int cx_tokenize(const cx_vocab *v, const char *text, int32_t *out, int max_tokens)
{
    char w[WORD_MAX];
    size_t pos = 0, n;
    int count = 0;
    while ((n = next_word(text, &pos, w, sizeof w)) > 0) {
        if (count < max_tokens)
            out[count] = cx_vocab_lookup(v, w, n);
        count++;
    }
    for (int i = count; i < max_tokens; i++)
        out[i] = CX_TOKEN_PAD;
    return count;
}

char *cx_vocab_serialize(const cx_vocab *v)
{
    size_t total = 1;
    for (int i = 0; i < v->size; i++)
        total += strlen(v->words[i]) + 1;
    char *s = malloc(total);
    if (!s)
        return NULL;
    size_t pos = 0;
    for (int i = 0; i < v->size; i++) {
        size_t n = strlen(v->words[i]);
        memcpy(s + pos, v->words[i], n);
        pos += n;
        s[pos++] = '\n';
    }
    s[pos] = '\0';
    return s;
}

cx_status cx_vocab_deserialize(const char *text, cx_vocab *v, cx_err *err)
{
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    if (lines < 2 || strncmp(text, "<pad>\n<unk>\n", 12) != 0)
        return cx_fail(err, CX_EDATA, "vocabulary: does not start with <pad> and <unk>");
    cx_status st = vocab_start(v, lines, err);
    const char *p = text + 12;
    for (int i = 2; !st && i < lines; i++) {
        const char *nl = strchr(p, '\n');
        if (nl == p) {
            st = cx_fail(err, CX_EDATA, "vocabulary: line %d is empty", i + 1);
            break;
        }
        if (!(v->words[v->size] = strndup(p, (size_t)(nl - p))))
            st = cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        else
            v->size++;
        p = nl + 1;
    }
    if (!st)
        st = vocab_index(v, err);
    if (st)
        cx_vocab_free(v);
    return st;
}

void cx_vocab_free(cx_vocab *v)
{
    for (int i = 0; v->words && i < v->size; i++)
        free(v->words[i]);
    free(v->words);
    free(v->slots);
    memset(v, 0, sizeof *v);
}
