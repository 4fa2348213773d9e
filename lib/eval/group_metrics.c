/* Per-group accuracy, worst-group, average-group and adjusted average (see group_metrics.h). */
#include "lib/eval/group_metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"

void cx_group_counts(const int32_t *groups, size_t n, int G, int64_t *counts)
{
    memset(counts, 0, sizeof *counts * (size_t)G);
    for (size_t i = 0; i < n; i++)
        if (groups[i] >= 0 && groups[i] < G)
            counts[groups[i]]++;
}

void cx_group_report_free(cx_group_report *g)
{
    if (!g)
        return;
    for (int k = 0; g->names && k < g->G; k++)
        free(g->names[k]);
    free(g->names);
    free(g->train_count);
    free(g->test_count);
    free(g->correct);
    free(g->acc);
    memset(g, 0, sizeof *g);
}

cx_status cx_group_report_build(cx_group_report *g, const int32_t *pred, const int32_t *y,
                                const int32_t *groups, int64_t N, int G,
                                const char *const *names, const int64_t *train_count,
                                cx_err *err)
{
    memset(g, 0, sizeof *g);
    if (G < 1)
        return cx_fail(err, CX_EUSAGE, "groups: %d groups", G);
    size_t ng = (size_t)G;
    g->G = G;
    g->names = calloc(ng, sizeof *g->names);
    g->train_count = malloc(ng * sizeof *g->train_count);
    g->test_count = calloc(ng, sizeof *g->test_count);
    g->correct = calloc(ng, sizeof *g->correct);
    g->acc = malloc(ng * sizeof *g->acc);
    if (!g->names || !g->train_count || !g->test_count || !g->correct || !g->acc)
        goto oom;
    for (int k = 0; k < G; k++) {
        char idx[24];
        const char *nm = names && names[k] ? names[k] : NULL;
        if (!nm) {
            snprintf(idx, sizeof idx, "%d", k);
            nm = idx;
        }
        if (!(g->names[k] = strdup(nm)))
            goto oom;
        g->train_count[k] = train_count ? train_count[k] : -1;
    }
    for (int64_t i = 0; i < N; i++) {
        int32_t k = groups[i];
        if (k < 0 || k >= G) {
            cx_group_report_free(g);
            return cx_fail(err, CX_EDATA, "groups: sample %lld: group %d outside [0, %d)",
                           (long long)i, (int)k, G);
        }
        g->test_count[k]++;
        g->correct[k] += pred[i] == y[i];
    }
    double sum = 0, wsum = 0, wacc = 0, worst = NAN;
    int known = train_count != NULL;
    for (int k = 0; k < G; k++) {
        if (!g->test_count[k]) {
            g->acc[k] = NAN;
            continue;
        }
        double a = (double)g->correct[k] / (double)g->test_count[k];
        g->acc[k] = a;
        g->with_test++;
        sum += a;
        if (!(worst <= a))
            worst = a;
        if (known) {
            wsum += (double)g->train_count[k];
            wacc += (double)g->train_count[k] * a;
        }
    }
    g->worst = worst;
    g->avg = g->with_test ? sum / g->with_test : NAN;
    g->adjusted = known && wsum > 0 ? wacc / wsum : NAN;
    return CX_OK;
oom:
    cx_group_report_free(g);
    return cx_fail(err, CX_ENOMEM, "groups: out of memory for %d groups", G);
}

void cx_group_report_json_keys(const cx_group_report *g, cx_json *j)
{
    cx_json_key(j, "worst_group");
    cx_json_number(j, g ? g->worst : NAN);
    cx_json_key(j, "avg_group");
    cx_json_number(j, g ? g->avg : NAN);
    cx_json_key(j, "adjusted_avg");
    cx_json_number(j, g ? g->adjusted : NAN);
    cx_json_key(j, "groups");
    if (!g) {
        cx_json_null(j);
        return;
    }
    cx_json_begin_array(j);
    for (int k = 0; k < g->G; k++) {
        cx_json_begin_object(j);
        cx_json_key(j, "name");
        cx_json_string(j, g->names[k]);
        cx_json_key(j, "index");
        cx_json_int(j, k);
        cx_json_key(j, "train_count");
        if (g->train_count[k] >= 0)
            cx_json_int(j, g->train_count[k]);
        else
            cx_json_null(j);
        cx_json_key(j, "test_count");
        cx_json_int(j, g->test_count[k]);
        cx_json_key(j, "correct");
        cx_json_int(j, g->correct[k]);
        cx_json_key(j, "acc");
        cx_json_number(j, g->acc[k]);
        cx_json_end_object(j);
    }
    cx_json_end_array(j);
}

static void put_name(FILE *fp, const char *s)
{
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s == '"' ? '\'' : *s, fp);
}

cx_status cx_group_write_tsv(const cx_group_report *g, FILE *fp, const char *what, cx_err *err)
{
    fputs("group\tname\ttrain_count\ttest_count\tcorrect\tacc\n", fp);
    for (int k = 0; k < g->G; k++) {
        fprintf(fp, "%d\t", k);
        put_name(fp, g->names[k]);
        if (g->train_count[k] >= 0)
            fprintf(fp, "\t%lld", (long long)g->train_count[k]);
        else
            fputs("\tNaN", fp);
        fprintf(fp, "\t%lld\t%lld", (long long)g->test_count[k], (long long)g->correct[k]);
        if (isfinite(g->acc[k]))
            fprintf(fp, "\t%.9g\n", g->acc[k]);
        else
            fputs("\tNaN\n", fp);
    }
    if (ferror(fp))
        return cx_fail_errno(err, CX_EIO, errno ? errno : EIO, "%s: write failed", what);
    return CX_OK;
}

cx_status cx_group_save_tsv(const cx_group_report *g, const char *path, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    if ((st = cx_group_write_tsv(g, f.fp, path, err))) {
        cx_afile_abort(&f);
        return st;
    }
    return cx_afile_commit(&f, err);
}
