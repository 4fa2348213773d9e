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

#endif
