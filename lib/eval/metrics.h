/* Metric primitives on per-class counts and per-sample confidences (methods.md section 7):
 * confusion margins, means over class subsets, average ranks and Spearman's rho, macro
 * precision / recall / F1, expected calibration error. lib/eval/report.h composes them. */
#ifndef CX_EVAL_METRICS_H
#define CX_EVAL_METRICS_H

#include <stdint.h>

#include "lib/base/err.h"

#define CX_ECE_BINS_DEFAULT 15
#define CX_ECE_BINS_MAX 1000

/* From conf (C, C), rows = truth: test_count[c] = row sum, pred_count[c] = column sum,
 * correct[c] = conf[c, c]. Any output may be NULL. */
void cx_confusion_margins(const int64_t *conf, int C, int64_t *test_count, int64_t *pred_count,
                          int64_t *correct);

/* Mean of the finite v[i] with mask[i] != 0 (mask NULL: all); NaN when there are none. */
double cx_mean_where(const double *v, const unsigned char *mask, int n);

/* Minimum of the finite v[i] with mask[i] != 0 (mask NULL: all); NaN when there are none. */
double cx_min_where(const double *v, const unsigned char *mask, int n);

/* rank (n) = 1-based ranks of v (n) in ascending order; tied values share the mean of the
 * positions they span (scipy.stats.rankdata's "average"). v must hold no NaN. */
cx_status cx_rank_average(const double *v, int n, double *rank, cx_err *err);

/* Spearman's rho of the pairs (a[i], b[i]) in which both are finite: Pearson's correlation of
 * their average ranks. *rho is NaN when fewer than 2 pairs remain or either side is constant.
 * Fails only when scratch memory is refused. */
cx_status cx_spearman(const double *a, const double *b, int n, double *rho, cx_err *err);

/* Per class c from the margins: recall = correct / test_count (NaN without test samples),
 * precision = correct / pred_count, defined as 0 for a class that is never predicted (so a
 * classifier cannot gain by ignoring a class), F1 = 2 P R / (P + R), 0 when P + R = 0 and NaN
 * when R is. Any output may be NULL. */
void cx_prf(const int64_t *test_count, const int64_t *pred_count, const int64_t *correct, int C,
            double *precision, double *recall, double *f1);

/* Expected calibration error over N samples with `bins` equal-width confidence bins, bin b
 * holding (b / bins, (b + 1) / bins] (confidence 0 goes to the first bin):
 * ECE = sum_b n_b / N * |accuracy_b - mean confidence_b|. Samples whose confidence is not
 * finite are ignored. NaN when no sample counts or bins lies outside 1..CX_ECE_BINS_MAX. */
double cx_ece(const float *conf, const int32_t *pred, const int32_t *y, int N, int bins);

#endif
