/* clipx train: a new run from a configuration (file, flags, --set), or --resume of an
 * interrupted one; progress on stderr; the run folder is written by lib/train. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/dirlock.h"
#include "lib/base/dist.h"
#include "lib/base/memory.h"
#include "lib/base/path.h"
#include "lib/conf/conf.h"
#include "lib/eval/report.h"
#include "lib/eval/run_eval.h"
#include "lib/run/run.h"
#include "lib/run/train_config.h"
#include "lib/train/trainer.h"

#include "cli.h"
#include "commands.h"
#include "progress.h"

static const char *config_path, *out_dir, *resume_dir;
static const char *data, *subset, *objective, *loss, *epochs, *batch, *seed, *max_memory;
static cli_list sets;
static int force;

static const cli_opt train_opts[] = {
    {"config", CLI_STRING, &config_path, "FILE", "training configuration YAML (see 'clipx config --keys')", 0, -1, NULL},
    {"set", CLI_LIST, &sets, "KEY=VALUE", "override one configuration key; repeatable, applied last", 0, -1, NULL},
    {"data", CLI_STRING, &data, "DATASET", "dataset YAML (the key data)", 0, -1, NULL},
    {"subset", CLI_STRING, &subset, "SUBSET", "SUBSET file of kept training samples (the key subset)", 0, -1, NULL},
    {"objective", CLI_STRING, &objective, "O", "clip, sl or dino (the key objective)", 0, -1, NULL},
    {"loss", CLI_STRING, &loss, "L", "supervised loss (the key loss)", 0, -1, NULL},
    {"epochs", CLI_STRING, &epochs, "N", "epochs (the key epochs)", 0, -1, NULL},
    {"batch", CLI_STRING, &batch, "N", "batch size (the key batch)", 0, -1, NULL},
    {"seed", CLI_STRING, &seed, "S", "seed of initialisation, order and sampling (the key seed)", 0, -1, NULL},
    {"out", CLI_STRING, &out_dir, "RUN", "run folder to create: config.yaml, model.ckpt, log.jsonl", 0, -1, NULL},
    {"resume", CLI_STRING, &resume_dir, "RUN", "continue the interrupted run RUN (takes no other configuration)", 0, -1, NULL},
    {"force", CLI_FLAG, &force, NULL, "replace a run already in the --out folder", 0, -1, NULL},
    {"max-memory", CLI_STRING, &max_memory, "SIZE", "refuse the run, before its buffers are written, when it would need more memory than SIZE (e.g. 512M, 4G; default: what the machine has available)", 0, -1, NULL},
    {NULL, CLI_FLAG, NULL, NULL, NULL, 0, -1, NULL}};

const cli_spec cmd_train_spec = {
    "train",
    "train a CLIP or supervised model into a run folder",
    "[--config FILE] [--set KEY=VALUE ...] [--data DATASET] ... --out RUN | --resume RUN",
    "The configuration is the defaults, then --config FILE, then the flags --data,\n"
    "--subset, --objective, --loss, --epochs, --batch and --seed, then each --set in order\n"
    "('clipx config --keys' lists every key; 'clipx config' prints what train would run).\n"
    "RUN receives config.yaml (the resolved configuration), model.ckpt (weights, optimiser\n"
    "state, classes and counts; written atomically at every epoch end and every ckpt.every\n"
    "steps) and log.jsonl (one JSON object per epoch: epoch, step, loss, lr, seconds,\n"
    "samples_per_s, logit_scale; with eval.every N, every N-th epoch's line adds \"eval\":\n"
    "split, mode, top1, head, mid, tail, corr_acc, corr_pred of its checkpoint on the val\n"
    "split, or the test split when there is none).\n"
    "\n"
    "--resume RUN continues from the last checkpoint and ends bit-identical to an\n"
    "uninterrupted run with the same thread count; a finished run is left as it is.\n"
    "A NaN or infinite loss stops training with exit status 1 and keeps the last good\n"
    "checkpoint. Bad configurations are refused before anything is written (status 2).",
    train_opts,
    0,
    0,
    CLI_COMPUTES_OWN_THREADS};

typedef struct {
    cli_progress bar;
    int quiet;
    long kill_at_step; /* CLIPX_TEST_KILL_AT_STEP: SIGKILL ourselves there (resume tests) */
    int said_test;     /* the note that curves use the test split was printed */
} progress_ctx;

static void on_progress(void *ctx, const cx_train_status *s, int epoch_done)
{
    progress_ctx *p = ctx;
    if (p->kill_at_step > 0 && s->step >= p->kill_at_step)
        raise(SIGKILL);
    char extra[160];
    snprintf(extra, sizeof extra, "epoch %lld/%lld  loss %.4f  %.0f samples/s", (long long)s->epoch,
             (long long)s->epochs, s->loss, s->samples_per_s);
    if (epoch_done) {
        cli_progress_end(&p->bar);
        if (!p->quiet)
            fprintf(stderr, "epoch %lld/%lld  loss %.4f  lr %.3g  %.1f s  %.0f samples/s\n",
                    (long long)s->epoch, (long long)s->epochs, s->loss, s->lr, s->seconds,
                    s->samples_per_s);
        p->bar.total = s->total_steps;
    } else {
        cli_progress_update(&p->bar, (long)s->step, extra);
    }
}

static void on_note(void *ctx, const char *msg)
{
    progress_ctx *p = ctx;
    cli_progress_end(&p->bar);
    if (!p->quiet)
        fprintf(stderr, "train: note: %s\n", msg);
}

static void put_metric(FILE *fp, const char *key, double v)
{
    if (isfinite(v))
        fprintf(fp, ",\"%s\":%.17g", key, v);
    else
        fprintf(fp, ",\"%s\":null", key);
}

/* eval.every: the checkpoint just written, scored as `clipx eval RUN` would (its default mode,
 * NC1 skipped) on the val split, or the test split when the dataset has none. */
static cx_status on_epoch_eval(void *ctx, const char *run_dir, int64_t epoch, char **fields,
                               cx_err *err)
{
    progress_ctx *p = ctx;
    cx_run_eval_opts o;
    cx_run_eval_defaults(&o);
    o.on_val = -1;
    o.nc1 = 0;
    cx_eval_report r;
    cx_run_eval_info info;
    cx_status st = cx_run_evaluate(run_dir, &o, &r, &info, err);
    if (st)
        return cx_err_prefix(err, st, "eval.every: epoch %lld", (long long)epoch);
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (fp) {
        fprintf(fp, "\"eval\":{\"split\":\"%s\",\"mode\":\"%s\"", info.on_val ? "val" : "test",
                cx_eval_mode_name(info.mode));
        put_metric(fp, "top1", r.top1);
        put_metric(fp, "head", r.head);
        put_metric(fp, "mid", r.mid);
        put_metric(fp, "tail", r.tail);
        put_metric(fp, "corr_acc", r.corr_acc);
        put_metric(fp, "corr_pred", r.corr_pred);
        fputc('}', fp);
    }
    if (!fp || fclose(fp) != 0) {
        free(text);
        text = NULL;
    }
    if (!p->quiet) {
        cli_progress_end(&p->bar);
        if (!info.on_val && !p->said_test)
            fprintf(stderr, "train: note: eval.every: the dataset has no val split; the curves "
                            "are on the test split\n");
        fprintf(stderr, "eval %s (epoch %lld): top1 %.4f  head %.4f  mid %.4f  tail %.4f  "
                        "corr_acc %.4f\n", info.on_val ? "val" : "test", (long long)epoch, r.top1,
                r.head, r.mid, r.tail, r.corr_acc);
    }
    p->said_test = p->said_test || !info.on_val;
    cx_eval_report_free(&r);
    cx_run_eval_info_free(&info);
    if (!text)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    *fields = text;
    return CX_OK;
}

/* Flags that name one configuration key, applied in this order. */
static cx_status apply_flags(cx_train_config *cfg, cx_err *err)
{
    const struct {
        const char *key, *value, *flag;
    } flags[] = {{"data", data, "--data"},       {"subset", subset, "--subset"},
                 {"objective", objective, "--objective"}, {"loss", loss, "--loss"},
                 {"epochs", epochs, "--epochs"}, {"batch", batch, "--batch"},
                 {"seed", seed, "--seed"}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        if (!flags[i].value)
            continue;
        cx_status st = cx_conf_set_value(&cx_train_config_schema, cfg, flags[i].key, flags[i].value,
                                         flags[i].flag, err);
        if (st)
            return st;
    }
    for (int i = 0; i < sets.count; i++) {
        cx_status st = cx_conf_set(&cx_train_config_schema, cfg, sets.items[i], err);
        if (st) {
            cli_err_prepend(err, "--set "); /* the message starts with the assignment */
            return st;
        }
    }
    return CX_OK;
}

static int holds_run(const char *dir)
{
    char *config = cx_run_path(dir, CX_RUN_CONFIG), *ckpt = cx_run_path(dir, CX_RUN_CKPT);
    int held = (config && cx_path_exists(config)) || (ckpt && cx_path_exists(ckpt));
    free(config);
    free(ckpt);
    return held;
}

/* The refusals of cx_train_new that a user answers with an option, in the same order as it
 * checks them, so the message can name the option. */
static cx_status check_new_run(const cx_train_config *cfg, cx_err *err)
{
    cx_status st = cx_train_config_validate(cfg, err);
    if (st)
        return st;
    /* A folder another clipx is training into: that, not "already holds a run", is the reason. */
    if ((st = cx_dirlock_check(out_dir, "training into", err)))
        return st;
    if (!force && holds_run(out_dir))
        return cx_fail(err, CX_EUSAGE, "%s already holds a run; continue it with --resume %s, or "
                       "start over with --force", out_dir, out_dir);
    if (!cfg->data)
        return cx_fail(err, CX_EUSAGE, "no dataset: set data in the config, --data or --set data=FILE");
    return CX_OK;
}

int cmd_train(const cli_result *res)
{
    cx_err err;
    cx_err_clear(&err);
    progress_ctx pc = {.quiet = res->quiet};
    const char *kill_at = getenv("CLIPX_TEST_KILL_AT_STEP");
    pc.kill_at_step = kill_at ? atol(kill_at) : 0;
    cli_progress_start(&pc.bar, res->progress, "train", 0);
    cx_train_hooks hooks = {on_progress, &pc, on_epoch_eval, on_note, 0};
    if (max_memory && cx_bytes_parse(max_memory, &hooks.max_memory)) {
        cli_error("train", "--max-memory: '%s' is not a size (a number of bytes, or with K, M, "
                           "G or T: 512M, 4G)", max_memory);
        return EXIT_USAGE;
    }
    if (resume_dir && (out_dir || config_path || sets.count || data || subset || objective || loss ||
                       epochs || batch || seed || force)) {
        cli_error("train", "--resume takes only the run folder (and --threads); its "
                           "configuration is RUN/config.yaml");
        return EXIT_USAGE;
    }
    if (!resume_dir && !out_dir) {
        cli_error("train", "missing --out RUN (the run folder to create)");
        return EXIT_USAGE;
    }
    cx_dist dist;
    cx_status st = cx_dist_init(&dist, &err);
    if (st)
        return cli_fail("train", st, &err);
    /* Under mpirun only rank 0 speaks (its progress, its errors). */
    if (dist.rank != 0) {
        pc.bar.enabled = 0;
        pc.quiet = 1;
    }
    if (resume_dir) {
        st = cx_train_resume(resume_dir, res->threads, &hooks, &dist, &err);
    } else {
        cx_train_config cfg;
        st = cx_train_config_load(&cfg, config_path, NULL, 0, &err);
        if (!st) {
            st = apply_flags(&cfg, &err);
            if (!st && res->threads > 0)
                cfg.threads = res->threads;
            if (!st)
                st = check_new_run(&cfg, &err);
            if (!st)
                st = cx_train_new(&cfg, out_dir, force, &hooks, &dist, &err);
            cx_train_config_free(&cfg);
        }
    }
    cli_progress_end(&pc.bar);
    int code = EXIT_OK;
    if (st)
        code = dist.rank == 0 ? cli_fail("train", st, &err) : cli_exit_code(st);
    /* Every rank waits until rank 0 has said why: mpirun kills the job as soon as one process
     * exits with a failure, which could otherwise cut rank 0's message. */
    fflush(stderr);
    cx_dist_barrier(&dist, NULL);
    cx_dist_finish(&dist);
    return code;
}
