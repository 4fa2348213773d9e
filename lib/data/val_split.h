/* A validation sample when the dataset names no `val:` split: class-balanced training rows
 * outside the run's SUBSET, drawn from a seeded stream (never the test split). */
#ifndef CX_DATA_VAL_SPLIT_H
#define CX_DATA_VAL_SPLIT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

/* Where validation data came from. */
typedef enum {
    CX_VAL_NONE,          /* not used */
    CX_VAL_SPLIT,         /* the dataset's `val:` split */
    CX_VAL_TRAIN_HELDOUT  /* training rows outside the run's SUBSET */
} cx_val_source;

/* "val", "train-heldout" (or "none"). */
const char *cx_val_source_name(cx_val_source s);

/* Default rows per class drawn from outside the subset. */
#define CX_VAL_PER_CLASS_DEFAULT 50

/* labels (stored_n) are the training split's labels; kept (nkept, strictly ascending) the rows
 * the run trained on. For each of the E evaluated classes, the rows of that class not kept are
 * candidates; every class gets the same count, min(per_class, the smallest candidate count), a
 * uniform draw without replacement from cx_rng(seed, stream(tag, class)). *rows (malloc'd,
 * ascending) receives E * count indices into the stored split. CX_EUSAGE naming the first
 * class without a candidate (labels_path names the file in the message). */
cx_status cx_val_heldout_rows(const int32_t *labels, size_t stored_n, const uint32_t *kept,
                              size_t nkept, int E, char *const *class_names, int per_class,
                              uint64_t seed, const char *labels_path, uint32_t **rows, size_t *n,
                              cx_err *err);

#endif
