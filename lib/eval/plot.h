/* The figure of `clipx compare --plot`, drawn by gnuplot: per-class accuracy against training
 * count (log x) with one series per run, beside a grouped head/mid/tail bar chart, in one SVG
 * or PNG file, rendered by lib/eval/gnuplot.h. */
#ifndef CX_EVAL_PLOT_H
#define CX_EVAL_PLOT_H

#include "lib/base/err.h"
#include "lib/eval/gnuplot.h"
#include "lib/eval/report.h"

/* Runs to draw, in order (the first is the baseline of compare's deltas). */
typedef struct {
    const char *name;              /* legend entry (not owned) */
    const cx_eval_report *report;  /* not owned */
} cx_plot_run;

/* Most runs one figure draws (the colours and point shapes stay distinct up to here). */
enum { CX_PLOT_MAX_RUNS = 64 };

/* Write into folder dir the data files (one per run: count, accuracy, split of each class with
 * test vectors; one of per-bin mean accuracies per run; one of head/mid/tail means) and the
 * script plot.gp, which renders to dir/out_name in format fmt. Classes with 0 training samples
 * are drawn at x = 0.5 under a tick labelled 0. For tests and for users who want the script. */
cx_status cx_plot_write_files(const char *dir, const cx_plot_run *runs, int n, cx_plot_format fmt,
                              const char *out_name, cx_err *err);

/* Draw the figure of n runs (1..CX_PLOT_MAX_RUNS) into path (format from its extension) with
 * the gnuplot at `gnuplot`. CX_EUSAGE for a bad extension or run count; CX_EIO when gnuplot
 * cannot be started or fails (naming its first error line) or a file cannot be written. */
cx_status cx_plot_compare(const char *gnuplot, const cx_plot_run *runs, int n, const char *path,
                          cx_err *err);

#endif
