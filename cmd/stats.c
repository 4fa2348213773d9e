/* clipx stats: class counts of a training split or subset, imbalance ratio, Gini coefficient,
 * head/mid/tail membership; a table or JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "table.h"

#include "lib/base/json.h"
#include "lib/data/dataset.h"
#include "lib/data/stats.h"

static const char *subset_path, *rule_name = "shots", *thresholds = "100,20";
static int as_json, check_all;

static const cli_opt stats_opts[] = {
    {"subset", CLI_STRING, &subset_path, "FILE", "describe this SUBSET of the training split", 0,
     -1, NULL},
    {"json", CLI_FLAG, &as_json, NULL, "one JSON object on stdout instead of a table", 0, -1, NULL},
    {"check", CLI_FLAG, &check_all, NULL,
     "also read every image and caption file of the dataset (kept rows only with --subset)", 0, -1,
     NULL},
    {"split-rule", CLI_STRING, &rule_name, "RULE",
     "head/mid/tail by shots (thresholds) or by tertile of count rank (default shots)", 0, -1,
     "shots|tertile"},
    {"thresholds", CLI_STRING, &thresholds, "MANY,FEW",
     "shots rule: head > MANY, tail < FEW training samples (default 100,20)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_stats_spec = {
    "stats",
    "per-class counts, imbalance ratio, Gini coefficient, head/mid/tail",
    "DATASET [--subset FILE] [--json]",
    "Counts the training samples of each evaluated class (of the whole split, or of a SUBSET\n"
    "from 'clipx subsample'), with the imbalance ratio (largest / smallest non-empty class),\n"
    "the Gini coefficient of the counts, and each class's split: by default head > 100,\n"
    "mid 20..100, tail < 20 training samples; --split-rule tertile uses thirds by count rank.\n"
    "Test counts are listed when the dataset has a test split. Only labels are read unless\n"
    "--check asks to read (and so validate) the images and captions as well.",
    stats_opts,
    1,
    1,
    CLI_COMPUTES};

int cmd_stats(const cli_result *res)
{
    long many, few;
    if (cli_parse_thresholds(thresholds, &many, &few)) {
        cli_error("stats", "--thresholds: '%s' is not MANY,FEW with 0 <= FEW <= MANY + 1",
                  thresholds);
        return EXIT_USAGE;
    }
    cx_split_rule rule =
        strcmp(rule_name, "tertile") == 0 ? CX_SPLIT_RULE_TERTILE : CX_SPLIT_RULE_SHOTS;
    cx_err err;
    cx_err_clear(&err);
    cx_dataset ds;
    cx_load_options lo = {CX_LOAD_TRAIN, subset_path, NULL, 0};
    cx_status st = cx_dataset_load(res->args[0], &lo, &ds, &err);
    if (st)
        return cli_fail("stats", st, &err);
    const int C = ds.num_classes, CE = ds.num_eval_classes;
    int64_t *counts = calloc((size_t)C, sizeof *counts);
    int64_t *test_counts = calloc((size_t)C, sizeof *test_counts);
    cx_class_split *split = calloc((size_t)C, sizeof *split);
    int rc;
    int have_test = 0;
    if (!counts || !test_counts || !split) {
        st = cx_fail(&err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    if (check_all) {
        /* Everything the YAML names, as a trainer would load it: one error line if any part is bad.
         */
        cx_dataset full;
        cx_load_options flo = {0, subset_path, NULL, 0};
        if ((st = cx_dataset_load(res->args[0], &flo, &full, &err)))
            goto fail;
        if (!res->quiet)
            fprintf(stderr,
                    "stats: checked %s: train %zu samples of %zu features%s, test %zu samples\n",
                    res->args[0], full.train.n, full.train.dim,
                    full.train.captions ? " with captions" : "", full.test.n);
        cx_dataset_free(&full);
    }
    cx_stats_counts(ds.train.y, ds.train.n, C, counts);
    if (ds.has_test) {
        /* Test labels only (no images): cheap, and the table is more useful with them. */
        cx_dataset td;
        cx_load_options tlo = {CX_LOAD_TEST, NULL, NULL, 0};
        if ((st = cx_dataset_load(res->args[0], &tlo, &td, &err)))
            goto fail;
        cx_stats_counts(td.test.y, td.test.n, C, test_counts);
        cx_dataset_free(&td);
        have_test = 1;
    }
    int64_t open_world = 0;
    for (int c = CE; c < C; c++)
        open_world += counts[c];
    cx_stats_summary s;
    cx_stats_summarize(counts, CE, rule, many, few, split, &s);

    if (as_json) {
        cx_json j;
        cx_json_init(&j, stdout, 1);
        cx_json_begin_object(&j);
        cx_json_key(&j, "dataset");
        cx_json_string(&j, ds.name);
        cx_json_key(&j, "subset");
        if (subset_path)
            cx_json_string(&j, subset_path);
        else
            cx_json_null(&j);
        cx_json_key(&j, "num_classes");
        cx_json_int(&j, CE);
        cx_json_key(&j, "samples");
        cx_json_int(&j, s.total);
        cx_json_key(&j, "open_world_samples");
        cx_json_int(&j, open_world);
        cx_json_key(&j, "n_max");
        cx_json_int(&j, s.n_max);
        cx_json_key(&j, "n_min");
        cx_json_int(&j, s.n_min);
        cx_json_key(&j, "empty_classes");
        cx_json_int(&j, s.empty);
        cx_json_key(&j, "imbalance_ratio");
        if (s.n_min > 0)
            cx_json_double(&j, s.imbalance);
        else
            cx_json_null(&j);
        cx_json_key(&j, "gini");
        cx_json_double(&j, s.gini);
        cx_json_key(&j, "split_rule");
        cx_json_string(&j, rule == CX_SPLIT_RULE_SHOTS ? "shots" : "tertile");
        cx_json_key(&j, "thresholds");
        cx_json_begin_array(&j);
        cx_json_int(&j, many);
        cx_json_int(&j, few);
        cx_json_end_array(&j);
        cx_json_key(&j, "head");
        cx_json_int(&j, s.head);
        cx_json_key(&j, "mid");
        cx_json_int(&j, s.mid);
        cx_json_key(&j, "tail");
        cx_json_int(&j, s.tail);
        cx_json_key(&j, "counts");
        cx_json_begin_array(&j);
        for (int c = 0; c < CE; c++)
            cx_json_int(&j, counts[c]);
        cx_json_end_array(&j);
        cx_json_key(&j, "classes");
        cx_json_begin_array(&j);
        for (int c = 0; c < CE; c++) {
            cx_json_begin_object(&j);
            cx_json_key(&j, "index");
            cx_json_int(&j, c);
            cx_json_key(&j, "name");
            cx_json_string(&j, ds.class_names[c]);
            cx_json_key(&j, "count");
            cx_json_int(&j, counts[c]);
            cx_json_key(&j, "test_count");
            if (have_test)
                cx_json_int(&j, test_counts[c]);
            else
                cx_json_null(&j);
            cx_json_key(&j, "split");
            cx_json_string(&j, cx_class_split_name(split[c]));
            cx_json_end_object(&j);
        }
        cx_json_end_array(&j);
        cx_json_end_object(&j);
    } else {
        static const char *const heads[] = {">class", "name", ">count", ">share", "split", ">test"};
        cli_table t;
        if (cli_table_init(&t, have_test ? 6 : 5, heads)) {
            st = cx_fail(&err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        for (int c = 0; c < CE; c++) {
            char idx[16], cnt[32], share[32], tc[32];
            snprintf(idx, sizeof idx, "%d", c);
            snprintf(cnt, sizeof cnt, "%lld", (long long)counts[c]);
            snprintf(share, sizeof share, "%.2f%%",
                     s.total ? 100.0 * (double)counts[c] / (double)s.total : 0.0);
            snprintf(tc, sizeof tc, "%lld", (long long)test_counts[c]);
            const char *row[] = {idx, ds.class_names[c], cnt, share, cx_class_split_name(split[c]),
                                 tc};
            if (cli_table_add(&t, row)) {
                cli_table_free(&t);
                st = cx_fail(&err, CX_ENOMEM, "out of memory");
                goto fail;
            }
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
        printf("\n%s%s%s: %lld samples in %d classes", ds.name, subset_path ? " subset " : "",
               subset_path ? subset_path : "", (long long)s.total, CE);
        if (open_world)
            printf(" (+%lld open-world samples)", (long long)open_world);
        printf("\nimbalance ratio ");
        if (s.n_min > 0)
            printf("%.4g (%lld / %lld)", s.imbalance, (long long)s.n_max, (long long)s.n_min);
        else
            printf("undefined (no samples)");
        if (s.empty)
            printf(", %d empty classes", s.empty);
        printf("; Gini %.4f\n", s.gini);
        if (rule == CX_SPLIT_RULE_SHOTS)
            printf("head (> %ld): %d classes, mid (%ld..%ld): %d, tail (< %ld): %d\n", many, s.head,
                   few, many, s.mid, few, s.tail);
        else
            printf("head (top third): %d classes, mid: %d, tail (bottom third): %d\n", s.head,
                   s.mid, s.tail);
    }
fail:
    rc = st ? cli_fail("stats", st, &err) : EXIT_OK;
    free(counts);
    free(test_counts);
    free(split);
    cx_dataset_free(&ds);
    return rc;
}
