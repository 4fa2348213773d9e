/* The figure of `clipx plot`: training curves of several runs over epochs, one series per run
 * in each panel: the loss, and where eval.every evaluated the runs top1, head, mid, tail,
 * corr_acc and corr_pred (one panel each). Rendered by lib/eval/gnuplot.h. */
#ifndef CX_EVAL_CURVES_H
#define CX_EVAL_CURVES_H

#include "lib/base/err.h"
#include "lib/eval/gnuplot.h"
#include "lib/run/log_read.h"

typedef struct {
    const char *name;       /* legend entry (not owned) */
    const cx_run_log *log;  /* not owned */
} cx_curves_run;

enum { CX_CURVES_MAX_RUNS = 64 };

/* Data files (loss-I.tsv, eval-I.tsv per run) and plot.gp into dir, rendering to out_name. */
cx_status cx_curves_write_files(const char *dir, const cx_curves_run *runs, int n,
                                cx_plot_format fmt, const char *out_name, cx_err *err);

/* Draw the curves of n runs (1..CX_CURVES_MAX_RUNS) into path (.svg or .png). */
cx_status cx_curves_plot(const char *gnuplot, const cx_curves_run *runs, int n, const char *path,
                         cx_err *err);

#endif
