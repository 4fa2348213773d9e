/* NPY files (numpy.save): versions 1.0 and 2.0, little-endian uint8, int32, int64, float32 and
 * float64 in C order. A streaming writer produces files numpy.load reads. */
#ifndef CX_DATA_NPY_H
#define CX_DATA_NPY_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/afile.h"
#include "lib/base/err.h"
#include "lib/base/gzfile.h"
#include "lib/data/elem.h"

typedef struct {
    int major, minor;
    cx_elem elem;
    int fortran; /* fortran_order: True (refused by the reader for rank >= 2) */
    int rank;    /* 0 for a scalar */
    uint64_t shape[CX_ARRAY_MAX_RANK];
    uint64_t data_offset; /* bytes before the data: magic, version, length and header */
} cx_npy_header;

/* Parse the header at f's current position (the start of the file). Errors name the byte:
 * a wrong magic, an unsupported version, a malformed header dictionary, a missing or unknown
 * key, an unsupported dtype (big-endian, bool, complex, strings, objects ...). */
cx_status cx_npy_read_header(cx_gzfile *f, cx_npy_header *h, cx_err *err);

/* The numpy dtype string of an element type, e.g. "<f4", "|u1". */
const char *cx_npy_descr(cx_elem e);

/* Bytes of the longest header cx_npy_header_format writes. */
#define CX_NPY_HEADER_MAX 640

/* The NPY version 1.0 header of an array (rank 1..CX_ARRAY_MAX_RANK) into head (at least
 * CX_NPY_HEADER_MAX bytes): *head_len bytes, a multiple of 64 as numpy.save's; *data_bytes the
 * bytes of data that follow. path names the file in messages. */
cx_status cx_npy_header_format(unsigned char *head, size_t *head_len, uint64_t *data_bytes,
                               const char *path, cx_elem elem, int rank, const uint64_t *shape,
                               cx_err *err);

/* Streaming writer: header first, then the data in any number of pieces, then commit. The file
 * appears atomically at commit, and only when exactly the promised bytes were written. */
typedef struct {
    cx_afile af;
    uint64_t expect, written; /* data bytes promised by the header, and written so far */
} cx_npy_writer;

/* rank 1..CX_ARRAY_MAX_RANK; version 1.0 (an 8-dimension header fits in it); the data starts
 * on a 64-byte boundary as numpy.save's does. */
cx_status cx_npy_writer_open(cx_npy_writer *w, const char *path, cx_elem elem, int rank,
                             const uint64_t *shape, cx_err *err);
cx_status cx_npy_writer_write(cx_npy_writer *w, const void *data, size_t bytes, cx_err *err);
cx_status cx_npy_writer_commit(cx_npy_writer *w, cx_err *err);
void cx_npy_writer_abort(cx_npy_writer *w);

/* A whole array in one call. */
cx_status cx_npy_write(const char *path, cx_elem elem, int rank, const uint64_t *shape,
                       const void *data, cx_err *err);

#endif
