/* Fuzz target: the dataset YAML (cx_dataset_load). The YAML lives in a scratch folder that
 * also holds small valid files for it to name (classes.txt, templates.txt, images-idx3-ubyte,
 * labels-idx1-ubyte, labels.txt, features.npy, captions.txt, group_names.txt, groups.txt,
 * embeddings.npy), so the fuzzer explores the keys and their checks rather than the readers.
 * The first byte picks what to load; the rest is the YAML. */
#include "tests/fuzz/fuzz.h"

#include "lib/data/dataset.h"
#include "lib/data/npy.h"

static void write_fixed_files(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    static const char classes[] = "cat|kitten|!toy\ndog\nbird\n";
    static const char templates[] = "a photo of a {}.\n";
    static const char labels_txt[] = "0\n1\n2\n0\n";
    static const char captions[] = "a cat\na dog\na bird\nkitten on a mat\n";
    static const char group_names[] = "cat-land\ncat-water\nother\n";
    static const char groups[] = "0\n2\n2\n1\n";
    static const unsigned char images[16 + 16] = {0, 0, 8, 3, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 2,
                                                  1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                                  13, 14, 15, 16};
    static const unsigned char labels_idx[8 + 4] = {0, 0, 8, 1, 0, 0, 0, 4, 0, 1, 2, 0};
    fuzz_file("classes.txt", classes, sizeof classes - 1);
    fuzz_file("templates.txt", templates, sizeof templates - 1);
    fuzz_file("labels.txt", labels_txt, sizeof labels_txt - 1);
    fuzz_file("captions.txt", captions, sizeof captions - 1);
    fuzz_file("group_names.txt", group_names, sizeof group_names - 1);
    fuzz_file("groups.txt", groups, sizeof groups - 1);
    fuzz_file("images-idx3-ubyte", images, sizeof images);
    fuzz_file("labels-idx1-ubyte", labels_idx, sizeof labels_idx);
    float features[4 * 3] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    float embeddings[3 * 2] = {1, 0, 0, 1, 0.5f, 0.5f};
    uint64_t fshape[2] = {4, 3}, eshape[2] = {3, 2};
    cx_err err;
    char path[4200];
    snprintf(path, sizeof path, "%s/features.npy", fuzz_dir());
    FUZZ_ASSERT(cx_npy_write(path, CX_ELEM_F32, 2, fshape, features, &err) == CX_OK);
    snprintf(path, sizeof path, "%s/embeddings.npy", fuzz_dir());
    FUZZ_ASSERT(cx_npy_write(path, CX_ELEM_F32, 2, eshape, embeddings, &err) == CX_OK);
}

static void check_split(const cx_dataset *ds, const cx_split *s)
{
    FUZZ_ASSERT(s->n <= s->stored_n);
    for (size_t i = 0; i < s->n; i++) {
        FUZZ_ASSERT(s->y[i] >= 0 && s->y[i] < ds->num_classes);
        FUZZ_ASSERT(!s->groups || (s->groups[i] >= 0 && s->groups[i] < ds->num_groups));
        FUZZ_ASSERT(s->source_index[i] < s->stored_n && (i == 0 || s->source_index[i] >
                                                                       s->source_index[i - 1]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    write_fixed_files();
    const char *path = fuzz_file("dataset.yaml", data + 1, size - 1);
    static const uint32_t keep[2] = {0, 2};
    cx_load_options opt = {0};
    switch (data[0] % 4) {
    case 0: break;
    case 1: opt.parts = CX_LOAD_TRAIN; break;
    case 2:
        opt.parts = CX_LOAD_TRAIN | CX_LOAD_IMAGES | CX_LOAD_CAPTIONS;
        opt.keep = keep;
        opt.num_keep = 2;
        break;
    default: opt.parts = CX_LOAD_NONE; break;
    }
    cx_dataset ds;
    cx_err err;
    if (cx_dataset_load(path, &opt, &ds, &err) == CX_OK) {
        FUZZ_ASSERT(ds.num_classes >= 1 && ds.num_eval_classes >= 1 &&
                    ds.num_eval_classes <= ds.num_classes);
        FUZZ_ASSERT(ds.num_templates >= 1);
        check_split(&ds, &ds.train);
        check_split(&ds, &ds.test);
        check_split(&ds, &ds.val);
        if (ds.class_embeddings_path) {
            float *emb = NULL;
            int dim = 0;
            if (cx_dataset_class_embeddings(&ds, &emb, &dim, &err) == CX_OK)
                FUZZ_ASSERT(dim >= 1);
            free(emb);
        }
    } else {
        fuzz_refused(err.msg);
    }
    cx_dataset_free(&ds);
    return 0;
}
