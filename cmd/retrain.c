/* clipx retrain: a second stage (cRT, LWS, tau-norm, DisAlign, MARC, decoder, prompt, DFR, CFR) on a run's frozen image
 * features into a new run folder, or --resume of an interrupted one (lib/eval/retrain.h). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/memory.h"
#include "lib/eval/retrain.h"
#include "lib/run/retrain_config.h"

#include "cli.h"
#include "commands.h"

static const char *method, *out_dir, *resume_dir, *select_by, *max_memory;
static cli_list sets;
static int force;

static const cli_opt retrain_opts[] = {
    {"method", CLI_STRING, &method, "M", "the second stage (required for a new run)", 0, -1,
     CX_RETRAIN_METHOD_CHOICES},
    {"set", CLI_LIST, &sets, "KEY=VALUE",
     "one key of the method (see above); repeatable, applied in order", 0, -1, NULL},
    {"out", CLI_STRING, &out_dir, "RUN2",
     "run folder to create: config.yaml, features.ckpt, model.ckpt, log.jsonl", 0, -1, NULL},
    {"resume", CLI_STRING, &resume_dir, "RUN2",
     "continue the interrupted retrain RUN2 (takes no other option but --threads)", 0, -1, NULL},
    {"force", CLI_FLAG, &force, NULL, "replace a run already in the --out folder", 0, -1, NULL},
    {"select", CLI_STRING, &select_by, "S",
     "cfr: keep the epoch with the best worst-class (default) or worst-group accuracy on the "
     "val split (worst-group needs groups there)", 0, -1, "worst-class|worst-group"},
    {"max-memory", CLI_STRING, &max_memory, "SIZE",
     "decoder.type transformer: refuse the run, before the tower runs, when its token cache "
     "would need more memory than SIZE (e.g. 512M, 4G; default: what the machine has "
     "available)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_retrain_spec = {
    "retrain",
    "a second stage (cRT, LWS, tau-norm, DisAlign, MARC, decoder, prompt, DFR, CFR) on a run's frozen features",
    "RUN --method M [--set KEY=VALUE ...] --out RUN2 | --resume RUN2",
    "Trains a new classifier, or rebalances RUN's, on RUN's frozen image features\n"
    "(methods.md section 5). The features of RUN's training rows are computed once and\n"
    "cached in RUN2/features.ckpt (a resume reuses them).\n"
    "  crt       a re-initialised classifier (linear; cosine when RUN's head is cosine or\n"
    "            text), class-balanced sampling, cross-entropy; any run with an image tower\n"
    "  lws       one learned scale per class over RUN's head, class-balanced sampling, CE\n"
    "  tau-norm  W_c / ||W_c||^tau of RUN's linear head; tau given (tau_norm.tau) or chosen\n"
    "            over tau_norm.grid by class-mean accuracy on validation data: the dataset's\n"
    "            val split, else val.per_class training rows per class outside RUN's subset\n"
    "            (a note on stderr says which); never the test split\n"
    "  disalign  (1 + g alpha_c) z_c + g beta_c, g = sigmoid(w . f + b), GRW-weighted CE\n"
    "  marc      a_c z_c + b_c ||W_c||, GRW-weighted CE\n"
    "  decoder   an MLP decoder (decoder.hidden, ReLU) and a linear head on the feature\n"
    "            vector, trained with any stage-1 loss (loss) and sampler (sampler); any run\n"
    "  prompt    CoOp prompt tuning of a CLIP run with the transformer text tower: prompt.n_ctx\n"
    "            context vectors (shared, or prompt.per_class) before each class name through\n"
    "            the frozen text tower, logits = RUN's logit scale x cos, any loss and sampler;\n"
    "            prompt.init random (N(0, 0.02)) or a phrase of n_ctx words (\"a photo of a\")\n"
    "  dfr       deep feature reweighting: the linear probe's L2 logistic regression on\n"
    "            RUN's features of the dataset's val split (else val.per_class training rows\n"
    "            per class outside RUN's subset), split in two halves within each group (when\n"
    "            val has groups) or class; dfr.draws balanced subsets of the first half (as\n"
    "            many rows per group/class as the smallest has) fitted at each lambda of the\n"
    "            probe's grid (45 values, 1e-6 .. 1e5) and averaged; lambda chosen by\n"
    "            worst-group (worst-class) accuracy on the second half, recorded in\n"
    "            RUN2/dfr.json and RUN2/model.ckpt (dfr.lambda); any run\n"
    "  cfr       calibrating RUN's representations: the training rows RUN misclassifies\n"
    "            are the calibration set; RUN's image projection in front of its frozen\n"
    "            classifier (an SL run's head, a CLIP run's zero-shot classifier): the image\n"
    "            tower's last linear layer, or on an identity, frozen or ViT tower a new\n"
    "            D x D layer from the identity, trains on it with c(e) CE + c(e) cfr.lambda\n"
    "            L_con, c(e) = 1 + 0.5 cos(2 pi e / E), L_con InfoNCE with cfr.positives\n"
    "            correctly classified rows of the class against cfr.negatives hard\n"
    "            negatives (nearest rows of other classes), plain SGD; no group label is\n"
    "            read in training; the epoch kept (0: RUN unchanged) has the best\n"
    "            worst-class accuracy on validation (as for dfr), or with --select\n"
    "            worst-group the best worst-group accuracy (the val split must have\n"
    "            groups); RUN2/cfr.json records it; any run\n"
    "Keys (--set KEY=VALUE): seed, data and subset (every method; default RUN's); epochs\n"
    "(10), batch (256), optim.name (sgd|adamw), optim.lr (0.1), optim.momentum (0.9)\n"
    "(crt, lws, disalign, marc, decoder, prompt); optim.wd (crt, decoder, prompt, 5e-4);\n"
    "grw.p (disalign, marc, decoder, prompt, 1.2); tau_norm.tau (auto or [0, 2]),\n"
    "tau_norm.grid (tau-norm); val.per_class (tau-norm, dfr, cfr, 50); dfr.draws (dfr, 10);\n"
    "cfr.epochs (10), cfr.lr (0.001), cfr.tau (1), cfr.positives (16), cfr.negatives (16),\n"
    "cfr.lambda (1) and batch (cfr); loss (ce), sampler (none) (decoder,\n"
    "prompt); decoder.hidden ([256]) (decoder); prompt.n_ctx (4), prompt.per_class (false),\n"
    "prompt.init (random) (prompt). A key of another method is refused (status 2, naming the\n"
    "key), as is a method RUN has no classifier for (lws, tau-norm, disalign and marc need an\n"
    "SL run's head; tau-norm a linear one; prompt a CLIP run with the transformer text tower).\n"
    "RUN2/config.yaml records the method and RUN's path; RUN2/model.ckpt (written at every\n"
    "epoch end) holds the retrained classifier: 'clipx eval RUN2' scores it on RUN's\n"
    "features, 'clipx compare RUN RUN2' compares them. --resume RUN2 continues from the last\n"
    "epoch and ends byte-identical to an uninterrupted run with the same thread count.",
    retrain_opts,
    0,
    1,
    CLI_COMPUTES};

typedef struct {
    int quiet;
    long kill_at_epoch; /* CLIPX_TEST_KILL_AT_EPOCH: SIGKILL ourselves there (resume tests) */
} retrain_ctx;

static void on_epoch(void *ctx, int64_t epoch, int64_t epochs, double loss, double lr)
{
    retrain_ctx *c = ctx;
    if (!c->quiet)
        fprintf(stderr, "epoch %lld/%lld  loss %.4f  lr %.3g\n", (long long)epoch,
                (long long)epochs, loss, lr);
    if (c->kill_at_epoch > 0 && epoch >= c->kill_at_epoch)
        raise(SIGKILL);
}

static void on_val(void *ctx, cx_val_source src, size_t n)
{
    (void)ctx;
    fprintf(stderr, "retrain: note: validation data: %zu rows from %s\n", n,
            src == CX_VAL_SPLIT ? "the dataset's val split"
                                : "training rows held out of the run's subset");
}

int cmd_retrain(const cli_result *res)
{
    cx_err err;
    cx_err_clear(&err);
    const char *kill_at = getenv("CLIPX_TEST_KILL_AT_EPOCH");
    retrain_ctx ctx = {res->quiet, kill_at ? atol(kill_at) : 0};
    cx_retrain_hooks hooks = {on_epoch, on_val, &ctx, 0};
    if (max_memory && cx_bytes_parse(max_memory, &hooks.max_memory)) {
        cli_error("retrain", "--max-memory: '%s' is not a size (a number of bytes, or with K, "
                             "M, G or T: 512M, 4G)", max_memory);
        return EXIT_USAGE;
    }
    cx_retrain_info info;
    cx_status st;
    if (resume_dir) {
        if (res->nargs || method || sets.count || out_dir || force || select_by) {
            cli_error("retrain", "--resume takes only the run folder (and --threads); its "
                                 "configuration is RUN2/config.yaml");
            return EXIT_USAGE;
        }
        st = cx_retrain_resume(resume_dir, &hooks, &info, &err);
    } else {
        if (res->nargs != 1) {
            cli_error("retrain", "missing RUN (the stage-1 run folder)");
            return EXIT_USAGE;
        }
        if (!method) {
            cli_error("retrain", "missing --method M (" CX_RETRAIN_METHOD_CHOICES ")");
            return EXIT_USAGE;
        }
        if (!out_dir) {
            cli_error("retrain", "missing --out RUN2 (the run folder to create)");
            return EXIT_USAGE;
        }
        if (select_by && strcmp(method, "cfr") != 0) {
            cli_error("retrain", "--select is an option of --method cfr");
            return EXIT_USAGE;
        }
        size_t n = (size_t)sets.count + 2 + (select_by ? 1 : 0);
        char **all = calloc(n, sizeof *all);
        size_t flen = strlen(res->args[0]) + 8, mlen = strlen(method) + 8;
        char *from = malloc(flen), *meth = malloc(mlen);
        if (!all || !from || !meth) {
            free(all);
            free(from);
            free(meth);
            cli_error("retrain", "out of memory");
            return EXIT_RUNTIME;
        }
        snprintf(meth, mlen, "method=%s", method);
        snprintf(from, flen, "from=%s", res->args[0]);
        all[0] = meth;
        all[1] = from;
        for (int i = 0; i < sets.count; i++)
            all[i + 2] = (char *)sets.items[i];
        char sel[64];
        if (select_by) {
            snprintf(sel, sizeof sel, "cfr.select=%s", select_by);
            all[n - 1] = sel;
        }
        st = cx_retrain_new((const char *const *)all, n, out_dir, force, &hooks, &info, &err);
        /* A message about a --set starts with its key or assignment. */
        if (st == CX_EUSAGE && select_by && !strncmp(err.msg, "cfr.select: ", 12)) {
            /* Worded for the option that set the key. */
            memmove(err.msg, err.msg + 12, strlen(err.msg + 12) + 1);
            cli_err_prepend(&err, "--select ");
        } else if (st == CX_EUSAGE)
            for (int i = 0; i < sets.count; i++) {
                const char *eq = strchr(sets.items[i], '=');
                size_t k = eq ? (size_t)(eq - sets.items[i]) : strlen(sets.items[i]);
                if (strncmp(err.msg, sets.items[i], k) == 0 &&
                    (err.msg[k] == ':' || err.msg[k] == '=')) {
                    cli_err_prepend(&err, "--set ");
                    break;
                }
            }
        free(all);
        free(from);
        free(meth);
    }
    if (st)
        return cli_fail("retrain", st, &err);
    if (!res->quiet) {
        const char *name = cx_retrain_method_name(info.method);
        fprintf(stderr, "retrain: %s on %lld features (%d classes, dim %d%s)", name,
                (long long)info.n_train, info.classes, info.dim,
                info.features_cached ? ", cached" : "");
        if (isfinite(info.tau))
            fprintf(stderr, ", tau %.3g", info.tau);
        if (isfinite(info.lambda))
            fprintf(stderr, ", lambda %.3g", info.lambda);
        if (info.method == CX_RETRAIN_CFR)
            fprintf(stderr, ", %lld calibration rows, epoch %lld kept (worst-%s accuracy %.4f "
                    "on validation)", (long long)info.n_calib, (long long)info.best_epoch,
                    info.by_group ? "group" : "class", info.val_acc);
        else if (isfinite(info.lambda) && isfinite(info.val_acc))
            fprintf(stderr, " (worst-%s accuracy %.4f on the second half of validation)",
                    info.by_group ? "group" : "class", info.val_acc);
        else if (isfinite(info.val_acc))
            fprintf(stderr, " (validation class-mean accuracy %.4f)", info.val_acc);
        if (isfinite(info.loss))
            fprintf(stderr, ", final loss %.4f", info.loss);
        fputc('\n', stderr);
    }
    return EXIT_OK;
}
