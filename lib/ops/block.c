/* The pre-norm transformer block of CLIP and timm:
 *     x1 = x + Attn(LN1(x)),  y = x1 + W_proj GELU(W_fc LN2(x1) + b_fc) + b_proj.
 * Forward keeps what backward cannot cheaply redo (QKV, the attention probabilities, the
 * attention context, x1, the MLP's pre-activation); the LayerNorm outputs and the GELU output
 * are recomputed in backward into shared scratch, which saves 6 of 16 floats per token and
 * width a block would otherwise keep. The LayerNorm outputs come from the saved statistics by
 * the forward's own float expression (no second pass over the rows in double), GELU runs the
 * same code on the same inputs, so the values are the forward's bit for bit. */
#include "config.h"
#include "lib/ops/ops.h"

#include <stddef.h>

#include "lib/ops/ops_internal.h"

static size_t rows(const cx_block_dims *d) { return (size_t)d->B * (size_t)d->T; }

size_t cx_block_saved_floats(const cx_block_dims *d)
{
    size_t N = rows(d), D = (size_t)d->D, F = (size_t)d->F;
    return 4 * N + N * (3 * D + D + D + F) + (size_t)d->B * d->H * d->T * d->T;
}

size_t cx_block_scratch_floats(const cx_block_dims *d)
{
    size_t N = rows(d), D = (size_t)d->D, F = (size_t)d->F;
    return N * (D + 2 * F + 3 * D + D + D) + (size_t)d->B * d->H * d->T * d->T;
}

void cx_block_saved_carve(cx_block_saved *s, float *buf, const cx_block_dims *d)
{
    size_t N = rows(d), D = (size_t)d->D, F = (size_t)d->F;
    s->mean1 = buf;
    s->rstd1 = s->mean1 + N;
    s->mean2 = s->rstd1 + N;
    s->rstd2 = s->mean2 + N;
    s->qkv = s->rstd2 + N;
    s->ctx = s->qkv + N * 3 * D;
    s->x1 = s->ctx + N * D;
    s->h = s->x1 + N * D;
    s->probs = s->h + N * F;
}

void cx_block_scratch_carve(cx_block_scratch *s, float *buf, const cx_block_dims *d)
{
    size_t N = rows(d), D = (size_t)d->D, F = (size_t)d->F;
    s->ln = buf;
    s->g = s->ln + N * D;
    s->dg = s->g + N * F;
    s->dqkv = s->dg + N * F;
    s->dx1 = s->dqkv + N * 3 * D;
    s->dctx = s->dx1 + N * D; /* also the LayerNorm gradients: never live at the same time */
    s->dscores = s->dctx + N * D;
}

/* The LayerNorm output again from the statistics forward saved: the same float expression as
 * cx_layernorm_forward's, so the same bits, without its two row passes in double. */
static void ln_apply(float *out, const float *in, const float *mean, const float *rstd,
                     const float *gamma, const float *beta, int N, int D)
{
#pragma omp parallel for schedule(static) if ((size_t)N * D >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < N; i++) {
        const float *x = in + (size_t)i * D;
        float *o = out + (size_t)i * D;
        float mf = mean[i], rs = rstd[i];
#pragma omp simd
        for (int j = 0; j < D; j++)
            o[j] = (x[j] - mf) * rs * gamma[j] + beta[j];
    }
}

static void add_into(float *y, const float *a, size_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n >= CX_OPS_PAR_ELEMS)
    for (size_t i = 0; i < n; i++)
        y[i] += a[i];
}

void cx_block_forward(float *y, const float *x, const cx_block_params *w, const cx_block_saved *s,
                      const cx_block_scratch *sc, const cx_block_dims *d)
{
    int N = d->B * d->T, D = d->D, F = d->F;
    size_t nd = (size_t)N * D;
    cx_layernorm_forward(sc->ln, s->mean1, s->rstd1, x, w->ln1_g, w->ln1_b, N, D, d->eps);
    cx_linear_forward(s->qkv, sc->ln, w->w_qkv, w->b_qkv, N, D, 3 * D);
    cx_attention_forward(s->ctx, s->probs, s->qkv, d->lengths, d->B, d->T, d->H, D / d->H,
                         d->causal);
    cx_linear_forward(s->x1, s->ctx, w->w_out, w->b_out, N, D, D);
    add_into(s->x1, x, nd);
    cx_layernorm_forward(sc->ln, s->mean2, s->rstd2, s->x1, w->ln2_g, w->ln2_b, N, D, d->eps);
    cx_linear_forward(s->h, sc->ln, w->w_fc, w->b_fc, N, D, F);
    cx_gelu_forward(sc->g, s->h, (size_t)N * F);
    cx_linear_forward(y, sc->g, w->w_proj, w->b_proj, N, F, D);
    add_into(y, s->x1, nd);
}

void cx_block_backward(float *dx, const float *dy, const float *x, const cx_block_params *w,
                       const cx_block_params *g, const cx_block_saved *s,
                       const cx_block_scratch *sc, const cx_block_dims *d)
{
    int N = d->B * d->T, D = d->D, F = d->F;
    size_t nd = (size_t)N * D;
    /* MLP branch: dx1 = dy + LN2'(W_fc^T (GELU'(h) * W_proj^T dy)). */
    cx_gelu_forward(sc->g, s->h, (size_t)N * F);
    cx_linear_backward(sc->dg, g->w_proj, g->b_proj, dy, sc->g, w->w_proj, N, F, D);
    cx_gelu_backward(sc->dg, sc->dg, s->h, (size_t)N * F);
    ln_apply(sc->ln, s->x1, s->mean2, s->rstd2, w->ln2_g, w->ln2_b, N, D);
    float *dln = sc->dctx;
    cx_linear_backward(dln, g->w_fc, g->b_fc, sc->dg, sc->ln, w->w_fc, N, D, F);
    cx_layernorm_backward(dln, g->ln2_g, g->ln2_b, dln, s->x1, s->mean2, s->rstd2, w->ln2_g, N, D);
#pragma omp parallel for simd schedule(static) if (parallel : nd >= CX_OPS_PAR_ELEMS)
    for (size_t i = 0; i < nd; i++)
        sc->dx1[i] = dy[i] + dln[i];
    /* Attention branch: dx = dx1 + LN1'(W_qkv^T Attn'(W_out^T dx1)). */
    cx_linear_backward(sc->dctx, g->w_out, g->b_out, sc->dx1, s->ctx, w->w_out, N, D, D);
    cx_attention_backward(sc->dqkv, sc->dscores, sc->dctx, s->probs, s->qkv, d->lengths, d->B,
                          d->T, d->H, D / d->H, d->causal);
    ln_apply(sc->ln, x, s->mean1, s->rstd1, w->ln1_g, w->ln1_b, N, D);
    cx_linear_backward(dln, g->w_qkv, g->b_qkv, sc->dqkv, sc->ln, w->w_qkv, N, D, 3 * D);
    cx_layernorm_backward(dln, g->ln1_g, g->ln1_b, dln, x, s->mean1, s->rstd1, w->ln1_g, N, D);
#pragma omp parallel for simd schedule(static) if (parallel : nd >= CX_OPS_PAR_ELEMS)
    for (size_t i = 0; i < nd; i++)
        dx[i] = sc->dx1[i] + dln[i];
}
