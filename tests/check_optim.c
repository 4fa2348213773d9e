/* Optimisers (against an independent double-precision reference of PyTorch's update rules),
 * gradient clipping and learning-rate schedules. The parameter store is tested in check_model. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/model/params.h"
#include "lib/optim/optim.h"
#include "lib/optim/schedule.h"

/* Two tensors: a decayed weight (3, 5) and a no-decay bias (7), plus a frozen one (4). */
static void make_params(cx_params *p, int slots)
{
    cx_err err;
    cx_params_init(p);
    ck_assert_int_eq(cx_params_declare(p, "w", 2, (int[]){3, 5}, 0, &err), 0);
    ck_assert_int_eq(cx_params_declare(p, "b", 1, (int[]){7}, CX_PARAM_NO_DECAY, &err), 1);
    ck_assert_int_eq(cx_params_declare(p, "f", 1, (int[]){4}, CX_PARAM_FROZEN, &err), 2);
    ck_assert_int_eq(cx_params_alloc(p, slots, &err), CX_OK);
    cx_rng r;
    cx_rng_seed(&r, 9, 0);
    for (int t = 0; t < p->count; t++)
        for (size_t i = 0; i < p->info[t].size; i++)
            cx_param_value(p, t)[i] = (float)cx_rng_normal(&r);
}

static void random_grads(cx_params *p, cx_rng *r)
{
    for (int t = 0; t < p->count; t++)
        for (size_t i = 0; i < p->info[t].size; i++)
            cx_param_grad(p, t)[i] = (float)cx_rng_normal(r);
}

START_TEST(adamw_matches_reference_over_steps)
{
    cx_params p;
    make_params(&p, 2);
    cx_optim_config cfg = {.kind = CX_OPTIM_ADAMW, .wd = 0.1, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8};
    cx_optim o;
    cx_err err;
    ck_assert_int_eq(cx_optim_init(&o, &cfg, &p, &err), CX_OK);
    /* Reference in double: PyTorch's AdamW (decay, moments, bias-corrected step). */
    double w[48], m[48] = {0}, v[48] = {0};
    for (size_t i = 0; i < p.total; i++)
        w[i] = p.value[i];
    cx_rng r;
    cx_rng_seed(&r, 10, 0);
    for (int step = 1; step <= 5; step++) {
        double lr = 1e-2 * step;
        random_grads(&p, &r);
        for (int t = 0; t < 2; t++) {
            double wd = t == 1 ? 0.0 : 0.1;
            for (size_t i = p.info[t].offset; i < p.info[t].offset + p.info[t].size; i++) {
                double g = p.grad[i];
                w[i] *= 1 - lr * wd;
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.98 * v[i] + 0.02 * g * g;
                double mh = m[i] / (1 - pow(0.9, step)), vh = v[i] / (1 - pow(0.98, step));
                w[i] -= lr * mh / (sqrt(vh) + 1e-8);
            }
        }
        float frozen_before = cx_param_value(&p, 2)[0];
        cx_optim_step(&o, &p, lr);
        ck_assert_float_eq(cx_param_value(&p, 2)[0], frozen_before);
    }
    for (int t = 0; t < 2; t++)
        for (size_t i = p.info[t].offset; i < p.info[t].offset + p.info[t].size; i++)
            ck_assert_double_eq_tol(p.value[i], w[i], 1e-5 * (1 + fabs(w[i])));
    ck_assert_int_eq(o.step, 5);
    cx_optim_free(&o);
    cx_params_free(&p);
}
END_TEST

START_TEST(adamw_first_step_is_signed_lr)
{
    /* Bias correction makes the first AdamW step lr * g / (|g| + eps): a sign step. */
    cx_params p;
    make_params(&p, 2);
    cx_optim_config cfg = {.kind = CX_OPTIM_ADAMW, .wd = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    cx_optim o;
    cx_err err;
    ck_assert_int_eq(cx_optim_init(&o, &cfg, &p, &err), CX_OK);
    float before[48];
    memcpy(before, p.value, sizeof before);
    for (size_t i = 0; i < p.total; i++)
        p.grad[i] = (i % 2 ? 1.0f : -1.0f) * (float)(i + 1) * 0.01f;
    cx_optim_step(&o, &p, 0.5);
    for (int t = 0; t < 2; t++)
        for (size_t i = p.info[t].offset; i < p.info[t].offset + p.info[t].size; i++)
            ck_assert_float_eq_tol(p.value[i] - before[i], i % 2 ? -0.5f : 0.5f, 1e-5f);
    cx_optim_free(&o);
    cx_params_free(&p);
}
END_TEST

START_TEST(sgd_momentum_and_nesterov_match_reference)
{
    for (int nesterov = 0; nesterov <= 1; nesterov++) {
        cx_params p;
        make_params(&p, 1);
        cx_optim_config cfg = {.kind = CX_OPTIM_SGD, .wd = 5e-4, .momentum = 0.9, .nesterov = nesterov};
        ck_assert_int_eq(cx_optim_slots(&cfg), 1);
        cx_optim o;
        cx_err err;
        ck_assert_int_eq(cx_optim_init(&o, &cfg, &p, &err), CX_OK);
        double w[48], buf[48] = {0};
        for (size_t i = 0; i < p.total; i++)
            w[i] = p.value[i];
        cx_rng r;
        cx_rng_seed(&r, 11, 0);
        for (int step = 1; step <= 4; step++) {
            random_grads(&p, &r);
            for (int t = 0; t < 2; t++) {
                double wd = t == 1 ? 0.0 : 5e-4;
                for (size_t i = p.info[t].offset; i < p.info[t].offset + p.info[t].size; i++) {
                    double d = p.grad[i] + wd * w[i];
                    buf[i] = step == 1 ? d : 0.9 * buf[i] + d;
                    d = nesterov ? d + 0.9 * buf[i] : buf[i];
                    w[i] -= 0.1 * d;
                }
            }
            cx_optim_step(&o, &p, 0.1);
        }
        for (int t = 0; t < 2; t++)
            for (size_t i = p.info[t].offset; i < p.info[t].offset + p.info[t].size; i++)
                ck_assert_double_eq_tol(p.value[i], w[i], 1e-5 * (1 + fabs(w[i])));
        cx_optim_free(&o);
        cx_params_free(&p);
    }
}
END_TEST

START_TEST(sgd_without_momentum_needs_no_state)
{
    cx_params p;
    make_params(&p, 0);
    cx_optim_config cfg = {.kind = CX_OPTIM_SGD, .wd = 0, .momentum = 0};
    ck_assert_int_eq(cx_optim_slots(&cfg), 0);
    cx_optim o;
    cx_err err;
    ck_assert_int_eq(cx_optim_init(&o, &cfg, &p, &err), CX_OK);
    float before = p.value[0];
    p.grad[0] = 2.0f;
    cx_optim_step(&o, &p, 0.25);
    ck_assert_float_eq_tol(p.value[0], before - 0.5f, 1e-6f);
    cx_optim_free(&o);
    /* AdamW on a store without state slots is refused. */
    cx_optim_config adam = {.kind = CX_OPTIM_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    ck_assert_int_eq(cx_optim_init(&o, &adam, &p, &err), CX_EUSAGE);
    cx_params_free(&p);
}
END_TEST

START_TEST(step_in_shards_equals_whole_step)
{
    /* Two shards updated separately (as two processes do) give the whole step's bytes. */
    for (int kind = 0; kind < 2; kind++) {
        cx_params a, b;
        make_params(&a, 2);
        make_params(&b, 2);
        cx_optim_config cfg = {.kind = kind ? CX_OPTIM_SGD : CX_OPTIM_ADAMW, .wd = 0.05,
                               .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .momentum = 0.9};
        cx_optim oa, ob1, ob2;
        cx_err err;
        ck_assert_int_eq(cx_optim_init(&oa, &cfg, &a, &err), CX_OK);
        ck_assert_int_eq(cx_optim_init(&ob1, &cfg, &b, &err), CX_OK);
        ck_assert_int_eq(cx_optim_init(&ob2, &cfg, &b, &err), CX_OK);
        cx_rng r;
        cx_rng_seed(&r, 21, 0);
        for (int step = 0; step < 3; step++) {
            random_grads(&a, &r);
            memcpy(b.grad, a.grad, sizeof(float) * a.total);
            cx_optim_step(&oa, &a, 0.01);
            /* A cut inside the first tensor (offset 7) exercises partial tensors. */
            cx_optim_step_range(&ob1, &b, 0.01, 0, 7);
            cx_optim_step_range(&ob2, &b, 0.01, 7, b.total);
        }
        ck_assert_int_eq(memcmp(a.value, b.value, sizeof(float) * a.total), 0);
        ck_assert_int_eq(memcmp(a.state, b.state, sizeof(float) * a.total * 2), 0);
        cx_optim_free(&oa);
        cx_optim_free(&ob1);
        cx_optim_free(&ob2);
        cx_params_free(&a);
        cx_params_free(&b);
    }
}
END_TEST

START_TEST(grad_norm_and_clipping)
{
    cx_params p;
    make_params(&p, 2);
    cx_optim_config cfg = {.kind = CX_OPTIM_ADAMW, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    cx_optim o;
    cx_err err;
    ck_assert_int_eq(cx_optim_init(&o, &cfg, &p, &err), CX_OK);
    memset(p.grad, 0, sizeof(float) * p.total);
    cx_param_grad(&p, 0)[0] = 3.0f;
    cx_param_grad(&p, 1)[6] = 4.0f;
    cx_param_grad(&p, 2)[0] = 100.0f; /* frozen: not counted */
    ck_assert_double_eq_tol(cx_optim_grad_norm(&o, &p), 5.0, 1e-12);
    double before = cx_optim_clip_grad(&o, &p, 1.0);
    ck_assert_double_eq_tol(before, 5.0, 1e-12);
    ck_assert_float_eq_tol(cx_param_grad(&p, 0)[0], 3.0f / (5.0f + 1e-6f), 1e-6f);
    ck_assert_float_eq_tol(cx_param_grad(&p, 1)[6], 4.0f / (5.0f + 1e-6f), 1e-6f);
    /* Below the limit nothing changes. */
    cx_optim_clip_grad(&o, &p, 10.0);
    ck_assert_float_eq_tol(cx_param_grad(&p, 0)[0], 3.0f / (5.0f + 1e-6f), 1e-6f);
    cx_optim_free(&o);
    cx_params_free(&p);
}
END_TEST

START_TEST(schedule_warmup_cosine_step_constant)
{
    cx_schedule s = {.kind = CX_SCHED_COSINE, .base_lr = 1.0, .warmup = 4, .total_steps = 14};
    ck_assert_double_eq_tol(cx_schedule_lr(&s, 0), 0.25, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&s, 3), 1.0, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&s, 4), 1.0, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&s, 9), 0.5, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&s, 14), 0.0, 1e-12);
    int64_t milestones[2] = {2, 4};
    cx_schedule st = {.kind = CX_SCHED_STEP, .base_lr = 1.0, .steps_per_epoch = 10,
                      .milestones = milestones, .nmilestones = 2, .gamma = 0.1};
    ck_assert_double_eq_tol(cx_schedule_lr(&st, 19), 1.0, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&st, 20), 0.1, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&st, 45), 0.01, 1e-12);
    cx_schedule c = {.kind = CX_SCHED_CONSTANT, .base_lr = 0.3, .warmup = 2};
    ck_assert_double_eq_tol(cx_schedule_lr(&c, 0), 0.15, 1e-12);
    ck_assert_double_eq_tol(cx_schedule_lr(&c, 1000), 0.3, 1e-12);
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optimisers");
    tcase_add_test(tc, adamw_matches_reference_over_steps);
    tcase_add_test(tc, adamw_first_step_is_signed_lr);
    tcase_add_test(tc, sgd_momentum_and_nesterov_match_reference);
    tcase_add_test(tc, sgd_without_momentum_needs_no_state);
    tcase_add_test(tc, grad_norm_and_clipping);
    tcase_add_test(tc, step_in_shards_equals_whole_step);
    suite_add_tcase(s, tc);
    tc = tcase_create("schedule");
    tcase_add_test(tc, schedule_warmup_cosine_step_constant);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(optim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
