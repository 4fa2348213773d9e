/* Model assembly and the training step of each objective. */
#include "lib/model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/ops/ops.h"

static const float unit_eps = 1e-12f;

enum { RNG_TAG_INIT = 0x1417 };

static cx_status step_buffers_oom(const cx_model_spec *s, cx_err *err)
{
    return cx_fail(err, CX_ENOMEM, "out of memory for the model's step buffers (batch %d)",
                   s->max_batch);
}

/* DINO's tensors after the student's image tower: the student's head and prototypes, then the
 * teacher's copy of the tower, head and prototypes, fixed for the optimiser. */
static cx_status declare_dino(cx_model *m, cx_err *err)
{
    const cx_model_spec *s = &m->spec;
    cx_params *p = &m->params;
    const unsigned tf = CX_PARAM_FROZEN | CX_PARAM_NO_STATE;
    int nhidden = s->image_kind == CX_IMAGE_LINEAR ? 0 : s->image_nhidden;
    if (s->dino_prototypes < 1)
        return cx_fail(err, CX_EUSAGE, "dino: %d prototypes; give at least 1", s->dino_prototypes);
    const int proto_shape[2] = {s->dino_prototypes, s->dino_bottleneck};
    cx_status st = cx_dino_head_declare(&m->dino_head, p, "dino.head", s->embed_dim,
                                        s->dino_hidden, s->dino_bottleneck, 0, err);
    if (st)
        return st;
    if ((m->prototypes = cx_params_declare(p, "dino.prototypes", 2, proto_shape, 0, err)) < 0)
        return cx_params_failure(m->prototypes);
    unsigned imf = tf; /* the teacher's tower, whatever the student's flags */
    if (s->image_kind == CX_IMAGE_IDENTITY)
        st = CX_OK;
    else if (s->image_kind == CX_IMAGE_CNN)
        st = cx_cnn_declare(&m->teacher_cnn, p, "teacher.image", s->in_c, s->in_h, s->in_w,
                            s->image_channels, s->image_nchannels, s->image_hidden, nhidden,
                            s->embed_dim, s->act, s->norm, imf, err);
    else if (s->image_kind == CX_IMAGE_VIT)
        st = cx_seq_tower_declare_vit(&m->teacher_vit, p, "teacher.image", s->in_c, s->in_h,
                                      s->in_w, s->vit.patch, s->vit.width, s->vit.layers,
                                      s->vit.heads, s->vit.mlp, s->vit.pool, s->embed_dim, imf,
                                      err);
    else
        st = cx_mlp_declare(&m->teacher_image, p, "teacher.image", s->in_dim, s->image_hidden,
                            nhidden, s->embed_dim, s->act, s->norm, imf, err);
    if (st)
        return st;
    if ((st = cx_dino_head_declare(&m->teacher_head, p, "teacher.dino.head", s->embed_dim,
                                   s->dino_hidden, s->dino_bottleneck, tf, err)))
        return st;
    if ((m->teacher_prototypes = cx_params_declare(p, "teacher.dino.prototypes", 2, proto_shape,
                                                   tf, err)) < 0)
        return cx_params_failure(m->teacher_prototypes);
    return CX_OK;
}

cx_status cx_model_build(cx_model *m, const cx_model_spec *spec, int optim_slots, cx_err *err)
{
    cx_status st = cx_model_declare(m, spec, err);
    return st ? st : cx_model_alloc(m, optim_slots, err);
}

cx_status cx_model_declare(cx_model *m, const cx_model_spec *spec, cx_err *err)
{
    memset(m, 0, sizeof *m);
    m->spec = *spec;
    m->logit_scale = -1;
    m->prototypes = m->teacher_prototypes = -1;
    m->queue = m->queue_pos = -1;
    cx_params_init(&m->params);
    cx_params *p = &m->params;
    const cx_model_spec *s = &m->spec;
    cx_status st;
    int nhidden = s->image_kind == CX_IMAGE_LINEAR ? 0 : s->image_nhidden;
    /* A frozen tower is never updated: its tensors need no optimiser state in checkpoints. */
    unsigned imf = s->image_frozen ? CX_PARAM_FROZEN | CX_PARAM_NO_STATE : 0;
    if (s->image_kind == CX_IMAGE_IDENTITY) {
        if (s->embed_dim != s->in_dim)
            return cx_fail(err, CX_EUSAGE, "an identity image tower outputs its %d input features, "
                           "not %d", s->in_dim, s->embed_dim);
        st = CX_OK;
    } else if (s->image_kind == CX_IMAGE_CNN)
        st = cx_cnn_declare(&m->image_cnn, p, "image", s->in_c, s->in_h, s->in_w,
                            s->image_channels, s->image_nchannels, s->image_hidden, nhidden,
                            s->embed_dim, s->act, s->norm, imf, err);
    else if (s->image_kind == CX_IMAGE_VIT)
        st = cx_seq_tower_declare_vit(&m->image_vit, p, "image", s->in_c, s->in_h, s->in_w,
                                      s->vit.patch, s->vit.width, s->vit.layers, s->vit.heads,
                                      s->vit.mlp, s->vit.pool, s->embed_dim, imf, err);
    else
        st = cx_mlp_declare(&m->image, p, "image", s->in_dim, s->image_hidden, nhidden,
                            s->embed_dim, s->act, s->norm, imf, err);
    if (st)
        goto fail;
    if (s->objective == CX_OBJECTIVE_DINO) {
        if ((st = declare_dino(m, err)))
            goto fail;
    }
    unsigned scale_flags = CX_PARAM_NO_DECAY | (s->logit_scale_learn ? 0 : CX_PARAM_FROZEN);
    if (s->objective == CX_OBJECTIVE_CLIP) {
        int tn = s->text_kind == CX_TEXT_LINEAR ? 0 : s->text_nhidden;
        unsigned tf = s->text_frozen ? CX_PARAM_FROZEN : 0;
        const cx_seq_spec *ts = &s->text_seq;
        if (s->text_kind == CX_TEXT_TRANSFORMER)
            st = cx_seq_tower_declare_text(&m->text_seq, p, "text", s->vocab_size, s->max_tokens,
                                           s->token_dim, ts->layers, ts->heads, ts->mlp,
                                           ts->causal, ts->pool, s->embed_dim, tf, err);
        else
            st = cx_text_tower_declare(&m->text, p, "text", s->vocab_size, s->token_dim,
                                       s->max_tokens, s->text_hidden, tn, s->embed_dim, s->act,
                                       tf, err);
        if (st)
            goto fail;
        if ((m->logit_scale = cx_params_declare(p, "logit_scale", 1, (int[]){1}, scale_flags, err)) < 0) {
            st = cx_params_failure(m->logit_scale);
            goto fail;
        }
        if (s->declip_queue > 0) {
            const unsigned qf = CX_PARAM_FROZEN | CX_PARAM_NO_STATE;
            const int qshape[2] = {s->declip_queue, s->embed_dim};
            if ((m->queue = cx_params_declare(p, "declip.queue", 2, qshape, qf, err)) < 0 ||
                (m->queue_pos = cx_params_declare(p, "declip.queue_pos", 1, (int[]){2}, qf,
                                                  err)) < 0) {
                st = cx_params_failure(m->queue < 0 ? m->queue : m->queue_pos);
                goto fail;
            }
        }
        if (s->declip_iss &&
            (st = cx_simsiam_declare(&m->simsiam, p, "declip.iss", s->embed_dim, err)))
            goto fail;
    } else if (s->objective == CX_OBJECTIVE_SL) {
        if ((st = cx_head_declare(&m->head, p, "head", s->head_kind, s->num_classes, s->embed_dim,
                                  s->head_frozen ? CX_PARAM_FROZEN : 0, scale_flags, err)))
            goto fail;
    }
    return CX_OK;
fail:
    cx_model_free(m);
    return st;
}

size_t cx_model_param_bytes(const cx_model *m, int optim_slots)
{
    return sizeof(float) * m->params.total * (size_t)(2 + (optim_slots > 0 ? optim_slots : 0));
}

cx_status cx_model_alloc(cx_model *m, int optim_slots, cx_err *err)
{
    cx_params *p = &m->params;
    const cx_model_spec *s = &m->spec;
    cx_status st;
    if ((st = cx_params_alloc(p, optim_slots, err)))
        goto fail;
    /* The towers run one after the other, so their blocks share one scratch. */
    int text_seq = s->objective == CX_OBJECTIVE_CLIP && s->text_kind == CX_TEXT_TRANSFORMER;
    size_t need = 0, tneed = text_seq ? cx_seq_tower_scratch_floats(&m->text_seq, s->max_batch) : 0;
    if (s->image_kind == CX_IMAGE_VIT)
        need = cx_seq_tower_scratch_floats(&m->image_vit, s->max_batch);
    need = need > tneed ? need : tneed;
    if (need && !(m->seq_scratch = malloc(sizeof(float) * need))) {
        st = step_buffers_oom(s, err);
        goto fail;
    }
    st = s->image_kind == CX_IMAGE_IDENTITY ? CX_OK
         : s->image_kind == CX_IMAGE_CNN    ? cx_cnn_alloc(&m->image_cnn, s->max_batch, err)
         : s->image_kind == CX_IMAGE_VIT    ? cx_seq_tower_alloc(&m->image_vit, s->max_batch, m->seq_scratch, err)
                                            : cx_mlp_alloc(&m->image, s->max_batch, err);
    if (st)
        goto fail;
    if (m->spec.world < 1)
        m->spec.world = 1;
    size_t B = (size_t)s->max_batch, D = (size_t)s->embed_dim, G = B * (size_t)s->world;
    m->img_unit = malloc(sizeof(float) * G * D);
    m->img_norm = malloc(sizeof(float) * B);
    m->d_img = malloc(sizeof(float) * G * D);
    if (!m->img_unit || !m->img_norm || !m->d_img) {
        st = step_buffers_oom(s, err);
        goto fail;
    }
    if (s->objective == CX_OBJECTIVE_CLIP) {
        st = s->text_kind == CX_TEXT_TRANSFORMER ? cx_seq_tower_alloc(&m->text_seq, s->max_batch, m->seq_scratch, err)
                                                 : cx_text_tower_alloc(&m->text, s->max_batch, err);
        if (st)
            goto fail;
        m->txt_unit = malloc(sizeof(float) * G * D);
        m->txt_norm = malloc(sizeof(float) * B);
        m->d_txt = malloc(sizeof(float) * G * D);
        m->logits = malloc(sizeof(float) * G * G);
        m->p_row = malloc(sizeof(float) * G * G);
        m->p_col = malloc(sizeof(float) * G * G);
        m->scratch = malloc(sizeof(float) * G * G);
        if (!m->txt_unit || !m->txt_norm || !m->d_txt || !m->logits || !m->p_row || !m->p_col ||
            !m->scratch) {
            st = step_buffers_oom(s, err);
            goto fail;
        }
        if (s->declip_iss && (st = cx_simsiam_alloc(&m->simsiam, s->max_batch / 2, err)))
            goto fail;
    } else if (s->objective == CX_OBJECTIVE_DINO) {
        st = s->image_kind == CX_IMAGE_IDENTITY ? CX_OK
             : s->image_kind == CX_IMAGE_CNN    ? cx_cnn_alloc(&m->teacher_cnn, s->max_batch, err)
             : s->image_kind == CX_IMAGE_VIT    ? cx_seq_tower_alloc(&m->teacher_vit, s->max_batch, m->seq_scratch, err)
                                                : cx_mlp_alloc(&m->teacher_image, s->max_batch, err);
        if (st || (st = cx_dino_head_alloc(&m->dino_head, s->max_batch, err)) ||
            (st = cx_dino_head_alloc(&m->teacher_head, s->max_batch, err)))
            goto fail;
    } else {
        if ((st = cx_head_alloc(&m->head, s->max_batch, err)))
            goto fail;
        size_t C = (size_t)s->num_classes, cap = C > G ? C : G;
        m->dlogits = malloc(sizeof(float) * B * C);
        m->classes = malloc(sizeof(int32_t) * cap);
        m->targets = malloc(sizeof(int32_t) * G);
        if (!m->dlogits || !m->classes || !m->targets) {
            st = step_buffers_oom(s, err);
            goto fail;
        }
    }
    return CX_OK;
fail:
    cx_model_free(m);
    return st;
}

void cx_model_init_params(cx_model *m, uint64_t seed)
{
    cx_rng rng;
    cx_rng_seed(&rng, seed, cx_rng_stream(RNG_TAG_INIT, 0, 0));
    if (m->spec.image_kind == CX_IMAGE_IDENTITY)
        ; /* no parameters, no draws: the text tower's or head's initialisation is unchanged */
    else if (m->spec.image_kind == CX_IMAGE_CNN)
        cx_cnn_init_params(&m->image_cnn, &m->params, &rng);
    else if (m->spec.image_kind == CX_IMAGE_VIT)
        cx_seq_tower_init_params(&m->image_vit, &m->params, &rng);
    else
        cx_mlp_init_params(&m->image, &m->params, &rng);
    if (m->spec.objective == CX_OBJECTIVE_CLIP) {
        if (m->spec.text_kind == CX_TEXT_TRANSFORMER)
            cx_seq_tower_init_params(&m->text_seq, &m->params, &rng);
        else
            cx_text_tower_init_params(&m->text, &m->params, &rng);
        cx_param_value(&m->params, m->logit_scale)[0] = (float)log(m->spec.logit_scale_init);
        if (m->spec.declip_iss)
            cx_simsiam_init_params(&m->simsiam, &m->params, &rng);
    } else if (m->spec.objective == CX_OBJECTIVE_DINO) {
        cx_dino_head_init_params(&m->dino_head, &m->params, &rng);
        /* As a PyTorch Linear(bottleneck, P)'s weight: U(-1/sqrt(in), 1/sqrt(in)). */
        const cx_param_info *pi = &m->params.info[m->prototypes];
        float *w = cx_param_value(&m->params, m->prototypes);
        double bound = 1.0 / sqrt((double)pi->shape[1]);
        for (size_t i = 0; i < pi->size; i++)
            w[i] = (float)((2.0 * cx_rng_uniform(&rng) - 1.0) * bound);
        cx_model_teacher_update(m, 0.0); /* the teacher starts as the student */
    } else {
        cx_head_init_params(&m->head, &m->params, &rng, m->spec.logit_scale_init);
    }
}

void cx_model_teacher_update(cx_model *m, double momentum)
{
    if (m->spec.objective != CX_OBJECTIVE_DINO)
        return;
    static const char prefix[] = "teacher.";
    const float mt = (float)momentum, ms = (float)(1.0 - momentum);
    cx_params *p = &m->params;
    for (int t = 0; t < p->count; t++) {
        if (strncmp(p->info[t].name, prefix, sizeof prefix - 1) != 0)
            continue;
        /* Every teacher tensor has its student: declare_dino made them in pairs. */
        int s = cx_params_find(p, p->info[t].name + sizeof prefix - 1);
        float *tv = cx_param_value(p, t);
        const float *sv = cx_param_value(p, s);
        for (size_t i = 0; i < p->info[t].size; i++)
            tv[i] = mt * tv[i] + ms * sv[i];
    }
}

const float *cx_model_image_forward(cx_model *m, const float *x, int B)
{
    if (m->spec.image_kind == CX_IMAGE_IDENTITY)
        return x;
    if (m->spec.image_kind == CX_IMAGE_CNN)
        return cx_cnn_forward(&m->image_cnn, &m->params, x, B);
    if (m->spec.image_kind == CX_IMAGE_VIT)
        return cx_seq_tower_forward(&m->image_vit, &m->params, x, B);
    return cx_mlp_forward(&m->image, &m->params, x, B);
}

const float *cx_model_image_tokens(cx_model *m, int B, float *out, int *T, int *D)
{
    if (m->spec.image_kind == CX_IMAGE_VIT)
        return cx_seq_tower_tokens(&m->image_vit, T, D);
    if (m->spec.image_kind == CX_IMAGE_CNN)
        return cx_cnn_tokens(&m->image_cnn, B, out, T, D);
    *T = *D = 0;
    return NULL;
}

const float *cx_model_text_tokens(const cx_model *m, int *T, int *D)
{
    if (m->spec.objective == CX_OBJECTIVE_CLIP && m->spec.text_kind == CX_TEXT_TRANSFORMER)
        return cx_seq_tower_tokens(&m->text_seq, T, D);
    *T = *D = 0;
    return NULL;
}

/* The MLP that ends the tower (an MLP tower, a CNN's head), or NULL. */
static const cx_mlp *last_mlp(const cx_model *m)
{
    if (m->spec.image_frozen)
        return NULL;
    if (m->spec.image_kind == CX_IMAGE_CNN)
        return &m->image_cnn.mlp;
    if (m->spec.image_kind == CX_IMAGE_IDENTITY || m->spec.image_kind == CX_IMAGE_VIT)
        return NULL;
    return &m->image;
}

int cx_model_image_last_linear(const cx_model *m, int *H, int *w, int *b)
{
    const cx_mlp *mlp = last_mlp(m);
    if (!mlp || mlp->nlayers < 1)
        return 0;
    int L = mlp->nlayers - 1;
    *H = mlp->dims[L];
    *w = mlp->w[L];
    *b = mlp->b[L];
    return 1;
}

const float *cx_model_image_last_input(const cx_model *m, const float *x)
{
    const cx_mlp *mlp = last_mlp(m);
    if (!mlp || mlp->nlayers < 1)
        return NULL;
    if (mlp->nlayers >= 2)
        return mlp->a[mlp->nlayers - 2];
    return m->spec.image_kind == CX_IMAGE_CNN ? m->image_cnn.act[m->image_cnn.nblocks - 1] : x;
}

int cx_model_image_trainable(const cx_model *m)
{
    return m->spec.image_kind != CX_IMAGE_IDENTITY && !m->spec.image_frozen;
}

/* Gradients of the image tower for the last forward; the input needs none. */
static void image_backward(cx_model *m, const float *x, const float *dfeat, int B);

void cx_model_image_backward(cx_model *m, const float *x, const float *dfeat, int B)
{
    image_backward(m, x, dfeat, B);
}

const float *cx_model_teacher_image_forward(cx_model *m, const float *x, int B)
{
    if (m->spec.image_kind == CX_IMAGE_IDENTITY)
        return x;
    if (m->spec.image_kind == CX_IMAGE_CNN)
        return cx_cnn_forward(&m->teacher_cnn, &m->params, x, B);
    if (m->spec.image_kind == CX_IMAGE_VIT)
        return cx_seq_tower_forward(&m->teacher_vit, &m->params, x, B);
    return cx_mlp_forward(&m->teacher_image, &m->params, x, B);
}

void cx_model_dino_teacher_backbone(cx_model *m)
{
    if (m->spec.objective != CX_OBJECTIVE_DINO)
        return;
    static const char prefix[] = "teacher.image.";
    cx_params *p = &m->params;
    for (int t = 0; t < p->count; t++) {
        if (strncmp(p->info[t].name, prefix, sizeof prefix - 1) != 0)
            continue;
        int s = cx_params_find(p, p->info[t].name + sizeof "teacher." - 1);
        memcpy(cx_param_value(p, s), cx_param_value(p, t), sizeof(float) * p->info[t].size);
    }
}

static void image_backward(cx_model *m, const float *x, const float *dfeat, int B)
{
    if (!cx_model_image_trainable(m))
        return;
    if (m->spec.image_kind == CX_IMAGE_CNN)
        cx_cnn_backward(&m->image_cnn, &m->params, x, dfeat, NULL, B);
    else if (m->spec.image_kind == CX_IMAGE_VIT)
        cx_seq_tower_backward(&m->image_vit, &m->params, x, dfeat);
    else
        cx_mlp_backward(&m->image, &m->params, x, dfeat, NULL, B);
}

const float *cx_model_text_forward(cx_model *m, const int32_t *tokens, int B)
{
    if (m->spec.text_kind == CX_TEXT_TRANSFORMER)
        return cx_seq_tower_forward(&m->text_seq, &m->params, tokens, B);
    return cx_text_tower_forward(&m->text, &m->params, tokens, B);
}

void cx_model_text_backward(cx_model *m, const int32_t *tokens, const float *dfeat, int B)
{
    if (m->spec.text_frozen)
        return;
    if (m->spec.text_kind == CX_TEXT_TRANSFORMER)
        cx_seq_tower_backward(&m->text_seq, &m->params, tokens, dfeat);
    else
        cx_text_tower_backward(&m->text, &m->params, tokens, dfeat, B);
}

/* feat_given: x holds the image features (no image forward or backward). */
static cx_status clip_step(cx_model *m, const float *x, int feat_given, const int32_t *tokens,
                           int B, const cx_dist *d, double *loss, cx_err *err)
{
    int D = m->spec.embed_dim;
    int rank = d ? d->rank : 0, world = d ? d->size : 1, G = B * world;
    size_t mine = (size_t)rank * (size_t)B * (size_t)D;
    float *img = m->img_unit + mine, *txt = m->txt_unit + mine;
    int image_grad = !feat_given && cx_model_image_trainable(m);
    const float *f = feat_given ? x : cx_model_image_forward(m, x, B);
    cx_l2norm_forward(img, m->img_norm, f, B, D, unit_eps);
    const float *g = cx_model_text_forward(m, tokens, B);
    cx_l2norm_forward(txt, m->txt_norm, g, B, D, unit_eps);
    if (d) {
        cx_status st = cx_dist_allgather(d, img, (size_t)B * (size_t)D, m->img_unit, err);
        if (!st)
            st = cx_dist_allgather(d, txt, (size_t)B * (size_t)D, m->txt_unit, err);
        if (st)
            return st;
    }
    float scale = cx_model_logit_scale(m);
    *loss = cx_infonce_forward(m->logits, m->p_row, m->p_col, m->img_unit, m->txt_unit, scale, G, D);
    int text_frozen = m->spec.text_frozen;
    /* Every rank computes the same logit-scale gradient: each adds its 1/world share. */
    float *dtheta = cx_param_grad(&m->params, m->logit_scale);
    float theta_before = dtheta[0];
    cx_infonce_backward(image_grad ? m->d_img : NULL, text_frozen ? NULL : m->d_txt, dtheta,
                        m->scratch, m->p_row, m->p_col, m->logits, m->img_unit, m->txt_unit, scale,
                        G, D, 1.0f);
    if (world > 1)
        dtheta[0] = theta_before + (dtheta[0] - theta_before) / (float)world;
    if (image_grad) {
        float *d_img = m->d_img + mine;
        cx_l2norm_backward(d_img, d_img, img, m->img_norm, B, D, unit_eps);
        image_backward(m, x, d_img, B);
    }
    if (!text_frozen) {
        float *d_txt = m->d_txt + mine;
        cx_l2norm_backward(d_txt, d_txt, txt, m->txt_norm, B, D, unit_eps);
        if (m->spec.text_kind == CX_TEXT_TRANSFORMER)
            cx_seq_tower_backward(&m->text_seq, &m->params, tokens, d_txt);
        else
            cx_text_tower_backward(&m->text, &m->params, tokens, d_txt, B);
    }
    return CX_OK;
}

cx_status cx_model_clip_step_dist(cx_model *m, const float *x, const int32_t *tokens, int B,
                                  const cx_dist *d, double *loss, cx_err *err)
{
    return clip_step(m, x, 0, tokens, B, d, loss, err);
}

cx_status cx_model_clip_step_dist_feat(cx_model *m, const float *feat, const int32_t *tokens,
                                       int B, const cx_dist *d, double *loss, cx_err *err)
{
    return clip_step(m, feat, 1, tokens, B, d, loss, err);
}

double cx_model_clip_step(cx_model *m, const float *x, const int32_t *tokens, int B)
{
    double loss = 0.0;
    cx_model_clip_step_dist(m, x, tokens, B, NULL, &loss, NULL);
    return loss;
}

static double sl_step(cx_model *m, const float *x, int feat_given, const int32_t *labels, int B,
                      const int32_t *all_labels, int G, int offset, cx_loss *l,
                      cx_vocab_sampler *vs, cx_rng *rng, int epoch)
{
    int image_grad = !feat_given && cx_model_image_trainable(m);
    const float *f = feat_given ? x : cx_model_image_forward(m, x, B);
    const int32_t *classes = NULL, *targets = labels;
    int K = m->spec.num_classes;
    if (vs) {
        K = cx_vocab_sampler_draw(vs, all_labels, G, rng, m->classes, m->targets);
        classes = m->classes;
        targets = m->targets + offset;
    }
    const float *logits = cx_head_forward(&m->head, &m->params, f, B, classes, K);
    double loss = cx_loss_compute(l, logits, targets, classes, B, K, cx_model_logit_scale(m),
                                  epoch, m->dlogits);
    if (m->spec.world > 1) {
        /* This rank's mean is one of world equal shares of the global batch's mean. */
        float share = 1.0f / (float)m->spec.world;
        size_t n = (size_t)B * (size_t)K;
        for (size_t i = 0; i < n; i++)
            m->dlogits[i] *= share;
    }
    cx_head_backward(&m->head, &m->params, f, m->dlogits, image_grad ? m->d_img : NULL, B);
    if (image_grad)
        image_backward(m, x, m->d_img, B);
    return loss;
}

double cx_model_sl_step_global(cx_model *m, const float *x, const int32_t *labels, int B,
                               const int32_t *all_labels, int G, int offset, cx_loss *l,
                               cx_vocab_sampler *vs, cx_rng *rng, int epoch)
{
    return sl_step(m, x, 0, labels, B, all_labels, G, offset, l, vs, rng, epoch);
}

double cx_model_sl_step_global_feat(cx_model *m, const float *feat, const int32_t *labels, int B,
                                    const int32_t *all_labels, int G, int offset, cx_loss *l,
                                    cx_vocab_sampler *vs, cx_rng *rng, int epoch)
{
    return sl_step(m, feat, 1, labels, B, all_labels, G, offset, l, vs, rng, epoch);
}

double cx_model_sl_step(cx_model *m, const float *x, const int32_t *labels, int B, cx_loss *l,
                        cx_vocab_sampler *vs, cx_rng *rng, int epoch)
{
    return cx_model_sl_step_global(m, x, labels, B, labels, B, 0, l, vs, rng, epoch);
}

static int scale_index(const cx_model *m)
{
    if (m->spec.objective == CX_OBJECTIVE_DINO)
        return -1; /* temperatures are fixed, no scale is learnt */
    return m->spec.objective == CX_OBJECTIVE_CLIP ? m->logit_scale : m->head.scale;
}

float cx_model_logit_scale(const cx_model *m)
{
    int idx = scale_index(m);
    return idx >= 0 ? expf(cx_param_value(&m->params, idx)[0]) : 1.0f;
}

void cx_model_clamp_logit_scale(cx_model *m)
{
    int idx = scale_index(m);
    if (idx < 0)
        return;
    float *theta = cx_param_value(&m->params, idx);
    float hi = (float)log(m->spec.logit_scale_max);
    if (theta[0] < 0.0f)
        theta[0] = 0.0f;
    if (theta[0] > hi)
        theta[0] = hi;
}

void cx_model_free(cx_model *m)
{
    cx_mlp_free(&m->image);
    cx_cnn_free(&m->image_cnn);
    cx_seq_tower_free(&m->image_vit);
    cx_text_tower_free(&m->text);
    cx_seq_tower_free(&m->text_seq);
    cx_head_free(&m->head);
    cx_dino_head_free(&m->dino_head);
    cx_dino_head_free(&m->teacher_head);
    cx_simsiam_free(&m->simsiam);
    cx_mlp_free(&m->teacher_image);
    cx_cnn_free(&m->teacher_cnn);
    cx_seq_tower_free(&m->teacher_vit);
    cx_params_free(&m->params);
    free(m->img_unit);
    free(m->img_norm);
    free(m->txt_unit);
    free(m->txt_norm);
    free(m->logits);
    free(m->p_row);
    free(m->p_col);
    free(m->scratch);
    free(m->d_img);
    free(m->d_txt);
    free(m->dlogits);
    free(m->classes);
    free(m->targets);
    free(m->seq_scratch);
    memset(m, 0, sizeof *m);
}
