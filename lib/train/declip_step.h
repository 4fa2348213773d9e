/* One DeCLIP training step (objective declip, methods.md section 6) on a CLIP model built for
 * 2 max_batch rows: two augmented image views and two caption views (the original and EDA's),
 * L = w_mv L_MV + w_nns L_NNS + w_iss L_ISS: L_MV and L_NNS as cx_declip_loss computes them
 * (the NN from the FIFO queue of caption embeddings held in the model's parameters, queried
 * first, then the original captions enqueued, detached), L_ISS SimSiam's on the image
 * tower's outputs of the two views (lib/model/simsiam.h). */
#ifndef CX_TRAIN_DECLIP_STEP_H
#define CX_TRAIN_DECLIP_STEP_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/augment.h"
#include "lib/model/model.h"
#include "lib/objective/declip.h"

typedef struct {
    int max_batch, in_dim, D, Q;
    double w_mv, w_nns, w_iss;
    float *views;             /* (2 max_batch, in_dim), owned */
    float *d_img, *d_txt;     /* (2 max_batch, D), owned */
    cx_declip_work work;
} cx_declip_step;
/* Buffers for m (a CLIP model for 2 max_batch rows; with w_nns > 0 it holds the queue). */
cx_status cx_declip_step_init(cx_declip_step *d, const cx_model *m, int max_batch, double w_mv,
                              double w_nns, double w_iss, cx_err *err);

/* The step on B <= max_batch samples in (B, in_dim) (samples: their stored-file indices, which
 * key the image views with seed and step) and tokens (2B rows: the original captions, then
 * their EDA view). Adds every gradient; *loss is the weighted sum. Before the queue holds an
 * entry, L_NNS is 0. */
cx_status cx_declip_step_run(cx_declip_step *d, cx_model *m, const cx_aug_config *aug,
                             const cx_aug_shape *shape, uint64_t seed, uint64_t step,
                             const uint64_t *samples, const float *in, const int32_t *tokens,
                             int B, double *loss, cx_err *err);

void cx_declip_step_free(cx_declip_step *d);

#endif
