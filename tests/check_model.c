/* Model pieces: the parameter store's layout, finite-difference gradient checks of every tower
 * (MLP, text tower, CNN) and head (linear, cosine, class subsets, frozen), with the CNN's thread
 * determinism. The convolution and pooling ops are tested in check_ops. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/model/cnn.h"
#include "lib/model/head.h"
#include "lib/model/dino_head.h"
#include "lib/model/mlp.h"
#include "lib/model/params.h"
#include "lib/model/text_tower.h"
#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"
#include "lib/ops/ops_internal.h"
#include "tests/gradcheck.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static void must(cx_status st, const cx_err *err)
{
    ck_assert_msg(st == CX_OK, "%s", err->msg);
}

/* One gc_var per tensor of p that is not frozen, after the ones already in vars[0..n). */
static int param_vars(gc_var *vars, int n, int max, const cx_params *p)
{
    for (int i = 0; i < p->count; i++) {
        if (p->info[i].flags & CX_PARAM_FROZEN)
            continue;
        ck_assert_int_lt(n, max);
        vars[n++] = (gc_var){p->info[i].name, cx_param_value(p, i), cx_param_grad(p, i),
                             p->info[i].size};
    }
    return n;
}

/* The gradient buffer of tensor idx is all zeros. */
static void assert_grad_zero(const cx_params *p, int idx)
{
    const float *g = cx_param_grad(p, idx);
    for (size_t i = 0; i < p->info[idx].size; i++)
        ck_assert_msg(g[i] == 0.0f, "%s grad[%zu] = %g, want 0", p->info[idx].name, i,
                      (double)g[i]);
}

/* ---- parameter store ---------------------------------------------------------------------- */

START_TEST(params_layout_is_aligned_and_contiguous)
{
    /* A decayed weight (3, 5), a no-decay bias (7) and a frozen tensor (4), two state slots. */
    cx_params p;
    cx_err err;
    cx_params_init(&p);
    ck_assert_int_eq(cx_params_declare(&p, "w", 2, (int[]){3, 5}, 0, &err), 0);
    ck_assert_int_eq(cx_params_declare(&p, "b", 1, (int[]){7}, CX_PARAM_NO_DECAY, &err), 1);
    ck_assert_int_eq(cx_params_declare(&p, "f", 1, (int[]){4}, CX_PARAM_FROZEN, &err), 2);
    ck_assert_int_eq(cx_params_alloc(&p, 2, &err), CX_OK);
    ck_assert_uint_eq(p.info[0].offset, 0);
    ck_assert_uint_eq(p.info[1].offset % 16, 0);
    ck_assert_uint_eq(p.info[1].offset, 16);
    ck_assert_uint_eq(p.info[2].offset, 32);
    ck_assert_uint_eq(p.total, 48);
    ck_assert_int_eq(cx_params_find(&p, "b"), 1);
    ck_assert_int_eq(cx_params_find(&p, "nope"), -1);
    ck_assert_uint_eq(cx_params_trainable(&p), 22);
    ck_assert_ptr_eq(cx_param_state(&p, 1, 1), p.state + 48 + 16);
    ck_assert_int_eq(cx_params_declare(&p, "late", 1, (int[]){2}, 0, &err), -1);
    cx_params_free(&p);
    cx_params_init(&p);
    ck_assert_int_eq(cx_params_declare(&p, "x", 1, (int[]){2}, 0, &err), 0);
    ck_assert_int_eq(cx_params_declare(&p, "x", 1, (int[]){2}, 0, &err), -1);
    ck_assert_int_eq(cx_params_declare(&p, "y", 1, (int[]){0}, 0, &err), -1);
    cx_params_free(&p);
}
END_TEST

/* ---- MLP ---------------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_mlp m;
    int B;
    float *in;
    gc_proj proj;
} mlp_ctx;

static double mlp_f(void *v)
{
    mlp_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_mlp_forward(&c->m, &c->p, c->in, c->B));
}

/* Build an MLP in_dim -> hidden -> out_dim, check din and every parameter by finite
 * differences, and that parameter gradients add up over two backward passes. */
static void check_mlp(const int64_t *hidden, int nhidden, cx_act act, cx_norm norm,
                      uint64_t seed, const char *what)
{
    const int in_dim = 9, out_dim = 6;
    mlp_ctx c = {.B = 5};
    cx_err err = {0};
    cx_params_init(&c.p);
    must(cx_mlp_declare(&c.m, &c.p, "image", in_dim, hidden, nhidden, out_dim, act, norm, 0, &err),
         &err);
    must(cx_params_alloc(&c.p, 0, &err), &err);
    must(cx_mlp_alloc(&c.m, 8, &err), &err);
    cx_rng rng;
    cx_rng_seed(&rng, seed, 0);
    cx_mlp_init_params(&c.m, &c.p, &rng);
    /* Gains and shifts away from 1 and 0, so their gradients are exercised in general. */
    for (int i = 0; i < c.m.nlayers; i++)
        if (c.m.gain[i] >= 0) {
            gc_fill_normal(cx_param_value(&c.p, c.m.gain[i]), c.m.dims[i + 1], seed + 1, 0.3);
            gc_fill_normal(cx_param_value(&c.p, c.m.shift[i]), c.m.dims[i + 1], seed + 2, 0.3);
            for (int j = 0; j < c.m.dims[i + 1]; j++)
                cx_param_value(&c.p, c.m.gain[i])[j] += 1.0f;
        }
    c.in = gc_frand((size_t)c.B * in_dim, seed + 3, 1.5);
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * out_dim, seed + 4), 0);
    float *din = gc_fbuf((size_t)c.B * in_dim);
    cx_params_zero_grad(&c.p);
    mlp_f(&c);
    cx_mlp_backward(&c.m, &c.p, c.in, c.proj.r, din, c.B);
    gc_var vars[40] = {{"din", c.in, din, (size_t)c.B * in_dim}};
    int nv = param_vars(vars, 1, 40, &c.p);
    ck_assert_int_eq(nv, 1 + 2 * c.m.nlayers + (norm == CX_NORM_LAYER ? 2 * nhidden : 0));
    gc_opts o = gc_opts_default();
    o.max_coords = 24;
    o.h = 1e-3; /* LayerNorm couples the units: a larger step meets ReLU kinks on both sides */
    gc_report rep;
    gc_assert_passed(gc_check(mlp_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
    /* A second backward (din NULL) adds the same parameter gradients again. */
    float *g1 = gc_fbuf(c.p.total);
    memcpy(g1, c.p.grad, sizeof *g1 * c.p.total);
    mlp_f(&c);
    cx_mlp_backward(&c.m, &c.p, c.in, c.proj.r, NULL, c.B);
    for (size_t i = 0; i < c.p.total; i++)
        ck_assert_float_eq_tol(c.p.grad[i], 2 * g1[i], 1e-6f * (1 + fabsf(g1[i])));
    gc_proj_free(&c.proj);
    cx_mlp_free(&c.m);
    cx_params_free(&c.p);
    free(c.in), free(din), free(g1);
}

/* ---- DINO head ----------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_dino_head h;
    int B;
    float *in;
    gc_proj proj;
} dino_head_ctx;

static double dino_head_f(void *v)
{
    dino_head_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_dino_head_forward(&c->h, &c->p, c->in, c->B));
}

/* GELU MLP then L2 normalisation: unit output rows, din and every parameter by finite
 * differences (the normalisation's gradient is the part this file adds to cx_mlp's). */
START_TEST(dino_head_gradients)
{
    const int in_dim = 7, hidden = 10, out_dim = 5;
    dino_head_ctx c = {.B = 4};
    cx_err err = {0};
    cx_params_init(&c.p);
    must(cx_dino_head_declare(&c.h, &c.p, "dino.head", in_dim, hidden, out_dim, 0, &err), &err);
    must(cx_params_alloc(&c.p, 0, &err), &err);
    must(cx_dino_head_alloc(&c.h, 6, &err), &err);
    cx_rng rng;
    cx_rng_seed(&rng, 41, 0);
    cx_dino_head_init_params(&c.h, &c.p, &rng);
    c.in = gc_frand((size_t)c.B * in_dim, 42, 1.5);
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * out_dim, 43), 0);
    const float *y = cx_dino_head_forward(&c.h, &c.p, c.in, c.B);
    for (int i = 0; i < c.B; i++) {
        double ss = 0;
        for (int j = 0; j < out_dim; j++)
            ss += (double)y[i * out_dim + j] * y[i * out_dim + j];
        ck_assert(fabs(ss - 1) < 1e-5);
    }
    float *din = gc_fbuf((size_t)c.B * in_dim);
    cx_params_zero_grad(&c.p);
    dino_head_f(&c);
    cx_dino_head_backward(&c.h, &c.p, c.in, c.proj.r, din, c.B);
    gc_var vars[40] = {{"din", c.in, din, (size_t)c.B * in_dim}};
    int nv = param_vars(vars, 1, 40, &c.p);
    ck_assert_int_eq(nv, 1 + 2 * 3);
    gc_opts o = gc_opts_default();
    o.max_coords = 24;
    o.h = 1e-3;
    gc_report rep;
    gc_assert_passed(gc_check(dino_head_f, NULL, &c, vars, nv, &o, &rep), &rep, "dino head");
    gc_proj_free(&c.proj);
    cx_dino_head_free(&c.h);
    cx_params_free(&c.p);
    free(c.in), free(din);
}
END_TEST

START_TEST(mlp_linear_gradients)
{
    check_mlp(NULL, 0, CX_ACT_RELU, CX_NORM_NONE, 100, "linear");
}
END_TEST

START_TEST(mlp_relu_gradients)
{
    const int64_t hidden[] = {11, 7};
    check_mlp(hidden, 2, CX_ACT_RELU, CX_NORM_NONE, 110, "mlp relu");
}
END_TEST

START_TEST(mlp_gelu_gradients)
{
    const int64_t hidden[] = {11, 7};
    check_mlp(hidden, 2, CX_ACT_GELU, CX_NORM_NONE, 120, "mlp gelu");
}
END_TEST

START_TEST(mlp_layernorm_gradients)
{
    const int64_t hidden[] = {10, 8};
    check_mlp(hidden, 2, CX_ACT_RELU, CX_NORM_LAYER, 130, "mlp relu layernorm");
    check_mlp(hidden, 2, CX_ACT_GELU, CX_NORM_LAYER, 140, "mlp gelu layernorm");
    check_mlp(hidden, 1, CX_ACT_GELU, CX_NORM_LAYER, 150, "mlp one hidden layernorm");
}
END_TEST

/* ---- text tower --------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_text_tower t;
    int B;
    int32_t *tok;
    gc_proj proj;
} text_ctx;

static double text_f(void *v)
{
    text_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_text_tower_forward(&c->t, &c->p, c->tok, c->B));
}

static void check_text(const int64_t *hidden, int nhidden, cx_act act, const char *what)
{
    enum { V = 12, TD = 6, T = 5, OUT = 4, B = 4 };
    /* Token 0 is padding; bag 1 is all padding, bag 2 repeats one token, 9..11 are unused. */
    static const int32_t tok[B * T] = {3, 1, 0, 7, 0, /**/ 0, 0, 0, 0, 0, /**/ 5, 5, 5, 0, 5,
                                       /**/ 2, 8, 4, 6, 1};
    text_ctx c = {.B = B, .tok = (int32_t *)tok};
    cx_err err = {0};
    cx_params_init(&c.p);
    must(cx_text_tower_declare(&c.t, &c.p, "text", V, TD, T, hidden, nhidden, OUT, act, 0, &err),
         &err);
    must(cx_params_alloc(&c.p, 0, &err), &err);
    must(cx_text_tower_alloc(&c.t, B, &err), &err);
    cx_rng rng;
    cx_rng_seed(&rng, 200 + nhidden, 0);
    cx_text_tower_init_params(&c.t, &c.p, &rng);
    const float *table = cx_param_value(&c.p, c.t.table);
    for (int j = 0; j < TD; j++)
        ck_assert_float_eq(table[CX_TOKEN_PAD * TD + j], 0.0f); /* the padding row starts zero */
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)B * OUT, 201), 0);
    cx_params_zero_grad(&c.p);
    text_f(&c);
    cx_text_tower_backward(&c.t, &c.p, c.tok, c.proj.r, B);
    /* Rows of padding and of unused tokens get exactly nothing; used rows do. */
    const float *dt = cx_param_grad(&c.p, c.t.table);
    for (int v = 0; v < V; v++) {
        int used = v == 1 || v == 2 || (v >= 3 && v <= 8);
        double s = 0;
        for (int j = 0; j < TD; j++)
            s += fabs(dt[v * TD + j]);
        if (used)
            ck_assert_msg(s > 0, "row %d of a used token has no gradient", v);
        else
            ck_assert_msg(s == 0, "row %d (padding or unused) has gradient %g", v, s);
    }
    gc_var vars[16];
    int nv = param_vars(vars, 0, 16, &c.p);
    ck_assert_int_eq(nv, 1 + 2 * (nhidden + 1));
    gc_opts o = gc_opts_default();
    o.max_coords = 0; /* every coordinate: the whole table, padding row included */
    gc_report rep;
    gc_assert_passed(gc_check(text_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
    gc_proj_free(&c.proj);
    cx_text_tower_free(&c.t);
    cx_params_free(&c.p);
}

START_TEST(text_tower_linear_gradients)
{
    check_text(NULL, 0, CX_ACT_RELU, "text linear");
}
END_TEST

START_TEST(text_tower_mlp_gradients)
{
    const int64_t hidden[] = {7};
    check_text(hidden, 1, CX_ACT_GELU, "text mlp gelu");
    check_text(hidden, 1, CX_ACT_RELU, "text mlp relu");
}
END_TEST

/* ---- CNN tower ---------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_cnn n;
    int B;
    float *in;
    gc_proj proj;
} cnn_ctx;

static double cnn_f(void *v)
{
    cnn_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_cnn_forward(&c->n, &c->p, c->in, c->B));
}

static void cnn_build(cnn_ctx *c, int in_c, int in_h, int in_w, const int64_t *ch, int nch,
                      const int64_t *hidden, int nhidden, int out_dim, int max_batch,
                      uint64_t seed)
{
    cx_err err = {0};
    cx_params_init(&c->p);
    must(cx_cnn_declare(&c->n, &c->p, "image", in_c, in_h, in_w, ch, nch, hidden, nhidden,
                        out_dim, CX_ACT_RELU, CX_NORM_NONE, 0, &err),
         &err);
    must(cx_params_alloc(&c->p, 0, &err), &err);
    must(cx_cnn_alloc(&c->n, max_batch, &err), &err);
    cx_rng rng;
    cx_rng_seed(&rng, seed, 0);
    cx_cnn_init_params(&c->n, &c->p, &rng);
}

static void cnn_destroy(cnn_ctx *c)
{
    gc_proj_free(&c->proj);
    cx_cnn_free(&c->n);
    cx_params_free(&c->p);
    free(c->in);
}

static void check_cnn(int in_c, int in_h, int in_w, const int64_t *ch, int nch,
                      const int64_t *hidden, int nhidden, int out_dim, const char *what)
{
    cnn_ctx c = {.B = 3};
    cnn_build(&c, in_c, in_h, in_w, ch, nch, hidden, nhidden, out_dim, 4, 300 + in_c);
    size_t nin = (size_t)c.B * in_c * in_h * in_w, nout = (size_t)c.B * out_dim;
    c.in = gc_frand(nin, 301, 1.0);
    ck_assert_int_eq(gc_proj_init(&c.proj, nout, 302), 0);
    float *din = gc_fbuf(nin);
    cx_params_zero_grad(&c.p);
    cnn_f(&c);
    cx_cnn_backward(&c.n, &c.p, c.in, c.proj.r, din, c.B);
    gc_var vars[40] = {{"din", c.in, din, nin}};
    int nv = param_vars(vars, 1, 40, &c.p);
    ck_assert_int_eq(nv, 1 + 2 * nch + 2 * (nhidden + 1));
    gc_opts o = gc_opts_default();
    o.max_coords = 40;
    /* A conv weight moves every position of every map, so pooling switches and ReLU kinks lie
     * close on both sides; 1e-3 keeps them out of most steps and the float noise small. */
    o.h = 1e-3;
    gc_report rep;
    gc_assert_passed(gc_check(cnn_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
    /* Every tensor gets some gradient (no block is cut off). */
    for (int i = 0; i < c.p.count; i++) {
        double s = 0;
        for (size_t j = 0; j < c.p.info[i].size; j++)
            s += fabs(cx_param_grad(&c.p, i)[j]);
        ck_assert_msg(s > 0, "%s has no gradient", c.p.info[i].name);
    }
    cnn_destroy(&c);
    free(din);
}

START_TEST(cnn_gradients_one_channel_odd_size)
{
    /* 7x9 -> 3x4 -> 1x2, hidden layer before the output. */
    const int64_t ch[] = {3, 4}, hidden[] = {6};
    check_cnn(1, 7, 9, ch, 2, hidden, 1, 5, "cnn 1x7x9");
}
END_TEST

START_TEST(cnn_gradients_three_channels)
{
    /* 3x11x10 -> 5x5x5 -> 3x2x2, straight to the output. */
    const int64_t ch[] = {5, 3};
    check_cnn(3, 11, 10, ch, 2, NULL, 0, 4, "cnn 3x11x10");
    /* One block, odd both ways: 3x5x7 -> 4x2x3. */
    const int64_t one[] = {4}, hidden[] = {5};
    check_cnn(3, 5, 7, one, 1, hidden, 1, 3, "cnn 3x5x7");
}
END_TEST

/* The tower against a double reference in the order the spec states:
 * conv -> ReLU -> maxpool per block, then linear -> ReLU -> linear. */
START_TEST(cnn_forward_matches_naive_conv_relu_pool)
{
    const int in_c = 2, H = 9, W = 8, B = 3;
    const int64_t ch[] = {3, 4}, hidden[] = {5};
    cnn_ctx c = {.B = B};
    cnn_build(&c, in_c, H, W, ch, 2, hidden, 1, 6, 5, 400); /* B below the max batch */
    c.in = gc_frand((size_t)B * in_c * H * W, 401, 1.0);
    const float *out = cx_cnn_forward(&c.n, &c.p, c.in, B);
    ck_assert_int_eq(c.n.flat, 4 * 2 * 2);
    /* Reference. */
    double *x = gc_dbuf((size_t)B * in_c * H * W);
    for (size_t i = 0; i < (size_t)B * in_c * H * W; i++)
        x[i] = c.in[i];
    int cin = in_c, h = H, w = W;
    for (int blk = 0; blk < 2; blk++) {
        const cx_conv2d_dims *d = &c.n.conv[blk];
        ck_assert_int_eq(d->cin, cin);
        ck_assert_int_eq(d->h, h);
        ck_assert_int_eq(d->w, w);
        int cout = (int)ch[blk];
        const float *wt = cx_param_value(&c.p, c.n.w[blk]), *bs = cx_param_value(&c.p, c.n.b[blk]);
        double *y = gc_dbuf((size_t)B * cout * h * w);
        for (int s = 0; s < B; s++)
            for (int co = 0; co < cout; co++)
                for (int oh = 0; oh < h; oh++)
                    for (int ow = 0; ow < w; ow++) {
                        double acc = bs[co];
                        for (int ci = 0; ci < cin; ci++)
                            for (int ki = 0; ki < 3; ki++)
                                for (int kj = 0; kj < 3; kj++) {
                                    int ih = oh + ki - 1, iw = ow + kj - 1;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                                        continue;
                                    acc += x[(((size_t)s * cin + ci) * h + ih) * w + iw] *
                                           wt[((co * cin + ci) * 3 + ki) * 3 + kj];
                                }
                        y[(((size_t)s * cout + co) * h + oh) * w + ow] = acc > 0 ? acc : 0;
                    }
        free(x);
        x = gc_dbuf((size_t)B * cout * (h / 2) * (w / 2));
        gc_naive_maxpool2x2(x, NULL, y, B, cout, h, w);
        free(y);
        cin = cout, h /= 2, w /= 2;
    }
    /* MLP: flat (16) -> 5 -> ReLU -> 6. */
    const cx_mlp *m = &c.n.mlp;
    ck_assert_int_eq(m->nlayers, 2);
    double *a = x;
    for (int l = 0; l < 2; l++) {
        int K = m->dims[l], N = m->dims[l + 1];
        const float *wt = cx_param_value(&c.p, m->w[l]), *bs = cx_param_value(&c.p, m->b[l]);
        double *z = gc_dbuf((size_t)B * N);
        for (int s = 0; s < B; s++)
            for (int j = 0; j < N; j++) {
                double acc = bs[j];
                for (int k = 0; k < K; k++)
                    acc += a[s * K + k] * wt[j * K + k];
                z[s * N + j] = l == 0 && acc < 0 ? 0 : acc;
            }
        free(a);
        a = z;
    }
    gc_assert_close(out, a, (size_t)B * 6, 1e-5, 1e-6, "cnn out");
    free(a);
    cnn_destroy(&c);
}
END_TEST

START_TEST(cnn_declare_names_shapes_and_refusals)
{
    cx_params p;
    cx_cnn n;
    cx_err err = {0};
    const int64_t ch[] = {32, 64}, none[] = {0};
    cx_params_init(&p);
    must(cx_cnn_declare(&n, &p, "image", 1, 28, 28, ch, 2, NULL, 0, 256, CX_ACT_RELU,
                        CX_NORM_NONE, 0, &err),
         &err);
    ck_assert_int_eq(n.flat, 64 * 7 * 7);
    int i = cx_params_find(&p, "image.conv0.weight");
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(p.info[i].ndim, 4);
    ck_assert_int_eq(p.info[i].shape[0], 32);
    ck_assert_int_eq(p.info[i].shape[1], 1);
    ck_assert_int_eq(p.info[i].shape[2], 3);
    ck_assert_int_eq(p.info[i].shape[3], 3);
    i = cx_params_find(&p, "image.conv1.weight");
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(p.info[i].shape[0], 64);
    ck_assert_int_eq(p.info[i].shape[1], 32);
    i = cx_params_find(&p, "image.conv1.bias");
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(p.info[i].flags & CX_PARAM_NO_DECAY, CX_PARAM_NO_DECAY);
    i = cx_params_find(&p, "image.fc0.weight");
    ck_assert_int_ge(i, 0);
    ck_assert_int_eq(p.info[i].shape[0], 256);
    ck_assert_int_eq(p.info[i].shape[1], 3136);
    ck_assert_int_eq(p.count, 6);
    cx_cnn_free(&n);
    cx_params_free(&p);

    /* 28 -> 14 -> 7 -> 3 -> 1: a fifth block has nothing to pool. */
    const int64_t five[] = {4, 4, 4, 4, 4};
    cx_params_init(&p);
    ck_assert_int_eq(cx_cnn_declare(&n, &p, "image", 1, 28, 28, five, 5, NULL, 0, 8, CX_ACT_RELU,
                                    CX_NORM_NONE, 0, &err),
                     CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "image: conv4: a 1x1 map cannot be pooled") != NULL, "%s",
                  err.msg);
    ck_assert_msg(strstr(err.msg, "at most 4 convolution blocks") != NULL, "%s", err.msg);
    cx_cnn_free(&n);
    cx_params_free(&p);
    cx_params_init(&p);
    must(cx_cnn_declare(&n, &p, "image", 1, 28, 28, five, 4, NULL, 0, 8, CX_ACT_RELU,
                        CX_NORM_NONE, 0, &err),
         &err);
    ck_assert_int_eq(n.flat, 4);
    cx_cnn_free(&n);
    cx_params_free(&p);

    /* An image one pixel high, a zero channel count, no blocks, too many channels. */
    struct {
        int c, h, w, nb;
        const int64_t *ch;
        const char *msg;
    } bad[] = {
        {1, 1, 5, 1, ch, "a 1x5 map cannot be pooled"},
        {3, 9, 9, 1, none, "0 channels is out of range"},
        {1, 28, 28, 0, ch, "1 to 16 convolution blocks"},
        {1, 28, 28, 1, (const int64_t[]){5000}, "5000 channels is out of range"},
        {0, 28, 28, 1, ch, "input shape 0x28x28"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        cx_params_init(&p);
        cx_err_clear(&err);
        ck_assert_int_eq(cx_cnn_declare(&n, &p, "image", bad[k].c, bad[k].h, bad[k].w, bad[k].ch,
                                        bad[k].nb, NULL, 0, 8, CX_ACT_RELU, CX_NORM_NONE, 0,
                                        &err),
                         CX_EUSAGE);
        ck_assert_msg(strstr(err.msg, bad[k].msg) != NULL, "case %zu: %s", k, err.msg);
        cx_cnn_free(&n);
        cx_params_free(&p);
    }
}
END_TEST

START_TEST(cnn_init_like_torch)
{
    cnn_ctx a = {0}, b = {0};
    const int64_t ch[] = {16, 8};
    cnn_build(&a, 3, 8, 8, ch, 2, NULL, 0, 10, 2, 500);
    cnn_build(&b, 3, 8, 8, ch, 2, NULL, 0, 10, 2, 500);
    ck_assert_mem_eq(a.p.value, b.p.value, sizeof(float) * a.p.total); /* same seed, same values */
    for (int blk = 0; blk < 2; blk++) {
        double bound = 1.0 / sqrt(9.0 * a.n.conv[blk].cin);
        int idx[2] = {a.n.w[blk], a.n.b[blk]};
        for (int t = 0; t < 2; t++) {
            const float *v = cx_param_value(&a.p, idx[t]);
            size_t n = a.p.info[idx[t]].size;
            double mx = 0, mean = 0;
            for (size_t i = 0; i < n; i++) {
                ck_assert_msg(fabs(v[i]) <= bound, "%s[%zu] = %g beyond %g",
                              a.p.info[idx[t]].name, i, (double)v[i], bound);
                mx = fmax(mx, fabs(v[i]));
                mean += v[i];
            }
            mean /= (double)n;
            if (n >= 400) { /* the weights: spread over the whole interval, centred */
                ck_assert_double_gt(mx, 0.95 * bound);
                ck_assert_double_lt(fabs(mean), 0.15 * bound);
            }
        }
    }
    /* The MLP after the blocks as cx_mlp: bound 1/sqrt(flat). */
    const float *fw = cx_param_value(&a.p, a.n.mlp.w[0]);
    double fb = 1.0 / sqrt((double)a.n.flat);
    for (size_t i = 0; i < a.p.info[a.n.mlp.w[0]].size; i++)
        ck_assert(fabs(fw[i]) <= fb);
    a.in = b.in = NULL;
    cnn_destroy(&a);
    cnn_destroy(&b);
}
END_TEST

START_TEST(cnn_backward_adds_and_skips_din)
{
    cnn_ctx c = {.B = 2};
    const int64_t ch[] = {3, 2};
    cnn_build(&c, 2, 6, 7, ch, 2, NULL, 0, 3, 2, 600);
    size_t nin = (size_t)c.B * 2 * 6 * 7;
    c.in = gc_frand(nin, 601, 1.0);
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * 3, 602), 0);
    float *din = gc_fbuf(nin), *g1 = gc_fbuf(c.p.total);
    cx_params_zero_grad(&c.p);
    cnn_f(&c);
    gc_fill_nan(din, nin);
    cx_cnn_backward(&c.n, &c.p, c.in, c.proj.r, din, c.B);
    for (size_t i = 0; i < nin; i++)
        ck_assert(isfinite(din[i])); /* overwritten */
    memcpy(g1, c.p.grad, sizeof *g1 * c.p.total);
    cx_cnn_backward(&c.n, &c.p, c.in, c.proj.r, NULL, c.B);
    for (size_t i = 0; i < c.p.total; i++)
        ck_assert_float_eq_tol(c.p.grad[i], 2 * g1[i], 1e-6f * (1 + fabsf(g1[i])));
    cnn_destroy(&c);
    free(din), free(g1);
}
END_TEST

/* Forward and backward of a 28x28 tower; hashes of the output, din and all gradients. */
static void cnn_run_hashes(uint64_t *h)
{
    cnn_ctx c = {.B = 48};
    const int64_t ch[] = {8, 16}, hidden[] = {64};
    cnn_build(&c, 1, 28, 28, ch, 2, hidden, 1, 32, 48, 700);
    size_t nin = (size_t)c.B * 784;
    c.in = gc_frand(nin, 701, 1.0);
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * 32, 702), 0);
    float *din = gc_fbuf(nin);
    cx_params_zero_grad(&c.p);
    const float *out = cx_cnn_forward(&c.n, &c.p, c.in, c.B);
    h[0] = gc_hash_bytes(out, sizeof *out * (size_t)c.B * 32);
    cx_cnn_backward(&c.n, &c.p, c.in, c.proj.r, din, c.B);
    h[1] = gc_hash_bytes(din, sizeof *din * nin);
    h[2] = gc_hash_bytes(c.p.grad, sizeof *c.p.grad * c.p.total);
    cnn_destroy(&c);
    free(din);
}

START_TEST(cnn_bit_identical_on_two_threads)
{
    uint64_t a[3], b[3];
    ck_assert_int_eq(cx_threads_set(2), 2);
    cnn_run_hashes(a);
    cnn_run_hashes(b);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(a[i] == b[i], "output %d differs between two runs on 2 threads", i);
    cx_threads_set(1);
}
END_TEST

/* ---- heads -------------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_head h;
    int B, K;
    const int32_t *classes;
    float *feat;
    gc_proj proj;
} head_ctx;

static double head_f(void *v)
{
    head_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_head_forward(&c->h, &c->p, c->feat, c->B, c->classes, c->K));
}

/* A head over C = 7 classes of D = 6 features, scored on all classes (classes NULL) or a
 * subset: dfeat and the trainable tensors against finite differences; frozen weights and the
 * rows outside the subset get exactly no gradient. */
static void check_head(cx_head_kind kind, const int32_t *classes, int K, unsigned flags,
                       unsigned scale_flags, const char *what)
{
    enum { C = 7, D = 6 };
    head_ctx c = {.B = 5, .K = K, .classes = classes};
    cx_err err = {0};
    cx_params_init(&c.p);
    must(cx_head_declare(&c.h, &c.p, "head", kind, C, D, flags, scale_flags, &err), &err);
    must(cx_params_alloc(&c.p, 0, &err), &err);
    must(cx_head_alloc(&c.h, 8, &err), &err);
    cx_rng rng;
    cx_rng_seed(&rng, 800 + kind, 0);
    cx_head_init_params(&c.h, &c.p, &rng, 4.0);
    c.feat = gc_frand((size_t)c.B * D, 801, 1.0);
    int nk = classes ? K : C;
    ck_assert_int_eq(gc_proj_init(&c.proj, (size_t)c.B * nk, 802), 0);
    float *dfeat = gc_fbuf((size_t)c.B * D);
    cx_params_zero_grad(&c.p);
    head_f(&c);
    ck_assert_int_eq(c.h.K, nk);
    cx_head_backward(&c.h, &c.p, c.feat, c.proj.r, dfeat, c.B);
    gc_var vars[8] = {{"dfeat", c.feat, dfeat, (size_t)c.B * D}};
    int nv = param_vars(vars, 1, 8, &c.p);
    gc_opts o = gc_opts_default();
    o.max_coords = 0; /* all: rows outside the subset must have zero numeric gradient too */
    o.max_skip_frac = 0.0;
    if (kind == CX_HEAD_COSINE)
        o.h = 3e-3;
    gc_report rep;
    gc_assert_passed(gc_check(head_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
    /* Exact zeros: frozen weights (and bias), and unscored rows of a subset. A frozen scale
     * may receive a gradient: the optimiser skips frozen tensors whatever they hold. */
    if (flags & CX_PARAM_FROZEN) {
        assert_grad_zero(&c.p, c.h.w);
        if (c.h.b >= 0)
            assert_grad_zero(&c.p, c.h.b);
    }
    if (classes && !(flags & CX_PARAM_FROZEN)) {
        const float *dw = cx_param_grad(&c.p, c.h.w);
        for (int r = 0, k = 0; r < C; r++) {
            int scored = k < K && classes[k] == r;
            k += scored;
            double s = 0;
            for (int j = 0; j < D; j++)
                s += fabs(dw[r * D + j]);
            ck_assert_msg(scored ? s > 0 : s == 0, "%s: row %d (%s) gradient sum %g", what, r,
                          scored ? "scored" : "not scored", s);
        }
    }
    if (kind == CX_HEAD_COSINE && !(scale_flags & CX_PARAM_FROZEN))
        ck_assert_float_ne(cx_param_grad(&c.p, c.h.scale)[0], 0.0f);
    gc_proj_free(&c.proj);
    cx_head_free(&c.h);
    cx_params_free(&c.p);
    free(c.feat), free(dfeat);
}

static const int32_t subset[] = {1, 4, 5};

START_TEST(head_linear_all_classes)
{
    check_head(CX_HEAD_LINEAR, NULL, 0, 0, 0, "linear head");
}
END_TEST

START_TEST(head_linear_class_subset)
{
    check_head(CX_HEAD_LINEAR, subset, 3, 0, 0, "linear head subset");
}
END_TEST

START_TEST(head_cosine_all_classes_and_scale)
{
    check_head(CX_HEAD_COSINE, NULL, 0, 0, 0, "cosine head");
}
END_TEST

START_TEST(head_cosine_class_subset)
{
    check_head(CX_HEAD_COSINE, subset, 3, 0, 0, "cosine head subset");
}
END_TEST

START_TEST(head_frozen_weights_input_gradient)
{
    check_head(CX_HEAD_LINEAR, NULL, 0, CX_PARAM_FROZEN, 0, "frozen linear head");
    check_head(CX_HEAD_LINEAR, subset, 3, CX_PARAM_FROZEN, 0, "frozen linear head subset");
    /* A frozen text head with a learnable scale, and one with a fixed scale (LDAM). */
    check_head(CX_HEAD_COSINE, NULL, 0, CX_PARAM_FROZEN, 0, "frozen cosine head");
    check_head(CX_HEAD_COSINE, subset, 3, CX_PARAM_FROZEN, CX_PARAM_FROZEN,
               "frozen cosine head, fixed scale");
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, params_layout_is_aligned_and_contiguous);
    suite_add_tcase(s, tc);

    tc = tcase_create("mlp");
    tcase_add_test(tc, mlp_linear_gradients);
    tcase_add_test(tc, mlp_relu_gradients);
    tcase_add_test(tc, mlp_gelu_gradients);
    tcase_add_test(tc, mlp_layernorm_gradients);
    tcase_add_test(tc, dino_head_gradients);
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_test(tc, text_tower_linear_gradients);
    tcase_add_test(tc, text_tower_mlp_gradients);
    suite_add_tcase(s, tc);

    tc = tcase_create("cnn");
    tcase_add_test(tc, cnn_gradients_one_channel_odd_size);
    tcase_add_test(tc, cnn_gradients_three_channels);
    tcase_add_test(tc, cnn_forward_matches_naive_conv_relu_pool);
    tcase_add_test(tc, cnn_declare_names_shapes_and_refusals);
    tcase_add_test(tc, cnn_init_like_torch);
    tcase_add_test(tc, cnn_backward_adds_and_skips_din);
    suite_add_tcase(s, tc);

    tc = tcase_create("heads");
    tcase_add_test(tc, head_linear_all_classes);
    tcase_add_test(tc, head_linear_class_subset);
    tcase_add_test(tc, head_cosine_all_classes_and_scale);
    tcase_add_test(tc, head_cosine_class_subset);
    tcase_add_test(tc, head_frozen_weights_input_gradient);
    suite_add_tcase(s, tc);

    tc = tcase_create("determinism");
    tcase_add_test(tc, cnn_bit_identical_on_two_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
