/* log.jsonl lines parsed by a small strict JSON reader: objects, strings, numbers, literals;
 * only the keys the curves need are kept. */
#include "lib/run/log_read.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/gzfile.h"

const char *const cx_log_series_names[CX_LOG_SERIES] = {"loss", "top1", "head", "mid",
                                                        "tail", "corr_acc", "corr_pred"};

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    const char *bad; /* what was wanted where parsing stopped, NULL while fine */
    /* what the line says */
    int has_epoch;
    double epoch;
    double value[CX_LOG_SERIES];
    int evaluated;
    char split[8];
} line_parser;

static void skip_ws(line_parser *p)
{
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\r'))
        p->i++;
}

static int take(line_parser *p, char c)
{
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == c) {
        p->i++;
        return 1;
    }
    return 0;
}

/* A string's contents into buf (escapes kept as written: keys and splits are plain). */
static int parse_string(line_parser *p, char *buf, size_t cap)
{
    skip_ws(p);
    if (p->i >= p->n || p->s[p->i] != '"') {
        p->bad = "a string";
        return 0;
    }
    p->i++;
    size_t k = 0;
    while (p->i < p->n && p->s[p->i] != '"') {
        if (p->s[p->i] == '\\' && p->i + 1 < p->n)
            p->i++;
        if (k + 1 < cap)
            buf[k++] = p->s[p->i];
        p->i++;
    }
    if (p->i >= p->n) {
        p->bad = "the end of a string";
        return 0;
    }
    p->i++;
    buf[k] = '\0';
    return 1;
}

static int parse_value(line_parser *p, const char *key, int in_eval);

static int parse_object(line_parser *p, int in_eval)
{
    if (!take(p, '{')) {
        p->bad = "'{'";
        return 0;
    }
    if (++p->depth > 8) {
        p->bad = "objects nested at most 8 deep";
        return 0;
    }
    if (take(p, '}')) {
        p->depth--;
        return 1;
    }
    for (;;) {
        char key[64];
        if (!parse_string(p, key, sizeof key))
            return 0;
        if (!take(p, ':')) {
            p->bad = "':'";
            return 0;
        }
        if (!parse_value(p, key, in_eval))
            return 0;
        if (take(p, ','))
            continue;
        if (take(p, '}')) {
            p->depth--;
            return 1;
        }
        p->bad = "',' or '}'";
        return 0;
    }
}

static void keep_number(line_parser *p, const char *key, int in_eval, double v)
{
    if (p->depth == 1 && !in_eval && !strcmp(key, "epoch")) {
        p->has_epoch = 1;
        p->epoch = v;
    } else if (p->depth == 1 && !in_eval && !strcmp(key, "loss")) {
        p->value[CX_LOG_LOSS] = v;
    } else if (p->depth == 2 && in_eval) {
        for (int k = CX_LOG_TOP1; k < CX_LOG_SERIES; k++)
            if (!strcmp(key, cx_log_series_names[k]))
                p->value[k] = v;
    }
}

static int parse_value(line_parser *p, const char *key, int in_eval)
{
    skip_ws(p);
    if (p->i >= p->n) {
        p->bad = "a value";
        return 0;
    }
    char c = p->s[p->i];
    if (c == '{') {
        int eval = p->depth == 1 && !strcmp(key, "eval");
        if (eval)
            p->evaluated = 1;
        return parse_object(p, eval);
    }
    if (c == '"') {
        char buf[64];
        if (!parse_string(p, buf, sizeof buf))
            return 0;
        if (in_eval && p->depth == 2 && !strcmp(key, "split"))
            snprintf(p->split, sizeof p->split, "%.7s", buf);
        return 1;
    }
    static const char *const literals[] = {"null", "true", "false"};
    for (int k = 0; k < 3; k++) {
        size_t len = strlen(literals[k]);
        if (p->n - p->i >= len && !memcmp(p->s + p->i, literals[k], len)) {
            p->i += len;
            return 1; /* null leaves the value NaN */
        }
    }
    char num[64];
    size_t k = 0;
    while (p->i < p->n && k + 1 < sizeof num && strchr("+-0123456789.eE", p->s[p->i]))
        num[k++] = p->s[p->i++];
    num[k] = '\0';
    char *end;
    double v = k ? strtod(num, &end) : 0;
    if (!k || *end) {
        p->bad = "a value";
        return 0;
    }
    keep_number(p, key, in_eval, v);
    return 1;
}

void cx_run_log_free(cx_run_log *log)
{
    free(log->epoch);
    for (int k = 0; k < CX_LOG_SERIES; k++)
        free(log->value[k]);
    memset(log, 0, sizeof *log);
}

static int grow(cx_run_log *log, size_t *cap)
{
    if ((size_t)log->n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 64;
    int64_t *e = realloc(log->epoch, c * sizeof *e);
    if (!e)
        return -1;
    log->epoch = e;
    for (int k = 0; k < CX_LOG_SERIES; k++) {
        double *v = realloc(log->value[k], c * sizeof *v);
        if (!v)
            return -1;
        log->value[k] = v;
    }
    *cap = c;
    return 0;
}

cx_status cx_run_log_read(const char *path, cx_run_log *log, cx_err *err)
{
    memset(log, 0, sizeof *log);
    cx_gzfile f;
    cx_status st = cx_gzfile_open(&f, path, err);
    size_t cap = 0;
    while (!st) {
        char *line;
        size_t len;
        int got;
        if ((st = cx_gzfile_getline(&f, &line, &len, &got, err)) || !got)
            break;
        line_parser p = {.s = line, .n = len};
        for (int k = 0; k < CX_LOG_SERIES; k++)
            p.value[k] = NAN;
        int ok = parse_object(&p, 0);
        skip_ws(&p);
        if (ok && p.i != p.n) {
            ok = 0;
            p.bad = "the end of the line";
        }
        if (!ok) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld, column %zu: wanted %s", path, f.line_no,
                         p.i + 1, p.bad);
            break;
        }
        if (!p.has_epoch || p.epoch != floor(p.epoch) || p.epoch < 1) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: no epoch (a positive integer)", path,
                         f.line_no);
            break;
        }
        if (grow(log, &cap)) {
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            break;
        }
        log->epoch[log->n] = (int64_t)p.epoch;
        for (int k = 0; k < CX_LOG_SERIES; k++)
            log->value[k][log->n] = p.value[k];
        log->n++;
        if (p.evaluated) {
            log->evaluated++;
            memcpy(log->eval_split, p.split, sizeof p.split);
        }
    }
    cx_gzfile_close(&f);
    if (st)
        cx_run_log_free(log);
    return st;
}
