/* The classifier of a retrained run (RUN2/model.ckpt, written by lib/eval/retrain.c) in the
 * linear form `clipx eval RUN2` scores with. */
#ifndef CX_EVAL_RETRAIN_CLF_H
#define CX_EVAL_RETRAIN_CLF_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/dataset.h"
#include "lib/data/val_split.h"
#include "lib/eval/classifier.h"
#include "lib/model/model.h"

enum { CX_RETRAIN_MAX_HIDDEN = 8 };

typedef struct {
    int C, D;        /* evaluated classes, the base tower's feature size (the input) */
    int gated;       /* DisAlign: scores are w . [x^, g x^, g] + b with g = sigmoid(gw . x + gb) */
    int normalize;   /* x^ = x / ||x|| (cosine heads), else x^ = x */
    float scale;     /* logits = scale * x^ . W_c + b_c (gated: scale 1, folded into W) */
    float *w;        /* (C, gated ? 2D + 1 : D), owned */
    float *b;        /* (C), owned */
    float *gate_w;   /* (D), owned; gated only */
    float gate_b;
    /* Decoder: nhidden ReLU layers before W: h_0 = x, h_{i+1} = relu(h_i hw_i^T + hb_i), and W
     * (C, hdims[nhidden]) scores h_nhidden; hdims[0] = D. */
    int nhidden;
    int hdims[CX_RETRAIN_MAX_HIDDEN + 1];
    float *hw[CX_RETRAIN_MAX_HIDDEN]; /* (hdims[i+1], hdims[i]), owned */
    float *hb[CX_RETRAIN_MAX_HIDDEN]; /* (hdims[i+1]), owned */
    /* decoder.type transformer: depth > 0 blocks of heads heads over tokens (T, D) before the
     * mean pooling that W scores; the blocks live in model.ckpt's param.decoder.* */
    int tokdec_depth, tokdec_heads, tokdec_T;
    struct cx_retrain_tok *tok; /* the blocks read back for eval (NULL otherwise), owned */
    /* CFR: a retrained image projection x' = proj_w x + proj_b before W scores x' (D wide):
     * with proj_tower its input is the rows entering RUN's image tower's last linear layer
     * (the model's features_before_last), which it replaces; else RUN's features. */
    float *proj_w;   /* (D, proj_in), owned; NULL without a projection */
    float *proj_b;   /* (D), owned */
    int proj_in, proj_tower;
    int method;
    double tau;      /* tau-norm: the tau, else NaN */
    cx_val_source val_source;
    int64_t epochs_done, epochs;
} cx_retrain_clf;

void cx_retrain_clf_free(cx_retrain_clf *r);
/* Read RUN2/model.ckpt's classifier. CX_EDATA naming the file when it is missing or bad. */
cx_status cx_retrain_read_clf(const char *dir, cx_retrain_clf *r, cx_err *err);
/* A classifier of lib/eval/classifier.h equal to r, and the features it scores: *xs is NULL
 * (score x itself) or, for a gated classifier, a malloc'd (n, 2D + 1) copy [x^, g x^, g], or
 * for a decoder its last hidden layer's activations (n, hdims[nhidden]), or for a projection
 * (CFR) the projected features (n, D) of x (n, proj_in); for a token decoder x is the
 * pooled features (n, D) of cx_retrain_tok_pool and *xs NULL. */
cx_status cx_retrain_eval_setup(const cx_retrain_clf *r, const float *x, size_t n,
                                cx_eval_classifier *clf, float **xs, cx_err *err);

/* A token decoder's pooled features out (n, D) of rows (n) of split s (all its rows in order
 * when rows is NULL): the frozen tower m's tokens a chunk of rows at a time through the
 * decoder's blocks, so only one chunk's tokens are held, never the split's. CX_EDATA naming
 * `what` when the samples do not fit the tower; CX_EUSAGE when r is no token decoder. */
cx_status cx_retrain_tok_pool(const cx_retrain_clf *r, cx_model *m, const cx_split *s,
                              const uint32_t *rows, size_t n, float *out, const char *what,
                              cx_err *err);

#endif
