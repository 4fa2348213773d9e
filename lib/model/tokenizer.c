/* Word tokenizer and vocabulary. */
#include "lib/model/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
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

/* Next word of text starting at *pos: lower-cased into buf (truncated to cap - 1 bytes).
 * Returns the word's length, 0 at the end. */
static size_t next_word(const char *text, size_t *pos, char *buf, size_t cap)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t i = *pos;
    while (t[i] && !is_word_byte(t[i]))
        i++;
    size_t n = 0;
    while (t[i] && is_word_byte(t[i])) {
        if (n + 1 < cap)
            buf[n++] = (char)lower(t[i]);
        i++;
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

/* The reserved words, in id order: 2 of every vocabulary, 5 of a sequence vocabulary. */
static const char *const reserved[] = {"<pad>", "<unk>", "<sot>", "<eot>", "<mask>"};

static cx_status vocab_start(cx_vocab *v, int size, int specials, cx_err *err)
{
    memset(v, 0, sizeof *v);
    v->words = calloc((size_t)size, sizeof *v->words);
    if (!v->words)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    v->specials = specials;
    int n = specials ? 5 : 2;
    for (int i = 0; i < n; i++) {
        if (!(v->words[i] = strndup(reserved[i], strlen(reserved[i]))))
            return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        v->size++;
    }
    return CX_OK;
}

static cx_status builder_finish(cx_vocab_builder *b, int64_t min_count, int specials,
                                cx_vocab *v, cx_err *err)
{
    ranked_word *ranked = malloc(sizeof *ranked * (b->n ? b->n : 1));
    if (!ranked)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->counts[i] >= min_count)
            ranked[kept++] = (ranked_word){b->counts[i], b->words[i]};
    qsort(ranked, kept, sizeof *ranked, by_count_then_word);
    cx_status st = vocab_start(v, (int)kept + (specials ? 5 : 2), specials, err);
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

cx_status cx_vocab_builder_finish(cx_vocab_builder *b, int64_t min_count, cx_vocab *v,
                                  cx_err *err)
{
    return builder_finish(b, min_count, 0, v, err);
}

cx_status cx_vocab_builder_finish_seq(cx_vocab_builder *b, int64_t min_count, cx_vocab *v,
                                      cx_err *err)
{
    return builder_finish(b, min_count, 1, v, err);
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
    /* A sequence is SOT words EOT; truncation keeps EOT as the last token (open_clip). */
    int first = v->specials && max_tokens > 1 ? 1 : 0;
    int room = v->specials ? max_tokens - 1 - first : max_tokens;
    if (first)
        out[0] = CX_TOKEN_SOT;
    while ((n = next_word(text, &pos, w, sizeof w)) > 0) {
        if (count < room)
            out[first + count] = cx_vocab_lookup(v, w, n);
        count++;
    }
    int used = first + (count < room ? count : room);
    if (v->specials && max_tokens > 0)
        out[used++] = CX_TOKEN_EOT;
    for (int i = used; i < max_tokens; i++)
        out[i] = CX_TOKEN_PAD;
    return count;
}

/* Format 2 (a vocabulary with the sequence tokens) starts with this line; format 1 (words only,
 * from <pad> and <unk>) is still written for the others, so their checkpoints are unchanged. */
static const char header_v2[] = "#clipx-vocab 2\n";

char *cx_vocab_serialize(const cx_vocab *v)
{
    size_t total = 1 + (v->specials ? sizeof header_v2 - 1 : 0);
    for (int i = 0; i < v->size; i++)
        total += strlen(v->words[i]) + 1;
    char *s = malloc(total);
    if (!s)
        return NULL;
    size_t pos = 0;
    if (v->specials) {
        memcpy(s, header_v2, sizeof header_v2 - 1);
        pos = sizeof header_v2 - 1;
    }
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
    int specials = strncmp(text, header_v2, sizeof header_v2 - 1) == 0;
    if (specials)
        text += sizeof header_v2 - 1;
    else if (text[0] == '#')
        return cx_fail(err, CX_EDATA, "vocabulary: unknown format '%.20s' (this clipx reads "
                       "formats 1 and 2)", text);
    int lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    static const char start_v1[] = "<pad>\n<unk>\n";
    static const char start_v2[] = "<pad>\n<unk>\n<sot>\n<eot>\n<mask>\n";
    const char *start = specials ? start_v2 : start_v1;
    size_t start_len = strlen(start);
    if (lines < (specials ? 5 : 2) || strncmp(text, start, start_len) != 0)
        return cx_fail(err, CX_EDATA, specials ? "vocabulary: format 2 does not start with <pad>, "
                       "<unk>, <sot>, <eot> and <mask>" : "vocabulary: does not start with <pad> "
                       "and <unk>");
    cx_status st = vocab_start(v, lines, specials, err);
    const char *p = text + start_len;
    for (int i = specials ? 5 : 2; !st && i < lines; i++) {
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
