/* Configuration -> model, loss, optimiser and schedule settings. */
#include "lib/run/spec.h"

#include <math.h>
#include <string.h>

/* The MLP width of a transformer: ratio x width, rounded, at least 1. */
static int mlp_width(double ratio, int64_t width)
{
    double f = floor(ratio * (double)width + 0.5);
    return f < 1 ? 1 : f > 1 << 20 ? 1 << 20 : (int)f;
}

cx_status cx_spec_model(const cx_train_config *cfg, const cx_data_shape *shape, int max_batch,
                        cx_model_spec *spec, cx_err *err)
{
    memset(spec, 0, sizeof *spec);
    spec->objective = cx_cfg_objective_has_text((int)cfg->objective) ? CX_OBJECTIVE_CLIP
                      : cfg->objective == CX_CFG_OBJECTIVE_DINO ? CX_OBJECTIVE_DINO
                                                                : CX_OBJECTIVE_SL;
    spec->max_batch = max_batch;
    int64_t in_dim = 1;
    for (int d = 0; d < shape->in_rank; d++)
        in_dim *= shape->in_shape[d];
    if (in_dim < 1 || in_dim > (1 << 24))
        return cx_fail(err, CX_EUSAGE, "inputs of %lld features cannot feed an image tower",
                       (long long)in_dim);
    spec->in_dim = (int)in_dim;
    switch (cfg->model.image.type) {
    case CX_CFG_IMAGE_LINEAR:
        spec->image_kind = CX_IMAGE_LINEAR;
        break;
    case CX_CFG_IMAGE_MLP:
        spec->image_kind = CX_IMAGE_MLP;
        break;
    case CX_CFG_IMAGE_IDENTITY:
        /* The inputs, flattened, are the features: model.image.dim does not apply. */
        spec->image_kind = CX_IMAGE_IDENTITY;
        break;
    case CX_CFG_IMAGE_VIT:
    case CX_CFG_IMAGE_CNN: {
        int vit = cfg->model.image.type == CX_CFG_IMAGE_VIT;
        spec->image_kind = vit ? CX_IMAGE_VIT : CX_IMAGE_CNN;
        /* IDX images are (H, W); NPY images (C, H, W), channels first as in PyTorch. */
        if (shape->in_rank < 2)
            return cx_fail(err, CX_EUSAGE, "model.image.type: %s needs image inputs (a sample "
                           "shape H x W or C x H x W); this data holds vectors of %lld features; "
                           "use mlp or linear", vit ? "vit" : "cnn", (long long)in_dim);
        int r = shape->in_rank;
        spec->in_c = r == 3 ? (int)shape->in_shape[0] : 1;
        spec->in_h = (int)shape->in_shape[r - 2];
        spec->in_w = (int)shape->in_shape[r - 1];
        if (vit) {
            cx_seq_spec *v = &spec->vit;
            v->patch = (int)cfg->model.image.patch;
            if (spec->in_h % v->patch != 0 || spec->in_w % v->patch != 0)
                return cx_fail(err, CX_EUSAGE, "model.image.patch: %d does not divide the %d x %d "
                               "images; choose a patch size that divides both", v->patch,
                               spec->in_h, spec->in_w);
            int64_t width = cfg->model.image.width ? cfg->model.image.width : cfg->model.image.dim;
            v->width = (int)width;
            v->layers = (int)cfg->model.image.layers;
            v->heads = (int)cfg->model.image.heads;
            if (width % v->heads != 0)
                return cx_fail(err, CX_EUSAGE, "model.image.heads: %d heads do not divide the ViT "
                               "width %lld; choose heads that divide it", v->heads, (long long)width);
            v->mlp = mlp_width(cfg->model.image.mlp_ratio, width);
            v->pool = cfg->model.image.pool == CX_CFG_POOL_MEAN ? CX_POOL_MEAN : CX_POOL_TOKEN;
            break;
        }
        const cx_conf_ints *ch = &cfg->model.image.channels;
        if (ch->n < 1 || ch->n > CX_MODEL_MAX_LIST)
            return cx_fail(err, CX_EUSAGE, "model.image.channels: 1 to %d convolution blocks, not %zu",
                           CX_MODEL_MAX_LIST, ch->n);
        for (size_t i = 0; i < ch->n; i++)
            spec->image_channels[i] = ch->v[i];
        spec->image_nchannels = (int)ch->n;
        break;
    }
    }
    const cx_conf_ints *hidden = &cfg->model.image.hidden;
    if (hidden->n > CX_MODEL_MAX_LIST)
        return cx_fail(err, CX_EUSAGE, "model.image.hidden: at most %d layers, not %zu",
                       CX_MODEL_MAX_LIST, hidden->n);
    for (size_t i = 0; i < hidden->n; i++)
        spec->image_hidden[i] = hidden->v[i];
    spec->image_nhidden = (int)hidden->n;
    spec->embed_dim =
        spec->image_kind == CX_IMAGE_IDENTITY ? spec->in_dim : (int)cfg->model.image.dim;
    spec->image_frozen = cfg->model.image.freeze;
    spec->act = cfg->model.image.act == CX_CFG_ACT_GELU ? CX_ACT_GELU : CX_ACT_RELU;
    spec->norm = cfg->model.image.norm == CX_CFG_NORM_LAYERNORM ? CX_NORM_LAYER : CX_NORM_NONE;

    if (spec->objective == CX_OBJECTIVE_CLIP) {
        const cx_conf_ints *th = &cfg->model.text.hidden;
        if (th->n > CX_MODEL_MAX_LIST)
            return cx_fail(err, CX_EUSAGE, "model.text.hidden: at most %d layers, not %zu",
                           CX_MODEL_MAX_LIST, th->n);
        spec->text_kind = cfg->model.text.type == CX_CFG_TEXT_MLP           ? CX_TEXT_MLP
                          : cfg->model.text.type == CX_CFG_TEXT_TRANSFORMER ? CX_TEXT_TRANSFORMER
                                                                            : CX_TEXT_LINEAR;
        if (spec->text_kind == CX_TEXT_TRANSFORMER) {
            cx_seq_spec *t = &spec->text_seq;
            t->width = (int)cfg->model.text.dim;
            t->layers = (int)cfg->model.text.layers;
            t->heads = (int)cfg->model.text.heads;
            if (cfg->model.text.dim % t->heads != 0)
                return cx_fail(err, CX_EUSAGE, "model.text.heads: %d heads do not divide "
                               "model.text.dim %lld; choose heads that divide it", t->heads,
                               (long long)cfg->model.text.dim);
            t->mlp = mlp_width(cfg->model.text.mlp_ratio, cfg->model.text.dim);
            t->causal = cfg->model.text.causal;
            t->pool = cfg->model.text.pool == CX_CFG_POOL_MEAN ? CX_POOL_MEAN : CX_POOL_TOKEN;
            if (cfg->model.text.max_tokens < 2)
                return cx_fail(err, CX_EUSAGE, "model.text.max_tokens: a transformer sequence "
                               "holds SOT and EOT, so at least 2 tokens, not %lld",
                               (long long)cfg->model.text.max_tokens);
        }
        for (size_t i = 0; i < th->n; i++)
            spec->text_hidden[i] = th->v[i];
        spec->text_nhidden = (int)th->n;
        if (spec->text_kind == CX_TEXT_MLP && th->n == 0)
            return cx_fail(err, CX_EUSAGE, "model.text.type: mlp needs model.text.hidden widths");
        spec->vocab_size = shape->vocab_size;
        spec->token_dim = (int)cfg->model.text.dim;
        spec->max_tokens = (int)cfg->model.text.max_tokens;
        spec->text_frozen = cfg->model.text.freeze;
        /* DeCLIP's NNS queue: at most one entry per training caption. */
        if (cfg->objective == CX_CFG_OBJECTIVE_DECLIP && cfg->declip.nns > 0) {
            int64_t q = cfg->declip.queue;
            if (shape->train_samples > 0 && shape->train_samples < q)
                q = shape->train_samples;
            spec->declip_queue = (int)q;
        }
        spec->declip_iss = cfg->objective == CX_CFG_OBJECTIVE_DECLIP && cfg->declip.iss > 0;
    } else if (spec->objective == CX_OBJECTIVE_DINO) {
        /* No classifier: the projection head and the prototypes instead. */
        spec->dino_hidden = (int)cfg->dino.hidden;
        spec->dino_bottleneck = (int)cfg->dino.bottleneck;
        spec->dino_prototypes = (int)cfg->dino.prototypes;
        if (cfg->dino.sample_k > cfg->dino.prototypes)
            return cx_fail(err, CX_EUSAGE, "dino.sample_k: %lld is above dino.prototypes (%lld); "
                           "set dino.sample_k to at most %lld, or 0 for all prototypes",
                           (long long)cfg->dino.sample_k, (long long)cfg->dino.prototypes,
                           (long long)cfg->dino.prototypes);
    } else {
        spec->num_classes = shape->num_classes;
        if (cfg->vocab.k > shape->num_classes)
            return cx_fail(err, CX_EUSAGE, "vocab.k %lld exceeds the %d classes of the data; set "
                           "vocab.k to at most %d (0 scores every class)",
                           (long long)cfg->vocab.k, shape->num_classes, shape->num_classes);
        spec->head_kind = cfg->head == CX_CFG_HEAD_LINEAR ? CX_HEAD_LINEAR : CX_HEAD_COSINE;
        spec->head_frozen = cfg->head == CX_CFG_HEAD_TEXT;
        if (cfg->loss == CX_CFG_LOSS_LDAM && cfg->head == CX_CFG_HEAD_LINEAR)
            return cx_fail(err, CX_EUSAGE, "loss: ldam puts its margins on cosine logits; set "
                           "head: cosine (or head: text)");
    }
    spec->logit_scale_init = cfg->logit_scale.init;
    spec->logit_scale_max = cfg->logit_scale.max;
    spec->logit_scale_learn = cfg->logit_scale.learn;
    if (spec->objective == CX_OBJECTIVE_SL && cfg->loss == CX_CFG_LOSS_LDAM) {
        /* LDAM fixes the scale of the cosine logits (s = 30 in the paper). */
        spec->logit_scale_init = cfg->ldam.scale;
        spec->logit_scale_max = cfg->ldam.scale > cfg->logit_scale.max ? cfg->ldam.scale
                                                                       : cfg->logit_scale.max;
        spec->logit_scale_learn = 0;
    }
    return CX_OK;
}

void cx_spec_loss(const cx_train_config *cfg, cx_loss_config *out)
{
    static const cx_loss_kind kinds[] = {
        [CX_CFG_LOSS_CE] = CX_LOSS_CE,
        [CX_CFG_LOSS_FOCAL] = CX_LOSS_FOCAL,
        [CX_CFG_LOSS_BALANCED_SOFTMAX] = CX_LOSS_BALANCED_SOFTMAX,
        [CX_CFG_LOSS_LOGIT_ADJUST] = CX_LOSS_LOGIT_ADJUST,
        [CX_CFG_LOSS_CBW] = CX_LOSS_CBW,
        [CX_CFG_LOSS_EFFNUM] = CX_LOSS_EFFNUM,
        [CX_CFG_LOSS_GRW] = CX_LOSS_GRW,
        [CX_CFG_LOSS_LDAM] = CX_LOSS_LDAM,
        [CX_CFG_LOSS_LADE] = CX_LOSS_LADE,
    };
    memset(out, 0, sizeof *out);
    out->kind = kinds[cfg->loss];
    out->focal_gamma = cfg->focal.gamma;
    out->la_tau = cfg->logit_adjust.tau;
    out->effnum_beta = cfg->effnum.beta;
    out->grw_p = cfg->grw.p;
    out->ldam_max_margin = cfg->ldam.max_margin;
    out->lade_lambda = cfg->lade.lambda;
    out->drw_epoch = (int)cfg->drw.epoch;
}

void cx_spec_optim(const cx_train_config *cfg, cx_optim_config *out)
{
    memset(out, 0, sizeof *out);
    out->kind = cfg->optim.name == CX_CFG_OPTIM_SGD ? CX_OPTIM_SGD : CX_OPTIM_ADAMW;
    out->wd = cfg->optim.wd;
    out->beta1 = cfg->optim.betas.v[0];
    out->beta2 = cfg->optim.betas.v[1];
    out->eps = cfg->optim.eps;
    out->momentum = cfg->optim.momentum;
    out->nesterov = cfg->optim.nesterov;
}

void cx_spec_schedule(const cx_train_config *cfg, int64_t steps_per_epoch, int64_t *milestones,
                      cx_schedule *out)
{
    memset(out, 0, sizeof *out);
    switch (cfg->optim.schedule) {
    case CX_CFG_SCHEDULE_COSINE:
        out->kind = CX_SCHED_COSINE;
        break;
    case CX_CFG_SCHEDULE_STEP:
        out->kind = CX_SCHED_STEP;
        break;
    case CX_CFG_SCHEDULE_CONSTANT:
        out->kind = CX_SCHED_CONSTANT;
        break;
    }
    out->base_lr = cfg->optim.lr;
    out->warmup = cfg->optim.warmup;
    out->total_steps = cfg->epochs * steps_per_epoch;
    out->steps_per_epoch = steps_per_epoch;
    for (size_t i = 0; i < cfg->optim.milestones.n; i++)
        milestones[i] = cfg->optim.milestones.v[i];
    out->milestones = milestones;
    out->nmilestones = (int)cfg->optim.milestones.n;
    out->gamma = cfg->optim.gamma;
}

cx_sampler_kind cx_spec_sampler(const cx_train_config *cfg)
{
    switch (cfg->sampler) {
    case CX_CFG_SAMPLER_CLASS_BALANCED:
        return CX_SAMPLER_CLASS_BALANCED;
    case CX_CFG_SAMPLER_SQRT:
        return CX_SAMPLER_SQRT;
    case CX_CFG_SAMPLER_NONE:
        break;
    }
    return CX_SAMPLER_SHUFFLE;
}

cx_vocab_weight cx_spec_vocab_weight(const cx_train_config *cfg)
{
    switch (cfg->vocab.weight) {
    case CX_CFG_VOCAB_UNIFORM:
        return CX_VOCAB_UNIFORM;
    case CX_CFG_VOCAB_SQRT:
        return CX_VOCAB_SQRT;
    case CX_CFG_VOCAB_LINEAR:
        break;
    }
    return CX_VOCAB_LINEAR;
}

void cx_spec_aug(const cx_train_config *cfg, cx_aug_config *out)
{
    memset(out, 0, sizeof *out);
    out->crop = cfg->aug.crop_scale.n == 2;
    for (int i = 0; i < 2; i++) {
        out->crop_scale[i] = out->crop ? cfg->aug.crop_scale.v[i] : 1.0;
        out->crop_ratio[i] = cfg->aug.crop_ratio.n == 2 ? cfg->aug.crop_ratio.v[i] : 1.0;
        out->erase_scale[i] = cfg->aug.erase_scale.n == 2 ? cfg->aug.erase_scale.v[i] : 0.02;
        out->erase_ratio[i] = cfg->aug.erase_ratio.n == 2 ? cfg->aug.erase_ratio.v[i] : 1.0;
    }
    out->flip = cfg->aug.flip;
    out->noise = cfg->aug.noise;
    out->erase_p = cfg->aug.erase;
    out->dropout = cfg->aug.dropout;
    out->eda_sr = cfg->aug.eda.sr;
    out->eda_rs = cfg->aug.eda.rs;
    out->eda_rd = cfg->aug.eda.rd;
}
