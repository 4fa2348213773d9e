/* Checkpoint files: a versioned container of named, typed, shaped tensors, checked by CRC-32.
 *
 * Layout (all integers little-endian):
 *   "CLIPXCKP" | u32 version (1) | u32 entry count
 *   per entry: u16 name length | name | u8 dtype | u8 ndim | u64 shape[ndim] | u64 byte count | data
 *   u32 CRC-32 (zlib) of every byte before it.
 * Written atomically; a reader refuses a bad magic, an unknown version, sizes that exceed the
 * file, a shape that disagrees with the byte count, or a CRC mismatch, naming the byte offset. */
#ifndef CX_RUN_CKPT_H
#define CX_RUN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#define CX_CKPT_VERSION 1
#define CX_CKPT_MAX_DIMS 4

typedef enum { CX_CKPT_F32 = 0, CX_CKPT_I64 = 1, CX_CKPT_U8 = 2, CX_CKPT_I32 = 3 } cx_ckpt_dtype;

typedef struct {
    char *name;          /* owned */
    cx_ckpt_dtype dtype;
    int ndim;
    int64_t shape[CX_CKPT_MAX_DIMS];
    size_t nbytes;
    void *data;          /* owned when `owned`, else borrowed from the caller until written */
    int owned;
} cx_ckpt_entry;

typedef struct {
    cx_ckpt_entry *entries; /* (count), owned */
    int count, cap;
} cx_ckpt;

void cx_ckpt_init(cx_ckpt *c);
void cx_ckpt_free(cx_ckpt *c);

/* Add an entry that borrows data (not copied; it must outlive cx_ckpt_write). */
cx_status cx_ckpt_add(cx_ckpt *c, const char *name, cx_ckpt_dtype dtype, int ndim,
                      const int64_t *shape, const void *data, cx_err *err);
/* Convenience entries, copied: a scalar int64, a double (as f32 would lose bits, stored as
 * 8 bytes of U8), and a string (U8 bytes, no terminator). */
cx_status cx_ckpt_add_i64(cx_ckpt *c, const char *name, int64_t v, cx_err *err);
cx_status cx_ckpt_add_f64(cx_ckpt *c, const char *name, double v, cx_err *err);
cx_status cx_ckpt_add_string(cx_ckpt *c, const char *name, const char *s, cx_err *err);

cx_status cx_ckpt_write(const cx_ckpt *c, const char *path, cx_err *err);
/* Read a whole file into c (which must be freshly initialised); entries own their data. */
cx_status cx_ckpt_read(const char *path, cx_ckpt *c, cx_err *err);

const cx_ckpt_entry *cx_ckpt_find(const cx_ckpt *c, const char *name);

/* Typed getters: an error names the file (path, for messages) and the entry when it is missing
 * or of another type or shape. */
cx_status cx_ckpt_get_i64(const cx_ckpt *c, const char *path, const char *name, int64_t *v,
                          cx_err *err);
cx_status cx_ckpt_get_f64(const cx_ckpt *c, const char *path, const char *name, double *v,
                          cx_err *err);
/* A malloc'd, NUL-terminated copy of a string entry. */
cx_status cx_ckpt_get_string(const cx_ckpt *c, const char *path, const char *name, char **s,
                             cx_err *err);
/* Copy an F32 entry of exactly `count` floats into out. */
cx_status cx_ckpt_get_f32(const cx_ckpt *c, const char *path, const char *name, float *out,
                          size_t count, cx_err *err);

#endif
