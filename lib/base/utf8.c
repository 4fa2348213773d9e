/* UTF-8 validation: the one decoder every text reader and the configuration use. */
#include "lib/base/utf8.h"

size_t cx_utf8_check(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + len > n)
            return i;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
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
