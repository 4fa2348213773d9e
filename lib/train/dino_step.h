/* One DINO training step (objective dino, methods.md sections 3 and 9): two augmented views of
 * each sample, the EMA teacher's Sinkhorn-Knopp targets on a random K of the P prototypes, the
 * student's cross-view loss and its backward. The trainer runs the optimiser and then moves the
 * teacher (cx_model_teacher_update with cx_dino_momentum). */
#ifndef CX_TRAIN_DINO_STEP_H
#define CX_TRAIN_DINO_STEP_H

#include <stdint.h>

#include "lib/base/dist.h"
#include "lib/base/err.h"
#include "lib/data/augment.h"
#include "lib/model/model.h"

typedef struct {
    int max_batch;            /* samples per step; the model holds 2 max_batch rows */
    int in_dim, P, K, D;      /* input values, prototypes, prototypes per step (0: all), bottleneck */
    int iters;                /* Sinkhorn-Knopp iterations */
    double temp_s, temp_t;    /* student and teacher temperatures */
    const cx_dist *dist;      /* the data-parallel job (not owned), or NULL: one process */
    int world;                /* its processes (1 without one) */
    /* Buffers, owned, sized once (R = 2 max_batch rows: view a, then view b): */
    float *views;             /* (R, in_dim) */
    int32_t *idx;             /* (P) the step's prototypes */
    uint32_t *perm;           /* (P) */
    float *s_scores, *t_scores, *targets, *ds; /* (R, P) */
    float *s_xn, *t_xn, *dz;  /* (R, D) */
    float *s_xnorm, *t_xnorm; /* (R) */
    float *s_wn, *t_wn;       /* (P, D) */
    float *s_wnorm, *t_wnorm; /* (P) */
    float *dfeat;             /* (R, embed_dim) */
    float *scratch;           /* (R + P) D */
    double *work;             /* (world max_batch + 1, P) */
    /* With world > 1, one view's teacher scores and targets of the whole global batch: */
    float *g_scores, *g_targets; /* (world max_batch, P), NULL with one process */
} cx_dino_step;

/* Buffers for m (a DINO model built for 2 max_batch rows). CX_EUSAGE when K > P. dist (may be
 * NULL) is the data-parallel job whose every process runs the step on its max_batch rows of the
 * global batch. */
cx_status cx_dino_step_init(cx_dino_step *d, const cx_model *m, int max_batch, int K, int iters,
                            double temp_s, double temp_t, const cx_dist *dist, cx_err *err);

/* The step on B <= max_batch samples in (B, in_dim), samples[i] the stored-file index of row i
 * (the views are keyed by seed, step and sample, view 0 and 1; with no aug.* set both are the
 * input). The prototype subset comes from cx_dino_sample_prototypes(seed, step), so a resumed
 * run draws the same. Sinkhorn-Knopp runs on each view's B teacher rows. Adds the student's
 * gradients (image tower, head, prototypes); the teacher takes none. *loss is the mean of the
 * two cross-view cross-entropies. */
cx_status cx_dino_step_run(cx_dino_step *d, cx_model *m, const cx_aug_config *aug,
                           const cx_aug_shape *shape, uint64_t seed, uint64_t step,
                           const uint64_t *samples, const float *in, int B, double *loss,
                           cx_err *err);

void cx_dino_step_free(cx_dino_step *d);

#endif
