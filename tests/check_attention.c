/* Transformer ops: attention (no mask, causal, key padding, both), token and positional
 * embeddings, patches and the pre-norm block against naive double-precision references
 * written here, finite differences, a PyTorch fixture of one block, and thread-count
 * independence. */
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
#include "lib/model/model.h"
#include "lib/optim/optim.h"
#include "lib/model/seq_tower.h"
#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

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

/* ---- naive references (double) ------------------------------------------------------------ */

static void naive_attention(double *ctx, double *probs, const double *qkv, const int32_t *len,
                            int B, int T, int H, int Dh, int causal)
{
    int D = H * Dh;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                double s[256], mx = -INFINITY, sum = 0;
                int L = len ? len[b] : T;
                for (int j = 0; j < T; j++) {
                    int ok = j < L && (!causal || j <= i);
                    s[j] = -INFINITY;
                    if (!ok)
                        continue;
                    double d = 0;
                    for (int k = 0; k < Dh; k++)
                        d += qkv[(b * T + i) * 3 * D + h * Dh + k] *
                             qkv[(b * T + j) * 3 * D + D + h * Dh + k];
                    s[j] = d / sqrt((double)Dh);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < T; j++) {
                    s[j] = s[j] == -INFINITY ? 0.0 : exp(s[j] - mx);
                    sum += s[j];
                }
                for (int j = 0; j < T; j++) {
                    double p = sum > 0 ? s[j] / sum : 0.0;
                    if (probs)
                        probs[((b * H + h) * T + i) * T + j] = p;
                    s[j] = p;
                }
                for (int k = 0; k < Dh; k++) {
                    double o = 0;
                    for (int j = 0; j < T; j++)
                        o += s[j] * qkv[(b * T + j) * 3 * D + 2 * D + h * Dh + k];
                    ctx[(b * T + i) * D + h * Dh + k] = o;
                }
            }
}

static void naive_linear(double *out, const double *in, const float *w, const float *b, int N,
                         int K, int M)
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < M; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                s += in[(size_t)i * K + k] * w[(size_t)j * K + k];
            out[(size_t)i * M + j] = s;
        }
}

static void naive_layernorm(double *out, const double *in, const float *g, const float *b, int N,
                            int D, double eps)
{
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int j = 0; j < D; j++)
            m += in[i * D + j];
        m /= D;
        for (int j = 0; j < D; j++)
            v += (in[i * D + j] - m) * (in[i * D + j] - m);
        double rs = 1.0 / sqrt(v / D + eps);
        for (int j = 0; j < D; j++)
            out[i * D + j] = (in[i * D + j] - m) * rs * g[j] + b[j];
    }
}

/* The block composed of the references above: the definition, not the C code's order. */
static void naive_block(double *y, const float *xf, const cx_block_params *w, const cx_block_dims *d)
{
    int N = d->B * d->T, D = d->D, F = d->F;
    double *x = calloc((size_t)N * D, sizeof *x), *ln = calloc((size_t)N * D, sizeof *x);
    double *qkv = calloc((size_t)N * 3 * D, sizeof *x), *ctx = calloc((size_t)N * D, sizeof *x);
    double *a = calloc((size_t)N * D, sizeof *x), *h = calloc((size_t)N * F, sizeof *x);
    for (int i = 0; i < N * D; i++)
        x[i] = xf[i];
    naive_layernorm(ln, x, w->ln1_g, w->ln1_b, N, D, d->eps);
    naive_linear(qkv, ln, w->w_qkv, w->b_qkv, N, D, 3 * D);
    naive_attention(ctx, NULL, qkv, d->lengths, d->B, d->T, d->H, D / d->H, d->causal);
    naive_linear(a, ctx, w->w_out, w->b_out, N, D, D);
    for (int i = 0; i < N * D; i++)
        x[i] += a[i];
    naive_layernorm(ln, x, w->ln2_g, w->ln2_b, N, D, d->eps);
    naive_linear(h, ln, w->w_fc, w->b_fc, N, D, F);
    for (int i = 0; i < N * F; i++)
        h[i] = 0.5 * h[i] * (1.0 + erf(h[i] / sqrt(2.0)));
    naive_linear(a, h, w->w_proj, w->b_proj, N, F, D);
    for (int i = 0; i < N * D; i++)
        y[i] = x[i] + a[i];
    free(x), free(ln), free(qkv), free(ctx), free(a), free(h);
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct {
    int B, T, H, Dh, causal;
    const int32_t *len;
    float *qkv, *ctx, *probs;
    gc_proj proj;
} att_ctx;

static double att_f(void *p)
{
    att_ctx *c = p;
    cx_attention_forward(c->ctx, c->probs, c->qkv, c->len, c->B, c->T, c->H, c->Dh, c->causal);
    return gc_proj_dot(&c->proj, c->ctx);
}

static const int32_t lens5[] = {5, 3, 1, 0};

static void attention_case(int causal, const int32_t *len, const char *what)
{
    att_ctx c = {.B = 4, .T = 5, .H = 2, .Dh = 3, .causal = causal, .len = len};
    int D = c.H * c.Dh;
    size_t nq = (size_t)c.B * c.T * 3 * D, nc = (size_t)c.B * c.T * D;
    size_t np = (size_t)c.B * c.H * c.T * c.T;
    c.qkv = gc_frand(nq, 11, 1.0);
    c.ctx = gc_fbuf(nc);
    c.probs = gc_fbuf(np);
    float *dqkv = gc_fbuf(nq), *dctx = gc_fbuf(nc), *scr = gc_fbuf(np);
    double *want = gc_dbuf(nc), *wantp = gc_dbuf(np), *qd = gc_dbuf(nq);
    for (size_t i = 0; i < nq; i++)
        qd[i] = c.qkv[i];
    ck_assert_int_eq(gc_proj_init(&c.proj, nc, 12), 0);
    att_f(&c);
    naive_attention(want, wantp, qd, len, c.B, c.T, c.H, c.Dh, causal);
    assert_close(c.ctx, want, nc, 1e-5, 1e-6, what);
    assert_close(c.probs, wantp, np, 1e-5, 1e-7, what);
    /* A query that sees no key (length 0) gives zeros, never NaN. */
    for (size_t i = 0; i < nc; i++)
        ck_assert(isfinite(c.ctx[i]));
    gc_proj_dout(&c.proj, dctx);
    cx_attention_backward(dqkv, scr, dctx, c.probs, c.qkv, len, c.B, c.T, c.H, c.Dh, causal);
    gc_var v = {"dqkv", c.qkv, dqkv, nq};
    gc_opts o = gc_opts_default();
    o.max_coords = 0;
    gc_report rep;
    assert_gc(gc_check(att_f, NULL, &c, &v, 1, &o, &rep), &rep, what);
    if (len) /* masked keys get no gradient: sequence 3 has none visible */
        for (int t = 0; t < c.T; t++)
            for (int k = 0; k < 3 * D; k++)
                ck_assert(dqkv[((size_t)3 * c.T + t) * 3 * D + k] == 0.0f);
    gc_proj_free(&c.proj);
    free(c.qkv), free(c.ctx), free(c.probs), free(dqkv), free(dctx), free(scr), free(want),
        free(wantp), free(qd);
}

START_TEST(attention_no_mask) { attention_case(0, NULL, "attention"); }
END_TEST
START_TEST(attention_causal) { attention_case(1, NULL, "causal attention"); }
END_TEST
START_TEST(attention_padding) { attention_case(0, lens5, "padded attention"); }
END_TEST
START_TEST(attention_causal_padding) { attention_case(1, lens5, "causal padded attention"); }
END_TEST

START_TEST(attention_causal_ignores_future_tokens)
{
    /* Changing the last token changes no earlier output under the causal mask. */
    int B = 1, T = 6, H = 2, Dh = 4, D = H * Dh;
    size_t nq = (size_t)T * 3 * D;
    float *qkv = gc_frand(nq, 3, 1.0), *a = gc_fbuf((size_t)T * D), *b = gc_fbuf((size_t)T * D);
    float *pr = gc_fbuf((size_t)H * T * T);
    cx_attention_forward(a, pr, qkv, NULL, B, T, H, Dh, 1);
    for (int k = 0; k < 3 * D; k++)
        qkv[(size_t)(T - 1) * 3 * D + k] += 1.0f;
    cx_attention_forward(b, pr, qkv, NULL, B, T, H, Dh, 1);
    ck_assert(memcmp(a, b, sizeof(float) * (size_t)(T - 1) * D) == 0);
    ck_assert(memcmp(a, b, sizeof(float) * (size_t)T * D) != 0);
    free(qkv), free(a), free(b), free(pr);
}
END_TEST

/* ---- embeddings and patches ---------------------------------------------------------------- */

typedef struct {
    int B, T, D, V;
    const int32_t *tok;
    float *table, *pos, *emb, *out;
    gc_proj proj;
} emb_ctx;

static double emb_f(void *p)
{
    emb_ctx *c = p;
    cx_embed_forward(c->emb, c->tok, c->table, c->B * c->T, c->D);
    cx_posembed_forward(c->out, c->emb, c->pos, c->B, c->T, c->D);
    return gc_proj_dot(&c->proj, c->out);
}

START_TEST(embeddings_match_naive_and_finite_differences)
{
    static const int32_t tok[] = {0, 3, 3, 1, 2, 4, 4, 4, 0, 1, 2, 3};
    emb_ctx c = {.B = 3, .T = 4, .D = 70, .V = 5, .tok = tok}; /* D > one column block */
    size_t n = (size_t)c.B * c.T * c.D;
    c.table = gc_frand((size_t)c.V * c.D, 5, 1.0);
    c.pos = gc_frand((size_t)c.T * c.D, 6, 1.0);
    c.emb = gc_fbuf(n);
    c.out = gc_fbuf(n);
    ck_assert_int_eq(gc_proj_init(&c.proj, n, 7), 0);
    emb_f(&c);
    for (int b = 0; b < c.B; b++)
        for (int t = 0; t < c.T; t++)
            for (int j = 0; j < c.D; j++)
                ck_assert(c.out[((size_t)b * c.T + t) * c.D + j] ==
                          c.table[(size_t)tok[b * c.T + t] * c.D + j] + c.pos[(size_t)t * c.D + j]);
    float *dout = gc_fbuf(n), *dtab = gc_fbuf((size_t)c.V * c.D), *dpos = gc_fbuf((size_t)c.T * c.D);
    gc_proj_dout(&c.proj, dout);
    cx_posembed_backward(dpos, dout, c.B, c.T, c.D);
    cx_embed_backward(dtab, dout, tok, c.B * c.T, c.D);
    gc_var v[] = {{"dtable", c.table, dtab, (size_t)c.V * c.D}, {"dpos", c.pos, dpos, (size_t)c.T * c.D}};
    gc_opts o = gc_opts_default();
    gc_report rep;
    assert_gc(gc_check(emb_f, NULL, &c, v, 2, &o, &rep), &rep, "embeddings");
    /* Gradients are added: a second backward doubles them. */
    float first = dpos[1];
    cx_posembed_backward(dpos, dout, c.B, c.T, c.D);
    ck_assert(dpos[1] == 2 * first);
    gc_proj_free(&c.proj);
    free(c.table), free(c.pos), free(c.emb), free(c.out), free(dout), free(dtab), free(dpos);
}
END_TEST

START_TEST(patchify_is_strided_conv_layout)
{
    int B = 2, C = 2, H = 6, W = 4, p = 2, gh = 3, gw = 2, F = C * p * p;
    size_t n = (size_t)B * C * H * W;
    float *in = gc_frand(n, 9, 1.0), *out = gc_fbuf(n);
    cx_patchify(out, in, B, C, H, W, p);
    for (int b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++)
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++)
                            ck_assert(out[(((size_t)b * gh + py) * gw + px) * F + (c * p + ky) * p + kx] ==
                                      in[(((size_t)b * C + c) * H + py * p + ky) * W + px * p + kx]);
    free(in), free(out);
}
END_TEST

/* ---- the block ----------------------------------------------------------------------------- */

typedef struct {
    cx_block_dims d;
    cx_block_params w, g;
    float *wbuf, *gbuf, *x, *y, *saved, *scratch;
    cx_block_saved s;
    cx_block_scratch sc;
    gc_proj proj;
} blk_ctx;

static size_t blk_param_floats(int D, int F)
{
    return (size_t)D * 4 + (size_t)3 * D * D + 3 * D + (size_t)D * D + D + (size_t)F * D + F +
           (size_t)D * F + D;
}

static void blk_views(cx_block_params *w, float *p, int D, int F)
{
    w->ln1_g = p, p += D;
    w->ln1_b = p, p += D;
    w->w_qkv = p, p += (size_t)3 * D * D;
    w->b_qkv = p, p += 3 * D;
    w->w_out = p, p += (size_t)D * D;
    w->b_out = p, p += D;
    w->ln2_g = p, p += D;
    w->ln2_b = p, p += D;
    w->w_fc = p, p += (size_t)F * D;
    w->b_fc = p, p += F;
    w->w_proj = p, p += (size_t)D * F;
    w->b_proj = p;
}

static void blk_alloc(blk_ctx *c, int B, int T, int D, int H, int F, int causal,
                      const int32_t *len, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    c->d = (cx_block_dims){.B = B, .T = T, .D = D, .H = H, .F = F, .causal = causal,
                           .lengths = len, .eps = 1e-5f};
    size_t np = blk_param_floats(D, F), n = (size_t)B * T * D;
    c->wbuf = gc_frand(np, seed, 0.3);
    c->gbuf = gc_fbuf(np);
    blk_views(&c->w, c->wbuf, D, F);
    blk_views(&c->g, c->gbuf, D, F);
    for (int j = 0; j < D; j++) /* gains near 1, as trained LayerNorms */
        c->w.ln1_g[j] += 1.0f, c->w.ln2_g[j] += 1.0f;
    c->x = gc_frand(n, seed + 1, 1.0);
    c->y = gc_fbuf(n);
    c->saved = gc_fbuf(cx_block_saved_floats(&c->d));
    c->scratch = gc_fbuf(cx_block_scratch_floats(&c->d));
    cx_block_saved_carve(&c->s, c->saved, &c->d);
    cx_block_scratch_carve(&c->sc, c->scratch, &c->d);
    ck_assert_int_eq(gc_proj_init(&c->proj, n, seed + 2), 0);
}

static void blk_free(blk_ctx *c)
{
    gc_proj_free(&c->proj);
    free(c->wbuf), free(c->gbuf), free(c->x), free(c->y), free(c->saved), free(c->scratch);
}

static double blk_f(void *p)
{
    blk_ctx *c = p;
    cx_block_forward(c->y, c->x, &c->w, &c->s, &c->sc, &c->d);
    return gc_proj_dot(&c->proj, c->y);
}

static void block_case(int causal, const int32_t *len, const char *what)
{
    blk_ctx c;
    blk_alloc(&c, 3, 5, 8, 2, 12, causal, len, 21);
    size_t n = (size_t)3 * 5 * 8;
    blk_f(&c);
    double *want = gc_dbuf(n);
    naive_block(want, c.x, &c.w, &c.d);
    assert_close(c.y, want, n, 1e-4, 1e-5, what);
    float *dx = gc_fbuf(n);
    gc_proj_dout(&c.proj, dx);
    cx_block_backward(dx, dx, c.x, &c.w, &c.g, &c.s, &c.sc, &c.d); /* in place */
    int D = 8, F = 12;
    gc_var v[] = {
        {"dx", c.x, dx, n},
        {"ln1_g", c.w.ln1_g, c.g.ln1_g, (size_t)D},
        {"ln1_b", c.w.ln1_b, c.g.ln1_b, (size_t)D},
        {"w_qkv", c.w.w_qkv, c.g.w_qkv, (size_t)3 * D * D},
        {"b_qkv", c.w.b_qkv, c.g.b_qkv, (size_t)3 * D},
        {"w_out", c.w.w_out, c.g.w_out, (size_t)D * D},
        {"b_out", c.w.b_out, c.g.b_out, (size_t)D},
        {"ln2_g", c.w.ln2_g, c.g.ln2_g, (size_t)D},
        {"ln2_b", c.w.ln2_b, c.g.ln2_b, (size_t)D},
        {"w_fc", c.w.w_fc, c.g.w_fc, (size_t)F * D},
        {"b_fc", c.w.b_fc, c.g.b_fc, (size_t)F},
        {"w_proj", c.w.w_proj, c.g.w_proj, (size_t)D * F},
        {"b_proj", c.w.b_proj, c.g.b_proj, (size_t)D},
    };
    gc_opts o = gc_opts_default();
    o.h = 1e-2;
    gc_report rep;
    assert_gc(gc_check(blk_f, NULL, &c, v, (int)(sizeof v / sizeof v[0]), &o, &rep), &rep, what);
    free(want), free(dx);
    blk_free(&c);
}

START_TEST(block_no_mask) { block_case(0, NULL, "block"); }
END_TEST
START_TEST(block_causal) { block_case(1, NULL, "causal block"); }
END_TEST
START_TEST(block_padding)
{
    static const int32_t len[] = {5, 2, 4};
    block_case(0, len, "padded block");
}
END_TEST

/* One block's forward and backward against torch (scripts/make_fixtures.py, block.fx):
 * open_clip's ResidualAttentionBlock with nn.MultiheadAttention, causal mask. */
START_TEST(block_matches_pytorch)
{
    fx_file fx;
    cx_err err;
    char path[4096];
    fx_path(path, sizeof path, "block.fx");
    ck_assert_msg(fx_load(&fx, path, &err) == CX_OK, "%s", err.msg);
    const fx_tensor *x = fx_get(&fx, "x");
    ck_assert(x && x->ndim == 3);
    int B = (int)x->dims[0], T = (int)x->dims[1], D = (int)x->dims[2];
    const fx_tensor *wfc = fx_get(&fx, "w_fc"), *heads = fx_get(&fx, "heads");
    ck_assert(wfc && heads);
    int F = (int)wfc->dims[0], H = (int)heads->v[0];
    blk_ctx c;
    blk_alloc(&c, B, T, D, H, F, 1, NULL, 1);
    static const char *names[] = {"ln1_g", "ln1_b", "w_qkv", "b_qkv", "w_out", "b_out",
                                  "ln2_g", "ln2_b", "w_fc", "b_fc", "w_proj", "b_proj"};
    float **wv = (float **)&c.w, **gv = (float **)&c.g;
    for (int i = 0; i < 12; i++) {
        const fx_tensor *t = fx_get(&fx, names[i]);
        ck_assert_msg(t, "fixture lacks %s", names[i]);
        fx_to_float(t, wv[i]);
    }
    fx_to_float(x, c.x);
    size_t n = (size_t)B * T * D;
    cx_block_forward(c.y, c.x, &c.w, &c.s, &c.sc, &c.d);
    const fx_tensor *y = fx_get(&fx, "y"), *dy = fx_get(&fx, "dy"), *dx = fx_get(&fx, "dx");
    ck_assert(y && dy && dx && y->n == n);
    /* Each tensor to 1e-5 of its own scale (its largest magnitude). */
#define SCALE_CLOSE(got, t, what)                                                         \
    do {                                                                                   \
        double mx = 0;                                                                     \
        for (size_t k = 0; k < (t)->n; k++)                                                \
            mx = fabs((t)->v[k]) > mx ? fabs((t)->v[k]) : mx;                               \
        assert_close((got), (t)->v, (t)->n, 0.0, 1e-5 * mx, (what));                       \
    } while (0)
    SCALE_CLOSE(c.y, y, "y");
    float *g = gc_fbuf(n);
    fx_to_float(dy, g);
    cx_block_backward(g, g, c.x, &c.w, &c.g, &c.s, &c.sc, &c.d);
    SCALE_CLOSE(g, dx, "dx");
    char gname[64];
    for (int i = 0; i < 12; i++) {
        snprintf(gname, sizeof gname, "d%s", names[i]);
        const fx_tensor *t = fx_get(&fx, gname);
        ck_assert_msg(t, "fixture lacks %s", gname);
        SCALE_CLOSE(gv[i], t, gname);
    }
    free(g);
    blk_free(&c);
    fx_free(&fx);
}
END_TEST

/* Forward and backward of a block at a size that threads (B H T T Dh over the threshold):
 * 1 and 2 threads give the same bits for the attention and the whole block's non-BLAS parts;
 * the block as a whole is checked run to run on 2 threads. */
static void block_digest(float *out, size_t *n_out)
{
    blk_ctx c;
    static int32_t len[64];
    for (int b = 0; b < 64; b++)
        len[b] = 1 + b % 17;
    blk_alloc(&c, 64, 17, 64, 4, 128, 0, len, 5);
    size_t n = (size_t)64 * 17 * 64;
    cx_block_forward(c.y, c.x, &c.w, &c.s, &c.sc, &c.d);
    float *dx = gc_fbuf(n);
    gc_proj_dout(&c.proj, dx);
    cx_block_backward(dx, dx, c.x, &c.w, &c.g, &c.s, &c.sc, &c.d);
    memcpy(out, c.y, sizeof(float) * n);
    memcpy(out + n, dx, sizeof(float) * n);
    memcpy(out + 2 * n, c.gbuf, sizeof(float) * blk_param_floats(64, 128));
    *n_out = 2 * n + blk_param_floats(64, 128);
    free(dx);
    blk_free(&c);
}

START_TEST(attention_independent_of_thread_count)
{
    int B = 64, T = 17, H = 4, Dh = 16, D = H * Dh;
    size_t nq = (size_t)B * T * 3 * D, nc = (size_t)B * T * D, np = (size_t)B * H * T * T;
    float *qkv = gc_frand(nq, 4, 1.0), *dctx = gc_frand(nc, 5, 1.0);
    float *c1 = gc_fbuf(nc), *c2 = gc_fbuf(nc), *p1 = gc_fbuf(np), *p2 = gc_fbuf(np);
    float *d1 = gc_fbuf(nq), *d2 = gc_fbuf(nq), *scr = gc_fbuf(np);
    cx_threads_set(1);
    cx_attention_forward(c1, p1, qkv, NULL, B, T, H, Dh, 1);
    cx_attention_backward(d1, scr, dctx, p1, qkv, NULL, B, T, H, Dh, 1);
    cx_threads_set(2);
    cx_attention_forward(c2, p2, qkv, NULL, B, T, H, Dh, 1);
    cx_attention_backward(d2, scr, dctx, p2, qkv, NULL, B, T, H, Dh, 1);
    ck_assert(memcmp(c1, c2, sizeof(float) * nc) == 0);
    ck_assert(memcmp(p1, p2, sizeof(float) * np) == 0);
    ck_assert(memcmp(d1, d2, sizeof(float) * nq) == 0);
    free(qkv), free(dctx), free(c1), free(c2), free(p1), free(p2), free(d1), free(d2), free(scr);
}
END_TEST

START_TEST(block_bit_identical_on_two_threads)
{
    size_t cap = (size_t)3 * 64 * 17 * 64 + 200000, n1, n2;
    float *a = gc_fbuf(cap), *b = gc_fbuf(cap);
    ck_assert_int_eq(cx_threads_set(2), 2);
    block_digest(a, &n1);
    block_digest(b, &n2);
    ck_assert(n1 == n2 && n1 <= cap);
    ck_assert(memcmp(a, b, sizeof(float) * n1) == 0);
    free(a), free(b);
}
END_TEST

/* ---- towers -------------------------------------------------------------------------------- */

typedef struct {
    cx_params p;
    cx_seq_tower t;
    const void *in;
    int B;
    gc_proj proj;
} tw_ctx;

static double tw_f(void *v)
{
    tw_ctx *c = v;
    return gc_proj_dot(&c->proj, cx_seq_tower_forward(&c->t, &c->p, c->in, c->B));
}

/* Every tensor of the tower against finite differences (a subset of coordinates each). */
static void tower_gradcheck(tw_ctx *c, int out_dim, const char *what)
{
    ck_assert_int_eq(gc_proj_init(&c->proj, (size_t)c->B * out_dim, 77), 0);
    cx_rng rng;
    cx_rng_seed(&rng, 3, 0);
    cx_seq_tower_init_params(&c->t, &c->p, &rng);
    /* Biases and LayerNorm shifts start at zero; move them so their gradients are generic. */
    for (size_t i = 0; i < c->p.total; i++)
        c->p.value[i] += 0.05f * (float)((i * 2654435761u) % 17) / 17.0f;
    /* Token and position tables of unit scale: at init scale (0.02) the final LayerNorm makes
     * the function too curved for a step of 1e-2. */
    for (int i = 0; i < c->p.count; i++)
        if (strstr(c->p.info[i].name, "embed.weight") && c->t.is_text)
            gc_fill_normal(cx_param_value(&c->p, i), c->p.info[i].size, 100 + i, 1.0);
    tw_f(c);
    float *dout = gc_fbuf((size_t)c->B * out_dim);
    gc_proj_dout(&c->proj, dout);
    cx_params_zero_grad(&c->p);
    cx_seq_tower_backward(&c->t, &c->p, c->in, dout);
    gc_var *v = calloc((size_t)c->p.count, sizeof *v);
    for (int i = 0; i < c->p.count; i++)
        v[i] = (gc_var){c->p.info[i].name, cx_param_value(&c->p, i), cx_param_grad(&c->p, i),
                        c->p.info[i].size};
    gc_opts o = gc_opts_default();
    o.max_coords = 24;
    gc_report rep;
    assert_gc(gc_check(tw_f, NULL, c, v, c->p.count, &o, &rep), &rep, what);
    free(v), free(dout);
    gc_proj_free(&c->proj);
}

static void text_tower_case(int causal, cx_pool pool, const char *what)
{
    /* Sequences as the tokenizer makes them: SOT words EOT padding, one truncated. */
    static const int32_t tok[] = {2, 5, 6, 3, 0, 0, 2, 7, 3, 0, 0, 0,
                                  2, 5, 5, 6, 7, 3, 2, 3, 0, 0, 0, 0};
    tw_ctx c = {.in = tok, .B = 4};
    cx_params_init(&c.p);
    cx_err err;
    ck_assert_int_eq(cx_seq_tower_declare_text(&c.t, &c.p, "text", 8, 6, 8, 2, 2, 12, causal,
                                               pool, 5, 0, &err), CX_OK);
    ck_assert_int_eq(cx_params_alloc(&c.p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_seq_tower_alloc(&c.t, 4, NULL, &err), CX_OK);
    tower_gradcheck(&c, 5, what);
    /* Padding after EOT changes nothing: the feature reads SOT..EOT only. */
    float a[20], b[20];
    memcpy(a, cx_seq_tower_forward(&c.t, &c.p, tok, 4), sizeof a);
    int32_t tok2[24];
    memcpy(tok2, tok, sizeof tok2);
    tok2[5] = 7, tok2[11] = 1;
    memcpy(b, cx_seq_tower_forward(&c.t, &c.p, tok2, 4), sizeof b);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    /* Word order matters (not a bag of words). */
    tok2[1] = 6, tok2[2] = 5;
    memcpy(b, cx_seq_tower_forward(&c.t, &c.p, tok2, 4), sizeof b);
    ck_assert(memcmp(a, b, 5 * sizeof(float)) != 0);
    cx_seq_tower_free(&c.t);
    cx_params_free(&c.p);
}

START_TEST(text_transformer_causal_eot_gradients) { text_tower_case(1, CX_POOL_TOKEN, "text causal eot"); }
END_TEST
START_TEST(text_transformer_mean_gradients) { text_tower_case(0, CX_POOL_MEAN, "text mean"); }
END_TEST

static void vit_case(cx_pool pool, const char *what)
{
    int B = 3, C = 2, H = 4, W = 6;
    float *img = gc_frand((size_t)B * C * H * W, 8, 1.0);
    tw_ctx c = {.in = img, .B = B};
    cx_params_init(&c.p);
    cx_err err;
    ck_assert_int_eq(cx_seq_tower_declare_vit(&c.t, &c.p, "image", C, H, W, 2, 8, 2, 2, 16, pool,
                                              6, 0, &err), CX_OK);
    ck_assert_int_eq(c.t.tokens, 7);
    ck_assert_int_eq(cx_params_alloc(&c.p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_seq_tower_alloc(&c.t, B, NULL, &err), CX_OK);
    tower_gradcheck(&c, 6, what);
    /* Tokens out: (B, 7, 8), and the CLS feature is token 0 projected. */
    int T, D;
    const float *tk = cx_seq_tower_tokens(&c.t, &T, &D);
    ck_assert(T == 7 && D == 8 && tk == c.t.tok_out);
    if (pool == CX_POOL_TOKEN)
        for (int b = 0; b < B; b++)
            ck_assert(memcmp(c.t.pooled + (size_t)b * D, tk + (size_t)b * T * D, sizeof(float) * 8) == 0);
    cx_seq_tower_free(&c.t);
    cx_params_free(&c.p);
    free(img);
}

START_TEST(vit_cls_gradients) { vit_case(CX_POOL_TOKEN, "vit cls"); }
END_TEST
START_TEST(vit_mean_gradients) { vit_case(CX_POOL_MEAN, "vit mean"); }
END_TEST

START_TEST(vit_refuses_patch_that_does_not_divide)
{
    cx_params p;
    cx_params_init(&p);
    cx_seq_tower t;
    cx_err err;
    ck_assert_int_eq(cx_seq_tower_declare_vit(&t, &p, "image", 1, 28, 28, 5, 8, 1, 2, 16,
                                              CX_POOL_TOKEN, 8, 0, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.image.patch") != NULL, "%s", err.msg);
    cx_params_free(&p);
    cx_params_init(&p);
    ck_assert_int_eq(cx_seq_tower_declare_vit(&t, &p, "image", 1, 28, 28, 7, 8, 1, 3, 16,
                                              CX_POOL_TOKEN, 8, 0, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "model.image.heads") != NULL, "%s", err.msg);
    cx_params_free(&p);
}
END_TEST

START_TEST(text_tokens_out_eot_row_is_the_feature)
{
    static const int32_t tok[] = {2, 5, 3, 0, 2, 6, 7, 3};
    cx_params p;
    cx_params_init(&p);
    cx_seq_tower t;
    cx_err err;
    ck_assert_int_eq(cx_seq_tower_declare_text(&t, &p, "text", 8, 4, 8, 1, 2, 16, 1,
                                               CX_POOL_TOKEN, 8, 0, &err), CX_OK);
    ck_assert_int_eq(cx_params_alloc(&p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_seq_tower_alloc(&t, 2, NULL, &err), CX_OK);
    cx_rng rng;
    cx_rng_seed(&rng, 1, 0);
    cx_seq_tower_init_params(&t, &p, &rng);
    cx_seq_tower_forward(&t, &p, tok, 2);
    int T, D;
    const float *tk = cx_seq_tower_tokens(&t, &T, &D);
    ck_assert(T == 4 && D == 8);
    ck_assert(memcmp(t.pooled, tk + 2 * D, sizeof(float) * 8) == 0);           /* EOT at 2 */
    ck_assert(memcmp(t.pooled + D, tk + (size_t)(4 + 3) * D, sizeof(float) * 8) == 0); /* at 3 */
    cx_seq_tower_free(&t);
    cx_params_free(&p);
}
END_TEST

START_TEST(cnn_positions_as_tokens)
{
    cx_params p;
    cx_params_init(&p);
    cx_cnn c;
    cx_err err;
    int64_t ch[] = {3};
    ck_assert_int_eq(cx_cnn_declare(&c, &p, "image", 1, 6, 4, ch, 1, NULL, 0, 5, CX_ACT_RELU,
                                    CX_NORM_NONE, 0, &err), CX_OK);
    ck_assert_int_eq(cx_params_alloc(&p, 0, &err), CX_OK);
    ck_assert_int_eq(cx_cnn_alloc(&c, 2, &err), CX_OK);
    cx_rng rng;
    cx_rng_seed(&rng, 1, 0);
    cx_cnn_init_params(&c, &p, &rng);
    float *img = gc_frand(2 * 24, 4, 1.0), out[2 * 6 * 3];
    cx_cnn_forward(&c, &p, img, 2);
    int T, D;
    ck_assert(cx_cnn_tokens(&c, 2, out, &T, &D) == out);
    ck_assert(T == 6 && D == 3); /* a 3 x 2 map of 3 channels */
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 6; t++)
            for (int k = 0; k < 3; k++)
                ck_assert(out[(b * 6 + t) * 3 + k] == c.act[0][(b * 3 + k) * 6 + t]);
    free(img);
    cx_cnn_free(&c);
    cx_params_free(&p);
}
END_TEST

START_TEST(tokenizer_sequences_and_format_2)
{
    cx_vocab_builder b;
    cx_vocab v, w;
    cx_err err;
    ck_assert_int_eq(cx_vocab_builder_init(&b, &err), CX_OK);
    ck_assert_int_eq(cx_vocab_builder_add(&b, "a photo of a cat", &err), CX_OK);
    ck_assert_int_eq(cx_vocab_builder_finish_seq(&b, 1, &v, &err), CX_OK);
    cx_vocab_builder_free(&b);
    ck_assert(v.specials && v.size == 5 + 4);
    ck_assert_str_eq(v.words[CX_TOKEN_SOT], "<sot>");
    ck_assert_str_eq(v.words[CX_TOKEN_EOT], "<eot>");
    ck_assert_str_eq(v.words[CX_TOKEN_MASK], "<mask>");
    int32_t ids[6];
    ck_assert_int_eq(cx_tokenize(&v, "A cat", ids, 6), 2);
    int32_t a = cx_vocab_lookup(&v, "a", 1), cat = cx_vocab_lookup(&v, "cat", 3);
    ck_assert(ids[0] == CX_TOKEN_SOT && ids[1] == a && ids[2] == cat && ids[3] == CX_TOKEN_EOT &&
              ids[4] == CX_TOKEN_PAD && ids[5] == CX_TOKEN_PAD);
    /* Truncation keeps EOT last. */
    ck_assert_int_eq(cx_tokenize(&v, "a photo of a cat", ids, 4), 5);
    ck_assert(ids[0] == CX_TOKEN_SOT && ids[1] == a && ids[3] == CX_TOKEN_EOT);
    char *s = cx_vocab_serialize(&v);
    ck_assert(strncmp(s, "#clipx-vocab 2\n<pad>\n<unk>\n<sot>\n<eot>\n<mask>\n", 45) == 0);
    ck_assert_int_eq(cx_vocab_deserialize(s, &w, &err), CX_OK);
    ck_assert(w.specials && w.size == v.size);
    ck_assert_int_eq(cx_vocab_lookup(&w, "cat", 3), cat);
    cx_vocab_free(&w);
    free(s);
    /* Format 1 (old checkpoints) still reads, without the sequence tokens. */
    ck_assert_int_eq(cx_vocab_deserialize("<pad>\n<unk>\ncat\n", &w, &err), CX_OK);
    ck_assert(!w.specials && w.size == 3);
    ck_assert_int_eq(cx_tokenize(&w, "cat", ids, 3), 1);
    ck_assert(ids[0] == 2 && ids[1] == CX_TOKEN_PAD);
    cx_vocab_free(&w);
    ck_assert_int_eq(cx_vocab_deserialize("#clipx-vocab 3\n<pad>\n<unk>\n", &w, &err), CX_EDATA);
    ck_assert_int_eq(cx_vocab_deserialize("#clipx-vocab 2\n<pad>\n<unk>\ncat\n", &w, &err), CX_EDATA);
    cx_vocab_free(&v);
}
END_TEST

/* ---- two whole W2 steps against PyTorch (w2_step.fx) ---------------------------------------- */

static cx_model_spec w2_small_spec(void)
{
    cx_model_spec s;
    memset(&s, 0, sizeof s);
    s.objective = CX_OBJECTIVE_CLIP;
    s.max_batch = 4;
    s.image_kind = CX_IMAGE_VIT;
    s.in_dim = 16;
    s.in_c = 1, s.in_h = 4, s.in_w = 4;
    s.vit = (cx_seq_spec){.width = 8, .layers = 2, .heads = 2, .mlp = 16, .patch = 2,
                          .pool = CX_POOL_TOKEN};
    s.embed_dim = 6;
    s.text_kind = CX_TEXT_TRANSFORMER;
    s.vocab_size = 9;
    s.token_dim = 8;
    s.max_tokens = 6;
    s.text_seq = (cx_seq_spec){.width = 8, .layers = 2, .heads = 2, .mlp = 16, .causal = 1,
                               .pool = CX_POOL_TOKEN};
    s.logit_scale_init = 1 / 0.07;
    s.logit_scale_max = 100;
    s.logit_scale_learn = 1;
    return s;
}

static const fx_tensor *named(const fx_file *f, const char *prefix, const char *name, char *key)
{
    snprintf(key, 128, "%s%s", prefix, name);
    for (char *q = key; *q; q++)
        if (*q == '.')
            *q = '_';
    const fx_tensor *t = fx_get(f, key);
    ck_assert_msg(t != NULL, "fixture lacks %s", key);
    return t;
}

START_TEST(w2_two_steps_match_pytorch)
{
    fx_file f;
    cx_err err;
    char path[4096], key[128];
    fx_path(path, sizeof path, "w2_step.fx");
    ck_assert_msg(fx_load(&f, path, &err) == CX_OK, "%s", err.msg);
    cx_model m;
    cx_model_spec s = w2_small_spec();
    ck_assert_msg(cx_model_build(&m, &s, 2, &err) == CX_OK, "%s", err.msg);
    cx_params *p = &m.params;
    for (int t = 0; t < p->count; t++) {
        const fx_tensor *ft = named(&f, "w2_init_", p->info[t].name, key);
        ck_assert_uint_eq(ft->n, p->info[t].size);
        fx_to_float(ft, cx_param_value(p, t));
    }
    float x[4 * 16];
    int32_t tok[4 * 6];
    fx_to_float(fx_get(&f, "w2_x"), x);
    ck_assert_int_eq(fx_to_int32(fx_get(&f, "w2_tokens"), tok, &err), CX_OK);
    cx_optim_config oc = {.kind = CX_OPTIM_ADAMW, .wd = 0.1, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6};
    cx_optim o;
    ck_assert_int_eq(cx_optim_init(&o, &oc, p, &err), CX_OK);
    for (int step = 0; step < 2; step++) {
        cx_params_zero_grad(p);
        double l = cx_model_clip_step(&m, x, tok, 4);
        snprintf(key, sizeof key, "w2_loss%d", step);
        double want = fx_get(&f, key)->v[0];
        ck_assert_msg(fabs(l - want) <= 1e-5 * fabs(want), "%s: %.9g, torch %.9g", key, l, want);
        cx_optim_step(&o, p, 1e-2);
        cx_model_clamp_logit_scale(&m);
    }
    for (int t = 0; t < p->count; t++) {
        const fx_tensor *ft = named(&f, "w2_final_", p->info[t].name, key);
        const float *w = cx_param_value(p, t);
        double scale = 0;
        for (size_t i = 0; i < ft->n; i++)
            scale = fmax(scale, fabs(ft->v[i]));
        /* The key bias adds a constant to each score row, which the softmax cancels: its exact
         * gradient is 0, so both sides hold rounding noise that AdamW scales up to steps of
         * the learning rate in either direction. Those 8 values are not comparable. */
        int key_bias = strstr(p->info[t].name, "attn_qkv.bias") != NULL;
        for (size_t i = 0; i < ft->n; i++) {
            if (key_bias && i >= 8 && i < 16)
                continue;
            ck_assert_msg(fabs(w[i] - ft->v[i]) <= 1e-5 * scale, "%s[%zu]: %.9g, torch %.9g", key,
                          i, w[i], ft->v[i]);
        }
    }
    cx_optim_free(&o);
    cx_model_free(&m);
    fx_free(&f);
}
END_TEST

/* Tokens out through the model: the ViT's tokens and the text transformer's. */
START_TEST(model_tokens_out)
{
    cx_model m;
    cx_err err;
    cx_model_spec s = w2_small_spec();
    ck_assert_int_eq(cx_model_build(&m, &s, 0, &err), CX_OK);
    cx_model_init_params(&m, 1);
    float *x = gc_frand(4 * 16, 3, 1.0);
    static const int32_t tok[] = {2, 5, 3, 0, 0, 0, 2, 3, 0, 0, 0, 0,
                                  2, 5, 6, 7, 8, 3, 2, 6, 3, 0, 0, 0};
    cx_model_image_forward(&m, x, 4);
    cx_model_text_forward(&m, tok, 4);
    int T, D;
    ck_assert(cx_model_image_tokens(&m, 4, NULL, &T, &D) != NULL && T == 5 && D == 8);
    ck_assert(cx_model_text_tokens(&m, &T, &D) != NULL && T == 6 && D == 8);
    cx_model_free(&m);
    free(x);
}
END_TEST

static Suite *attention_suite(void)
{
    Suite *s = suite_create("attention");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, attention_no_mask);
    tcase_add_test(tc, attention_causal);
    tcase_add_test(tc, attention_padding);
    tcase_add_test(tc, attention_causal_padding);
    tcase_add_test(tc, attention_causal_ignores_future_tokens);
    tcase_add_test(tc, embeddings_match_naive_and_finite_differences);
    tcase_add_test(tc, patchify_is_strided_conv_layout);
    tcase_add_test(tc, block_no_mask);
    tcase_add_test(tc, block_causal);
    tcase_add_test(tc, block_padding);
    tcase_add_test(tc, block_matches_pytorch);
    tcase_add_test(tc, attention_independent_of_thread_count);
    tcase_add_test(tc, block_bit_identical_on_two_threads);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("towers");
    tcase_set_timeout(tt, 120);
    tcase_add_test(tt, text_transformer_causal_eot_gradients);
    tcase_add_test(tt, text_transformer_mean_gradients);
    tcase_add_test(tt, vit_cls_gradients);
    tcase_add_test(tt, vit_mean_gradients);
    tcase_add_test(tt, vit_refuses_patch_that_does_not_divide);
    tcase_add_test(tt, text_tokens_out_eot_row_is_the_feature);
    tcase_add_test(tt, cnn_positions_as_tokens);
    tcase_add_test(tt, tokenizer_sequences_and_format_2);
    tcase_add_test(tt, w2_two_steps_match_pytorch);
    tcase_add_test(tt, model_tokens_out);
    suite_add_tcase(s, tt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(attention_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
