/* The one UTF-8 decoder: code points of strings, validation of strings and of the lines of
 * text files. */
#ifndef CX_BASE_UTF8_H
#define CX_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/gzfile.h"

/* Decode the sequence at s[0..n): its length in bytes (1 to 4) with its code point in *cp, or 0
 * when it is not valid UTF-8 (n == 0, a stray or missing continuation byte, a sequence cut
 * short by n, an overlong form, a surrogate, a code point above U+10FFFF). NUL decodes as U+0000;
 * callers that refuse it say so. It reads no byte past one that is not a continuation byte, so
 * a NUL-terminated string may pass n = SIZE_MAX. */
size_t cx_utf8_next(const char *s, size_t n, uint32_t *cp);

/* Byte offset of the first invalid UTF-8 sequence in s[0..n), or n when it is valid. NUL and
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
size_t cx_utf8_check(const char *s, size_t n);

/* cx_gzfile_getline for text files: a line that is not valid UTF-8 is an error naming the
 * file, line and byte. */
cx_status cx_utf8_getline(cx_gzfile *f, char **line, size_t *len, int *got, cx_err *err);

#endif
