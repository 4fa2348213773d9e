/* clipx count: class frequencies from captions by synonym matching, as a frequency file. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"

#include "lib/base/afile.h"
#include "lib/data/count.h"
#include "lib/data/lemmas.h"
#include "lib/data/dataset.h"
#include "lib/data/subset.h"

static const char *out_path, *subset_path, *captions_path, *split_name = "train";
static const char *rows_path, *wordnet_dir = WORDNET_DIR;
static int plurals, lemmas;

static const cli_opt count_opts[] = {
    {"out", CLI_STRING, &out_path, "FREQS",
     "frequency file to write, 'name<TAB>count' a line (required)", 0, -1, NULL},
    {"split", CLI_STRING, &split_name, "SPLIT", "whose captions to count (default train)", 0, -1,
     "train|test"},
    {"subset", CLI_STRING, &subset_path, "FILE",
     "count only the captions of this SUBSET (train split)", 0, -1, NULL},
    {"captions", CLI_STRING, &captions_path, "FILE",
     "count this caption file (one caption a line, any length) instead of the split's", 0, -1,
     NULL},
    {"plurals", CLI_FLAG, &plurals, NULL,
     "fold simple English plurals on both sides (boxes -> box, ponies -> pony)", 0, -1, NULL},
    {"lemmas", CLI_FLAG, &lemmas, NULL,
     "match caption words by their noun lemmas too, as WordNet's morphy: irregular forms from its "
     "exception list (geese -> goose, wolves -> wolf) and its suffix rules (boxes -> box)",
     0, -1, NULL},
    {"wordnet", CLI_STRING, &wordnet_dir, "DIR",
     "WordNet dictionary folder holding noun.exc (default " WORDNET_DIR ", Debian's wordnet-base)",
     0, -1, NULL},
    {"multi-label", CLI_STRING, &rows_path, "FILE",
     "also write every match as a row 'line<TAB>label' (0-based caption line and class index, "
     "ascending; a caption matching k classes gives k rows), as the study's -Cls datasets",
     0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_count_spec = {
    "count",
    "class frequencies from captions by synonym matching",
    "DATASET --out FREQS [options]",
    "Each caption becomes a set of words (lower case, letters only). A class counts a caption\n"
    "when all words of any one of its synonyms (the class list's 'name|synonym|...') are in\n"
    "the set, unless all words of one of its vetoes ('|!word' in the class list) are too; a\n"
    "caption counts at most once per class and may count for several classes. The result lists\n"
    "every class of the dataset, open-world concepts included, and is what\n"
    "'clipx subsample --profile match --counts FREQS' reads.",
    count_opts,
    1,
    1,
    CLI_COMPUTES};

int cmd_count(const cli_result *res)
{
    if (!out_path) {
        cli_error("count", "--out FREQS is required");
        return EXIT_USAGE;
    }
    int test = strcmp(split_name, "test") == 0;
    if (wordnet_dir != (const char *)WORDNET_DIR && !lemmas) {
        cli_error("count", "--wordnet DIR is read by --lemmas only");
        return EXIT_USAGE;
    }
    if (subset_path && (test || captions_path)) {
        cli_error("count", "--subset selects training captions: it does not combine with %s",
                  test ? "--split test" : "--captions");
        return EXIT_USAGE;
    }
    cx_err err;
    cx_err_clear(&err);
    cx_dataset ds;
    /* With --captions only the class list is needed; otherwise the split's labels (not its
     * captions: they stream through the matcher without being stored). */
    cx_load_options lo = {captions_path ? CX_LOAD_NONE
                          : test        ? CX_LOAD_TEST
                                        : CX_LOAD_TRAIN,
                          subset_path, NULL, 0};
    cx_status st = cx_dataset_load(res->args[0], &lo, &ds, &err);
    if (st)
        return cli_fail("count", st, &err);
    const cx_split *s = test ? &ds.test : &ds.train;
    const char *path = captions_path ? captions_path : s->captions_path;
    int rc;
    int64_t *counts = calloc((size_t)ds.num_classes, sizeof *counts);
    uint32_t *keep = NULL;
    cx_matcher *m = NULL;
    cx_lemmas *lem = NULL;
    cx_afile rows = {0};
    int rows_open = 0;
    if (!counts) {
        st = cx_fail(&err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    if (!path) {
        st = cx_fail(&err, CX_EDATA,
                     "%s: the %s split has no captions (name a caption file with --captions)",
                     ds.path, test ? "test" : "train");
        goto fail;
    }
    if (subset_path) {
        if (!(keep = malloc((s->n ? s->n : 1) * sizeof *keep))) {
            st = cx_fail(&err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < s->n; i++)
            keep[i] = (uint32_t)s->source_index[i];
    }
    if ((st = cx_matcher_new(ds.synonyms, ds.num_synonyms, ds.vetoes, ds.num_vetoes,
                             ds.num_classes, plurals ? CX_MATCH_PLURALS : 0u, &m, &err))) {
        st = cx_err_prefix(&err, st, "%s", ds.classes_path);
        goto fail;
    }
    if (lemmas) {
        if ((st = cx_lemmas_load(wordnet_dir, &lem, &err))) {
            if (st == CX_EDATA && !strstr(err.msg, ": line "))
                st = cx_err_prefix(&err, st, "--lemmas (install Debian's wordnet-base or name "
                                             "the folder with --wordnet DIR)");
            goto fail;
        }
        cx_matcher_use_lemmas(m, lem);
    }
    if (rows_path) {
        if ((st = cx_afile_open(&rows, rows_path, &err)))
            goto fail;
        rows_open = 1;
    }
    size_t lines = 0, matched = 0;
    if ((st = cx_count_file(m, path, keep, keep ? s->n : 0, rows_open ? rows.fp : NULL, counts,
                            &lines, &matched, &err)))
        goto fail;
    if (!captions_path && lines != s->stored_n) {
        st = cx_fail(&err, CX_EDATA, "%s: line %zu: %zu captions for the %zu samples of %s", path,
                     (lines < s->stored_n ? lines : s->stored_n) + 1, lines, s->stored_n,
                     s->labels_path);
        goto fail;
    }
    if ((st = cx_freq_write(out_path, ds.class_names, counts, ds.num_classes, &err)))
        goto fail;
    if (rows_open) {
        rows_open = 0;
        if ((st = cx_afile_commit(&rows, &err)))
            goto fail;
    }
    if (!res->quiet)
        fprintf(stderr, "count: %zu of %zu captions matched at least one of %d classes; wrote %s\n",
                matched, keep ? s->n : lines, ds.num_classes, out_path);
fail:
    rc = st ? cli_fail("count", st, &err) : EXIT_OK;
    if (rows_open)
        cx_afile_abort(&rows);
    cx_matcher_free(m);
    cx_lemmas_free(lem);
    free(counts);
    free(keep);
    cx_dataset_free(&ds);
    return rc;
}
