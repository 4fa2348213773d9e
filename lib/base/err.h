/* Error reporting for lib/: functions return a cx_status and fill a cx_err; only cmd/ prints or exits. */
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
    cx_status code;
    char msg[CX_ERR_MSG_MAX];
} cx_err;

/* Record a failure and return its code, so callers can write `return cx_fail(err, ...)`.
 * err may be NULL when the caller does not want details. */
cx_status cx_fail(cx_err *err, cx_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like cx_fail, with ": strerror(errno)" appended. */
cx_status cx_fail_errno(cx_err *err, cx_status code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Put context in front of an existing message: "CONTEXT: old message". */
cx_status cx_err_prefix(cx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void cx_err_clear(cx_err *err);

/* Process exit status for a code: 2 for usage errors, 1 for all other failures, 0 for CX_OK. */
int cx_status_exit_code(cx_status code);

#endif
