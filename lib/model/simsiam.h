/* DeCLIP's image self-supervision head (SimSiam, methods.md section 6) on the image tower's
 * output: a projector of 3 linear layers each followed by BatchNorm1d (ReLU after the first
 * two) and a bottleneck predictor (linear, BatchNorm1d, ReLU, linear). Widths: the projector
 * keeps the embedding width E, the predictor's bottleneck is max(1, E / 4). Each view is its
 * own batch (its own batch statistics), as SimSiam runs its two views. */
#ifndef CX_MODEL_SIMSIAM_H
#define CX_MODEL_SIMSIAM_H

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/params.h"

enum { CX_SIMSIAM_LAYERS = 5, CX_SIMSIAM_BNS = 4 };

typedef struct {
    int E, P;                                /* embedding width, predictor bottleneck */
    int in[CX_SIMSIAM_LAYERS], out[CX_SIMSIAM_LAYERS];
    int w[CX_SIMSIAM_LAYERS], b[CX_SIMSIAM_LAYERS];   /* parameter indices */
    int gamma[CX_SIMSIAM_BNS], beta[CX_SIMSIAM_BNS];
    int rmean[CX_SIMSIAM_BNS], rvar[CX_SIMSIAM_BNS];  /* running statistics (frozen) */
    int max_batch;
    /* Per view v (2), owned, (max_batch, width): linear outputs, normalised (and activated)
     * outputs, the batch statistics; p the predictor's output. */
    float *pre[2][CX_SIMSIAM_LAYERS], *act[2][CX_SIMSIAM_BNS];
    float *mean[2][CX_SIMSIAM_BNS], *rstd[2][CX_SIMSIAM_BNS];
    float *g1, *g2;                          /* (max_batch, E) backward scratch */
} cx_simsiam;

/* Declare the tensors under prefix (prefix.fcK.weight/bias, prefix.bnK.weight/bias and
 * running_mean/running_var). */
cx_status cx_simsiam_declare(cx_simsiam *s, cx_params *p, const char *prefix, int E, cx_err *err);
/* PyTorch's defaults: linear U(-1/sqrt(in), 1/sqrt(in)), BN gamma 1, beta 0, running 0/1. */
void cx_simsiam_init_params(const cx_simsiam *s, cx_params *p, cx_rng *rng);
/* Buffers for max_batch rows per view. */
cx_status cx_simsiam_alloc(cx_simsiam *s, int max_batch, cx_err *err);
void cx_simsiam_free(cx_simsiam *s);

/* L = -1/2 [cos(p1, sg(z2)) + cos(p2, sg(z1))], each the mean over the B rows, for the
 * image features f (2B, E: view 0 then view 1); adds w dL/d(params) and w dL/df into df
 * (2B, E; skipped when NULL). Updates the running statistics. Returns L. */
double cx_simsiam_loss(cx_simsiam *s, cx_params *p, const float *f, float *df, int B, float w);
/* The same with z1, z2 replaced by targets (2B, E: z1 then z2) when not NULL: the function
 * whose plain derivative the stop-gradient loss's gradient is (for finite-difference checks).
 * After either call, s->act[v][2] holds z of view v. */
double cx_simsiam_loss_to(cx_simsiam *s, cx_params *p, const float *f, float *df, int B, float w,
                          const float *targets);

#endif
