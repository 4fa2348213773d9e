/* Numeric arrays stored as IDX or NPY files (plain or gzip): one reader that parses either
 * header, checks the claimed size against the file before anything is allocated, and reads
 * all records or only a kept subset, converting elements on the fly. */
#ifndef CX_DATA_ARRAY_H
#define CX_DATA_ARRAY_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/gzfile.h"
#include "lib/data/elem.h"

typedef enum { CX_FORMAT_ANY = -1, CX_FORMAT_IDX = 0, CX_FORMAT_NPY = 1 } cx_array_format;

typedef struct {
    cx_gzfile f; /* owned: positioned at the next unread record */
    cx_array_format format;
    cx_elem elem;                      /* stored element type */
    int rank;                          /* >= 1 */
    uint64_t shape[CX_ARRAY_MAX_RANK]; /* shape[0]: records */
    uint64_t records;                  /* shape[0] */
    uint64_t record_elems;             /* product of shape[1..rank), 1 for rank 1 */
    uint64_t record_bytes;             /* record_elems * element size */
    uint64_t next_record;              /* index of the record at the file position */
} cx_array_file;

/* The format of a file: NPY when it starts with numpy's magic; IDX when its name (without .gz)
 * ends in .idx, -ubyte or -idxN-ubyte style, or when the first two bytes are zero; else -1
 * (text). Only looks at the name and the first bytes. */
cx_array_format cx_array_sniff(const char *path, const unsigned char *head, size_t n);

/* Open an IDX or NPY file (format CX_FORMAT_ANY decides by cx_array_sniff) and parse its
 * header. The claimed data size is checked against the file before returning, so allocating
 * records * record_bytes afterwards is safe. a is zeroed first; close it in every case. */
cx_status cx_array_open(cx_array_file *a, const char *path, cx_array_format format, cx_err *err);

/* Read records keep[0..nkeep) (strictly ascending, < records), or all records when keep is
 * NULL, converting each element to out_elem into out (nkeep or records, record_elems).
 * Conversions: to U8 only from U8; to F32 from any type; to I64 from integer types.
 * Then checks that the data ends after the last record (trailing bytes, gzip checksum). */
cx_status cx_array_read(cx_array_file *a, const uint32_t *keep, size_t nkeep, cx_elem out_elem,
                        void *out, cx_err *err);

void cx_array_close(cx_array_file *a);

#endif
