/* The transformer towers of CLIP: a text encoder over token sequences and a ViT over image
 * patches. Both are token embeddings + learned positional embeddings + pre-norm blocks
 * (lib/model/transformer.h) + a final LayerNorm, pooled to one vector per sample (the EOT or
 * CLS token, or the mean of the tokens) and projected without bias to the embedding. Each can
 * hand out its per-token outputs (after the final LayerNorm) for decoders and MLM heads. */
#ifndef CX_MODEL_SEQ_TOWER_H
#define CX_MODEL_SEQ_TOWER_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/params.h"
#include "lib/model/transformer.h"

typedef enum {
    CX_POOL_TOKEN, /* text: the EOT token; image: the CLS token */
    CX_POOL_MEAN   /* text: the mean over SOT..EOT; image: the mean over the patches */
} cx_pool;

typedef struct {
    int width, out_dim, max_batch;
    cx_pool pool;
    int is_text;
    /* text */
    int vocab_size, max_tokens;
    /* image: samples (C, H, W) cut into patch x patch squares */
    int in_c, in_h, in_w, patch, npatch, patch_dim;
    int tokens;                    /* per sample: max_tokens, or npatch + 1 (CLS first) */
    /* parameter indices */
    int embed;                     /* text: PREFIX.embed.weight (V, D); image:
                                    * PREFIX.patch_embed.weight (D, C p p) */
    int cls;                       /* image: PREFIX.cls (D) */
    int pos;                       /* PREFIX.pos_embed (tokens, D) */
    int ln_g, ln_b;                /* PREFIX.ln_final.weight / .bias (D) */
    int proj;                      /* PREFIX.proj.weight (out_dim, D) */
    cx_transformer tf;
    /* Owned buffers for max_batch samples: */
    float *patches, *pe, *dpe;     /* image: (B npatch, C p p), (B npatch, D) twice */
    float *tok_out, *mean, *rstd;  /* (B, tokens, D) after the final LayerNorm, (B tokens) */
    float *dtok;                   /* (B, tokens, D) */
    float *pooled, *dpooled, *out; /* (B, D), (B, D), (B, out_dim) */
    int32_t *lengths;              /* text: (B) tokens up to and including EOT */
    int last_B;
    const float *blocks_out;       /* the blocks' output of the last forward (in tf) */
} cx_seq_tower;

/* Text tower: tokens of a sequence vocabulary (lib/model/tokenizer.h), max_tokens per
 * caption, width D, layers blocks of heads heads and MLP width mlp, causal or not. */
cx_status cx_seq_tower_declare_text(cx_seq_tower *t, cx_params *p, const char *prefix,
                                    int vocab_size, int max_tokens, int width, int layers,
                                    int heads, int mlp, int causal, cx_pool pool, int out_dim,
                                    unsigned flags, cx_err *err);
/* ViT on images (in_c, in_h, in_w); CX_EUSAGE naming model.image.patch when patch does not
 * divide the height and width. */
cx_status cx_seq_tower_declare_vit(cx_seq_tower *t, cx_params *p, const char *prefix, int in_c,
                                   int in_h, int in_w, int patch, int width, int layers,
                                   int heads, int mlp, cx_pool pool, int out_dim, unsigned flags,
                                   cx_err *err);
/* Buffers for max_batch samples; scratch as cx_transformer_alloc's (NULL: owned). */
size_t cx_seq_tower_scratch_floats(const cx_seq_tower *t, int max_batch);
cx_status cx_seq_tower_alloc(cx_seq_tower *t, int max_batch, float *scratch, cx_err *err);
/* Text: token embeddings N(0, 0.02), positions N(0, 0.01); image: patch weights
 * U(-1/sqrt(C p p), 1/sqrt(C p p)) (Conv2d's default), CLS and positions N(0, D^-1/2); then the
 * blocks (cx_transformer_init_params), final LayerNorm 1 and 0, projection N(0, D^-1/2). */
void cx_seq_tower_init_params(const cx_seq_tower *t, cx_params *p, cx_rng *rng);
/* Text: in is int32_t tokens (B, max_tokens); image: float images (B, C, H, W).
 * Returns (B, out_dim), a buffer of t valid until the next forward. */
const float *cx_seq_tower_forward(cx_seq_tower *t, const cx_params *p, const void *in, int B);
/* Adds the gradients of every tensor for dout (B, out_dim) of the last forward. */
void cx_seq_tower_backward(cx_seq_tower *t, cx_params *p, const void *in, const float *dout);
/* The per-token outputs of the last forward after the final LayerNorm, (B, *T, *D) with
 * *T = max_tokens (text; positions after EOT are padding) or npatch + 1 (image, CLS first). */
const float *cx_seq_tower_tokens(const cx_seq_tower *t, int *T, int *D);
/* Prompt tuning (text): the forward of tokens (B, max_tokens) whose input embeddings at
 * positions [first, first + n) are replaced by the rows of ctx before the positional embeddings
 * are added: ctx (n, width) shared by every sequence (per_seq 0) or (B, n, width). The tokens
 * at those positions only matter by not being EOT or padding. Returns (B, out_dim) as
 * cx_seq_tower_forward. */
const float *cx_seq_tower_forward_ctx(cx_seq_tower *t, const cx_params *p, const int32_t *tokens,
                                      int B, const float *ctx, int first, int n, int per_seq);
/* Given dout (B, out_dim) of the last forward: the gradient of the input embeddings (B,
 * tokens, width), a buffer of t valid until the next backward. The tower's parameter gradients
 * above the embeddings are added to p's as a side effect (a caller that trains only the
 * inputs zeroes or ignores them); the token and positional tables get none. */
const float *cx_seq_tower_backward_input(cx_seq_tower *t, cx_params *p, const float *dout);
void cx_seq_tower_free(cx_seq_tower *t);

#endif
