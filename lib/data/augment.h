/* Data augmentations, deterministic by (seed, step, sample, view): every random number of a
 * sample's view comes from its own RNG stream per operation, so a view does not depend on the
 * thread count, the batch it sits in, the number of processes, or whether the run resumed.
 * Images are float (C, H, W) (rank 2 samples are (H, W), C = 1); vectors are float (D);
 * captions are UTF-8 words separated by spaces. Pure functions: nothing here allocates except
 * cx_aug_synonyms_build / _add_file. */
#ifndef CX_DATA_AUGMENT_H
#define CX_DATA_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/rng.h"
#include "lib/base/strmap.h"

/* What to do; a zero field is off. Ranges are checked by the configuration (lib/run). */
typedef struct {
    /* images */
    int crop;                  /* random resized crop on */
    double crop_scale[2];      /* area fraction range, 0 < lo <= hi <= 1 */
    double crop_ratio[2];      /* aspect (w / h) range, sampled log-uniformly, 0 < lo <= hi */
    int flip;                  /* horizontal flip with probability 1/2 */
    double erase_p;            /* random erasing probability */
    double erase_scale[2];     /* erased area fraction range */
    double erase_ratio[2];     /* erased aspect range (log-uniform) */
    /* images and vectors */
    double noise;              /* sd of additive Gaussian noise */
    /* vectors */
    double dropout;            /* feature dropout probability, kept values scaled 1/(1-p) */
    /* text (EDA): per-word probabilities */
    double eda_sr, eda_rs, eda_rd;
} cx_aug_config;

/* The shape of one sample: an image when h, w > 0 (c channels), else a vector of d values. */
typedef struct {
    int c, h, w;
    size_t d; /* c * h * w for images */
} cx_aug_shape;

/* 1 when the image/vector part (crop, flip, erase, noise, dropout) does something. */
int cx_aug_active(const cx_aug_config *a);
/* 1 when the text part (EDA) does something. */
int cx_aug_text_active(const cx_aug_config *a);

/* The RNG of one operation (op: a small tag, see augment.c) of view `view` of sample `sample`
 * at step `step`: cx_rng_seed(r, seed, cx_rng_stream(op << 32 | view, step, sample)). */
void cx_aug_rng(cx_rng *r, uint64_t seed, uint32_t op, uint32_t view, uint64_t step,
                uint64_t sample);

/* ---- the pieces (fixed inputs in the tests) ------------------------------------------------ */

/* torchvision RandomResizedCrop.get_params on an H x W image: 10 tries of an area fraction in
 * scale and a log-uniform aspect in ratio, w = round(sqrt(A r)), h = round(sqrt(A / r)) (ties
 * to even, as Python's round), top in [0, H - h], left in [0, W - w]; else the central crop of
 * the clamped aspect. */
void cx_aug_crop_box(cx_rng *r, int H, int W, const double scale[2], const double ratio[2],
                     int *top, int *left, int *h, int *w);
/* The crop (top, left, h, w) of in (C, H, W) resized back to (C, H, W) into out by bilinear
 * interpolation with half-pixel centres (F.interpolate(mode='bilinear', align_corners=False);
 * upsampling, so antialias does not change it). out != in. */
void cx_aug_resized_crop(float *out, const float *in, int C, int H, int W, int top, int left,
                         int h, int w);
/* Mirror each row of x (C, H, W) in place. */
void cx_aug_hflip(float *x, int C, int H, int W);
/* torchvision RandomErasing.get_params (value 0): 10 tries of an area fraction in scale and a
 * log-uniform aspect in ratio, h = round(sqrt(A r)), w = round(sqrt(A / r)), accepted when
 * h < H and w < W. Returns 1 with the box, 0 when no try fitted (nothing erased). */
int cx_aug_erase_box(cx_rng *r, int H, int W, const double scale[2], const double ratio[2],
                     int *top, int *left, int *h, int *w);
/* Zero the box in every channel of x (C, H, W). */
void cx_aug_erase(float *x, int C, int H, int W, int top, int left, int h, int w);

/* ---- views --------------------------------------------------------------------------------- */

/* View `view` (0, 1, ...) of sample `sample` (its index in the stored files) at step `step`:
 * out (shape->d) from in (shape->d), out != in. Images: resized crop, flip, noise, erasing in
 * that order; vectors: noise, dropout. With nothing active out is a copy of in. Multi-view
 * objectives (two views of DeCLIP or DINO) call it with view 0, 1, ... */
void cx_aug_sample_view(const cx_aug_config *a, const cx_aug_shape *shape, uint64_t seed,
                        uint64_t step, uint64_t sample, uint32_t view, const float *in,
                        float *out);

/* cx_aug_sample_view for n samples: in, out (n, shape->d); samples[i] names row i. OpenMP over
 * rows (each row is independent, so any thread count gives the same bits). */
void cx_aug_batch_view(const cx_aug_config *a, const cx_aug_shape *shape, uint64_t seed,
                       uint64_t step, const uint64_t *samples, size_t n, uint32_t view,
                       const float *in, float *out);

/* ---- text (EDA) ---------------------------------------------------------------------------- */

/* Synonym groups: phrases of one group replace each other. Phrases are stored lower case
 * (ASCII), words separated by one space. All memory owned by the struct. */
typedef struct {
    char **phrases;   /* (count) owned */
    int *group;       /* (count) group of each phrase */
    int *first;       /* (ngroups + 1) owned: phrases of group g are [first[g], first[g+1]) */
    size_t count, cap;
    int ngroups;
    int max_words;    /* longest phrase, in words */
    cx_strmap by_text; /* phrase -> index */
} cx_aug_synonyms;

/* Zero *s. */
void cx_aug_synonyms_init(cx_aug_synonyms *s);
/* One group of n phrases (a class's name and synonyms, a line of the synonyms file); groups
 * of fewer than 2 distinct phrases are dropped. A phrase already in an earlier group keeps
 * its first group. */
cx_status cx_aug_synonyms_add(cx_aug_synonyms *s, const char *const *phrases, size_t n,
                              cx_err *err);
/* A synonyms file: one group a line, phrases separated by '|' ("sneaker|trainer|running
 * shoe"); blank lines and lines starting with '#' are skipped. Errors name the file and line. */
cx_status cx_aug_synonyms_add_file(cx_aug_synonyms *s, const char *path, cx_err *err);
void cx_aug_synonyms_free(cx_aug_synonyms *s);

/* EDA view `view` of caption `in` of sample `sample` at step `step` into out (cap bytes,
 * returns the length written, truncated at a word boundary to fit): synonym replacement (each
 * word that starts a known phrase, longest match, is replaced with probability eda_sr by
 * another phrase of its group, uniformly), random swap (for each position i in order, with
 * probability eda_rs the word at i is swapped with a uniformly drawn other position), random
 * deletion (each word deleted with probability eda_rd; when all would go, one random word is
 * kept). Words are runs of non-space bytes; the output joins them with single spaces; matching is
 * ASCII case-insensitive and a replacement is written lower case. syn may be NULL.
 * At most CX_AUG_TEXT_MAX_WORDS words are augmented; the rest are dropped. */
enum { CX_AUG_TEXT_MAX_WORDS = 256 };
size_t cx_aug_text_view(const cx_aug_config *a, const cx_aug_synonyms *syn, uint64_t seed,
                        uint64_t step, uint64_t sample, uint32_t view, const char *in, char *out,
                        size_t cap);

#endif
