/* Vocabulary, batch tokens and prompt embeddings. */
#include "lib/train/tokens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops.h"

enum { CAPTION_MAX = 4096 };

/* Every prompt of every template with every class name and synonym, through add(). */
static cx_status add_prompts(const cx_dataset *ds, cx_vocab_builder *b, cx_err *err)
{
    char buf[CAPTION_MAX];
    for (int c = 0; c < ds->num_classes; c++)
        for (int s = 0; s < ds->num_synonyms[c]; s++)
            for (int t = 0; t < ds->num_templates; t++) {
                cx_template_fill(ds->templates[t], ds->synonyms[c][s], buf, sizeof buf);
                cx_status st = cx_vocab_builder_add(b, buf, err);
                if (st)
                    return st;
            }
    return CX_OK;
}

cx_status cx_tokens_vocab(const cx_dataset *ds, int64_t min_count, int sequences, cx_vocab *v,
                          cx_err *err)
{
    cx_vocab_builder b;
    cx_status st = cx_vocab_builder_init(&b, err);
    if (st)
        return st;
    const cx_split *s = &ds->train;
    if (s->captions)
        for (size_t i = 0; i < s->n && !st; i++)
            st = cx_vocab_builder_add(&b, s->captions[i], err);
    /* Prompt words count min_count times over, so they survive any min_count. */
    for (int64_t r = 0; r < (min_count < 1 ? 1 : min_count) && !st; r++)
        st = add_prompts(ds, &b, err);
    if (!st)
        st = sequences ? cx_vocab_builder_finish_seq(&b, min_count, v, err)
                       : cx_vocab_builder_finish(&b, min_count, v, err);
    cx_vocab_builder_free(&b);
    return st;
}

void cx_tokens_captions(const cx_dataset *ds, const cx_vocab *v, const uint32_t *rows,
                          size_t n, uint64_t caption_seed, int max_tokens, int32_t *tokens,
                          char *buf, size_t cap)
{
    for (size_t i = 0; i < n; i++) {
        const char *caption = cx_split_caption(ds, &ds->train, rows[i], caption_seed, 0, buf, cap);
        cx_tokenize(v, caption, tokens + i * (size_t)max_tokens, max_tokens);
    }
}

cx_status cx_caption_tokens_init(cx_caption_tokens *ct, const cx_dataset *ds, const cx_vocab *v,
                                 int max_tokens, size_t max_bytes, cx_err *err)
{
    const cx_split *s = &ds->train;
    *ct = (cx_caption_tokens){.max_tokens = max_tokens, .num_templates = ds->num_templates};
    size_t L = (size_t)max_tokens;
    size_t rows = s->captions ? s->n : (size_t)ds->num_classes * (size_t)ds->num_templates;
    if (rows == 0 || L == 0 || rows > max_bytes / sizeof(int32_t) / L)
        return CX_OK;
    int32_t *out = malloc(sizeof *out * rows * L);
    if (!out)
        return cx_fail(err, CX_ENOMEM, "out of memory for the token rows of %zu captions", rows);
    if (s->captions) {
        for (size_t i = 0; i < s->n; i++)
            cx_tokenize(v, s->captions[i], out + i * L, max_tokens);
        ct->by_row = out;
    } else {
        char buf[CAPTION_MAX];
        for (int c = 0; c < ds->num_classes; c++)
            for (int t = 0; t < ds->num_templates; t++) {
                cx_template_fill(ds->templates[t], ds->synonyms[c][0], buf, sizeof buf);
                cx_tokenize(v, buf, out + ((size_t)c * (size_t)ds->num_templates + (size_t)t) * L,
                            max_tokens);
            }
        ct->by_prompt = out;
    }
    return CX_OK;
}

void cx_caption_tokens_free(cx_caption_tokens *ct)
{
    free(ct->by_row);
    free(ct->by_prompt);
    ct->by_row = ct->by_prompt = NULL;
}

void cx_caption_tokens_batch(const cx_caption_tokens *ct, const cx_dataset *ds,
                             const cx_vocab *v, const uint32_t *rows, size_t n,
                             uint64_t caption_seed, int32_t *tokens, char *buf, size_t cap)
{
    const cx_split *s = &ds->train;
    size_t L = (size_t)ct->max_tokens;
    if (ct->by_row) {
        for (size_t i = 0; i < n; i++)
            memcpy(tokens + i * L, ct->by_row + (size_t)rows[i] * L, sizeof *tokens * L);
    } else if (ct->by_prompt) {
        for (size_t i = 0; i < n; i++) {
            int32_t label = s->y[rows[i]];
            int t, k;
            cx_caption_choice(ds, label, caption_seed, s->source_index[rows[i]], 0, &t, &k);
            size_t prompt = (size_t)label * (size_t)ct->num_templates + (size_t)t;
            memcpy(tokens + i * L, ct->by_prompt + prompt * L, sizeof *tokens * L);
        }
    } else {
        cx_tokens_captions(ds, v, rows, n, caption_seed, ct->max_tokens, tokens, buf, cap);
    }
}

void cx_tokens_captions_view(const cx_dataset *ds, const cx_vocab *v, const uint32_t *rows,
                             size_t n, uint64_t caption_seed, const cx_aug_config *aug,
                             const cx_aug_synonyms *syn, uint64_t seed, uint64_t step,
                             uint32_t view, int max_tokens, int32_t *tokens, char *buf,
                             char *buf2, size_t cap)
{
    const cx_split *s = &ds->train;
    for (size_t i = 0; i < n; i++) {
        const char *caption = cx_split_caption(ds, s, rows[i], caption_seed, 0, buf, cap);
        cx_aug_text_view(aug, syn, seed, step, (uint64_t)s->source_index[rows[i]], view, caption,
                         buf2, cap);
        cx_tokenize(v, buf2, tokens + i * (size_t)max_tokens, max_tokens);
    }
}

cx_status cx_tokens_class_embeddings(cx_model *m, const cx_vocab *v, char *const *class_names,
                                   int C, char *const *templates, int T, float *out,
                                   cx_err *err)
{
    int D = m->spec.embed_dim, L = m->spec.max_tokens, B = m->spec.max_batch;
    int32_t *tokens = malloc(sizeof *tokens * (size_t)B * (size_t)L);
    float *unit = malloc(sizeof *unit * (size_t)B * (size_t)D);
    float *norms = malloc(sizeof *norms * (size_t)(B > C ? B : C));
    char *buf = malloc(CAPTION_MAX);
    if (!tokens || !unit || !norms || !buf) {
        free(tokens);
        free(unit);
        free(norms);
        free(buf);
        return cx_fail(err, CX_ENOMEM, "out of memory for class prompts");
    }
    memset(out, 0, sizeof *out * (size_t)C * (size_t)D);
    /* Prompts in order (class c, template t) -> index c * T + t, in batches of B. */
    long total = (long)C * T;
    for (long start = 0; start < total; start += B) {
        int n = (int)(total - start < B ? total - start : B);
        for (int i = 0; i < n; i++) {
            long k = start + i;
            cx_template_fill(templates[k % T], class_names[k / T], buf, CAPTION_MAX);
            cx_tokenize(v, buf, tokens + (size_t)i * (size_t)L, L);
        }
        const float *e = cx_model_text_forward(m, tokens, n);
        cx_l2norm_forward(unit, norms, e, n, D, 1e-12f);
        for (int i = 0; i < n; i++) {
            float *row = out + (size_t)((start + i) / T) * (size_t)D;
            for (int j = 0; j < D; j++)
                row[j] += unit[(size_t)i * (size_t)D + (size_t)j];
        }
    }
    for (int c = 0; c < C; c++) {
        float *row = out + (size_t)c * (size_t)D;
        for (int j = 0; j < D; j++)
            row[j] /= (float)T;
    }
    cx_l2norm_forward(out, norms, out, C, D, 1e-12f);
    free(tokens);
    free(unit);
    free(norms);
    free(buf);
    return CX_OK;
}
