/* Class-balanced held-out training rows as a validation sample (issue 14, item 3). */
#include "lib/data/val_split.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"

enum { TAG_VAL_HELDOUT = 0x56414C48 /* "VALH" */ };

const char *cx_val_source_name(cx_val_source s)
{
    switch (s) {
    case CX_VAL_SPLIT:
        return "val";
    case CX_VAL_TRAIN_HELDOUT:
        return "train-heldout";
    default:
        return "none";
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

cx_status cx_val_heldout_rows(const int32_t *labels, size_t stored_n, const uint32_t *kept,
                              size_t nkept, int E, char *const *class_names, int per_class,
                              uint64_t seed, const char *labels_path, uint32_t **rows, size_t *n,
                              cx_err *err)
{
    *rows = NULL;
    *n = 0;
    if (E < 1 || per_class < 1)
        return cx_fail(err, CX_EUSAGE, "validation sample: %d classes, %d per class", E,
                       per_class);
    if (stored_n > UINT32_MAX)
        return cx_fail(err, CX_EDATA, "%s: %zu rows, at most %u", labels_path, stored_n,
                       UINT32_MAX);
    cx_status st = CX_OK;
    size_t *avail = calloc((size_t)E, sizeof *avail);
    size_t *start = calloc((size_t)E + 1, sizeof *start);
    uint32_t *pool = malloc(sizeof *pool * (stored_n ? stored_n : 1));
    uint32_t *out = NULL;
    if (!avail || !start || !pool) {
        st = cx_fail(err, CX_ENOMEM, "validation sample: out of memory");
        goto fail;
    }
    /* Candidates grouped by class, each group in ascending row order. */
    size_t k = 0;
    for (size_t i = 0; i < stored_n; i++) {
        while (k < nkept && kept[k] < i)
            k++;
        int in_subset = k < nkept && kept[k] == i;
        if (!in_subset && labels[i] >= 0 && labels[i] < E)
            avail[labels[i]]++;
    }
    for (int c = 0; c < E; c++)
        start[c + 1] = start[c] + avail[c];
    size_t *fill = calloc((size_t)E, sizeof *fill);
    if (!fill) {
        st = cx_fail(err, CX_ENOMEM, "validation sample: out of memory");
        goto fail;
    }
    k = 0;
    for (size_t i = 0; i < stored_n; i++) {
        while (k < nkept && kept[k] < i)
            k++;
        int in_subset = k < nkept && kept[k] == i;
        if (!in_subset && labels[i] >= 0 && labels[i] < E)
            pool[start[labels[i]] + fill[labels[i]]++] = (uint32_t)i;
    }
    free(fill);
    size_t count = (size_t)per_class;
    for (int c = 0; c < E; c++) {
        if (avail[c] == 0) {
            st = cx_fail(err, CX_EUSAGE,
                         "%s: class %d ('%s') has no training row outside the subset to "
                         "validate on, and the dataset names no 'val' split",
                         labels_path, c, class_names ? class_names[c] : "?");
            goto fail;
        }
        if (avail[c] < count)
            count = avail[c];
    }
    if (!(out = malloc(sizeof *out * count * (size_t)E))) {
        st = cx_fail(err, CX_ENOMEM, "validation sample: out of memory");
        goto fail;
    }
    for (int c = 0; c < E; c++) {
        cx_rng r;
        cx_rng_seed(&r, seed, cx_rng_stream(TAG_VAL_HELDOUT, (uint64_t)c, 0));
        uint32_t *g = pool + start[c];
        size_t m = avail[c];
        /* A partial Fisher-Yates: the first `count` slots are a uniform draw. */
        for (size_t j = 0; j < count; j++) {
            size_t t = j + cx_rng_below(&r, (uint32_t)(m - j));
            uint32_t tmp = g[j];
            g[j] = g[t];
            g[t] = tmp;
            out[(size_t)c * count + j] = g[j];
        }
    }
    qsort(out, count * (size_t)E, sizeof *out, cmp_u32);
    *rows = out;
    *n = count * (size_t)E;
    out = NULL;
fail:
    free(out);
    free(pool);
    free(start);
    free(avail);
    return st;
}
