/* The training loop: data, model, objective, optimiser, checkpoints, log. */
#include "lib/train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/afile.h"
#include "lib/base/clock.h"
#include "lib/base/dirlock.h"
#include "lib/base/json.h"
#include "lib/base/memory.h"
#include "lib/base/path.h"
#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/data/augment.h"
#include "lib/data/dataset.h"
#include "lib/data/stats.h"
#include "lib/data/subset.h"
#include "lib/objective/dino.h"
#include "lib/run/run.h"
#include "lib/run/spec.h"
#include "lib/train/declip_step.h"
#include "lib/train/dino_step.h"
#include "lib/train/tokens.h"

/* RNG stream tags: each purpose draws from its own stream of (seed, tag, counter). */
enum { TAG_CAPTIONS = 0xCA9, TAG_VOCAB = 0x70CA };

enum { CAPTION_MAX = 4096 };
/* Caption token rows above this are tokenised per batch instead of kept (same ids). */
#define CAPTION_TOKENS_MAX_BYTES ((size_t)128 << 20)

typedef struct {
    const cx_train_config *cfg;
    cx_dist dist;      /* a copy; size 1 for one process */
    char *dir, *config_path, *ckpt_path, *log_path;
    char *config_text;
    cx_dataset ds;
    cx_run_meta meta;
    cx_vocab vocab;
    cx_model model;
    cx_loss *loss;
    cx_vocab_sampler *vocab_sampler;
    cx_sampler *sampler;
    cx_optim optim;
    cx_schedule schedule;
    int64_t *milestones;
    int batch;         /* the global batch */
    int local_batch;   /* this process's rows of it: batch / dist.size */
    int64_t last_ckpt_step; /* step of the newest checkpoint on disk, -1 when none */
    int resuming;      /* a checkpoint will replace the initial weights */
    /* per-step buffers */
    uint32_t *order;   /* (n) this epoch's sample order */
    float *x;          /* (batch, in_dim) */
    /* A frozen image tower's features of every training row, computed once before the first
     * step (without image augmentation they are the same every epoch; with it there is no
     * cache): (n, D), owned, or NULL.
     * feat_x holds one batch of them, (local_batch, D). */
    float *feat, *feat_x;
    /* Augmentation (aug.* keys): aug_on / text_on say whether any is set; without them the
     * step reads t->x as before. aug_in (local_batch, in_dim) holds the gathered rows,
     * aug_samples (local_batch) their stored-file indices, caption2 (CAPTION_MAX) scratch. */
    cx_aug_config aug;
    cx_aug_shape aug_shape;
    cx_aug_synonyms synonyms;
    int aug_on, text_on;
    float *aug_in;
    uint64_t *aug_samples;
    char *caption2;
    int dino;          /* objective dino: views, targets and loss in dino_step */
    cx_dino_step dino_step;
    int declip;        /* objective declip: two views of images and captions in declip_step */
    cx_declip_step declip_step;
    int32_t *labels;   /* (batch) labels of the whole global batch */
    int32_t *tokens;   /* (batch, max_tokens), CLIP */
    cx_caption_tokens caption_tokens; /* CLIP: every training caption's ids, made once */
    char *caption;     /* (CAPTION_MAX) */
    float *shard_buf;  /* (largest gradient shard) reduce-scatter scratch, several processes */
    float *own_grad;   /* the params' own gradient and value buffers while the shared ones */
    float *own_value;  /* stand in (several processes on one machine) */
    /* The last update left the gradient's [zeroed_lo, zeroed_hi) zero (it zeroes what it
     * reads), so the next step zeroes only the rest. */
    int grad_zeroed;
    size_t zeroed_lo, zeroed_hi;
    /* log lines of finished epochs, owned */
    char **log_lines;
    int64_t nlog;
    int lock_fd;       /* the run folder's lock (rank 0), held until the trainer is freed */
    uint64_t max_memory; /* hooks' limit in bytes, 0: the machine's available memory */
} trainer;

static void trainer_free(trainer *t)
{
    if (t->own_grad) { /* the shared buffers belong to t->dist */
        t->model.params.grad = t->own_grad;
        t->model.params.value = t->own_value;
    }
    cx_dirlock_release(&t->lock_fd);
    free(t->dir);
    free(t->config_path);
    free(t->ckpt_path);
    free(t->log_path);
    free(t->config_text);
    cx_dataset_free(&t->ds);
    cx_run_meta_free(&t->meta);
    cx_vocab_free(&t->vocab);
    cx_model_free(&t->model);
    cx_loss_free(t->loss);
    cx_vocab_sampler_free(t->vocab_sampler);
    cx_sampler_free(t->sampler);
    cx_optim_free(&t->optim);
    free(t->milestones);
    free(t->order);
    free(t->x);
    free(t->feat);
    free(t->feat_x);
    free(t->labels);
    free(t->tokens);
    cx_caption_tokens_free(&t->caption_tokens);
    free(t->caption);
    free(t->shard_buf);
    free(t->aug_in);
    free(t->aug_samples);
    free(t->caption2);
    cx_aug_synonyms_free(&t->synonyms);
    cx_dino_step_free(&t->dino_step);
    cx_declip_step_free(&t->declip_step);
    for (int64_t i = 0; i < t->nlog; i++)
        free(t->log_lines[i]);
    free(t->log_lines);
}

static cx_status make_paths(trainer *t, const char *run_dir, cx_err *err)
{
    t->dir = cx_path_join(NULL, run_dir);
    t->config_path = cx_run_path(run_dir, CX_RUN_CONFIG);
    t->ckpt_path = cx_run_path(run_dir, CX_RUN_CKPT);
    t->log_path = cx_run_path(run_dir, CX_RUN_LOG);
    if (!t->dir || !t->config_path || !t->ckpt_path || !t->log_path)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", run_dir);
    return CX_OK;
}

/* A train killed between naming a temporary file and renaming it over its target leaves the
 * temporary behind (lib/base/afile.c); under the folder's lock no live writer owns one. */
static void sweep_temporaries(const trainer *t)
{
    cx_afile_sweep(t->config_path);
    cx_afile_sweep(t->ckpt_path);
    cx_afile_sweep(t->log_path);
}

/* ---- setup --------------------------------------------------------------------------------- */

static cx_status load_data(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    if (!cfg->data)
        return cx_fail(err, CX_EUSAGE, "no dataset: the configuration's key data is not set");
    cx_load_options opt = {0};
    opt.parts = CX_LOAD_TRAIN | CX_LOAD_IMAGES;
    if (cx_cfg_objective_has_text((int)cfg->objective))
        opt.parts |= CX_LOAD_CAPTIONS;
    opt.subset_path = cfg->subset;
    cx_status st = cx_dataset_load(cfg->data, &opt, &t->ds, err);
    if (st)
        return st;
    const cx_split *s = &t->ds.train;
    if (s->n == 0 && cfg->subset)
        return cx_fail(err, CX_EDATA, "%s: the subset holds no samples", cfg->subset);
    if (s->n == 0)
        return cx_fail(err, CX_EDATA, "%s: the training split holds no samples", cfg->data);
    if (cx_cfg_objective_has_text((int)cfg->objective) && !s->captions && t->ds.num_templates < 1)
        return cx_fail(err, CX_EUSAGE, "%s: objective clip needs captions or prompt templates, and "
                       "the dataset has neither; add captions or templates to it, or use "
                       "objective: sl", cfg->data);
    int64_t steps = cfg->drop_last ? (int64_t)(s->n / (size_t)cfg->batch)
                                   : (int64_t)((s->n + (size_t)cfg->batch - 1) / (size_t)cfg->batch);
    if (steps < 1)
        return cx_fail(err, CX_EUSAGE, "%s: %zu training samples make no full batch of %lld; lower "
                       "batch or set drop_last: false", cfg->data, s->n, (long long)cfg->batch);
    t->batch = (int)cfg->batch;
    int world = t->dist.size;
    if (world > 1 && (cfg->batch % world != 0 || !cfg->drop_last))
        return cx_fail(err, CX_EUSAGE, "with %d processes the batch (%lld) must divide evenly "
                       "among them and drop_last must be true", world, (long long)cfg->batch);
    t->local_batch = t->batch / world;
    return CX_OK;
}

static cx_status fill_meta(trainer *t, cx_err *err)
{
    cx_run_meta *m = &t->meta;
    const cx_split *s = &t->ds.train;
    int C = t->ds.num_classes;
    m->shape.num_classes = C;
    m->shape.in_rank = s->rank;
    for (int d = 0; d < s->rank; d++)
        m->shape.in_shape[d] = (int64_t)s->shape[d];
    m->num_eval_classes = t->ds.num_eval_classes;
    m->class_names = calloc((size_t)C, sizeof *m->class_names);
    m->class_counts = calloc((size_t)C, sizeof *m->class_counts);
    size_t nlen = strlen(t->ds.name) + 1;
    m->dataset = malloc(nlen);
    if (!m->class_names || !m->class_counts || !m->dataset)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    memcpy(m->dataset, t->ds.name, nlen);
    for (int c = 0; c < C; c++) {
        size_t n = strlen(t->ds.class_names[c]) + 1;
        if (!(m->class_names[c] = malloc(n)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        memcpy(m->class_names[c], t->ds.class_names[c], n);
    }
    cx_stats_counts(s->y, s->n, C, m->class_counts);
    m->shape.train_samples = (int64_t)s->n;
    const cx_train_config *cfg = t->cfg;
    m->steps_per_epoch = cfg->drop_last ? (int64_t)(s->n / (size_t)cfg->batch)
                                        : (int64_t)((s->n + (size_t)cfg->batch - 1) / (size_t)cfg->batch);
    m->total_steps = m->steps_per_epoch * cfg->epochs;
    return CX_OK;
}

/* A CLIP run to start the text tower from, or whose text embeddings make the frozen head. */
static cx_status open_source_run(const char *dir, const char *key, cx_run *src, cx_err *err)
{
    cx_status st = cx_run_open(dir, 256, src, err);
    if (st)
        return cx_err_prefix(err, st, "%s", key);
    if (!cx_cfg_objective_has_text((int)src->cfg.objective)) {
        cx_run_close(src);
        return cx_fail(err, CX_EUSAGE, "%s: %s is not a CLIP run (it has no text tower)", key, dir);
    }
    return CX_OK;
}

static int same_class_list(const cx_run_meta *a, const cx_dataset *ds)
{
    if (a->shape.num_classes != ds->num_classes)
        return 0;
    for (int c = 0; c < ds->num_classes; c++)
        if (strcmp(a->class_names[c], ds->class_names[c]) != 0)
            return 0;
    return 1;
}

/* "(a, b, c)" of a tensor's shape into buf. */
static const char *shape_text(const cx_param_info *in, char *buf, size_t cap)
{
    size_t pos = 0;
    buf[0] = '\0';
    for (int d = 0; d < in->ndim && pos + 1 < cap; d++) {
        int w = snprintf(buf + pos, cap - pos, "%s%d", d ? ", " : "(", in->shape[d]);
        pos += w > 0 ? (size_t)w : 0;
    }
    if (pos + 1 < cap)
        snprintf(buf + pos, cap - pos, ")");
    return buf;
}

/* Copy every tensor whose name starts with prefix from src's parameters into dst's; key names
 * the setting (model.text.init, model.image.init) and what (text, image) the tower in messages.
 * Both must hold the same tensors of that prefix with the same shapes. */
static cx_status copy_params(const cx_params *src, cx_params *dst, const char *prefix,
                             const char *from, const char *key, const char *what, cx_err *err)
{
    size_t np = strlen(prefix);
    int nsrc = 0, ndst = 0;
    for (int t = 0; t < src->count; t++)
        nsrc += strncmp(src->info[t].name, prefix, np) == 0;
    for (int t = 0; t < dst->count; t++) {
        const cx_param_info *in = &dst->info[t];
        if (strncmp(in->name, prefix, np) != 0)
            continue;
        ndst++;
        int s = cx_params_find(src, in->name);
        if (s < 0)
            return cx_fail(err, CX_EUSAGE, "%s: %s has no tensor %s; the %s tower settings must "
                           "match that run's", key, from, in->name, what);
        const cx_param_info *si = &src->info[s];
        int same = si->ndim == in->ndim;
        for (int d = 0; same && d < in->ndim; d++)
            same = si->shape[d] == in->shape[d];
        if (!same) {
            char a[96], b[96];
            return cx_fail(err, CX_EUSAGE, "%s: %s holds %s of shape %s, this run's is %s; the %s "
                           "tower settings must match that run's", key, from, in->name,
                           shape_text(si, a, sizeof a), shape_text(in, b, sizeof b), what);
        }
        memcpy(cx_param_value(dst, t), cx_param_value(src, s), sizeof(float) * in->size);
    }
    if (nsrc != ndst)
        return cx_fail(err, CX_EUSAGE, "%s: %s's %s tower has %d tensors, this run's %d; the %s "
                       "tower settings must match that run's", key, from, what, nsrc, ndst, what);
    return CX_OK;
}

/* Settings of a copied tower that change what it computes but not its tensors' shapes: they
 * must match, or the copy would pass the shape checks and compute another function. The key
 * that differs, or NULL. */
static const char *tower_function_mismatch(const cx_train_config *src, const cx_train_config *cfg,
                                           int text)
{
    if (text) {
        if (cfg->model.text.type != CX_CFG_TEXT_TRANSFORMER)
            return NULL;
        if (src->model.text.heads != cfg->model.text.heads)
            return "model.text.heads";
        if (src->model.text.causal != cfg->model.text.causal)
            return "model.text.causal";
        if (src->model.text.pool != cfg->model.text.pool)
            return "model.text.pool";
        return NULL;
    }
    if (cfg->model.image.type == CX_CFG_IMAGE_VIT) {
        if (src->model.image.heads != cfg->model.image.heads)
            return "model.image.heads";
        if (src->model.image.pool != cfg->model.image.pool)
            return "model.image.pool";
    }
    if (cfg->model.image.type == CX_CFG_IMAGE_MLP && src->model.image.act != cfg->model.image.act)
        return "model.image.act";
    return NULL;
}

/* model.image.init: the image tower of another run (any objective), same type and shapes. */
static cx_status copy_image_tower(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    const char *from = cfg->model.image.init;
    cx_run src;
    const char *key;
    cx_status st = cx_run_open(from, 1, &src, err);
    if (st)
        return cx_err_prefix(err, st, "model.image.init");
    if (src.cfg.model.image.type != cfg->model.image.type) {
        st = cx_fail(err, CX_EUSAGE, "model.image.init: %s has a %s image tower, this run a %s "
                     "one; set model.image.type to match", from,
                     cx_conf_enum_name(&cx_train_config_schema, "model.image.type",
                                       (int)src.cfg.model.image.type),
                     cx_conf_enum_name(&cx_train_config_schema, "model.image.type",
                                       (int)cfg->model.image.type));
    } else if ((key = tower_function_mismatch(&src.cfg, cfg, 0))) {
        st = cx_fail(err, CX_EUSAGE, "model.image.init: %s's image tower has another %s; set "
                     "%s to match", from, key, key);
    } else if (src.model.spec.in_dim != t->model.spec.in_dim) {
        st = cx_fail(err, CX_EUSAGE, "model.image.init: %s's image tower takes %d input values, "
                     "this data's samples hold %d", from, src.model.spec.in_dim,
                     t->model.spec.in_dim);
    } else {
        st = copy_params(&src.model.params, &t->model.params, "image.", from, "model.image.init",
                         "image", err);
    }
    cx_run_close(&src);
    return st;
}

/* head: text without head_from: the dataset's class_embeddings are the frozen head. */
static cx_status head_from_class_embeddings(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    if (!t->ds.class_embeddings_path)
        return cx_fail(err, CX_EUSAGE, "head: text needs head_from: the folder of a CLIP run "
                       "whose text tower embeds the class prompts, or a dataset that names "
                       "class_embeddings (%s names none)", cfg->data);
    float *w;
    int D;
    cx_status st = cx_dataset_class_embeddings(&t->ds, &w, &D, err);
    if (st)
        return st;
    int want = t->model.spec.embed_dim;
    if (D != want) {
        /* Against an identity tower both sides are data; against a tower, its configured size. */
        if (t->model.spec.image_kind == CX_IMAGE_IDENTITY)
            st = cx_fail(err, CX_EDATA, "%s: class embeddings of %d dimensions, but the training "
                         "features (%s) have %d", t->ds.class_embeddings_path, D,
                         t->ds.train.images_path, want);
        else
            st = cx_fail(err, CX_EUSAGE, "head: text: %s holds class embeddings of %d "
                         "dimensions, the image tower outputs %d; set model.image.dim: %d",
                         t->ds.class_embeddings_path, D, want, D);
    } else {
        memcpy(cx_param_value(&t->model.params, t->model.head.w), w,
               sizeof *w * (size_t)t->ds.num_classes * (size_t)D);
    }
    free(w);
    return st;
}

/* The heap this process holds (the data, and buffers allocated but not yet written) plus
 * `more` to come, against hooks' max_memory or what the machine has available. */
static cx_status check_memory(const trainer *t, uint64_t more, cx_err *err)
{
    /* Without the C library's figures (a sanitizer's allocator, another libc) the estimate is
     * what is about to be allocated alone. */
    uint64_t need = cx_heap_allocated() + more;
    if (!need)
        return CX_OK;
    uint64_t limit = t->max_memory;
    if (!limit && cx_memory_available(&limit, NULL))
        return CX_OK;
    if (need <= limit)
        return CX_OK;
    char a[32], b[32];
    return cx_fail(err, CX_EUSAGE,
                   "the run needs about %s (data, parameters, optimiser state, step buffers), "
                   "more than %s%s; use a smaller model, batch or subset",
                   cx_bytes_human(need, a, sizeof a), cx_bytes_human(limit, b, sizeof b),
                   t->max_memory ? " (--max-memory)" : " of memory available");
}

static cx_status build_model(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    cx_status st;
    cx_run text_src;
    int have_text_src = 0;
    memset(&text_src, 0, sizeof text_src);
    if (cx_cfg_objective_has_text((int)cfg->objective)) {
        if (strcmp(cfg->model.text.init, "random") != 0) {
            if ((st = open_source_run(cfg->model.text.init, "model.text.init", &text_src, err)))
                return st;
            have_text_src = 1;
            /* The text tower keeps the vocabulary it was trained with. */
            char *text = cx_vocab_serialize(&text_src.vocab);
            st = text ? cx_vocab_deserialize(text, &t->vocab, err)
                      : cx_fail(err, CX_ENOMEM, "out of memory");
            free(text);
        } else {
            st = cx_tokens_vocab(&t->ds, cfg->model.text.min_count,
                                 cfg->model.text.type == CX_CFG_TEXT_TRANSFORMER, &t->vocab, err);
        }
        if (st)
            goto fail;
        t->meta.shape.vocab_size = t->vocab.size;
        if (!(t->meta.vocab_text = cx_vocab_serialize(&t->vocab))) {
            st = cx_fail(err, CX_ENOMEM, "out of memory");
            goto fail;
        }
    }
    cx_model_spec spec;
    /* DINO runs its towers once over both views of the batch. */
    int two_views = cfg->objective == CX_CFG_OBJECTIVE_DINO || cfg->objective == CX_CFG_OBJECTIVE_DECLIP;
    int rows = two_views ? 2 * t->local_batch : t->local_batch;
    if ((st = cx_spec_model(cfg, &t->meta.shape, rows, &spec, err)))
        goto fail;
    spec.world = t->dist.size;
    cx_optim_config ocfg;
    cx_spec_optim(cfg, &ocfg);
    int slots = cx_optim_slots(&ocfg);
    /* Weighed twice before anything large is written: the parameters (zeroed when allocated)
     * from their declaration, then the step buffers once allocated (not yet touched). */
    if ((st = cx_model_declare(&t->model, &spec, err)) ||
        (st = check_memory(t, cx_model_param_bytes(&t->model, slots), err)) ||
        (st = cx_model_alloc(&t->model, slots, err)) || (st = check_memory(t, 0, err)))
        goto fail;
    cx_model_init_params(&t->model, (uint64_t)cfg->seed);
    if (have_text_src) {
        if (text_src.cfg.model.text.type != cfg->model.text.type) {
            st = cx_fail(err, CX_EUSAGE, "model.text.init: %s has a %s text tower, this run a %s "
                         "one; set model.text.type to match", cfg->model.text.init,
                         cx_conf_enum_name(&cx_train_config_schema, "model.text.type",
                                           (int)text_src.cfg.model.text.type),
                         cx_conf_enum_name(&cx_train_config_schema, "model.text.type",
                                           (int)cfg->model.text.type));
            goto fail;
        }
        if (text_src.cfg.model.text.dim != cfg->model.text.dim ||
            text_src.model.spec.embed_dim != t->model.spec.embed_dim) {
            st = cx_fail(err, CX_EUSAGE, "model.text.init: %s has token dimension %lld and "
                         "embedding dimension %d; set model.text.dim and model.image.dim to match",
                         cfg->model.text.init, (long long)text_src.cfg.model.text.dim,
                         text_src.model.spec.embed_dim);
            goto fail;
        }
        const char *key = tower_function_mismatch(&text_src.cfg, cfg, 1);
        if (key) {
            st = cx_fail(err, CX_EUSAGE, "model.text.init: %s's text tower has another %s; set %s "
                         "to match", cfg->model.text.init, key, key);
            goto fail;
        }
        if ((st = copy_params(&text_src.model.params, &t->model.params, "text.",
                              cfg->model.text.init, "model.text.init", "text", err)))
            goto fail;
    }
    /* On resume the checkpoint holds the tower: the source run need not exist any more. */
    if (strcmp(cfg->model.image.init, "random") != 0 && !t->resuming) {
        if ((st = copy_image_tower(t, err)))
            goto fail;
        /* DINO's teacher starts as its student: the copied tower too. */
        cx_model_teacher_update(&t->model, 0.0);
    }
    if (cfg->objective == CX_CFG_OBJECTIVE_SL && cfg->head == CX_CFG_HEAD_TEXT && !cfg->head_from) {
        st = head_from_class_embeddings(t, err);
    } else if (cfg->objective == CX_CFG_OBJECTIVE_SL && cfg->head == CX_CFG_HEAD_TEXT) {
        cx_run head_src;
        if ((st = open_source_run(cfg->head_from, "head_from", &head_src, err)))
            goto fail;
        if (!same_class_list(&head_src.meta, &t->ds)) {
            st = cx_fail(err, CX_EUSAGE, "head_from: %s was trained on another class list (%d "
                         "classes) than %s (%d classes); use a CLIP run of the same dataset",
                         cfg->head_from, head_src.meta.shape.num_classes, cfg->data,
                         t->ds.num_classes);
        } else if (head_src.model.spec.embed_dim != t->model.spec.embed_dim) {
            st = cx_fail(err, CX_EUSAGE, "head_from: %s embeds into %d dimensions; set "
                         "model.image.dim: %d", cfg->head_from, head_src.model.spec.embed_dim,
                         head_src.model.spec.embed_dim);
        } else {
            st = cx_tokens_class_embeddings(&head_src.model, &head_src.vocab, t->ds.class_names,
                                          t->ds.num_classes, t->ds.templates, t->ds.num_templates,
                                          cx_param_value(&t->model.params, t->model.head.w), err);
        }
        cx_run_close(&head_src);
    }
fail:
    if (have_text_src)
        cx_run_close(&text_src);
    return st;
}

/* The aug.* keys against the data's kind: image operations need image-shaped samples,
 * feature dropout vectors; EDA's synonyms are the class synonyms and aug.synonyms. */
static cx_status setup_aug(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    const cx_split *s = &t->ds.train;
    cx_spec_aug(cfg, &t->aug);
    t->aug_on = cx_aug_active(&t->aug);
    t->text_on = cx_cfg_objective_has_text((int)cfg->objective) && cx_aug_text_active(&t->aug);
    cx_aug_synonyms_init(&t->synonyms);
    int image = s->rank >= 2;
    cx_aug_shape *sh = &t->aug_shape;
    sh->d = s->dim;
    if (image) {
        sh->c = s->rank == 3 ? (int)s->shape[0] : 1;
        sh->h = (int)s->shape[s->rank - 2];
        sh->w = (int)s->shape[s->rank - 1];
    }
    const char *image_key = t->aug.crop ? "aug.crop_scale" : t->aug.flip ? "aug.flip"
                            : t->aug.erase_p > 0 ? "aug.erase" : NULL;
    if (!image && image_key)
        return cx_fail(err, CX_EUSAGE, "%s: the training samples of %s are vectors of %zu "
                       "values, not images; use aug.noise or aug.dropout on vectors",
                       image_key, cfg->data, s->dim);
    if (image && t->aug.dropout > 0)
        return cx_fail(err, CX_EUSAGE, "aug.dropout: feature dropout applies to vectors, and "
                       "the training samples of %s are images; use aug.erase or aug.noise",
                       cfg->data);
    size_t B = (size_t)t->local_batch;
    if (t->aug_on && !(t->aug_in = malloc(sizeof *t->aug_in * B * s->dim)))
        return cx_fail(err, CX_ENOMEM, "out of memory for augmentation buffers");
    if ((t->aug_on || t->dino || t->declip) && !(t->aug_samples = malloc(sizeof *t->aug_samples * B)))
        return cx_fail(err, CX_ENOMEM, "out of memory for augmentation buffers");
    if (!t->text_on)
        return CX_OK;
    if (!(t->caption2 = malloc(CAPTION_MAX)))
        return cx_fail(err, CX_ENOMEM, "out of memory for augmentation buffers");
    cx_status st;
    for (int c = 0; c < t->ds.num_classes; c++)
        if ((st = cx_aug_synonyms_add(&t->synonyms, (const char *const *)t->ds.synonyms[c],
                                      (size_t)t->ds.num_synonyms[c], err)))
            return st;
    if (cfg->aug.synonyms &&
        (st = cx_aug_synonyms_add_file(&t->synonyms, cfg->aug.synonyms, err)))
        return cx_err_prefix(err, st, "aug.synonyms");
    return CX_OK;
}

/* Vocabulary subsampling weighs classes by their training counts, or by vocab.freqs (caption
 * mentions), which can give a class without samples a chance to be drawn. */
static cx_status create_vocab_sampler(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    int C = t->ds.num_classes;
    int64_t *freqs = NULL;
    if (cfg->vocab.freqs) {
        cx_status st;
        if (!(freqs = malloc((size_t)C * sizeof *freqs)))
            return cx_fail(err, CX_ENOMEM, "out of memory");
        if ((st = cx_freq_read(cfg->vocab.freqs, t->ds.class_names, C, freqs, err))) {
            free(freqs);
            return cx_err_prefix(err, st, "vocab.freqs");
        }
    }
    cx_status st = cx_vocab_sampler_create(&t->vocab_sampler, C, (int)cfg->vocab.k,
                                           cx_spec_vocab_weight(cfg),
                                           freqs ? freqs : t->meta.class_counts, err);
    free(freqs);
    return st;
}

static cx_status build_training(trainer *t, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    cx_status st;
    const cx_split *s = &t->ds.train;
    int C = t->ds.num_classes;
    if (cfg->objective == CX_CFG_OBJECTIVE_SL) {
        cx_loss_config lcfg;
        cx_spec_loss(cfg, &lcfg);
        if ((st = cx_loss_create(&t->loss, &lcfg, t->meta.class_counts, C, t->local_batch, err)))
            return st;
        if (cfg->vocab.k > 0 && (st = create_vocab_sampler(t, err)))
            return st;
    }
    if ((st = cx_sampler_create(&t->sampler, cx_spec_sampler(cfg), s->y, s->n, C,
                                (uint64_t)cfg->seed, err)))
        return st;
    cx_optim_config ocfg;
    cx_spec_optim(cfg, &ocfg);
    if ((st = cx_optim_init(&t->optim, &ocfg, &t->model.params, err)))
        return st;
    t->milestones = calloc(cfg->optim.milestones.n + 1, sizeof *t->milestones);
    t->order = malloc(sizeof *t->order * s->n);
    t->x = malloc(sizeof *t->x * (size_t)t->local_batch * s->dim);
    t->labels = malloc(sizeof *t->labels * (size_t)t->batch);
    t->caption = malloc(CAPTION_MAX);
    if (cx_cfg_objective_has_text((int)cfg->objective))
        /* DeCLIP: the original captions, then their EDA view. */
        t->tokens = malloc(sizeof *t->tokens * (size_t)t->local_batch *
                           (cfg->objective == CX_CFG_OBJECTIVE_DECLIP ? 2 : 1) *
                           (size_t)cfg->model.text.max_tokens);
    if (!t->milestones || !t->order || !t->x || !t->labels || !t->caption ||
        (cx_cfg_objective_has_text((int)cfg->objective) && !t->tokens))
        return cx_fail(err, CX_ENOMEM, "out of memory for training buffers");
    t->dino = cfg->objective == CX_CFG_OBJECTIVE_DINO;
    if (t->dino &&
        (st = cx_dino_step_init(&t->dino_step, &t->model, t->local_batch, (int)cfg->dino.sample_k,
                                (int)cfg->dino.sinkhorn_iters, cfg->dino.student_temp,
                                cfg->dino.teacher_temp, &t->dist, err)))
        return st;
    t->declip = cfg->objective == CX_CFG_OBJECTIVE_DECLIP;
    if (t->declip && t->dist.size > 1)
        return cx_fail(err, CX_EUSAGE, "objective declip trains in one process (%d were started); "
                       "run it without MPI", t->dist.size);
    if (t->declip &&
        (st = cx_declip_step_init(&t->declip_step, &t->model, t->local_batch, cfg->declip.mv,
                                  cfg->declip.nns, cfg->declip.iss, err)))
        return st;
    if ((st = setup_aug(t, err)))
        return st;
    /* EDA changes captions every step: those are tokenised per batch (DeCLIP keeps the
     * originals too: its EDA view is the second). */
    if (cx_cfg_objective_has_text((int)cfg->objective) && (!t->text_on || t->declip) &&
        (st = cx_caption_tokens_init(&t->caption_tokens, &t->ds, &t->vocab,
                                     (int)cfg->model.text.max_tokens, CAPTION_TOKENS_MAX_BYTES,
                                     err)))
        return st;
    cx_spec_schedule(cfg, t->meta.steps_per_epoch, t->milestones, &t->schedule);
    if (t->dist.size > 1 &&
        !(t->shard_buf = malloc(sizeof(float) * cx_dist_shard_max(&t->dist, t->model.params.total))))
        return cx_fail(err, CX_ENOMEM, "out of memory for gradient shards");
    return CX_OK;
}

/* ---- log ----------------------------------------------------------------------------------- */

/* Keep the lines of the first `epochs` epochs of an existing log (a resumed run's history);
 * *found receives how many lines the file held (-1: no file). */
static cx_status read_log(trainer *t, int64_t epochs, int64_t *found, cx_err *err)
{
    *found = -1;
    FILE *fp = fopen(t->log_path, "r");
    if (!fp)
        return CX_OK;
    *found = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    cx_status st = CX_OK;
    t->log_lines = calloc((size_t)(epochs > 0 ? epochs : 1), sizeof *t->log_lines);
    if (!t->log_lines)
        st = cx_fail(err, CX_ENOMEM, "out of memory");
    while (!st && (len = getline(&line, &cap, fp)) > 0) {
        ++*found;
        if (t->nlog == epochs)
            continue; /* a line of an epoch the checkpoint does not hold: counted, dropped */
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        t->log_lines[t->nlog] = line;
        line = NULL;
        cap = 0;
        t->nlog++;
    }
    free(line);
    fclose(fp);
    return st;
}

/* The whole log, atomically (rank 0): a killed write leaves the previous one. */
static cx_status rewrite_log(trainer *t, cx_err *err)
{
    if (t->dist.rank != 0)
        return CX_OK;
    cx_afile f;
    cx_status st = cx_afile_open(&f, t->log_path, err);
    if (st)
        return st;
    for (int64_t i = 0; i < t->nlog; i++)
        fprintf(f.fp, "%s\n", t->log_lines[i]);
    return cx_afile_commit(&f, err);
}

static cx_status append_log(trainer *t, const cx_train_status *s, cx_err *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_json j;
    cx_json_init(&j, mem, 0);
    cx_json_begin_object(&j);
    cx_json_key(&j, "epoch");
    cx_json_int(&j, s->epoch);
    cx_json_key(&j, "step");
    cx_json_int(&j, s->step);
    cx_json_key(&j, "loss");
    cx_json_double(&j, s->loss);
    cx_json_key(&j, "lr");
    cx_json_double(&j, s->lr);
    cx_json_key(&j, "seconds");
    cx_json_number(&j, s->seconds);
    cx_json_key(&j, "samples_per_s");
    cx_json_number(&j, s->samples_per_s);
    cx_json_key(&j, "logit_scale");
    cx_json_number(&j, s->logit_scale);
    cx_json_end_object(&j);
    if (fclose(mem) != 0) {
        free(text);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    char **lines = realloc(t->log_lines, sizeof *lines * (size_t)(t->nlog + 1));
    if (!lines) {
        free(text);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    t->log_lines = lines;
    t->log_lines[t->nlog++] = text;
    return rewrite_log(t, err);
}

/* Fields of the last epoch's evaluation join its line: `{...,FIELDS}`. */
static cx_status amend_last_log_line(trainer *t, const char *fields, cx_err *err)
{
    if (t->nlog <= 0 || !fields || !fields[0])
        return CX_OK;
    char *old = t->log_lines[t->nlog - 1];
    size_t n = strlen(old), k = strlen(fields);
    if (n < 2 || old[n - 1] != '}')
        return cx_fail(err, CX_EDATA, "%s: the last line is not a JSON object", t->log_path);
    char *line = malloc(n + k + 2);
    if (!line)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    memcpy(line, old, n - 1);
    line[n - 1] = ',';
    memcpy(line + n, fields, k);
    memcpy(line + n + k, "}", 2);
    free(old);
    t->log_lines[t->nlog - 1] = line;
    return rewrite_log(t, err);
}

/* The checkpoint of the epoch just logged was not written: take its line back out of the log,
 * so the log never gets ahead of the checkpoint. Best effort; the write error is what is reported. */
static void drop_last_log_line(trainer *t)
{
    if (t->nlog <= 0)
        return;
    free(t->log_lines[--t->nlog]);
    cx_err ignored;
    (void)rewrite_log(t, &ignored);
}

/* ---- the loop ------------------------------------------------------------------------------ */

/* Rank 0 writes; every rank learns whether it worked, so all stop together if not. Each rank
 * updated only its shard of the optimiser state: gather them first. */
static cx_status save_ckpt(trainer *t, cx_err *err)
{
    cx_status st = CX_OK;
    cx_params *p = &t->model.params;
    for (int slot = 0; slot < p->nslots && !st; slot++)
        st = cx_dist_allgather_shards(&t->dist, p->state + (size_t)slot * p->total, p->total, err);
    if (!st && t->dist.rank == 0)
        st = cx_run_write_ckpt(t->ckpt_path, &t->meta, t->config_text, &t->model, &t->optim, err);
    st = cx_dist_agree(&t->dist, st, err);
    if (!st)
        t->last_ckpt_step = t->meta.step;
    return st;
}

/* The optimiser update. Several processes sum their gradients (a CLIP or SL rank's gradient is
 * already its share of the global loss's), each updates only its shard of the parameters and the
 * shards are exchanged: the optimiser's memory pass, a fifth of a W1 step, is split. Without
 * clipping each process only needs its shard of the sum (a reduce-scatter, cheaper than an
 * all-reduce); clipping needs the whole gradient's norm, so then every process sums it all. */
static cx_status update(trainer *t, double lr, cx_err *err)
{
    cx_params *p = &t->model.params;
    cx_status st;
    int clip = t->cfg->optim.clip_grad > 0;
    if (t->dist.size <= 1) {
        if (clip)
            cx_optim_clip_grad(&t->optim, p, t->cfg->optim.clip_grad);
        cx_optim_step_range_zero(&t->optim, p, lr, 0, p->total);
        t->grad_zeroed = 1;
        t->zeroed_lo = 0;
        t->zeroed_hi = p->total;
        return CX_OK;
    }
    if (clip) {
        if ((st = cx_dist_allreduce_sum(&t->dist, p->grad, p->total, err)))
            return st;
        cx_optim_clip_grad(&t->optim, p, t->cfg->optim.clip_grad);
    } else if ((st = cx_dist_reduce_scatter_shards(&t->dist, p->grad, p->total, t->shard_buf, err))) {
        return st;
    }
    size_t lo, hi;
    cx_dist_shard(&t->dist, p->total, &lo, &hi);
    cx_optim_step_range_zero(&t->optim, p, lr, lo, hi);
    t->grad_zeroed = 1;
    t->zeroed_lo = lo;
    t->zeroed_hi = hi;
    return cx_dist_allgather_shards(&t->dist, p->value, p->total, err);
}

/* A zero gradient for the next step: what the last update did not zero already. */
static void zero_grad(trainer *t)
{
    cx_params *p = &t->model.params;
    if (!t->grad_zeroed) {
        cx_params_zero_grad(p);
        return;
    }
    memset(p->grad, 0, sizeof(float) * t->zeroed_lo);
    memset(p->grad + t->zeroed_hi, 0, sizeof(float) * (p->total - t->zeroed_hi));
}

/* The frozen tower's features of all training rows, in batches of the model's size (the same
 * chunks in every process and on resume, so the same bits). */
static cx_status feature_cache(trainer *t, cx_err *err)
{
    const cx_split *s = &t->ds.train;
    size_t D = (size_t)t->model.spec.embed_dim, B = (size_t)t->local_batch;
    t->feat = malloc(sizeof *t->feat * s->n * D);
    t->feat_x = malloc(sizeof *t->feat_x * B * D);
    uint32_t *idx = malloc(sizeof *idx * B);
    if (!t->feat || !t->feat_x || !idx) {
        free(idx);
        return cx_fail(err, CX_ENOMEM, "out of memory for the frozen image tower's features of "
                       "%zu training samples (%zu floats each)", s->n, D);
    }
    for (size_t start = 0; start < s->n; start += B) {
        size_t nb = s->n - start < B ? s->n - start : B;
        for (size_t i = 0; i < nb; i++)
            idx[i] = (uint32_t)(start + i);
        cx_split_gather_f32(s, idx, nb, t->x);
        const float *f = cx_model_image_forward(&t->model, t->x, (int)nb);
        memcpy(t->feat + start * D, f, sizeof *f * nb * D);
    }
    free(idx);
    return CX_OK;
}

static cx_status run_epochs(trainer *t, const cx_train_hooks *hooks, cx_err *err)
{
    const cx_train_config *cfg = t->cfg;
    cx_run_meta *meta = &t->meta;
    const cx_split *s = &t->ds.train;
    int64_t spe = meta->steps_per_epoch;
    cx_train_status status = {0};
    status.total_steps = meta->total_steps;
    status.epochs = cfg->epochs;
    /* Augmented inputs differ every step: a frozen tower then runs on each batch. */
    if (t->model.spec.image_frozen && t->model.spec.image_kind != CX_IMAGE_IDENTITY &&
        meta->step < meta->total_steps && !t->feat && !t->aug_on && !t->dino &&
        !t->declip) {
        cx_status st = feature_cache(t, err);
        if ((st = cx_dist_agree(&t->dist, st, err)))
            return st;
    }
    const size_t D = (size_t)t->model.spec.embed_dim;
    while (meta->step < meta->total_steps) {
        int64_t epoch = meta->step / spe; /* 0-based */
        cx_sampler_epoch(t->sampler, epoch, t->order);
        uint64_t caption_seed = cx_rng_stream(TAG_CAPTIONS, (uint64_t)cfg->seed, (uint64_t)epoch);
        double epoch_start = cx_clock_seconds(), io_seconds = 0.0;
        int64_t samples_this_session = 0;
        for (int64_t k = meta->step % spe; k < spe; k++) {
            size_t first = (size_t)(k * t->batch);
            int G = (int)(s->n - first < (size_t)t->batch ? s->n - first : (size_t)t->batch);
            const uint32_t *global_rows = t->order + first;
            /* Every process knows the whole global batch's order; it computes its own rows. */
            int B = G / t->dist.size, offset = t->dist.rank * B;
            const uint32_t *rows = global_rows + offset;
            if (t->feat)
                for (int i = 0; i < B; i++)
                    memcpy(t->feat_x + (size_t)i * D, t->feat + (size_t)rows[i] * D,
                           sizeof *t->feat_x * D);
            else if (!t->aug_on || t->dino || t->declip) /* these make their two views */
                cx_split_gather_f32(s, rows, (size_t)B, t->x);
            else {
                cx_split_gather_f32(s, rows, (size_t)B, t->aug_in);
                for (int i = 0; i < B; i++)
                    t->aug_samples[i] = s->source_index[rows[i]];
                cx_aug_batch_view(&t->aug, &t->aug_shape, (uint64_t)cfg->seed,
                                  (uint64_t)meta->step, t->aug_samples, (size_t)B, 0, t->aug_in,
                                  t->x);
            }
            for (int i = 0; i < G; i++)
                t->labels[i] = s->y[global_rows[i]];
            zero_grad(t);
            double loss;
            cx_status st;
            if (t->dino) {
                for (int i = 0; i < B; i++)
                    t->aug_samples[i] = s->source_index[rows[i]];
                st = cx_dino_step_run(&t->dino_step, &t->model, &t->aug, &t->aug_shape,
                                      (uint64_t)cfg->seed, (uint64_t)meta->step, t->aug_samples,
                                      t->x, B, &loss, err);
            } else if (t->declip) {
                for (int i = 0; i < B; i++)
                    t->aug_samples[i] = s->source_index[rows[i]];
                size_t T = (size_t)cfg->model.text.max_tokens;
                int32_t *second = t->tokens + (size_t)B * T;
                cx_caption_tokens_batch(&t->caption_tokens, &t->ds, &t->vocab, rows, (size_t)B,
                                        caption_seed, t->tokens, t->caption, CAPTION_MAX);
                if (t->text_on)
                    cx_tokens_captions_view(&t->ds, &t->vocab, rows, (size_t)B, caption_seed,
                                            &t->aug, &t->synonyms, (uint64_t)cfg->seed,
                                            (uint64_t)meta->step, 1, (int)T, second, t->caption,
                                            t->caption2, CAPTION_MAX);
                else
                    memcpy(second, t->tokens, sizeof *second * (size_t)B * T);
                st = cx_declip_step_run(&t->declip_step, &t->model, &t->aug, &t->aug_shape,
                                        (uint64_t)cfg->seed, (uint64_t)meta->step,
                                        t->aug_samples, t->x, t->tokens, B, &loss, err);
            } else if (cfg->objective == CX_CFG_OBJECTIVE_CLIP) {
                if (t->text_on)
                    cx_tokens_captions_view(&t->ds, &t->vocab, rows, (size_t)B, caption_seed,
                                            &t->aug, &t->synonyms, (uint64_t)cfg->seed,
                                            (uint64_t)meta->step, 0,
                                            (int)cfg->model.text.max_tokens, t->tokens,
                                            t->caption, t->caption2, CAPTION_MAX);
                else
                    cx_caption_tokens_batch(&t->caption_tokens, &t->ds, &t->vocab, rows,
                                            (size_t)B, caption_seed, t->tokens, t->caption,
                                            CAPTION_MAX);
                st = t->feat ? cx_model_clip_step_dist_feat(&t->model, t->feat_x, t->tokens, B,
                                                            &t->dist, &loss, err)
                             : cx_model_clip_step_dist(&t->model, t->x, t->tokens, B, &t->dist,
                                                       &loss, err);
            } else {
                cx_rng rng;
                cx_rng_seed(&rng, (uint64_t)cfg->seed, cx_rng_stream(TAG_VOCAB, (uint64_t)meta->step, 0));
                const int32_t *mine = t->labels + offset;
                loss = t->feat ? cx_model_sl_step_global_feat(&t->model, t->feat_x, mine, B,
                                                              t->labels, G, offset, t->loss,
                                                              t->vocab_sampler, &rng, (int)epoch)
                               : cx_model_sl_step_global(&t->model, t->x, mine, B, t->labels, G,
                                                         offset, t->loss, t->vocab_sampler,
                                                         &rng, (int)epoch);
                st = cx_dist_allreduce_sum_f64(&t->dist, &loss, 1, err);
                loss /= (double)t->dist.size;
            }
            if (st)
                return st;
            if (!isfinite(loss)) {
                char kept[64] = "no checkpoint was written yet";
                if (t->last_ckpt_step >= 0)
                    snprintf(kept, sizeof kept, "the checkpoint of step %lld is kept",
                             (long long)t->last_ckpt_step);
                return cx_fail(err, CX_EDIVERGED, "step %lld (epoch %lld): the loss is %s; "
                               "training stopped and %s in %s; try a lower optim.lr or set "
                               "optim.clip_grad", (long long)meta->step + 1, (long long)epoch + 1,
                               isnan(loss) ? "NaN" : "infinite", kept, t->dir);
            }
            double lr = cx_schedule_lr(&t->schedule, meta->step);
            if ((st = update(t, lr, err)))
                return st;
            cx_model_clamp_logit_scale(&t->model);
            /* The teacher follows the updated student, its momentum rising to 1 by the end. */
            if (t->dino)
                cx_model_teacher_update(&t->model, cx_dino_momentum(cfg->dino.momentum, meta->step,
                                                                    meta->total_steps));
            meta->step++;
            meta->epoch_loss_sum += loss;
            meta->epoch_loss_steps++;
            samples_this_session += G;
            double elapsed = cx_clock_seconds() - epoch_start;
            status.step = meta->step;
            status.epoch = epoch + 1;
            status.loss = meta->epoch_loss_sum / (double)meta->epoch_loss_steps;
            status.lr = lr;
            status.seconds = elapsed;
            double busy = elapsed - io_seconds;
            status.samples_per_s = busy > 0 ? (double)samples_this_session / busy : 0.0;
            status.logit_scale = cx_model_logit_scale(&t->model);
            int last = k + 1 == spe;
            if (cfg->ckpt.every > 0 && meta->step % cfg->ckpt.every == 0 && !last) {
                double t0 = cx_clock_seconds();
                if ((st = save_ckpt(t, err)))
                    return st;
                io_seconds += cx_clock_seconds() - t0;
            }
            if (hooks && hooks->on_progress && !last)
                hooks->on_progress(hooks->ctx, &status, 0);
        }
        /* Epoch done: the log line, then the checkpoint that records it. */
        cx_status st = append_log(t, &status, err);
        if (st)
            return st;
        meta->epoch_loss_sum = 0.0;
        meta->epoch_loss_steps = 0;
        if ((st = save_ckpt(t, err))) {
            drop_last_log_line(t);
            return st;
        }
        if (hooks && hooks->on_progress)
            hooks->on_progress(hooks->ctx, &status, 1);
        /* Curves: the checkpoint just written, evaluated, joins the epoch's line (a kill
         * before this leaves the line without it). */
        int64_t done = epoch + 1;
        if (hooks && hooks->on_epoch_eval && cfg->eval.every > 0 &&
            (done % cfg->eval.every == 0 || done == cfg->epochs)) {
            char *fields = NULL;
            if ((st = hooks->on_epoch_eval(hooks->ctx, t->dir, done, &fields, err)))
                return st;
            st = amend_last_log_line(t, fields, err);
            free(fields);
            if (st)
                return st;
        }
    }
    return CX_OK;
}

/* ---- entry points -------------------------------------------------------------------------- */

static cx_status prepare(trainer *t, cx_err *err)
{
    cx_status st;
    cx_threads_set((int)t->cfg->threads);
    t->last_ckpt_step = -1;
    if ((st = load_data(t, err)) || (st = fill_meta(t, err)) || (st = build_model(t, err)) ||
        (st = build_training(t, err)) || (st = check_memory(t, 0, err)))
        return cx_dist_agree(&t->dist, st, err);
    if ((st = cx_dist_agree(&t->dist, CX_OK, err)))
        return st;
    /* Every rank got here: gradients and values may move to memory the processes share (the
     * reduce-scatter and the all-gather then read them in place; with clipping the gradients
     * go through an all-reduce instead). */
    float *grad = NULL, *value = NULL;
    cx_params *p = &t->model.params;
    if (t->dist.size > 1 && !(t->cfg->optim.clip_grad > 0) &&
        (st = cx_dist_share_buffers(&t->dist, p->total, &grad, &value, err)))
        return st;
    if (grad) {
        free(t->shard_buf); /* the reduce-scatter reads the others' shards in place */
        t->shard_buf = NULL;
        memcpy(value, p->value, sizeof *value * p->total);
        t->own_grad = p->grad;
        t->own_value = p->value;
        p->grad = grad;
        p->value = value;
    }
    return CX_OK;
}

/* The shared buffers are released collectively, so only when every rank finished
 * (on a failure the processes exit and the MPI job ends with them). */
static void release_shared(trainer *t, cx_status st)
{
    if (t->own_grad) {
        t->model.params.grad = t->own_grad;
        t->model.params.value = t->own_value;
        t->own_grad = t->own_value = NULL;
    }
    if (!st)
        cx_dist_unshare(&t->dist);
}

static void set_dist(trainer *t, const cx_dist *dist)
{
    if (dist) {
        t->dist = *dist;
    } else {
        memset(&t->dist, 0, sizeof t->dist);
        t->dist.size = 1;
    }
}

cx_status cx_train_new(const cx_train_config *cfg, const char *run_dir, int force,
                       const cx_train_hooks *hooks, const cx_dist *dist, cx_err *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.lock_fd = -1;
    t.cfg = cfg;
    t.max_memory = hooks ? hooks->max_memory : 0;
    set_dist(&t, dist);
    int lead = t.dist.rank == 0;
    cx_status st = cx_train_config_validate(cfg, err);
    if (!st)
        st = make_paths(&t, run_dir, err);
    if (!st)
        st = cx_dirlock_check(run_dir, "training into", err);
    if (!st && !force && (cx_path_exists(t.ckpt_path) || cx_path_exists(t.config_path)))
        st = cx_fail(err, CX_EUSAGE, "%s already holds a run: resume it, or replace it (force)",
                     run_dir);
    /* Everything that can be refused is checked before the folder is touched. */
    if (!st)
        st = prepare(&t, err);
    if (!st && !(t.config_text = cx_run_config_text(cfg)))
        st = cx_fail(err, CX_ENOMEM, "out of memory");
    if (!st && lead) {
        st = cx_mkdir_p(run_dir, err);
        if (!st)
            st = cx_dirlock_take(run_dir, "training into", &t.lock_fd, err);
        /* Under the lock: a run finished into the folder since the first check is refused too. */
        if (!st && !force && (cx_path_exists(t.ckpt_path) || cx_path_exists(t.config_path)))
            st = cx_fail(err, CX_EUSAGE, "%s already holds a run: resume it, or replace it (force)",
                         run_dir);
        if (!st && force) {
            remove(t.ckpt_path);
            remove(t.log_path);
        }
        if (!st)
            sweep_temporaries(&t);
        /* config.yaml is the text the checkpoints record: the configuration serialised once. */
        if (!st)
            st = cx_afile_write_all(t.config_path, t.config_text, strlen(t.config_text), err);
    }
    if (t.dist.size > 1)
        st = cx_dist_agree(&t.dist, st, err);
    if (!st)
        st = run_epochs(&t, lead ? hooks : NULL, err);
    release_shared(&t, st);
    trainer_free(&t);
    return st;
}

cx_status cx_train_resume(const char *run_dir, int64_t threads, const cx_train_hooks *hooks,
                          const cx_dist *dist, cx_err *err)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.lock_fd = -1;
    t.max_memory = hooks ? hooks->max_memory : 0;
    set_dist(&t, dist);
    cx_train_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    cx_run_meta saved;
    memset(&saved, 0, sizeof saved);
    cx_status st = make_paths(&t, run_dir, err);
    if (!st && !cx_path_exists(t.config_path))
        st = cx_fail(err, CX_EDATA, "%s: not a run folder (no %s)", run_dir, CX_RUN_CONFIG);
    /* Locked before anything is read, so a resume never starts from a run still being written. */
    if (!st && t.dist.rank == 0) {
        st = cx_dirlock_take(run_dir, "training into", &t.lock_fd, err);
        if (!st)
            sweep_temporaries(&t);
    }
    if (t.dist.size > 1) /* rank 0 alone takes the lock: the others stop with it */
        st = cx_dist_agree(&t.dist, st, err);
    /* A run folder whose configuration does not load is bad data, not a bad command line. */
    if (!st && (st = cx_train_config_load(&cfg, t.config_path, NULL, 0, err)) == CX_EUSAGE)
        st = CX_EDATA;
    /* The checkpoint records the configuration as config.yaml holds it, threads included. */
    if (!st && !(t.config_text = cx_run_config_text(&cfg)))
        st = cx_fail(err, CX_ENOMEM, "out of memory");
    int64_t saved_threads = cfg.threads;
    if (!st && threads > 0)
        cfg.threads = threads;
    t.cfg = &cfg;
    t.resuming = !st && cx_path_exists(t.ckpt_path);
    if (!st)
        st = prepare(&t, err);
    cfg.threads = saved_threads;
    int have_ckpt = !st && cx_path_exists(t.ckpt_path);
    if (have_ckpt)
        st = cx_run_read_ckpt(t.ckpt_path, &ck, &saved, err);
    if (have_ckpt && !st) {
        char *saved_config = NULL;
        st = cx_ckpt_get_string(&ck, t.ckpt_path, "meta/config", &saved_config, err);
        if (!st && strcmp(saved_config, t.config_text) != 0)
            st = cx_fail(err, CX_EDATA, "%s changed since %s was written; restore it or start a "
                         "new run", t.config_path, t.ckpt_path);
        free(saved_config);
        if (!st && (saved.shape.num_classes != t.meta.shape.num_classes ||
                    saved.shape.vocab_size != t.meta.shape.vocab_size ||
                    saved.total_steps != t.meta.total_steps ||
                    saved.steps_per_epoch != t.meta.steps_per_epoch))
            st = cx_fail(err, CX_EDATA, "%s: the checkpoint does not match the data of %s "
                         "(classes, vocabulary or steps per epoch changed)", t.ckpt_path,
                         t.config_path);
        if (!st)
            st = cx_run_load_params(&ck, t.ckpt_path, &t.model, &t.optim, err);
        if (!st) {
            t.meta.step = saved.step;
            t.meta.epoch_loss_sum = saved.epoch_loss_sum;
            t.meta.epoch_loss_steps = saved.epoch_loss_steps;
            t.last_ckpt_step = saved.step;
        }
    }
    int64_t logged = 0, held = st ? 0 : t.meta.step / t.meta.steps_per_epoch;
    if (!st)
        st = read_log(&t, held, &logged, err);
    if (!st && logged >= 0 && logged != held) {
        /* The log disagrees with the checkpoint (a kill between the two writes, or an edit):
         * the checkpoint is the truth; the log is cut back to it now, not at the next epoch. */
        char note[600];
        if (logged > held)
            snprintf(note, sizeof note, "%s records %lld epochs, %s %lld: the log is cut back to "
                     "the checkpoint", t.log_path, (long long)logged, t.ckpt_path, (long long)held);
        else
            snprintf(note, sizeof note, "%s records %lld epochs, %s %lld: the lines of epochs "
                     "%lld-%lld are lost (the checkpoint keeps no log)", t.log_path,
                     (long long)logged, t.ckpt_path, (long long)held, (long long)logged + 1,
                     (long long)held);
        if (hooks && hooks->on_note && t.dist.rank == 0)
            hooks->on_note(hooks->ctx, note);
        st = rewrite_log(&t, err);
    }
    if (!st)
        st = run_epochs(&t, t.dist.rank == 0 ? hooks : NULL, err);
    release_shared(&t, st);
    cx_ckpt_free(&ck);
    cx_run_meta_free(&saved);
    trainer_free(&t);
    cx_train_config_free(&cfg);
    return st;
}
