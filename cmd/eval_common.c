/* Options, JSON and names shared by clipx eval and clipx compare. */
#include "eval_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/json.h"
#include "lib/eval/posthoc.h"
#include "lib/run/retrain_config.h"
#include "lib/run/train_config.h"

#include "cli.h"

int cli_eval_options(const char *cmd, const cli_eval_args *a, cx_run_eval_opts *o)
{
    cx_run_eval_defaults(o);
    o->data = a->data;
    o->freqs = a->freqs;
    if (a->mode)
        o->mode = cx_eval_mode_parse(a->mode); /* cli_parse checked the choice */
    if (a->split_rule && strcmp(a->split_rule, "tertile") == 0)
        o->report.rule = CX_SPLIT_RULE_TERTILE;
    if (a->thresholds) {
        long many, few;
        if (cli_parse_thresholds(a->thresholds, &many, &few)) {
            cli_error(cmd, "--thresholds: '%s' is not MANY,FEW with 0 <= FEW <= MANY + 1",
                      a->thresholds);
            return EXIT_USAGE;
        }
        o->report.many = many;
        o->report.few = few;
    }
    if (a->k > 0)
        o->clf.k = (int)a->k;
    o->nc1 = !a->no_nc1;
    return EXIT_OK;
}

void cli_eval_word_mode(cx_err *err)
{
    for (int m = 0; m < CX_EVAL_MODE_COUNT; m++) {
        char lead[64];
        snprintf(lead, sizeof lead, "mode %s: ", cx_eval_mode_name((cx_eval_mode)m));
        if (strncmp(err->msg, lead, strlen(lead)) == 0) {
            cli_err_prepend(err, "--");
            return;
        }
    }
}

static void key_string(FILE *fp, const char *key, const char *value)
{
    fprintf(fp, "\n  \"%s\": ", key);
    if (value)
        cx_json_write_string(fp, value);
    else
        fputs("null", fp);
    fputc(',', fp);
}

static void key_number(FILE *fp, const char *key, double v)
{
    fprintf(fp, "\n  \"%s\": ", key);
    if (isfinite(v))
        fprintf(fp, "%.9g,", v);
    else
        fputs("null,", fp);
}

void cli_eval_json(FILE *fp, const cx_eval_report *r, const char *run_dir,
                   const cx_run_eval_info *info)
{
    /* The report's own object, with the run's context spliced in after its opening brace. */
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem) {
        cx_json j;
        cx_json_init(&j, mem, 1);
        cx_eval_report_json(r, &j);
        if (fclose(mem) != 0) {
            free(text);
            text = NULL;
        }
    }
    const char *body = text ? strchr(text, '{') : NULL;
    if (!body) {
        /* Out of memory: the report alone, streamed. */
        free(text);
        cx_json j;
        cx_json_init(&j, fp, 1);
        cx_eval_report_json(r, &j);
        return;
    }
    fputc('{', fp);
    key_string(fp, "run", run_dir);
    key_string(fp, "objective", cli_objective_name(info->objective));
    key_string(fp, "mode", cx_eval_mode_name(info->mode));
    key_string(fp, "data", info->data);
    key_string(fp, "subset", info->subset);
    if (info->freqs) /* only with --freqs: reports without it keep their bytes */
        key_string(fp, "freqs", info->freqs);
    fprintf(fp, "\n  \"n_train_features\": %lld,", (long long)info->n_train);
    key_number(fp, "probe_lambda", info->probe_lambda);
    if (info->probe.grid > 1) {
        /* What another solver needs to repeat the search: the grid, its validation
         * accuracies, and the validation rows (indices into the training features, the
         * order of `clipx embed --split train`). */
        const cx_probe_info *p = &info->probe;
        fputs("\n  \"probe\": {\"lambda\": ", fp);
        fprintf(fp, "%.17g, \"n_train\": %d, \"n_val\": %d, \"grid\": [", p->lambda,
                p->n_train, p->n_val);
        for (int g = 0; g < p->grid; g++)
            fprintf(fp, "%s%.17g", g ? ", " : "", p->grid_lambda[g]);
        fputs("], \"grid_val_acc\": [", fp);
        for (int g = 0; g < p->grid; g++)
            fprintf(fp, "%s%.17g", g ? ", " : "", p->grid_val_acc[g]);
        fputs("], \"val_rows\": [", fp);
        for (int i = 0; p->val_rows && i < p->n_val; i++)
            fprintf(fp, "%s%d", i ? "," : "", (int)p->val_rows[i]);
        fprintf(fp, "], \"iterations\": %d},", p->fit.iters);
    }
    if (info->retrained) {
        fputs("\n  \"retrain\": {\"method\": ", fp);
        cx_json_write_string(fp, cx_retrain_method_name(info->retrain_method));
        fputs(", \"from\": ", fp);
        cx_json_write_string(fp, info->retrain_from ? info->retrain_from : "");
        if (isfinite(info->retrain_tau))
            fprintf(fp, ", \"tau\": %.9g},", info->retrain_tau);
        else
            fputs(", \"tau\": null},", fp);
    }
    if (info->posthoc) {
        fputs("\n  \"posthoc\": {\"method\": ", fp);
        cx_json_write_string(fp, cx_posthoc_name((cx_posthoc_kind)info->posthoc));
        fprintf(fp, ", \"tau\": %.9g, \"tau_from\": ", info->posthoc_tau);
        cx_json_write_string(fp, info->posthoc_tau_chosen ? cx_val_source_name(info->posthoc_val)
                                                          : "given");
        fprintf(fp, ", \"n_val\": %lld, \"val_acc\": ", (long long)info->posthoc_n_val);
        if (isfinite(info->posthoc_val_acc))
            fprintf(fp, "%.9g},", info->posthoc_val_acc);
        else
            fputs("null},", fp);
    }
    fputs(body + 1, fp);
    free(text);
}

char *cli_run_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    if (start == n) /* "/" */
        start = 0;
    char *s = malloc(n - start + 1);
    if (s) {
        memcpy(s, dir + start, n - start);
        s[n - start] = '\0';
    }
    return s;
}

const char *cli_objective_name(int objective)
{
    return objective == CX_CFG_OBJECTIVE_CLIP     ? "clip"
           : objective == CX_CFG_OBJECTIVE_DINO   ? "dino"
           : objective == CX_CFG_OBJECTIVE_DECLIP ? "declip"
                                                  : "sl";
}

const char *cli_fmt(char *buf, size_t cap, double v)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.4f", v);
    else
        snprintf(buf, cap, "-");
    return buf;
}
