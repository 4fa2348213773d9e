/* Noun lemmas of caption words, as WordNet's morphy finds them: the irregular forms of WordNet's
 * noun exception list (noun.exc: "geese goose") and its noun suffix rules (wolves is in the
 * list; boxes -> box, ponies -> pony, cats -> cat, women -> woman). A rule's output is only a
 * candidate: the matcher keeps the candidates that are words of some class synonym, as morphy
 * keeps those in its dictionary. */
#ifndef CX_DATA_LEMMAS_H
#define CX_DATA_LEMMAS_H

#include <stddef.h>

#include "lib/base/err.h"

typedef struct cx_lemmas cx_lemmas;

/* Read DIR/noun.exc ("inflected lemma [lemma ...]" a line, multi-word entries joined by '_'
 * are skipped: captions are matched word by word). A missing or malformed file is an error
 * naming it and the line. */
cx_status cx_lemmas_load(const char *dir, cx_lemmas **out, cx_err *err);
void cx_lemmas_free(cx_lemmas *l);

/* Number of irregular forms read. */
size_t cx_lemmas_count(const cx_lemmas *l);

/* Calls fn for every lemma candidate of the lower-case word w[0..n) other than w itself: its
 * exception-list lemmas, then its suffix-rule forms. The candidate is valid during the call. */
void cx_lemmas_each(const cx_lemmas *l, const char *w, size_t n,
                    void (*fn)(void *ctx, const char *cand, size_t len), void *ctx);

#endif
