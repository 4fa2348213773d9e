/* Group robustness metrics (methods.md section 9, issue 15): per-group accuracy of a scored
 * test split whose samples carry groups (lib/data/groups.h), worst-group accuracy, the mean
 * over groups, and the adjusted average weighted by training group counts (the Waterbirds
 * convention), with their writers (JSON keys, groups.tsv).
 *
 * - acc_g = correct_g / test_count_g, NaN (null) for a group without test samples; such groups
 *   are left out of every summary.
 * - worst_group = min_g acc_g; avg_group = mean_g acc_g (over groups with test samples).
 * - adjusted_avg = sum_g n_g acc_g / sum_g n_g over the groups with test samples, n_g the
 *   group's training count; NaN when the training counts are unknown or sum to 0 there.
 * Group metrics cover every test sample, whatever class split the report is restricted to. */
#ifndef CX_EVAL_GROUP_METRICS_H
#define CX_EVAL_GROUP_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"
#include "lib/base/json.h"

typedef struct {
    int G;
    char **names;         /* (G), owned copies ("<index>" where none was given) */
    int64_t *train_count; /* (G), owned: -1 everywhere when unknown */
    int64_t *test_count;  /* (G), owned */
    int64_t *correct;     /* (G), owned */
    double *acc;          /* (G), owned: NaN without test samples */
    int with_test;        /* groups with test samples */
    double worst, avg, adjusted;
} cx_group_report;

/* counts (G) = how many of groups[0..n) fall in each group (values in [0, G)). */
void cx_group_counts(const int32_t *groups, size_t n, int G, int64_t *counts);

/* From predictions pred (N), labels y (N) and groups (N) in [0, G); names (G) or NULL;
 * train_count (G) or NULL (unknown). CX_EDATA names the first group out of range. On failure
 * g is left empty. */
cx_status cx_group_report_build(cx_group_report *g, const int32_t *pred, const int32_t *y,
                                const int32_t *groups, int64_t N, int G,
                                const char *const *names, const int64_t *train_count,
                                cx_err *err);

/* Safe on a zeroed or freed report. */
void cx_group_report_free(cx_group_report *g);

/* The keys worst_group, avg_group, adjusted_avg and groups (an array of {name, index,
 * train_count, test_count, correct, acc}) into the open object j; all null when g is NULL. */
void cx_group_report_json_keys(const cx_group_report *g, cx_json *j);

/* groups.tsv: group, name, train_count, test_count, correct, acc; one row per group, NaN for
 * undefined values and unknown training counts (pandas.read_csv(path, sep="\t")). The path
 * variant writes atomically. */
cx_status cx_group_write_tsv(const cx_group_report *g, FILE *fp, const char *what, cx_err *err);
cx_status cx_group_save_tsv(const cx_group_report *g, const char *path, cx_err *err);

#endif
