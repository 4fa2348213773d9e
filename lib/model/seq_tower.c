/* Transformer towers: embeddings in, pooled and projected features out. */
#include "lib/model/seq_tower.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"

/* Declares PREFIX.WHAT and stores its index; the status of a failed declaration. */
static cx_status declare(cx_params *p, const char *prefix, const char *what, int ndim, int d0,
                         int d1, unsigned flags, int *index, cx_err *err)
{
    char name[CX_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    *index = cx_params_declare(p, name, ndim, (int[]){d0, d1}, flags, err);
    return *index < 0 ? cx_params_failure(*index) : CX_OK;
}

/* The tensors both towers have after the embeddings: blocks, final LayerNorm, projection. */
static cx_status declare_rest(cx_seq_tower *t, cx_params *p, const char *prefix, int layers,
                              int heads, int mlp, int causal, unsigned flags, cx_err *err)
{
    cx_status st = cx_transformer_declare(&t->tf, p, prefix, layers, t->width, heads, mlp, causal,
                                          flags, err);
    if (st)
        return st;
    unsigned nd = flags | CX_PARAM_NO_DECAY;
    if ((st = declare(p, prefix, "pos_embed", 2, t->tokens, t->width, nd, &t->pos, err)) ||
        (st = declare(p, prefix, "ln_final.weight", 1, t->width, 0, nd, &t->ln_g, err)) ||
        (st = declare(p, prefix, "ln_final.bias", 1, t->width, 0, nd, &t->ln_b, err)) ||
        (st = declare(p, prefix, "proj.weight", 2, t->out_dim, t->width, flags, &t->proj, err)))
        return st;
    return CX_OK;
}

cx_status cx_seq_tower_declare_text(cx_seq_tower *t, cx_params *p, const char *prefix,
                                    int vocab_size, int max_tokens, int width, int layers,
                                    int heads, int mlp, int causal, cx_pool pool, int out_dim,
                                    unsigned flags, cx_err *err)
{
    memset(t, 0, sizeof *t);
    t->is_text = 1;
    t->vocab_size = vocab_size;
    t->max_tokens = t->tokens = max_tokens;
    t->width = width;
    t->out_dim = out_dim;
    t->pool = pool;
    if (vocab_size <= CX_TOKEN_MASK)
        return cx_fail(err, CX_EUSAGE, "model.text.type: transformer needs a sequence vocabulary "
                       "(with SOT and EOT); this one has %d words", vocab_size);
    if (max_tokens < 2)
        return cx_fail(err, CX_EUSAGE, "model.text.max_tokens: a transformer sequence holds SOT "
                       "and EOT, so at least 2 tokens, not %d", max_tokens);
    cx_status st = declare(p, prefix, "embed.weight", 2, vocab_size, width,
                           flags | CX_PARAM_NO_DECAY, &t->embed, err);
    if (st)
        return st;
    return declare_rest(t, p, prefix, layers, heads, mlp, causal, flags, err);
}

cx_status cx_seq_tower_declare_vit(cx_seq_tower *t, cx_params *p, const char *prefix, int in_c,
                                   int in_h, int in_w, int patch, int width, int layers,
                                   int heads, int mlp, cx_pool pool, int out_dim, unsigned flags,
                                   cx_err *err)
{
    memset(t, 0, sizeof *t);
    t->in_c = in_c;
    t->in_h = in_h;
    t->in_w = in_w;
    t->patch = patch;
    t->width = width;
    t->out_dim = out_dim;
    t->pool = pool;
    if (patch < 1 || in_h % patch != 0 || in_w % patch != 0)
        return cx_fail(err, CX_EUSAGE, "model.image.patch: %d does not divide the %d x %d images; "
                       "choose a patch size that divides both", patch, in_h, in_w);
    t->npatch = (in_h / patch) * (in_w / patch);
    t->patch_dim = in_c * patch * patch;
    t->tokens = t->npatch + 1;
    cx_status st;
    if ((st = declare(p, prefix, "patch_embed.weight", 2, width, t->patch_dim, flags, &t->embed,
                      err)) ||
        (st = declare(p, prefix, "cls", 1, width, 0, flags | CX_PARAM_NO_DECAY, &t->cls, err)))
        return st;
    return declare_rest(t, p, prefix, layers, heads, mlp, 0, flags, err);
}

size_t cx_seq_tower_scratch_floats(const cx_seq_tower *t, int max_batch)
{
    return cx_transformer_scratch_floats(&t->tf, max_batch, t->tokens);
}

cx_status cx_seq_tower_alloc(cx_seq_tower *t, int max_batch, float *scratch, cx_err *err)
{
    t->max_batch = max_batch;
    size_t B = (size_t)max_batch, D = (size_t)t->width, N = B * (size_t)t->tokens;
    cx_status st = cx_transformer_alloc(&t->tf, max_batch, t->tokens, scratch, err);
    if (st)
        return st;
    t->tok_out = malloc(sizeof(float) * N * D);
    t->dtok = malloc(sizeof(float) * N * D);
    t->mean = malloc(sizeof(float) * N);
    t->rstd = malloc(sizeof(float) * N);
    t->pooled = malloc(sizeof(float) * B * D);
    t->dpooled = malloc(sizeof(float) * B * D);
    t->out = malloc(sizeof(float) * B * (size_t)t->out_dim);
    int ok = t->tok_out && t->dtok && t->mean && t->rstd && t->pooled && t->dpooled && t->out;
    if (t->is_text) {
        ok = ok && (t->lengths = malloc(sizeof(int32_t) * B));
    } else {
        size_t np = B * (size_t)t->npatch;
        t->patches = malloc(sizeof(float) * np * (size_t)t->patch_dim);
        t->pe = malloc(sizeof(float) * np * D);
        t->dpe = malloc(sizeof(float) * np * D);
        ok = ok && t->patches && t->pe && t->dpe;
    }
    if (!ok) {
        cx_seq_tower_free(t);
        return cx_fail(err, CX_ENOMEM, "out of memory for the %s tower (batch %d)",
                       t->is_text ? "text" : "image", max_batch);
    }
    return CX_OK;
}

static void fill_normal(float *v, size_t n, double sd, cx_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(sd * cx_rng_normal(rng));
}

void cx_seq_tower_init_params(const cx_seq_tower *t, cx_params *p, cx_rng *rng)
{
    size_t D = (size_t)t->width;
    double rs = 1.0 / sqrt((double)t->width);
    if (t->is_text) {
        fill_normal(cx_param_value(p, t->embed), (size_t)t->vocab_size * D, 0.02, rng);
        fill_normal(cx_param_value(p, t->pos), (size_t)t->tokens * D, 0.01, rng);
    } else {
        float *w = cx_param_value(p, t->embed);
        double bound = 1.0 / sqrt((double)t->patch_dim);
        for (size_t i = 0; i < D * (size_t)t->patch_dim; i++)
            w[i] = (float)(bound * (2.0 * cx_rng_uniform(rng) - 1.0));
        fill_normal(cx_param_value(p, t->cls), D, rs, rng);
        fill_normal(cx_param_value(p, t->pos), (size_t)t->tokens * D, rs, rng);
    }
    cx_transformer_init_params(&t->tf, p, rng);
    float *g = cx_param_value(p, t->ln_g), *b = cx_param_value(p, t->ln_b);
    for (size_t j = 0; j < D; j++)
        g[j] = 1.0f, b[j] = 0.0f;
    fill_normal(cx_param_value(p, t->proj), (size_t)t->out_dim * D, rs, rng);
}

/* Tokens up to and including the first EOT; a sequence without EOT (not made by the
 * tokenizer) ends at its last non-padding token. */
static int32_t seq_length(const int32_t *tok, int T)
{
    int last = 0;
    for (int i = 0; i < T; i++) {
        if (tok[i] == CX_TOKEN_EOT)
            return i + 1;
        if (tok[i] != CX_TOKEN_PAD)
            last = i + 1;
    }
    return last > 0 ? last : 1;
}

static void embed_text(cx_seq_tower *t, const cx_params *p, const int32_t *tokens, int B)
{
    float *x = cx_transformer_input(&t->tf);
    int T = t->tokens, D = t->width;
    cx_embed_forward(x, tokens, cx_param_value(p, t->embed), B * T, D);
    cx_posembed_forward(x, x, cx_param_value(p, t->pos), B, T, D);
    for (int b = 0; b < B; b++)
        t->lengths[b] = seq_length(tokens + (size_t)b * T, T);
}

static void embed_image(cx_seq_tower *t, const cx_params *p, const float *img, int B)
{
    float *x = cx_transformer_input(&t->tf);
    int T = t->tokens, D = t->width, P = t->npatch;
    cx_patchify(t->patches, img, B, t->in_c, t->in_h, t->in_w, t->patch);
    cx_linear_forward(t->pe, t->patches, cx_param_value(p, t->embed), NULL, B * P, t->patch_dim, D);
    const float *cls = cx_param_value(p, t->cls);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        memcpy(xb, cls, sizeof(float) * (size_t)D);
        memcpy(xb + D, t->pe + (size_t)b * P * D, sizeof(float) * (size_t)P * D);
    }
    cx_posembed_forward(x, x, cx_param_value(p, t->pos), B, T, D);
}

/* Rows of sample b that the pooling reads: [first, first + count). */
static void pool_rows(const cx_seq_tower *t, int b, int *first, int *count)
{
    if (t->is_text) {
        int len = t->lengths[b];
        *first = t->pool == CX_POOL_TOKEN ? len - 1 : 0;
        *count = t->pool == CX_POOL_TOKEN ? 1 : len;
    } else {
        *first = t->pool == CX_POOL_TOKEN ? 0 : 1;
        *count = t->pool == CX_POOL_TOKEN ? 1 : t->npatch;
    }
}

/* From the embedded input rows in the transformer's input buffer to the tower's output: the
 * blocks, the final LayerNorm, the pooled token(s) and the projection. Shared by the tower's
 * forward and the prompt-tuning forward, whose inputs differ only in how they are embedded. */
static const float *forward_from_input(cx_seq_tower *t, const cx_params *p, int B,
                                       const int32_t *lengths)
{
    int T = t->tokens, D = t->width;
    const float *y = cx_transformer_forward(&t->tf, p, B, T, lengths);
    t->blocks_out = y;
    cx_layernorm_forward(t->tok_out, t->mean, t->rstd, y, cx_param_value(p, t->ln_g),
                         cx_param_value(p, t->ln_b), B * T, D, 1e-5f);
    for (int b = 0; b < B; b++) {
        int first, count;
        pool_rows(t, b, &first, &count);
        float *o = t->pooled + (size_t)b * D;
        const float *r = t->tok_out + ((size_t)b * T + first) * D;
        memcpy(o, r, sizeof(float) * (size_t)D);
        for (int i = 1; i < count; i++)
            for (int j = 0; j < D; j++)
                o[j] += r[(size_t)i * D + j];
        if (count > 1)
            for (int j = 0; j < D; j++)
                o[j] /= (float)count;
    }
    cx_linear_forward(t->out, t->pooled, cx_param_value(p, t->proj), NULL, B, D, t->out_dim);
    return t->out;
}

const float *cx_seq_tower_forward(cx_seq_tower *t, const cx_params *p, const void *in, int B)
{
    t->last_B = B;
    if (t->is_text)
        embed_text(t, p, in, B);
    else
        embed_image(t, p, in, B);
    return forward_from_input(t, p, B, t->is_text ? t->lengths : NULL);
}

void cx_seq_tower_backward(cx_seq_tower *t, cx_params *p, const void *in, const float *dout)
{
    int B = t->last_B, T = t->tokens, D = t->width;
    size_t N = (size_t)B * T;
    cx_linear_backward(t->dpooled, cx_param_grad(p, t->proj), NULL, dout, t->pooled,
                       cx_param_value(p, t->proj), B, D, t->out_dim);
    memset(t->dtok, 0, sizeof(float) * N * D);
    for (int b = 0; b < B; b++) {
        int first, count;
        pool_rows(t, b, &first, &count);
        const float *g = t->dpooled + (size_t)b * D;
        float share = 1.0f / (float)count;
        for (int i = 0; i < count; i++) {
            float *r = t->dtok + ((size_t)b * T + first + i) * D;
            for (int j = 0; j < D; j++)
                r[j] = count > 1 ? g[j] * share : g[j];
        }
    }
    cx_layernorm_backward(t->dtok, cx_param_grad(p, t->ln_g), cx_param_grad(p, t->ln_b), t->dtok,
                          t->blocks_out, t->mean, t->rstd, cx_param_value(p, t->ln_g), (int)N, D);
    const float *dx = cx_transformer_backward(&t->tf, p, t->dtok);
    cx_posembed_backward(cx_param_grad(p, t->pos), dx, B, T, D);
    if (t->is_text) {
        cx_embed_backward(cx_param_grad(p, t->embed), dx, in, (int)N, D);
        return;
    }
    int P = t->npatch;
    float *dcls = cx_param_grad(p, t->cls);
    for (int b = 0; b < B; b++) {
        const float *xb = dx + (size_t)b * T * D;
        for (int j = 0; j < D; j++)
            dcls[j] += xb[j];
        memcpy(t->dpe + (size_t)b * P * D, xb + D, sizeof(float) * (size_t)P * D);
    }
    cx_linear_backward(NULL, cx_param_grad(p, t->embed), NULL, t->dpe, t->patches,
                       cx_param_value(p, t->embed), B * P, t->patch_dim, D);
}

const float *cx_seq_tower_tokens(const cx_seq_tower *t, int *T, int *D)
{
    *T = t->tokens;
    *D = t->width;
    return t->tok_out;
}

void cx_seq_tower_free(cx_seq_tower *t)
{
    cx_transformer_free(&t->tf);
    free(t->patches);
    free(t->pe);
    free(t->dpe);
    free(t->tok_out);
    free(t->dtok);
    free(t->mean);
    free(t->rstd);
    free(t->pooled);
    free(t->dpooled);
    free(t->out);
    free(t->lengths);
    t->patches = t->pe = t->dpe = t->tok_out = t->dtok = t->mean = t->rstd = NULL;
    t->pooled = t->dpooled = t->out = NULL;
    t->lengths = NULL;
}

/* ---- prompt tuning: inputs replaced by learned vectors, gradients down to the inputs ------- */

const float *cx_seq_tower_forward_ctx(cx_seq_tower *t, const cx_params *p, const int32_t *tokens,
                                      int B, const float *ctx, int first, int n, int per_seq)
{
    int T = t->tokens, D = t->width;
    t->last_B = B;
    float *x = cx_transformer_input(&t->tf);
    cx_embed_forward(x, tokens, cx_param_value(p, t->embed), B * T, D);
    for (int b = 0; b < B; b++) {
        const float *c = ctx + (per_seq ? (size_t)b * n * D : 0);
        memcpy(x + ((size_t)b * T + first) * D, c, sizeof(float) * (size_t)n * D);
        t->lengths[b] = seq_length(tokens + (size_t)b * T, T);
    }
    cx_posembed_forward(x, x, cx_param_value(p, t->pos), B, T, D);
    return forward_from_input(t, p, B, t->lengths);
}

const float *cx_seq_tower_backward_input(cx_seq_tower *t, cx_params *p, const float *dout)
{
    int B = t->last_B, T = t->tokens, D = t->width;
    size_t N = (size_t)B * T;
    cx_linear_backward(t->dpooled, cx_param_grad(p, t->proj), NULL, dout, t->pooled,
                       cx_param_value(p, t->proj), B, D, t->out_dim);
    memset(t->dtok, 0, sizeof(float) * N * D);
    for (int b = 0; b < B; b++) {
        int first, count;
        pool_rows(t, b, &first, &count);
        const float *g = t->dpooled + (size_t)b * D;
        float share = 1.0f / (float)count;
        for (int i = 0; i < count; i++) {
            float *r = t->dtok + ((size_t)b * T + first + i) * D;
            for (int j = 0; j < D; j++)
                r[j] = count > 1 ? g[j] * share : g[j];
        }
    }
    cx_layernorm_backward(t->dtok, cx_param_grad(p, t->ln_g), cx_param_grad(p, t->ln_b), t->dtok,
                          t->blocks_out, t->mean, t->rstd, cx_param_value(p, t->ln_g), (int)N, D);
    /* The positional embeddings are added to the inputs: their gradient is the inputs'. */
    return cx_transformer_backward(&t->tf, p, t->dtok);
}
