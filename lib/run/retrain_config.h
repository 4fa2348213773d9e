/* The configuration of a second stage on a run's frozen features (`clipx retrain`, methods.md
 * section 5): the method, the run it starts from, and each method's own keys. RUN2/config.yaml
 * holds it; a folder whose config.yaml names `method:` and `from:` is a retrained run. */
#ifndef CX_RUN_RETRAIN_CONFIG_H
#define CX_RUN_RETRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/conf/conf.h"

/* In the order of the schema's choices. */
typedef enum {
    CX_RETRAIN_CRT,
    CX_RETRAIN_LWS,
    CX_RETRAIN_TAU_NORM,
    CX_RETRAIN_DISALIGN,
    CX_RETRAIN_MARC,
    CX_RETRAIN_DECODER,
    CX_RETRAIN_PROMPT,
    CX_RETRAIN_DFR,
    CX_RETRAIN_CFR,
    CX_RETRAIN_METHODS
} cx_retrain_method;

typedef struct {
    cx_retrain_method method;
    char *from;   /* the stage-1 run folder, absolute (required) */
    char *data;   /* dataset YAML; null: the run's */
    char *subset; /* training rows; null: the run's SUBSET */
    int64_t seed;
    int64_t threads;
    int64_t epochs;
    int64_t batch;
    struct {
        int name; /* 0 sgd, 1 adamw */
        double lr, wd, momentum;
    } optim;
    struct {
        double p;
    } grw;
    struct {
        char *tau;             /* "auto" (chosen on validation) or a number in [0, 2] */
        cx_conf_doubles grid;  /* candidates of "auto" */
    } tau_norm;
    struct {
        int64_t per_class; /* held-out training rows per class when the dataset has no val */
    } val;
    struct {
        int64_t draws; /* dfr: balanced subsets of the first half, their fits averaged */
    } dfr;
    struct {
        int64_t epochs;            /* cfr: passes over the calibration set */
        double lr;                 /* cfr: SGD step of the image projection */
        double tau;                /* cfr: L_con temperature */
        int64_t positives, negatives; /* cfr: P pool rows of the class, K hard negatives */
        double lambda;             /* cfr: weight of L_con beside CE (both times c(e)) */
        int select;                /* cfr: CX_RETRAIN_SELECT_WORST_CLASS or _WORST_GROUP */
        double tsc;                /* cfr: weight of L_TSC on training batches; 0: none */
        int64_t tsc_queue;         /* cfr: L_TSC's queue of earlier embeddings */
    } cfr;
    int loss;    /* decoder, prompt: a cx_cfg_loss of train_config.h (ldam excluded) */
    int sampler; /* decoder, prompt: a cx_cfg_sampler */
    struct {
        cx_conf_ints hidden; /* decoder: the MLP's hidden widths */
        int type;            /* decoder: CX_RETRAIN_DEC_MLP or CX_RETRAIN_DEC_TRANSFORMER */
        int64_t depth, heads; /* decoder (transformer): blocks and attention heads */
    } decoder;
    struct {
        int64_t n_ctx;  /* prompt: context vectors M */
        bool per_class; /* prompt: one set per class, else one shared set */
        char *init;     /* prompt: "random" (N(0, 0.02)) or a phrase of n_ctx words */
    } prompt;
} cx_retrain_config;

extern const cx_conf_schema cx_retrain_config_schema;

/* "crt", "lws", "tau-norm", "disalign", "marc", "decoder", "prompt", "dfr", "cfr"; NULL out of
 * range. */
const char *cx_retrain_method_name(int m);
/* cfr.select: the epoch kept is the best on validation by this accuracy */
enum { CX_RETRAIN_SELECT_WORST_CLASS = 0, CX_RETRAIN_SELECT_WORST_GROUP = 1 };
/* decoder.type */
enum { CX_RETRAIN_DEC_MLP = 0, CX_RETRAIN_DEC_TRANSFORMER = 1 };
/* The choices as one string "crt|lws|tau-norm|disalign|marc". */
#define CX_RETRAIN_METHOD_CHOICES "crt|lws|tau-norm|disalign|marc|decoder|prompt|dfr|cfr"

/* 1 when method m reads key (a schema key); the keys every method reads (method, from, data,
 * subset, seed, threads) too. */
int cx_retrain_key_applies(int m, const char *key);

/* Defaults, the file (NULL: none), then "KEY=VALUE" sets in order. A set naming a key of
 * another method is CX_EUSAGE naming the key and the methods it belongs to (the method must
 * be known: from the file or an earlier set of `method`). */
cx_status cx_retrain_config_load(cx_retrain_config *cfg, const char *path,
                                 const char *const *sets, size_t nsets, cx_err *err);
/* Cross-key checks: from given, tau a number in [0, 2] or auto, the grid in [0, 2]. */
cx_status cx_retrain_config_validate(const cx_retrain_config *cfg, double *tau, cx_err *err);
cx_status cx_retrain_config_write(const cx_retrain_config *cfg, const char *path, cx_err *err);
void cx_retrain_config_free(cx_retrain_config *cfg);

/* 1 when dir/config.yaml is a retrain configuration (it names `method:` at top level). */
int cx_retrain_is_run(const char *dir);

#endif
