/* Strict parser for the text fixtures of tests/fixtures/ (format in fixture.h): every
 * malformed input is refused with the line it was found on. */
#include "config.h"
#include "tests/fixture.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s, *end;
    const char *path;
    int line;      /* line of the cursor */
    int tok_line;  /* line of the last token returned */
    char tok[80];  /* the last token, NUL-terminated (truncated tokens are refused) */
    size_t tok_len;
} fx_lexer;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Next whitespace-separated token; '#' starts a comment to the end of the line.
 * Returns 0 at the end of input, -1 for an over-long token, 1 otherwise. */
static int next_token(fx_lexer *lx)
{
    for (;;) {
        while (lx->s < lx->end && is_space(*lx->s)) {
            if (*lx->s == '\n')
                lx->line++;
            lx->s++;
        }
        if (lx->s < lx->end && *lx->s == '#') {
            while (lx->s < lx->end && *lx->s != '\n')
                lx->s++;
            continue;
        }
        break;
    }
    if (lx->s >= lx->end)
        return 0;
    const char *start = lx->s;
    while (lx->s < lx->end && !is_space(*lx->s) && *lx->s != '#')
        lx->s++;
    lx->tok_line = lx->line;
    lx->tok_len = (size_t)(lx->s - start);
    if (lx->tok_len >= sizeof lx->tok) {
        memcpy(lx->tok, start, sizeof lx->tok - 1);
        lx->tok[sizeof lx->tok - 1] = '\0';
        return -1;
    }
    memcpy(lx->tok, start, lx->tok_len);
    lx->tok[lx->tok_len] = '\0';
    return 1;
}

/* The next token, or a failure naming what was expected. */
static cx_status expect_token(fx_lexer *lx, const char *what, cx_err *err)
{
    int r = next_token(lx);
    if (r == 0)
        return cx_fail(err, CX_EDATA, "%s: line %d: file ends where %s was expected (truncated?)",
                       lx->path, lx->line, what);
    if (r < 0)
        return cx_fail(err, CX_EDATA, "%s: line %d: token '%s...' too long where %s was expected",
                       lx->path, lx->tok_line, lx->tok, what);
    return CX_OK;
}

/* A non-negative decimal integer token no larger than max. */
static cx_status parse_count(fx_lexer *lx, const char *what, long long max, long long *out,
                             cx_err *err)
{
    cx_status st = expect_token(lx, what, err);
    if (st != CX_OK)
        return st;
    long long v = 0;
    size_t i = 0;
    for (; i < lx->tok_len; i++) {
        char c = lx->tok[i];
        if (c < '0' || c > '9')
            break;
        if (v > max / 10 || v * 10 + (c - '0') > max)
            return cx_fail(err, CX_EDATA, "%s: line %d: %s '%s' exceeds %lld", lx->path,
                           lx->tok_line, what, lx->tok, max);
        v = v * 10 + (c - '0');
    }
    if (i == 0 || i != lx->tok_len)
        return cx_fail(err, CX_EDATA, "%s: line %d: %s must be a non-negative integer, not '%s'",
                       lx->path, lx->tok_line, what, lx->tok);
    *out = v;
    return CX_OK;
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len >= FX_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return 1;
}

void fx_free(fx_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->count; i++)
        free(f->t[i].v);
    free(f->t);
    f->t = NULL;
    f->count = 0;
}

static cx_status parse_tensor(fx_file *f, fx_lexer *lx, cx_err *err)
{
    cx_status st = expect_token(lx, "a tensor name", err);
    if (st != CX_OK)
        return st;
    if (!valid_name(lx->tok, lx->tok_len))
        return cx_fail(err, CX_EDATA,
                       "%s: line %d: tensor name '%s' is not 1-%d characters of [A-Za-z0-9_]",
                       lx->path, lx->tok_line, lx->tok, FX_NAME_MAX - 1);
    if (fx_get(f, lx->tok))
        return cx_fail(err, CX_EDATA, "%s: line %d: tensor '%s' defined twice", lx->path,
                       lx->tok_line, lx->tok);
    fx_tensor t = {0};
    memcpy(t.name, lx->tok, lx->tok_len + 1);
    int header_line = lx->tok_line;

    long long ndim;
    if ((st = parse_count(lx, "the number of dimensions", FX_NDIM_MAX, &ndim, err)) != CX_OK)
        return st;
    t.ndim = (int)ndim;
    size_t n = 1;
    for (int d = 0; d < t.ndim; d++) {
        long long dim;
        if ((st = parse_count(lx, "a dimension", 2147483647LL, &dim, err)) != CX_OK)
            return st;
        t.dims[d] = dim;
        if (dim > 0 && n > SIZE_MAX / (size_t)dim)
            return cx_fail(err, CX_EDATA, "%s: line %d: tensor '%s' has too many values",
                           lx->path, header_line, t.name);
        n *= (size_t)dim;
    }
    t.n = n;
    /* Each value takes at least one character and one separator: refuse an impossible count
     * before allocating for it. */
    size_t left = (size_t)(lx->end - lx->s);
    if (n > left / 2 + 1)
        return cx_fail(err, CX_EDATA,
                       "%s: line %d: tensor '%s' claims %zu values, the rest of the file (%zu "
                       "bytes) holds at most %zu",
                       lx->path, header_line, t.name, n, left, left / 2);

    fx_tensor *grown = realloc(f->t, sizeof *grown * (size_t)(f->count + 1));
    if (!grown)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", lx->path);
    f->t = grown;
    t.v = malloc(sizeof *t.v * (n ? n : 1));
    if (!t.v)
        return cx_fail(err, CX_ENOMEM, "%s: line %d: out of memory for %zu values", lx->path,
                       header_line, n);
    f->t[f->count++] = t;
    double *v = f->t[f->count - 1].v;

    for (size_t i = 0; i < n; i++) {
        int r = next_token(lx);
        if (r == 0)
            return cx_fail(err, CX_EDATA,
                           "%s: line %d: tensor '%s' (line %d) has %zu of its %zu values "
                           "(truncated?)",
                           lx->path, lx->line, t.name, header_line, i, n);
        if (r < 0)
            return cx_fail(err, CX_EDATA, "%s: line %d: value '%s...' too long", lx->path,
                           lx->tok_line, lx->tok);
        char *endp;
        errno = 0;
        double x = strtod(lx->tok, &endp);
        if (endp == lx->tok || *endp != '\0')
            return cx_fail(err, CX_EDATA,
                           "%s: line %d: tensor '%s' value %zu of %zu: '%s' is not a number",
                           lx->path, lx->tok_line, t.name, i + 1, n, lx->tok);
        if (!isfinite(x))
            return cx_fail(err, CX_EDATA,
                           "%s: line %d: tensor '%s' value %zu of %zu: '%s' is not finite",
                           lx->path, lx->tok_line, t.name, i + 1, n, lx->tok);
        v[i] = x;
    }
    return CX_OK;
}

cx_status fx_parse(fx_file *f, const char *text, size_t len, const char *path, cx_err *err)
{
    memset(f, 0, sizeof *f);
    fx_lexer lx = {.s = text, .end = text + len, .path = path, .line = 1};
    cx_status st;
    int r = next_token(&lx);
    if (r <= 0 || strcmp(lx.tok, "clipx-fixture") != 0)
        return cx_fail(err, CX_EDATA, "%s: line %d: not a clipx fixture (no 'clipx-fixture' "
                       "header)", path, r > 0 ? lx.tok_line : lx.line);
    long long version;
    if ((st = parse_count(&lx, "the format version", 1000000, &version, err)) != CX_OK)
        goto fail;
    if (version != 1) {
        st = cx_fail(err, CX_EDATA, "%s: line %d: fixture format version %lld, this reader "
                     "knows 1", path, lx.tok_line, version);
        goto fail;
    }
    for (;;) {
        r = next_token(&lx);
        if (r == 0) {
            st = cx_fail(err, CX_EDATA, "%s: line %d: no 'end' line (truncated?)", path, lx.line);
            goto fail;
        }
        if (r > 0 && strcmp(lx.tok, "end") == 0)
            break;
        if (r < 0 || strcmp(lx.tok, "tensor") != 0) {
            st = cx_fail(err, CX_EDATA,
                         "%s: line %d: expected 'tensor' or 'end', found '%s' (more values "
                         "than the header claims?)",
                         path, lx.tok_line, lx.tok);
            goto fail;
        }
        if ((st = parse_tensor(f, &lx, err)) != CX_OK)
            goto fail;
    }
    if (next_token(&lx) != 0) {
        st = cx_fail(err, CX_EDATA, "%s: line %d: '%s' after 'end'", path, lx.tok_line, lx.tok);
        goto fail;
    }
    return CX_OK;
fail:
    fx_free(f);
    return st;
}

cx_status fx_load(fx_file *f, const char *path, cx_err *err)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cx_fail_errno(err, CX_EIO, errno, "%s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(fp);
                return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + len, 1, cap - len, fp);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(fp);
    int saved = errno;
    fclose(fp);
    if (bad) {
        free(buf);
        return cx_fail_errno(err, CX_EIO, saved, "%s: read", path);
    }
    cx_status st = fx_parse(f, buf, len, path, err);
    free(buf);
    return st;
}

const fx_tensor *fx_get(const fx_file *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

void fx_to_float(const fx_tensor *t, float *out)
{
    for (size_t i = 0; i < t->n; i++)
        out[i] = (float)t->v[i];
}

cx_status fx_to_int32(const fx_tensor *t, int32_t *out, cx_err *err)
{
    for (size_t i = 0; i < t->n; i++) {
        double x = t->v[i];
        if (x != floor(x) || x < -2147483648.0 || x > 2147483647.0)
            return cx_fail(err, CX_EDATA, "tensor '%s' value %zu: %.17g is not an int32", t->name,
                           i + 1, x);
        out[i] = (int32_t)x;
    }
    return CX_OK;
}

void fx_path(char *buf, size_t len, const char *name)
{
    const char *top = getenv("TOP_SRCDIR");
    snprintf(buf, len, "%s/tests/fixtures/%s", top && *top ? top : ".", name);
}

void fx_load_named(fx_file *f, const char *name)
{
    char path[4096];
    fx_path(path, sizeof path, name);
    cx_err err = {0};
    cx_status st = fx_load(f, path, &err);
    ck_assert_msg(st == CX_OK, "%s", err.msg);
}

const fx_tensor *fx_need(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    char full[FX_NAME_MAX * 2];
    snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "_" : "", name);
    const fx_tensor *t = fx_get(f, full);
    ck_assert_msg(t != NULL, "fixture has no tensor '%s'", full);
    if (n != (size_t)-1)
        ck_assert_msg(t->n == n, "tensor '%s' has %zu values, want %zu", full, t->n, n);
    return t;
}

void fx_assert_close(const float *got, const fx_file *f, const char *prefix, const char *name,
                     size_t n, double tol)
{
    const fx_tensor *t = fx_need(f, prefix, name, n);
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(t->v[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - t->v[i]) <= tol * scale,
                      "%s%s%s[%zu]: got %.9g, torch %.9g (tolerance %.3g)", prefix,
                      *prefix ? "_" : "", name, i, (double)got[i], t->v[i], tol * scale);
}
