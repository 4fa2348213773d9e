/* Table-driven typed configuration: YAML trees and --set overrides into a struct, checked
 * against the schema with positions in every message, and written back as YAML. */
#include "lib/conf/conf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/afile.h"
#include "lib/base/path.h"
#include "lib/base/utf8.h"

enum { KEY_MAX = 128 }; /* longest dotted key, checked by cx_conf_schema_check */

/* A parsed value before it replaces the field's old one. */
typedef union {
    bool b;
    int64_t i;
    double d;
    char *s;
    int e;
    cx_conf_ints il;
    cx_conf_doubles dl;
} value;

/* Where values come from: a file (positions NAME:LINE:COL) or one --set (positions NAME). */
typedef struct {
    const cx_conf_schema *s;
    void *obj;
    const char *name;
    int in_file;
    const char *base_dir; /* folder for relative paths as given; NULL: the current folder */
    char *base;           /* owned: base_dir made absolute, on first use */
    int *seen_line; /* (count), owned: line where each key was set by this source, 0 if not */
    cx_err *err;
} source;

/* ---- small helpers --------------------------------------------------------------------------- */

static void *field(const void *obj, const cx_conf_key *k)
{
    return (char *)obj + k->offset;
}

static size_t field_size(cx_conf_type t)
{
    switch (t) {
    case CX_CONF_BOOL:
        return sizeof(bool);
    case CX_CONF_INT:
        return sizeof(int64_t);
    case CX_CONF_DOUBLE:
        return sizeof(double);
    case CX_CONF_STRING:
    case CX_CONF_PATH:
        return sizeof(char *);
    case CX_CONF_ENUM:
        return sizeof(int);
    case CX_CONF_INT_LIST:
        return sizeof(cx_conf_ints);
    case CX_CONF_DOUBLE_LIST:
        return sizeof(cx_conf_doubles);
    }
    return 0;
}

static void value_free(cx_conf_type t, value *v)
{
    if (t == CX_CONF_STRING || t == CX_CONF_PATH)
        free(v->s);
    else if (t == CX_CONF_INT_LIST)
        free(v->il.v);
    else if (t == CX_CONF_DOUBLE_LIST)
        free(v->dl.v);
    memset(v, 0, sizeof *v);
}

/* Replace the field's value with v, taking ownership of v's buffers. */
static void store(void *obj, const cx_conf_key *k, value *v)
{
    value old;
    void *f = field(obj, k);
    memcpy(&old, f, field_size(k->type));
    value_free(k->type, &old);
    memcpy(f, v, field_size(k->type));
    memset(v, 0, sizeof *v);
}

static cx_status src_fail(const source *S, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "NAME:LINE:COL: message" in a file, "NAME: message" for --set. */
static cx_status src_fail(const source *S, int line, int col, const char *fmt, ...)
{
    char msg[CX_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (S->in_file)
        return cx_fail(S->err, CX_EUSAGE, "%.300s:%d:%d: %.700s", S->name, line, col, msg);
    return cx_fail(S->err, CX_EUSAGE, "%.300s: %.700s", S->name, msg);
}

static cx_status oom(cx_err *err)
{
    return cx_fail(err, CX_ENOMEM, "configuration: out of memory");
}

/* Text for messages: control characters escaped, cut after about 60 characters, so a long or
 * odd value keeps the message on one line. */
static const char *show(const char *text, char *buf, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; text[i] && j + 8 < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            j += (size_t)snprintf(buf + j, n - j, "\\x%02x", c);
        else
            buf[j++] = (char)c;
        if (i >= 60 && text[i + 1]) {
            memcpy(buf + j, "...", 3);
            j += 3;
            break;
        }
    }
    buf[j] = '\0';
    return buf;
}

/* ---- the schema ------------------------------------------------------------------------------ */

const cx_conf_key *cx_conf_find(const cx_conf_schema *s, const char *key)
{
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->keys[i].key, key) == 0)
            return &s->keys[i];
    return NULL;
}

/* The first key inside group name ("model" for "model.image.dim"), or NULL when name is not a
 * group. */
static const cx_conf_key *group_member(const cx_conf_schema *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->count; i++)
        if (strncmp(s->keys[i].key, name, len) == 0 && s->keys[i].key[len] == '.')
            return &s->keys[i];
    return NULL;
}

const char *cx_conf_enum_name(const cx_conf_schema *s, const char *key, int value_)
{
    const cx_conf_key *k = cx_conf_find(s, key);
    if (!k || k->type != CX_CONF_ENUM || value_ < 0)
        return NULL;
    for (int i = 0; k->choices[i]; i++)
        if (i == value_)
            return k->choices[i];
    return NULL;
}

static void choices_text(const cx_conf_key *k, char *buf, size_t n)
{
    size_t j = 0;
    buf[0] = '\0';
    for (int i = 0; k->choices && k->choices[i] && j < n; i++) {
        int w = snprintf(buf + j, n - j, "%s%s", i ? "|" : "", k->choices[i]);
        if (w < 0)
            break;
        j += (size_t)w;
    }
}

/* "in [0, 1)", ">= 1", "> 0", "<= 4096", or "" without bounds. */
static void range_text(const cx_conf_key *k, char *buf, size_t n)
{
    int lo = (k->flags & CX_CONF_MIN) != 0, hi = (k->flags & CX_CONF_MAX) != 0;
    int lo_open = (k->flags & CX_CONF_MIN_OPEN) != 0, hi_open = (k->flags & CX_CONF_MAX_OPEN) != 0;
    if (lo && hi)
        snprintf(buf, n, "in %c%.15g, %.15g%c", lo_open ? '(' : '[', k->min, k->max,
                 hi_open ? ')' : ']');
    else if (lo)
        snprintf(buf, n, "%s %.15g", lo_open ? ">" : ">=", k->min);
    else if (hi)
        snprintf(buf, n, "%s %.15g", hi_open ? "<" : "<=", k->max);
    else if (n)
        buf[0] = '\0';
}

static int in_range(const cx_conf_key *k, double v)
{
    if (k->flags & CX_CONF_MIN) {
        if ((k->flags & CX_CONF_MIN_OPEN) ? !(v > k->min) : !(v >= k->min))
            return 0;
    }
    if (k->flags & CX_CONF_MAX) {
        if ((k->flags & CX_CONF_MAX_OPEN) ? !(v < k->max) : !(v <= k->max))
            return 0;
    }
    return 1;
}

/* Integer keys have integer bounds (cx_conf_schema_check), compared exactly. */
static int int_in_range(const cx_conf_key *k, int64_t v)
{
    if (k->flags & CX_CONF_MIN) {
        int64_t m = (int64_t)k->min;
        if ((k->flags & CX_CONF_MIN_OPEN) ? v <= m : v < m)
            return 0;
    }
    if (k->flags & CX_CONF_MAX) {
        int64_t m = (int64_t)k->max;
        if ((k->flags & CX_CONF_MAX_OPEN) ? v >= m : v > m)
            return 0;
    }
    return 1;
}

void cx_conf_type_desc(const cx_conf_key *k, char *buf, size_t n)
{
    char range[96], choices[512];
    range_text(k, range, sizeof range);
    const char *sep = range[0] ? " " : "";
    switch (k->type) {
    case CX_CONF_BOOL:
        snprintf(buf, n, "bool");
        break;
    case CX_CONF_INT:
        snprintf(buf, n, "int%s%s", sep, range);
        break;
    case CX_CONF_DOUBLE:
        snprintf(buf, n, "double%s%s", sep, range);
        break;
    case CX_CONF_STRING:
        snprintf(buf, n, "string%s", (k->flags & CX_CONF_NULLABLE) ? " or null" : "");
        break;
    case CX_CONF_PATH:
        snprintf(buf, n, "path%s", (k->flags & CX_CONF_NULLABLE) ? " or null" : "");
        break;
    case CX_CONF_ENUM:
        choices_text(k, choices, sizeof choices);
        snprintf(buf, n, "enum: %s", choices);
        break;
    case CX_CONF_INT_LIST:
    case CX_CONF_DOUBLE_LIST: {
        char len[64] = "";
        if (k->max_len && k->min_len == k->max_len)
            snprintf(len, sizeof len, " of %zu", k->min_len);
        else if (k->max_len && k->min_len)
            snprintf(len, sizeof len, " of %zu to %zu", k->min_len, k->max_len);
        else if (k->max_len)
            snprintf(len, sizeof len, " of at most %zu", k->max_len);
        else if (k->min_len)
            snprintf(len, sizeof len, " of at least %zu", k->min_len);
        snprintf(buf, n, "%s list%s%s%s%s", k->type == CX_CONF_INT_LIST ? "int" : "double", len,
                 range[0] ? ", each " : "", range, "");
        break;
    }
    }
}

/* What a key expects, for "expected X, got Y" messages. */
static const char *expected(const cx_conf_key *k, char *buf, size_t n)
{
    switch (k->type) {
    case CX_CONF_BOOL:
        return "true or false";
    case CX_CONF_INT:
        return "an integer";
    case CX_CONF_DOUBLE:
        return "a number";
    case CX_CONF_STRING:
        return "a string";
    case CX_CONF_ENUM: {
        char choices[512];
        choices_text(k, choices, sizeof choices);
        snprintf(buf, n, "one of %s", choices);
        return buf;
    }
    case CX_CONF_PATH:
        return "a path";
    case CX_CONF_INT_LIST:
        return "a list of integers";
    case CX_CONF_DOUBLE_LIST:
        return "a list of numbers";
    }
    return "a value";
}

/* ---- suggestions for unknown keys and choices ------------------------------------------------ */

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* Optimal string alignment distance (edits, with adjacent swaps), case-insensitive; gives up
 * (returns a large number) beyond KEY_MAX characters. Three rows: the previous two and this. */
static int edit_distance(const char *a, size_t na, const char *b, size_t nb)
{
    if (na > KEY_MAX || nb > KEY_MAX)
        return 1 << 20;
    int rows[3][KEY_MAX + 1];
    int *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= nb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int ai = lower((unsigned char)a[i - 1]), bj = lower((unsigned char)b[j - 1]);
            int best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (prev[j - 1] + (ai != bj) < best)
                best = prev[j - 1] + (ai != bj);
            if (i > 1 && j > 1 && ai == lower((unsigned char)b[j - 2]) &&
                lower((unsigned char)a[i - 2]) == bj && prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        int *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[nb];
}

static int close_enough(int dist, size_t len)
{
    return dist <= 1 || (size_t)dist * 3 <= len;
}

/* " (did you mean 'X'?)" for an unknown key: the nearest key or group by spelling (one edit,
 * or up to a third of the length), else the keys whose last part is the unknown key's last
 * part (`lr` -> `optim.lr`). */
static void suggest_key(const cx_conf_schema *s, const char *unknown, char *buf, size_t n)
{
    size_t nu = strlen(unknown);
    int best = 1 << 30;
    const char *best_key = NULL;
    size_t best_len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->count; i++) {
        const char *k = s->keys[i].key;
        /* The key itself and each group above it ("model", "model.image"). */
        for (size_t len = 0;; len++) {
            if (k[len] == '.' || k[len] == '\0') {
                int d = edit_distance(unknown, nu, k, len);
                if (d < best) {
                    best = d;
                    best_key = k;
                    best_len = len;
                }
            }
            if (k[len] == '\0')
                break;
        }
    }
    if (best_key && best > 0 && close_enough(best, nu)) {
        snprintf(buf, n, " (did you mean '%.*s'?)", (int)best_len, best_key);
        return;
    }
    const char *leaf = strrchr(unknown, '.');
    leaf = leaf ? leaf + 1 : unknown;
    size_t j = 0;
    int found = 0;
    for (size_t i = 0; leaf[0] && i < s->count && found < 3; i++) {
        const char *k = s->keys[i].key, *kl = strrchr(k, '.');
        kl = kl ? kl + 1 : k;
        if (strcmp(kl, leaf) != 0 || strcmp(k, unknown) == 0)
            continue;
        int w = snprintf(buf + j, n - j, "%s'%s'", found ? " or " : " (did you mean ", k);
        if (w < 0 || (size_t)w >= n - j)
            break;
        j += (size_t)w;
        found++;
    }
    if (found && j + 3 < n)
        snprintf(buf + j, n - j, "?)");
    else
        buf[0] = '\0';
}

static void suggest_choice(const cx_conf_key *k, const char *text, char *buf, size_t n)
{
    size_t nt = strlen(text);
    int best = 1 << 30;
    const char *best_c = NULL;
    buf[0] = '\0';
    for (int i = 0; k->choices[i]; i++) {
        int d = edit_distance(text, nt, k->choices[i], strlen(k->choices[i]));
        if (d < best) {
            best = d;
            best_c = k->choices[i];
        }
    }
    if (best_c && close_enough(best, nt))
        snprintf(buf, n, " (did you mean '%s'?)", best_c);
}

/* ---- scalars --------------------------------------------------------------------------------- */

static int parse_bool(const char *t, bool *out)
{
    if (!strcmp(t, "true") || !strcmp(t, "True") || !strcmp(t, "TRUE")) {
        *out = true;
        return 1;
    }
    if (!strcmp(t, "false") || !strcmp(t, "False") || !strcmp(t, "FALSE")) {
        *out = false;
        return 1;
    }
    return 0;
}

/* Decimal integers with an optional sign: 0 when not one, -1 when out of the int64 range. */
static int parse_int(const char *t, int64_t *out)
{
    const char *p = t;
    int neg = 0;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (*p < '0' || *p > '9')
        return 0;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int over = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (limit - digit) / 10)
            over = 1;
        else
            v = v * 10 + digit;
    }
    if (*p)
        return 0;
    if (over)
        return -1;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return 1;
}

/* 0 when t is not a number, -1 when it is not finite (inf, nan, overflow). */
static int parse_double(const char *t, double *out)
{
    if (!t[0] || t[0] == ' ' || t[0] == '\t' || t[0] == '\n')
        return 0;
    /* YAML's spellings of infinity and not-a-number. */
    const char *u = t + (t[0] == '+' || t[0] == '-');
    if (!strcmp(u, ".inf") || !strcmp(u, ".Inf") || !strcmp(u, ".INF") || !strcmp(t, ".nan") ||
        !strcmp(t, ".NaN") || !strcmp(t, ".NAN"))
        return -1;
    char *end;
    errno = 0;
    double v = strtod(t, &end);
    if (end == t || *end)
        return 0;
    if (!isfinite(v))
        return -1;
    *out = v;
    return 1;
}

static int utf8_valid(const char *s)
{
    size_t n = strlen(s);
    return cx_utf8_check(s, n) == n;
}

/* ---- paths ----------------------------------------------------------------------------------- */

static char *current_folder(void)
{
    for (size_t n = 256; n <= (1u << 20); n *= 2) {
        char *buf = malloc(n);
        if (!buf)
            return NULL;
        if (getcwd(buf, n))
            return buf;
        free(buf);
        if (errno != ERANGE)
            return NULL;
    }
    return NULL;
}

/* rel against the absolute folder base, with ".", ".." and repeated slashes resolved by text
 * alone (the file need not exist). */
static char *absolute_path(const char *base, const char *rel)
{
    char *joined = rel[0] == '/' ? strdup(rel) : cx_path_join(base, rel);
    if (!joined)
        return NULL;
    size_t n = strlen(joined);
    char *out = malloc(n + 2);
    if (!out) {
        free(joined);
        return NULL;
    }
    size_t len = 0; /* out holds "/a/b" (no trailing slash), or "" for the root */
    for (char *p = joined; *p;) {
        while (*p == '/')
            p++;
        char *q = p;
        while (*q && *q != '/')
            q++;
        size_t c = (size_t)(q - p);
        if (c == 0 || (c == 1 && p[0] == '.')) {
            /* nothing */
        } else if (c == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
        } else {
            out[len++] = '/';
            memcpy(out + len, p, c);
            len += c;
        }
        p = q;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    free(joined);
    return out;
}

/* ---- values ---------------------------------------------------------------------------------- */

static cx_status parse_element(const source *S, const cx_conf_key *k, const cx_yaml_node *node,
                               const char *label, int is_int, int64_t *iv, double *dv)
{
    char shown[96], range[96];
    if (node->kind != CX_YAML_SCALAR)
        return src_fail(S, node->line, node->col, "%s: expected %s, got %s", label,
                        is_int ? "an integer" : "a number", cx_yaml_kind_name(node->kind));
    const char *t = node->scalar;
    if (cx_yaml_is_null(node))
        return src_fail(S, node->line, node->col, "%s: null is not allowed (expected %s)", label,
                        is_int ? "an integer" : "a number");
    if (node->quoted)
        return src_fail(S, node->line, node->col, "%s: \"%s\" is a quoted string, not %s", label,
                        show(t, shown, sizeof shown), is_int ? "an integer" : "a number");
    range_text(k, range, sizeof range);
    if (is_int) {
        int r = parse_int(t, iv);
        if (r == 0)
            return src_fail(S, node->line, node->col, "%s: '%s' is not an integer", label,
                            show(t, shown, sizeof shown));
        if (r < 0)
            return src_fail(S, node->line, node->col, "%s: %s does not fit a 64-bit integer",
                            label, show(t, shown, sizeof shown));
        if (!int_in_range(k, *iv))
            return src_fail(S, node->line, node->col, "%s: %s is out of range (must be %s)",
                            label, show(t, shown, sizeof shown), range);
    } else {
        int r = parse_double(t, dv);
        if (r == 0)
            return src_fail(S, node->line, node->col, "%s: '%s' is not a number", label,
                            show(t, shown, sizeof shown));
        if (r < 0)
            return src_fail(S, node->line, node->col, "%s: '%s' is not a finite number", label,
                            show(t, shown, sizeof shown));
        if (!in_range(k, *dv))
            return src_fail(S, node->line, node->col, "%s: %s is out of range (must be %s)",
                            label, show(t, shown, sizeof shown), range);
    }
    return CX_OK;
}

static cx_status parse_list(const source *S, const cx_conf_key *k, const cx_yaml_node *node,
                            value *out)
{
    int is_int = k->type == CX_CONF_INT_LIST;
    size_t n = node->count;
    if (n < k->min_len || (k->max_len && n > k->max_len)) {
        char want[64];
        if (k->max_len && k->min_len == k->max_len)
            snprintf(want, sizeof want, "exactly %zu", k->min_len);
        else if (k->max_len && n > k->max_len)
            snprintf(want, sizeof want, "at most %zu", k->max_len);
        else
            snprintf(want, sizeof want, "at least %zu", k->min_len);
        return src_fail(S, node->line, node->col, "%s: %zu value%s given, %s %s", k->key, n,
                        n == 1 ? "" : "s", want, "allowed");
    }
    if (n == 0)
        return CX_OK;
    void *v = calloc(n, is_int ? sizeof(int64_t) : sizeof(double));
    if (!v)
        return oom(S->err);
    for (size_t i = 0; i < n; i++) {
        char label[KEY_MAX + 32];
        snprintf(label, sizeof label, "%s[%zu]", k->key, i);
        cx_status st = parse_element(S, k, node->items[i], label, is_int,
                                     is_int ? (int64_t *)v + i : NULL,
                                     is_int ? NULL : (double *)v + i);
        if (st) {
            free(v);
            return st;
        }
    }
    if (is_int) {
        out->il.v = v;
        out->il.n = n;
    } else {
        out->dl.v = v;
        out->dl.n = n;
    }
    return CX_OK;
}

/* The absolute folder that relative paths of this source resolve against. */
static cx_status source_base(source *S)
{
    if (S->base)
        return CX_OK;
    const char *dir = S->base_dir ? S->base_dir : ".";
    char *cwd = NULL;
    if (dir[0] != '/' && !(cwd = current_folder())) {
        if (errno == ENOMEM)
            return oom(S->err);
        return cx_fail_errno(S->err, CX_EIO, errno, "%s: cannot determine the current folder",
                             S->name);
    }
    S->base = absolute_path(cwd ? cwd : "/", dir);
    free(cwd);
    return S->base ? CX_OK : oom(S->err);
}

/* Parse node as the value of k into *out (zeroed on entry). */
static cx_status parse_value(source *S, const cx_conf_key *k, const cx_yaml_node *node,
                             value *out)
{
    char shown[96], choices[512], hint[160], want[540];
    int list = k->type == CX_CONF_INT_LIST || k->type == CX_CONF_DOUBLE_LIST;
    if (list) {
        if (node->kind == CX_YAML_SEQ)
            return parse_list(S, k, node, out);
        if (cx_yaml_is_null(node))
            return src_fail(S, node->line, node->col,
                            "%s: null is not allowed (use [] for an empty list)", k->key);
        return src_fail(S, node->line, node->col, "%s: expected %s like [1, 2], got %s", k->key,
                        expected(k, want, sizeof want), cx_yaml_kind_name(node->kind));
    }
    if (node->kind != CX_YAML_SCALAR)
        return src_fail(S, node->line, node->col, "%s: expected %s, got %s", k->key,
                        expected(k, want, sizeof want), cx_yaml_kind_name(node->kind));
    const char *t = node->scalar;
    if (cx_yaml_is_null(node)) {
        if ((k->type == CX_CONF_STRING || k->type == CX_CONF_PATH) &&
            (k->flags & CX_CONF_NULLABLE))
            return CX_OK; /* NULL */
        return src_fail(S, node->line, node->col, "%s: null is not allowed (expected %s)", k->key,
                        expected(k, want, sizeof want));
    }
    switch (k->type) {
    case CX_CONF_BOOL:
        if (node->quoted)
            return src_fail(S, node->line, node->col, "%s: \"%s\" is a quoted string, not true or "
                            "false", k->key, show(t, shown, sizeof shown));
        if (!parse_bool(t, &out->b))
            return src_fail(S, node->line, node->col, "%s: '%s' is not true or false", k->key,
                            show(t, shown, sizeof shown));
        return CX_OK;
    case CX_CONF_INT:
        return parse_element(S, k, node, k->key, 1, &out->i, NULL);
    case CX_CONF_DOUBLE:
        return parse_element(S, k, node, k->key, 0, NULL, &out->d);
    case CX_CONF_ENUM:
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(k->choices[i], t) == 0) {
                out->e = i;
                return CX_OK;
            }
        choices_text(k, choices, sizeof choices);
        suggest_choice(k, t, hint, sizeof hint);
        return src_fail(S, node->line, node->col, "%s: '%s' is not one of %s%s", k->key,
                        show(t, shown, sizeof shown), choices, hint);
    case CX_CONF_STRING:
    case CX_CONF_PATH:
        if (!utf8_valid(t))
            return src_fail(S, node->line, node->col, "%s: '%s' is not valid UTF-8", k->key,
                            show(t, shown, sizeof shown));
        if (k->type == CX_CONF_STRING) {
            out->s = strdup(t);
            return out->s ? CX_OK : oom(S->err);
        }
        if (!t[0])
            return src_fail(S, node->line, node->col, "%s: the path is empty%s", k->key,
                            (k->flags & CX_CONF_NULLABLE) ? " (write null for none)" : "");
        if (t[0] != '/') {
            cx_status st = source_base(S);
            if (st)
                return st;
        }
        out->s = absolute_path(S->base, t);
        return out->s ? CX_OK : oom(S->err);
    default:
        break;
    }
    return src_fail(S, node->line, node->col, "%s: unsupported key type", k->key);
}

static cx_status set_key(source *S, const cx_conf_key *k, int key_line, int key_col,
                         const cx_yaml_node *node)
{
    size_t idx = (size_t)(k - S->s->keys);
    if (S->seen_line[idx])
        return src_fail(S, key_line, key_col, "%s is set twice (first at line %d)", k->key,
                        S->seen_line[idx]);
    value v;
    memset(&v, 0, sizeof v);
    cx_status st = parse_value(S, k, node, &v);
    if (st) {
        value_free(k->type, &v);
        return st;
    }
    store(S->obj, k, &v);
    S->seen_line[idx] = key_line > 0 ? key_line : 1;
    return CX_OK;
}

static cx_status unknown_key(const source *S, int line, int col, const char *key)
{
    char hint[KEY_MAX * 3 + 64];
    char shown[96];
    suggest_key(S->s, key, hint, sizeof hint);
    return src_fail(S, line, col, "unknown key '%s'%s", show(key, shown, sizeof shown), hint);
}

static cx_status not_a_value(const source *S, int line, int col, const char *group,
                             const cx_conf_key *member)
{
    return src_fail(S, line, col,
                    "'%s' is a group of keys (such as '%s'), so it takes a mapping, not a value",
                    group, member->key);
}

/* Apply the pairs of a MAP whose keys extend prefix ("" at the top). */
static cx_status apply_map(source *S, const cx_yaml_node *map, const char *prefix)
{
    for (size_t i = 0; i < map->count; i++) {
        const cx_yaml_pair *p = &map->pairs[i];
        size_t np = strlen(prefix), nk = strlen(p->key);
        char full[KEY_MAX + 2];
        if (np + 1 + nk >= sizeof full) {
            char shown[96];
            return src_fail(S, p->line, p->col, "unknown key '%s%s%s'", prefix, np ? "." : "",
                            show(p->key, shown, sizeof shown));
        }
        memcpy(full, prefix, np);
        if (np)
            full[np++] = '.';
        memcpy(full + np, p->key, nk + 1);
        const cx_conf_key *k = cx_conf_find(S->s, full);
        if (k) {
            cx_status st = set_key(S, k, p->line, p->col, p->value);
            if (st)
                return st;
            continue;
        }
        const cx_conf_key *member = group_member(S->s, full, strlen(full));
        if (!member)
            return unknown_key(S, p->line, p->col, full);
        if (p->value->kind == CX_YAML_MAP) {
            cx_status st = apply_map(S, p->value, full);
            if (st)
                return st;
        } else if (!cx_yaml_is_null(p->value)) {
            /* A null group ("optim:" with every line below commented out) sets nothing. */
            return not_a_value(S, p->value->line, p->value->col, full, member);
        }
    }
    return CX_OK;
}

static cx_status source_open(source *S, const cx_conf_schema *s, void *obj, const char *name,
                             int in_file, const char *base_dir, cx_err *err)
{
    memset(S, 0, sizeof *S);
    S->s = s;
    S->obj = obj;
    S->name = name;
    S->in_file = in_file;
    S->err = err;
    S->base_dir = base_dir;
    S->seen_line = calloc(s->count ? s->count : 1, sizeof *S->seen_line);
    return S->seen_line ? CX_OK : oom(err);
}

static void source_close(source *S)
{
    free(S->base);
    free(S->seen_line);
    S->base = NULL;
    S->seen_line = NULL;
}

cx_status cx_conf_apply_yaml(const cx_conf_schema *s, void *obj, const cx_yaml_node *root,
                             const char *name, const char *base_dir, cx_err *err)
{
    source S;
    cx_status st = source_open(&S, s, obj, name, 1, base_dir, err);
    if (st)
        return st;
    if (root->kind == CX_YAML_MAP)
        st = apply_map(&S, root, "");
    else if (!cx_yaml_is_null(root))
        st = src_fail(&S, root->line, root->col, "expected a mapping of configuration keys, got %s",
                      cx_yaml_kind_name(root->kind));
    source_close(&S);
    return st;
}

cx_status cx_conf_apply_file(const cx_conf_schema *s, void *obj, const char *path, cx_err *err)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cx_fail(err, CX_EDATA, "%s: is a folder, not a configuration file", path);
    cx_yaml_node *root = NULL;
    cx_status st = cx_yaml_parse_file(path, &root, err);
    if (st)
        return st;
    char *dir = cx_path_dir(path);
    if (!dir) {
        cx_yaml_free(root);
        return oom(err);
    }
    st = cx_conf_apply_yaml(s, obj, root, path, dir, err);
    free(dir);
    cx_yaml_free(root);
    return st;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A node for one --set value: YAML for quoted text and [lists] / {maps}, the plain text as
 * written otherwise (so "a: b" or "#x" stay strings), "1,2" split for list keys. */
static cx_status set_node(source *S, const cx_conf_key *k, const char *text, cx_yaml_node **out)
{
    size_t n = strlen(text);
    while (n && is_space(text[0])) {
        text++;
        n--;
    }
    while (n && is_space(text[n - 1]))
        n--;
    int list = k && (k->type == CX_CONF_INT_LIST || k->type == CX_CONF_DOUBLE_LIST);
    int yaml = n && (text[0] == '"' || text[0] == '\'' || (list && text[0] == '[') ||
                     (!k && text[0] == '{'));
    if (yaml) /* positions inside it are not reported: the assignment shown says enough */
        return cx_yaml_parse_string(text, n, S->name, out, S->err);
    cx_yaml_node *node = calloc(1, sizeof *node);
    if (!node)
        return oom(S->err);
    node->line = node->col = 1;
    *out = node;
    if (!list) {
        node->kind = CX_YAML_SCALAR;
        node->scalar = malloc(n + 1);
        if (!node->scalar)
            return oom(S->err);
        memcpy(node->scalar, text, n);
        node->scalar[n] = '\0';
        return CX_OK;
    }
    node->kind = CX_YAML_SEQ;
    if (n == 0)
        return CX_OK; /* "KEY=" is the empty list */
    size_t items = 1;
    for (size_t i = 0; i < n; i++)
        items += text[i] == ',';
    node->items = calloc(items, sizeof *node->items);
    if (!node->items)
        return oom(S->err);
    for (size_t i = 0, start = 0; i <= n; i++) {
        if (i < n && text[i] != ',')
            continue;
        size_t a = start, b = i;
        while (a < b && is_space(text[a]))
            a++;
        while (b > a && is_space(text[b - 1]))
            b--;
        cx_yaml_node *item = calloc(1, sizeof *item);
        if (!item)
            return oom(S->err);
        node->items[node->count++] = item;
        item->kind = CX_YAML_SCALAR;
        item->line = item->col = 1;
        item->scalar = malloc(b - a + 1);
        if (!item->scalar)
            return oom(S->err);
        memcpy(item->scalar, text + a, b - a);
        item->scalar[b - a] = '\0';
        if (a == b)
            return src_fail(S, 1, 1, "%s: an empty item in the list", k->key);
        start = i + 1;
    }
    return CX_OK;
}

cx_status cx_conf_set_value(const cx_conf_schema *s, void *obj, const char *key,
                            const char *value_text, const char *where, cx_err *err)
{
    source S;
    cx_status st = source_open(&S, s, obj, where, 0, NULL, err);
    if (st)
        return st;
    const cx_conf_key *k = cx_conf_find(s, key);
    const cx_conf_key *member = k ? NULL : group_member(s, key, strlen(key));
    cx_yaml_node *node = NULL;
    if (!k && !member) {
        st = key[0] ? unknown_key(&S, 1, 1, key) : src_fail(&S, 1, 1, "the key is empty");
    } else if ((st = set_node(&S, k, value_text, &node)) != CX_OK) {
        /* message already set */
    } else if (k) {
        st = set_key(&S, k, 1, 1, node);
    } else if (node->kind == CX_YAML_MAP) {
        st = apply_map(&S, node, key);
    } else {
        st = src_fail(&S, 1, 1,
                      "'%s' is a group of keys (such as '%s'): set one key, or give a mapping "
                      "like {%s: ...}",
                      key, member->key, member->key + strlen(key) + 1);
    }
    cx_yaml_free(node);
    source_close(&S);
    return st;
}

cx_status cx_conf_set(const cx_conf_schema *s, void *obj, const char *assignment, cx_err *err)
{
    char where[320];
    char shown[256];
    snprintf(where, sizeof where, "%s", show(assignment, shown, sizeof shown));
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return cx_fail(err, CX_EUSAGE, "%s: expected KEY=VALUE", where);
    size_t n = (size_t)(eq - assignment);
    while (n && is_space(assignment[n - 1]))
        n--;
    const char *key = assignment;
    while (n && is_space(*key)) {
        key++;
        n--;
    }
    char *k = malloc(n + 1);
    if (!k)
        return oom(err);
    memcpy(k, key, n);
    k[n] = '\0';
    cx_status st = cx_conf_set_value(s, obj, k, eq + 1, where, err);
    free(k);
    return st;
}

/* ---- whole configurations -------------------------------------------------------------------- */

void cx_conf_free(const cx_conf_schema *s, void *obj)
{
    for (size_t i = 0; i < s->count; i++) {
        value v;
        memcpy(&v, field(obj, &s->keys[i]), field_size(s->keys[i].type));
        value_free(s->keys[i].type, &v);
    }
    memset(obj, 0, s->size);
}

cx_status cx_conf_init(const cx_conf_schema *s, void *obj, cx_err *err)
{
    memset(obj, 0, s->size);
    for (size_t i = 0; i < s->count; i++) {
        char where[KEY_MAX + 64];
        snprintf(where, sizeof where, "schema: default of %s", s->keys[i].key);
        const char *def = s->keys[i].def ? s->keys[i].def : "";
        cx_status st = cx_conf_set_value(s, obj, s->keys[i].key, def, where, err);
        if (st) {
            cx_conf_free(s, obj);
            return st;
        }
    }
    return CX_OK;
}

cx_status cx_conf_load(const cx_conf_schema *s, void *obj, const char *path,
                       const char *const *sets, size_t nsets, cx_err *err)
{
    cx_status st = cx_conf_init(s, obj, err);
    if (st)
        return st;
    if (path)
        st = cx_conf_apply_file(s, obj, path, err);
    for (size_t i = 0; !st && i < nsets; i++)
        st = cx_conf_set(s, obj, sets[i], err);
    if (st)
        cx_conf_free(s, obj);
    return st;
}

static int integral_bound(double b)
{
    return b >= -9e18 && b <= 9e18 && b == floor(b);
}

static int valid_key_name(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > KEY_MAX || key[0] == '.' || key[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || (c == '.' && key[i + 1] != '.');
        if (!ok)
            return 0;
    }
    return 1;
}

cx_status cx_conf_schema_check(const cx_conf_schema *s, cx_err *err)
{
    for (size_t i = 0; i < s->count; i++) {
        const cx_conf_key *k = &s->keys[i];
        if (!k->key || !valid_key_name(k->key))
            return cx_fail(err, CX_EUSAGE, "schema: entry %zu: bad key name '%s'", i,
                           k->key ? k->key : "(null)");
        if (k->offset + field_size(k->type) > s->size || field_size(k->type) == 0)
            return cx_fail(err, CX_EUSAGE, "schema: %s: field outside the struct", k->key);
        if ((k->type == CX_CONF_ENUM) != (k->choices != NULL) ||
            (k->choices && !k->choices[0]))
            return cx_fail(err, CX_EUSAGE, "schema: %s: choices belong to enum keys, and an enum "
                           "needs at least one", k->key);
        if ((k->flags & CX_CONF_NULLABLE) && k->type != CX_CONF_STRING && k->type != CX_CONF_PATH)
            return cx_fail(err, CX_EUSAGE, "schema: %s: only strings and paths can be null",
                           k->key);
        if ((k->type == CX_CONF_INT || k->type == CX_CONF_INT_LIST) &&
            (((k->flags & CX_CONF_MIN) && !integral_bound(k->min)) ||
             ((k->flags & CX_CONF_MAX) && !integral_bound(k->max))))
            return cx_fail(err, CX_EUSAGE, "schema: %s: integer keys need integer bounds", k->key);
        if (k->max_len && k->min_len > k->max_len)
            return cx_fail(err, CX_EUSAGE, "schema: %s: min_len > max_len", k->key);
        if (!k->doc || !k->doc[0])
            return cx_fail(err, CX_EUSAGE, "schema: %s: no doc line", k->key);
        for (size_t j = 0; j < i; j++) {
            const char *a = s->keys[j].key, *b = k->key;
            size_t na = strlen(a), nb = strlen(b);
            if (strcmp(a, b) == 0)
                return cx_fail(err, CX_EUSAGE, "schema: %s appears twice", b);
            if ((na < nb && strncmp(a, b, na) == 0 && b[na] == '.') ||
                (nb < na && strncmp(a, b, nb) == 0 && a[nb] == '.'))
                return cx_fail(err, CX_EUSAGE, "schema: %s and %s: a key cannot also be a group",
                               a, b);
        }
        for (size_t j = 0; j < i; j++) {
            const cx_conf_key *o = &s->keys[j];
            if (k->offset < o->offset + field_size(o->type) &&
                o->offset < k->offset + field_size(k->type))
                return cx_fail(err, CX_EUSAGE, "schema: %s and %s share struct bytes", o->key,
                               k->key);
        }
    }
    void *tmp = calloc(1, s->size ? s->size : 1);
    if (!tmp)
        return oom(err);
    cx_status st = cx_conf_init(s, tmp, err);
    cx_conf_free(s, tmp);
    free(tmp);
    return st;
}

static int double_eq(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

static int key_equal(const cx_conf_key *k, const void *a, const void *b)
{
    {
        const void *fa = field(a, k), *fb = field(b, k);
        switch (k->type) {
        case CX_CONF_BOOL:
            if (*(const bool *)fa != *(const bool *)fb)
                return 0;
            break;
        case CX_CONF_INT:
            if (*(const int64_t *)fa != *(const int64_t *)fb)
                return 0;
            break;
        case CX_CONF_DOUBLE:
            if (!double_eq(*(const double *)fa, *(const double *)fb))
                return 0;
            break;
        case CX_CONF_ENUM:
            if (*(const int *)fa != *(const int *)fb)
                return 0;
            break;
        case CX_CONF_STRING:
        case CX_CONF_PATH: {
            const char *sa = *(char *const *)fa, *sb = *(char *const *)fb;
            if ((sa == NULL) != (sb == NULL) || (sa && strcmp(sa, sb) != 0))
                return 0;
            break;
        }
        case CX_CONF_INT_LIST: {
            const cx_conf_ints *la = fa, *lb = fb;
            if (la->n != lb->n || (la->n && memcmp(la->v, lb->v, la->n * sizeof *la->v)))
                return 0;
            break;
        }
        case CX_CONF_DOUBLE_LIST: {
            const cx_conf_doubles *la = fa, *lb = fb;
            if (la->n != lb->n)
                return 0;
            for (size_t j = 0; j < la->n; j++)
                if (!double_eq(la->v[j], lb->v[j]))
                    return 0;
            break;
        }
        }
    }
    return 1;
}

int cx_conf_equal(const cx_conf_schema *s, const void *a, const void *b)
{
    for (size_t i = 0; i < s->count; i++)
        if (!key_equal(&s->keys[i], a, b))
            return 0;
    return 1;
}

/* ---- writing --------------------------------------------------------------------------------- */

static int reads_back(const char *text, double v)
{
    double r = strtod(text, NULL);
    return memcmp(&r, &v, sizeof r) == 0;
}

/* The shortest decimal that reads back as v bit for bit, without an exponent for magnitudes
 * from 1e-4 to 1e16, and always with a '.' in the mantissa so YAML 1.1 readers (PyYAML) see a
 * float too: 0.001, 1.0, 100.0, 1.0e-08, 14.285714285714286. */
static void format_double(double v, char *buf, size_t n)
{
    char tmp[40]; /* "%.17g" of a double needs at most 24 */
    int prec = 1;
    for (; prec < 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (reads_back(tmp, v))
            break;
    }
    snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
    int exp10 = atoi(strchr(tmp, 'e') + 1);
    if (exp10 >= prec && exp10 < 16)
        prec = exp10 + 1; /* 100 as "100", not "1e+02" */
    snprintf(tmp, sizeof tmp, "%.*g", prec, v);
    if (!reads_back(tmp, v))
        snprintf(tmp, sizeof tmp, "%.17g", v);
    char *e = strchr(tmp, 'e');
    if (strchr(tmp, '.') || !isfinite(v))
        snprintf(buf, n, "%s", tmp);
    else if (e)
        snprintf(buf, n, "%.*s.0%s", (int)(e - tmp), tmp, e);
    else
        snprintf(buf, n, "%s.0", tmp);
}

/* A YAML double-quoted scalar. Characters YAML would not read back as written (controls, line
 * separators, BOM) are escaped; a byte that is not UTF-8 (only possible in a struct filled by
 * code) becomes U+FFFD, since YAML text cannot hold it. */
static void write_quoted(FILE *fp, const char *str)
{
    const char *s = str, *end = str + strlen(str);
    fputc('"', fp);
    while (s < end) {
        uint32_t cp;
        size_t n = cx_utf8_next(s, (size_t)(end - s), &cp);
        if (n == 0) {
            fputs("\\ufffd", fp);
            s++;
            continue;
        }
        if (cp == '"' || cp == '\\')
            fprintf(fp, "\\%c", (int)cp);
        else if (cp == '\n')
            fputs("\\n", fp);
        else if (cp == '\t')
            fputs("\\t", fp);
        else if (cp == '\r')
            fputs("\\r", fp);
        else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
            fprintf(fp, "\\x%02x", (unsigned)cp);
        else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe || cp == 0xffff)
            fprintf(fp, "\\u%04x", (unsigned)cp);
        else
            fwrite(s, 1, n, fp);
        s += n;
    }
    fputc('"', fp);
}

static void write_value(FILE *fp, const cx_conf_key *k, const void *obj)
{
    const void *f = field(obj, k);
    char num[64];
    switch (k->type) {
    case CX_CONF_BOOL:
        fputs(*(const bool *)f ? "true" : "false", fp);
        break;
    case CX_CONF_INT:
        fprintf(fp, "%lld", (long long)*(const int64_t *)f);
        break;
    case CX_CONF_DOUBLE:
        format_double(*(const double *)f, num, sizeof num);
        fputs(num, fp);
        break;
    case CX_CONF_ENUM: {
        int e = *(const int *)f, i = 0;
        while (k->choices[i] && i < e)
            i++;
        /* An out-of-range value (set by code, not by the loader) is written as its number so
         * reading it back fails loudly instead of picking a choice silently. */
        if (e >= 0 && k->choices[i])
            fputs(k->choices[i], fp);
        else
            fprintf(fp, "%d", e);
        break;
    }
    case CX_CONF_STRING:
    case CX_CONF_PATH: {
        const char *s = *(char *const *)f;
        if (s)
            write_quoted(fp, s);
        else
            fputs("null", fp);
        break;
    }
    case CX_CONF_INT_LIST: {
        const cx_conf_ints *l = f;
        fputc('[', fp);
        for (size_t i = 0; i < l->n; i++)
            fprintf(fp, "%s%lld", i ? ", " : "", (long long)l->v[i]);
        fputc(']', fp);
        break;
    }
    case CX_CONF_DOUBLE_LIST: {
        const cx_conf_doubles *l = f;
        fputc('[', fp);
        for (size_t i = 0; i < l->n; i++) {
            format_double(l->v[i], num, sizeof num);
            fprintf(fp, "%s%s", i ? ", " : "", num);
        }
        fputc(']', fp);
        break;
    }
    }
}

/* Key i is written: always, unless it is CX_CONF_OMIT_DEFAULT and holds its default. */
static int written(const cx_conf_schema *s, size_t i, const void *obj, const void *defaults)
{
    const cx_conf_key *k = &s->keys[i];
    return !(k->flags & CX_CONF_OMIT_DEFAULT) || !defaults || !key_equal(k, obj, defaults);
}

/* The keys under prefix ("" or "model." ...), each group once, in order of first appearance;
 * a group none of whose keys is written is left out. */
static void write_level(FILE *fp, const cx_conf_schema *s, const void *obj, const void *defaults,
                        const char *prefix, size_t np, int depth)
{
    for (size_t i = 0; i < s->count; i++) {
        const char *key = s->keys[i].key;
        if (strncmp(key, prefix, np) != 0)
            continue;
        const char *rest = key + np;
        size_t nc = strcspn(rest, ".");
        int done = 0;
        for (size_t j = 0; j < i && !done; j++) {
            const char *other = s->keys[j].key;
            done = strncmp(other, prefix, np) == 0 && strncmp(other + np, rest, nc) == 0 &&
                   (other[np + nc] == '.' || other[np + nc] == '\0');
        }
        if (done)
            continue;
        int any = 0;
        for (size_t j = i; j < s->count && !any; j++) {
            const char *other = s->keys[j].key;
            any = strncmp(other, key, np + nc) == 0 &&
                  (other[np + nc] == '.' || other[np + nc] == '\0') && written(s, j, obj, defaults);
        }
        if (!any)
            continue;
        fprintf(fp, "%*s%.*s:", 2 * depth, "", (int)nc, rest);
        if (rest[nc] == '\0') {
            fputc(' ', fp);
            write_value(fp, &s->keys[i], obj);
            fputc('\n', fp);
        } else {
            fputc('\n', fp);
            write_level(fp, s, obj, defaults, key, np + nc + 1, depth + 1);
        }
    }
}

/* The defaults the CX_CONF_OMIT_DEFAULT keys are compared with, or NULL when the schema has
 * none of them. */
static cx_status make_defaults(const cx_conf_schema *s, void **out, cx_err *err)
{
    *out = NULL;
    int need = 0;
    for (size_t i = 0; i < s->count; i++)
        need |= (s->keys[i].flags & CX_CONF_OMIT_DEFAULT) != 0;
    if (!need)
        return CX_OK;
    void *d = calloc(1, s->size ? s->size : 1);
    if (!d)
        return oom(err);
    cx_status st = cx_conf_init(s, d, err);
    if (st) {
        cx_conf_free(s, d);
        free(d);
        return st;
    }
    *out = d;
    return CX_OK;
}

static void free_defaults(const cx_conf_schema *s, void *d)
{
    if (d) {
        cx_conf_free(s, d);
        free(d);
    }
}

cx_status cx_conf_write(const cx_conf_schema *s, const void *obj, FILE *fp, const char *name,
                        cx_err *err)
{
    void *defaults;
    cx_status st = make_defaults(s, &defaults, err);
    if (st)
        return st;
    write_level(fp, s, obj, defaults, "", 0, 0);
    free_defaults(s, defaults);
    if (fflush(fp) != 0 || ferror(fp))
        return cx_fail_errno(err, CX_EIO, errno ? errno : EIO, "%s: write error", name);
    return CX_OK;
}

cx_status cx_conf_write_file(const cx_conf_schema *s, const void *obj, const char *path,
                             cx_err *err)
{
    void *defaults;
    cx_status st = make_defaults(s, &defaults, err);
    if (st)
        return st;
    cx_afile f;
    if ((st = cx_afile_open(&f, path, err))) {
        free_defaults(s, defaults);
        return st;
    }
    write_level(f.fp, s, obj, defaults, "", 0, 0);
    free_defaults(s, defaults);
    if (ferror(f.fp)) {
        int e = errno ? errno : EIO;
        cx_afile_abort(&f);
        return cx_fail_errno(err, CX_EIO, e, "%s: write error", path);
    }
    return cx_afile_commit(&f, err);
}

void cx_conf_rows_free(cx_conf_row *rows, size_t count)
{
    for (size_t i = 0; rows && i < count; i++) {
        free(rows[i].type);
        free(rows[i].def);
    }
    free(rows);
}

cx_status cx_conf_list(const cx_conf_schema *s, cx_conf_row **out, cx_err *err)
{
    *out = NULL;
    void *defaults = calloc(1, s->size ? s->size : 1);
    cx_conf_row *rows = calloc(s->count ? s->count : 1, sizeof *rows);
    if (!defaults || !rows) {
        free(defaults);
        free(rows);
        return oom(err);
    }
    cx_status st = cx_conf_init(s, defaults, err);
    for (size_t i = 0; !st && i < s->count; i++) {
        rows[i].key = s->keys[i].key;
        rows[i].doc = s->keys[i].doc;
        size_t len = 0;
        FILE *mem = open_memstream(&rows[i].def, &len);
        if (!mem) {
            st = oom(err);
            break;
        }
        write_value(mem, &s->keys[i], defaults);
        rows[i].type = malloc(640);
        if (fclose(mem) != 0 || !rows[i].def || !rows[i].type) {
            st = oom(err);
            break;
        }
        cx_conf_type_desc(&s->keys[i], rows[i].type, 640);
    }
    cx_conf_free(s, defaults);
    free(defaults);
    if (st) {
        cx_conf_rows_free(rows, s->count);
        return st;
    }
    *out = rows;
    return CX_OK;
}
