/* A stack of linear layers with an activation (and optional LayerNorm) between them: the image
 * tower (linear = no hidden layers, mlp) and the text tower's projection. Activations live in
 * buffers sized once for the largest batch, so forward and backward never allocate. */
#ifndef CX_MODEL_MLP_H
#define CX_MODEL_MLP_H

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/params.h"

typedef enum { CX_ACT_RELU, CX_ACT_GELU } cx_act;
typedef enum { CX_NORM_NONE, CX_NORM_LAYER } cx_norm;

enum { CX_MLP_MAX_LAYERS = 16 };

typedef struct {
    int nlayers;                        /* linear layers; hidden layers = nlayers - 1 */
    int dims[CX_MLP_MAX_LAYERS + 1];    /* dims[0] input, dims[nlayers] output */
    cx_act act;
    cx_norm norm;
    int w[CX_MLP_MAX_LAYERS], b[CX_MLP_MAX_LAYERS];         /* parameter indices */
    int gain[CX_MLP_MAX_LAYERS], shift[CX_MLP_MAX_LAYERS];  /* LayerNorm, hidden layers only */
    int max_batch;
    /* Per layer i, owned, (max_batch, dims[i+1]) floats: */
    float *z[CX_MLP_MAX_LAYERS];        /* linear output */
    float *n[CX_MLP_MAX_LAYERS];        /* LayerNorm output (hidden layers, with norm) */
    float *a[CX_MLP_MAX_LAYERS];        /* activation output (hidden layers) */
    float *mean[CX_MLP_MAX_LAYERS], *rstd[CX_MLP_MAX_LAYERS]; /* (max_batch) LayerNorm stats */
    float *grad_buf;                    /* (max_batch, max dim) backward scratch, owned */
} cx_mlp;

/* Declare the layers' parameters as PREFIX.fcI.weight (dims[i+1], dims[i]), PREFIX.fcI.bias,
 * PREFIX.lnI.weight / .bias; flags are added to every tensor (e.g. CX_PARAM_FROZEN). */
cx_status cx_mlp_declare(cx_mlp *m, cx_params *p, const char *prefix, int in_dim,
                         const int64_t *hidden, int nhidden, int out_dim, cx_act act,
                         cx_norm norm, unsigned flags, cx_err *err);

/* Activation buffers for batches of up to max_batch rows (after cx_params_alloc or before). */
cx_status cx_mlp_alloc(cx_mlp *m, int max_batch, cx_err *err);

/* torch.nn.Linear's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and
 * biases; LayerNorm gain 1, shift 0. */
void cx_mlp_init_params(const cx_mlp *m, cx_params *p, cx_rng *rng);

/* Returns the output (B, out_dim), a buffer of m valid until the next forward. */
const float *cx_mlp_forward(cx_mlp *m, const cx_params *p, const float *in, int B);

/* Given dout (B, out_dim) for the last forward's output: adds parameter gradients and writes
 * din (B, in_dim) unless it is NULL. dout is not modified. */
void cx_mlp_backward(cx_mlp *m, cx_params *p, const float *in, const float *dout, float *din,
                     int B);

void cx_mlp_free(cx_mlp *m);

#endif
