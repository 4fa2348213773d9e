/* clipx synth: write a controlled synthetic image-text dataset (lib/data/synth.h). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "progress.h"

#include "lib/base/clock.h"
#include "lib/base/threads.h"
#include "lib/data/synth.h"

/* Option values; cmd_synth fills them from cx_synth_defaults before parsing. */
static const char *out_dir, *profile_name, *captions_name, *dtype_name;
static long classes, open_classes, superclasses, modes, n_train, test_per_class, dim, latent,
    hidden, synonyms, attributes, seed;
static double rho, alpha, mu, open_world, super_sep, class_sep, spread, fold, noise, attr_rate,
    attr_strength, cooccur, cooccur_strength, label_noise;

static const cli_opt synth_opts[] = {
    {"out", CLI_STRING, &out_dir, "DIR", "folder to write (created when missing; required)", 0, -1,
     NULL},
    {"classes", CLI_INT, &classes, "N", "evaluated classes (default 100)", 2, 10000, NULL},
    {"profile", CLI_STRING, &profile_name, "P", "class-frequency profile (default pareto: Zipf)", 0,
     -1, "exp|pareto|step|uniform"},
    {"rho", CLI_DOUBLE, &rho, "R", "imbalance ratio, largest / smallest class (default 100)", 1,
     1e6, NULL},
    {"alpha", CLI_DOUBLE, &alpha, "A", "pareto exponent (default: ln(rho) / ln(classes))", 0, 10,
     NULL},
    {"mu", CLI_DOUBLE, &mu, "F", "step: fraction of classes in the head (default 0.5)", 0, 1, NULL},
    {"n", CLI_INT, &n_train, "N", "training samples (default 50000)", 1, 100000000, NULL},
    {"test-per-class", CLI_INT, &test_per_class, "N",
     "balanced test samples per class (default 50; 0: no test split)", 0, 100000, NULL},
    {"dim", CLI_INT, &dim, "D", "observed feature dimension (default 128)", 1, 65536, NULL},
    {"latent", CLI_INT, &latent, "L", "latent dimension (default 16)", 1, 4096, NULL},
    {"hidden", CLI_INT, &hidden, "H", "width of the random rendering (default: --dim)", 0, 65536,
     NULL},
    {"superclasses", CLI_INT, &superclasses, "S",
     "superclasses grouping the classes (default: 10, or --classes when fewer)", 0, 10000, NULL},
    {"modes", CLI_INT, &modes, "M", "sub-types (latent blobs) per class (default 4)", 1, 64, NULL},
    {"super-sep", CLI_DOUBLE, &super_sep, "X", "spread of superclass centres (default 1.0)", 0, 100,
     NULL},
    {"class-sep", CLI_DOUBLE, &class_sep, "X",
     "spread of sub-type prototypes in a superclass (default 0.8)", 0, 100, NULL},
    {"spread", CLI_DOUBLE, &spread, "X", "within-class spread (default 0.5)", 0, 100, NULL},
    {"fold", CLI_DOUBLE, &fold, "X",
     "frequency of the rendering's sine: nonlinearity (default 1.0)", 0, 100, NULL},
    {"noise", CLI_DOUBLE, &noise, "X", "observation noise added to the features (default 0.05)", 0,
     100, NULL},
    {"captions", CLI_STRING, &captions_name, "MODE",
     "caption descriptiveness (default descriptive)", 0, -1, "template|synonym|descriptive"},
    {"synonyms", CLI_INT, &synonyms, "N", "synonyms per class besides its name (default 2)", 0, 8,
     NULL},
    {"attributes", CLI_INT, &attributes, "N", "attribute words (default 32)", 1, 1024, NULL},
    {"attr-rate", CLI_DOUBLE, &attr_rate, "P",
     "chance of each of two attribute slots (default 0.7)", 0, 1, NULL},
    {"attr-strength", CLI_DOUBLE, &attr_strength, "X", "latent shift per attribute (default 0.3)",
     0, 100, NULL},
    {"cooccur", CLI_DOUBLE, &cooccur, "P", "chance of a second concept in a sample (default 0.3)",
     0, 1, NULL},
    {"cooccur-strength", CLI_DOUBLE, &cooccur_strength, "X",
     "pull of the second concept on the latent (default 0.25)", 0, 1, NULL},
    {"open-world", CLI_DOUBLE, &open_world, "F",
     "fraction of training samples from open-world concepts (default 0)", 0, 0.9, NULL},
    {"open-classes", CLI_INT, &open_classes, "K", "open-world concepts (default: --classes)", 0,
     10000, NULL},
    {"label-noise", CLI_DOUBLE, &label_noise, "P",
     "fraction of training labels made wrong (default 0)", 0, 1, NULL},
    {"dtype", CLI_STRING, &dtype_name, "T",
     "feature type: float32, or uint8 with [-3, 3] as 0..255", 0, -1, "float32|uint8"},
    {"seed", CLI_INT, &seed, "S", "random seed (default 0)", 0, 9007199254740991.0, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

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
    "only in training. The same seed gives the same bytes for any thread count.",
    synth_opts,
    0,
    0,
    1};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    cli_progress_update(ctx, (long)done, NULL);
}

int cmd_synth(int argc, char **argv)
{
    cx_synth_opts o;
    cx_synth_defaults(&o);
    profile_name = cx_profile_name(o.profile);
    captions_name = cx_caption_mode_name(o.captions);
    dtype_name = o.dtype == CX_DTYPE_U8 ? "uint8" : "float32";
    classes = o.classes;
    open_classes = o.open_classes;
    superclasses = o.superclasses;
    modes = o.modes;
    n_train = o.n;
    test_per_class = o.test_per_class;
    dim = o.dim;
    latent = o.latent;
    hidden = o.hidden;
    synonyms = o.synonyms;
    attributes = o.attributes;
    seed = (long)o.seed;
    rho = o.rho;
    alpha = o.alpha;
    mu = o.mu;
    open_world = o.open_world;
    super_sep = o.super_sep;
    class_sep = o.class_sep;
    spread = o.spread;
    fold = o.fold;
    noise = o.noise;
    attr_rate = o.attr_rate;
    attr_strength = o.attr_strength;
    cooccur = o.cooccur;
    cooccur_strength = o.cooccur_strength;
    label_noise = o.label_noise;
    cli_result res;
    int rc = cli_parse(&cmd_synth_spec, argc, argv, &res);
    if (rc != CLI_OK) {
        cli_free(&cmd_synth_spec, &res);
        return rc == CLI_HELP ? EXIT_OK : rc;
    }
    if (!out_dir) {
        cli_error("synth", "--out DIR is required");
        cli_free(&cmd_synth_spec, &res);
        return EXIT_USAGE;
    }
    o.classes = (int)classes;
    o.open_classes = (int)open_classes;
    o.open_world = open_world;
    o.superclasses = (int)superclasses;
    o.modes = (int)modes;
    o.profile = (cx_profile)cx_profile_parse(profile_name);
    o.rho = rho;
    o.alpha = alpha;
    o.mu = mu;
    o.n = n_train;
    o.test_per_class = (int)test_per_class;
    o.dim = (int)dim;
    o.latent = (int)latent;
    o.hidden = (int)hidden;
    o.super_sep = super_sep;
    o.class_sep = class_sep;
    o.spread = spread;
    o.fold = fold;
    o.noise = noise;
    o.captions = (cx_caption_mode)cx_caption_mode_parse(captions_name);
    o.synonyms = (int)synonyms;
    o.attributes = (int)attributes;
    o.attr_rate = attr_rate;
    o.attr_strength = attr_strength;
    o.cooccur = cooccur;
    o.cooccur_strength = cooccur_strength;
    o.label_noise = label_noise;
    o.dtype = strcmp(dtype_name, "uint8") == 0 ? CX_DTYPE_U8 : CX_DTYPE_F32;
    o.seed = (uint64_t)seed;
    cx_err err;
    cx_err_clear(&err);
    if (cx_synth_check(&o, &err)) {
        cli_free(&cmd_synth_spec, &res);
        return cli_fail("synth", &err);
    }
    cx_threads_set((int)res.threads);
    cli_progress prog;
    long total = (long)(o.n + (int64_t)o.test_per_class * o.classes);
    cli_progress_start(&prog, res.progress, "synth", total);
    o.progress = on_progress;
    o.progress_ctx = &prog;
    double t0 = cx_clock_seconds();
    cx_status st = cx_synth_write(&o, out_dir, &err);
    cli_progress_end(&prog);
    if (st) {
        cli_free(&cmd_synth_spec, &res);
        return cli_fail("synth", &err);
    }
    if (!res.quiet)
        fprintf(stderr,
                "synth: wrote %s/dataset.yaml: %lld training samples (%d classes, %s profile, rho "
                "%g%s), "
                "%lld test samples, %d features, %.1f s\n",
                out_dir, (long long)o.n, o.classes, profile_name, o.rho,
                o.open_world > 0 ? ", open-world concepts" : "",
                (long long)o.test_per_class * o.classes, o.dim, cx_clock_seconds() - t0);
    cli_free(&cmd_synth_spec, &res);
    return EXIT_OK;
}
