/* NPZ files (numpy.savez): a zip archive of NPY members, written here without compression
 * (method "stored") so numpy.load reads each array in place. Deterministic bytes: members in
 * the order added, a fixed date (1980-01-01), no extra fields. No zip64, so an archive holds
 * less than 4 GiB and 65535 members. */
#ifndef CX_DATA_NPZ_WRITE_H
#define CX_DATA_NPZ_WRITE_H

#include <stdint.h>

#include "lib/base/afile.h"
#include "lib/base/err.h"
#include "lib/data/elem.h"

typedef struct {
    char *name;       /* owned: the member's file name, "KEY.npy" */
    uint32_t crc, size, offset;
} cx_npz_member;

typedef struct {
    cx_afile af;
    uint64_t pos;             /* bytes written so far */
    cx_npz_member *members;   /* (count), owned */
    int count, cap;
} cx_npz_writer;

/* Open path for writing (a temporary file beside it until commit). */
cx_status cx_npz_open(cx_npz_writer *z, const char *path, cx_err *err);
/* Add the array data (shape, C order) as member KEY.npy; np.load(path)[key] gives it back.
 * key must be new and at most 255 bytes. On failure the writer is aborted. */
cx_status cx_npz_add(cx_npz_writer *z, const char *key, cx_elem elem, int rank,
                     const uint64_t *shape, const void *data, cx_err *err);
/* Write the central directory and move the file into place; aborted on failure. */
cx_status cx_npz_commit(cx_npz_writer *z, cx_err *err);
/* Discard everything; the target is untouched. Safe on a zeroed or finished writer. */
void cx_npz_abort(cx_npz_writer *z);

#endif
