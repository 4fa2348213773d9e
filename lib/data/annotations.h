/* Text parts of a dataset: class lists with synonyms, prompt templates, labels (text, IDX or
 * NPY), captions. Each reader names the file and the line (or byte) of a problem. */
#ifndef CX_DATA_ANNOTATIONS_H
#define CX_DATA_ANNOTATIONS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/gzfile.h"
#include "lib/base/utf8.h"

/* A class list: one class a line, "name|synonym|synonym|!veto". Fields are trimmed; a field
 * starting with '!' is a veto word or phrase for caption counting (a caption that contains all
 * its words does not count for the class). Blank lines are skipped. Names are unique and hold
 * no tab. */
typedef struct {
    int count;
    char **names;     /* (count) owned strings */
    char ***synonyms; /* (count) owned arrays of owned strings; synonyms[c][0] == names[c]'s text */
    int *num_synonyms; /* (count) >= 1 */
    char ***vetoes;    /* (count) owned arrays of owned strings (NULL when none) */
    int *num_vetoes;   /* (count) */
} cx_classes;

cx_status cx_classes_read(const char *path, cx_classes *out, cx_err *err);
void cx_classes_free(cx_classes *c);
/* Index of the class named name, or -1. */
int cx_classes_find(const cx_classes *c, const char *name);

/* Prompt templates, one a line, each with at least one "{}" (where the class name goes).
 * Blank lines are skipped; at least one template. *out is an owned array of owned strings. */
cx_status cx_templates_read(const char *path, char ***out, int *count, cx_err *err);
void cx_strings_free(char **s, int count);

/* Labels of a split: IDX idx1, NPY of rank 1 (uint8, int32 or int64), or text with one integer
 * a line; the format is sniffed from the name and first bytes. Every label must lie in
 * [0, num_classes); a label outside names classes_path in the message. *labels is owned (n). */
cx_status cx_labels_read(const char *path, int num_classes, const char *classes_path,
                         int32_t **labels, size_t *n, cx_err *err);

/* cx_labels_read for any column of integers in [0, limit), e.g. the group of each sample:
 * messages call a value `noun` ("group") and the range "the LIMIT `plural` of limit_path". */
cx_status cx_int_column_read(const char *path, int limit, const char *limit_path,
                             const char *noun, const char *plural, int32_t **values, size_t *n,
                             cx_err *err);

/* Captions: one UTF-8 caption a line. Strings live in a few large owned blocks, so a million
 * captions cost their text plus one pointer each. */
typedef struct {
    size_t n;      /* captions kept */
    char **items;  /* (n) pointers into blocks */
    char **blocks; /* owned text blocks */
    size_t num_blocks;
    size_t lines; /* lines in the file */
} cx_captions;

/* Read captions; when expect_n > 0 the file must hold exactly expect_n lines (one per image of
 * images_path, named in the message). keep (ascending, nkeep) selects the lines kept in memory;
 * NULL keeps all. */
cx_status cx_captions_read(const char *path, size_t expect_n, const char *images_path,
                           const uint32_t *keep, size_t nkeep, cx_captions *out, cx_err *err);
void cx_captions_free(cx_captions *c);

#endif
