/* Runs evaluated on datasets (lib/eval/run_eval.h) and compare's figure (lib/eval/plot.h): on
 * tiny runs trained here from a synthetic dataset with open-world concepts - features against a
 * naive forward pass, each mode's classifier against what it is made of, the refusals, the
 * whole pipeline against its pieces, same bits on 1 and 2 threads; the figure's data files and
 * script, and gnuplot's SVG when gnuplot is installed. */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/threads.h"
#include "lib/data/dataset.h"
#include "lib/data/synth.h"
#include "lib/eval/classifier.h"
#include "lib/eval/plot.h"
#include "lib/eval/report.h"
#include "lib/eval/run_eval.h"
#include "lib/eval/score.h"
#include "lib/run/run.h"
#include "lib/run/train_config.h"
#include "lib/train/tokens.h"
#include "lib/train/trainer.h"

enum { E = 6, OPEN = 3, DIM = 8, EMB = 8, TEST_PER = 10 };

static char root[64];
static char data_yaml[128], other_yaml[128], wide_yaml[128];
static char run_sl[128], run_cos[128], run_clip[128], run_text[128];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static void train(const char *out, const char *const *sets, size_t n)
{
    cx_train_config cfg;
    cx_err err;
    ck_assert_msg(cx_train_config_load(&cfg, NULL, sets, n, &err) == CX_OK, "%s", err.msg);
    ck_assert_msg(cx_train_new(&cfg, out, 0, NULL, NULL, &err) == CX_OK, "%s: %s", out, err.msg);
    cx_train_config_free(&cfg);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    ck_assert_int_eq(fclose(fp), 0);
}

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s missing", path);
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* Once for every test case: a dataset, a copy with one class renamed, one of another input
 * size, and four runs (SL linear head, SL cosine head, CLIP, SL with the CLIP run's text head). */
static void setup(void)
{
    strcpy(root, "/tmp/check_runeval_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    cx_threads_set(1);
    cx_err err;
    cx_synth_opts so;
    cx_synth_defaults(&so);
    so.classes = E;
    so.open_classes = OPEN;
    so.open_world = 0.2;
    so.superclasses = 2;
    so.n = 600;
    so.test_per_class = TEST_PER;
    so.dim = DIM;
    so.rho = 20;
    so.seed = 3;
    char dir[128];
    path_in(dir, sizeof dir, "data");
    ck_assert_msg(cx_synth_write(&so, dir, &err) == CX_OK, "%s", err.msg);
    path_in(data_yaml, sizeof data_yaml, "data/dataset.yaml");
    so.dim = DIM + 1;
    path_in(dir, sizeof dir, "wide");
    ck_assert_msg(cx_synth_write(&so, dir, &err) == CX_OK, "%s", err.msg);
    path_in(wide_yaml, sizeof wide_yaml, "wide/dataset.yaml");

    /* The same files under a class list whose third class has another name. */
    char path[160];
    path_in(path, sizeof path, "data/classes.txt");
    char *classes = strdup(read_text(path));
    char *line3 = classes;
    for (int k = 0; k < 2; k++)
        line3 = strchr(line3, '\n') + 1;
    char renamed[4096];
    snprintf(renamed, sizeof renamed, "%.*szzrenamed%s", (int)(line3 - classes), classes,
             line3 + strcspn(line3, "|\n"));
    free(classes);
    path_in(path, sizeof path, "data/other-classes.txt");
    write_text(path, renamed);
    path_in(path, sizeof path, "data/dataset.yaml");
    char *yaml = strdup(read_text(path));
    char *at = strstr(yaml, "classes: classes.txt");
    ck_assert_ptr_nonnull(at);
    char other[8192];
    snprintf(other, sizeof other, "%.*sclasses: other-classes.txt%s", (int)(at - yaml), yaml,
             at + strlen("classes: classes.txt"));
    free(yaml);
    path_in(other_yaml, sizeof other_yaml, "data/other.yaml");
    write_text(other_yaml, other);

    char data_set[160];
    snprintf(data_set, sizeof data_set, "data=%s", data_yaml);
    path_in(run_sl, sizeof run_sl, "sl");
    path_in(run_cos, sizeof run_cos, "cos");
    path_in(run_clip, sizeof run_clip, "clip");
    path_in(run_text, sizeof run_text, "text");
    const char *common[] = {data_set, "epochs=2", "batch=32", "model.image.hidden=[16]",
                            "model.image.dim=8", "model.text.dim=8", "optim.lr=0.01",
                            "threads=1"};
    const char *sl[10], *cos[10], *clip[10], *text[11];
    char head_from[160];
    snprintf(head_from, sizeof head_from, "head_from=%s", run_clip);
    /* One thread in this process: the tests fork, and OpenMP's pool does not survive a fork. */
    for (int i = 0; i < 8; i++)
        sl[i] = cos[i] = clip[i] = text[i] = common[i];
    sl[8] = "objective=sl";
    cos[8] = "objective=sl";
    cos[9] = "head=cosine";
    clip[8] = "objective=clip";
    text[8] = "objective=sl";
    text[9] = "head=text";
    text[10] = head_from;
    train(run_sl, sl, 9);
    train(run_cos, cos, 10);
    train(run_clip, clip, 9);
    train(run_text, text, 11);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert_int_eq(system(cmd), 0);
}

static void open_run(const char *dir, int batch, cx_run *run)
{
    cx_err err;
    ck_assert_msg(cx_run_open(dir, batch, run, &err) == CX_OK, "%s", err.msg);
}

static void load(const char *yaml, unsigned parts, cx_dataset *ds)
{
    cx_err err;
    cx_load_options lo = {parts, NULL, NULL, 0};
    ck_assert_msg(cx_dataset_load(yaml, &lo, ds, &err) == CX_OK, "%s", err.msg);
}

/* ---- modes and checks --------------------------------------------------------------------- */

START_TEST(mode_names_round_trip)
{
    for (int m = 0; m < CX_EVAL_MODE_COUNT; m++) {
        ck_assert_int_eq(cx_eval_mode_parse(cx_eval_mode_name((cx_eval_mode)m)), m);
        ck_assert_ptr_nonnull(strstr(CX_EVAL_MODE_CHOICES, cx_eval_mode_name((cx_eval_mode)m)));
    }
    ck_assert_int_eq(cx_eval_mode_parse("linear_probe"), -1);
    ck_assert_int_eq(cx_eval_mode_parse(""), -1);
    ck_assert_str_eq(cx_eval_mode_name(CX_EVAL_MODE_LINEAR_PROBE), "linear-probe");
}
END_TEST

START_TEST(default_and_allowed_modes)
{
    cx_run sl, clip, text;
    cx_err err;
    open_run(run_sl, 64, &sl);
    open_run(run_clip, 64, &clip);
    open_run(run_text, 64, &text);
    ck_assert_int_eq(cx_run_default_mode(&sl), CX_EVAL_MODE_HEAD);
    ck_assert_int_eq(cx_run_default_mode(&clip), CX_EVAL_MODE_ZEROSHOT);
    ck_assert_int_eq(cx_run_default_mode(&text), CX_EVAL_MODE_HEAD);
    ck_assert_int_eq(cx_run_check_mode(&clip, CX_EVAL_MODE_HEAD, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "CLIP run"));
    ck_assert_ptr_nonnull(strstr(err.msg, "zeroshot, linear-probe, ncm or knn"));
    ck_assert_int_eq(cx_run_check_mode(&sl, CX_EVAL_MODE_ZEROSHOT, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "head, linear-probe, ncm or knn"));
    ck_assert_ptr_nonnull(strstr(err.msg, run_sl));
    /* An SL run whose head is a CLIP run's text has that run's text tower for zero-shot. */
    ck_assert_int_eq(cx_run_check_mode(&text, CX_EVAL_MODE_ZEROSHOT, &err), CX_OK);
    for (int m = CX_EVAL_MODE_LINEAR_PROBE; m < CX_EVAL_MODE_COUNT; m++) {
        ck_assert_int_eq(cx_run_check_mode(&sl, (cx_eval_mode)m, &err), CX_OK);
        ck_assert_int_eq(cx_run_check_mode(&clip, (cx_eval_mode)m, &err), CX_OK);
    }
    ck_assert_int_eq(cx_run_check_mode(&sl, CX_EVAL_MODE_COUNT, &err), CX_EUSAGE);
    cx_run_close(&sl);
    cx_run_close(&clip);
    cx_run_close(&text);
}
END_TEST

START_TEST(class_list_must_match)
{
    cx_run run;
    cx_dataset same, other;
    cx_err err;
    open_run(run_sl, 64, &run);
    load(data_yaml, CX_LOAD_NONE, &same);
    load(other_yaml, CX_LOAD_NONE, &other);
    ck_assert_int_eq(run.meta.num_eval_classes, E);
    ck_assert_int_eq(run.meta.shape.num_classes, E + OPEN);
    ck_assert_int_eq(cx_run_check_dataset(&run, &same, &err), CX_OK);
    ck_assert_int_eq(cx_run_check_dataset(&run, &other, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, other_yaml) && strstr(err.msg, run_sl), "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "class 2 is 'zzrenamed' there"), "%s", err.msg);
    /* A different number of evaluated classes. */
    other.num_eval_classes = E - 1;
    ck_assert_int_eq(cx_run_check_dataset(&run, &other, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "5 evaluated classes"), "%s", err.msg);
    cx_dataset_free(&same);
    cx_dataset_free(&other);
    cx_run_close(&run);
}
END_TEST

/* ---- features ----------------------------------------------------------------------------- */

/* The image tower (one hidden ReLU layer) in double, straight from the parameters. */
static void naive_forward(const cx_params *p, const float *x, int in, int hid, int out, double *y)
{
    const float *w0 = cx_param_value(p, cx_params_find(p, "image.fc0.weight"));
    const float *b0 = cx_param_value(p, cx_params_find(p, "image.fc0.bias"));
    const float *w1 = cx_param_value(p, cx_params_find(p, "image.fc1.weight"));
    const float *b1 = cx_param_value(p, cx_params_find(p, "image.fc1.bias"));
    double h[64];
    for (int j = 0; j < hid; j++) {
        double s = b0[j];
        for (int i = 0; i < in; i++)
            s += (double)w0[j * in + i] * x[i];
        h[j] = s > 0 ? s : 0;
    }
    for (int k = 0; k < out; k++) {
        double s = b1[k];
        for (int j = 0; j < hid; j++)
            s += (double)w1[k * hid + j] * h[j];
        y[k] = s;
    }
}

START_TEST(features_match_a_naive_forward_in_batches)
{
    cx_run run;
    cx_dataset ds;
    cx_err err;
    /* Batches of 7 rows: the 60 test rows take 9 forward passes, the last one partial. */
    open_run(run_sl, 7, &run);
    load(data_yaml, CX_LOAD_TEST | CX_LOAD_TRAIN | CX_LOAD_IMAGES, &ds);
    ck_assert_int_eq(cx_params_find(&run.model.params, "image.fc0.weight") >= 0, 1);
    size_t n = ds.test.n;
    ck_assert_uint_eq(n, E * TEST_PER);
    float *f = malloc(sizeof *f * n * EMB);
    ck_assert_msg(cx_run_features(&run.model, &ds.test, NULL, n, f, "test", &err) == CX_OK, "%s",
                  err.msg);
    const float *x = ds.test.x;
    for (size_t i = 0; i < n; i++) {
        double y[EMB];
        naive_forward(&run.model.params, x + i * DIM, DIM, 16, EMB, y);
        for (int k = 0; k < EMB; k++)
            ck_assert_msg(fabs(f[i * EMB + k] - y[k]) <= 1e-5 * (1 + fabs(y[k])),
                          "row %zu dim %d: %g vs %g", i, k, f[i * EMB + k], y[k]);
    }
    /* Chosen rows of the training split, in the given order. */
    uint32_t rows[5] = {17, 3, 3, 250, 0};
    float g[5 * EMB];
    ck_assert_int_eq(cx_run_features(&run.model, &ds.train, rows, 5, g, "train", &err), CX_OK);
    for (int i = 0; i < 5; i++) {
        double y[EMB];
        naive_forward(&run.model.params, (const float *)ds.train.x + (size_t)rows[i] * DIM, DIM, 16,
                      EMB, y);
        for (int k = 0; k < EMB; k++)
            ck_assert(fabs(g[i * EMB + k] - y[k]) <= 1e-5 * (1 + fabs(y[k])));
    }
    /* Refusals: a row past the end, a split without images, samples of another size. */
    rows[1] = (uint32_t)ds.train.n;
    ck_assert_int_eq(cx_run_features(&run.model, &ds.train, rows, 5, g, "train", &err), CX_EUSAGE);
    cx_dataset labels_only, wide;
    load(data_yaml, CX_LOAD_TEST, &labels_only);
    ck_assert_int_eq(cx_run_features(&run.model, &labels_only.test, NULL, 3, g, "t", &err), CX_EDATA);
    load(wide_yaml, CX_LOAD_TEST | CX_LOAD_IMAGES, &wide);
    ck_assert_int_eq(cx_run_features(&run.model, &wide.test, NULL, 3, g, "wide test", &err),
                     CX_EDATA);
    ck_assert_msg(strstr(err.msg, "wide test: samples of 9 values, the run's image tower takes 8"),
                  "%s", err.msg);
    /* A non-finite input gives a non-finite feature, named by its sample. */
    ((float *)ds.test.x)[5 * DIM + 2] = NAN;
    ck_assert_int_eq(cx_run_features(&run.model, &ds.test, NULL, n, f, "test", &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "test: sample 5: the image tower gives a non-finite feature"),
                  "%s", err.msg);
    free(f);
    cx_dataset_free(&ds);
    cx_dataset_free(&labels_only);
    cx_dataset_free(&wide);
    cx_run_close(&run);
}
END_TEST

/* ---- classifiers --------------------------------------------------------------------------- */

START_TEST(head_classifier_is_the_evaluated_rows_of_the_head)
{
    cx_run run;
    cx_eval_classifier clf;
    cx_err err;
    open_run(run_sl, 64, &run);
    const cx_head *h = &run.model.head;
    ck_assert_int_eq(h->C, E + OPEN); /* open-world concepts are extra outputs */
    ck_assert_int_eq(cx_run_classifier(&run, NULL, CX_EVAL_MODE_HEAD, NULL, NULL, 0, NULL, &clf,
                                       NULL, &err), CX_OK);
    ck_assert_int_eq(clf.kind, CX_CLF_LINEAR);
    ck_assert_int_eq(clf.C, E);
    ck_assert_int_eq(clf.D, EMB);
    ck_assert_int_eq(clf.normalize, 0);
    ck_assert(clf.scale == 1.0f);
    const float *w = cx_param_value(&run.model.params, h->w);
    const float *b = cx_param_value(&run.model.params, h->b);
    ck_assert_int_eq(memcmp(clf.w, w, sizeof(float) * E * EMB), 0);
    ck_assert_int_eq(memcmp(clf.b, b, sizeof(float) * E), 0);
    cx_eval_classifier_free(&clf);
    cx_run_close(&run);

    /* Cosine head: unit rows, inputs normalised, the learnt scale. */
    open_run(run_cos, 64, &run);
    ck_assert_int_eq(run.model.head.kind, CX_HEAD_COSINE);
    ck_assert_int_eq(cx_run_classifier(&run, NULL, CX_EVAL_MODE_HEAD, NULL, NULL, 0, NULL, &clf,
                                       NULL, &err), CX_OK);
    ck_assert_int_eq(clf.C, E);
    ck_assert_int_eq(clf.normalize, 1);
    ck_assert_float_eq(clf.scale, cx_model_logit_scale(&run.model));
    ck_assert(clf.scale != (float)CX_EVAL_COSINE_SCALE);
    w = cx_param_value(&run.model.params, run.model.head.w);
    for (int c = 0; c < E; c++) {
        double nw = 0, dot = 0, nc = 0;
        for (int d = 0; d < EMB; d++) {
            nw += (double)w[c * EMB + d] * w[c * EMB + d];
            nc += (double)clf.w[c * EMB + d] * clf.w[c * EMB + d];
            dot += (double)w[c * EMB + d] * clf.w[c * EMB + d];
        }
        ck_assert_double_eq_tol(nc, 1.0, 1e-5);
        ck_assert_double_eq_tol(dot / sqrt(nw * nc), 1.0, 1e-5);
    }
    cx_eval_classifier_free(&clf);
    cx_run_close(&run);
}
END_TEST

START_TEST(zeroshot_classifier_uses_the_text_tower_and_templates)
{
    cx_run run;
    cx_dataset ds;
    cx_eval_classifier clf;
    cx_err err;
    open_run(run_clip, 64, &run);
    load(data_yaml, CX_LOAD_NONE, &ds);
    ck_assert_int_gt(ds.num_templates, 1);
    ck_assert_int_eq(cx_run_classifier(&run, &ds, CX_EVAL_MODE_ZEROSHOT, NULL, NULL, 0, NULL,
                                       &clf, NULL, &err), CX_OK);
    ck_assert_int_eq(clf.C, E);
    ck_assert_int_eq(clf.normalize, 1);
    ck_assert(clf.scale == (float)CX_EVAL_COSINE_SCALE);
    float emb[E * EMB];
    ck_assert_int_eq(cx_tokens_class_embeddings(&run.model, &run.vocab, run.meta.class_names, E,
                                               ds.templates, ds.num_templates, emb, &err), CX_OK);
    for (int i = 0; i < E * EMB; i++)
        ck_assert_msg(fabsf(clf.w[i] - emb[i]) <= 1e-6f, "%d: %g vs %g", i, clf.w[i], emb[i]);
    /* One template only gives other weights: the templates are the dataset's. */
    float one[E * EMB];
    ck_assert_int_eq(cx_tokens_class_embeddings(&run.model, &run.vocab, run.meta.class_names, E,
                                              ds.templates, 1, one, &err), CX_OK);
    double diff = 0;
    for (int i = 0; i < E * EMB; i++)
        diff += fabs(one[i] - clf.w[i]);
    ck_assert_double_gt(diff, 1e-3);
    cx_eval_classifier_free(&clf);
    cx_run_close(&run);

    /* The text-head SL run: zero-shot through its head_from tower equals that run's. */
    cx_eval_classifier via;
    open_run(run_text, 64, &run);
    ck_assert_int_eq(cx_run_classifier(&run, &ds, CX_EVAL_MODE_ZEROSHOT, NULL, NULL, 0, NULL,
                                       &via, NULL, &err), CX_OK);
    for (int i = 0; i < E * EMB; i++)
        ck_assert(fabsf(via.w[i] - emb[i]) <= 1e-6f);
    /* ... and its head holds the same embeddings (frozen), with the cosine head's scale. */
    ck_assert_int_eq(cx_run_classifier(&run, &ds, CX_EVAL_MODE_HEAD, NULL, NULL, 0, NULL, &clf,
                                       NULL, &err), CX_OK);
    ck_assert_int_eq(clf.normalize, 1);
    for (int i = 0; i < E * EMB; i++)
        ck_assert_msg(fabsf(clf.w[i] - emb[i]) <= 1e-5f, "%d: %g vs %g", i, clf.w[i], emb[i]);
    cx_eval_classifier_free(&clf);
    cx_eval_classifier_free(&via);
    cx_dataset_free(&ds);
    cx_run_close(&run);
}
END_TEST

START_TEST(training_feature_modes_need_features)
{
    cx_run run;
    cx_eval_classifier clf;
    cx_err err;
    open_run(run_clip, 64, &run);
    ck_assert_int_eq(cx_run_classifier(&run, NULL, CX_EVAL_MODE_NCM, NULL, NULL, 0, NULL, &clf,
                                       NULL, &err), CX_EDATA);
    ck_assert_ptr_null(clf.w);
    /* Labels must be evaluated classes: open-world labels are the caller's to drop. */
    float x[3 * EMB] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    int32_t y[3] = {0, 1, E};
    ck_assert_int_eq(cx_run_classifier(&run, NULL, CX_EVAL_MODE_KNN, x, y, 3, NULL, &clf, NULL,
                                       &err), CX_EDATA);
    y[2] = 2;
    ck_assert_int_eq(cx_run_classifier(&run, NULL, CX_EVAL_MODE_NCM, x, y, 3, NULL, &clf, NULL,
                                       &err), CX_OK);
    ck_assert_int_eq(clf.C, E);
    ck_assert_float_eq_tol(clf.w[0], 1.0f, 1e-6f);        /* class 0: e_0 */
    ck_assert_float_eq_tol(clf.w[EMB + 1], 1.0f, 1e-6f);  /* class 1: e_1 */
    for (int d = 0; d < EMB; d++)
        ck_assert(clf.w[3 * EMB + d] == 0.0f);              /* class 3: no training vector */
    cx_eval_classifier_free(&clf);
    cx_run_close(&run);
}
END_TEST

/* ---- the pipeline -------------------------------------------------------------------------- */

/* Run's features, classifier, scores and report built piece by piece. */
static void by_pieces(const char *dir, cx_eval_mode mode, cx_eval_report *r)
{
    cx_run run;
    cx_dataset ds;
    cx_err err;
    open_run(dir, 64, &run);
    load(data_yaml, CX_LOAD_TEST | CX_LOAD_TRAIN | CX_LOAD_IMAGES, &ds);
    size_t n = ds.test.n;
    float *f = malloc(sizeof *f * n * EMB);
    ck_assert_int_eq(cx_run_features(&run.model, &ds.test, NULL, n, f, "test", &err), CX_OK);
    float *tf = malloc(sizeof *tf * ds.train.n * EMB);
    uint32_t *rows = malloc(sizeof *rows * ds.train.n);
    int32_t *ty = malloc(sizeof *ty * ds.train.n);
    int nt = 0;
    for (size_t i = 0; i < ds.train.n; i++)
        if (ds.train.y[i] < E) {
            rows[nt] = (uint32_t)i;
            ty[nt++] = ds.train.y[i];
        }
    ck_assert_int_lt(nt, (int)ds.train.n); /* some open-world samples were dropped */
    ck_assert_int_eq(cx_run_features(&run.model, &ds.train, rows, (size_t)nt, tf, "train", &err),
                     CX_OK);
    cx_eval_classifier clf;
    ck_assert_int_eq(cx_run_classifier(&run, &ds, mode, tf, ty, nt, NULL, &clf, NULL, &err), CX_OK);
    cx_eval_pred pred;
    ck_assert_int_eq(cx_eval_score(&clf, f, ds.test.y, (int)n, 0, &pred, &err), CX_OK);
    ck_assert_int_eq(cx_eval_report_build(r, &pred, ds.test.y, run.meta.class_counts,
                                          (const char *const *)run.meta.class_names, NULL, &err),
                     CX_OK);
    cx_eval_pred_free(&pred);
    cx_eval_classifier_free(&clf);
    free(f);
    free(tf);
    free(rows);
    free(ty);
    cx_dataset_free(&ds);
    cx_run_close(&run);
}

static void assert_same_report(const cx_eval_report *a, const cx_eval_report *b)
{
    ck_assert_int_eq(a->C, b->C);
    ck_assert_int_eq(memcmp(a->confusion, b->confusion, sizeof(int64_t) * a->C * a->C), 0);
    ck_assert_int_eq(memcmp(a->train_count, b->train_count, sizeof(int64_t) * a->C), 0);
    ck_assert(a->top1 == b->top1);
    ck_assert(a->ece == b->ece);
}

START_TEST(pipeline_equals_its_pieces_in_every_mode)
{
    const char *dirs[] = {run_sl, run_clip, run_sl, run_clip, run_sl};
    const cx_eval_mode modes[] = {CX_EVAL_MODE_HEAD, CX_EVAL_MODE_ZEROSHOT, CX_EVAL_MODE_NCM,
                                  CX_EVAL_MODE_KNN, CX_EVAL_MODE_LINEAR_PROBE};
    for (int k = 0; k < 5; k++) {
        cx_eval_report want, got;
        cx_run_eval_info info;
        cx_run_eval_opts o;
        cx_err err;
        by_pieces(dirs[k], modes[k], &want);
        cx_run_eval_defaults(&o);
        o.mode = modes[k];
        ck_assert_msg(cx_run_evaluate(dirs[k], &o, &got, &info, &err) == CX_OK, "%s", err.msg);
        assert_same_report(&want, &got);
        ck_assert_int_eq(info.mode, modes[k]);
        ck_assert_str_eq(info.data, data_yaml);
        ck_assert_int_eq(info.num_classes, E);
        ck_assert_int_eq(info.n_test, E * TEST_PER);
        ck_assert_int_eq(got.n_test, E * TEST_PER);
        ck_assert(isfinite(got.nc1) && got.nc1 > 0);
        if (modes[k] >= CX_EVAL_MODE_LINEAR_PROBE) {
            /* Training features of the evaluated classes only. */
            cx_run run;
            open_run(dirs[k], 8, &run);
            int64_t total = 0;
            for (int c = 0; c < E; c++)
                total += run.meta.class_counts[c];
            ck_assert_int_eq(info.n_train, total);
            cx_run_close(&run);
        } else {
            ck_assert_int_eq(info.n_train, 0);
        }
        ck_assert_int_eq(isfinite(info.probe_lambda), modes[k] == CX_EVAL_MODE_LINEAR_PROBE);
        for (int p = 0; p < CX_EVAL_PHASES; p++)
            ck_assert(info.seconds[p] >= 0);
        cx_eval_report_free(&want);
        cx_eval_report_free(&got);
        cx_run_eval_info_free(&info);
    }
}
END_TEST

START_TEST(pipeline_options_and_restriction)
{
    cx_eval_report all, tail, tert;
    cx_run_eval_opts o;
    cx_err err;
    cx_run_eval_defaults(&o);
    o.report.many = 60;
    o.report.few = 20;
    ck_assert_int_eq(cx_run_evaluate(run_sl, &o, &all, NULL, &err), CX_OK);
    o.report.restrict_to = CX_SPLIT_TAIL;
    o.nc1 = 0;
    ck_assert_int_eq(cx_run_evaluate(run_sl, &o, &tail, NULL, &err), CX_OK);
    /* Training counts of the run decide the split; the tail's top1 is the mean of its classes. */
    int n_tail = 0;
    double sum = 0;
    for (int c = 0; c < E; c++) {
        ck_assert_int_eq(all.split[c] == CX_SPLIT_TAIL, all.train_count[c] < 20);
        ck_assert_int_eq(all.split[c] == CX_SPLIT_HEAD, all.train_count[c] > 60);
        if (all.split[c] == CX_SPLIT_TAIL) {
            n_tail++;
            sum += all.class_acc[c];
        }
    }
    ck_assert_int_gt(n_tail, 0);
    ck_assert_int_lt(n_tail, E);
    ck_assert_int_eq(tail.n_listed, n_tail);
    ck_assert_double_eq_tol(tail.top1, sum / n_tail, 1e-12);
    ck_assert(tail.tail == all.tail && tail.head == all.head);
    ck_assert(isnan(tail.nc1) && isfinite(all.nc1));
    o.report.restrict_to = CX_REPORT_ALL;
    o.report.rule = CX_SPLIT_RULE_TERTILE;
    ck_assert_int_eq(cx_run_evaluate(run_sl, &o, &tert, NULL, &err), CX_OK);
    int heads = 0;
    for (int c = 0; c < E; c++)
        heads += tert.split[c] == CX_SPLIT_HEAD;
    ck_assert_int_eq(heads, E / 3);
    cx_eval_report_free(&all);
    cx_eval_report_free(&tail);
    cx_eval_report_free(&tert);
}
END_TEST

/* A training run whose head_from folder is missing fails with the status of the failed open,
 * with or without a message wanted (a NULL err once turned this failure into success). */
START_TEST(training_from_a_missing_run_fails_with_null_err)
{
    char missing[160], head_from[200], out[160], data_set[160];
    path_in(missing, sizeof missing, "no-such-run");
    path_in(out, sizeof out, "never-written");
    snprintf(head_from, sizeof head_from, "head_from=%s", missing);
    snprintf(data_set, sizeof data_set, "data=%s", data_yaml);
    const char *sets[] = {data_set, "objective=sl", "head=text", head_from, "epochs=1",
                          "threads=1"};
    cx_train_config cfg;
    cx_err err;
    ck_assert_msg(cx_train_config_load(&cfg, NULL, sets, 6, &err) == CX_OK, "%s", err.msg);
    ck_assert_int_eq(cx_train_new(&cfg, out, 0, NULL, NULL, NULL), CX_EDATA);
    ck_assert_int_eq(cx_train_new(&cfg, out, 0, NULL, NULL, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "head_from: ") == err.msg && strstr(err.msg, missing), "%s",
                  err.msg);
    cx_train_config_free(&cfg);
    struct stat sb;
    ck_assert_int_ne(stat(out, &sb), 0);
}
END_TEST

START_TEST(pipeline_refusals)
{
    cx_eval_report r;
    cx_run_eval_info info;
    cx_run_eval_opts o;
    cx_err err;
    cx_run_eval_defaults(&o);
    /* Another class list. */
    o.data = other_yaml;
    ck_assert_int_eq(cx_run_evaluate(run_clip, &o, &r, &info, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "another class list") && strstr(err.msg, run_clip), "%s", err.msg);
    ck_assert_ptr_null(r.class_acc);
    ck_assert_ptr_null(info.data);
    /* Inputs of another size. */
    o.data = wide_yaml;
    ck_assert_int_eq(cx_run_evaluate(run_clip, &o, &r, &info, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "image tower takes 8"), "%s", err.msg);
    /* A mode that does not apply is a usage error. */
    o.data = NULL;
    o.mode = CX_EVAL_MODE_HEAD;
    ck_assert_int_eq(cx_run_evaluate(run_clip, &o, &r, &info, &err), CX_EUSAGE);
    o.mode = CX_EVAL_MODE_DEFAULT;
    /* No folder, no checkpoint, a corrupt checkpoint. */
    char dir[160], path[200], cmd[1024];
    path_in(dir, sizeof dir, "missing");
    ck_assert_int_eq(cx_run_evaluate(dir, &o, &r, &info, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, dir) != NULL, "%s", err.msg);
    path_in(dir, sizeof dir, "nockpt");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/config.yaml' '%s/'", dir, run_sl, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(cx_run_evaluate(dir, &o, &r, &info, &err), CX_EDATA);
    snprintf(path, sizeof path, "%s/model.ckpt", dir);
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s", err.msg);
    snprintf(cmd, sizeof cmd, "head -c 300 '%s/model.ckpt' > '%s'", run_sl, path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(cx_run_evaluate(dir, &o, &r, &info, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, path) != NULL, "%s", err.msg);
    /* A dataset that has moved away. */
    path_in(dir, sizeof dir, "moved");
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/model.ckpt' '%s/' && sed 's|^data: .*|data: \"%s/none.yaml\"|' '%s/config.yaml' > '%s/config.yaml'",
             dir, run_sl, dir, root, run_sl, dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(cx_run_evaluate(dir, &o, &r, &info, &err), CX_EDATA);
    ck_assert_msg(strstr(err.msg, "none.yaml") != NULL, "%s", err.msg);
    o.batch = 0;
    ck_assert_int_eq(cx_run_evaluate(run_sl, &o, &r, &info, &err), CX_EUSAGE);
}
END_TEST

/* Scoring and the image tower's products do not depend on the thread count; the linear probe
 * sums per-thread slots, so it gives the same bits for the same thread count only. */
START_TEST(same_bits_for_the_same_threads)
{
    const cx_eval_mode modes[] = {CX_EVAL_MODE_ZEROSHOT, CX_EVAL_MODE_KNN, CX_EVAL_MODE_LINEAR_PROBE};
    for (int k = 0; k < 3; k++) {
        cx_eval_report a, b;
        cx_run_eval_opts o;
        cx_err err;
        cx_run_eval_defaults(&o);
        o.mode = modes[k];
        int first = modes[k] == CX_EVAL_MODE_LINEAR_PROBE ? 2 : 1;
        cx_threads_set(first);
        ck_assert_int_eq(cx_run_evaluate(run_clip, &o, &a, NULL, &err), CX_OK);
        cx_threads_set(2);
        ck_assert_int_eq(cx_run_evaluate(run_clip, &o, &b, NULL, &err), CX_OK);
        cx_threads_set(1);
        assert_same_report(&a, &b);
        ck_assert_msg(a.nc1 == b.nc1 && a.corr_acc == b.corr_acc, "mode %s",
                      cx_eval_mode_name(modes[k]));
        cx_eval_report_free(&a);
        cx_eval_report_free(&b);
    }
}
END_TEST

/* ---- the figure ---------------------------------------------------------------------------- */

/* A report of 4 classes from a diagonal-heavy confusion matrix; class 3 has no training sample
 * and class 2 no test sample. */
static void toy_report(cx_eval_report *r, int variant)
{
    int64_t conf[16] = {8, 1, 0, 1, 2, 5, 0, 3, 0, 0, 0, 0, 1, 1, 0, 2 + variant};
    const int64_t train[4] = {500, 50, 5, 0};
    const char *names[4] = {"a", "b", "c", "d"};
    cx_err err;
    ck_assert_int_eq(cx_eval_report_from_counts(r, conf, NULL, 0, train, names, 4, NULL, &err),
                     CX_OK);
}

static int count_lines(const char *path, int skip_comments)
{
    FILE *fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "%s missing", path);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp))
        n += !(skip_comments && line[0] == '#');
    fclose(fp);
    return n;
}

static int folder_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(plot_format_by_extension)
{
    ck_assert_int_eq(cx_plot_format_of("f.svg"), CX_PLOT_SVG);
    ck_assert_int_eq(cx_plot_format_of("a/b/F.SVG"), CX_PLOT_SVG);
    ck_assert_int_eq(cx_plot_format_of("x.png"), CX_PLOT_PNG);
    ck_assert_int_eq(cx_plot_format_of("x.pdf"), -1);
    ck_assert_int_eq(cx_plot_format_of("svg"), -1);
    ck_assert_int_eq(cx_plot_format_of(".svg"), -1);
    ck_assert_int_eq(cx_plot_format_of("dir/.png"), -1);
    ck_assert_int_eq(cx_plot_format_of("x.svg.txt"), -1);
}
END_TEST

START_TEST(plot_files_and_script)
{
    cx_eval_report r0, r1;
    toy_report(&r0, 0);
    toy_report(&r1, 3);
    cx_plot_run runs[2] = {{"base", &r0}, {"it's_new", &r1}};
    char dir[160];
    path_in(dir, sizeof dir, "plotfiles");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    cx_err err;
    ck_assert_msg(cx_plot_write_files(dir, runs, 2, CX_PLOT_SVG, "out.svg", &err) == CX_OK, "%s",
                  err.msg);
    char path[200];
    /* Points: the 3 classes with test vectors, by count; class 3 (no training sample) at 0.5. */
    snprintf(path, sizeof path, "%s/run1.tsv", dir);
    ck_assert_int_eq(count_lines(path, 1), 3);
    const char *t = read_text(path);
    double x0, a0, x1, a1, x2, a2;
    int s0, c0, s1, c1, s2, c2;
    ck_assert_int_eq(sscanf(strchr(t, '\n') + 1, "%lf\t%lf\t%d\t%d\n%lf\t%lf\t%d\t%d\n%lf\t%lf\t%d\t%d",
                            &x0, &a0, &s0, &c0, &x1, &a1, &s1, &c1, &x2, &a2, &s2, &c2), 12);
    ck_assert_double_eq(x0, 0.5);
    ck_assert_int_eq(c0, 3);
    ck_assert_double_eq_tol(a0, 5.0 / 7.0, 1e-12); /* variant 3: 5 of 1 + 1 + 0 + 5 */
    ck_assert_int_eq(s0, CX_SPLIT_TAIL);
    ck_assert_double_eq(x1, 50);
    ck_assert_double_eq_tol(a1, 0.5, 1e-12);
    ck_assert_int_eq(s1, CX_SPLIT_MID);
    ck_assert_double_eq(x2, 500);
    ck_assert_double_eq_tol(a2, 0.8, 1e-12);
    ck_assert_int_eq(s2, CX_SPLIT_HEAD);
    /* Trend: one bin per class here (they are decades apart). */
    snprintf(path, sizeof path, "%s/trend0.tsv", dir);
    ck_assert_int_eq(count_lines(path, 1), 3);
    /* Bars: head, mid, tail rows with one column per run; the tail of run 0 has acc 2/4. */
    snprintf(path, sizeof path, "%s/bars.tsv", dir);
    t = read_text(path);
    ck_assert_msg(strstr(t, "\nhead\t1\t0.80000000000000004\t0.80000000000000004\n"), "%s", t);
    ck_assert_msg(strstr(t, "\ntail\t2\t0.5\t0.714285714285714"), "%s", t);
    /* Script: both names quoted for gnuplot, the output relative to the folder, zero tick. */
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    t = read_text(path);
    ck_assert_ptr_nonnull(strstr(t, "set terminal svg"));
    ck_assert_ptr_nonnull(strstr(t, "set output 'out.svg'"));
    ck_assert_ptr_nonnull(strstr(t, "title 'base'"));
    ck_assert_ptr_nonnull(strstr(t, "title 'it''s_new'"));
    ck_assert_ptr_nonnull(strstr(t, "'0' 0.5"));
    ck_assert_ptr_nonnull(strstr(t, "noenhanced"));
    ck_assert_ptr_nonnull(strstr(t, "(\"head\\n1 class\" 0, \"mid\\n1 class\" 1, \"tail\\n2 classes\" 2)"));
    ck_assert_int_eq(cx_plot_write_files(dir, runs, 0, CX_PLOT_PNG, "x.png", &err), CX_EUSAGE);

    /* A run without mid classes: NaN bars (gnuplot's missing value), and no class counts in
     * the labels once the runs disagree on them. */
    cx_eval_report r2;
    int64_t conf[16] = {8, 1, 0, 1, 2, 5, 0, 3, 0, 0, 0, 0, 1, 1, 0, 2};
    const int64_t train[4] = {500, 300, 5, 0};
    ck_assert_int_eq(cx_eval_report_from_counts(&r2, conf, NULL, 0, train, NULL, 4, NULL, &err),
                     CX_OK);
    ck_assert(isnan(r2.mid));
    cx_plot_run three[3] = {{"base", &r0}, {"new", &r1}, {"nomid", &r2}};
    ck_assert_int_eq(cx_plot_write_files(dir, three, 3, CX_PLOT_PNG, "out.png", &err), CX_OK);
    snprintf(path, sizeof path, "%s/bars.tsv", dir);
    t = read_text(path);
    ck_assert_msg(strstr(t, "\nmid\t-1\t0.5\t0.5\tNaN\n"), "%s", t);
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    t = read_text(path);
    ck_assert_ptr_nonnull(strstr(t, "set terminal pngcairo"));
    ck_assert_ptr_nonnull(strstr(t, "(\"head\" 0, \"mid\" 1, \"tail\\n2 classes\" 2)"));
    cx_eval_report_free(&r2);
    cx_eval_report_free(&r0);
    cx_eval_report_free(&r1);
}
END_TEST

START_TEST(plot_with_gnuplot)
{
    char *gp = cx_plot_find_gnuplot();
    if (!gp) {
        fprintf(stderr, "check_runeval: gnuplot not installed, figure test skipped\n");
        return;
    }
    char tmp[160], out[200], png[200];
    path_in(tmp, sizeof tmp, "plottmp");
    ck_assert_int_eq(mkdir(tmp, 0700), 0);
    ck_assert_int_eq(setenv("TMPDIR", tmp, 1), 0);
    cx_eval_report r0, r1, r2;
    toy_report(&r0, 0);
    toy_report(&r1, 1);
    toy_report(&r2, 2);
    cx_plot_run runs[3] = {{"first run", &r0}, {"second", &r1}, {"third", &r2}};
    cx_err err;
    snprintf(out, sizeof out, "%s/fig.svg", root);
    ck_assert_msg(cx_plot_compare(gp, runs, 3, out, &err) == CX_OK, "%s", err.msg);
    const char *svg = read_text(out);
    ck_assert_ptr_nonnull(strstr(svg, "<svg"));
    ck_assert_ptr_nonnull(strstr(svg, "</svg>"));
    for (int i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "<text>%s</text>", runs[i].name);
        ck_assert_msg(strstr(svg, want) != NULL, "no series %s", runs[i].name);
    }
    ck_assert_int_eq(folder_entries(tmp), 0); /* the temporary folder is gone */
    snprintf(png, sizeof png, "%s/fig.png", root);
    ck_assert_msg(cx_plot_compare(gp, runs, 2, png, &err) == CX_OK, "%s", err.msg);
    const char *p = read_text(png);
    ck_assert_int_eq(memcmp(p, "\x89PNG", 4), 0);
    /* Refusals: bad extension; a gnuplot that is not one leaves the old figure alone. */
    ck_assert_int_eq(cx_plot_compare(gp, runs, 3, "fig.pdf", &err), CX_EUSAGE);
    ck_assert_int_eq(cx_plot_compare("/bin/false", runs, 3, out, &err), CX_EIO);
    ck_assert_msg(strstr(err.msg, "gnuplot failed (exit status 1)"), "%s", err.msg);
    ck_assert_ptr_nonnull(strstr(read_text(out), "<text>third</text>"));
    ck_assert_int_eq(cx_plot_compare("/nonexistent/gnuplot", runs, 3, out, &err), CX_EIO);
    ck_assert_int_eq(folder_entries(tmp), 0);
    unsetenv("TMPDIR");
    free(gp);
    cx_eval_report_free(&r0);
    cx_eval_report_free(&r1);
    cx_eval_report_free(&r2);
}
END_TEST

static Suite *run_eval_suite(void)
{
    Suite *s = suite_create("run_eval");
    TCase *tc = tcase_create("runs");
    tcase_add_unchecked_fixture(tc, setup, teardown);
    /* same_bits_for_the_same_threads trains and evaluates every mode twice: 4 to 6 s under ASan
     * and UBSan on a quiet machine, 29 s while others compiled; about 5x the worst. */
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, mode_names_round_trip);
    tcase_add_test(tc, default_and_allowed_modes);
    tcase_add_test(tc, class_list_must_match);
    tcase_add_test(tc, features_match_a_naive_forward_in_batches);
    tcase_add_test(tc, head_classifier_is_the_evaluated_rows_of_the_head);
    tcase_add_test(tc, zeroshot_classifier_uses_the_text_tower_and_templates);
    tcase_add_test(tc, training_feature_modes_need_features);
    tcase_add_test(tc, pipeline_equals_its_pieces_in_every_mode);
    tcase_add_test(tc, pipeline_options_and_restriction);
    tcase_add_test(tc, pipeline_refusals);
    tcase_add_test(tc, training_from_a_missing_run_fails_with_null_err);
    tcase_add_test(tc, same_bits_for_the_same_threads);
    tcase_add_test(tc, plot_format_by_extension);
    tcase_add_test(tc, plot_files_and_script);
    tcase_add_test(tc, plot_with_gnuplot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(run_eval_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
