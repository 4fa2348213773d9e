/* Checkpoint container: writing, reading with validation, typed lookups. */
#include "lib/run/ckpt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "lib/base/afile.h"

static const char magic[8] = {'C', 'L', 'I', 'P', 'X', 'C', 'K', 'P'};

void cx_ckpt_init(cx_ckpt *c)
{
    memset(c, 0, sizeof *c);
}

void cx_ckpt_free(cx_ckpt *c)
{
    for (int i = 0; i < c->count; i++) {
        free(c->entries[i].name);
        if (c->entries[i].owned)
            free(c->entries[i].data);
    }
    free(c->entries);
    cx_ckpt_init(c);
}

static size_t dtype_size(cx_ckpt_dtype d)
{
    switch (d) {
    case CX_CKPT_F32:
    case CX_CKPT_I32:
        return 4;
    case CX_CKPT_I64:
        return 8;
    case CX_CKPT_U8:
        return 1;
    }
    return 0;
}

/* A new entry named name at the end of c, in *out. */
static cx_status push(cx_ckpt *c, const char *name, cx_ckpt_entry **out, cx_err *err)
{
    if (strlen(name) > 0xffff || !name[0])
        return cx_fail(err, CX_EUSAGE, "checkpoint entry name '%.40s' is empty or too long", name);
    if (cx_ckpt_find(c, name))
        return cx_fail(err, CX_EUSAGE, "checkpoint entry '%s' added twice", name);
    if (c->count == c->cap) {
        int ncap = c->cap ? 2 * c->cap : 32;
        cx_ckpt_entry *ne = realloc(c->entries, sizeof *ne * (size_t)ncap);
        if (!ne)
            return cx_fail(err, CX_ENOMEM, "checkpoint: out of memory");
        c->entries = ne;
        c->cap = ncap;
    }
    cx_ckpt_entry *e = &c->entries[c->count];
    memset(e, 0, sizeof *e);
    size_t n = strlen(name) + 1;
    e->name = malloc(n);
    if (!e->name)
        return cx_fail(err, CX_ENOMEM, "checkpoint: out of memory");
    memcpy(e->name, name, n);
    c->count++;
    *out = e;
    return CX_OK;
}

cx_status cx_ckpt_add(cx_ckpt *c, const char *name, cx_ckpt_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, cx_err *err)
{
    if (ndim < 0 || ndim > CX_CKPT_MAX_DIMS || !dtype_size(dtype))
        return cx_fail(err, CX_EUSAGE, "checkpoint entry '%s': bad rank or type", name);
    cx_ckpt_entry *e = NULL;
    cx_status st = push(c, name, &e, err);
    if (st)
        return st;
    e->dtype = dtype;
    e->ndim = ndim;
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        e->shape[d] = shape[d];
        count *= (size_t)shape[d];
    }
    e->nbytes = count * dtype_size(dtype);
    e->data = (void *)data;
    e->owned = 0;
    return CX_OK;
}

static cx_status add_copy(cx_ckpt *c, const char *name, cx_ckpt_dtype dtype, int64_t len,
                          const void *bytes, cx_err *err)
{
    void *copy = malloc(len ? (size_t)len : 1);
    if (!copy)
        return cx_fail(err, CX_ENOMEM, "checkpoint: out of memory");
    memcpy(copy, bytes, (size_t)len);
    int64_t shape[1] = {dtype == CX_CKPT_U8 ? len : len / (int64_t)dtype_size(dtype)};
    cx_status st = cx_ckpt_add(c, name, dtype, 1, shape, copy, err);
    if (st) {
        free(copy);
        return st;
    }
    c->entries[c->count - 1].owned = 1;
    return CX_OK;
}

cx_status cx_ckpt_add_i64(cx_ckpt *c, const char *name, int64_t v, cx_err *err)
{
    return add_copy(c, name, CX_CKPT_I64, 8, &v, err);
}

cx_status cx_ckpt_add_f64(cx_ckpt *c, const char *name, double v, cx_err *err)
{
    return add_copy(c, name, CX_CKPT_U8, 8, &v, err);
}

cx_status cx_ckpt_add_string(cx_ckpt *c, const char *name, const char *s, cx_err *err)
{
    return add_copy(c, name, CX_CKPT_U8, (int64_t)strlen(s), s, err);
}

/* Little-endian encoding into a stream that also feeds the running CRC. */
typedef struct {
    FILE *fp;
    uLong crc;
} crc_writer;

static void put(crc_writer *w, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        w->crc = crc32(w->crc, b, chunk);
        fwrite(b, 1, chunk, w->fp);
        b += chunk;
        n -= chunk;
    }
}

static void put_u(crc_writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(w, b, (size_t)bytes);
}

cx_status cx_ckpt_write(const cx_ckpt *c, const char *path, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    crc_writer w = {f.fp, crc32(0L, Z_NULL, 0)};
    put(&w, magic, sizeof magic);
    put_u(&w, CX_CKPT_VERSION, 4);
    put_u(&w, (uint64_t)c->count, 4);
    for (int i = 0; i < c->count; i++) {
        const cx_ckpt_entry *e = &c->entries[i];
        size_t nl = strlen(e->name);
        put_u(&w, nl, 2);
        put(&w, e->name, nl);
        put_u(&w, (uint64_t)e->dtype, 1);
        put_u(&w, (uint64_t)e->ndim, 1);
        for (int d = 0; d < e->ndim; d++)
            put_u(&w, (uint64_t)e->shape[d], 8);
        put_u(&w, e->nbytes, 8);
        /* Data is stored in host order, which clipx requires to be little-endian. */
        put(&w, e->data, e->nbytes);
    }
    uint32_t crc = (uint32_t)w.crc;
    put_u(&w, crc, 4);
    if (ferror(f.fp)) {
        int e = errno;
        cx_afile_abort(&f);
        return cx_fail_errno(err, CX_EIO, e, "%s: write failed", path);
    }
    return cx_afile_commit(&f, err);
}

/* Bounded reads from a whole-file buffer; errors name the byte offset. */
typedef struct {
    const unsigned char *buf;
    size_t size, pos;
    const char *path;
    cx_err *err;
} reader;

static cx_status need(reader *r, size_t n, const char *what)
{
    if (n > r->size - r->pos)
        return cx_fail(r->err, CX_EDATA, "%s: byte %zu: truncated %s (needs %zu bytes, %zu left)",
                       r->path, r->pos, what, n, r->size - r->pos);
    return CX_OK;
}

static uint64_t get_u(reader *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->buf[r->pos + (size_t)i] << (8 * i);
    r->pos += (size_t)bytes;
    return v;
}

static cx_status read_file(const char *path, unsigned char **buf, size_t *size, cx_err *err)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cx_fail_errno(err, errno == ENOENT ? CX_EDATA : CX_EIO, errno, "%s", path);
    /* fopen opens a folder too; its size and reads then fail in confusing ways. */
    struct stat sb;
    if (fstat(fileno(fp), &sb) == 0 && !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return cx_fail(err, CX_EDATA, "%s: not a regular file (a checkpoint is a file)", path);
    }
    if (fseek(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return cx_fail(err, CX_EIO, "%s: cannot seek", path);
    }
    long n = ftell(fp);
    rewind(fp);
    if (n < 0) {
        fclose(fp);
        return cx_fail(err, CX_EIO, "%s: cannot size", path);
    }
    *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!*buf) {
        fclose(fp);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for %ld bytes", path, n);
    }
    size_t got = fread(*buf, 1, (size_t)n, fp);
    int bad = ferror(fp);
    fclose(fp);
    if (bad || got != (size_t)n) {
        free(*buf);
        *buf = NULL;
        return cx_fail(err, CX_EIO, "%s: read error", path);
    }
    *size = (size_t)n;
    return CX_OK;
}

cx_status cx_ckpt_read(const char *path, cx_ckpt *c, cx_err *err)
{
    cx_ckpt_init(c);
    unsigned char *buf = NULL;
    size_t size = 0;
    cx_status st = read_file(path, &buf, &size, err);
    if (st)
        return st;
    reader r = {buf, size, 0, path, err};
    if (size < sizeof magic + 12 || memcmp(buf, magic, sizeof magic) != 0) {
        free(buf);
        return cx_fail(err, CX_EDATA, "%s: byte 0: not a clipx checkpoint (bad magic)", path);
    }
    uint32_t stored_crc = (uint32_t)buf[size - 4] | (uint32_t)buf[size - 3] << 8 |
                          (uint32_t)buf[size - 2] << 16 | (uint32_t)buf[size - 1] << 24;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t off = 0; off < size - 4;) {
        uInt chunk = size - 4 - off > (1u << 30) ? (1u << 30) : (uInt)(size - 4 - off);
        crc = crc32(crc, buf + off, chunk);
        off += chunk;
    }
    if ((uint32_t)crc != stored_crc) {
        free(buf);
        return cx_fail(err, CX_EDATA, "%s: byte %zu: checksum mismatch (file corrupt or truncated)",
                       path, size - 4);
    }
    r.size = size - 4;
    r.pos = sizeof magic;
    uint32_t version = (uint32_t)get_u(&r, 4);
    if (version != CX_CKPT_VERSION) {
        free(buf);
        return cx_fail(err, CX_EDATA, "%s: byte 8: checkpoint version %u, this clipx reads %d", path,
                       version, CX_CKPT_VERSION);
    }
    uint32_t count = (uint32_t)get_u(&r, 4);
    for (uint32_t i = 0; i < count && !st; i++) {
        size_t at = r.pos;
        if ((st = need(&r, 2, "entry name length")))
            break;
        size_t nl = (size_t)get_u(&r, 2);
        if ((st = need(&r, nl + 2, "entry header")))
            break;
        char name[0x10000];
        memcpy(name, r.buf + r.pos, nl);
        name[nl] = '\0';
        /* clipx names entries in printable ASCII; anything else would also garble messages */
        size_t bad = 0;
        while (bad < nl && name[bad] >= 0x20 && name[bad] < 0x7f)
            bad++;
        if (bad < nl) {
            st = cx_fail(err, CX_EDATA, "%s: byte %zu: entry name holds byte 0x%02x (names are "
                         "printable ASCII)", path, r.pos + bad, (unsigned char)name[bad]);
            break;
        }
        r.pos += nl;
        int dtype = (int)get_u(&r, 1), ndim = (int)get_u(&r, 1);
        if (!dtype_size((cx_ckpt_dtype)dtype) || dtype > CX_CKPT_I32 || ndim > CX_CKPT_MAX_DIMS || !nl) {
            st = cx_fail(err, CX_EDATA, "%s: byte %zu: entry '%s' has bad type %d or rank %d", path,
                         at, name, dtype, ndim);
            break;
        }
        if ((st = need(&r, 8 * (size_t)ndim + 8, "entry shape")))
            break;
        int64_t shape[CX_CKPT_MAX_DIMS];
        uint64_t elems = 1;
        int overflow = 0;
        for (int d = 0; d < ndim; d++) {
            uint64_t s = get_u(&r, 8);
            if (s > ((uint64_t)1 << 40) || (s && elems > UINT64_MAX / s))
                overflow = 1;
            else
                elems *= s;
            shape[d] = (int64_t)s;
        }
        uint64_t nbytes = get_u(&r, 8);
        if (overflow || elems > UINT64_MAX / dtype_size((cx_ckpt_dtype)dtype) ||
            elems * dtype_size((cx_ckpt_dtype)dtype) != nbytes) {
            st = cx_fail(err, CX_EDATA, "%s: byte %zu: entry '%s': shape disagrees with its %llu bytes",
                         path, at, name, (unsigned long long)nbytes);
            break;
        }
        if ((st = need(&r, (size_t)nbytes, "entry data")))
            break;
        void *data = malloc(nbytes ? (size_t)nbytes : 1);
        if (!data) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            break;
        }
        memcpy(data, r.buf + r.pos, (size_t)nbytes);
        r.pos += (size_t)nbytes;
        st = cx_ckpt_add(c, name, (cx_ckpt_dtype)dtype, ndim, shape, data, err);
        if (st) {
            free(data);
            if (st == CX_EUSAGE)
                st = cx_fail(err, CX_EDATA, "%s: byte %zu: duplicate entry '%s'", path, at, name);
            break;
        }
        c->entries[c->count - 1].owned = 1;
    }
    if (!st && r.pos != r.size)
        st = cx_fail(err, CX_EDATA, "%s: byte %zu: %zu unexpected trailing bytes", path, r.pos,
                     r.size - r.pos);
    free(buf);
    if (st)
        cx_ckpt_free(c);
    return st;
}

const cx_ckpt_entry *cx_ckpt_find(const cx_ckpt *c, const char *name)
{
    for (int i = 0; i < c->count; i++)
        if (strcmp(c->entries[i].name, name) == 0)
            return &c->entries[i];
    return NULL;
}

static const cx_ckpt_entry *typed(const cx_ckpt *c, const char *path, const char *name,
                                  cx_ckpt_dtype dtype, size_t nbytes, cx_err *err)
{
    const cx_ckpt_entry *e = cx_ckpt_find(c, name);
    if (!e) {
        cx_fail(err, CX_EDATA, "%s: no entry '%s'", path, name);
        return NULL;
    }
    if (e->dtype != dtype || (nbytes != (size_t)-1 && e->nbytes != nbytes)) {
        cx_fail(err, CX_EDATA, "%s: entry '%s' has another type or size (%zu bytes)", path, name,
                e->nbytes);
        return NULL;
    }
    return e;
}

cx_status cx_ckpt_get_i64(const cx_ckpt *c, const char *path, const char *name, int64_t *v,
                          cx_err *err)
{
    const cx_ckpt_entry *e = typed(c, path, name, CX_CKPT_I64, 8, err);
    if (!e)
        return CX_EDATA;
    memcpy(v, e->data, 8);
    return CX_OK;
}

cx_status cx_ckpt_get_f64(const cx_ckpt *c, const char *path, const char *name, double *v,
                          cx_err *err)
{
    const cx_ckpt_entry *e = typed(c, path, name, CX_CKPT_U8, 8, err);
    if (!e)
        return CX_EDATA;
    memcpy(v, e->data, 8);
    return CX_OK;
}

cx_status cx_ckpt_get_string(const cx_ckpt *c, const char *path, const char *name, char **s,
                             cx_err *err)
{
    const cx_ckpt_entry *e = typed(c, path, name, CX_CKPT_U8, (size_t)-1, err);
    if (!e)
        return CX_EDATA;
    if (memchr(e->data, '\0', e->nbytes))
        return cx_fail(err, CX_EDATA, "%s: entry '%s' is not a string", path, name);
    *s = malloc(e->nbytes + 1);
    if (!*s)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    memcpy(*s, e->data, e->nbytes);
    (*s)[e->nbytes] = '\0';
    return CX_OK;
}

cx_status cx_ckpt_get_f32(const cx_ckpt *c, const char *path, const char *name, float *out,
                          size_t count, cx_err *err)
{
    const cx_ckpt_entry *e = typed(c, path, name, CX_CKPT_F32, count * sizeof(float), err);
    if (!e)
        return CX_EDATA;
    memcpy(out, e->data, count * sizeof(float));
    return CX_OK;
}
