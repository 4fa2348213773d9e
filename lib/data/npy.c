/* NPY headers (a Python dict literal after a magic and a length) and the NPY writer. */
#include "lib/data/npy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

enum { NPY_MAX_HEADER = 1 << 20 };

const char *cx_npy_descr(cx_elem e)
{
    switch (e) {
    case CX_ELEM_U8:
        return "|u1";
    case CX_ELEM_I32:
        return "<i4";
    case CX_ELEM_I64:
        return "<i8";
    case CX_ELEM_F32:
        return "<f4";
    case CX_ELEM_F64:
        return "<f8";
    }
    return "?";
}

/* A tiny parser for the dict numpy writes: {'descr': '<f4', 'fortran_order': False, 'shape': (3,
 * 4), } */
typedef struct {
    const char *s;
    size_t n, pos;
    const char *path;
    uint64_t base; /* file offset of s[0] */
    cx_err *err;
} hparser;

static cx_status bad(hparser *p, const char *why)
{
    return cx_fail(p->err, CX_EDATA, "%s: byte %llu: malformed NPY header: %s", p->path,
                   (unsigned long long)(p->base + p->pos), why);
}

static void skip_ws(hparser *p)
{
    while (p->pos < p->n && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
                             p->s[p->pos] == '\r'))
        p->pos++;
}

static int peek_is(hparser *p, char c)
{
    return p->pos < p->n && p->s[p->pos] == c;
}

static cx_status expect_char(hparser *p, char c, const char *why)
{
    skip_ws(p);
    if (!peek_is(p, c))
        return bad(p, why);
    p->pos++;
    return CX_OK;
}

static cx_status parse_string(hparser *p, char *out, size_t cap)
{
    skip_ws(p);
    if (p->pos >= p->n || (p->s[p->pos] != '\'' && p->s[p->pos] != '"'))
        return bad(p, "expected a quoted string");
    char q = p->s[p->pos++];
    size_t len = 0;
    while (p->pos < p->n && p->s[p->pos] != q) {
        char c = p->s[p->pos];
        if (c == '\\' || c == '\n' || (unsigned char)c < 0x20)
            return bad(p, "unexpected character in a string");
        if (len + 1 >= cap)
            return bad(p, "string too long");
        out[len++] = c;
        p->pos++;
    }
    if (p->pos >= p->n)
        return bad(p, "unterminated string");
    p->pos++;
    out[len] = '\0';
    return CX_OK;
}

static cx_status parse_shape(hparser *p, cx_npy_header *h)
{
    cx_status st = expect_char(p, '(', "shape must be a tuple");
    if (st)
        return st;
    h->rank = 0;
    for (;;) {
        skip_ws(p);
        if (peek_is(p, ')')) {
            p->pos++;
            return CX_OK;
        }
        if (p->pos >= p->n || p->s[p->pos] < '0' || p->s[p->pos] > '9')
            return bad(p, "shape entries must be non-negative integers");
        uint64_t v = 0;
        while (p->pos < p->n && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
            unsigned d = (unsigned)(p->s[p->pos] - '0');
            if (v > (UINT64_MAX / 2 - d) / 10)
                return bad(p, "shape entry too large");
            v = v * 10 + d;
            p->pos++;
        }
        if (peek_is(p, 'L'))
            p->pos++;
        if (h->rank >= CX_ARRAY_MAX_RANK)
            return bad(p, "more than 8 dimensions");
        h->shape[h->rank++] = v;
        skip_ws(p);
        if (peek_is(p, ',')) {
            p->pos++;
            continue;
        }
        if (!peek_is(p, ')'))
            return bad(p, "expected ',' or ')' in the shape");
    }
}

static cx_status set_descr(hparser *p, size_t at, const char *d, cx_npy_header *h)
{
    static const struct {
        const char *name;
        cx_elem elem;
    } known[] = {{"|u1", CX_ELEM_U8},  {"<u1", CX_ELEM_U8},  {"=u1", CX_ELEM_U8},
                 {"u1", CX_ELEM_U8},   {"<i4", CX_ELEM_I32}, {"<i8", CX_ELEM_I64},
                 {"<f4", CX_ELEM_F32}, {"<f8", CX_ELEM_F64}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(d, known[i].name) == 0) {
            h->elem = known[i].elem;
            return CX_OK;
        }
    p->pos = at;
    if (d[0] == '>')
        return cx_fail(
            p->err, CX_EDATA,
            "%s: byte %llu: big-endian NPY dtype '%s' is not supported (save as little-endian)",
            p->path, (unsigned long long)(p->base + at), d);
    return cx_fail(
        p->err, CX_EDATA,
        "%s: byte %llu: unsupported NPY dtype '%s' (uint8, int32, int64, float32 or float64)",
        p->path, (unsigned long long)(p->base + at), d);
}

static cx_status parse_dict(hparser *p, cx_npy_header *h)
{
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    cx_status st = expect_char(p, '{', "expected '{'");
    if (st)
        return st;
    for (;;) {
        skip_ws(p);
        if (peek_is(p, '}')) {
            p->pos++;
            break;
        }
        char key[32];
        size_t key_at = p->pos;
        if ((st = parse_string(p, key, sizeof key)))
            return st;
        if ((st = expect_char(p, ':', "expected ':' after a key")))
            return st;
        skip_ws(p);
        size_t value_at = p->pos;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            char d[32];
            if (!peek_is(p, '\'') && !peek_is(p, '"'))
                return cx_fail(
                    p->err, CX_EDATA,
                    "%s: byte %llu: unsupported NPY dtype (structured arrays are not supported)",
                    p->path, (unsigned long long)(p->base + value_at));
            if ((st = parse_string(p, d, sizeof d)) || (st = set_descr(p, value_at, d, h)))
                return st;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            if (p->n - p->pos >= 4 && memcmp(p->s + p->pos, "True", 4) == 0) {
                h->fortran = 1;
                p->pos += 4;
            } else if (p->n - p->pos >= 5 && memcmp(p->s + p->pos, "False", 5) == 0) {
                h->fortran = 0;
                p->pos += 5;
            } else {
                return bad(p, "fortran_order must be True or False");
            }
            have_fortran = 1;
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            if ((st = parse_shape(p, h)))
                return st;
            have_shape = 1;
        } else {
            int dup =
                !strcmp(key, "descr") || !strcmp(key, "fortran_order") || !strcmp(key, "shape");
            return cx_fail(p->err, CX_EDATA, "%s: byte %llu: malformed NPY header: %s '%s'",
                           p->path, (unsigned long long)(p->base + key_at),
                           dup ? "duplicate key" : "unknown key", key);
        }
        skip_ws(p);
        if (peek_is(p, ',')) {
            p->pos++;
            continue;
        }
        if (peek_is(p, '}')) {
            p->pos++;
            break;
        }
        return bad(p, "expected ',' or '}'");
    }
    skip_ws(p);
    if (p->pos != p->n)
        return bad(p, "unexpected text after the dictionary");
    if (!have_descr || !have_fortran || !have_shape)
        return bad(p, !have_descr     ? "no 'descr' key"
                      : !have_fortran ? "no 'fortran_order' key"
                                      : "no 'shape' key");
    return CX_OK;
}

cx_status cx_npy_read_header(cx_gzfile *f, cx_npy_header *h, cx_err *err)
{
    memset(h, 0, sizeof *h);
    unsigned char pre[8];
    size_t got;
    cx_status st = cx_gzfile_peek(f, pre, 6, &got, err);
    if (st)
        return st;
    if (got < 6 || memcmp(pre, npy_magic, 6) != 0)
        return cx_fail(err, CX_EDATA, "%s: byte 0: wrong NPY magic (not an NPY file)", f->path);
    if ((st = cx_gzfile_read(f, pre, 8, "the NPY version", err)))
        return st;
    h->major = pre[6];
    h->minor = pre[7];
    if ((h->major != 1 && h->major != 2) || h->minor != 0)
        return cx_fail(err, CX_EDATA,
                       "%s: byte 6: NPY version %d.%d is not supported (1.0 and 2.0)", f->path,
                       h->major, h->minor);
    unsigned char l[4] = {0, 0, 0, 0};
    size_t lsize = h->major == 1 ? 2 : 4;
    if ((st = cx_gzfile_read(f, l, lsize, "the NPY header length", err)))
        return st;
    uint64_t hl =
        (uint64_t)l[0] | (uint64_t)l[1] << 8 | (uint64_t)l[2] << 16 | (uint64_t)l[3] << 24;
    if (hl > NPY_MAX_HEADER)
        return cx_fail(err, CX_EDATA, "%s: byte 8: NPY header length %llu is implausible", f->path,
                       (unsigned long long)hl);
    if ((st = cx_gzfile_require(f, hl, 8, "an NPY header", err)))
        return st;
    char *text = malloc(hl + 1);
    if (!text)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", f->path);
    uint64_t base = f->offset;
    if ((st = cx_gzfile_read(f, text, hl, "the NPY header", err))) {
        free(text);
        return st;
    }
    text[hl] = '\0';
    hparser p = {text, hl, 0, f->path, base, err};
    st = parse_dict(&p, h);
    free(text);
    if (st)
        return st;
    h->data_offset = base + hl;
    return CX_OK;
}

/* ---- writer ------------------------------------------------------------------------------ */

cx_status cx_npy_header_format(unsigned char *head, size_t *head_len, uint64_t *data_bytes,
                               const char *path, cx_elem elem, int rank, const uint64_t *shape,
                               cx_err *err)
{
    if (rank < 1 || rank > CX_ARRAY_MAX_RANK)
        return cx_fail(err, CX_EUSAGE, "%s: NPY rank %d out of range", path, rank);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     cx_npy_descr(elem));
    uint64_t total = cx_elem_size(elem);
    for (int i = 0; i < rank; i++) {
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%llu,%s", (unsigned long long)shape[i],
                      i + 1 < rank ? " " : "");
        if (shape[i] && total > UINT64_MAX / shape[i])
            return cx_fail(err, CX_EUSAGE, "%s: NPY array too large", path);
        total *= shape[i];
    }
    /* numpy writes "(3, 4)" and "(5,)": drop the comma after the last entry unless rank 1. */
    if (rank > 1)
        n--;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces and end with '\n' so magic + version + length + dict is a multiple of 64. */
    size_t pre = 10, hl = (size_t)n + 1;
    size_t padded = (pre + hl + 63) / 64 * 64 - pre;
    memcpy(head, npy_magic, 6);
    head[6] = 1;
    head[7] = 0;
    head[8] = (unsigned char)(padded & 0xff);
    head[9] = (unsigned char)(padded >> 8);
    memcpy(head + 10, dict, (size_t)n);
    memset(head + 10 + n, ' ', padded - (size_t)n - 1);
    head[10 + padded - 1] = '\n';
    *head_len = pre + padded;
    *data_bytes = total;
    return CX_OK;
}

cx_status cx_npy_writer_open(cx_npy_writer *w, const char *path, cx_elem elem, int rank,
                             const uint64_t *shape, cx_err *err)
{
    memset(w, 0, sizeof *w);
    w->af.fd = -1;
    unsigned char head[CX_NPY_HEADER_MAX];
    size_t head_len;
    uint64_t total;
    cx_status st = cx_npy_header_format(head, &head_len, &total, path, elem, rank, shape, err);
    if (st)
        return st;
    st = cx_afile_open(&w->af, path, err);
    if (st)
        return st;
    if (fwrite(head, 1, head_len, w->af.fp) != head_len) {
        int e = errno;
        cx_afile_abort(&w->af);
        return cx_fail_errno(err, CX_EIO, e, "%s: write failed", path);
    }
    w->expect = total;
    return CX_OK;
}

cx_status cx_npy_writer_write(cx_npy_writer *w, const void *data, size_t bytes, cx_err *err)
{
    if (bytes > w->expect - w->written)
        return cx_fail(err, CX_EIO, "%s: more data than the NPY header promises", w->af.path);
    if (bytes && fwrite(data, 1, bytes, w->af.fp) != bytes)
        return cx_fail_errno(err, CX_EIO, errno, "%s: write failed", w->af.path);
    w->written += bytes;
    return CX_OK;
}

cx_status cx_npy_writer_commit(cx_npy_writer *w, cx_err *err)
{
    if (w->written != w->expect) {
        cx_status st = cx_fail(err, CX_EIO, "%s: wrote %llu of the %llu data bytes", w->af.path,
                               (unsigned long long)w->written, (unsigned long long)w->expect);
        cx_afile_abort(&w->af);
        return st;
    }
    return cx_afile_commit(&w->af, err);
}

void cx_npy_writer_abort(cx_npy_writer *w)
{
    cx_afile_abort(&w->af);
}

cx_status cx_npy_write(const char *path, cx_elem elem, int rank, const uint64_t *shape,
                       const void *data, cx_err *err)
{
    cx_npy_writer w;
    cx_status st = cx_npy_writer_open(&w, path, elem, rank, shape, err);
    if (st)
        return st;
    if ((st = cx_npy_writer_write(&w, data, (size_t)w.expect, err))) {
        cx_npy_writer_abort(&w);
        return st;
    }
    return cx_npy_writer_commit(&w, err);
}
