/* clipx eval: score a trained run on a test split (zero-shot, its head, or a classifier fitted
 * on its training features) and print per-class accuracy with head/mid/tail summaries; a table,
 * JSON, or the three report files. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"
#include "lib/base/clock.h"
#include "lib/base/path.h"
#include "lib/data/npy.h"
#include "lib/eval/posthoc.h"
#include "lib/eval/report.h"
#include "lib/eval/run_eval.h"
#include "lib/run/retrain_config.h"

#include "cli.h"
#include "commands.h"
#include "eval_common.h"
#include "table.h"

static cli_eval_args args;
static const char *split_name, *out_dir, *posthoc, *logits_path;
static int as_json;

static const cli_opt eval_opts[] = {
    {"data", CLI_STRING, &args.data, "DATASET",
     "evaluate on this dataset's test split (default: the run's); its class list must be the run's",
     0, -1, NULL},
    {"mode", CLI_STRING, &args.mode, "MODE",
     "classifier (default zeroshot for CLIP runs, head for SL runs)", 0, -1,
     CX_EVAL_MODE_CHOICES},
    {"split", CLI_STRING, &split_name, "SPLIT",
     "restrict top1, top5, acc and the table to head, mid or tail classes (default all)", 0, -1,
     "all|head|mid|tail"},
    {"split-rule", CLI_STRING, &args.split_rule, "RULE",
     "head/mid/tail by shots (thresholds) or by tertile of training-count rank (default shots)",
     0, -1, "shots|tertile"},
    {"thresholds", CLI_STRING, &args.thresholds, "MANY,FEW",
     "shots rule: head > MANY, tail < FEW training samples (default 100,20)", 0, -1, NULL},
    {"freqs", CLI_STRING, &args.freqs, "FREQS",
     "class frequencies (a 'name<TAB>count' file of every class, as count writes) for "
     "head/mid/tail and the correlations instead of the training counts", 0, -1, NULL},
    {"k", CLI_INT, &args.k, "K", "knn: neighbours that vote (default 20)", 1, CX_KNN_K_MAX, NULL},
    {"no-nc1", CLI_FLAG, &args.no_nc1, NULL, "skip neural collapse NC1 (nc1 is then null)", 0, -1,
     NULL},
    {"posthoc", CLI_STRING, &posthoc, "M[=TAU]",
     "adjust the classifier first: logit-adjust (z - tau log pi) or tau-norm (W_c / ||W_c||^tau); "
     "without TAU it is chosen on validation data", 0, -1, NULL},
    {"json", CLI_FLAG, &as_json, NULL, "one JSON object on stdout instead of the table", 0, -1,
     NULL},
    {"out", CLI_STRING, &out_dir, "DIR",
     "also write DIR/eval.json, DIR/per_class.tsv and DIR/confusion.tsv (and DIR/groups.tsv "
     "with groups; DIR is created)", 0, -1,
     NULL},
    {"logits", CLI_STRING, &logits_path, "F.npy",
     "also write the test split's logits (N, classes) as float32, in the split's order", 0, -1,
     NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_eval_spec = {
    "eval",
    "per-class accuracy of a trained run, head/mid/tail, correlations, NC1",
    "RUN [--data DATASET] [--mode MODE] [--split SPLIT] [--posthoc M[=TAU]] [--json] [--out DIR]",
    "Scores the test split of the run's dataset (or of --data, which must have the run's\n"
    "evaluated classes) with one classifier on the run's image features:\n"
    "  zeroshot      CLIP runs: class embeddings from the dataset's prompt templates\n"
    "  head          SL runs: the trained head (linear, cosine or text)\n"
    "  linear-probe  logistic regression on training features (L2 picked on a validation split)\n"
    "  ncm           nearest class mean of the training features (cosine)\n"
    "  knn           cosine k nearest training features\n"
    "Training features come from the run's training subset (config.yaml's data and subset), or\n"
    "from the whole training split of --data. Only the evaluated classes are scored. Classes\n"
    "are head/mid/tail by the run's training counts (stored in its checkpoint).\n"
    "\n"
    "The table has summary lines, then one row per class: name, training count, test count,\n"
    "accuracy, predictions, split. --json prints one object with top1, top5, acc, head, mid,\n"
    "tail, corr_acc, corr_pred, worst_class, ece, nc1 and classes[] (name, train_count,\n"
    "test_count, acc, pred_count, split); null where a value is undefined.\n"
    "When the test split has groups (groups: in the dataset YAML), the table adds worst\n"
    "group, mean group and adjusted (training-weighted) accuracy, the JSON ends with\n"
    "worst_group, avg_group, adjusted_avg and groups[] (name, train_count, test_count, acc),\n"
    "null without groups, and --out also writes DIR/groups.tsv.\n"
    "A run folder without model.ckpt, or a dataset with another class list, is refused\n"
    "(status 1).\n"
    "\n"
    "A retrained run (RUN2 of 'clipx retrain') is scored with its retrained classifier on\n"
    "the features of its stage-1 run (mode head). --posthoc logit-adjust[=TAU] subtracts\n"
    "TAU log pi_c (training priors) from the logits; --posthoc tau-norm[=TAU] divides the\n"
    "head's rows by ||W_c||^TAU (linear heads only). Without TAU, TAU is the grid's best\n"
    "class-mean accuracy (0, 0.1, ..., 2 for logit-adjust; 0 ... 1 for tau-norm) on the\n"
    "dataset's val split, or on training rows held out of the run's subset (a note on stderr\n"
    "says which); never the test split; with neither the command is refused (status 2).\n"
    "The JSON then has \"posthoc\": {method, tau, tau_from, n_val, val_acc}.\n"
    "--logits F.npy writes the scores the report is made of, one row per test sample: the\n"
    "logits of zeroshot and head (after --posthoc), a probe's, NCM's, or kNN's vote scores\n"
    "(scripts/clipx_torch.py reproduces them from `clipx export`'s archive).",
    eval_opts,
    1,
    1,
    CLI_COMPUTES};

static int split_index(const char *name)
{
    if (!name || strcmp(name, "all") == 0)
        return CX_REPORT_ALL;
    return strcmp(name, "head") == 0 ? CX_SPLIT_HEAD
           : strcmp(name, "mid") == 0 ? CX_SPLIT_MID
                                       : CX_SPLIT_TAIL;
}

static int count_split(const cx_eval_report *r, int s)
{
    int n = 0;
    for (int c = 0; c < r->C; c++)
        n += (int)r->split[c] == s;
    return n;
}

static int print_table(const cx_eval_report *r, const char *run_dir, const cx_run_eval_info *info)
{
    char a[32], b[32], c[32], d[32], e[32];
    printf("run %s (%s) on %s: mode %s, %lld test samples, %d classes", run_dir,
           cli_objective_name(info->objective), info->data, cx_eval_mode_name(info->mode),
           (long long)r->n_test, r->C);
    if (info->n_train)
        printf(", %lld training features%s%s", (long long)info->n_train,
               info->subset ? " of subset " : "", info->subset ? info->subset : "");
    if (isfinite(info->probe_lambda))
        printf(", probe lambda %.3g", info->probe_lambda);
    if (info->retrained)
        printf(", retrained (%s) from %s", cx_retrain_method_name(info->retrain_method),
               info->retrain_from);
    if (info->posthoc)
        printf(", posthoc %s tau %.3g", cx_posthoc_name((cx_posthoc_kind)info->posthoc),
               info->posthoc_tau);
    if (info->freqs)
        printf(", frequencies from %s", info->freqs);
    printf("\n");
    if (r->restrict_to != CX_REPORT_ALL)
        printf("%s classes only (%d): ", cx_eval_report_restrict_name(r->restrict_to), r->n_listed);
    printf("top1 %s  top5 %s  acc %s  worst class %s\n", cli_fmt(a, sizeof a, r->top1),
           cli_fmt(b, sizeof b, r->top5), cli_fmt(c, sizeof c, r->acc),
           cli_fmt(d, sizeof d, r->worst_class));
    printf("head %s (%d classes)  mid %s (%d)  tail %s (%d)  ", cli_fmt(a, sizeof a, r->head),
           count_split(r, CX_SPLIT_HEAD), cli_fmt(b, sizeof b, r->mid),
           count_split(r, CX_SPLIT_MID), cli_fmt(c, sizeof c, r->tail),
           count_split(r, CX_SPLIT_TAIL));
    if (r->rule == CX_SPLIT_RULE_SHOTS)
        printf("[head > %lld, tail < %lld %s]\n", (long long)r->many, (long long)r->few,
               info->freqs ? "mentions" : "training samples");
    else
        printf("[thirds by %s]\n", info->freqs ? "frequency" : "training count");
    printf("corr_acc %s  corr_pred %s  ece %s  nc1 %s  macro F1 %s\n",
           cli_fmt(a, sizeof a, r->corr_acc), cli_fmt(b, sizeof b, r->corr_pred),
           cli_fmt(c, sizeof c, r->ece), cli_fmt(d, sizeof d, r->nc1),
           cli_fmt(e, sizeof e, r->macro_f1));
    if (r->groups)
        printf("worst group %s  avg group %s  adjusted avg %s  (%d of %d groups in the test "
               "split)\n",
               cli_fmt(a, sizeof a, r->groups->worst), cli_fmt(b, sizeof b, r->groups->avg),
               cli_fmt(c, sizeof c, r->groups->adjusted), r->groups->with_test, r->groups->G);
    printf("\n");

    const char *const heads[] = {">class", "name", info->freqs ? ">freq" : ">train", ">test",
                                 ">acc",   ">pred", "split"};
    cli_table t;
    if (cli_table_init(&t, 7, heads))
        return -1;
    for (int k = 0; k < r->C; k++) {
        if (!cx_eval_report_lists(r, k))
            continue;
        char idx[16], tr[32], te[32], acc[32], pr[32];
        snprintf(idx, sizeof idx, "%d", k);
        snprintf(tr, sizeof tr, "%lld", (long long)r->train_count[k]);
        snprintf(te, sizeof te, "%lld", (long long)r->test_count[k]);
        cli_fmt(acc, sizeof acc, r->class_acc[k]);
        snprintf(pr, sizeof pr, "%lld", (long long)r->pred_count[k]);
        const char *row[] = {idx, r->names[k], tr, te, acc, pr, cx_class_split_name(r->split[k])};
        if (cli_table_add(&t, row)) {
            cli_table_free(&t);
            return -1;
        }
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
    return 0;
}

static cx_status save_json(const cx_eval_report *r, const char *path, const char *run_dir,
                           const cx_run_eval_info *info, cx_err *err)
{
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    if (st)
        return st;
    cli_eval_json(f.fp, r, run_dir, info);
    return cx_afile_commit(&f, err);
}

static cx_status write_out(const cx_eval_report *r, const char *run_dir,
                           const cx_run_eval_info *info, cx_err *err)
{
    char *json = cx_path_join(out_dir, "eval.json");
    char *per_class = cx_path_join(out_dir, "per_class.tsv");
    char *confusion = cx_path_join(out_dir, "confusion.tsv");
    cx_status st = !json || !per_class || !confusion ? cx_fail(err, CX_ENOMEM, "out of memory")
                                                      : cx_mkdir_p(out_dir, err);
    if (!st)
        st = save_json(r, json, run_dir, info, err);
    if (!st)
        st = cx_eval_save_per_class_tsv(r, per_class, err);
    if (!st)
        st = cx_eval_save_confusion_tsv(r, confusion, err);
    if (!st && r->groups) {
        char *groups = cx_path_join(out_dir, "groups.tsv");
        st = groups ? cx_group_save_tsv(r->groups, groups, err)
                    : cx_fail(err, CX_ENOMEM, "out of memory");
        free(groups);
    }
    free(json);
    free(per_class);
    free(confusion);
    return st;
}

int cmd_eval(const cli_result *res)
{
    cx_run_eval_opts o;
    int rc = cli_eval_options("eval", &args, &o);
    if (rc)
        return rc;
    o.report.restrict_to = split_index(split_name);
    o.keep_logits = logits_path != NULL;
    if (posthoc) {
        const char *eq = strchr(posthoc, '=');
        size_t n = eq ? (size_t)(eq - posthoc) : strlen(posthoc);
        if (n == 12 && !strncmp(posthoc, "logit-adjust", n))
            o.posthoc = CX_POSTHOC_LOGIT_ADJUST;
        else if (n == 8 && !strncmp(posthoc, "tau-norm", n))
            o.posthoc = CX_POSTHOC_TAU_NORM;
        else {
            cli_error("eval", "--posthoc: '%s' is not logit-adjust[=TAU] or tau-norm[=TAU]",
                      posthoc);
            return EXIT_USAGE;
        }
        if (eq) {
            char *end = NULL;
            double v = strtod(eq + 1, &end);
            if (!eq[1] || *end || !isfinite(v) || v < 0 || v > 10) {
                cli_error("eval", "--posthoc: TAU '%s' is not a number in [0, 10]", eq + 1);
                return EXIT_USAGE;
            }
            o.posthoc_tau = v;
        }
    }
    const char *run_dir = res->args[0];
    cx_err err;
    cx_err_clear(&err);
    cx_eval_report r;
    cx_run_eval_info info;
    double t0 = cx_clock_seconds();
    if (res->progress)
        fprintf(stderr, "eval: %s ...\n", run_dir);
    cx_status st = cx_run_evaluate(run_dir, &o, &r, &info, &err);
    if (st) {
        cli_eval_word_mode(&err);
        if (!strncmp(err.msg, "posthoc ", 8))
            cli_err_prepend(&err, "--");
        return cli_fail("eval", st, &err);
    }
    if (info.posthoc_tau_chosen)
        fprintf(stderr, "eval: note: posthoc %s tau %.3g chosen on %lld validation rows from %s\n",
                cx_posthoc_name((cx_posthoc_kind)info.posthoc), info.posthoc_tau,
                (long long)info.posthoc_n_val,
                info.posthoc_val == CX_VAL_SPLIT ? "the dataset's val split"
                                                 : "training rows held out of the run's subset");
    uint64_t lshape[2] = {(uint64_t)info.n_test, (uint64_t)info.num_classes};
    if (logits_path &&
        (st = cx_npy_write(logits_path, CX_ELEM_F32, 2, lshape, info.logits, &err))) {
        rc = cli_fail("eval", st, &err);
    } else if (out_dir && (st = write_out(&r, run_dir, &info, &err))) {
        rc = cli_fail("eval", st, &err);
    } else if (as_json) {
        cli_eval_json(stdout, &r, run_dir, &info);
    } else if (print_table(&r, run_dir, &info)) {
        cli_error("eval", "out of memory");
        rc = EXIT_RUNTIME;
    }
    if (!rc && res->progress)
        fprintf(stderr, "eval: %.2f s (load %.2f, features %.2f, classifier %.2f, scoring %.2f, "
                        "metrics %.2f)\n", cx_clock_seconds() - t0, info.seconds[CX_EVAL_PHASE_LOAD],
                info.seconds[CX_EVAL_PHASE_FEATURES], info.seconds[CX_EVAL_PHASE_CLASSIFIER],
                info.seconds[CX_EVAL_PHASE_SCORING], info.seconds[CX_EVAL_PHASE_METRICS]);
    cx_eval_report_free(&r);
    cx_run_eval_info_free(&info);
    return rc;
}
