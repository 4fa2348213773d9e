/* NPZ writer: NPY members in a stored (uncompressed) zip, the layout of numpy.savez. */
#include "lib/data/npz_write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lib/data/npy.h"

enum {
    ZIP_LOCAL_SIG = 0x04034b50,
    ZIP_CENTRAL_SIG = 0x02014b50,
    ZIP_END_SIG = 0x06054b50,
    ZIP_VERSION = 20,      /* 2.0: what a stored member needs */
    ZIP_DOS_DATE = 0x0021, /* 1980-01-01: a fixed date keeps equal inputs equal bytes */
    ZIP_NAME_MAX = 255,
    ZIP_MEMBERS_MAX = 65535
};

static void put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
}

static void put32(unsigned char *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static cx_status emit(cx_npz_writer *z, const void *data, size_t n, cx_err *err)
{
    if (n && fwrite(data, 1, n, z->af.fp) != n)
        return cx_fail_errno(err, CX_EIO, errno, "%s: write failed", z->af.path);
    z->pos += n;
    return CX_OK;
}

cx_status cx_npz_open(cx_npz_writer *z, const char *path, cx_err *err)
{
    memset(z, 0, sizeof *z);
    z->af.fd = -1;
    return cx_afile_open(&z->af, path, err);
}

cx_status cx_npz_add(cx_npz_writer *z, const char *key, cx_elem elem, int rank,
                     const uint64_t *shape, const void *data, cx_err *err)
{
    const char *path = z->af.path;
    unsigned char head[CX_NPY_HEADER_MAX], local[30];
    size_t head_len, klen = strlen(key), nlen = klen + 4;
    uint64_t bytes;
    cx_status st = CX_OK;
    if (klen == 0 || nlen > ZIP_NAME_MAX) {
        st = cx_fail(err, CX_EUSAGE, "%s: array name '%.40s' is empty or longer than %d bytes",
                     path, key, ZIP_NAME_MAX - 4);
        goto fail;
    }
    for (int i = 0; i < z->count; i++)
        if (strncmp(z->members[i].name, key, klen) == 0 && strcmp(z->members[i].name + klen, ".npy") == 0) {
            st = cx_fail(err, CX_EUSAGE, "%s: array '%s' added twice", path, key);
            goto fail;
        }
    if ((st = cx_npy_header_format(head, &head_len, &bytes, path, elem, rank, shape, err)))
        goto fail;
    uint64_t size = (uint64_t)head_len + bytes;
    if (z->count >= ZIP_MEMBERS_MAX || size > UINT32_MAX || z->pos + 30 + nlen + size > UINT32_MAX) {
        st = cx_fail(err, CX_EUSAGE, "%s: array '%s' would take the archive past 4 GiB or %d "
                     "arrays (zip without zip64)", path, key, ZIP_MEMBERS_MAX);
        goto fail;
    }
    if (z->count == z->cap) {
        int ncap = z->cap ? 2 * z->cap : 64;
        cx_npz_member *nm = realloc(z->members, sizeof *nm * (size_t)ncap);
        if (!nm) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        z->members = nm;
        z->cap = ncap;
    }
    cx_npz_member *m = &z->members[z->count];
    if (!(m->name = malloc(nlen + 1))) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(m->name, key, klen);
    memcpy(m->name + klen, ".npy", 5);
    z->count++;
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, head, (uInt)head_len);
    /* crc32 takes uInt lengths: feed the data in pieces below 1 GiB. */
    const unsigned char *d = data;
    for (uint64_t done = 0; done < bytes;) {
        uint64_t piece = bytes - done < (1u << 30) ? bytes - done : (1u << 30);
        crc = crc32(crc, d + done, (uInt)piece);
        done += piece;
    }
    m->crc = (uint32_t)crc;
    m->size = (uint32_t)size;
    m->offset = (uint32_t)z->pos;
    put32(local, ZIP_LOCAL_SIG);
    put16(local + 4, ZIP_VERSION);
    put16(local + 6, 0);                  /* flags */
    put16(local + 8, 0);                  /* method: stored */
    put16(local + 10, 0);                 /* time */
    put16(local + 12, ZIP_DOS_DATE);
    put32(local + 14, m->crc);
    put32(local + 18, m->size);           /* compressed size */
    put32(local + 22, m->size);
    put16(local + 26, (unsigned)nlen);
    put16(local + 28, 0);                 /* extra field */
    if ((st = emit(z, local, sizeof local, err)) || (st = emit(z, m->name, nlen, err)) ||
        (st = emit(z, head, head_len, err)) || (st = emit(z, data, (size_t)bytes, err)))
        goto fail;
    return CX_OK;
fail:
    cx_npz_abort(z);
    return st;
}

cx_status cx_npz_commit(cx_npz_writer *z, cx_err *err)
{
    cx_status st;
    uint64_t start = z->pos;
    for (int i = 0; i < z->count; i++) {
        const cx_npz_member *m = &z->members[i];
        unsigned char c[46];
        size_t nlen = strlen(m->name);
        put32(c, ZIP_CENTRAL_SIG);
        put16(c + 4, ZIP_VERSION);        /* made by: MS-DOS attributes, version 2.0 */
        put16(c + 6, ZIP_VERSION);
        put16(c + 8, 0);
        put16(c + 10, 0);
        put16(c + 12, 0);
        put16(c + 14, ZIP_DOS_DATE);
        put32(c + 16, m->crc);
        put32(c + 20, m->size);
        put32(c + 24, m->size);
        put16(c + 28, (unsigned)nlen);
        put16(c + 30, 0);                 /* extra */
        put16(c + 32, 0);                 /* comment */
        put16(c + 34, 0);                 /* disk */
        put16(c + 36, 0);                 /* internal attributes */
        put32(c + 38, 0);                 /* external attributes */
        put32(c + 42, m->offset);
        if ((st = emit(z, c, sizeof c, err)) || (st = emit(z, m->name, nlen, err)))
            goto fail;
    }
    if (z->pos > UINT32_MAX) {
        st = cx_fail(err, CX_EUSAGE, "%s: the archive's directory would pass 4 GiB", z->af.path);
        goto fail;
    }
    unsigned char e[22];
    put32(e, ZIP_END_SIG);
    put16(e + 4, 0);
    put16(e + 6, 0);
    put16(e + 8, (unsigned)z->count);
    put16(e + 10, (unsigned)z->count);
    put32(e + 12, (uint32_t)(z->pos - start));
    put32(e + 16, (uint32_t)start);
    put16(e + 20, 0);
    if ((st = emit(z, e, sizeof e, err)))
        goto fail;
    st = cx_afile_commit(&z->af, err);
    cx_npz_abort(z); /* frees the member list; the file is already in place or gone */
    return st;
fail:
    cx_npz_abort(z);
    return st;
}

void cx_npz_abort(cx_npz_writer *z)
{
    cx_afile_abort(&z->af);
    for (int i = 0; i < z->count; i++)
        free(z->members[i].name);
    free(z->members);
    z->members = NULL;
    z->count = z->cap = 0;
}
