/* The CNN image tower: blocks of 3x3 convolution (padding 1), ReLU and 2x2 max pooling, one per
 * entry of model.image.channels, then the flattened maps through a cx_mlp to the embedding.
 * Same life cycle as cx_mlp: declare, alloc for a max batch, init, forward, backward, free.
 *
 * Each block computes maxpool(relu(conv(x))) as relu(maxpool(conv(x))): ReLU is monotone, so
 * the values, the chosen maxima and the gradients are the same (torch's first-maximum rule
 * included), and ReLU runs on a quarter of the elements without the full-size map being kept
 * for backward. */
#ifndef CX_MODEL_CNN_H
#define CX_MODEL_CNN_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/mlp.h"
#include "lib/model/params.h"
#include "lib/ops/ops.h"

enum { CX_CNN_MAX_BLOCKS = 16 };

typedef struct {
    int nblocks;
    int in_c, in_h, in_w;             /* input sample shape (C, H, W) */
    cx_conv2d_dims conv[CX_CNN_MAX_BLOCKS]; /* block i's convolution: k 3, pad 1 */
    int pool_h[CX_CNN_MAX_BLOCKS], pool_w[CX_CNN_MAX_BLOCKS]; /* block i's output size */
    int flat;                         /* features into the MLP: last channels x h x w */
    int w[CX_CNN_MAX_BLOCKS], b[CX_CNN_MAX_BLOCKS]; /* parameter indices */
    cx_mlp mlp;                       /* flat -> hidden... -> out_dim */
    int max_batch;
    /* Owned buffers, sized for max_batch samples: */
    float *act[CX_CNN_MAX_BLOCKS];    /* (max_batch, conv[i].cout, pool_h[i], pool_w[i]) block
                                       * outputs after pooling and ReLU */
    int32_t *arg[CX_CNN_MAX_BLOCKS];  /* same shape: argmax offsets of the pooling */
    float *conv_buf;                  /* the largest convolution output (max_batch, cout, h, w):
                                       * conv outputs in forward, their gradients in backward */
    float *grad_buf;                  /* the largest block output: its gradient in backward */
    float *scratch;                   /* convolution scratch, the largest layer's need */
    size_t scratch_floats;
} cx_cnn;

/* Declare PREFIX.convI.weight (channels[i], C_in, 3, 3), PREFIX.convI.bias and the MLP's
 * PREFIX.fcI.* (hidden widths hidden[0..nhidden), act and norm as cx_mlp) for input samples of
 * shape (in_c, in_h, in_w), e.g. (1, 28, 28) for IDX images. CX_EUSAGE when a channel count is
 * out of [1, 4096], there are no blocks or more than CX_CNN_MAX_BLOCKS, or pooling reduces the
 * image to nothing. flags go to every tensor. */
cx_status cx_cnn_declare(cx_cnn *c, cx_params *p, const char *prefix, int in_c, int in_h,
                         int in_w, const int64_t *channels, int nblocks, const int64_t *hidden,
                         int nhidden, int out_dim, cx_act act, cx_norm norm, unsigned flags,
                         cx_err *err);

/* Buffers for batches of up to max_batch samples (before or after cx_params_alloc). */
cx_status cx_cnn_alloc(cx_cnn *c, int max_batch, cx_err *err);

/* torch defaults: each Conv2d weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
 * fan_in = C_in * 3 * 3 (kaiming_uniform with a = sqrt(5)), block by block, then the MLP as
 * cx_mlp_init_params. */
void cx_cnn_init_params(const cx_cnn *c, cx_params *p, cx_rng *rng);

/* in (B, in_c, in_h, in_w) -> (B, out_dim), a buffer of c valid until the next forward. */
const float *cx_cnn_forward(cx_cnn *c, const cx_params *p, const float *in, int B);

/* Given dout (B, out_dim) for the last forward's output: adds parameter gradients and writes
 * din (B, in_c, in_h, in_w) unless it is NULL. dout is not modified. */
void cx_cnn_backward(cx_cnn *c, cx_params *p, const float *in, const float *dout, float *din,
                     int B);

/* The last block's output of the last forward as tokens: out (B, h w, C) holds map position
 * (y, x) of sample b at row b h w + y w + x, its C channels as features. Returns out. */
const float *cx_cnn_tokens(const cx_cnn *c, int B, float *out, int *T, int *D);

void cx_cnn_free(cx_cnn *c);

#endif
