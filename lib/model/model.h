/* A whole model: image tower, text tower (CLIP), classification head (SL) and logit scale, in
 * one parameter store, with the training step of each objective (forward, loss, backward). */
#ifndef CX_MODEL_MODEL_H
#define CX_MODEL_MODEL_H

#include <stdint.h>

#include "lib/base/dist.h"
#include "lib/model/cnn.h"
#include "lib/model/dino_head.h"
#include "lib/model/simsiam.h"
#include "lib/model/head.h"
#include "lib/model/mlp.h"
#include "lib/model/params.h"
#include "lib/model/seq_tower.h"
#include "lib/model/text_tower.h"
#include "lib/objective/loss.h"
#include "lib/objective/vocab_sampler.h"

/* CX_OBJECTIVE_DINO: self-supervised; its step is lib/train/dino_step.h (two views, student and
 * EMA teacher), which uses the tower pieces below. */
typedef enum { CX_OBJECTIVE_CLIP, CX_OBJECTIVE_SL, CX_OBJECTIVE_DINO } cx_objective;
/* CX_IMAGE_IDENTITY: no parameters, the flattened inputs are the features (embed_dim = in_dim):
 * features exported from an external model. */
typedef enum {
    CX_IMAGE_LINEAR,
    CX_IMAGE_MLP,
    CX_IMAGE_CNN,
    CX_IMAGE_VIT,
    CX_IMAGE_IDENTITY
} cx_image_kind;
typedef enum { CX_TEXT_LINEAR, CX_TEXT_MLP, CX_TEXT_TRANSFORMER } cx_text_kind;

/* A transformer tower's shape (ViT or text). */
typedef struct {
    int width, layers, heads, mlp; /* mlp: the MLP's hidden width */
    int causal;                    /* text only */
    int patch;                     /* ViT only */
    cx_pool pool;
} cx_seq_spec;

enum { CX_MODEL_MAX_LIST = 15 };

typedef struct {
    cx_objective objective;
    int max_batch;                    /* rows per step in this process */
    int world;                        /* processes sharing a global batch (1 without MPI) */
    /* image tower */
    cx_image_kind image_kind;
    int in_dim;                       /* features per input sample */
    int in_c, in_h, in_w;             /* CNN: the sample's shape (channels, height, width) */
    int64_t image_channels[CX_MODEL_MAX_LIST]; /* CNN: convolution channels per block */
    int image_nchannels;
    int64_t image_hidden[CX_MODEL_MAX_LIST];
    int image_nhidden;
    int embed_dim;                    /* output of both towers */
    cx_act act;
    cx_norm norm;
    cx_seq_spec vit;                  /* CX_IMAGE_VIT (in_c, in_h, in_w the image) */
    int image_frozen;                 /* tower fixed: CX_PARAM_FROZEN | CX_PARAM_NO_STATE, and
                                         the steps run no image backward */
    /* text tower: CLIP only */
    cx_text_kind text_kind;
    int vocab_size, token_dim, max_tokens;
    int64_t text_hidden[CX_MODEL_MAX_LIST];
    int text_nhidden;
    int text_frozen;
    cx_seq_spec text_seq;             /* CX_TEXT_TRANSFORMER: width is token_dim */
    /* head: SL only */
    int num_classes;
    cx_head_kind head_kind;
    int head_frozen;                  /* weights fixed (a text-embedding head) */
    /* logit scale: CLIP's, or the cosine head's */
    double logit_scale_init;          /* the scale itself (1/0.07), not its log */
    double logit_scale_max;           /* clamp after every step (100) */
    int logit_scale_learn;
    /* DINO only: the projection head's widths and the prototypes P (of dimension bottleneck) */
    int dino_hidden, dino_bottleneck, dino_prototypes;
    /* DeCLIP (a CLIP model): entries of the NNS queue of caption embeddings, 0: none; 1 for
     * the SimSiam head (image self-supervision) on the image tower's output */
    int declip_queue, declip_iss;
} cx_model_spec;

typedef struct {
    cx_model_spec spec;
    cx_params params;
    cx_mlp image;                     /* linear = an MLP without hidden layers */
    cx_cnn image_cnn;                 /* CX_IMAGE_CNN: convolution blocks, then an MLP */
    cx_seq_tower image_vit;           /* CX_IMAGE_VIT */
    cx_text_tower text;               /* CLIP, bag of words */
    cx_seq_tower text_seq;            /* CLIP, CX_TEXT_TRANSFORMER */
    cx_head head;                     /* SL */
    int logit_scale;                  /* CLIP: parameter index of theta, scale = exp(theta) */
    /* DINO: the student is the image tower, dino_head and the (P, bottleneck) prototypes; the
     * teacher is a copy of each under "teacher." (CX_PARAM_FROZEN | CX_PARAM_NO_STATE: it moves
     * only by cx_model_teacher_update), in the same parameter set, so checkpoints hold both. */
    cx_dino_head dino_head, teacher_head;
    cx_mlp teacher_image;
    cx_cnn teacher_cnn;
    cx_seq_tower teacher_vit;
    int prototypes, teacher_prototypes; /* parameter indices, -1 outside DINO */
    /* DeCLIP's NNS queue, in the parameters so checkpoints hold it (CX_PARAM_FROZEN |
     * CX_PARAM_NO_STATE): "declip.queue" (declip_queue, embed_dim) unit rows and
     * "declip.queue_pos" (2): the next row to write and the rows filled. -1 without. */
    int queue, queue_pos;
    cx_simsiam simsiam;               /* spec.declip_iss: buffers for max_batch / 2 per view */
    /* Step buffers, owned, for B = spec.max_batch local rows and G = B * spec.world rows of
     * the global batch: */
    float *img_unit, *img_norm;       /* (G, D) unit features of all ranks, (B) local norms */
    float *txt_unit, *txt_norm;       /* (G, D), (B) */
    float *logits, *p_row, *p_col, *scratch; /* (G, G) InfoNCE */
    float *d_img, *d_txt;             /* (G, D) */
    float *dlogits;                   /* (B, C) SL */
    int32_t *classes, *targets;       /* (max(C, G)), (G) vocabulary subsampling */
    float *seq_scratch;               /* block scratch shared by the transformer towers */
    /* 1: cx_run_features (lib/eval/run_eval.h) gives the rows entering the image tower's last
     * linear layer (cx_model_image_last_linear's H wide) instead of the tower's output (CFR
     * retrains that layer on them); 0 otherwise. */
    int features_before_last;
} cx_model;

/* Declare and allocate parameters (with optim_slots optimiser state slots) and step buffers:
 * cx_model_declare then cx_model_alloc. */
cx_status cx_model_build(cx_model *m, const cx_model_spec *spec, int optim_slots, cx_err *err);
/* The two halves, so a caller can weigh the memory before any is allocated: declare the
 * parameters (nothing allocated; m->params.total is known), then allocate them, zeroed, and
 * the step buffers (not written yet). Each frees m on failure. */
cx_status cx_model_declare(cx_model *m, const cx_model_spec *spec, cx_err *err);
cx_status cx_model_alloc(cx_model *m, int optim_slots, cx_err *err);
/* Bytes of the declared parameters' values, gradients and optim_slots state slots. */
size_t cx_model_param_bytes(const cx_model *m, int optim_slots);
/* PyTorch-default initialisation from the seed (its own RNG stream). */
void cx_model_init_params(cx_model *m, uint64_t seed);

/* Image tower output (B, embed_dim), unnormalised; a buffer of the model (x itself for an
 * identity tower). */
const float *cx_model_image_forward(cx_model *m, const float *x, int B);
/* Text tower output (B, embed_dim), unnormalised. */
const float *cx_model_text_forward(cx_model *m, const int32_t *tokens, int B);

/* The text tower's parameter gradients (added) from dfeat (B, embed_dim) for its last
 * forward on tokens; nothing for a frozen tower. */
void cx_model_text_backward(cx_model *m, const int32_t *tokens, const float *dfeat, int B);

/* Per-token outputs of the last image forward, (B, *T, *D): a ViT's tokens after its final
 * LayerNorm (CLS first), or the CNN's last feature map as its positions (rows of the map in
 * row-major order, channels as features; written into out, which holds B T D floats, and
 * returned). NULL for a tower without tokens (linear, MLP). */
const float *cx_model_image_tokens(cx_model *m, int B, float *out, int *T, int *D);
/* Per-token outputs of the last text forward of a transformer text tower, (B, *T, *D) after
 * the final LayerNorm (positions after EOT are padding); NULL for a bag-of-words tower. */
const float *cx_model_text_tokens(const cx_model *m, int *T, int *D);

/* One CLIP step on B pairs: symmetric InfoNCE; adds all gradients; returns the loss. */
double cx_model_clip_step(cx_model *m, const float *x, const int32_t *tokens, int B);

/* The CLIP step of one process of d (NULL: a single process): every rank's unit features are
 * gathered, so the loss is the symmetric InfoNCE of the global batch of d->size * B pairs (as
 * open_clip's gathered loss); this rank adds its share of that loss's gradient (its own rows,
 * and the logit scale's divided by the ranks), so summing gradients over ranks gives exactly
 * the single-process gradient of the global batch. Every rank gets the same *loss. */
cx_status cx_model_clip_step_dist(cx_model *m, const float *x, const int32_t *tokens, int B,
                                  const cx_dist *d, double *loss, cx_err *err);

/* One SL step on B samples with labels in [0, C): head logits over all classes, or over the
 * classes the vocabulary sampler draws (when vs is not NULL, using rng); the loss l; adds all
 * gradients; returns the loss. */
double cx_model_sl_step(cx_model *m, const float *x, const int32_t *labels, int B, cx_loss *l,
                        cx_vocab_sampler *vs, cx_rng *rng, int epoch);

/* The same for one process of a global batch of G samples whose labels are all_labels (G),
 * this process holding rows offset .. offset + B: the vocabulary sampler draws from the global
 * batch's classes (every rank draws the same set with the same rng), the loss is this rank's
 * mean (averaging gradients over ranks gives the global mean's). */
double cx_model_sl_step_global(cx_model *m, const float *x, const int32_t *labels, int B,
                               const int32_t *all_labels, int G, int offset, cx_loss *l,
                               cx_vocab_sampler *vs, cx_rng *rng, int epoch);

/* 1 when the image tower ends in a linear layer that trains (an MLP or linear tower, a CNN's
 * MLP; not frozen), with *H the layer's input width and *w (embed_dim, H), *b (embed_dim) its
 * parameter indices; 0 otherwise (identity, frozen, ViT). */
int cx_model_image_last_linear(const cx_model *m, int *H, int *w, int *b);
/* After cx_model_image_forward(m, x, B) on a tower with such a layer: the (B, H) rows that
 * entered it (x itself for a linear tower); a buffer of m's or x. */
const float *cx_model_image_last_input(const cx_model *m, const float *x);

/* 1 when the image tower has trainable parameters (not identity, not frozen). */
int cx_model_image_trainable(const cx_model *m);

/* The two steps on precomputed image features feat (B, embed_dim), the output of a tower that
 * does not train (frozen or identity): no image forward, no image backward. Same losses and
 * gradients as the steps above given the inputs whose features feat holds. */
cx_status cx_model_clip_step_dist_feat(cx_model *m, const float *feat, const int32_t *tokens,
                                       int B, const cx_dist *d, double *loss, cx_err *err);
double cx_model_sl_step_global_feat(cx_model *m, const float *feat, const int32_t *labels, int B,
                                    const int32_t *all_labels, int G, int offset, cx_loss *l,
                                    cx_vocab_sampler *vs, cx_rng *rng, int epoch);

/* The current logit scale: CLIP's or the cosine head's exp(theta); 1 for a linear head. */
float cx_model_logit_scale(const cx_model *m);
/* Clamp theta to [0, log(logit_scale_max)] after an optimiser step (open_clip). */
void cx_model_clamp_logit_scale(cx_model *m);

/* DINO: teacher = momentum teacher + (1 - momentum) student, tensor by tensor (momentum 0:
 * a copy, as cx_model_init_params leaves it). No-op outside DINO. */
void cx_model_teacher_update(cx_model *m, double momentum);
/* DINO: the teacher's image tower on x (B rows; x itself for an identity tower), a buffer of
 * the model. */
const float *cx_model_teacher_image_forward(cx_model *m, const float *x, int B);
/* The image tower's parameter gradients (added) from dfeat (B, embed_dim), for its last forward
 * on x; nothing for a tower that does not train. */
void cx_model_image_backward(cx_model *m, const float *x, const float *dfeat, int B);
/* DINO evaluates the teacher's backbone: copy teacher.image.* over image.*, so that
 * cx_model_image_forward gives the teacher's features (for a model opened to use, never one
 * being trained). No-op outside DINO. */
void cx_model_dino_teacher_backbone(cx_model *m);

void cx_model_free(cx_model *m);

#endif
