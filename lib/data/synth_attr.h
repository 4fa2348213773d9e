/* Informative attributes of clipx synth (attr_info > 0): parts that a class's images show and
 * its descriptive captions name, shared within a superclass.
 *
 * - Vocabulary: each superclass has a pool of CX_SYNTH_ATTR_POOL made-up attribute words that
 *   its evaluated classes draw from, and a second pool of as many that only open-world concepts
 *   use; each word has a pattern, a latent direction ~ N(0, class_sep^2 I), so an attribute
 *   moves the latent about as far as two sibling sub-types lie apart. With the global scope
 *   there is one pool of CX_SYNTH_ATTR_GLOBAL_POOL words for every evaluated class (and one
 *   as large for the open-world concepts): each attribute is then on a quarter of all classes,
 *   across superclasses, so an attribute word says what the image shows but never which class.
 * - Concepts: an evaluated class has CX_SYNTH_ATTR_PER_CLASS distinct attributes of its
 *   superclass's pool (siblings share some, as classes share parts); an open-world concept
 *   fills each of its slots from that same pool with probability open_share, else from its
 *   superclass's open-only pool.
 * - Samples: each of its concept's attributes is present with probability attr_info and adds
 *   its pattern to the latent before the rendering. A descriptive caption names up to
 *   named_max (CX_SYNTH_ATTR_NAMED by default) of the present ones (chosen at random), in
 *   place of the nuisance
 *   adjectives it names at attr_info = 0; template and synonym captions do not change.
 * The draws come from their own RNG streams, so the images are those of attr_info = 0 plus the
 * patterns, and the caption mode never changes the images. */
#ifndef CX_DATA_SYNTH_ATTR_H
#define CX_DATA_SYNTH_ATTR_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"
#include "lib/base/json.h"
#include "lib/base/rng.h"

enum {
    CX_SYNTH_ATTR_POOL = 8,         /* words of a superclass's pool */
    CX_SYNTH_ATTR_GLOBAL_POOL = 16, /* words of the one pool of the global scope */
    CX_SYNTH_ATTR_PER_CLASS = 4,
    CX_SYNTH_ATTR_NAMED = 2 /* the default and the most a caption names: CX_SYNTH_ATTR_PER_CLASS */
};

/* Where a class's attributes come from: its superclass's pool or the one pool of all. */
typedef enum { CX_ATTR_SCOPE_SUPERCLASS, CX_ATTR_SCOPE_GLOBAL } cx_attr_scope;

/* "superclass", "global"; -1 for an unknown name. */
int cx_attr_scope_parse(const char *name);
const char *cx_attr_scope_name(cx_attr_scope s);

typedef struct {
    double info;       /* attr_info: presence probability of each attribute of a concept */
    double open_share; /* chance that an open-world concept's slot draws from the shared pool */
    double sd;         /* per-coordinate spread of the patterns */
    cx_attr_scope scope;
    int named_max;     /* most attributes a descriptive caption names */
    int C, CK, S, L;   /* evaluated classes, all concepts, superclasses, latent dimension */
    int npools, pool;  /* pools of each kind (S, or 1 with the global scope), words a pool */
    int nwords;        /* 2 * npools * pool: shared pools first, then open-only pools */
    char **words;      /* (nwords) owned */
    float *dir;        /* (nwords, L) owned */
    int *of;           /* (CK, CX_SYNTH_ATTR_PER_CLASS) vocabulary index of each slot, owned */
} cx_synth_attrs;

/* Makes a fresh word, unused by any other, from r; NULL when out of memory. */
typedef char *(*cx_synth_word_fn)(void *ctx, cx_rng *r);

/* The vocabulary and each concept's attributes, drawn from seed's TAG streams. super_of (CK)
 * gives each concept's superclass. a is zeroed first, so cx_synth_attrs_free is safe after a
 * failure. */
cx_status cx_synth_attrs_build(cx_synth_attrs *a, double info, double open_share, double sd,
                               cx_attr_scope scope, int named_max, int C, int CK, int S, int L,
                               const int *super_of, uint64_t seed,
                               uint64_t tag, cx_synth_word_fn new_word, void *word_ctx,
                               cx_err *err);
void cx_synth_attrs_free(cx_synth_attrs *a);

/* The attributes sample of concept c has (bit k: slot k), drawn from r, with their patterns
 * added to z (L). */
unsigned cx_synth_attrs_draw(const cx_synth_attrs *a, cx_rng *r, int c, float *z);

/* The attributes a caption names: up to a->named_max of present, chosen from r in slot order,
 * as vocabulary indices into out (room for CX_SYNTH_ATTR_PER_CLASS); returns how many. */
int cx_synth_attrs_named(const cx_synth_attrs *a, cx_rng *r, int c, unsigned present, int *out);

/* The words of c's attributes in present, separated by single spaces, into buf (size cap). */
void cx_synth_attrs_line(const cx_synth_attrs *a, int c, unsigned present, char *buf,
                         size_t cap);

/* What one split's samples had: written to synth.json as the presence summary. */
typedef struct {
    const char *split; /* "train", "test", "val" */
    const char *file;  /* the per-sample file, e.g. "train-attributes.txt" */
    int64_t samples;
    int64_t present;   /* attributes present, summed over the samples */
    int64_t named;     /* attributes named by the captions, summed */
} cx_synth_attrs_split;

/* The value of synth.json's "attributes" key: the knobs, the vocabulary with its pools and the
 * presence summary of each split. */
void cx_synth_attrs_json(const cx_synth_attrs *a, cx_json *j, const cx_synth_attrs_split *splits,
                         int nsplits);

/* The words of concept c's attributes as a JSON array (for its entry in "concepts"). */
void cx_synth_attrs_json_concept(const cx_synth_attrs *a, cx_json *j, int c);

#endif
