/* Model pieces: the convolution and pooling ops (naive double references, finite differences,
 * PyTorch fixtures), and finite-difference gradient checks of every tower (MLP, text tower,
 * CNN) and head (linear, cosine, class subsets, frozen), with the CNN's thread determinism. */
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
#include "lib/model/mlp.h"
#include "lib/model/params.h"
#include "lib/model/text_tower.h"
#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"
#include "lib/ops/ops_internal.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

/* |got - want| <= atol + rtol |want| elementwise, naming the first offender. */
static void assert_close(const float *got, const double *want, size_t n, double rtol,
                         double atol, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        ck_assert_msg(fabs(g - w) <= atol + rtol * fabs(w), "%s[%zu]: got %.9g, want %.9g", what,
                      i, g, w);
    }
}

static void assert_gc(int rc, const gc_report *rep, const char *what)
{
    ck_assert_msg(rc == 0, "%s: %s", what, rep->msg);
    ck_assert_msg(rep->checked > 0, "%s: nothing checked", what);
}

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

static uint64_t hash_bytes(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- naive references (double) ------------------------------------------------------------ */

static double at_in(const float *in, const cx_conv2d_dims *d, int s, int ci, int ih, int iw)
{
    if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w)
        return 0.0;
    return in[(((size_t)s * d->cin + ci) * d->h + ih) * d->w + iw];
}

static void naive_conv(double *out, const float *in, const float *w, const float *b, int B,
                       const cx_conv2d_dims *d)
{
    int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d), k = d->k;
    for (int s = 0; s < B; s++)
        for (int co = 0; co < d->cout; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < d->cin; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++)
                                acc += at_in(in, d, s, ci, oh + ki - d->pad, ow + kj - d->pad) *
                                       w[((co * d->cin + ci) * k + ki) * k + kj];
                    out[(((size_t)s * d->cout + co) * Ho + oh) * Wo + ow] = acc;
                }
}

/* din, dw, db of sum(dout .* conv(in, w) + b); din and dw are (re)set, not added. */
static void naive_conv_backward(double *din, double *dw, double *db, const float *dout,
                                const float *in, const float *w, int B, const cx_conv2d_dims *d)
{
    int Ho = cx_conv2d_out_h(d), Wo = cx_conv2d_out_w(d), k = d->k;
    memset(din, 0, sizeof *din * (size_t)B * d->cin * d->h * d->w);
    memset(dw, 0, sizeof *dw * (size_t)d->cout * d->cin * k * k);
    memset(db, 0, sizeof *db * (size_t)d->cout);
    for (int s = 0; s < B; s++)
        for (int co = 0; co < d->cout; co++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    double g = dout[(((size_t)s * d->cout + co) * Ho + oh) * Wo + ow];
                    db[co] += g;
                    for (int ci = 0; ci < d->cin; ci++)
                        for (int ki = 0; ki < k; ki++)
                            for (int kj = 0; kj < k; kj++) {
                                int ih = oh + ki - d->pad, iw = ow + kj - d->pad;
                                size_t wi = ((size_t)(co * d->cin + ci) * k + ki) * k + kj;
                                dw[wi] += g * at_in(in, d, s, ci, ih, iw);
                                if (ih >= 0 && ih < d->h && iw >= 0 && iw < d->w)
                                    din[(((size_t)s * d->cin + ci) * d->h + ih) * d->w + iw] +=
                                        g * w[wi];
                            }
                }
}

/* 2x2 stride-2 max pooling, the first maximum winning; idx as the op's. Input in double. */
static void naive_pool(double *out, int32_t *idx, const double *in, int B, int C, int H, int W)
{
    int Ho = H / 2, Wo = W / 2;
    for (int t = 0; t < B * C; t++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                double m = -INFINITY;
                int32_t at = -1;
                for (int a = 0; a < 2; a++)
                    for (int c = 0; c < 2; c++) {
                        int ih = 2 * oh + a, iw = 2 * ow + c;
                        double v = in[(size_t)t * H * W + (size_t)ih * W + iw];
                        if (at < 0 || v > m) {
                            m = v;
                            at = ih * W + iw;
                        }
                    }
                out[(size_t)t * Ho * Wo + (size_t)oh * Wo + ow] = m;
                if (idx)
                    idx[(size_t)t * Ho * Wo + (size_t)oh * Wo + ow] = at;
            }
}

/* ---- convolution -------------------------------------------------------------------------- */

/* Odd sizes, 1 and 3 input channels, kernels 1, 3 and 5, padding 0, 'same' and more than k-1. */
static const cx_conv2d_dims conv_shapes[] = {
    {.cin = 1, .h = 7, .w = 9, .cout = 4, .k = 3, .pad = 1},
    {.cin = 3, .h = 7, .w = 9, .cout = 5, .k = 3, .pad = 1},
    {.cin = 3, .h = 6, .w = 5, .cout = 2, .k = 3, .pad = 0},
    {.cin = 2, .h = 8, .w = 7, .cout = 3, .k = 5, .pad = 2},
    {.cin = 2, .h = 4, .w = 3, .cout = 2, .k = 3, .pad = 2},
    {.cin = 3, .h = 5, .w = 6, .cout = 4, .k = 1, .pad = 0},
};
#define NCONV_SHAPES (int)(sizeof conv_shapes / sizeof conv_shapes[0])

static size_t conv_in_n(const cx_conv2d_dims *d, int B)
{
    return (size_t)B * d->cin * d->h * d->w;
}

static size_t conv_out_n(const cx_conv2d_dims *d, int B)
{
    return (size_t)B * d->cout * cx_conv2d_out_h(d) * cx_conv2d_out_w(d);
}

static size_t conv_w_n(const cx_conv2d_dims *d)
{
    return (size_t)d->cout * d->cin * d->k * d->k;
}

START_TEST(conv2d_forward_matches_naive)
{
    const int batches[] = {1, 3, 17};
    for (int si = 0; si < NCONV_SHAPES; si++)
        for (int bi = 0; bi < 3; bi++) {
            const cx_conv2d_dims *d = &conv_shapes[si];
            int B = batches[bi];
            float *in = gc_frand(conv_in_n(d, B), 10 + si, 1.0);
            float *w = gc_frand(conv_w_n(d), 11, 0.4);
            float *b = gc_frand(d->cout, 12, 0.5), *out = gc_fbuf(conv_out_n(d, B));
            float *scratch = gc_fbuf(cx_conv2d_scratch_floats(d, B));
            double *ref = gc_dbuf(conv_out_n(d, B));
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bb = with_bias ? b : NULL;
                fill_nan(out, conv_out_n(d, B)); /* out is overwritten, whatever it held */
                cx_conv2d_forward(out, scratch, in, w, bb, B, d);
                naive_conv(ref, in, w, bb, B, d);
                assert_close(out, ref, conv_out_n(d, B), 1e-5, 1e-5, "conv out");
            }
            free(in), free(w), free(b), free(out), free(scratch), free(ref);
        }
}
END_TEST

START_TEST(conv2d_backward_matches_naive_adds_and_skips)
{
    for (int si = 0; si < NCONV_SHAPES; si++) {
        const cx_conv2d_dims *d = &conv_shapes[si];
        const int B = 3;
        size_t nin = conv_in_n(d, B), nout = conv_out_n(d, B), nw = conv_w_n(d);
        float *in = gc_frand(nin, 20 + si, 1.0), *w = gc_frand(nw, 21, 0.4);
        float *dout = gc_frand(nout, 22, 1.0);
        float *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(d->cout);
        float *scratch = gc_fbuf(cx_conv2d_scratch_floats(d, B));
        double *rin = gc_dbuf(nin), *rw = gc_dbuf(nw), *rb = gc_dbuf(d->cout);
        naive_conv_backward(rin, rw, rb, dout, in, w, B, d);
        /* Parameter gradients are added to what the buffers hold; din is overwritten. */
        for (size_t i = 0; i < nw; i++)
            dw[i] = 0.5f;
        for (int c = 0; c < d->cout; c++)
            db[c] = -1.0f;
        fill_nan(din, nin);
        fill_nan(scratch, cx_conv2d_scratch_floats(d, B)); /* scratch needs no initialisation */
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, d);
        assert_close(din, rin, nin, 1e-5, 1e-5, "conv din");
        for (size_t i = 0; i < nw; i++)
            rw[i] += 0.5;
        for (int c = 0; c < d->cout; c++)
            rb[c] -= 1.0;
        assert_close(dw, rw, nw, 1e-5, 1e-5, "conv dw");
        assert_close(db, rb, d->cout, 1e-5, 1e-5, "conv db");
        /* NULL din and db: only the weight gradient, added once more. */
        float *dw2 = gc_fbuf(nw);
        memcpy(dw2, dw, sizeof *dw * nw);
        cx_conv2d_backward(NULL, dw2, NULL, scratch, dout, in, w, B, d);
        for (size_t i = 0; i < nw; i++)
            ck_assert_double_eq_tol(dw2[i], 2.0 * rw[i] - 0.5, 1e-5 * (1 + fabs(rw[i])));
        free(in), free(w), free(dout), free(din), free(dw), free(db), free(scratch), free(rin);
        free(rw), free(rb), free(dw2);
    }
}
END_TEST

typedef struct {
    cx_conv2d_dims d;
    int B;
    float *in, *w, *b, *out, *scratch;
    gc_proj proj;
} conv_ctx;

static double conv_f(void *p)
{
    conv_ctx *c = p;
    cx_conv2d_forward(c->out, c->scratch, c->in, c->w, c->b, c->B, &c->d);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(conv2d_gradients_match_finite_differences)
{
    const int pick[] = {0, 1, 3, 4};
    for (int pi = 0; pi < 4; pi++) {
        conv_ctx c = {.d = conv_shapes[pick[pi]], .B = 2};
        size_t nin = conv_in_n(&c.d, c.B), nout = conv_out_n(&c.d, c.B), nw = conv_w_n(&c.d);
        c.in = gc_frand(nin, 30 + pi, 1.0);
        c.w = gc_frand(nw, 31, 0.4);
        c.b = gc_frand(c.d.cout, 32, 0.5);
        c.out = gc_fbuf(nout);
        c.scratch = gc_fbuf(cx_conv2d_scratch_floats(&c.d, c.B));
        ck_assert_int_eq(gc_proj_init(&c.proj, nout, 33 + pi), 0);
        float *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(c.d.cout);
        conv_f(&c);
        cx_conv2d_backward(din, dw, db, c.scratch, c.proj.r, c.in, c.w, c.B, &c.d);
        gc_var vars[] = {{"din", c.in, din, nin}, {"dw", c.w, dw, nw}, {"db", c.b, db, c.d.cout}};
        gc_opts o = gc_opts_default();
        o.max_coords = 48;
        o.max_skip_frac = 0.0; /* linear: nothing to skip */
        gc_report rep;
        assert_gc(gc_check(conv_f, NULL, &c, vars, 3, &o, &rep), &rep, "conv2d");
        gc_proj_free(&c.proj);
        free(c.in), free(c.w), free(c.b), free(c.out), free(c.scratch), free(din), free(dw);
        free(db);
    }
}
END_TEST

START_TEST(conv2d_many_chunks_match_naive)
{
    /* One sample needs (16*9 + 8) * 48 * 48 = 350,208 floats of scratch: two samples per chunk,
     * so a batch of 5 runs as chunks of 2, 2 and 1. */
    const cx_conv2d_dims d = {.cin = 16, .h = 48, .w = 48, .cout = 8, .k = 3, .pad = 1};
    const int B = 5;
    size_t per = (size_t)(16 * 9 + 8) * 48 * 48;
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&d, B), 2 * per);
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&d, 1), per);
    size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
    float *in = gc_frand(nin, 40, 1.0), *w = gc_frand(nw, 41, 0.1), *b = gc_frand(d.cout, 42, 0.5);
    float *out = gc_fbuf(nout), *dout = gc_frand(nout, 43, 1.0), *din = gc_fbuf(nin);
    float *dw = gc_fbuf(nw);
    float *db = gc_fbuf(d.cout), *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
    double *ref = gc_dbuf(nout), *rin = gc_dbuf(nin), *rw = gc_dbuf(nw), *rb = gc_dbuf(d.cout);
    cx_conv2d_forward(out, scratch, in, w, b, B, &d);
    naive_conv(ref, in, w, b, B, &d);
    assert_close(out, ref, nout, 1e-5, 1e-5, "chunked conv out");
    cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
    naive_conv_backward(rin, rw, rb, dout, in, w, B, &d);
    assert_close(din, rin, nin, 1e-5, 1e-5, "chunked conv din");
    assert_close(dw, rw, nw, 1e-5, 2e-4, "chunked conv dw"); /* sums of 11,520 products */
    assert_close(db, rb, d.cout, 1e-5, 1e-4, "chunked conv db");
    free(in), free(w), free(b), free(out), free(dout), free(din), free(dw), free(db), free(scratch);
    free(ref), free(rin), free(rw), free(rb);
}
END_TEST

START_TEST(conv2d_scratch_bound)
{
    /* The training shapes (batch 256 of 28x28, channels [32, 64]) stay within the bound. */
    const cx_conv2d_dims c1 = {.cin = 1, .h = 28, .w = 28, .cout = 32, .k = 3, .pad = 1};
    const cx_conv2d_dims c2 = {.cin = 32, .h = 14, .w = 14, .cout = 64, .k = 3, .pad = 1};
    size_t s1 = cx_conv2d_scratch_floats(&c1, 256), s2 = cx_conv2d_scratch_floats(&c2, 256);
    ck_assert_uint_le(s1, CX_CONV2D_CHUNK_FLOATS);
    ck_assert_uint_le(s2, CX_CONV2D_CHUNK_FLOATS);
    /* ...and fill most of it (chunks are not needlessly small): 32 and 15 samples. */
    ck_assert_uint_eq(s1, 32 * (size_t)(9 + 32) * 784);
    ck_assert_uint_eq(s2, 15 * (size_t)(288 + 64) * 196);
    /* A small batch needs only its own samples. */
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&c1, 3), 3 * (size_t)(9 + 32) * 784);
    /* A kernel larger than the padded input: no output, no scratch, and a zero input
     * gradient (din is still overwritten). */
    const cx_conv2d_dims none = {.cin = 2, .h = 2, .w = 2, .cout = 3, .k = 5, .pad = 0};
    ck_assert_int_le(cx_conv2d_out_h(&none), 0);
    ck_assert_uint_eq(cx_conv2d_scratch_floats(&none, 4), 0);
    float x[16], dx[16], wt[150], dwt[150] = {0}, dbias[3] = {0}, one = 0.0f, dummy = 1.0f;
    for (int i = 0; i < 16; i++)
        x[i] = 1.0f, dx[i] = NAN;
    for (int i = 0; i < 150; i++)
        wt[i] = 1.0f;
    cx_conv2d_forward(&dummy, &one, x, wt, NULL, 2, &none);
    ck_assert_float_eq(dummy, 1.0f); /* nothing written */
    cx_conv2d_backward(dx, dwt, dbias, &one, &dummy, x, wt, 2, &none);
    for (int i = 0; i < 16; i++)
        ck_assert_float_eq(dx[i], 0.0f);
    for (int i = 0; i < 150; i++)
        ck_assert_float_eq(dwt[i], 0.0f);
}
END_TEST

static void load(fx_file *f, const char *name)
{
    char path[4096];
    fx_path(path, sizeof path, name);
    cx_err err = {0};
    ck_assert_msg(fx_load(f, path, &err) == CX_OK, "%s", err.msg);
}

static const fx_tensor *need(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    char full[FX_NAME_MAX * 2];
    snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "_" : "", name);
    const fx_tensor *t = fx_get(f, full);
    ck_assert_msg(t != NULL, "fixture has no tensor '%s'", full);
    if (n != (size_t)-1)
        ck_assert_msg(t->n == n, "tensor '%s' has %zu values, want %zu", full, t->n, n);
    return t;
}

static float *fx_floats(const fx_file *f, const char *prefix, const char *name, size_t n)
{
    const fx_tensor *t = need(f, prefix, name, n);
    float *p = gc_fbuf(t->n);
    fx_to_float(t, p);
    return p;
}

/* |got - torch| <= 2e-6 max(1, max |torch|), as tests/check_reference.c. */
static void assert_torch(const float *got, const fx_file *f, const char *prefix,
                         const char *name, size_t n)
{
    const fx_tensor *t = need(f, prefix, name, n);
    double scale = 1.0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(t->v[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(got[i] - t->v[i]) <= 2e-6 * scale, "%s_%s[%zu]: got %.9g, torch %.9g",
                      prefix, name, i, (double)got[i], t->v[i]);
}

START_TEST(conv2d_matches_pytorch)
{
    fx_file f;
    load(&f, "conv2d.fx");
    const char *cases[] = {"a", "b", "c", "d", "e"};
    for (int ci = 0; ci < 5; ci++) {
        const char *pf = cases[ci];
        const fx_tensor *dims = need(&f, pf, "dims", 6);
        cx_conv2d_dims d = {.cin = (int)dims->v[0], .h = (int)dims->v[1], .w = (int)dims->v[2],
                            .cout = (int)dims->v[3], .k = (int)dims->v[4], .pad = (int)dims->v[5]};
        const fx_tensor *tin = need(&f, pf, "in", (size_t)-1);
        ck_assert_int_eq(tin->ndim, 4);
        int B = (int)tin->dims[0];
        size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
        float *in = fx_floats(&f, pf, "in", nin), *w = fx_floats(&f, pf, "w", nw);
        float *b = fx_floats(&f, pf, "b", d.cout), *dout = fx_floats(&f, pf, "dout", nout);
        float *out = gc_fbuf(nout), *din = gc_fbuf(nin), *dw = gc_fbuf(nw), *db = gc_fbuf(d.cout);
        float *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
        cx_conv2d_forward(out, scratch, in, w, b, B, &d);
        assert_torch(out, &f, pf, "out", nout);
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
        assert_torch(din, &f, pf, "din", nin);
        assert_torch(dw, &f, pf, "dw", nw);
        assert_torch(db, &f, pf, "db", d.cout);
        free(in), free(w), free(b), free(dout), free(out), free(din), free(dw), free(db);
        free(scratch);
    }
    fx_free(&f);
}
END_TEST

/* ---- max pooling -------------------------------------------------------------------------- */

START_TEST(maxpool2d_forward_backward_odd_sizes_ties_nan)
{
    const int sizes[][2] = {{7, 9}, {8, 8}, {3, 2}, {2, 5}, {1, 4}};
    for (int si = 0; si < 5; si++) {
        const int B = 3, C = 2, H = sizes[si][0], W = sizes[si][1], Ho = H / 2, Wo = W / 2;
        size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * Ho * Wo;
        float *in = gc_frand(nin, 50 + si, 1.0), *out = gc_fbuf(nout), *din = gc_fbuf(nin);
        float *dout = gc_frand(nout, 51, 1.0);
        int32_t *idx = calloc(nout ? nout : 1, sizeof *idx);
        double *din_in = gc_dbuf(nin), *ref = gc_dbuf(nout);
        int32_t *ridx = calloc(nout ? nout : 1, sizeof *ridx);
        if (H >= 2 && W >= 4) {
            in[0] = in[1] = in[W] = in[W + 1] = 0.75f; /* four equal: the first wins */
            in[2] = in[3] = 2.5f;                      /* a tie on the top row */
        }
        for (size_t i = 0; i < nin; i++)
            din_in[i] = in[i];
        cx_maxpool2d_forward(out, idx, in, B, C, H, W);
        naive_pool(ref, ridx, din_in, B, C, H, W);
        assert_close(out, ref, nout, 0, 0, "pool out");
        for (size_t i = 0; i < nout; i++)
            ck_assert_int_eq(idx[i], ridx[i]);
        if (H >= 2 && W >= 4) {
            ck_assert_int_eq(idx[0], 0);
            ck_assert_int_eq(idx[1], 2);
        }
        /* Backward: dout at each maximum, zero elsewhere (the dropped row and column too). */
        fill_nan(din, nin);
        cx_maxpool2d_backward(din, dout, idx, B, C, H, W);
        for (size_t t = 0; t < (size_t)B * C; t++)
            for (int i = 0; i < H * W; i++) {
                double want = 0.0;
                for (int j = 0; j < Ho * Wo; j++)
                    if (ridx[t * Ho * Wo + j] == i)
                        want = dout[t * Ho * Wo + j];
                ck_assert_msg(din[t * H * W + i] == (float)want, "pool din[%zu][%d] = %g, want %g",
                              t, i, (double)din[t * H * W + i], want);
            }
        free(in), free(out), free(din), free(dout), free(idx), free(din_in), free(ref), free(ridx);
    }
    /* NaN wins its window (the last NaN, as torch), so divergence propagates. */
    float x[8] = {1.0f, NAN, 3.0f, NAN, 5.0f, 6.0f, 7.0f, 8.0f}, o[2];
    int32_t ix[2];
    cx_maxpool2d_forward(o, ix, x, 1, 1, 2, 4);
    ck_assert(isnan(o[0]));
    ck_assert_int_eq(ix[0], 1);
    ck_assert(isnan(o[1]));
    ck_assert_int_eq(ix[1], 3);
    x[1] = x[3] = 0.0f;
    x[2] = NAN;
    x[6] = NAN;
    cx_maxpool2d_forward(o, ix, x, 1, 1, 2, 4);
    ck_assert_int_eq(ix[1], 6); /* the last of two NaN in the window */
    ck_assert_float_eq(o[0], 6.0f);
    ck_assert_int_eq(ix[0], 5);
}
END_TEST

START_TEST(maxpool2d_matches_pytorch)
{
    fx_file f;
    load(&f, "maxpool2d.fx");
    const fx_tensor *dims = need(&f, "", "dims", 4);
    int B = (int)dims->v[0], C = (int)dims->v[1], H = (int)dims->v[2], W = (int)dims->v[3];
    size_t nin = (size_t)B * C * H * W, nout = (size_t)B * C * (H / 2) * (W / 2);
    float *in = fx_floats(&f, "", "in", nin), *dout = fx_floats(&f, "p", "dout", nout);
    float *out = gc_fbuf(nout), *din = gc_fbuf(nin);
    int32_t *idx = calloc(nout, sizeof *idx), *tidx = calloc(nout, sizeof *tidx);
    cx_err err = {0};
    must(fx_to_int32(need(&f, "", "idx", nout), tidx, &err), &err);
    cx_maxpool2d_forward(out, idx, in, B, C, H, W);
    assert_torch(out, &f, "", "out", nout);
    for (size_t i = 0; i < nout; i++)
        ck_assert_msg(idx[i] == tidx[i], "idx[%zu] = %d, torch %d", i, idx[i], tidx[i]);
    cx_maxpool2d_backward(din, dout, idx, B, C, H, W);
    assert_torch(din, &f, "", "din", nin);
    free(in), free(dout), free(out), free(din), free(idx), free(tidx);
    fx_free(&f);
}
END_TEST

typedef struct {
    int B, C, H, W;
    float *in, *out;
    int32_t *idx;
    gc_proj proj;
} pool_ctx;

static double pool_f(void *p)
{
    pool_ctx *c = p;
    cx_maxpool2d_forward(c->out, c->idx, c->in, c->B, c->C, c->H, c->W);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(maxpool2d_gradient_matches_finite_differences)
{
    pool_ctx c = {.B = 2, .C = 3, .H = 7, .W = 9};
    size_t nin = (size_t)c.B * c.C * c.H * c.W, nout = (size_t)c.B * c.C * (c.H / 2) * (c.W / 2);
    c.in = gc_frand(nin, 60, 1.0);
    c.out = gc_fbuf(nout);
    c.idx = calloc(nout, sizeof *c.idx);
    ck_assert_int_eq(gc_proj_init(&c.proj, nout, 61), 0);
    float *din = gc_fbuf(nin);
    pool_f(&c);
    cx_maxpool2d_backward(din, c.proj.r, c.idx, c.B, c.C, c.H, c.W);
    gc_var v = {"din", c.in, din, nin};
    gc_opts o = gc_opts_default();
    o.max_coords = 0; /* all 378, the dropped row and column included */
    o.h = 1e-3;
    gc_report rep;
    assert_gc(gc_check(pool_f, NULL, &c, &v, 1, &o, &rep), &rep, "maxpool");
    ck_assert_uint_ge(rep.checked, nin * 9 / 10);
    gc_proj_free(&c.proj);
    free(c.in), free(c.out), free(c.idx), free(din);
}
END_TEST

START_TEST(conv2d_maxpool_bit_identical_on_two_threads)
{
    /* Shapes that cross the OpenMP thresholds of ops_internal.h (checked, so raising one cannot
     * quietly make this single-threaded): one sample's column matrix of 32 x 9 x 128 x 128
     * floats exceeds a chunk, so im2col and col2im run threaded on whole samples; pooling runs
     * threaded over 16 x 64 planes of 128 x 128. */
    const cx_conv2d_dims d = {.cin = 32, .h = 128, .w = 128, .cout = 8, .k = 3, .pad = 1};
    const int B = 2, PB = 16, PC = 64, PH = 128, PW = 128;
    ck_assert_uint_ge((size_t)d.cin * 9 * d.h * d.w, CX_OPS_PAR_ELEMS);
    ck_assert_uint_ge((size_t)PB * PC * PH * PW, 4 * CX_OPS_PAR_ELEMS); /* maxpool2d.c */
    size_t nin = conv_in_n(&d, B), nout = conv_out_n(&d, B), nw = conv_w_n(&d);
    size_t npin = (size_t)PB * PC * PH * PW, npool = npin / 4;
    float *in = gc_frand(nin, 70, 1.0), *w = gc_frand(nw, 71, 0.05), *b = gc_frand(d.cout, 72, 0.1);
    float *dout = gc_frand(nout, 73, 1.0), *scratch = gc_fbuf(cx_conv2d_scratch_floats(&d, B));
    float *out = gc_fbuf(nout), *din = gc_fbuf(nin), *pin = gc_frand(npin, 74, 1.0);
    float *pool = gc_fbuf(npool), *dpool = gc_frand(npool, 75, 1.0), *dpin = gc_fbuf(npin);
    int32_t *idx = calloc(npool, sizeof *idx);
    ck_assert_ptr_nonnull(idx);
    uint64_t h[3][8] = {{0}};
    for (int run = 0; run < 3; run++) {
        /* Runs 0 and 1 on two threads; run 2 on one, for the pooling (no matrix product). */
        cx_threads_set(run < 2 ? 2 : 1);
        float *dw = gc_fbuf(nw), *db = gc_fbuf(d.cout);
        cx_conv2d_forward(out, scratch, in, w, b, B, &d);
        cx_conv2d_backward(din, dw, db, scratch, dout, in, w, B, &d);
        cx_maxpool2d_forward(pool, idx, pin, PB, PC, PH, PW);
        cx_maxpool2d_backward(dpin, dpool, idx, PB, PC, PH, PW);
        h[run][0] = hash_bytes(out, sizeof *out * nout);
        h[run][1] = hash_bytes(din, sizeof *din * nin);
        h[run][2] = hash_bytes(dw, sizeof *dw * nw);
        h[run][3] = hash_bytes(db, sizeof *db * d.cout);
        h[run][4] = hash_bytes(pool, sizeof *pool * npool);
        h[run][5] = hash_bytes(idx, sizeof *idx * npool);
        h[run][6] = hash_bytes(dpin, sizeof *dpin * npin);
        free(dw), free(db);
    }
    for (int i = 0; i < 7; i++)
        ck_assert_msg(h[0][i] == h[1][i], "output %d differs between two runs on 2 threads", i);
    for (int i = 4; i < 7; i++)
        ck_assert_msg(h[0][i] == h[2][i], "pooling output %d differs between 1 and 2 threads", i);
    /* The threaded passes computed the right thing: a few output values against the naive
     * sum (the full naive convolution of this size would be slow). */
    for (int t = 0; t < 5; t++) {
        int s = t % B, co = (3 * t) % d.cout, oh = (37 * t) % d.h, ow = (91 * t + 5) % d.w;
        double acc = b[co];
        for (int ci = 0; ci < d.cin; ci++)
            for (int ki = 0; ki < 3; ki++)
                for (int kj = 0; kj < 3; kj++)
                    acc += at_in(in, &d, s, ci, oh + ki - 1, ow + kj - 1) *
                           w[((co * d.cin + ci) * 3 + ki) * 3 + kj];
        float got = out[(((size_t)s * d.cout + co) * d.h + oh) * d.w + ow];
        ck_assert_double_eq_tol(got, acc, 1e-5 * (1 + fabs(acc)));
    }
    free(in), free(w), free(b), free(dout), free(scratch), free(out), free(din), free(pin);
    free(pool), free(dpool), free(dpin), free(idx);
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
    assert_gc(gc_check(mlp_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
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
    assert_gc(gc_check(text_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
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
    assert_gc(gc_check(cnn_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
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
        naive_pool(x, NULL, y, B, cout, h, w);
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
    assert_close(out, a, (size_t)B * 6, 1e-5, 1e-6, "cnn out");
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
    fill_nan(din, nin);
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
    h[0] = hash_bytes(out, sizeof *out * (size_t)c.B * 32);
    cx_cnn_backward(&c.n, &c.p, c.in, c.proj.r, din, c.B);
    h[1] = hash_bytes(din, sizeof *din * nin);
    h[2] = hash_bytes(c.p.grad, sizeof *c.p.grad * c.p.total);
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
    assert_gc(gc_check(head_f, NULL, &c, vars, nv, &o, &rep), &rep, what);
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
    TCase *tc = tcase_create("conv2d");
    tcase_add_test(tc, conv2d_forward_matches_naive);
    tcase_add_test(tc, conv2d_backward_matches_naive_adds_and_skips);
    tcase_add_test(tc, conv2d_gradients_match_finite_differences);
    tcase_add_test(tc, conv2d_many_chunks_match_naive);
    tcase_add_test(tc, conv2d_scratch_bound);
    tcase_add_test(tc, conv2d_matches_pytorch);
    suite_add_tcase(s, tc);

    tc = tcase_create("maxpool2d");
    tcase_add_test(tc, maxpool2d_forward_backward_odd_sizes_ties_nan);
    tcase_add_test(tc, maxpool2d_matches_pytorch);
    tcase_add_test(tc, maxpool2d_gradient_matches_finite_differences);
    suite_add_tcase(s, tc);

    tc = tcase_create("mlp");
    tcase_add_test(tc, mlp_linear_gradients);
    tcase_add_test(tc, mlp_relu_gradients);
    tcase_add_test(tc, mlp_gelu_gradients);
    tcase_add_test(tc, mlp_layernorm_gradients);
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
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, conv2d_maxpool_bit_identical_on_two_threads);
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
