/* CNN image tower on the convolution, pooling and activation ops of lib/ops.h. */
#include "lib/model/cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CNN_KERNEL = 3, CNN_PAD = 1, CNN_MAX_CHANNELS = 4096 };

/* Largest number of values per sample in any map, so every index and product size fits an
 * int (cx_sgemm's dimensions). */
#define CNN_MAX_MAP ((size_t)1 << 28)

cx_status cx_cnn_declare(cx_cnn *c, cx_params *p, const char *prefix, int in_c, int in_h,
                         int in_w, const int64_t *channels, int nblocks, const int64_t *hidden,
                         int nhidden, int out_dim, cx_act act, cx_norm norm, unsigned flags,
                         cx_err *err)
{
    memset(c, 0, sizeof *c);
    if (nblocks < 1 || nblocks > CX_CNN_MAX_BLOCKS)
        return cx_fail(err, CX_EUSAGE, "%s: a CNN needs 1 to %d convolution blocks, not %d", prefix,
                       CX_CNN_MAX_BLOCKS, nblocks);
    if (in_c < 1 || in_h < 1 || in_w < 1 ||
        (size_t)in_c * (size_t)in_h * (size_t)in_w > CNN_MAX_MAP)
        return cx_fail(err, CX_EUSAGE, "%s: input shape %dx%dx%d is not a valid image", prefix,
                       in_c, in_h, in_w);
    c->nblocks = nblocks;
    c->in_c = in_c;
    c->in_h = in_h;
    c->in_w = in_w;
    int cin = in_c, h = in_h, w = in_w;
    for (int i = 0; i < nblocks; i++) {
        if (channels[i] < 1 || channels[i] > CNN_MAX_CHANNELS)
            return cx_fail(err, CX_EUSAGE, "%s: conv%d: %lld channels is out of range [1, %d]",
                           prefix, i, (long long)channels[i], CNN_MAX_CHANNELS);
        int cout = (int)channels[i];
        /* 3x3 with padding 1 keeps h x w; the pooling halves it, rounding down. */
        if (h / 2 < 1 || w / 2 < 1)
            return cx_fail(err, CX_EUSAGE,
                           "%s: conv%d: a %dx%d map cannot be pooled 2x2 (input %dx%d allows at "
                           "most %d convolution blocks, model.image.channels has %d)",
                           prefix, i, h, w, in_h, in_w, i, nblocks);
        if ((size_t)cout * (size_t)h * (size_t)w > CNN_MAX_MAP ||
            (size_t)cin * CNN_KERNEL * CNN_KERNEL * (size_t)h * (size_t)w > CNN_MAX_MAP)
            return cx_fail(err, CX_EUSAGE, "%s: conv%d: %d channels of %dx%d is too large", prefix,
                           i, cout, h, w);
        c->conv[i] = (cx_conv2d_dims){.cin = cin, .h = h, .w = w, .cout = cout, .k = CNN_KERNEL,
                                      .pad = CNN_PAD};
        h /= 2;
        w /= 2;
        c->pool_h[i] = h;
        c->pool_w[i] = w;
        cin = cout;
        char name[CX_PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s.conv%d.weight", prefix, i);
        c->w[i] = cx_params_declare(p, name, 4,
                                    (int[]){cout, c->conv[i].cin, CNN_KERNEL, CNN_KERNEL}, flags,
                                    err);
        snprintf(name, sizeof name, "%s.conv%d.bias", prefix, i);
        c->b[i] = cx_params_declare(p, name, 1, (int[]){cout}, flags | CX_PARAM_NO_DECAY, err);
        if (c->w[i] < 0 || c->b[i] < 0) /* err holds the last failure's message */
            return cx_params_failure(c->b[i] < 0 ? c->b[i] : c->w[i]);
    }
    c->flat = cin * h * w;
    return cx_mlp_declare(&c->mlp, p, prefix, c->flat, hidden, nhidden, out_dim, act, norm, flags,
                          err);
}

cx_status cx_cnn_alloc(cx_cnn *c, int max_batch, cx_err *err)
{
    size_t B = (size_t)(max_batch > 0 ? max_batch : 1), conv_max = 0, block_max = 0;
    cx_status st;
    c->max_batch = max_batch;
    c->scratch_floats = 0;
    for (int i = 0; i < c->nblocks; i++) {
        const cx_conv2d_dims *d = &c->conv[i];
        size_t conv_n = (size_t)d->cout * (size_t)d->h * (size_t)d->w;
        size_t block_n = (size_t)d->cout * (size_t)c->pool_h[i] * (size_t)c->pool_w[i];
        if (conv_n > conv_max)
            conv_max = conv_n;
        if (block_n > block_max)
            block_max = block_n;
        size_t s = cx_conv2d_scratch_floats(d, max_batch);
        if (s > c->scratch_floats)
            c->scratch_floats = s;
        if (!(c->act[i] = malloc(sizeof(float) * B * block_n)) ||
            !(c->arg[i] = malloc(sizeof(int32_t) * B * block_n))) {
            st = cx_fail(err, CX_ENOMEM, "out of memory for CNN activations (batch %d)", max_batch);
            goto fail;
        }
    }
    /* The largest block input other than the image is a block output, so grad_buf also holds
     * the gradient flowing into every block but the first. */
    if (!(c->conv_buf = malloc(sizeof(float) * B * conv_max)) ||
        !(c->grad_buf = malloc(sizeof(float) * B * block_max)) ||
        !(c->scratch = malloc(sizeof(float) * (c->scratch_floats ? c->scratch_floats : 1)))) {
        st = cx_fail(err, CX_ENOMEM, "out of memory for CNN activations (batch %d)", max_batch);
        goto fail;
    }
    if ((st = cx_mlp_alloc(&c->mlp, max_batch, err)))
        goto fail;
    return CX_OK;
fail:
    cx_cnn_free(c);
    return st;
}

void cx_cnn_init_params(const cx_cnn *c, cx_params *p, cx_rng *rng)
{
    for (int i = 0; i < c->nblocks; i++) {
        const cx_conv2d_dims *d = &c->conv[i];
        double bound = 1.0 / sqrt((double)d->cin * d->k * d->k);
        float *w = cx_param_value(p, c->w[i]), *b = cx_param_value(p, c->b[i]);
        size_t nw = (size_t)d->cout * (size_t)d->cin * (size_t)d->k * (size_t)d->k;
        for (size_t k = 0; k < nw; k++)
            w[k] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
        for (int k = 0; k < d->cout; k++)
            b[k] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
    }
    cx_mlp_init_params(&c->mlp, p, rng);
}

const float *cx_cnn_forward(cx_cnn *c, const cx_params *p, const float *in, int B)
{
    const float *x = in;
    for (int i = 0; i < c->nblocks; i++) {
        const cx_conv2d_dims *d = &c->conv[i];
        cx_conv2d_forward(c->conv_buf, c->scratch, x, cx_param_value(p, c->w[i]),
                          cx_param_value(p, c->b[i]), B, d);
        cx_maxpool2d_forward(c->act[i], c->arg[i], c->conv_buf, B, d->cout, d->h, d->w);
        size_t n = (size_t)B * (size_t)d->cout * (size_t)c->pool_h[i] * (size_t)c->pool_w[i];
        cx_relu_forward(c->act[i], c->act[i], n);
        x = c->act[i];
    }
    return cx_mlp_forward(&c->mlp, p, x, B);
}

void cx_cnn_backward(cx_cnn *c, cx_params *p, const float *in, const float *dout, float *din,
                     int B)
{
    int last = c->nblocks - 1;
    float *g = c->grad_buf;
    cx_mlp_backward(&c->mlp, p, c->act[last], dout, g, B);
    for (int i = last; i >= 0; i--) {
        const cx_conv2d_dims *d = &c->conv[i];
        size_t n = (size_t)B * (size_t)d->cout * (size_t)c->pool_h[i] * (size_t)c->pool_w[i];
        cx_relu_backward(g, g, c->act[i], n);
        /* g is consumed here, so the convolution below may write the next gradient into it. */
        cx_maxpool2d_backward(c->conv_buf, g, c->arg[i], B, d->cout, d->h, d->w);
        cx_conv2d_backward(i > 0 ? g : din, cx_param_grad(p, c->w[i]), cx_param_grad(p, c->b[i]),
                           c->scratch, c->conv_buf, i > 0 ? c->act[i - 1] : in,
                           cx_param_value(p, c->w[i]), B, d);
    }
}

const float *cx_cnn_tokens(const cx_cnn *c, int B, float *out, int *T, int *D)
{
    int l = c->nblocks - 1, C = c->conv[l].cout, hw = c->pool_h[l] * c->pool_w[l];
    *T = hw;
    *D = C;
    const float *a = c->act[l];
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            for (int t = 0; t < hw; t++)
                out[((size_t)b * hw + t) * C + ch] = a[((size_t)b * C + ch) * hw + t];
    return out;
}

void cx_cnn_free(cx_cnn *c)
{
    for (int i = 0; i < CX_CNN_MAX_BLOCKS; i++) {
        free(c->act[i]);
        free(c->arg[i]);
        c->act[i] = NULL;
        c->arg[i] = NULL;
    }
    free(c->conv_buf);
    free(c->grad_buf);
    free(c->scratch);
    c->conv_buf = c->grad_buf = c->scratch = NULL;
    c->scratch_floats = 0;
    cx_mlp_free(&c->mlp);
}
