/* The second stage and post-hoc pieces: finite-difference gradient checks of LWS, DisAlign and
 * MARC; one DisAlign and one MARC step (GRW loss, SGD) against PyTorch (rebalance.fx);
 * CFR's contrastive loss (finite differences, PyTorch: cfr.fx), weight schedule and hard
 * negatives (against a sort);
 * tau-normalisation and logit adjustment against hand-computed values; the choice of tau on
 * validation data; the held-out validation rows (balanced, outside the subset, seeded,
 * refused when a class has none); the val: split synth writes; the retrain schema's per-method
 * keys. */
#include "config.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/data/dataset.h"
#include "lib/data/synth.h"
#include "lib/data/val_split.h"
#include "lib/eval/classifier.h"
#include "lib/eval/cfr_calib.h"
#include "lib/eval/dfr.h"
#include "lib/eval/linprobe.h"
#include "lib/eval/posthoc.h"
#include "lib/base/rng.h"
#include "lib/eval/retrain_tokens.h"
#include "lib/model/params.h"
#include "lib/model/prompt.h"
#include "lib/model/seq_tower.h"
#include "lib/model/tokenizer.h"
#include "lib/model/rebalance_head.h"
#include "lib/objective/loss.h"
#include "lib/optim/optim.h"
#include "lib/model/cfr_step.h"
#include "lib/model/tsc_loss.h"
#include "lib/model/tsc_targets.h"
#include "lib/run/retrain_config.h"
#include "tests/fixture.h"
#include "tests/gradcheck.h"

static void must(cx_status st, const cx_err *err)
{
    ck_assert_msg(st == CX_OK, "%s", err->msg);
}


/* ---- gradient checks ---------------------------------------------------------------------- */

enum { GB = 5, GC = 4, GD = 3 };

typedef struct {
    float z[GB * GC], f[GB * GD], norms[GC];
    float s[GC], gw[GD], gb[1], al[GC], be[GC], a[GC], b[GC];
    float out[GB * GC], gate[GB];
    gc_proj proj;
    int which; /* 0 lws, 1 disalign, 2 marc */
} rb_ctx;

static double rb_f(void *ctx)
{
    rb_ctx *c = ctx;
    if (c->which == 0)
        cx_lws_forward(c->z, c->s, GB, GC, c->out);
    else if (c->which == 1)
        cx_disalign_forward(c->z, c->f, c->gw, c->gb, c->al, c->be, GB, GC, GD, c->gate, c->out);
    else
        cx_marc_forward(c->z, c->norms, c->a, c->b, GB, GC, c->out);
    return gc_proj_dot(&c->proj, c->out);
}

static void rb_setup(rb_ctx *c, int which)
{
    memset(c, 0, sizeof *c);
    c->which = which;
    gc_fill_normal(c->z, GB * GC, 11, 1.5);
    gc_fill_normal(c->f, GB * GD, 12, 1.0);
    gc_fill_normal(c->s, GC, 13, 0.5);
    gc_fill_normal(c->gw, GD, 14, 0.5);
    gc_fill_normal(c->gb, 1, 15, 0.5);
    gc_fill_normal(c->al, GC, 16, 0.5);
    gc_fill_normal(c->be, GC, 17, 0.5);
    gc_fill_normal(c->a, GC, 18, 0.5);
    gc_fill_normal(c->b, GC, 19, 0.5);
    for (int k = 0; k < GC; k++) {
        c->s[k] += 1.0f;
        c->al[k] += 1.0f;
        c->a[k] += 1.0f;
        c->norms[k] = 0.5f + 0.25f * (float)k;
    }
    ck_assert_int_eq(gc_proj_init(&c->proj, GB * GC, 20), 0);
}

START_TEST(gradient_lws)
{
    rb_ctx c;
    rb_setup(&c, 0);
    float ds[GC] = {0};
    rb_f(&c);
    cx_lws_backward(c.z, c.proj.r, GB, GC, ds);
    gc_var v[] = {{"ds", c.s, ds, GC}};
    gc_opts o = gc_opts_default();
    gc_report rep;
    gc_assert_passed(gc_check(rb_f, NULL, &c, v, 1, &o, &rep), &rep, "lws");
    gc_proj_free(&c.proj);
}
END_TEST

START_TEST(gradient_disalign)
{
    rb_ctx c;
    rb_setup(&c, 1);
    float dgw[GD] = {0}, dgb[1] = {0}, dal[GC] = {0}, dbe[GC] = {0};
    rb_f(&c);
    cx_disalign_backward(c.z, c.f, c.al, c.be, c.gate, c.proj.r, GB, GC, GD, dgw, dgb, dal, dbe);
    gc_var v[] = {{"dgate_w", c.gw, dgw, GD},
                  {"dgate_b", c.gb, dgb, 1},
                  {"dalpha", c.al, dal, GC},
                  {"dbeta", c.be, dbe, GC}};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    gc_report rep;
    gc_assert_passed(gc_check(rb_f, NULL, &c, v, 4, &o, &rep), &rep, "disalign");
    /* Gradients are added, not overwritten. */
    float again[GC];
    memcpy(again, dal, sizeof again);
    cx_disalign_backward(c.z, c.f, c.al, c.be, c.gate, c.proj.r, GB, GC, GD, dgw, dgb, dal, dbe);
    for (int k = 0; k < GC; k++)
        ck_assert_float_eq_tol(dal[k], 2 * again[k], 1e-5 * (1 + fabsf(again[k])));
    gc_proj_free(&c.proj);
}
END_TEST

START_TEST(gradient_marc)
{
    rb_ctx c;
    rb_setup(&c, 2);
    float da[GC] = {0}, db[GC] = {0};
    rb_f(&c);
    cx_marc_backward(c.z, c.norms, c.proj.r, GB, GC, da, db);
    gc_var v[] = {{"da", c.a, da, GC}, {"db", c.b, db, GC}};
    gc_opts o = gc_opts_default();
    gc_report rep;
    gc_assert_passed(gc_check(rb_f, NULL, &c, v, 2, &o, &rep), &rep, "marc");
    gc_proj_free(&c.proj);
}
END_TEST


/* ---- the token decoder: blocks, final LayerNorm, pooling and the linear head ------------------ */

enum { TB = 3, TT = 4, TD = 8, TC = 3 };

typedef struct {
    cx_params p;
    cx_tokdec d;
    float tok[TB * TT * TD];
    gc_proj proj;
} td_ctx;

static double td_f(void *ctx)
{
    td_ctx *c = ctx;
    return gc_proj_dot(&c->proj, cx_tokdec_forward(&c->d, &c->p, c->tok, TB));
}

static void tokdec_gradient(cx_tokdec_pool pool)
{
    cx_err err;
    td_ctx c;
    memset(&c, 0, sizeof c);
    cx_params_init(&c.p);
    must(cx_tokdec_declare(&c.d, &c.p, "decoder", TT, TD, 2, 2, 4, pool, TC, &err), &err);
    must(cx_params_alloc(&c.p, 0, &err), &err);
    must(cx_tokdec_alloc(&c.d, TB, &err), &err);
    cx_rng r;
    cx_rng_seed(&r, 11, 0);
    cx_tokdec_init_params(&c.d, &c.p, &r);
    /* LayerNorm gains and shifts away from 1 and 0, so their gradients are exercised. */
    for (int i = 0; i < c.p.count; i++)
        if (strstr(c.p.info[i].name, "ln")) {
            float *v = cx_param_value(&c.p, i);
            for (size_t j = 0; j < c.p.info[i].size; j++)
                v[j] += (float)(0.3 * cx_rng_normal(&r));
        }
    gc_fill_normal(c.tok, TB * TT * TD, 41, 1.0);
    ck_assert_int_eq(gc_proj_init(&c.proj, TB * TC, 42), 0);
    cx_params_zero_grad(&c.p);
    td_f(&c);
    cx_tokdec_backward(&c.d, &c.p, c.proj.r);
    gc_var v[64];
    int nv = 0;
    for (int i = 0; i < c.p.count && nv < 64; i++)
        v[nv++] = (gc_var){c.p.info[i].name, cx_param_value(&c.p, i), cx_param_grad(&c.p, i),
                           c.p.info[i].size};
    ck_assert_int_eq(nv, c.p.count);
    /* Every tensor gets a gradient (a piece left out of backward would leave zeros). */
    for (int i = 0; i < nv; i++) {
        double g = 0;
        for (size_t j = 0; j < v[i].n; j++)
            g += fabs(v[i].grad[j]);
        ck_assert_msg(g > 1e-8, "%s: zero gradient", v[i].name);
    }
    gc_opts o = gc_opts_default();
    o.h = 5e-3;
    o.max_coords = 24;
    gc_report rep;
    gc_assert_passed(gc_check(td_f, NULL, &c, v, nv, &o, &rep), &rep,
                     pool == CX_TOKDEC_POOL_CLS ? "token decoder (cls)" : "token decoder (mean)");
    gc_proj_free(&c.proj);
    cx_tokdec_free(&c.d);
    cx_params_free(&c.p);
}

START_TEST(gradient_token_decoder_cls)
{
    tokdec_gradient(CX_TOKDEC_POOL_CLS);
}
END_TEST

START_TEST(gradient_token_decoder_mean)
{
    tokdec_gradient(CX_TOKDEC_POOL_MEAN);
}
END_TEST

/* With one token the first token is the mean: both poolings give the same logits, bit for bit
 * (same initialisation); heads that do not divide the width and a depth of 0 are refused
 * naming their keys. */
START_TEST(token_decoder_one_token_pools_alike)
{
    cx_err err;
    cx_params p;
    cx_tokdec a, b;
    float tok[2 * TD];
    gc_fill_normal(tok, 2 * TD, 5, 1.0);
    cx_params_init(&p);
    must(cx_tokdec_declare(&a, &p, "a", 1, TD, 1, 2, 4, CX_TOKDEC_POOL_CLS, TC, &err), &err);
    must(cx_tokdec_declare(&b, &p, "b", 1, TD, 1, 2, 4, CX_TOKDEC_POOL_MEAN, TC, &err), &err);
    must(cx_params_alloc(&p, 0, &err), &err);
    must(cx_tokdec_alloc(&a, 2, &err), &err);
    must(cx_tokdec_alloc(&b, 2, &err), &err);
    cx_rng r;
    cx_rng_seed(&r, 3, 0);
    cx_tokdec_init_params(&a, &p, &r);
    cx_rng_seed(&r, 3, 0);
    cx_tokdec_init_params(&b, &p, &r);
    float la[2 * TC];
    memcpy(la, cx_tokdec_forward(&a, &p, tok, 2), sizeof la);
    const float *lb = cx_tokdec_forward(&b, &p, tok, 2);
    ck_assert_int_eq(memcmp(la, lb, sizeof la), 0);
    /* Refusals name the key. */
    cx_tokdec bad;
    ck_assert_int_eq(cx_tokdec_declare(&bad, &p, "c", 4, TD, 1, 3, 4, CX_TOKDEC_POOL_CLS, TC, &err),
                     CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "decoder.heads"));
    ck_assert_int_eq(cx_tokdec_declare(&bad, &p, "c", 4, TD, 0, 2, 4, CX_TOKDEC_POOL_CLS, TC, &err),
                     CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "decoder.depth"));
    cx_tokdec_free(&a);
    cx_tokdec_free(&b);
    cx_params_free(&p);
}
END_TEST

/* The token cache over two batches equals the tower's tokens of each sample run alone; a tower
 * without tokens has no shape and is refused naming decoder.type. */
START_TEST(token_cache_matches_the_tower)
{
    cx_model m;
    cx_err err;
    cx_model_spec s;
    memset(&s, 0, sizeof s);
    s.objective = CX_OBJECTIVE_SL;
    s.num_classes = 3;
    s.max_batch = 4;
    s.image_kind = CX_IMAGE_VIT;
    s.in_dim = 16;
    s.in_c = 1, s.in_h = 4, s.in_w = 4;
    s.vit = (cx_seq_spec){.width = 8, .layers = 1, .heads = 2, .mlp = 16, .patch = 2,
                          .pool = CX_POOL_TOKEN};
    s.embed_dim = 6;
    s.logit_scale_init = 1 / 0.07;
    s.logit_scale_max = 100;
    must(cx_model_build(&m, &s, 0, &err), &err);
    cx_model_init_params(&m, 1);
    int T, D;
    ck_assert_int_eq(cx_tokdec_tower_shape(&m, &T, &D), 1);
    ck_assert_int_eq(T, 5);
    ck_assert_int_eq(D, 8);
    enum { N = 6 };
    float *x = gc_frand(N * 16, 9, 1.0);
    float *cache = gc_fbuf((size_t)N * T * D);
    must(cx_tokdec_cache(&m, x, N, cache, &err), &err);
    for (int i = 0; i < N; i++) {
        int t2, d2;
        cx_model_image_forward(&m, x + i * 16, 1);
        const float *tok = cx_model_image_tokens(&m, 1, NULL, &t2, &d2);
        ck_assert_int_eq(memcmp(cache + (size_t)i * T * D, tok, sizeof(float) * T * D), 0);
    }
    /* Rows of a split, gathered batch by batch (reversed: the row order is kept). */
    cx_split sp;
    memset(&sp, 0, sizeof sp);
    sp.n = N;
    sp.dim = 16;
    sp.dtype = CX_DTYPE_F32;
    sp.x = x;
    uint32_t rows[N];
    for (int i = 0; i < N; i++)
        rows[i] = (uint32_t)(N - 1 - i);
    float *cs = gc_fbuf((size_t)N * T * D);
    must(cx_tokdec_cache_split(&m, &sp, rows, N, cs, "split", &err), &err);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(memcmp(cs + (size_t)i * T * D, cache + (size_t)(N - 1 - i) * T * D,
                                sizeof(float) * T * D), 0);
    sp.dim = 15;
    ck_assert_int_eq(cx_tokdec_cache_split(&m, &sp, rows, N, cs, "split", &err), CX_EDATA);
    free(cs);
    cx_model_free(&m);
    s.image_kind = CX_IMAGE_MLP;
    s.image_hidden[0] = 8;
    s.image_nhidden = 1;
    must(cx_model_build(&m, &s, 0, &err), &err);
    ck_assert_int_eq(cx_tokdec_tower_shape(&m, &T, &D), 0);
    ck_assert_int_eq(cx_tokdec_cache(&m, x, N, cache, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "decoder.type"));
    cx_model_free(&m);
    free(x);
    free(cache);
}
END_TEST

/* ---- prompt tuning: the context's gradient through a frozen transformer text tower ---------- */

enum { PV = 12, PT = 8, PW = 8, PC = 3, PM = 2, PD = 6 };

typedef struct {
    cx_params p;
    cx_seq_tower tw;
    cx_prompt pr;
    float ctx[PC * PM * PW];
    gc_proj proj;
} pt_ctx;

static double pt_f(void *ctx)
{
    pt_ctx *c = ctx;
    return gc_proj_dot(&c->proj, cx_prompt_forward(&c->pr, &c->p, c->ctx));
}

/* A 2-block causal text tower (EOT pooling) and three class names of 1, 2 and 3 words. */
static void pt_setup(pt_ctx *c, int per_class, int causal)
{
    cx_err err;
    memset(c, 0, sizeof *c);
    cx_params_init(&c->p);
    must(cx_seq_tower_declare_text(&c->tw, &c->p, "text", PV, PT, PW, 2, 2, 16, causal,
                                   CX_POOL_TOKEN, PD, 0, &err), &err);
    must(cx_params_alloc(&c->p, 0, &err), &err);
    cx_rng r;
    cx_rng_seed(&r, 7, 0);
    cx_seq_tower_init_params(&c->tw, &c->p, &r);
    /* Larger token embeddings than the init's so the blocks see O(1) inputs. */
    float *tab = cx_param_value(&c->p, c->tw.embed);
    for (int i = 0; i < PV * PW; i++)
        tab[i] *= 25.0f;
    int32_t names[PC * PT] = {0};
    for (int k = 0; k < PC; k++) {
        int32_t *row = names + k * PT;
        row[0] = CX_TOKEN_SOT;
        for (int w = 0; w <= k; w++)
            row[1 + w] = 5 + (k + 2 * w) % (PV - 5);
        row[2 + k] = CX_TOKEN_EOT;
    }
    must(cx_prompt_init(&c->pr, &c->tw, names, PC, PM, per_class, &err), &err);
    ck_assert_uint_eq(cx_prompt_ctx_floats(&c->pr), (size_t)(per_class ? PC : 1) * PM * PW);
    gc_fill_normal(c->ctx, PC * PM * PW, 31, 0.5);
    ck_assert_int_eq(gc_proj_init(&c->proj, PC * PD, 32), 0);
}

static void pt_free(pt_ctx *c)
{
    gc_proj_free(&c->proj);
    cx_prompt_free(&c->pr);
    cx_params_free(&c->p);
}

static void prompt_gradient(int per_class, int causal)
{
    pt_ctx c;
    pt_setup(&c, per_class, causal);
    size_t n = cx_prompt_ctx_floats(&c.pr);
    float dctx[PC * PM * PW] = {0};
    pt_f(&c);
    cx_prompt_backward(&c.pr, &c.p, c.proj.r, dctx);
    double norm = 0;
    for (size_t i = 0; i < n; i++)
        norm += (double)dctx[i] * dctx[i];
    ck_assert_msg(norm > 1e-6, "the context's gradient vanishes (%g)", norm);
    gc_var v[] = {{"dctx", c.ctx, dctx, n}};
    gc_opts o = gc_opts_default();
    o.h = 5e-3;
    o.max_coords = 0;
    gc_report rep;
    gc_assert_passed(gc_check(pt_f, NULL, &c, v, 1, &o, &rep), &rep,
                     per_class ? "prompt (per class)" : "prompt (shared)");
    pt_free(&c);
}

START_TEST(gradient_prompt_shared)
{
    prompt_gradient(0, 1);
}
END_TEST

START_TEST(gradient_prompt_per_class)
{
    prompt_gradient(1, 0);
}
END_TEST

/* A context equal to the token embeddings of words gives the plain tower's outputs of the
 * sequence with those words, bit for bit; the class tokens are SOT, M placeholders, the
 * name, EOT. */
START_TEST(prompt_context_of_words_is_the_plain_forward)
{
    pt_ctx c;
    pt_setup(&c, 0, 1);
    const int32_t ctx_words[PM] = {6, 9};
    const float *tab = cx_param_value(&c.p, c.tw.embed);
    for (int m = 0; m < PM; m++)
        memcpy(c.ctx + m * PW, tab + ctx_words[m] * PW, sizeof(float) * PW);
    const int32_t *tok = c.pr.tokens;
    ck_assert_int_eq(tok[0], CX_TOKEN_SOT);
    ck_assert_int_eq(tok[1 + PM], 5);         /* class 0: one word */
    ck_assert_int_eq(tok[2 + PM], CX_TOKEN_EOT);
    ck_assert_int_eq(tok[2 * PT + 1 + PM + 3], CX_TOKEN_EOT); /* class 2: three words */
    ck_assert_int_eq(cx_prompt_name_words(tok + 2 * PT, PT), PM + 3);
    float emb[PC * PD];
    memcpy(emb, cx_prompt_forward(&c.pr, &c.p, c.ctx), sizeof emb);
    int32_t full[PC * PT];
    memcpy(full, tok, sizeof full);
    for (int k = 0; k < PC; k++)
        for (int m = 0; m < PM; m++)
            full[k * PT + 1 + m] = ctx_words[m];
    cx_err err;
    cx_seq_tower plain = c.tw;
    must(cx_seq_tower_alloc(&plain, PC, NULL, &err), &err);
    float g[PC * PD], norms[PC];
    cx_l2norm_forward(g, norms, cx_seq_tower_forward(&plain, &c.p, full, PC), PC, PD, 1e-12f);
    ck_assert_mem_eq(g, emb, sizeof g);
    cx_seq_tower_free(&plain);
    /* A name too long for the context and the tower is refused naming prompt.n_ctx. */
    cx_prompt big;
    int32_t names[PT] = {CX_TOKEN_SOT, 5, 6, 7, CX_TOKEN_EOT};
    ck_assert_int_eq(cx_prompt_init(&big, &c.tw, names, 1, 4, 0, &err), CX_EUSAGE);
    ck_assert_msg(strstr(err.msg, "prompt.n_ctx") && strstr(err.msg, "need 9 tokens"), "%s",
                  err.msg);
    ck_assert_int_eq(cx_prompt_init(&big, &c.tw, names, 1, 3, 0, &err), CX_OK);
    cx_prompt_free(&big);
    pt_free(&c);
}
END_TEST

/* ---- one step against PyTorch ------------------------------------------------------------- */

/* A parameter store of named 1-D tensors with one SGD momentum slot, initialised from fx. */
static void store_from(cx_params *p, const fx_file *f, const char *prefix,
                       const char *const *names, const size_t *sizes, int n, int *idx,
                       cx_optim *o)
{
    cx_err err;
    cx_params_init(p);
    for (int i = 0; i < n; i++) {
        idx[i] = cx_params_declare(p, names[i], 1, (int[]){(int)sizes[i]}, CX_PARAM_NO_DECAY,
                                   &err);
        ck_assert_int_ge(idx[i], 0);
    }
    cx_optim_config oc = {.kind = CX_OPTIM_SGD, .momentum = 0.9};
    must(cx_params_alloc(p, cx_optim_slots(&oc), &err), &err);
    must(cx_optim_init(o, &oc, p, &err), &err);
    char key[96];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "init_%s", names[i]);
        fx_to_float(fx_need(f, prefix, key, sizes[i]), cx_param_value(p, idx[i]));
    }
}

START_TEST(disalign_and_marc_steps_match_torch)
{
    fx_file f;
    fx_load_named(&f, "rebalance.fx");
    const fx_tensor *tz = fx_need(&f, "", "z", (size_t)-1);
    int B = (int)tz->dims[0], C = (int)tz->dims[1];
    const fx_tensor *tf = fx_need(&f, "", "f", (size_t)-1);
    int D = (int)tf->dims[1];
    float *z = gc_fbuf((size_t)B * C), *feat = gc_fbuf((size_t)B * D), *norms = gc_fbuf(C);
    float *out = gc_fbuf((size_t)B * C), *dout = gc_fbuf((size_t)B * C), *gate = gc_fbuf(B);
    int32_t y[64];
    int64_t counts[16];
    cx_err err;
    fx_to_float(tz, z);
    fx_to_float(tf, feat);
    fx_to_float(fx_need(&f, "", "norms", C), norms);
    must(fx_to_int32(fx_need(&f, "", "y", B), y, &err), &err);
    const fx_tensor *tc = fx_need(&f, "", "counts", C);
    for (int c = 0; c < C; c++)
        counts[c] = (int64_t)tc->v[c];
    cx_loss_config lc = {.kind = CX_LOSS_GRW, .grw_p = 1.2, .focal_gamma = 2, .la_tau = 1,
                         .effnum_beta = 0.999, .ldam_max_margin = 0.5, .lade_lambda = 0.1};
    cx_loss *loss;
    must(cx_loss_create(&loss, &lc, counts, C, B, &err), &err);

    /* DisAlign */
    const char *dn[] = {"gate_w", "gate_b", "alpha", "beta"};
    size_t ds[] = {(size_t)D, 1, (size_t)C, (size_t)C};
    int di[4];
    cx_params p;
    cx_optim o;
    store_from(&p, &f, "disalign", dn, ds, 4, di, &o);
    cx_disalign_forward(z, feat, cx_param_value(&p, di[0]), cx_param_value(&p, di[1]),
                        cx_param_value(&p, di[2]), cx_param_value(&p, di[3]), B, C, D, gate, out);
    fx_assert_close(out, &f, "disalign", "logits", (size_t)B * C, 1e-5);
    float l = (float)cx_loss_compute(loss, out, y, NULL, B, C, 1.0f, 0, dout);
    fx_assert_close(&l, &f, "disalign", "loss", 1, 1e-5);
    cx_disalign_backward(z, feat, cx_param_value(&p, di[2]), cx_param_value(&p, di[3]), gate,
                         dout, B, C, D, cx_param_grad(&p, di[0]), cx_param_grad(&p, di[1]),
                         cx_param_grad(&p, di[2]), cx_param_grad(&p, di[3]));
    char key[64];
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "grad_%s", dn[i]);
        fx_assert_close(cx_param_grad(&p, di[i]), &f, "disalign", key, ds[i], 1e-5);
    }
    cx_optim_step(&o, &p, 0.1);
    for (int i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "final_%s", dn[i]);
        fx_assert_close(cx_param_value(&p, di[i]), &f, "disalign", key, ds[i], 1e-5);
    }
    cx_optim_free(&o);
    cx_params_free(&p);

    /* MARC */
    const char *mn[] = {"a", "b"};
    size_t ms[] = {(size_t)C, (size_t)C};
    int mi[2];
    store_from(&p, &f, "marc", mn, ms, 2, mi, &o);
    cx_marc_forward(z, norms, cx_param_value(&p, mi[0]), cx_param_value(&p, mi[1]), B, C, out);
    fx_assert_close(out, &f, "marc", "logits", (size_t)B * C, 1e-5);
    l = (float)cx_loss_compute(loss, out, y, NULL, B, C, 1.0f, 0, dout);
    fx_assert_close(&l, &f, "marc", "loss", 1, 1e-5);
    cx_marc_backward(z, norms, dout, B, C, cx_param_grad(&p, mi[0]), cx_param_grad(&p, mi[1]));
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "grad_%s", mn[i]);
        fx_assert_close(cx_param_grad(&p, mi[i]), &f, "marc", key, ms[i], 1e-5);
    }
    cx_optim_step(&o, &p, 0.1);
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "final_%s", mn[i]);
        fx_assert_close(cx_param_value(&p, mi[i]), &f, "marc", key, ms[i], 1e-5);
    }
    cx_optim_free(&o);
    cx_params_free(&p);
    cx_loss_free(loss);
    free(z);
    free(feat);
    free(norms);
    free(out);
    free(dout);
    free(gate);
    fx_free(&f);
}
END_TEST

/* ---- CFR: contrastive loss, weight schedule, positives and hard negatives ------------------ */

enum { CB = 4, CP = 3, CK = 5, CD = 6 };

typedef struct {
    float q[CB * CD], pos[CB * CP * CD], neg[CB * CK * CD];
    double work[CX_CFR_CON_WORK(CP, CK, CD)];
    int P, K;
    double tau;
    float dloss;
    cx_cfr_con_form form;
} cfr_ctx;

static double cfr_f(void *ctx)
{
    cfr_ctx *c = ctx;
    return c->dloss * cx_cfr_con(c->q, c->pos, c->neg, CB, c->P, c->K, CD, c->tau, c->form,
                                 c->dloss, NULL, c->work);
}

static void cfr_gradient(cx_cfr_con_form form, int P, int K, double tau)
{
    cfr_ctx c;
    memset(&c, 0, sizeof c);
    c.form = form;
    c.P = P;
    c.K = K;
    c.tau = tau;
    c.dloss = 0.75f;
    gc_fill_normal(c.q, CB * CD, 31, 1.2);
    gc_fill_normal(c.pos, (size_t)CB * P * CD, 32, 1.0);
    gc_fill_normal(c.neg, (size_t)CB * K * CD, 33, 1.0);
    float dq[CB * CD], dq2[CB * CD];
    gc_fill_nan(dq, CB * CD);
    double l = cx_cfr_con(c.q, c.pos, c.neg, CB, P, K, CD, tau, form, c.dloss, dq, c.work);
    ck_assert(isfinite(l) && l >= 0);
    ck_assert(l == cx_cfr_con(c.q, c.pos, c.neg, CB, P, K, CD, tau, form, 1, NULL, c.work));
    /* The gradient is overwritten, and the same inputs give the same bits. */
    gc_fill_nan(dq2, CB * CD);
    cx_cfr_con(c.q, c.pos, c.neg, CB, P, K, CD, tau, form, c.dloss, dq2, c.work);
    ck_assert(memcmp(dq, dq2, sizeof dq) == 0);
    gc_var v[] = {{"dq", c.q, dq, CB * CD}};
    gc_opts o = gc_opts_default();
    o.h = 1e-3;
    o.max_coords = 0;
    gc_report rep;
    gc_assert_passed(gc_check(cfr_f, NULL, &c, v, 1, &o, &rep), &rep, "cfr L_con");
    /* The loss ignores the scale of q: the gradient is orthogonal to q. */
    for (int i = 0; i < CB; i++) {
        double dot = 0, nn = 0, ng = 0;
        for (int d = 0; d < CD; d++) {
            dot += (double)dq[i * CD + d] * c.q[i * CD + d];
            nn += (double)c.q[i * CD + d] * c.q[i * CD + d];
            ng += (double)dq[i * CD + d] * dq[i * CD + d];
        }
        ck_assert(fabs(dot) <= 1e-5 * sqrt(nn * ng) + 1e-9);
    }
}

START_TEST(gradient_cfr_con)
{
    cfr_gradient(CX_CFR_CON_INFONCE, CP, CK, 1.0);
    cfr_gradient(CX_CFR_CON_SHARED, CP, CK, 1.0);
    cfr_gradient(CX_CFR_CON_INFONCE, CP, CK, 0.3);
    cfr_gradient(CX_CFR_CON_SHARED, CP, CK, 0.3);
    cfr_gradient(CX_CFR_CON_SHARED, 1, CK, 0.5);
    cfr_gradient(CX_CFR_CON_SHARED, CP, 0, 0.5);
}
END_TEST

/* L_TSC: a queue with entries of every class (and one of none), simplex targets, a matching
 * that is not the identity. */
enum { LB = 5, LQ = 6, LC = 3, LD = 4 };

typedef struct {
    float z[LB * LD], queue[LQ * LD], targets[LC * LD];
    int32_t y[LB], qlabel[LQ], assign[LC];
    double work[CX_TSC_WORK(LQ, LC, LD)];
    cx_tsc_bank bank;
    float dloss;
} tsc_ctx;

static double tsc_f(void *ctx)
{
    tsc_ctx *c = ctx;
    return c->dloss * cx_tsc_loss(c->z, c->y, LB, LD, &c->bank, 1, NULL, c->work);
}

START_TEST(gradient_tsc)
{
    tsc_ctx c;
    memset(&c, 0, sizeof c);
    gc_fill_normal(c.z, LB * LD, 51, 1.3);
    gc_fill_normal(c.queue, LQ * LD, 52, 1.0);
    for (int j = 0; j < LQ; j++) {
        double nn = 0;
        for (int d = 0; d < LD; d++)
            nn += (double)c.queue[j * LD + d] * c.queue[j * LD + d];
        for (int d = 0; d < LD; d++)
            c.queue[j * LD + d] = (float)(c.queue[j * LD + d] / sqrt(nn));
    }
    ck_assert_int_eq(cx_tsc_simplex(LC, LD, c.targets), 0);
    int32_t y[LB] = {0, 2, 1, 1, 0}, ql[LQ] = {1, 0, 2, 1, 0, 2}, as[LC] = {1, 2, 0};
    memcpy(c.y, y, sizeof y);
    memcpy(c.qlabel, ql, sizeof ql);
    memcpy(c.assign, as, sizeof as);
    c.dloss = 0.6f;
    for (int round = 0; round < 2; round++) {
        /* T 0.5 and tw 0.2 (finite differences stay accurate), then without a queue. */
        c.bank = (cx_tsc_bank){.queue = c.queue, .qlabel = c.qlabel, .Q = round ? 0 : LQ,
                               .targets = c.targets, .assign = c.assign, .C = LC, .T = 0.5,
                               .tw = round ? 1.0 : 0.2};
        float dz[LB * LD];
        gc_fill_nan(dz, LB * LD);
        double l = cx_tsc_loss(c.z, c.y, LB, LD, &c.bank, c.dloss, dz, c.work);
        ck_assert(isfinite(l) && l > 0);
        gc_var v[] = {{"dz", c.z, dz, LB * LD}};
        gc_opts o = gc_opts_default();
        o.h = 1e-3;
        o.max_coords = 0;
        gc_report rep;
        gc_assert_passed(gc_check(tsc_f, NULL, &c, v, 1, &o, &rep), &rep, "L_TSC");
    }
}
END_TEST

/* The simplex targets' cosines, and the matching of centroids to the targets by hand. */
START_TEST(tsc_targets_and_matching)
{
    float t[4 * 5], cent[4 * 5];
    ck_assert_int_eq(cx_tsc_simplex(4, 5, t), 0);
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            double dot = 0;
            for (int d = 0; d < 5; d++)
                dot += (double)t[a * 5 + d] * t[b * 5 + d];
            ck_assert_double_eq_tol(dot, a == b ? 1.0 : -1.0 / 3, 1e-6);
        }
    ck_assert_int_eq(cx_tsc_simplex(6, 5, t), -1);
    ck_assert_int_eq(cx_tsc_simplex(1, 5, t), -1);
    /* Class c's centroid lies near target perm[c]: the matching must find perm. */
    int perm[4] = {2, 0, 3, 1};
    int32_t seen[4] = {0}, assign[4];
    float q[4 * 5];
    int32_t y[4] = {0, 1, 2, 3};
    for (int c = 0; c < 4; c++)
        for (int d = 0; d < 5; d++)
            q[c * 5 + d] = t[perm[c] * 5 + d] + 0.1f * (d == c);
    double u[5], dw[CX_TSC_ASSIGN_DWORK(4)];
    int32_t iw[CX_TSC_ASSIGN_IWORK(4)];
    cx_tsc_centroids_update(cent, seen, q, y, 4, 4, 5, 0.9, u);
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(seen[c], 1);
    cx_tsc_assign(cent, seen, t, 4, 5, assign, dw, iw);
    for (int c = 0; c < 4; c++)
        ck_assert_int_eq(assign[c], perm[c]);
    /* A greedy matching would fail here: class 0 is nearest target 0 but class 1 needs it more. */
    float t2[2 * 2] = {1, 0, 0, 1}, c2[2 * 2] = {0.8f, 0.6f, 1, 0};
    int32_t s2[2] = {1, 1}, a2[2];
    cx_tsc_assign(c2, s2, t2, 2, 2, a2, dw, iw);
    ck_assert_int_eq(a2[0], 1);
    ck_assert_int_eq(a2[1], 0);
}
END_TEST

START_TEST(cfr_forms_agree_with_one_positive)
{
    cfr_ctx c;
    memset(&c, 0, sizeof c);
    gc_fill_normal(c.q, CB * CD, 41, 1.0);
    gc_fill_normal(c.pos, CB * CD, 42, 1.0);
    gc_fill_normal(c.neg, CB * CK * CD, 43, 1.0);
    float a[CB * CD], b[CB * CD];
    double la = cx_cfr_con(c.q, c.pos, c.neg, CB, 1, CK, CD, 0.7, CX_CFR_CON_INFONCE, 1, a, c.work);
    double lb = cx_cfr_con(c.q, c.pos, c.neg, CB, 1, CK, CD, 0.7, CX_CFR_CON_SHARED, 1, b, c.work);
    ck_assert_double_eq_tol(la, lb, 1e-12);
    for (int k = 0; k < CB * CD; k++)
        ck_assert_float_eq_tol(a[k], b[k], 1e-6);
    /* Without negatives the InfoNCE form is exactly zero. */
    ck_assert(cx_cfr_con(c.q, c.pos, c.neg, CB, 1, 0, CD, 0.7, CX_CFR_CON_INFONCE, 1, a, c.work) ==
              0.0);
}
END_TEST

START_TEST(cfr_weight_schedule)
{
    ck_assert_double_eq_tol(cx_cfr_weight(0, 10), 1.5, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(5, 10), 0.5, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(10, 10), 1.5, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(0, 7), 1.5, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(7, 7), 1.5, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(1, 4), 1.0, 1e-12);
    ck_assert_double_eq_tol(cx_cfr_weight(3, 4), 1.0, 1e-12);
}
END_TEST

typedef struct {
    double c;
    int64_t row;
} cfr_cand;

static int cfr_cand_cmp(const void *a, const void *b)
{
    const cfr_cand *x = a, *y = b;
    if (x->c != y->c)
        return x->c > y->c ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

enum { SN = 48, SC = 4, SD = 5, SB = 6, SK = 7, SP = 4 };

START_TEST(cfr_hard_negatives_match_a_sort)
{
    float pool[SN * SD], q[SB * SD];
    int32_t yp[SN], yq[SB];
    int64_t sample[SB], start[SC + 1], rows[SN];
    int64_t pos[SB * SP], neg[SB * SK], pos1[SP], neg1[SK];
    double work[SK];
    cx_err err;
    gc_fill_normal(pool, SN * SD, 51, 1.0);
    gc_fill_normal(q, SB * SD, 52, 1.0);
    for (int r = 0; r < SN; r++)
        yp[r] = (r * 7 + r / 5) % SC;
    /* Ties: exact copies and power-of-two multiples (the same cosine to the bit), in other
     * classes and later rows, and two calibration samples equal to pool rows. */
    for (int r = 30; r < SN; r++)
        for (int d = 0; d < SD; d++)
            pool[r * SD + d] = (r % 2 ? 2.0f : 1.0f) * pool[(r - 30) * SD + d];
    memcpy(q, pool + 3 * SD, SD * sizeof(float));
    memcpy(q + 2 * SD, pool + 10 * SD, SD * sizeof(float));
    for (int i = 0; i < SB; i++) {
        yq[i] = i % SC;
        sample[i] = 100 + 3 * i;
    }
    must(cx_cfr_pool_index(yp, SN, SC, start, rows, &err), &err);
    ck_assert_int_eq(start[0], 0);
    ck_assert_int_eq(start[SC], SN);
    for (int c = 0; c < SC; c++)
        for (int64_t k = start[c]; k < start[c + 1]; k++) {
            ck_assert_int_eq(yp[rows[k]], c);
            if (k > start[c])
                ck_assert_int_lt(rows[k - 1], rows[k]);
        }
    must(cx_cfr_select(q, yq, sample, SB, pool, yp, start, rows, SN, SC, SD, SP, SK, 9, 2, pos,
                       neg, work, &err), &err);
    int ties = 0;
    for (int i = 0; i < SB; i++) {
        cfr_cand cand[SN];
        int n = 0;
        double nq = 0;
        for (int d = 0; d < SD; d++)
            nq += (double)q[i * SD + d] * q[i * SD + d];
        nq = sqrt(nq);
        for (int r = 0; r < SN; r++) {
            if (yp[r] == yq[i])
                continue;
            double dot = 0, nx = 0;
            for (int d = 0; d < SD; d++) {
                dot += (double)q[i * SD + d] * pool[r * SD + d];
                nx += (double)pool[r * SD + d] * pool[r * SD + d];
            }
            cand[n].c = dot / (nq * sqrt(nx));
            cand[n++].row = r;
        }
        qsort(cand, (size_t)n, sizeof *cand, cfr_cand_cmp);
        for (int k = 0; k < SK; k++) {
            ck_assert_msg(neg[i * SK + k] == cand[k].row, "sample %d rank %d: %lld, sort %lld", i,
                          k, (long long)neg[i * SK + k], (long long)cand[k].row);
            if (k > 0 && cand[k].c == cand[k - 1].c)
                ties++;
        }
        for (int p = 0; p < SP; p++)
            ck_assert_int_eq(yp[pos[i * SP + p]], yq[i]);
        /* A sample draws the same positives alone as in the batch; another epoch, others. */
        must(cx_cfr_select(q + i * SD, yq + i, sample + i, 1, pool, yp, start, rows, SN, SC, SD,
                           SP, SK, 9, 2, pos1, neg1, work, &err), &err);
        ck_assert(memcmp(pos1, pos + i * SP, sizeof pos1) == 0);
        ck_assert(memcmp(neg1, neg + i * SK, sizeof neg1) == 0);
    }
    ck_assert_int_gt(ties, 0);
    int differ = 0;
    int64_t posb[SB * SP];
    must(cx_cfr_select(q, yq, sample, SB, pool, yp, start, rows, SN, SC, SD, SP, SK, 9, 3, posb,
                       neg, work, &err), &err);
    for (int k = 0; k < SB * SP; k++)
        differ += posb[k] != pos[k];
    ck_assert_int_gt(differ, 0);

    /* Bad input: too few rows outside the class, an empty class, a label out of range. */
    ck_assert_int_eq(cx_cfr_select(q, yq, sample, SB, pool, yp, start, rows, SN, SC, SD, SP,
                                   SN, 9, 2, pos, NULL, NULL, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "hard negatives"));
    int64_t hole[SC + 2];
    int32_t yp5[SN];
    for (int r = 0; r < SN; r++)
        yp5[r] = yp[r] == 1 ? 0 : yp[r];
    must(cx_cfr_pool_index(yp5, SN, SC, hole, rows, &err), &err);
    ck_assert_int_eq(cx_cfr_select(q, yq, sample, SB, pool, yp5, hole, rows, SN, SC, SD, SP, SK,
                                   9, 2, pos, neg, work, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 1 has no"));
    yp5[17] = SC;
    ck_assert_int_eq(cx_cfr_pool_index(yp5, SN, SC, hole, rows, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "row 17"));
}
END_TEST

/* One whole CFR step (loss, dW, db, updated W and b) against PyTorch autograd (cfr.fx). */
START_TEST(cfr_step_matches_torch)
{
    fx_file f;
    fx_load_named(&f, "cfr.fx");
    cx_cfr_step_shape s = {.B = 6, .Din = 5, .Dout = 4, .C = 3, .P = 2, .K = 3, .tau = 0.5,
                           .lambda = 0.7, .lr = 0.1, .epoch = 1, .epochs = 3,
                           .form = CX_CFR_CON_INFONCE};
    size_t nx = (size_t)s.B * s.Din, nw = (size_t)s.Dout * s.Din;
    float *x = gc_fbuf(nx), *W = gc_fbuf(nw), *b = gc_fbuf(s.Dout);
    float *Wc = gc_fbuf((size_t)s.C * s.Dout), *bc = gc_fbuf(s.C);
    float *pos = gc_fbuf((size_t)s.B * s.P * s.Dout), *neg = gc_fbuf((size_t)s.B * s.K * s.Dout);
    float *dW = gc_fbuf(nw), *db = gc_fbuf(s.Dout);
    int32_t y[6];
    cx_err err = {0};
    fx_to_float(fx_need(&f, "step", "x", nx), x);
    fx_to_float(fx_need(&f, "step", "W", nw), W);
    fx_to_float(fx_need(&f, "step", "b", s.Dout), b);
    fx_to_float(fx_need(&f, "step", "Wc", (size_t)s.C * s.Dout), Wc);
    fx_to_float(fx_need(&f, "step", "bc", s.C), bc);
    fx_to_float(fx_need(&f, "step", "pos", (size_t)s.B * s.P * s.Dout), pos);
    fx_to_float(fx_need(&f, "step", "neg", (size_t)s.B * s.K * s.Dout), neg);
    must(fx_to_int32(fx_need(&f, "step", "y", s.B), y, &err), &err);
    double *work = gc_dbuf(CX_CFR_STEP_WORK(&s));
    float *fwork = gc_fbuf(CX_CFR_STEP_FWORK(&s));
    float l = (float)cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, NULL, dW, db, work, fwork);
    fx_assert_close(&l, &f, "step", "loss", 1, 1e-5);
    fx_assert_close(dW, &f, "step", "dW", nw, 1e-5);
    fx_assert_close(db, &f, "step", "db", s.Dout, 1e-5);
    fx_assert_close(W, &f, "step", "W1", nw, 1e-5);
    fx_assert_close(b, &f, "step", "b1", s.Dout, 1e-5);
    float *owned[] = {x, W, b, Wc, bc, pos, neg, dW, db, fwork};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(owned[i]);
    free(work);
    fx_free(&f);
}
END_TEST

/* A CFR step with L_TSC on a training batch (loss, dW, db) against PyTorch autograd. */
START_TEST(cfr_step_tsc_matches_torch)
{
    fx_file f;
    fx_load_named(&f, "cfr.fx");
    cx_cfr_step_shape s = {.B = 4, .Din = 5, .Dout = 4, .C = 3, .P = 2, .K = 3, .tau = 0.5,
                           .lambda = 0.7, .lr = 0.1, .epoch = 1, .epochs = 3,
                           .form = CX_CFR_CON_INFONCE, .tsc = 0.8, .Bt = 5, .Q = 6};
    size_t nx = (size_t)s.B * s.Din, nxt = (size_t)s.Bt * s.Din, nw = (size_t)s.Dout * s.Din;
    float *x = gc_fbuf(nx), *xt = gc_fbuf(nxt), *W = gc_fbuf(nw), *b = gc_fbuf(s.Dout);
    float *Wc = gc_fbuf((size_t)s.C * s.Dout), *bc = gc_fbuf(s.C);
    float *pos = gc_fbuf((size_t)s.B * s.P * s.Dout), *neg = gc_fbuf((size_t)s.B * s.K * s.Dout);
    float *queue = gc_fbuf((size_t)s.Q * s.Dout), *targets = gc_fbuf((size_t)s.C * s.Dout);
    float *dW = gc_fbuf(nw), *db = gc_fbuf(s.Dout);
    int32_t y[4], yt[5], ql[6], as[3];
    cx_err err = {0};
    fx_to_float(fx_need(&f, "tstep", "x", nx), x);
    fx_to_float(fx_need(&f, "tstep", "xt", nxt), xt);
    fx_to_float(fx_need(&f, "tstep", "W", nw), W);
    fx_to_float(fx_need(&f, "tstep", "b", s.Dout), b);
    fx_to_float(fx_need(&f, "tstep", "Wc", (size_t)s.C * s.Dout), Wc);
    fx_to_float(fx_need(&f, "tstep", "bc", s.C), bc);
    fx_to_float(fx_need(&f, "tstep", "pos", (size_t)s.B * s.P * s.Dout), pos);
    fx_to_float(fx_need(&f, "tstep", "neg", (size_t)s.B * s.K * s.Dout), neg);
    fx_to_float(fx_need(&f, "tstep", "queue", (size_t)s.Q * s.Dout), queue);
    must(fx_to_int32(fx_need(&f, "tstep", "y", s.B), y, &err), &err);
    must(fx_to_int32(fx_need(&f, "tstep", "yt", s.Bt), yt, &err), &err);
    must(fx_to_int32(fx_need(&f, "tstep", "qlabel", s.Q), ql, &err), &err);
    must(fx_to_int32(fx_need(&f, "tstep", "assign", s.C), as, &err), &err);
    /* The targets are cx_tsc_simplex's: the fixture wrote them from the same formula. */
    ck_assert_int_eq(cx_tsc_simplex(s.C, s.Dout, targets), 0);
    cx_tsc_bank bank = {.queue = queue, .qlabel = ql, .Q = s.Q, .targets = targets,
                        .assign = as, .C = s.C, .T = 0.07, .tw = 0.2};
    cx_cfr_tsc_batch tb = {.xt = xt, .yt = yt, .bank = &bank};
    double *work = gc_dbuf(CX_CFR_STEP_WORK(&s));
    float *fwork = gc_fbuf(CX_CFR_STEP_FWORK(&s));
    float l = (float)cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, &tb, dW, db, work, fwork);
    fx_assert_close(&l, &f, "tstep", "loss", 1, 1e-5);
    fx_assert_close(dW, &f, "tstep", "dW", nw, 1e-5);
    fx_assert_close(db, &f, "tstep", "db", s.Dout, 1e-5);
    float *owned[] = {x, xt, W, b, Wc, bc, pos, neg, queue, targets, dW, db, fwork};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(owned[i]);
    free(work);
    fx_free(&f);
}
END_TEST

/* The normalised form (a CLIP run's zero-shot classifier scores z / ||z||): dW and db against
 * central differences of the returned loss (lr 0 leaves W, b as they are). */
START_TEST(cfr_step_normalized_gradient)
{
    cx_cfr_step_shape s = {.B = 5, .Din = 4, .Dout = 3, .C = 3, .P = 2, .K = 2, .tau = 0.7,
                           .lambda = 0.6, .lr = 0, .epoch = 1, .epochs = 4,
                           .form = CX_CFR_CON_INFONCE, .normalize = 1};
    size_t nx = (size_t)s.B * s.Din, nw = (size_t)s.Dout * s.Din;
    float *x = gc_fbuf(nx), *W = gc_fbuf(nw), *b = gc_fbuf(s.Dout);
    float *Wc = gc_fbuf((size_t)s.C * s.Dout), *bc = gc_fbuf(s.C);
    float *pos = gc_fbuf((size_t)s.B * s.P * s.Dout), *neg = gc_fbuf((size_t)s.B * s.K * s.Dout);
    float *dW = gc_fbuf(nw), *db = gc_fbuf(s.Dout), *g2 = gc_fbuf(nw), *g3 = gc_fbuf(s.Dout);
    cx_rng r;
    cx_rng_seed(&r, 11, 0);
    float *all[] = {x, W, b, Wc, bc, pos, neg};
    size_t len[] = {nx, nw, (size_t)s.Dout, (size_t)s.C * s.Dout, (size_t)s.C,
                    (size_t)s.B * s.P * s.Dout, (size_t)s.B * s.K * s.Dout};
    for (size_t k = 0; k < 7; k++)
        for (size_t i = 0; i < len[k]; i++)
            all[k][i] = (float)cx_rng_normal(&r);
    for (size_t i = 0; i < (size_t)s.C * s.Dout; i++)
        Wc[i] *= 3; /* logits that matter next to L_con */
    int32_t y[5] = {0, 2, 1, 1, 0};
    double *work = gc_dbuf(CX_CFR_STEP_WORK(&s));
    float *fwork = gc_fbuf(CX_CFR_STEP_FWORK(&s));
    cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, NULL, dW, db, work, fwork);
    /* The unnormalised form gives another gradient here: the test sees the normalisation. */
    s.normalize = 0;
    cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, NULL, g2, g3, work, fwork);
    s.normalize = 1;
    double differ = 0;
    for (size_t i = 0; i < nw; i++)
        differ += fabs((double)g2[i] - dW[i]);
    ck_assert(differ > 1e-2);
    const float h = 1e-2f;
    for (size_t i = 0; i < nw + (size_t)s.Dout; i++) {
        float *v = i < nw ? W + i : b + (i - nw);
        float keep = *v;
        *v = keep + h;
        double lp = cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, NULL, NULL, NULL, work, fwork);
        *v = keep - h;
        double lm = cx_cfr_step(&s, x, y, W, b, Wc, bc, pos, neg, NULL, NULL, NULL, work, fwork);
        *v = keep;
        double fd = (lp - lm) / (2 * h), an = i < nw ? dW[i] : db[i - nw];
        ck_assert_msg(fabs(fd - an) <= 2e-3 + 2e-2 * fabs(fd), "param %zu: analytic %g, fd %g",
                      i, an, fd);
    }
    float *owned[] = {x, W, b, Wc, bc, pos, neg, dW, db, g2, g3, fwork};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++)
        free(owned[i]);
    free(work);
}
END_TEST

START_TEST(cfr_con_matches_torch)
{
    fx_file f;
    fx_load_named(&f, "cfr.fx");
    int cases = (int)fx_need(&f, "", "cases", 1)->v[0];
    ck_assert_int_ge(cases, 1);
    const char *forms[] = {"infonce", "shared"};
    char pre[32], key[64];
    for (int n = 0; n < cases; n++) {
        snprintf(pre, sizeof pre, "c%d", n);
        const fx_tensor *sh = fx_need(&f, pre, "shape", 4);
        int B = (int)sh->v[0], P = (int)sh->v[1], K = (int)sh->v[2], D = (int)sh->v[3];
        double tau = fx_need(&f, pre, "tau", 1)->v[0];
        float dloss = (float)fx_need(&f, pre, "dloss", 1)->v[0];
        float *q = gc_fbuf((size_t)B * D), *pos = gc_fbuf((size_t)B * P * D);
        float *neg = gc_fbuf((size_t)B * K * D), *dq = gc_fbuf((size_t)B * D);
        double *work = gc_dbuf(CX_CFR_CON_WORK(P, K, D));
        fx_to_float(fx_need(&f, pre, "q", (size_t)B * D), q);
        fx_to_float(fx_need(&f, pre, "pos", (size_t)B * P * D), pos);
        fx_to_float(fx_need(&f, pre, "neg", (size_t)B * K * D), neg);
        for (int m = 0; m < 2; m++) {
            gc_fill_nan(dq, (size_t)B * D);
            float l = (float)cx_cfr_con(q, pos, neg, B, P, K, D, tau, (cx_cfr_con_form)m, dloss,
                                        dq, work);
            snprintf(key, sizeof key, "%s_loss", forms[m]);
            fx_assert_close(&l, &f, pre, key, 1, 1e-6);
            snprintf(key, sizeof key, "%s_dq", forms[m]);
            fx_assert_close(dq, &f, pre, key, (size_t)B * D, 1e-6);
        }
        free(q);
        free(pos);
        free(neg);
        free(dq);
        free(work);
    }
    fx_free(&f);
}
END_TEST

/* ---- post-hoc by hand --------------------------------------------------------------------- */

static cx_eval_classifier linear2(void)
{
    cx_eval_classifier c = {0};
    c.kind = CX_CLF_LINEAR;
    c.C = 2;
    c.D = 2;
    c.scale = 1;
    c.w = malloc(4 * sizeof *c.w);
    ck_assert_ptr_nonnull(c.w);
    /* rows (3, 4) and (0, 2): norms 5 and 2 */
    c.w[0] = 3;
    c.w[1] = 4;
    c.w[2] = 0;
    c.w[3] = 2;
    return c;
}

START_TEST(tau_norm_by_hand)
{
    cx_err err;
    int64_t counts[2] = {30, 10};
    cx_eval_classifier c = linear2();
    must(cx_posthoc_apply(&c, CX_POSTHOC_TAU_NORM, 1.0, counts, &err), &err);
    ck_assert_float_eq_tol(c.w[0], 0.6f, 1e-6);
    ck_assert_float_eq_tol(c.w[1], 0.8f, 1e-6);
    ck_assert_float_eq_tol(c.w[2], 0.0f, 1e-6);
    ck_assert_float_eq_tol(c.w[3], 1.0f, 1e-6);
    cx_eval_classifier_free(&c);
    c = linear2();
    /* tau 0.5: divided by sqrt(5) and sqrt(2) */
    must(cx_posthoc_apply(&c, CX_POSTHOC_TAU_NORM, 0.5, counts, &err), &err);
    ck_assert_float_eq_tol(c.w[0], 1.3416408f, 1e-6);
    ck_assert_float_eq_tol(c.w[1], 1.7888544f, 1e-6);
    ck_assert_float_eq_tol(c.w[3], 1.4142135f, 1e-6);
    cx_eval_classifier_free(&c);
    c = linear2();
    must(cx_posthoc_apply(&c, CX_POSTHOC_TAU_NORM, 0.0, counts, &err), &err);
    ck_assert_float_eq(c.w[0], 3.0f);
    ck_assert_float_eq(c.w[3], 2.0f);
    /* A cosine classifier's rows are unit already: refused. */
    c.normalize = 1;
    ck_assert_int_eq(cx_posthoc_apply(&c, CX_POSTHOC_TAU_NORM, 1.0, counts, &err), CX_EUSAGE);
    cx_eval_classifier_free(&c);
}
END_TEST

START_TEST(logit_adjust_by_hand)
{
    cx_err err;
    int64_t counts[2] = {30, 10}; /* pi = 0.75, 0.25 */
    cx_eval_classifier c = linear2();
    must(cx_posthoc_apply(&c, CX_POSTHOC_LOGIT_ADJUST, 1.0, counts, &err), &err);
    ck_assert_ptr_nonnull(c.b);
    ck_assert_float_eq_tol(c.b[0], 0.28768207f, 1e-6); /* -log 0.75 */
    ck_assert_float_eq_tol(c.b[1], 1.3862944f, 1e-6);  /* -log 0.25 */
    /* Again with tau 0.5 on top: adds half as much. */
    must(cx_posthoc_apply(&c, CX_POSTHOC_LOGIT_ADJUST, 0.5, counts, &err), &err);
    ck_assert_float_eq_tol(c.b[0], 1.5f * 0.28768207f, 1e-6);
    ck_assert_float_eq_tol(c.b[1], 1.5f * 1.3862944f, 1e-6);
    /* The weights are untouched. */
    ck_assert_float_eq(c.w[0], 3.0f);
    cx_eval_classifier_free(&c);
}
END_TEST

START_TEST(tau_chosen_on_validation)
{
    cx_err err;
    int64_t counts[2] = {30, 10};
    cx_eval_classifier c = linear2();
    /* x0 = (1, 0) is class 0 (logits 3, 0); x1 = (0.35, 0.5): logits 1.05 + 2 = 3.05 vs 1.0,
     * class 1 wins when 1 + 1.3863 tau > 3.05 + 0.2877 tau, tau > 1.866: the grid's first
     * tau that gets both right is 1.9 (class 0 stays right: 3 + 0.2877 tau > 1.3863 tau for
     * tau < 2.73). */
    float x[4] = {1, 0, 0.35f, 0.5f};
    int32_t y[2] = {0, 1};
    double grid[32], acc[32], tau, best;
    int ng = cx_posthoc_default_grid(CX_POSTHOC_LOGIT_ADJUST, grid, 32);
    ck_assert_int_eq(ng, 21);
    ck_assert_float_eq_tol(grid[20], 2.0, 1e-12);
    must(cx_posthoc_select(&c, CX_POSTHOC_LOGIT_ADJUST, grid, ng, counts, x, y, 2, &tau, &best,
                           acc, &err),
         &err);
    ck_assert_double_eq_tol(tau, 1.9, 1e-12);
    ck_assert_double_eq_tol(best, 1.0, 1e-12);
    ck_assert_double_eq_tol(acc[0], 0.5, 1e-12);
    ck_assert_double_eq_tol(acc[18], 0.5, 1e-12);
    ck_assert_double_eq_tol(acc[20], 1.0, 1e-12);
    ck_assert_ptr_null(c.b); /* the classifier itself is not changed */
    cx_eval_classifier_free(&c);
}
END_TEST

/* ---- held-out validation rows ------------------------------------------------------------- */

START_TEST(heldout_rows_balanced_outside_the_subset)
{
    cx_err err;
    /* 3 classes, 40 rows: labels i % 3; the subset keeps every row below 20 and row 30. */
    int32_t labels[40];
    for (int i = 0; i < 40; i++)
        labels[i] = i % 3;
    uint32_t kept[21];
    for (int i = 0; i < 20; i++)
        kept[i] = (uint32_t)i;
    kept[20] = 30;
    char *names[3] = {"a", "b", "c"};
    uint32_t *rows = NULL, *rows2 = NULL;
    size_t n = 0, n2 = 0;
    must(cx_val_heldout_rows(labels, 40, kept, 21, 3, names, 4, 7, "l.txt", &rows, &n, &err),
         &err);
    ck_assert_uint_eq(n, 12);
    int per[3] = {0};
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_ge(rows[i], 20);
        ck_assert_uint_ne(rows[i], 30);
        if (i)
            ck_assert_uint_gt(rows[i], rows[i - 1]);
        per[labels[rows[i]]]++;
    }
    ck_assert_int_eq(per[0], 4);
    ck_assert_int_eq(per[1], 4);
    ck_assert_int_eq(per[2], 4);
    /* Same seed, same rows; another seed, another draw; asking more than the smallest class
     * has (rows 20..39 hold 7, 6 and 7 of classes 0, 1, 2, less row 30 of class 0) caps at 6. */
    must(cx_val_heldout_rows(labels, 40, kept, 21, 3, names, 4, 7, "l.txt", &rows2, &n2, &err),
         &err);
    ck_assert_uint_eq(n2, n);
    ck_assert_int_eq(memcmp(rows, rows2, n * sizeof *rows), 0);
    free(rows2);
    must(cx_val_heldout_rows(labels, 40, kept, 21, 3, names, 100, 8, "l.txt", &rows2, &n2, &err),
         &err);
    ck_assert_uint_eq(n2, 18);
    free(rows2);
    free(rows);
    /* A class whose every row is in the subset: refused, naming it. */
    uint32_t all[40];
    size_t na = 0;
    for (uint32_t i = 0; i < 40; i++)
        if (labels[i] == 1 || i < 20)
            all[na++] = i;
    ck_assert_int_eq(cx_val_heldout_rows(labels, 40, all, na, 3, names, 4, 7, "l.txt", &rows,
                                         &n, &err),
                     CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 1 ('b')"));
    ck_assert_ptr_null(rows);
}
END_TEST

/* ---- the val: split ----------------------------------------------------------------------- */

START_TEST(val_split_loads_balanced)
{
    cx_err err;
    char dir[] = "/tmp/clipx-check-retrain-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    cx_synth_opts o = CX_SYNTH_DEFAULTS;
    o.classes = 5;
    o.n = 300;
    o.dim = 4;
    o.test_per_class = 3;
    o.seed = 5;
    must(cx_synth_write(&o, a, &err), &err);
    o.val_per_class = 7;
    must(cx_synth_write(&o, b, &err), &err);
    char ya[300], yb[300];
    snprintf(ya, sizeof ya, "%s/dataset.yaml", a);
    snprintf(yb, sizeof yb, "%s/dataset.yaml", b);
    cx_dataset ds;
    cx_load_options lo = {0};
    lo.parts = CX_LOAD_VAL | CX_LOAD_TEST | CX_LOAD_IMAGES;
    must(cx_dataset_load(yb, &lo, &ds, &err), &err);
    ck_assert(ds.has_val);
    ck_assert_uint_eq(ds.val.n, 35);
    ck_assert_uint_eq(ds.val.dim, 4);
    int per[5] = {0};
    for (size_t i = 0; i < ds.val.n; i++)
        per[ds.val.y[i]]++;
    for (int c = 0; c < 5; c++)
        ck_assert_int_eq(per[c], 7);
    /* Not the test split's samples. */
    ck_assert_int_ne(memcmp(ds.val.x, ds.test.x, sizeof(float) * 4 * 3), 0);
    cx_dataset_free(&ds);
    /* Without a val split: has_val 0, and asking for it is an error naming the YAML. */
    lo.parts = CX_LOAD_NONE;
    must(cx_dataset_load(ya, &lo, &ds, &err), &err);
    ck_assert(!ds.has_val);
    cx_dataset_free(&ds);
    lo.parts = CX_LOAD_VAL;
    ck_assert_int_ne(cx_dataset_load(ya, &lo, &ds, &err), CX_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "no 'val' split"));
    /* Parts 0 (every split) leaves val alone: it is asked for, never implied. */
    must(cx_dataset_load(yb, NULL, &ds, &err), &err);
    ck_assert_uint_eq(ds.val.n, 0);
    cx_dataset_free(&ds);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- the retrain schema ------------------------------------------------------------------- */

START_TEST(retrain_keys_belong_to_methods)
{
    cx_err err;
    cx_retrain_config cfg;
    const char *ok[] = {"method=tau-norm", "from=/tmp/x", "tau_norm.tau=0.5"};
    must(cx_retrain_config_load(&cfg, NULL, ok, 3, &err), &err);
    double tau;
    must(cx_retrain_config_validate(&cfg, &tau, &err), &err);
    ck_assert_double_eq(tau, 0.5);
    cx_retrain_config_free(&cfg);
    const char *bad[] = {"method=crt", "from=/tmp/x", "tau_norm.tau=0.5"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "tau_norm.tau: not a key of method crt"));
    const char *bad2[] = {"method=tau-norm", "from=/tmp/x", "grw.p=1"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad2, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "grw.p: not a key of method tau-norm"));
    const char *bad3[] = {"method=tau-norm", "from=/tmp/x", "tau_norm.tau=3"};
    must(cx_retrain_config_load(&cfg, NULL, bad3, 3, &err), &err);
    ck_assert_int_eq(cx_retrain_config_validate(&cfg, &tau, &err), CX_EUSAGE);
    cx_retrain_config_free(&cfg);
    ck_assert(cx_retrain_key_applies(CX_RETRAIN_MARC, "grw.p"));
    ck_assert(!cx_retrain_key_applies(CX_RETRAIN_LWS, "grw.p"));
    ck_assert(cx_retrain_key_applies(CX_RETRAIN_LWS, "seed"));
}
END_TEST

/* Rows of G = 2 C groups (class, attribute), cnt[g] rows each, features: class and attribute
 * directions plus noise. */
static void dfr_data(int C, int D, const int *cnt, float **x, int32_t **y, int32_t **g, size_t *n)
{
    size_t N = 0;
    for (int k = 0; k < 2 * C; k++)
        N += (size_t)cnt[k];
    *x = malloc(sizeof **x * N * (size_t)D);
    *y = malloc(sizeof **y * N);
    *g = malloc(sizeof **g * N);
    ck_assert(*x && *y && *g);
    cx_rng r;
    cx_rng_seed(&r, 7, 1);
    size_t i = 0;
    /* Interleave the groups so the rows of a cell are not contiguous. */
    int left[16];
    for (int k = 0; k < 2 * C; k++)
        left[k] = cnt[k];
    while (i < N)
        for (int k = 0; k < 2 * C; k++) {
            if (!left[k])
                continue;
            left[k]--;
            (*y)[i] = k / 2;
            (*g)[i] = k;
            for (int d = 0; d < D; d++)
                (*x)[i * D + d] = (float)(cx_rng_normal(&r) + (d == k / 2 ? 1.5 : 0.0) +
                                          (d == D - 1 ? 2.0 * (k % 2) : 0.0));
            i++;
        }
    *n = N;
}

START_TEST(dfr_balanced_half_equals_the_probe)
{
    enum { C = 3, D = 6 };
    const int cnt[2 * C] = {20, 20, 20, 20, 20, 20};
    float *x;
    int32_t *y, *g;
    size_t N;
    dfr_data(C, D, cnt, &x, &y, &g, &N);
    cx_err err;
    int32_t *h1, *h2;
    size_t n1, n2;
    must(cx_dfr_halves(g, N, 2 * C, 3, &h1, &n1, &h2, &n2, &err), &err);
    ck_assert_uint_eq(n1, 60);
    ck_assert_uint_eq(n2, 60);
    int per[2 * C] = {0};
    unsigned char *seen = calloc(N, 1);
    for (size_t i = 0; i < n1; i++) {
        if (i)
            ck_assert_int_lt(h1[i - 1], h1[i]);
        per[g[h1[i]]]++;
        seen[h1[i]]++;
    }
    for (size_t i = 0; i < n2; i++)
        seen[h2[i]]++;
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq(seen[i], 1);
    for (int k = 0; k < 2 * C; k++)
        ck_assert_int_eq(per[k], 10);
    /* The first half by hand, in its (increasing) order, fitted by the probe directly. */
    float *xh = malloc(sizeof *xh * n1 * D);
    int32_t *yh = malloc(sizeof *yh * n1);
    for (size_t i = 0; i < n1; i++) {
        memcpy(xh + i * D, x + (size_t)h1[i] * D, sizeof *xh * D);
        yh[i] = y[h1[i]];
    }
    const double lambda = 3e-3;
    cx_probe_opts po;
    cx_probe_defaults(&po);
    po.grid = 1;
    po.lambda = lambda;
    cx_eval_classifier ref, got;
    must(cx_eval_linear_probe(&ref, xh, yh, (int)n1, C, D, &po, NULL, &err), &err);
    cx_dfr_opts o;
    cx_dfr_defaults(&o);
    /* Every draw of a balanced half is the whole half: one draw or three give the probe. */
    for (int draws = 1; draws <= 3; draws += 2) {
        o.draws = draws;
        int m = 0;
        must(cx_dfr_fit_lambda(&got, x, y, g, 2 * C, h1, n1, C, D, lambda, &o, &m, &err), &err);
        ck_assert_int_eq(m, 10);
        ck_assert_int_eq(got.normalize, ref.normalize);
        ck_assert_float_eq(got.scale, ref.scale);
        double wmax = 0;
        for (int i = 0; i < C * D; i++) {
            ck_assert_double_eq_tol(got.w[i], ref.w[i], 1e-6);
            wmax = fmax(wmax, fabs(ref.w[i]));
        }
        for (int c = 0; c < C; c++)
            ck_assert_double_eq_tol(got.b[c], ref.b[c], 1e-6);
        ck_assert_double_gt(wmax, 0.1); /* a real fit, not zeros on both sides */
        cx_eval_classifier_free(&got);
    }
    /* By class (no groups) the same half is another draw: cells are classes of 40 rows. */
    o.draws = 1;
    int m = 0;
    must(cx_dfr_fit_lambda(&got, x, y, y, C, h1, n1, C, D, lambda, &o, &m, &err), &err);
    ck_assert_int_eq(m, 20);
    cx_eval_classifier_free(&got);
    cx_eval_classifier_free(&ref);
    free(xh);
    free(yh);
    free(seen);
    free(h1);
    free(h2);
    free(x);
    free(y);
    free(g);
}
END_TEST

START_TEST(dfr_balances_the_smallest_group_and_picks_lambda)
{
    enum { C = 2, D = 5 };
    const int cnt[2 * C] = {60, 8, 12, 50};
    float *x;
    int32_t *y, *g;
    size_t N;
    dfr_data(C, D, cnt, &x, &y, &g, &N);
    cx_err err;
    cx_dfr_opts o;
    cx_dfr_defaults(&o);
    o.draws = 4;
    o.probe.grid = 5;
    o.probe.log10_min = -4;
    o.probe.log10_max = 0;
    cx_eval_classifier clf;
    cx_dfr_info info;
    must(cx_dfr_fit(&clf, x, y, g, N, C, 2 * C, D, &o, &info, &err), &err);
    ck_assert_int_eq(info.by_group, 1);
    ck_assert_int_eq(info.per_cell, 4); /* ceil(8 / 2): the smallest group's first half */
    ck_assert_int_eq(info.n_first, 30 + 4 + 6 + 25);
    ck_assert_int_eq(info.n_second, (int)N - info.n_first);
    ck_assert_int_eq(info.grid, 5);
    int at = -1;
    double best = -1;
    for (int i = info.grid - 1; i >= 0; i--)
        if (info.grid_acc[i] > best) {
            best = info.grid_acc[i];
            at = i;
        }
    ck_assert_double_eq(info.lambda, info.grid_lambda[at]);
    ck_assert_double_eq(info.sel_acc, best);
    ck_assert_double_eq_tol(info.grid_lambda[0], 1e-4, 1e-12);
    cx_eval_classifier_free(&clf);
    cx_dfr_info_free(&info);
    /* A cell outside the range is bad data. */
    g[3] = 9;
    ck_assert_int_eq(cx_dfr_fit(&clf, x, y, g, N, C, 2 * C, D, &o, NULL, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "cell 9"));
    free(x);
    free(y);
    free(g);
}
END_TEST

/* 1 when c is the calibration set of (y, pred): calib_rows exactly the misclassified rows and
 * pool_rows exactly the correct ones, both increasing; the pool's labels, features and class
 * index consistent with them. Independent of cx_cfr_calib_build's code path. */
static int calib_is_right(const cx_cfr_calib *c, const float *x, const int32_t *y,
                          const int32_t *pred, int64_t N, int C, int D)
{
    int64_t ic = 0, ip = 0;
    for (int64_t r = 0; r < N; r++) {
        if (pred[r] != y[r]) {
            if (ic >= c->n_calib || c->calib_rows[ic++] != r)
                return 0;
        } else {
            if (ip >= c->n_pool || c->pool_rows[ip] != r || c->pool_labels[ip] != y[r])
                return 0;
            if (memcmp(c->pool_x + ip * D, x + r * D, sizeof *x * (size_t)D))
                return 0;
            ip++;
        }
    }
    if (ic != c->n_calib || ip != c->n_pool || c->class_start[0] != 0 ||
        c->class_start[C] != c->n_pool)
        return 0;
    for (int k = 0; k < C; k++)
        for (int64_t j = c->class_start[k]; j < c->class_start[k + 1]; j++)
            if (c->pool_labels[c->class_rows[j]] != k ||
                (j > c->class_start[k] && c->class_rows[j - 1] >= c->class_rows[j]))
                return 0;
    return 1;
}

START_TEST(cfr_calibration_set_by_hand)
{
    enum { N = 8, C = 3, D = 2 };
    const int32_t y[N] = {0, 1, 2, 0, 1, 2, 0, 1};
    int32_t pred[N] = {0, 2, 2, 1, 1, 0, 0, 1}; /* rows 1, 3, 5 wrong */
    float x[N * D];
    for (int r = 0; r < N; r++) {
        x[r * D] = (float)r;
        x[r * D + 1] = 10.0f + r;
    }
    cx_cfr_calib c;
    cx_err err;
    must(cx_cfr_calib_build(&c, x, y, pred, N, C, D, &err), &err);
    const int64_t calib[] = {1, 3, 5}, pool[] = {0, 2, 4, 6, 7};
    const int32_t ypool[] = {0, 2, 1, 0, 1};
    /* Positions in the pool: class 0 = rows 0, 6; class 1 = rows 4, 7; class 2 = row 2. */
    const int64_t start[] = {0, 2, 4, 5}, byclass[] = {0, 3, 2, 4, 1};
    ck_assert_int_eq(c.n_calib, 3);
    ck_assert_int_eq(c.n_pool, 5);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(c.calib_rows[i], calib[i]);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(c.pool_rows[i], pool[i]);
        ck_assert_int_eq(c.pool_labels[i], ypool[i]);
        ck_assert_int_eq(c.class_rows[i], byclass[i]);
        ck_assert(c.pool_x[i * D] == (float)pool[i] && c.pool_x[i * D + 1] == 10.0f + pool[i]);
    }
    for (int k = 0; k <= C; k++)
        ck_assert_int_eq(c.class_start[k], start[k]);
    ck_assert(calib_is_right(&c, x, y, pred, N, C, D));
    /* The checker must fail on a correct row put in the calibration set. */
    int64_t saved = c.calib_rows[1];
    c.calib_rows[1] = 2;
    ck_assert(!calib_is_right(&c, x, y, pred, N, C, D));
    c.calib_rows[1] = saved;
    cx_cfr_calib_free(&c);
    cx_cfr_calib_free(&c); /* safe twice */

    /* All right: an empty calibration set, the whole data as the pool; no features. */
    must(cx_cfr_calib_build(&c, NULL, y, y, N, C, D, &err), &err);
    ck_assert_int_eq(c.n_calib, 0);
    ck_assert_int_eq(c.n_pool, N);
    ck_assert_ptr_null(c.pool_x);
    cx_cfr_calib_free(&c);

    /* A prediction out of range names its row, and leaves *out empty. */
    pred[6] = C;
    ck_assert_int_eq(cx_cfr_calib_build(&c, x, y, pred, N, C, D, &err), CX_EDATA);
    ck_assert_ptr_nonnull(strstr(err.msg, "row 6"));
    ck_assert_ptr_null(c.calib_rows);
}
END_TEST

START_TEST(dfr_keys_belong_to_dfr)
{
    cx_err err;
    cx_retrain_config cfg;
    const char *ok[] = {"method=dfr", "from=/tmp/x", "dfr.draws=3", "val.per_class=20"};
    must(cx_retrain_config_load(&cfg, NULL, ok, 4, &err), &err);
    ck_assert_int_eq(cfg.method, CX_RETRAIN_DFR);
    ck_assert_int_eq(cfg.dfr.draws, 3);
    cx_retrain_config_free(&cfg);
    const char *def[] = {"method=dfr", "from=/tmp/x"};
    must(cx_retrain_config_load(&cfg, NULL, def, 2, &err), &err);
    ck_assert_int_eq(cfg.dfr.draws, 10);
    cx_retrain_config_free(&cfg);
    const char *bad[] = {"method=crt", "from=/tmp/x", "dfr.draws=3"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "dfr.draws: not a key of method crt (it belongs to dfr)"));
    const char *bad2[] = {"method=tau-norm", "from=/tmp/x", "dfr.draws=3"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad2, 3, &err), CX_EUSAGE);
    const char *bad3[] = {"method=dfr", "from=/tmp/x", "epochs=3"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad3, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "epochs: not a key of method dfr"));
    const char *bad4[] = {"method=dfr", "from=/tmp/x", "dfr.draws=0"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad4, 3, &err), CX_EUSAGE);
    for (int m = 0; m < CX_RETRAIN_METHODS; m++)
        ck_assert_int_eq(cx_retrain_key_applies(m, "dfr.draws"), m == CX_RETRAIN_DFR);
    ck_assert(cx_retrain_key_applies(CX_RETRAIN_DFR, "val.per_class"));
    ck_assert(cx_retrain_key_applies(CX_RETRAIN_TAU_NORM, "val.per_class"));
    ck_assert(!cx_retrain_key_applies(CX_RETRAIN_CRT, "val.per_class"));
    ck_assert_str_eq(cx_retrain_method_name(CX_RETRAIN_DFR), "dfr");
}
END_TEST

/* cfr's keys are known and refused on other methods, `method: cfr` takes them; at their
 * defaults they are not written back, so other runs' config.yaml is unchanged. */
START_TEST(cfr_keys_belong_to_cfr_only)
{
    cx_err err;
    cx_retrain_config cfg;
    const char *bad[] = {"method=crt", "from=/tmp/x", "cfr.lr=0.01"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "cfr.lr: not a key of method crt (it belongs to cfr)"));
    const char *bad2[] = {"method=dfr", "from=/tmp/x", "cfr.tau=0.5"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, bad2, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "cfr.tau: not a key of method dfr"));
    const char *cfr[] = {"method=cfr", "from=/tmp/x", "cfr.lr=0.01", "batch=32",
                         "val.per_class=7", "cfr.select=worst-group"};
    must(cx_retrain_config_load(&cfg, NULL, cfr, 6, &err), &err);
    ck_assert_int_eq(cfg.method, CX_RETRAIN_CFR);
    ck_assert_double_eq(cfg.cfr.lr, 0.01);
    ck_assert_int_eq(cfg.batch, 32);
    ck_assert_int_eq(cfg.cfr.select, CX_RETRAIN_SELECT_WORST_GROUP);
    cx_retrain_config_free(&cfg);
    const char *cfr_bad[] = {"method=cfr", "from=/tmp/x", "optim.lr=0.01"};
    ck_assert_int_eq(cx_retrain_config_load(&cfg, NULL, cfr_bad, 3, &err), CX_EUSAGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "optim.lr: not a key of method cfr"));
    for (int m = 0; m < CX_RETRAIN_METHODS; m++) {
        ck_assert_int_eq(cx_retrain_key_applies(m, "cfr.negatives"), m == CX_RETRAIN_CFR);
        ck_assert_int_eq(cx_retrain_key_applies(m, "cfr.lambda"), m == CX_RETRAIN_CFR);
    }
    ck_assert_str_eq(cx_retrain_method_name(CX_RETRAIN_CFR), "cfr");

    const char *def[] = {"method=crt", "from=/tmp/x"};
    must(cx_retrain_config_load(&cfg, NULL, def, 2, &err), &err);
    ck_assert_int_eq(cfg.cfr.epochs, 10);
    ck_assert_double_eq(cfg.cfr.lr, 0.001);
    ck_assert_double_eq(cfg.cfr.tau, 1.0);
    ck_assert_int_eq(cfg.cfr.positives, 16);
    ck_assert_int_eq(cfg.cfr.negatives, 16);
    ck_assert_double_eq(cfg.cfr.lambda, 1.0);
    char path[512];
    snprintf(path, sizeof path, "%s/cfr_keys_%d.yaml", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (int)getpid());
    must(cx_retrain_config_write(&cfg, path, &err), &err);
    cx_retrain_config_free(&cfg);
    char text[8192];
    FILE *fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    ck_assert_ptr_null(strstr(text, "cfr"));

    /* The schema's ranges, through the plain loader (no method reads these keys yet). */
    const char *ok[] = {"cfr.negatives=0", "cfr.lambda=0", "cfr.lr=0.05", "cfr.positives=1"};
    must(cx_conf_load(&cx_retrain_config_schema, &cfg, NULL, ok, 4, &err), &err);
    ck_assert_int_eq(cfg.cfr.negatives, 0);
    ck_assert_double_eq(cfg.cfr.lr, 0.05);
    must(cx_retrain_config_write(&cfg, path, &err), &err);
    cx_retrain_config_free(&cfg);
    fp = fopen(path, "r");
    ck_assert_ptr_nonnull(fp);
    n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    unlink(path);
    ck_assert_ptr_nonnull(strstr(text, "cfr"));
    ck_assert_ptr_nonnull(strstr(text, "0.05"));
    ck_assert_ptr_null(strstr(text, "tau: 1")); /* still at its default */
    const char *const out_of_range[] = {"cfr.tau=0", "cfr.lr=0", "cfr.positives=0",
                                        "cfr.negatives=-1", "cfr.lambda=-0.5", "cfr.epochs=0"};
    for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
        ck_assert_int_eq(cx_conf_load(&cx_retrain_config_schema, &cfg, NULL, &out_of_range[i], 1,
                                      &err), CX_EUSAGE);
        ck_assert_ptr_nonnull(strstr(err.msg, "cfr."));
    }
}
END_TEST

static Suite *retrain_suite(void)
{
    Suite *s = suite_create("retrain");
    TCase *tc = tcase_create("gradients");
    tcase_add_test(tc, gradient_lws);
    tcase_add_test(tc, gradient_disalign);
    tcase_add_test(tc, gradient_marc);
    tcase_add_test(tc, gradient_prompt_shared);
    tcase_add_test(tc, gradient_prompt_per_class);
    tcase_add_test(tc, gradient_token_decoder_cls);
    tcase_add_test(tc, gradient_token_decoder_mean);
    tcase_add_test(tc, token_decoder_one_token_pools_alike);
    tcase_add_test(tc, token_cache_matches_the_tower);
    tcase_add_test(tc, prompt_context_of_words_is_the_plain_forward);
    tcase_add_test(tc, gradient_cfr_con);
    tcase_add_test(tc, gradient_tsc);
    tcase_add_test(tc, tsc_targets_and_matching);
    tcase_add_test(tc, cfr_forms_agree_with_one_positive);
    suite_add_tcase(s, tc);
    tc = tcase_create("cfr");
    tcase_add_test(tc, cfr_weight_schedule);
    tcase_add_test(tc, cfr_hard_negatives_match_a_sort);
    tcase_add_test(tc, cfr_calibration_set_by_hand);
    suite_add_tcase(s, tc);
    tc = tcase_create("torch");
    tcase_add_test(tc, disalign_and_marc_steps_match_torch);
    tcase_add_test(tc, cfr_con_matches_torch);
    tcase_add_test(tc, cfr_step_matches_torch);
    tcase_add_test(tc, cfr_step_tsc_matches_torch);
    tcase_add_test(tc, cfr_step_normalized_gradient);
    suite_add_tcase(s, tc);
    tc = tcase_create("posthoc");
    tcase_add_test(tc, tau_norm_by_hand);
    tcase_add_test(tc, logit_adjust_by_hand);
    tcase_add_test(tc, tau_chosen_on_validation);
    suite_add_tcase(s, tc);
    tc = tcase_create("validation");
    tcase_add_test(tc, heldout_rows_balanced_outside_the_subset);
    tcase_add_test(tc, retrain_keys_belong_to_methods);
    tcase_add_test(tc, val_split_loads_balanced);
    suite_add_tcase(s, tc);
    tc = tcase_create("dfr");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, dfr_balanced_half_equals_the_probe);
    tcase_add_test(tc, dfr_balances_the_smallest_group_and_picks_lambda);
    tcase_add_test(tc, dfr_keys_belong_to_dfr);
    tcase_add_test(tc, cfr_keys_belong_to_cfr_only);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(retrain_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
