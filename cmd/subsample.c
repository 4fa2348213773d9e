/* clipx subsample: choose which training samples each class keeps and write a SUBSET file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

#include "lib/base/rng.h"
#include "lib/data/dataset.h"
#include "lib/data/subsample.h"
#include "lib/data/subset.h"

enum { TAG_CLASS_ORDER = 0x4f524452 /* "ORDR" */ };

/* Unset options keep these sentinels, so options that do not apply to a profile are caught. */
static const char *profile_name, *out_path, *counts_path, *subset_in;
static double rho = NAN, alpha = NAN, mu = NAN, frac = NAN;
static long n_total = -1, n_max = -1, n_min = -1, tail_k = -1, cap = -1, seed = 0;
static int permute;

static const cli_opt subsample_opts[] = {
    {"profile", CLI_STRING, &profile_name, "P", "how many samples each class keeps (required)", 0,
     -1, "exp|pareto|step|uniform|match|scale|trim-tail"},
    {"rho", CLI_DOUBLE, &rho, "R", "exp, pareto, step: imbalance ratio n_max / n_min (default 100)",
     1, 1e9, NULL},
    {"alpha", CLI_DOUBLE, &alpha, "A", "pareto: exponent, instead of --rho", 1e-9, 100, NULL},
    {"mu", CLI_DOUBLE, &mu, "F", "step: fraction of classes that keep n_max (default 0.5)", 0, 1,
     NULL},
    {"n-max", CLI_INT, &n_max, "N",
     "exp, pareto, step: size of the largest class; uniform: size of every class (default: the "
     "largest available class; uniform: the smallest)",
     1, 4294967295.0, NULL},
    {"n-min", CLI_INT, &n_min, "N", "pareto: smallest class size (default 1)", 0, 4294967295.0,
     NULL},
    {"n", CLI_INT, &n_total, "N",
     "scale: samples to keep; uniform: total split evenly over classes", 1, 4294967295.0, NULL},
    {"frac", CLI_DOUBLE, &frac, "F", "scale: fraction of the samples to keep", 1e-12, 1, NULL},
    {"counts", CLI_STRING, &counts_path, "FREQS", "match: frequency file, 'name<TAB>count' a line",
     0, -1, NULL},
    {"tail-k", CLI_INT, &tail_k, "K", "trim-tail: how many of the rarest classes are capped", 0,
     1000000, NULL},
    {"cap", CLI_INT, &cap, "C", "trim-tail: samples each of them keeps (default 0)", 0,
     4294967295.0, NULL},
    {"permute-classes", CLI_FLAG, &permute, NULL,
     "exp, pareto, step: give the sizes to a seeded permutation of the classes, not class order", 0,
     -1, NULL},
    {"subset", CLI_STRING, &subset_in, "FILE",
     "start from this SUBSET instead of the whole training split", 0, -1, NULL},
    {"seed", CLI_INT, &seed, "S",
     "seed of the per-class choice and of --permute-classes (default 0)", 0, 9007199254740991.0,
     NULL},
    {"out", CLI_STRING, &out_path, "SUBSET", "SUBSET file to write (required)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_subsample_spec = {
    "subsample",
    "keep a long-tailed (or other) subset of a training split",
    "DATASET --profile P [options] --out SUBSET",
    "Profiles (i = 0..C-1 in class order, or a seeded permutation with --permute-classes):\n"
    "  exp        n_i = floor(n_max * rho^(-i/(C-1)))  (CIFAR-LT)\n"
    "  pareto     n_i = max(n_min, floor(n_max * (i+1)^(-alpha))), alpha = ln(rho)/ln(C) by\n"
    "             default, so the smallest class keeps n_max / rho  (Zipf, ImageNet-LT style)\n"
    "  step       floor(mu*C) classes keep n_max, the rest floor(n_max / rho)\n"
    "  uniform    every class keeps --n-max (default: the smallest class), or --n / C\n"
    "  match      every class keeps its count in --counts FREQS (from 'clipx count')\n"
    "  scale      keep --frac F or --n N of the samples in proportion to the classes; a\n"
    "             class that would vanish keeps one, taken from the largest classes\n"
    "  trim-tail  the --tail-k rarest classes keep at most --cap samples (zero-shot tails)\n"
    "A class never keeps more than it has. Within a class the kept samples are a seeded random\n"
    "choice. Open-world concepts (classes after eval_classes) keep all their samples except\n"
    "under match and scale. SUBSET is 'index<TAB>label', then one row per kept sample in\n"
    "ascending index.",
    subsample_opts,
    1,
    1,
    CLI_COMPUTES};

/* Refuse an option that the chosen profile would ignore. */
static int check_applies(const char *opt, int given, const char *profiles, const char *profile)
{
    if (!given)
        return 0;
    char list[128];
    snprintf(list, sizeof list, "|%s|", profiles);
    char want[64];
    snprintf(want, sizeof want, "|%s|", profile);
    if (strstr(list, want))
        return 0;
    cli_error("subsample", "--%s does not apply to --profile %s", opt, profile);
    return 1;
}

int cmd_subsample(const cli_result *res)
{
    cx_err err;
    cx_err_clear(&err);
    if (!profile_name || !out_path) {
        cli_error("subsample", "%s is required", !profile_name ? "--profile" : "--out SUBSET");
        return EXIT_USAGE;
    }
    int p = cx_profile_parse(profile_name);
    if (check_applies("rho", !isnan(rho), "exp|pareto|step", profile_name) ||
        check_applies("alpha", !isnan(alpha), "pareto", profile_name) ||
        check_applies("mu", !isnan(mu), "step", profile_name) ||
        check_applies("n-max", n_max >= 0, "exp|pareto|step|uniform", profile_name) ||
        check_applies("n-min", n_min >= 0, "pareto", profile_name) ||
        check_applies("n", n_total >= 0, "scale|uniform", profile_name) ||
        check_applies("frac", !isnan(frac), "scale", profile_name) ||
        check_applies("counts", counts_path != NULL, "match", profile_name) ||
        check_applies("tail-k", tail_k >= 0, "trim-tail", profile_name) ||
        check_applies("cap", cap >= 0, "trim-tail", profile_name) ||
        check_applies("permute-classes", permute, "exp|pareto|step", profile_name))
        return EXIT_USAGE;
    if (p == CX_PROFILE_PARETO && !isnan(rho) && !isnan(alpha)) {
        cli_error("subsample", "--rho and --alpha both set the pareto exponent: give one");
        return EXIT_USAGE;
    }
    if (p == CX_PROFILE_UNIFORM && n_max >= 0 && n_total >= 0) {
        cli_error("subsample", "--n-max and --n both set the uniform size: give one");
        return EXIT_USAGE;
    }
    if (p == CX_PROFILE_SCALE && (n_total >= 0) == !isnan(frac)) {
        cli_error("subsample", "the scale profile needs exactly one of --n N and --frac F");
        return EXIT_USAGE;
    }
    if (p == CX_PROFILE_MATCH && !counts_path) {
        cli_error("subsample", "the match profile needs --counts FREQS");
        return EXIT_USAGE;
    }
    if (p == CX_PROFILE_TRIM_TAIL && tail_k < 0) {
        cli_error("subsample", "the trim-tail profile needs --tail-k K");
        return EXIT_USAGE;
    }

    cx_dataset ds;
    cx_load_options lo = {CX_LOAD_TRAIN, subset_in, NULL, 0};
    cx_status st = cx_dataset_load(res->args[0], &lo, &ds, &err);
    if (st)
        return cli_fail("subsample", st, &err);
    const int C = ds.num_classes, CE = ds.num_eval_classes;
    int64_t *avail = calloc((size_t)C, sizeof *avail), *target = calloc((size_t)C, sizeof *target),
            *file_counts = NULL;
    uint32_t *order = NULL, *kept = NULL, *idx = NULL;
    int32_t *labels = NULL;
    size_t nkept = 0;
    int rc;
    if (!avail || !target) {
        st = cx_fail(&err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < ds.train.n; i++)
        avail[ds.train.y[i]]++;

    cx_subsample_opts o;
    cx_subsample_defaults(&o);
    o.profile = (cx_profile)p;
    if (!isnan(rho))
        o.rho = rho;
    if (!isnan(alpha))
        o.alpha = alpha;
    if (!isnan(mu))
        o.mu = mu;
    if (!isnan(frac))
        o.frac = frac;
    if (n_max >= 0)
        o.n_max = n_max;
    if (n_min >= 0)
        o.n_min = n_min;
    if (n_total >= 0)
        o.n = n_total;
    if (tail_k >= 0)
        o.tail_k = (int)tail_k;
    o.cap = cap >= 0 ? cap : 0;
    if (p == CX_PROFILE_MATCH) {
        if (!(file_counts = calloc((size_t)C, sizeof *file_counts))) {
            st = cx_fail(&err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        if ((st = cx_freq_read(counts_path, ds.class_names, C, file_counts, &err)))
            goto fail;
        o.counts = file_counts;
    }
    if (permute) {
        if (!(order = malloc((size_t)CE * sizeof *order))) {
            st = cx_fail(&err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        cx_rng r;
        cx_rng_seed(&r, (uint64_t)seed, cx_rng_stream(TAG_CLASS_ORDER, 0, 0));
        cx_rng_permutation(&r, order, (size_t)CE);
        o.order = order;
    }
    if ((st = cx_subsample_targets(&o, avail, C, CE, target, &err))) {
        if (st == CX_EUSAGE)
            cli_word_as_option(&err); /* "n: ..." is about --n */
        goto fail;
    }
    if ((st = cx_subsample_select(ds.train.y, ds.train.n, C, target, (uint64_t)seed, &kept,
                                  &nkept, &err)))
        goto fail;
    idx = malloc((nkept ? nkept : 1) * sizeof *idx);
    labels = malloc((nkept ? nkept : 1) * sizeof *labels);
    if (!idx || !labels) {
        st = cx_fail(&err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < nkept; i++) {
        idx[i] = (uint32_t)ds.train.source_index[kept[i]];
        labels[i] = ds.train.y[kept[i]];
    }
    if ((st = cx_subset_write(out_path, idx, labels, nkept, &err)))
        goto fail;
    if (!res->quiet) {
        int64_t hi = 0, lo_n = -1;
        for (int c = 0; c < CE; c++) {
            if (target[c] > hi)
                hi = target[c];
            if (lo_n < 0 || target[c] < lo_n)
                lo_n = target[c];
        }
        fprintf(stderr,
                "subsample: kept %zu of %zu samples in %s (%s profile; largest class %lld, "
                "smallest %lld)\n",
                nkept, ds.train.n, out_path, profile_name, (long long)hi, (long long)lo_n);
    }
fail:
    rc = st ? cli_fail("subsample", st, &err) : EXIT_OK;
    free(avail);
    free(target);
    free(file_counts);
    free(order);
    free(kept);
    free(idx);
    free(labels);
    cx_dataset_free(&ds);
    return rc;
}
