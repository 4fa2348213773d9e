/* clipx plot: the training curves of runs (log.jsonl: loss, and the metrics eval.every wrote)
 * as one figure, drawn by gnuplot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/eval/curves.h"
#include "lib/run/log_read.h"
#include "lib/run/run.h"

#include "commands.h"
#include "eval_common.h"

static const char *out_path;

static const cli_opt plot_opts[] = {
    {"out", CLI_STRING, &out_path, "FILE", "the figure to write, .svg or .png (required)", 0, -1,
     NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_plot_spec = {
    "plot",
    "training curves of runs (loss, and eval.every's metrics) as one figure",
    "RUN... --out FILE.svg|FILE.png",
    "Reads each run's log.jsonl and draws, with one series per run, the training loss over\n"
    "epochs, and where the runs were trained with eval.every N the evaluated metrics too: top1,\n"
    "head, mid and tail accuracy, corr_acc and corr_pred (one panel each, on the split the\n"
    "runs were evaluated on: val, or test when the dataset has none). Runs are named by their\n"
    "folder's last component (whole paths when two share one). Needs gnuplot (apt-get install\n"
    "gnuplot-nox); the figure is written atomically.",
    plot_opts,
    1,
    -1,
    0};

int cmd_plot(const cli_result *res)
{
    if (!out_path) {
        cli_error("plot", "--out FILE is required (.svg or .png)");
        return EXIT_USAGE;
    }
    if (cx_plot_format_of(out_path) < 0) {
        cli_error("plot", "--out %s: the figure's name must end in .svg or .png", out_path);
        return EXIT_USAGE;
    }
    const int n = res->nargs;
    if (n > CX_CURVES_MAX_RUNS) {
        cli_error("plot", "a figure draws at most %d runs, not %d", CX_CURVES_MAX_RUNS, n);
        return EXIT_USAGE;
    }
    char *gnuplot = cx_plot_find_gnuplot();
    if (!gnuplot) {
        cli_error("plot", "--out %s: gnuplot not found: apt-get install gnuplot-nox", out_path);
        return EXIT_RUNTIME;
    }
    int rc = EXIT_OK;
    cx_err err;
    cx_err_clear(&err);
    cx_run_log *logs = calloc((size_t)n, sizeof *logs);
    cx_curves_run *runs = calloc((size_t)n, sizeof *runs);
    char **names = calloc((size_t)n, sizeof *names);
    cx_status st = logs && runs && names ? CX_OK : cx_fail(&err, CX_ENOMEM, "out of memory");
    int clash = 0;
    for (int i = 0; !st && i < n; i++) {
        char *path = cx_run_path(res->args[i], CX_RUN_LOG);
        if (!path || !(names[i] = cli_run_name(res->args[i]))) {
            free(path);
            st = cx_fail(&err, CX_ENOMEM, "out of memory");
            break;
        }
        st = cx_run_log_read(path, &logs[i], &err);
        free(path);
        for (int j = 0; !st && j < i; j++)
            clash |= strcmp(names[i], names[j]) == 0;
    }
    for (int i = 0; !st && i < n; i++) {
        runs[i].name = clash ? res->args[i] : names[i];
        runs[i].log = &logs[i];
    }
    if (!st)
        st = cx_curves_plot(gnuplot, runs, n, out_path, &err);
    if (st)
        rc = cli_fail("plot", st, &err);
    else if (!res->quiet)
        fprintf(stderr, "plot: wrote %s (%d run%s)\n", out_path, n, n == 1 ? "" : "s");
    for (int i = 0; logs && i < n; i++)
        cx_run_log_free(&logs[i]);
    for (int i = 0; names && i < n; i++)
        free(names[i]);
    free(logs);
    free(runs);
    free(names);
    free(gnuplot);
    return rc;
}
