/* How much memory this process has asked for and how much the machine can give it: the
 * numbers behind refusing a run whose buffers would not fit before they are touched. */
#ifndef CX_BASE_MEMORY_H
#define CX_BASE_MEMORY_H

#include <stdint.h>

#include "lib/base/err.h"

/* Bytes the C heap holds for this process (glibc's mallinfo2: arena chunks in use plus mmapped
 * blocks), touched or not; 0 when the C library cannot tell. Large buffers are mmapped and
 * only become memory when written, so this counts what the process will need, not yet uses. */
uint64_t cx_heap_allocated(void);

/* What this process can hold in all: its resident set (VmRSS of /proc/self/status) plus the
 * machine's available memory (MemAvailable of /proc/meminfo). CX_EIO when either is missing. */
cx_status cx_memory_available(uint64_t *bytes, cx_err *err);

/* "1.5 GiB", "320 MiB", "12 KiB", "100 B" into buf. */
const char *cx_bytes_human(uint64_t bytes, char *buf, size_t cap);

/* A size with an optional unit suffix K, M, G, T (powers of 1024, also KiB/MiB/GiB/TiB, any
 * case, or B): 0 and -1 on anything else. */
int cx_bytes_parse(const char *s, uint64_t *out);

#endif
