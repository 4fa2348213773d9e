/* Sequential reading of plain or gzip-compressed files through zlib (one code path for both),
 * with the position in the uncompressed data tracked for error messages and the stored size
 * known before any allocation, so readers can refuse a header that claims more than the file
 * holds. Lines for the text readers come from the same buffer. */
#ifndef CX_BASE_GZFILE_H
#define CX_BASE_GZFILE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

enum { CX_GZ_BUF = 1 << 16, CX_GZ_MAX_LINE = 1 << 20 };

typedef struct {
    void *gz;           /* gzFile */
    char *path;         /* owned copy, used in every message */
    int compressed;     /* 1: a gzip stream; 0: read as is */
    uint64_t file_size; /* bytes on disk */
    uint32_t gz_isize;  /* gzip trailer: uncompressed size mod 2^32 (when compressed) */
    uint64_t offset;    /* uncompressed bytes consumed by the caller so far */
    unsigned char *buf; /* (CX_GZ_BUF) owned read-ahead buffer */
    size_t buf_pos, buf_len;
    int at_eof; /* the stream has no more bytes */
    char *line; /* owned: the last line read by cx_gzfile_getline */
    size_t line_cap;
    long line_no; /* 1-based number of the last line read (0 before the first) */
} cx_gzfile;

/* Open path for reading. A missing file is CX_EDATA ("PATH: No such file or directory"); a
 * folder or unreadable file is an error too. f is zeroed first, so cx_gzfile_close is always safe.
 */
cx_status cx_gzfile_open(cx_gzfile *f, const char *path, cx_err *err);
void cx_gzfile_close(cx_gzfile *f);

/* Look at up to n bytes ahead without consuming them; *got tells how many exist. */
cx_status cx_gzfile_peek(cx_gzfile *f, void *dst, size_t n, size_t *got, cx_err *err);

/* Read exactly n bytes. Running out is an error "PATH: byte OFF: file ends early: WHAT needs N
 * more bytes"; a damaged or truncated gzip stream is reported at the byte it failed. */
cx_status cx_gzfile_read(cx_gzfile *f, void *dst, size_t n, const char *what, cx_err *err);

/* Read and discard exactly n bytes (same errors as cx_gzfile_read). */
cx_status cx_gzfile_skip(cx_gzfile *f, uint64_t n, const char *what, cx_err *err);

/* Before allocating for `need` more bytes (from the current offset): fail with
 * "PATH: byte AT: header claims N bytes of WHAT, the file holds M" when the file cannot hold
 * them. Exact for plain files; for gzip files the trailer's size is trusted when it agrees and
 * otherwise the stream is measured in a separate pass (which also reports truncation). */
cx_status cx_gzfile_require(cx_gzfile *f, uint64_t need, uint64_t at, const char *what,
                            cx_err *err);

/* The data must end here: trailing bytes are an error, and for gzip files the trailer's
 * checksum is verified by this call. */
cx_status cx_gzfile_expect_end(cx_gzfile *f, cx_err *err);

/* Next line without its '\n' (and without a '\r' before it). *line points into f and stays
 * valid until the next call; *len excludes the terminator. *got is 0 at the end of the data.
 * A last line without '\n' still counts; lines longer than CX_GZ_MAX_LINE are an error. */
cx_status cx_gzfile_getline(cx_gzfile *f, char **line, size_t *len, int *got, cx_err *err);

#endif
