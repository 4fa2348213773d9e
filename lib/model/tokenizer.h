/* Word tokenizer for captions and prompts: ASCII lower-cased runs of letters and digits (every
 * non-ASCII code point counts as a letter; a byte that is not UTF-8 separates), a vocabulary built from the training text,
 * fixed-length id sequences padded with CX_TOKEN_PAD. */
#ifndef CX_MODEL_TOKENIZER_H
#define CX_MODEL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/strmap.h"

#define CX_TOKEN_PAD 0 /* "<pad>": ignored by the text tower */
#define CX_TOKEN_UNK 1 /* "<unk>": words outside the vocabulary */
/* A sequence vocabulary (specials set) also has, for the transformer text tower: */
#define CX_TOKEN_SOT 2  /* "<sot>": first token of every sequence */
#define CX_TOKEN_EOT 3  /* "<eot>": after the last word; the tower's feature is read there */
#define CX_TOKEN_MASK 4 /* "<mask>": reserved for masked-language-model objectives */

typedef struct {
    char **words;     /* (size) owned; words[0] = "<pad>", words[1] = "<unk>" */
    int size;
    int specials;     /* ids 2, 3, 4 are <sot>, <eot>, <mask>, words start at 5; 0 when absent */
    cx_strmap ids;    /* word -> id for the words after the specials; owned */
} cx_vocab;

/* Counts words over many texts, then keeps those seen at least min_count times. */
typedef struct {
    char **words;     /* owned */
    int64_t *counts;
    size_t n, cap;
    cx_strmap index; /* word -> its position in words; owned */
} cx_vocab_builder;

cx_status cx_vocab_builder_init(cx_vocab_builder *b, cx_err *err);
cx_status cx_vocab_builder_add(cx_vocab_builder *b, const char *text, cx_err *err);
/* Ids 2.. in order of decreasing count, ties by byte order of the word: deterministic. */
cx_status cx_vocab_builder_finish(cx_vocab_builder *b, int64_t min_count, cx_vocab *v,
                                  cx_err *err);
/* The same with the sequence tokens SOT, EOT and MASK at ids 2..4 (words from 5). */
cx_status cx_vocab_builder_finish_seq(cx_vocab_builder *b, int64_t min_count, cx_vocab *v,
                                      cx_err *err);
void cx_vocab_builder_free(cx_vocab_builder *b);

/* Id of one word (already lower case), CX_TOKEN_UNK when absent. */
int32_t cx_vocab_lookup(const cx_vocab *v, const char *word, size_t len);

/* Ids of text into out[0..max_tokens), truncated, then padded with CX_TOKEN_PAD. With a
 * sequence vocabulary the ids are SOT, the words, EOT: truncation drops words, never EOT.
 * Returns the number of words in text (which may exceed max_tokens). */
int cx_tokenize(const cx_vocab *v, const char *text, int32_t *out, int max_tokens);

/* The vocabulary as one string, a word a line in id order (for checkpoints), and back.
 * Format 1: the words from <pad>. Format 2 (sequence vocabularies): the line
 * "#clipx-vocab 2", then the words from <pad>. Both are read. */
char *cx_vocab_serialize(const cx_vocab *v);
cx_status cx_vocab_deserialize(const char *text, cx_vocab *v, cx_err *err);

void cx_vocab_free(cx_vocab *v);

#endif
