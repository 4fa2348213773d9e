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
    if (cx_strmap_init(&b->index, 512) != 0)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    return CX_OK;
}

cx_status cx_vocab_builder_add(cx_vocab_builder *b, const char *text, cx_err *err)
{
    char w[WORD_MAX];
    size_t pos = 0, n;
    while ((n = next_word(text, &pos, w, sizeof w)) > 0) {
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
        int at = cx_strmap_put(&b->index, w, n, (int)b->n);
        if (at < 0)
            return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        if ((size_t)at < b->n) {
            b->counts[at]++;
            continue;
        }
        if (!(b->words[b->n] = strndup(w, n)))
            return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        b->counts[b->n++] = 1;
    }
    return CX_OK;
}

void cx_vocab_builder_free(cx_vocab_builder *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->words[i]);
    free(b->words);
    free(b->counts);
    cx_strmap_free(&b->index);
    memset(b, 0, sizeof *b);
}

/* ---- vocabulary -------------------------------------------------------------------------- */

static cx_status vocab_index(cx_vocab *v, cx_err *err)
{
    if (cx_strmap_init(&v->ids, (size_t)v->size) != 0)
        return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
    for (int i = v->specials ? 5 : 2; i < v->size; i++) {
        int id = cx_strmap_put(&v->ids, v->words[i], strlen(v->words[i]), i);
        if (id < 0)
            return cx_fail(err, CX_ENOMEM, "vocabulary: out of memory");
        if (id != i)
            return cx_fail(err, CX_EDATA, "vocabulary: word '%s' appears twice", v->words[i]);
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
    int id = cx_strmap_get(&v->ids, word, len);
    return id >= 0 ? id : CX_TOKEN_UNK;
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
    cx_strmap_free(&v->ids);
    memset(v, 0, sizeof *v);
}
