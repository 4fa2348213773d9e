/* Splits of image files (PNG, JPEG) named by a dataset YAML, and their decoded cache:
 *
 *   train: {list: train.txt, root: images, image_size: 32, channels: 3}   # "path label" a line
 *   train: {folder: train, image_size: 32}                     # one subfolder per class
 *   train: {csv: train.csv, root: images, image_size: 32,      # open_clip's CSV: a header line,
 *           csv_img_key: filepath, csv_caption_key: title,     #   image paths, captions and
 *           csv_separator: "\t"}                               #   maybe a `label` column
 *
 * Paths in the list and the CSV are relative to `root` (itself relative to the YAML's folder,
 * the YAML's folder by default). A folder's class subfolders, sorted by name (ImageFolder's
 * order), must be the class list, in its order; their PNG and JPEG files (.png, .jpg, .jpeg,
 * any case), sorted by name, are the samples. Each image is decoded once (lib/data/image_decode.h)
 * into an uint8 NPY of shape (n, channels, image_size, image_size) in the folder `clipx-cache`
 * beside the YAML, named by a hash of the sample list (resolved paths, labels, file sizes and
 * modification times), image_size and channels; later loads read that file and decode nothing.
 * A CSV's captions are cached there too, one a line. Without a `label` column, an image's class
 * is the first class (in class-list order) its caption names, matched as `clipx count` does
 * (lib/data/count.h, no plural folding); a caption that names none is refused. */
#ifndef CX_DATA_IMAGE_LIST_H
#define CX_DATA_IMAGE_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/conf/yaml_doc.h"

#define CX_IMAGE_CACHE_DIR "clipx-cache"

typedef enum { CX_IMAGES_NONE, CX_IMAGES_LIST, CX_IMAGES_FOLDER, CX_IMAGES_CSV } cx_image_kind;

/* What a split's YAML says about its image files; strings borrowed from the YAML document. */
typedef struct {
    cx_image_kind kind;
    const cx_yaml_node *source; /* the list:, folder: or csv: value */
    const char *source_key;     /* "list", "folder" or "csv" */
    const cx_yaml_node *root, *size_node, *channels_node;
    const cx_yaml_node *img_key, *caption_key, *separator; /* csv_* keys, or NULL */
    int image_size, channels;
} cx_image_spec;

/* One key of a split's mapping: returns 1 when it is an image-file key (root, list, folder, csv,
 * image_size, channels, csv_img_key, csv_caption_key, csv_separator), parsed into sp with *st
 * its status (CX_EUSAGE naming YAML:LINE:COL), else 0. */
int cx_image_spec_key(const char *yaml, const cx_yaml_pair *p, cx_image_spec *sp, cx_status *st,
                      cx_err *err);

/* After the split's keys: the combination is coherent (one source, image_size given, csv_* only
 * with csv, root not with folder) and clipx can decode images. which names the split. */
cx_status cx_image_spec_check(const char *yaml, const char *which, const cx_yaml_node *split,
                              const cx_image_spec *sp, cx_err *err);

/* The class list the samples are labelled against. */
typedef struct {
    int num_classes;
    char *const *class_names; /* (num_classes) */
    const char *classes_path;
    char **const *synonyms; /* (num_classes) for a CSV without labels; NULL: such a CSV is refused */
    const int *num_synonyms;
    char **const *vetoes; /* may be NULL */
    const int *num_vetoes;
} cx_image_classes;

/* A prepared split: its decoded images are in cache_path. */
typedef struct {
    size_t n;
    int32_t *labels;     /* (n) owned, in [0, num_classes) */
    char *source_path;   /* owned: the resolved list, folder or CSV path */
    char *cache_path;    /* owned: the NPY (n, channels, image_size, image_size) uint8 */
    char *captions_path; /* owned: the CSV's captions, one a line, in the cache; NULL otherwise */
    int decoded;         /* 1 when this call decoded the images (the cache was missing) */
} cx_image_split;

/* Read the split's sample list, then make sure its cache holds the decoded images: a readable
 * cache of the right shape is used as it is; otherwise every image is decoded, in parallel
 * (OpenMP), and the cache written atomically. dir: the YAML's folder. A bad list line, label or
 * image is CX_EDATA naming the list (or CSV) and its line, and the image file; a folder naming
 * other classes than the class list is CX_EDATA. out is zeroed first; free it in every case. */
cx_status cx_image_split_prepare(const char *yaml, const char *dir, const cx_image_spec *sp,
                                 const cx_image_classes *cls, cx_image_split *out, cx_err *err);
void cx_image_split_free(cx_image_split *s);

#endif
