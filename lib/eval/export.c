/* `clipx export`: a run's tensors, shape and class names as one NPZ archive. */
#include "lib/eval/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/json.h"
#include "lib/data/dataset.h"
#include "lib/data/npz_write.h"
#include "lib/eval/retrain_clf.h"
#include "lib/model/tokenizer.h"
#include "lib/run/retrain_config.h"
#include "lib/run/run.h"

enum { PROMPT_MAX = 4096 };

static const char *image_kind_name(cx_image_kind k)
{
    static const char *const names[] = {"linear", "mlp", "cnn", "vit", "identity"};
    return names[k];
}

static const char *text_kind_name(cx_text_kind k)
{
    static const char *const names[] = {"linear", "mlp", "transformer"};
    return names[k];
}

static void int_list(cx_json *j, const int64_t *v, int n)
{
    cx_json_begin_array(j);
    for (int i = 0; i < n; i++)
        cx_json_int(j, v[i]);
    cx_json_end_array(j);
}

static void seq_shape(cx_json *j, const cx_seq_spec *s, int width)
{
    cx_json_key(j, "width");
    cx_json_int(j, width);
    cx_json_key(j, "layers");
    cx_json_int(j, s->layers);
    cx_json_key(j, "heads");
    cx_json_int(j, s->heads);
    cx_json_key(j, "mlp");
    cx_json_int(j, s->mlp);
    cx_json_key(j, "pool");
    cx_json_string(j, s->pool == CX_POOL_TOKEN ? "token" : "mean");
}

/* A retrained run (clipx retrain) whose classifier is linear on the stage-1 features. */
typedef struct {
    const char *dir;
    const cx_retrain_config *cfg;
    const cx_retrain_clf *clf;
} retrained;

/* config.json: what builds the towers (the model's shape with every size resolved), how
 * `clipx eval` turns features into logits, the classes, and the run's config.yaml. */
static void write_config(FILE *fp, const cx_run *run, const char *config_yaml, int T, int L,
                         const retrained *rt)
{
    const cx_model_spec *s = &run->model.spec;
    const cx_run_meta *m = &run->meta;
    cx_json j;
    cx_json_init(&j, fp, 1);
    cx_json_begin_object(&j);
    cx_json_key(&j, "format");
    cx_json_string(&j, CX_EXPORT_FORMAT);
    cx_json_key(&j, "objective");
    cx_json_string(&j, s->objective == CX_OBJECTIVE_CLIP ? "clip"
                       : s->objective == CX_OBJECTIVE_SL ? "sl" : "dino");
    cx_json_key(&j, "embed_dim");
    cx_json_int(&j, s->embed_dim);

    cx_json_key(&j, "image");
    cx_json_begin_object(&j);
    cx_json_key(&j, "type");
    cx_json_string(&j, image_kind_name(s->image_kind));
    cx_json_key(&j, "prefix");
    cx_json_string(&j, "image");
    cx_json_key(&j, "input_shape");
    cx_json_begin_array(&j);
    for (int i = 0; i < m->shape.in_rank; i++)
        cx_json_int(&j, m->shape.in_shape[i]);
    cx_json_end_array(&j);
    cx_json_key(&j, "in_dim");
    cx_json_int(&j, s->in_dim);
    cx_json_key(&j, "chw");
    cx_json_begin_array(&j);
    cx_json_int(&j, s->in_c);
    cx_json_int(&j, s->in_h);
    cx_json_int(&j, s->in_w);
    cx_json_end_array(&j);
    cx_json_key(&j, "channels");
    int_list(&j, s->image_channels, s->image_kind == CX_IMAGE_CNN ? s->image_nchannels : 0);
    cx_json_key(&j, "hidden");
    int nh = s->image_kind == CX_IMAGE_MLP || s->image_kind == CX_IMAGE_CNN ? s->image_nhidden : 0;
    int_list(&j, s->image_hidden, nh);
    cx_json_key(&j, "act");
    cx_json_string(&j, s->act == CX_ACT_GELU ? "gelu" : "relu");
    cx_json_key(&j, "norm");
    cx_json_string(&j, s->norm == CX_NORM_LAYER ? "layernorm" : "none");
    if (s->image_kind == CX_IMAGE_VIT) {
        seq_shape(&j, &s->vit, s->vit.width);
        cx_json_key(&j, "patch");
        cx_json_int(&j, s->vit.patch);
    }
    cx_json_end_object(&j);

    cx_json_key(&j, "text");
    if (s->objective == CX_OBJECTIVE_CLIP) {
        cx_json_begin_object(&j);
        cx_json_key(&j, "type");
        cx_json_string(&j, text_kind_name(s->text_kind));
        cx_json_key(&j, "prefix");
        cx_json_string(&j, "text");
        cx_json_key(&j, "vocab_size");
        cx_json_int(&j, s->vocab_size);
        cx_json_key(&j, "max_tokens");
        cx_json_int(&j, s->max_tokens);
        cx_json_key(&j, "pad_token");
        cx_json_int(&j, CX_TOKEN_PAD);
        cx_json_key(&j, "eot_token");
        cx_json_int(&j, CX_TOKEN_EOT);
        if (s->text_kind == CX_TEXT_TRANSFORMER) {
            seq_shape(&j, &s->text_seq, s->token_dim);
            cx_json_key(&j, "causal");
            cx_json_bool(&j, s->text_seq.causal);
        } else {
            cx_json_key(&j, "token_dim");
            cx_json_int(&j, s->token_dim);
            cx_json_key(&j, "hidden");
            int_list(&j, s->text_hidden, s->text_kind == CX_TEXT_MLP ? s->text_nhidden : 0);
            cx_json_key(&j, "act");
            cx_json_string(&j, s->act == CX_ACT_GELU ? "gelu" : "relu");
        }
        cx_json_end_object(&j);
    } else {
        cx_json_null(&j);
    }

    cx_json_key(&j, "head");
    if (s->objective == CX_OBJECTIVE_SL) {
        cx_json_begin_object(&j);
        cx_json_key(&j, "type");
        cx_json_string(&j, run->cfg.head == CX_CFG_HEAD_TEXT     ? "text"
                           : s->head_kind == CX_HEAD_COSINE ? "cosine" : "linear");
        cx_json_key(&j, "prefix");
        cx_json_string(&j, "head");
        cx_json_key(&j, "classes");
        cx_json_int(&j, s->num_classes);
        cx_json_end_object(&j);
    } else {
        cx_json_null(&j);
    }

    /* What `clipx eval` does with the features in the run's default mode. */
    cx_json_key(&j, "eval");
    cx_json_begin_object(&j);
    cx_json_key(&j, "mode");
    cx_json_string(&j, rt ? "retrained" : s->objective == CX_OBJECTIVE_CLIP ? "zeroshot" : "head");
    cx_json_key(&j, "cosine_scale");
    cx_json_number(&j, 100.0);
    cx_json_key(&j, "unit_eps");
    cx_json_number(&j, 1e-12);
    cx_json_key(&j, "zeroshot_templates");
    cx_json_int(&j, T);
    cx_json_key(&j, "zeroshot_tokens");
    cx_json_int(&j, L);
    cx_json_end_object(&j);

    /* retrain.weight (classes, dim) and retrain.bias score scale * x' W^T + b, x' the
     * stage-1 features, unit length when normalize is true. */
    cx_json_key(&j, "retrain");
    if (rt) {
        cx_json_begin_object(&j);
        cx_json_key(&j, "run");
        cx_json_string(&j, rt->dir);
        cx_json_key(&j, "method");
        cx_json_string(&j, cx_retrain_method_name(rt->clf->method));
        cx_json_key(&j, "from");
        cx_json_string(&j, rt->cfg->from);
        cx_json_key(&j, "classes");
        cx_json_int(&j, rt->clf->C);
        cx_json_key(&j, "dim");
        cx_json_int(&j, rt->clf->D);
        cx_json_key(&j, "normalize");
        cx_json_bool(&j, rt->clf->normalize);
        cx_json_key(&j, "scale");
        cx_json_number(&j, rt->clf->scale);
        cx_json_end_object(&j);
    } else {
        cx_json_null(&j);
    }

    cx_json_key(&j, "dataset");
    cx_json_string(&j, m->dataset ? m->dataset : "");
    cx_json_key(&j, "data");
    const char *data = rt && rt->cfg->data ? rt->cfg->data : run->cfg.data;
    if (data)
        cx_json_string(&j, data);
    else
        cx_json_null(&j);
    cx_json_key(&j, "num_eval_classes");
    cx_json_int(&j, m->num_eval_classes);
    cx_json_key(&j, "class_names");
    cx_json_begin_array(&j);
    for (int c = 0; c < m->shape.num_classes; c++)
        cx_json_string(&j, m->class_names[c]);
    cx_json_end_array(&j);
    cx_json_key(&j, "class_counts");
    int_list(&j, m->class_counts, m->shape.num_classes);

    cx_json_key(&j, "tensors");
    cx_json_begin_array(&j);
    for (int t = 0; t < run->model.params.count; t++)
        cx_json_string(&j, run->model.params.info[t].name);
    cx_json_end_array(&j);
    cx_json_key(&j, "config_yaml");
    cx_json_string(&j, config_yaml ? config_yaml : "");
    cx_json_end_object(&j);
    fputc('\n', fp);
}

/* The zero-shot prompts of the run's dataset, (E, T, L) tokens as cx_tokens_class_embeddings
 * builds them. *tokens NULL (T = 0) when the dataset cannot be read: the weights still export. */
static cx_status zeroshot_tokens(const cx_run *run, int32_t **tokens, int *T_out, cx_err *err)
{
    *tokens = NULL;
    *T_out = 0;
    if (!run->cfg.data)
        return CX_OK;
    cx_dataset ds;
    cx_load_options lo = {0};
    lo.parts = CX_LOAD_NONE;
    cx_err ignored;
    if (cx_dataset_load(run->cfg.data, &lo, &ds, &ignored))
        return CX_OK;
    int E = run->meta.num_eval_classes, T = ds.num_templates, L = run->model.spec.max_tokens;
    cx_status st = CX_OK;
    char *buf = malloc(PROMPT_MAX);
    int32_t *tok = malloc(sizeof *tok * ((size_t)E * (size_t)T * (size_t)L + 1));
    if (!buf || !tok) {
        st = cx_fail(err, CX_ENOMEM, "out of memory for the zero-shot prompts");
        free(tok);
        tok = NULL;
    } else {
        for (int c = 0; c < E; c++)
            for (int t = 0; t < T; t++) {
                cx_template_fill(ds.templates[t], run->meta.class_names[c], buf, PROMPT_MAX);
                cx_tokenize(&run->vocab, buf, tok + ((size_t)c * T + t) * (size_t)L, L);
            }
        *tokens = tok;
        *T_out = T;
    }
    free(buf);
    cx_dataset_free(&ds);
    return st;
}

static cx_status add_text(cx_npz_writer *z, const char *key, const char *text, size_t len,
                          cx_err *err)
{
    uint64_t shape[1] = {len};
    return cx_npz_add(z, key, CX_ELEM_U8, 1, shape, text, err);
}

/* A retrained run's configuration and classifier; CX_EUSAGE unless the classifier is linear
 * on the stage-1 features (gated and decoder classifiers have layers of their own). */
static cx_status open_retrained(const char *dir, cx_retrain_config *cfg, cx_retrain_clf *clf,
                                cx_err *err)
{
    char *path = cx_run_path(dir, CX_RUN_CONFIG);
    if (!path)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_status st = cx_retrain_config_load(cfg, path, NULL, 0, err);
    free(path);
    if (st)
        return st == CX_EUSAGE ? CX_EDATA : st; /* a bad run folder, not a bad command */
    if (!cfg->from)
        return cx_fail(err, CX_EDATA, "%s/%s names no stage-1 run (from)", dir, CX_RUN_CONFIG);
    if ((st = cx_retrain_read_clf(dir, clf, err)))
        return st;
    if (clf->gated || clf->nhidden || clf->tok)
        return cx_fail(err, CX_EUSAGE, "%s: method %s's classifier has layers of its own (%s), "
                       "not a linear head on the stage-1 features; only those export; export "
                       "the stage-1 run %s", dir, cx_retrain_method_name(clf->method),
                       clf->gated ? "a gate" : "a decoder", cfg->from);
    return CX_OK;
}

cx_status cx_run_export(const char *dir, const char *out, cx_err *err)
{
    cx_retrain_config rcfg;
    cx_retrain_clf rclf;
    memset(&rcfg, 0, sizeof rcfg);
    memset(&rclf, 0, sizeof rclf);
    retrained rt = {dir, &rcfg, &rclf};
    const int is_retrained = cx_retrain_is_run(dir);
    const char *run_dir = dir;
    cx_run run;
    memset(&run, 0, sizeof run);
    cx_npz_writer z;
    memset(&z, 0, sizeof z);
    z.af.fd = -1;
    char *yaml = NULL, *json = NULL;
    size_t json_len = 0;
    int32_t *tokens = NULL;
    int T = 0;
    cx_status st;
    if (is_retrained) {
        if ((st = open_retrained(dir, &rcfg, &rclf, err)))
            goto done;
        run_dir = rcfg.from;
    }
    if ((st = cx_run_open(run_dir, 1, &run, err))) {
        /* A run that cannot be rebuilt is bad data: nothing the caller typed was wrong. */
        if (st == CX_EUSAGE)
            st = cx_err_prefix(err, CX_EDATA, "%s", run_dir);
        goto done;
    }
    if (is_retrained && (rclf.C != run.meta.num_eval_classes || rclf.D != run.model.spec.embed_dim)) {
        st = cx_fail(err, CX_EDATA, "%s/%s: a classifier of %d classes on %d features, the run "
                     "%s has %d and %d", dir, CX_RUN_CKPT, rclf.C, rclf.D, run_dir,
                     run.meta.num_eval_classes, run.model.spec.embed_dim);
        goto done;
    }
    const int clip = !is_retrained && run.model.spec.objective == CX_OBJECTIVE_CLIP;
    const int L = run.model.spec.max_tokens;
    if (clip && (st = zeroshot_tokens(&run, &tokens, &T, err)))
        goto done;
    if (!(yaml = cx_run_config_text(&run.cfg))) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto done;
    }
    FILE *mem = open_memstream(&json, &json_len);
    if (!mem) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto done;
    }
    write_config(mem, &run, yaml, T, clip && T ? L : 0, is_retrained ? &rt : NULL);
    if (fclose(mem) != 0) {
        st = cx_fail(err, CX_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = cx_npz_open(&z, out, err)))
        goto done;
    const cx_params *p = &run.model.params;
    for (int t = 0; t < p->count; t++) {
        const cx_param_info *pi = &p->info[t];
        uint64_t shape[CX_PARAM_MAX_DIMS];
        for (int d = 0; d < pi->ndim; d++)
            shape[d] = (uint64_t)pi->shape[d];
        if ((st = cx_npz_add(&z, pi->name, CX_ELEM_F32, pi->ndim, shape, cx_param_value(p, t), err)))
            goto done;
    }
    if ((st = add_text(&z, "config.json", json, json_len, err)))
        goto done;
    if (is_retrained) {
        uint64_t ws[2] = {(uint64_t)rclf.C, (uint64_t)rclf.D}, bs[1] = {(uint64_t)rclf.C};
        if ((st = cx_npz_add(&z, "retrain.weight", CX_ELEM_F32, 2, ws, rclf.w, err)) ||
            (st = cx_npz_add(&z, "retrain.bias", CX_ELEM_F32, 1, bs, rclf.b, err)))
            goto done;
    }
    if (clip && run.meta.vocab_text &&
        (st = add_text(&z, "vocab.txt", run.meta.vocab_text, strlen(run.meta.vocab_text), err)))
        goto done;
    if (tokens) {
        uint64_t shape[3] = {(uint64_t)run.meta.num_eval_classes, (uint64_t)T, (uint64_t)L};
        if ((st = cx_npz_add(&z, "zeroshot.tokens", CX_ELEM_I32, 3, shape, tokens, err)))
            goto done;
    }
    st = cx_npz_commit(&z, err);
done:
    if (st)
        cx_npz_abort(&z);
    free(tokens);
    free(yaml);
    free(json);
    cx_run_close(&run);
    cx_retrain_clf_free(&rclf);
    cx_retrain_config_free(&rcfg);
    return st;
}
