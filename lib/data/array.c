/* One reader for IDX and NPY arrays: header, size check, records (all or a kept subset). */
#include "lib/data/array.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/path.h"
#include "lib/data/idx.h"
#include "lib/data/npy.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "clipx reads and writes little-endian data in place: build on a little-endian machine"
#endif

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

cx_array_format cx_array_sniff(const char *path, const unsigned char *head, size_t n)
{
    static const unsigned char npy_magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (n >= 6 && memcmp(head, npy_magic, 6) == 0)
        return CX_FORMAT_NPY;
    const char *base = cx_path_leaf(path);
    size_t len = strlen(base);
    if (ends_with(base, len, ".gz"))
        len -= 3;
    if (ends_with(base, len, ".npy"))
        return CX_FORMAT_NPY;
    if (ends_with(base, len, ".idx") || ends_with(base, len, "-ubyte") ||
        ends_with(base, len, ".idx1") || ends_with(base, len, ".idx3"))
        return CX_FORMAT_IDX;
    if (n >= 2 && head[0] == 0 && head[1] == 0)
        return CX_FORMAT_IDX;
    return (cx_array_format)-1;
}

cx_status cx_array_open(cx_array_file *a, const char *path, cx_array_format format, cx_err *err)
{
    memset(a, 0, sizeof *a);
    cx_status st = cx_gzfile_open(&a->f, path, err);
    if (st)
        return st;
    unsigned char head[8];
    size_t got;
    if ((st = cx_gzfile_peek(&a->f, head, sizeof head, &got, err)))
        return st;
    if (format == CX_FORMAT_ANY)
        format = cx_array_sniff(path, head, got);
    if (format != CX_FORMAT_IDX && format != CX_FORMAT_NPY)
        return cx_fail(err, CX_EDATA, "%s: byte 0: not an IDX or NPY file (unknown magic)", path);
    a->format = format;
    uint64_t claim_at;
    if (format == CX_FORMAT_IDX) {
        cx_idx_header h;
        if ((st = cx_idx_read_header(&a->f, &h, err)))
            return st;
        a->elem = CX_ELEM_U8;
        a->rank = h.rank;
        for (int i = 0; i < h.rank; i++)
            a->shape[i] = h.dims[i];
        claim_at = 4;
    } else {
        cx_npy_header h;
        if ((st = cx_npy_read_header(&a->f, &h, err)))
            return st;
        if (h.rank == 0)
            return cx_fail(err, CX_EDATA,
                           "%s: byte 10: NPY array is a scalar, not an array of records", path);
        if (h.fortran && h.rank >= 2)
            return cx_fail(
                err, CX_EDATA,
                "%s: byte 10: Fortran-order NPY arrays are not supported (save a C-order array, "
                "e.g. numpy.ascontiguousarray)",
                path);
        a->elem = h.elem;
        a->rank = h.rank;
        for (int i = 0; i < h.rank; i++) {
            a->shape[i] = h.shape[i];
            if (i > 0 && h.shape[i] == 0)
                return cx_fail(err, CX_EDATA, "%s: byte 10: NPY dimension %d is zero", path, i);
        }
        claim_at = 8;
    }
    a->records = a->shape[0];
    a->record_elems = 1;
    size_t es = cx_elem_size(a->elem);
    for (int i = 1; i < a->rank; i++) {
        if (a->record_elems > (UINT64_MAX / 4) / a->shape[i])
            return cx_fail(err, CX_EDATA, "%s: byte %llu: header claims an impossibly large array",
                           path, (unsigned long long)claim_at);
        a->record_elems *= a->shape[i];
    }
    a->record_bytes = a->record_elems * es;
    if (a->records && a->record_bytes > (UINT64_MAX / 4) / a->records)
        return cx_fail(err, CX_EDATA, "%s: byte %llu: header claims an impossibly large array",
                       path, (unsigned long long)claim_at);
    char what[160];
    snprintf(what, sizeof what, "%llu records of %llu %s", (unsigned long long)a->records,
             (unsigned long long)a->record_elems, cx_elem_name(a->elem));
    return cx_gzfile_require(&a->f, a->records * a->record_bytes, claim_at, what, err);
}

/* Convert n elements of type from (little-endian bytes at src) to type to at dst. */
static void convert(cx_elem from, const unsigned char *src, cx_elem to, void *dst, size_t n)
{
    if (from == to) {
        memcpy(dst, src, n * cx_elem_size(from));
        return;
    }
    if (to == CX_ELEM_F32) {
        float *o = dst;
        for (size_t i = 0; i < n; i++) {
            switch (from) {
            case CX_ELEM_U8:
                o[i] = (float)src[i];
                break;
            case CX_ELEM_I32: {
                int32_t v;
                memcpy(&v, src + 4 * i, 4);
                o[i] = (float)v;
                break;
            }
            case CX_ELEM_I64: {
                int64_t v;
                memcpy(&v, src + 8 * i, 8);
                o[i] = (float)v;
                break;
            }
            case CX_ELEM_F64: {
                double v;
                memcpy(&v, src + 8 * i, 8);
                o[i] = (float)v;
                break;
            }
            case CX_ELEM_F32:
                break;
            }
        }
        return;
    }
    /* to == CX_ELEM_I64 from an integer type */
    int64_t *o = dst;
    for (size_t i = 0; i < n; i++) {
        switch (from) {
        case CX_ELEM_U8:
            o[i] = src[i];
            break;
        case CX_ELEM_I32: {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            o[i] = v;
            break;
        }
        default:
            o[i] = 0;
            break;
        }
    }
}

static int convertible(cx_elem from, cx_elem to)
{
    if (from == to || to == CX_ELEM_F32)
        return 1;
    if (to == CX_ELEM_I64)
        return from == CX_ELEM_U8 || from == CX_ELEM_I32;
    return 0;
}

static cx_status array_read_raw(cx_array_file *a, const uint32_t *keep, size_t nkeep,
                                cx_elem out_elem, void *out, cx_err *err)
{
    if (!convertible(a->elem, out_elem))
        return cx_fail(err, CX_EDATA, "%s: %s data cannot be read as %s", a->f.path,
                       cx_elem_name(a->elem), cx_elem_name(out_elem));
    size_t n = keep ? nkeep : (size_t)a->records;
    size_t out_rec = (size_t)a->record_elems * cx_elem_size(out_elem);
    unsigned char *o = out;
    cx_status st = CX_OK;
    if (!keep && a->elem == out_elem && a->next_record == 0) {
        /* The common case: the whole array straight into place. */
        st = cx_gzfile_read(&a->f, o, (size_t)(a->records * a->record_bytes), "the records", err);
        if (st)
            return st;
        a->next_record = a->records;
        return cx_gzfile_expect_end(&a->f, err);
    }
    unsigned char *scratch = NULL;
    if (a->elem != out_elem) {
        /* One record at a time through scratch, converted into place. */
        scratch = malloc((size_t)a->record_bytes);
        if (!scratch)
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", a->f.path);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t r = keep ? keep[i] : (uint64_t)i;
        if (r < a->next_record || r >= a->records) {
            st = cx_fail(err, CX_EUSAGE,
                         "%s: kept record %llu is out of order or beyond the %llu records",
                         a->f.path, (unsigned long long)r, (unsigned long long)a->records);
            goto fail;
        }
        if (r > a->next_record &&
            (st =
                 cx_gzfile_skip(&a->f, (r - a->next_record) * a->record_bytes, "the records", err)))
            goto fail;
        unsigned char *dst = o + i * out_rec;
        if (scratch) {
            if ((st = cx_gzfile_read(&a->f, scratch, (size_t)a->record_bytes, "a record", err)))
                goto fail;
            convert(a->elem, scratch, out_elem, dst, (size_t)a->record_elems);
        } else if ((st = cx_gzfile_read(&a->f, dst, (size_t)a->record_bytes, "a record", err))) {
            goto fail;
        }
        a->next_record = r + 1;
    }
    if (a->next_record < a->records &&
        (st = cx_gzfile_skip(&a->f, (a->records - a->next_record) * a->record_bytes, "the records",
                             err)))
        goto fail;
    a->next_record = a->records;
    st = cx_gzfile_expect_end(&a->f, err);
fail:
    free(scratch);
    return st;
}

/* Float features must be finite: a NaN or infinity (or a float64 beyond float range) would
 * otherwise surface much later as a diverged loss with no file to blame. */
static cx_status check_finite(const cx_array_file *a, const float *x, const uint32_t *keep,
                              size_t n, cx_err *err)
{
    size_t per = (size_t)a->record_elems;
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * per;
        for (size_t j = 0; j < per; j++)
            if (!isfinite(row[j]))
                return cx_fail(err, CX_EDATA, "%s: record %llu, value %zu: %s (features must be "
                               "finite%s)", a->f.path,
                               (unsigned long long)(keep ? keep[i] : i), j,
                               isnan(row[j]) ? "NaN" : "infinite",
                               a->elem == CX_ELEM_F64 ? " and within float range" : "");
    }
    return CX_OK;
}

cx_status cx_array_read(cx_array_file *a, const uint32_t *keep, size_t nkeep, cx_elem out_elem,
                        void *out, cx_err *err)
{
    cx_status st = array_read_raw(a, keep, nkeep, out_elem, out, err);
    if (st || out_elem != CX_ELEM_F32)
        return st;
    return check_finite(a, out, keep, keep ? nkeep : (size_t)a->records, err);
}

void cx_array_close(cx_array_file *a)
{
    cx_gzfile_close(&a->f);
}
