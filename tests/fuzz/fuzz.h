/* Shared by the fuzz harnesses (tests/fuzz/fuzz_*.c): the readers take paths, so each input is
 * written to a file in a scratch folder made once per process and removed at exit. Built by
 * libFuzzer (scripts/fuzz.sh) or by replay.c for make check, from the same harness source. */
#ifndef CX_TESTS_FUZZ_H
#define CX_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scratch folder (created on first use). */
const char *fuzz_dir(void);
/* Write bytes as fuzz_dir()/name and return its path (owned by fuzz.c, valid until the next
 * call with the same name). Aborts when the file cannot be written: that is no finding. */
const char *fuzz_file(const char *name, const void *data, size_t size);

/* A property the reader promises did not hold: abort with a line, so libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                                      \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* A reader refused the input: its message must be one non-empty line. With FUZZ_VERBOSE set in
 * the environment the message is printed (to see what a corpus reaches). */
void fuzz_refused(const char *msg);

/* Open path as an IDX or NPY array (format: a cx_array_format), read it whole as float32, then
 * again keeping only its first and last records, which must equal the same rows of the whole. */
void fuzz_read_array(const char *path, int format);

#endif
