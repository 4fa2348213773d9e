/* Whole-model training steps: gradients of the CLIP and SL steps (every parameter) against
 * finite differences, and two full steps (forward, backward, AdamW) against PyTorch; a text
 * tower initialised from a run (model.text.init) and frozen, through the trainer. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/threads.h"
#include "lib/data/synth.h"
#include "lib/model/model.h"
#include "lib/objective/loss.h"
#include "lib/objective/vocab_sampler.h"
#include "lib/optim/optim.h"
#include "lib/run/run.h"
#include "lib/run/train_config.h"
#include "lib/train/declip_step.h"
#include "lib/train/dino_step.h"
#include "lib/train/trainer.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

enum { B = 6, IN = 5, D = 4, C = 3 };

static cx_model_spec small_spec(cx_objective objective)
{
    cx_model_spec s;
    memset(&s, 0, sizeof s);
    s.objective = objective;
    s.max_batch = B;
    s.image_kind = CX_IMAGE_MLP;
    s.in_dim = IN;
    s.image_hidden[0] = 8;
    s.image_nhidden = 1;
    s.embed_dim = D;
    s.act = CX_ACT_RELU;
    s.norm = CX_NORM_NONE;
    s.vocab_size = 7;
    s.token_dim = 3;
    s.max_tokens = 4;
    s.num_classes = C;
    s.head_kind = CX_HEAD_LINEAR;
    s.logit_scale_init = 1 / 0.07;
    s.logit_scale_max = 100;
    s.logit_scale_learn = 1;
    return s;
}

static cx_loss_config loss_config(cx_loss_kind kind)
{
    cx_loss_config lc = {.kind = kind, .focal_gamma = 2, .la_tau = 1, .effnum_beta = 0.999,
                         .grw_p = 1.2, .ldam_max_margin = 0.5, .lade_lambda = 0.1};
    return lc;
}

static const int32_t tokens[B * 4] = {2, 3, 0, 0, 4, 1, 5, 0, 6, 6, 2, 3,
                                       1, 0, 0, 0, 5, 4, 3, 2, 3, 0, 0, 0};
static const int32_t labels[B] = {0, 2, 1, 2, 0, 1};

typedef struct {
    cx_model *m;
    const float *x;
    cx_loss *loss;
    cx_vocab_sampler *vs;
} step_ctx;

static double clip_loss(void *ctx)
{
    step_ctx *c = ctx;
    return cx_model_clip_step(c->m, c->x, tokens, B);
}

static double sl_loss(void *ctx)
{
    step_ctx *c = ctx;
    cx_rng rng;
    cx_rng_seed(&rng, 5, 0); /* the same class subset at every evaluation */
    return cx_model_sl_step(c->m, c->x, labels, B, c->loss, c->vs, &rng, 0);
}

/* Check the gradient of every trainable tensor of m for the scalar f (at least min_checked
 * elements). */
static void check_params_min(cx_model *m, double (*f)(void *), void *ctx, unsigned min_checked);

static void check_all_params(cx_model *m, double (*f)(void *), void *ctx)
{
    check_params_min(m, f, ctx, 41);
}

static void check_params_min(cx_model *m, double (*f)(void *), void *ctx, unsigned min_checked)
{
    cx_params *p = &m->params;
    cx_params_zero_grad(p);
    f(ctx);
    float *grad = malloc(sizeof(float) * p->total);
    memcpy(grad, p->grad, sizeof(float) * p->total);
    gc_var vars[32];
    int n = 0;
    for (int t = 0; t < p->count && n < 32; t++) {
        if (p->info[t].flags & CX_PARAM_FROZEN)
            continue;
        vars[n].name = p->info[t].name;
        vars[n].x = cx_param_value(p, t);
        vars[n].grad = grad + p->info[t].offset;
        vars[n].n = p->info[t].size;
        n++;
    }
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.rtol = 2e-2;
    o.atol = 2e-4;
    gc_report rep;
    int rc = gc_check(f, NULL, ctx, vars, n, &o, &rep);
    ck_assert_msg(rc == 0, "%s", rep.msg);
    ck_assert_uint_ge(rep.checked, min_checked);
    free(grad);
}

static void random_params(cx_model *m, uint64_t seed)
{
    cx_model_init_params(m, seed);
}

/* CFR's tap (lib/model/model.h): the rows entering the image tower's last linear layer, which
 * that layer maps to the tower's output exactly as the forward did (W h + b, recomputed here
 * in double); no such layer on an identity or frozen tower. */
static void last_linear_case(cx_image_kind kind, int nhidden, int frozen)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_SL);
    s.image_kind = kind;
    s.image_nhidden = nhidden;
    s.image_frozen = frozen;
    if (kind == CX_IMAGE_IDENTITY)
        s.embed_dim = IN;
    if (kind == CX_IMAGE_CNN) {
        s.in_c = 1;
        s.in_h = 4;
        s.in_w = 4;
        s.in_dim = 16;
        s.image_channels[0] = 2;
        s.image_nchannels = 1;
    }
    ck_assert_msg(cx_model_build(&m, &s, 0, &err) == CX_OK, "%s", err.msg);
    cx_model_init_params(&m, 5);
    int H = -1, wi = -1, bi = -1;
    int has = cx_model_image_last_linear(&m, &H, &wi, &bi);
    if (kind == CX_IMAGE_IDENTITY || frozen) {
        ck_assert_int_eq(has, 0);
        cx_model_free(&m);
        return;
    }
    ck_assert_int_eq(has, 1);
    int want_h = kind == CX_IMAGE_CNN ? (nhidden ? 8 : 2 * 2 * 2) : nhidden ? 8 : IN;
    ck_assert_int_eq(H, want_h);
    ck_assert_int_eq(m.params.info[wi].shape[0], D);
    ck_assert_int_eq(m.params.info[wi].shape[1], H);
    float x[B * 16];
    cx_rng r;
    cx_rng_seed(&r, 2, 0);
    for (int i = 0; i < B * s.in_dim; i++)
        x[i] = (float)cx_rng_normal(&r);
    const float *out = cx_model_image_forward(&m, x, B);
    const float *h = cx_model_image_last_input(&m, x);
    ck_assert_ptr_nonnull(h);
    const float *w = cx_param_value(&m.params, wi), *b = cx_param_value(&m.params, bi);
    for (int i = 0; i < B; i++)
        for (int o = 0; o < D; o++) {
            double a = b[o];
            for (int k = 0; k < H; k++)
                a += (double)w[o * H + k] * h[i * H + k];
            ck_assert_msg(fabs(a - out[i * D + o]) <= 1e-5 * (1 + fabs(a)),
                          "kind %d hidden %d: row %d out %d: W h + b = %g, forward %g", (int)kind,
                          nhidden, i, o, a, out[i * D + o]);
        }
    cx_model_free(&m);
}

START_TEST(image_last_linear_layer)
{
    last_linear_case(CX_IMAGE_MLP, 1, 0);
    last_linear_case(CX_IMAGE_MLP, 0, 0); /* a linear tower: its input is the layer's */
    last_linear_case(CX_IMAGE_CNN, 0, 0);
    last_linear_case(CX_IMAGE_CNN, 1, 0);
    last_linear_case(CX_IMAGE_MLP, 1, 1);
    last_linear_case(CX_IMAGE_IDENTITY, 0, 0);
}
END_TEST

/* DINO's layout: the student (image tower, head, prototypes) and its teacher copy under
 * "teacher.", fixed for the optimiser, equal to the student after initialisation, moved only by
 * the EMA; all in the one parameter set the checkpoint code walks. */
static void dino_layout_case(cx_image_kind kind)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_DINO);
    s.image_kind = kind;
    s.dino_hidden = 6;
    s.dino_bottleneck = 3;
    s.dino_prototypes = 5;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    cx_model_init_params(&m, 3);
    cx_params *p = &m.params;
    int pi = cx_params_find(p, "dino.prototypes");
    ck_assert_int_eq(pi, m.prototypes);
    ck_assert_int_eq(p->info[pi].ndim, 2);
    ck_assert_int_eq(p->info[pi].shape[0], 5);
    ck_assert_int_eq(p->info[pi].shape[1], 3);
    ck_assert_int_eq(cx_params_find(p, "teacher.dino.prototypes"), m.teacher_prototypes);
    ck_assert_int_ge(cx_params_find(p, "dino.head.fc0.weight"), 0);
    ck_assert_int_ge(cx_params_find(p, "teacher.image.fc0.weight"), 0);
    ck_assert_int_lt(cx_params_find(p, "logit_scale"), 0);
    ck_assert_int_lt(cx_params_find(p, "head.weight"), 0);
    int students = 0, teachers = 0;
    size_t student_scalars = 0;
    for (int t = 0; t < p->count; t++) {
        const cx_param_info *in = &p->info[t];
        if (strncmp(in->name, "teacher.", 8) != 0) {
            ck_assert_msg(!(in->flags & CX_PARAM_FROZEN), "%s frozen", in->name);
            students++;
            student_scalars += in->size;
            continue;
        }
        teachers++;
        ck_assert_msg((in->flags & (CX_PARAM_FROZEN | CX_PARAM_NO_STATE)) ==
                          (CX_PARAM_FROZEN | CX_PARAM_NO_STATE), "%s not fixed", in->name);
        int st = cx_params_find(p, in->name + 8);
        ck_assert_msg(st >= 0, "%s has no student", in->name);
        ck_assert_int_eq(p->info[st].size, in->size);
        ck_assert_int_eq(memcmp(p->info[st].shape, in->shape, sizeof in->shape), 0);
        ck_assert_msg(memcmp(cx_param_value(p, st), cx_param_value(p, t),
                             in->size * sizeof(float)) == 0, "%s starts unlike its student",
                      in->name);
    }
    ck_assert_int_eq(teachers, students);
    ck_assert_uint_eq(cx_params_trainable(p), student_scalars);
    /* The prototypes are initialised (not left at zero), within PyTorch's Linear bound. */
    const float *w = cx_param_value(p, pi);
    int nonzero = 0;
    for (int i = 0; i < 15; i++) {
        ck_assert(fabsf(w[i]) <= 1 / sqrtf(3.0f));
        nonzero += w[i] != 0;
    }
    ck_assert_int_eq(nonzero, 15);
    /* EMA: the teacher moves a (1 - momentum) share towards the student. */
    float *sv = cx_param_value(p, pi), *tv = cx_param_value(p, m.teacher_prototypes);
    float before = tv[7];
    sv[7] += 1.0f;
    cx_model_teacher_update(&m, 0.75);
    ck_assert_float_eq_tol(tv[7], before + 0.25f, 1e-6f);
    ck_assert_float_eq_tol(tv[6], sv[6], 1e-6f);
    ck_assert(cx_model_logit_scale(&m) == 1.0f);
    cx_model_clamp_logit_scale(&m); /* no scale: touches nothing */
    ck_assert_float_eq_tol(tv[7], before + 0.25f, 1e-6f);
    cx_model_free(&m);
}

START_TEST(dino_layout_mlp_tower)
{
    dino_layout_case(CX_IMAGE_MLP);
}
END_TEST

START_TEST(dino_layout_identity_tower)
{
    /* Features in: the head and prototypes are the whole student. */
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_DINO);
    s.image_kind = CX_IMAGE_IDENTITY;
    s.embed_dim = IN;
    s.dino_hidden = 6;
    s.dino_bottleneck = 3;
    s.dino_prototypes = 5;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    cx_model_init_params(&m, 3);
    ck_assert_int_lt(cx_params_find(&m.params, "teacher.image.fc0.weight"), 0);
    ck_assert_int_ge(cx_params_find(&m.params, "teacher.dino.head.fc2.weight"), 0);
    cx_model_free(&m);
    s.dino_prototypes = 0;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "dino: 0 prototypes; give at least 1");
}
END_TEST

START_TEST(dino_checkpoint_round_trips_student_and_teacher)
{
    /* The run checkpoint walks the parameter set: the teacher is saved and loaded with the
     * student, and a model from another seed reads back bit-identical. */
    cx_model a, b;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_DINO);
    s.dino_hidden = 6;
    s.dino_bottleneck = 3;
    s.dino_prototypes = 5;
    ck_assert_int_eq(cx_model_build(&a, &s, 2, &err), CX_OK);
    ck_assert_int_eq(cx_model_build(&b, &s, 2, &err), CX_OK);
    cx_model_init_params(&a, 3);
    cx_model_init_params(&b, 4);
    /* A teacher apart from its student, as after training steps. */
    float *sv = cx_param_value(&a.params, a.prototypes);
    sv[0] += 0.5f;
    cx_model_teacher_update(&a, 0.5);
    char dir[] = "/tmp/clipx-dino-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *path = cx_run_path(dir, CX_RUN_CKPT);
    cx_run_meta meta;
    memset(&meta, 0, sizeof meta);
    char *class_names[1] = {"c"};
    int64_t class_counts[1] = {7};
    meta.dataset = "t";
    meta.shape.in_rank = 1;
    meta.shape.in_shape[0] = IN;
    meta.shape.num_classes = 1;
    meta.num_eval_classes = 1;
    meta.class_names = class_names;
    meta.class_counts = class_counts;
    ck_assert_msg(cx_run_write_ckpt(path, &meta, "objective: sl\n", &a, NULL, &err) == CX_OK,
                  "%s", err.msg);
    cx_ckpt ck;
    cx_run_meta back;
    ck_assert_msg(cx_run_read_ckpt(path, &ck, &back, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(cx_run_load_params(&ck, path, &b, NULL, &err) == CX_OK, "%s", err.msg);
    ck_assert_int_eq(memcmp(a.params.value, b.params.value, a.params.total * sizeof(float)), 0);
    ck_assert(cx_param_value(&b.params, b.teacher_prototypes)[0] !=
              cx_param_value(&b.params, b.prototypes)[0]);
    cx_ckpt_free(&ck);
    cx_run_meta_free(&back);
    unlink(path);
    rmdir(dir);
    free(path);
    cx_model_free(&a);
    cx_model_free(&b);
}
END_TEST

START_TEST(clip_step_gradients)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_CLIP);
    s.logit_scale_init = 3.0; /* a moderate scale keeps the finite differences well conditioned */
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    random_params(&m, 3);
    float x[B * IN];
    gc_fill_normal(x, B * IN, 11, 1.0);
    step_ctx c = {&m, x, NULL, NULL};
    check_all_params(&m, clip_loss, &c);
    cx_model_free(&m);
}
END_TEST

START_TEST(clip_step_frozen_text_tower_gets_no_gradient)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_CLIP);
    s.text_frozen = 1;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    random_params(&m, 3);
    float x[B * IN];
    gc_fill_normal(x, B * IN, 11, 1.0);
    cx_params_zero_grad(&m.params);
    step_ctx c = {&m, x, NULL, NULL};
    clip_loss(&c);
    int t = cx_params_find(&m.params, "text.embed.weight");
    ck_assert_int_ge(t, 0);
    ck_assert(m.params.info[t].flags & CX_PARAM_FROZEN);
    for (size_t i = 0; i < m.params.info[t].size; i++)
        ck_assert_float_eq(cx_param_grad(&m.params, t)[i], 0.0f);
    /* The image tower still learns. */
    int w = cx_params_find(&m.params, "image.fc0.weight");
    double sum = 0;
    for (size_t i = 0; i < m.params.info[w].size; i++)
        sum += fabs(cx_param_grad(&m.params, w)[i]);
    ck_assert_double_gt(sum, 0);
    cx_model_free(&m);
}
END_TEST

/* An identity image tower: no parameters, the inputs are the features; the head (SL) and the
 * text tower (CLIP) get their finite-difference gradients. */
START_TEST(identity_tower_steps_gradients)
{
    for (int k = 0; k < 2; k++) {
        cx_model m;
        cx_err err;
        cx_model_spec s = small_spec(k ? CX_OBJECTIVE_CLIP : CX_OBJECTIVE_SL);
        s.image_kind = CX_IMAGE_IDENTITY;
        s.image_nhidden = 0;
        s.embed_dim = IN;
        s.logit_scale_init = 3.0;
        ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
        random_params(&m, 6);
        for (int t = 0; t < m.params.count; t++)
            ck_assert_msg(strncmp(m.params.info[t].name, "image.", 6) != 0, "%s",
                          m.params.info[t].name);
        float x[B * IN];
        gc_fill_normal(x, B * IN, 13, 1.0);
        ck_assert_ptr_eq(cx_model_image_forward(&m, x, B), x);
        ck_assert_int_eq(cx_model_image_trainable(&m), 0);
        int64_t counts[C] = {50, 10, 2};
        cx_loss_config lc = loss_config(CX_LOSS_CE);
        cx_loss *loss = NULL;
        if (!k)
            ck_assert_int_eq(cx_loss_create(&loss, &lc, counts, C, B, &err), CX_OK);
        step_ctx c = {&m, x, loss, NULL};
        /* SL: the linear head's C x IN + C values; CLIP: the text tower and the scale. */
        check_params_min(&m, k ? clip_loss : sl_loss, &c, k ? 41 : C * IN + C);
        cx_loss_free(loss);
        cx_model_free(&m);
    }
    /* The embedding size is the input size. */
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_SL);
    s.image_kind = CX_IMAGE_IDENTITY;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "an identity image tower outputs its 5 input features, not 4");
}
END_TEST

/* The DINO step: the gradient of its loss with respect to every student tensor (image tower,
 * head, the prototypes, of which the step uses 3 of 5) against finite differences, with the
 * teacher moved apart from the student first; the teacher gets no gradient; the prototypes
 * the step did not draw get none either. cx_model_dino_teacher_backbone then gives the image
 * tower the teacher's values (what eval reads), and leaves the heads alone. */
typedef struct {
    cx_model *m;
    cx_dino_step *d;
    const float *x;
    const uint64_t *samples;
    cx_aug_config aug;
    cx_aug_shape shape;
} dino_ctx;

static double dino_loss(void *ctx)
{
    dino_ctx *c = ctx;
    double loss = 0;
    cx_err err;
    ck_assert_int_eq(cx_dino_step_run(c->d, c->m, &c->aug, &c->shape, 9, 4, c->samples, c->x,
                                      B / 2, &loss, &err), CX_OK);
    return loss;
}

START_TEST(dino_step_gradients)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_DINO);
    s.dino_hidden = 6;
    s.dino_bottleneck = 3;
    s.dino_prototypes = 5;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    cx_model_init_params(&m, 3);
    cx_params *p = &m.params;
    for (int t = 0; t < p->count; t++)
        if (strncmp(p->info[t].name, "teacher.", 8) != 0) {
            float noise[64];
            size_t n = p->info[t].size;
            ck_assert_uint_le(n, 64);
            gc_fill_normal(noise, n, 20 + (uint64_t)t, 0.2);
            float *v = cx_param_value(p, t);
            for (size_t i = 0; i < n; i++)
                v[i] += noise[i];
        }
    cx_dino_step d;
    ck_assert_int_eq(cx_dino_step_init(&d, &m, B / 2, 6, 3, 0.1, 0.04, NULL, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "dino.sample_k: 6 is above dino.prototypes (5); set "
                     "dino.sample_k to at most 5 (0 uses all)");
    ck_assert_int_eq(cx_dino_step_init(&d, &m, B / 2, 3, 3, 0.1, 0.04, NULL, &err), CX_OK);
    float x[B / 2 * IN];
    gc_fill_normal(x, B / 2 * IN, 13, 1.0);
    const uint64_t samples[B / 2] = {0, 1, 2};
    dino_ctx c = {&m, &d, x, samples, {0}, {0}};
    c.shape.d = IN;
    check_all_params(&m, dino_loss, &c);
    /* After the last evaluation (with restored values): the teacher's gradient is zero, and so
     * is that of the prototypes the step did not draw. */
    cx_params_zero_grad(p);
    dino_loss(&c);
    for (int t = 0; t < p->count; t++) {
        if (strncmp(p->info[t].name, "teacher.", 8) != 0)
            continue;
        const float *g = cx_param_grad(p, t);
        for (size_t i = 0; i < p->info[t].size; i++)
            ck_assert_msg(g[i] == 0.0f, "%s gets a gradient", p->info[t].name);
    }
    int drawn[5] = {0};
    for (int i = 0; i < 3; i++)
        drawn[d.idx[i]] = 1;
    const float *gp = cx_param_grad(p, m.prototypes);
    for (int r = 0; r < 5; r++) {
        double sum = 0;
        for (int j = 0; j < 3; j++)
            sum += fabs(gp[r * 3 + j]);
        ck_assert_msg(drawn[r] ? sum > 0 : sum == 0, "prototype %d (drawn %d): |grad| %g", r,
                      drawn[r], sum);
    }
    int si = cx_params_find(p, "image.fc0.weight"), ti = cx_params_find(p, "teacher.image.fc0.weight");
    int hs = cx_params_find(p, "dino.head.fc0.weight"), ht = cx_params_find(p, "teacher.dino.head.fc0.weight");
    size_t n = p->info[si].size, nh = p->info[hs].size;
    ck_assert(memcmp(cx_param_value(p, si), cx_param_value(p, ti), n * sizeof(float)) != 0);
    cx_model_dino_teacher_backbone(&m);
    ck_assert(memcmp(cx_param_value(p, si), cx_param_value(p, ti), n * sizeof(float)) == 0);
    ck_assert(memcmp(cx_param_value(p, hs), cx_param_value(p, ht), nh * sizeof(float)) != 0);
    cx_dino_step_free(&d);
    cx_model_free(&m);
}
END_TEST

/* The DeCLIP step: the gradient of its weighted loss (multi-view and NNS; ISS's stop-gradient
 * makes its step gradient differ from the loss's derivative, so its own check is in
 * tests/check_declip.c) with respect to the image tower, the text tower and the logit scale
 * against finite differences, from a queue
 * that an earlier step filled (restored before each evaluation: the step enqueues); the queue
 * gets no gradient; the step enqueues the batch's unit captions after querying. */
typedef struct {
    cx_model *m;
    cx_declip_step *d;
    const float *x;
    const uint64_t *samples;
    cx_aug_config aug;
    cx_aug_shape shape;
    float *queue_saved; /* (Q D + 2) */
} declip_ctx;

static void declip_restore(declip_ctx *c)
{
    cx_params *p = &c->m->params;
    size_t nq = p->info[c->m->queue].size;
    memcpy(cx_param_value(p, c->m->queue), c->queue_saved, sizeof(float) * nq);
    memcpy(cx_param_value(p, c->m->queue_pos), c->queue_saved + nq, sizeof(float) * 2);
}

static double declip_loss(void *ctx)
{
    declip_ctx *c = ctx;
    declip_restore(c);
    double loss = 0;
    cx_err err;
    ck_assert_int_eq(cx_declip_step_run(c->d, c->m, &c->aug, &c->shape, 9, 4, c->samples, c->x,
                                        tokens, B / 2, &loss, &err), CX_OK);
    return loss;
}

START_TEST(declip_step_gradients)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_CLIP);
    s.logit_scale_init = 3.0;
    s.declip_queue = 5;
    s.declip_iss = 1;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    random_params(&m, 8);
    cx_params *p = &m.params;
    ck_assert_int_eq(cx_params_find(p, "declip.queue"), m.queue);
    ck_assert(p->info[m.queue].flags & CX_PARAM_FROZEN);
    cx_declip_step d;
    ck_assert_int_eq(cx_declip_step_init(&d, &m, B / 2, 0.4, 0.2, 0.0, &err), CX_OK);
    float x[B / 2 * IN], x0[B / 2 * IN];
    gc_fill_normal(x, B / 2 * IN, 13, 1.0);
    gc_fill_normal(x0, B / 2 * IN, 14, 1.0);
    const uint64_t samples[B / 2] = {0, 1, 2};
    declip_ctx c = {&m, &d, x, samples, {0}, {0}, NULL};
    c.shape.d = IN;
    c.aug.noise = 0.5; /* two image views that differ */
    /* An earlier step on other inputs fills 3 of the 5 rows. */
    double l0;
    int32_t tokens0[B * 4];
    memcpy(tokens0, tokens + B / 2 * 4, sizeof(int32_t) * B / 2 * 4);
    memcpy(tokens0 + B / 2 * 4, tokens, sizeof(int32_t) * B / 2 * 4);
    ck_assert_int_eq(cx_declip_step_run(&d, &m, &c.aug, &c.shape, 9, 3, samples, x0, tokens0,
                                        B / 2, &l0, &err), CX_OK);
    const float *pos = cx_param_value(p, m.queue_pos);
    ck_assert(pos[0] == 3.0f && pos[1] == 3.0f);
    size_t nq = p->info[m.queue].size;
    c.queue_saved = malloc(sizeof(float) * (nq + 2));
    memcpy(c.queue_saved, cx_param_value(p, m.queue), sizeof(float) * nq);
    memcpy(c.queue_saved + nq, pos, sizeof(float) * 2);
    check_all_params(&m, declip_loss, &c);
    /* Each step enqueues its 3 captions: 3 + 3 wraps to row 1, all 5 filled; the rows are unit. */
    declip_loss(&c);
    ck_assert(pos[0] == 1.0f && pos[1] == 5.0f);
    const float *q = cx_param_value(p, m.queue);
    for (int r = 0; r < 5; r++) {
        double n2 = 0;
        for (int j = 0; j < D; j++)
            n2 += (double)q[r * D + j] * q[r * D + j];
        ck_assert_msg(fabs(n2 - 1) < 1e-5, "queue row %d: |q|^2 %g", r, n2);
    }
    free(c.queue_saved);
    cx_declip_step_free(&d);
    cx_model_free(&m);
}
END_TEST

/* A frozen image tower: its tensors are FROZEN and NO_STATE and get no gradient; the steps on
 * precomputed features (what the trainer caches) give the same loss and the same gradient
 * bits as the steps on the inputs. */
START_TEST(frozen_image_tower_steps)
{
    for (int k = 0; k < 2; k++) {
        cx_model m;
        cx_err err;
        cx_model_spec s = small_spec(k ? CX_OBJECTIVE_CLIP : CX_OBJECTIVE_SL);
        s.image_frozen = 1;
        ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
        random_params(&m, 7);
        cx_params *p = &m.params;
        int nimage = 0;
        for (int t = 0; t < p->count; t++)
            if (!strncmp(p->info[t].name, "image.", 6)) {
                nimage++;
                ck_assert_uint_eq(p->info[t].flags & (CX_PARAM_FROZEN | CX_PARAM_NO_STATE),
                                  CX_PARAM_FROZEN | CX_PARAM_NO_STATE);
            } else {
                ck_assert(!(p->info[t].flags & CX_PARAM_NO_STATE));
            }
        ck_assert_int_eq(nimage, 4);
        float x[B * IN], feat[B * D];
        gc_fill_normal(x, B * IN, 14, 1.0);
        memcpy(feat, cx_model_image_forward(&m, x, B), sizeof feat);
        int64_t counts[C] = {50, 10, 2};
        cx_loss_config lc = loss_config(CX_LOSS_CE);
        cx_loss *loss = NULL;
        if (!k)
            ck_assert_int_eq(cx_loss_create(&loss, &lc, counts, C, B, &err), CX_OK);
        cx_params_zero_grad(p);
        double l1, l2;
        if (k)
            ck_assert_int_eq(cx_model_clip_step_dist(&m, x, tokens, B, NULL, &l1, &err), CX_OK);
        else
            l1 = cx_model_sl_step_global(&m, x, labels, B, labels, B, 0, loss, NULL, NULL, 0);
        float *g1 = malloc(sizeof(float) * p->total);
        memcpy(g1, p->grad, sizeof(float) * p->total);
        cx_params_zero_grad(p);
        if (k)
            ck_assert_int_eq(cx_model_clip_step_dist_feat(&m, feat, tokens, B, NULL, &l2, &err), CX_OK);
        else
            l2 = cx_model_sl_step_global_feat(&m, feat, labels, B, labels, B, 0, loss, NULL, NULL, 0);
        ck_assert(l1 == l2 && isfinite(l1));
        ck_assert_int_eq(memcmp(g1, p->grad, sizeof(float) * p->total), 0);
        double image = 0, rest = 0;
        for (int t = 0; t < p->count; t++)
            for (size_t i = 0; i < p->info[t].size; i++)
                *(strncmp(p->info[t].name, "image.", 6) ? &rest : &image) +=
                    fabs(cx_param_grad(p, t)[i]);
        ck_assert_double_eq(image, 0);
        ck_assert_double_gt(rest, 0);
        /* The head or text tower still gets exact gradients. */
        step_ctx c = {&m, x, loss, NULL};
        check_params_min(&m, k ? clip_loss : sl_loss, &c, k ? 38 : C * D + C);
        free(g1);
        cx_loss_free(loss);
        cx_model_free(&m);
    }
}
END_TEST

static void sl_case(cx_head_kind head, cx_loss_kind loss_kind, int vocab_k)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_SL);
    s.head_kind = head;
    s.logit_scale_init = 3.0;
    /* LDAM fixes its scale (the trainer freezes it); its margin term depends on the scale. */
    s.logit_scale_learn = loss_kind != CX_LOSS_LDAM;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    random_params(&m, 4);
    int64_t counts[C] = {50, 10, 2};
    cx_loss_config lc = loss_config(loss_kind);
    cx_loss *loss;
    ck_assert_int_eq(cx_loss_create(&loss, &lc, counts, C, B, &err), CX_OK);
    cx_vocab_sampler *vs = NULL;
    if (vocab_k)
        ck_assert_int_eq(cx_vocab_sampler_create(&vs, C, vocab_k, CX_VOCAB_LINEAR, counts, &err), CX_OK);
    float x[B * IN];
    gc_fill_normal(x, B * IN, 12, 1.0);
    step_ctx c = {&m, x, loss, vs};
    check_all_params(&m, sl_loss, &c);
    cx_vocab_sampler_free(vs);
    cx_loss_free(loss);
    cx_model_free(&m);
}

START_TEST(sl_step_gradients_linear_ce)
{
    sl_case(CX_HEAD_LINEAR, CX_LOSS_CE, 0);
}
END_TEST

START_TEST(sl_step_gradients_cosine_balanced_softmax)
{
    sl_case(CX_HEAD_COSINE, CX_LOSS_BALANCED_SOFTMAX, 0);
}
END_TEST

START_TEST(sl_step_gradients_cosine_ldam)
{
    sl_case(CX_HEAD_COSINE, CX_LOSS_LDAM, 0);
}
END_TEST

START_TEST(sl_step_gradients_vocabulary_subsampling)
{
    /* Batch labels {0, 1, 2} cover all 3 classes: use a wider class set to leave some out. */
    sl_case(CX_HEAD_LINEAR, CX_LOSS_CE, 3);
    sl_case(CX_HEAD_COSINE, CX_LOSS_FOCAL, 3);
}
END_TEST

START_TEST(sl_step_subsampled_head_touches_only_scored_rows)
{
    enum { WIDE = 9 };
    cx_model m;
    cx_err err;
    cx_model_spec s = small_spec(CX_OBJECTIVE_SL);
    s.num_classes = WIDE;
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    random_params(&m, 4);
    int64_t counts[WIDE] = {50, 10, 2, 7, 7, 7, 7, 7, 0};
    cx_loss_config lc = loss_config(CX_LOSS_CE);
    cx_loss *loss;
    ck_assert_int_eq(cx_loss_create(&loss, &lc, counts, WIDE, B, &err), CX_OK);
    cx_vocab_sampler *vs;
    ck_assert_int_eq(cx_vocab_sampler_create(&vs, WIDE, 5, CX_VOCAB_LINEAR, counts, &err), CX_OK);
    float x[B * IN];
    gc_fill_normal(x, B * IN, 13, 1.0);
    cx_params_zero_grad(&m.params);
    step_ctx c = {&m, x, loss, vs};
    sl_loss(&c);
    ck_assert_int_eq(m.head.K, 5);
    int scored[WIDE] = {0};
    for (int k = 0; k < m.head.K; k++)
        scored[m.head.classes[k]] = 1;
    ck_assert(scored[0] && scored[1] && scored[2]); /* the batch's own classes */
    ck_assert(!scored[8]);                          /* a class of weight 0 is never drawn */
    const float *dw = cx_param_grad(&m.params, m.head.w);
    for (int cls = 0; cls < WIDE; cls++) {
        double sum = 0;
        for (int j = 0; j < D; j++)
            sum += fabs(dw[cls * D + j]);
        if (scored[cls])
            ck_assert_double_gt(sum, 0);
        else
            ck_assert_double_eq(sum, 0);
    }
    /* Gradients of the subsampled step are right too. */
    check_all_params(&m, sl_loss, &c);
    cx_vocab_sampler_free(vs);
    cx_loss_free(loss);
    cx_model_free(&m);
}
END_TEST

/* ---- two full steps against PyTorch --------------------------------------------------------- */

static void load_named(const fx_file *f, const char *prefix, cx_params *p)
{
    char key[128];
    for (int t = 0; t < p->count; t++) {
        snprintf(key, sizeof key, "%s%s", prefix, p->info[t].name);
        for (char *q = key; *q; q++)
            if (*q == '.')
                *q = '_';
        const fx_tensor *ft = fx_get(f, key);
        ck_assert_msg(ft != NULL, "fixture lacks %s", key);
        ck_assert_uint_eq(ft->n, p->info[t].size);
        fx_to_float(ft, cx_param_value(p, t));
    }
}

static void expect_named(const fx_file *f, const char *prefix, const cx_params *p)
{
    char key[128];
    for (int t = 0; t < p->count; t++) {
        snprintf(key, sizeof key, "%s%s", prefix, p->info[t].name);
        for (char *q = key; *q; q++)
            if (*q == '.')
                *q = '_';
        const fx_tensor *ft = fx_get(f, key);
        ck_assert_msg(ft != NULL, "fixture lacks %s", key);
        /* Relative to the tensor's scale (its largest magnitude): float32 arithmetic leaves an
         * absolute error of that order on small elements of a tensor of larger ones. */
        const float *w = cx_param_value(p, t);
        double scale = 0;
        for (size_t i = 0; i < ft->n; i++)
            scale = fmax(scale, fabs(ft->v[i]));
        for (size_t i = 0; i < ft->n; i++)
            ck_assert_msg(fabs(w[i] - ft->v[i]) <= 1e-5 * scale, "%s[%zu]: %.9g, torch %.9g",
                          key, i, w[i], ft->v[i]);
    }
}

static void two_steps(const char *which)
{
    fx_file f;
    cx_err err;
    fx_load_named(&f, "train_step.fx");
    int clip = strcmp(which, "clip") == 0;
    cx_model m;
    cx_model_spec s = small_spec(clip ? CX_OBJECTIVE_CLIP : CX_OBJECTIVE_SL);
    ck_assert_int_eq(cx_model_build(&m, &s, 2, &err), CX_OK);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s_init_", which);
    load_named(&f, prefix, &m.params);
    float x[B * IN];
    snprintf(prefix, sizeof prefix, "%s_x", which);
    fx_to_float(fx_get(&f, prefix), x);
    cx_optim_config oc = {.kind = CX_OPTIM_ADAMW, .wd = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    cx_optim o;
    ck_assert_int_eq(cx_optim_init(&o, &oc, &m.params, &err), CX_OK);
    int64_t counts[C] = {2, 2, 2};
    cx_loss_config lc = loss_config(CX_LOSS_CE);
    cx_loss *loss = NULL;
    if (!clip)
        ck_assert_int_eq(cx_loss_create(&loss, &lc, counts, C, B, &err), CX_OK);
    for (int step = 0; step < 2; step++) {
        cx_params_zero_grad(&m.params);
        double l;
        if (clip) {
            l = cx_model_clip_step(&m, x, tokens, B);
        } else {
            cx_rng rng;
            cx_rng_seed(&rng, 1, 0);
            l = cx_model_sl_step(&m, x, labels, B, loss, NULL, &rng, 0);
        }
        char key[32];
        snprintf(key, sizeof key, "%s_loss%d", which, step);
        double want = fx_get(&f, key)->v[0];
        ck_assert_msg(fabs(l - want) <= 1e-6 * fabs(want), "%s: %.9g, torch %.9g", key, l, want);
        cx_optim_step(&o, &m.params, 1e-2);
        cx_model_clamp_logit_scale(&m);
    }
    snprintf(prefix, sizeof prefix, "%s_final_", which);
    expect_named(&f, prefix, &m.params);
    cx_loss_free(loss);
    cx_optim_free(&o);
    cx_model_free(&m);
    fx_free(&f);
}

START_TEST(sl_two_steps_match_pytorch)
{
    two_steps("sl");
}
END_TEST

START_TEST(clip_two_steps_match_pytorch)
{
    two_steps("clip");
}
END_TEST

/* ---- model.text.init and model.text.freeze with the transformer text tower ----------------- */

static cx_status train_run(const char *out, const char *const *sets, size_t n, cx_err *err)
{
    cx_train_config cfg;
    cx_status st = cx_train_config_load(&cfg, NULL, sets, n, err);
    ck_assert_msg(st == CX_OK, "%s", err->msg);
    st = cx_train_new(&cfg, out, 0, NULL, NULL, err);
    cx_train_config_free(&cfg);
    return st;
}

/* Tensors named text.* of run a and run b: how many there are, and how many differ in a bit. */
static int text_tensors(const cx_run *a, const cx_run *b, int *differ)
{
    int n = 0;
    *differ = 0;
    for (int t = 0; t < a->model.params.count; t++) {
        const cx_param_info *in = &a->model.params.info[t];
        if (strncmp(in->name, "text.", 5) != 0)
            continue;
        int u = cx_params_find(&b->model.params, in->name);
        ck_assert_msg(u >= 0, "%s missing", in->name);
        ck_assert_int_eq(b->model.params.info[u].size, in->size);
        n++;
        *differ += memcmp(cx_param_value(&a->model.params, t), cx_param_value(&b->model.params, u),
                          sizeof(float) * in->size) != 0;
    }
    return n;
}

START_TEST(transformer_text_tower_init_and_freeze)
{
    /* One thread: Check forks, and OpenMP's pool does not survive a fork. */
    cx_threads_set(1);
    char root[] = "/tmp/check_train_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(root));
    char dir[64], data[96], src[64], bow[64], frozen[64], tuned[64], refused[64];
    snprintf(dir, sizeof dir, "%s/data", root);
    cx_err err;
    cx_synth_opts so;
    cx_synth_defaults(&so);
    so.classes = 4;
    so.n = 192;
    so.test_per_class = 4;
    so.dim = 6;
    so.seed = 5;
    ck_assert_msg(cx_synth_write(&so, dir, &err) == CX_OK, "%s", err.msg);
    snprintf(data, sizeof data, "data=%s/dataset.yaml", dir);
    snprintf(src, sizeof src, "%s/src", root);
    snprintf(bow, sizeof bow, "%s/bow", root);
    snprintf(frozen, sizeof frozen, "%s/frozen", root);
    snprintf(tuned, sizeof tuned, "%s/tuned", root);
    snprintf(refused, sizeof refused, "%s/refused", root);
    char init_src[96], init_bow[96];
    snprintf(init_src, sizeof init_src, "model.text.init=%s", src);
    snprintf(init_bow, sizeof init_bow, "model.text.init=%s", bow);

    enum { NC = 12 };
    const char *tf[NC + 4] = {data, "objective=clip", "epochs=2", "batch=32", "threads=1",
                              "optim.lr=0.01", "model.image.hidden=[8]", "model.image.dim=8",
                              "model.text.dim=8", "model.text.type=transformer",
                              "model.text.layers=1", "model.text.max_tokens=8"};
    /* The source run, and a bag-of-words one (the first NC - 3 settings). */
    ck_assert_msg(train_run(src, tf, NC, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(train_run(bow, tf, NC - 3, &err) == CX_OK, "%s", err.msg);

    /* Initialised from src and frozen, with another seed (another random initialisation) and
     * other data order: the text tower ends bit-identical to src's after its steps; initialised
     * and not frozen, it trains away from src's values. */
    tf[NC] = init_src;
    tf[NC + 1] = "seed=7";
    tf[NC + 2] = "model.text.freeze=true";
    ck_assert_msg(train_run(frozen, tf, NC + 3, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(train_run(tuned, tf, NC + 2, &err) == CX_OK, "%s", err.msg);
    cx_run a, b, c;
    ck_assert_msg(cx_run_open(src, 8, &a, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(cx_run_open(frozen, 8, &b, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(cx_run_open(tuned, 8, &c, &err) == CX_OK, "%s", err.msg);
    ck_assert_int_gt(b.meta.step, 0);
    int differ;
    /* embed, pos_embed, 12 per block, ln_final (2), proj */
    ck_assert_int_eq(text_tensors(&a, &b, &differ), 2 + 12 + 2 + 1);
    ck_assert_int_eq(differ, 0);
    ck_assert_int_eq(text_tensors(&a, &c, &differ), 17);
    ck_assert_int_gt(differ, 10);
    /* The vocabulary came with the tower. */
    ck_assert_str_eq(a.meta.vocab_text, b.meta.vocab_text);
    /* The image tower did train in the frozen run. */
    int w = cx_params_find(&b.model.params, "image.fc0.weight");
    ck_assert_int_ge(w, 0);
    ck_assert(memcmp(cx_param_value(&a.model.params, w), cx_param_value(&b.model.params, w),
                     sizeof(float) * a.model.params.info[w].size) != 0);
    cx_run_close(&a);
    cx_run_close(&b);
    cx_run_close(&c);

    /* Refusals, CX_EUSAGE (exit 2) naming the key: a bag-of-words source for a transformer
     * run, a transformer source for a bag-of-words run, another depth, another token count,
     * and settings that keep the shapes but change the function. */
    tf[NC] = init_bow;
    ck_assert_int_eq(train_run(refused, tf, NC + 1, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.text.init") && strstr(err.msg, "transformer"), "%s",
                  err.msg);
    const char *bow_from_tf[NC] = {data, "objective=clip", "epochs=1", "batch=32", "threads=1",
                                   "model.image.hidden=[8]", "model.image.dim=8",
                                   "model.text.dim=8", init_src};
    ck_assert_int_eq(train_run(refused, bow_from_tf, 9, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.text.init"), "%s", err.msg);
    tf[NC] = init_src;
    tf[NC + 1] = "model.text.layers=2";
    ck_assert_int_eq(train_run(refused, tf, NC + 2, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.text.init") && strstr(err.msg, "blocks1"), "%s",
                  err.msg);
    tf[NC + 1] = "model.text.max_tokens=6";
    ck_assert_int_eq(train_run(refused, tf, NC + 2, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.text.init") && strstr(err.msg, "pos_embed"), "%s",
                  err.msg);
    /* Same shapes, another function: the head count, the mask, the pooled token. */
    const char *same_shapes[] = {"model.text.heads=2", "model.text.causal=false",
                                 "model.text.pool=mean"};
    const char *named[] = {"model.text.heads", "model.text.causal", "model.text.pool"};
    for (int i = 0; i < 3; i++) {
        tf[NC + 1] = same_shapes[i];
        ck_assert_int_eq(train_run(refused, tf, NC + 2, &err), CX_EUSAGE);
        ck_assert_msg(strstr(err.msg, "model.text.init") && strstr(err.msg, named[i]), "%s",
                      err.msg);
    }
    ck_assert_msg(access(refused, F_OK) != 0, "a refused run left %s", refused);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, clip_step_gradients);
    tcase_add_test(tc, dino_layout_mlp_tower);
    tcase_add_test(tc, image_last_linear_layer);
    tcase_add_test(tc, dino_layout_identity_tower);
    tcase_add_test(tc, dino_checkpoint_round_trips_student_and_teacher);
    tcase_add_test(tc, dino_step_gradients);
    tcase_add_test(tc, declip_step_gradients);
    tcase_add_test(tc, clip_step_frozen_text_tower_gets_no_gradient);
    tcase_add_test(tc, identity_tower_steps_gradients);
    tcase_add_test(tc, frozen_image_tower_steps);
    tcase_add_test(tc, sl_step_gradients_linear_ce);
    tcase_add_test(tc, sl_step_gradients_cosine_balanced_softmax);
    tcase_add_test(tc, sl_step_gradients_cosine_ldam);
    tcase_add_test(tc, sl_step_gradients_vocabulary_subsampling);
    tcase_add_test(tc, sl_step_subsampled_head_touches_only_scored_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("pytorch_steps");
    tcase_add_test(tc, sl_two_steps_match_pytorch);
    tcase_add_test(tc, clip_two_steps_match_pytorch);
    suite_add_tcase(s, tc);
    tc = tcase_create("text_init");
    tcase_add_test(tc, transformer_text_tower_init_and_freeze);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(train_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
