/* DINO's projection head: three linear layers with GELU between them (in -> hidden -> hidden ->
 * bottleneck) and an L2-normalised output, which the cosine prototype layer of
 * lib/objective/dino.h then scores. Buffers are sized once for the largest batch. */
#ifndef CX_MODEL_DINO_HEAD_H
#define CX_MODEL_DINO_HEAD_H

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/model/mlp.h"
#include "lib/model/params.h"

#define CX_DINO_HEAD_NORM_EPS 1e-12f /* as torch.nn.functional.normalize */

typedef struct {
    cx_mlp mlp;
    int out_dim, max_batch;
    float *out;   /* (max_batch, out_dim) normalised output, owned */
    float *norms; /* (max_batch) max(||z||, eps) of the MLP's output rows, owned */
    float *dz;    /* (max_batch, out_dim) backward scratch, owned */
} cx_dino_head;

/* Parameters PREFIX.fc0..fc2 (cx_mlp's names); flags go to every tensor. */
cx_status cx_dino_head_declare(cx_dino_head *h, cx_params *p, const char *prefix, int in_dim,
                               int hidden, int bottleneck, unsigned flags, cx_err *err);
cx_status cx_dino_head_alloc(cx_dino_head *h, int max_batch, cx_err *err);
void cx_dino_head_init_params(const cx_dino_head *h, cx_params *p, cx_rng *rng);
/* (B, bottleneck) unit rows, a buffer of h valid until the next forward. */
const float *cx_dino_head_forward(cx_dino_head *h, const cx_params *p, const float *in, int B);
/* From dout (B, bottleneck): adds parameter gradients, writes din (B, in_dim) unless NULL. */
void cx_dino_head_backward(cx_dino_head *h, cx_params *p, const float *in, const float *dout,
                           float *din, int B);
void cx_dino_head_free(cx_dino_head *h);

#endif
