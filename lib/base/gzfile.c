/* Reading plain and gzip files through zlib, with positions for messages and size checks
 * before allocation. zlib reads a plain file transparently, so both kinds share every path. */
#include "lib/base/gzfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

cx_status cx_gzfile_open(cx_gzfile *f, const char *path, cx_err *err)
{
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return cx_fail_errno(err, e == ENOENT || e == ENOTDIR ? CX_EDATA : CX_EIO, e, "%s", path);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return cx_fail_errno(err, CX_EIO, e, "%s", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        close(fd);
        return cx_fail(err, CX_EDATA, "%s: is a folder, not a file", path);
    }
    f->path = strdup(path);
    f->buf = malloc(CX_GZ_BUF);
    if (!f->path || !f->buf) {
        close(fd);
        cx_gzfile_close(f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    f->file_size = S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : UINT64_MAX;
    unsigned char magic[2];
    if (S_ISREG(sb.st_mode) && pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f &&
        magic[1] == 0x8b) {
        f->compressed = 1;
        unsigned char t[4];
        if (sb.st_size >= 18 && pread(fd, t, 4, sb.st_size - 4) == 4)
            f->gz_isize =
                (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    }
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        cx_gzfile_close(f);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    gzbuffer(gz, CX_GZ_BUF);
    f->gz = gz;
    return CX_OK;
}

void cx_gzfile_close(cx_gzfile *f)
{
    if (f->gz)
        gzclose_r((gzFile)f->gz);
    free(f->path);
    free(f->buf);
    free(f->line);
    memset(f, 0, sizeof *f);
}

/* Turn a short read into the right message: a truncated or damaged gzip stream, or an OS error.
 * Returns CX_OK when the stream simply ended. The position is the uncompressed bytes zlib
 * delivered before the failure (at, when zlib cannot tell). */
static cx_status stream_status(gzFile gz, const char *path, uint64_t at, cx_err *err)
{
    int code = Z_OK;
    const char *msg = gzerror(gz, &code);
    if (code == Z_OK || code == Z_STREAM_END)
        return CX_OK;
    z_off_t pos = gztell(gz);
    if (pos >= 0)
        at = (uint64_t)pos;
    /* zlib prefixes the name it was opened with ("<fd:3>: "); the caller's path replaces it.
     * zlib's own messages hold no ": ". */
    for (const char *p = msg ? strstr(msg, ": ") : NULL; p; p = strstr(p + 2, ": "))
        msg = p + 2;
    if (code == Z_BUF_ERROR)
        return cx_fail(err, CX_EDATA, "%s: byte %llu: truncated gzip stream (the file ends early)",
                       path, (unsigned long long)at);
    if (code == Z_ERRNO)
        return cx_fail_errno(err, CX_EIO, errno, "%s: byte %llu: read error", path,
                             (unsigned long long)at);
    if (code == Z_MEM_ERROR)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    return cx_fail(err, CX_EDATA, "%s: byte %llu: damaged gzip data (%s)", path,
                   (unsigned long long)at, msg && *msg ? msg : "zlib error");
}

/* gzread of up to n bytes into dst (n may exceed INT_MAX); *got is what arrived. */
static cx_status raw_read(cx_gzfile *f, void *dst, size_t n, size_t *got, cx_err *err)
{
    size_t total = 0;
    while (total < n && !f->at_eof) {
        size_t want = n - total;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread((gzFile)f->gz, (char *)dst + total, (unsigned)want);
        uint64_t at = f->offset + (f->buf_len - f->buf_pos) + total;
        if (r < 0) {
            cx_status st = stream_status((gzFile)f->gz, f->path, at, err);
            return st ? st
                      : cx_fail(err, CX_EDATA, "%s: byte %llu: read error", f->path,
                                (unsigned long long)at);
        }
        if (r == 0) {
            cx_status st = stream_status((gzFile)f->gz, f->path, at, err);
            if (st)
                return st;
            f->at_eof = 1;
            break;
        }
        total += (size_t)r;
    }
    *got = total;
    return CX_OK;
}

/* Make at least n bytes (n <= CX_GZ_BUF) available in the buffer, or all that remain. */
static cx_status fill(cx_gzfile *f, size_t n, cx_err *err)
{
    size_t have = f->buf_len - f->buf_pos;
    if (have >= n || f->at_eof)
        return CX_OK;
    if (f->buf_pos > 0) {
        memmove(f->buf, f->buf + f->buf_pos, have);
        f->buf_pos = 0;
        f->buf_len = have;
    }
    while (f->buf_len < n && !f->at_eof) {
        size_t got;
        cx_status st = raw_read(f, f->buf + f->buf_len, CX_GZ_BUF - f->buf_len, &got, err);
        if (st)
            return st;
        f->buf_len += got;
    }
    return CX_OK;
}

cx_status cx_gzfile_peek(cx_gzfile *f, void *dst, size_t n, size_t *got, cx_err *err)
{
    if (n > CX_GZ_BUF)
        n = CX_GZ_BUF;
    cx_status st = fill(f, n, err);
    if (st)
        return st;
    size_t have = f->buf_len - f->buf_pos;
    *got = have < n ? have : n;
    memcpy(dst, f->buf + f->buf_pos, *got);
    return CX_OK;
}

static cx_status ends_early(cx_gzfile *f, uint64_t missing, const char *what, cx_err *err)
{
    return cx_fail(err, CX_EDATA, "%s: byte %llu: file ends early: %s needs %llu more bytes",
                   f->path, (unsigned long long)f->offset, what ? what : "the data",
                   (unsigned long long)missing);
}

cx_status cx_gzfile_read(cx_gzfile *f, void *dst, size_t n, const char *what, cx_err *err)
{
    unsigned char *out = dst;
    size_t have = f->buf_len - f->buf_pos;
    size_t take = have < n ? have : n;
    if (take) {
        memcpy(out, f->buf + f->buf_pos, take);
        f->buf_pos += take;
        f->offset += take;
    }
    size_t left = n - take;
    if (!left)
        return CX_OK;
    if (left >= CX_GZ_BUF) {
        /* Large reads go straight into the destination: no second copy of the data. */
        size_t got;
        cx_status st = raw_read(f, out + take, left, &got, err);
        if (st)
            return st;
        f->offset += got;
        if (got < left)
            return ends_early(f, left - got, what, err);
        return CX_OK;
    }
    cx_status st = fill(f, left, err);
    if (st)
        return st;
    have = f->buf_len - f->buf_pos;
    if (have < left) {
        f->offset += have;
        f->buf_pos = f->buf_len;
        return ends_early(f, left - have, what, err);
    }
    memcpy(out + take, f->buf + f->buf_pos, left);
    f->buf_pos += left;
    f->offset += left;
    return CX_OK;
}

cx_status cx_gzfile_skip(cx_gzfile *f, uint64_t n, const char *what, cx_err *err)
{
    while (n > 0) {
        cx_status st = fill(f, 1, err);
        if (st)
            return st;
        size_t have = f->buf_len - f->buf_pos;
        if (!have)
            return ends_early(f, n, what, err);
        size_t take = have < n ? have : (size_t)n;
        f->buf_pos += take;
        f->offset += take;
        n -= take;
    }
    return CX_OK;
}

/* Uncompressed size of a gzip file by decompressing it once, without keeping the data. */
static cx_status measure(const char *path, uint64_t *size, cx_err *err)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return cx_fail_errno(err, CX_EIO, errno, "%s", path);
    enum { CHUNK = 1 << 16 };
    char *tmp = malloc(CHUNK);
    if (!tmp) {
        gzclose_r(gz);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    }
    uint64_t total = 0;
    cx_status st = CX_OK;
    for (;;) {
        int r = gzread(gz, tmp, CHUNK);
        if (r > 0) {
            total += (uint64_t)r;
            continue;
        }
        st = stream_status(gz, path, total, err);
        if (!st && r < 0)
            st = cx_fail(err, CX_EDATA, "%s: byte %llu: read error", path,
                         (unsigned long long)total);
        break;
    }
    free(tmp);
    gzclose_r(gz);
    *size = total;
    return st;
}

cx_status cx_gzfile_require(cx_gzfile *f, uint64_t need, uint64_t at, const char *what, cx_err *err)
{
    uint64_t avail;
    if (!f->compressed) {
        if (f->file_size == UINT64_MAX)
            return CX_OK; /* a pipe: reading will tell */
        avail = f->file_size > f->offset ? f->file_size - f->offset : 0;
    } else {
        uint64_t total = f->offset + need;
        if (total >= f->offset && (uint32_t)total == f->gz_isize)
            return CX_OK;
        uint64_t size = 0;
        cx_status st = measure(f->path, &size, err);
        if (st)
            return st;
        avail = size > f->offset ? size - f->offset : 0;
    }
    if (need > avail)
        return cx_fail(err, CX_EDATA,
                       "%s: byte %llu: header claims %s (%llu bytes), the file holds %llu", f->path,
                       (unsigned long long)at, what, (unsigned long long)need,
                       (unsigned long long)avail);
    return CX_OK;
}

cx_status cx_gzfile_expect_end(cx_gzfile *f, cx_err *err)
{
    cx_status st = fill(f, 1, err);
    if (st)
        return st;
    size_t have = f->buf_len - f->buf_pos;
    if (have) {
        /* Count what follows (bounded) so the message says how much is extra. */
        uint64_t extra = 0;
        while (have && extra < ((uint64_t)1 << 40)) {
            extra += have;
            f->buf_pos = f->buf_len;
            st = fill(f, 1, err);
            if (st)
                return st;
            have = f->buf_len - f->buf_pos;
        }
        return cx_fail(err, CX_EDATA, "%s: byte %llu: %llu unexpected bytes after the data",
                       f->path, (unsigned long long)f->offset, (unsigned long long)extra);
    }
    return CX_OK;
}

cx_status cx_gzfile_getline(cx_gzfile *f, char **line, size_t *len, int *got, cx_err *err)
{
    size_t n = 0;
    int any = 0;
    *got = 0;
    for (;;) {
        cx_status st = fill(f, 1, err);
        if (st)
            return st;
        size_t have = f->buf_len - f->buf_pos;
        if (!have)
            break;
        any = 1;
        unsigned char *start = f->buf + f->buf_pos;
        unsigned char *nl = memchr(start, '\n', have);
        size_t take = nl ? (size_t)(nl - start) : have;
        if (n + take > CX_GZ_MAX_LINE)
            return cx_fail(err, CX_EDATA, "%s: line %ld: longer than %d bytes", f->path,
                           f->line_no + 1, CX_GZ_MAX_LINE);
        if (n + take + 1 > f->line_cap) {
            size_t cap = f->line_cap ? f->line_cap : 256;
            while (cap < n + take + 1)
                cap *= 2;
            char *p = realloc(f->line, cap);
            if (!p)
                return cx_fail(err, CX_ENOMEM, "%s: out of memory", f->path);
            f->line = p;
            f->line_cap = cap;
        }
        memcpy(f->line + n, start, take);
        n += take;
        f->buf_pos += take + (nl ? 1 : 0);
        f->offset += take + (nl ? 1 : 0);
        if (nl)
            break;
    }
    if (!any)
        return CX_OK;
    if (n > 0 && f->line[n - 1] == '\r')
        n--;
    f->line[n] = '\0';
    f->line_no++;
    *line = f->line;
    *len = n;
    *got = 1;
    return CX_OK;
}
