/* Building the evaluation report from counts, and restricting its summary to a split. */
#include "lib/eval/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/eval/metrics.h"

void cx_report_defaults(cx_report_opts *o)
{
    o->rule = CX_SPLIT_RULE_SHOTS;
    o->many = CX_SPLIT_MANY_DEFAULT;
    o->few = CX_SPLIT_FEW_DEFAULT;
    o->restrict_to = CX_REPORT_ALL;
    o->ece_bins = CX_ECE_BINS_DEFAULT;
}

const char *cx_eval_report_restrict_name(int split)
{
    if (split == CX_SPLIT_HEAD || split == CX_SPLIT_MID || split == CX_SPLIT_TAIL)
        return cx_class_split_name((cx_class_split)split);
    return "all";
}

void cx_eval_report_free(cx_eval_report *r)
{
    if (!r)
        return;
    if (r->names)
        for (int c = 0; c < r->C; c++)
            free(r->names[c]);
    free(r->names);
    free(r->train_count);
    free(r->test_count);
    free(r->pred_count);
    free(r->correct);
    free(r->topk_hits);
    free(r->confusion);
    free(r->split);
    free(r->class_acc);
    free(r->class_topk);
    free(r->precision);
    free(r->f1);
    free(r->nc1_class);
    free(r->means_cos_all_class);
    free(r->means_cos_nearest_class);
    free(r->weights_cos_all_class);
    free(r->weights_cos_nearest_class);
    cx_group_report_free(r->groups);
    free(r->groups);
    memset(r, 0, sizeof *r);
}

int cx_eval_report_lists(const cx_eval_report *r, int c)
{
    return r->restrict_to == CX_REPORT_ALL || (int)r->split[c] == r->restrict_to;
}

/* Running mean of the finite values added. */
typedef struct {
    double sum;
    int n;
} mean_acc;

static void mean_add(mean_acc *m, double v)
{
    if (isfinite(v)) {
        m->sum += v;
        m->n++;
    }
}

static double mean_get(const mean_acc *m)
{
    return m->n ? m->sum / m->n : NAN;
}

void cx_eval_report_restrict(cx_eval_report *r, int split)
{
    if (split != CX_SPLIT_HEAD && split != CX_SPLIT_MID && split != CX_SPLIT_TAIL)
        split = CX_REPORT_ALL;
    r->restrict_to = split;
    mean_acc top1 = {0}, top5 = {0}, prec = {0}, rec = {0}, f1 = {0};
    int64_t right = 0, total = 0;
    double worst = NAN;
    r->n_listed = 0;
    for (int c = 0; c < r->C; c++) {
        if (!cx_eval_report_lists(r, c))
            continue;
        r->n_listed++;
        right += r->correct[c];
        total += r->test_count[c];
        if (r->test_count[c] == 0)
            continue; /* acc undefined: out of every mean, as its precision */
        mean_add(&top1, r->class_acc[c]);
        mean_add(&top5, r->class_topk[c]);
        mean_add(&prec, r->precision[c]);
        mean_add(&rec, r->class_acc[c]);
        mean_add(&f1, r->f1[c]);
        if (!(worst <= r->class_acc[c]))
            worst = r->class_acc[c];
    }
    r->top1 = mean_get(&top1);
    r->top5 = mean_get(&top5);
    r->acc = total > 0 ? (double)right / (double)total : NAN;
    r->worst_class = worst;
    r->macro_precision = mean_get(&prec);
    r->macro_recall = mean_get(&rec);
    r->macro_f1 = mean_get(&f1);
}

static char *dup_name(const char *s, int c)
{
    char buf[32];
    if (!s) {
        snprintf(buf, sizeof buf, "%d", c);
        s = buf;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The report from a confusion matrix and its margins. With y and pred (n labels and top-1
 * predictions) the matrix is built here from them in O(n) instead of copied (8,142 classes
 * make it 530 MB: calloc's untouched pages cost neither time nor memory) and the margins are
 * counted from them; otherwise confusion is validated and copied and the margins summed from
 * it in O(C^2). */
static cx_status report_init(cx_eval_report *r, const int64_t *confusion, const int32_t *y,
                             const int32_t *pred, int64_t n, const int64_t *topk_hits, int K,
                             const int64_t *train_count, const char *const *names, int C,
                             const cx_report_opts *o, cx_err *err)
{
    memset(r, 0, sizeof *r);
    cx_report_opts def;
    if (!o) {
        cx_report_defaults(&def);
        o = &def;
    }
    if (C < 1)
        return cx_fail(err, CX_EUSAGE, "report: %d classes", C);
    if (o->ece_bins < 1 || o->ece_bins > CX_ECE_BINS_MAX)
        return cx_fail(err, CX_EUSAGE, "report: %d ECE bins, must lie in 1..%d", o->ece_bins,
                       CX_ECE_BINS_MAX);
    if (o->rule == CX_SPLIT_RULE_SHOTS && !(o->few <= o->many + 1))
        return cx_fail(err, CX_EUSAGE,
                       "report: split thresholds many %lld, few %lld: need few <= many + 1",
                       (long long)o->many, (long long)o->few);
    for (int c = 0; c < C; c++)
        if (train_count[c] < 0)
            return cx_fail(err, CX_EDATA, "report: class %d: training count %lld < 0", c,
                           (long long)train_count[c]);
    for (size_t i = 0; confusion && i < (size_t)C * C; i++)
        if (confusion[i] < 0)
            return cx_fail(err, CX_EDATA, "report: confusion entry (%zu, %zu) < 0", i / C, i % C);

    size_t nc = (size_t)C;
    r->C = C;
    r->rule = o->rule;
    r->many = o->many;
    r->few = o->few;
    r->ece_bins = o->ece_bins;
    r->topk = K;
    r->names = calloc(nc, sizeof *r->names);
    r->train_count = malloc(sizeof(int64_t) * nc);
    r->test_count = malloc(sizeof(int64_t) * nc);
    r->pred_count = malloc(sizeof(int64_t) * nc);
    r->correct = malloc(sizeof(int64_t) * nc);
    r->topk_hits = calloc(nc, sizeof(int64_t));
    r->confusion = confusion ? malloc(sizeof(int64_t) * nc * nc) : calloc(nc * nc, sizeof(int64_t));
    r->split = malloc(sizeof *r->split * nc);
    r->class_acc = malloc(sizeof(double) * nc);
    r->class_topk = malloc(sizeof(double) * nc);
    r->precision = malloc(sizeof(double) * nc);
    r->f1 = malloc(sizeof(double) * nc);
    double *tmp = malloc(sizeof(double) * nc * 3);
    int ok = r->names && r->train_count && r->test_count && r->pred_count && r->correct &&
             r->topk_hits && r->confusion && r->split && r->class_acc && r->class_topk &&
             r->precision && r->f1 && tmp;
    for (int c = 0; ok && c < C; c++)
        ok = (r->names[c] = dup_name(names ? names[c] : NULL, c)) != NULL;
    if (!ok) {
        free(tmp);
        cx_eval_report_free(r);
        return cx_fail(err, CX_ENOMEM, "report: out of memory for %d classes", C);
    }
    memcpy(r->train_count, train_count, sizeof(int64_t) * nc);
    if (topk_hits)
        memcpy(r->topk_hits, topk_hits, sizeof(int64_t) * nc);
    if (confusion) {
        memcpy(r->confusion, confusion, sizeof(int64_t) * nc * nc);
        cx_confusion_margins(confusion, C, r->test_count, r->pred_count, r->correct);
    } else {
        memset(r->test_count, 0, sizeof(int64_t) * nc);
        memset(r->pred_count, 0, sizeof(int64_t) * nc);
        memset(r->correct, 0, sizeof(int64_t) * nc);
        for (int64_t i = 0; i < n; i++) {
            r->confusion[(size_t)y[i] * nc + (size_t)pred[i]]++;
            r->test_count[y[i]]++;
            r->pred_count[pred[i]]++;
            r->correct[y[i]] += y[i] == pred[i];
        }
    }
    cx_class_splits(train_count, C, o->rule, o->many, o->few, r->split);
    cx_prf(r->test_count, r->pred_count, r->correct, C, r->precision, r->class_acc, r->f1);
    r->n_test = 0;
    for (int c = 0; c < C; c++) {
        r->n_test += r->test_count[c];
        r->class_topk[c] = topk_hits && r->test_count[c] > 0
                               ? (double)topk_hits[c] / (double)r->test_count[c]
                               : NAN;
    }
    unsigned char *mask = (unsigned char *)(tmp + 2 * nc); /* C bytes fit in C doubles */
    double *split_mean[3] = {&r->head, &r->mid, &r->tail};
    for (int s = 0; s < 3; s++) {
        for (int c = 0; c < C; c++)
            mask[c] = (int)r->split[c] == s;
        *split_mean[s] = cx_mean_where(r->class_acc, mask, C);
    }
    double *n_c = tmp, *p_c = tmp + nc;
    for (int c = 0; c < C; c++) {
        n_c[c] = (double)train_count[c];
        p_c[c] = (double)r->pred_count[c];
    }
    cx_status st;
    if ((st = cx_spearman(n_c, r->class_acc, C, &r->corr_acc, err)) ||
        (st = cx_spearman(n_c, p_c, C, &r->corr_pred, err))) {
        free(tmp);
        cx_eval_report_free(r);
        return st;
    }
    free(tmp);
    r->ece = NAN;
    r->nc1 = r->means_cos_all = r->means_cos_nearest = NAN;
    r->weights_cos_all = r->weights_cos_nearest = NAN;
    cx_eval_report_restrict(r, o->restrict_to);
    return CX_OK;
}

cx_status cx_eval_report_from_counts(cx_eval_report *r, const int64_t *confusion,
                                     const int64_t *topk_hits, int K, const int64_t *train_count,
                                     const char *const *names, int C, const cx_report_opts *o,
                                     cx_err *err)
{
    return report_init(r, confusion, NULL, NULL, 0, topk_hits, K, train_count, names, C, o,
                       err);
}

cx_status cx_eval_report_build(cx_eval_report *r, const cx_eval_pred *pred, const int32_t *y,
                               const int64_t *train_count, const char *const *names,
                               const cx_report_opts *o, cx_err *err)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < pred->N; i++)
        if (y[i] < 0 || y[i] >= pred->C || pred->pred[i] < 0 || pred->pred[i] >= pred->C)
            return cx_fail(err, CX_EDATA, "report: test vector %d: label %d or prediction %d "
                           "outside 0..%d", i, (int)y[i], (int)pred->pred[i], pred->C - 1);
    cx_status st = report_init(r, NULL, y, pred->pred, pred->N, pred->topk_hits, pred->K,
                               train_count, names, pred->C, o, err);
    if (st)
        return st;
    r->ece = cx_ece(pred->conf, pred->pred, y, pred->N, r->ece_bins);
    return CX_OK;
}

static cx_status copy_array(double **dst, const double *src, int C)
{
    free(*dst);
    *dst = NULL;
    if (!src)
        return CX_OK;
    *dst = malloc(sizeof **dst * (size_t)C);
    if (!*dst)
        return CX_ENOMEM;
    memcpy(*dst, src, sizeof **dst * (size_t)C);
    return CX_OK;
}

cx_status cx_eval_report_attach_collapse(cx_eval_report *r, const cx_collapse *c, cx_err *err)
{
    if (c->C != r->C)
        return cx_fail(err, CX_EUSAGE, "report: collapse statistics for %d classes, report has %d",
                       c->C, r->C);
    if (copy_array(&r->nc1_class, c->nc1_class, r->C) ||
        copy_array(&r->means_cos_all_class, c->means_cos_all_class, r->C) ||
        copy_array(&r->means_cos_nearest_class, c->means_cos_nearest_class, r->C) ||
        copy_array(&r->weights_cos_all_class, c->weights_cos_all_class, r->C) ||
        copy_array(&r->weights_cos_nearest_class, c->weights_cos_nearest_class, r->C))
        return cx_fail(err, CX_ENOMEM, "report: out of memory for %d classes", r->C);
    r->nc1 = c->nc1;
    r->means_cos_all = c->means_cos_all;
    r->means_cos_nearest = c->means_cos_nearest;
    r->weights_cos_all = c->weights_cos_all;
    r->weights_cos_nearest = c->weights_cos_nearest;
    return CX_OK;
}
