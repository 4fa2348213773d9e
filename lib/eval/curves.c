/* plot's curves: per run a loss file and an evaluation file, and a multiplot script with a
 * panel per series. */
#include "lib/eval/curves.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/base/afile.h"
#include "lib/base/path.h"

static void put(FILE *fp, double v)
{
    if (isfinite(v))
        fprintf(fp, "\t%.9g", v);
    else
        fputs("\tNaN", fp);
}

/* loss-I.tsv: epoch, loss; eval-I.tsv: epoch and the six metrics of evaluated epochs. */
static cx_status write_run(const char *dir, int i, const cx_run_log *log, cx_err *err)
{
    char *loss = cx_gnuplot_file(dir, "loss-%d.tsv", i);
    char *eval = cx_gnuplot_file(dir, "eval-%d.tsv", i);
    cx_afile lf, ef;
    cx_status st = !loss || !eval ? cx_fail(err, CX_ENOMEM, "out of memory") : CX_OK;
    if (!st)
        st = cx_afile_open(&lf, loss, err);
    if (!st && (st = cx_afile_open(&ef, eval, err)))
        cx_afile_abort(&lf);
    if (!st) {
        for (int64_t r = 0; r < log->n; r++) {
            fprintf(lf.fp, "%lld", (long long)log->epoch[r]);
            put(lf.fp, log->value[CX_LOG_LOSS][r]);
            fputc('\n', lf.fp);
            int evaluated = 0;
            for (int k = CX_LOG_TOP1; k < CX_LOG_SERIES; k++)
                evaluated |= !isnan(log->value[k][r]);
            if (!evaluated)
                continue;
            fprintf(ef.fp, "%lld", (long long)log->epoch[r]);
            for (int k = CX_LOG_TOP1; k < CX_LOG_SERIES; k++)
                put(ef.fp, log->value[k][r]);
            fputc('\n', ef.fp);
        }
        /* gnuplot refuses a file without data: an empty run still gets a row it cannot draw */
        if (log->n == 0)
            fputs("NaN\tNaN\n", lf.fp);
        fputs("NaN\tNaN\tNaN\tNaN\tNaN\tNaN\tNaN\n", ef.fp);
        st = cx_afile_commit(&lf, err);
        if (st)
            cx_afile_abort(&ef);
        else
            st = cx_afile_commit(&ef, err);
    }
    free(loss);
    free(eval);
    return st;
}

static const char *const panel_title[CX_LOG_SERIES] = {
    "training loss", "top-1 (class mean)", "head accuracy", "mid accuracy",
    "tail accuracy", "corr_acc (Spearman: frequency, accuracy)",
    "corr_pred (Spearman: frequency, predictions)"};

static void write_script(FILE *fp, const cx_curves_run *runs, int n, cx_plot_format fmt,
                         const char *out_name, int any_eval, const char *split)
{
    int panels = any_eval ? CX_LOG_SERIES : 1;
    int cols = any_eval ? 4 : 1, rows = any_eval ? 2 : 1;
    fprintf(fp, "# clipx plot: training curves of %d run(s). Run in this folder: gnuplot plot.gp\n",
            n);
    if (fmt == CX_PLOT_SVG)
        fprintf(fp, "set terminal svg size %d,%d dynamic noenhanced font 'Sans,12' "
                    "background rgb 'white'\n", any_eval ? 1600 : 800, any_eval ? 760 : 480);
    else
        fprintf(fp, "set terminal pngcairo size %d,%d noenhanced font 'Sans,10' "
                    "background rgb 'white'\n", any_eval ? 1600 : 800, any_eval ? 760 : 480);
    fputs("set output ", fp);
    cx_gnuplot_string(fp, out_name);
    fputs("\nset datafile separator '\\t'\nset datafile missing 'NaN'\n", fp);
    char title[160];
    if (any_eval)
        snprintf(title, sizeof title, "Training curves of %d run%s (metrics on the %s split)", n,
                 n == 1 ? "" : "s", split[0] ? split : "val");
    else
        snprintf(title, sizeof title, "Training loss of %d run%s", n, n == 1 ? "" : "s");
    fprintf(fp, "set multiplot layout %d,%d title ", rows, cols);
    cx_gnuplot_string(fp, title);
    fputs(" font ',14'\nset grid\nset xlabel 'epoch'\nset key top right font ',9'\n", fp);
    for (int k = 0; k < panels; k++) {
        fputs("set title ", fp);
        cx_gnuplot_string(fp, panel_title[k]);
        fputc('\n', fp);
        if (k == CX_LOG_LOSS)
            fputs("set autoscale y\n", fp);
        else if (k >= CX_LOG_CORR_ACC)
            fputs("set yrange [-1:1]\n", fp);
        else
            fputs("set yrange [0:1]\n", fp);
        fputs("plot \\\n", fp);
        for (int i = 0; i < n; i++) {
            fprintf(fp, "  '%s-%d.tsv' using 1:%d with linespoints pt 7 ps 0.6 lw 1.5 "
                        "lc rgb '#%s' title ",
                    k == CX_LOG_LOSS ? "loss" : "eval", i, k == CX_LOG_LOSS ? 2 : k + 1,
                    cx_plot_colours[i % 10]);
            cx_gnuplot_string(fp, runs[i].name);
            fputs(i + 1 < n ? ", \\\n" : "\n", fp);
        }
    }
    fputs("unset multiplot\n", fp);
}

cx_status cx_curves_write_files(const char *dir, const cx_curves_run *runs, int n,
                                cx_plot_format fmt, const char *out_name, cx_err *err)
{
    int any_eval = 0;
    const char *split = "";
    for (int i = 0; i < n; i++) {
        cx_status st = write_run(dir, i, runs[i].log, err);
        if (st)
            return st;
        if (runs[i].log->evaluated) {
            any_eval = 1;
            split = runs[i].log->eval_split;
        }
    }
    char *script = cx_path_join(dir, "plot.gp");
    if (!script)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, script, err);
    if (!st) {
        write_script(f.fp, runs, n, fmt, out_name, any_eval, split);
        st = cx_afile_commit(&f, err);
    }
    free(script);
    return st;
}

typedef struct {
    const cx_curves_run *runs;
    int n;
} curves_ctx;

static cx_status write_curves(const char *dir, cx_plot_format fmt, const char *out_name,
                              void *ctx, cx_err *err)
{
    const curves_ctx *c = ctx;
    return cx_curves_write_files(dir, c->runs, c->n, fmt, out_name, err);
}

cx_status cx_curves_plot(const char *gnuplot, const cx_curves_run *runs, int n, const char *path,
                         cx_err *err)
{
    if (n < 1 || n > CX_CURVES_MAX_RUNS)
        return cx_fail(err, CX_EUSAGE, "a figure draws 1 to %d runs, not %d",
                       CX_CURVES_MAX_RUNS, n);
    curves_ctx c = {runs, n};
    return cx_gnuplot_render(gnuplot, write_curves, &c, path, err);
}
