/* The training configuration's schema: the documented defaults, enum constants in the order of
 * their choices, and the cross-key rules whose messages say what to change. */
#include "config.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/conf/conf.h"
#include "lib/run/train_config.h"

START_TEST(train_defaults_match_the_contract)
{
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
    ck_assert_ptr_null(c.data);
    ck_assert_ptr_null(c.subset);
    ck_assert_int_eq(c.seed, 0);
    ck_assert_int_eq(c.threads, 0);
    ck_assert_int_eq(c.epochs, 10);
    ck_assert_int_eq(c.batch, 256);
    ck_assert(c.drop_last);
    ck_assert_int_eq(c.objective, CX_CFG_OBJECTIVE_SL);
    ck_assert_int_eq(c.loss, CX_CFG_LOSS_CE);
    ck_assert(c.focal.gamma == 2 && c.logit_adjust.tau == 1 && c.effnum.beta == 0.999);
    ck_assert(c.grw.p == 1.2 && c.ldam.max_margin == 0.5 && c.ldam.scale == 30);
    ck_assert_int_eq(c.drw.epoch, 0);
    ck_assert(c.lade.lambda == 0.1);
    ck_assert_int_eq(c.sampler, CX_CFG_SAMPLER_NONE);
    ck_assert_int_eq(c.vocab.k, 0);
    ck_assert_int_eq(c.vocab.weight, CX_CFG_VOCAB_LINEAR);
    ck_assert_int_eq(c.head, CX_CFG_HEAD_LINEAR);
    ck_assert_ptr_null(c.head_from);
    /* The contract's 14.285714285714286 is 1/0.07 correctly rounded; 1.0 / 0.07 in doubles
     * (0.07 itself rounded first) lands one ulp below. */
    ck_assert(c.logit_scale.init == 14.285714285714286);
    ck_assert(c.logit_scale.init == nextafter(1.0 / 0.07, 100));
    ck_assert(c.logit_scale.max == 100 && c.logit_scale.learn);
    ck_assert_int_eq(c.model.image.type, CX_CFG_IMAGE_MLP);
    ck_assert_uint_eq(c.model.image.hidden.n, 2);
    ck_assert_int_eq(c.model.image.hidden.v[0], 1024);
    ck_assert_int_eq(c.model.image.hidden.v[1], 1024);
    ck_assert_int_eq(c.model.image.dim, 256);
    ck_assert_int_eq(c.model.image.act, CX_CFG_ACT_RELU);
    ck_assert_int_eq(c.model.image.norm, CX_CFG_NORM_NONE);
    ck_assert_uint_eq(c.model.image.channels.n, 2);
    ck_assert_int_eq(c.model.image.channels.v[0], 32);
    ck_assert_int_eq(c.model.image.channels.v[1], 64);
    ck_assert_int_eq(c.model.text.type, CX_CFG_TEXT_LINEAR);
    ck_assert_int_eq(c.model.text.dim, 256);
    ck_assert_uint_eq(c.model.text.hidden.n, 0);
    ck_assert_str_eq(c.model.text.init, "random");
    ck_assert(!c.model.text.freeze);
    ck_assert_int_eq(c.model.text.max_tokens, 32);
    ck_assert_int_eq(c.model.text.min_count, 1);
    ck_assert_int_eq(c.optim.name, CX_CFG_OPTIM_ADAMW);
    ck_assert(c.optim.lr == 0.001 && c.optim.wd == 0.0001 && c.optim.momentum == 0.9);
    ck_assert(!c.optim.nesterov);
    ck_assert_uint_eq(c.optim.betas.n, 2);
    ck_assert(c.optim.betas.v[0] == 0.9 && c.optim.betas.v[1] == 0.999);
    ck_assert(c.optim.eps == 1e-8);
    ck_assert_int_eq(c.optim.warmup, 0);
    ck_assert_int_eq(c.optim.schedule, CX_CFG_SCHEDULE_COSINE);
    ck_assert_uint_eq(c.optim.milestones.n, 0);
    ck_assert(c.optim.gamma == 0.1 && c.optim.clip_grad == 0);
    ck_assert_int_eq(c.ckpt.every, 0);
    ck_assert_int_eq(c.dino.prototypes, 4096);
    ck_assert_int_eq(c.dino.sample_k, 0);
    ck_assert_int_eq(c.dino.sinkhorn_iters, 3);
    ck_assert(c.dino.student_temp == 0.1 && c.dino.teacher_temp == 0.04);
    ck_assert(c.dino.momentum == 0.996);
    ck_assert_int_eq(c.dino.hidden, 2048);
    ck_assert_int_eq(c.dino.bottleneck, 256);
    ck_assert_int_eq(cx_train_config_validate(&c, &err), CX_OK);
    cx_train_config_free(&c);
}
END_TEST

START_TEST(enum_constants_follow_the_choices)
{
    const cx_conf_schema *s = &cx_train_config_schema;
    struct {
        const char *key, *name;
        size_t offset;
        int want;
    } cases[] = {
        {"objective", "clip", offsetof(cx_train_config, objective), CX_CFG_OBJECTIVE_CLIP},
        {"loss", "focal", offsetof(cx_train_config, loss), CX_CFG_LOSS_FOCAL},
        {"loss", "balanced-softmax", offsetof(cx_train_config, loss), CX_CFG_LOSS_BALANCED_SOFTMAX},
        {"loss", "logit-adjust", offsetof(cx_train_config, loss), CX_CFG_LOSS_LOGIT_ADJUST},
        {"loss", "cbw", offsetof(cx_train_config, loss), CX_CFG_LOSS_CBW},
        {"loss", "effnum", offsetof(cx_train_config, loss), CX_CFG_LOSS_EFFNUM},
        {"loss", "grw", offsetof(cx_train_config, loss), CX_CFG_LOSS_GRW},
        {"loss", "ldam", offsetof(cx_train_config, loss), CX_CFG_LOSS_LDAM},
        {"loss", "lade", offsetof(cx_train_config, loss), CX_CFG_LOSS_LADE},
        {"sampler", "class-balanced", offsetof(cx_train_config, sampler), CX_CFG_SAMPLER_CLASS_BALANCED},
        {"sampler", "sqrt", offsetof(cx_train_config, sampler), CX_CFG_SAMPLER_SQRT},
        {"vocab.weight", "uniform", offsetof(cx_train_config, vocab.weight), CX_CFG_VOCAB_UNIFORM},
        {"vocab.weight", "sqrt", offsetof(cx_train_config, vocab.weight), CX_CFG_VOCAB_SQRT},
        {"head", "cosine", offsetof(cx_train_config, head), CX_CFG_HEAD_COSINE},
        {"head", "text", offsetof(cx_train_config, head), CX_CFG_HEAD_TEXT},
        {"model.image.type", "linear", offsetof(cx_train_config, model.image.type), CX_CFG_IMAGE_LINEAR},
        {"model.image.type", "cnn", offsetof(cx_train_config, model.image.type), CX_CFG_IMAGE_CNN},
        {"model.image.act", "gelu", offsetof(cx_train_config, model.image.act), CX_CFG_ACT_GELU},
        {"model.image.norm", "layernorm", offsetof(cx_train_config, model.image.norm), CX_CFG_NORM_LAYERNORM},
        {"model.text.type", "mlp", offsetof(cx_train_config, model.text.type), CX_CFG_TEXT_MLP},
        {"optim.name", "sgd", offsetof(cx_train_config, optim.name), CX_CFG_OPTIM_SGD},
        {"optim.schedule", "step", offsetof(cx_train_config, optim.schedule), CX_CFG_SCHEDULE_STEP},
        {"optim.schedule", "constant", offsetof(cx_train_config, optim.schedule), CX_CFG_SCHEDULE_CONSTANT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cx_err err;
        cx_train_config c;
        ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
        ck_assert_int_eq(cx_conf_set_value(s, &c, cases[i].key, cases[i].name, "test", &err), CX_OK);
        int got;
        memcpy(&got, (char *)&c + cases[i].offset, sizeof got);
        ck_assert_int_eq(got, cases[i].want);
        ck_assert_str_eq(cx_conf_enum_name(s, cases[i].key, cases[i].want), cases[i].name);
        ck_assert_uint_eq(cx_conf_find(s, cases[i].key)->offset, cases[i].offset);
        cx_train_config_free(&c);
    }
    ck_assert_ptr_null(cx_conf_enum_name(s, "loss", 9));
    ck_assert_ptr_null(cx_conf_enum_name(s, "loss", -1));
    ck_assert_ptr_null(cx_conf_enum_name(s, "seed", 0));
    ck_assert_ptr_null(cx_conf_find(s, "model.image"));
}
END_TEST

START_TEST(validation_says_what_to_change)
{
    struct {
        const char *sets[3];
        const char *want;
    } cases[] = {
        {{"model.image.type=identity", "model.image.init=/r"}, "model.image.init: an identity image tower has no parameters to copy from /r; set model.image.init: random or another model.image.type"},
        {{"head_from=/r"}, "head_from is used only with head: text (head is linear); set head: text or head_from: null"},
        {{"optim.schedule=step"}, "optim.schedule: step needs optim.milestones, the epochs after which the learning rate drops, e.g. [30, 60]"},
        {{"optim.milestones=3"}, "optim.milestones is used only with optim.schedule: step (schedule is cosine); set optim.schedule: step or optim.milestones: []"},
        {{"optim.schedule=step", "optim.milestones=[3, 11]"}, "optim.milestones: 11 is not an epoch in 1..10 (epochs)"},
        {{"optim.schedule=step", "optim.milestones=[5, 5]"}, "optim.milestones: must increase (5 follows 5)"},
        {{"objective=clip", "vocab.k=50"}, "vocab.k subsamples the classes of objective: sl (objective is clip); set objective: sl or vocab.k: 0"},
        {{"objective=clip", "loss=focal"}, "loss: focal applies to objective: sl (objective clip trains with the contrastive loss); set objective: sl or loss: ce"},
        {{"objective=clip", "head=cosine"}, "head: cosine applies to objective: sl (objective clip has no classifier head); set objective: sl or head: linear"},
        {{"drw.epoch=11"}, "drw.epoch: 11 is after the last epoch (epochs: 10); set drw.epoch to at most 10, or 0 for no re-weighting"},
        {{"drw.epoch=2", "loss=cbw"}, "drw.epoch: loss cbw is already class-weighted; use drw with loss ce, focal or ldam, or set drw.epoch: 0"},
        {{"drw.epoch=2", "objective=clip"}, "drw.epoch re-weights the loss of objective: sl (objective is clip); set objective: sl or drw.epoch: 0"},
        {{"optim.nesterov=true"}, "optim.nesterov needs optim.name: sgd and optim.momentum > 0; set them or optim.nesterov: false"},
        {{"optim.nesterov=true", "optim.name=sgd", "optim.momentum=0"}, "optim.nesterov needs optim.name: sgd and optim.momentum > 0; set them or optim.nesterov: false"},
        {{"logit_scale.init=200"}, "logit_scale.init: 200 is above logit_scale.max (100); lower the one or raise the other"},
        {{"model.text.init=''"}, "model.text.init: give random or the folder of a run to copy the text tower from"},
        {{"dino.prototypes=64"}, "dino.prototypes applies to objective: dino (objective is sl); set objective: dino or remove dino.prototypes"},
        {{"objective=clip", "dino.sample_k=8"}, "dino.sample_k applies to objective: dino (objective is clip); set objective: dino or remove dino.sample_k"},
        {{"dino.sinkhorn_iters=5"}, "dino.sinkhorn_iters applies to objective: dino (objective is sl); set objective: dino or remove dino.sinkhorn_iters"},
        {{"dino.student_temp=0.2"}, "dino.student_temp applies to objective: dino (objective is sl); set objective: dino or remove dino.student_temp"},
        {{"dino.teacher_temp=0.07"}, "dino.teacher_temp applies to objective: dino (objective is sl); set objective: dino or remove dino.teacher_temp"},
        {{"dino.momentum=0.99"}, "dino.momentum applies to objective: dino (objective is sl); set objective: dino or remove dino.momentum"},
        {{"dino.hidden=64"}, "dino.hidden applies to objective: dino (objective is sl); set objective: dino or remove dino.hidden"},
        {{"dino.bottleneck=32"}, "dino.bottleneck applies to objective: dino (objective is sl); set objective: dino or remove dino.bottleneck"},
        {{"objective=dino", "dino.prototypes=64", "dino.sample_k=65"}, "dino.sample_k: 65 is above dino.prototypes (64); set dino.sample_k to at most 64, or 0 for all prototypes"},
        {{"objective=dino", "loss=focal"}, "loss: focal applies to objective: sl (objective dino trains with its own cross-view loss); set objective: sl or loss: ce"},
        {{"objective=dino", "head=cosine"}, "head: cosine applies to objective: sl (objective dino has no classifier head); set objective: sl or head: linear"},
        {{"objective=dino", "aug.eda.rd=0.1"}, "aug.eda.*: EDA augments captions, and objective dino reads none; set the aug.eda keys to 0"},
        {{"objective=dino", "vocab.k=5"}, "vocab.k subsamples the classes of objective: sl (objective is dino); set objective: sl or vocab.k: 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        while (n < 3 && cases[i].sets[n])
            n++;
        cx_err err;
        cx_train_config c;
        ck_assert_int_eq(cx_train_config_load(&c, NULL, cases[i].sets, n, &err), CX_OK);
        cx_err_clear(&err);
        ck_assert_int_eq(cx_train_config_validate(&c, &err), CX_EUSAGE);
        ck_assert_str_eq(err.msg, cases[i].want);
        cx_train_config_free(&c);
    }
    /* Betas out of range set by code (the loader refuses them earlier). */
    cx_err err;
    cx_train_config c;
    ck_assert_int_eq(cx_train_config_load(&c, NULL, NULL, 0, &err), CX_OK);
    c.optim.betas.v[1] = 1.0;
    ck_assert_int_eq(cx_train_config_validate(&c, &err), CX_EUSAGE);
    ck_assert_str_eq(err.msg, "optim.betas: 1 is not in [0, 1); use e.g. [0.9, 0.999]");
    cx_train_config_free(&c);
    /* And the combinations that are fine. */
    const char *good[][4] = {
        {"head=text", "head_from=/runs/clip", "objective=sl", NULL},
        {"optim.schedule=step", "optim.milestones=[3, 10]", NULL, NULL},
        {"drw.epoch=10", "loss=ldam", "head=cosine", NULL},
        {"optim.name=sgd", "optim.nesterov=true", NULL, NULL},
        {"objective=clip", "sampler=class-balanced", NULL, NULL},
        {"vocab.k=5", "vocab.weight=sqrt", NULL, NULL},
        /* dino.* at their defaults, spelled out, are not "set". */
        {"dino.sinkhorn_iters=3", "dino.momentum=0.996", "dino.sample_k=0", NULL},
        {"objective=dino", "dino.prototypes=64", "dino.sample_k=64", NULL},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        size_t n = 0;
        while (n < 4 && good[i][n])
            n++;
        ck_assert_int_eq(cx_train_config_load(&c, NULL, good[i], n, &err), CX_OK);
        ck_assert_msg(cx_train_config_validate(&c, &err) == CX_OK, "%s: %s", good[i][0], err.msg);
        cx_train_config_free(&c);
    }
}
END_TEST

static Suite *train_config_suite(void)
{
    Suite *s = suite_create("train_config");
    TCase *tc = tcase_create("schema");
    tcase_add_test(tc, train_defaults_match_the_contract);
    tcase_add_test(tc, enum_constants_follow_the_choices);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_test(tc, validation_says_what_to_change);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(train_config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
