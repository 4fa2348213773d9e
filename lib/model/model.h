/* A whole model: image tower, text tower (CLIP), classification head (SL) and logit scale, in
 * one parameter store, with the training step of each objective (forward, loss, backward). */
#ifndef CX_MODEL_MODEL_H
#define CX_MODEL_MODEL_H

#include <stdint.h>

#include "lib/loss.h"
#include "lib/model/head.h"
#include "lib/model/mlp.h"
#include "lib/model/text_tower.h"
#include "lib/params.h"
#include "lib/vocab_sampler.h"

typedef enum { CX_OBJECTIVE_CLIP, CX_OBJECTIVE_SL } cx_objective;
typedef enum { CX_IMAGE_LINEAR, CX_IMAGE_MLP } cx_image_kind;
typedef enum { CX_TEXT_LINEAR, CX_TEXT_MLP } cx_text_kind;

enum { CX_MODEL_MAX_LIST = 15 };

typedef struct {
    cx_objective objective;
    int max_batch;
    /* image tower */
    cx_image_kind image_kind;
    int in_dim;                       /* features per input sample */
    int64_t image_hidden[CX_MODEL_MAX_LIST];
    int image_nhidden;
    int embed_dim;                    /* output of both towers */
    cx_act act;
    cx_norm norm;
    /* text tower: CLIP only */
    cx_text_kind text_kind;
    int vocab_size, token_dim, max_tokens;
    int64_t text_hidden[CX_MODEL_MAX_LIST];
    int text_nhidden;
    int text_frozen;
    /* head: SL only */
    int num_classes;
    cx_head_kind head_kind;
    int head_frozen;                  /* weights fixed (a text-embedding head) */
    /* logit scale: CLIP's, or the cosine head's */
    double logit_scale_init;          /* the scale itself (1/0.07), not its log */
    double logit_scale_max;           /* clamp after every step (100) */
    int logit_scale_learn;
} cx_model_spec;

typedef struct {
    cx_model_spec spec;
    cx_params params;
    cx_mlp image;                     /* linear = an MLP without hidden layers */
    cx_text_tower text;               /* CLIP */
    cx_head head;                     /* SL */
    int logit_scale;                  /* CLIP: parameter index of theta, scale = exp(theta) */
    /* Step buffers, owned, sized for spec.max_batch = B rows: */
    float *img_unit, *img_norm;       /* (B, D), (B) */
    float *txt_unit, *txt_norm;       /* (B, D), (B) */
    float *logits, *p_row, *p_col, *scratch; /* (B, B) InfoNCE */
    float *d_img, *d_txt;             /* (B, D) */
    float *dlogits;                   /* (B, C) SL */
    int32_t *classes, *targets;       /* (max(C, B)), (B) vocabulary subsampling */
} cx_model;

/* Declare and allocate parameters (with optim_slots optimiser state slots) and step buffers. */
cx_status cx_model_build(cx_model *m, const cx_model_spec *spec, int optim_slots, cx_err *err);
/* PyTorch-default initialisation from the seed (its own RNG stream). */
void cx_model_init_params(cx_model *m, uint64_t seed);

/* Image tower output (B, embed_dim), unnormalised; a buffer of the model. */
const float *cx_model_image_forward(cx_model *m, const float *x, int B);
/* Text tower output (B, embed_dim), unnormalised. */
const float *cx_model_text_forward(cx_model *m, const int32_t *tokens, int B);

/* One CLIP step on B pairs: symmetric InfoNCE; adds all gradients; returns the loss. */
double cx_model_clip_step(cx_model *m, const float *x, const int32_t *tokens, int B);

/* One SL step on B samples with labels in [0, C): head logits over all classes, or over the
 * classes the vocabulary sampler draws (when vs is not NULL, using rng); the loss l; adds all
 * gradients; returns the loss. */
double cx_model_sl_step(cx_model *m, const float *x, const int32_t *labels, int B, cx_loss *l,
                        cx_vocab_sampler *vs, cx_rng *rng, int epoch);

/* The current logit scale: CLIP's or the cosine head's exp(theta); 1 for a linear head. */
float cx_model_logit_scale(const cx_model *m);
/* Clamp theta to [0, log(logit_scale_max)] after an optimiser step (open_clip). */
void cx_model_clamp_logit_scale(cx_model *m);

void cx_model_free(cx_model *m);

#endif
