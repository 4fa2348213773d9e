/* A trained run (lib/run.h) evaluated on a dataset: the image tower's features of a split,
 * computed in batches; the classifier of each evaluation mode; and the whole pipeline behind
 * `clipx eval` and `clipx compare` (load, check, features, classifier, scoring, report, NC1). */
#ifndef CX_EVAL_RUN_EVAL_H
#define CX_EVAL_RUN_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/dataset.h"
#include "lib/data/val_split.h"
#include "lib/eval/classifier.h"
#include "lib/eval/linprobe.h"
#include "lib/eval/report.h"
#include "lib/model/model.h"
#include "lib/run/run.h"

typedef enum {
    CX_EVAL_MODE_ZEROSHOT,     /* CLIP: class embeddings of prompt templates */
    CX_EVAL_MODE_HEAD,         /* SL: the trained head (linear, cosine or text) */
    CX_EVAL_MODE_LINEAR_PROBE, /* logistic regression on the training features */
    CX_EVAL_MODE_NCM,          /* nearest class mean of the training features */
    CX_EVAL_MODE_KNN,          /* cosine k nearest training features */
    CX_EVAL_MODE_COUNT
} cx_eval_mode;

/* A mode argument meaning "the run's default" (zeroshot for CLIP runs, head for SL runs). */
#define CX_EVAL_MODE_DEFAULT (-1)
/* Rows per forward pass of the image tower. */
#define CX_RUN_FEATURE_BATCH 1024
/* The mode names as a cli choice list. */
#define CX_EVAL_MODE_CHOICES "zeroshot|head|linear-probe|ncm|knn"

/* "zeroshot", "head", "linear-probe", "ncm", "knn". */
const char *cx_eval_mode_name(cx_eval_mode mode);
/* The mode of a name above, or -1. */
int cx_eval_mode_parse(const char *name);

/* zeroshot for CLIP runs, head for SL runs. */
cx_eval_mode cx_run_default_mode(const cx_run *run);

/* CX_OK when mode applies to the run; CX_EUSAGE naming the modes that do otherwise: head needs
 * an SL run; zeroshot needs a text tower (a CLIP run, or an SL run whose head is the text of
 * a CLIP run named by head_from). A message about the mode starts "mode NAME: ". */
cx_status cx_run_check_mode(const cx_run *run, cx_eval_mode mode, cx_err *err);

/* cx_run_check_mode, except that zeroshot of an SL run without a text tower is accepted when
 * ds (NULL: none yet) names class_embeddings, the classifier of an external model. */
cx_status cx_run_check_mode_ds(const cx_run *run, const cx_dataset *ds, cx_eval_mode mode,
                               cx_err *err);

/* CX_EDATA naming the dataset and the run unless ds has the run's evaluated classes: the same
 * number, the same names in the same order (open-world concepts after them may differ), and
 * samples of the size the image tower takes. */
cx_status cx_run_check_dataset(const cx_run *run, const cx_dataset *ds, cx_err *err);

/* Image-tower features out (n, embed_dim), unnormalised, of rows[0..n) of split s (rows NULL:
 * rows 0..n): inputs are gathered as float per batch of up to m->spec.max_batch rows (never a
 * float copy of the whole split; consecutive float32 rows are read in place) and run through
 * the tower, whose products are threaded by OpenBLAS (OpenMP loops run on one thread during
 * the call). Same bits for the same thread count. `what` names the split in messages.
 * CX_EDATA when the split holds no images, its samples have another size than the tower takes,
 * or a feature is not finite (naming the sample); CX_EUSAGE for rows outside the split.
 * With m->features_before_last out holds instead the rows entering the image tower's last
 * linear layer, (n, H) of cx_model_image_last_linear (CX_EUSAGE when the tower has none). */
cx_status cx_run_features(cx_model *m, const cx_split *s, const uint32_t *rows, size_t n,
                          float *out, const char *what, cx_err *err);

typedef struct {
    int k;               /* knn: neighbours (CX_KNN_K_DEFAULT) */
    cx_probe_opts probe; /* linear-probe (cx_probe_defaults) */
} cx_run_clf_opts;

void cx_run_clf_defaults(cx_run_clf_opts *o);

/* The classifier of `mode` over the run's E = meta.num_eval_classes evaluated classes:
 * - zeroshot: cx_tokens_class_embeddings of the run's evaluated class names with ds's templates
 *   through the run's text tower (or, for an SL run with a text head, the tower of its
 *   head_from run; for another SL run the first E rows of ds's class_embeddings, whose width
 *   must be the tower's output, else CX_EDATA), then logits = 100 cos (methods.md section 7);
 * - head: the first E rows of the SL head (cosine heads with their learnt scale);
 * - linear-probe, ncm, knn: fitted on the training features feat (n, D) with labels y (n) in
 *   [0, E) (the caller drops open-world samples); probe may be NULL, else it receives the
 *   probe's report (free with cx_probe_info_free).
 * ds is used by zeroshot only; feat by the last three only. On failure clf is left empty. */
cx_status cx_run_classifier(cx_run *run, const cx_dataset *ds, cx_eval_mode mode,
                            const float *feat, const int32_t *y, int n,
                            const cx_run_clf_opts *o, cx_eval_classifier *clf,
                            cx_probe_info *probe, cx_err *err);

/* ---- the pipeline ------------------------------------------------------------------------ */

typedef struct {
    const char *data;       /* dataset YAML to evaluate on; NULL: the run's (config.yaml's data;
                               training features then come from its subset) */
    int mode;               /* a cx_eval_mode or CX_EVAL_MODE_DEFAULT */
    int nc1;                /* compute NC1 of the test features (1); coherences always */
    int batch;              /* rows per forward pass (CX_RUN_FEATURE_BATCH) */
    cx_run_clf_opts clf;
    cx_report_opts report;  /* split rule, thresholds, restriction, ECE bins */
    int posthoc;            /* a cx_posthoc_kind (lib/eval/posthoc.h): 0 none */
    double posthoc_tau;     /* its tau; NaN: chosen on validation data (cx_run_val_features
                               with the run's seed and CX_VAL_PER_CLASS_DEFAULT) */
    int on_val;             /* 1: score the dataset's val split instead of its test split (an
                               error when it names none); -1: val when the dataset names one,
                               else test (info->on_val says which) */
    const char *freqs;      /* frequency file ("name<TAB>count", every class of the run, as
                               `clipx count` writes): its counts replace the run's training
                               counts for head/mid/tail and the correlations (caption
                               frequencies, as the study reports); post-hoc priors keep the
                               training counts. NULL: the training counts */
    int keep_logits;        /* 1: info->logits receives the test split's scores */
} cx_run_eval_opts;

void cx_run_eval_defaults(cx_run_eval_opts *o);

enum {
    CX_EVAL_PHASE_LOAD,       /* run and dataset */
    CX_EVAL_PHASE_FEATURES,   /* image tower on the test (and training) split */
    CX_EVAL_PHASE_CLASSIFIER, /* class embeddings, head, probe fit, NCM means, kNN store */
    CX_EVAL_PHASE_SCORING,
    CX_EVAL_PHASE_METRICS,    /* report, NC1, coherences */
    CX_EVAL_PHASES
};

typedef struct {
    cx_eval_mode mode;       /* the mode used */
    int objective;           /* the run's cx_cfg_objective */
    char *data;              /* owned: the dataset YAML evaluated on */
    char *subset;            /* owned: the SUBSET of the training features, or NULL */
    int num_classes;         /* evaluated classes E */
    int dim;                 /* feature dimension */
    int64_t n_test;          /* test samples */
    int64_t n_train;         /* training features used (probe, ncm, knn), else 0 */
    double probe_lambda;     /* linear-probe: the chosen L2 strength, else NaN */
    double probe_val_acc;    /* linear-probe: its validation accuracy, else NaN */
    cx_probe_info probe;     /* linear-probe: the search (grid, validation rows as indices
                                into the training features), else zeroed; owned */
    double seconds[CX_EVAL_PHASES]; /* wall time of each phase */
    /* A retrained run (lib/eval/retrain.h): its method and the stage-1 run it starts from. */
    int retrained;
    int retrain_method;      /* cx_retrain_method */
    char *retrain_from;      /* owned, or NULL */
    double retrain_tau;      /* tau-norm's tau, else NaN */
    /* Post-hoc adjustment (opts.posthoc): */
    int posthoc;             /* cx_posthoc_kind, 0 none */
    double posthoc_tau;      /* the tau used */
    int posthoc_tau_chosen;  /* 1: chosen on validation data */
    cx_val_source posthoc_val; /* where validation came from (CX_VAL_NONE when tau was given) */
    int64_t posthoc_n_val;
    double posthoc_val_acc;  /* class-mean validation accuracy of the chosen tau, else NaN */
    char *freqs;             /* owned: o->freqs when given, else NULL */
    int on_val;              /* 1: the val split was scored, 0: the test split */
    /* With opts.keep_logits: (n_test, num_classes), owned, the scores the report is made of
     * (after any post-hoc adjustment; kNN: the vote scores); else NULL. */
    float *logits;
} cx_run_eval_info;

void cx_run_eval_info_free(cx_run_eval_info *info);

/* Evaluate the run in folder run_dir on the test split of o->data (or of the run's dataset):
 * the run is opened (a missing folder, config.yaml or model.ckpt, or a corrupt checkpoint is
 * CX_EDATA naming the file), the dataset checked against it (cx_run_check_dataset), the mode
 * checked (cx_run_check_mode, CX_EUSAGE; a mode without training features is CX_EDATA, also
 * "mode NAME: ..."), the test split scored and the report built with the
 * run's training counts (from its checkpoint) for head/mid/tail. info may be NULL.
 * A retrained run (RUN2 of `clipx retrain`, cx_retrain_is_run) is scored with its retrained
 * classifier on the features of its stage-1 run's tower (mode head only; another mode is
 * CX_EUSAGE "mode NAME: ..."). With o->posthoc the classifier is adjusted first
 * (lib/eval/posthoc.h); a tau to choose without validation data is CX_EUSAGE. On success
 * *report is filled (cx_eval_report_free); on failure both are left empty. Threads: the count
 * in force (lib/threads.h); same inputs and thread count give the same bits. */
cx_status cx_run_evaluate(const char *run_dir, const cx_run_eval_opts *o, cx_eval_report *report,
                          cx_run_eval_info *info, cx_err *err);

/* ---- embeddings (`clipx embed`) --------------------------------------------------------- */

enum { CX_EMBED_TRAIN, CX_EMBED_TEST };

typedef struct {
    const char *data; /* dataset YAML; NULL: the run's (training rows then from its subset) */
    int split;        /* CX_EMBED_TRAIN or CX_EMBED_TEST */
    int text;         /* 1: the zero-shot class embeddings instead of image features */
    int batch;        /* rows per forward pass; 0: CX_RUN_FEATURE_BATCH */
} cx_run_embed_opts;

typedef struct {
    float *x;       /* (n, dim), owned */
    int32_t *y;     /* (n) labels of the split's rows, owned; NULL for class embeddings */
    int64_t n;
    int dim;
    char *data;     /* owned: the dataset YAML */
    char *subset;   /* owned: the SUBSET applied to the training split, or NULL */
} cx_run_embedding;

void cx_run_embedding_free(cx_run_embedding *e);

/* The run's image-tower features (cx_run_features, unnormalised) of every row of a split in
 * its order (the training split restricted to the run's SUBSET when o->data is NULL, every
 * label included), or with o->text the class embeddings the zero-shot classifier is built
 * from (E, D) before normalisation. Errors as cx_run_evaluate's; o->text on a run without a
 * text tower is CX_EUSAGE. On failure out is left empty. */
cx_status cx_run_embed(const char *run_dir, const cx_run_embed_opts *o, cx_run_embedding *out,
                       cx_err *err);

/* ---- validation data (`val:` or held out of the subset; never the test split) ------------ */

/* Validation features (n, D) of the run's image tower and labels (n), malloc'd: the `val:`
 * split of data when it names one (*src CX_VAL_SPLIT), else per_class rows per class held out
 * of the training rows outside subset (lib/data/val_split.h, drawn from seed; *src
 * CX_VAL_TRAIN_HELDOUT). CX_EUSAGE when there is neither (no val split, and no subset or a
 * class with no row outside it). */
cx_status cx_run_val_features(cx_run *run, const char *data, const char *subset, uint64_t seed,
                              int per_class, float **x, int32_t **y, size_t *n,
                              cx_val_source *src, cx_err *err);

/* ---- groups (lib/eval/run_groups.c) ------------------------------------------------------ */

/* Attach the group report (lib/eval/group_metrics.h) of ds's test split, which has groups,
 * scored as pred (test n), to r. Training group counts come from the run's training split
 * (config.yaml's data and subset) when it has groups with the same names as ds; else, when
 * data (the dataset evaluated on, NULL: the run's) is another dataset, from its whole
 * training split's groups; else they are unknown (adjusted_avg null). */
cx_status cx_run_eval_groups(const cx_run *run, const cx_dataset *ds, const char *data,
                             const int32_t *pred, cx_eval_report *r, cx_err *err);

#endif
