/* A streaming JSON writer for reports (stats, eval, logs): commas, escaping and nesting are
 * tracked here so callers only say what to write. Non-finite numbers are written as null. */
#ifndef CX_BASE_JSON_H
#define CX_BASE_JSON_H

#include <stdio.h>

enum { CX_JSON_MAX_DEPTH = 32 };

typedef struct {
    FILE *fp;
    int pretty;                       /* newlines and two-space indents */
    int depth;
    int count[CX_JSON_MAX_DEPTH + 1]; /* values written at each open level */
    int after_key;
} cx_json;

void cx_json_init(cx_json *j, FILE *fp, int pretty);
void cx_json_begin_object(cx_json *j);
void cx_json_end_object(cx_json *j);
void cx_json_begin_array(cx_json *j);
void cx_json_end_array(cx_json *j);
void cx_json_key(cx_json *j, const char *key);
void cx_json_string(cx_json *j, const char *s);
/* Shortest of %.9g precision (enough to round-trip a float); null when not finite. */
void cx_json_number(cx_json *j, double v);
/* 17 significant digits: round-trips a double. */
void cx_json_double(cx_json *j, double v);
void cx_json_int(cx_json *j, long long v);
void cx_json_bool(cx_json *j, int v);
void cx_json_null(cx_json *j);
/* Write s to fp as a JSON string literal with quotes; a byte that is not UTF-8 becomes U+FFFD. */
void cx_json_write_string(FILE *fp, const char *s);

#endif
