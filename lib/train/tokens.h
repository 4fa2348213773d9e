/* Tokens for the text tower in training and zero-shot evaluation: the vocabulary of a dataset, the token ids
 * of a batch of captions, and class embeddings from prompt templates. */
#ifndef CX_TRAIN_TOKENS_H
#define CX_TRAIN_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/augment.h"
#include "lib/data/dataset.h"
#include "lib/model/model.h"
#include "lib/model/tokenizer.h"

/* Vocabulary from the training captions (when the split has them) and from every prompt a
 * template makes with every class name and synonym, keeping words seen min_count times (prompt
 * words are always kept, so zero-shot prompts never fall out of the vocabulary). With sequences,
 * a sequence vocabulary (SOT, EOT and MASK tokens) for the transformer text tower. */
cx_status cx_tokens_vocab(const cx_dataset *ds, int64_t min_count, int sequences, cx_vocab *v,
                          cx_err *err);

/* Token ids (n, max_tokens) of the captions of rows[0..n) of the training split: stored captions,
 * or captions composed from class names and templates with caption_seed (lib/data/dataset.h).
 * buf (cap bytes) is scratch for one caption. */
void cx_tokens_captions(const cx_dataset *ds, const cx_vocab *v, const uint32_t *rows,
                          size_t n, uint64_t caption_seed, int max_tokens, int32_t *tokens,
                          char *buf, size_t cap);

/* The token rows of every training caption, made once per run instead of once per batch:
 * tokenising was a tenth of a small CLIP run. Stored captions get one row per training row;
 * composed captions one row per (class, template), since a composed caption is the class's
 * first name in the template its (seed, source index) draws. Same ids as cx_tokens_captions. */
typedef struct {
    int max_tokens;
    int num_templates;
    int32_t *by_row;    /* (split rows, max_tokens) with stored captions, else NULL */
    int32_t *by_prompt; /* (classes x templates, max_tokens) without, else NULL */
} cx_caption_tokens;

/* Builds the rows for ds's training split. A split whose rows would take more than max_bytes
 * is left uncached (both pointers NULL; cx_caption_tokens_batch then tokenises each batch). */
cx_status cx_caption_tokens_init(cx_caption_tokens *ct, const cx_dataset *ds, const cx_vocab *v,
                                 int max_tokens, size_t max_bytes, cx_err *err);
void cx_caption_tokens_free(cx_caption_tokens *ct);

/* What cx_tokens_captions writes for the same arguments, from the rows when they are cached. */
void cx_caption_tokens_batch(const cx_caption_tokens *ct, const cx_dataset *ds,
                             const cx_vocab *v, const uint32_t *rows, size_t n,
                             uint64_t caption_seed, int32_t *tokens, char *buf, size_t cap);

/* cx_tokens_captions with EDA (cx_aug_text_view) applied to each caption: view `view` of the
 * sample (keyed by its stored-file index) at step `step` under seed. buf2 (cap bytes) is a
 * second caption scratch. */
void cx_tokens_captions_view(const cx_dataset *ds, const cx_vocab *v, const uint32_t *rows,
                             size_t n, uint64_t caption_seed, const cx_aug_config *aug,
                             const cx_aug_synonyms *syn, uint64_t seed, uint64_t step,
                             uint32_t view, int max_tokens, int32_t *tokens, char *buf,
                             char *buf2, size_t cap);

/* Zero-shot class embeddings (C, D): for each class name, the L2-normalised text embeddings of
 * its prompts (one per template) averaged and normalised again. The model must have a text
 * tower; batches of at most m->spec.max_batch prompts. tokens is scratch of
 * (max_batch, max_tokens). */
cx_status cx_tokens_class_embeddings(cx_model *m, const cx_vocab *v, char *const *class_names,
                                   int C, char *const *templates, int T, float *out,
                                   cx_err *err);

#endif
