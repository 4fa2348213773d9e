/* Progress on stderr for long work: a single redrawn line on a terminal, a line every few
 * seconds otherwise (with --progress), nothing with --quiet. */
#ifndef CLIPX_PROGRESS_H
#define CLIPX_PROGRESS_H

typedef struct {
    int enabled;
    int tty;
    const char *label;
    long total;          /* units of work, 0 when unknown */
    double start, last;  /* monotonic seconds */
    int drawn;
} cli_progress;

void cli_progress_start(cli_progress *p, int enabled, const char *label, long total);
/* done units so far; extra (may be NULL) is appended, e.g. "loss 0.412  8123 samples/s". */
void cli_progress_update(cli_progress *p, long done, const char *extra);
/* Clear the line on a terminal. */
void cli_progress_end(cli_progress *p);

#endif
