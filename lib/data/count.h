/* Caption-based class frequencies (methods.md section 2, LAIONet-style): a caption becomes a
 * set of lower-case letter-only words; a class matches when all words of any one of its
 * synonyms are in the set, unless all words of one of its vetoes are too. Each caption counts
 * at most once per class. */
#ifndef CX_DATA_COUNT_H
#define CX_DATA_COUNT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/err.h"
#include "lib/data/lemmas.h"

typedef struct cx_matcher cx_matcher;

enum { CX_MATCH_PLURALS = 1u }; /* fold simple English plurals (boxes -> box, ponies -> pony) */

/* Words of s[0..n): runs of letters, ASCII lower-cased; every non-ASCII code point counts as a
 * letter (so non-English words stay whole); everything else, a byte that is not UTF-8 too,
 * separates. Calls fn for each word
 * (w is not NUL-terminated and is only valid during the call). Returns the number of words. */
size_t cx_caption_words(const char *s, size_t n, unsigned flags,
                        void (*fn)(void *ctx, const char *w, size_t len), void *ctx);

/* A matcher over C classes: synonyms[c][0..num_synonyms[c]) and vetoes[c][0..num_vetoes[c])
 * (vetoes may be NULL). A synonym without any letter can never match and is an error. */
cx_status cx_matcher_new(char **const *synonyms, const int *num_synonyms, char **const *vetoes,
                         const int *num_vetoes, int C, unsigned flags, cx_matcher **out,
                         cx_err *err);
void cx_matcher_free(cx_matcher *m);

/* Match caption words through their noun lemmas too (lib/data/lemmas.h: "geese" counts for a
 * synonym "goose"); lemmas is borrowed and must outlive m; NULL turns it off. */
void cx_matcher_use_lemmas(cx_matcher *m, const cx_lemmas *lemmas);

/* Classes matched by one caption, ascending, into out (room for C); returns how many. Not
 * thread-safe: the matcher keeps per-caption scratch. */
int cx_matcher_match(cx_matcher *m, const char *caption, size_t len, int *out);

/* Add each caption's matches to counts (C) over the lines of a caption file (plain or .gz);
 * keep (ascending line indices, nkeep) restricts to those lines, NULL counts all. With rows
 * (may be NULL) every match is also a line "LINE<TAB>CLASS" (0-based caption line and class
 * index, ascending), the multi-label view of the captions. *lines receives the number of lines
 * in the file, *matched (may be NULL) the number of counted captions that matched a class. */
cx_status cx_count_file(cx_matcher *m, const char *path, const uint32_t *keep, size_t nkeep,
                        FILE *rows, int64_t *counts, size_t *lines, size_t *matched,
                        cx_err *err);

#endif
