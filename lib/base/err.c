/* Error reporting: format messages into the caller's cx_err. */
#include "lib/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A message is one line: text from a file (a path with a newline from a YAML scalar, a name)
 * can hold line breaks, so CR and LF become the two characters \r and \n, and other control
 * bytes but tab become '?'. */
static void one_line(cx_err *err)
{
    char out[CX_ERR_MSG_MAX];
    size_t o = 0;
    for (const char *p = err->msg; *p && o + 1 < sizeof out; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\n' || c == '\r') {
            if (o + 2 >= sizeof out)
                break;
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : 'r';
        } else {
            out[o++] = c < 0x20 && c != '\t' ? '?' : (char)c;
        }
    }
    out[o] = '\0';
    memcpy(err->msg, out, o + 1);
}

cx_status cx_fail(cx_err *err, cx_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        one_line(err);
    }
    return code;
}

cx_status cx_fail_errno(cx_err *err, cx_status code, int errnum, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(errnum));
        one_line(err);
    }
    return code;
}

cx_status cx_err_prefix(cx_err *err, cx_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    char prefix[CX_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[CX_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%.500s: %.500s", prefix, old);
    one_line(err);
    return status;
}

void cx_err_clear(cx_err *err)
{
    if (err)
        err->msg[0] = '\0';
}
