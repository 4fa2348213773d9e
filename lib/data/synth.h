/* A controlled synthetic image-text dataset whose knobs are the factors a study of CLIP under
 * class imbalance varies (class count, frequency profile, data scale, caption descriptiveness,
 * open-world concepts, label noise).
 *
 * The generative model, all of it fixed by the seed:
 * - Concepts: `classes` evaluated classes, then `open_classes` open-world concepts that appear
 *   only in training. Each concept has a made-up name, synonyms (pseudo-words; the last one a
 *   two-word phrase ending in its superclass's name) and a superclass.
 * - Latent space (dimension `latent`): superclass centres ~ N(0, super_sep^2 I); each concept
 *   has `modes` sub-types (blobs), each at its superclass centre + N(0, class_sep^2 I), so a
 *   class is a union of blobs interleaved with its siblings'. A sample of concept c draws a
 *   mode m uniformly and has
 *       z = mu_cm + spread * N(0, I) + attr_strength * sum of its attribute directions
 *           + cooccur_strength * (mu_c'm' - mu_cm) when a second concept c' is in the picture.
 *   Attributes (adjectives) come from per-mode distributions (3 favoured attributes carry 3/4
 *   of the mass), so descriptive captions also tell a class's sub-types apart. Each of 2
 *   attribute slots is filled with probability attr_rate. The second concept appears with
 *   probability cooccur and is drawn by training frequency.
 * - Rendering: a fixed random nonlinear map into the observed features (dimension `dim`),
 *   x = sqrt(2/H) W2 sin(fold * W1 z + b) + noise * N(0, I), W1 (H, latent) ~ N(0, 1/latent),
 *   b ~ U[0, 2 pi), W2 (dim, H) ~ N(0, 1): the sine folds the latent space so classes are not
 *   linearly separable in x, while an MLP can learn them.
 * - Captions: template ("a photo of a {name}."), synonym (a random template and synonym), or
 *   descriptive (a random template around "ATTRIBUTES SYNONYM [with a OTHER]": the attributes
 *   and the co-occurring concept the sample really has). The knobs change what the text
 *   carries, not the images: the same seed gives the same features in every caption mode.
 * - Frequencies: training counts of the evaluated classes follow the profile (default pareto,
 *   i.e. Zipf, with imbalance ratio rho), apportioned to total n * (1 - open_world), at least
 *   one sample per class; open-world concepts share n * open_world by the same profile. The
 *   test split is balanced (test_per_class per evaluated class, no open-world concepts).
 * - Label noise: a fraction of evaluated-class training samples get a uniformly drawn wrong
 *   label in train-labels.npy (features and captions keep the truth; train-true-labels.npy has it).
 * - Spurious attribute (spurious = P > 0; Waterbirds' background): every sample gets one of
 *   V values, added after the rendering as x += S * u_v with u_v a fixed random unit vector
 *   per value. The shift is linear in x while the class needs the nonlinear rendering undone,
 *   so at S >= 1 (the spread of x along any direction is about 1) the attribute is easier to
 *   see than the class. Concept c's own value is c mod V; a training sample has its class's
 *   value with probability P, else one of the other V - 1 uniformly; val and test samples draw
 *   theirs uniformly, independently of the class. A caption names the value's word ("... on a WORD
 *   background") with probability spurious_captions. Groups = class * V + value, written as
 *   SPLIT-groups.npy with group-names.txt ("CLASS/VALUE"); the draws come from their own RNG
 *   streams, so everything else is the dataset of spurious = 0 (which writes none of this).
 * - Informative attributes (attr_info = F > 0; lib/data/synth_attr.h): each concept has 4
 *   attributes from its superclass's pool of 8 made-up words (open-world concepts share the
 *   pool with probability open_share per attribute, else use an open-only pool); a sample has
 *   each with probability F, its latent gains the attribute's pattern, and a descriptive caption
 *   names up to attr_named (2) of those it has instead of the nuisance adjectives. With
 *   attr_scope global every evaluated class draws its 4 from one pool of 16 instead (each
 *   attribute on a quarter of the classes, across superclasses: a word names what the image
 *   shows, only the class name says which class). SPLIT-attributes.txt lists each sample's
 *   attributes (one line a sample), synth.json the vocabulary and each concept's.
 *
 * Files in DIR: dataset.yaml (written last), classes.txt, templates.txt, train-features.npy,
 * train-labels.npy (int32), train-true-labels.npy, train-captions.txt, the same for test
 * (and for val with val_per_class),
 * train-counts.tsv (true training counts, a frequency file) and synth.json (parameters and
 * per-concept truth); with a spurious attribute also train-groups.npy, test-groups.npy and
 * group-names.txt; with informative attributes also train-attributes.txt (test-, val-).
 * Samples are generated in chunks of CX_SYNTH_CHUNK, each from its own RNG
 * stream, so the output does not depend on the thread count. */
#ifndef CX_DATA_SYNTH_H
#define CX_DATA_SYNTH_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/data/dataset.h"
#include "lib/data/subsample.h"
#include "lib/data/synth_attr.h"

enum { CX_SYNTH_CHUNK = 1024, CX_SYNTH_MAX_CLASSES = 10000 };

typedef enum { CX_CAPTIONS_TEMPLATE, CX_CAPTIONS_SYNONYM, CX_CAPTIONS_DESCRIPTIVE } cx_caption_mode;

/* "template", "synonym", "descriptive"; -1 for an unknown name. */
int cx_caption_mode_parse(const char *name);
const char *cx_caption_mode_name(cx_caption_mode m);

typedef struct {
    int classes;              /* evaluated classes (100) */
    int open_classes;         /* open-world concepts (0: as many as classes when open_world > 0) */
    double open_world;        /* fraction of training samples from open-world concepts (0) */
    int superclasses;         /* (0: the smaller of 10 and classes) */
    int modes;                /* blobs (sub-types) per concept (4) */
    cx_profile profile;       /* exp, pareto (default), step or uniform */
    double rho;               /* imbalance ratio (100) */
    double alpha;             /* pareto exponent; 0: from rho */
    double mu;                /* step: fraction of head classes (0.5) */
    int64_t n;                /* training samples (50000) */
    int test_per_class;       /* (50); 0 writes no test split */
    int val_per_class;        /* (0) a balanced validation split (val-*.npy, `val:` in the
                                 YAML) drawn like the test split; 0 writes none, and then
                                 every other file is byte for byte as without the option */
    int dim;                  /* observed features (128) */
    int latent;               /* latent dimension (16) */
    int hidden;               /* rendering width (0: dim) */
    double super_sep;         /* spread of superclass centres (1.0) */
    double class_sep;         /* spread of mode prototypes around their centre (0.8) */
    double spread;            /* within-class spread (0.5) */
    double fold;              /* frequency of the rendering's sine (1.0) */
    double noise;             /* observation noise (0.05) */
    cx_caption_mode captions; /* (descriptive) */
    int synonyms;             /* synonyms per concept besides its name (2) */
    int attributes;           /* attribute words (32) */
    double attr_rate;         /* chance of each of 2 attribute slots (0.7) */
    double attr_strength;     /* (0.3) */
    double cooccur;           /* chance of a second concept (0.3) */
    double cooccur_strength;  /* (0.25) */
    double label_noise;       /* (0) */
    cx_dtype dtype;           /* float32 (default) or uint8 features ([-3, 3] mapped to 0..255) */
    double spurious;          /* P: training agreement of the spurious attribute (0: none) */
    int spurious_values;      /* V: values of the spurious attribute (2) */
    double spurious_strength; /* S: length of its shift of the features (2.0) */
    double spurious_captions; /* Q: chance that a caption names the sample's value (0) */
    double attr_info;         /* F: informative attributes (synth_attr.h), each of a concept's
                                 present with probability F; 0: none, and every file is byte
                                 for byte as without the option */
    double open_share;        /* open-world concepts' share of the evaluated classes'
                                 attribute pools (0: disjoint); needs attr_info > 0 */
    cx_attr_scope attr_scope; /* the pools: one per superclass (default) or one for all;
                                 global needs attr_info > 0 */
    int attr_named;           /* most attributes a descriptive caption names (2); another
                                 value needs attr_info > 0 */
    uint64_t seed;
    /* Called from the calling thread after each block of samples; may be NULL. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *progress_ctx;
} cx_synth_opts;

/* The defaults as an initializer: `cx_synth_opts o = CX_SYNTH_DEFAULTS;`. */
#define CX_SYNTH_DEFAULTS                                                                          \
    {                                                                                              \
        .classes = 100, .modes = 4, .profile = CX_PROFILE_PARETO, .rho = 100, .mu = 0.5,           \
        .n = 50000, .test_per_class = 50, .dim = 128, .latent = 16, .super_sep = 1.0,              \
        .class_sep = 0.8, .spread = 0.5, .fold = 1.0, .noise = 0.05,                               \
        .captions = CX_CAPTIONS_DESCRIPTIVE, .synonyms = 2, .attributes = 32, .attr_rate = 0.7,    \
        .attr_strength = 0.3, .cooccur = 0.3, .cooccur_strength = 0.25, .dtype = CX_DTYPE_F32,     \
        .spurious_values = 2, .spurious_strength = 2.0, .attr_named = CX_SYNTH_ATTR_NAMED           \
    }

void cx_synth_defaults(cx_synth_opts *o);

/* The allowed range of each numeric field, stated here once as "MIN, MAX": cx_synth_check
 * refuses a value outside it, and clipx synth's option table takes its bounds from here.
 * superclasses is also at most classes. */
#define CX_SYNTH_RANGE_CLASSES 2, CX_SYNTH_MAX_CLASSES
#define CX_SYNTH_RANGE_OPEN_CLASSES 0, CX_SYNTH_MAX_CLASSES
#define CX_SYNTH_RANGE_OPEN_WORLD 0, 0.9
#define CX_SYNTH_RANGE_SUPERCLASSES 0, CX_SYNTH_MAX_CLASSES
#define CX_SYNTH_RANGE_MODES 1, 64
#define CX_SYNTH_RANGE_RHO 1, 1e6
#define CX_SYNTH_RANGE_ALPHA 0, 10
#define CX_SYNTH_RANGE_MU 0, 1
#define CX_SYNTH_RANGE_N 1, 100000000
#define CX_SYNTH_RANGE_TEST_PER_CLASS 0, 100000
#define CX_SYNTH_RANGE_VAL_PER_CLASS 0, 100000
#define CX_SYNTH_RANGE_DIM 1, 65536
#define CX_SYNTH_RANGE_LATENT 1, 4096
#define CX_SYNTH_RANGE_HIDDEN 0, 65536
#define CX_SYNTH_RANGE_SUPER_SEP 0, 100
#define CX_SYNTH_RANGE_CLASS_SEP 0, 100
#define CX_SYNTH_RANGE_SPREAD 0, 100
#define CX_SYNTH_RANGE_FOLD 0, 100
#define CX_SYNTH_RANGE_NOISE 0, 100
#define CX_SYNTH_RANGE_SYNONYMS 0, 8
#define CX_SYNTH_RANGE_ATTRIBUTES 1, 1024
#define CX_SYNTH_RANGE_ATTR_RATE 0, 1
#define CX_SYNTH_RANGE_ATTR_STRENGTH 0, 100
#define CX_SYNTH_RANGE_COOCCUR 0, 1
#define CX_SYNTH_RANGE_COOCCUR_STRENGTH 0, 1
#define CX_SYNTH_RANGE_LABEL_NOISE 0, 1
#define CX_SYNTH_RANGE_SPURIOUS 0, 1
#define CX_SYNTH_RANGE_SPURIOUS_VALUES 2, 64
#define CX_SYNTH_RANGE_SPURIOUS_STRENGTH 0, 100
#define CX_SYNTH_RANGE_SPURIOUS_CAPTIONS 0, 1
#define CX_SYNTH_RANGE_ATTR_INFO 0, 1
#define CX_SYNTH_RANGE_OPEN_SHARE 0, 1
#define CX_SYNTH_RANGE_ATTR_NAMED 0, CX_SYNTH_ATTR_PER_CLASS

/* Check the options: CX_EUSAGE with a message that starts with the name of the field at fault
 * ("classes: 1 is out of range [2, 10000]"). */
cx_status cx_synth_check(const cx_synth_opts *o, cx_err *err);

/* Generate the dataset into folder dir (created when missing). The parts are made in a hidden
 * folder inside dir and moved into place only when all of them are written, dataset.yaml last
 * (and an older dataset.yaml removed first): after a failure dir holds its earlier dataset
 * untouched, and a dataset.yaml in dir always names parts of its own run. */
cx_status cx_synth_write(const cx_synth_opts *o, const char *dir, cx_err *err);

#endif
