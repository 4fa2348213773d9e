/* The second stage on frozen features: cache, train (sampler, loss, optimiser, schedule of the
 * library), checkpoint per epoch, and the retrained classifier in linear form. */
#include "lib/eval/retrain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"
#include "lib/base/blas.h"
#include "lib/base/clock.h"
#include "lib/base/memory.h"
#include "lib/base/path.h"
#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/data/dataset.h"
#include "lib/data/groups.h"
#include "lib/eval/cfr_calib.h"
#include "lib/eval/cfr_train.h"
#include "lib/eval/dfr.h"
#include "lib/eval/posthoc.h"
#include "lib/eval/retrain_tokens.h"
#include "lib/eval/run_eval.h"
#include "lib/eval/score.h"
#include "lib/model/head.h"
#include "lib/model/mlp.h"
#include "lib/model/params.h"
#include "lib/model/prompt.h"
#include "lib/model/rebalance_head.h"
#include "lib/objective/loss.h"
#include "lib/objective/sampler.h"
#include "lib/optim/optim.h"
#include "lib/optim/schedule.h"
#include "lib/run/ckpt.h"
#include "lib/run/run.h"
#include "lib/run/train_config.h"

enum { TAG_RETRAIN_INIT = 0x52455452 /* "RETR" */ };

typedef struct {
    cx_retrain_config cfg;
    double tau_given;
    char *dir, *config_path, *ckpt_path, *log_path, *feat_path;
    cx_run run;
    int run_open;
    /* cached features */
    float *x;
    int32_t *y;
    size_t n;
    int D, E;
    float *vx;
    int32_t *vy;
    size_t nv;
    int32_t *vg;              /* (nv) dfr: the val split's groups, or NULL */
    int G;                    /* dfr: the dataset's groups (0 without) */
    cx_val_source vsrc;
    int cached;
    cx_eval_classifier dfr;   /* dfr: the fitted classifier */
    /* cfr: the calibration set, its trainer, the frozen classifier (scale folded in) and the
     * projection of the best epoch on validation (epoch 0: RUN's own, unchanged) */
    cx_cfr_calib cal;
    cx_cfr_trainer cfrt;
    float *cwc, *cbc;         /* (E, D), (E) */
    float *best_w, *best_b;   /* (D, H or D), (D) */
    int64_t best_epoch;
    double best_acc, start_acc; /* the kept epoch's, epoch 0's (RUN's own) */
    int i_pw, i_pb;
    int H;                    /* cfr: the tower's last linear layer's input width; 0: none (a
                                 new D x D projection on the features) */
    int tw_w, tw_b;           /* cfr: that layer's parameters in RUN's model */
    float *hx, *hvx;          /* cfr with H: (n, H), (nv, H) the rows entering that layer */
    cx_dfr_info dinfo;
    int64_t *counts;          /* (E) */
    cx_eval_classifier base;  /* the run's head over the E classes (SL runs); cfr on a CLIP
                                 run: its zero-shot classifier */
    float *wnorm;             /* (E) ||W_c|| of the run's head weights */
    /* trainable pieces */
    cx_params p;
    cx_head head;
    int has_head;
    cx_mlp mlp; /* decoder */
    int has_mlp;
    cx_tokdec dec; /* decoder.type transformer: over the cached tokens, rows of D = T * Dw */
    int has_dec, has_tok, tok_T, tok_W;
    uint64_t max_memory; /* hooks' limit for the token cache, 0: what the machine has */
    cx_prompt prompt; /* prompt: class embeddings from the context through RUN's text tower */
    int has_prompt, i_ctx;
    float pscale;     /* prompt: RUN's logit scale */
    float *demb;      /* prompt: (E, D) */
    int i_s, i_gw, i_gb, i_al, i_be, i_a, i_b;
    cx_optim opt;
    int opt_init;
    cx_loss *loss;
    cx_sampler *sampler;
    int B;
    float *xb, *xn, *z, *out, *dout, *gate;
    int32_t *yb;
    uint32_t *order;
    int64_t epochs_done;
    double last_loss, tau, val_acc;
    char **log_lines;
    int64_t nlog;
} rt_state;

static int trained(int m)
{
    return m != CX_RETRAIN_TAU_NORM && m != CX_RETRAIN_DFR;
}

/* The epochs a trained method runs (cfr has its own key). */
static int64_t total_epochs(const rt_state *t)
{
    return t->cfg.method == CX_RETRAIN_CFR ? t->cfg.cfr.epochs : t->cfg.epochs;
}

/* Methods that read validation features. */
static int uses_val(const rt_state *t)
{
    return t->cfg.method == CX_RETRAIN_DFR || t->cfg.method == CX_RETRAIN_CFR ||
           (t->cfg.method == CX_RETRAIN_TAU_NORM && isnan(t->tau_given));
}

static void rt_free(rt_state *t)
{
    for (int64_t i = 0; i < t->nlog; i++)
        free(t->log_lines[i]);
    free(t->log_lines);
    free(t->xb);
    free(t->xn);
    free(t->z);
    free(t->out);
    free(t->dout);
    free(t->gate);
    free(t->yb);
    free(t->order);
    cx_sampler_free(t->sampler);
    cx_loss_free(t->loss);
    if (t->opt_init)
        cx_optim_free(&t->opt);
    if (t->has_head)
        cx_head_free(&t->head);
    if (t->has_mlp)
        cx_mlp_free(&t->mlp);
    if (t->has_dec)
        cx_tokdec_free(&t->dec);
    if (t->has_prompt)
        cx_prompt_free(&t->prompt);
    free(t->demb);
    cx_params_free(&t->p);
    free(t->wnorm);
    cx_eval_classifier_free(&t->base);
    free(t->counts);
    free(t->x);
    free(t->y);
    free(t->vx);
    free(t->vy);
    free(t->vg);
    cx_eval_classifier_free(&t->dfr);
    cx_dfr_info_free(&t->dinfo);
    cx_cfr_calib_free(&t->cal);
    cx_cfr_trainer_free(&t->cfrt);
    free(t->cwc);
    free(t->cbc);
    free(t->best_w);
    free(t->best_b);
    free(t->hx);
    free(t->hvx);
    if (t->run_open)
        cx_run_close(&t->run);
    free(t->dir);
    free(t->config_path);
    free(t->ckpt_path);
    free(t->log_path);
    free(t->feat_path);
    cx_retrain_config_free(&t->cfg);
    memset(t, 0, sizeof *t);
}

static cx_status rt_paths(rt_state *t, const char *dir, cx_err *err)
{
    t->dir = cx_path_join(NULL, dir);
    t->config_path = cx_run_path(dir, CX_RUN_CONFIG);
    t->ckpt_path = cx_run_path(dir, CX_RUN_CKPT);
    t->log_path = cx_run_path(dir, CX_RUN_LOG);
    t->feat_path = cx_run_path(dir, CX_RETRAIN_FEATURES);
    if (!t->dir || !t->config_path || !t->ckpt_path || !t->log_path || !t->feat_path)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
    return CX_OK;
}

static char *dup_str(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The method's needs against the run: CX_EUSAGE naming both. */
static cx_status check_run(const rt_state *t, cx_err *err)
{
    const cx_run *r = &t->run;
    const char *m = cx_retrain_method_name((int)t->cfg.method);
    if (t->cfg.method == CX_RETRAIN_DECODER && t->cfg.decoder.type == CX_RETRAIN_DEC_TRANSFORMER) {
        int T, W;
        if (!cx_tokdec_tower_shape(&r->model, &T, &W))
            return cx_fail(err, CX_EUSAGE,
                           "decoder.type: transformer needs an image tower that gives tokens "
                           "(model.image.type vit); %s's image tower gives plain vectors (use "
                           "decoder.type mlp)", r->dir);
        return CX_OK;
    }
    if (t->cfg.method == CX_RETRAIN_CRT || t->cfg.method == CX_RETRAIN_DECODER ||
        t->cfg.method == CX_RETRAIN_DFR || t->cfg.method == CX_RETRAIN_CFR)
        return CX_OK;
    if (r->cfg.objective == CX_CFG_OBJECTIVE_DINO)
        return cx_fail(err, CX_EUSAGE,
                       "method %s: %s is a self-supervised DINO run, without a text tower or a "
                       "classifier head; use method crt, decoder or dfr on its features",
                       m, r->dir);
    if (t->cfg.method == CX_RETRAIN_PROMPT) {
        if (!cx_cfg_objective_has_text((int)r->cfg.objective))
            return cx_fail(err, CX_EUSAGE,
                           "method prompt: %s is an SL run (objective sl) without a text tower; "
                           "prompt tuning needs a CLIP run whose text tower is the transformer",
                           r->dir);
        if (r->model.spec.text_kind != CX_TEXT_TRANSFORMER)
            return cx_fail(err, CX_EUSAGE,
                           "method prompt: %s has a bag-of-words text tower (model.text.type: "
                           "%s) without token inputs; prompt tuning needs model.text.type: "
                           "transformer",
                           r->dir, r->model.spec.text_kind == CX_TEXT_MLP ? "mlp" : "linear");
        return CX_OK;
    }
    if (r->cfg.objective != CX_CFG_OBJECTIVE_SL)
        return cx_fail(err, CX_EUSAGE,
                       "method %s: %s is a CLIP run (objective clip) without a classifier head "
                       "to rebalance; use a run of objective sl, or method crt",
                       m, r->dir);
    if (t->cfg.method == CX_RETRAIN_TAU_NORM && r->cfg.head != CX_CFG_HEAD_LINEAR)
        return cx_fail(err, CX_EUSAGE,
                       "method tau-norm: %s has a %s head whose rows are normalised already; "
                       "tau-norm needs head: linear (use lws or marc)",
                       r->dir, r->cfg.head == CX_CFG_HEAD_COSINE ? "cosine" : "text");
    return CX_OK;
}

/* ---- features ---------------------------------------------------------------------------- */

/* The token cache (n T W floats) weighed, as train weighs its buffers, with what the heap
 * already holds against hooks' max_memory or the machine's available memory: refused before
 * the tower runs, with its size. */
static cx_status check_token_cache(const rt_state *t, size_t n, cx_err *err)
{
    uint64_t cache = (uint64_t)n * (uint64_t)t->D * sizeof(float);
    uint64_t need = cx_heap_allocated() + cache, limit = t->max_memory;
    if (!limit && cx_memory_available(&limit, NULL))
        return CX_OK;
    if (need <= limit)
        return CX_OK;
    char a[32], b[32], c[32];
    return cx_fail(err, CX_EUSAGE,
                   "decoder.type: transformer: the token cache of %zu training samples x %d "
                   "tokens x %d floats is %s (about %s with what is held), more than %s%s; use "
                   "a smaller subset or a tower with fewer tokens",
                   n, t->tok_T, t->tok_W, cx_bytes_human(cache, a, sizeof a),
                   cx_bytes_human(need, b, sizeof b), cx_bytes_human(limit, c, sizeof c),
                   t->max_memory ? " (--max-memory)" : " of memory available");
}

static cx_status compute_features(rt_state *t, cx_err *err)
{
    cx_run *run = &t->run;
    cx_dataset ds;
    cx_load_options lo = {0};
    lo.parts = CX_LOAD_TRAIN | CX_LOAD_IMAGES;
    lo.subset_path = t->cfg.subset;
    uint32_t *rows = NULL;
    cx_status st = cx_dataset_load(t->cfg.data, &lo, &ds, err);
    if (st)
        return st;
    if ((st = cx_run_check_dataset(run, &ds, err)))
        goto fail;
    const cx_split *tr = &ds.train;
    if (!(rows = malloc(sizeof *rows * (tr->n ? tr->n : 1)))) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    size_t n = 0;
    for (size_t i = 0; i < tr->n; i++)
        if (tr->y[i] >= 0 && tr->y[i] < t->E)
            rows[n++] = (uint32_t)i;
    if (n == 0) {
        st = cx_fail(err, CX_EDATA, "%s: no training sample of the %d evaluated classes",
                     t->cfg.data, t->E);
        goto fail;
    }
    if (t->has_tok && (st = check_token_cache(t, n, err)))
        goto fail;
    t->x = malloc(sizeof *t->x * n * (size_t)t->D);
    t->y = malloc(sizeof *t->y * n);
    if (!t->x || !t->y) {
        st = cx_fail(err, CX_ENOMEM, "out of memory for %zu features", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        t->y[i] = tr->y[rows[i]];
    t->n = n;
    char what[600];
    snprintf(what, sizeof what, "%.500s (train)", tr->images_path);
    if (t->has_tok) {
        /* The frozen tower's tokens, once: n T W floats (the tower runs in its batches). */
        if ((st = cx_tokdec_cache_split(&run->model, tr, rows, n, t->x, what, err)))
            goto fail;
    } else if ((st = cx_run_features(&run->model, tr, rows, n, t->x, what, err)))
        goto fail;
    if (t->H) {
        /* CFR retrains the tower's last layer: the rows entering it too. */
        if (!(t->hx = malloc(sizeof *t->hx * n * (size_t)t->H))) {
            st = cx_fail(err, CX_ENOMEM, "out of memory for %zu features", n);
            goto fail;
        }
        run->model.features_before_last = 1;
        st = cx_run_features(&run->model, tr, rows, n, t->hx, what, err);
        run->model.features_before_last = 0;
        if (st)
            goto fail;
    }
    if ((t->cfg.method == CX_RETRAIN_DFR || t->cfg.method == CX_RETRAIN_CFR) && ds.has_val) {
        /* The val split with its groups (DFR balances by group when it has them). */
        cx_dataset vds;
        cx_load_options vlo = {0};
        vlo.parts = CX_LOAD_VAL | CX_LOAD_IMAGES;
        if ((st = cx_dataset_load(t->cfg.data, &vlo, &vds, err)))
            goto fail;
        const cx_split *vs = &vds.val;
        size_t nv = 0;
        uint32_t *vrows = malloc(sizeof *vrows * (vs->n ? vs->n : 1));
        t->vx = malloc(sizeof *t->vx * (vs->n ? vs->n : 1) * (size_t)t->D);
        t->vy = malloc(sizeof *t->vy * (vs->n ? vs->n : 1));
        t->vg = vs->groups ? malloc(sizeof *t->vg * (vs->n ? vs->n : 1)) : NULL;
        if (!vrows || !t->vx || !t->vy || (vs->groups && !t->vg)) {
            free(vrows);
            cx_dataset_free(&vds);
            st = cx_fail(err, CX_ENOMEM, "out of memory for the validation features");
            goto fail;
        }
        for (size_t i = 0; i < vs->n; i++)
            if (vs->y[i] >= 0 && vs->y[i] < t->E) {
                t->vy[nv] = vs->y[i];
                if (t->vg)
                    t->vg[nv] = vs->groups[i];
                vrows[nv++] = (uint32_t)i;
            }
        t->G = vs->groups ? vds.num_groups : 0;
        if (t->cfg.method == CX_RETRAIN_CFR && t->cfg.cfr.select != CX_RETRAIN_SELECT_WORST_GROUP) {
            /* CFR reads groups for --select worst-group only. */
            free(t->vg);
            t->vg = NULL;
            t->G = 0;
        }
        t->nv = nv;
        t->vsrc = CX_VAL_SPLIT;
        snprintf(what, sizeof what, "%.500s (val)", vs->images_path);
        st = nv ? cx_run_features(&run->model, vs, vrows, nv, t->vx, what, err) : CX_OK;
        if (!st && t->H) {
            if (!(t->hvx = malloc(sizeof *t->hvx * (nv ? nv : 1) * (size_t)t->H))) {
                st = cx_fail(err, CX_ENOMEM, "out of memory for the validation features");
            } else if (nv) {
                run->model.features_before_last = 1;
                st = cx_run_features(&run->model, vs, vrows, nv, t->hvx, what, err);
                run->model.features_before_last = 0;
            }
        }
        free(vrows);
        cx_dataset_free(&vds);
        if (st)
            goto fail;
    } else if (t->cfg.method == CX_RETRAIN_CFR &&
               t->cfg.cfr.select == CX_RETRAIN_SELECT_WORST_GROUP) {
        st = cx_fail(err, CX_EUSAGE,
                     "cfr.select: worst-group needs a val split with groups; %s names no val "
                     "split (validation rows held out of training have no groups)",
                     t->cfg.data);
        goto fail;
    } else if (uses_val(t)) {
        if ((st = cx_run_val_features(run, t->cfg.data, t->cfg.subset, (uint64_t)t->cfg.seed,
                                      (int)t->cfg.val.per_class, &t->vx, &t->vy, &t->nv,
                                      &t->vsrc, err)))
            goto fail;
        if (t->H) {
            /* The same rows again (drawn from the seed), as they enter the last layer. */
            int32_t *hy = NULL;
            size_t hn = 0;
            cx_val_source hs;
            run->model.features_before_last = 1;
            st = cx_run_val_features(run, t->cfg.data, t->cfg.subset, (uint64_t)t->cfg.seed,
                                     (int)t->cfg.val.per_class, &t->hvx, &hy, &hn, &hs, err);
            run->model.features_before_last = 0;
            if (!st && (hn != t->nv || memcmp(hy, t->vy, sizeof *hy * hn) != 0))
                st = cx_fail(err, CX_EDATA, "%s: the validation rows changed between two "
                             "reads", t->cfg.data);
            free(hy);
            if (st)
                goto fail;
        }
    }
fail:
    free(rows);
    cx_dataset_free(&ds);
    return st;
}

/* The cache: written once, atomically; a resume reads it back. */
static cx_status save_features(rt_state *t, cx_err *err)
{
    cx_status st;
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    int64_t xs[2] = {(int64_t)t->n, t->D}, ys[1] = {(int64_t)t->n};
    int64_t vxs[2] = {(int64_t)t->nv, t->D}, vys[1] = {(int64_t)t->nv};
    if ((st = cx_ckpt_add_string(&ck, "from", t->cfg.from, err)) ||
        (st = cx_ckpt_add(&ck, "train.x", CX_CKPT_F32, 2, xs, t->x, err)) ||
        (st = cx_ckpt_add(&ck, "train.y", CX_CKPT_I32, 1, ys, t->y, err)) ||
        (st = cx_ckpt_add_i64(&ck, "val.source", (int64_t)t->vsrc, err)) ||
        (t->nv && ((st = cx_ckpt_add(&ck, "val.x", CX_CKPT_F32, 2, vxs, t->vx, err)) ||
                   (st = cx_ckpt_add(&ck, "val.y", CX_CKPT_I32, 1, vys, t->vy, err)))) ||
        (t->nv && t->vg &&
         ((st = cx_ckpt_add(&ck, "val.groups", CX_CKPT_I32, 1, vys, t->vg, err)) ||
          (st = cx_ckpt_add_i64(&ck, "val.num_groups", t->G, err)))) ||
        (t->H && ((st = cx_ckpt_add(&ck, "train.h", CX_CKPT_F32, 2,
                                    (int64_t[]){(int64_t)t->n, t->H}, t->hx, err)) ||
                  (t->nv && (st = cx_ckpt_add(&ck, "val.h", CX_CKPT_F32, 2,
                                              (int64_t[]){(int64_t)t->nv, t->H}, t->hvx, err))))) ||
        (st = cx_ckpt_write(&ck, t->feat_path, err))) {
        cx_ckpt_free(&ck);
        return st;
    }
    cx_ckpt_free(&ck);
    return CX_OK;
}

static cx_status entry_copy(const cx_ckpt *ck, const char *path, const char *name,
                            cx_ckpt_dtype dt, int cols, void **out, size_t *rows, cx_err *err)
{
    const cx_ckpt_entry *e = cx_ckpt_find(ck, name);
    if (!e || e->dtype != dt || e->ndim != (cols ? 2 : 1) || (cols && e->shape[1] != cols))
        return cx_fail(err, CX_EDATA, "%s: entry %s is missing or of another shape", path,
                       name);
    *rows = (size_t)e->shape[0];
    if (!(*out = malloc(e->nbytes ? e->nbytes : 1)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    memcpy(*out, e->data, e->nbytes);
    return CX_OK;
}

static cx_status read_features(rt_state *t, cx_err *err)
{
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    char *from = NULL;
    size_t ny = 0, nvy = 0;
    int64_t src = 0;
    cx_status st = cx_ckpt_read(t->feat_path, &ck, err);
    if (st)
        goto fail;
    if ((st = cx_ckpt_get_string(&ck, t->feat_path, "from", &from, err)))
        goto fail;
    if (strcmp(from, t->cfg.from) != 0) {
        st = cx_fail(err, CX_EDATA, "%s: features of run %s, the configuration names %s",
                     t->feat_path, from, t->cfg.from);
        goto fail;
    }
    if ((st = entry_copy(&ck, t->feat_path, "train.x", CX_CKPT_F32, t->D, (void **)&t->x, &t->n,
                         err)) ||
        (st = entry_copy(&ck, t->feat_path, "train.y", CX_CKPT_I32, 0, (void **)&t->y, &ny,
                         err)) ||
        (st = cx_ckpt_get_i64(&ck, t->feat_path, "val.source", &src, err)))
        goto fail;
    if (ny != t->n || t->n == 0) {
        st = cx_fail(err, CX_EDATA, "%s: %zu features, %zu labels", t->feat_path, t->n, ny);
        goto fail;
    }
    t->vsrc = (cx_val_source)src;
    if (cx_ckpt_find(&ck, "val.x")) {
        if ((st = entry_copy(&ck, t->feat_path, "val.x", CX_CKPT_F32, t->D, (void **)&t->vx,
                             &t->nv, err)) ||
            (st = entry_copy(&ck, t->feat_path, "val.y", CX_CKPT_I32, 0, (void **)&t->vy, &nvy,
                             err)))
            goto fail;
        if (nvy != t->nv) {
            st = cx_fail(err, CX_EDATA, "%s: %zu validation features, %zu labels", t->feat_path,
                         t->nv, nvy);
            goto fail;
        }
        if (cx_ckpt_find(&ck, "val.groups")) {
            size_t nvg = 0;
            int64_t G = 0;
            if ((st = entry_copy(&ck, t->feat_path, "val.groups", CX_CKPT_I32, 0,
                                 (void **)&t->vg, &nvg, err)) ||
                (st = cx_ckpt_get_i64(&ck, t->feat_path, "val.num_groups", &G, err)))
                goto fail;
            if (nvg != t->nv || G < 1 || G > CX_GROUPS_MAX) {
                st = cx_fail(err, CX_EDATA, "%s: %zu validation groups of %lld for %zu features",
                             t->feat_path, nvg, (long long)G, t->nv);
                goto fail;
            }
            t->G = (int)G;
        }
    }
    if (t->H) {
        size_t nh = 0, nvh = 0;
        if ((st = entry_copy(&ck, t->feat_path, "train.h", CX_CKPT_F32, t->H, (void **)&t->hx,
                             &nh, err)))
            goto fail;
        if (t->nv && (st = entry_copy(&ck, t->feat_path, "val.h", CX_CKPT_F32, t->H,
                                      (void **)&t->hvx, &nvh, err)))
            goto fail;
        if (nh != t->n || (t->nv && nvh != t->nv)) {
            st = cx_fail(err, CX_EDATA, "%s: %zu and %zu rows before the last layer, %zu and "
                         "%zu features", t->feat_path, nh, nvh, t->n, t->nv);
            goto fail;
        }
    }
    for (size_t i = 0; i < t->n; i++)
        if (t->y[i] < 0 || t->y[i] >= t->E) {
            st = cx_fail(err, CX_EDATA, "%s: label %d of feature %zu is not a class", t->feat_path,
                         t->y[i], i);
            goto fail;
        }
    t->cached = 1;
fail:
    free(from);
    cx_ckpt_free(&ck);
    return st;
}

/* ---- the pieces that train ---------------------------------------------------------------- */

/* Prompt tuning: the class names' tokens in RUN's vocabulary, the prompt buffers. */
static cx_status build_prompt(rt_state *t, cx_err *err)
{
    cx_run *r = &t->run;
    const cx_seq_tower *tw = &r->model.text_seq;
    int E = t->E, L = tw->tokens;
    int32_t *names = malloc(sizeof *names * (size_t)E * L);
    if (!names)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    for (int c = 0; c < E; c++)
        cx_tokenize(&r->vocab, r->meta.class_names[c], names + (size_t)c * L, L);
    cx_status st = cx_prompt_init(&t->prompt, tw, names, E, (int)t->cfg.prompt.n_ctx,
                                  t->cfg.prompt.per_class, err);
    free(names);
    if (st)
        return cx_err_prefix(err, st, "%s", r->dir);
    t->has_prompt = 1;
    t->pscale = cx_model_logit_scale(&r->model);
    return CX_OK;
}

/* The ids (M) of prompt.init's words in RUN's vocabulary; CX_EUSAGE naming the key when the
 * phrase has another number of words than prompt.n_ctx or a word outside the vocabulary. */
static cx_status init_phrase_ids(rt_state *t, int32_t *ids, cx_err *err)
{
    const char *phrase = t->cfg.prompt.init;
    int M = (int)t->cfg.prompt.n_ctx, L = t->run.model.text_seq.tokens;
    if (cx_tokenize(&t->run.vocab, phrase, ids, L) != M)
        return cx_fail(err, CX_EUSAGE,
                       "prompt.init: '%s' has %d words, prompt.n_ctx is %d; give as many (or "
                       "random)", phrase, cx_tokenize(&t->run.vocab, phrase, ids, L), M);
    for (int i = 0; i < M; i++)
        if (ids[1 + i] == CX_TOKEN_UNK)
            return cx_fail(err, CX_EUSAGE,
                           "prompt.init: word %d of '%s' is not in the vocabulary of %s; use its "
                           "words or random", i + 1, phrase, t->run.dir);
    return CX_OK;
}

/* Before anything is written: the prompts fit the tower, the init phrase is in the vocabulary. */
static cx_status check_prompt(rt_state *t, cx_err *err)
{
    cx_status st = build_prompt(t, err);
    if (st || !strcmp(t->cfg.prompt.init, "random"))
        return st;
    int32_t *ids = malloc(sizeof *ids * (size_t)t->prompt.T);
    if (!ids)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    st = init_phrase_ids(t, ids, err);
    free(ids);
    return st;
}

/* N(0, 0.02), or every set from the token embeddings of prompt.init's words. */
static cx_status init_context(rt_state *t, cx_err *err)
{
    float *ctx = cx_param_value(&t->p, t->i_ctx);
    size_t n = cx_prompt_ctx_floats(&t->prompt), W = (size_t)t->prompt.W;
    int M = t->prompt.M;
    if (!strcmp(t->cfg.prompt.init, "random")) {
        cx_rng r;
        cx_rng_seed(&r, (uint64_t)t->cfg.seed, cx_rng_stream(TAG_RETRAIN_INIT, 2, 0));
        for (size_t i = 0; i < n; i++)
            ctx[i] = (float)(0.02 * cx_rng_normal(&r));
        return CX_OK;
    }
    int32_t *ids = malloc(sizeof *ids * (size_t)t->prompt.T);
    if (!ids)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_status st = init_phrase_ids(t, ids, err);
    if (!st) {
        const float *table = cx_param_value(&t->run.model.params, t->run.model.text_seq.embed);
        for (size_t s = 0; s < n / ((size_t)M * W); s++)
            for (int i = 0; i < M; i++)
                memcpy(ctx + (s * (size_t)M + (size_t)i) * W, table + (size_t)ids[1 + i] * W,
                       sizeof(float) * W);
    }
    free(ids);
    return st;
}

/* The unit class embeddings of the current context, and logits z (B, E) = s xn emb^T of the
 * unit features xn of xb. */
static const float *prompt_logits(rt_state *t, int B)
{
    for (int i = 0; i < B; i++)
        cx_eval_normalize_row(t->xn + (size_t)i * t->D, t->xb + (size_t)i * t->D, t->D);
    const float *emb = cx_prompt_forward(&t->prompt, &t->run.model.params,
                                         cx_param_value(&t->p, t->i_ctx));
    cx_sgemm(0, 1, B, t->E, t->D, t->pscale, t->xn, t->D, emb, t->D, 0.0f, t->z, t->E);
    return t->z;
}

static cx_status build(rt_state *t, cx_err *err)
{
    int E = t->E, D = t->D;
    cx_status st;
    int m = (int)t->cfg.method;
    cx_params_init(&t->p);
    t->i_s = t->i_gw = t->i_gb = t->i_al = t->i_be = t->i_a = t->i_b = -1;
    int cosine = t->run.cfg.objective == CX_CFG_OBJECTIVE_SL && t->run.cfg.head != CX_CFG_HEAD_LINEAR;
#define DECL(idx, name, n)                                                                         \
    do {                                                                                           \
        if ((idx = cx_params_declare(&t->p, name, 1, (int[]){n}, CX_PARAM_NO_DECAY, err)) < 0)     \
            return cx_params_failure(idx);                                                         \
    } while (0)
    switch (m) {
    case CX_RETRAIN_CRT:
        if ((st = cx_head_declare(&t->head, &t->p, "crt", cosine ? CX_HEAD_COSINE : CX_HEAD_LINEAR,
                                  E, D, 0, 0, err)))
            return st;
        t->has_head = 1;
        break;
    case CX_RETRAIN_LWS:
        DECL(t->i_s, "lws.scale", E);
        break;
    case CX_RETRAIN_DISALIGN:
        DECL(t->i_gw, "disalign.gate.weight", D);
        DECL(t->i_gb, "disalign.gate.bias", 1);
        DECL(t->i_al, "disalign.alpha", E);
        DECL(t->i_be, "disalign.beta", E);
        break;
    case CX_RETRAIN_MARC:
        DECL(t->i_a, "marc.a", E);
        DECL(t->i_b, "marc.b", E);
        break;
    case CX_RETRAIN_DECODER:
        if (t->has_tok) {
            if ((st = cx_tokdec_declare(&t->dec, &t->p, "decoder", t->tok_T, t->tok_W,
                                        (int)t->cfg.decoder.depth, (int)t->cfg.decoder.heads,
                                        4 * t->tok_W, CX_TOKDEC_POOL_MEAN, E, err)))
                return st;
            t->has_dec = 1;
            break;
        }
        if ((int)t->cfg.decoder.hidden.n > CX_RETRAIN_MAX_HIDDEN)
            return cx_fail(err, CX_EUSAGE, "decoder.hidden: at most %d layers",
                           CX_RETRAIN_MAX_HIDDEN);
        if ((st = cx_mlp_declare(&t->mlp, &t->p, "decoder", D, t->cfg.decoder.hidden.v,
                                 (int)t->cfg.decoder.hidden.n, E, CX_ACT_RELU, CX_NORM_NONE, 0,
                                 err)))
            return st;
        t->has_mlp = 1;
        break;
    case CX_RETRAIN_CFR: {
        /* The image projection: the tower's last linear layer from its values, else D to D
         * from the identity; plain SGD, no optimiser state. */
        int Di = t->H ? t->H : D;
        t->i_pw = cx_params_declare(&t->p, "cfr.proj.weight", 2, (int[]){D, Di}, 0, err);
        if (t->i_pw < 0)
            return cx_params_failure(t->i_pw);
        DECL(t->i_pb, "cfr.proj.bias", D);
        if ((st = cx_params_alloc(&t->p, 0, err)))
            return st;
        float *w = cx_param_value(&t->p, t->i_pw), *bb = cx_param_value(&t->p, t->i_pb);
        if (t->H) {
            const cx_params *rp = &t->run.model.params;
            memcpy(w, cx_param_value(rp, t->tw_w), sizeof(float) * (size_t)D * Di);
            memcpy(bb, cx_param_value(rp, t->tw_b), sizeof(float) * (size_t)D);
            return CX_OK;
        }
        memset(w, 0, sizeof(float) * (size_t)D * D);
        memset(bb, 0, sizeof(float) * (size_t)D);
        for (int d = 0; d < D; d++)
            w[(size_t)d * D + d] = 1.0f;
        return CX_OK;
    }
    case CX_RETRAIN_PROMPT: /* the prompts are built (and checked) before the folder is */
        if ((t->i_ctx = cx_params_declare(&t->p, "prompt.ctx", 2,
                                          (int[]){(int)(cx_prompt_ctx_floats(&t->prompt) /
                                                        (size_t)t->prompt.W),
                                                  t->prompt.W},
                                          0, err)) < 0)
            return cx_params_failure(t->i_ctx);
        break;
    default:
        return CX_OK;
    }
#undef DECL
    cx_optim_config oc;
    memset(&oc, 0, sizeof oc);
    oc.kind = t->cfg.optim.name == 1 ? CX_OPTIM_ADAMW : CX_OPTIM_SGD;
    oc.wd = t->cfg.optim.wd;
    oc.beta1 = 0.9;
    oc.beta2 = 0.999;
    oc.eps = 1e-8;
    oc.momentum = t->cfg.optim.momentum;
    if ((st = cx_params_alloc(&t->p, cx_optim_slots(&oc), err)) ||
        (st = cx_optim_init(&t->opt, &oc, &t->p, err)))
        return st;
    t->opt_init = 1;
    /* Initial values: a fresh classifier for cRT; identity rebalancing otherwise. */
    if (m == CX_RETRAIN_CRT) {
        cx_rng r;
        cx_rng_seed(&r, (uint64_t)t->cfg.seed, cx_rng_stream(TAG_RETRAIN_INIT, 0, 0));
        cx_head_init_params(&t->head, &t->p, &r, t->run.cfg.logit_scale.init);
    } else if (m == CX_RETRAIN_DECODER) {
        cx_rng r;
        cx_rng_seed(&r, (uint64_t)t->cfg.seed, cx_rng_stream(TAG_RETRAIN_INIT, 1, 0));
        if (t->has_dec)
            cx_tokdec_init_params(&t->dec, &t->p, &r);
        else
            cx_mlp_init_params(&t->mlp, &t->p, &r);
    } else if (m == CX_RETRAIN_PROMPT) {
        if ((st = init_context(t, err)))
            return st;
    } else if (m == CX_RETRAIN_LWS) {
        for (int c = 0; c < E; c++)
            cx_param_value(&t->p, t->i_s)[c] = 1.0f;
    } else if (m == CX_RETRAIN_DISALIGN) {
        for (int c = 0; c < E; c++)
            cx_param_value(&t->p, t->i_al)[c] = 1.0f;
    } else if (m == CX_RETRAIN_MARC) {
        for (int c = 0; c < E; c++)
            cx_param_value(&t->p, t->i_a)[c] = 1.0f;
    }
    int64_t B = t->cfg.batch < (int64_t)t->n ? t->cfg.batch : (int64_t)t->n;
    t->B = (int)B;
    if (t->has_head && (st = cx_head_alloc(&t->head, t->B, err)))
        return st;
    if (t->has_mlp && (st = cx_mlp_alloc(&t->mlp, t->B, err)))
        return st;
    if (t->has_dec && (st = cx_tokdec_alloc(&t->dec, t->B, err)))
        return st;
    cx_loss_config lc;
    memset(&lc, 0, sizeof lc);
    /* The decoder trains with any stage-1 loss (the config's enum is in cx_loss_kind's order). */
    static const cx_loss_kind losses[] = {CX_LOSS_CE,  CX_LOSS_FOCAL,  CX_LOSS_BALANCED_SOFTMAX,
                                          CX_LOSS_LOGIT_ADJUST, CX_LOSS_CBW, CX_LOSS_EFFNUM,
                                          CX_LOSS_GRW, CX_LOSS_LDAM,   CX_LOSS_LADE};
    lc.kind = (m == CX_RETRAIN_DISALIGN || m == CX_RETRAIN_MARC) ? CX_LOSS_GRW
              : m == CX_RETRAIN_DECODER || m == CX_RETRAIN_PROMPT ? losses[t->cfg.loss]
                                                                  : CX_LOSS_CE;
    lc.focal_gamma = 2;
    lc.la_tau = 1;
    lc.effnum_beta = 0.999;
    lc.grw_p = t->cfg.grw.p;
    lc.ldam_max_margin = 0.5;
    lc.lade_lambda = 0.1;
    cx_sampler_kind sk = (m == CX_RETRAIN_CRT || m == CX_RETRAIN_LWS) ? CX_SAMPLER_CLASS_BALANCED
                                                                      : CX_SAMPLER_SHUFFLE;
    if (m == CX_RETRAIN_DECODER || m == CX_RETRAIN_PROMPT)
        sk = t->cfg.sampler == CX_CFG_SAMPLER_CLASS_BALANCED ? CX_SAMPLER_CLASS_BALANCED
             : t->cfg.sampler == CX_CFG_SAMPLER_SQRT         ? CX_SAMPLER_SQRT
                                                             : CX_SAMPLER_SHUFFLE;
    if ((st = cx_loss_create(&t->loss, &lc, t->counts, E, t->B, err)) ||
        (st = cx_sampler_create(&t->sampler, sk, t->y, t->n, E, (uint64_t)t->cfg.seed, err)))
        return st;
    size_t Bz = (size_t)t->B;
    t->xb = malloc(sizeof(float) * Bz * D);
    t->xn = malloc(sizeof(float) * Bz * D);
    t->z = malloc(sizeof(float) * Bz * E);
    t->out = malloc(sizeof(float) * Bz * E);
    t->dout = malloc(sizeof(float) * Bz * E);
    t->gate = malloc(sizeof(float) * Bz);
    t->yb = malloc(sizeof(int32_t) * Bz);
    t->order = malloc(sizeof(uint32_t) * t->n);
    if (m == CX_RETRAIN_PROMPT)
        t->demb = malloc(sizeof(float) * (size_t)E * D);
    if (!t->xb || !t->xn || !t->z || !t->out || !t->dout || !t->gate || !t->yb || !t->order ||
        (m == CX_RETRAIN_PROMPT && !t->demb))
        return cx_fail(err, CX_ENOMEM, "out of memory for the retrain buffers");
    return CX_OK;
}

/* z (B, E) = the run's head on xb (B, D): scale * x^ W^T + b. */
static void base_logits(rt_state *t, int B)
{
    const cx_eval_classifier *c = &t->base;
    const float *x = t->xb;
    if (c->normalize) {
        for (int i = 0; i < B; i++)
            cx_eval_normalize_row(t->xn + (size_t)i * t->D, t->xb + (size_t)i * t->D, t->D);
        x = t->xn;
    }
    cx_sgemm(0, 1, B, t->E, t->D, c->scale, x, t->D, c->w, t->D, 0.0f, t->z, t->E);
    if (c->b)
        for (int i = 0; i < B; i++)
            for (int k = 0; k < t->E; k++)
                t->z[(size_t)i * t->E + k] += c->b[k];
}

/* One step on rows order[lo .. lo + B): forward, loss, backward. Returns the loss. */
static double step(rt_state *t, size_t lo, int B, int epoch)
{
    int E = t->E, D = t->D;
    for (int i = 0; i < B; i++) {
        uint32_t r = t->order[lo + (size_t)i];
        memcpy(t->xb + (size_t)i * D, t->x + (size_t)r * D, sizeof(float) * (size_t)D);
        t->yb[i] = t->y[r];
    }
    cx_params *p = &t->p;
    const float *logits;
    switch ((int)t->cfg.method) {
    case CX_RETRAIN_CRT:
        logits = cx_head_forward(&t->head, p, t->xb, B, NULL, E);
        break;
    case CX_RETRAIN_DECODER:
        logits = t->has_dec ? cx_tokdec_forward(&t->dec, p, t->xb, B)
                            : cx_mlp_forward(&t->mlp, p, t->xb, B);
        break;
    case CX_RETRAIN_PROMPT:
        logits = prompt_logits(t, B);
        break;
    case CX_RETRAIN_LWS:
        base_logits(t, B);
        cx_lws_forward(t->z, cx_param_value(p, t->i_s), B, E, t->out);
        logits = t->out;
        break;
    case CX_RETRAIN_DISALIGN:
        base_logits(t, B);
        cx_disalign_forward(t->z, t->xb, cx_param_value(p, t->i_gw), cx_param_value(p, t->i_gb),
                            cx_param_value(p, t->i_al), cx_param_value(p, t->i_be), B, E, D,
                            t->gate, t->out);
        logits = t->out;
        break;
    default: /* MARC */
        base_logits(t, B);
        cx_marc_forward(t->z, t->wnorm, cx_param_value(p, t->i_a), cx_param_value(p, t->i_b), B,
                        E, t->out);
        logits = t->out;
        break;
    }
    double l = cx_loss_compute(t->loss, logits, t->yb, NULL, B, E, 1.0f, epoch, t->dout);
    switch ((int)t->cfg.method) {
    case CX_RETRAIN_CRT:
        cx_head_backward(&t->head, p, t->xb, t->dout, NULL, B);
        break;
    case CX_RETRAIN_DECODER:
        if (t->has_dec)
            cx_tokdec_backward(&t->dec, p, t->dout);
        else
            cx_mlp_backward(&t->mlp, p, t->xb, t->dout, NULL, B);
        break;
    case CX_RETRAIN_PROMPT:
        /* d(unit class embeddings) = s dz^T xn; the tower's own gradients are discarded. */
        cx_sgemm(1, 0, E, D, B, t->pscale, t->dout, E, t->xn, D, 0.0f, t->demb, D);
        cx_prompt_backward(&t->prompt, &t->run.model.params, t->demb,
                           cx_param_grad(p, t->i_ctx));
        cx_params_zero_grad(&t->run.model.params);
        break;
    case CX_RETRAIN_LWS:
        cx_lws_backward(t->z, t->dout, B, E, cx_param_grad(p, t->i_s));
        break;
    case CX_RETRAIN_DISALIGN:
        cx_disalign_backward(t->z, t->xb, cx_param_value(p, t->i_al), cx_param_value(p, t->i_be),
                             t->gate, t->dout, B, E, D, cx_param_grad(p, t->i_gw),
                             cx_param_grad(p, t->i_gb), cx_param_grad(p, t->i_al),
                             cx_param_grad(p, t->i_be));
        break;
    default:
        cx_marc_backward(t->z, t->wnorm, t->dout, B, E, cx_param_grad(p, t->i_a),
                         cx_param_grad(p, t->i_b));
        break;
    }
    return l;
}

/* ---- the retrained classifier in linear form ---------------------------------------------- */

static cx_status effective(rt_state *t, cx_retrain_clf *r, cx_err *err)
{
    memset(r, 0, sizeof *r);
    int E = t->E, D = t->D, m = (int)t->cfg.method;
    const cx_params *p = &t->p;
    const cx_eval_classifier *bc = &t->base;
    r->C = E;
    r->D = D;
    r->method = m;
    r->tau = m == CX_RETRAIN_TAU_NORM ? t->tau : NAN;
    r->gated = m == CX_RETRAIN_DISALIGN;
    if (m == CX_RETRAIN_DFR) {
        if (!(r->w = malloc(sizeof(float) * (size_t)E * D)) ||
            !(r->b = malloc(sizeof(float) * (size_t)E)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(r->w, t->dfr.w, sizeof(float) * (size_t)E * D);
        memcpy(r->b, t->dfr.b, sizeof(float) * (size_t)E);
        r->normalize = t->dfr.normalize;
        r->scale = t->dfr.scale;
        return CX_OK;
    }
    if (m == CX_RETRAIN_CFR) {
        /* RUN's classifier behind the projection of the best epoch. */
        if (!(r->w = malloc(sizeof(float) * (size_t)E * D)) ||
            !(r->b = calloc((size_t)E, sizeof(float))) ||
            !(r->proj_w = malloc(sizeof(float) * (size_t)D * (t->H ? t->H : D))) ||
            !(r->proj_b = malloc(sizeof(float) * (size_t)D)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(r->w, bc->w, sizeof(float) * (size_t)E * D);
        if (bc->b)
            memcpy(r->b, bc->b, sizeof(float) * (size_t)E);
        r->proj_in = t->H ? t->H : D;
        r->proj_tower = t->H != 0;
        memcpy(r->proj_w, t->best_w, sizeof(float) * (size_t)D * r->proj_in);
        memcpy(r->proj_b, t->best_b, sizeof(float) * (size_t)D);
        r->normalize = bc->normalize;
        r->scale = bc->scale;
        return CX_OK;
    }
    if (m == CX_RETRAIN_PROMPT) {
        /* The class embeddings of the context, cached: eval needs no text tower pass. */
        const float *emb = cx_prompt_forward(&t->prompt, &t->run.model.params,
                                             cx_param_value(p, t->i_ctx));
        if (!(r->w = malloc(sizeof(float) * (size_t)E * D)) ||
            !(r->b = calloc((size_t)E, sizeof(float))))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(r->w, emb, sizeof(float) * (size_t)E * D);
        r->normalize = 1;
        r->scale = t->pscale;
        return CX_OK;
    }
    if (m == CX_RETRAIN_DECODER && t->has_dec) {
        /* The head over the pooled tokens; the blocks are the checkpoint's param.decoder.*. */
        int W = t->tok_W;
        r->D = W;
        r->tokdec_depth = (int)t->cfg.decoder.depth;
        r->tokdec_heads = (int)t->cfg.decoder.heads;
        r->tokdec_T = t->tok_T;
        if (!(r->w = malloc(sizeof(float) * (size_t)E * W)) || !(r->b = malloc(sizeof(float) * (size_t)E)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(r->w, cx_param_value(p, t->dec.w), sizeof(float) * (size_t)E * W);
        memcpy(r->b, cx_param_value(p, t->dec.b), sizeof(float) * (size_t)E);
        r->scale = 1.0f;
        return CX_OK;
    }
    if (m == CX_RETRAIN_DECODER) {
        const cx_mlp *ml = &t->mlp;
        r->nhidden = ml->nlayers - 1;
        for (int i = 0; i <= r->nhidden; i++)
            r->hdims[i] = ml->dims[i];
        for (int i = 0; i < r->nhidden; i++) {
            size_t wn = (size_t)ml->dims[i + 1] * ml->dims[i];
            if (!(r->hw[i] = malloc(sizeof(float) * wn)) ||
                !(r->hb[i] = malloc(sizeof(float) * (size_t)ml->dims[i + 1])))
                return cx_fail(err, CX_ENOMEM, "out of memory");
            memcpy(r->hw[i], cx_param_value(p, ml->w[i]), sizeof(float) * wn);
            memcpy(r->hb[i], cx_param_value(p, ml->b[i]), sizeof(float) * (size_t)ml->dims[i + 1]);
        }
        int L = ml->nlayers - 1, H = ml->dims[L];
        if (!(r->w = malloc(sizeof(float) * (size_t)E * H)) || !(r->b = malloc(sizeof(float) * (size_t)E)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(r->w, cx_param_value(p, ml->w[L]), sizeof(float) * (size_t)E * H);
        memcpy(r->b, cx_param_value(p, ml->b[L]), sizeof(float) * (size_t)E);
        r->normalize = 0;
        r->scale = 1.0f;
        return CX_OK;
    }
    int Dx = r->gated ? 2 * D + 1 : D;
    r->w = calloc((size_t)E * Dx, sizeof *r->w);
    r->b = calloc((size_t)E, sizeof *r->b);
    if (r->gated)
        r->gate_w = malloc(sizeof *r->gate_w * (size_t)D);
    if (!r->w || !r->b || (r->gated && !r->gate_w))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    if (m == CX_RETRAIN_CRT) {
        const float *w = cx_param_value(p, t->head.w);
        r->normalize = t->head.kind == CX_HEAD_COSINE;
        r->scale = r->normalize ? expf(cx_param_value(p, t->head.scale)[0]) : 1.0f;
        for (int c = 0; c < E; c++) {
            if (r->normalize)
                cx_eval_normalize_row(r->w + (size_t)c * D, w + (size_t)c * D, D);
            else
                memcpy(r->w + (size_t)c * D, w + (size_t)c * D, sizeof(float) * (size_t)D);
            r->b[c] = r->normalize ? 0.0f : cx_param_value(p, t->head.b)[c];
        }
        return CX_OK;
    }
    r->normalize = bc->normalize;
    r->scale = bc->scale;
    for (int c = 0; c < E; c++) {
        const float *w = bc->w + (size_t)c * D;
        float bb = bc->b ? bc->b[c] : 0.0f;
        float *o = r->w + (size_t)c * Dx;
        if (m == CX_RETRAIN_LWS) {
            float s = cx_param_value(p, t->i_s)[c];
            for (int d = 0; d < D; d++)
                o[d] = s * w[d];
            r->b[c] = s * bb;
        } else if (m == CX_RETRAIN_MARC) {
            float a = cx_param_value(p, t->i_a)[c], bm = cx_param_value(p, t->i_b)[c];
            for (int d = 0; d < D; d++)
                o[d] = a * w[d];
            r->b[c] = a * bb + bm * t->wnorm[c];
        } else if (m == CX_RETRAIN_DISALIGN) {
            float al = cx_param_value(p, t->i_al)[c], be = cx_param_value(p, t->i_be)[c];
            for (int d = 0; d < D; d++) {
                o[d] = bc->scale * w[d];
                o[D + d] = al * bc->scale * w[d];
            }
            o[2 * D] = al * bb + be;
            r->b[c] = bb;
        } else { /* tau-norm: the chosen tau on a copy of the head */
            memcpy(o, w, sizeof(float) * (size_t)D);
            r->b[c] = bb;
        }
    }
    if (m == CX_RETRAIN_TAU_NORM) {
        cx_eval_classifier c = {0};
        c.kind = CX_CLF_LINEAR;
        c.C = E;
        c.D = D;
        c.w = r->w;
        c.scale = r->scale;
        cx_status st = cx_posthoc_apply(&c, CX_POSTHOC_TAU_NORM, t->tau, t->counts, err);
        if (st)
            return st;
    }
    if (r->gated) {
        memcpy(r->gate_w, cx_param_value(p, t->i_gw), sizeof(float) * (size_t)D);
        r->gate_b = cx_param_value(p, t->i_gb)[0];
        r->scale = 1.0f;
    }
    return CX_OK;
}

static char param_key[CX_PARAM_NAME_MAX + 16];
static const char *pkey(const char *what, int slot, const char *name)
{
    if (slot < 0)
        snprintf(param_key, sizeof param_key, "%s.%s", what, name);
    else
        snprintf(param_key, sizeof param_key, "%s%d.%s", what, slot, name);
    return param_key;
}

static cx_status write_ckpt(rt_state *t, cx_err *err)
{
    cx_retrain_clf r;
    cx_status st = effective(t, &r, err);
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    if (st)
        goto fail;
    int64_t ws[2] = {r.C, r.gated ? 2 * r.D + 1 : r.nhidden ? r.hdims[r.nhidden] : r.D};
    int64_t bs[1] = {r.C}, gs[1] = {r.D};
    if ((st = cx_ckpt_add_i64(&ck, "retrain.method", (int64_t)t->cfg.method, err)) ||
        (st = cx_ckpt_add_i64(&ck, "retrain.epochs_done", t->epochs_done, err)) ||
        (st = cx_ckpt_add_i64(&ck, "retrain.epochs", trained((int)t->cfg.method) ? total_epochs(t) : 0, err)) ||
        (st = cx_ckpt_add_i64(&ck, "optim.step", t->opt_init ? t->opt.step : 0, err)) ||
        (st = cx_ckpt_add_i64(&ck, "val.source", (int64_t)t->vsrc, err)) ||
        (st = cx_ckpt_add_f64(&ck, "clf.tau", r.tau, err)) ||
        (st = cx_ckpt_add_f64(&ck, "clf.scale", r.scale, err)) ||
        (st = cx_ckpt_add_i64(&ck, "clf.normalize", r.normalize, err)) ||
        (st = cx_ckpt_add_i64(&ck, "clf.gated", r.gated, err)) ||
        (st = cx_ckpt_add(&ck, "clf.w", CX_CKPT_F32, 2, ws, r.w, err)) ||
        (st = cx_ckpt_add(&ck, "clf.b", CX_CKPT_F32, 1, bs, r.b, err)) ||
        (r.gated && ((st = cx_ckpt_add(&ck, "clf.gate_w", CX_CKPT_F32, 1, gs, r.gate_w, err)) ||
                     (st = cx_ckpt_add_f64(&ck, "clf.gate_b", r.gate_b, err)))) ||
        (r.nhidden && (st = cx_ckpt_add_i64(&ck, "clf.decoder", r.nhidden, err))) ||
        (t->cfg.method == CX_RETRAIN_DFR &&
         (st = cx_ckpt_add_f64(&ck, "dfr.lambda", t->dinfo.lambda, err))) ||
        (r.proj_w &&
         ((st = cx_ckpt_add(&ck, "clf.proj_w", CX_CKPT_F32, 2, (int64_t[]){r.D, r.proj_in},
                            r.proj_w, err)) ||
          (r.proj_tower && (st = cx_ckpt_add_i64(&ck, "clf.proj_tower", 1, err))) ||
          (st = cx_ckpt_add(&ck, "clf.proj_b", CX_CKPT_F32, 1, gs, r.proj_b, err)) ||
          (st = cx_ckpt_add_i64(&ck, "cfr.best_epoch", t->best_epoch, err)) ||
          (st = cx_ckpt_add_f64(&ck, "cfr.best_acc", t->best_acc, err)))) ||
        (r.tokdec_depth && ((st = cx_ckpt_add_i64(&ck, "clf.tokdec.depth", r.tokdec_depth, err)) ||
                            (st = cx_ckpt_add_i64(&ck, "clf.tokdec.heads", r.tokdec_heads, err)) ||
                            (st = cx_ckpt_add_i64(&ck, "clf.tokdec.tokens", r.tokdec_T, err)))))
        goto fail;
    for (int i = 0; i < r.nhidden; i++) {
        char name[32];
        int64_t hs[2] = {r.hdims[i + 1], r.hdims[i]}, hbs[1] = {r.hdims[i + 1]};
        snprintf(name, sizeof name, "clf.dec_w%d", i);
        if ((st = cx_ckpt_add(&ck, name, CX_CKPT_F32, 2, hs, r.hw[i], err)))
            goto fail;
        snprintf(name, sizeof name, "clf.dec_b%d", i);
        if ((st = cx_ckpt_add(&ck, name, CX_CKPT_F32, 1, hbs, r.hb[i], err)))
            goto fail;
    }
    for (int i = 0; i < t->p.count; i++) {
        const cx_param_info *pi = &t->p.info[i];
        int64_t sh[1] = {(int64_t)pi->size};
        if ((st = cx_ckpt_add(&ck, pkey("param", -1, pi->name), CX_CKPT_F32, 1, sh,
                              cx_param_value(&t->p, i), err)))
            goto fail;
        for (int s = 0; s < t->p.nslots; s++)
            if ((st = cx_ckpt_add(&ck, pkey("state", s, pi->name), CX_CKPT_F32, 1, sh,
                                  cx_param_state(&t->p, s, i), err)))
                goto fail;
    }
    st = cx_ckpt_write(&ck, t->ckpt_path, err);
fail:
    cx_ckpt_free(&ck);
    cx_retrain_clf_free(&r);
    return st;
}

static cx_status read_state(rt_state *t, cx_err *err)
{
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    int64_t m = 0, stepv = 0;
    cx_status st = cx_ckpt_read(t->ckpt_path, &ck, err);
    if (st)
        goto fail;
    if ((st = cx_ckpt_get_i64(&ck, t->ckpt_path, "retrain.method", &m, err)) ||
        (st = cx_ckpt_get_i64(&ck, t->ckpt_path, "retrain.epochs_done", &t->epochs_done, err)) ||
        (st = cx_ckpt_get_i64(&ck, t->ckpt_path, "optim.step", &stepv, err)))
        goto fail;
    if (m != (int64_t)t->cfg.method) {
        st = cx_fail(err, CX_EDATA, "%s: a checkpoint of another method than config.yaml's",
                     t->ckpt_path);
        goto fail;
    }
    for (int i = 0; i < t->p.count; i++) {
        const cx_param_info *pi = &t->p.info[i];
        if ((st = cx_ckpt_get_f32(&ck, t->ckpt_path, pkey("param", -1, pi->name),
                                  cx_param_value(&t->p, i), pi->size, err)))
            goto fail;
        for (int s = 0; s < t->p.nslots; s++)
            if ((st = cx_ckpt_get_f32(&ck, t->ckpt_path, pkey("state", s, pi->name),
                                      cx_param_state(&t->p, s, i), pi->size, err)))
                goto fail;
    }
    if (t->opt_init)
        t->opt.step = stepv;
    if (t->cfg.method == CX_RETRAIN_CFR &&
        ((st = cx_ckpt_get_f32(&ck, t->ckpt_path, "clf.proj_w", t->best_w,
                               (size_t)t->D * (t->H ? t->H : t->D), err)) ||
         (st = cx_ckpt_get_f32(&ck, t->ckpt_path, "clf.proj_b", t->best_b, (size_t)t->D, err)) ||
         (st = cx_ckpt_get_i64(&ck, t->ckpt_path, "cfr.best_epoch", &t->best_epoch, err)) ||
         (st = cx_ckpt_get_f64(&ck, t->ckpt_path, "cfr.best_acc", &t->best_acc, err))))
        goto fail;
fail:
    cx_ckpt_free(&ck);
    return st;
}

/* log.jsonl: the lines of the epochs the checkpoint holds, then new ones. */
static cx_status read_log(rt_state *t, cx_err *err)
{
    FILE *fp = fopen(t->log_path, "r");
    t->log_lines = calloc((size_t)(t->epochs_done > 0 ? t->epochs_done : 1), sizeof *t->log_lines);
    if (!t->log_lines) {
        if (fp)
            fclose(fp);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    char buf[1024];
    while (fp && t->nlog < t->epochs_done && fgets(buf, sizeof buf, fp)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (!(t->log_lines[t->nlog++] = dup_str(buf))) {
            fclose(fp);
            return cx_fail(err, CX_ENOMEM, "out of memory");
        }
    }
    if (fp)
        fclose(fp);
    return CX_OK;
}

static cx_status append_log(rt_state *t, const char *line, cx_err *err)
{
    char **lines = realloc(t->log_lines, sizeof *lines * (size_t)(t->nlog + 1));
    if (!lines)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    t->log_lines = lines;
    if (!(lines[t->nlog] = dup_str(line)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    t->nlog++;
    cx_afile f;
    cx_status st = cx_afile_open(&f, t->log_path, err);
    if (st)
        return st;
    for (int64_t i = 0; i < t->nlog; i++)
        fprintf(f.fp, "%s\n", t->log_lines[i]);
    return cx_afile_commit(&f, err);
}

/* RUN2/dfr.json: the chosen lambda and the search behind it. */
static cx_status write_dfr_json(rt_state *t, cx_err *err)
{
    char *path = cx_run_path(t->dir, "dfr.json");
    if (!path)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    free(path);
    if (st)
        return st;
    const cx_dfr_info *d = &t->dinfo;
    fprintf(f.fp,
            "{\"lambda\": %.17g, \"worst_%s_acc\": %.17g, \"cells\": \"%s\", \"draws\": %lld, "
            "\"per_cell\": %d, \"n_first\": %d, \"n_second\": %d, \"val_source\": \"%s\",\n "
            "\"grid\": [",
            d->lambda, d->by_group ? "group" : "class", d->sel_acc,
            d->by_group ? "groups" : "classes", (long long)t->cfg.dfr.draws, d->per_cell,
            d->n_first, d->n_second, cx_val_source_name(t->vsrc));
    for (int g = 0; g < d->grid; g++)
        fprintf(f.fp, "%s{\"lambda\": %.17g, \"acc\": %.17g}", g ? ", " : "",
                d->grid_lambda[g], d->grid_acc[g]);
    fprintf(f.fp, "]}\n");
    return cx_afile_commit(&f, err);
}

/* ---- cfr: the calibration set, the epochs, the selection ----------------------------------- */

/* Before anything is written: worst-group selection needs groups in the validation split. */
static cx_status check_select(const rt_state *t, cx_err *err)
{
    if (t->cfg.method != CX_RETRAIN_CFR || t->cfg.cfr.select != CX_RETRAIN_SELECT_WORST_GROUP ||
        t->vg)
        return CX_OK;
    if (t->vsrc != CX_VAL_SPLIT)
        return cx_fail(err, CX_EUSAGE,
                       "cfr.select: worst-group needs a val split with groups; %s names no val "
                       "split (validation rows held out of training have no groups)",
                       t->cfg.data);
    return cx_fail(err, CX_EUSAGE,
                   "cfr.select: worst-group needs a val split with groups; the val split of %s "
                   "has none", t->cfg.data);
}

/* The worst-class (worst-group) validation accuracy of RUN's classifier behind x W^T + b. */
static cx_status cfr_val_acc(rt_state *t, const float *W, const float *b, double *acc,
                             cx_err *err)
{
    int D = t->D, Di = t->H ? t->H : D;
    size_t nv = t->nv;
    float *zp = malloc(sizeof *zp * (nv ? nv : 1) * (size_t)D);
    if (!zp)
        return cx_fail(err, CX_ENOMEM, "out of memory for %zu validation features", nv);
    /* As cx_retrain_eval_setup projects at eval time. */
    cx_sgemm(0, 1, (int)nv, D, Di, 1.0f, t->H ? t->hvx : t->vx, Di, W, Di, 0.0f, zp, D);
    for (size_t i = 0; i < nv; i++)
        for (int d = 0; d < D; d++)
            zp[i * (size_t)D + d] += b[d];
    cx_eval_pred pred;
    cx_status st = cx_eval_score(&t->base, zp, t->vy, (int)nv, 0, &pred, err);
    free(zp);
    if (st)
        return cx_err_prefix(err, st, "%s: validation", t->feat_path);
    int by_group = t->cfg.cfr.select == CX_RETRAIN_SELECT_WORST_GROUP;
    *acc = cx_cfr_worst_acc(pred.pred, t->vy, by_group ? t->vg : NULL, nv, t->E, t->G);
    cx_eval_pred_free(&pred);
    return CX_OK;
}

/* RUN2/cfr.json: the calibration set's size and the epoch selected. */
static cx_status write_cfr_json(rt_state *t, cx_err *err)
{
    char *path = cx_run_path(t->dir, "cfr.json");
    if (!path)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_afile f;
    cx_status st = cx_afile_open(&f, path, err);
    free(path);
    if (st)
        return st;
    const char *sel = t->cfg.cfr.select == CX_RETRAIN_SELECT_WORST_GROUP ? "group" : "class";
    fprintf(f.fp,
            "{\"calibration\": %lld, \"pool\": %lld, \"train\": %zu, \"select\": \"worst-%s\", "
            "\"best_epoch\": %lld, \"val_worst_%s_acc\": %.17g, \"start_acc\": %.17g, "
            "\"epochs_done\": %lld, "
            "\"val_source\": \"%s\", \"n_val\": %zu, \"projection\": \"%s\", "
            "\"projection_in\": %d}\n",
            (long long)t->cal.n_calib, (long long)t->cal.n_pool, t->n, sel,
            (long long)t->best_epoch, sel, t->best_acc, t->start_acc, (long long)t->epochs_done,
            cx_val_source_name(t->vsrc), t->nv, t->H ? "last-layer" : "identity",
            t->H ? t->H : t->D);
    return cx_afile_commit(&f, err);
}

/* The calibration set from RUN's own predictions, the frozen classifier, the identity as epoch
 * 0's candidate. */
static cx_status cfr_setup(rt_state *t, cx_err *err)
{
    int E = t->E, D = t->D;
    const cx_eval_classifier *c = &t->base;
    if (t->nv == 0)
        return cx_fail(err, CX_EDATA, "%s: no validation features", t->feat_path);
    if (c->kind != CX_CLF_LINEAR || c->C != E || c->D != D)
        return cx_fail(err, CX_EDATA, "%s: RUN's classifier is not linear on %d features",
                       t->run.dir, D);
    cx_eval_pred pred;
    cx_status st = cx_eval_score(c, t->x, t->y, (int)t->n, 0, &pred, err);
    if (st)
        return cx_err_prefix(err, st, "%s: training features", t->feat_path);
    st = cx_cfr_calib_build(&t->cal, t->x, t->y, pred.pred, (int64_t)t->n, E, D, err);
    cx_eval_pred_free(&pred);
    if (st)
        return st;
    if (t->cal.n_calib == 0)
        return cx_fail(err, CX_EDATA,
                       "%s: RUN classifies every training row right: CFR's calibration set "
                       "is empty", t->run.dir);
    t->cwc = malloc(sizeof *t->cwc * (size_t)E * D);
    t->cbc = calloc((size_t)E, sizeof *t->cbc);
    int Di = t->H ? t->H : D;
    t->best_w = malloc(sizeof *t->best_w * (size_t)D * Di);
    t->best_b = malloc(sizeof *t->best_b * (size_t)D);
    if (!t->cwc || !t->cbc || !t->best_w || !t->best_b)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    for (size_t i = 0; i < (size_t)E * D; i++)
        t->cwc[i] = c->scale * c->w[i];
    if (c->b)
        memcpy(t->cbc, c->b, sizeof *t->cbc * (size_t)E);
    memcpy(t->best_w, cx_param_value(&t->p, t->i_pw), sizeof(float) * (size_t)D * Di);
    memcpy(t->best_b, cx_param_value(&t->p, t->i_pb), sizeof(float) * (size_t)D);
    t->best_epoch = 0;
    if ((st = cfr_val_acc(t, t->best_w, t->best_b, &t->best_acc, err)))
        return st;
    t->start_acc = t->best_acc;
    cx_cfr_opts o = {.Din = Di, .D = D, .C = E, .B = (int)t->cfg.batch, .P = (int)t->cfg.cfr.positives,
                     .K = (int)t->cfg.cfr.negatives, .tau = t->cfg.cfr.tau,
                     .lambda = t->cfg.cfr.lambda, .lr = t->cfg.cfr.lr,
                     .epochs = (int)t->cfg.cfr.epochs, .normalize = c->normalize,
                     .seed = (uint64_t)t->cfg.seed, .tsc = t->cfg.cfr.tsc,
                     .queue = (int)t->cfg.cfr.tsc_queue};
    return cx_cfr_trainer_init(&t->cfrt, &o, t->cal.n_calib, (int64_t)t->n, err);
}

static cx_status cfr_epochs(rt_state *t, const cx_retrain_hooks *hooks, cx_err *err)
{
    cx_status st;
    int D = t->D, Di = t->H ? t->H : D;
    int by_group = t->cfg.cfr.select == CX_RETRAIN_SELECT_WORST_GROUP;
    float *W = cx_param_value(&t->p, t->i_pw), *b = cx_param_value(&t->p, t->i_pb);
    for (int64_t e = t->epochs_done; e < t->cfg.cfr.epochs; e++) {
        double t0 = cx_clock_seconds(), loss = NAN, acc = NAN;
        if ((st = cx_cfr_epoch(&t->cfrt, t->H ? t->hx : t->x, t->x, t->y, &t->cal, t->cwc, t->cbc, W, b, (int)e,
                               &loss, err)) ||
            (st = cfr_val_acc(t, W, b, &acc, err)))
            return st;
        /* A later epoch replaces the kept one only when strictly better. */
        if (acc > t->best_acc) {
            t->best_acc = acc;
            t->best_epoch = e + 1;
            memcpy(t->best_w, W, sizeof(float) * (size_t)D * Di);
            memcpy(t->best_b, b, sizeof(float) * (size_t)D);
        }
        t->epochs_done = e + 1;
        t->last_loss = loss;
        double secs = cx_clock_seconds() - t0;
        char line[320];
        snprintf(line, sizeof line,
                 "{\"epoch\": %lld, \"loss\": %.9g, \"c\": %.9g, \"val_worst_%s_acc\": %.9g, "
                 "\"best_epoch\": %lld, \"seconds\": %.6f}",
                 (long long)t->epochs_done, loss, cx_cfr_weight((int)e, (int)t->cfg.cfr.epochs),
                 by_group ? "group" : "class", acc, (long long)t->best_epoch, secs);
        if ((st = append_log(t, line, err)) || (st = write_ckpt(t, err)))
            return st;
        if (hooks && hooks->on_epoch)
            hooks->on_epoch(hooks->ctx, t->epochs_done, t->cfg.cfr.epochs, loss, t->cfg.cfr.lr);
    }
    return write_cfr_json(t, err);
}

/* ---- the whole job ------------------------------------------------------------------------ */

static cx_status train_epochs(rt_state *t, const cx_schedule *sch, int64_t spe, int64_t gstep,
                              float theta_max, const cx_retrain_hooks *hooks, cx_err *err)
{
    cx_status st;
    for (int64_t e = t->epochs_done; e < t->cfg.epochs; e++) {
        double t0 = cx_clock_seconds(), sum = 0, lr = 0;
        cx_sampler_epoch(t->sampler, e, t->order);
        for (int64_t s = 0; s < spe; s++, gstep++) {
            size_t lo = (size_t)s * (size_t)t->B;
            int B = (int)((t->n - lo) < (size_t)t->B ? (t->n - lo) : (size_t)t->B);
            double l = step(t, lo, B, (int)e);
            if (!isfinite(l))
                return cx_fail(err, CX_EDIVERGED, "epoch %lld step %lld: the loss is %g",
                               (long long)e + 1, (long long)s + 1, l);
            sum += l;
            lr = cx_schedule_lr(sch, gstep);
            cx_optim_step(&t->opt, &t->p, lr);
            cx_params_zero_grad(&t->p);
            if (t->has_head && t->head.kind == CX_HEAD_COSINE) {
                float *th = cx_param_value(&t->p, t->head.scale);
                th[0] = th[0] < 0 ? 0 : th[0] > theta_max ? theta_max : th[0];
            }
        }
        t->epochs_done = e + 1;
        t->last_loss = sum / (double)spe;
        double secs = cx_clock_seconds() - t0;
        char line[256];
        snprintf(line, sizeof line,
                 "{\"epoch\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"seconds\": %.6f, "
                 "\"samples_per_s\": %.1f}",
                 (long long)t->epochs_done, t->last_loss, lr, secs,
                 secs > 0 ? (double)t->n / secs : 0.0);
        /* The log line first: a kill between the two leaves a log one epoch ahead of the
         * checkpoint, and a resume keeps only the lines of the epochs the checkpoint holds. */
        if ((st = append_log(t, line, err)) || (st = write_ckpt(t, err)))
            return st;
        if (hooks && hooks->on_epoch)
            hooks->on_epoch(hooks->ctx, t->epochs_done, t->cfg.epochs, t->last_loss, lr);
    }
    return CX_OK;
}

static cx_status run_job(rt_state *t, int resume, const cx_retrain_hooks *hooks,
                         cx_retrain_info *info, cx_err *err)
{
    cx_status st;
    t->max_memory = hooks ? hooks->max_memory : 0;
    if (cx_retrain_is_run(t->cfg.from))
        return cx_fail(err, CX_EUSAGE,
                       "from: %s is itself a retrained run; retrain from its stage-1 run",
                       t->cfg.from);
    if ((st = cx_run_open(t->cfg.from, CX_RUN_FEATURE_BATCH, &t->run, err))) {
        if (st == CX_EUSAGE)
            st = CX_EDATA;
        return cx_err_prefix(err, st, "from");
    }
    t->run_open = 1;
    if ((st = check_run(t, err)))
        return st;
    t->E = t->run.meta.num_eval_classes;
    t->D = t->run.model.spec.embed_dim;
    if (t->cfg.method == CX_RETRAIN_DECODER && t->cfg.decoder.type == CX_RETRAIN_DEC_TRANSFORMER &&
        cx_tokdec_tower_shape(&t->run.model, &t->tok_T, &t->tok_W)) {
        t->has_tok = 1;
        t->D = t->tok_T * t->tok_W; /* a cached row: one sample's tokens */
    }
    if (t->cfg.method == CX_RETRAIN_PROMPT && (st = check_prompt(t, err)))
        return st;
    if (t->cfg.method == CX_RETRAIN_CFR &&
        !cx_model_image_last_linear(&t->run.model, &t->H, &t->tw_w, &t->tw_b))
        t->H = 0;
    if (!resume) {
        if (!t->cfg.data && !(t->cfg.data = dup_str(t->run.cfg.data)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        if (!t->cfg.subset && t->run.cfg.subset && !(t->cfg.subset = dup_str(t->run.cfg.subset)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        if (!t->cfg.data)
            return cx_fail(err, CX_EUSAGE, "data: %s names no dataset; give one", t->cfg.from);
        /* Everything that can be refused is checked before the folder is written. */
        if ((st = compute_features(t, err)) || (st = check_select(t, err)) ||
            (st = cx_mkdir_p(t->dir, err)) ||
            (st = cx_retrain_config_write(&t->cfg, t->config_path, err)) ||
            (st = save_features(t, err)))
            return st;
    } else {
        if (!t->cfg.data)
            return cx_fail(err, CX_EDATA, "%s: names no dataset", t->config_path);
        if (cx_path_exists(t->feat_path))
            st = read_features(t, err);
        else if (!(st = compute_features(t, err)))
            st = save_features(t, err);
        if (st || (st = check_select(t, err)))
            return st;
    }
    if (hooks && hooks->on_val && uses_val(t))
        hooks->on_val(hooks->ctx, t->vsrc, t->nv);
    if (!(t->counts = calloc((size_t)t->E, sizeof *t->counts)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++)
        t->counts[t->y[i]]++;
    if (t->run.cfg.objective == CX_CFG_OBJECTIVE_SL) {
        if ((st = cx_run_classifier(&t->run, NULL, CX_EVAL_MODE_HEAD, NULL, NULL, 0, NULL,
                                    &t->base, NULL, err)))
            return st;
        if (!(t->wnorm = malloc(sizeof *t->wnorm * (size_t)t->E)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        const float *w = cx_param_value(&t->run.model.params, t->run.model.head.w);
        int De = t->run.model.spec.embed_dim; /* not t->D: a token row */
        for (int c = 0; c < t->E; c++) {
            double s = 0;
            for (int d = 0; d < De; d++)
                s += (double)w[(size_t)c * De + d] * w[(size_t)c * De + d];
            t->wnorm[c] = (float)sqrt(s);
        }
    }
    if (t->cfg.method == CX_RETRAIN_CFR && t->run.cfg.objective != CX_CFG_OBJECTIVE_SL) {
        /* A CLIP run's classifier is its zero-shot one, built as eval builds it. */
        cx_dataset cds;
        cx_load_options clo = {0};
        clo.parts = CX_LOAD_NONE;
        if ((st = cx_dataset_load(t->cfg.data, &clo, &cds, err)))
            return st;
        st = cx_run_classifier(&t->run, &cds, CX_EVAL_MODE_ZEROSHOT, NULL, NULL, 0, NULL,
                               &t->base, NULL, err);
        cx_dataset_free(&cds);
        if (st)
            return st;
    }
    t->last_loss = NAN;
    t->tau = t->tau_given;
    t->val_acc = NAN;
    if ((st = build(t, err)))
        return st;
    if (t->cfg.method == CX_RETRAIN_TAU_NORM) {
        if (isnan(t->tau_given)) {
            if (t->nv == 0)
                return cx_fail(err, CX_EDATA, "%s: no validation features", t->feat_path);
            if ((st = cx_posthoc_select(&t->base, CX_POSTHOC_TAU_NORM, t->cfg.tau_norm.grid.v,
                                        (int)t->cfg.tau_norm.grid.n, t->counts, t->vx, t->vy,
                                        t->nv, &t->tau, &t->val_acc, NULL, err)))
                return st;
        }
        t->epochs_done = 0;
        if ((st = write_ckpt(t, err)))
            return st;
        goto done;
    }
    if (t->cfg.method == CX_RETRAIN_DFR) {
        if (t->nv == 0)
            return cx_fail(err, CX_EDATA, "%s: no validation features", t->feat_path);
        cx_dfr_opts o;
        cx_dfr_defaults(&o);
        o.draws = (int)t->cfg.dfr.draws;
        o.seed = (uint64_t)t->cfg.seed;
        if ((st = cx_dfr_fit(&t->dfr, t->vx, t->vy, t->vg, t->nv, t->E, t->G, t->D, &o,
                             &t->dinfo, err)))
            return cx_err_prefix(err, st, "%s", t->feat_path);
        t->val_acc = t->dinfo.sel_acc;
        t->epochs_done = 0;
        if ((st = write_ckpt(t, err)) || (st = write_dfr_json(t, err)))
            return st;
        goto done;
    }
    if (t->cfg.method == CX_RETRAIN_CFR && (st = cfr_setup(t, err)))
        return st;
    if (resume && cx_path_exists(t->ckpt_path) && (st = read_state(t, err)))
        return st;
    if ((st = read_log(t, err)))
        return st;
    if (t->cfg.method == CX_RETRAIN_CFR) {
        int threads = cx_threads_get();
        cx_threads_set(1); /* as below: one thread, bits independent of --threads */
        st = cfr_epochs(t, hooks, err);
        cx_threads_set(threads);
        if (st)
            return st;
        t->val_acc = t->best_acc;
        goto done;
    }
    int64_t spe = ((int64_t)t->n + t->B - 1) / t->B;
    cx_schedule sch;
    memset(&sch, 0, sizeof sch);
    sch.kind = CX_SCHED_COSINE;
    sch.base_lr = t->cfg.optim.lr;
    sch.total_steps = spe * t->cfg.epochs;
    sch.steps_per_epoch = spe;
    sch.gamma = 0.1;
    int64_t gstep = t->epochs_done * spe;
    float theta_max = logf((float)t->run.cfg.logit_scale.max);
    /* The products of a step are a few hundred rows by the classes: threading them costs
     * more than it brings (and spins against other processes on a shared machine), so the
     * epochs run on one thread, and their bits do not depend on --threads. */
    int threads = cx_threads_get();
    cx_threads_set(1);
    st = train_epochs(t, &sch, spe, gstep, theta_max, hooks, err);
    cx_threads_set(threads);
    if (st)
        return st;
done:
    if (info) {
        info->method = (int)t->cfg.method;
        info->features_cached = t->cached;
        info->n_train = (int64_t)t->n;
        info->dim = t->D;
        info->classes = t->E;
        info->val_source = uses_val(t) || t->cfg.method == CX_RETRAIN_TAU_NORM ? t->vsrc
                                                                                : CX_VAL_NONE;
        info->lambda = t->cfg.method == CX_RETRAIN_DFR ? t->dinfo.lambda : NAN;
        info->by_group = t->cfg.method == CX_RETRAIN_DFR   ? t->dinfo.by_group
                         : t->cfg.method == CX_RETRAIN_CFR ? t->cfg.cfr.select ==
                                                                 CX_RETRAIN_SELECT_WORST_GROUP
                                                           : 0;
        info->best_epoch = t->cfg.method == CX_RETRAIN_CFR ? t->best_epoch : -1;
        info->n_calib = t->cfg.method == CX_RETRAIN_CFR ? t->cal.n_calib : 0;
        info->n_val = (int64_t)t->nv;
        info->tau = t->cfg.method == CX_RETRAIN_TAU_NORM ? t->tau : NAN;
        info->val_acc = t->val_acc;
        info->epochs_done = t->epochs_done;
        info->loss = t->last_loss;
    }
    return CX_OK;
}

static void info_clear(cx_retrain_info *info)
{
    if (!info)
        return;
    memset(info, 0, sizeof *info);
    info->tau = info->val_acc = info->loss = info->lambda = NAN;
}

cx_status cx_retrain_new(const char *const *sets, size_t nsets, const char *out_dir, int force,
                         const cx_retrain_hooks *hooks, cx_retrain_info *info, cx_err *err)
{
    info_clear(info);
    rt_state t;
    memset(&t, 0, sizeof t);
    cx_status st;
    if ((st = cx_retrain_config_load(&t.cfg, NULL, sets, nsets, err)) ||
        (st = cx_retrain_config_validate(&t.cfg, &t.tau_given, err)) ||
        (st = rt_paths(&t, out_dir, err)))
        goto fail;
    if (!force && (cx_path_exists(t.config_path) || cx_path_exists(t.ckpt_path))) {
        st = cx_fail(err, CX_EUSAGE,
                     "%s already holds a run; choose a new folder, or resume it", out_dir);
        goto fail;
    }
    if (force) {
        remove(t.ckpt_path);
        remove(t.feat_path);
        remove(t.log_path);
    }
    st = run_job(&t, 0, hooks, info, err);
fail:
    rt_free(&t);
    return st;
}

cx_status cx_retrain_resume(const char *out_dir, const cx_retrain_hooks *hooks,
                            cx_retrain_info *info, cx_err *err)
{
    info_clear(info);
    rt_state t;
    memset(&t, 0, sizeof t);
    cx_status st;
    if ((st = rt_paths(&t, out_dir, err)))
        goto fail;
    if (!cx_path_exists(t.config_path)) {
        st = cx_fail(err, CX_EDATA, "%s: no such file: not a retrained run", t.config_path);
        goto fail;
    }
    if ((st = cx_retrain_config_load(&t.cfg, t.config_path, NULL, 0, err))) {
        if (st == CX_EUSAGE)
            st = CX_EDATA;
        goto fail;
    }
    if ((st = cx_retrain_config_validate(&t.cfg, &t.tau_given, err))) {
        st = cx_err_prefix(err, CX_EDATA, "%s", t.config_path);
        goto fail;
    }
    st = run_job(&t, 1, hooks, info, err);
fail:
    rt_free(&t);
    return st;
}
