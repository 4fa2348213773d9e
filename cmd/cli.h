/* Command-line plumbing shared by the subcommands: a table-driven option parser whose tables
 * also produce --help (so help and code cannot disagree), error printing, exit codes. */
#ifndef CLIPX_CLI_H
#define CLIPX_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"

/* Exit statuses of the contract, named here only. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/* The exit status of a lib/ status: EXIT_USAGE for CX_EUSAGE, EXIT_RUNTIME for every other
 * failure, EXIT_OK for CX_OK. */
int cli_exit_code(cx_status st);

typedef enum {
    CLI_FLAG,   /* dest: int*, set to 1 */
    CLI_STRING, /* dest: const char**, points into argv */
    CLI_INT,    /* dest: long*, range-checked when min <= max */
    CLI_INT32,  /* dest: int*, as CLI_INT (the range must fit an int) */
    CLI_INT64,  /* dest: int64_t*, as CLI_INT */
    CLI_UINT64, /* dest: uint64_t*, as CLI_INT (the range must start at 0 or above) */
    CLI_DOUBLE, /* dest: double*, finite, range-checked when min <= max */
    CLI_CHOICE, /* dest: int* (or an enum of int size): the index of the value in choices */
    CLI_LIST    /* dest: cli_list*, repeatable; each occurrence appends */
} cli_kind;

typedef struct {
    const char **items; /* owned array of pointers into argv; free with cli_free */
    int count;
} cli_list;

typedef struct {
    const char *name;    /* long name without the dashes; NULL ends a table */
    cli_kind kind;
    void *dest;
    const char *metavar; /* e.g. "DIR"; unused for flags */
    const char *help;    /* one line, defaults included */
    double min, max;     /* numeric range, checked when min <= max */
    const char *choices; /* allowed strings as "a|b|c", or NULL for any */
} cli_opt;

typedef struct {
    const char *name;        /* subcommand */
    const char *summary;     /* one line for `clipx --help` */
    const char *synopsis;    /* what follows "clipx NAME " in the usage line */
    const char *description; /* paragraphs for `clipx help NAME`, or NULL */
    const cli_opt *opts;     /* ends with an entry whose name is NULL */
    int min_args, max_args;  /* positional arguments; max_args < 0 means any number */
    int computes;            /* CLI_COMPUTES or CLI_COMPUTES_OWN_THREADS: accepts --threads,
                              * --quiet and --progress; 0: none of them */
} cli_spec;

enum {
    CLI_COMPUTES = 1,            /* main sets the thread count from --threads before running */
    CLI_COMPUTES_OWN_THREADS = 2 /* the command applies --threads itself (train: the count is
                                  * part of the run's configuration and checkpoint) */
};

typedef struct {
    char **args;   /* positional arguments, pointers into argv */
    int nargs;
    long threads;  /* --threads, 0 when not given (all cores) */
    int quiet;     /* --quiet */
    int progress;  /* progress wanted on stderr: a TTY or --progress, and not --quiet */
} cli_result;

enum { CLI_OK = 0, CLI_HELP = -1 };

/* Parse argv[1..argc) (argv[0] is the subcommand's name) into the spec's destinations.
 * Returns CLI_OK; CLI_HELP after printing help for -h/--help; or EXIT_USAGE after printing
 * one error line. Options may follow positional arguments; "--" ends options. */
int cli_parse(const cli_spec *spec, int argc, char **argv, cli_result *res);

/* Free what cli_parse allocated (the lists of the spec's table, the positional array). */
void cli_free(const cli_spec *spec, cli_result *res);

void cli_print_help(const cli_spec *spec, FILE *fp);

/* "clipx: CMD: message" on stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print err's message as an error of cmd and return the exit status of st (a failure). */
int cli_fail(const char *cmd, cx_status st, const cx_err *err);

/* Put text in front of err's message, with no separator: "--set " + "KEY=VALUE: ...". */
void cli_err_prepend(cx_err *err, const char *text);

/* lib/'s refusals of a parameter start with the field at fault ("test_per_class: 0 is out of
 * range ..."); where that field is an option of the command, the user typed the option:
 * "--test-per-class: ...". Leaves any other message (a path, a sentence) as it is. */
void cli_word_as_option(cx_err *err);

/* --thresholds MANY,FEW of the head/mid/tail shot rule: 0 with both set, -1 unless
 * 0 <= FEW <= MANY + 1. */
int cli_parse_thresholds(const char *s, long *many, long *few);

#endif
