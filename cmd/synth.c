/* clipx synth: write a controlled synthetic image-text dataset (lib/data/synth.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "progress.h"

#include "lib/base/clock.h"
#include "lib/data/synth.h"

/* The options land in the parameters themselves, which start at the library's defaults; their
 * ranges are the library's (lib/data/synth.h). */
static struct {
    cx_synth_opts params;
    const char *out_dir;
    int dtype_choice; /* index into "float32|uint8" */
} synth = {.params = CX_SYNTH_DEFAULTS};

#define P(field) (&synth.params.field)

static const cli_opt synth_opts[] = {
    {"out", CLI_STRING, &synth.out_dir, "DIR", "folder to write (created when missing; required)",
     0, -1, NULL},
    {"classes", CLI_INT32, P(classes), "N", "evaluated classes (default 100)",
     CX_SYNTH_RANGE_CLASSES, NULL},
    {"profile", CLI_CHOICE, P(profile), "P", "class-frequency profile (default pareto: Zipf)", 0,
     -1, "exp|pareto|step|uniform"},
    {"rho", CLI_DOUBLE, P(rho), "R", "imbalance ratio, largest / smallest class (default 100)",
     CX_SYNTH_RANGE_RHO, NULL},
    {"alpha", CLI_DOUBLE, P(alpha), "A", "pareto exponent (default: ln(rho) / ln(classes))",
     CX_SYNTH_RANGE_ALPHA, NULL},
    {"mu", CLI_DOUBLE, P(mu), "F", "step: fraction of classes in the head (default 0.5)",
     CX_SYNTH_RANGE_MU, NULL},
    {"n", CLI_INT64, P(n), "N", "training samples (default 50000)", CX_SYNTH_RANGE_N, NULL},
    {"test-per-class", CLI_INT32, P(test_per_class), "N",
     "balanced test samples per class (default 50; 0: no test split)",
     CX_SYNTH_RANGE_TEST_PER_CLASS, NULL},
    {"val-per-class", CLI_INT32, P(val_per_class), "N",
     "also a balanced validation split (val: in dataset.yaml) of N samples per class (default "
     "0: none, and the other files are as without it)", CX_SYNTH_RANGE_VAL_PER_CLASS, NULL},
    {"dim", CLI_INT32, P(dim), "D", "observed feature dimension (default 128)",
     CX_SYNTH_RANGE_DIM, NULL},
    {"latent", CLI_INT32, P(latent), "L", "latent dimension (default 16)", CX_SYNTH_RANGE_LATENT,
     NULL},
    {"hidden", CLI_INT32, P(hidden), "H", "width of the random rendering (default: --dim)",
     CX_SYNTH_RANGE_HIDDEN, NULL},
    {"superclasses", CLI_INT32, P(superclasses), "S",
     "superclasses grouping the classes (default: 10, or --classes when fewer)",
     CX_SYNTH_RANGE_SUPERCLASSES, NULL},
    {"modes", CLI_INT32, P(modes), "M", "sub-types (latent blobs) per class (default 4)",
     CX_SYNTH_RANGE_MODES, NULL},
    {"super-sep", CLI_DOUBLE, P(super_sep), "X", "spread of superclass centres (default 1.0)",
     CX_SYNTH_RANGE_SUPER_SEP, NULL},
    {"class-sep", CLI_DOUBLE, P(class_sep), "X",
     "spread of sub-type prototypes in a superclass (default 0.8)", CX_SYNTH_RANGE_CLASS_SEP,
     NULL},
    {"spread", CLI_DOUBLE, P(spread), "X", "within-class spread (default 0.5)",
     CX_SYNTH_RANGE_SPREAD, NULL},
    {"fold", CLI_DOUBLE, P(fold), "X",
     "frequency of the rendering's sine: nonlinearity (default 1.0)", CX_SYNTH_RANGE_FOLD, NULL},
    {"noise", CLI_DOUBLE, P(noise), "X", "observation noise added to the features (default 0.05)",
     CX_SYNTH_RANGE_NOISE, NULL},
    {"captions", CLI_CHOICE, P(captions), "MODE", "caption descriptiveness (default descriptive)",
     0, -1, "template|synonym|descriptive"},
    {"synonyms", CLI_INT32, P(synonyms), "N", "synonyms per class besides its name (default 2)",
     CX_SYNTH_RANGE_SYNONYMS, NULL},
    {"attributes", CLI_INT32, P(attributes), "N", "attribute words (default 32)",
     CX_SYNTH_RANGE_ATTRIBUTES, NULL},
    {"attr-rate", CLI_DOUBLE, P(attr_rate), "P",
     "chance of each of two attribute slots (default 0.7)", CX_SYNTH_RANGE_ATTR_RATE, NULL},
    {"attr-strength", CLI_DOUBLE, P(attr_strength), "X",
     "latent shift per attribute (default 0.3)", CX_SYNTH_RANGE_ATTR_STRENGTH, NULL},
    {"cooccur", CLI_DOUBLE, P(cooccur), "P",
     "chance of a second concept in a sample (default 0.3)", CX_SYNTH_RANGE_COOCCUR, NULL},
    {"cooccur-strength", CLI_DOUBLE, P(cooccur_strength), "X",
     "pull of the second concept on the latent (default 0.25)", CX_SYNTH_RANGE_COOCCUR_STRENGTH,
     NULL},
    {"open-world", CLI_DOUBLE, P(open_world), "F",
     "fraction of training samples from open-world concepts (default 0)",
     CX_SYNTH_RANGE_OPEN_WORLD, NULL},
    {"open-classes", CLI_INT32, P(open_classes), "K", "open-world concepts (default: --classes)",
     CX_SYNTH_RANGE_OPEN_CLASSES, NULL},
    {"attr-info", CLI_DOUBLE, P(attr_info), "F",
     "informative attributes: each class has 4 of its superclass's, each shown in a sample with "
     "probability F and named by descriptive captions (default 0: none)",
     CX_SYNTH_RANGE_ATTR_INFO, NULL},
    {"open-share", CLI_DOUBLE, P(open_share), "F",
     "chance that an open-world concept's attribute comes from the evaluated classes' pools "
     "(default 0: disjoint; needs --attr-info)", CX_SYNTH_RANGE_OPEN_SHARE, NULL},
    {"attr-scope", CLI_CHOICE, P(attr_scope), "S",
     "where a class's attributes come from: its superclass's pool of 8 (default) or one pool of "
     "16 for all classes (needs --attr-info)", 0, -1, "superclass|global"},
    {"attr-named", CLI_INT32, P(attr_named), "N",
     "most of its sample's attributes a descriptive caption names (default 2; needs --attr-info)",
     CX_SYNTH_RANGE_ATTR_NAMED, NULL},
    {"label-noise", CLI_DOUBLE, P(label_noise), "P",
     "fraction of training labels made wrong (default 0)", CX_SYNTH_RANGE_LABEL_NOISE, NULL},
    {"spurious", CLI_DOUBLE, P(spurious), "P",
     "spurious attribute: share of training samples with their class's value (default 0: none)",
     CX_SYNTH_RANGE_SPURIOUS, NULL},
    {"spurious-values", CLI_INT32, P(spurious_values), "V",
     "values of the spurious attribute (default 2)", CX_SYNTH_RANGE_SPURIOUS_VALUES, NULL},
    {"spurious-strength", CLI_DOUBLE, P(spurious_strength), "S",
     "shift of the features per value, linear (default 2; the class spread is about 1)",
     CX_SYNTH_RANGE_SPURIOUS_STRENGTH, NULL},
    {"spurious-captions", CLI_DOUBLE, P(spurious_captions), "Q",
     "chance that a caption names the spurious value (default 0)",
     CX_SYNTH_RANGE_SPURIOUS_CAPTIONS, NULL},
    {"dtype", CLI_CHOICE, &synth.dtype_choice, "T",
     "feature type: float32, or uint8 with [-3, 3] as 0..255", 0, -1, "float32|uint8"},
    {"seed", CLI_UINT64, P(seed), "S", "random seed (default 0)", 0, 9007199254740991.0, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

#undef P

const cli_spec cmd_synth_spec = {
    "synth",
    "write a controlled synthetic image-text dataset",
    "--out DIR [options]",
    "Writes DIR/dataset.yaml and its parts: NPY features and int32 labels, captions.txt,\n"
    "classes.txt (name|synonyms), templates.txt for a training split with a long-tailed class\n"
    "distribution and a balanced test split; train-counts.tsv (true training counts, a\n"
    "frequency file for 'subsample --profile match') and synth.json (parameters, per-class\n"
    "truth). Classes sit in a latent space with a superclass hierarchy; a fixed random\n"
    "nonlinear rendering makes the observed features not linearly separable. Captions are\n"
    "'template' (\"a photo of a NAME.\"), 'synonym' (random template and synonym) or\n"
    "'descriptive' (adds the sample's attribute words and a co-occurring concept). Open-world\n"
    "concepts follow the evaluated classes in classes.txt (eval_classes in the YAML) and appear\n"
    "only in training. --spurious P gives every sample a spurious attribute (Waterbirds'\n"
    "background): one of --spurious-values values shifts its features linearly by\n"
    "--spurious-strength; in training it is the class's own value (class mod V) with\n"
    "probability P, in val and test independent of the class. Groups (class, value) are\n"
    "written as SPLIT-groups.npy with group-names.txt, the truth in synth.json.\n"
    "--attr-info F gives each class 4 informative attributes of its superclass's 8 (parts):\n"
    "a sample shows each with probability F (a pattern added to its latent) and a descriptive\n"
    "caption names up to 2 it has, instead of nuisance adjectives; SPLIT-attributes.txt lists\n"
    "each sample's, synth.json the vocabulary. Open-world concepts draw theirs from the\n"
    "evaluated classes' pools with probability --open-share, else from pools of their own.\n"
    "--attr-scope global draws every class's 4 from one pool of 16 (each attribute on a quarter\n"
    "of the classes, across superclasses); --attr-named N sets how many a caption names.\n"
    "The same seed gives the same bytes for any thread count.",
    synth_opts,
    0,
    0,
    CLI_COMPUTES};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    cli_progress_update(ctx, (long)done, NULL);
}

int cmd_synth(const cli_result *res)
{
    cx_synth_opts o = synth.params;
    if (!synth.out_dir) {
        cli_error("synth", "--out DIR is required");
        return EXIT_USAGE;
    }
    o.dtype = synth.dtype_choice == 1 ? CX_DTYPE_U8 : CX_DTYPE_F32;
    if (o.open_share > 0 && !(o.attr_info > 0)) {
        cli_error("synth", "--open-share needs --attr-info above 0");
        return EXIT_USAGE;
    }
    if ((o.attr_scope != CX_ATTR_SCOPE_SUPERCLASS || o.attr_named != CX_SYNTH_ATTR_NAMED) &&
        !(o.attr_info > 0)) {
        cli_error("synth", "%s needs --attr-info above 0",
                  o.attr_scope != CX_ATTR_SCOPE_SUPERCLASS ? "--attr-scope" : "--attr-named");
        return EXIT_USAGE;
    }
    cx_err err;
    cx_err_clear(&err);
    cx_status st = cx_synth_check(&o, &err);
    if (st) {
        cli_word_as_option(&err); /* its messages start with the field at fault */
        return cli_fail("synth", st, &err);
    }
    cli_progress prog;
    long total = (long)(o.n + (int64_t)(o.test_per_class + o.val_per_class) * o.classes);
    cli_progress_start(&prog, res->progress, "synth", total);
    o.progress = on_progress;
    o.progress_ctx = &prog;
    double t0 = cx_clock_seconds();
    st = cx_synth_write(&o, synth.out_dir, &err);
    cli_progress_end(&prog);
    if (st)
        return cli_fail("synth", st, &err);
    if (!res->quiet)
        fprintf(stderr,
                "synth: wrote %s/dataset.yaml: %lld training samples (%d classes, %s profile, rho "
                "%g%s), "
                "%lld test samples, %d features%s, %.1f s\n",
                synth.out_dir, (long long)o.n, o.classes, cx_profile_name(o.profile), o.rho,
                o.open_world > 0 ? ", open-world concepts" : "",
                (long long)o.test_per_class * o.classes, o.dim,
                o.spurious > 0 ? ", a spurious attribute with groups" : "",
                cx_clock_seconds() - t0);
    return EXIT_OK;
}
