/* The differentiable pieces of the second-stage methods over a frozen classifier's logits z
 * (B, C) (methods.md section 5), on caller-owned buffers, never allocating:
 *   LWS:      z'_c = s_c z_c                                   (s (C), init 1)
 *   DisAlign: g = sigmoid(w . f + b0), z'_c = (1 + g alpha_c) z_c + g beta_c
 *             (w (D), b0 (1), alpha (C) init 1, beta (C) init 0, f the frozen feature)
 *   MARC:     z'_c = a_c z_c + b_c ||W_c||                     (a (C) init 1, b (C) init 0)
 * Backward passes add parameter gradients and ignore dz (the classifier is frozen). */
#ifndef CX_MODEL_REBALANCE_HEAD_H
#define CX_MODEL_REBALANCE_HEAD_H

/* out (B, C) = s_c z (B, C); out may not alias z. */
void cx_lws_forward(const float *z, const float *s, int B, int C, float *out);
/* ds (C) += sum_i dout_ic z_ic. */
void cx_lws_backward(const float *z, const float *dout, int B, int C, float *ds);

/* gate (B) receives g; out (B, C). */
void cx_disalign_forward(const float *z, const float *f, const float *w, const float *b0,
                         const float *alpha, const float *beta, int B, int C, int D, float *gate,
                         float *out);
/* dw (D), db0 (1), dalpha (C), dbeta (C) added; gate from the forward. */
void cx_disalign_backward(const float *z, const float *f, const float *alpha, const float *beta,
                          const float *gate, const float *dout, int B, int C, int D, float *dw,
                          float *db0, float *dalpha, float *dbeta);

/* norms (C): ||W_c|| of the frozen classifier. */
void cx_marc_forward(const float *z, const float *norms, const float *a, const float *b, int B,
                     int C, float *out);
void cx_marc_backward(const float *z, const float *norms, const float *dout, int B, int C,
                      float *da, float *db);

#endif
