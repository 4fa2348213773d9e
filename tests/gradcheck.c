/* Finite-difference gradient checker: central differences on a random subset of coordinates,
 * with kink detection for piecewise-linear functions. See gradcheck.h. */
#include "config.h"
#include "tests/gradcheck.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/rng.h"

#define GC_TAG_COORDS 0x6763636fULL /* "gcco" */
#define GC_TAG_PROJ 0x67637072ULL   /* "gcpr" */
#define GC_TAG_FILL 0x6763666cULL   /* "gcfl" */

gc_opts gc_opts_default(void)
{
    gc_opts o = {.h = 1e-2, .rtol = 2e-2, .atol = 1e-3, .max_coords = 64, .seed = 1,
                 .max_skip_frac = 0.2};
    return o;
}

static double excess(double a, double n, const gc_opts *o)
{
    double m = fabs(a) > fabs(n) ? fabs(a) : fabs(n);
    return fabs(a - n) / (o->atol + o->rtol * m);
}

/* Indices to check: all of 0..n-1, or a seeded random subset of max_coords of them. */
static size_t pick_coords(size_t *idx, size_t n, size_t max, uint64_t seed, int var)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if (max == 0 || n <= max)
        return n;
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(GC_TAG_COORDS, (uint64_t)var, 0));
    for (size_t i = 0; i < max; i++) {
        size_t j = i + (size_t)(cx_rng_uniform(&r) * (double)(n - i));
        if (j >= n)
            j = n - 1;
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    return max;
}

int gc_check(gc_fn f, gc_skip_fn skip, void *ctx, const gc_var *vars, int nvars,
             const gc_opts *opts, gc_report *rep)
{
    gc_opts o = opts ? *opts : gc_opts_default();
    memset(rep, 0, sizeof *rep);
    size_t drawn = 0;
    int failed = 0;
    for (int v = 0; v < nvars && !failed; v++) {
        const gc_var *var = &vars[v];
        if (var->n == 0)
            continue;
        size_t *idx = malloc(sizeof *idx * var->n);
        if (!idx) {
            snprintf(rep->msg, sizeof rep->msg, "%s: out of memory for %zu indices", var->name,
                     var->n);
            return -1;
        }
        size_t m = pick_coords(idx, var->n, o.max_coords, o.seed, v);
        drawn += m;
        for (size_t c = 0; c < m; c++) {
            size_t i = idx[c];
            if (skip && skip(ctx, v, i, o.h)) {
                rep->skipped++;
                continue;
            }
            float x0 = var->x[i];
            float xp = (float)((double)x0 + o.h), xm = (float)((double)x0 - o.h);
            var->x[i] = xp;
            double fp = f(ctx);
            var->x[i] = xm;
            double fm = f(ctx);
            var->x[i] = x0;
            double a = var->grad[i];
            double num = (fp - fm) / ((double)xp - (double)xm);
            double e = excess(a, num, &o);
            if (!(e <= 1.0)) {
                /* A kink within h: the one-sided differences disagree, one side agrees with a. */
                double f0 = f(ctx);
                double fwd = (fp - f0) / ((double)xp - (double)x0);
                double bwd = (f0 - fm) / ((double)x0 - (double)xm);
                if (excess(fwd, bwd, &o) > 1.0 &&
                    (excess(a, fwd, &o) <= 1.0 || excess(a, bwd, &o) <= 1.0)) {
                    rep->skipped++;
                    continue;
                }
            }
            rep->checked++;
            if (e > rep->worst || isnan(e))
                rep->worst = isnan(e) ? INFINITY : e;
            if (!(e <= 1.0)) {
                snprintf(rep->msg, sizeof rep->msg,
                         "%s[%zu]: analytic %.8g, numeric %.8g (x = %.8g, h = %g, "
                         "tolerance %g + %g * max)",
                         var->name, i, a, num, (double)x0, o.h, o.atol, o.rtol);
                failed = 1;
                break;
            }
        }
        free(idx);
    }
    if (failed)
        return -1;
    if (drawn > 0 && (double)rep->skipped > o.max_skip_frac * (double)drawn) {
        snprintf(rep->msg, sizeof rep->msg,
                 "%zu of %zu coordinates skipped as non-differentiable (limit %.0f%%)",
                 rep->skipped, drawn, 100.0 * o.max_skip_frac);
        return -1;
    }
    if (rep->checked == 0 && drawn > 0) {
        snprintf(rep->msg, sizeof rep->msg, "no coordinate was checked");
        return -1;
    }
    return 0;
}

int gc_proj_init(gc_proj *p, size_t n, uint64_t seed)
{
    p->n = n;
    p->r = malloc(sizeof *p->r * (n ? n : 1));
    if (!p->r)
        return -1;
    gc_fill_normal(p->r, n, seed ^ GC_TAG_PROJ, 1.0);
    return 0;
}

void gc_proj_free(gc_proj *p)
{
    free(p->r);
    p->r = NULL;
    p->n = 0;
}

double gc_proj_dot(const gc_proj *p, const float *out)
{
    double s = 0.0;
    for (size_t i = 0; i < p->n; i++)
        s += (double)p->r[i] * out[i];
    return s;
}

void gc_proj_dout(const gc_proj *p, float *dout)
{
    memcpy(dout, p->r, sizeof *dout * p->n);
}

void gc_fill_normal(float *x, size_t n, uint64_t seed, double sd)
{
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(GC_TAG_FILL, 0, 0));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sd * cx_rng_normal(&r));
}

float *gc_fbuf(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

double *gc_dbuf(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

float *gc_frand(size_t n, uint64_t seed, double sd)
{
    float *p = gc_fbuf(n);
    gc_fill_normal(p, n, seed, sd);
    return p;
}

void gc_fill_nan(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
}

uint64_t gc_hash_bytes(const void *p, size_t bytes)
{
    const unsigned char *c = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < bytes; i++)
        h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

/* 2x2 stride-2 max pooling, the first maximum winning; idx as the op's. Input in double. */
void gc_naive_maxpool2x2(double *out, int32_t *idx, const double *in, int B, int C, int H, int W)
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

void gc_assert_close(const float *got, const double *want, size_t n, double rtol, double atol,
                     const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        ck_assert_msg(fabs(g - w) <= atol + rtol * fabs(w), "%s[%zu]: got %.9g, want %.9g", what,
                      i, g, w);
    }
}

void gc_assert_passed(int rc, const gc_report *rep, const char *what)
{
    ck_assert_msg(rc == 0, "%s: %s", what, rep->msg);
    ck_assert_msg(rep->checked > 0, "%s: nothing checked", what);
}
