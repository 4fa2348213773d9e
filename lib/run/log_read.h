/* A run's log.jsonl read back: per epoch its loss and, where eval.every evaluated it, the
 * metrics of its "eval" object; what `clipx plot` draws. */
#ifndef CX_RUN_LOG_READ_H
#define CX_RUN_LOG_READ_H

#include <stdint.h>

#include "lib/base/err.h"

enum {
    CX_LOG_LOSS,
    CX_LOG_TOP1,
    CX_LOG_HEAD,
    CX_LOG_MID,
    CX_LOG_TAIL,
    CX_LOG_CORR_ACC,
    CX_LOG_CORR_PRED,
    CX_LOG_SERIES
};

/* "loss", "top1", "head", "mid", "tail", "corr_acc", "corr_pred": the keys, in series order. */
extern const char *const cx_log_series_names[CX_LOG_SERIES];

typedef struct {
    int64_t n;                      /* lines (epochs) */
    int64_t *epoch;                 /* (n) */
    double *value[CX_LOG_SERIES];   /* (n) each; NaN where the line has no such value */
    int64_t evaluated;              /* lines with an "eval" object */
    char eval_split[8];             /* "val" or "test" of the last evaluated line, else "" */
} cx_run_log;

/* Read path (one JSON object a line, as clipx train writes it). A line that is not such an
 * object, or has no integer "epoch", is CX_EDATA naming the file, line and column. */
cx_status cx_run_log_read(const char *path, cx_run_log *log, cx_err *err);
void cx_run_log_free(cx_run_log *log);

#endif
