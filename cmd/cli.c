/* Table-driven option parsing and help output for the subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "clipx: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_exit_code(cx_status st)
{
    switch (st) {
    case CX_OK:
        return EXIT_OK;
    case CX_EUSAGE:
        return EXIT_USAGE;
    default:
        return EXIT_RUNTIME;
    }
}

int cli_fail(const char *cmd, cx_status st, const cx_err *err)
{
    cli_error(cmd, "%s", err->msg[0] ? err->msg : "failed");
    int code = cli_exit_code(st);
    return code ? code : EXIT_RUNTIME;
}

void cli_err_prepend(cx_err *err, const char *text)
{
    size_t n = strlen(text), len = strlen(err->msg);
    if (n >= sizeof err->msg)
        n = sizeof err->msg - 1;
    if (n + len >= sizeof err->msg)
        len = sizeof err->msg - 1 - n;
    memmove(err->msg + n, err->msg, len);
    memcpy(err->msg, text, n);
    err->msg[n + len] = '\0';
}

void cli_word_as_option(cx_err *err)
{
    size_t n = strspn(err->msg, "abcdefghijklmnopqrstuvwxyz_");
    if (n == 0 || err->msg[n] != ':')
        return;
    for (size_t i = 0; i < n; i++)
        if (err->msg[i] == '_')
            err->msg[i] = '-';
    cli_err_prepend(err, "--");
}

int cli_parse_thresholds(const char *s, long *many, long *few)
{
    char *end;
    *many = strtol(s, &end, 10);
    if (end == s || *end != ',')
        return -1;
    const char *t = end + 1;
    *few = strtol(t, &end, 10);
    if (end == t || *end || *many < 0 || *few < 0 || *few > *many + 1)
        return -1;
    return 0;
}

static const cli_opt common_opts[] = {
    {"threads", CLI_INT, NULL, "N", "threads for OpenMP loops and OpenBLAS (default: all cores)", 1, 4096, NULL},
    {"quiet", CLI_FLAG, NULL, NULL, "no progress or summaries on stderr", 0, -1, NULL},
    {"progress", CLI_FLAG, NULL, NULL, "progress on stderr even when it is not a terminal", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

/* The index of value among choices "a|b|c", or -1. */
static int choice_index(const char *choices, const char *value)
{
    size_t n = strlen(value);
    const char *p = choices;
    for (int index = 0; *p; index++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, value, n) == 0)
            return index;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static int choice_ok(const char *choices, const char *value)
{
    return choice_index(choices, value) >= 0;
}

static int set_value(const cli_spec *spec, const cli_opt *o, void *dest, const char *value)
{
    char *end;
    switch (o->kind) {
    case CLI_FLAG:
        *(int *)dest = 1;
        return CLI_OK;
    case CLI_STRING:
        /* An empty --out names nothing to write; refuse it here so every command with --out agrees. */
        if (!*value && strcmp(o->name, "out") == 0) {
            cli_error(spec->name, "--%s: an empty path names no file or folder", o->name);
            return EXIT_USAGE;
        }
        if (o->choices && !choice_ok(o->choices, value)) {
            cli_error(spec->name, "--%s: '%s' is not one of %s", o->name, value, o->choices);
            return EXIT_USAGE;
        }
        *(const char **)dest = value;
        return CLI_OK;
    case CLI_INT:
    case CLI_INT32:
    case CLI_INT64:
    case CLI_UINT64: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end) {
            cli_error(spec->name, "--%s: '%s' is not an integer", o->name, value);
            return EXIT_USAGE;
        }
        if (o->min <= o->max && (v < o->min || v > o->max)) {
            cli_error(spec->name, "--%s: %ld is out of range [%.15g, %.15g]", o->name, v, o->min, o->max);
            return EXIT_USAGE;
        }
        if (o->kind == CLI_INT32)
            *(int *)dest = (int)v;
        else if (o->kind == CLI_INT64)
            *(int64_t *)dest = v;
        else if (o->kind == CLI_UINT64)
            *(uint64_t *)dest = (uint64_t)v;
        else
            *(long *)dest = v;
        return CLI_OK;
    }
    case CLI_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) {
            cli_error(spec->name, "--%s: '%s' is not a finite number", o->name, value);
            return EXIT_USAGE;
        }
        if (o->min <= o->max && (v < o->min || v > o->max)) {
            cli_error(spec->name, "--%s: %g is out of range [%.15g, %.15g]", o->name, v, o->min, o->max);
            return EXIT_USAGE;
        }
        *(double *)dest = v;
        return CLI_OK;
    }
    case CLI_CHOICE: {
        int index = choice_index(o->choices, value);
        if (index < 0) {
            cli_error(spec->name, "--%s: '%s' is not one of %s", o->name, value, o->choices);
            return EXIT_USAGE;
        }
        *(int *)dest = index;
        return CLI_OK;
    }
    case CLI_LIST: {
        cli_list *list = dest;
        if (o->choices && !choice_ok(o->choices, value)) {
            cli_error(spec->name, "--%s: '%s' is not one of %s", o->name, value, o->choices);
            return EXIT_USAGE;
        }
        const char **items = realloc(list->items, sizeof *items * (size_t)(list->count + 1));
        if (!items) {
            cli_error(spec->name, "out of memory");
            return EXIT_RUNTIME;
        }
        items[list->count++] = value;
        list->items = items;
        return CLI_OK;
    }
    }
    return EXIT_USAGE;
}

/* Find the option named by arg (without dashes, up to '=' if any) in the spec or common table. */
static const cli_opt *find_opt(const cli_spec *spec, const char *name, size_t len, void **dest,
                               cli_result *res, int *common_flag_dest)
{
    for (const cli_opt *o = spec->opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            *dest = o->dest;
            return o;
        }
    if (!spec->computes)
        return NULL;
    for (const cli_opt *o = common_opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            if (strcmp(o->name, "threads") == 0)
                *dest = &res->threads;
            else if (strcmp(o->name, "quiet") == 0)
                *dest = &res->quiet;
            else
                *dest = common_flag_dest;
            return o;
        }
    return NULL;
}

int cli_parse(const cli_spec *spec, int argc, char **argv, cli_result *res)
{
    memset(res, 0, sizeof *res);
    int progress_flag = 0;
    res->args = calloc((size_t)(argc > 0 ? argc : 1), sizeof *res->args);
    if (!res->args) {
        cli_error(spec->name, "out of memory");
        return EXIT_RUNTIME;
    }
    int only_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == '\0') {
            res->args[res->nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cli_print_help(spec, stdout);
            return CLI_HELP;
        }
        if (a[1] != '-') {
            cli_error(spec->name, "unknown option '%s' (see 'clipx %s --help')", a, spec->name);
            return EXIT_USAGE;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        void *dest = NULL;
        const cli_opt *o = find_opt(spec, name, len, &dest, res, &progress_flag);
        if (!o) {
            cli_error(spec->name, "unknown option '--%.*s' (see 'clipx %s --help')", (int)len, name,
                      spec->name);
            return EXIT_USAGE;
        }
        const char *value = NULL;
        if (o->kind == CLI_FLAG) {
            if (eq) {
                cli_error(spec->name, "--%s takes no value", o->name);
                return EXIT_USAGE;
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            cli_error(spec->name, "--%s needs a value %s", o->name, o->metavar ? o->metavar : "");
            return EXIT_USAGE;
        }
        int rc = set_value(spec, o, dest, value);
        if (rc != CLI_OK)
            return rc;
    }
    if (res->nargs < spec->min_args) {
        cli_error(spec->name, "missing argument (usage: clipx %s %s)", spec->name, spec->synopsis);
        return EXIT_USAGE;
    }
    if (spec->max_args >= 0 && res->nargs > spec->max_args) {
        cli_error(spec->name, "unexpected argument '%s' (usage: clipx %s %s)",
                  res->args[spec->max_args], spec->name, spec->synopsis);
        return EXIT_USAGE;
    }
    res->progress = !res->quiet && (progress_flag || isatty(STDERR_FILENO));
    return CLI_OK;
}

void cli_free(const cli_spec *spec, cli_result *res)
{
    for (const cli_opt *o = spec->opts; o && o->name; o++)
        if (o->kind == CLI_LIST && o->dest) {
            cli_list *list = o->dest;
            free(list->items);
            list->items = NULL;
            list->count = 0;
        }
    free(res->args);
    res->args = NULL;
    res->nargs = 0;
}

static void print_opt(FILE *fp, const cli_opt *o)
{
    char left[64];
    if (o->kind == CLI_FLAG || !o->metavar)
        snprintf(left, sizeof left, "--%s", o->name);
    else
        snprintf(left, sizeof left, "--%s %s", o->name, o->metavar);
    if (strlen(left) > 22)
        fprintf(fp, "  %s\n  %-22s %s", left, "", o->help ? o->help : "");
    else
        fprintf(fp, "  %-22s %s", left, o->help ? o->help : "");
    if (o->choices && (!o->help || !strstr(o->help, o->choices)))
        fprintf(fp, " (%s)", o->choices);
    fputc('\n', fp);
}

void cli_print_help(const cli_spec *spec, FILE *fp)
{
    fprintf(fp, "Usage: clipx %s %s\n\n%s\n", spec->name, spec->synopsis, spec->summary);
    if (spec->description)
        fprintf(fp, "\n%s\n", spec->description);
    fprintf(fp, "\nOptions:\n");
    for (const cli_opt *o = spec->opts; o && o->name; o++)
        print_opt(fp, o);
    if (spec->computes)
        for (const cli_opt *o = common_opts; o->name; o++)
            print_opt(fp, o);
    fprintf(fp, "  %-22s %s\n", "-h, --help", "show this help");
}
