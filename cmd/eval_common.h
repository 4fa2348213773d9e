/* What `clipx eval` and `clipx compare` share: turning their options into the evaluation
 * pipeline's (lib/eval/run_eval.h), the JSON of one evaluated run, and run names. */
#ifndef CLIPX_EVAL_COMMON_H
#define CLIPX_EVAL_COMMON_H

#include <stdio.h>

#include "lib/eval/report.h"
#include "lib/eval/run_eval.h"

/* The options both commands take (pointers into argv, as cli_parse leaves them). */
typedef struct {
    const char *data, *mode, *split_rule, *thresholds, *freqs;
    long k;      /* 0: not given */
    int no_nc1;
} cli_eval_args;

/* Fill o from the arguments, or print one error line naming the option and return EXIT_USAGE. */
int cli_eval_options(const char *cmd, const cli_eval_args *a, cx_run_eval_opts *o);

/* cx_run_evaluate's messages about the mode start "mode NAME: " (lib/eval/run_eval.h): the
 * user's --mode, so they read "--mode NAME: ". */
void cli_eval_word_mode(cx_err *err);

/* The report as one JSON object (pretty): the run's path, its objective, the mode, the
 * dataset and subset, then every key of cx_eval_report_json (the contract's keys first). */
void cli_eval_json(FILE *fp, const cx_eval_report *r, const char *run_dir,
                   const cx_run_eval_info *info);

/* A run's display name: the last component of its folder path (trailing slashes ignored);
 * a new string, or NULL when out of memory. */
char *cli_run_name(const char *dir);

/* "clip" or "sl". */
const char *cli_objective_name(int objective);

/* "%.4f" of v into buf, or "-" when v is NaN. */
const char *cli_fmt(char *buf, size_t cap, double v);

#endif
