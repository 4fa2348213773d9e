/* Reading a retrained run's classifier and scoring features with it. */
#include "lib/eval/retrain_clf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/base/path.h"
#include "lib/eval/retrain_tokens.h"
#include "lib/run/ckpt.h"
#include "lib/run/run.h"

static cx_status entry_copy(const cx_ckpt *ck, const char *path, const char *name,
                            cx_ckpt_dtype dt, int cols, void **out, size_t *rows, cx_err *err)
{
    const cx_ckpt_entry *e = cx_ckpt_find(ck, name);
    if (!e || e->dtype != dt || e->ndim != (cols ? 2 : 1) || (cols && e->shape[1] != cols))
        return cx_fail(err, CX_EDATA, "%s: entry %s is missing or of another shape", path,
                       name);
    *rows = (size_t)e->shape[0];
    if (!(*out = malloc(e->nbytes ? e->nbytes : 1)))
        return cx_fail(err, CX_ENOMEM, "out of memory");
    memcpy(*out, e->data, e->nbytes);
    return CX_OK;
}

enum { TOK_ROWS = 64 };

struct cx_retrain_tok {
    cx_params p;
    cx_tokdec d;
};

static void tok_free(struct cx_retrain_tok *t)
{
    if (!t)
        return;
    cx_tokdec_free(&t->d);
    cx_params_free(&t->p);
    free(t);
}

/* The token decoder's blocks from model.ckpt's param.decoder.* (the head is clf.w, clf.b). */
static cx_status tok_read(const cx_ckpt *ck, const char *path, cx_retrain_clf *r, cx_err *err)
{
    struct cx_retrain_tok *t = calloc(1, sizeof *t);
    if (!t)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_params_init(&t->p);
    r->tok = t;
    cx_status st;
    if ((st = cx_tokdec_declare(&t->d, &t->p, "decoder", r->tokdec_T, r->D, r->tokdec_depth,
                                r->tokdec_heads, 4 * r->D, CX_TOKDEC_POOL_MEAN, r->C, err)) ||
        (st = cx_params_alloc(&t->p, 0, err)) || (st = cx_tokdec_alloc(&t->d, TOK_ROWS, err)))
        return cx_err_prefix(err, st == CX_EUSAGE ? CX_EDATA : st, "%s", path);
    for (int i = 0; i < t->p.count; i++) {
        char name[CX_PARAM_NAME_MAX + 16];
        snprintf(name, sizeof name, "param.%s", t->p.info[i].name);
        if ((st = cx_ckpt_get_f32(ck, path, name, cx_param_value(&t->p, i), t->p.info[i].size,
                                  err)))
            return st;
    }
    return CX_OK;
}

void cx_retrain_clf_free(cx_retrain_clf *r)
{
    tok_free(r->tok);
    for (int i = 0; i < CX_RETRAIN_MAX_HIDDEN; i++) {
        free(r->hw[i]);
        free(r->hb[i]);
    }
    free(r->w);
    free(r->b);
    free(r->gate_w);
    free(r->proj_w);
    free(r->proj_b);
    memset(r, 0, sizeof *r);
}

cx_status cx_retrain_read_clf(const char *dir, cx_retrain_clf *r, cx_err *err)
{
    memset(r, 0, sizeof *r);
    char *path = cx_run_path(dir, CX_RUN_CKPT);
    if (!path)
        return cx_fail(err, CX_ENOMEM, "out of memory");
    cx_ckpt ck;
    cx_ckpt_init(&ck);
    int64_t m = 0, nz = 0, gated = 0, src = 0;
    double scale = 1, gb = 0;
    size_t rows = 0, nb = 0, ng = 0;
    cx_status st;
    if (!cx_path_exists(path)) {
        st = cx_fail(err, CX_EDATA, "%s: no checkpoint: the retrain has not finished an epoch",
                     path);
        goto fail;
    }
    if ((st = cx_ckpt_read(path, &ck, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "retrain.method", &m, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "retrain.epochs_done", &r->epochs_done, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "retrain.epochs", &r->epochs, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "val.source", &src, err)) ||
        (st = cx_ckpt_get_f64(&ck, path, "clf.tau", &r->tau, err)) ||
        (st = cx_ckpt_get_f64(&ck, path, "clf.scale", &scale, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "clf.normalize", &nz, err)) ||
        (st = cx_ckpt_get_i64(&ck, path, "clf.gated", &gated, err)))
        goto fail;
    const cx_ckpt_entry *e = cx_ckpt_find(&ck, "clf.w");
    if (!e || e->ndim != 2 || e->dtype != CX_CKPT_F32 || e->shape[0] < 1 || e->shape[1] < 1) {
        st = cx_fail(err, CX_EDATA, "%s: entry clf.w is missing or of another shape", path);
        goto fail;
    }
    r->C = (int)e->shape[0];
    int Dx = (int)e->shape[1];
    r->D = gated ? (Dx - 1) / 2 : Dx;
    int64_t nh = 0;
    if (cx_ckpt_find(&ck, "clf.decoder") &&
        (st = cx_ckpt_get_i64(&ck, path, "clf.decoder", &nh, err)))
        goto fail;
    if (nh < 0 || nh > CX_RETRAIN_MAX_HIDDEN || (nh && gated)) {
        st = cx_fail(err, CX_EDATA, "%s: clf.decoder: %lld hidden layers", path, (long long)nh);
        goto fail;
    }
    r->nhidden = (int)nh;
    for (int i = 0; i < r->nhidden; i++) {
        char name[32];
        snprintf(name, sizeof name, "clf.dec_w%d", i);
        const cx_ckpt_entry *he = cx_ckpt_find(&ck, name);
        if (!he || he->ndim != 2 || he->dtype != CX_CKPT_F32 || he->shape[0] < 1 ||
            he->shape[1] < 1 || (i > 0 && he->shape[1] != r->hdims[i])) {
            st = cx_fail(err, CX_EDATA, "%s: entry %s is missing or of another shape", path, name);
            goto fail;
        }
        r->hdims[i] = (int)he->shape[1];
        r->hdims[i + 1] = (int)he->shape[0];
        size_t rows_h = 0, nbh = 0;
        if ((st = entry_copy(&ck, path, name, CX_CKPT_F32, r->hdims[i], (void **)&r->hw[i],
                             &rows_h, err)))
            goto fail;
        snprintf(name, sizeof name, "clf.dec_b%d", i);
        if ((st = entry_copy(&ck, path, name, CX_CKPT_F32, 0, (void **)&r->hb[i], &nbh, err)))
            goto fail;
        if (nbh != (size_t)r->hdims[i + 1]) {
            st = cx_fail(err, CX_EDATA, "%s: %s holds %zu values, %d wanted", path, name, nbh,
                         r->hdims[i + 1]);
            goto fail;
        }
    }
    if (r->nhidden) {
        if (r->hdims[r->nhidden] != Dx) {
            st = cx_fail(err, CX_EDATA, "%s: clf.w takes %d features, the decoder gives %d", path,
                         Dx, r->hdims[r->nhidden]);
            goto fail;
        }
        r->D = r->hdims[0];
    }
    if (gated && (Dx < 3 || Dx % 2 == 0)) {
        st = cx_fail(err, CX_EDATA, "%s: clf.w has %d columns, a gated classifier 2D + 1", path,
                     Dx);
        goto fail;
    }
    if ((st = entry_copy(&ck, path, "clf.w", CX_CKPT_F32, Dx, (void **)&r->w, &rows, err)) ||
        (st = entry_copy(&ck, path, "clf.b", CX_CKPT_F32, 0, (void **)&r->b, &nb, err)))
        goto fail;
    if (nb != (size_t)r->C) {
        st = cx_fail(err, CX_EDATA, "%s: clf.b holds %zu values for %d classes", path, nb, r->C);
        goto fail;
    }
    if (gated) {
        if ((st = entry_copy(&ck, path, "clf.gate_w", CX_CKPT_F32, 0, (void **)&r->gate_w, &ng,
                             err)) ||
            (st = cx_ckpt_get_f64(&ck, path, "clf.gate_b", &gb, err)))
            goto fail;
        if (ng != (size_t)r->D) {
            st = cx_fail(err, CX_EDATA, "%s: clf.gate_w holds %zu values for %d features", path,
                         ng, r->D);
            goto fail;
        }
    }
    if (cx_ckpt_find(&ck, "clf.proj_w")) {
        size_t pr = 0, pb = 0;
        const cx_ckpt_entry *pe = cx_ckpt_find(&ck, "clf.proj_w");
        int64_t tower = 0;
        if (cx_ckpt_find(&ck, "clf.proj_tower") &&
            (st = cx_ckpt_get_i64(&ck, path, "clf.proj_tower", &tower, err)))
            goto fail;
        r->proj_tower = tower != 0;
        r->proj_in = pe->ndim == 2 ? (int)pe->shape[1] : 0;
        if (gated || r->nhidden || r->proj_in < 1) {
            st = cx_fail(err, CX_EDATA, "%s: clf.proj_w beside a gated or decoder classifier",
                         path);
            goto fail;
        }
        if ((st = entry_copy(&ck, path, "clf.proj_w", CX_CKPT_F32, r->proj_in, (void **)&r->proj_w,
                             &pr, err)) ||
            (st = entry_copy(&ck, path, "clf.proj_b", CX_CKPT_F32, 0, (void **)&r->proj_b, &pb,
                             err)))
            goto fail;
        if (pr != (size_t)r->D || pb != (size_t)r->D) {
            st = cx_fail(err, CX_EDATA, "%s: clf.proj_w (%zu, %d) and clf.proj_b (%zu) for %d "
                         "features", path, pr, r->proj_in, pb, r->D);
            goto fail;
        }
    }
    if (cx_ckpt_find(&ck, "clf.tokdec.depth")) {
        int64_t dp = 0, hd = 0, tk = 0;
        if ((st = cx_ckpt_get_i64(&ck, path, "clf.tokdec.depth", &dp, err)) ||
            (st = cx_ckpt_get_i64(&ck, path, "clf.tokdec.heads", &hd, err)) ||
            (st = cx_ckpt_get_i64(&ck, path, "clf.tokdec.tokens", &tk, err)))
            goto fail;
        if (dp < 1 || dp > 64 || hd < 1 || hd > 256 || tk < 1 || tk > 1000000 || gated || r->nhidden) {
            st = cx_fail(err, CX_EDATA, "%s: clf.tokdec: depth %lld, heads %lld, tokens %lld", path,
                         (long long)dp, (long long)hd, (long long)tk);
            goto fail;
        }
        r->tokdec_depth = (int)dp;
        r->tokdec_heads = (int)hd;
        r->tokdec_T = (int)tk;
        if ((st = tok_read(&ck, path, r, err)))
            goto fail;
    }
    r->method = (int)m;
    r->gated = (int)gated;
    r->normalize = (int)nz;
    r->scale = (float)scale;
    r->gate_b = (float)gb;
    r->val_source = (cx_val_source)src;
fail:
    cx_ckpt_free(&ck);
    free(path);
    if (st)
        cx_retrain_clf_free(r);
    return st;
}

/* The decoder's hidden layers on x (n, D), in blocks of rows: *xs (n, hdims[nhidden]). */
static cx_status decode(const cx_retrain_clf *r, const float *x, size_t n, float **xs,
                        cx_eval_classifier *clf, cx_err *err)
{
    enum { ROWS = 1024 };
    int wmax = 0;
    for (int i = 0; i <= r->nhidden; i++)
        if (r->hdims[i] > wmax)
            wmax = r->hdims[i];
    int H = r->hdims[r->nhidden];
    float *out = malloc(sizeof *out * (n ? n : 1) * (size_t)H);
    float *b0 = malloc(sizeof *b0 * ROWS * (size_t)wmax), *b1 = malloc(sizeof *b1 * ROWS * (size_t)wmax);
    if (!out || !b0 || !b1) {
        free(out);
        free(b0);
        free(b1);
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "out of memory for %zu decoded features", n);
    }
    for (size_t lo = 0; lo < n; lo += ROWS) {
        int B = (int)(n - lo < ROWS ? n - lo : ROWS);
        const float *in = x + lo * (size_t)r->D;
        for (int i = 0; i < r->nhidden; i++) {
            int di = r->hdims[i], dn = r->hdims[i + 1];
            float *o = i + 1 == r->nhidden ? out + lo * (size_t)H : (i % 2 ? b1 : b0);
            cx_sgemm(0, 1, B, dn, di, 1.0f, in, di, r->hw[i], di, 0.0f, o, dn);
            for (int k = 0; k < B; k++)
                for (int j = 0; j < dn; j++) {
                    float v = o[(size_t)k * dn + j] + r->hb[i][j];
                    o[(size_t)k * dn + j] = v > 0 ? v : 0;
                }
            in = o;
        }
    }
    free(b0);
    free(b1);
    *xs = out;
    return CX_OK;
}

cx_status cx_retrain_eval_setup(const cx_retrain_clf *r, const float *x, size_t n,
                                cx_eval_classifier *clf, float **xs, cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    *xs = NULL;
    int Dx = r->gated ? 2 * r->D + 1 : r->nhidden ? r->hdims[r->nhidden] : r->D;
    clf->kind = CX_CLF_LINEAR;
    clf->C = r->C;
    clf->D = Dx;
    clf->normalize = r->gated ? 0 : r->normalize;
    clf->scale = r->scale;
    clf->w = malloc(sizeof *clf->w * (size_t)r->C * Dx);
    clf->b = malloc(sizeof *clf->b * (size_t)r->C);
    if (!clf->w || !clf->b) {
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "out of memory");
    }
    memcpy(clf->w, r->w, sizeof *clf->w * (size_t)r->C * Dx);
    memcpy(clf->b, r->b, sizeof *clf->b * (size_t)r->C);
    if (r->nhidden)
        return decode(r, x, n, xs, clf, err);
    if (r->tok) /* x is already pooled (cx_retrain_tok_pool): the head scores it */
        return CX_OK;
    if (r->proj_w) {
        int D = r->D;
        float *o = malloc(sizeof *o * (n ? n : 1) * (size_t)D);
        if (!o) {
            cx_eval_classifier_free(clf);
            return cx_fail(err, CX_ENOMEM, "out of memory for %zu projected features", n);
        }
        int Di = r->proj_in;
        if (n)
            cx_sgemm(0, 1, (int)n, D, Di, 1.0f, x, Di, r->proj_w, Di, 0.0f, o, D);
        for (size_t i = 0; i < n; i++)
            for (int d = 0; d < D; d++)
                o[i * (size_t)D + d] += r->proj_b[d];
        *xs = o;
        return CX_OK;
    }
    if (!r->gated)
        return CX_OK;
    float *a = malloc(sizeof *a * (n ? n : 1) * (size_t)Dx);
    if (!a) {
        cx_eval_classifier_free(clf);
        return cx_fail(err, CX_ENOMEM, "out of memory for %zu gated features", n);
    }
    int D = r->D;
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * (size_t)D;
        float *ai = a + i * (size_t)Dx;
        double s = r->gate_b;
        for (int d = 0; d < D; d++)
            s += (double)r->gate_w[d] * xi[d];
        float g = (float)(1.0 / (1.0 + exp(-s)));
        if (r->normalize)
            cx_eval_normalize_row(ai, xi, D);
        else
            memcpy(ai, xi, sizeof(float) * (size_t)D);
        for (int d = 0; d < D; d++)
            ai[D + d] = g * ai[d];
        ai[2 * D] = g;
    }
    *xs = a;
    return CX_OK;
}

cx_status cx_retrain_tok_pool(const cx_retrain_clf *r, cx_model *m, const cx_split *s,
                              const uint32_t *rows, size_t n, float *out, const char *what,
                              cx_err *err)
{
    if (!r->tok)
        return cx_fail(err, CX_EUSAGE, "%s: the classifier is not a token decoder", what);
    /* A chunk of rows at a time: its tokens (CHUNK T D floats) are all that is held. */
    enum { CHUNK = 4 * TOK_ROWS };
    cx_tokdec *d = &r->tok->d;
    size_t per = (size_t)r->tokdec_T * r->D;
    float *tok = malloc(sizeof *tok * CHUNK * per);
    uint32_t *idx = malloc(sizeof *idx * CHUNK);
    if (!tok || !idx) {
        free(tok);
        free(idx);
        return cx_fail(err, CX_ENOMEM, "%s: out of memory for %d samples' tokens", what, CHUNK);
    }
    cx_status st = CX_OK;
    for (size_t lo = 0; lo < n && !st; lo += CHUNK) {
        size_t k = n - lo < CHUNK ? n - lo : CHUNK;
        for (size_t i = 0; i < k; i++)
            idx[i] = rows ? rows[lo + i] : (uint32_t)(lo + i);
        if ((st = cx_tokdec_cache_split(m, s, idx, k, tok, what, err)))
            break;
        for (size_t b = 0; b < k; b += TOK_ROWS) {
            int B = (int)(k - b < TOK_ROWS ? k - b : TOK_ROWS);
            cx_tokdec_forward(d, &r->tok->p, tok + b * per, B);
            memcpy(out + (lo + b) * (size_t)r->D, d->pooled, sizeof(float) * (size_t)B * r->D);
        }
    }
    free(tok);
    free(idx);
    return st;
}
