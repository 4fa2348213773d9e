/* A run evaluated on a dataset: batched image-tower features, the classifier of each mode, and
 * the pipeline of `clipx eval` from the run folder to the report. */
#include "lib/eval/run_eval.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/clock.h"
#include "lib/data/subset.h"
#include "lib/eval/collapse.h"
#include "lib/eval/internal.h"
#include "lib/eval/posthoc.h"
#include "lib/eval/retrain_clf.h"
#include "lib/eval/retrain_tokens.h"
#include "lib/eval/score.h"
#include "lib/run/retrain_config.h"
#include "lib/run/train_config.h"
#include "lib/train/tokens.h"

static const char *const mode_names[CX_EVAL_MODE_COUNT] = {"zeroshot", "head", "linear-probe",
                                                           "ncm", "knn"};

const char *cx_eval_mode_name(cx_eval_mode mode)
{
    return mode >= 0 && mode < CX_EVAL_MODE_COUNT ? mode_names[mode] : "?";
}

int cx_eval_mode_parse(const char *name)
{
    for (int m = 0; m < CX_EVAL_MODE_COUNT; m++)
        if (strcmp(name, mode_names[m]) == 0)
            return m;
    return -1;
}

/* A usage error inside a run folder (its configuration cannot build a model) is bad data from
 * the evaluating command's point of view: nothing its user typed was wrong. */
static cx_status as_data(cx_status st)
{
    return st == CX_EUSAGE ? CX_EDATA : st;
}

static int is_clip(const cx_run *run)
{
    return cx_cfg_objective_has_text((int)run->cfg.objective);
}

/* A self-supervised run: no text tower, no classifier head; its features are the teacher's. */
static int is_dino(const cx_run *run)
{
    return run->cfg.objective == CX_CFG_OBJECTIVE_DINO;
}

/* An SL run whose head holds the class-prompt embeddings of a CLIP run's text tower. */
static int has_text_head(const cx_run *run)
{
    return !is_clip(run) && !is_dino(run) && run->cfg.head == CX_CFG_HEAD_TEXT &&
           run->cfg.head_from;
}

cx_eval_mode cx_run_default_mode(const cx_run *run)
{
    return is_clip(run) ? CX_EVAL_MODE_ZEROSHOT
           : is_dino(run) ? CX_EVAL_MODE_LINEAR_PROBE
                          : CX_EVAL_MODE_HEAD;
}

/* Zero-shot of a run without a text tower of its own: scored against the dataset's
 * class_embeddings, so the check waits for the dataset. */
static int zeroshot_from_dataset(const cx_run *run, cx_eval_mode mode)
{
    return mode == CX_EVAL_MODE_ZEROSHOT && !is_clip(run) && !is_dino(run) && !has_text_head(run);
}

cx_status cx_run_check_mode_ds(const cx_run *run, const cx_dataset *ds, cx_eval_mode mode,
                               cx_err *err)
{
    if (!zeroshot_from_dataset(run, mode))
        return cx_run_check_mode(run, mode, err);
    if (!ds || !ds->class_embeddings_path)
        return cx_fail(err, CX_EUSAGE, "mode zeroshot: %s is a supervised run without a text "
                       "tower, and %s names no class_embeddings; use head, linear-probe, ncm or "
                       "knn", run->dir, ds ? ds->path : "the dataset");
    return CX_OK;
}

cx_status cx_run_check_mode(const cx_run *run, cx_eval_mode mode, cx_err *err)
{
    if (mode < 0 || mode >= CX_EVAL_MODE_COUNT)
        return cx_fail(err, CX_EUSAGE, "mode %d: unknown (%s)", (int)mode,
                       CX_EVAL_MODE_CHOICES);
    if (is_dino(run) && (mode == CX_EVAL_MODE_HEAD || mode == CX_EVAL_MODE_ZEROSHOT))
        return cx_fail(err, CX_EUSAGE, "mode %s: %s is a self-supervised DINO run, without %s; "
                       "use linear-probe, ncm or knn", cx_eval_mode_name(mode), run->dir,
                       mode == CX_EVAL_MODE_HEAD ? "a classifier head" : "a text tower");
    if (mode == CX_EVAL_MODE_HEAD && is_clip(run))
        return cx_fail(err, CX_EUSAGE, "mode head: %s is a CLIP run and has no classifier head; "
                       "use zeroshot, linear-probe, ncm or knn", run->dir);
    if (mode == CX_EVAL_MODE_ZEROSHOT && !is_clip(run) && !has_text_head(run))
        return cx_fail(err, CX_EUSAGE, "mode zeroshot: %s is a supervised run without a text "
                       "tower; use head, linear-probe, ncm or knn", run->dir);
    return CX_OK;
}

/* "a, b, c, ..." of the first names, at most cap bytes. */
static void name_list(char *buf, size_t cap, char *const *names, int n)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int c = 0; c < n && pos + 8 < cap; c++) {
        int w = snprintf(buf + pos, cap - pos, "%s%s", c ? ", " : "", names[c]);
        if (w < 0 || (size_t)w >= cap - pos || (c >= 3 && c + 1 < n)) {
            if (w >= 0 && (size_t)w < cap - pos)
                pos += (size_t)w;
            snprintf(buf + pos, cap - pos, c + 1 < n ? ", ..." : "");
            return;
        }
        pos += (size_t)w;
    }
}

cx_status cx_run_check_dataset(const cx_run *run, const cx_dataset *ds, cx_err *err)
{
    const cx_run_meta *m = &run->meta;
    int E = m->num_eval_classes;
    int differs = ds->num_eval_classes != E, at = -1;
    for (int c = 0; !differs && c < E; c++)
        if (strcmp(ds->class_names[c], m->class_names[c]) != 0) {
            differs = 1;
            at = c;
        }
    if (differs) {
        char a[160], b[160], where[400] = "";
        name_list(a, sizeof a, ds->class_names, ds->num_eval_classes);
        name_list(b, sizeof b, m->class_names, E);
        if (at >= 0)
            snprintf(where, sizeof where, "; class %d is '%.150s' there, '%.150s' in the run", at,
                     ds->class_names[at], m->class_names[at]);
        return cx_fail(err, CX_EDATA, "%s: another class list than run %s: %d evaluated classes "
                       "(%s) against the run's %d (%s)%s", ds->path, run->dir,
                       ds->num_eval_classes, a, E, b, where);
    }
    return CX_OK;
}

cx_status cx_run_features(cx_model *m, const cx_split *s, const uint32_t *rows, size_t n,
                          float *out, const char *what, cx_err *err)
{
    const int in_dim = m->spec.in_dim, B = m->spec.max_batch;
    int D = m->spec.embed_dim, H = 0, wi, bi;
    if (m->features_before_last) {
        if (!cx_model_image_last_linear(m, &H, &wi, &bi))
            return cx_fail(err, CX_EUSAGE, "%s: the image tower ends in no linear layer", what);
        D = H;
    }
    if (!s->x || s->dim == 0)
        return cx_fail(err, CX_EDATA, "%s: images were not loaded", what);
    if (s->dim != (size_t)in_dim)
        return cx_fail(err, CX_EDATA, "%s: samples of %zu values, the run's image tower takes %d",
                       what, s->dim, in_dim);
    if (B < 1)
        return cx_fail(err, CX_EUSAGE, "%s: the model was built for batches of %d", what, B);
    for (size_t i = 0; rows && i < n; i++)
        if (rows[i] >= s->n)
            return cx_fail(err, CX_EUSAGE, "%s: row %u of %zu", what, rows[i], s->n);
    if (!rows && n > s->n)
        return cx_fail(err, CX_EUSAGE, "%s: %zu rows asked of %zu", what, n, s->n);
    float *x = malloc(sizeof *x * (size_t)B * (size_t)in_dim);
    uint32_t *idx = malloc(sizeof *idx * (size_t)B);
    if (!x || !idx) {
        free(x);
        free(idx);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for a batch of %d inputs", what, B);
    }
    cx_status st = CX_OK;
    /* The tower's products carry the parallelism (OpenBLAS shares OpenMP's pool, see
     * configure.ac); its elementwise loops are cheap next to them. */
    for (size_t start = 0; start < n && !st; start += (size_t)B) {
        size_t nb = n - start < (size_t)B ? n - start : (size_t)B;
        const float *in;
        if (!rows && s->dtype == CX_DTYPE_F32) {
            /* Consecutive float rows feed the tower where they are. */
            in = (const float *)s->x + start * (size_t)in_dim;
        } else {
            for (size_t i = 0; i < nb; i++)
                idx[i] = rows ? rows[start + i] : (uint32_t)(start + i);
            cx_split_gather_f32(s, idx, nb, x);
            in = x;
        }
        const float *f = cx_model_image_forward(m, in, (int)nb);
        if (m->features_before_last)
            f = cx_model_image_last_input(m, in);
        float *dst = out + start * (size_t)D;
        size_t bad = SIZE_MAX;
        for (size_t i = 0; i < nb * (size_t)D; i++) {
            dst[i] = f[i];
            if (!isfinite(f[i]) && bad == SIZE_MAX)
                bad = i;
        }
        if (bad != SIZE_MAX) {
            size_t row = rows ? rows[start + bad / (size_t)D] : start + bad / (size_t)D;
            st = cx_fail(err, CX_EDATA, "%s: sample %zu: the image tower gives a non-finite "
                         "feature", what, s->source_index ? s->source_index[row] : row);
        }
    }
    free(x);
    free(idx);
    return st;
}

void cx_run_clf_defaults(cx_run_clf_opts *o)
{
    o->k = CX_KNN_K_DEFAULT;
    cx_probe_defaults(&o->probe);
}

/* Class embeddings *out (E, D), malloc'd, of the run's evaluated class names through a CLIP
 * text tower, or for a run without one the dataset's class_embeddings: the zero-shot
 * classifier's rows before normalisation. */
static cx_status class_embeddings(cx_run *run, const cx_dataset *ds, float **out, int *dim,
                                  cx_err *err)
{
    *out = NULL;
    int E = run->meta.num_eval_classes;
    cx_run src;
    memset(&src, 0, sizeof src);
    cx_run *text = run;
    cx_status st;
    if (zeroshot_from_dataset(run, CX_EVAL_MODE_ZEROSHOT)) {
        /* An external model's classifier: its first E rows are the evaluated classes'. */
        int D;
        if ((st = cx_dataset_class_embeddings(ds, out, &D, err)))
            return st;
        if (D != run->model.spec.embed_dim) {
            free(*out);
            *out = NULL;
            return cx_fail(err, CX_EDATA, "%s: class embeddings of %d dimensions, but the image "
                           "tower of %s outputs %d", ds->class_embeddings_path, D, run->dir,
                           run->model.spec.embed_dim);
        }
        *dim = D;
        return CX_OK;
    }
    if (!is_clip(run)) {
        /* The head was made by this run's text tower: zero-shot uses it with ds's templates. */
        if ((st = cx_run_open(run->cfg.head_from, 256, &src, err))) {
            return cx_err_prefix(err, as_data(st), "head_from of %s", run->dir);
        }
        if (!cx_cfg_objective_has_text((int)src.cfg.objective) ||
            src.model.spec.embed_dim != run->model.spec.embed_dim) {
            st = cx_fail(err, CX_EDATA, "head_from of %s: %s is not a CLIP run of embedding "
                         "dimension %d", run->dir, run->cfg.head_from, run->model.spec.embed_dim);
            cx_run_close(&src);
            return st;
        }
        text = &src;
    }
    int D = text->model.spec.embed_dim;
    float *emb = malloc(sizeof *emb * (size_t)E * (size_t)D);
    if (!emb)
        st = cx_fail(err, CX_ENOMEM, "out of memory for %d class embeddings", E);
    else
        st = cx_tokens_class_embeddings(&text->model, &text->vocab, run->meta.class_names, E,
                                      ds->templates, ds->num_templates, emb, err);
    if (text == &src)
        cx_run_close(&src);
    if (st) {
        free(emb);
        return st;
    }
    *out = emb;
    *dim = D;
    return CX_OK;
}

static cx_status zeroshot_classifier(cx_run *run, const cx_dataset *ds, cx_eval_classifier *clf,
                                     cx_err *err)
{
    float *emb;
    int D;
    cx_status st = class_embeddings(run, ds, &emb, &D, err);
    if (!st)
        st = cx_eval_zeroshot(clf, emb, 1, run->meta.num_eval_classes, D, CX_EVAL_COSINE_SCALE,
                              err);
    free(emb);
    return st;
}

static cx_status head_classifier(cx_run *run, cx_eval_classifier *clf, cx_err *err)
{
    cx_model *m = &run->model;
    const cx_head *h = &m->head;
    int E = run->meta.num_eval_classes;
    if (h->C < E)
        return cx_fail(err, CX_EDATA, "%s: the head scores %d classes, the run evaluates %d",
                       run->dir, h->C, E);
    const float *w = cx_param_value(&m->params, h->w);
    const float *b = h->b >= 0 ? cx_param_value(&m->params, h->b) : NULL;
    int cosine = h->kind == CX_HEAD_COSINE;
    /* Only the evaluated classes' rows: open-world outputs are not candidates. */
    return cx_eval_from_head(clf, w, b, E, h->D, cosine, cosine ? cx_model_logit_scale(m) : 1.0f,
                             err);
}

cx_status cx_run_classifier(cx_run *run, const cx_dataset *ds, cx_eval_mode mode,
                            const float *feat, const int32_t *y, int n,
                            const cx_run_clf_opts *o, cx_eval_classifier *clf,
                            cx_probe_info *probe, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    if (probe)
        memset(probe, 0, sizeof *probe);
    cx_run_clf_opts def;
    if (!o) {
        cx_run_clf_defaults(&def);
        o = &def;
    }
    cx_status st = cx_run_check_mode_ds(run, ds, mode, err);
    if (st)
        return st;
    int E = run->meta.num_eval_classes, D = run->model.spec.embed_dim;
    switch (mode) {
    case CX_EVAL_MODE_ZEROSHOT:
        return zeroshot_classifier(run, ds, clf, err);
    case CX_EVAL_MODE_HEAD:
        return head_classifier(run, clf, err);
    default:
        break;
    }
    if (n < 1 || !feat || !y)
        return cx_fail(err, CX_EDATA, "mode %s: no training features of the evaluated classes",
                       cx_eval_mode_name(mode));
    if ((st = cx_eval_check_labels(y, n, E, "training labels", err)))
        return st;
    switch (mode) {
    case CX_EVAL_MODE_LINEAR_PROBE:
        return cx_eval_linear_probe(clf, feat, y, n, E, D, &o->probe, probe, err);
    case CX_EVAL_MODE_NCM:
        return cx_eval_ncm(clf, feat, y, n, E, D, CX_EVAL_COSINE_SCALE, err);
    case CX_EVAL_MODE_KNN:
        return cx_eval_knn(clf, feat, y, n, E, D, o->k, err);
    default:
        return cx_fail(err, CX_EUSAGE, "unknown mode %d", (int)mode);
    }
}

/* ---- the pipeline ------------------------------------------------------------------------ */

void cx_run_eval_defaults(cx_run_eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data = NULL;
    o->mode = CX_EVAL_MODE_DEFAULT;
    o->nc1 = 1;
    o->batch = CX_RUN_FEATURE_BATCH;
    cx_run_clf_defaults(&o->clf);
    cx_report_defaults(&o->report);
    o->posthoc = CX_POSTHOC_NONE;
    o->posthoc_tau = NAN;
}

void cx_run_eval_info_free(cx_run_eval_info *info)
{
    if (!info)
        return;
    free(info->retrain_from);
    free(info->freqs);
    free(info->logits);
    free(info->data);
    free(info->subset);
    cx_probe_info_free(&info->probe);
    memset(info, 0, sizeof *info);
}

static char *dup_or_null(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int uses_training_features(cx_eval_mode mode)
{
    return mode == CX_EVAL_MODE_LINEAR_PROBE || mode == CX_EVAL_MODE_NCM ||
           mode == CX_EVAL_MODE_KNN;
}

typedef struct {
    cx_run run;
    cx_dataset ds;
    float *test_feat;   /* (n_test, D) */
    float *train_feat;  /* (n_train, D) */
    int32_t *train_y;   /* (n_train) */
    uint32_t *train_rows;
    cx_eval_classifier clf;
    cx_probe_info probe;
    cx_eval_pred pred;
    cx_collapse col;
    cx_retrain_config rcfg; /* a retrained run's configuration */
    cx_retrain_clf rclf;
    float *score_feat;      /* features the classifier scores when not test_feat (gated) */
    float *val_x;
    int32_t *val_y;
} eval_state;

static void state_free(eval_state *s)
{
    free(s->val_x);
    free(s->val_y);
    free(s->score_feat);
    cx_retrain_clf_free(&s->rclf);
    cx_retrain_config_free(&s->rcfg);
    cx_collapse_free(&s->col);
    cx_eval_pred_free(&s->pred);
    cx_probe_info_free(&s->probe);
    cx_eval_classifier_free(&s->clf);
    free(s->train_rows);
    free(s->train_y);
    free(s->train_feat);
    free(s->test_feat);
    cx_dataset_free(&s->ds);
    cx_run_close(&s->run);
}

/* Training features of the evaluated classes (open-world samples have nothing to predict). */
static cx_status training_features(eval_state *s, const char *what, int64_t *n_out, cx_err *err)
{
    const cx_split *tr = &s->ds.train;
    int E = s->run.meta.num_eval_classes, D = s->run.model.spec.embed_dim;
    size_t n = 0;
    s->train_rows = malloc(sizeof *s->train_rows * (tr->n ? tr->n : 1));
    if (!s->train_rows)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < tr->n; i++)
        if (tr->y[i] >= 0 && tr->y[i] < E)
            s->train_rows[n++] = (uint32_t)i;
    if (n == 0)
        return cx_fail(err, CX_EDATA, "%s: no training sample of the %d evaluated classes", what,
                       E);
    if (n > (size_t)INT32_MAX)
        return cx_fail(err, CX_EDATA, "%s: %zu training samples, at most %d", what, n, INT32_MAX);
    s->train_feat = malloc(sizeof *s->train_feat * n * (size_t)D);
    s->train_y = malloc(sizeof *s->train_y * n);
    if (!s->train_feat || !s->train_y)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu training features", what, n);
    for (size_t i = 0; i < n; i++)
        s->train_y[i] = tr->y[s->train_rows[i]];
    *n_out = (int64_t)n;
    return cx_run_features(&s->run.model, tr, s->train_rows, n, s->train_feat, what, err);
}

/* A retrained run: its configuration, its classifier, and the stage-1 run to open. */
static cx_status open_retrained(eval_state *s, const char *run_dir, const cx_run_eval_opts *o,
                                cx_run_eval_info *info, const char **open_dir, cx_err *err)
{
    char *path = cx_run_path(run_dir, CX_RUN_CONFIG);
    if (!path)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_status st = cx_retrain_config_load(&s->rcfg, path, NULL, 0, err);
    free(path);
    if (st)
        return as_data(st);
    if (!s->rcfg.from)
        return cx_fail(err, CX_EDATA, "%s/%s names no stage-1 run (from)", run_dir,
                       CX_RUN_CONFIG);
    if (o->mode != CX_EVAL_MODE_DEFAULT && o->mode != CX_EVAL_MODE_HEAD)
        return cx_fail(err, CX_EUSAGE,
                       "mode %s: %s is a retrained run, scored with its retrained classifier "
                       "(mode head); evaluate %s for the other modes",
                       cx_eval_mode_name((cx_eval_mode)o->mode), run_dir, s->rcfg.from);
    if ((st = cx_retrain_read_clf(run_dir, &s->rclf, err)))
        return st;
    if (s->rclf.method != (int)s->rcfg.method)
        return cx_fail(err, CX_EDATA, "%s/%s: a classifier of method %s, %s/%s names %s", run_dir,
                       CX_RUN_CKPT, cx_retrain_method_name(s->rclf.method), run_dir,
                       CX_RUN_CONFIG, cx_retrain_method_name((int)s->rcfg.method));
    info->retrained = 1;
    info->retrain_method = (int)s->rcfg.method;
    info->retrain_tau = s->rclf.tau;
    if (!(info->retrain_from = dup_or_null(s->rcfg.from)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    *open_dir = s->rcfg.from;
    return CX_OK;
}

static cx_status val_features(cx_run *run, const cx_retrain_clf *pool, const char *data,
                              const char *subset, uint64_t seed, int per_class, float **x,
                              int32_t **y, size_t *n, cx_val_source *src, cx_err *err);

/* --posthoc: tau given, or chosen on validation data (never the test split). */
static cx_status posthoc_step(eval_state *s, const cx_run_eval_opts *o, const char *data,
                              const char *subset, cx_run_eval_info *info, cx_err *err)
{
    cx_posthoc_kind kind = (cx_posthoc_kind)o->posthoc;
    const int64_t *counts = s->run.meta.class_counts;
    double tau = o->posthoc_tau;
    cx_status st;
    info->posthoc = (int)kind;
    if (s->clf.kind != CX_CLF_LINEAR)
        return cx_fail(err, CX_EUSAGE, "posthoc %s: mode %s has no linear classifier to adjust",
                       cx_posthoc_name(kind), cx_eval_mode_name(info->mode));
    if (kind == CX_POSTHOC_TAU_NORM && s->rclf.gated)
        return cx_fail(err, CX_EUSAGE,
                       "posthoc tau-norm: a DisAlign run's classifier is gated by its features, "
                       "its rows are not a head's; use logit-adjust");
    if (kind == CX_POSTHOC_TAU_NORM && s->clf.normalize)
        return cx_fail(err, CX_EUSAGE,
                       "posthoc tau-norm: the classifier's rows are normalised (a cosine, text "
                       "or zero-shot classifier) or gated; tau-norm needs a linear head");
    if (isnan(tau)) {
        size_t nv = 0;
        cx_val_source src;
        uint64_t seed = (uint64_t)(info->retrained ? s->rcfg.seed : s->run.cfg.seed);
        /* A token decoder is chosen on the validation tokens pooled by its blocks. */
        if ((st = val_features(&s->run, s->rclf.tok ? &s->rclf : NULL, data, subset, seed,
                               CX_VAL_PER_CLASS_DEFAULT, &s->val_x, &s->val_y, &nv, &src, err)))
            return cx_err_prefix(err, st, "posthoc %s", cx_posthoc_name(kind));
        double grid[32], acc = NAN;
        int ng = cx_posthoc_default_grid(kind, grid, 32);
        /* A retrained classifier that scores transformed features (DisAlign's gate, the
         * decoder's layers) is chosen on the validation features transformed alike. */
        const float *vx = s->val_x;
        float *vxs = NULL;
        if (s->score_feat) {
            cx_eval_classifier tmp;
            if ((st = cx_retrain_eval_setup(&s->rclf, s->val_x, nv, &tmp, &vxs, err)))
                return st;
            cx_eval_classifier_free(&tmp);
            vx = vxs;
        }
        st = cx_posthoc_select(&s->clf, kind, grid, ng, counts, vx, s->val_y, nv, &tau, &acc,
                               NULL, err);
        free(vxs);
        if (st)
            return st;
        info->posthoc_tau_chosen = 1;
        info->posthoc_val = src;
        info->posthoc_n_val = (int64_t)nv;
        info->posthoc_val_acc = acc;
    }
    info->posthoc_tau = tau;
    return cx_posthoc_apply(&s->clf, kind, tau, counts, err);
}

cx_status cx_run_evaluate(const char *run_dir, const cx_run_eval_opts *o, cx_eval_report *report,
                          cx_run_eval_info *info, cx_err *err)
{
    memset(report, 0, sizeof *report);
    cx_run_eval_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->probe_lambda = info->probe_val_acc = NAN;
    info->retrain_tau = info->posthoc_tau = info->posthoc_val_acc = NAN;
    cx_run_eval_opts def;
    if (!o) {
        cx_run_eval_defaults(&def);
        o = &def;
    }
    eval_state s;
    memset(&s, 0, sizeof s);
    cx_status st;
    double t0 = cx_clock_seconds();

    if (o->batch < 1)
        return cx_fail(err, CX_EUSAGE, "feature batch %d: must be at least 1", o->batch);
    int retrained = cx_retrain_is_run(run_dir);
    const char *open_dir = run_dir;
    if (retrained && (st = open_retrained(&s, run_dir, o, info, &open_dir, err)))
        goto fail;
    if ((st = cx_run_open(open_dir, o->batch, &s.run, err))) {
        /* Nothing the caller typed was wrong: a run that cannot be rebuilt is bad data. */
        if (st == CX_EUSAGE)
            st = cx_err_prefix(err, as_data(st), "%s", open_dir);
        goto fail;
    }
    cx_run *run = &s.run;
    cx_eval_mode mode = retrained                         ? CX_EVAL_MODE_HEAD
                        : o->mode == CX_EVAL_MODE_DEFAULT ? cx_run_default_mode(run)
                                                          : (cx_eval_mode)o->mode;
    if (!retrained && !zeroshot_from_dataset(run, mode) && (st = cx_run_check_mode(run, mode, err)))
        goto fail;
    const char *data = o->data ? o->data : retrained ? s.rcfg.data : run->cfg.data;
    const char *subset = o->data ? NULL : retrained ? s.rcfg.subset : run->cfg.subset;
    if (!data) {
        st = cx_fail(err, CX_EDATA, "%s/%s names no dataset, and none was given to evaluate on", run_dir,
                     CX_RUN_CONFIG);
        goto fail;
    }
    int on_val = o->on_val > 0;
    if (o->on_val < 0) { /* val when there is one: the class list alone tells */
        cx_load_options none = {0};
        none.parts = CX_LOAD_NONE;
        if ((st = cx_dataset_load(data, &none, &s.ds, err)))
            goto fail;
        on_val = s.ds.has_val;
        cx_dataset_free(&s.ds);
    }
    info->on_val = on_val;
    int train_feats = uses_training_features(mode);
    cx_load_options lo = {0};
    lo.parts = (on_val ? CX_LOAD_VAL : CX_LOAD_TEST) | CX_LOAD_IMAGES |
               (train_feats ? CX_LOAD_TRAIN : 0);
    lo.subset_path = train_feats ? subset : NULL;
    if ((st = cx_dataset_load(data, &lo, &s.ds, err)) ||
        (st = cx_run_check_dataset(run, &s.ds, err)) ||
        (!retrained && (st = cx_run_check_mode_ds(run, &s.ds, mode, err))))
        goto fail;
    info->mode = mode;
    info->objective = (int)run->cfg.objective;
    info->num_classes = run->meta.num_eval_classes;
    info->dim = run->model.spec.embed_dim;
    if (!(info->data = dup_or_null(data)) ||
        (train_feats && subset && !(info->subset = dup_or_null(subset)))) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    const cx_split *test = on_val ? &s.ds.val : &s.ds.test; /* the split scored */
    const char *scored = on_val ? "val" : "test";
    const int E = run->meta.num_eval_classes, D = run->model.spec.embed_dim;
    if (test->n == 0) {
        st = cx_fail(err, CX_EDATA, "%s: the %s split holds no samples", data, scored);
        goto fail;
    }
    if (test->n > (size_t)INT32_MAX) {
        st = cx_fail(err, CX_EDATA, "%s: %zu %s samples, at most %d", data, test->n, scored,
                     INT32_MAX);
        goto fail;
    }
    info->n_test = (int64_t)test->n;
    double t1 = cx_clock_seconds();
    info->seconds[CX_EVAL_PHASE_LOAD] = t1 - t0;

    char what[512];
    snprintf(what, sizeof what, "%.500s (%s)", test->images_path ? test->images_path : data, scored);
    int tokT = 0, tokW = 0;
    if (retrained && s.rclf.tok) {
        /* A token decoder scores the tower's tokens (n T W floats), not its embeddings. */
        if (!cx_tokdec_tower_shape(&run->model, &tokT, &tokW) || tokT != s.rclf.tokdec_T ||
            tokW != s.rclf.D) {
            st = cx_fail(err, CX_EDATA, "%s/%s: a token decoder over %d tokens of %d, the run %s "
                         "gives %d of %d", run_dir, CX_RUN_CKPT, s.rclf.tokdec_T, s.rclf.D,
                         open_dir, tokT, tokW);
            goto fail;
        }
        /* The split's tokens (n T W floats) are never held at once: a chunk at a time goes
         * through the decoder's blocks, and only the pooled features (n W) are kept. */
        if (!(s.test_feat = malloc(sizeof *s.test_feat * test->n * (size_t)tokW))) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu pooled features", what,
                         test->n);
            goto fail;
        }
        if ((st = cx_retrain_tok_pool(&s.rclf, &run->model, test, NULL, test->n, s.test_feat,
                                      what, err)))
            goto fail;
    } else {
        if (!(s.test_feat = malloc(sizeof *s.test_feat * test->n * (size_t)D))) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu features", what, test->n);
            goto fail;
        }
        if ((st = cx_run_features(&run->model, test, NULL, test->n, s.test_feat, what, err)))
            goto fail;
    }
    if (train_feats) {
        snprintf(what, sizeof what, "%.500s (train)",
                 s.ds.train.images_path ? s.ds.train.images_path : data);
        if ((st = training_features(&s, what, &info->n_train, err)))
            goto fail;
    }
    double t2 = cx_clock_seconds();
    info->seconds[CX_EVAL_PHASE_FEATURES] = t2 - t1;

    if (retrained) {
        if (s.rclf.C != E || (!s.rclf.tok && s.rclf.D != D)) {
            st = cx_fail(err, CX_EDATA, "%s/%s: a classifier of %d classes on %d features, the "
                         "run %s has %d and %d", run_dir, CX_RUN_CKPT, s.rclf.C, s.rclf.D,
                         open_dir, E, D);
            goto fail;
        }
        if (s.rclf.proj_tower) {
            /* CFR replaced the tower's last linear layer: it scores the rows entering it. */
            int H, wi, bi;
            if (!cx_model_image_last_linear(&run->model, &H, &wi, &bi) || H != s.rclf.proj_in) {
                st = cx_fail(err, CX_EDATA, "%s/%s: a projection of %d inputs in place of the "
                             "image tower's last linear layer, the run %s has none of that "
                             "width", run_dir, CX_RUN_CKPT, s.rclf.proj_in, open_dir);
                goto fail;
            }
            if (o->posthoc != CX_POSTHOC_NONE) {
                st = cx_fail(err, CX_EUSAGE, "posthoc %s: %s retrained the image tower's last "
                             "layer, not a linear head on the run's features",
                             cx_posthoc_name((cx_posthoc_kind)o->posthoc), run_dir);
                goto fail;
            }
            float *hf = malloc(sizeof *hf * (test->n ? test->n : 1) * (size_t)H);
            if (!hf) {
                st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu samples", what, test->n);
                goto fail;
            }
            run->model.features_before_last = 1;
            st = cx_run_features(&run->model, test, NULL, test->n, hf, what, err);
            run->model.features_before_last = 0;
            if (!st)
                st = cx_retrain_eval_setup(&s.rclf, hf, test->n, &s.clf, &s.score_feat, err);
            free(hf);
            if (st)
                goto fail;
        } else if ((st = cx_retrain_eval_setup(&s.rclf, s.test_feat, test->n, &s.clf,
                                               &s.score_feat, err)))
            goto fail;
    } else if ((st = cx_run_classifier(run, &s.ds, mode, s.train_feat, s.train_y,
                                       (int)info->n_train, &o->clf, &s.clf, &s.probe, err))) {
        goto fail;
    }
    if (o->posthoc != CX_POSTHOC_NONE &&
        (st = posthoc_step(&s, o, data, subset, info, err)))
        goto fail;
    if (mode == CX_EVAL_MODE_LINEAR_PROBE) {
        info->probe_lambda = s.probe.lambda;
        info->probe_val_acc = s.probe.val_acc;
        info->probe = s.probe;
        memset(&s.probe, 0, sizeof s.probe);
    }
    /* The training features are not needed any more: give their memory back before scoring. */
    free(s.train_feat);
    s.train_feat = NULL;
    double t3 = cx_clock_seconds();
    info->seconds[CX_EVAL_PHASE_CLASSIFIER] = t3 - t2;

    if (o->keep_logits) {
        if (!(info->logits = malloc(sizeof *info->logits * test->n * (size_t)E))) {
            st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu samples' logits", what,
                         test->n);
            goto fail;
        }
        if ((st = cx_eval_logits(&s.clf, s.score_feat ? s.score_feat : s.test_feat,
                                 (int)test->n, info->logits, err)))
            goto fail;
    }
    if ((st = cx_eval_score(&s.clf, s.score_feat ? s.score_feat : s.test_feat, test->y,
                            (int)test->n, 0, &s.pred, err)))
        goto fail;
    double t4 = cx_clock_seconds();
    info->seconds[CX_EVAL_PHASE_SCORING] = t4 - t3;

    int64_t *freqs = NULL;
    if (o->freqs) {
        int C = run->meta.shape.num_classes;
        if (!(freqs = malloc((size_t)C * sizeof *freqs)) || !(info->freqs = strdup(o->freqs))) {
            free(freqs);
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            goto fail;
        }
        if ((st = cx_freq_read(o->freqs, run->meta.class_names, C, freqs, err))) {
            free(freqs);
            goto fail;
        }
    }
    st = cx_eval_report_build(report, &s.pred, test->y, freqs ? freqs : run->meta.class_counts,
                              (const char *const *)run->meta.class_names, &o->report, err);
    free(freqs);
    if (st)
        goto fail;
    const float *w = s.clf.kind == CX_CLF_LINEAR && s.clf.D == D ? s.clf.w : NULL;
    if ((st = cx_collapse_compute(&s.col, s.test_feat, test->y, (int)test->n, E, D, w, o->nc1,
                                  err)) ||
        (st = cx_eval_report_attach_collapse(report, &s.col, err)))
        goto fail;
    if (!on_val && test->groups &&
        (st = cx_run_eval_groups(run, &s.ds, o->data, s.pred.pred, report, err)))
        goto fail;
    info->seconds[CX_EVAL_PHASE_METRICS] = cx_clock_seconds() - t4;
fail:
    state_free(&s);
    if (st) {
        cx_eval_report_free(report);
        cx_run_eval_info_free(info);
    } else if (info == &local) {
        cx_run_eval_info_free(info);
    }
    return st;
}

/* ---- embeddings ------------------------------------------------------------------------- */

void cx_run_embedding_free(cx_run_embedding *e)
{
    if (!e)
        return;
    free(e->x);
    free(e->y);
    free(e->data);
    free(e->subset);
    memset(e, 0, sizeof *e);
}

cx_status cx_run_embed(const char *run_dir, const cx_run_embed_opts *o, cx_run_embedding *out,
                       cx_err *err)
{
    memset(out, 0, sizeof *out);
    cx_run run;
    cx_dataset ds;
    memset(&run, 0, sizeof run);
    memset(&ds, 0, sizeof ds);
    int batch = o->batch > 0 ? o->batch : CX_RUN_FEATURE_BATCH;
    if (cx_retrain_is_run(run_dir))
        return cx_fail(err, CX_EUSAGE,
                       "%s is a retrained run (clipx retrain): its features are those of its "
                       "stage-1 run, the 'from' of %s/%s; embed that run",
                       run_dir, run_dir, CX_RUN_CONFIG);
    cx_status st = cx_run_open(run_dir, batch, &run, err);
    if (st) {
        /* Nothing the caller typed was wrong: a run that cannot be rebuilt is bad data. */
        if (st == CX_EUSAGE)
            st = cx_err_prefix(err, as_data(st), "%s", run_dir);
        return st;
    }
    const char *data = o->data ? o->data : run.cfg.data;
    const char *subset = !o->data && o->split == CX_EMBED_TRAIN ? run.cfg.subset : NULL;
    if (o->text && !zeroshot_from_dataset(&run, CX_EVAL_MODE_ZEROSHOT) &&
        (st = cx_run_check_mode(&run, CX_EVAL_MODE_ZEROSHOT, err))) {
        st = cx_fail(err, CX_EUSAGE, "%s is a %s run without a text tower: it has no class "
                     "embeddings", run_dir, is_dino(&run) ? "self-supervised DINO" : "supervised");
        goto fail;
    }
    if (!data) {
        st = cx_fail(err, CX_EDATA, "%s/%s names no dataset, and none was given to embed", run_dir,
                     CX_RUN_CONFIG);
        goto fail;
    }
    cx_load_options lo = {0};
    lo.parts = o->text ? CX_LOAD_NONE
                       : CX_LOAD_IMAGES | (o->split == CX_EMBED_TRAIN ? CX_LOAD_TRAIN
                                                                      : CX_LOAD_TEST);
    lo.subset_path = subset;
    if ((st = cx_dataset_load(data, &lo, &ds, err)) ||
        (st = cx_run_check_dataset(&run, &ds, err)))
        goto fail;
    if (o->text && zeroshot_from_dataset(&run, CX_EVAL_MODE_ZEROSHOT) &&
        !ds.class_embeddings_path) {
        st = cx_fail(err, CX_EUSAGE, "%s is a supervised run without a text tower, and %s names "
                     "no class_embeddings: it has no class embeddings", run_dir, data);
        goto fail;
    }
    if (!(out->data = dup_or_null(data)) || (subset && !(out->subset = dup_or_null(subset)))) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto fail;
    }
    if (o->text) {
        int D;
        if ((st = class_embeddings(&run, &ds, &out->x, &D, err)))
            goto fail;
        out->n = run.meta.num_eval_classes;
        out->dim = D;
        goto fail;
    }
    const cx_split *s = o->split == CX_EMBED_TRAIN ? &ds.train : &ds.test;
    const int D = run.model.spec.embed_dim;
    char what[512];
    snprintf(what, sizeof what, "%.490s (%s)", s->images_path ? s->images_path : data,
             o->split == CX_EMBED_TRAIN ? "train" : "test");
    if (s->n == 0) {
        st = cx_fail(err, CX_EDATA, "%s: the split holds no samples", what);
        goto fail;
    }
    out->x = malloc(sizeof *out->x * s->n * (size_t)D);
    out->y = malloc(sizeof *out->y * s->n);
    if (!out->x || !out->y) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu features", what, s->n);
        goto fail;
    }
    memcpy(out->y, s->y, sizeof *out->y * s->n);
    out->n = (int64_t)s->n;
    out->dim = D;
    st = cx_run_features(&run.model, s, NULL, s->n, out->x, what, err);
fail:
    cx_dataset_free(&ds);
    cx_run_close(&run);
    if (st)
        cx_run_embedding_free(out);
    return st;
}

/* ---- validation features ---------------------------------------------------------------- */

/* With pool (a token decoder) the features are its pooled tokens, else the tower's. */
static cx_status val_rows_features(cx_run *run, const cx_retrain_clf *pool, const cx_split *s,
                                   const uint32_t *rows, size_t n, const char *what, float **x,
                                   int32_t **y, cx_err *err)
{
    int D = pool ? pool->D : run->model.spec.embed_dim, wi, bi;
    if (run->model.features_before_last &&
        !cx_model_image_last_linear(&run->model, &D, &wi, &bi))
        return cx_fail(err, CX_EUSAGE, "%s: the image tower ends in no linear layer", what);
    *x = malloc(sizeof **x * (n ? n : 1) * (size_t)D);
    *y = malloc(sizeof **y * (n ? n : 1));
    if (!*x || !*y)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for %zu features", what, n);
    for (size_t i = 0; i < n; i++)
        (*y)[i] = s->y[rows ? rows[i] : i];
    if (pool)
        return cx_retrain_tok_pool(pool, &run->model, s, rows, n, *x, what, err);
    return cx_run_features(&run->model, s, rows, n, *x, what, err);
}

static cx_status val_features(cx_run *run, const cx_retrain_clf *pool, const char *data,
                              const char *subset, uint64_t seed, int per_class, float **x,
                              int32_t **y, size_t *n, cx_val_source *src, cx_err *err)
{
    *x = NULL;
    *y = NULL;
    *n = 0;
    *src = CX_VAL_NONE;
    cx_dataset ds;
    cx_load_options lo = {0};
    lo.parts = CX_LOAD_NONE;
    uint32_t *kept = NULL, *rows = NULL;
    size_t nkept = 0, nrows = 0;
    char what[600];
    cx_status st = cx_dataset_load(data, &lo, &ds, err);
    if (st)
        return st;
    int has_val = ds.has_val;
    cx_dataset_free(&ds);
    int E = run->meta.num_eval_classes;
    if (has_val) {
        lo.parts = CX_LOAD_VAL | CX_LOAD_IMAGES;
        if ((st = cx_dataset_load(data, &lo, &ds, err)) ||
            (st = cx_run_check_dataset(run, &ds, err)))
            goto fail;
        snprintf(what, sizeof what, "%.500s (val)", ds.val.images_path);
        if ((st = val_rows_features(run, pool, &ds.val, NULL, ds.val.n, what, x, y, err)))
            goto fail;
        *n = ds.val.n;
        *src = CX_VAL_SPLIT;
        goto done;
    }
    if (!subset) {
        st = cx_fail(err, CX_EUSAGE,
                     "%s names no 'val' split, and the run trained on every training row (no "
                     "subset), so none is left to validate on (the test split never is)",
                     data);
        goto fail;
    }
    lo.parts = CX_LOAD_TRAIN;
    if ((st = cx_dataset_load(data, &lo, &ds, err)))
        goto fail;
    if ((st = cx_subset_read(subset, ds.train.y, ds.train.stored_n, ds.train.labels_path, &kept,
                             &nkept, err)) ||
        (st = cx_val_heldout_rows(ds.train.y, ds.train.stored_n, kept, nkept, E,
                                  ds.class_names, per_class, seed, ds.train.labels_path, &rows,
                                  &nrows, err)))
        goto fail;
    cx_dataset_free(&ds);
    lo.parts = CX_LOAD_TRAIN | CX_LOAD_IMAGES;
    lo.keep = rows;
    lo.num_keep = nrows;
    if ((st = cx_dataset_load(data, &lo, &ds, err)) ||
        (st = cx_run_check_dataset(run, &ds, err)))
        goto fail;
    snprintf(what, sizeof what, "%.500s (train, held out of the subset)", ds.train.images_path);
    if ((st = val_rows_features(run, pool, &ds.train, NULL, ds.train.n, what, x, y, err)))
        goto fail;
    *n = ds.train.n;
    *src = CX_VAL_TRAIN_HELDOUT;
done:
    cx_dataset_free(&ds);
    free(kept);
    free(rows);
    return CX_OK;
fail:
    cx_dataset_free(&ds);
    free(kept);
    free(rows);
    free(*x);
    free(*y);
    *x = NULL;
    *y = NULL;
    *n = 0;
    *src = CX_VAL_NONE;
    return st;
}

cx_status cx_run_val_features(cx_run *run, const char *data, const char *subset, uint64_t seed,
                              int per_class, float **x, int32_t **y, size_t *n,
                              cx_val_source *src, cx_err *err)
{
    return val_features(run, NULL, data, subset, seed, per_class, x, y, n, src, err);
}

