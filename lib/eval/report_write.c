/* Writers of the evaluation report: JSON through lib/json.h, TSV tables for pandas; files are
 * written atomically through lib/afile.h. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "lib/base/afile.h"
#include "lib/eval/report.h"

static const char *rule_name(cx_split_rule rule)
{
    return rule == CX_SPLIT_RULE_TERTILE ? "tertile" : "shots";
}

static double at(const double *v, int c)
{
    return v ? v[c] : NAN;
}

void cx_eval_report_json(const cx_eval_report *r, cx_json *j)
{
    cx_json_begin_object(j);
    cx_json_key(j, "top1");
    cx_json_number(j, r->top1);
    cx_json_key(j, "top5");
    cx_json_number(j, r->top5);
    cx_json_key(j, "acc");
    cx_json_number(j, r->acc);
    cx_json_key(j, "head");
    cx_json_number(j, r->head);
    cx_json_key(j, "mid");
    cx_json_number(j, r->mid);
    cx_json_key(j, "tail");
    cx_json_number(j, r->tail);
    cx_json_key(j, "corr_acc");
    cx_json_number(j, r->corr_acc);
    cx_json_key(j, "corr_pred");
    cx_json_number(j, r->corr_pred);
    cx_json_key(j, "worst_class");
    cx_json_number(j, r->worst_class);
    cx_json_key(j, "ece");
    cx_json_number(j, r->ece);
    cx_json_key(j, "nc1");
    cx_json_number(j, r->nc1);
    cx_json_key(j, "macro_precision");
    cx_json_number(j, r->macro_precision);
    cx_json_key(j, "macro_recall");
    cx_json_number(j, r->macro_recall);
    cx_json_key(j, "macro_f1");
    cx_json_number(j, r->macro_f1);
    cx_json_key(j, "cos_all_means");
    cx_json_number(j, r->means_cos_all);
    cx_json_key(j, "cos_nearest_means");
    cx_json_number(j, r->means_cos_nearest);
    cx_json_key(j, "cos_all_weights");
    cx_json_number(j, r->weights_cos_all);
    cx_json_key(j, "cos_nearest_weights");
    cx_json_number(j, r->weights_cos_nearest);
    cx_json_key(j, "split_rule");
    cx_json_string(j, rule_name(r->rule));
    cx_json_key(j, "thresholds");
    if (r->rule == CX_SPLIT_RULE_SHOTS) {
        cx_json_begin_object(j);
        cx_json_key(j, "many");
        cx_json_int(j, r->many);
        cx_json_key(j, "few");
        cx_json_int(j, r->few);
        cx_json_end_object(j);
    } else {
        cx_json_null(j);
    }
    cx_json_key(j, "restricted_to");
    cx_json_string(j, cx_eval_report_restrict_name(r->restrict_to));
    cx_json_key(j, "n_classes");
    cx_json_int(j, r->C);
    cx_json_key(j, "n_listed");
    cx_json_int(j, r->n_listed);
    cx_json_key(j, "n_test");
    cx_json_int(j, r->n_test);
    cx_json_key(j, "topk");
    cx_json_int(j, r->topk);
    cx_json_key(j, "ece_bins");
    cx_json_int(j, r->ece_bins);
    cx_json_key(j, "classes");
    cx_json_begin_array(j);
    for (int c = 0; c < r->C; c++) {
        if (!cx_eval_report_lists(r, c))
            continue;
        cx_json_begin_object(j);
        cx_json_key(j, "name");
        cx_json_string(j, r->names[c]);
        cx_json_key(j, "index");
        cx_json_int(j, c);
        cx_json_key(j, "train_count");
        cx_json_int(j, r->train_count[c]);
        cx_json_key(j, "test_count");
        cx_json_int(j, r->test_count[c]);
        cx_json_key(j, "correct");
        cx_json_int(j, r->correct[c]);
        cx_json_key(j, "acc");
        cx_json_number(j, r->class_acc[c]);
        cx_json_key(j, "top5");
        cx_json_number(j, r->class_topk[c]);
        cx_json_key(j, "pred_count");
        cx_json_int(j, r->pred_count[c]);
        cx_json_key(j, "precision");
        cx_json_number(j, r->precision[c]);
        cx_json_key(j, "f1");
        cx_json_number(j, r->f1[c]);
        cx_json_key(j, "split");
        cx_json_string(j, cx_class_split_name(r->split[c]));
        cx_json_key(j, "nc1");
        cx_json_number(j, at(r->nc1_class, c));
        cx_json_key(j, "cos_all_means");
        cx_json_number(j, at(r->means_cos_all_class, c));
        cx_json_key(j, "cos_nearest_means");
        cx_json_number(j, at(r->means_cos_nearest_class, c));
        cx_json_key(j, "cos_all_weights");
        cx_json_number(j, at(r->weights_cos_all_class, c));
        cx_json_key(j, "cos_nearest_weights");
        cx_json_number(j, at(r->weights_cos_nearest_class, c));
        cx_json_end_object(j);
    }
    cx_json_end_array(j);
    cx_group_report_json_keys(r->groups, j); /* appended: the keys before keep their places */
    cx_json_end_object(j);
}

static cx_status check_stream(FILE *fp, const char *what, cx_err *err)
{
    if (ferror(fp))
        return cx_fail_errno(err, CX_EIO, errno ? errno : EIO, "%s: write failed", what);
    return CX_OK;
}

cx_status cx_eval_report_save_json(const cx_eval_report *r, const char *path, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    cx_json j;
    cx_json_init(&j, f.fp, 1);
    cx_eval_report_json(r, &j);
    if ((st = check_stream(f.fp, path, err))) {
        cx_afile_abort(&f);
        return st;
    }
    return cx_afile_commit(&f, err);
}

/* A class name as one TSV field: tabs, line breaks and double quotes (pandas' quote
 * character) would break the table, so they become spaces and single quotes. */
static void put_name(FILE *fp, const char *s)
{
    for (; *s; s++)
        fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s == '"' ? '\'' : *s, fp);
}

static void put_num(FILE *fp, double v)
{
    if (isfinite(v))
        fprintf(fp, "\t%.9g", v);
    else
        fputs("\tNaN", fp);
}

cx_status cx_eval_write_per_class_tsv(const cx_eval_report *r, FILE *fp, const char *what,
                                      cx_err *err)
{
    fputs("class\tname\tsplit\ttrain_count\ttest_count\tcorrect\tacc\ttop5\tpred_count\t"
          "precision\tf1\tnc1\tcos_all_means\tcos_nearest_means\tcos_all_weights\t"
          "cos_nearest_weights\n",
          fp);
    for (int c = 0; c < r->C; c++) {
        if (!cx_eval_report_lists(r, c))
            continue;
        fprintf(fp, "%d\t", c);
        put_name(fp, r->names[c]);
        fprintf(fp, "\t%s\t%lld\t%lld\t%lld", cx_class_split_name(r->split[c]),
                (long long)r->train_count[c], (long long)r->test_count[c],
                (long long)r->correct[c]);
        put_num(fp, r->class_acc[c]);
        put_num(fp, r->class_topk[c]);
        fprintf(fp, "\t%lld", (long long)r->pred_count[c]);
        put_num(fp, r->precision[c]);
        put_num(fp, r->f1[c]);
        put_num(fp, at(r->nc1_class, c));
        put_num(fp, at(r->means_cos_all_class, c));
        put_num(fp, at(r->means_cos_nearest_class, c));
        put_num(fp, at(r->weights_cos_all_class, c));
        put_num(fp, at(r->weights_cos_nearest_class, c));
        fputc('\n', fp);
    }
    return check_stream(fp, what, err);
}

cx_status cx_eval_write_confusion_tsv(const cx_eval_report *r, FILE *fp, const char *what,
                                      cx_err *err)
{
    fputs("truth", fp);
    for (int c = 0; c < r->C; c++) {
        fputc('\t', fp);
        put_name(fp, r->names[c]);
    }
    fputc('\n', fp);
    /* C^2 numbers (66 million for 8,142 classes): formatted by hand into one row buffer and
     * written with one fwrite a row; fprintf costs 10x more, an fwrite a number 5x. */
    char *line = malloc((size_t)r->C * 21 + 1);
    if (!line)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for a row of %d counts", what, r->C);
    for (int t = 0; t < r->C; t++) {
        put_name(fp, r->names[t]);
        const int64_t *row = r->confusion + (size_t)t * r->C;
        char *q = line;
        for (int p = 0; p < r->C; p++) {
            uint64_t v = row[p] < 0 ? 0 : (uint64_t)row[p]; /* counts are never negative */
            *q++ = '\t';
            if (v < 10) {
                *q++ = (char)('0' + v);
                continue;
            }
            char digits[20];
            int k = 0;
            do {
                digits[k++] = (char)('0' + v % 10);
                v /= 10;
            } while (v);
            while (k)
                *q++ = digits[--k];
        }
        *q++ = '\n';
        fwrite(line, 1, (size_t)(q - line), fp);
    }
    free(line);
    return check_stream(fp, what, err);
}

typedef cx_status (*tsv_writer)(const cx_eval_report *, FILE *, const char *, cx_err *);

static cx_status save_with(tsv_writer fn, const cx_eval_report *r, const char *path, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    if ((st = fn(r, f.fp, path, err))) {
        cx_afile_abort(&f);
        return st;
    }
    return cx_afile_commit(&f, err);
}

cx_status cx_eval_save_per_class_tsv(const cx_eval_report *r, const char *path, cx_err *err)
{
    return save_with(cx_eval_write_per_class_tsv, r, path, err);
}

cx_status cx_eval_save_confusion_tsv(const cx_eval_report *r, const char *path, cx_err *err)
{
    return save_with(cx_eval_write_confusion_tsv, r, path, err);
}
