/* Optimisers with PyTorch's update rules (torch.optim.AdamW and SGD, single-tensor path), so a
 * step can be checked against a PyTorch fixture. One pass over the parameter memory per step. */
#ifndef CX_OPTIM_OPTIM_H
#define CX_OPTIM_OPTIM_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/model/params.h"

typedef enum { CX_OPTIM_ADAMW, CX_OPTIM_SGD } cx_optim_kind;

typedef struct {
    cx_optim_kind kind;
    double wd;           /* weight decay (decoupled for AdamW, L2 added to the gradient for SGD);
                            never applied to tensors flagged CX_PARAM_NO_DECAY */
    double beta1, beta2; /* AdamW */
    double eps;          /* AdamW */
    double momentum;     /* SGD; 0 disables the momentum buffer */
    int nesterov;        /* SGD */
} cx_optim_config;

typedef struct {
    cx_optim_config cfg;
    int64_t step;        /* updates applied so far (AdamW bias correction uses step + 1) */
    double *block_sums;  /* (nblocks) scratch for the gradient norm, owned */
    size_t nblocks;
} cx_optim;

/* Optimiser state slots the kind needs in cx_params (AdamW 2; SGD 1 with momentum, else 0). */
int cx_optim_slots(const cx_optim_config *cfg);

/* Bind to a parameter store (allocated with cx_optim_slots slots). */
cx_status cx_optim_init(cx_optim *o, const cx_optim_config *cfg, const cx_params *p, cx_err *err);
void cx_optim_free(cx_optim *o);

/* Global L2 norm of the trainable gradients, summed in double over fixed blocks in a fixed
 * order (identical for any thread count). */
double cx_optim_grad_norm(cx_optim *o, const cx_params *p);

/* torch.nn.utils.clip_grad_norm_: scale gradients by max_norm / (norm + 1e-6) when that is
 * below 1. Returns the norm before clipping. */
double cx_optim_clip_grad(cx_optim *o, cx_params *p, double max_norm);

/* One update of every trainable tensor with learning rate lr; frozen tensors are skipped. */
void cx_optim_step(cx_optim *o, cx_params *p, double lr);

/* The same update restricted to the elements [lo, hi) of the flat parameter buffers (a shard:
 * data-parallel processes each update their own and exchange the results). The result on
 * those elements is exactly cx_optim_step's. */
void cx_optim_step_range(cx_optim *o, cx_params *p, double lr, size_t lo, size_t hi);

/* cx_optim_step_range that also leaves the gradient's elements [lo, hi) zero (frozen tensors'
 * too), in the same pass: the update reads each gradient element once anyway, and a separate
 * zeroing pass over the whole gradient is a memory-bound few percent of a W1 step. The
 * parameters and state come out exactly as cx_optim_step_range's. */
void cx_optim_step_range_zero(cx_optim *o, cx_params *p, double lr, size_t lo, size_t hi);

#endif
