/* Run folders: checkpoint layout, reading back, opening a run for use. */
#include "lib/run/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/path.h"

void cx_run_meta_free(cx_run_meta *meta)
{
    for (int c = 0; meta->class_names && c < meta->shape.num_classes; c++)
        free(meta->class_names[c]);
    free(meta->class_names);
    free(meta->class_counts);
    free(meta->dataset);
    free(meta->vocab_text);
    memset(meta, 0, sizeof *meta);
}

char *cx_run_path(const char *dir, const char *name)
{
    return cx_path_join(dir, name);
}

char *cx_run_config_text(const cx_train_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    if (!fp)
        return NULL;
    cx_err err;
    cx_status st = cx_conf_write(&cx_train_config_schema, cfg, fp, "config", &err);
    if (fclose(fp) != 0 || st) {
        free(text);
        return NULL;
    }
    return text;
}

/* Class names joined by newlines (names hold no newline: the class-list reader refuses them). */
static char *join_names(char *const *names, int n)
{
    size_t total = 1;
    for (int c = 0; c < n; c++)
        total += strlen(names[c]) + 1;
    char *s = malloc(total);
    if (!s)
        return NULL;
    size_t pos = 0;
    for (int c = 0; c < n; c++) {
        size_t k = strlen(names[c]);
        memcpy(s + pos, names[c], k);
        pos += k;
        s[pos++] = '\n';
    }
    s[pos] = '\0';
    return s;
}

cx_status cx_run_write_ckpt(const char *path, const cx_run_meta *meta, const char *config_yaml,
                            const cx_model *m, const cx_optim *o, cx_err *err)
{
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    cx_status st = CX_OK;
    char *names = join_names(meta->class_names, meta->shape.num_classes);
    char key[CX_PARAM_NAME_MAX + 32];
    if (!names) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    int64_t shape_c[1] = {meta->shape.num_classes};
    int64_t shape_r[1] = {meta->shape.in_rank};
    if ((st = cx_ckpt_add_string(&ck, "meta/format", "clipx-run", err)) ||
        (st = cx_ckpt_add_string(&ck, "meta/config", config_yaml, err)) ||
        (st = cx_ckpt_add_string(&ck, "meta/dataset", meta->dataset ? meta->dataset : "", err)) ||
        (st = cx_ckpt_add_string(&ck, "meta/classes", names, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/num_eval_classes", meta->num_eval_classes, err)) ||
        (st = cx_ckpt_add(&ck, "meta/class_counts", CX_CKPT_I64, 1, shape_c, meta->class_counts, err)) ||
        (st = cx_ckpt_add(&ck, "meta/in_shape", CX_CKPT_I64, 1, shape_r, meta->shape.in_shape, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/vocab_size", meta->shape.vocab_size, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/step", meta->step, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/total_steps", meta->total_steps, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/steps_per_epoch", meta->steps_per_epoch, err)) ||
        (st = cx_ckpt_add_f64(&ck, "meta/epoch_loss_sum", meta->epoch_loss_sum, err)) ||
        (st = cx_ckpt_add_i64(&ck, "meta/epoch_loss_steps", meta->epoch_loss_steps, err)))
        goto fail;
    if (meta->vocab_text && (st = cx_ckpt_add_string(&ck, "meta/vocab", meta->vocab_text, err)))
        goto fail;
    const cx_params *p = &m->params;
    for (int t = 0; t < p->count; t++) {
        const cx_param_info *in = &p->info[t];
        int64_t shape[CX_PARAM_MAX_DIMS];
        for (int d = 0; d < in->ndim; d++)
            shape[d] = in->shape[d];
        snprintf(key, sizeof key, "param/%s", in->name);
        if ((st = cx_ckpt_add(&ck, key, CX_CKPT_F32, in->ndim, shape, p->value + in->offset, err)))
            goto fail;
        for (int slot = 0; o && !(in->flags & CX_PARAM_NO_STATE) && slot < p->nslots; slot++) {
            snprintf(key, sizeof key, "optim/%d/%s", slot, in->name);
            if ((st = cx_ckpt_add(&ck, key, CX_CKPT_F32, in->ndim, shape,
                                  cx_param_state(p, slot, t), err)))
                goto fail;
        }
    }
    if (o && (st = cx_ckpt_add_i64(&ck, "optim/step", o->step, err)))
        goto fail;
    st = cx_ckpt_write(&ck, path, err);
fail:
    free(names);
    cx_ckpt_free(&ck);
    return st;
}

static cx_status split_names(const char *path, const char *text, int n, char ***out, cx_err *err)
{
    char **names = calloc((size_t)(n > 0 ? n : 1), sizeof *names);
    if (!names)
        return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
    const char *p = text;
    for (int c = 0; c < n; c++) {
        const char *nl = strchr(p, '\n');
        if (!nl) {
            for (int k = 0; k < c; k++)
                free(names[k]);
            free(names);
            return cx_fail(err, CX_EDATA, "%s: meta/classes holds fewer than %d names", path, n);
        }
        size_t len = (size_t)(nl - p);
        names[c] = malloc(len + 1);
        if (!names[c]) {
            for (int k = 0; k < c; k++)
                free(names[k]);
            free(names);
            return cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        }
        memcpy(names[c], p, len);
        names[c][len] = '\0';
        p = nl + 1;
    }
    *out = names;
    return CX_OK;
}

cx_status cx_run_read_ckpt(const char *path, cx_ckpt *ck, cx_run_meta *meta, cx_err *err)
{
    memset(meta, 0, sizeof *meta);
    cx_status st = cx_ckpt_read(path, ck, err);
    if (st)
        return st;
    char *format = NULL, *classes = NULL;
    int64_t v;
    if ((st = cx_ckpt_get_string(ck, path, "meta/format", &format, err)))
        goto fail;
    if (strcmp(format, "clipx-run") != 0) {
        /* the format is the file's text: quoted only when it cannot break the message's line */
        int text = strlen(format) <= 64;
        for (const char *p = format; text && *p; p++)
            text = *p >= 0x20 && *p < 0x7f;
        st = cx_fail(err, CX_EDATA, "%s: not a clipx run checkpoint (format '%s')", path,
                     text ? format : "?");
        goto fail;
    }
    const cx_ckpt_entry *counts = cx_ckpt_find(ck, "meta/class_counts");
    const cx_ckpt_entry *shape = cx_ckpt_find(ck, "meta/in_shape");
    if (!counts || counts->dtype != CX_CKPT_I64 || counts->ndim != 1 || counts->shape[0] < 1 ||
        counts->shape[0] > (1 << 24) || !shape || shape->dtype != CX_CKPT_I64 ||
        shape->ndim != 1 || shape->shape[0] < 1 || shape->shape[0] > 3) {
        st = cx_fail(err, CX_EDATA, "%s: class counts or input shape missing or malformed", path);
        goto fail;
    }
    meta->shape.num_classes = (int)counts->shape[0];
    meta->shape.in_rank = (int)shape->shape[0];
    memcpy(meta->shape.in_shape, shape->data, shape->nbytes);
    meta->class_counts = malloc(counts->nbytes);
    if (!meta->class_counts) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    memcpy(meta->class_counts, counts->data, counts->nbytes);
    meta->shape.train_samples = 0;
    for (int c = 0; c < meta->shape.num_classes; c++)
        meta->shape.train_samples += meta->class_counts[c];
    if ((st = cx_ckpt_get_string(ck, path, "meta/classes", &classes, err)) ||
        (st = split_names(path, classes, meta->shape.num_classes, &meta->class_names, err)) ||
        (st = cx_ckpt_get_string(ck, path, "meta/dataset", &meta->dataset, err)) ||
        (st = cx_ckpt_get_i64(ck, path, "meta/num_eval_classes", &v, err)))
        goto fail;
    meta->num_eval_classes = (int)v;
    if ((st = cx_ckpt_get_i64(ck, path, "meta/vocab_size", &v, err)))
        goto fail;
    meta->shape.vocab_size = (int)v;
    if ((st = cx_ckpt_get_i64(ck, path, "meta/step", &meta->step, err)) ||
        (st = cx_ckpt_get_i64(ck, path, "meta/total_steps", &meta->total_steps, err)) ||
        (st = cx_ckpt_get_i64(ck, path, "meta/steps_per_epoch", &meta->steps_per_epoch, err)) ||
        (st = cx_ckpt_get_f64(ck, path, "meta/epoch_loss_sum", &meta->epoch_loss_sum, err)) ||
        (st = cx_ckpt_get_i64(ck, path, "meta/epoch_loss_steps", &meta->epoch_loss_steps, err)))
        goto fail;
    if (cx_ckpt_find(ck, "meta/vocab") &&
        (st = cx_ckpt_get_string(ck, path, "meta/vocab", &meta->vocab_text, err)))
        goto fail;
    if (meta->num_eval_classes < 1 || meta->num_eval_classes > meta->shape.num_classes ||
        meta->step < 0 || meta->step > meta->total_steps) {
        st = cx_fail(err, CX_EDATA, "%s: inconsistent run meta (step %lld of %lld)", path,
                     (long long)meta->step, (long long)meta->total_steps);
        goto fail;
    }
    free(format);
    free(classes);
    return CX_OK;
fail:
    free(format);
    free(classes);
    cx_run_meta_free(meta);
    cx_ckpt_free(ck);
    return st;
}

cx_status cx_run_load_params(const cx_ckpt *ck, const char *path, cx_model *m, cx_optim *o,
                             cx_err *err)
{
    cx_params *p = &m->params;
    char key[CX_PARAM_NAME_MAX + 32];
    for (int t = 0; t < p->count; t++) {
        const cx_param_info *in = &p->info[t];
        snprintf(key, sizeof key, "param/%s", in->name);
        cx_status st = cx_ckpt_get_f32(ck, path, key, p->value + in->offset, in->size, err);
        if (st)
            return st;
        for (int slot = 0; o && !(in->flags & CX_PARAM_NO_STATE) && slot < p->nslots; slot++) {
            snprintf(key, sizeof key, "optim/%d/%s", slot, in->name);
            if ((st = cx_ckpt_get_f32(ck, path, key, cx_param_state(p, slot, t), in->size, err)))
                return st;
        }
    }
    if (o)
        return cx_ckpt_get_i64(ck, path, "optim/step", &o->step, err);
    return CX_OK;
}

cx_status cx_run_open(const char *dir, int max_batch, cx_run *run, cx_err *err)
{
    memset(run, 0, sizeof *run);
    cx_status st;
    char *config_path = cx_run_path(dir, CX_RUN_CONFIG);
    char *ckpt_path = cx_run_path(dir, CX_RUN_CKPT);
    run->dir = cx_path_join(NULL, dir);
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    if (!config_path || !ckpt_path || !run->dir) {
        st = cx_fail(err, CX_ENOMEM, "%s: out of memory", dir);
        goto fail;
    }
    if (!cx_path_exists(dir)) {
        st = cx_fail(err, CX_EDATA, "%s: no such run folder", dir);
        goto fail;
    }
    if (!cx_path_exists(ckpt_path)) {
        st = cx_fail(err, CX_EDATA, "%s: no checkpoint: the run has not finished a step", ckpt_path);
        goto fail;
    }
    if ((st = cx_train_config_load(&run->cfg, config_path, NULL, 0, err))) {
        if (st == CX_EUSAGE)
            st = CX_EDATA;
        goto fail;
    }
    if ((st = cx_run_read_ckpt(ckpt_path, &ck, &run->meta, err)))
        goto fail;
    cx_model_spec spec;
    if ((st = cx_spec_model(&run->cfg, &run->meta.shape, max_batch, &spec, err)))
        goto fail;
    if ((st = cx_model_build(&run->model, &spec, 0, err)))
        goto fail;
    if ((st = cx_run_load_params(&ck, ckpt_path, &run->model, NULL, err)))
        goto fail;
    /* As DINO evaluates: a DINO run's image features are its teacher's backbone. */
    cx_model_dino_teacher_backbone(&run->model);
    if (run->meta.vocab_text) {
        if ((st = cx_vocab_deserialize(run->meta.vocab_text, &run->vocab, err))) {
            st = cx_err_prefix(err, st, "%s", ckpt_path);
            goto fail;
        }
        if (run->vocab.size != run->meta.shape.vocab_size) {
            st = cx_fail(err, CX_EDATA, "%s: vocabulary of %d words, the model expects %d",
                         ckpt_path, run->vocab.size, run->meta.shape.vocab_size);
            goto fail;
        }
    }
fail:
    cx_ckpt_free(&ck);
    free(config_path);
    free(ckpt_path);
    if (st)
        cx_run_close(run);
    return st;
}

void cx_run_close(cx_run *run)
{
    free(run->dir);
    cx_train_config_free(&run->cfg);
    cx_run_meta_free(&run->meta);
    cx_model_free(&run->model);
    cx_vocab_free(&run->vocab);
    memset(run, 0, sizeof *run);
}
