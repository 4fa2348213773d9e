/* Training on frozen and external features through the trainer: model.image.init copies the
 * image tower of a run exactly (and refuses another type or shape, naming the key),
 * model.image.freeze keeps it bit-for-bit fixed with no optimiser state in the checkpoint, and
 * head: text takes the dataset's class_embeddings (refusing a wrong shape naming the file). */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/path.h"
#include "lib/base/threads.h"
#include "lib/data/dataset.h"
#include "lib/data/npy.h"
#include "lib/data/synth.h"
#include "lib/eval/run_eval.h"
#include "lib/run/run.h"
#include "lib/run/train_config.h"
#include "lib/train/trainer.h"

enum { CLASSES = 4, DIM = 8 };

static char root[64];
static char data_yaml[160], wide_yaml[160], run_a[160], data_set[200];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static cx_status train_status(const char *out, const char *const *sets, size_t n, cx_err *err)
{
    cx_train_config cfg;
    ck_assert_msg(cx_train_config_load(&cfg, NULL, sets, n, err) == CX_OK, "%s", err->msg);
    cx_status st = cx_train_new(&cfg, out, 0, NULL, NULL, err);
    cx_train_config_free(&cfg);
    return st;
}

static void train(const char *out, const char *const *sets, size_t n)
{
    cx_err err;
    ck_assert_msg(train_status(out, sets, n, &err) == CX_OK, "%s: %s", out, err.msg);
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A copy of the dataset's YAML that names class_embeddings: file. */
static void yaml_with_embeddings(char *out, size_t cap, const char *name, const char *file)
{
    char path[200];
    path_in(out, cap, name);
    FILE *in = fopen(data_yaml, "r"), *o = fopen(out, "w");
    ck_assert(in && o);
    char line[1024];
    while (fgets(line, sizeof line, in))
        fputs(line, o);
    fprintf(o, "class_embeddings: %s\n", file);
    fclose(in);
    ck_assert_int_eq(fclose(o), 0);
    (void)path;
}

static void setup(void)
{
    strcpy(root, "/tmp/check_frozen_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    cx_threads_set(1);
    cx_err err;
    cx_synth_opts so;
    cx_synth_defaults(&so);
    so.classes = CLASSES;
    so.superclasses = 2;
    so.n = 300;
    so.test_per_class = 10;
    so.dim = DIM;
    so.rho = 10;
    so.seed = 5;
    char dir[160];
    path_in(dir, sizeof dir, "data");
    ck_assert_msg(cx_synth_write(&so, dir, &err) == CX_OK, "%s", err.msg);
    path_in(data_yaml, sizeof data_yaml, "data/dataset.yaml");
    so.dim = DIM + 1;
    path_in(dir, sizeof dir, "wide");
    ck_assert_msg(cx_synth_write(&so, dir, &err) == CX_OK, "%s", err.msg);
    path_in(wide_yaml, sizeof wide_yaml, "wide/dataset.yaml");
    snprintf(data_set, sizeof data_set, "data=%s", data_yaml);
    path_in(run_a, sizeof run_a, "a");
    const char *sets[] = {data_set, "epochs=2", "batch=32", "model.image.hidden=[16]",
                          "model.image.dim=8", "optim.lr=0.01", "threads=1"};
    train(run_a, sets, 7);
}

static void teardown(void)
{
    rm_rf(root);
}

/* Every image.* tensor of two runs: the largest absolute difference (-1: other tensors). */
static double image_diff(const char *da, const char *db)
{
    cx_run a, b;
    cx_err err;
    ck_assert_msg(cx_run_open(da, 1, &a, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(cx_run_open(db, 1, &b, &err) == CX_OK, "%s", err.msg);
    double worst = 0;
    int n = 0, nb = 0;
    for (int t = 0; t < b.model.params.count; t++)
        nb += strncmp(b.model.params.info[t].name, "image.", 6) == 0;
    for (int t = 0; t < a.model.params.count; t++) {
        const cx_param_info *in = &a.model.params.info[t];
        if (strncmp(in->name, "image.", 6) != 0)
            continue;
        n++;
        int s = cx_params_find(&b.model.params, in->name);
        if (s < 0 || b.model.params.info[s].size != in->size) {
            worst = -1;
            break;
        }
        const float *x = cx_param_value(&a.model.params, t), *y = cx_param_value(&b.model.params, s);
        for (size_t i = 0; i < in->size; i++) {
            double d = fabs((double)x[i] - (double)y[i]);
            worst = d > worst ? d : worst;
        }
    }
    if (n != nb || n == 0)
        worst = -1;
    cx_run_close(&a);
    cx_run_close(&b);
    return worst;
}

static char init_set[200];

static const char *init_from(const char *run)
{
    snprintf(init_set, sizeof init_set, "model.image.init=%s", run);
    return init_set;
}

START_TEST(frozen_tower_is_copied_exactly_and_stays)
{
    char b[160], c[160];
    path_in(b, sizeof b, "b");
    path_in(c, sizeof c, "c");
    /* SL (a new head on the frozen tower) and CLIP (a text tower against it). */
    const char *sl[] = {data_set, "epochs=3", "batch=32", "model.image.hidden=[16]",
                        "model.image.dim=8", "optim.lr=0.01", "threads=1", init_from(run_a),
                        "model.image.freeze=true"};
    train(b, sl, 9);
    ck_assert(image_diff(run_a, b) == 0.0);
    const char *clip[] = {data_set, "objective=clip", "epochs=2", "batch=32",
                          "model.image.hidden=[16]", "model.image.dim=8", "model.text.dim=8",
                          "optim.lr=0.01", "threads=1", init_from(run_a),
                          "model.image.freeze=true"};
    train(c, clip, 11);
    ck_assert(image_diff(run_a, c) == 0.0);

    /* No optimiser state for the frozen tower; the head has its AdamW moments, and moved. */
    char ckpt[200];
    snprintf(ckpt, sizeof ckpt, "%s/model.ckpt", b);
    cx_ckpt ck;
    cx_run_meta meta;
    cx_err err;
    cx_ckpt_init(&ck);
    ck_assert_msg(cx_run_read_ckpt(ckpt, &ck, &meta, &err) == CX_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(cx_ckpt_find(&ck, "param/image.fc0.weight"));
    ck_assert_ptr_null(cx_ckpt_find(&ck, "optim/0/image.fc0.weight"));
    ck_assert_ptr_null(cx_ckpt_find(&ck, "optim/1/image.fc1.bias"));
    ck_assert_ptr_nonnull(cx_ckpt_find(&ck, "optim/0/head.weight"));
    ck_assert_ptr_nonnull(cx_ckpt_find(&ck, "optim/1/head.bias"));
    cx_ckpt_free(&ck);
    cx_run_meta_free(&meta);

    /* The head on the frozen features learns: the epoch loss falls. */
    char log[200], line[1024];
    snprintf(log, sizeof log, "%s/log.jsonl", b);
    FILE *fp = fopen(log, "r");
    ck_assert_ptr_nonnull(fp);
    double loss[3];
    int epochs = 0;
    while (epochs < 3 && fgets(line, sizeof line, fp)) {
        const char *at = strstr(line, "\"loss\":");
        ck_assert_ptr_nonnull(at);
        loss[epochs++] = strtod(at + 7, NULL);
    }
    fclose(fp);
    ck_assert_int_eq(epochs, 3);
    ck_assert_double_lt(loss[2], loss[0] - 0.01);
}
END_TEST

START_TEST(unfrozen_tower_starts_from_the_copy)
{
    /* With a vanishing learning rate the tower stays where it started: at run a's weights
     * with model.image.init, far from them without. */
    char b[160], c[160];
    path_in(b, sizeof b, "b");
    path_in(c, sizeof c, "c");
    const char *sets[] = {data_set, "epochs=1", "batch=32", "model.image.hidden=[16]",
                          "model.image.dim=8", "optim.lr=1e-12", "threads=1", "seed=9",
                          init_from(run_a)};
    train(b, sets, 9);
    double near = image_diff(run_a, b);
    train(c, sets, 8);
    double far = image_diff(run_a, c);
    ck_assert(near >= 0 && near < 1e-6);
    ck_assert_double_gt(far, 1e-2);
}
END_TEST

START_TEST(init_refuses_another_tower)
{
    char out[160], missing[160], want[1024];
    path_in(out, sizeof out, "never");
    path_in(missing, sizeof missing, "no-such-run");
    cx_err err;
    struct {
        const char *a, *b;
        const char *data;
        cx_status st;
        const char *want;
    } cases[] = {
        {"model.image.type=linear", "model.image.dim=8", data_set, CX_EUSAGE,
         "model.image.init: %s has a mlp image tower, this run a linear one; set "
         "model.image.type to match"},
        {"model.image.hidden=[32]", "model.image.dim=8", data_set, CX_EUSAGE,
         "model.image.init: %s holds image.fc0.weight of shape (16, 8), this run's is (32, 8); "
         "the image tower settings must match that run's"},
        {"model.image.hidden=[16, 16]", "model.image.dim=8", data_set, CX_EUSAGE,
         "model.image.init: %s holds image.fc1.weight of shape (8, 16), this run's is (16, 16); "
         "the image tower settings must match that run's"},
        {"model.image.hidden=[16]", "model.image.norm=layernorm", data_set, CX_EUSAGE,
         "model.image.init: %s has no tensor image.ln0.weight; the image tower settings must "
         "match that run's"},
        {"model.image.hidden=[16]", "model.image.dim=4", data_set, CX_EUSAGE,
         "model.image.init: %s holds image.fc1.weight of shape (8, 16), this run's is (4, 16); "
         "the image tower settings must match that run's"},
        {"model.image.hidden=[16]", "model.image.act=gelu", data_set, CX_EUSAGE,
         "model.image.init: %s's image tower has another model.image.act; set "
         "model.image.act to match"},
        {"model.image.hidden=[]", "model.image.type=linear", data_set, CX_EUSAGE, NULL},
        {"model.image.hidden=[16]", "model.image.dim=8", NULL, CX_EUSAGE,
         "model.image.init: %s's image tower takes 8 input values, this data's samples hold 9"},
    };
    char wide_set[200];
    snprintf(wide_set, sizeof wide_set, "data=%s", wide_yaml);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *sets[] = {cases[i].data ? cases[i].data : wide_set, "epochs=1", "batch=32",
                              "threads=1", cases[i].a, cases[i].b, init_from(run_a)};
        cx_err_clear(&err);
        ck_assert_int_eq(train_status(out, sets, 7, &err), cases[i].st);
        if (cases[i].want) {
            snprintf(want, sizeof want, cases[i].want, run_a);
            ck_assert_str_eq(err.msg, want);
        } else {
            ck_assert_ptr_nonnull(strstr(err.msg, "model.image.init: "));
        }
        ck_assert(!cx_path_exists(out));
    }
    const char *sets[] = {data_set, "epochs=1", "threads=1", init_from(missing)};
    cx_err_clear(&err);
    ck_assert_int_eq(train_status(out, sets, 4, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "model.image.init: "));
    ck_assert_ptr_nonnull(strstr(err.msg, missing));
    ck_assert(!cx_path_exists(out));
}
END_TEST

START_TEST(text_head_from_class_embeddings)
{
    cx_err err;
    float w[CLASSES * DIM], w7[CLASSES * 7];
    for (int i = 0; i < CLASSES * DIM; i++)
        w[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < CLASSES * 7; i++)
        w7[i] = (float)cos(0.3 * i);
    char e[160], e7[160], e3[160], y[160], y7[160], y3[160], none[160];
    path_in(e, sizeof e, "data/emb.npy");
    path_in(e7, sizeof e7, "data/emb7.npy");
    path_in(e3, sizeof e3, "data/emb3.npy");
    ck_assert_int_eq(cx_npy_write(e, CX_ELEM_F32, 2, (uint64_t[]){CLASSES, DIM}, w, &err), CX_OK);
    ck_assert_int_eq(cx_npy_write(e7, CX_ELEM_F32, 2, (uint64_t[]){CLASSES, 7}, w7, &err), CX_OK);
    ck_assert_int_eq(cx_npy_write(e3, CX_ELEM_F32, 2, (uint64_t[]){CLASSES - 1, DIM}, w, &err), CX_OK);
    yaml_with_embeddings(y, sizeof y, "data/emb.yaml", "emb.npy");
    yaml_with_embeddings(y7, sizeof y7, "data/emb7.yaml", "emb7.npy");
    yaml_with_embeddings(y3, sizeof y3, "data/emb3.yaml", "emb3.npy");
    char ds[200], ds7[200], ds3[200];
    snprintf(ds, sizeof ds, "data=%s", y);
    snprintf(ds7, sizeof ds7, "data=%s", y7);
    snprintf(ds3, sizeof ds3, "data=%s", y3);
    char b[160];
    path_in(b, sizeof b, "b");
    path_in(none, sizeof none, "never");

    /* An identity tower under a text head: the head holds the file's rows. */
    const char *sets[] = {ds, "epochs=1", "batch=32", "threads=1", "head=text",
                          "model.image.type=identity"};
    train(b, sets, 6);
    cx_run run;
    ck_assert_msg(cx_run_open(b, 8, &run, &err) == CX_OK, "%s", err.msg);
    ck_assert_int_eq(run.model.spec.embed_dim, DIM);
    ck_assert_int_eq(memcmp(cx_param_value(&run.model.params, run.model.head.w), w, sizeof w), 0);
    cx_run_close(&run);
    /* Zero-shot against the same rows (scale 100) ranks as the head (its learnt scale). */
    cx_eval_report zs, head;
    cx_run_eval_opts o;
    cx_run_eval_defaults(&o);
    o.mode = CX_EVAL_MODE_ZEROSHOT;
    ck_assert_msg(cx_run_evaluate(b, &o, &zs, NULL, &err) == CX_OK, "%s", err.msg);
    o.mode = CX_EVAL_MODE_HEAD;
    ck_assert_msg(cx_run_evaluate(b, &o, &head, NULL, &err) == CX_OK, "%s", err.msg);
    ck_assert_double_eq(zs.top1, head.top1);
    cx_eval_report_free(&zs);
    cx_eval_report_free(&head);

    /* Wrong shapes: the file named, data (1) or the configuration (2). */
    char want[1024];
    const char *rows[] = {ds3, "epochs=1", "threads=1", "head=text", "model.image.type=identity"};
    cx_err_clear(&err);
    ck_assert_int_eq(train_status(none, rows, 5, &err), CX_EDATA);
    snprintf(want, sizeof want, "%s: class_embeddings of shape (3, 8); %s needs (4, D)", e3, y3);
    ck_assert_msg(strstr(err.msg, want), "%s", err.msg);
    const char *narrow[] = {ds7, "epochs=1", "threads=1", "head=text", "model.image.type=identity"};
    cx_err_clear(&err);
    ck_assert_int_eq(train_status(none, narrow, 5, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, e7) && strstr(err.msg, "7 dimensions"), "%s", err.msg);
    const char *tower[] = {ds7, "epochs=1", "threads=1", "head=text", "model.image.dim=16"};
    cx_err_clear(&err);
    ck_assert_int_eq(train_status(none, tower, 5, &err), CX_EUSAGE);
    snprintf(want, sizeof want, "head: text: %s holds class embeddings of 7 dimensions, the image "
             "tower outputs 16; set model.image.dim: 7", e7);
    ck_assert_str_eq(err.msg, want);
    const char *nothing[] = {data_set, "epochs=1", "threads=1", "head=text"};
    cx_err_clear(&err);
    ck_assert_int_eq(train_status(none, nothing, 4, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "head: text needs head_from") &&
                  strstr(err.msg, "names none"), "%s", err.msg);
    ck_assert(!cx_path_exists(none));
    /* Evaluating run a (8-dimensional tower) zero-shot on the 7-column file: data, naming it. */
    o.mode = CX_EVAL_MODE_ZEROSHOT;
    o.data = y7;
    cx_err_clear(&err);
    ck_assert_int_eq(cx_run_evaluate(run_a, &o, &zs, NULL, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, e7) && strstr(err.msg, "outputs 8"), "%s", err.msg);
    o.data = NULL;
    cx_err_clear(&err);
    ck_assert_int_eq(cx_run_evaluate(run_a, &o, &zs, NULL, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "names no class_embeddings"), "%s", err.msg);
}
END_TEST

static Suite *frozen_suite(void)
{
    Suite *s = suite_create("frozen");
    TCase *tc = tcase_create("trainer");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, frozen_tower_is_copied_exactly_and_stays);
    tcase_add_test(tc, unfrozen_tower_starts_from_the_copy);
    tcase_add_test(tc, init_refuses_another_tower);
    tcase_add_test(tc, text_head_from_class_embeddings);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frozen_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
