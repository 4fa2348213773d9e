/* Progress lines on stderr, throttled so they cost nothing measurable. */
#include "progress.h"

#include <stdio.h>
#include <unistd.h>

#include "cli.h"
#include "lib/base/clock.h"

void cli_progress_start(cli_progress *p, int enabled, const char *label, long total)
{
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->start = p->last = cx_clock_seconds();
    p->drawn = 0;
}

static void format_duration(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, long done, const char *extra)
{
    if (!p->enabled)
        return;
    double now = cx_clock_seconds();
    double interval = p->tty ? 0.1 : 5.0;
    int last_one = p->total > 0 && done >= p->total;
    if (now - p->last < interval && !last_one)
        return;
    p->last = now;
    char eta[64] = "";
    double elapsed = now - p->start;
    if (p->total > 0 && done > 0 && done < p->total) {
        char d[48];
        format_duration(d, sizeof d, elapsed * (double)(p->total - done) / (double)done);
        snprintf(eta, sizeof eta, "  %s left", d);
    }
    if (p->total > 0)
        fprintf(stderr, "%s%s %ld/%ld (%3.0f%%)%s%s%s%s", p->tty ? "\r" : "", p->label, done,
                p->total, 100.0 * (double)done / (double)p->total, extra ? "  " : "",
                extra ? extra : "", eta, p->tty ? "\033[K" : "\n");
    else
        fprintf(stderr, "%s%s %ld%s%s%s", p->tty ? "\r" : "", p->label, done, extra ? "  " : "",
                extra ? extra : "", p->tty ? "\033[K" : "\n");
    fflush(stderr);
    p->drawn = 1;
}

void cli_progress_end(cli_progress *p)
{
    if (p->enabled && p->tty && p->drawn)
        fputs("\r\033[K", stderr);
    p->drawn = 0;
}
