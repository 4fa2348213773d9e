/* Fuzz target: the captions reader (cx_captions_read, plain or gzip) and caption counting
 * (cx_count_file) on the same file. Properties: a file read whole reads again with its own line
 * count expected, and refuses one more; the kept first and last lines equal those of the whole;
 * counting sees as many lines and never matches more captions than it read. */
#include "tests/fuzz/fuzz.h"

#include "lib/data/annotations.h"
#include "lib/data/count.h"

static cx_matcher *matcher(void)
{
    static cx_matcher *m;
    if (!m) {
        static char *cat[] = {"cat", "kitten"}, *dog[] = {"dog"}, *bird[] = {"bird house"};
        static char *cat_veto[] = {"toy"};
        char **const syn[3] = {cat, dog, bird};
        char **const veto[3] = {cat_veto, NULL, NULL};
        const int nsyn[3] = {2, 1, 1}, nveto[3] = {1, 0, 0};
        cx_err err;
        FUZZ_ASSERT(cx_matcher_new(syn, nsyn, veto, nveto, 3, CX_MATCH_PLURALS, &m, &err) ==
                    CX_OK);
    }
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("captions.txt", data, size);
    cx_err err;
    cx_captions all;
    if (cx_captions_read(path, 0, NULL, NULL, 0, &all, &err) != CX_OK) {
        fuzz_refused(err.msg);
        return 0;
    }
    FUZZ_ASSERT(all.n == all.lines);
    if (all.lines > 0) {
        cx_captions again, more, some;
        FUZZ_ASSERT(cx_captions_read(path, all.lines, "images", NULL, 0, &again, &err) == CX_OK);
        FUZZ_ASSERT(again.n == all.n);
        cx_captions_free(&again);
        FUZZ_ASSERT(cx_captions_read(path, all.lines + 1, "images", NULL, 0, &more, &err) !=
                    CX_OK);
        uint32_t keep[2] = {0, (uint32_t)(all.lines - 1)};
        size_t nkeep = all.lines > 1 ? 2 : 1;
        FUZZ_ASSERT(cx_captions_read(path, 0, NULL, keep, nkeep, &some, &err) == CX_OK);
        FUZZ_ASSERT(some.n == nkeep);
        for (size_t k = 0; k < nkeep; k++)
            FUZZ_ASSERT(strcmp(some.items[k], all.items[keep[k]]) == 0);
        cx_captions_free(&some);
    }

    int64_t counts[3] = {0, 0, 0};
    size_t lines = 0, matched = 0;
    if (cx_count_file(matcher(), path, NULL, 0, NULL, counts, &lines, &matched, &err) == CX_OK) {
        FUZZ_ASSERT(lines == all.lines);
        FUZZ_ASSERT(matched <= lines);
        for (int c = 0; c < 3; c++)
            FUZZ_ASSERT(counts[c] >= 0 && (size_t)counts[c] <= matched);
    }
    cx_captions_free(&all);
    return 0;
}
