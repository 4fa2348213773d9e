/* Parameter store: every tensor of a model lives in one values allocation, one gradients
 * allocation and one optimiser-state allocation, each tensor a view at an aligned offset.
 * Declare all tensors first, then allocate once; pointers are stable after allocation. */
#ifndef CX_MODEL_PARAMS_H
#define CX_MODEL_PARAMS_H

#include <stddef.h>

#include "lib/base/err.h"

enum {
    CX_PARAM_NO_DECAY = 1u << 0, /* biases, norm gains, logit scale: no weight decay */
    CX_PARAM_FROZEN = 1u << 1,   /* never updated by the optimiser */
    CX_PARAM_NO_STATE = 1u << 2  /* with FROZEN: checkpoints hold no optimiser state for it
                                    (a frozen image tower; the older frozen tensors keep
                                    theirs so their checkpoints stay byte-identical), and
                                    nothing writes its gradient (the model runs no backward
                                    into it), so the optimiser does not zero it each step */
};

#define CX_PARAM_NAME_MAX 64
#define CX_PARAM_MAX_DIMS 4

typedef struct {
    char name[CX_PARAM_NAME_MAX]; /* unique, e.g. "image.fc1.weight" */
    int ndim;
    int shape[CX_PARAM_MAX_DIMS];
    size_t offset; /* in floats, into value/grad/each state slot; a multiple of 16 */
    size_t size;   /* product of shape */
    unsigned flags;
} cx_param_info;

typedef struct {
    cx_param_info *info; /* (count), owned */
    int count, cap;
    size_t total;        /* floats per buffer, padding included */
    float *value;        /* (total), owned, zeroed at allocation */
    float *grad;         /* (total), owned */
    float *state;        /* (nslots * total), owned: optimiser slots (AdamW m, v; SGD momentum) */
    int nslots;
} cx_params;

void cx_params_init(cx_params *p);

/* Declare a tensor; returns its index (>= 0), or minus the failure's status with err set
 * (-CX_EUSAGE: duplicate name, bad shape, already allocated; -CX_ENOMEM). */
int cx_params_declare(cx_params *p, const char *name, int ndim, const int *shape, unsigned flags,
                      cx_err *err);

/* The status of a failed declaration, from the index cx_params_declare returned (< 0). */
static inline cx_status cx_params_failure(int index)
{
    return (cx_status)-index;
}

/* One allocation each for values, gradients and nslots optimiser slots, all zeroed. */
cx_status cx_params_alloc(cx_params *p, int nslots, cx_err *err);

/* Index of a tensor by name, or -1. */
int cx_params_find(const cx_params *p, const char *name);

static inline float *cx_param_value(const cx_params *p, int idx)
{
    return p->value + p->info[idx].offset;
}

static inline float *cx_param_grad(const cx_params *p, int idx)
{
    return p->grad + p->info[idx].offset;
}

/* Optimiser slot s of tensor idx. */
static inline float *cx_param_state(const cx_params *p, int slot, int idx)
{
    return p->state + (size_t)slot * p->total + p->info[idx].offset;
}

void cx_params_zero_grad(cx_params *p);

/* Number of trainable scalars (frozen tensors excluded). */
size_t cx_params_trainable(const cx_params *p);

void cx_params_free(cx_params *p);

#endif
