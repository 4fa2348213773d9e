/* `clipx retrain` without the printing: a second stage on a run's frozen image features
 * (methods.md section 5): cRT, LWS, tau-normalisation, DisAlign, MARC, the MLP decoder, and
 * CoOp prompt tuning of a CLIP run's frozen transformer text tower (section 9), and DFR
 * (lib/eval/dfr.h) on the validation split's features, and CFR (lib/eval/cfr_train.h): RUN's
 * image projection retrained on the training rows RUN misclassifies, the epoch kept by its
 * worst-class accuracy on validation. The features of the
 * run's training rows (and, for tau-norm, of the validation data) are computed once and cached
 * in RUN2/features.ckpt; the stage trains with the library's sampler (lib/objective/sampler.h),
 * losses (lib/objective/loss.h: CE, GRW), optimiser and schedule (lib/optim/), checkpointing
 * RUN2/model.ckpt after every epoch so `--resume` ends byte-identical. RUN2/model.ckpt also
 * holds the retrained classifier in the linear form `clipx eval RUN2` scores with. */
#ifndef CX_EVAL_RETRAIN_H
#define CX_EVAL_RETRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/val_split.h"
#include "lib/eval/retrain_clf.h"
#include "lib/run/retrain_config.h"

#define CX_RETRAIN_FEATURES "features.ckpt"

typedef struct {
    int method;                /* cx_retrain_method */
    int features_cached;       /* 1: the features came from RUN2/features.ckpt */
    int64_t n_train;           /* training features */
    int dim, classes;
    cx_val_source val_source;  /* tau-norm with tau auto: where validation came from */
    int64_t n_val;
    double tau;                /* tau-norm: the tau used; NaN otherwise */
    double val_acc;            /* tau-norm auto: class-mean validation accuracy of tau; dfr: the
                                  worst-group (worst-class) accuracy of lambda on the second half;
                                  cfr: the kept epoch's worst-class (worst-group) accuracy */
    double lambda;             /* dfr: the chosen L2 strength (also RUN2/dfr.json); NaN otherwise */
    int by_group;              /* dfr: 1 when balanced by the val split's groups, 0 by class;
                                  cfr: 1 when selected by worst-group accuracy */
    int64_t best_epoch;        /* cfr: the epoch kept (0: RUN's own projection); -1 otherwise */
    int64_t n_calib;           /* cfr: the calibration set's rows (training rows RUN gets wrong) */
    int64_t epochs_done;
    double loss;               /* last epoch's mean loss (NaN for tau-norm) */
} cx_retrain_info;

typedef struct {
    /* After every epoch (epoch 1-based); may be NULL. */
    void (*on_epoch)(void *ctx, int64_t epoch, int64_t epochs, double loss, double lr);
    /* Once, when validation data is chosen (src, n rows); may be NULL. */
    void (*on_val)(void *ctx, cx_val_source src, size_t n);
    void *ctx;
    /* A cache of the tower's tokens (decoder.type transformer) that would take the heap past
     * this many bytes is refused before the tower runs (CX_EUSAGE with its size); 0: the
     * machine's available memory. */
    uint64_t max_memory;
} cx_retrain_hooks;

/* A new second stage into out_dir from "KEY=VALUE" sets of the retrain schema (cmd/ passes
 * method= and from= first). A key of another method is CX_EUSAGE naming it; a run without
 * the classifier the method needs (lws, tau-norm, disalign, marc need an SL run's head;
 * tau-norm a linear one; prompt a CLIP run with the transformer text tower) is CX_EUSAGE
 * naming the run and the method, as are prompts longer than the tower or an init phrase of
 * other words than the vocabulary's (all before out_dir is written); a folder that already
 * holds a run is refused unless force. info may be NULL. */
cx_status cx_retrain_new(const char *const *sets, size_t nsets, const char *out_dir, int force,
                         const cx_retrain_hooks *hooks, cx_retrain_info *info, cx_err *err);

/* Continue out_dir from its last epoch checkpoint (cached features reused). A finished run is
 * left as it is. */
cx_status cx_retrain_resume(const char *out_dir, const cx_retrain_hooks *hooks,
                            cx_retrain_info *info, cx_err *err);

#endif
