/* Reader of the reference fixtures under tests/fixtures/ (written by scripts/make_fixtures.py).
 *
 * Format (text, UTF-8/ASCII):
 *     clipx-fixture 1                  first non-comment line: magic and version
 *     tensor NAME NDIM D1 ... DNDIM    a tensor header; NAME is [A-Za-z0-9_], at most 63
 *     v v v ...                        then exactly D1*...*DNDIM numbers (row-major), any
 *                                      whitespace between them; NDIM 0 is a scalar (1 value)
 *     ...                              more tensors, names unique within the file
 *     end                              last line: a file without it is truncated
 * Lines starting with '#' are comments; blank lines are ignored. Numbers are decimal (strtod)
 * and must be finite; integer tensors (targets, token ids) are written as integers.
 * NDIM is 0..4 and each dimension 0..2^31-1. A header that claims more values than the rest of
 * the file can hold is refused before anything is allocated.
 */
#ifndef CX_TESTS_FIXTURE_H
#define CX_TESTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

#define FX_NAME_MAX 64
#define FX_NDIM_MAX 4

typedef struct {
    char name[FX_NAME_MAX];
    int ndim;
    int64_t dims[FX_NDIM_MAX];
    size_t n;  /* product of dims (1 for a scalar) */
    double *v; /* (n), owned by the fx_file */
} fx_tensor;

typedef struct {
    fx_tensor *t; /* (count), owned */
    int count;
} fx_file;

/* Parse the fixture at path into f (zeroed first; fx_free is safe after a failure).
 * Errors are CX_EIO (cannot read) or CX_EDATA ("PATH: line L: WHY"). */
cx_status fx_load(fx_file *f, const char *path, cx_err *err);
/* The same from a buffer of len bytes; path only names it in messages. */
cx_status fx_parse(fx_file *f, const char *text, size_t len, const char *path, cx_err *err);
void fx_free(fx_file *f);

/* The tensor called name, or NULL. */
const fx_tensor *fx_get(const fx_file *f, const char *name);

/* Copy t into out (t->n floats), rounding to float. */
void fx_to_float(const fx_tensor *t, float *out);
/* Copy t into out (t->n int32); fails (CX_EDATA) when a value is not an integer in int32
 * range. */
cx_status fx_to_int32(const fx_tensor *t, int32_t *out, cx_err *err);

/* $TOP_SRCDIR/tests/fixtures/NAME (TOP_SRCDIR defaults to "."); into buf of size len. */
void fx_path(char *buf, size_t len, const char *name);

/* For Check tests: load the fixture called name, or fail the test with the reader's message. */
void fx_load_named(fx_file *f, const char *name);
/* Tensor PREFIX_NAME (NAME when prefix is ""), failing the test when it is absent or, unless n
 * is (size_t)-1, when it does not hold n values. */
const fx_tensor *fx_need(const fx_file *f, const char *prefix, const char *name, size_t n);
/* got (n) against tensor PREFIX_NAME: |got - torch| <= tol max(1, max |torch|) elementwise,
 * failing the test at the first offender. */
void fx_assert_close(const float *got, const fx_file *f, const char *prefix, const char *name,
                     size_t n, double tol);

#endif
