/* The token-level decoder of `clipx retrain --method decoder` (methods.md section 5, Imbalance-VLM):
 * pre-norm transformer blocks (lib/model/transformer.h) over a frozen tower's output tokens, a
 * final LayerNorm, pooling (the first token, a ViT's CLS, or the mean of all tokens) and a linear
 * classifier. Same life cycle as cx_mlp: declare, alloc for a max batch, init, forward,
 * backward, free; forward and backward never allocate. */
#ifndef CX_EVAL_RETRAIN_TOKENS_H
#define CX_EVAL_RETRAIN_TOKENS_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/data/dataset.h"
#include "lib/model/model.h"
#include "lib/model/params.h"
#include "lib/model/transformer.h"

typedef enum {
    CX_TOKDEC_POOL_CLS, /* the first token (a ViT's CLS) */
    CX_TOKDEC_POOL_MEAN /* the mean over all tokens */
} cx_tokdec_pool;

typedef struct {
    int tokens, width, classes; /* T, D (the tower's token width), C */
    cx_tokdec_pool pool;
    cx_transformer tf;
    int ln_g, ln_b;             /* PREFIX.ln_final.weight / .bias (D) */
    int w, b;                   /* PREFIX.head.weight (C, D), PREFIX.head.bias (C) */
    int max_batch, last_B;
    const float *blocks_out;    /* the blocks' output of the last forward (in tf) */
    /* Owned, sized for max_batch: */
    float *normed, *mean, *rstd; /* (B, T, D), (B T), (B T) */
    float *dnormed;              /* (B, T, D) */
    float *pooled, *dpooled;     /* (B, D) */
    float *logits;               /* (B, C) */
} cx_tokdec;

/* PREFIX.blocksI.* (depth blocks of heads heads, MLP width mlp), PREFIX.ln_final.*, PREFIX.head.*.
 * CX_EUSAGE naming decoder.depth or decoder.heads when out of range or heads do not divide
 * the width. */
cx_status cx_tokdec_declare(cx_tokdec *d, cx_params *p, const char *prefix, int tokens,
                            int width, int depth, int heads, int mlp, cx_tokdec_pool pool,
                            int classes, cx_err *err);
cx_status cx_tokdec_alloc(cx_tokdec *d, int max_batch, cx_err *err);
/* Blocks as cx_transformer_init_params; LayerNorm 1 and 0; head U(-1/sqrt(D), 1/sqrt(D)) for the
 * weights and biases (torch.nn.Linear's default). */
void cx_tokdec_init_params(const cx_tokdec *d, cx_params *p, cx_rng *rng);
/* tokens (B, T, D) in: logits (B, C), a buffer of d valid until the next forward. */
const float *cx_tokdec_forward(cx_tokdec *d, const cx_params *p, const float *tokens, int B);
/* Given dlogits (B, C) of the last forward: adds every parameter gradient (the tokens, frozen,
 * get none). */
void cx_tokdec_backward(cx_tokdec *d, cx_params *p, const float *dlogits);
void cx_tokdec_free(cx_tokdec *d);

/* ---- the frozen tower's tokens ------------------------------------------------------------ */

/* 1 and the shape (*T, *D) of one sample's tokens when m's image tower gives tokens (a ViT: CLS
 * and patches after the final LayerNorm; a CNN: the positions of its last feature map), else 0
 * with *T = *D = 0 (linear, MLP and identity towers). */
int cx_tokdec_tower_shape(const cx_model *m, int *T, int *D);
/* The tokens out (n, T, D) of the float inputs x (n, m->spec.in_dim), in batches of
 * m->spec.max_batch: the cache the decoder trains on (n T D floats: mind the memory). CX_EUSAGE
 * when the tower gives no tokens. */
cx_status cx_tokdec_cache(cx_model *m, const float *x, size_t n, float *out, cx_err *err);
/* The same for rows (n) of split s (all of s's rows in order when rows is NULL), gathered one
 * batch at a time: only the tokens (n T D) are held at once. CX_EDATA naming `what` when the
 * samples do not fit the tower. */
cx_status cx_tokdec_cache_split(cx_model *m, const cx_split *s, const uint32_t *rows, size_t n,
                                float *out, const char *what, cx_err *err);

#endif
