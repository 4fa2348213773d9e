/* Every reader against truncated and bit-flipped copies of valid files (IDX, NPY, gzip, text
 * parts, SUBSET, frequency and dataset YAML files). Deterministic; run under ASan/UBSan it
 * shows no reader reads out of bounds, leaks or crashes on damaged input. Each case must end in
 * success or in a one-line message; damaged binary files must never pass unnoticed. */
#include "config.h"

#include <stdint.h>

#include "data_util.h"

#include "lib/base/rng.h"
#include "lib/data/annotations.h"
#include "lib/data/array.h"
#include "lib/data/count.h"
#include "lib/data/dataset.h"
#include "lib/data/groups.h"
#include "lib/data/subset.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A reader: returns its status and a digest of what it read (for comparisons). */
typedef cx_status (*reader_fn)(const char *path, uint64_t *digest, cx_err *err);

static cx_status read_array(const char *path, uint64_t *digest, cx_err *err)
{
    cx_array_file a;
    cx_status st = cx_array_open(&a, path, CX_FORMAT_ANY, err);
    if (!st) {
        /* The size check already bounded this allocation by the file's real contents. */
        cx_elem out = a.elem == CX_ELEM_U8 ? CX_ELEM_U8 : CX_ELEM_F32;
        size_t bytes = (size_t)(a.records * a.record_elems) * cx_elem_size(out);
        void *x = malloc(bytes ? bytes : 1);
        ck_assert_ptr_nonnull(x);
        st = cx_array_read(&a, NULL, 0, out, x, err);
        if (!st)
            *digest = fnv(fnv(0xcbf29ce484222325ULL, a.shape, sizeof a.shape), x, bytes);
        free(x);
    }
    cx_array_close(&a);
    return st;
}

static cx_status read_kept_rows(const char *path, uint64_t *digest, cx_err *err)
{
    cx_array_file a;
    cx_status st = cx_array_open(&a, path, CX_FORMAT_ANY, err);
    if (!st && a.records >= 5) {
        uint32_t keep[2] = {1, 4};
        size_t bytes = 2 * (size_t)a.record_elems * sizeof(float);
        float *x = malloc(bytes);
        ck_assert_ptr_nonnull(x);
        st = cx_array_read(&a, keep, 2, CX_ELEM_F32, x, err);
        if (!st)
            *digest = fnv(0xcbf29ce484222325ULL, x, bytes);
        free(x);
    }
    cx_array_close(&a);
    return st;
}

static cx_status read_labels(const char *path, uint64_t *digest, cx_err *err)
{
    int32_t *y;
    size_t n;
    cx_status st = cx_labels_read(path, 3, "C", &y, &n, err);
    if (!st) {
        *digest = fnv(0xcbf29ce484222325ULL, y, n * sizeof *y);
        free(y);
    }
    return st;
}

/* Group files are read as labels are, then held to the 6 rows of the fixtures. */
static cx_status read_groups(const char *path, uint64_t *digest, cx_err *err)
{
    int32_t *g;
    cx_status st = cx_groups_read(path, 3, "G", 6, "L", &g, err);
    if (!st) {
        *digest = fnv(0xcbf29ce484222325ULL, g, 6 * sizeof *g);
        free(g);
    }
    return st;
}

static cx_status read_group_names(const char *path, uint64_t *digest, cx_err *err)
{
    char **names;
    int n;
    cx_status st = cx_group_names_read(path, &names, &n, err);
    if (!st) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int i = 0; i < n; i++)
            h = fnv(h, names[i], strlen(names[i]) + 1);
        *digest = h;
        cx_strings_free(names, n);
    }
    return st;
}

static cx_status read_captions(const char *path, uint64_t *digest, cx_err *err)
{
    cx_captions c;
    uint32_t keep[2] = {1, 3};
    cx_status st = cx_captions_read(path, 0, "IMG", NULL, 0, &c, err);
    if (st)
        return st;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < c.n; i++)
        h = fnv(h, c.items[i], strlen(c.items[i]) + 1);
    size_t lines = c.lines;
    cx_captions_free(&c);
    if (lines >= 4) {
        if ((st = cx_captions_read(path, lines, "IMG", keep, 2, &c, err)))
            return st;
        ck_assert_uint_eq(c.n, 2);
        cx_captions_free(&c);
    }
    *digest = h;
    return CX_OK;
}

static cx_status read_classes(const char *path, uint64_t *digest, cx_err *err)
{
    cx_classes c;
    cx_status st = cx_classes_read(path, &c, err);
    if (!st) {
        uint64_t h = 0xcbf29ce484222325ULL;
        for (int k = 0; k < c.count; k++)
            for (int s = 0; s < c.num_synonyms[k]; s++)
                h = fnv(h, c.synonyms[k][s], strlen(c.synonyms[k][s]) + 1);
        *digest = h;
        /* Whatever parsed must also build a matcher or say why not. */
        cx_matcher *m;
        cx_err e2;
        if (cx_matcher_new(c.synonyms, c.num_synonyms, c.vetoes, c.num_vetoes, c.count, 0, &m,
                           &e2) == CX_OK) {
            int out[64];
            if (c.count <= 64)
                cx_matcher_match(m, "zero one pair nought", 20, out);
            cx_matcher_free(m);
        } else {
            ck_assert(e2.msg[0]);
        }
        cx_classes_free(&c);
    }
    return st;
}

static cx_status read_templates(const char *path, uint64_t *digest, cx_err *err)
{
    char **t;
    int n;
    cx_status st = cx_templates_read(path, &t, &n, err);
    if (!st) {
        *digest = (uint64_t)n;
        cx_strings_free(t, n);
    }
    return st;
}

static const int32_t subset_labels[6] = {0, 1, 2, 0, 1, 2};

static cx_status read_subset(const char *path, uint64_t *digest, cx_err *err)
{
    uint32_t *idx;
    size_t n;
    cx_status st = cx_subset_read(path, subset_labels, 6, "L", &idx, &n, err);
    if (!st) {
        *digest = fnv(0xcbf29ce484222325ULL, idx, n * sizeof *idx);
        free(idx);
    }
    return st;
}

static cx_status read_freq(const char *path, uint64_t *digest, cx_err *err)
{
    char *names[3] = {"zero", "one", "two"};
    int64_t counts[3];
    cx_status st = cx_freq_read(path, names, 3, counts, err);
    if (!st)
        *digest = fnv(0xcbf29ce484222325ULL, counts, sizeof counts);
    return st;
}

static cx_status read_dataset(const char *path, uint64_t *digest, cx_err *err)
{
    cx_dataset ds;
    cx_status st = cx_dataset_load(path, NULL, &ds, err);
    if (!st) {
        *digest = (uint64_t)ds.train.n * 31 + (uint64_t)ds.num_classes;
        cx_dataset_free(&ds);
    }
    return st;
}

/* The mutated file as the training images of a dataset, loaded with kept rows and captions. */
static cx_status read_as_dataset_images(const char *path, uint64_t *digest, cx_err *err)
{
    char y[4096];
    snprintf(y, sizeof y, "classes: %s\ntrain: {images: %s, labels: %s, captions: %s}\n",
             fixture("tiny-classes.txt"), path, fixture("tiny-labels.txt"),
             fixture("tiny-captions.txt"));
    write_text(tmp("wrap.yaml"), y);
    uint32_t keep[2] = {1, 4};
    cx_load_options lo = {0, NULL, keep, 2};
    cx_dataset ds;
    cx_status st = cx_dataset_load(tmp("wrap.yaml"), &lo, &ds, err);
    if (!st) {
        *digest = fnv(0xcbf29ce484222325ULL, ds.train.x,
                      ds.train.n * ds.train.dim * (ds.train.dtype == CX_DTYPE_U8 ? 1 : 4));
        cx_dataset_free(&ds);
    }
    return st;
}

static cx_status read_counts(const char *path, uint64_t *digest, cx_err *err)
{
    static char *s0[] = {"zero", "nought"}, *s1[] = {"one", "single one"}, *s2[] = {"two", "pair"};
    static char **syn[3] = {s0, s1, s2};
    static int ns[3] = {2, 2, 2};
    cx_matcher *m;
    ck_assert_int_eq(cx_matcher_new(syn, ns, NULL, NULL, 3, CX_MATCH_PLURALS, &m, err), CX_OK);
    int64_t counts[3] = {0};
    size_t lines, matched;
    cx_status st = cx_count_file(m, path, NULL, 0, NULL, counts, &lines, &matched, err);
    if (!st)
        *digest = fnv(0xcbf29ce484222325ULL, counts, sizeof counts);
    cx_matcher_free(m);
    return st;
}

typedef struct {
    const char *name; /* fixture name, or a file made in tmpdir */
    int in_tmp;
    reader_fn read;
    int binary; /* every truncation must fail */
    int gzip;   /* a successful read after a bit flip must give the original data */
} target;

static int cases_run;

static void check_case(const target *t, const char *mutant, uint64_t original, const char *what)
{
    cx_err err;
    cx_err_clear(&err);
    uint64_t digest = 0;
    cx_status st = t->read(mutant, &digest, &err);
    cases_run++;
    if (st == CX_OK) {
        ck_assert_msg(err.msg[0] == '\0', "%s %s: success with a message '%s'", t->name, what,
                      err.msg);
        if (t->gzip)
            ck_assert_msg(digest == original, "%s %s: damaged gzip data read as different data",
                          t->name, what);
        return;
    }
    ck_assert_msg(err.msg[0] != '\0', "%s %s: failure without a message", t->name, what);
    ck_assert_msg(!strchr(err.msg, '\n'), "%s %s: message has a newline: %s", t->name, what,
                  err.msg);
    ck_assert_msg(strchr(err.msg, ':'), "%s %s: message names no file: %s", t->name, what, err.msg);
}

static void fuzz_target(const target *t, int flips)
{
    const char *src = t->in_tmp ? tmp(t->name) : fixture(t->name);
    size_t n;
    unsigned char *orig = read_all(src, &n);
    uint64_t original = 0;
    cx_err err;
    ck_assert_msg(t->read(src, &original, &err) == CX_OK, "%s: the valid file fails: %s", t->name,
                  err.msg);
    /* The mutant keeps the original's name (after a prefix), so format sniffing sees the same name.
     */
    char mutant[1024];
    snprintf(mutant, sizeof mutant, "%s/m-%s", tmpdir, t->name);
    char what[64];
    /* Truncations: every length for small files, 96 spread lengths for larger ones. */
    size_t steps = n <= 400 ? n : 96;
    for (size_t k = 0; k < steps; k++) {
        size_t len = n <= 400 ? k : k * n / steps;
        write_bytes(mutant, orig, len);
        snprintf(what, sizeof what, "cut at %zu", len);
        cx_err e;
        uint64_t d = 0;
        if (t->binary) {
            cx_err_clear(&e);
            cx_status st = t->read(mutant, &d, &e);
            cases_run++;
            ck_assert_msg(st != CX_OK, "%s %s: a truncated file was accepted", t->name, what);
            ck_assert_msg(e.msg[0] && !strchr(e.msg, '\n'), "%s %s: bad message '%s'", t->name,
                          what, e.msg);
        } else {
            check_case(t, mutant, original, what);
        }
    }
    /* Bit flips and byte overwrites at seeded positions. */
    cx_rng r;
    cx_rng_seed(&r, 2024, fnv(0xcbf29ce484222325ULL, t->name, strlen(t->name)));
    unsigned char *m = malloc(n);
    ck_assert_ptr_nonnull(m);
    for (int k = 0; k < flips; k++) {
        memcpy(m, orig, n);
        size_t pos = cx_rng_below(&r, (uint32_t)n);
        if (k % 4 == 3) {
            m[pos] = (unsigned char)(k % 8 == 3 ? 0xff : 0x00);
            snprintf(what, sizeof what, "byte %zu set to 0x%02x", pos, m[pos]);
        } else {
            int bit = (int)cx_rng_below(&r, 8);
            m[pos] ^= (unsigned char)(1u << bit);
            snprintf(what, sizeof what, "bit %d of byte %zu flipped", bit, pos);
        }
        write_bytes(mutant, m, n);
        check_case(t, mutant, original, what);
    }
    free(m);
    free(orig);
}

/* Valid inputs made here rather than committed: a larger gzip IDX (several zlib blocks), and
 * the YAML, SUBSET and frequency files. */
static void make_inputs(void)
{
    enum { IMAGES = 40, H = 28, W = 28 };
    static unsigned char idx[16 + IMAGES * H * W];
    uint32_t x = 1;
    unsigned char *p = idx;
    *p++ = 0, *p++ = 0, *p++ = 8, *p++ = 3;
    uint32_t dims[3] = {IMAGES, H, W};
    for (int i = 0; i < 3; i++) {
        *p++ = (unsigned char)(dims[i] >> 24);
        *p++ = (unsigned char)(dims[i] >> 16);
        *p++ = (unsigned char)(dims[i] >> 8);
        *p++ = (unsigned char)dims[i];
    }
    for (int i = 0; i < IMAGES * H * W; i++) {
        x = x * 1664525u + 1013904223u;
        *p++ =
            (unsigned char)((x >> 28) * 17 * ((i / W) % 3 == 0)); /* some structure, some noise */
    }
    write_gz(tmp("big-images-idx3-ubyte.gz"), idx, sizeof idx);
    char y[4096];
    snprintf(y, sizeof y,
             "name: fuzz\nclasses: %s\ntemplates: %s\ntrain:\n  images: %s\n  labels: %s\n  "
             "captions: %s\n"
             "  n: 6\n  shape: [4, 3]\ntest: {images: %s, labels: %s}\n",
             fixture("tiny-classes.txt"), fixture("tiny-templates.txt"),
             fixture("tiny-images-idx3-ubyte.gz"), fixture("tiny-labels-idx1-ubyte.gz"),
             fixture("tiny-captions.txt"), fixture("f32-features.npy"), fixture("i64-labels.npy"));
    write_text(tmp("d.yaml"), y);
    write_text(tmp("subset.tsv"), "index\tlabel\n0\t0\n2\t2\n3\t0\n5\t2\n");
    write_text(tmp("freqs.tsv"), "zero\t10\none\t0\ntwo\t3\n");
}

START_TEST(fuzz_every_reader)
{
    make_inputs();
    const target targets[] = {
        {"tiny-images-idx3-ubyte", 0, read_array, 1, 0},
        {"tiny-images-idx3-ubyte.gz", 0, read_array, 1, 1},
        {"tiny-images-idx3-ubyte.gz", 0, read_as_dataset_images, 1, 1},
        {"big-images-idx3-ubyte.gz", 1, read_kept_rows, 1, 1},
        {"tiny-labels-idx1-ubyte", 0, read_labels, 1, 0},
        {"tiny-labels-idx1-ubyte.gz", 0, read_labels, 1, 1},
        {"u8-images.npy", 0, read_array, 1, 0},
        {"u8-images.npy.gz", 0, read_as_dataset_images, 1, 1},
        {"f32-features.npy", 0, read_kept_rows, 1, 0},
        {"f64-features-v2.npy", 0, read_array, 1, 0},
        {"i64-labels.npy", 0, read_labels, 1, 0},
        {"i32-labels.npy", 0, read_labels, 1, 0},
        {"tiny-labels.txt", 0, read_labels, 0, 0},
        {"tiny-labels.txt", 0, read_groups, 0, 0},
        {"i64-labels.npy", 0, read_groups, 1, 0},
        {"tiny-classes.txt", 0, read_group_names, 0, 0},
        {"tiny-captions.txt", 0, read_captions, 0, 0},
        {"tiny-captions.txt", 0, read_counts, 0, 0},
        {"tiny-classes.txt", 0, read_classes, 0, 0},
        {"tiny-templates.txt", 0, read_templates, 0, 0},
        {"subset.tsv", 1, read_subset, 0, 0},
        {"freqs.tsv", 1, read_freq, 0, 0},
        {"d.yaml", 1, read_dataset, 0, 0},
    };
    for (size_t k = 0; k < sizeof targets / sizeof targets[0]; k++)
        fuzz_target(&targets[k], 200);
    ck_assert_int_gt(cases_run, 5000);
    printf("fuzz: %d cases\n", cases_run);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data_fuzz");
    TCase *tc = tcase_create("fuzz");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    /* 2.8 s under ASan and UBSan; about 5x that. */
    tcase_set_timeout(tc, 15);
    tcase_add_test(tc, fuzz_every_reader);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
