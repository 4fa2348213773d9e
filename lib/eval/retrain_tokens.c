/* The token decoder: transformer blocks, final LayerNorm, pooling and a linear head. */
#include "lib/eval/retrain_tokens.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops.h"

static cx_status declare(cx_params *p, const char *prefix, const char *what, int ndim, int d0,
                         int d1, unsigned flags, int *index, cx_err *err)
{
    char name[CX_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s", prefix, what);
    *index = cx_params_declare(p, name, ndim, (int[]){d0, d1}, flags, err);
    return *index < 0 ? cx_params_failure(*index) : CX_OK;
}

cx_status cx_tokdec_declare(cx_tokdec *d, cx_params *p, const char *prefix, int tokens,
                            int width, int depth, int heads, int mlp, cx_tokdec_pool pool,
                            int classes, cx_err *err)
{
    memset(d, 0, sizeof *d);
    d->tokens = tokens;
    d->width = width;
    d->classes = classes;
    d->pool = pool;
    if (depth < 1 || depth > CX_TRANSFORMER_MAX_LAYERS)
        return cx_fail(err, CX_EUSAGE, "decoder.depth: 1 to %d blocks, not %d",
                       CX_TRANSFORMER_MAX_LAYERS, depth);
    if (heads < 1 || width % heads != 0)
        return cx_fail(err, CX_EUSAGE,
                       "decoder.heads: %d heads do not divide the token width %d; choose heads "
                       "that divide it", heads, width);
    if (tokens < 1 || classes < 1 || mlp < 1)
        return cx_fail(err, CX_EUSAGE, "decoder: %d tokens, %d classes, MLP width %d", tokens,
                       classes, mlp);
    cx_status st = cx_transformer_declare(&d->tf, p, prefix, depth, width, heads, mlp, 0, 0, err);
    if (st)
        return st;
    if ((st = declare(p, prefix, "ln_final.weight", 1, width, 0, CX_PARAM_NO_DECAY, &d->ln_g,
                      err)) ||
        (st = declare(p, prefix, "ln_final.bias", 1, width, 0, CX_PARAM_NO_DECAY, &d->ln_b,
                      err)) ||
        (st = declare(p, prefix, "head.weight", 2, classes, width, 0, &d->w, err)) ||
        (st = declare(p, prefix, "head.bias", 1, classes, 0, CX_PARAM_NO_DECAY, &d->b, err)))
        return st;
    return CX_OK;
}

cx_status cx_tokdec_alloc(cx_tokdec *d, int max_batch, cx_err *err)
{
    d->max_batch = max_batch;
    cx_status st = cx_transformer_alloc(&d->tf, max_batch, d->tokens, NULL, err);
    if (st)
        return st;
    size_t B = (size_t)max_batch, N = B * (size_t)d->tokens, D = (size_t)d->width;
    d->normed = malloc(sizeof(float) * N * D);
    d->dnormed = malloc(sizeof(float) * N * D);
    d->mean = malloc(sizeof(float) * N);
    d->rstd = malloc(sizeof(float) * N);
    d->pooled = malloc(sizeof(float) * B * D);
    d->dpooled = malloc(sizeof(float) * B * D);
    d->logits = malloc(sizeof(float) * B * (size_t)d->classes);
    if (!d->normed || !d->dnormed || !d->mean || !d->rstd || !d->pooled || !d->dpooled ||
        !d->logits) {
        cx_tokdec_free(d);
        return cx_fail(err, CX_ENOMEM, "out of memory for the token decoder (batch %d x %d "
                       "tokens)", max_batch, d->tokens);
    }
    return CX_OK;
}

void cx_tokdec_init_params(const cx_tokdec *d, cx_params *p, cx_rng *rng)
{
    cx_transformer_init_params(&d->tf, p, rng);
    float *g = cx_param_value(p, d->ln_g), *b = cx_param_value(p, d->ln_b);
    for (int j = 0; j < d->width; j++)
        g[j] = 1.0f, b[j] = 0.0f;
    double bound = 1.0 / sqrt((double)d->width);
    float *w = cx_param_value(p, d->w), *hb = cx_param_value(p, d->b);
    for (size_t i = 0; i < (size_t)d->classes * d->width; i++)
        w[i] = (float)(bound * (2.0 * cx_rng_uniform(rng) - 1.0));
    for (int c = 0; c < d->classes; c++)
        hb[c] = (float)(bound * (2.0 * cx_rng_uniform(rng) - 1.0));
}

const float *cx_tokdec_forward(cx_tokdec *d, const cx_params *p, const float *tokens, int B)
{
    int T = d->tokens, D = d->width;
    size_t N = (size_t)B * T;
    d->last_B = B;
    memcpy(cx_transformer_input(&d->tf), tokens, sizeof(float) * N * D);
    const float *y = cx_transformer_forward(&d->tf, p, B, T, NULL);
    d->blocks_out = y;
    cx_layernorm_forward(d->normed, d->mean, d->rstd, y, cx_param_value(p, d->ln_g),
                         cx_param_value(p, d->ln_b), (int)N, D, 1e-5f);
    for (int b = 0; b < B; b++) {
        const float *r = d->normed + (size_t)b * T * D;
        float *o = d->pooled + (size_t)b * D;
        memcpy(o, r, sizeof(float) * (size_t)D);
        if (d->pool == CX_TOKDEC_POOL_MEAN && T > 1) {
            for (int i = 1; i < T; i++)
                for (int j = 0; j < D; j++)
                    o[j] += r[(size_t)i * D + j];
            for (int j = 0; j < D; j++)
                o[j] /= (float)T;
        }
    }
    cx_linear_forward(d->logits, d->pooled, cx_param_value(p, d->w), cx_param_value(p, d->b), B,
                      D, d->classes);
    return d->logits;
}

void cx_tokdec_backward(cx_tokdec *d, cx_params *p, const float *dlogits)
{
    int B = d->last_B, T = d->tokens, D = d->width;
    size_t N = (size_t)B * T;
    cx_linear_backward(d->dpooled, cx_param_grad(p, d->w), cx_param_grad(p, d->b), dlogits,
                       d->pooled, cx_param_value(p, d->w), B, D, d->classes);
    memset(d->dnormed, 0, sizeof(float) * N * D);
    int mean = d->pool == CX_TOKDEC_POOL_MEAN && T > 1;
    float share = mean ? 1.0f / (float)T : 1.0f;
    for (int b = 0; b < B; b++) {
        const float *g = d->dpooled + (size_t)b * D;
        for (int i = 0; i < (mean ? T : 1); i++) {
            float *r = d->dnormed + ((size_t)b * T + i) * D;
            for (int j = 0; j < D; j++)
                r[j] = mean ? g[j] * share : g[j];
        }
    }
    cx_layernorm_backward(d->dnormed, cx_param_grad(p, d->ln_g), cx_param_grad(p, d->ln_b),
                          d->dnormed, d->blocks_out, d->mean, d->rstd,
                          cx_param_value(p, d->ln_g), (int)N, D);
    cx_transformer_backward(&d->tf, p, d->dnormed);
}

void cx_tokdec_free(cx_tokdec *d)
{
    cx_transformer_free(&d->tf);
    free(d->normed);
    free(d->dnormed);
    free(d->mean);
    free(d->rstd);
    free(d->pooled);
    free(d->dpooled);
    free(d->logits);
    d->normed = d->dnormed = d->mean = d->rstd = d->pooled = d->dpooled = d->logits = NULL;
}

int cx_tokdec_tower_shape(const cx_model *m, int *T, int *D)
{
    *T = *D = 0;
    if (m->spec.image_kind == CX_IMAGE_VIT) {
        *T = m->image_vit.tokens;
        *D = m->image_vit.width;
    } else if (m->spec.image_kind == CX_IMAGE_CNN) {
        const cx_cnn *c = &m->image_cnn;
        int l = c->nblocks - 1;
        *T = c->pool_h[l] * c->pool_w[l];
        *D = c->conv[l].cout;
    }
    return *T > 0 && *D > 0;
}

cx_status cx_tokdec_cache(cx_model *m, const float *x, size_t n, float *out, cx_err *err)
{
    int T, D;
    if (!cx_tokdec_tower_shape(m, &T, &D))
        return cx_fail(err, CX_EUSAGE, "decoder.type: transformer needs an image tower that gives "
                       "tokens (model.image.type vit or cnn)");
    int B = m->spec.max_batch, in_dim = m->spec.in_dim;
    size_t per = (size_t)T * D;
    for (size_t lo = 0; lo < n; lo += (size_t)B) {
        int nb = (int)(n - lo < (size_t)B ? n - lo : (size_t)B);
        cx_model_image_forward(m, x + lo * (size_t)in_dim, nb);
        int t2, d2;
        float *dst = out + lo * per;
        /* A CNN writes its positions into dst; a ViT hands out its own buffer. */
        const float *tok = cx_model_image_tokens(m, nb, dst, &t2, &d2);
        if (tok != dst)
            memcpy(dst, tok, sizeof(float) * (size_t)nb * per);
    }
    return CX_OK;
}

cx_status cx_tokdec_cache_split(cx_model *m, const cx_split *s, const uint32_t *rows, size_t n,
                                float *out, const char *what, cx_err *err)
{
    int T, D, B = m->spec.max_batch, in_dim = m->spec.in_dim;
    if (!cx_tokdec_tower_shape(m, &T, &D))
        return cx_fail(err, CX_EUSAGE, "decoder.type: transformer needs an image tower that gives "
                       "tokens (model.image.type vit or cnn)");
    if (!s->x || s->dim != (size_t)in_dim)
        return cx_fail(err, CX_EDATA, "%s: samples of %zu values, the run's image tower takes %d",
                       what, s->dim, in_dim);
    float *x = malloc(sizeof *x * (size_t)B * (size_t)in_dim);
    uint32_t *idx = malloc(sizeof *idx * (size_t)B);
    cx_status st = CX_OK;
    if (!x || !idx) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory for a batch of %d inputs", what, B);
        goto fail;
    }
    for (size_t lo = 0; lo < n && !st; lo += (size_t)B) {
        size_t nb = n - lo < (size_t)B ? n - lo : (size_t)B;
        for (size_t i = 0; i < nb; i++) {
            idx[i] = rows ? rows[lo + i] : (uint32_t)(lo + i);
            if (idx[i] >= s->n) {
                st = cx_fail(err, CX_EUSAGE, "%s: row %u of %zu", what, idx[i], s->n);
                goto fail;
            }
        }
        cx_split_gather_f32(s, idx, nb, x);
        st = cx_tokdec_cache(m, x, nb, out + lo * (size_t)T * D, err);
    }
fail:
    free(x);
    free(idx);
    return st;
}
