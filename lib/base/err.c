/* Error reporting: format messages into the caller's cx_err. */
#include "lib/base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

cx_status cx_fail(cx_err *err, cx_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
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
    return status;
}

void cx_err_clear(cx_err *err)
{
    if (err)
        err->msg[0] = '\0';
}
