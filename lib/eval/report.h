/* The evaluation report: per-class table and summary metrics of one scored run, and its
 * writers (the JSON object of `clipx eval --json`, per_class.tsv, confusion.tsv).
 *
 * Conventions (methods.md section 7, cli.md):
 * - acc_c = Conf[c, c] / test_count_c, undefined (NaN, JSON null) for a class without test
 *   vectors; such classes are left out of every mean, minimum and of corr_acc.
 * - top1 / top5: mean over classes of acc_c / top-5 hit rate; acc: sample-weighted accuracy.
 * - head / mid / tail: mean acc_c over the classes of the split (lib/class_split.h, by
 *   training count); NaN (null) when the split has no class with test vectors, never 0.
 * - corr_acc = Spearman rho(train_count_c, acc_c) over classes with test vectors;
 *   corr_pred = rho(train_count_c, pred_count_c) over all classes; average ranks for ties;
 *   NaN when undefined (e.g. constant counts).
 * - precision_c = Conf[c, c] / pred_count_c, 0 for a class never predicted; macro P/R/F1 are
 *   means over the listed classes that have test vectors.
 * - Restricting to a split (cx_eval_report_restrict) limits top1, top5, acc, worst_class, the
 *   macro P/R/F1 and the per-class table (JSON "classes", per_class.tsv) to that split's
 *   classes; head/mid/tail, the correlations, ECE, NC1, coherence and confusion.tsv stay over
 *   all classes. */
#ifndef CX_EVAL_REPORT_H
#define CX_EVAL_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"
#include "lib/base/json.h"
#include "lib/data/class_split.h"
#include "lib/eval/collapse.h"
#include "lib/eval/group_metrics.h"
#include "lib/eval/score.h"

/* restrict_to value for "every class". */
#define CX_REPORT_ALL (-1)

typedef struct {
    cx_split_rule rule; /* CX_SPLIT_RULE_SHOTS */
    int64_t many, few;  /* shots thresholds (CX_SPLIT_MANY_DEFAULT, CX_SPLIT_FEW_DEFAULT) */
    int restrict_to;    /* CX_REPORT_ALL or a cx_class_split */
    int ece_bins;       /* CX_ECE_BINS_DEFAULT */
} cx_report_opts;

typedef struct {
    int C;
    char **names;            /* (C), owned copies ("<index>" where none was given) */
    cx_split_rule rule;
    int64_t many, few;
    int restrict_to;
    int ece_bins;
    int topk;                /* K of the top-K column (5, or C when C < 5) */
    int64_t n_test;

    int64_t *train_count;    /* (C), owned */
    int64_t *test_count;     /* (C), owned */
    int64_t *pred_count;     /* (C), owned */
    int64_t *correct;        /* (C), owned */
    int64_t *topk_hits;      /* (C), owned */
    int64_t *confusion;      /* (C, C), owned: [truth * C + predicted] */
    cx_class_split *split;   /* (C), owned */
    double *class_acc;       /* (C), owned: recall */
    double *class_topk;      /* (C), owned */
    double *precision;       /* (C), owned */
    double *f1;              /* (C), owned */

    /* Over all classes. */
    double head, mid, tail, corr_acc, corr_pred, ece;
    /* Over the listed classes (all, or the restricted split). */
    int n_listed;
    double top1, top5, acc, worst_class, macro_precision, macro_recall, macro_f1;

    /* Attached by cx_eval_report_attach_collapse; NaN / NULL until then. */
    double nc1;
    double means_cos_all, means_cos_nearest, weights_cos_all, weights_cos_nearest;
    double *nc1_class;               /* (C), owned, or NULL */
    double *means_cos_all_class;     /* (C), owned, or NULL */
    double *means_cos_nearest_class; /* (C), owned, or NULL */
    double *weights_cos_all_class;   /* (C), owned, or NULL */
    double *weights_cos_nearest_class; /* (C), owned, or NULL */

    /* Attached when the test split has groups (lib/eval/group_metrics.h); owned, or NULL. */
    cx_group_report *groups;
} cx_eval_report;

void cx_report_defaults(cx_report_opts *o);

/* From counts: confusion (C, C) rows = truth, topk_hits (C) or NULL (top5 is then NaN) with
 * its K, train_count (C) >= 0, names (C) or NULL (entries may be NULL). ECE is NaN here.
 * On failure r is left empty. */
cx_status cx_eval_report_from_counts(cx_eval_report *r, const int64_t *confusion,
                                     const int64_t *topk_hits, int K, const int64_t *train_count,
                                     const char *const *names, int C, const cx_report_opts *o,
                                     cx_err *err);

/* From a scored run (lib/eval/score.h) and its labels y (pred->N): the counts above plus ECE
 * from the confidences. */
cx_status cx_eval_report_build(cx_eval_report *r, const cx_eval_pred *pred, const int32_t *y,
                               const int64_t *train_count, const char *const *names,
                               const cx_report_opts *o, cx_err *err);

/* Copy NC1 and coherence values (lib/eval/collapse.h) into the report; c->C must equal r->C. */
cx_status cx_eval_report_attach_collapse(cx_eval_report *r, const cx_collapse *c, cx_err *err);

/* Recompute the listed-class summary for split (CX_REPORT_ALL or a cx_class_split). */
void cx_eval_report_restrict(cx_eval_report *r, int split);

/* Whether class c is in the table under the current restriction. */
int cx_eval_report_lists(const cx_eval_report *r, int c);

/* "all", "head", "mid" or "tail". */
const char *cx_eval_report_restrict_name(int split);

/* Safe on a zeroed or freed report. */
void cx_eval_report_free(cx_eval_report *r);

/* ---- writers (lib/eval/report_write.c) ---------------------------------------------------- */

/* The report as one JSON object: every key of cli.md's `eval --json` contract (top1, top5,
 * acc, head, mid, tail, corr_acc, corr_pred, worst_class, ece, nc1, classes[{name,
 * train_count, test_count, acc, pred_count, split}]) plus macro_precision, macro_recall,
 * macro_f1, cos_all_means, cos_nearest_means, cos_all_weights, cos_nearest_weights,
 * split_rule, thresholds ({many, few}, null for the tertile rule), restricted_to, n_classes,
 * n_listed, n_test, topk, ece_bins, and per class index, correct, top5, precision, f1, nc1,
 * coherences; last, worst_group, avg_group, adjusted_avg and groups (null without groups).
 * NaN values are written as null. */
void cx_eval_report_json(const cx_eval_report *r, cx_json *j);

/* The JSON object (pretty) atomically to path. */
cx_status cx_eval_report_save_json(const cx_eval_report *r, const char *path, cx_err *err);

/* Tab-separated tables with a header row, one row per class, NaN written as "NaN" (read by
 * pandas.read_csv(path, sep="\t")); tabs and newlines in class names become spaces.
 * per_class: class, name, split, train_count, test_count, correct, acc, top5, pred_count,
 * precision, f1, nc1, cos_all_means, cos_nearest_means, cos_all_weights, cos_nearest_weights
 * (listed classes only). confusion: "truth", then one column per predicted class named by
 * class; one row per true class (all classes). The FILE variants return CX_EIO when a write
 * fails; the path variants write atomically (lib/afile.h). */
cx_status cx_eval_write_per_class_tsv(const cx_eval_report *r, FILE *fp, const char *what,
                                      cx_err *err);
cx_status cx_eval_write_confusion_tsv(const cx_eval_report *r, FILE *fp, const char *what,
                                      cx_err *err);
cx_status cx_eval_save_per_class_tsv(const cx_eval_report *r, const char *path, cx_err *err);
cx_status cx_eval_save_confusion_tsv(const cx_eval_report *r, const char *path, cx_err *err);

#endif
