/* Differentiable ops as forward/backward pairs on caller-owned float buffers (llm.c style).
 *
 * Conventions for every op here:
 * - Shapes are explicit arguments; matrices are row-major; B is the batch (rows).
 * - Ops never allocate. What backward needs (means, norms, probabilities) is saved by forward
 *   into buffers the caller passes.
 * - Gradients of PARAMETERS (weights, biases, gains, the logit scale) are ADDED into their
 *   buffers, so a step zeroes the gradient buffer once and shared parameters sum correctly.
 * - Gradients of ACTIVATIONS (din, dimg ...) are OVERWRITTEN; an elementwise backward may run
 *   in place (din == dout). Passing NULL for an activation gradient skips its computation
 *   (the first layer needs no gradient for its input).
 * - Loops over elements are threaded with OpenMP with a static schedule, and every reduction
 *   is summed in a fixed order, so results are bit-identical for a given thread count.
 * - Each op has a naive reference and a finite-difference gradient check in tests/check_ops.c.
 */
#ifndef CX_OPS_OPS_H
#define CX_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

/* ---- linear ------------------------------------------------------------------------------ */
/* out (B, N) = in (B, K) W^T + b, with W (N, K) laid out as torch.nn.Linear's weight and b (N)
 * or NULL. */
void cx_linear_forward(float *out, const float *in, const float *w, const float *b, int B, int K,
                       int N);
/* din (B, K) = dout W (overwritten; skipped when NULL); dw (N, K) += dout^T in;
 * db (N) += column sums of dout (skipped when NULL). */
void cx_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                        const float *w, int B, int K, int N);

/* ---- activations (elementwise over n values; out may equal in, din may equal dout) -------- */
void cx_relu_forward(float *out, const float *in, size_t n);
/* din = dout * (out > 0): takes the forward OUTPUT, so the input need not be kept. */
void cx_relu_backward(float *din, const float *dout, const float *out, size_t n);

/* Exact GELU, x * Phi(x) with the normal CDF through erf (torch.nn.GELU's default). */
void cx_gelu_forward(float *out, const float *in, size_t n);
/* din = dout * GELU'(in): takes the forward INPUT. */
void cx_gelu_backward(float *din, const float *dout, const float *in, size_t n);

/* ---- layer normalisation over the last dimension ----------------------------------------- */
/* out (B, D) = (in - mean) * rstd * gamma + beta; mean, rstd (B) saved for backward;
 * rstd = 1 / sqrt(biased variance + eps) as torch.nn.LayerNorm (eps 1e-5 there). */
void cx_layernorm_forward(float *out, float *mean, float *rstd, const float *in,
                          const float *gamma, const float *beta, int B, int D, float eps);
/* din (B, D) overwritten (skipped when NULL; din may equal dout); dgamma, dbeta (D) added. */
void cx_layernorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                           const float *in, const float *mean, const float *rstd,
                           const float *gamma, int B, int D);

/* ---- batch normalisation (BatchNorm1d) over the rows -------------------------------------- */
/* Training mode: column statistics of in (B, D) (mean and biased variance, in double in row
 * order); out (B, D) = (in - mean) * rstd * gamma + beta, or without gamma and beta when gamma
 * is NULL (affine off); mean, rstd (D) saved for backward (rstd = 1/sqrt(var + eps)).
 * running_mean, running_var (D) (either may be NULL: not tracked) are updated as PyTorch's:
 * r = (1 - momentum) r + momentum stat, with the UNBIASED variance (B - 1 denominator;
 * B = 1 uses the biased one, where PyTorch refuses). out may not alias in. */
void cx_batchnorm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                                float *running_var, const float *in, const float *gamma,
                                const float *beta, int B, int D, float eps, float momentum);
/* Eval mode: the running statistics normalise; gamma NULL: no affine. out may equal in. */
void cx_batchnorm_forward_eval(float *out, const float *in, const float *running_mean,
                               const float *running_var, const float *gamma, const float *beta,
                               int B, int D, float eps);
/* Training-mode backward: din (B, D) = rstd (g - mean(g) - xhat mean(g xhat)), g = dout gamma,
 * overwritten (skipped when NULL; din may equal dout); dgamma, dbeta (D) added (skipped when
 * dgamma is NULL; gamma NULL means affine off). */
void cx_batchnorm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                           const float *in, const float *mean, const float *rstd,
                           const float *gamma, int B, int D);

/* ---- L2 normalisation of rows ------------------------------------------------------------ */
/* out (B, D) = in / max(||in||, eps) as torch.nn.functional.normalize (eps 1e-12 there);
 * norm (B) saves max(||in||, eps). out may equal in. */
void cx_l2norm_forward(float *out, float *norm, const float *in, int B, int D, float eps);
/* din (B, D) = (dout - out * <dout, out>) / norm where ||in|| > eps, dout / eps elsewhere;
 * takes the forward OUTPUT. din may equal dout. */
void cx_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                        int B, int D, float eps);

/* ---- embedding bag: mean of token embeddings, padding ignored ----------------------------- */
/* out (B, D) = mean of table rows tokens[b, t] over t with tokens[b, t] != pad; tokens (B, T)
 * hold ids in [0, V) or pad; a row of only padding gives zeros (torch.nn.EmbeddingBag with
 * mode='mean' and padding_idx). */
void cx_embag_mean_forward(float *out, const int32_t *tokens, const float *table, int B, int T,
                           int D, int32_t pad);
/* dtable (V, D) += the scatter of dout / count to each non-pad token's row. Deterministic:
 * threads split the D columns, never the rows. */
void cx_embag_mean_backward(float *dtable, const float *dout, const int32_t *tokens, int B,
                            int T, int D, int32_t pad);

/* ---- softmax cross-entropy --------------------------------------------------------------- */
/* loss = sum_i w_i CE(z_i + offset, y_i) / sum_i w_i, the mean when weights is NULL (the
 * normalisation of torch's F.cross_entropy with a weight per target class, here given per
 * sample so class weights, sampling weights and masks all fit). offset (C) is added to every
 * row of logits before the softmax (balanced softmax, logit adjustment) or NULL.
 * probs (B, C) saves softmax(z + offset). Targets must lie in [0, C). Accumulates in double.
 * A sample of weight 0 contributes nothing (even with an infinite loss); when sum_i w_i == 0
 * (a fully masked batch) the loss is 0 and backward gives zero dlogits, not NaN. */
double cx_softmax_ce_forward(float *probs, const float *logits, const int32_t *targets,
                             const float *weights, const float *offset, int B, int C);
/* dlogits (B, C) = dloss * w_i / sum(w) * (probs_i - onehot(y_i)), overwritten. */
void cx_softmax_ce_backward(float *dlogits, const float *probs, const int32_t *targets,
                            const float *weights, int B, int C, float dloss);

/* ---- symmetric InfoNCE (CLIP) ------------------------------------------------------------ */
/* img, txt (B, D): L2-normalised features of matching pairs (row i of each is a pair).
 * scale = exp(theta), theta the learnable logit-scale parameter.
 * logits (B, B) = scale * img txt^T;
 * loss = [CE(logits, arange(B)) + CE(logits^T, arange(B))] / 2.
 * Saves p_row (B, B), the row softmax of logits, and p_col (B, B), the column softmax of
 * logits (p_col[i][j] = softmax over i of logits[., j]). Returns the loss (double). */
double cx_infonce_forward(float *logits, float *p_row, float *p_col, const float *img,
                          const float *txt, float scale, int B, int D);
/* With G = dloss * [(p_row - I) + (p_col - I)] / (2B): dimg (B, D) = scale G txt and
 * dtxt (B, D) = scale G^T img (overwritten; each skipped when NULL);
 * dtheta += sum(G .* logits), the gradient through scale = exp(theta) (skipped when NULL,
 * for a fixed temperature).
 * scratch is (B, B) floats the op may overwrite (it holds G). */
void cx_infonce_backward(float *dimg, float *dtxt, float *dtheta, float *scratch,
                         const float *p_row, const float *p_col, const float *logits,
                         const float *img, const float *txt, float scale, int B, int D,
                         float dloss);

/* ---- 2-D convolution (stride 1, zero padding) and 2x2 max pooling on NCHW batches --------- */
/* Their naive references, gradient checks and PyTorch fixtures are in tests/check_model.c. */
/* A convolution layer's shape: in (B, cin, h, w) -> out (B, cout, h + 2 pad - k + 1,
 * w + 2 pad - k + 1); weight (cout, cin, k, k) and bias (cout) laid out as torch.nn.Conv2d's
 * (stride 1, dilation 1, groups 1, padding_mode 'zeros'). */
typedef struct {
    int cin, h, w;
    int cout, k, pad;
} cx_conv2d_dims;

/* The op lowers a chunk of samples at a time to a column matrix (im2col) in caller-owned
 * scratch and multiplies it with cx_sgemm. A chunk holds as many samples as fit in
 * CX_CONV2D_CHUNK_FLOATS floats of scratch (4 MiB), and at least one. For a batch of 256 28x28
 * images the layer 1->32 runs in chunks of 32 samples and 32->64 on 14x14 in chunks of 15, in
 * 3.9 MiB of scratch each, where the whole batch at once would take 31 MiB and 67 MiB. The
 * chunk size depends on the shape only, never on the thread count, so the weight and bias
 * gradients are summed over chunks in the same order on any number of threads. */
#define CX_CONV2D_CHUNK_FLOATS ((size_t)1 << 20)

/* Output height and width; 0 or less when the kernel does not fit the padded input. */
static inline int cx_conv2d_out_h(const cx_conv2d_dims *d) { return d->h + 2 * d->pad - d->k + 1; }
static inline int cx_conv2d_out_w(const cx_conv2d_dims *d) { return d->w + 2 * d->pad - d->k + 1; }

/* Floats of scratch that forward and backward need for batches of up to max_batch samples:
 * (cin k k + cout) Ho Wo per sample of a chunk, so at most
 * max(CX_CONV2D_CHUNK_FLOATS, one sample's need). */
size_t cx_conv2d_scratch_floats(const cx_conv2d_dims *d, int max_batch);

/* out (B, cout, Ho, Wo) = conv(in (B, cin, h, w), w) + b; b (cout) may be NULL. scratch holds
 * cx_conv2d_scratch_floats(d, B) floats (or more) and is overwritten. */
void cx_conv2d_forward(float *out, float *scratch, const float *in, const float *w,
                       const float *b, int B, const cx_conv2d_dims *d);
/* din (B, cin, h, w) overwritten (skipped when NULL); dw (cout, cin, k, k) and db (cout) added
 * (db skipped when NULL). Takes the forward INPUT; scratch as for forward. */
void cx_conv2d_backward(float *din, float *dw, float *db, float *scratch, const float *dout,
                        const float *in, const float *w, int B, const cx_conv2d_dims *d);

/* out (B, C, H/2, W/2) = the maximum of each 2x2 window, stride 2 (torch.nn.MaxPool2d(2)): an
 * odd H or W drops its last row or column. idx (B, C, H/2, W/2) saves each maximum's offset in
 * its input plane (ih W + iw, as torch's return_indices); the first maximum in row-major window
 * order wins ties, and a NaN wins over numbers (the last NaN of a window, as torch's CPU
 * kernel), so a diverged input propagates. */
void cx_maxpool2d_forward(float *out, int32_t *idx, const float *in, int B, int C, int H, int W);
/* din (B, C, H, W) overwritten: dout at each saved maximum, zero elsewhere. */
void cx_maxpool2d_backward(float *din, const float *dout, const int32_t *idx, int B, int C,
                           int H, int W);

/* ---- transformer: attention, embeddings, the pre-norm block -------------------------------- */
/* Their naive references, gradient checks and PyTorch fixture are in tests/check_attention.c. */

/* Multi-head scaled dot-product self-attention over B sequences of T tokens, H heads of Dh
 * (D = H Dh). qkv (B, T, 3D) is a fused projection, each row [q | k | v], head h at columns
 * h Dh .. (h + 1) Dh of each part (torch.nn.MultiheadAttention's in_proj layout). Query i of
 * sequence b sees keys j < lengths[b] (all T when lengths is NULL: a key padding mask), and
 * with causal only j <= i as well. probs (B, H, T, T) saves the row softmax of
 * q k^T / sqrt(Dh), zero at masked keys; ctx (B, T, D) = probs v, heads side by side. A query
 * that sees no key gets zero probabilities and a zero context (no NaN). */
void cx_attention_forward(float *ctx, float *probs, const float *qkv, const int32_t *lengths,
                          int B, int T, int H, int Dh, int causal);
/* dqkv (B, T, 3D) overwritten from dctx (B, T, D); dscores (B, H, T, T) is scratch. */
void cx_attention_backward(float *dqkv, float *dscores, const float *dctx, const float *probs,
                           const float *qkv, const int32_t *lengths, int B, int T, int H, int Dh,
                           int causal);

/* out (N, D) = table rows tokens[0..N) (torch.nn.Embedding); ids in [0, V). */
void cx_embed_forward(float *out, const int32_t *tokens, const float *table, int N, int D);
/* dtable (V, D) += dout scattered to each token's row, in token order per column. */
void cx_embed_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D);

/* Learned positional embeddings: out (B, T, D) = in + pos (T, D) for every b; out may equal in. */
void cx_posembed_forward(float *out, const float *in, const float *pos, int B, int T, int D);
/* dpos (T, D) += sum over b of dout (B, T, D). */
void cx_posembed_backward(float *dpos, const float *dout, int B, int T, int D);

/* Images (B, C, H, W) -> patches (B, (H/p) (W/p), C p p), patches in row-major grid order and
 * each patch's values in (c, ky, kx) order, so a linear layer on them is torch's
 * Conv2d(kernel_size = p, stride = p) with its weight flattened. p must divide H and W. */
void cx_patchify(float *out, const float *in, int B, int C, int H, int W, int p);

/* A pre-norm block, x1 = x + Attn(LN1(x)), y = x1 + MLP(LN2(x1)) with MLP = Linear(D, F),
 * exact GELU, Linear(F, D) (open_clip's ResidualAttentionBlock, timm's Block). */
typedef struct {
    int B, T, D, H, F; /* sequences, tokens, width, heads (dividing D), MLP width */
    int causal;
    const int32_t *lengths; /* (B) key padding, or NULL */
    float eps;              /* LayerNorm (1e-5 as torch's default) */
} cx_block_dims;

/* Pointers to a block's tensors (values, or their gradients) in torch's layouts. */
typedef struct {
    float *ln1_g, *ln1_b;   /* (D) */
    float *w_qkv, *b_qkv;   /* (3D, D), (3D) */
    float *w_out, *b_out;   /* (D, D), (D) */
    float *ln2_g, *ln2_b;   /* (D) */
    float *w_fc, *b_fc;     /* (F, D), (F) */
    float *w_proj, *b_proj; /* (D, F), (D) */
} cx_block_params;

/* What forward keeps for backward, per block; carved from one buffer of
 * cx_block_saved_floats(d) floats. */
typedef struct {
    float *mean1, *rstd1, *mean2, *rstd2; /* (N = B T) */
    float *qkv;                           /* (N, 3D) */
    float *ctx, *x1;                      /* (N, D) */
    float *h;                             /* (N, F) MLP pre-activation */
    float *probs;                         /* (B, H, T, T) */
} cx_block_saved;

/* Scratch shared by all blocks of a stack (cx_block_scratch_floats(d) floats). */
typedef struct {
    float *ln, *g, *dg, *dqkv, *dx1, *dctx, *dscores;
} cx_block_scratch;

size_t cx_block_saved_floats(const cx_block_dims *d);
size_t cx_block_scratch_floats(const cx_block_dims *d);
void cx_block_saved_carve(cx_block_saved *s, float *buf, const cx_block_dims *d);
void cx_block_scratch_carve(cx_block_scratch *s, float *buf, const cx_block_dims *d);

/* y (B, T, D) from x (B, T, D); y must not alias x (backward takes x). */
void cx_block_forward(float *y, const float *x, const cx_block_params *w, const cx_block_saved *s,
                      const cx_block_scratch *sc, const cx_block_dims *d);
/* dx (B, T, D) overwritten from dy (dx may equal dy); parameter gradients added into g. */
void cx_block_backward(float *dx, const float *dy, const float *x, const cx_block_params *w,
                       const cx_block_params *g, const cx_block_saved *s,
                       const cx_block_scratch *sc, const cx_block_dims *d);

#endif
