/* Datasets: the YAML file of the contract (cli.md, "Datasets") and the splits it names, loaded
 * into memory in their stored element type (bytes stay bytes: 60,000 Fashion-MNIST images are
 * 47 MB, not 188 MB) and converted to float per batch by cx_split_gather_f32.
 *
 *   name: fashion-mnist            # optional (default: the YAML's file name without .yaml)
 *   classes: classes.txt           # "name|synonym|!veto" a line (lib/data/text.h)
 *   templates: templates.txt       # optional; "{}" marks the class name; or a built-in set
 *                                  #   (openai-imagenet, simple, photo, cname, a+cname)
 *   eval_classes: 10               # optional: the first N classes are evaluated, the rest
 *                                  #   are open-world concepts that appear only in training
 *   train: {images: ..., labels: ..., captions: ..., n: 60000, shape: [28, 28]}
 *   val:   {images: ..., labels: ...}   # optional: a validation split (tau, model selection)
 *   test:  {images: ..., labels: ...}
 *   # or a split of PNG/JPEG files: {list: F, root: D, image_size: S, channels: C}, {folder: D,
 *   #   image_size: S}, {csv: F, ...} (lib/data/image_list.h), decoded once into a cache
 *   class_embeddings: F.npy        # optional: (classes, D) an external CLIP's zero-shot
 *                                  #   classifier, rows in class-list order (read on demand)
 *   group_names: groups.txt        # optional: one group name a line (lib/data/groups.h);
 *                                  #   a split may then name `groups: FILE`, aligned with its
 *                                  #   rows (a SUBSET keeps the matching rows)
 *
 * Paths are relative to the YAML's folder unless absolute; `n` and `shape` are optional
 * promises the loader checks. Unknown keys are errors naming their line and column.
 *
 * Open-world concepts (from `clipx synth --open-world`): their samples carry labels in
 * [num_eval_classes, num_classes), so every label stays a valid index into the class list.
 * A CLIP-style trainer uses them through their captions like any sample; a supervised trainer
 * either drops them (it has no evaluated class to predict) or trains them as extra output
 * classes; evaluation (zero-shot, accuracy, head/mid/tail) covers the evaluated classes only,
 * and test splits hold evaluated classes only (the loader checks). */
#ifndef CX_DATA_DATASET_H
#define CX_DATA_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/annotations.h"

/* Images/features in memory, in their stored type: uint8 stays uint8 (IDX, NPY uint8);
 * float32 stays float32; NPY int32/int64/float64 features become float32 on load. */
typedef enum { CX_DTYPE_U8, CX_DTYPE_F32 } cx_dtype;

typedef struct {
    size_t n;   /* samples held (after a subset) */
    size_t dim; /* features per sample: product of shape[0..rank) (0 when images were not loaded) */
    int rank;   /* per-sample rank, 1..3 */
    size_t shape[3]; /* per-sample shape, e.g. {28, 28} for IDX images, {256} for vectors */
    cx_dtype dtype;
    void *x;              /* (n, dim) uint8_t or float, owned; NULL unless CX_LOAD_IMAGES */
    int32_t *y;           /* (n), owned, in [0, num_classes) */
    char **captions;      /* (n) NUL-terminated UTF-8, or NULL when the split has none or they were
                             not loaded; the strings live in caption_store (owned by the split) */
    size_t *source_index; /* (n), owned: index of each held sample in the stored files, ascending */
    size_t stored_n;      /* samples in the stored files */
    char *images_path; /* owned resolved paths as named by the YAML; captions_path NULL when none */
    char *labels_path;
    char *captions_path;
    cx_captions caption_store; /* internal: owns the caption text */
    int32_t *groups;   /* (n), owned, in [0, num_groups), or NULL when the split names none */
    char *groups_path; /* owned resolved path of `groups:`, or NULL */
} cx_split;

typedef struct {
    char *name;           /* owned: dataset name */
    char *path;           /* owned: the YAML's path */
    int num_classes;      /* classes in the class list (evaluated + open-world) */
    int num_eval_classes; /* the first num_eval_classes are evaluated (== num_classes by default) */
    char **class_names;   /* (num_classes) owned */
    char ***synonyms;     /* (num_classes) owned; synonyms[c][0] is the class name itself */
    int *num_synonyms;    /* (num_classes), >= 1 */
    char **
        *vetoes; /* (num_classes) owned veto words/phrases for caption counting (NULL when none) */
    int *num_vetoes;  /* (num_classes) */
    char **templates; /* (num_templates) owned prompt templates with "{}" (a default set when
                         the YAML names none) */
    int num_templates;
    char *classes_path;      /* owned resolved path of the class list */
    char *class_embeddings_path; /* owned resolved path of class_embeddings, or NULL */
    int has_train, has_test; /* the YAML names the split */
    cx_split train, test;    /* zeroed unless loaded */
    int has_val;             /* the YAML names a 'val' split */
    cx_split val;            /* zeroed unless loaded (CX_LOAD_VAL) */
    int num_groups;          /* group names (lib/data/groups.h); 0 without `group_names:` */
    char **group_names;      /* (num_groups) owned, or NULL */
    char *group_names_path;  /* owned resolved path, or NULL */
} cx_dataset;

/* What cx_dataset_load reads. */
enum {
    CX_LOAD_TRAIN = 1u,    /* the training split (an error when the YAML has none) */
    CX_LOAD_TEST = 2u,     /* the test split (an error when the YAML has none) */
    CX_LOAD_IMAGES = 4u,   /* images/features of the loaded splits (else labels only) */
    CX_LOAD_CAPTIONS = 8u, /* captions of the loaded splits that have them */
    CX_LOAD_ALL = 15u,
    CX_LOAD_NONE = 16u, /* no split: the class list and templates only */
    CX_LOAD_VAL = 32u   /* the validation split (an error when the YAML has none); never part
                           of "every split" (parts 0): ask for it */
};

typedef struct {
    unsigned parts;          /* CX_LOAD_* bits; 0 means every split the YAML names, with images
                                and captions */
    const char *subset_path; /* a SUBSET file (lib/data/subset.h): keep only its training rows;
                                validated against the training labels. NULL: all rows */
    const uint32_t *keep;    /* or kept training indices, strictly ascending (ignored when
                                subset_path is set); NULL: all rows */
    size_t num_keep;
} cx_load_options;

/* Load the dataset named by a YAML file. opt may be NULL (every split, no subset). Only the kept
 * training rows are stored: images are streamed from their files (gzip or plain) into the final
 * buffers, never a whole-file copy. ds is zeroed first; cx_dataset_free is safe after a failure. */
cx_status cx_dataset_load(const char *yaml_path, const cx_load_options *opt, cx_dataset *ds,
                          cx_err *err);
void cx_dataset_free(cx_dataset *ds);

/* The dataset's class_embeddings (one row per class of the class list, every numeric NPY or
 * IDX type converted to float32) into *out (num_classes, *dim), malloc'd, owned by the caller.
 * CX_EUSAGE when the dataset names none; CX_EDATA naming the file when it is not a matrix of
 * num_classes rows of 1 .. 2^24 finite values. */
cx_status cx_dataset_class_embeddings(const cx_dataset *ds, float **out, int *dim, cx_err *err);

/* Rows idx[0..n) of a split (idx NULL: rows 0..n) as float32 into out (n, dim): uint8 values
 * v become v / 255.0f (as torchvision's ToTensor), floats are copied. OpenMP over rows. */
void cx_split_gather_f32(const cx_split *s, const uint32_t *idx, size_t n, float *out);

/* Caption composition for splits without captions (cli.md: "composed per sample from its class
 * name (or a synonym) and a template"). The template, and with CX_COMPOSE_SYNONYMS the synonym,
 * are drawn from an RNG stream keyed by (seed, index), so a sample's caption depends only on
 * those, not on the order or subset it is read in. Every "{}" of the template is replaced.
 * Writes at most cap bytes including the NUL into buf (cap may be 0) and returns the length of
 * the whole caption, as snprintf. */
enum { CX_COMPOSE_SYNONYMS = 1u };
size_t cx_caption_compose(const cx_dataset *ds, int32_t label, uint64_t seed, uint64_t index,
                          unsigned flags, char *buf, size_t cap);

/* The template and synonym indices cx_caption_compose draws for (label, seed, index), for
 * callers that keep one token row per (class, template) instead of composing text. */
void cx_caption_choice(const cx_dataset *ds, int32_t label, uint64_t seed, uint64_t index,
                       unsigned flags, int *template_index, int *synonym_index);

/* The caption of row `row` of split s: its stored caption when the split has captions, else a
 * caption composed into buf (cx_caption_compose with the row's label and source index). */
const char *cx_split_caption(const cx_dataset *ds, const cx_split *s, size_t row, uint64_t seed,
                             unsigned flags, char *buf, size_t cap);

/* "{}" of template t replaced by name, into buf as snprintf; returns the full length. */
size_t cx_template_fill(const char *t, const char *name, char *buf, size_t cap);


#endif
