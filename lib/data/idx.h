/* IDX files (the MNIST family): a big-endian header 0x00 0x00 TYPE RANK, RANK dimensions of
 * 4 bytes, then the data in C order. clipx reads unsigned bytes (TYPE 0x08) of rank 1 to 4. */
#ifndef CX_DATA_IDX_H
#define CX_DATA_IDX_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/gzfile.h"

enum { CX_IDX_MAX_RANK = 4 };

typedef struct {
    int rank;
    uint64_t dims[CX_IDX_MAX_RANK];
} cx_idx_header;

/* Parse the header at f's current position (the start of the file). Errors: a wrong magic, an
 * element type other than unsigned bytes, a rank of 0 or above 4, a zero dimension. */
cx_status cx_idx_read_header(cx_gzfile *f, cx_idx_header *h, cx_err *err);

/* The 4 + 4 * rank header bytes of an unsigned-byte IDX file with these dimensions into out
 * (at least 20 bytes); returns the header's length. */
size_t cx_idx_format_header(int rank, const uint32_t *dims, unsigned char *out);

#endif
