/* Fuzz target: SUBSET and frequency files (lib/data/subset.h). The first input byte picks the
 * reader, the rest is the file. A file that reads must hold what the format promises, and
 * writing what was read and reading it back must give the same rows or counts. */
#include "tests/fuzz/fuzz.h"

#include "lib/data/subset.h"

enum { NUM_LABELS = 16, NUM_CLASSES = 3 };

static void subset(const char *path)
{
    int32_t labels[NUM_LABELS], kept_labels[NUM_LABELS];
    for (int i = 0; i < NUM_LABELS; i++)
        labels[i] = i % NUM_CLASSES;
    uint32_t *idx, *again;
    size_t n, n2;
    cx_err err;
    if (cx_subset_read(path, labels, NUM_LABELS, "labels", &idx, &n, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    FUZZ_ASSERT(n <= NUM_LABELS);
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(idx[i] < NUM_LABELS && (i == 0 || idx[i] > idx[i - 1]));
        kept_labels[i] = labels[idx[i]];
    }
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/subset-copy", fuzz_dir());
    FUZZ_ASSERT(cx_subset_write(copy, idx, kept_labels, n, &err) == CX_OK);
    FUZZ_ASSERT(cx_subset_read(copy, labels, NUM_LABELS, "labels", &again, &n2, &err) == CX_OK);
    FUZZ_ASSERT(n2 == n && (n == 0 || memcmp(again, idx, n * sizeof *idx) == 0));
    free(again);
    free(idx);
}

static void freq(const char *path)
{
    static char *names[NUM_CLASSES] = {"cat", "dog", "bird house"};
    int64_t counts[NUM_CLASSES], again[NUM_CLASSES];
    cx_err err;
    if (cx_freq_read(path, names, NUM_CLASSES, counts, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return;
    }
    for (int c = 0; c < NUM_CLASSES; c++)
        FUZZ_ASSERT(counts[c] >= 0);
    char copy[4200];
    snprintf(copy, sizeof copy, "%s/freq-copy", fuzz_dir());
    FUZZ_ASSERT(cx_freq_write(copy, names, counts, NUM_CLASSES, &err) == CX_OK);
    FUZZ_ASSERT(cx_freq_read(copy, names, NUM_CLASSES, again, &err) == CX_OK);
    FUZZ_ASSERT(memcmp(again, counts, sizeof counts) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_file("subset", data + 1, size - 1);
    if (data[0] & 1)
        freq(path);
    else
        subset(path);
    return 0;
}
