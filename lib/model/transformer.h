/* A stack of pre-norm transformer blocks (lib/ops/ops.h cx_block_*) with its tensors in the
 * parameter store, shared by the transformer text tower and the ViT image tower. Same life
 * cycle as cx_mlp: declare, alloc for a max batch, init, forward, backward, free. Activations
 * and scratch are sized once in alloc, so forward and backward never allocate. */
#ifndef CX_MODEL_TRANSFORMER_H
#define CX_MODEL_TRANSFORMER_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/params.h"
#include "lib/ops/ops.h"

enum { CX_TRANSFORMER_MAX_LAYERS = 48, CX_TRANSFORMER_TENSORS = 12 };

typedef struct {
    int layers, width, heads, mlp; /* blocks, D, heads dividing D, MLP width F */
    int causal;
    int idx[CX_TRANSFORMER_MAX_LAYERS][CX_TRANSFORMER_TENSORS]; /* parameter indices, in the
                                                                  * order of cx_block_params */
    int max_batch, tokens;         /* sizes of the buffers */
    cx_block_dims dims;            /* of the last forward */
    float *xs;                     /* (layers + 1, max_batch, tokens, D): block inputs, output */
    float *saved;                  /* layers x cx_block_saved_floats */
    float *scratch;                /* cx_block_scratch_floats, shared by the blocks */
    float *dbuf;                   /* (max_batch, tokens, D) the gradient flowing down */
    size_t saved_floats;
    int scratch_owned;
} cx_transformer;

/* PREFIX.blocksI.{ln1,attn_qkv,attn_out,ln2,fc,proj}.{weight,bias} for I < layers.
 * CX_EUSAGE (naming keys) when heads does not divide width or a size is out of range. */
cx_status cx_transformer_declare(cx_transformer *t, cx_params *p, const char *prefix, int layers,
                                 int width, int heads, int mlp, int causal, unsigned flags,
                                 cx_err *err);
/* Floats of block scratch for batches of max_batch sequences of tokens. */
size_t cx_transformer_scratch_floats(const cx_transformer *t, int max_batch, int tokens);
/* Buffers for max_batch sequences of up to tokens. scratch (cx_transformer_scratch_floats) may
 * be shared with other stacks that never run at the same time (the two towers of a CLIP
 * step), or NULL for an owned one. */
cx_status cx_transformer_alloc(cx_transformer *t, int max_batch, int tokens, float *scratch,
                               cx_err *err);
/* open_clip's text-transformer initialisation: weights N(0, s) with s = D^-1/2 for QKV,
 * (2D)^-1/2 for the MLP's first layer, D^-1/2 (2 layers)^-1/2 for both output projections;
 * biases 0; LayerNorm gains 1, shifts 0. */
void cx_transformer_init_params(const cx_transformer *t, cx_params *p, cx_rng *rng);
/* The input buffer (B, T, D) forward reads: the caller writes the embedded tokens there. */
float *cx_transformer_input(cx_transformer *t);
/* Runs the blocks on the input buffer for B sequences of T <= tokens; lengths (B) masks keys
 * at or after each length (NULL: none). Returns the output (B, T, D), a buffer of t. */
const float *cx_transformer_forward(cx_transformer *t, const cx_params *p, int B, int T,
                                    const int32_t *lengths);
/* Given dout (B, T, D) of the last forward: adds parameter gradients and returns the gradient
 * of the input, a buffer of t. dout is not modified. */
const float *cx_transformer_backward(cx_transformer *t, cx_params *p, const float *dout);
void cx_transformer_free(cx_transformer *t);

#endif
