/* SUBSET files (kept training indices) and frequency files (per-class counts), the two small
 * text formats that subsample, stats, count and train exchange.
 *   SUBSET:    "index<TAB>label" header, then one "INDEX<TAB>LABEL" row per kept sample,
 *              strictly ascending index.
 *   frequency: one "name<TAB>count" a line, every class of the dataset exactly once. */
#ifndef CX_DATA_SUBSET_H
#define CX_DATA_SUBSET_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* Read and validate a SUBSET against the labels of the stored training split (n_labels of
 * them, from labels_path, named in messages): the header, one row per line, strictly ascending
 * indices below n_labels, and each row's label equal to labels[index]. *idx is owned (*n). */
cx_status cx_subset_read(const char *path, const int32_t *labels, size_t n_labels,
                         const char *labels_path, uint32_t **idx, size_t *n, cx_err *err);

/* Write rows idx[i] (strictly ascending), labels[i] for i < n, atomically. */
cx_status cx_subset_write(const char *path, const uint32_t *idx, const int32_t *labels, size_t n,
                          cx_err *err);

/* Read a frequency file for the C classes called names: counts[c] (>= 0). Unknown, repeated or
 * missing class names are errors. */
cx_status cx_freq_read(const char *path, char *const *names, int C, int64_t *counts, cx_err *err);

/* Write one "name<TAB>count" line per class, in class order, atomically. */
cx_status cx_freq_write(const char *path, char *const *names, const int64_t *counts, int C,
                        cx_err *err);

#endif
