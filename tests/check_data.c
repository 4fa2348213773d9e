/* Data readers and writers on small hand-made and numpy-made fixtures: IDX, NPY, text parts, the dataset YAML, SUBSET and frequency files, and every bad-input case
 * of the data issue with the exact message it gives. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <zlib.h>

#include "data_util.h"

#include "lib/data/annotations.h"
#include "lib/data/array.h"
#include "lib/data/dataset.h"
#include "lib/data/groups.h"
#include "lib/data/idx.h"
#include "lib/data/npy.h"
#include "lib/data/npz_write.h"
#include "lib/data/subset.h"

/* A tiny IDX file: 3 images of 2x2, pixel (i, k) = 4 i + k; or labels. */
static size_t make_idx3(unsigned char *buf, uint32_t claimed, int images)
{
    uint32_t dims[3] = {claimed, 2, 2};
    size_t n = cx_idx_format_header(3, dims, buf);
    for (int i = 0; i < images * 4; i++)
        buf[n++] = (unsigned char)i;
    return n;
}

/* ---- IDX ----------------------------------------------------------------------------------------
 */

START_TEST(idx_fixture_all_and_kept_records)
{
    for (int k = 0; k < 2; k++) {
        cx_array_file a;
        cx_err err;
        const char *p = fixture(k ? "tiny-images-idx3-ubyte.gz" : "tiny-images-idx3-ubyte");
        ck_assert_int_eq(cx_array_open(&a, p, CX_FORMAT_ANY, &err), CX_OK);
        ck_assert_int_eq(a.format, CX_FORMAT_IDX);
        ck_assert_int_eq(a.rank, 3);
        ck_assert_uint_eq(a.shape[0], 6);
        ck_assert_uint_eq(a.shape[1], 4);
        ck_assert_uint_eq(a.shape[2], 3);
        ck_assert_uint_eq(a.record_elems, 12);
        uint8_t all[72];
        ck_assert_int_eq(cx_array_read(&a, NULL, 0, CX_ELEM_U8, all, &err), CX_OK);
        for (int i = 0; i < 6; i++)
            for (int r = 0; r < 4; r++)
                for (int c = 0; c < 3; c++)
                    ck_assert_uint_eq(all[i * 12 + r * 3 + c], 10 * i + 3 * r + c);
        cx_array_close(&a);
        ck_assert_int_eq(cx_array_open(&a, p, CX_FORMAT_ANY, &err), CX_OK);
        uint32_t keep[2] = {1, 4};
        float some[24];
        ck_assert_int_eq(cx_array_read(&a, keep, 2, CX_ELEM_F32, some, &err), CX_OK);
        ck_assert_float_eq(some[0], 10.0f);
        ck_assert_float_eq(some[12 + 11], 40.0f + 11.0f);
        cx_array_close(&a);
    }
}
END_TEST

START_TEST(idx_bad_magic_type_and_rank)
{
    cx_array_file a;
    cx_err err;
    char want[600];
    unsigned char bad_magic[8] = {0x00, 0x01, 0x08, 0x03, 0, 0, 0, 1};
    write_bytes(tmp("bad-idx3-ubyte"), bad_magic, 8);
    snprintf(want, sizeof want, "%s: byte 0: wrong IDX magic 0x00010803 (not an IDX file)",
             tmp("bad-idx3-ubyte"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("bad-idx3-ubyte"), CX_FORMAT_ANY, &err), err, CX_EDATA,
                       want);
    cx_array_close(&a);

    unsigned char floats[8] = {0x00, 0x00, 0x0D, 0x01, 0, 0, 0, 1};
    write_bytes(tmp("f.idx"), floats, 8);
    snprintf(want, sizeof want,
             "%s: byte 2: IDX element type 0x0d (32-bit floats) is not supported: only unsigned "
             "bytes (0x08)",
             tmp("f.idx"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("f.idx"), CX_FORMAT_ANY, &err), err, CX_EDATA, want);
    cx_array_close(&a);

    unsigned char rank5[4] = {0x00, 0x00, 0x08, 0x05};
    write_bytes(tmp("r5.idx"), rank5, 4);
    snprintf(want, sizeof want, "%s: byte 3: IDX rank 5 is not supported (1 to 4)", tmp("r5.idx"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("r5.idx"), CX_FORMAT_ANY, &err), err, CX_EDATA, want);
    cx_array_close(&a);

    /* Images given where labels are expected: a wrong rank. */
    int32_t *y;
    size_t n;
    snprintf(want, sizeof want, "%s: byte 3: IDX rank 3 where labels need rank 1 (idx1)",
             fixture("tiny-images-idx3-ubyte.gz"));
    ck_assert_fail_msg(cx_labels_read(fixture("tiny-images-idx3-ubyte.gz"), 3, "C", &y, &n, &err),
                       err, CX_EDATA, want);
    ck_assert_ptr_null(y);
}
END_TEST

START_TEST(idx_header_claiming_more_than_the_file_is_refused)
{
    unsigned char buf[64];
    size_t n = make_idx3(buf, 4, 3); /* claims 4 images, holds 3 */
    write_bytes(tmp("short-idx3-ubyte"), buf, n);
    write_gz(tmp("short-idx3-ubyte.gz"), buf, n);
    /* Claims 4 billion images: refused before any allocation. */
    unsigned char huge[16 + 4];
    uint32_t dims[3] = {4000000000u, 28, 28};
    size_t hn = cx_idx_format_header(3, dims, huge);
    write_gz(tmp("huge-idx3-ubyte.gz"), huge, hn + 4);
    cx_array_file a;
    cx_err err;
    char want[600];
    snprintf(want, sizeof want,
             "%s: byte 4: header claims 4 records of 4 uint8 (16 bytes), the file holds 12",
             tmp("short-idx3-ubyte"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("short-idx3-ubyte"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, want);
    cx_array_close(&a);
    snprintf(want, sizeof want,
             "%s: byte 4: header claims 4 records of 4 uint8 (16 bytes), the file holds 12",
             tmp("short-idx3-ubyte.gz"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("short-idx3-ubyte.gz"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, want);
    cx_array_close(&a);
    ck_assert_fail_has(cx_array_open(&a, tmp("huge-idx3-ubyte.gz"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, "byte 4: header claims 4000000000 records of 784 uint8",
                       "the file holds 4");
    cx_array_close(&a);
}
END_TEST

START_TEST(idx_trailing_bytes_and_truncated_gzip)
{
    unsigned char buf[64];
    size_t n = make_idx3(buf, 3, 3);
    buf[n++] = 99;
    write_bytes(tmp("extra.idx"), buf, n);
    cx_array_file a;
    cx_err err;
    uint8_t out[12];
    ck_assert_int_eq(cx_array_open(&a, tmp("extra.idx"), CX_FORMAT_ANY, &err), CX_OK);
    char want[600];
    snprintf(want, sizeof want, "%s: byte 28: 1 unexpected bytes after the data", tmp("extra.idx"));
    ck_assert_fail_msg(cx_array_read(&a, NULL, 0, CX_ELEM_U8, out, &err), err, CX_EDATA, want);
    cx_array_close(&a);

    size_t zn;
    unsigned char *z = read_all(fixture("tiny-images-idx3-ubyte.gz"), &zn);
    write_bytes(tmp("cut-idx3-ubyte.gz"), z, zn - 12);
    ck_assert_fail_has(cx_array_open(&a, tmp("cut-idx3-ubyte.gz"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, tmp("cut-idx3-ubyte.gz"), "truncated gzip stream");
    cx_array_close(&a);
    free(z);
}
END_TEST

/* ---- NPY ----------------------------------------------------------------------------------------
 */

START_TEST(npy_numpy_fixtures_read_with_conversions)
{
    cx_array_file a;
    cx_err err;
    const char *u8s[] = {"u8-images.npy", "u8-images.npy.gz"};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(cx_array_open(&a, fixture(u8s[k]), CX_FORMAT_ANY, &err), CX_OK);
        ck_assert_int_eq(a.format, CX_FORMAT_NPY);
        ck_assert_int_eq(a.elem, CX_ELEM_U8);
        ck_assert_int_eq(a.rank, 3);
        uint8_t x[72];
        ck_assert_int_eq(cx_array_read(&a, NULL, 0, CX_ELEM_U8, x, &err), CX_OK);
        ck_assert_uint_eq(x[5 * 12 + 3 * 3 + 2], 50 + 9 + 2);
        cx_array_close(&a);
    }
    const char *floats[] = {"f32-features.npy", "f64-features-v2.npy"};
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(cx_array_open(&a, fixture(floats[k]), CX_FORMAT_ANY, &err), CX_OK);
        ck_assert_int_eq(a.elem, k ? CX_ELEM_F64 : CX_ELEM_F32);
        ck_assert_uint_eq(a.records, 6);
        ck_assert_uint_eq(a.record_elems, 5);
        float x[30];
        ck_assert_int_eq(cx_array_read(&a, NULL, 0, CX_ELEM_F32, x, &err), CX_OK);
        for (int i = 0; i < 30; i++)
            ck_assert_float_eq(x[i], (float)i / 4.0f - 2.0f);
        cx_array_close(&a);
    }
    const char *labels[] = {"i32-labels.npy", "i64-labels.npy", "u8-labels.npy",
                            "tiny-labels-idx1-ubyte.gz", "tiny-labels.txt"};
    for (int k = 0; k < 5; k++) {
        int32_t *y;
        size_t n;
        ck_assert_int_eq(cx_labels_read(fixture(labels[k]), 3, "C", &y, &n, &err), CX_OK);
        ck_assert_uint_eq(n, 6);
        for (int i = 0; i < 6; i++)
            ck_assert_int_eq(y[i], i % 3);
        free(y);
    }
}
END_TEST

START_TEST(npy_unsupported_dtypes_and_fortran_order)
{
    cx_array_file a;
    cx_err err;
    char want[600];
    snprintf(want, sizeof want,
             "%s: byte 10: Fortran-order NPY arrays are not supported (save a C-order array, e.g. "
             "numpy.ascontiguousarray)",
             fixture("fortran-features.npy"));
    ck_assert_fail_msg(cx_array_open(&a, fixture("fortran-features.npy"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, want);
    cx_array_close(&a);
    snprintf(want, sizeof want,
             "%s: byte 20: big-endian NPY dtype '>f4' is not supported (save as little-endian)",
             fixture("bigendian-features.npy"));
    ck_assert_fail_msg(cx_array_open(&a, fixture("bigendian-features.npy"), CX_FORMAT_ANY, &err),
                       err, CX_EDATA, want);
    cx_array_close(&a);
    snprintf(want, sizeof want,
             "%s: byte 20: unsupported NPY dtype '<c8' (uint8, int32, int64, float32 or float64)",
             fixture("complex-features.npy"));
    ck_assert_fail_msg(cx_array_open(&a, fixture("complex-features.npy"), CX_FORMAT_ANY, &err), err,
                       CX_EDATA, want);
    cx_array_close(&a);
    int32_t *y;
    size_t n;
    ck_assert_fail_has(cx_labels_read(fixture("bool-labels.npy"), 3, "C", &y, &n, &err), err,
                       CX_EDATA, "byte 20: unsupported NPY dtype '|b1'");
    snprintf(want, sizeof want, "%s: byte 10: NPY labels must be integers, not float32",
             fixture("f32-labels.npy"));
    ck_assert_fail_msg(cx_labels_read(fixture("f32-labels.npy"), 3, "C", &y, &n, &err), err,
                       CX_EDATA, want);
}
END_TEST

/* Bytes of an NPY v1 file with the given dict text (padded as numpy does) and data. */
static size_t make_npy(unsigned char *buf, int major, const char *dict, const void *data, size_t n)
{
    size_t dl = strlen(dict), pre = major == 1 ? 10 : 12;
    size_t hl = (pre + dl + 1 + 63) / 64 * 64 - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xff);
    buf[9] = (unsigned char)(hl >> 8);
    if (major != 1)
        buf[10] = buf[11] = 0;
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hl - dl - 1);
    buf[pre + hl - 1] = '\n';
    memcpy(buf + pre + hl, data, n);
    return pre + hl + n;
}

START_TEST(npy_bad_headers)
{
    unsigned char buf[512];
    float data[4] = {1, 2, 3, 4};
    cx_array_file a;
    cx_err err;
    char want[600];
    struct {
        const char *name, *dict;
        int major;
        const char *msg;
    } cases[] = {
        {"v3.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 3,
         "byte 6: NPY version 3.0 is not supported (1.0 and 2.0)"},
        {"unknown.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'foo': 1}", 1,
         "byte 66: malformed NPY header: unknown key 'foo'"},
        {"noshape.npy", "{'descr': '<f4', 'fortran_order': False}", 1,
         "byte 64: malformed NPY header: no 'shape' key"},
        {"badshape.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, x), }", 1,
         "byte 64: malformed NPY header: shape entries must be non-negative integers"},
        {"more.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", 1,
         "byte 8: header claims 5 records of 1 float32 (20 bytes), the file holds 16"},
        {"struct.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 1,
         "byte 20: unsupported NPY dtype (structured arrays are not supported)"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t n = make_npy(buf, cases[k].major, cases[k].dict, data, sizeof data);
        write_bytes(tmp(cases[k].name), buf, n);
        snprintf(want, sizeof want, "%s: %s", tmp(cases[k].name), cases[k].msg);
        ck_assert_fail_msg(cx_array_open(&a, tmp(cases[k].name), CX_FORMAT_ANY, &err), err,
                           CX_EDATA, want);
        cx_array_close(&a);
    }
    /* Named .npy but not one. */
    write_text(tmp("text.npy"), "0\n1\n");
    snprintf(want, sizeof want, "%s: byte 0: wrong NPY magic (not an NPY file)", tmp("text.npy"));
    ck_assert_fail_msg(cx_array_open(&a, tmp("text.npy"), CX_FORMAT_ANY, &err), err, CX_EDATA,
                       want);
    cx_array_close(&a);
}
END_TEST

START_TEST(npy_writer_round_trip_and_header_layout)
{
    float x[12];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.5f - 1.0f;
    uint64_t shape[2] = {3, 4};
    cx_err err;
    ck_assert_int_eq(cx_npy_write(tmp("x.npy"), CX_ELEM_F32, 2, shape, x, &err), CX_OK);
    size_t n;
    unsigned char *raw = read_all(tmp("x.npy"), &n);
    size_t hl = raw[8] | (size_t)raw[9] << 8;
    ck_assert_uint_eq((10 + hl) % 64, 0);
    ck_assert_uint_eq(n, 10 + hl + sizeof x);
    ck_assert_int_eq(raw[10 + hl - 1], '\n');
    const char *h34 = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } ";
    ck_assert_int_eq(memcmp(raw + 10, h34, strlen(h34)), 0);
    free(raw);
    cx_array_file a;
    ck_assert_int_eq(cx_array_open(&a, tmp("x.npy"), CX_FORMAT_ANY, &err), CX_OK);
    float y[12];
    ck_assert_int_eq(cx_array_read(&a, NULL, 0, CX_ELEM_F32, y, &err), CX_OK);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
    cx_array_close(&a);

    int32_t lab[5] = {4, 3, 2, 1, 0};
    uint64_t s1[1] = {5};
    ck_assert_int_eq(cx_npy_write(tmp("l.npy"), CX_ELEM_I32, 1, s1, lab, &err), CX_OK);
    raw = read_all(tmp("l.npy"), &n);
    const char *h5 = "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), } ";
    ck_assert_int_eq(memcmp(raw + 10, h5, strlen(h5)), 0);
    free(raw);
    int32_t *got;
    size_t m;
    ck_assert_int_eq(cx_labels_read(tmp("l.npy"), 5, "C", &got, &m, &err), CX_OK);
    ck_assert_uint_eq(m, 5);
    ck_assert_int_eq(memcmp(got, lab, sizeof lab), 0);
    free(got);

    /* Fewer bytes than the header promises: no file appears. */
    cx_npy_writer w;
    ck_assert_int_eq(cx_npy_writer_open(&w, tmp("short.npy"), CX_ELEM_F32, 2, shape, &err), CX_OK);
    ck_assert_int_eq(cx_npy_writer_write(&w, x, 11 * sizeof(float), &err), CX_OK);
    ck_assert_fail_has(cx_npy_writer_commit(&w, &err), err, CX_EIO,
                       "wrote 44 of the 48 data bytes");
    ck_assert(!file_exists(tmp("short.npy")));
}
END_TEST

/* Little-endian fields of the zip records. */
static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }

START_TEST(npz_writer_members_are_npy_files_in_a_stored_zip)
{
    float x[6] = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f};
    int32_t lab[4] = {3, 1, 0, 2};
    uint64_t sx[2] = {2, 3}, sl[1] = {4};
    cx_err err;
    cx_npz_writer z;
    ck_assert_int_eq(cx_npz_open(&z, tmp("w.npz"), &err), CX_OK);
    ck_assert_int_eq(cx_npz_add(&z, "image.fc0.weight", CX_ELEM_F32, 2, sx, x, &err), CX_OK);
    ck_assert_int_eq(cx_npz_add(&z, "lab", CX_ELEM_I32, 1, sl, lab, &err), CX_OK);
    ck_assert(!file_exists(tmp("w.npz"))); /* nothing in place before commit */
    ck_assert_int_eq(cx_npz_commit(&z, &err), CX_OK);
    /* Each member's bytes are exactly the NPY file cx_npy_write makes of the same array. */
    ck_assert_int_eq(cx_npy_write(tmp("x.npy"), CX_ELEM_F32, 2, sx, x, &err), CX_OK);
    ck_assert_int_eq(cx_npy_write(tmp("l.npy"), CX_ELEM_I32, 1, sl, lab, &err), CX_OK);
    size_t n, nx, nl;
    unsigned char *zip = read_all(tmp("w.npz"), &n);
    unsigned char *npx = read_all(tmp("x.npy"), &nx), *npl = read_all(tmp("l.npy"), &nl);
    const char *names[2] = {"image.fc0.weight.npy", "lab.npy"};
    const unsigned char *want[2] = {npx, npl};
    size_t wlen[2] = {nx, nl}, at = 0;
    for (int i = 0; i < 2; i++) {
        size_t nlen = strlen(names[i]);
        ck_assert_uint_eq(le32(zip + at), 0x04034b50);
        ck_assert_uint_eq(le16(zip + at + 8), 0); /* stored */
        ck_assert_uint_eq(le32(zip + at + 18), wlen[i]);
        ck_assert_uint_eq(le32(zip + at + 22), wlen[i]);
        ck_assert_uint_eq(le16(zip + at + 26), nlen);
        ck_assert_int_eq(memcmp(zip + at + 30, names[i], nlen), 0);
        const unsigned char *data = zip + at + 30 + nlen + le16(zip + at + 28);
        ck_assert_int_eq(memcmp(data, want[i], wlen[i]), 0);
        ck_assert_uint_eq(le32(zip + at + 14), (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, (uInt)wlen[i]));
        at = (size_t)(data - zip) + wlen[i];
    }
    /* The end record: two entries, a directory from where the members end to the record. */
    const unsigned char *end = zip + n - 22;
    ck_assert_uint_eq(le32(end), 0x06054b50);
    ck_assert_uint_eq(le16(end + 10), 2);
    ck_assert_uint_eq(le32(end + 16), at);
    ck_assert_uint_eq(le32(end + 12), n - 22 - at);
    ck_assert_uint_eq(le32(zip + at), 0x02014b50);
    ck_assert_uint_eq(le32(zip + at + 42), 0); /* the first member's local header */
    free(npx);
    free(npl);

    /* The same arrays give the same bytes. */
    ck_assert_int_eq(cx_npz_open(&z, tmp("w2.npz"), &err), CX_OK);
    ck_assert_int_eq(cx_npz_add(&z, "image.fc0.weight", CX_ELEM_F32, 2, sx, x, &err), CX_OK);
    ck_assert_int_eq(cx_npz_add(&z, "lab", CX_ELEM_I32, 1, sl, lab, &err), CX_OK);
    ck_assert_int_eq(cx_npz_commit(&z, &err), CX_OK);
    size_t n2;
    unsigned char *zip2 = read_all(tmp("w2.npz"), &n2);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(memcmp(zip, zip2, n), 0);
    free(zip);
    free(zip2);

    /* A name given twice, or an empty one, aborts the archive: nothing appears, and an
     * earlier file of that name is kept. */
    ck_assert_int_eq(cx_npz_open(&z, tmp("dup.npz"), &err), CX_OK);
    ck_assert_int_eq(cx_npz_add(&z, "lab", CX_ELEM_I32, 1, sl, lab, &err), CX_OK);
    ck_assert_fail_has(cx_npz_add(&z, "lab", CX_ELEM_I32, 1, sl, lab, &err), err, CX_EUSAGE,
                       "array 'lab' added twice");
    cx_npz_abort(&z);
    ck_assert(!file_exists(tmp("dup.npz")));
    ck_assert_int_eq(cx_npz_open(&z, tmp("w.npz"), &err), CX_OK);
    ck_assert_fail_has(cx_npz_add(&z, "", CX_ELEM_I32, 1, sl, lab, &err), err, CX_EUSAGE, "empty");
    cx_npz_abort(&z);
    zip2 = read_all(tmp("w.npz"), &n2);
    ck_assert_uint_eq(n2, n);
    free(zip2);
}
END_TEST

/* ---- text parts ---------------------------------------------------------------------------------
 */

START_TEST(text_classes_synonyms_and_vetoes)
{
    cx_classes c;
    cx_err err;
    ck_assert_int_eq(cx_classes_read(fixture("tiny-classes.txt"), &c, &err), CX_OK);
    ck_assert_int_eq(c.count, 3);
    ck_assert_str_eq(c.names[2], "two");
    ck_assert_int_eq(c.num_synonyms[2], 3);
    ck_assert_str_eq(c.synonyms[2][0], "two");
    ck_assert_str_eq(c.synonyms[2][2], "couple");
    ck_assert_int_eq(c.num_vetoes[0], 1);
    ck_assert_str_eq(c.vetoes[0][0], "not zero");
    ck_assert_int_eq(c.num_vetoes[1], 0);
    ck_assert_str_eq(c.synonyms[1][1], "single one");
    ck_assert_int_eq(cx_classes_find(&c, "one"), 1);
    ck_assert_int_eq(cx_classes_find(&c, "One"), -1);
    cx_classes_free(&c);

    char want[600];
    write_text(tmp("dup.txt"), "a|x\n\nb\n a \n");
    snprintf(want, sizeof want, "%s: line 4: class 'a' repeats line 1", tmp("dup.txt"));
    ck_assert_fail_msg(cx_classes_read(tmp("dup.txt"), &c, &err), err, CX_EDATA, want);
    write_text(tmp("empty.txt"), "a\nb||c\n");
    snprintf(want, sizeof want, "%s: line 2: field 2 (a synonym) is empty", tmp("empty.txt"));
    ck_assert_fail_msg(cx_classes_read(tmp("empty.txt"), &c, &err), err, CX_EDATA, want);
    write_text(tmp("tab.txt"), "a\tb\n");
    snprintf(want, sizeof want, "%s: line 1: field 1 holds a tab", tmp("tab.txt"));
    ck_assert_fail_msg(cx_classes_read(tmp("tab.txt"), &c, &err), err, CX_EDATA, want);
    write_text(tmp("none.txt"), "\n  \n");
    snprintf(want, sizeof want, "%s: no classes", tmp("none.txt"));
    ck_assert_fail_msg(cx_classes_read(tmp("none.txt"), &c, &err), err, CX_EDATA, want);
}
END_TEST

START_TEST(text_templates_and_labels)
{
    char **t;
    int n;
    cx_err err;
    ck_assert_int_eq(cx_templates_read(fixture("tiny-templates.txt"), &t, &n, &err), CX_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(t[1], "{} again, a {}");
    cx_strings_free(t, n);
    char want[600];
    write_text(tmp("t.txt"), "a photo of a {}\n\nno hole here\n");
    snprintf(want, sizeof want, "%s: line 3: template has no '{}' for the class name",
             tmp("t.txt"));
    ck_assert_fail_msg(cx_templates_read(tmp("t.txt"), &t, &n, &err), err, CX_EDATA, want);

    int32_t *y;
    size_t m;
    write_text(tmp("l1.txt"), "0\nx\n");
    snprintf(want, sizeof want, "%s: line 2: 'x' is not an integer label", tmp("l1.txt"));
    ck_assert_fail_msg(cx_labels_read(tmp("l1.txt"), 3, "C", &y, &m, &err), err, CX_EDATA, want);
    write_text(tmp("l2.txt"), "0\n 2 \n7\n");
    snprintf(want, sizeof want, "%s: line 3: label 7 is outside the 3 classes of classes.txt",
             tmp("l2.txt"));
    ck_assert_fail_msg(cx_labels_read(tmp("l2.txt"), 3, "classes.txt", &y, &m, &err), err, CX_EDATA,
                       want);
    write_text(tmp("l3.txt"), "0\n-1\n");
    ck_assert_fail_has(cx_labels_read(tmp("l3.txt"), 3, "C", &y, &m, &err), err, CX_EDATA,
                       "line 2: label -1 is outside");
    /* IDX labels name the byte of the bad label. */
    unsigned char idx1[8 + 3];
    uint32_t d[1] = {3};
    size_t hn = cx_idx_format_header(1, d, idx1);
    idx1[hn] = 0;
    idx1[hn + 1] = 7;
    idx1[hn + 2] = 1;
    write_bytes(tmp("bad-labels-idx1-ubyte"), idx1, hn + 3);
    snprintf(want, sizeof want, "%s: byte 9: label 7 (record 1) is outside the 3 classes of C",
             tmp("bad-labels-idx1-ubyte"));
    ck_assert_fail_msg(cx_labels_read(tmp("bad-labels-idx1-ubyte"), 3, "C", &y, &m, &err), err,
                       CX_EDATA, want);
}
END_TEST

START_TEST(text_captions_alignment_and_utf8)
{
    cx_captions c;
    cx_err err;
    ck_assert_int_eq(cx_captions_read(fixture("tiny-captions.txt"), 6, "IMG", NULL, 0, &c, &err),
                     CX_OK);
    ck_assert_uint_eq(c.n, 6);
    ck_assert_str_eq(c.items[3], "nought caf\xc3\xa9");
    cx_captions_free(&c);
    uint32_t keep[2] = {1, 5};
    ck_assert_int_eq(cx_captions_read(fixture("tiny-captions.txt"), 6, "IMG", keep, 2, &c, &err),
                     CX_OK);
    ck_assert_uint_eq(c.n, 2);
    ck_assert_str_eq(c.items[0], "one single one");
    ck_assert_str_eq(c.items[1], "couple and zero");
    cx_captions_free(&c);
    char want[600];
    snprintf(want, sizeof want, "%s: line 7: 6 captions for the 7 images of IMG",
             fixture("tiny-captions.txt"));
    ck_assert_fail_msg(cx_captions_read(fixture("tiny-captions.txt"), 7, "IMG", NULL, 0, &c, &err),
                       err, CX_EDATA, want);
    snprintf(want, sizeof want, "%s: line 6: more captions than the 5 images of IMG",
             fixture("tiny-captions.txt"));
    ck_assert_fail_msg(cx_captions_read(fixture("tiny-captions.txt"), 5, "IMG", NULL, 0, &c, &err),
                       err, CX_EDATA, want);
    write_text(tmp("u.txt"), "fine\nab\xc3(\r\n");
    snprintf(want, sizeof want, "%s: line 2: byte 2: invalid UTF-8", tmp("u.txt"));
    ck_assert_fail_msg(cx_captions_read(tmp("u.txt"), 0, "IMG", NULL, 0, &c, &err), err, CX_EDATA,
                       want);
    /* The class and template readers refuse it the same way. */
    cx_classes cls;
    ck_assert_fail_msg(cx_classes_read(tmp("u.txt"), &cls, &err), err, CX_EDATA, want);
    char **tpl;
    int ntpl;
    write_text(tmp("ut.txt"), "a {}\nab\xc3(\r\n");
    snprintf(want, sizeof want, "%s: line 2: byte 2: invalid UTF-8", tmp("ut.txt"));
    ck_assert_fail_msg(cx_templates_read(tmp("ut.txt"), &tpl, &ntpl, &err), err, CX_EDATA, want);
    write_text(tmp("crlf.txt"), "one\r\ntwo\r\n");
    ck_assert_int_eq(cx_captions_read(tmp("crlf.txt"), 2, "IMG", NULL, 0, &c, &err), CX_OK);
    ck_assert_str_eq(c.items[1], "two");
    cx_captions_free(&c);
}
END_TEST

/* ---- dataset YAML -------------------------------------------------------------------------------
 */

START_TEST(dataset_tiny_everything)
{
    cx_dataset ds;
    cx_err err;
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_str_eq(ds.name, "tiny");
    ck_assert_int_eq(ds.num_classes, 3);
    ck_assert_int_eq(ds.num_eval_classes, 3);
    ck_assert_int_eq(ds.num_templates, 2);
    ck_assert_str_eq(ds.synonyms[1][1], "single one");
    const cx_split *s = &ds.train;
    ck_assert_uint_eq(s->n, 6);
    ck_assert_uint_eq(s->stored_n, 6);
    ck_assert_uint_eq(s->dim, 12);
    ck_assert_int_eq(s->rank, 2);
    ck_assert_uint_eq(s->shape[0], 4);
    ck_assert_uint_eq(s->shape[1], 3);
    ck_assert_int_eq(s->dtype, CX_DTYPE_U8);
    const uint8_t *x = s->x;
    ck_assert_uint_eq(x[4 * 12 + 7], 40 + 7);
    ck_assert_int_eq(s->y[5], 2);
    ck_assert_uint_eq(s->source_index[5], 5);
    ck_assert_ptr_nonnull(s->captions);
    ck_assert_str_eq(s->captions[2], "a pair of things");
    const cx_split *t = &ds.test;
    ck_assert_uint_eq(t->n, 6);
    ck_assert_int_eq(t->dtype, CX_DTYPE_F32);
    ck_assert_uint_eq(t->dim, 5);
    ck_assert_float_eq(((const float *)t->x)[29], 29.0f / 4.0f - 2.0f);
    ck_assert_ptr_null(t->captions);
    cx_dataset_free(&ds);

    /* Labels only: no images in memory. */
    cx_load_options lo = {CX_LOAD_TRAIN, NULL, NULL, 0};
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), &lo, &ds, &err), CX_OK);
    ck_assert_ptr_null(ds.train.x);
    ck_assert_ptr_null(ds.train.captions);
    ck_assert_ptr_null(ds.test.y);
    ck_assert_uint_eq(ds.train.n, 6);
    cx_dataset_free(&ds);
}
END_TEST

START_TEST(dataset_kept_rows_only)
{
    cx_dataset ds;
    cx_err err;
    uint32_t keep[3] = {0, 2, 5};
    cx_load_options lo = {CX_LOAD_TRAIN | CX_LOAD_IMAGES | CX_LOAD_CAPTIONS, NULL, keep, 3};
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), &lo, &ds, &err), CX_OK);
    ck_assert_uint_eq(ds.train.n, 3);
    ck_assert_uint_eq(ds.train.stored_n, 6);
    const uint8_t *x = ds.train.x;
    ck_assert_uint_eq(x[0], 0);
    ck_assert_uint_eq(x[12], 20);
    ck_assert_uint_eq(x[24 + 11], 50 + 11);
    ck_assert_int_eq(ds.train.y[1], 2);
    ck_assert_uint_eq(ds.train.source_index[2], 5);
    ck_assert_str_eq(ds.train.captions[2], "couple and zero");
    cx_dataset_free(&ds);

    /* The same through a SUBSET file. */
    write_text(tmp("S"), "index\tlabel\n1\t1\n4\t1\n");
    cx_load_options so = {0, tmp("S"), NULL, 0};
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), &so, &ds, &err), CX_OK);
    ck_assert_uint_eq(ds.train.n, 2);
    ck_assert_uint_eq(((const uint8_t *)ds.train.x)[12], 40);
    ck_assert_str_eq(ds.train.captions[0], "one single one");
    ck_assert_uint_eq(ds.test.n, 6); /* the subset touches the training split only */
    cx_dataset_free(&ds);

    uint32_t bad[2] = {3, 2};
    cx_load_options bo = {CX_LOAD_TRAIN, NULL, bad, 2};
    ck_assert_fail_has(cx_dataset_load(fixture("tiny.yaml"), &bo, &ds, &err), err, CX_EUSAGE,
                       "kept index 2 (entry 1) is not ascending");
}
END_TEST

/* tiny.yaml's splits with groups: text groups for train, NPY for test, 6 group names. */
static const char *groups_yaml(const char *name, const char *train_groups, const char *gnames)
{
    char text[4096];
    snprintf(text, sizeof text,
             "classes: %s\n%s%s%s"
             "train: {images: %s, labels: %s, groups: %s}\n"
             "test: {images: %s, labels: %s, groups: %s}\n",
             fixture("tiny-classes.txt"), gnames ? "group_names: " : "", gnames ? gnames : "",
             gnames ? "\n" : "", fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels-idx1-ubyte.gz"), train_groups, fixture("f32-features.npy"),
             fixture("tiny-labels.txt"), tmp("test-groups.npy"));
    write_text(tmp(name), text);
    return tmp(name);
}

START_TEST(dataset_groups_good_and_bad)
{
    cx_dataset ds;
    cx_err err;
    char want[1200];
    write_text(tmp("gn.txt"), "c0/0\nc0/1\n\n  c1/0 \nc1/1\nc2/0\nc2/1\n");
    write_text(tmp("g.txt"), "0\n3\n4\n1\n2\n5\n");
    const int32_t tg[6] = {1, 2, 5, 0, 3, 4};
    uint64_t shape[1] = {6};
    ck_assert_int_eq(cx_npy_write(tmp("test-groups.npy"), CX_ELEM_I32, 1, shape, tg, &err), CX_OK);
    const char *y = groups_yaml("g.yaml", tmp("g.txt"), tmp("gn.txt"));
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    ck_assert_int_eq(ds.num_groups, 6);
    ck_assert_str_eq(ds.group_names[2], "c1/0");
    ck_assert_str_eq(ds.group_names[5], "c2/1");
    ck_assert_ptr_nonnull(ds.train.groups);
    ck_assert_int_eq(ds.train.groups[1], 3);
    ck_assert_int_eq(ds.train.groups[5], 5);
    ck_assert_int_eq(ds.test.groups[0], 1);
    ck_assert_int_eq(ds.test.groups[5], 4);
    cx_dataset_free(&ds);
    /* Kept rows keep their groups: by index list and by SUBSET file. */
    uint32_t keep[3] = {0, 2, 5};
    cx_load_options lo = {CX_LOAD_TRAIN, NULL, keep, 3};
    ck_assert_int_eq(cx_dataset_load(y, &lo, &ds, &err), CX_OK);
    ck_assert_uint_eq(ds.train.n, 3);
    ck_assert_int_eq(ds.train.groups[0], 0);
    ck_assert_int_eq(ds.train.groups[1], 4);
    ck_assert_int_eq(ds.train.groups[2], 5);
    cx_dataset_free(&ds);
    write_text(tmp("S"), "index\tlabel\n1\t1\n4\t1\n");
    cx_load_options so = {0, tmp("S"), NULL, 0};
    ck_assert_int_eq(cx_dataset_load(y, &so, &ds, &err), CX_OK);
    ck_assert_uint_eq(ds.train.n, 2);
    ck_assert_int_eq(ds.train.groups[0], 3);
    ck_assert_int_eq(ds.train.groups[1], 2);
    ck_assert_uint_eq(ds.test.n, 6);
    ck_assert_int_eq(ds.test.groups[2], 5);
    cx_dataset_free(&ds);
    /* A dataset without groups has none. */
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_ptr_null(ds.train.groups);
    ck_assert_int_eq(ds.num_groups, 0);
    cx_dataset_free(&ds);

    /* Out of range, in text and NPY. */
    write_text(tmp("g6.txt"), "0\n3\n6\n1\n2\n5\n");
    y = groups_yaml("b.yaml", tmp("g6.txt"), tmp("gn.txt"));
    snprintf(want, sizeof want, "%s: line 3: group 6 is outside the 6 groups of %s", tmp("g6.txt"),
             tmp("gn.txt"));
    ck_assert_fail_msg(cx_dataset_load(y, NULL, &ds, &err), err, CX_EDATA, want);
    write_text(tmp("gm.txt"), "0\n-1\n");
    ck_assert_fail_has(cx_dataset_load(groups_yaml("b.yaml", tmp("gm.txt"), tmp("gn.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, "line 2: group -1 is outside the 6 groups");
    const int64_t big[6] = {0, 1, 2, 3, 4, 7};
    ck_assert_int_eq(cx_npy_write(tmp("gb.npy"), CX_ELEM_I64, 1, shape, big, &err), CX_OK);
    snprintf(want, sizeof want, "%s: byte 168: group 7 (record 5) is outside the 6 groups of %s",
             tmp("gb.npy"), tmp("gn.txt"));
    ck_assert_fail_msg(cx_dataset_load(groups_yaml("b.yaml", tmp("gb.npy"), tmp("gn.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, want);
    const float fl[6] = {0};
    ck_assert_int_eq(cx_npy_write(tmp("gf.npy"), CX_ELEM_F32, 1, shape, fl, &err), CX_OK);
    ck_assert_fail_has(cx_dataset_load(groups_yaml("b.yaml", tmp("gf.npy"), tmp("gn.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, "NPY groups must be integers");
    /* Misaligned: too few, too many. */
    write_text(tmp("g5.txt"), "0\n3\n4\n1\n2\n");
    snprintf(want, sizeof want, "%s: record 5: 5 groups for the 6 labels of %s", tmp("g5.txt"),
             fixture("tiny-labels-idx1-ubyte.gz"));
    ck_assert_fail_msg(cx_dataset_load(groups_yaml("b.yaml", tmp("g5.txt"), tmp("gn.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, want);
    write_text(tmp("g7.txt"), "0\n3\n4\n1\n2\n5\n0\n");
    ck_assert_fail_has(cx_dataset_load(groups_yaml("b.yaml", tmp("g7.txt"), tmp("gn.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, "record 6: more groups than the 6 labels of");
    /* groups without group_names; a group name twice; no group names. */
    ck_assert_fail_has(cx_dataset_load(groups_yaml("b.yaml", tmp("g.txt"), NULL), NULL, &ds,
                                       &err),
                       err, CX_EUSAGE, "b.yaml:2:", "'groups' needs the dataset's 'group_names'");
    write_text(tmp("gd.txt"), "a\nb\n a\n");
    snprintf(want, sizeof want, "%s: line 3: group 'a' already named on line 1", tmp("gd.txt"));
    ck_assert_fail_msg(cx_dataset_load(groups_yaml("b.yaml", tmp("g.txt"), tmp("gd.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, want);
    write_text(tmp("ge.txt"), "\n \n");
    ck_assert_fail_has(cx_dataset_load(groups_yaml("b.yaml", tmp("g.txt"), tmp("ge.txt")), NULL,
                                       &ds, &err),
                       err, CX_EDATA, "no group names");
    ck_assert_int_eq(ds.num_groups, 0); /* freed after a failure */
}
END_TEST

/* A dataset folder in tmpdir using the fixtures by absolute path, with one part replaced. */
static void write_yaml(const char *name, const char *body)
{
    char text[4096];
    snprintf(text, sizeof text, "%s", body);
    write_text(tmp(name), text);
}

START_TEST(dataset_yaml_errors_name_line_and_column)
{
    cx_dataset ds;
    cx_err err;
    char y[2048], want[1200];
    snprintf(y, sizeof y, "classes: %s\nfoo: 1\ntrain: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("u.yaml", y);
    snprintf(want, sizeof want,
             "%s:2:1: unknown key 'foo' (name, classes, templates, eval_classes, class_embeddings, group_names, train, val, test)",
             tmp("u.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("u.yaml"), NULL, &ds, &err), err, CX_EUSAGE, want);

    snprintf(y, sizeof y, "classes: %s\ntrain:\n  images: %s\n  labels: %s\n  caption: x\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("u2.yaml", y);
    snprintf(want, sizeof want,
             "%s:5:3: unknown key 'caption' in 'train' (images, labels, captions, n, shape, groups)",
             tmp("u2.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("u2.yaml"), NULL, &ds, &err), err, CX_EUSAGE, want);

    /* A plain scalar over several lines folds into a path with a newline (found by
     * fuzz_dataset): the message that names it is still one line. */
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: %s, labels: no\n\n\n  such}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"));
    write_yaml("nl.yaml", y);
    ck_assert_int_eq(cx_dataset_load(tmp("nl.yaml"), NULL, &ds, &err), CX_EDATA);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_ptr_nonnull(strstr(err.msg, "no\\n\\nsuch"));

    snprintf(y, sizeof y, "train: {images: a, labels: b}\n");
    write_yaml("nocls.yaml", y);
    snprintf(want, sizeof want, "%s:1:1: the dataset names no 'classes' file", tmp("nocls.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("nocls.yaml"), NULL, &ds, &err), err, CX_EUSAGE, want);

    snprintf(y, sizeof y, "classes: %s\neval_classes: 4\ntrain: {images: a, labels: b}\n",
             fixture("tiny-classes.txt"));
    write_yaml("ev.yaml", y);
    snprintf(want, sizeof want, "%s:2:15: 'eval_classes' is 4, out of range [1, 3]",
             tmp("ev.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("ev.yaml"), NULL, &ds, &err), err, CX_EUSAGE, want);

    snprintf(y, sizeof y, "classes: %s\ntrain:\n  images: %s\n  labels: %s\n  n: 7\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("n.yaml", y);
    snprintf(want, sizeof want, "%s: 6 labels, but %s:5:6 promises n: 7",
             fixture("tiny-labels.txt"), tmp("n.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("n.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    snprintf(y, sizeof y, "classes: %s\ntrain:\n  images: %s\n  labels: %s\n  shape: [3, 4]\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("sh.yaml", y);
    snprintf(want, sizeof want, "%s: samples of shape [4, 3], but %s:5:10 promises shape: [3, 4]",
             fixture("tiny-images-idx3-ubyte.gz"), tmp("sh.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("sh.yaml"), NULL, &ds, &err), err, CX_EDATA, want);
}
END_TEST

START_TEST(dataset_bad_parts)
{
    cx_dataset ds;
    cx_err err;
    char y[2048], want[1200];
    /* Images and labels of different counts. */
    write_text(tmp("five.txt"), "0\n1\n2\n0\n1\n");
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: %s, labels: five.txt}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"));
    write_yaml("cnt.yaml", y);
    snprintf(want, sizeof want, "%s: byte 4: header claims 6 images, but %s holds 5 labels",
             fixture("tiny-images-idx3-ubyte.gz"), tmp("five.txt"));
    ck_assert_fail_msg(cx_dataset_load(tmp("cnt.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    /* A label outside the class list. */
    write_text(tmp("out.txt"), "0\n1\n2\n3\n1\n2\n");
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: %s, labels: out.txt}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"));
    write_yaml("lab.yaml", y);
    snprintf(want, sizeof want, "%s: line 4: label 3 is outside the 3 classes of %s",
             tmp("out.txt"), fixture("tiny-classes.txt"));
    ck_assert_fail_msg(cx_dataset_load(tmp("lab.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    /* Captions not aligned with images. */
    write_text(tmp("caps.txt"), "a\nb\nc\n");
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: %s, labels: %s, captions: caps.txt}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("cap.yaml", y);
    snprintf(want, sizeof want, "%s: line 4: 3 captions for the 6 images of %s", tmp("caps.txt"),
             fixture("tiny-images-idx3-ubyte.gz"));
    ck_assert_fail_msg(cx_dataset_load(tmp("cap.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    /* A missing file. */
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: nowhere.gz, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-labels.txt"));
    write_yaml("miss.yaml", y);
    snprintf(want, sizeof want, "%s: No such file or directory", tmp("nowhere.gz"));
    ck_assert_fail_msg(cx_dataset_load(tmp("miss.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    /* An open-world concept in a test split. */
    snprintf(y, sizeof y, "classes: %s\neval_classes: 2\ntest: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("ow.yaml", y);
    snprintf(want, sizeof want,
             "%s: record 2: label 2 is the open-world concept 'two'; a test split holds evaluated "
             "classes only "
             "(eval_classes: 2)",
             fixture("tiny-labels.txt"));
    ck_assert_fail_msg(cx_dataset_load(tmp("ow.yaml"), NULL, &ds, &err), err, CX_EDATA, want);
    /* ... while a training split may hold them. */
    snprintf(y, sizeof y, "classes: %s\neval_classes: 2\ntrain: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("ow2.yaml", y);
    ck_assert_int_eq(cx_dataset_load(tmp("ow2.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_int_eq(ds.num_eval_classes, 2);
    ck_assert_int_eq(ds.num_templates, 5); /* the defaults */
    ck_assert_str_eq(ds.templates[0], "a photo of a {}.");
    ck_assert_str_eq(ds.name, "ow2");
    cx_dataset_free(&ds);

    /* Built-in template sets by name; ./NAME is a file of that name. */
    static const struct {
        const char *set;
        int count;
        const char *first, *last;
    } sets[] = {
        {"openai-imagenet", 80, "a bad photo of a {}.", "a tattoo of the {}."},
        {"simple", 7, "itap of a {}.", "a photo of the small {}."},
        {"photo", 1, "a photo of a {}.", "a photo of a {}."},
        {"cname", 1, "{}", "{}"},
        {"a+cname", 1, "a {}", "a {}"},
        {"./photo", 2, "my {} here", "two {}"},
    };
    write_yaml("photo", "my {} here\ntwo {}\n");
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        snprintf(y, sizeof y, "classes: %s\ntemplates: %s\ntrain: {images: %s, labels: %s}\n",
                 fixture("tiny-classes.txt"), sets[i].set, fixture("tiny-images-idx3-ubyte.gz"),
                 fixture("tiny-labels.txt"));
        write_yaml("tset.yaml", y);
        ck_assert_int_eq(cx_dataset_load(tmp("tset.yaml"), NULL, &ds, &err), CX_OK);
        ck_assert_int_eq(ds.num_templates, sets[i].count);
        ck_assert_str_eq(ds.templates[0], sets[i].first);
        ck_assert_str_eq(ds.templates[ds.num_templates - 1], sets[i].last);
        for (int a = 0; a < ds.num_templates; a++) {
            ck_assert_ptr_nonnull(strstr(ds.templates[a], "{}"));
            for (int b = 0; b < a; b++) /* a set repeats no prompt */
                ck_assert_str_ne(ds.templates[a], ds.templates[b]);
        }
        cx_dataset_free(&ds);
    }
    /* A name that is neither a set nor a file: the file error. */
    snprintf(y, sizeof y, "classes: %s\ntemplates: openai\ntrain: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-images-idx3-ubyte.gz"),
             fixture("tiny-labels.txt"));
    write_yaml("tset.yaml", y);
    snprintf(want, sizeof want,
             "%s:2:12: templates 'openai': no such file (%s), nor a built-in set "
             "(openai-imagenet, simple, photo, cname, a+cname)",
             tmp("tset.yaml"), tmp("openai"));
    ck_assert_fail_msg(cx_dataset_load(tmp("tset.yaml"), NULL, &ds, &err), err, CX_EDATA, want);

    /* A split the YAML lacks. */
    cx_load_options lo = {CX_LOAD_TEST, NULL, NULL, 0};
    snprintf(want, sizeof want, "%s:1:1: the dataset has no 'test' split", tmp("ow2.yaml"));
    ck_assert_fail_msg(cx_dataset_load(tmp("ow2.yaml"), &lo, &ds, &err), err, CX_EUSAGE, want);
}
END_TEST

START_TEST(dataset_gather_and_captions)
{
    cx_dataset ds;
    cx_err err;
    ck_assert_int_eq(cx_dataset_load(fixture("tiny.yaml"), NULL, &ds, &err), CX_OK);
    float out[2 * 12];
    uint32_t rows[2] = {5, 1};
    cx_split_gather_f32(&ds.train, rows, 2, out);
    for (int k = 0; k < 12; k++) {
        ck_assert_float_eq(out[k], (float)(50 + k) / 255.0f);
        ck_assert_float_eq(out[12 + k], (float)(10 + k) / 255.0f);
    }
    float f[5];
    cx_split_gather_f32(&ds.test, rows, 1, f);
    ck_assert_float_eq(f[4], 29.0f / 4.0f - 2.0f);

    char a[128], b[128];
    size_t n = cx_caption_compose(&ds, 1, 7, 42, 0, a, sizeof a);
    ck_assert_uint_eq(n, strlen(a));
    cx_caption_compose(&ds, 1, 7, 42, 0, b, sizeof b);
    ck_assert_str_eq(a, b);
    ck_assert(!strcmp(a, "a photo of a one.") || !strcmp(a, "one again, a one"));
    /* Over many indices both templates and, with synonyms, both names of class 1 appear. */
    int seen_t0 = 0, seen_t1 = 0, seen_syn = 0;
    for (uint64_t i = 0; i < 200; i++) {
        cx_caption_compose(&ds, 1, 7, i, CX_COMPOSE_SYNONYMS, a, sizeof a);
        seen_t0 |= strncmp(a, "a photo of a ", 13) == 0;
        seen_t1 |= strstr(a, " again, a ") != NULL;
        seen_syn |= strstr(a, "single one") != NULL;
    }
    ck_assert(seen_t0 && seen_t1 && seen_syn);
    /* snprintf semantics on a short buffer. */
    char tiny[6];
    ck_assert_uint_eq(cx_template_fill("{} again, a {}", "one", tiny, sizeof tiny), 16);
    ck_assert_str_eq(tiny, "one a");
    ck_assert_str_eq(cx_split_caption(&ds, &ds.train, 2, 0, 0, a, sizeof a), "a pair of things");
    const char *c = cx_split_caption(&ds, &ds.test, 2, 0, 0, a, sizeof a);
    ck_assert(!strcmp(c, "a photo of a two.") || !strcmp(c, "two again, a two"));
    cx_dataset_free(&ds);
}
END_TEST

/* ---- SUBSET and frequency files ----------------------------------------------------------------
 */

START_TEST(subset_round_trip_and_validation)
{
    int32_t labels[6] = {0, 1, 2, 0, 1, 2};
    uint32_t idx[3] = {0, 4, 5};
    int32_t kept_labels[3] = {0, 1, 2};
    cx_err err;
    ck_assert_int_eq(cx_subset_write(tmp("S"), idx, kept_labels, 3, &err), CX_OK);
    size_t n;
    unsigned char *raw = read_all(tmp("S"), &n);
    ck_assert_int_eq((int)n, 24);
    ck_assert_int_eq(memcmp(raw, "index\tlabel\n0\t0\n4\t1\n5\t2\n", 24), 0);
    free(raw);
    uint32_t *got;
    size_t m;
    ck_assert_int_eq(cx_subset_read(tmp("S"), labels, 6, "L", &got, &m, &err), CX_OK);
    ck_assert_uint_eq(m, 3);
    ck_assert_uint_eq(got[1], 4);
    free(got);

    char want[600];
    struct {
        const char *text, *msg;
    } bad[] = {
        {"idx\tlabel\n", "line 1: not a SUBSET file (the header must be 'index<TAB>label')"},
        {"", "line 1: empty file, not a SUBSET (no 'index<TAB>label' header)"},
        {"index\tlabel\n4\t1\n3\t0\n", "line 3: index 3 does not follow 4 (indices must ascend)"},
        {"index\tlabel\n4\t1\n4\t1\n", "line 3: index 4 does not follow 4 (indices must ascend)"},
        {"index\tlabel\n6\t0\n", "line 2: index 6 is beyond the 6 samples of L"},
        {"index\tlabel\n2\t1\n", "line 2: label 1 differs from label 2 of sample 2 in L"},
        {"index\tlabel\n2 2\n", "line 2: wanted 'INDEX<TAB>LABEL'"},
        {"index\tlabel\n-2\t2\n", "line 2: '-2\t2' is not two non-negative integers"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_text(tmp("B"), bad[k].text);
        snprintf(want, sizeof want, "%s: %s", tmp("B"), bad[k].msg);
        ck_assert_fail_msg(cx_subset_read(tmp("B"), labels, 6, "L", &got, &m, &err), err, CX_EDATA,
                           want);
        ck_assert_ptr_null(got);
    }
}
END_TEST

START_TEST(freq_round_trip_and_validation)
{
    char *names[3] = {"zero", "one", "two words"};
    int64_t counts[3] = {5, 0, 12}, got[3];
    cx_err err;
    ck_assert_int_eq(cx_freq_write(tmp("F"), names, counts, 3, &err), CX_OK);
    size_t n;
    unsigned char *raw = read_all(tmp("F"), &n);
    ck_assert_int_eq(memcmp(raw, "zero\t5\none\t0\ntwo words\t12\n", n), 0);
    free(raw);
    ck_assert_int_eq(cx_freq_read(tmp("F"), names, 3, got, &err), CX_OK);
    ck_assert_int_eq(got[2], 12);
    char want[600];
    struct {
        const char *text, *msg;
    } bad[] = {
        {"zero\t1\nthree\t2\n", "line 2: 'three' is not a class of the dataset"},
        {"zero\t1\none\t2\nzero\t3\n", "line 3: class 'zero' repeats line 1"},
        {"zero\t1\none\t2\n", "class 'two words' is missing (every class needs a line)"},
        {"zero\t-1\n", "line 1: '-1' is not a non-negative count"},
        {"zero 1\n", "line 1: wanted 'NAME<TAB>COUNT'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        write_text(tmp("B"), bad[k].text);
        snprintf(want, sizeof want, "%s: %s", tmp("B"), bad[k].msg);
        ck_assert_fail_msg(cx_freq_read(tmp("B"), names, 3, got, &err), err, CX_EDATA, want);
    }
}
END_TEST

/* class_embeddings: one row per class of the class list, any numeric type as float32, read
 * only when asked; wrong shapes and values are refused naming the file. */
static const char *cemb_yaml(const char *name, const char *line)
{
    char text[2048];
    snprintf(text, sizeof text, "classes: %s\n%stest: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), line, fixture("f32-features.npy"),
             fixture("tiny-labels.txt"));
    const char *p = tmp(name);
    write_text(p, text);
    return p;
}

START_TEST(dataset_class_embeddings)
{
    cx_dataset ds;
    cx_err err;
    float *w;
    int dim;
    /* float64 (3, 4): converted, row-major, class-list order. */
    double v[12];
    for (int i = 0; i < 12; i++)
        v[i] = 0.25 * i - 1.0;
    ck_assert_int_eq(cx_npy_write(tmp("e.npy"), CX_ELEM_F64, 2, (uint64_t[]){3, 4}, v, &err), CX_OK);
    const char *y = cemb_yaml("ok.yaml", "class_embeddings: e.npy\n");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    ck_assert_str_eq(ds.class_embeddings_path, tmp("e.npy"));
    ck_assert_int_eq(cx_dataset_class_embeddings(&ds, &w, &dim, &err), CX_OK);
    ck_assert_int_eq(dim, 4);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(w[i], (float)v[i]);
    free(w);
    cx_dataset_free(&ds);

    /* Loaded on demand: a dataset naming a missing file loads; asking for it fails. */
    y = cemb_yaml("missing.yaml", "class_embeddings: none.npy\n");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    cx_err_clear(&err);
    ck_assert_int_ne(cx_dataset_class_embeddings(&ds, &w, &dim, &err), CX_OK);
    ck_assert_ptr_null(w);
    ck_assert_ptr_nonnull(strstr(err.msg, tmp("none.npy")));
    cx_dataset_free(&ds);

    /* Two rows for three classes; a vector; a NaN: data errors naming the file. */
    float f[12] = {0};
    ck_assert_int_eq(cx_npy_write(tmp("two.npy"), CX_ELEM_F32, 2, (uint64_t[]){2, 4}, f, &err), CX_OK);
    ck_assert_int_eq(cx_npy_write(tmp("vec.npy"), CX_ELEM_F32, 1, (uint64_t[]){3}, f, &err), CX_OK);
    f[6] = NAN;
    ck_assert_int_eq(cx_npy_write(tmp("nan.npy"), CX_ELEM_F32, 2, (uint64_t[]){3, 4}, f, &err), CX_OK);
    char want[2048];
    y = cemb_yaml("two.yaml", "class_embeddings: two.npy\n");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    snprintf(want, sizeof want, "%s: class_embeddings of shape (2, 4); %s needs (3, D), one row "
             "per class of %s", tmp("two.npy"), y, fixture("tiny-classes.txt"));
    ck_assert_fail_msg(cx_dataset_class_embeddings(&ds, &w, &dim, &err), err, CX_EDATA, want);
    cx_dataset_free(&ds);
    y = cemb_yaml("vec.yaml", "class_embeddings: vec.npy\n");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    ck_assert_fail_has(cx_dataset_class_embeddings(&ds, &w, &dim, &err), err, CX_EDATA,
                       tmp("vec.npy"), "shape (3)");
    cx_dataset_free(&ds);
    y = cemb_yaml("nan.yaml", "class_embeddings: nan.npy\n");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    ck_assert_fail_has(cx_dataset_class_embeddings(&ds, &w, &dim, &err), err, CX_EDATA,
                       tmp("nan.npy"), "record 1", "NaN");
    ck_assert_ptr_null(w);
    cx_dataset_free(&ds);

    /* None named: a usage error; a null value: the YAML's line and column. */
    y = cemb_yaml("none.yaml", "");
    ck_assert_int_eq(cx_dataset_load(y, NULL, &ds, &err), CX_OK);
    ck_assert_ptr_null(ds.class_embeddings_path);
    ck_assert_fail_has(cx_dataset_class_embeddings(&ds, &w, &dim, &err), err, CX_EUSAGE,
                       "names no class_embeddings");
    cx_dataset_free(&ds);
    y = cemb_yaml("null.yaml", "class_embeddings: null\n");
    snprintf(want, sizeof want, "%s:2:19: 'class_embeddings' must be a file name", y);
    ck_assert_fail_msg(cx_dataset_load(y, NULL, &ds, &err), err, CX_EUSAGE, want);
}
END_TEST

static Suite *data_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("idx_npy");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, idx_fixture_all_and_kept_records);
    tcase_add_test(tc, idx_bad_magic_type_and_rank);
    tcase_add_test(tc, idx_header_claiming_more_than_the_file_is_refused);
    tcase_add_test(tc, idx_trailing_bytes_and_truncated_gzip);
    tcase_add_test(tc, npy_numpy_fixtures_read_with_conversions);
    tcase_add_test(tc, npy_unsupported_dtypes_and_fortran_order);
    tcase_add_test(tc, npy_bad_headers);
    tcase_add_test(tc, npy_writer_round_trip_and_header_layout);
    tcase_add_test(tc, npz_writer_members_are_npy_files_in_a_stored_zip);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, text_classes_synonyms_and_vetoes);
    tcase_add_test(tc, text_templates_and_labels);
    tcase_add_test(tc, text_captions_alignment_and_utf8);
    suite_add_tcase(s, tc);

    tc = tcase_create("dataset");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, dataset_tiny_everything);
    tcase_add_test(tc, dataset_kept_rows_only);
    tcase_add_test(tc, dataset_groups_good_and_bad);
    tcase_add_test(tc, dataset_yaml_errors_name_line_and_column);
    tcase_add_test(tc, dataset_bad_parts);
    tcase_add_test(tc, dataset_gather_and_captions);
    tcase_add_test(tc, subset_round_trip_and_validation);
    tcase_add_test(tc, freq_round_trip_and_validation);
    tcase_add_test(tc, dataset_class_embeddings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(data_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
