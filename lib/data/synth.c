/* The synthetic image-text generator (see synth.h for the model). Samples are made in chunks,
 * each from its own RNG stream and rendered with single-threaded matrix products, then written
 * in order: the bytes do not depend on the thread count. */
#include "lib/data/synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "lib/base/afile.h"
#include "lib/base/blas.h"
#include "lib/base/json.h"
#include "lib/base/path.h"
#include "lib/base/rng.h"
#include "lib/base/strmap.h"
#include "lib/base/threads.h"
#include "lib/data/groups.h"
#include "lib/data/npy.h"
#include "lib/data/subset.h"
#include "lib/data/synth_attr.h"

enum {
    TAG_NAMES = 0x4e414d45,   /* "NAME" */
    TAG_WORLD = 0x574f524c,   /* "WORL": superclasses, prototypes, attributes */
    TAG_RENDER = 0x524e4452,  /* "RNDR" */
    TAG_ORDER = 0x4f524452,   /* "ORDR" */
    TAG_TRAIN = 0x54524e20,   /* "TRN " */
    TAG_TEST = 0x54535420,    /* "TST " */
    TAG_VAL = 0x56414c20,     /* "VAL " */
    TAG_CAPTIONS = 0x43415053, /* "CAPS": caption wording, apart from what the images hold */
    TAG_SPURIOUS = 0x53505552, /* "SPUR": the spurious attribute, apart from everything else */
    TAG_ATTRS = 0x41545452     /* "ATTR": informative attributes, apart from everything else */
};

enum { SLOTS = 2, FAVS = 3, BLOCK_CHUNKS = 32 };

static const char *const caption_mode_names[] = {"template", "synonym", "descriptive"};

int cx_caption_mode_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, caption_mode_names[i]) == 0)
            return i;
    return -1;
}

const char *cx_caption_mode_name(cx_caption_mode m)
{
    return (unsigned)m < 3 ? caption_mode_names[m] : "?";
}

static const char *const synth_templates[] = {"a photo of a {}.",
                                              "a picture of a {}.",
                                              "an image of a {}.",
                                              "a close-up photo of the {}.",
                                              "a cropped photo of a {}.",
                                              "a blurry photo of a {}.",
                                              "a low resolution photo of the {}.",
                                              "there is a {} in the scene."};
enum { NUM_TEMPLATES = sizeof synth_templates / sizeof synth_templates[0] };

static const char *const preps[] = {"with a", "next to a", "and a", "near a", "beside a"};
enum { NUM_PREPS = sizeof preps / sizeof preps[0] };

static const char *const adjectives[] = {
    "red",    "blue",   "green", "yellow",  "black",  "white",   "brown",   "grey",
    "orange", "purple", "pink",  "golden",  "silver", "striped", "spotted", "furry",
    "shiny",  "wooden", "metal", "plastic", "glass",  "round",   "square",  "tall",
    "short",  "long",   "small", "large",   "tiny",   "huge",    "old",     "new",
    "young",  "bright", "dark",  "wet",     "dry",    "soft",    "hard",    "smooth",
    "rough",  "heavy",  "light", "fast",    "slow",   "empty",   "full",    "broken"};
enum { NUM_ADJECTIVES = sizeof adjectives / sizeof adjectives[0] };

void cx_synth_defaults(cx_synth_opts *o)
{
    *o = (cx_synth_opts)CX_SYNTH_DEFAULTS;
}

static int open_count(const cx_synth_opts *o)
{
    return o->open_world > 0 ? (o->open_classes > 0 ? o->open_classes : o->classes) : 0;
}

static int64_t open_samples(const cx_synth_opts *o)
{
    return o->open_world > 0 ? (int64_t)floor((double)o->n * o->open_world + 0.5) : 0;
}

static cx_status check_range(cx_err *err, const char *field, double v, double lo, double hi)
{
    if (!(v >= lo && v <= hi))
        return cx_fail(err, CX_EUSAGE, "%s: %g is out of range [%g, %g]", field, v, lo, hi);
    return CX_OK;
}

/* The field against its range CX_SYNTH_RANGE_FIELD. */
#define RANGE(field, range)                                                                        \
    if ((st = check_range(err, #field, (double)o->field, range)))                                  \
        return st;

cx_status cx_synth_check(const cx_synth_opts *o, cx_err *err)
{
    cx_status st;
    RANGE(classes, CX_SYNTH_RANGE_CLASSES);
    RANGE(open_classes, CX_SYNTH_RANGE_OPEN_CLASSES);
    RANGE(open_world, CX_SYNTH_RANGE_OPEN_WORLD);
    RANGE(superclasses, CX_SYNTH_RANGE_SUPERCLASSES);
    if ((st = check_range(err, "superclasses", o->superclasses, 0, o->classes)))
        return st;
    RANGE(modes, CX_SYNTH_RANGE_MODES);
    RANGE(rho, CX_SYNTH_RANGE_RHO);
    RANGE(alpha, CX_SYNTH_RANGE_ALPHA);
    RANGE(mu, CX_SYNTH_RANGE_MU);
    RANGE(n, CX_SYNTH_RANGE_N);
    RANGE(test_per_class, CX_SYNTH_RANGE_TEST_PER_CLASS);
    RANGE(val_per_class, CX_SYNTH_RANGE_VAL_PER_CLASS);
    RANGE(dim, CX_SYNTH_RANGE_DIM);
    RANGE(latent, CX_SYNTH_RANGE_LATENT);
    RANGE(hidden, CX_SYNTH_RANGE_HIDDEN);
    RANGE(super_sep, CX_SYNTH_RANGE_SUPER_SEP);
    RANGE(class_sep, CX_SYNTH_RANGE_CLASS_SEP);
    RANGE(spread, CX_SYNTH_RANGE_SPREAD);
    RANGE(fold, CX_SYNTH_RANGE_FOLD);
    RANGE(noise, CX_SYNTH_RANGE_NOISE);
    RANGE(synonyms, CX_SYNTH_RANGE_SYNONYMS);
    RANGE(attributes, CX_SYNTH_RANGE_ATTRIBUTES);
    RANGE(attr_rate, CX_SYNTH_RANGE_ATTR_RATE);
    RANGE(attr_strength, CX_SYNTH_RANGE_ATTR_STRENGTH);
    RANGE(cooccur, CX_SYNTH_RANGE_COOCCUR);
    RANGE(cooccur_strength, CX_SYNTH_RANGE_COOCCUR_STRENGTH);
    RANGE(label_noise, CX_SYNTH_RANGE_LABEL_NOISE);
    RANGE(spurious, CX_SYNTH_RANGE_SPURIOUS);
    RANGE(spurious_values, CX_SYNTH_RANGE_SPURIOUS_VALUES);
    RANGE(spurious_strength, CX_SYNTH_RANGE_SPURIOUS_STRENGTH);
    RANGE(spurious_captions, CX_SYNTH_RANGE_SPURIOUS_CAPTIONS);
    RANGE(attr_info, CX_SYNTH_RANGE_ATTR_INFO);
    RANGE(open_share, CX_SYNTH_RANGE_OPEN_SHARE);
    RANGE(attr_named, CX_SYNTH_RANGE_ATTR_NAMED);
#undef RANGE
    if ((unsigned)o->attr_scope > CX_ATTR_SCOPE_GLOBAL)
        return cx_fail(err, CX_EUSAGE, "attr_scope: unknown attribute scope");
    if (o->attr_scope != CX_ATTR_SCOPE_SUPERCLASS && !(o->attr_info > 0))
        return cx_fail(err, CX_EUSAGE,
                       "attr_scope: the %s scope places informative attributes, which need "
                       "attr_info > 0",
                       cx_attr_scope_name(o->attr_scope));
    if (o->attr_named != CX_SYNTH_ATTR_NAMED && !(o->attr_info > 0))
        return cx_fail(err, CX_EUSAGE,
                       "attr_named: %d names informative attributes, which need attr_info > 0",
                       o->attr_named);
    if (o->open_share > 0 && !(o->attr_info > 0))
        return cx_fail(err, CX_EUSAGE,
                       "open_share: %g shares informative attributes, which need attr_info > 0",
                       o->open_share);
    if (o->spurious > 0 &&
        (double)(o->classes + open_count(o)) * o->spurious_values > CX_GROUPS_MAX)
        return cx_fail(err, CX_EUSAGE,
                       "spurious_values: %d values of %d concepts make more than %d groups",
                       o->spurious_values, o->classes + open_count(o), CX_GROUPS_MAX);
    if (o->profile != CX_PROFILE_EXP && o->profile != CX_PROFILE_PARETO &&
        o->profile != CX_PROFILE_STEP && o->profile != CX_PROFILE_UNIFORM)
        return cx_fail(err, CX_EUSAGE,
                       "profile: synth draws exp, pareto, step or uniform frequencies, not %s",
                       cx_profile_name(o->profile));
    if ((unsigned)o->captions > CX_CAPTIONS_DESCRIPTIVE)
        return cx_fail(err, CX_EUSAGE, "captions: unknown caption mode");
    int64_t n_open = open_samples(o), n_eval = o->n - n_open;
    if (n_eval < o->classes)
        return cx_fail(err, CX_EUSAGE,
                       "n: %lld training samples cannot give each of the %d classes one",
                       (long long)n_eval, o->classes);
    if (o->open_world > 0 && n_open < open_count(o))
        return cx_fail(err, CX_EUSAGE,
                       "open_world: %lld open-world samples cannot give each of the %d "
                       "open-world concepts one",
                       (long long)n_open, open_count(o));
    return CX_OK;
}

/* ---- the world: names, prototypes, rendering ----------------------------------------------- */

typedef struct {
    const cx_synth_opts *o;
    int C, K, CK, S, M, L, H, D, A;
    char **names;          /* (CK) owned */
    char ***syn;           /* (CK) owned arrays: syn[c][0] = names[c] */
    int nsyn;              /* synonyms per concept, the name included */
    char **super_names;    /* (S) owned */
    int *super_of;         /* (CK) */
    char **attr_words;     /* (A) owned */
    int *favs;             /* (CK * M, FAVS) favoured attributes of each mode */
    float *proto;          /* (CK * M, L): mode m of concept c is row c * M + m */
    float *attr_dir;       /* (A, L) */
    float *w1;             /* (H, L) */
    float *b1;             /* (H) */
    float *w2;             /* (D, H), scaled by sqrt(2 / H) */
    int64_t *train_counts; /* (CK) true training counts */
    double *cdf;           /* (CK) cumulative training frequency, for co-occurring concepts */
    cx_strmap taken;       /* every word in use */
    int V;                 /* spurious values, 0 without a spurious attribute */
    float *spur_dir;       /* (V, D) unit vectors, or NULL */
    char **spur_words;     /* (V) owned, or NULL */
    double spur_agree[3];  /* share of train / test / val samples with their class's own value */
    int has_attrs;         /* informative attributes (attr_info > 0) */
    cx_synth_attrs attrs;
    cx_synth_attrs_split attr_splits[3]; /* presence summary of train, test, val */
    int attr_nsplits;
} world;

static void world_free(world *w)
{
    for (int c = 0; w->syn && c < w->CK; c++)
        cx_strings_free(w->syn[c], w->nsyn);
    free(w->syn);
    free(w->names); /* names[c] is syn[c][0] */
    cx_strings_free(w->super_names, w->S);
    cx_strings_free(w->attr_words, w->A);
    free(w->super_of);
    free(w->favs);
    free(w->proto);
    free(w->attr_dir);
    free(w->w1);
    free(w->b1);
    free(w->w2);
    free(w->train_counts);
    free(w->cdf);
    free(w->spur_dir);
    cx_strings_free(w->spur_words, w->V);
    if (w->has_attrs)
        cx_synth_attrs_free(&w->attrs);
    cx_strmap_free(&w->taken);
}

/* A pronounceable made-up word (CV CV CV, sometimes a final consonant) not used before. */
static char *new_word(world *w, cx_rng *r)
{
    static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou";
    for (;;) {
        char buf[16];
        size_t n = 0;
        for (int s = 0; s < 3; s++) {
            buf[n++] = cons[cx_rng_below(r, sizeof cons - 1)];
            buf[n++] = vow[cx_rng_below(r, sizeof vow - 1)];
        }
        if (cx_rng_below(r, 2))
            buf[n++] = cons[cx_rng_below(r, sizeof cons - 1)];
        buf[n] = '\0';
        if (cx_strmap_get(&w->taken, buf, n) >= 0)
            continue; /* about 5 million words exist; a few hundred thousand are ever needed */
        if (cx_strmap_put(&w->taken, buf, n, 1) < 0)
            return NULL;
        char *d = malloc(n + 1);
        if (d)
            memcpy(d, buf, n + 1);
        return d;
    }
}

static void fill_normal(cx_rng *r, float *x, size_t n, double sd)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sd * cx_rng_normal(r));
}

/* The spurious attribute's directions and words, from their own streams after every other
 * word is taken: with it or without, the rest of the world is the same. */
static cx_status spurious_build(world *w, cx_err *err)
{
    const cx_synth_opts *o = w->o;
    if (!(o->spurious > 0))
        return CX_OK;
    const size_t V = (size_t)o->spurious_values, D = (size_t)w->D;
    w->spur_dir = malloc(V * D * sizeof *w->spur_dir);
    w->spur_words = calloc(V, sizeof *w->spur_words);
    if (!w->spur_dir || !w->spur_words)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    w->V = (int)V;
    w->spur_agree[0] = w->spur_agree[1] = w->spur_agree[2] = NAN;
    cx_rng r;
    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_SPURIOUS, 0, 0));
    for (size_t v = 0; v < V; v++) {
        float *u = w->spur_dir + v * D;
        double ss = 0;
        for (size_t d = 0; d < D; d++) {
            u[d] = (float)cx_rng_normal(&r);
            ss += (double)u[d] * u[d];
        }
        double inv = ss > 0 ? 1.0 / sqrt(ss) : 0.0;
        for (size_t d = 0; d < D; d++)
            u[d] = (float)(u[d] * inv);
    }
    static const char *const fixed[] = {"on", "background"};
    for (int i = 0; i < 2; i++)
        cx_strmap_put(&w->taken, fixed[i], strlen(fixed[i]), 0);
    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_SPURIOUS, 1, 0));
    for (size_t v = 0; v < V; v++)
        if (!(w->spur_words[v] = new_word(w, &r)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
    return CX_OK;
}

/* A made-up adjective: a fresh word plus "ed" ("bepusined"), so captions read as attributes
 * before a name; longer than every other made-up word, so it collides with none. */
static char *attr_word(void *ctx, cx_rng *r)
{
    world *w = ctx;
    char *base = new_word(w, r);
    if (!base)
        return NULL;
    size_t n = strlen(base);
    char *d = realloc(base, n + 3);
    if (!d) {
        free(base);
        return NULL;
    }
    memcpy(d + n, "ed", 3);
    if (cx_strmap_put(&w->taken, d, n + 2, 1) < 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* The informative attributes, from their own streams after every other word is taken (the
 * spurious words too): with them or without, the rest of the world is the same. */
static cx_status attrs_build(world *w, cx_err *err)
{
    const cx_synth_opts *o = w->o;
    if (!(o->attr_info > 0))
        return CX_OK;
    cx_status st = cx_synth_attrs_build(&w->attrs, o->attr_info, o->open_share, o->class_sep,
                                        o->attr_scope, o->attr_named, w->C, w->CK, w->S, w->L, w->super_of, o->seed, TAG_ATTRS,
                                        attr_word, w, err);
    if (!st)
        w->has_attrs = 1;
    return st;
}

static cx_status world_build(world *w, const cx_synth_opts *o, cx_err *err)
{
    memset(w, 0, sizeof *w);
    w->o = o;
    w->C = o->classes;
    w->K = open_count(o);
    w->CK = w->C + w->K;
    w->S = o->superclasses > 0 ? o->superclasses : o->classes < 10 ? o->classes : 10;
    w->M = o->modes;
    w->L = o->latent;
    w->H = o->hidden > 0 ? o->hidden : o->dim;
    w->D = o->dim;
    w->A = o->attributes;
    w->nsyn = 1 + o->synonyms;
    size_t CK = (size_t)w->CK, L = (size_t)w->L, M = (size_t)w->M;
    if (cx_strmap_init(&w->taken, CK * (size_t)w->nsyn + 256))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    w->names = calloc(CK, sizeof *w->names);
    w->syn = calloc(CK, sizeof *w->syn);
    w->super_names = calloc((size_t)w->S, sizeof *w->super_names);
    w->attr_words = calloc((size_t)w->A, sizeof *w->attr_words);
    w->super_of = calloc(CK, sizeof *w->super_of);
    w->favs = calloc(CK * M * FAVS, sizeof *w->favs);
    w->proto = calloc(CK * M * L, sizeof *w->proto);
    w->attr_dir = calloc((size_t)w->A * L, sizeof *w->attr_dir);
    w->w1 = calloc((size_t)w->H * L, sizeof *w->w1);
    w->b1 = calloc((size_t)w->H, sizeof *w->b1);
    w->w2 = calloc((size_t)w->D * (size_t)w->H, sizeof *w->w2);
    w->train_counts = calloc(CK, sizeof *w->train_counts);
    w->cdf = calloc(CK, sizeof *w->cdf);
    if (!w->names || !w->syn || !w->super_names || !w->attr_words || !w->super_of || !w->favs ||
        !w->proto || !w->attr_dir || !w->w1 || !w->b1 || !w->w2 || !w->train_counts || !w->cdf)
        return cx_fail(err, CX_ENOMEM, "out of memory");

    /* Reserve the fixed vocabulary so made-up names never collide with it. */
    for (int i = 0; i < NUM_ADJECTIVES; i++)
        cx_strmap_put(&w->taken, adjectives[i], strlen(adjectives[i]), 0);
    for (int i = 0; i < NUM_TEMPLATES + NUM_PREPS; i++) {
        const char *s = i < NUM_TEMPLATES ? synth_templates[i] : preps[i - NUM_TEMPLATES];
        for (const char *p = s; *p;) {
            while (*p && !(*p >= 'a' && *p <= 'z'))
                p++;
            const char *q = p;
            while (*q >= 'a' && *q <= 'z')
                q++;
            if (q > p)
                cx_strmap_put(&w->taken, p, (size_t)(q - p), 0);
            p = q;
        }
    }

    cx_rng r;
    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_NAMES, 0, 0));
    for (int s = 0; s < w->S; s++)
        if (!(w->super_names[s] = new_word(w, &r)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
    for (int a = 0; a < w->A; a++) {
        w->attr_words[a] = a < NUM_ADJECTIVES ? malloc(strlen(adjectives[a]) + 1) : new_word(w, &r);
        if (!w->attr_words[a])
            return cx_fail(err, CX_ENOMEM, "out of memory");
        if (a < NUM_ADJECTIVES)
            strcpy(w->attr_words[a], adjectives[a]);
    }

    /* Superclasses: evaluated classes spread evenly over them in a seeded order; open-world
     * concepts drawn at random. */
    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_WORLD, 0, 0));
    uint32_t *perm = malloc((size_t)w->C * sizeof *perm);
    if (!perm)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_rng_permutation(&r, perm, (size_t)w->C);
    for (int i = 0; i < w->C; i++)
        w->super_of[perm[i]] = i % w->S;
    free(perm);
    for (int c = w->C; c < w->CK; c++)
        w->super_of[c] = (int)cx_rng_below(&r, (uint32_t)w->S);

    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_NAMES, 1, 0));
    for (int c = 0; c < w->CK; c++) {
        if (!(w->syn[c] = calloc((size_t)w->nsyn, sizeof **w->syn)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        for (int k = 0; k < w->nsyn; k++) {
            char *word = new_word(w, &r);
            if (!word)
                return cx_fail(err, CX_ENOMEM, "out of memory");
            if (k > 0 && k == w->nsyn - 1) {
                /* The last synonym names the superclass too: "word supername". */
                const char *sup = w->super_names[w->super_of[c]];
                char *two = malloc(strlen(word) + strlen(sup) + 2);
                if (!two) {
                    free(word);
                    return cx_fail(err, CX_ENOMEM, "out of memory");
                }
                sprintf(two, "%s %s", word, sup);
                free(word);
                word = two;
            }
            w->syn[c][k] = word;
        }
        w->names[c] = w->syn[c][0];
    }

    /* Latent geometry. */
    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_WORLD, 1, 0));
    float *centre = malloc((size_t)w->S * L * sizeof *centre);
    if (!centre)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    fill_normal(&r, centre, (size_t)w->S * L, o->super_sep);
    /* Each mode of a concept is its own blob in the superclass's region: a class is a union of
     * blobs that interleave with its siblings' (the reason a linear classifier falls short). */
    for (size_t cm = 0; cm < CK * M; cm++)
        for (size_t l = 0; l < L; l++)
            w->proto[cm * L + l] = centre[(size_t)w->super_of[cm / M] * L + l] +
                                   (float)(o->class_sep * cx_rng_normal(&r));
    free(centre);
    fill_normal(&r, w->attr_dir, (size_t)w->A * L, 1.0);
    for (size_t cm = 0; cm < CK * M; cm++) {
        int *f = w->favs + cm * FAVS;
        for (int k = 0; k < FAVS; k++) {
            int a, dup;
            int tries = 0;
            do {
                a = (int)cx_rng_below(&r, (uint32_t)w->A);
                dup = 0;
                for (int j = 0; j < k; j++)
                    dup |= f[j] == a;
            } while (dup && ++tries < 16);
            f[k] = a;
        }
    }

    cx_rng_seed(&r, o->seed, cx_rng_stream(TAG_RENDER, 0, 0));
    fill_normal(&r, w->w1, (size_t)w->H * L, 1.0 / sqrt((double)L));
    for (int h = 0; h < w->H; h++)
        w->b1[h] = (float)(2.0 * 3.14159265358979323846 * cx_rng_uniform(&r));
    fill_normal(&r, w->w2, (size_t)w->D * (size_t)w->H, sqrt(2.0 / w->H));

    /* Training frequencies: the profile over evaluated classes, the same law over open-world
     * concepts, each apportioned to its share of n with at least one sample per concept. */
    double *wt = malloc(CK * sizeof *wt);
    int64_t *sz = malloc(CK * sizeof *sz);
    if (!wt || !sz) {
        free(wt);
        free(sz);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    for (int part = 0; part < 2; part++) {
        int first = part ? w->C : 0, count = part ? w->K : w->C;
        if (count == 0)
            continue;
        int64_t total = part ? open_samples(o) : o->n - open_samples(o);
        double alpha = o->alpha > 0 ? o->alpha : cx_profile_pareto_alpha(o->rho, count);
        for (int i = 0; i < count; i++)
            wt[i] = cx_profile_size(o->profile, 1.0, i, count, o->rho, alpha, o->mu);
        cx_apportion(wt, count, total, 1, sz);
        for (int i = 0; i < count; i++)
            w->train_counts[first + i] = sz[i];
    }
    free(wt);
    free(sz);
    double acc = 0, sum = 0;
    for (int c = 0; c < w->CK; c++)
        sum += (double)w->train_counts[c];
    for (int c = 0; c < w->CK; c++) {
        acc += (double)w->train_counts[c];
        w->cdf[c] = acc / sum;
    }
    cx_status st = spurious_build(w, err);
    return st ? st : attrs_build(w, err);
}

/* ---- per-chunk generation ------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
}

static void sb_str(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* An attribute of mode cm (= c * M + m): one of its favourites 3 times in 4. */
static int draw_attribute(const world *w, cx_rng *r, size_t cm)
{
    if (cx_rng_uniform(r) < 0.75)
        return w->favs[cm * FAVS + cx_rng_below(r, FAVS)];
    return (int)cx_rng_below(r, (uint32_t)w->A);
}

static int draw_concept(const world *w, cx_rng *r)
{
    double u = cx_rng_uniform(r);
    int lo = 0, hi = w->CK - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (w->cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static const char *pick_synonym(const world *w, cx_rng *r, int c)
{
    return w->syn[c][w->nsyn > 1 ? cx_rng_below(r, (uint32_t)w->nsyn) : 0];
}

/* Write the caption of one sample (and a newline) into b. */
static void write_caption(const world *w, cx_rng *r, int c, const char *const *attrs, int na,
                          int c2, const char *spur_word, strbuf *b)
{
    const cx_synth_opts *o = w->o;
    const char *t;
    char phrase[512];
    if (o->captions == CX_CAPTIONS_TEMPLATE) {
        t = synth_templates[0];
        snprintf(phrase, sizeof phrase, "%s", w->names[c]);
    } else {
        t = synth_templates[cx_rng_below(r, NUM_TEMPLATES)];
        const char *s = pick_synonym(w, r, c);
        if (o->captions == CX_CAPTIONS_SYNONYM) {
            snprintf(phrase, sizeof phrase, "%s", s);
        } else {
            int n = 0;
            for (int k = 0; k < na; k++)
                n += snprintf(phrase + n, sizeof phrase - (size_t)n, "%s ", attrs[k]);
            n += snprintf(phrase + n, sizeof phrase - (size_t)n, "%s", s);
            if (c2 >= 0)
                snprintf(phrase + n, sizeof phrase - (size_t)n, " %s %s",
                         preps[cx_rng_below(r, NUM_PREPS)], pick_synonym(w, r, c2));
        }
    }
    const char *hole = strstr(t, "{}");
    sb_put(b, t, (size_t)(hole - t));
    sb_str(b, phrase);
    if (spur_word) {
        sb_str(b, " on a ");
        sb_str(b, spur_word);
        sb_str(b, " background");
    }
    sb_str(b, hole + 2);
    sb_put(b, "\n", 1);
}

typedef struct {
    float *z; /* (CX_SYNTH_CHUNK, L) */
    float *h; /* (CX_SYNTH_CHUNK, H) */
} scratch;

/* Samples first..first+m of a split: true concepts cls[0..m) -> observed labels obs, features
 * into x (float, m x D) and, for uint8 output, x8; captions appended to b. */
static void gen_chunk(const world *w, uint64_t tag, uint64_t chunk, const int32_t *cls, size_t m,
                      int32_t *obs, int32_t *spur, uint8_t *attr, float *x, uint8_t *x8,
                      strbuf *b, scratch *sc)
{
    const cx_synth_opts *o = w->o;
    const size_t L = (size_t)w->L, H = (size_t)w->H, D = (size_t)w->D;
    cx_rng r, rc, rs, ra;
    cx_rng_seed(&r, o->seed, cx_rng_stream(tag, chunk, 0));
    cx_rng_seed(&rs, o->seed, cx_rng_stream(TAG_SPURIOUS, tag, chunk));
    cx_rng_seed(&ra, o->seed, cx_rng_stream(TAG_ATTRS, tag, chunk));
    /* Wording comes from its own stream, so the caption mode never changes the features. */
    cx_rng_seed(&rc, o->seed, cx_rng_stream(TAG_CAPTIONS, tag, chunk));
    for (size_t i = 0; i < m; i++) {
        int c = cls[i];
        size_t cm = (size_t)c * (size_t)w->M + (w->M > 1 ? cx_rng_below(&r, (uint32_t)w->M) : 0);
        float *z = sc->z + i * L;
        const float *mu = w->proto + cm * L;
        for (size_t l = 0; l < L; l++)
            z[l] = mu[l] + (float)(o->spread * cx_rng_normal(&r));
        int attrs[SLOTS], na = 0;
        for (int s = 0; s < SLOTS; s++) {
            if (!(cx_rng_uniform(&r) < o->attr_rate))
                continue;
            int a = draw_attribute(w, &r, cm);
            if (na == 1 && a == attrs[0])
                continue; /* the same adjective twice says nothing new */
            attrs[na++] = a;
            const float *v = w->attr_dir + (size_t)a * L;
            for (size_t l = 0; l < L; l++)
                z[l] += (float)o->attr_strength * v[l];
        }
        int c2 = -1;
        if (cx_rng_uniform(&r) < o->cooccur) {
            int d = draw_concept(w, &r);
            if (d != c) {
                c2 = d;
                size_t dm =
                    (size_t)d * (size_t)w->M + (w->M > 1 ? cx_rng_below(&r, (uint32_t)w->M) : 0);
                const float *mu2 = w->proto + dm * L;
                for (size_t l = 0; l < L; l++)
                    z[l] += (float)o->cooccur_strength * (mu2[l] - mu[l]);
            }
        }
        obs[i] = c;
        if (tag == TAG_TRAIN && o->label_noise > 0 && c < w->C &&
            cx_rng_uniform(&r) < o->label_noise) {
            int k = (int)cx_rng_below(&r, (uint32_t)(w->C - 1));
            obs[i] = k >= c ? k + 1 : k;
        }
        const char *spur_word = NULL;
        if (spur) {
            /* In training the class's own value with probability P, else another; elsewhere
             * independent of the class. */
            int V = w->V, own = c % V, v;
            if (tag == TAG_TRAIN) {
                if (cx_rng_uniform(&rs) < o->spurious) {
                    v = own;
                } else {
                    v = (int)cx_rng_below(&rs, (uint32_t)(V - 1));
                    v += v >= own;
                }
            } else {
                v = (int)cx_rng_below(&rs, (uint32_t)V);
            }
            spur[i] = v;
            if (o->spurious_captions > 0 && cx_rng_uniform(&rs) < o->spurious_captions)
                spur_word = w->spur_words[v];
        }
        const char *words[SLOTS + CX_SYNTH_ATTR_PER_CLASS]; /* room for either kind */
        for (int k = 0; k < na; k++)
            words[k] = w->attr_words[attrs[k]];
        if (attr) {
            /* The informative attributes replace the nuisance words in the caption; which of
             * them it names comes from the wording stream, so the images stay the same in
             * every caption mode. */
            unsigned present = cx_synth_attrs_draw(&w->attrs, &ra, c, z);
            int named[CX_SYNTH_ATTR_PER_CLASS];
            na = 0;
            if (o->captions == CX_CAPTIONS_DESCRIPTIVE) {
                na = cx_synth_attrs_named(&w->attrs, &rc, c, present, named);
                for (int k = 0; k < na; k++)
                    words[k] = w->attrs.words[named[k]];
            }
            attr[i] = (uint8_t)(present | (unsigned)na << CX_SYNTH_ATTR_PER_CLASS);
        }
        write_caption(w, &rc, c, words, na, c2, spur_word, b);
    }
    /* h = sin(fold * z W1^T + b); x = h W2^T + noise. */
    cx_sgemm(0, 1, (int)m, (int)H, (int)L, (float)o->fold, sc->z, (int)L, w->w1, (int)L, 0.0f,
             sc->h, (int)H);
    for (size_t i = 0; i < m; i++) {
        float *h = sc->h + i * H;
        for (size_t k = 0; k < H; k++)
            h[k] = sinf(h[k] + w->b1[k]);
    }
    cx_sgemm(0, 1, (int)m, (int)D, (int)H, 1.0f, sc->h, (int)H, w->w2, (int)H, 0.0f, x, (int)D);
    if (spur) {
        const float s = (float)o->spurious_strength;
        for (size_t i = 0; i < m; i++) {
            const float *u = w->spur_dir + (size_t)spur[i] * D;
            float *xi = x + i * D;
            for (size_t d = 0; d < D; d++)
                xi[d] += s * u[d];
        }
    }
    if (o->noise > 0)
        for (size_t i = 0; i < m * D; i++)
            x[i] += (float)(o->noise * cx_rng_normal(&r));
    if (x8)
        for (size_t i = 0; i < m * D; i++) {
            float q = (x[i] + 3.0f) * (255.0f / 6.0f) + 0.5f;
            x8[i] = q <= 0.0f ? 0 : q >= 255.0f ? 255 : (uint8_t)q;
        }
}

/* ---- one split ------------------------------------------------------------------------------ */

typedef struct {
    const char *dir;
    const char *prefix; /* "train" or "test" */
    uint64_t tag;
    int32_t *cls; /* (n) true concept of each sample */
    size_t n;
    int32_t *spur; /* (n) out: spurious value of each sample, or NULL without one */
    uint8_t *attr; /* (n) out: informative attributes present (low CX_SYNTH_ATTR_PER_CLASS
                      bits, one a slot) and named (the count, above), or NULL without them */
} split_job;

static char *join2(const char *dir, const char *prefix, const char *suffix)
{
    size_t n = strlen(dir) + strlen(prefix) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, prefix, suffix);
    return p;
}

static cx_status write_split(const world *w, const split_job *job, uint64_t *done, uint64_t total,
                             int32_t **obs_out, cx_err *err)
{
    const cx_synth_opts *o = w->o;
    const size_t D = (size_t)w->D, n = job->n;
    const size_t nchunks = (n + CX_SYNTH_CHUNK - 1) / CX_SYNTH_CHUNK;
    char *fpath = join2(job->dir, job->prefix, "-features.npy");
    char *cpath = join2(job->dir, job->prefix, "-captions.txt");
    int32_t *obs = malloc((n ? n : 1) * sizeof *obs);
    float *xb = malloc((size_t)BLOCK_CHUNKS * CX_SYNTH_CHUNK * D * sizeof *xb);
    uint8_t *x8 =
        o->dtype == CX_DTYPE_U8 ? malloc((size_t)BLOCK_CHUNKS * CX_SYNTH_CHUNK * D) : NULL;
    strbuf *bufs = calloc(BLOCK_CHUNKS, sizeof *bufs);
    cx_npy_writer fw;
    cx_afile cf;
    memset(&fw, 0, sizeof fw);
    memset(&cf, 0, sizeof cf);
    fw.af.fd = cf.fd = -1;
    cx_status st = CX_OK;
    if (!fpath || !cpath || !obs || !xb || (o->dtype == CX_DTYPE_U8 && !x8) || !bufs) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    uint64_t shape[2] = {n, D};
    if ((st = cx_npy_writer_open(&fw, fpath, o->dtype == CX_DTYPE_U8 ? CX_ELEM_U8 : CX_ELEM_F32, 2,
                                 shape, err)) ||
        (st = cx_afile_open(&cf, cpath, err)))
        goto fail;
    for (size_t b0 = 0; b0 < nchunks; b0 += BLOCK_CHUNKS) {
        size_t nb = nchunks - b0 < BLOCK_CHUNKS ? nchunks - b0 : BLOCK_CHUNKS;
        int failed = 0;
#pragma omp parallel
        {
            scratch sc;
            sc.z = malloc((size_t)CX_SYNTH_CHUNK * (size_t)w->L * sizeof *sc.z);
            sc.h = malloc((size_t)CX_SYNTH_CHUNK * (size_t)w->H * sizeof *sc.h);
            if (!sc.z || !sc.h) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (size_t k = 0; k < nb; k++) {
                if (!sc.z || !sc.h)
                    continue;
                size_t chunk = b0 + k, first = chunk * CX_SYNTH_CHUNK;
                size_t m = n - first < CX_SYNTH_CHUNK ? n - first : CX_SYNTH_CHUNK;
                bufs[k].len = 0;
                gen_chunk(w, job->tag, chunk, job->cls + first, m, obs + first,
                          job->spur ? job->spur + first : NULL,
                          job->attr ? job->attr + first : NULL, xb + k * CX_SYNTH_CHUNK * D,
                          x8 ? x8 + k * CX_SYNTH_CHUNK * D : NULL, &bufs[k], &sc);
            }
            free(sc.z);
            free(sc.h);
        }
        for (size_t k = 0; k < nb; k++)
            failed |= bufs[k].oom;
        if (failed) {
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        size_t first = b0 * CX_SYNTH_CHUNK;
        size_t m = n - first < nb * CX_SYNTH_CHUNK ? n - first : nb * CX_SYNTH_CHUNK;
        if ((st = x8 ? cx_npy_writer_write(&fw, x8, m * D, err)
                     : cx_npy_writer_write(&fw, xb, m * D * sizeof *xb, err)))
            goto fail;
        for (size_t k = 0; k < nb; k++)
            if (bufs[k].len && fwrite(bufs[k].s, 1, bufs[k].len, cf.fp) != bufs[k].len) {
                st = cx_fail_errno(err, CX_EIO, errno, "%s: write failed", cpath);
                goto fail;
            }
        *done += m;
        if (o->progress)
            o->progress(o->progress_ctx, *done, total);
    }
    if ((st = cx_npy_writer_commit(&fw, err)))
        goto fail;
    st = cx_afile_commit(&cf, err);
    cf.fp = NULL;
    if (st)
        goto fail;
    *obs_out = obs;
    obs = NULL;
fail:
    cx_npy_writer_abort(&fw);
    if (cf.fp)
        cx_afile_abort(&cf);
    for (int k = 0; bufs && k < BLOCK_CHUNKS; k++)
        free(bufs[k].s);
    free(bufs);
    free(fpath);
    free(cpath);
    free(obs);
    free(xb);
    free(x8);
    return st;
}

static cx_status write_labels(const char *dir, const char *name, const int32_t *y, size_t n,
                              cx_err *err)
{
    char *p = join2(dir, name, "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    uint64_t shape[1] = {n};
    cx_status st = cx_npy_write(p, CX_ELEM_I32, 1, shape, y, err);
    free(p);
    return st;
}

/* Sample order: each concept's count of samples, shuffled. */
static int32_t *sample_classes(const int64_t *counts, int nc, size_t n, uint64_t seed,
                               uint64_t which)
{
    int32_t *cls = malloc((n ? n : 1) * sizeof *cls);
    if (!cls)
        return NULL;
    size_t k = 0;
    for (int c = 0; c < nc; c++)
        for (int64_t j = 0; j < counts[c]; j++)
            cls[k++] = c;
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(TAG_ORDER, which, 0));
    cx_rng_shuffle(&r, (uint32_t *)cls, n); /* labels are non-negative: same bits either way */
    return cls;
}

/* ---- text files -------------------------------------------------------------------------- */

static cx_status write_text_files(const world *w, const char *dir, cx_err *err)
{
    char *p = join2(dir, "classes.txt", "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, p, err);
    if (!st) {
        for (int c = 0; c < w->CK; c++)
            for (int k = 0; k < w->nsyn; k++)
                fprintf(f.fp, "%s%s", w->syn[c][k], k + 1 < w->nsyn ? "|" : "\n");
        st = cx_afile_commit(&f, err);
    }
    free(p);
    if (st)
        return st;
    if (!(p = join2(dir, "templates.txt", "")))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    if (!(st = cx_afile_open(&f, p, err))) {
        for (int t = 0; t < NUM_TEMPLATES; t++)
            fprintf(f.fp, "%s\n", synth_templates[t]);
        st = cx_afile_commit(&f, err);
    }
    free(p);
    return st;
}

/* PREFIX-attributes.txt: the words of each sample's informative attributes, one line a sample
 * (empty when it has none); its presence summary into w->attr_splits. */
static cx_status write_attributes(world *w, const split_job *job, cx_err *err)
{
    if (!w->has_attrs)
        return CX_OK;
    cx_synth_attrs_split *sum = &w->attr_splits[w->attr_nsplits++];
    static const char *const files[] = {"train-attributes.txt", "test-attributes.txt",
                                        "val-attributes.txt"};
    int which = job->tag == TAG_TRAIN ? 0 : job->tag == TAG_TEST ? 1 : 2;
    *sum = (cx_synth_attrs_split){job->prefix, files[which], (int64_t)job->n, 0, 0};
    char *p = join2(job->dir, files[which], "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, p, err);
    free(p);
    if (st)
        return st;
    const unsigned mask = (1u << CX_SYNTH_ATTR_PER_CLASS) - 1;
    char line[1024];
    for (size_t i = 0; i < job->n; i++) {
        unsigned present = job->attr[i] & mask;
        for (unsigned k = present; k; k &= k - 1)
            sum->present++;
        sum->named += job->attr[i] >> CX_SYNTH_ATTR_PER_CLASS;
        cx_synth_attrs_line(&w->attrs, job->cls[i], present, line, sizeof line);
        fprintf(f.fp, "%s\n", line);
    }
    return cx_afile_commit(&f, err);
}

static cx_status write_meta(const world *w, const char *dir, const int64_t *test_counts,
                            size_t noisy, cx_err *err)
{
    const cx_synth_opts *o = w->o;
    char *p = join2(dir, "synth.json", "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, p, err);
    free(p);
    if (st)
        return st;
    cx_json j;
    cx_json_init(&j, f.fp, 1);
    cx_json_begin_object(&j);
    cx_json_key(&j, "generator");
    cx_json_string(&j, "clipx synth");
    cx_json_key(&j, "seed");
    cx_json_int(&j, (long long)o->seed);
#define NUM(k, v)                                                                                  \
    cx_json_key(&j, k);                                                                            \
    cx_json_number(&j, (double)(v))
#define INT(k, v)                                                                                  \
    cx_json_key(&j, k);                                                                            \
    cx_json_int(&j, (long long)(v))
    INT("classes", w->C);
    INT("open_classes", w->K);
    NUM("open_world", o->open_world);
    INT("superclasses", w->S);
    INT("modes", w->M);
    cx_json_key(&j, "profile");
    cx_json_string(&j, cx_profile_name(o->profile));
    NUM("rho", o->rho);
    NUM("alpha", o->alpha > 0 ? o->alpha : cx_profile_pareto_alpha(o->rho, w->C));
    NUM("mu", o->mu);
    INT("n", o->n);
    INT("test_per_class", o->test_per_class);
    if (o->val_per_class > 0) { /* absent without a val split: the file keeps its old bytes */
        INT("val_per_class", o->val_per_class);
    }
    INT("dim", w->D);
    INT("latent", w->L);
    INT("hidden", w->H);
    NUM("super_sep", o->super_sep);
    NUM("class_sep", o->class_sep);
    NUM("spread", o->spread);
    NUM("fold", o->fold);
    NUM("noise", o->noise);
    cx_json_key(&j, "captions");
    cx_json_string(&j, cx_caption_mode_name(o->captions));
    INT("synonyms", o->synonyms);
    INT("attributes", w->A);
    NUM("attr_rate", o->attr_rate);
    NUM("attr_strength", o->attr_strength);
    NUM("cooccur", o->cooccur);
    NUM("cooccur_strength", o->cooccur_strength);
    NUM("label_noise", o->label_noise);
    INT("noisy_labels", noisy);
    cx_json_key(&j, "dtype");
    cx_json_string(&j, o->dtype == CX_DTYPE_U8 ? "uint8" : "float32");
    cx_json_key(&j, "superclass_names");
    cx_json_begin_array(&j);
    for (int s = 0; s < w->S; s++)
        cx_json_string(&j, w->super_names[s]);
    cx_json_end_array(&j);
    cx_json_key(&j, "attribute_words");
    cx_json_begin_array(&j);
    for (int a = 0; a < w->A; a++)
        cx_json_string(&j, w->attr_words[a]);
    cx_json_end_array(&j);
    cx_json_key(&j, "open_world_concepts");
    cx_json_begin_array(&j);
    for (int c = w->C; c < w->CK; c++)
        cx_json_string(&j, w->names[c]);
    cx_json_end_array(&j);
    if (w->V) {
        /* The truth of the spurious attribute (synth.h): its knobs, words, each concept's
         * own value and the agreement the draws gave. */
        cx_json_key(&j, "spurious");
        cx_json_begin_object(&j);
        NUM("p", o->spurious);
        INT("values", w->V);
        NUM("strength", o->spurious_strength);
        NUM("captions", o->spurious_captions);
        cx_json_key(&j, "words");
        cx_json_begin_array(&j);
        for (int v = 0; v < w->V; v++)
            cx_json_string(&j, w->spur_words[v]);
        cx_json_end_array(&j);
        cx_json_key(&j, "class_values");
        cx_json_begin_array(&j);
        for (int c = 0; c < w->CK; c++)
            cx_json_int(&j, c % w->V);
        cx_json_end_array(&j);
        NUM("train_agreement", w->spur_agree[0]);
        NUM("test_agreement", w->spur_agree[1]);
        NUM("val_agreement", w->spur_agree[2]);
        cx_json_end_object(&j);
    }
    if (w->has_attrs) { /* only with them: the file keeps its old bytes without */
        cx_json_key(&j, "informative_attributes");
        cx_synth_attrs_json(&w->attrs, &j, w->attr_splits, w->attr_nsplits);
    }
    cx_json_key(&j, "concepts");
    cx_json_begin_array(&j);
    for (int c = 0; c < w->CK; c++) {
        cx_json_begin_object(&j);
        cx_json_key(&j, "name");
        cx_json_string(&j, w->names[c]);
        cx_json_key(&j, "evaluated");
        cx_json_bool(&j, c < w->C);
        INT("superclass", w->super_of[c]);
        INT("train_count", w->train_counts[c]);
        INT("test_count", c < w->C ? test_counts[c] : 0);
        cx_json_key(&j, "synonyms");
        cx_json_begin_array(&j);
        for (int k = 0; k < w->nsyn; k++)
            cx_json_string(&j, w->syn[c][k]);
        cx_json_end_array(&j);
        cx_json_key(&j, "favoured_attributes"); /* per mode */
        cx_json_begin_array(&j);
        for (int m = 0; m < w->M; m++) {
            cx_json_begin_array(&j);
            for (int k = 0; k < FAVS; k++)
                cx_json_string(&j, w->attr_words[w->favs[((size_t)c * w->M + m) * FAVS + k]]);
            cx_json_end_array(&j);
        }
        cx_json_end_array(&j);
        if (w->has_attrs) {
            cx_json_key(&j, "informative_attributes");
            cx_synth_attrs_json_concept(&w->attrs, &j, c);
        }
        cx_json_end_object(&j);
    }
    cx_json_end_array(&j);
    cx_json_end_object(&j);
#undef NUM
#undef INT
    return cx_afile_commit(&f, err);
}

static cx_status write_yaml(const world *w, const char *dir, size_t n_test, size_t n_val,
                           cx_err *err)
{
    const cx_synth_opts *o = w->o;
    char *p = join2(dir, "dataset.yaml", "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, p, err);
    free(p);
    if (st)
        return st;
    fprintf(
        f.fp,
        "# Written by clipx synth (seed %llu); parameters and per-concept truth in synth.json,\n"
        "# true training counts in train-counts.tsv. Classes after the first eval_classes are\n"
        "# open-world concepts that appear only in training.\n"
        "name: synth\n"
        "classes: classes.txt\n"
        "templates: templates.txt\n"
        "eval_classes: %d\n"
        "%s"
        "train: {images: train-features.npy, labels: train-labels.npy, captions: "
        "train-captions.txt, "
        "n: %lld, shape: [%d]%s}\n",
        (unsigned long long)o->seed, w->C, w->V ? "group_names: group-names.txt\n" : "",
        (long long)o->n, w->D, w->V ? ", groups: train-groups.npy" : "");
    if (n_test)
        fprintf(f.fp,
                "test: {images: test-features.npy, labels: test-labels.npy, captions: "
                "test-captions.txt, "
                "n: %zu, shape: [%d]%s}\n",
                n_test, w->D, w->V ? ", groups: test-groups.npy" : "");
    if (n_val)
        fprintf(f.fp,
                "val: {images: val-features.npy, labels: val-labels.npy, captions: "
                "val-captions.txt, n: %zu, shape: [%d]%s}\n",
                n_val, w->D, w->V ? ", groups: val-groups.npy" : "");
    return cx_afile_commit(&f, err);
}

/* ---- the whole dataset ------------------------------------------------------------------------
 */

/* ---- the spurious attribute's files --------------------------------------------------------- */

static cx_status spurious_alloc(const world *w, split_job *job, cx_err *err)
{
    if (w->V && !(job->spur = malloc((job->n ? job->n : 1) * sizeof *job->spur)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    if (w->has_attrs && !(job->attr = calloc(job->n ? job->n : 1, sizeof *job->attr)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    return CX_OK;
}

/* PREFIX-groups.npy: class * V + value of every sample (the true class, as the features). */
static cx_status write_groups(world *w, const split_job *job, int which, cx_err *err)
{
    if (!w->V)
        return CX_OK;
    int32_t *g = malloc((job->n ? job->n : 1) * sizeof *g);
    if (!g)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    size_t agree = 0;
    for (size_t i = 0; i < job->n; i++) {
        g[i] = job->cls[i] * w->V + job->spur[i];
        agree += job->spur[i] == job->cls[i] % w->V;
    }
    w->spur_agree[which] = job->n ? (double)agree / (double)job->n : NAN;
    char *p = join2(job->dir, job->prefix, "-groups.npy");
    uint64_t shape[1] = {job->n};
    cx_status st = p ? cx_npy_write(p, CX_ELEM_I32, 1, shape, g, err)
                     : cx_fail(err, CX_ENOMEM, "out of memory");
    free(p);
    free(g);
    return st;
}

/* group-names.txt: "CLASS/VALUE" for every concept and value, in group order. */
static cx_status write_group_names(const world *w, const char *dir, cx_err *err)
{
    if (!w->V)
        return CX_OK;
    char *p = join2(dir, "group-names.txt", "");
    if (!p)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, p, err);
    free(p);
    if (st)
        return st;
    for (int c = 0; c < w->CK; c++)
        for (int v = 0; v < w->V; v++)
            fprintf(f.fp, "%s/%d\n", w->names[c], v);
    return cx_afile_commit(&f, err);
}

/* Every file of a dataset into dir; dataset.yaml last. */
static cx_status generate(const cx_synth_opts *o, const char *dir, cx_err *err)
{
    cx_status st;
    world w;
    int32_t *train_cls = NULL, *test_cls = NULL, *train_obs = NULL, *test_obs = NULL;
    int32_t *val_cls = NULL, *val_obs = NULL;
    int64_t *test_counts = NULL, *val_counts = NULL;
    split_job train = {0}, test = {0}, val = {0};
    int threads = cx_threads_get();
    if ((st = world_build(&w, o, err)))
        goto fail;
    size_t n_train = (size_t)o->n, n_test = (size_t)o->test_per_class * (size_t)w.C;
    size_t n_val = (size_t)o->val_per_class * (size_t)w.C;
    test_counts = calloc((size_t)w.C, sizeof *test_counts);
    val_counts = calloc((size_t)w.C, sizeof *val_counts);
    if (!test_counts || !val_counts) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    for (int c = 0; c < w.C; c++)
        test_counts[c] = o->test_per_class;
    for (int c = 0; c < w.C; c++)
        val_counts[c] = o->val_per_class;
    train_cls = sample_classes(w.train_counts, w.CK, n_train, o->seed, 0);
    test_cls = sample_classes(test_counts, w.C, n_test, o->seed, 1);
    val_cls = sample_classes(val_counts, w.C, n_val, o->seed, 2);
    if (!train_cls || !test_cls || !val_cls) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    if ((st = write_text_files(&w, dir, err)))
        goto fail;
    train = (split_job){dir, "train", TAG_TRAIN, train_cls, n_train, NULL, NULL};
    test = (split_job){dir, "test", TAG_TEST, test_cls, n_test, NULL, NULL};
    val = (split_job){dir, "val", TAG_VAL, val_cls, n_val, NULL, NULL};
    if ((st = spurious_alloc(&w, &train, err)) || (st = spurious_alloc(&w, &test, err)) ||
        (st = spurious_alloc(&w, &val, err)))
        goto fail;
    /* Chunks run in parallel, so each product runs on one thread: the same bytes whatever the
     * thread count. */
    cx_blas_set_threads(1);
    uint64_t done_n = 0, total = n_train + n_test + n_val;
    st = write_split(&w, &train, &done_n, total, &train_obs, err);
    if (!st && n_test)
        st = write_split(&w, &test, &done_n, total, &test_obs, err);
    if (!st && n_val)
        st = write_split(&w, &val, &done_n, total, &val_obs, err);
    cx_blas_set_threads(threads);
    if (st)
        goto fail;
    size_t noisy = 0;
    for (size_t i = 0; i < n_train; i++)
        noisy += train_obs[i] != train_cls[i];
    if ((st = write_labels(dir, "train-labels.npy", train_obs, n_train, err)) ||
        (st = write_labels(dir, "train-true-labels.npy", train_cls, n_train, err)) ||
        (n_test && (st = write_labels(dir, "test-labels.npy", test_obs, n_test, err))) ||
        (n_val && (st = write_labels(dir, "val-labels.npy", val_obs, n_val, err))))
        goto fail;
    if ((st = write_groups(&w, &train, 0, err)) ||
        (n_test && (st = write_groups(&w, &test, 1, err))) ||
        (n_val && (st = write_groups(&w, &val, 2, err))) || (st = write_group_names(&w, dir, err)))
        goto fail;
    if ((st = write_attributes(&w, &train, err)) ||
        (n_test && (st = write_attributes(&w, &test, err))) ||
        (n_val && (st = write_attributes(&w, &val, err))))
        goto fail;
    char *cp = join2(dir, "train-counts.tsv", "");
    if (!cp) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    st = cx_freq_write(cp, w.names, w.train_counts, w.CK, err);
    free(cp);
    if (st || (st = write_meta(&w, dir, test_counts, noisy, err)) ||
        (st = write_yaml(&w, dir, n_test, n_val, err)))
        goto fail;
fail:
    world_free(&w);
    free(train.spur);
    free(test.spur);
    free(val.spur);
    free(train.attr);
    free(test.attr);
    free(val.attr);
    free(train_cls);
    free(test_cls);
    free(train_obs);
    free(test_obs);
    free(val_cls);
    free(val_obs);
    free(test_counts);
    free(val_counts);
    return st;
}

/* The parts, dataset.yaml last: the order they are moved into place. */
static const char *const part_names[] = {
    "classes.txt",       "templates.txt",         "train-features.npy", "train-labels.npy",
    "train-true-labels.npy", "train-captions.txt", "test-features.npy",  "test-labels.npy",
    "test-captions.txt", "val-features.npy",      "val-labels.npy",     "val-captions.txt",
    "train-counts.tsv",  "train-groups.npy",      "val-groups.npy",     "test-groups.npy",
    "group-names.txt",   "train-attributes.txt",  "test-attributes.txt", "val-attributes.txt",
    "synth.json",        "dataset.yaml"};
enum { NUM_PARTS = sizeof part_names / sizeof part_names[0] };

static void remove_stage(const char *stage)
{
    for (int i = 0; i < NUM_PARTS; i++) {
        char *p = join2(stage, part_names[i], "");
        if (p)
            unlink(p);
        free(p);
    }
    rmdir(stage);
}

/* A synth killed before its parts were moved leaves DIR/.synth-PID-XXXXXX behind. Remove the
 * stages of writers that no longer run (kill(PID, 0) says no such process); a live writer's, or
 * one whose PID was since reused, stays. Best effort. */
static void remove_stale_stages(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, ".synth-", 7) != 0)
            continue;
        char *end;
        long pid = strtol(e->d_name + 7, &end, 10);
        if (end == e->d_name + 7 || *end != '-' || pid <= 0 || (long)(pid_t)pid != pid ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *stage = join2(dir, e->d_name, "");
        if (stage)
            remove_stage(stage);
        free(stage);
    }
    if (d)
        closedir(d);
}

cx_status cx_synth_write(const cx_synth_opts *o, const char *dir, cx_err *err)
{
    cx_status st = cx_synth_check(o, err);
    if (st)
        return st;
    if ((st = cx_mkdir_p(dir, err)))
        return st;
    /* Generate into a hidden folder beside the parts, then move the parts into place with the
     * old dataset.yaml gone first and the new one last: a failure leaves an earlier dataset in
     * DIR untouched, and DIR never holds a YAML that names parts of another run. */
    remove_stale_stages(dir);
    char prefix[64];
    snprintf(prefix, sizeof prefix, ".synth-%ld-XXXXXX", (long)getpid());
    char *stage = join2(dir, prefix, "");
    if (!stage)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    if (!mkdtemp(stage)) {
        st = cx_fail_errno(err, CX_EIO, errno, "%s: cannot create a folder", dir);
        free(stage);
        return st;
    }
    st = generate(o, stage, err);
    for (int i = NUM_PARTS - 1; !st && i >= 0; i--) {
        /* Old parts first (YAML first of all); those this run does not make stay deleted. */
        char *to = join2(dir, part_names[i], "");
        if (!to)
            st = cx_fail(err, CX_ENOMEM, "out of memory");
        else if (unlink(to) != 0 && errno != ENOENT)
            st = cx_fail_errno(err, CX_EIO, errno, "%s: cannot replace", to);
        free(to);
    }
    for (int i = 0; !st && i < NUM_PARTS; i++) {
        char *from = join2(stage, part_names[i], ""), *to = join2(dir, part_names[i], "");
        if (!from || !to)
            st = cx_fail(err, CX_ENOMEM, "out of memory");
        else if (rename(from, to) != 0 && errno != ENOENT)
            st = cx_fail_errno(err, CX_EIO, errno, "%s: cannot move into place", to);
        free(from);
        free(to);
    }
    remove_stage(stage);
    free(stage);
    return st;
}
