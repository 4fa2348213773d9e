/* The synthetic generator: its files read back through the dataset loader with the promised
 * shapes and counts, the same bytes for any thread count, and knobs that change what the data
 * and captions carry. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data_util.h"

#include "lib/base/threads.h"
#include "lib/data/array.h"
#include "lib/data/dataset.h"
#include "lib/data/subset.h"
#include "lib/data/synth.h"
#include "lib/data/synth_attr.h"

static void small_opts(cx_synth_opts *o)
{
    cx_synth_defaults(o);
    o->classes = 6;
    o->superclasses = 2;
    o->n = 600;
    o->test_per_class = 5;
    o->dim = 10;
    o->latent = 4;
    o->modes = 2;
    o->attributes = 8;
    o->seed = 5;
}

static const char *const parts[] = {"dataset.yaml",
                                    "classes.txt",
                                    "templates.txt",
                                    "train-features.npy",
                                    "train-labels.npy",
                                    "train-true-labels.npy",
                                    "train-captions.txt",
                                    "test-features.npy",
                                    "test-labels.npy",
                                    "test-captions.txt",
                                    "train-counts.tsv",
                                    "synth.json",
                                    NULL};

static int32_t *read_labels(const char *path, int C, size_t *n)
{
    int32_t *y;
    cx_err err;
    ck_assert_int_eq(cx_labels_read(path, C, "C", &y, n, &err), CX_OK);
    return y;
}

START_TEST(synth_files_load_with_promised_shapes_and_counts)
{
    cx_synth_opts o;
    small_opts(&o);
    o.open_world = 0.2;
    o.open_classes = 3;
    o.label_noise = 0.1;
    cx_err err;
    ck_assert_int_eq(cx_synth_write(&o, tmp("ds"), &err), CX_OK);
    for (int k = 0; parts[k]; k++)
        ck_assert_msg(file_exists(path_in(tmp("ds"), parts[k])), "%s missing", parts[k]);
    cx_dataset ds;
    ck_assert_int_eq(cx_dataset_load(path_in(tmp("ds"), "dataset.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_int_eq(ds.num_classes, 9);
    ck_assert_int_eq(ds.num_eval_classes, 6);
    ck_assert_int_eq(ds.num_synonyms[0], 3);
    ck_assert_ptr_nonnull(strchr(ds.synonyms[4][2], ' ')); /* "word supername" */
    ck_assert_int_eq(ds.num_templates, 8);
    ck_assert_uint_eq(ds.train.n, 600);
    ck_assert_uint_eq(ds.train.dim, 10);
    ck_assert_int_eq(ds.train.rank, 1);
    ck_assert_int_eq(ds.train.dtype, CX_DTYPE_F32);
    ck_assert_ptr_nonnull(ds.train.captions);
    ck_assert_uint_eq(ds.test.n, 30);
    int per[6] = {0};
    for (size_t i = 0; i < ds.test.n; i++) {
        ck_assert_int_lt(ds.test.y[i], 6);
        per[ds.test.y[i]]++;
    }
    for (int c = 0; c < 6; c++)
        ck_assert_int_eq(per[c], 5);

    /* True counts: 480 evaluated samples, 120 open-world ones, every concept present. */
    int64_t counts[9];
    ck_assert_int_eq(
        cx_freq_read(path_in(tmp("ds"), "train-counts.tsv"), ds.class_names, 9, counts, &err),
        CX_OK);
    int64_t eval = 0, open = 0;
    for (int c = 0; c < 9; c++) {
        ck_assert_int_ge(counts[c], 1);
        *(c < 6 ? &eval : &open) += counts[c];
    }
    ck_assert_int_eq(eval, 480);
    ck_assert_int_eq(open, 120);
    for (int c = 1; c < 6; c++)
        ck_assert_int_ge(counts[c - 1], counts[c]); /* the long tail runs in class order */
    size_t n;
    int32_t *truth = read_labels(path_in(tmp("ds"), "train-true-labels.npy"), 9, &n);
    ck_assert_uint_eq(n, 600);
    int64_t seen[9] = {0};
    int noisy = 0;
    for (size_t i = 0; i < n; i++) {
        seen[truth[i]]++;
        if (truth[i] != ds.train.y[i]) {
            noisy++;
            ck_assert_int_lt(truth[i], 6); /* only evaluated classes get wrong labels */
            ck_assert_int_lt(ds.train.y[i], 6);
        }
    }
    for (int c = 0; c < 9; c++)
        ck_assert_int_eq(seen[c], counts[c]);
    ck_assert_int_ge(noisy, 25); /* 10% of 480, binomial: 48 +- 20 */
    ck_assert_int_le(noisy, 75);
    free(truth);
    cx_dataset_free(&ds);
}
END_TEST

/* Found by scripts/crash_trials.sh: a synth killed while generating left its hidden stage in
 * DIR for good. The next synth removes the stages of writers that are gone, not a live one's. */
START_TEST(synth_removes_stages_of_killed_writers)
{
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    char stale[1200], live[1200], name[64];
    ck_assert_int_eq(mkdir(tmp("ds"), 0755), 0);
    snprintf(name, sizeof name, ".synth-%ld-Ab12Cd", (long)child);
    snprintf(stale, sizeof stale, "%s", path_in(tmp("ds"), name));
    ck_assert_int_eq(mkdir(stale, 0755), 0);
    write_text(path_in(stale, "train-features.npy"), "half");
    snprintf(name, sizeof name, ".synth-%ld-Ef34Gh", (long)getpid());
    snprintf(live, sizeof live, "%s", path_in(tmp("ds"), name));
    ck_assert_int_eq(mkdir(live, 0755), 0);
    cx_synth_opts o;
    small_opts(&o);
    cx_err err;
    ck_assert_int_eq(cx_synth_write(&o, tmp("ds"), &err), CX_OK);
    ck_assert(!file_exists(stale));
    ck_assert(file_exists(live));
    ck_assert_int_eq(rmdir(live), 0);
}
END_TEST

START_TEST(synth_same_bytes_for_any_thread_count)
{
    cx_synth_opts o;
    small_opts(&o);
    o.n = 5000; /* several chunks, so both threads work */
    o.open_world = 0.1;
    o.label_noise = 0.05;
    cx_err err;
    cx_threads_set(1);
    ck_assert_int_eq(cx_synth_write(&o, tmp("a"), &err), CX_OK);
    cx_threads_set(2);
    ck_assert_int_eq(cx_synth_write(&o, tmp("b"), &err), CX_OK);
    o.seed = 6;
    ck_assert_int_eq(cx_synth_write(&o, tmp("c"), &err), CX_OK);
    cx_threads_set(1);
    for (int k = 0; parts[k]; k++) {
        size_t na, nb;
        unsigned char *a = read_all(path_in(tmp("a"), parts[k]), &na);
        unsigned char *b = read_all(path_in(tmp("b"), parts[k]), &nb);
        ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "%s differs between 1 and 2 threads",
                      parts[k]);
        free(a);
        free(b);
    }
    size_t na, nc;
    unsigned char *a = read_all(path_in(tmp("a"), "train-features.npy"), &na);
    unsigned char *c = read_all(path_in(tmp("c"), "train-features.npy"), &nc);
    ck_assert_uint_eq(na, nc);
    ck_assert_int_ne(memcmp(a, c, na), 0);
    free(a);
    free(c);
}
END_TEST

START_TEST(synth_caption_modes_change_text_not_images)
{
    cx_synth_opts o;
    small_opts(&o);
    o.cooccur = 0.5;
    cx_err err;
    const char *dirs[3] = {"tmpl", "syn", "desc"};
    for (int m = 0; m < 3; m++) {
        o.captions = (cx_caption_mode)m;
        ck_assert_int_eq(cx_synth_write(&o, tmp(dirs[m]), &err), CX_OK);
    }
    size_t n0, n2;
    unsigned char *f0 = read_all(path_in(tmp("tmpl"), "train-features.npy"), &n0);
    unsigned char *f2 = read_all(path_in(tmp("desc"), "train-features.npy"), &n2);
    ck_assert(n0 == n2 && memcmp(f0, f2, n0) == 0);
    free(f0);
    free(f2);

    cx_dataset ds[3];
    for (int m = 0; m < 3; m++)
        ck_assert_int_eq(cx_dataset_load(path_in(tmp(dirs[m]), "dataset.yaml"), NULL, &ds[m], &err),
                         CX_OK);
    size_t n;
    int32_t *truth = read_labels(path_in(tmp("tmpl"), "train-true-labels.npy"), 6, &n);
    static const char *adjectives[] = {"red",   "blue",  "green", "yellow",
                                       "black", "white", "brown", "grey"};
    int with_synonym = 0, with_attr = 0, with_other = 0, longer = 0;
    for (size_t i = 0; i < n; i++) {
        char want[256];
        int c = truth[i];
        snprintf(want, sizeof want, "a photo of a %s.", ds[0].class_names[c]);
        ck_assert_str_eq(ds[0].train.captions[i], want);
        /* Synonym mode names the true class by one of its synonyms. */
        int named = 0;
        for (int k = 0; k < ds[1].num_synonyms[c]; k++)
            named |= strstr(ds[1].train.captions[i], ds[1].synonyms[c][k]) != NULL;
        ck_assert_msg(named, "'%s' does not name class %d", ds[1].train.captions[i], c);
        with_synonym += strstr(ds[1].train.captions[i], ds[1].class_names[c]) == NULL;
        const char *d = ds[2].train.captions[i];
        for (int a = 0; a < 8; a++) {
            char w[32];
            snprintf(w, sizeof w, "%s ", adjectives[a]);
            if (strstr(d, w)) {
                with_attr++;
                break;
            }
        }
        for (int k = 0; k < ds[2].num_classes; k++)
            if (k != c && strstr(d, ds[2].class_names[k]))
                with_other++;
        longer += strlen(d) > strlen(ds[1].train.captions[i]);
    }
    ck_assert_int_gt(with_synonym, 200); /* 2 of 3 names are synonyms */
    ck_assert_int_gt(with_attr, 300);    /* 1 - 0.3^2 of samples have an attribute */
    ck_assert_int_gt(with_other, 30);    /* a co-occurring concept, sometimes by its name */
    ck_assert_int_gt(longer, 400);
    free(truth);
    for (int m = 0; m < 3; m++)
        cx_dataset_free(&ds[m]);
}
END_TEST

START_TEST(synth_profiles_give_the_requested_imbalance)
{
    cx_synth_opts o;
    small_opts(&o);
    o.classes = 10;
    o.n = 10000;
    o.test_per_class = 0;
    cx_err err;
    const cx_profile profiles[3] = {CX_PROFILE_PARETO, CX_PROFILE_EXP, CX_PROFILE_UNIFORM};
    for (int p = 0; p < 3; p++) {
        o.profile = profiles[p];
        ck_assert_int_eq(cx_synth_write(&o, tmp("p"), &err), CX_OK);
        size_t n;
        int32_t *y = read_labels(path_in(tmp("p"), "train-true-labels.npy"), 10, &n);
        int64_t c[10] = {0};
        for (size_t i = 0; i < n; i++)
            c[y[i]]++;
        free(y);
        if (profiles[p] == CX_PROFILE_UNIFORM) {
            for (int k = 0; k < 10; k++)
                ck_assert_int_eq(c[k], 1000);
        } else {
            ck_assert_double_eq_tol((double)c[0] / (double)c[9], 100.0, 3.0);
            for (int k = 1; k < 10; k++)
                ck_assert_int_gt(c[k - 1], c[k]);
        }
        if (profiles[p] ==
            CX_PROFILE_PARETO) /* Zipf with alpha 2: class 1 has a quarter of class 0 */
            ck_assert_double_eq_tol((double)c[1] / (double)c[0], 0.25, 0.01);
    }
    ck_assert(!file_exists(path_in(tmp("p"), "test-features.npy")));
}
END_TEST

/* Mean distance of features to their class mean, and nearest-class-mean accuracy on test. */
static void class_geometry(const char *dir, double *within, double *ncm_acc)
{
    cx_dataset ds;
    cx_err err;
    ck_assert_int_eq(cx_dataset_load(path_in(dir, "dataset.yaml"), NULL, &ds, &err), CX_OK);
    size_t D = ds.train.dim;
    int C = ds.num_eval_classes;
    double *mean = calloc((size_t)C * D, sizeof *mean);
    int *cnt = calloc((size_t)C, sizeof *cnt);
    float *x = malloc(ds.train.n * D * sizeof *x);
    cx_split_gather_f32(&ds.train, NULL, ds.train.n, x);
    for (size_t i = 0; i < ds.train.n; i++) {
        cnt[ds.train.y[i]]++;
        for (size_t d = 0; d < D; d++)
            mean[ds.train.y[i] * D + d] += x[i * D + d];
    }
    for (int c = 0; c < C; c++)
        for (size_t d = 0; d < D; d++)
            mean[c * D + d] /= cnt[c];
    double w = 0;
    for (size_t i = 0; i < ds.train.n; i++) {
        double s = 0;
        for (size_t d = 0; d < D; d++) {
            double e = x[i * D + d] - mean[ds.train.y[i] * D + d];
            s += e * e;
        }
        w += sqrt(s);
    }
    *within = w / (double)ds.train.n;
    float *t = malloc(ds.test.n * D * sizeof *t);
    cx_split_gather_f32(&ds.test, NULL, ds.test.n, t);
    int right = 0;
    for (size_t i = 0; i < ds.test.n; i++) {
        int best = 0;
        double bd = INFINITY;
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (size_t d = 0; d < D; d++) {
                double e = t[i * D + d] - mean[c * D + d];
                s += e * e;
            }
            if (s < bd) {
                bd = s;
                best = c;
            }
        }
        right += best == ds.test.y[i];
    }
    *ncm_acc = (double)right / (double)ds.test.n;
    free(mean);
    free(cnt);
    free(x);
    free(t);
    cx_dataset_free(&ds);
}

START_TEST(synth_knobs_change_the_features)
{
    cx_synth_opts o;
    small_opts(&o);
    o.profile = CX_PROFILE_UNIFORM;
    o.n = 1200;
    o.test_per_class = 50;
    o.dim = 32;
    o.modes = 1;
    o.super_sep = 2.0;
    o.class_sep = 1.5;
    o.spread = 0.2;
    o.cooccur = 0;
    o.attr_rate = 0;
    cx_err err;
    ck_assert_int_eq(cx_synth_write(&o, tmp("tight"), &err), CX_OK);
    o.spread = 1.0;
    ck_assert_int_eq(cx_synth_write(&o, tmp("loose"), &err), CX_OK);
    double w_tight, w_loose, acc_tight, acc_loose;
    class_geometry(tmp("tight"), &w_tight, &acc_tight);
    class_geometry(tmp("loose"), &w_loose, &acc_loose);
    ck_assert_double_gt(w_loose, 1.5 * w_tight);
    ck_assert_double_gt(acc_tight, 0.9); /* well-separated classes: the features carry the class */
    ck_assert_double_lt(acc_loose, acc_tight);

    o.dtype = CX_DTYPE_U8;
    ck_assert_int_eq(cx_synth_write(&o, tmp("u8"), &err), CX_OK);
    cx_dataset ds;
    ck_assert_int_eq(cx_dataset_load(path_in(tmp("u8"), "dataset.yaml"), NULL, &ds, &err), CX_OK);
    ck_assert_int_eq(ds.train.dtype, CX_DTYPE_U8);
    const uint8_t *x = ds.train.x;
    int lo = 255, hi = 0;
    for (size_t i = 0; i < ds.train.n * ds.train.dim; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    ck_assert_int_lt(lo, 60);
    ck_assert_int_gt(hi, 195);
    cx_dataset_free(&ds);
}
END_TEST

static float *read_f32(const char *path, size_t *rows, size_t *cols)
{
    cx_array_file a;
    cx_err err;
    ck_assert_int_eq(cx_array_open(&a, path, CX_FORMAT_ANY, &err), CX_OK);
    *rows = (size_t)a.records;
    *cols = (size_t)a.record_elems;
    float *x = malloc(*rows * *cols * sizeof *x);
    ck_assert_int_eq(cx_array_read(&a, NULL, 0, CX_ELEM_F32, x, &err), CX_OK);
    cx_array_close(&a);
    return x;
}

/* Lines of a text file (owned copy in *buf). */
static int split_lines(char *text, size_t n, char **lines, int max)
{
    int k = 0;
    char *p = text;
    while (p < text + n && k < max) {
        char *e = memchr(p, '\n', (size_t)(text + n - p));
        if (!e)
            break;
        *e = '\0';
        lines[k++] = p;
        p = e + 1;
    }
    return k;
}

START_TEST(synth_spurious_attribute_groups_and_agreement)
{
    cx_synth_opts o;
    small_opts(&o);
    o.n = 20000;
    o.profile = CX_PROFILE_UNIFORM;
    o.test_per_class = 500;
    o.val_per_class = 50;
    cx_err err;
    ck_assert_int_eq(cx_synth_write(&o, tmp("off"), &err), CX_OK);
    o.spurious = 0.9;
    o.spurious_values = 3;
    o.spurious_strength = 2.0;
    o.spurious_captions = 0.5;
    cx_threads_set(1);
    ck_assert_int_eq(cx_synth_write(&o, tmp("on"), &err), CX_OK);
    cx_threads_set(2);
    ck_assert_int_eq(cx_synth_write(&o, tmp("on2"), &err), CX_OK);
    cx_threads_set(1);
    static const char *const spur_parts[] = {"train-features.npy", "train-groups.npy",
                                             "test-groups.npy", "val-groups.npy",
                                             "group-names.txt", "train-captions.txt",
                                             "synth.json", "dataset.yaml", NULL};
    for (int k = 0; spur_parts[k]; k++) {
        size_t na, nb;
        unsigned char *a = read_all(path_in(tmp("on"), spur_parts[k]), &na);
        unsigned char *b = read_all(path_in(tmp("on2"), spur_parts[k]), &nb);
        ck_assert_msg(na == nb && memcmp(a, b, na) == 0, "%s differs between 1 and 2 threads",
                      spur_parts[k]);
        free(a);
        free(b);
    }
    ck_assert(!file_exists(path_in(tmp("off"), "train-groups.npy")));
    ck_assert(!file_exists(path_in(tmp("off"), "group-names.txt")));

    cx_dataset ds;
    ck_assert_int_eq(cx_dataset_load(path_in(tmp("on"), "dataset.yaml"), NULL, &ds, &err), CX_OK);
    const int V = 3, C = 6;
    ck_assert_int_eq(ds.num_groups, C * V);
    char want[256];
    snprintf(want, sizeof want, "%s/2", ds.class_names[1]);
    ck_assert_str_eq(ds.group_names[1 * V + 2], want);
    ck_assert_ptr_nonnull(ds.train.groups);
    ck_assert_ptr_nonnull(ds.test.groups);
    /* Training: the class's own value (c mod V) with probability P = 0.9, the other values
     * evenly otherwise; sd of the rate over 20,000 draws is 0.0021. */
    size_t agree = 0, other[3] = {0};
    for (size_t i = 0; i < ds.train.n; i++) {
        int g = ds.train.groups[i], c = g / V, v = g % V;
        ck_assert_int_eq(c, ds.train.y[i]); /* aligned with the rows */
        if (v == c % V)
            agree++;
        else
            other[(v - c % V + V) % V]++;
    }
    double rate = (double)agree / (double)ds.train.n;
    ck_assert_msg(fabs(rate - 0.9) < 0.01, "train agreement %g, wanted 0.9", rate);
    size_t dis = ds.train.n - agree; /* about 2,000, split in halves: sd 22 */
    ck_assert_msg(labs((long)other[1] - (long)other[2]) < 200, "other values %zu, %zu", other[1],
                  other[2]);
    ck_assert_uint_eq(other[1] + other[2], dis);
    /* Test: independent of the class: per class, each value about a third of its 500. */
    int cell[6][3] = {{0}};
    size_t tagree = 0;
    for (size_t i = 0; i < ds.test.n; i++) {
        int g = ds.test.groups[i];
        ck_assert_int_eq(g / V, ds.test.y[i]);
        cell[g / V][g % V]++;
        tagree += g % V == (g / V) % V;
    }
    for (int c = 0; c < C; c++)
        for (int v = 0; v < V; v++) /* 166.7 +- 10.5 */
            ck_assert_msg(cell[c][v] > 120 && cell[c][v] < 215, "test cell (%d, %d): %d", c, v,
                          cell[c][v]);
    double trate = (double)tagree / (double)ds.test.n;
    ck_assert_msg(fabs(trate - 1.0 / 3) < 0.035, "test agreement %g", trate);
    cx_dataset dv;
    cx_load_options lo = {CX_LOAD_VAL, NULL, NULL, 0};
    ck_assert_int_eq(cx_dataset_load(path_in(tmp("on"), "dataset.yaml"), &lo, &dv, &err), CX_OK);
    ck_assert_ptr_nonnull(dv.val.groups);
    ck_assert_uint_eq(dv.val.n, 300);
    for (size_t i = 0; i < dv.val.n; i++)
        ck_assert_int_eq(dv.val.groups[i] / V, dv.val.y[i]);
    cx_dataset_free(&dv);

    /* The attribute is a shift of length S along one direction per value, on the features of
     * the same dataset without it (its draws come from their own streams). */
    size_t r0, c0, r1, c1;
    float *xo = read_f32(path_in(tmp("off"), "train-features.npy"), &r0, &c0);
    float *xs = read_f32(path_in(tmp("on"), "train-features.npy"), &r1, &c1);
    ck_assert_uint_eq(r0, r1);
    ck_assert_uint_eq(c0, c1);
    float dir[3][16];
    int have[3] = {0};
    for (size_t i = 0; i < r0; i++) {
        int v = ds.train.groups[i] % V;
        double ss = 0;
        for (size_t d = 0; d < c0; d++) {
            float diff = xs[i * c0 + d] - xo[i * c0 + d];
            ss += (double)diff * diff;
            if (!have[v])
                dir[v][d] = diff;
            else
                ck_assert_msg(fabsf(diff - dir[v][d]) < 1e-4f, "sample %zu: another shift", i);
        }
        have[v] = 1;
        ck_assert_msg(fabs(sqrt(ss) - 2.0) < 1e-4, "sample %zu: shift of length %g", i, sqrt(ss));
    }
    free(xo);
    free(xs);
    /* Captions: the attribute-free caption, or it with " on a WORD background" (half). */
    size_t na, nb;
    char *ca = (char *)read_all(path_in(tmp("off"), "train-captions.txt"), &na);
    char *cb = (char *)read_all(path_in(tmp("on"), "train-captions.txt"), &nb);
    static char *la[20000], *lb[20000];
    ck_assert_int_eq(split_lines(ca, na, la, 20000), 20000);
    ck_assert_int_eq(split_lines(cb, nb, lb, 20000), 20000);
    int named = 0;
    for (int i = 0; i < 20000; i++) {
        if (!strcmp(la[i], lb[i]))
            continue;
        named++;
        ck_assert_msg(strstr(lb[i], " background"), "caption %d: '%s'", i, lb[i]);
    }
    ck_assert_msg(named > 9500 && named < 10500, "%d captions name the attribute", named);
    free(ca);
    free(cb);
    cx_dataset_free(&ds);

    small_opts(&o);
    o.spurious = 1.5;
    ck_assert_fail_msg(cx_synth_check(&o, &err), err, CX_EUSAGE,
                       "spurious: 1.5 is out of range [0, 1]");
    small_opts(&o);
    o.spurious_values = 1;
    ck_assert_fail_msg(cx_synth_check(&o, &err), err, CX_EUSAGE,
                       "spurious_values: 1 is out of range [2, 64]");
}
END_TEST

START_TEST(synth_rejects_bad_options)
{
    cx_synth_opts o;
    cx_err err;
    small_opts(&o);
    o.classes = 1;
    ck_assert_fail_msg(cx_synth_check(&o, &err), err, CX_EUSAGE,
                       "classes: 1 is out of range [2, 10000]");
    small_opts(&o);
    o.n = 5;
    ck_assert_fail_msg(cx_synth_check(&o, &err), err, CX_EUSAGE,
                       "n: 5 training samples cannot give each of the 6 classes one");
    small_opts(&o);
    o.profile = CX_PROFILE_MATCH;
    ck_assert_fail_msg(
        cx_synth_check(&o, &err), err, CX_EUSAGE,
        "profile: synth draws exp, pareto, step or uniform frequencies, not match");
    small_opts(&o);
    o.open_world = 0.5;
    o.open_classes = 400;
    ck_assert_fail_has(cx_synth_check(&o, &err), err, CX_EUSAGE,
                       "open_world: 300 open-world samples");
    /* A file where the folder should be. */
    write_text(tmp("file"), "x");
    small_opts(&o);
    ck_assert_fail_has(cx_synth_write(&o, path_in(tmp("file"), "sub"), &err), err, CX_EIO,
                       "cannot create folder");
}
END_TEST

static char *counter_word(void *ctx, cx_rng *r)
{
    (void)r;
    int *next = ctx;
    char *w = malloc(16);
    if (w)
        snprintf(w, 16, "w%d", (*next)++);
    return w;
}

/* The informative attributes: evaluated classes draw from their superclass's shared pool,
 * open-world concepts from the shared or their own pool as open_share says; a draw adds the
 * patterns of what it reports present; a caption names min(2, present) of the present ones,
 * each equally often. */
START_TEST(synth_attrs_pools_draws_and_naming)
{
    enum { C = 30, K = 30, S = 3, L = 4, SLOTS = CX_SYNTH_ATTR_PER_CLASS };
    const int P = CX_SYNTH_ATTR_POOL;
    int super_of[C + K];
    for (int c = 0; c < C + K; c++)
        super_of[c] = c % S;
    cx_err err;
    for (int share = 0; share <= 2; share++) {
        cx_synth_attrs a;
        int next = 0;
        ck_assert_int_eq(cx_synth_attrs_build(&a, 0.5, share / 2.0, 1.0, CX_ATTR_SCOPE_SUPERCLASS,
                                              CX_SYNTH_ATTR_NAMED, C, C + K, S, L, super_of, 7,
                                              99, counter_word, &next, &err),
                         CX_OK);
        ck_assert_int_eq(a.nwords, 2 * S * P);
        int shared_open = 0;
        for (int c = 0; c < C + K; c++)
            for (int k = 0; k < SLOTS; k++) {
                int w = a.of[c * SLOTS + k], in_shared = w < S * P;
                int pool_super = in_shared ? w / P : (w - S * P) / P;
                ck_assert_int_eq(pool_super, super_of[c]);
                for (int j = 0; j < k; j++)
                    ck_assert_int_ne(a.of[c * SLOTS + j], w);
                if (c < C)
                    ck_assert(in_shared);
                else
                    shared_open += in_shared;
            }
        if (share == 0)
            ck_assert_int_eq(shared_open, 0);
        else if (share == 2)
            ck_assert_int_eq(shared_open, K * SLOTS);
        else
            ck_assert(shared_open > K * SLOTS / 4 && shared_open < 3 * K * SLOTS / 4);
        /* A draw adds exactly the patterns of the slots it reports. */
        cx_rng r;
        cx_rng_seed(&r, 1, 2);
        for (int t = 0; t < 50; t++) {
            float z[L] = {0}, want[L] = {0};
            int c = t % (C + K);
            unsigned present = cx_synth_attrs_draw(&a, &r, c, z);
            for (int k = 0; k < SLOTS; k++)
                if ((present >> k) & 1u)
                    for (int l = 0; l < L; l++)
                        want[l] += a.dir[a.of[c * SLOTS + k] * L + l];
            for (int l = 0; l < L; l++)
                ck_assert_float_eq_tol(z[l], want[l], 1e-6);
        }
        /* Slots 0, 1 and 3 present: each named 2 times in 3, slot 2 never. */
        int named_count[SLOTS] = {0};
        const int trials = 6000;
        for (int t = 0; t < trials; t++) {
            int out[CX_SYNTH_ATTR_PER_CLASS];
            int n = cx_synth_attrs_named(&a, &r, 0, 0xbu, out);
            ck_assert_int_eq(n, 2);
            for (int i = 0; i < n; i++)
                for (int k = 0; k < SLOTS; k++)
                    named_count[k] += out[i] == a.of[k];
        }
        ck_assert_int_eq(named_count[2], 0);
        for (int k = 0; k < SLOTS; k += k == 1 ? 2 : 1)
            ck_assert_msg(named_count[k] > 3700 && named_count[k] < 4300, "slot %d named %d times",
                          k, named_count[k]);
        int out[CX_SYNTH_ATTR_PER_CLASS];
        ck_assert_int_eq(cx_synth_attrs_named(&a, &r, 0, 0x4u, out), 1);
        ck_assert_int_eq(out[0], a.of[2]);
        ck_assert_int_eq(cx_synth_attrs_named(&a, &r, 0, 0, out), 0);
        cx_synth_attrs_free(&a);
    }
}
END_TEST

/* The global scope: one pool of CX_SYNTH_ATTR_GLOBAL_POOL words for every evaluated class
 * whatever its superclass (one open-only pool after it), attributes shared across
 * superclasses; named_max caps what a caption names, each present slot equally often. */
START_TEST(synth_attrs_global_scope_and_named_max)
{
    enum { C = 40, K = 20, S = 4, L = 3, SLOTS = CX_SYNTH_ATTR_PER_CLASS };
    const int P = CX_SYNTH_ATTR_GLOBAL_POOL;
    int super_of[C + K];
    for (int c = 0; c < C + K; c++)
        super_of[c] = c % S;
    cx_err err;
    cx_synth_attrs a;
    int next = 0;
    ck_assert_int_eq(cx_synth_attrs_build(&a, 0.5, 0.0, 1.0, CX_ATTR_SCOPE_GLOBAL, 1, C, C + K, S,
                                          L, super_of, 7, 99, counter_word, &next, &err),
                     CX_OK);
    ck_assert_int_eq(a.npools, 1);
    ck_assert_int_eq(a.pool, P);
    ck_assert_int_eq(a.nwords, 2 * P);
    int supers_of_word[2 * CX_SYNTH_ATTR_GLOBAL_POOL] = {0};
    for (int c = 0; c < C + K; c++)
        for (int k = 0; k < SLOTS; k++) {
            int w = a.of[c * SLOTS + k];
            if (c < C) {
                ck_assert(w < P);
                supers_of_word[w] |= 1 << super_of[c];
            } else {
                ck_assert(w >= P && w < 2 * P); /* open_share 0: the open-only pool */
            }
        }
    int across = 0;
    for (int w = 0; w < P; w++)
        across += supers_of_word[w] != 0 && (supers_of_word[w] & (supers_of_word[w] - 1)) != 0;
    ck_assert_msg(across >= P / 2, "only %d of %d words on classes of two superclasses", across, P);
    /* named_max 1: one of the present slots 0, 1, 3, each a third of the time. */
    cx_rng r;
    cx_rng_seed(&r, 3, 4);
    int named_count[SLOTS] = {0};
    for (int t = 0; t < 6000; t++) {
        int out[CX_SYNTH_ATTR_PER_CLASS];
        ck_assert_int_eq(cx_synth_attrs_named(&a, &r, 5, 0xbu, out), 1);
        for (int k = 0; k < SLOTS; k++)
            named_count[k] += out[0] == a.of[5 * SLOTS + k];
    }
    ck_assert_int_eq(named_count[2], 0);
    for (int k = 0; k < SLOTS; k += k == 1 ? 2 : 1)
        ck_assert_msg(named_count[k] > 1800 && named_count[k] < 2200, "slot %d named %d times", k,
                      named_count[k]);
    cx_synth_attrs_free(&a);
    /* named_max 4 names every present slot, 0 none. */
    for (int m = 0; m <= 4; m += 4) {
        next = 0;
        ck_assert_int_eq(cx_synth_attrs_build(&a, 0.5, 0.0, 1.0, CX_ATTR_SCOPE_GLOBAL, m, C,
                                              C + K, S, L, super_of, 7, 99, counter_word, &next,
                                              &err),
                         CX_OK);
        int out[CX_SYNTH_ATTR_PER_CLASS];
        ck_assert_int_eq(cx_synth_attrs_named(&a, &r, 5, 0xbu, out), m ? 3 : 0);
        cx_synth_attrs_free(&a);
    }
    /* The scope and named_max reach cx_synth_check: refused without attr_info. */
    cx_synth_opts o = CX_SYNTH_DEFAULTS;
    o.attr_scope = CX_ATTR_SCOPE_GLOBAL;
    ck_assert_int_eq(cx_synth_check(&o, &err), CX_EUSAGE);
    o.attr_info = 0.5;
    ck_assert_int_eq(cx_synth_check(&o, &err), CX_OK);
    o.attr_named = 5;
    ck_assert_int_eq(cx_synth_check(&o, &err), CX_EUSAGE);
    o.attr_named = 0;
    o.attr_info = 0;
    o.attr_scope = CX_ATTR_SCOPE_SUPERCLASS;
    ck_assert_int_eq(cx_synth_check(&o, &err), CX_EUSAGE);
}
END_TEST

static Suite *synth_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("synth");
    tcase_add_checked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, synth_files_load_with_promised_shapes_and_counts);
    tcase_add_test(tc, synth_same_bytes_for_any_thread_count);
    tcase_add_test(tc, synth_removes_stages_of_killed_writers);
    tcase_add_test(tc, synth_caption_modes_change_text_not_images);
    tcase_add_test(tc, synth_profiles_give_the_requested_imbalance);
    tcase_add_test(tc, synth_knobs_change_the_features);
    tcase_add_test(tc, synth_rejects_bad_options);
    tcase_add_test(tc, synth_spurious_attribute_groups_and_agreement);
    tcase_add_test(tc, synth_attrs_pools_draws_and_naming);
    tcase_add_test(tc, synth_attrs_global_scope_and_named_max);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(synth_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
