/* compare's figure: per-class points, trends and head/mid/tail bars as data files and a
 * gnuplot script, rendered by lib/eval/gnuplot.c. */
#include "config.h"

#include "lib/eval/plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"
#include "lib/base/path.h"
#include "lib/eval/gnuplot.h"

/* Run i takes colour i % 10 (lib/eval/gnuplot.h) and point shape i % 8, so runs stay
 * distinguishable up to 40. */
static const int shapes[8] = {7, 5, 9, 11, 13, 15, 6, 4};

/* Trend bins: a quarter of a decade of training counts. */
#define BINS_PER_DECADE 4.0
/* Where classes without training samples sit on the log axis. */
#define ZERO_X 0.5

static double class_x(int64_t count)
{
    return count > 0 ? (double)count : ZERO_X;
}

typedef struct {
    double xmin, xmax;
    int zero;  /* some class has no training sample */
} x_range;

/* Per-class points of run r: "x<TAB>acc<TAB>split" for classes with test vectors, by count. */
static cx_status write_points(const char *path, const cx_eval_report *r, x_range *xr, cx_err *err)
{
    int C = r->C;
    int *order = malloc(sizeof *order * (size_t)(C > 0 ? C : 1));
    if (!order)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    int n = 0;
    for (int c = 0; c < C; c++)
        if (isfinite(r->class_acc[c]))
            order[n++] = c;
    /* Insertion sort by count, then class: stable and small. */
    for (int i = 1; i < n; i++) {
        int c = order[i], j = i;
        while (j > 0 && r->train_count[order[j - 1]] > r->train_count[c]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = c;
    }
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st) {
        free(order);
        return st;
    }
    fprintf(f.fp, "# training_count_x\taccuracy\tsplit\tclass\n");
    for (int i = 0; i < n; i++) {
        int c = order[i];
        double x = class_x(r->train_count[c]);
        xr->xmin = fmin(xr->xmin, x);
        xr->xmax = fmax(xr->xmax, x);
        xr->zero |= r->train_count[c] == 0;
        fprintf(f.fp, "%.17g\t%.17g\t%d\t%d\n", x, r->class_acc[c], (int)r->split[c], c);
    }
    free(order);
    return cx_afile_commit(&f, err);
}

/* Mean accuracy per quarter decade of training count ("x<TAB>mean acc<TAB>classes"), x the
 * geometric mean of the bin's counts: the trend line drawn through each run's points. */
static cx_status write_trend(const char *path, const cx_eval_report *r, cx_err *err)
{
    int C = r->C;
    int lo = 0, hi = -1, have = 0;
    for (int c = 0; c < C; c++) {
        if (!isfinite(r->class_acc[c]))
            continue;
        int b = (int)floor(log10(class_x(r->train_count[c])) * BINS_PER_DECADE);
        if (!have || b < lo)
            lo = b;
        if (!have || b > hi)
            hi = b;
        have = 1;
    }
    int nb = have ? hi - lo + 1 : 1;
    double *sx = calloc((size_t)nb, sizeof *sx), *sa = calloc((size_t)nb, sizeof *sa);
    int *cnt = calloc((size_t)nb, sizeof *cnt);
    cx_status st = CX_OK;
    if (!sx || !sa || !cnt) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (int c = 0; have && c < C; c++) {
        if (!isfinite(r->class_acc[c]))
            continue;
        double lx = log10(class_x(r->train_count[c]));
        int b = (int)floor(lx * BINS_PER_DECADE) - lo;
        sx[b] += lx;
        sa[b] += r->class_acc[c];
        cnt[b]++;
    }
    cx_afile f;
    if ((st = cx_afile_open(&f, path, err)))
        goto fail;
    fprintf(f.fp, "# training_count_x\tmean_accuracy\tclasses\n");
    for (int b = 0; have && b < nb; b++)
        if (cnt[b])
            fprintf(f.fp, "%.17g\t%.17g\t%d\n", pow(10.0, sx[b] / cnt[b]), sa[b] / cnt[b], cnt[b]);
    st = cx_afile_commit(&f, err);
fail:
    free(sx);
    free(sa);
    free(cnt);
    return st;
}

static const char *const split_names[3] = {"head", "mid", "tail"};

/* Classes of split s when every run has the same number, else -1. */
static int split_count(const cx_plot_run *runs, int n, int s)
{
    int count = -1;
    for (int i = 0; i < n; i++) {
        const cx_eval_report *r = runs[i].report;
        int k = 0;
        for (int c = 0; c < r->C; c++)
            k += (int)r->split[c] == s;
        if (i > 0 && k != count)
            return -1;
        count = k;
    }
    return count;
}

/* head / mid / tail rows, one column per run; NaN where a split is empty. */
static cx_status write_bars(const char *path, const cx_plot_run *runs, int n, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    fprintf(f.fp, "# split\tclasses");
    for (int i = 0; i < n; i++)
        fprintf(f.fp, "\trun%d", i);
    fputc('\n', f.fp);
    for (int s = 0; s < 3; s++) {
        fprintf(f.fp, "%s\t%d", split_names[s], split_count(runs, n, s));
        for (int i = 0; i < n; i++) {
            const cx_eval_report *r = runs[i].report;
            double v = s == 0 ? r->head : s == 1 ? r->mid : r->tail;
            if (isfinite(v))
                fprintf(f.fp, "\t%.17g", v);
            else
                fprintf(f.fp, "\tNaN");
        }
        fputc('\n', f.fp);
    }
    return cx_afile_commit(&f, err);
}

/* Boundaries between the splits on the count axis, as the first run draws them: the shots
 * thresholds, or (tertile) between the largest count of one split and the smallest of the
 * split above when they do not overlap. NaN when there is none to draw. */
static void split_bounds(const cx_eval_report *r, double *tail_mid, double *mid_head)
{
    *tail_mid = *mid_head = NAN;
    if (r->rule == CX_SPLIT_RULE_SHOTS) {
        *tail_mid = r->few > 0 ? (double)r->few - 0.5 : NAN;
        *mid_head = (double)r->many + 0.5;
        return;
    }
    double lo[3] = {INFINITY, INFINITY, INFINITY}, hi[3] = {-INFINITY, -INFINITY, -INFINITY};
    for (int c = 0; c < r->C; c++) {
        double x = class_x(r->train_count[c]);
        lo[r->split[c]] = fmin(lo[r->split[c]], x);
        hi[r->split[c]] = fmax(hi[r->split[c]], x);
    }
    const double tail_hi = hi[CX_SPLIT_TAIL], mid_lo = lo[CX_SPLIT_MID];
    const double mid_hi = hi[CX_SPLIT_MID], head_lo = lo[CX_SPLIT_HEAD];
    if (isfinite(tail_hi) && isfinite(mid_lo) && tail_hi < mid_lo)
        *tail_mid = sqrt(tail_hi * mid_lo);
    if (isfinite(mid_hi) && isfinite(head_lo) && mid_hi < head_lo)
        *mid_head = sqrt(mid_hi * head_lo);
}

/* Log-axis ticks at 1, 2 and 5 times powers of ten (only the powers over more than four
 * decades), and "0" where classes without training samples sit. */
static void write_xtics(FILE *fp, double xmin, double xmax, int zero)
{
    static const double mult[3] = {1, 2, 5};
    int wide = log10(xmax / xmin) > 4.0;
    fprintf(fp, "set xtics (");
    int first = 1;
    if (zero && ZERO_X >= xmin) {
        fprintf(fp, "'0' %g", ZERO_X);
        first = 0;
    }
    for (int e = (int)floor(log10(xmin)); e <= (int)ceil(log10(xmax)); e++)
        for (int m = 0; m < (wide ? 1 : 3); m++) {
            double v = mult[m] * pow(10.0, e);
            if (v < 1.0 || v < xmin || v > xmax)
                continue;
            fprintf(fp, "%s'%.0f' %.0f", first ? "" : ", ", v, v);
            first = 0;
        }
    fprintf(fp, ")\n");
}

static void write_script(FILE *fp, const cx_plot_run *runs, int n,
                         cx_plot_format fmt, const char *out_name, const x_range *xr)
{
    const cx_eval_report *r0 = runs[0].report;
    fprintf(fp, "# clipx compare --plot: per-class accuracy against training count, and the\n"
                "# head/mid/tail means of %d run(s). Run in this folder: gnuplot plot.gp\n", n);
    if (fmt == CX_PLOT_SVG)
        fprintf(fp, "set terminal svg size 1400,620 dynamic noenhanced font 'Sans,13' "
                    "background rgb 'white'\n");
    else
        fprintf(fp, "set terminal pngcairo size 1400,620 noenhanced font 'Sans,11' "
                    "background rgb 'white'\n");
    /* File names are relative to the script's folder, where gnuplot runs. */
    fprintf(fp, "set output ");
    cx_gnuplot_string(fp, out_name);
    fprintf(fp, "\nset datafile separator '\\t'\nset datafile missing 'NaN'\n");
    char rule[160];
    if (r0->rule == CX_SPLIT_RULE_SHOTS)
        snprintf(rule, sizeof rule, "head > %lld, mid %lld..%lld, tail < %lld training samples",
                 (long long)r0->many, (long long)r0->few, (long long)r0->many, (long long)r0->few);
    else
        snprintf(rule, sizeof rule, "head, mid, tail: thirds of the classes by training count");
    fprintf(fp, "set multiplot title ");
    char title[256];
    snprintf(title, sizeof title, "Per-class accuracy of %d run%s (%s)", n, n == 1 ? "" : "s",
             rule);
    cx_gnuplot_string(fp, title);
    fprintf(fp, " font ',15'\n");

    /* Left: per-class points and the binned trend of each run. */
    double xmin = xr->xmin / 1.6, xmax = xr->xmax * 1.6;
    if (!(xmin > 0) || !(xmax > xmin)) {
        xmin = 0.3;
        xmax = 10;
    }
    fprintf(fp,
            "set origin 0,0\nset size 0.6,0.93\nset bmargin 6\n"
            "set title 'Per-class test accuracy (points) and its mean per quarter decade (lines)'\n"
            "set logscale x 10\nset xrange [%.6g:%.6g]\nset yrange [-0.03:1.03]\n"
            "set mxtics 10\nset ytics 0.1\n"
            "set xlabel 'training samples of the class (log scale)'\n"
            "set ylabel 'test accuracy of the class'\n"
            "set grid xtics ytics lc rgb '#dddddd' lt 1\n"
            "set key outside below center horizontal Left reverse samplen 2 spacing 1.2\n",
            xmin, xmax);
    write_xtics(fp, xmin, xmax, xr->zero);
    double tm, mh;
    split_bounds(r0, &tm, &mh);
    const double bx[2] = {tm, mh};
    for (int k = 0; k < 2; k++)
        if (isfinite(bx[k]) && bx[k] > xmin && bx[k] < xmax)
            fprintf(fp, "set arrow from %.6g, graph 0 to %.6g, graph 1 nohead dt 2 lw 1.5 "
                        "lc rgb '#888888' back\n", bx[k], bx[k]);
    /* Region names at the top, where their region is in view. */
    const double edges[4] = {xmin, isfinite(tm) ? fmax(xmin, fmin(tm, xmax)) : xmin,
                             isfinite(mh) ? fmax(xmin, fmin(mh, xmax)) : xmax, xmax};
    static const char *const region[3] = {"tail", "mid", "head"};
    for (int k = 0; k < 3; k++) {
        double a = k == 1 && !isfinite(tm) ? xmin : edges[k], b = edges[k + 1];
        if (b / a > 1.15)
            fprintf(fp, "set label %d '%s' at %.6g, graph 0.975 center tc rgb '#666666'\n", k + 1,
                    region[k], sqrt(a * b));
    }
    fprintf(fp, "plot \\\n");
    for (int i = 0; i < n; i++) {
        const char *col = cx_plot_colours[i % 10];
        fprintf(fp, "  'run%d.tsv' using 1:2 with points pt %d ps 0.9 lc rgb '#50%s' notitle, \\\n",
                i, shapes[i % 8], col);
        fprintf(fp, "  'trend%d.tsv' using 1:2 with lines lw 2.5 lc rgb '#%s' title ", i, col);
        cx_gnuplot_string(fp, runs[i].name);
        fprintf(fp, "%s\n", i + 1 < n ? ", \\" : "");
    }

    /* Right: head / mid / tail means as grouped bars, the value above each bar. */
    fprintf(fp,
            "unset arrow\nunset label\nunset logscale x\nunset xrange\nunset format\n"
            "unset mxtics\nset format y '%%g'\n"
            "set origin 0.6,0\nset size 0.4,0.93\n"
            "set title 'Mean per-class accuracy by split'\n"
            "unset xlabel\nset ylabel 'mean accuracy'\n"
            "set xrange [-0.6:2.6]\nset yrange [0:1.1]\nset ytics 0.1\nset grid noxtics ytics\n"
            "set style data histogram\nset style histogram clustered gap 1\n"
            "set style fill solid 0.85 border rgb '#333333'\nset boxwidth 0.95 relative\n"
            "set key outside below center horizontal Left reverse samplen 2 spacing 1.2\n");
    /* The split names (and class counts when the runs agree) under the groups. */
    fprintf(fp, "set xtics nomirror scale 0 (");
    for (int k = 0; k < 3; k++) {
        int count = split_count(runs, n, k);
        if (count >= 0)
            fprintf(fp, "%s\"%s\\n%d class%s\" %d", k ? ", " : "", split_names[k], count,
                    count == 1 ? "" : "es", k);
        else
            fprintf(fp, "%s\"%s\" %d", k ? ", " : "", split_names[k], k);
    }
    fprintf(fp, ")\nplot \\\n");
    for (int i = 0; i < n; i++) {
        fprintf(fp, "  'bars.tsv' using %d lc rgb '#%s' title ", i + 3, cx_plot_colours[i % 10]);
        cx_gnuplot_string(fp, runs[i].name);
        fprintf(fp, ", \\\n");
    }
    /* Bar k of n in a cluster of width n + gap 1 sits at x + (k - (n - 1) / 2) / (n + 1). */
    const char *font = n > 6 ? "',8'" : n > 3 ? "',10'" : "',12'";
    for (int i = 0; i < n; i++)
        fprintf(fp, "  'bars.tsv' using ($0 + %.6g):%d:(sprintf('%%.2f', column(%d))) with labels "
                    "offset 0,0.7 font %s notitle%s\n",
                (i - (n - 1) / 2.0) / (n + 1.0), i + 3, i + 3, font, i + 1 < n ? ", \\" : "");
    fprintf(fp, "unset multiplot\nset output\n");
}

cx_status cx_plot_write_files(const char *dir, const cx_plot_run *runs, int n, cx_plot_format fmt,
                              const char *out_name, cx_err *err)
{
    if (n < 1 || n > CX_PLOT_MAX_RUNS)
        return cx_fail(err, CX_EUSAGE, "a figure draws 1 to %d runs, not %d", CX_PLOT_MAX_RUNS, n);
    x_range xr = {INFINITY, -INFINITY, 0};
    cx_status st = CX_OK;
    for (int i = 0; i < n && !st; i++) {
        char *points = cx_gnuplot_file(dir, "run%d.tsv", i);
        char *trend = cx_gnuplot_file(dir, "trend%d.tsv", i);
        if (!points || !trend)
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
        if (!st)
            st = write_points(points, runs[i].report, &xr, err);
        if (!st)
            st = write_trend(trend, runs[i].report, err);
        free(points);
        free(trend);
    }
    char *bars = cx_path_join(dir, "bars.tsv"), *script = cx_path_join(dir, "plot.gp");
    if (!st && (!bars || !script))
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
    if (!st)
        st = write_bars(bars, runs, n, err);
    cx_afile f;
    if (!st && !(st = cx_afile_open(&f, script, err))) {
        write_script(f.fp, runs, n, fmt, out_name, &xr);
        st = cx_afile_commit(&f, err);
    }
    free(bars);
    free(script);
    return st;
}

typedef struct {
    const cx_plot_run *runs;
    int n;
} compare_ctx;

static cx_status write_compare(const char *dir, cx_plot_format fmt, const char *out_name,
                               void *ctx, cx_err *err)
{
    const compare_ctx *c = ctx;
    return cx_plot_write_files(dir, c->runs, c->n, fmt, out_name, err);
}

cx_status cx_plot_compare(const char *gnuplot, const cx_plot_run *runs, int n, const char *path,
                          cx_err *err)
{
    if (n < 1 || n > CX_PLOT_MAX_RUNS)
        return cx_fail(err, CX_EUSAGE, "a figure draws 1 to %d runs, not %d",
                       CX_PLOT_MAX_RUNS, n);
    compare_ctx c = {runs, n};
    return cx_gnuplot_render(gnuplot, write_compare, &c, path, err);
}
