/* clipx compare: evaluate several runs the same way and print one row per run with deltas
 * against the first; --json; --plot draws per-class accuracy against training count and the
 * head/mid/tail means with gnuplot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/json.h"
#include "lib/eval/plot.h"
#include "lib/eval/report.h"
#include "lib/eval/run_eval.h"

#include "cli.h"
#include "commands.h"
#include "eval_common.h"
#include "table.h"

static cli_eval_args args;
static const char *plot_path;
static int as_json;

static const cli_opt compare_opts[] = {
    {"data", CLI_STRING, &args.data, "DATASET",
     "evaluate every run on this dataset's test split (default: each run's own)", 0, -1, NULL},
    {"mode", CLI_STRING, &args.mode, "MODE",
     "classifier for every run (default: zeroshot for CLIP runs, head for SL runs)", 0, -1,
     CX_EVAL_MODE_CHOICES},
    {"split-rule", CLI_STRING, &args.split_rule, "RULE",
     "head/mid/tail by shots (thresholds) or by tertile of training-count rank (default shots)",
     0, -1, "shots|tertile"},
    {"thresholds", CLI_STRING, &args.thresholds, "MANY,FEW",
     "shots rule: head > MANY, tail < FEW training samples (default 100,20)", 0, -1, NULL},
    {"freqs", CLI_STRING, &args.freqs, "FREQS",
     "class frequencies (a 'name<TAB>count' file of every class, as count writes) for "
     "head/mid/tail and the correlations instead of the training counts", 0, -1, NULL},
    {"k", CLI_INT, &args.k, "K", "knn: neighbours that vote (default 20)", 1, CX_KNN_K_MAX, NULL},
    {"no-nc1", CLI_FLAG, &args.no_nc1, NULL, "skip neural collapse NC1 (nc1 is then null)", 0, -1,
     NULL},
    {"json", CLI_FLAG, &as_json, NULL, "one JSON object on stdout instead of the table", 0, -1,
     NULL},
    {"plot", CLI_STRING, &plot_path, "FILE",
     "draw per-class accuracy against training count and head/mid/tail bars into FILE "
     "(.svg or .png) with gnuplot", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_compare_spec = {
    "compare",
    "compare runs: top1, head/mid/tail, correlations, deltas; a figure",
    "RUN... [--mode MODE] [--json] [--plot FILE]",
    "Evaluates every run as 'clipx eval' does (each with its default mode unless --mode) and\n"
    "prints one row per run: top1, head, mid, tail, corr_acc and corr_pred (and worst_group\n"
    "and avg_group when a run's test split has groups), with the difference to the first\n"
    "run in parentheses. --json prints an object whose runs[] hold\n"
    "the same values and, in delta, the differences (null where a value is undefined).\n"
    "--plot FILE draws, with gnuplot, each run's per-class test accuracy against its training\n"
    "count (log scale; one series per run, named by its folder) beside a grouped bar chart of\n"
    "the head/mid/tail means; FILE ending in .svg gives SVG, .png gives PNG. Without gnuplot\n"
    "(apt-get install gnuplot-nox) --plot fails with status 1 before any run is evaluated.",
    compare_opts,
    1,
    -1,
    CLI_COMPUTES};

enum { NCOLS = 6 };
static const char *const col_keys[NCOLS] = {"top1", "head", "mid", "tail", "corr_acc", "corr_pred"};

static double col_value(const cx_eval_report *r, int k)
{
    switch (k) {
    case 0:
        return r->top1;
    case 1:
        return r->head;
    case 2:
        return r->mid;
    case 3:
        return r->tail;
    case 4:
        return r->corr_acc;
    default:
        return r->corr_pred;
    }
}

/* Group columns, shown when some run's test split has groups. */
enum { NGCOLS = 2 };
static const char *const gcol_keys[NGCOLS] = {"worst_group", "avg_group"};

static double gcol_value(const cx_eval_report *r, int k)
{
    if (!r->groups)
        return NAN;
    return k == 0 ? r->groups->worst : r->groups->avg;
}

typedef struct {
    char *name;              /* owned display name */
    cx_eval_report report;
    cx_run_eval_info info;
} compared;

static int any_groups(const compared *runs, int n)
{
    for (int i = 0; i < n; i++)
        if (runs[i].report.groups)
            return 1;
    return 0;
}

/* Folder names, or the paths as given when two runs share a folder name. */
static int name_runs(compared *runs, char **dirs, int n)
{
    for (int i = 0; i < n; i++)
        if (!(runs[i].name = cli_run_name(dirs[i])))
            return -1;
    int clash = 0;
    for (int i = 0; i < n && !clash; i++)
        for (int j = i + 1; j < n && !clash; j++)
            clash = strcmp(runs[i].name, runs[j].name) == 0;
    for (int i = 0; clash && i < n; i++) {
        free(runs[i].name);
        size_t len = strlen(dirs[i]) + 1;
        if (!(runs[i].name = malloc(len)))
            return -1;
        memcpy(runs[i].name, dirs[i], len);
    }
    return 0;
}

static void print_json(const compared *runs, char **dirs, int n)
{
    const cx_eval_report *r0 = &runs[0].report;
    const int groups = any_groups(runs, n);
    cx_json j;
    cx_json_init(&j, stdout, 1);
    cx_json_begin_object(&j);
    cx_json_key(&j, "baseline");
    cx_json_string(&j, runs[0].name);
    cx_json_key(&j, "split_rule");
    cx_json_string(&j, r0->rule == CX_SPLIT_RULE_TERTILE ? "tertile" : "shots");
    cx_json_key(&j, "thresholds");
    if (r0->rule == CX_SPLIT_RULE_SHOTS) {
        cx_json_begin_object(&j);
        cx_json_key(&j, "many");
        cx_json_int(&j, r0->many);
        cx_json_key(&j, "few");
        cx_json_int(&j, r0->few);
        cx_json_end_object(&j);
    } else {
        cx_json_null(&j);
    }
    cx_json_key(&j, "runs");
    cx_json_begin_array(&j);
    for (int i = 0; i < n; i++) {
        const cx_eval_report *r = &runs[i].report;
        const cx_run_eval_info *in = &runs[i].info;
        cx_json_begin_object(&j);
        cx_json_key(&j, "name");
        cx_json_string(&j, runs[i].name);
        cx_json_key(&j, "run");
        cx_json_string(&j, dirs[i]);
        cx_json_key(&j, "objective");
        cx_json_string(&j, cli_objective_name(in->objective));
        cx_json_key(&j, "mode");
        cx_json_string(&j, cx_eval_mode_name(in->mode));
        cx_json_key(&j, "data");
        cx_json_string(&j, in->data);
        for (int k = 0; k < NCOLS; k++) {
            cx_json_key(&j, col_keys[k]);
            cx_json_number(&j, col_value(r, k));
        }
        cx_json_key(&j, "top5");
        cx_json_number(&j, r->top5);
        cx_json_key(&j, "acc");
        cx_json_number(&j, r->acc);
        cx_json_key(&j, "worst_class");
        cx_json_number(&j, r->worst_class);
        cx_json_key(&j, "ece");
        cx_json_number(&j, r->ece);
        cx_json_key(&j, "nc1");
        cx_json_number(&j, r->nc1);
        cx_json_key(&j, "n_classes");
        cx_json_int(&j, r->C);
        cx_json_key(&j, "n_test");
        cx_json_int(&j, r->n_test);
        if (groups) {
            for (int k = 0; k < NGCOLS; k++) {
                cx_json_key(&j, gcol_keys[k]);
                cx_json_number(&j, gcol_value(r, k));
            }
            cx_json_key(&j, "adjusted_avg");
            cx_json_number(&j, r->groups ? r->groups->adjusted : NAN);
        }
        cx_json_key(&j, "delta");
        cx_json_begin_object(&j);
        for (int k = 0; k < NCOLS; k++) {
            cx_json_key(&j, col_keys[k]);
            cx_json_number(&j, col_value(r, k) - col_value(r0, k));
        }
        for (int k = 0; groups && k < NGCOLS; k++) {
            cx_json_key(&j, gcol_keys[k]);
            cx_json_number(&j, gcol_value(r, k) - gcol_value(r0, k));
        }
        cx_json_end_object(&j);
        cx_json_end_object(&j);
    }
    cx_json_end_array(&j);
    cx_json_end_object(&j);
}

static int print_table(const compared *runs, int n)
{
    static const char *const heads[] = {"run",        "mode",         ">top1",     ">head",
                                        ">mid",       ">tail",        ">corr_acc", ">corr_pred",
                                        ">worst_group", ">avg_group"};
    const int ncols = NCOLS + (any_groups(runs, n) ? NGCOLS : 0);
    cli_table t;
    if (cli_table_init(&t, 2 + ncols, heads))
        return -1;
    const cx_eval_report *r0 = &runs[0].report;
    for (int i = 0; i < n; i++) {
        char cells[NCOLS + NGCOLS][64];
        const char *row[2 + NCOLS + NGCOLS] = {runs[i].name, cx_eval_mode_name(runs[i].info.mode)};
        for (int k = 0; k < ncols; k++) {
            const cx_eval_report *r = &runs[i].report;
            double v = k < NCOLS ? col_value(r, k) : gcol_value(r, k - NCOLS);
            double d = v - (k < NCOLS ? col_value(r0, k) : gcol_value(r0, k - NCOLS));
            char a[32];
            cli_fmt(a, sizeof a, v);
            if (i > 0 && isfinite(d))
                snprintf(cells[k], sizeof cells[k], "%s (%+.4f)", a, d);
            else
                snprintf(cells[k], sizeof cells[k], "%s", a);
            row[2 + k] = cells[k];
        }
        if (cli_table_add(&t, row)) {
            cli_table_free(&t);
            return -1;
        }
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
    if (n > 1)
        printf("(in parentheses: difference to %s)\n", runs[0].name);
    return 0;
}

int cmd_compare(const cli_result *res)
{
    cx_run_eval_opts o;
    int rc = cli_eval_options("compare", &args, &o);
    if (rc)
        return rc;
    const int n = res->nargs;
    char *gnuplot = NULL;
    if (plot_path) {
        /* Refuse before the (possibly long) evaluations. */
        if (cx_plot_format_of(plot_path) < 0) {
            cli_error("compare", "--plot %s: the figure's name must end in .svg or .png",
                      plot_path);
            return EXIT_USAGE;
        }
        if (n > CX_PLOT_MAX_RUNS) {
            cli_error("compare", "--plot: a figure draws at most %d runs, not %d",
                      CX_PLOT_MAX_RUNS, n);
            return EXIT_USAGE;
        }
        if (!(gnuplot = cx_plot_find_gnuplot())) {
            cli_error("compare", "--plot %s: gnuplot not found: apt-get install gnuplot-nox",
                      plot_path);
            return EXIT_RUNTIME;
        }
    }
    compared *runs = calloc((size_t)n, sizeof *runs);
    cx_err err;
    cx_err_clear(&err);
    if (!runs || name_runs(runs, res->args, n)) {
        cli_error("compare", "out of memory");
        rc = EXIT_RUNTIME;
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        if (res->progress)
            fprintf(stderr, "compare: evaluating %s (%d/%d)\n", res->args[i], i + 1, n);
        cx_status st = cx_run_evaluate(res->args[i], &o, &runs[i].report, &runs[i].info, &err);
        if (st) {
            cli_eval_word_mode(&err);
            rc = cli_fail("compare", st, &err);
            goto fail;
        }
    }
    if (plot_path) {
        cx_plot_run *pr = calloc((size_t)n, sizeof *pr);
        cx_status st = pr ? CX_OK : cx_fail(&err, CX_ENOMEM, "out of memory");
        for (int i = 0; pr && i < n; i++) {
            pr[i].name = runs[i].name;
            pr[i].report = &runs[i].report;
        }
        if (!st)
            st = cx_plot_compare(gnuplot, pr, n, plot_path, &err);
        free(pr);
        if (st) {
            rc = cli_fail("compare", st, &err);
            goto fail;
        }
    }
    if (as_json) {
        print_json(runs, res->args, n);
    } else if (print_table(runs, n)) {
        cli_error("compare", "out of memory");
        rc = EXIT_RUNTIME;
    }
    if (!rc && plot_path && !res->quiet)
        fprintf(stderr, "compare: wrote %s\n", plot_path);
fail:
    for (int i = 0; runs && i < n; i++) {
        free(runs[i].name);
        cx_eval_report_free(&runs[i].report);
        cx_run_eval_info_free(&runs[i].info);
    }
    free(runs);
    free(gnuplot);
    return rc;
}
