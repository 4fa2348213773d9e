/* UTF-8 validation of strings and of the lines of text files. */
#ifndef CX_BASE_UTF8_H
#define CX_BASE_UTF8_H

#include <stddef.h>

#include "lib/base/err.h"
#include "lib/base/gzfile.h"

/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or n when it is valid. NUL and
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
size_t cx_utf8_check(const char *s, size_t n);

/* cx_gzfile_getline for text files: a line that is not valid UTF-8 is an error naming the
 * file, line and byte. */
cx_status cx_utf8_getline(cx_gzfile *f, char **line, size_t *len, int *got, cx_err *err);

#endif
