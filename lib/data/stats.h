/* Class-frequency statistics of a (sub)set: counts, imbalance ratio, Gini coefficient and
 * head/mid/tail membership (lib/class_split.h). */
#ifndef CX_DATA_STATS_H
#define CX_DATA_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/data/class_split.h"

/* counts[c] = samples of class c among y[0..n) (labels in [0, C)). */
void cx_stats_counts(const int32_t *y, size_t n, int C, int64_t *counts);

/* Gini coefficient of the counts: sum_ij |x_i - x_j| / (2 C^2 mean); 0 for equal counts (or
 * all zero), (C-1)/C when one class has everything. */
double cx_stats_gini(const int64_t *counts, int C);

typedef struct {
    int classes;          /* classes described (the evaluated ones) */
    int64_t total;        /* their samples */
    int64_t n_max, n_min; /* largest and smallest count among non-empty classes (0 when none) */
    int empty;            /* classes without samples */
    double imbalance;     /* n_max / n_min over non-empty classes (0 when none) */
    double gini;          /* over all described classes, empty ones included */
    int head, mid, tail;  /* classes per split */
} cx_stats_summary;

/* Summary of counts (C) with split[c] filled by the rule (shots: many, few thresholds). */
void cx_stats_summarize(const int64_t *counts, int C, cx_split_rule rule, int64_t many, int64_t few,
                        cx_class_split *split, cx_stats_summary *s);

#endif
