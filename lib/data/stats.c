/* Counts, imbalance ratio, Gini coefficient, head/mid/tail. */
#include "lib/data/stats.h"

#include <stdlib.h>
#include <string.h>

void cx_stats_counts(const int32_t *y, size_t n, int C, int64_t *counts)
{
    memset(counts, 0, (size_t)C * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        if (y[i] >= 0 && y[i] < C)
            counts[y[i]]++;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double cx_stats_gini(const int64_t *counts, int C)
{
    if (C < 1)
        return 0.0;
    int64_t *s = malloc((size_t)C * sizeof *s);
    if (!s)
        return 0.0;
    memcpy(s, counts, (size_t)C * sizeof *s);
    qsort(s, (size_t)C, sizeof *s, cmp_i64);
    /* With x ascending: G = sum_i (2i - C - 1) x_i / (C sum x), i = 1..C. */
    double num = 0, sum = 0;
    for (int i = 0; i < C; i++) {
        num += (2.0 * (i + 1) - C - 1) * (double)s[i];
        sum += (double)s[i];
    }
    free(s);
    return sum > 0 ? num / ((double)C * sum) : 0.0;
}

void cx_stats_summarize(const int64_t *counts, int C, cx_split_rule rule, int64_t many, int64_t few,
                        cx_class_split *split, cx_stats_summary *s)
{
    memset(s, 0, sizeof *s);
    s->classes = C;
    for (int c = 0; c < C; c++) {
        s->total += counts[c];
        if (counts[c] == 0) {
            s->empty++;
            continue;
        }
        if (counts[c] > s->n_max)
            s->n_max = counts[c];
        if (s->n_min == 0 || counts[c] < s->n_min)
            s->n_min = counts[c];
    }
    s->imbalance = s->n_min > 0 ? (double)s->n_max / (double)s->n_min : 0.0;
    s->gini = cx_stats_gini(counts, C);
    cx_class_splits(counts, C, rule, many, few, split);
    for (int c = 0; c < C; c++) {
        s->head += split[c] == CX_SPLIT_HEAD;
        s->mid += split[c] == CX_SPLIT_MID;
        s->tail += split[c] == CX_SPLIT_TAIL;
    }
}
