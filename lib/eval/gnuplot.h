/* Figures drawn by gnuplot (compare's per-class figure, plot's curves): a writer puts data
 * files and the script plot.gp into a temporary folder, gnuplot renders it there, and the
 * figure reaches its path atomically (lib/base/afile.h); the folder is removed afterwards. */
#ifndef CX_EVAL_GNUPLOT_H
#define CX_EVAL_GNUPLOT_H

#include <stdio.h>

#include "lib/base/err.h"

typedef enum { CX_PLOT_SVG, CX_PLOT_PNG } cx_plot_format;

/* Distinct colours for series (Tableau 10), "rrggbb". */
extern const char *const cx_plot_colours[10];

/* The format named by path's extension: ".svg" or ".png" (any case); -1 for anything else. */
int cx_plot_format_of(const char *path);

/* The gnuplot to run: configure's GNUPLOT_PATH when it is executable, else the first
 * executable "gnuplot" in PATH. A new string, or NULL when there is none. */
char *cx_plot_find_gnuplot(void);

/* s as a gnuplot single-quoted string: '' stands for a quote; control characters become
 * spaces. */
void cx_gnuplot_string(FILE *fp, const char *s);

/* dir/NAME with NAME = fmt formatted with i ("run%d.tsv"), a new string or NULL (no memory):
 * the per-run data files the writers put beside plot.gp. */
char *cx_gnuplot_file(const char *dir, const char *fmt, int i);

/* Writes the data files and plot.gp (rendering to out_name in format fmt) into folder dir. */
typedef cx_status (*cx_gnuplot_writer)(const char *dir, cx_plot_format fmt, const char *out_name,
                                       void *ctx, cx_err *err);

/* Render write's script into path (format from its extension; CX_EUSAGE for another) with the
 * gnuplot at `gnuplot`; CX_EIO when gnuplot cannot be started or fails (naming its first
 * error line) or a file cannot be written. The temporary folder is under $TMPDIR. */
cx_status cx_gnuplot_render(const char *gnuplot, cx_gnuplot_writer write, void *ctx,
                            const char *path, cx_err *err);

#endif
