/* `clipx train` without the printing: load the data, build the model, run the epochs, write
 * the run folder (config.yaml, model.ckpt, log.jsonl), resume an interrupted run. */
#ifndef CX_TRAIN_TRAINER_H
#define CX_TRAIN_TRAINER_H

#include <stdint.h>

#include "lib/base/dist.h"
#include "lib/base/err.h"
#include "lib/run/train_config.h"

typedef struct {
    int64_t step;         /* optimiser steps done */
    int64_t total_steps;
    int64_t epoch;        /* 1-based epoch of the last step */
    int64_t epochs;
    double loss;          /* mean loss of the epoch so far */
    double lr;            /* learning rate of the last step */
    double samples_per_s; /* this epoch's training throughput */
    double seconds;       /* wall time of this epoch so far */
    double logit_scale;
} cx_train_status;

typedef struct {
    /* Called after every step and after every epoch (epoch_done set); may be NULL. */
    void (*on_progress)(void *ctx, const cx_train_status *s, int epoch_done);
    void *ctx;
    /* With eval.every: called after the checkpoint of every eval.every-th epoch (and of the
     * last) with the run folder, to evaluate that checkpoint; *fields receives a malloc'd JSON
     * fragment ("key": value, ...) that joins the epoch's log line. May be NULL (no curves). */
    cx_status (*on_epoch_eval)(void *ctx, const char *run_dir, int64_t epoch, char **fields,
                               cx_err *err);
    /* A note for the user (a resumed run's log repaired); may be NULL. */
    void (*on_note)(void *ctx, const char *msg);
    /* Refuse the run (CX_EUSAGE, with the estimate) when its memory would exceed this many
     * bytes; 0: what the machine has available (lib/base/memory.h). */
    uint64_t max_memory;
} cx_train_hooks;

/* Train a new run into run_dir from cfg (validated here; the folder is created; a folder that
 * already holds a run is refused unless force). dist (NULL: one process) spreads each global
 * batch of cfg->batch samples over its processes, batch / size each; only rank 0 writes the run
 * folder. The result equals one process's on the same global batch within float rounding. */
cx_status cx_train_new(const cx_train_config *cfg, const char *run_dir, int force,
                       const cx_train_hooks *hooks, const cx_dist *dist, cx_err *err);

/* Continue the run in run_dir from its last checkpoint with the configuration it was started
 * with (threads may be overridden with threads > 0); the end result is bit-identical to an
 * uninterrupted run with the same thread count. A finished run is left as it is. */
cx_status cx_train_resume(const char *run_dir, int64_t threads, const cx_train_hooks *hooks,
                          const cx_dist *dist, cx_err *err);

#endif
