/* Streaming JSON writer. */
#include "lib/base/json.h"

#include <math.h>
#include <stdint.h>

#include "lib/base/utf8.h"

void cx_json_init(cx_json *j, FILE *fp, int pretty)
{
    j->fp = fp;
    j->pretty = pretty;
    j->depth = 0;
    j->count[0] = 0;
    j->after_key = 0;
}

static void indent(cx_json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->fp);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->fp);
}

/* Separator before a value (or a key) at the current level. */
static void before_value(cx_json *j)
{
    if (j->after_key) {
        j->after_key = 0;
        return;
    }
    if (j->count[j->depth]++ > 0)
        fputc(',', j->fp);
    if (j->depth > 0)
        indent(j);
}

static void open_level(cx_json *j, char c)
{
    before_value(j);
    fputc(c, j->fp);
    if (j->depth < CX_JSON_MAX_DEPTH)
        j->depth++;
    j->count[j->depth] = 0;
}

static void close_level(cx_json *j, char c)
{
    int had = j->count[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had)
        indent(j);
    fputc(c, j->fp);
    if (j->depth == 0 && j->pretty)
        fputc('\n', j->fp);
}

void cx_json_begin_object(cx_json *j) { open_level(j, '{'); }
void cx_json_end_object(cx_json *j) { close_level(j, '}'); }
void cx_json_begin_array(cx_json *j) { open_level(j, '['); }
void cx_json_end_array(cx_json *j) { close_level(j, ']'); }

void cx_json_write_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", fp);
            break;
        case '\\':
            fputs("\\\\", fp);
            break;
        case '\n':
            fputs("\\n", fp);
            break;
        case '\r':
            fputs("\\r", fp);
            break;
        case '\t':
            fputs("\\t", fp);
            break;
        default:
            if (*p < 0x20) {
                fprintf(fp, "\\u%04x", *p);
            } else if (*p < 0x80) {
                fputc(*p, fp);
            } else {
                /* JSON text is UTF-8: a byte that is not (a path from the command line may
                 * hold one) becomes U+FFFD, as in the configuration writer. */
                uint32_t cp;
                size_t len = cx_utf8_next((const char *)p, SIZE_MAX, &cp);
                if (len == 0) {
                    fputs("\\ufffd", fp);
                } else {
                    fwrite(p, 1, len, fp);
                    p += len - 1;
                }
            }
        }
    }
    fputc('"', fp);
}

void cx_json_key(cx_json *j, const char *key)
{
    before_value(j);
    cx_json_write_string(j->fp, key);
    fputs(j->pretty ? ": " : ":", j->fp);
    j->after_key = 1;
}

void cx_json_string(cx_json *j, const char *s)
{
    before_value(j);
    if (s)
        cx_json_write_string(j->fp, s);
    else
        fputs("null", j->fp);
}

void cx_json_number(cx_json *j, double v)
{
    before_value(j);
    if (isfinite(v))
        fprintf(j->fp, "%.9g", v);
    else
        fputs("null", j->fp);
}

void cx_json_double(cx_json *j, double v)
{
    before_value(j);
    if (isfinite(v))
        fprintf(j->fp, "%.17g", v);
    else
        fputs("null", j->fp);
}

void cx_json_int(cx_json *j, long long v)
{
    before_value(j);
    fprintf(j->fp, "%lld", v);
}

void cx_json_bool(cx_json *j, int v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->fp);
}

void cx_json_null(cx_json *j)
{
    before_value(j);
    fputs("null", j->fp);
}
