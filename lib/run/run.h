/* A run folder: config.yaml (the resolved configuration), model.ckpt (weights, optimiser state
 * and what the data contributed: classes, counts, input shape, vocabulary) and log.jsonl.
 * The trainer writes runs; eval, resume and runs that build on other runs read them here. */
#ifndef CX_RUN_RUN_H
#define CX_RUN_RUN_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/model/model.h"
#include "lib/model/tokenizer.h"
#include "lib/optim/optim.h"
#include "lib/run/ckpt.h"
#include "lib/run/spec.h"
#include "lib/run/train_config.h"

#define CX_RUN_CONFIG "config.yaml"
#define CX_RUN_CKPT "model.ckpt"
#define CX_RUN_LOG "log.jsonl"

/* What a checkpoint records besides tensors. */
typedef struct {
    cx_data_shape shape;
    int num_eval_classes;   /* the first num_eval_classes classes are evaluated */
    char **class_names;     /* (shape.num_classes) owned */
    int64_t *class_counts;  /* (shape.num_classes) owned: training samples per class */
    char *dataset;          /* owned: the dataset's name */
    char *vocab_text;       /* owned serialised vocabulary (CLIP), or NULL */
    int64_t step;           /* optimiser steps done */
    int64_t total_steps;
    int64_t steps_per_epoch;
    double epoch_loss_sum;  /* loss summed over the current epoch's steps so far */
    int64_t epoch_loss_steps;
} cx_run_meta;

void cx_run_meta_free(cx_run_meta *meta);

/* "RUN/NAME" as a new string, or NULL when out of memory. */
char *cx_run_path(const char *dir, const char *name);

/* Write a checkpoint atomically: meta, the configuration text, the model's parameters and,
 * when o is not NULL, the optimiser state. Holds no timing, so equal states give equal bytes. */
cx_status cx_run_write_ckpt(const char *path, const cx_run_meta *meta, const char *config_yaml,
                            const cx_model *m, const cx_optim *o, cx_err *err);

/* Read a checkpoint's meta; the container stays in ck (freed by the caller) for the tensors. */
cx_status cx_run_read_ckpt(const char *path, cx_ckpt *ck, cx_run_meta *meta, cx_err *err);

/* Copy parameters (and, with o, the optimiser state) from ck into a model built from the same
 * configuration and meta. Every parameter must be present with its shape. */
cx_status cx_run_load_params(const cx_ckpt *ck, const char *path, cx_model *m, cx_optim *o,
                             cx_err *err);

/* A run opened for use (eval, a frozen head, a text tower to start from). */
typedef struct {
    char *dir;              /* owned */
    cx_train_config cfg;
    cx_run_meta meta;
    cx_model model;
    cx_vocab vocab;         /* CLIP runs; empty otherwise */
} cx_run;

/* Load RUN/config.yaml and RUN/model.ckpt and build the model for batches of up to max_batch.
 * A missing folder, configuration or checkpoint is CX_EDATA naming the file. A DINO run's
 * image tower then holds its teacher's backbone (the features DINO evaluates). */
cx_status cx_run_open(const char *dir, int max_batch, cx_run *run, cx_err *err);
void cx_run_close(cx_run *run);

/* The configuration as YAML text (malloc'd), as config.yaml holds it. */
char *cx_run_config_text(const cx_train_config *cfg);

#endif
