/* The training configuration: the struct `clipx train` runs from, its schema (every key, type,
 * default and doc in one table in train_config.c) and the checks across keys. Adding a key is
 * one table line plus a field here. */
#ifndef CX_RUN_TRAIN_CONFIG_H
#define CX_RUN_TRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/conf/conf.h"

/* Enum values are the indices of the key's choices in the schema, in the order listed. */
typedef enum {
    CX_CFG_OBJECTIVE_CLIP,
    CX_CFG_OBJECTIVE_SL,
    CX_CFG_OBJECTIVE_DINO,
    CX_CFG_OBJECTIVE_DECLIP
} cx_cfg_objective;

/* clip and declip train an image and a text tower on captions. */
static inline int cx_cfg_objective_has_text(int objective)
{
    return objective == CX_CFG_OBJECTIVE_CLIP || objective == CX_CFG_OBJECTIVE_DECLIP;
}
typedef enum {
    CX_CFG_LOSS_CE,
    CX_CFG_LOSS_FOCAL,
    CX_CFG_LOSS_BALANCED_SOFTMAX,
    CX_CFG_LOSS_LOGIT_ADJUST,
    CX_CFG_LOSS_CBW,
    CX_CFG_LOSS_EFFNUM,
    CX_CFG_LOSS_GRW,
    CX_CFG_LOSS_LDAM,
    CX_CFG_LOSS_LADE
} cx_cfg_loss;
typedef enum { CX_CFG_SAMPLER_NONE, CX_CFG_SAMPLER_CLASS_BALANCED, CX_CFG_SAMPLER_SQRT } cx_cfg_sampler;
typedef enum { CX_CFG_VOCAB_UNIFORM, CX_CFG_VOCAB_LINEAR, CX_CFG_VOCAB_SQRT } cx_cfg_vocab_weight;
typedef enum { CX_CFG_HEAD_LINEAR, CX_CFG_HEAD_COSINE, CX_CFG_HEAD_TEXT } cx_cfg_head;
typedef enum {
    CX_CFG_IMAGE_LINEAR,
    CX_CFG_IMAGE_MLP,
    CX_CFG_IMAGE_CNN,
    CX_CFG_IMAGE_VIT,
    CX_CFG_IMAGE_IDENTITY
} cx_cfg_image_tower;
typedef enum { CX_CFG_TEXT_LINEAR, CX_CFG_TEXT_MLP, CX_CFG_TEXT_TRANSFORMER } cx_cfg_text_tower;
typedef enum { CX_CFG_POOL_TOKEN, CX_CFG_POOL_MEAN } cx_cfg_pool; /* cls|eot, mean */
typedef enum { CX_CFG_ACT_RELU, CX_CFG_ACT_GELU } cx_cfg_act;
typedef enum { CX_CFG_NORM_NONE, CX_CFG_NORM_LAYERNORM } cx_cfg_norm;
typedef enum { CX_CFG_OPTIM_ADAMW, CX_CFG_OPTIM_SGD } cx_cfg_optim_name;
typedef enum { CX_CFG_SCHEDULE_COSINE, CX_CFG_SCHEDULE_STEP, CX_CFG_SCHEDULE_CONSTANT } cx_cfg_schedule;

/* Field names follow the dotted keys: key `model.image.dim` is `cfg.model.image.dim`. Strings
 * and lists are owned by the struct; free them all with cx_train_config_free. Paths are
 * absolute, or NULL when null. */
typedef struct {
    char *data;   /* dataset YAML; `clipx train` requires it, the loader does not */
    char *subset; /* SUBSET file of kept training indices, or NULL for the whole training set */
    int64_t seed;
    int64_t threads; /* 0: all cores */
    int64_t epochs;
    int64_t batch;
    bool drop_last;
    cx_cfg_objective objective;
    cx_cfg_loss loss;
    struct {
        double gamma;
    } focal;
    struct {
        double tau;
    } logit_adjust;
    struct {
        double beta;
    } effnum;
    struct {
        double p;
    } grw;
    struct {
        double max_margin, scale;
    } ldam;
    struct {
        int64_t epoch; /* 1-based first epoch with effective-number weights; 0: never */
    } drw;
    struct {
        double lambda;
    } lade;
    cx_cfg_sampler sampler;
    struct {
        int64_t k; /* 0: every class in every step */
        cx_cfg_vocab_weight weight;
        char *freqs; /* frequency file whose counts weigh the drawn classes, or NULL: the
                        training counts */
    } vocab;
    cx_cfg_head head;
    char *head_from; /* CLIP run folder whose text tower makes the frozen head, or NULL */
    struct {
        double init, max;
        bool learn;
    } logit_scale;
    struct {
        struct {
            cx_cfg_image_tower type;
            cx_conf_ints hidden;   /* MLP hidden widths */
            int64_t dim;           /* embedding size */
            cx_cfg_act act;
            cx_cfg_norm norm;
            cx_conf_ints channels; /* CNN conv channels */
            int64_t patch, width, layers, heads; /* ViT */
            double mlp_ratio;
            cx_cfg_pool pool;
            char *init;            /* "random", or a run folder to copy the image tower from */
            bool freeze;           /* keep the image tower fixed (features computed once) */
        } image;
        struct {
            cx_cfg_text_tower type;
            int64_t dim;         /* token embedding size */
            cx_conf_ints hidden; /* MLP hidden widths */
            char *init;          /* "random", or a run folder to copy the text tower from */
            bool freeze;
            int64_t max_tokens;
            int64_t min_count; /* tokens seen fewer times are out of the vocabulary */
            int64_t layers, heads; /* transformer */
            double mlp_ratio;
            bool causal;
            cx_cfg_pool pool;
        } text;
    } model;
    struct {
        cx_cfg_optim_name name;
        double lr, wd, momentum;
        bool nesterov;
        cx_conf_doubles betas; /* (2): AdamW beta1, beta2 */
        double eps;
        int64_t warmup; /* steps of linear warm-up */
        cx_cfg_schedule schedule;
        cx_conf_ints milestones; /* epochs where a step schedule multiplies lr by gamma */
        double gamma;
        double clip_grad; /* max global L2 norm of the gradient; 0: off */
    } optim;
    struct {
        int64_t every; /* also checkpoint every N steps; 0: at epoch ends only */
    } ckpt;
    struct {
        int64_t every; /* evaluate on the val split (else test) every N epochs and the last,
                          into log.jsonl; 0: never */
    } eval;
    /* Augmentations (lib/data/augment.h); every default is off. */
    struct {
        cx_conf_doubles crop_scale;  /* (0) off, or (2) area fraction range */
        cx_conf_doubles crop_ratio;  /* (2) aspect range */
        bool flip;
        double noise;                /* Gaussian noise sd */
        double erase;                /* random erasing probability */
        cx_conf_doubles erase_scale; /* (2) */
        cx_conf_doubles erase_ratio; /* (2) */
        double dropout;              /* feature dropout probability */
        struct {
            double sr, rs, rd;       /* EDA: synonym replacement, random swap, random deletion */
        } eda;
        char *synonyms;              /* synonyms file, or NULL */
    } aug;
    /* objective dino (every key is refused away from its default on the other objectives). */
    struct {
        int64_t prototypes;         /* P */
        int64_t sample_k;           /* prototypes per step; 0: all */
        int64_t sinkhorn_iters;
        double student_temp, teacher_temp;
        double momentum;            /* the teacher's first EMA momentum */
        int64_t hidden, bottleneck; /* projection head widths */
    } dino;
    /* objective declip (methods.md section 6): the terms' weights and the NNS queue's entries
     * (refused away from their defaults on the other objectives). */
    struct {
        double mv, iss, mlm, nns;
        int64_t queue;
    } declip;
} cx_train_config;

extern const cx_conf_schema cx_train_config_schema;

/* Defaults, then the YAML file (NULL: none), then the --set assignments in order. Checks each
 * key (CX_EUSAGE naming the file, line and column, or the --set); not the checks across keys.
 * On failure *cfg is freed and zeroed. A command's own flags go on top the same way, e.g.
 * cx_conf_set_value(&cx_train_config_schema, cfg, "data", arg, "--data", err). A run's
 * config.yaml (written by cx_train_config_write) loads back to an equal struct. */
cx_status cx_train_config_load(cx_train_config *cfg, const char *path, const char *const *sets,
                               size_t nsets, cx_err *err);

/* The checks across keys that need no data, e.g. `head: text` needs `head_from`. CX_EUSAGE with
 * a message that says what to change. */
cx_status cx_train_config_validate(const cx_train_config *cfg, cx_err *err);

/* The fully resolved configuration as YAML, atomically (reading it back gives an equal struct). */
cx_status cx_train_config_write(const cx_train_config *cfg, const char *path, cx_err *err);

void cx_train_config_free(cx_train_config *cfg);

#endif
