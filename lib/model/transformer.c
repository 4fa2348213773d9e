/* Transformer stack: parameters in the store, block activations in buffers sized once. */
#include "lib/model/transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const tensor_names[CX_TRANSFORMER_TENSORS] = {
    "ln1.weight", "ln1.bias", "attn_qkv.weight", "attn_qkv.bias", "attn_out.weight",
    "attn_out.bias", "ln2.weight", "ln2.bias", "fc.weight", "fc.bias", "proj.weight",
    "proj.bias"};

cx_status cx_transformer_declare(cx_transformer *t, cx_params *p, const char *prefix, int layers,
                                 int width, int heads, int mlp, int causal, unsigned flags,
                                 cx_err *err)
{
    memset(t, 0, sizeof *t);
    if (layers < 1 || layers > CX_TRANSFORMER_MAX_LAYERS)
        return cx_fail(err, CX_EUSAGE, "model.%s.layers: 1 to %d blocks, not %d", prefix,
                       CX_TRANSFORMER_MAX_LAYERS, layers);
    if (heads < 1 || width % heads != 0)
        return cx_fail(err, CX_EUSAGE, "model.%s.heads: %d heads do not divide the width %d; "
                       "choose heads that divide it", prefix, heads, width);
    if (mlp < 1)
        return cx_fail(err, CX_EUSAGE, "model.%s.mlp_ratio: the MLP width is %d; give a ratio "
                       "of at least 1/width", prefix, mlp);
    t->layers = layers;
    t->width = width;
    t->heads = heads;
    t->mlp = mlp;
    t->causal = causal;
    int D = width, F = mlp;
    const int shapes[CX_TRANSFORMER_TENSORS][2] = {{D, 0}, {D, 0}, {3 * D, D}, {3 * D, 0},
                                                   {D, D}, {D, 0}, {D, 0}, {D, 0},
                                                   {F, D}, {F, 0}, {D, F}, {D, 0}};
    char name[CX_PARAM_NAME_MAX];
    for (int l = 0; l < layers; l++)
        for (int k = 0; k < CX_TRANSFORMER_TENSORS; k++) {
            snprintf(name, sizeof name, "%s.blocks%d.%s", prefix, l, tensor_names[k]);
            int nd = shapes[k][1] ? 2 : 1;
            /* Only the four matrices decay (open_clip: biases and norm gains do not). */
            unsigned f = flags | (nd == 1 ? CX_PARAM_NO_DECAY : 0);
            if ((t->idx[l][k] = cx_params_declare(p, name, nd, shapes[k], f, err)) < 0)
                return cx_params_failure(t->idx[l][k]);
        }
    return CX_OK;
}

static cx_block_dims dims_for(const cx_transformer *t, int B, int T, const int32_t *lengths)
{
    return (cx_block_dims){.B = B, .T = T, .D = t->width, .H = t->heads, .F = t->mlp,
                           .causal = t->causal, .lengths = lengths, .eps = 1e-5f};
}

size_t cx_transformer_scratch_floats(const cx_transformer *t, int max_batch, int tokens)
{
    cx_block_dims d = dims_for(t, max_batch, tokens, NULL);
    return cx_block_scratch_floats(&d);
}

cx_status cx_transformer_alloc(cx_transformer *t, int max_batch, int tokens, float *scratch,
                               cx_err *err)
{
    t->max_batch = max_batch;
    t->tokens = tokens;
    cx_block_dims d = dims_for(t, max_batch, tokens, NULL);
    size_t nd = (size_t)max_batch * tokens * t->width;
    t->saved_floats = cx_block_saved_floats(&d);
    t->xs = malloc(sizeof(float) * nd * (size_t)(t->layers + 1));
    t->saved = malloc(sizeof(float) * t->saved_floats * (size_t)t->layers);
    t->scratch_owned = scratch == NULL;
    t->scratch = scratch ? scratch : malloc(sizeof(float) * cx_block_scratch_floats(&d));
    t->dbuf = malloc(sizeof(float) * nd);
    if (!t->xs || !t->saved || !t->scratch || !t->dbuf) {
        cx_transformer_free(t);
        return cx_fail(err, CX_ENOMEM, "out of memory for a transformer of %d blocks (batch %d "
                       "x %d tokens)", t->layers, max_batch, tokens);
    }
    return CX_OK;
}

static void bind(const cx_transformer *t, const cx_params *p, int l, cx_block_params *w, int grad)
{
    float **v = (float **)w;
    for (int k = 0; k < CX_TRANSFORMER_TENSORS; k++)
        v[k] = grad ? cx_param_grad(p, t->idx[l][k]) : cx_param_value(p, t->idx[l][k]);
}

void cx_transformer_init_params(const cx_transformer *t, cx_params *p, cx_rng *rng)
{
    double D = t->width;
    double attn_sd = 1.0 / sqrt(D), fc_sd = 1.0 / sqrt(2.0 * D);
    double proj_sd = attn_sd / sqrt(2.0 * t->layers);
    const double sd[CX_TRANSFORMER_TENSORS] = {0, 0, attn_sd, 0, proj_sd, 0,
                                               0, 0, fc_sd,   0, proj_sd, 0};
    for (int l = 0; l < t->layers; l++)
        for (int k = 0; k < CX_TRANSFORMER_TENSORS; k++) {
            int i = t->idx[l][k];
            float *v = cx_param_value(p, i);
            size_t n = p->info[i].size;
            int gain = k == 0 || k == 6;
            for (size_t j = 0; j < n; j++)
                v[j] = gain ? 1.0f : sd[k] > 0 ? (float)(sd[k] * cx_rng_normal(rng)) : 0.0f;
        }
}

float *cx_transformer_input(cx_transformer *t) { return t->xs; }

const float *cx_transformer_forward(cx_transformer *t, const cx_params *p, int B, int T,
                                    const int32_t *lengths)
{
    t->dims = dims_for(t, B, T, lengths);
    size_t nd = (size_t)t->max_batch * t->tokens * t->width;
    cx_block_scratch sc;
    cx_block_scratch_carve(&sc, t->scratch, &t->dims);
    for (int l = 0; l < t->layers; l++) {
        cx_block_params w;
        cx_block_saved s;
        bind(t, p, l, &w, 0);
        cx_block_saved_carve(&s, t->saved + (size_t)l * t->saved_floats, &t->dims);
        cx_block_forward(t->xs + (size_t)(l + 1) * nd, t->xs + (size_t)l * nd, &w, &s, &sc,
                         &t->dims);
    }
    return t->xs + (size_t)t->layers * nd;
}

const float *cx_transformer_backward(cx_transformer *t, cx_params *p, const float *dout)
{
    size_t nd = (size_t)t->max_batch * t->tokens * t->width;
    cx_block_scratch sc;
    cx_block_scratch_carve(&sc, t->scratch, &t->dims);
    const float *dy = dout;
    for (int l = t->layers - 1; l >= 0; l--) {
        cx_block_params w, g;
        cx_block_saved s;
        bind(t, p, l, &w, 0);
        bind(t, p, l, &g, 1);
        cx_block_saved_carve(&s, t->saved + (size_t)l * t->saved_floats, &t->dims);
        cx_block_backward(t->dbuf, dy, t->xs + (size_t)l * nd, &w, &g, &s, &sc, &t->dims);
        dy = t->dbuf;
    }
    return t->dbuf;
}

void cx_transformer_free(cx_transformer *t)
{
    free(t->xs);
    free(t->saved);
    if (t->scratch_owned)
        free(t->scratch);
    free(t->dbuf);
    t->xs = t->saved = t->scratch = t->dbuf = NULL;
}
