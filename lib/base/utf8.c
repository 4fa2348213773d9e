/* UTF-8 decoding: the one decoder every text reader, word splitter and the configuration use. */
#include "lib/base/utf8.h"

size_t cx_utf8_next(const char *str, size_t n, uint32_t *cp)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0)
        return 0;
    uint32_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[k] & 0x3F);
    }
    if ((len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

size_t cx_utf8_check(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len = cx_utf8_next(s + i, n - i, &cp);
        if (len == 0 || cp == 0)
            return i;
        i += len;
    }
    return n;
}

cx_status cx_utf8_getline(cx_gzfile *f, char **line, size_t *len, int *got, cx_err *err)
{
    cx_status st = cx_gzfile_getline(f, line, len, got, err);
    if (st || !*got)
        return st;
    size_t off = cx_utf8_check(*line, *len);
    if (off < *len)
        return cx_fail(err, CX_EDATA, "%s: line %ld: byte %zu: invalid UTF-8", f->path,
                       f->line_no, off);
    return CX_OK;
}
