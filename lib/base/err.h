/* Error reporting for lib/: functions return a cx_status and fill a cx_err; only cmd/ prints or exits.
 * The return value is the status, the only copy of it; cx_err holds the message, nothing else. */
#ifndef CX_BASE_ERR_H
#define CX_BASE_ERR_H

#include <stddef.h>

typedef enum {
    CX_OK = 0,
    CX_EUSAGE,   /* the caller asked for something invalid: bad option, config, value out of range */
    CX_EDATA,    /* input data is malformed, truncated, inconsistent or missing */
    CX_EIO,      /* the operating system refused a read or write */
    CX_ENOMEM,   /* an allocation failed */
    CX_EDIVERGED /* training produced a non-finite loss */
} cx_status;

#define CX_ERR_MSG_MAX 1024

/* Message form: "WHAT: WHY", where WHAT names the file and the line, record or byte offset. */
typedef struct {
    char msg[CX_ERR_MSG_MAX];
} cx_err;

/* Record a failure's message and return code, so callers can write `return cx_fail(err, ...)`.
 * err may be NULL when the caller does not want details: the status is returned all the same. */
cx_status cx_fail(cx_err *err, cx_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like cx_fail, with ": strerror(errno)" appended. */
cx_status cx_fail_errno(cx_err *err, cx_status code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Put context in front of an existing message ("CONTEXT: old message") and return status, the
 * failure being passed on: `return cx_err_prefix(err, st, "%s", path);`. With err NULL only
 * status is returned. */
cx_status cx_err_prefix(cx_err *err, cx_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void cx_err_clear(cx_err *err);

#endif
