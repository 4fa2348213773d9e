/* IDX headers: the MNIST family's big-endian format. */
#include "lib/data/idx.h"

static const char *idx_type_name(int t)
{
    switch (t) {
    case 0x09:
        return "signed bytes";
    case 0x0B:
        return "16-bit integers";
    case 0x0C:
        return "32-bit integers";
    case 0x0D:
        return "32-bit floats";
    case 0x0E:
        return "64-bit floats";
    default:
        return NULL;
    }
}

cx_status cx_idx_read_header(cx_gzfile *f, cx_idx_header *h, cx_err *err)
{
    unsigned char m[4];
    cx_status st = cx_gzfile_read(f, m, 4, "the IDX magic", err);
    if (st)
        return st;
    if (m[0] != 0 || m[1] != 0 || (m[2] != 0x08 && !idx_type_name(m[2])))
        return cx_fail(err, CX_EDATA,
                       "%s: byte 0: wrong IDX magic 0x%02x%02x%02x%02x (not an IDX file)", f->path,
                       m[0], m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return cx_fail(
            err, CX_EDATA,
            "%s: byte 2: IDX element type 0x%02x (%s) is not supported: only unsigned bytes (0x08)",
            f->path, m[2], idx_type_name(m[2]));
    if (m[3] < 1 || m[3] > CX_IDX_MAX_RANK)
        return cx_fail(err, CX_EDATA, "%s: byte 3: IDX rank %d is not supported (1 to %d)", f->path,
                       m[3], CX_IDX_MAX_RANK);
    h->rank = m[3];
    for (int i = 0; i < h->rank; i++) {
        unsigned char d[4];
        st = cx_gzfile_read(f, d, 4, "the IDX header", err);
        if (st)
            return st;
        h->dims[i] = (uint64_t)d[0] << 24 | (uint64_t)d[1] << 16 | (uint64_t)d[2] << 8 | d[3];
        if (h->dims[i] == 0)
            return cx_fail(err, CX_EDATA, "%s: byte %d: IDX dimension %d is zero", f->path,
                           4 + 4 * i, i);
    }
    return CX_OK;
}

size_t cx_idx_format_header(int rank, const uint32_t *dims, unsigned char *out)
{
    out[0] = 0;
    out[1] = 0;
    out[2] = 0x08;
    out[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        out[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        out[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        out[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        out[7 + 4 * i] = (unsigned char)dims[i];
    }
    return 4 + 4 * (size_t)rank;
}
