/* Metric primitives. Everything here is O(C log C) or O(N) and sequential, so the sums run in
 * one fixed order. */
#include "lib/eval/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cx_confusion_margins(const int64_t *conf, int C, int64_t *test_count, int64_t *pred_count,
                          int64_t *correct)
{
    if (pred_count)
        memset(pred_count, 0, sizeof *pred_count * (size_t)C);
    for (int t = 0; t < C; t++) {
        const int64_t *row = conf + (size_t)t * C;
        int64_t sum = 0;
        for (int p = 0; p < C; p++) {
            sum += row[p];
            if (pred_count)
                pred_count[p] += row[p];
        }
        if (test_count)
            test_count[t] = sum;
        if (correct)
            correct[t] = row[t];
    }
}

double cx_mean_where(const double *v, const unsigned char *mask, int n)
{
    double sum = 0.0;
    int count = 0;
    for (int i = 0; i < n; i++)
        if ((!mask || mask[i]) && isfinite(v[i])) {
            sum += v[i];
            count++;
        }
    return count ? sum / count : NAN;
}

double cx_min_where(const double *v, const unsigned char *mask, int n)
{
    double m = NAN;
    for (int i = 0; i < n; i++)
        if ((!mask || mask[i]) && isfinite(v[i]) && !(m <= v[i]))
            m = v[i];
    return m;
}

/* Stable merge sort of idx by v[idx], with tmp as scratch of the same length. */
static void sort_by_value(int *idx, int *tmp, int n, const double *v)
{
    for (int width = 1; width < n; width *= 2) {
        for (int lo = 0; lo < n; lo += 2 * width) {
            int mid = lo + width < n ? lo + width : n;
            int hi = lo + 2 * width < n ? lo + 2 * width : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = v[idx[j]] < v[idx[i]] ? idx[j++] : idx[i++];
            while (i < mid)
                tmp[k++] = idx[i++];
            while (j < hi)
                tmp[k++] = idx[j++];
        }
        memcpy(idx, tmp, sizeof *idx * (size_t)n);
    }
}

cx_status cx_rank_average(const double *v, int n, double *rank, cx_err *err)
{
    if (n <= 0)
        return CX_OK;
    int *idx = malloc(sizeof *idx * (size_t)n * 2);
    if (!idx)
        return cx_fail(err, CX_ENOMEM, "ranks: out of memory for %d values", n);
    for (int i = 0; i < n; i++)
        idx[i] = i;
    sort_by_value(idx, idx + n, n, v);
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && v[idx[j]] == v[idx[i]])
            j++;
        double r = 0.5 * ((i + 1) + j); /* mean of positions i+1 .. j */
        for (int k = i; k < j; k++)
            rank[idx[k]] = r;
        i = j;
    }
    free(idx);
    return CX_OK;
}

cx_status cx_spearman(const double *a, const double *b, int n, double *rho, cx_err *err)
{
    *rho = NAN;
    if (n < 2)
        return CX_OK;
    double *buf = malloc(sizeof *buf * (size_t)n * 4);
    if (!buf)
        return cx_fail(err, CX_ENOMEM, "Spearman correlation: out of memory for %d pairs", n);
    double *pa = buf, *pb = buf + n, *ra = buf + 2 * (size_t)n, *rb = buf + 3 * (size_t)n;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(a[i]) && isfinite(b[i])) {
            pa[m] = a[i];
            pb[m] = b[i];
            m++;
        }
    cx_status st = CX_OK;
    if (m >= 2 && !(st = cx_rank_average(pa, m, ra, err)) &&
        !(st = cx_rank_average(pb, m, rb, err))) {
        double mean = 0.5 * (m + 1); /* mean of any average-rank vector */
        double sab = 0.0, saa = 0.0, sbb = 0.0;
        for (int i = 0; i < m; i++) {
            double da = ra[i] - mean, db = rb[i] - mean;
            sab += da * db;
            saa += da * da;
            sbb += db * db;
        }
        if (saa > 0.0 && sbb > 0.0)
            *rho = sab / sqrt(saa * sbb);
    }
    free(buf);
    return st;
}

void cx_prf(const int64_t *test_count, const int64_t *pred_count, const int64_t *correct, int C,
            double *precision, double *recall, double *f1)
{
    for (int c = 0; c < C; c++) {
        double r = test_count[c] > 0 ? (double)correct[c] / (double)test_count[c] : NAN;
        double p = pred_count[c] > 0 ? (double)correct[c] / (double)pred_count[c] : 0.0;
        if (precision)
            precision[c] = p;
        if (recall)
            recall[c] = r;
        if (f1)
            f1[c] = isnan(r) ? NAN : p + r > 0.0 ? 2.0 * p * r / (p + r) : 0.0;
    }
}

double cx_ece(const float *conf, const int32_t *pred, const int32_t *y, int N, int bins)
{
    if (N <= 0 || bins < 1 || bins > CX_ECE_BINS_MAX)
        return NAN;
    double acc[CX_ECE_BINS_MAX] = {0}, sum_conf[CX_ECE_BINS_MAX] = {0},
           count[CX_ECE_BINS_MAX] = {0};
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        double c = conf[i];
        if (!isfinite(c))
            continue;
        if (c < 0.0)
            c = 0.0;
        if (c > 1.0)
            c = 1.0;
        int b = (int)ceil(c * bins) - 1;
        if (b < 0)
            b = 0;
        if (b >= bins)
            b = bins - 1;
        acc[b] += pred[i] == y[i];
        sum_conf[b] += c;
        count[b] += 1.0;
        total += 1.0;
    }
    double ece = 0.0;
    for (int b = 0; b < bins; b++)
        if (count[b] > 0.0)
            ece += count[b] / total * fabs(acc[b] / count[b] - sum_conf[b] / count[b]);
    return total > 0.0 ? ece : NAN;
}
