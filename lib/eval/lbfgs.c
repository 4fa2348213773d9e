/* L-BFGS with a strong-Wolfe line search (bracketing, then zoom by safeguarded cubic
 * interpolation). The direction comes from the two-loop recursion over a ring of the last m
 * (s, y) pairs, scaled by gamma = s.y / y.y of the newest pair. */
#include "lib/eval/lbfgs.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void cx_lbfgs_defaults(cx_lbfgs_opts *o)
{
    o->m = 10;
    o->max_iter = 500;
    o->gtol = 1e-6;
    o->ftol = 1e-10;
    o->max_ls = 40;
    o->c1 = 1e-4;
    o->c2 = 0.9;
}

const char *cx_lbfgs_stop_name(cx_lbfgs_stop s)
{
    switch (s) {
    case CX_LBFGS_GTOL:
        return "gradient tolerance";
    case CX_LBFGS_FTOL:
        return "function tolerance";
    case CX_LBFGS_MAXITER:
        return "iteration limit";
    case CX_LBFGS_LINESEARCH:
        return "line search found no better point";
    }
    return "?";
}

static double dot(const double *a, const double *b, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int n)
{
    double m = 0.0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* A point on the search line: step a, phi(a) = f(x + a d), phi'(a) = g(x + a d).d. */
typedef struct {
    double a, f, d;
} ls_point;

typedef struct {
    cx_lbfgs_fn fn;
    void *ctx;
    int n;
    const double *x, *dir;
    double f0, d0; /* phi(0), phi'(0) < 0 */
    double c1, c2;
    double *xt, *gt; /* the last trial point and its gradient */
    int evals, budget;
} line;

static ls_point probe(line *ls, double a)
{
    for (int i = 0; i < ls->n; i++)
        ls->xt[i] = ls->x[i] + a * ls->dir[i];
    double f = ls->fn(ls->ctx, ls->xt, ls->gt);
    ls->evals++;
    ls_point p = {a, f, NAN};
    if (isfinite(f))
        p.d = dot(ls->gt, ls->dir, ls->n);
    else
        p.f = INFINITY; /* too far: treated as a rise */
    return p;
}

static int armijo(const line *ls, ls_point p)
{
    return p.f <= ls->f0 + ls->c1 * p.a * ls->d0;
}

static int curvature(const line *ls, ls_point p)
{
    return fabs(p.d) <= -ls->c2 * ls->d0;
}

/* Minimiser of the cubic through (lo.a, lo.f, lo.d) and (hi.a, hi.f, hi.d), kept inside the
 * middle 80% of the interval; bisection when the cubic is not usable. */
static double interpolate(ls_point lo, ls_point hi)
{
    double left = fmin(lo.a, hi.a), width = fabs(hi.a - lo.a);
    double a = 0.5 * (lo.a + hi.a);
    if (isfinite(hi.f) && isfinite(hi.d)) {
        double d1 = lo.d + hi.d - 3.0 * (lo.f - hi.f) / (lo.a - hi.a);
        double disc = d1 * d1 - lo.d * hi.d;
        if (disc >= 0.0) {
            double d2 = copysign(sqrt(disc), hi.a - lo.a);
            double c = hi.a - (hi.a - lo.a) * (hi.d + d2 - d1) / (hi.d - lo.d + 2.0 * d2);
            if (isfinite(c))
                a = c;
        }
    }
    if (!(a >= left + 0.1 * width && a <= left + 0.9 * width))
        a = 0.5 * (lo.a + hi.a);
    return a;
}

/* Returns 1 with the accepted point in xt/gt and *out; 0 when the budget ran out, with *out the
 * best Armijo point seen (out->a == 0 when none), whose x/g are NOT in xt/gt. */
static int zoom(line *ls, ls_point lo, ls_point hi, ls_point *out)
{
    while (ls->evals < ls->budget) {
        if (fabs(hi.a - lo.a) <= DBL_EPSILON * fmax(1.0, fabs(lo.a)))
            break;
        ls_point p = probe(ls, interpolate(lo, hi));
        if (!armijo(ls, p) || p.f >= lo.f) {
            hi = p;
        } else {
            if (curvature(ls, p)) {
                *out = p;
                return 1;
            }
            if (p.d * (hi.a - lo.a) >= 0.0)
                hi = lo;
            lo = p;
        }
    }
    *out = lo;
    return 0;
}

static int search(line *ls, double a, ls_point *out)
{
    ls_point prev = {0.0, ls->f0, ls->d0};
    for (int k = 0; ls->evals < ls->budget; k++) {
        ls_point p = probe(ls, a);
        if (!armijo(ls, p) || (k > 0 && p.f >= prev.f))
            return zoom(ls, prev, p, out);
        if (curvature(ls, p)) {
            *out = p;
            return 1;
        }
        if (p.d >= 0.0)
            return zoom(ls, p, prev, out);
        prev = p;
        a *= 2.0;
    }
    *out = prev;
    return 0;
}

cx_status cx_lbfgs_minimize(cx_lbfgs_fn fn, void *ctx, double *x, int n, const cx_lbfgs_opts *o,
                            cx_lbfgs_info *info, cx_err *err)
{
    cx_lbfgs_opts def;
    if (!o) {
        cx_lbfgs_defaults(&def);
        o = &def;
    }
    if (n < 1 || o->m < 1 || o->max_iter < 0 || o->max_ls < 2 || !(o->c1 > 0.0) ||
        !(o->c1 < o->c2) || !(o->c2 < 1.0) || !(o->gtol >= 0.0) || !(o->ftol >= 0.0))
        return cx_fail(err, CX_EUSAGE,
                       "L-BFGS: invalid options (n %d, m %d, max_iter %d, max_ls %d, c1 %g, c2 %g)",
                       n, o->m, o->max_iter, o->max_ls, o->c1, o->c2);
    int m = o->m;
    size_t nn = (size_t)n;
    double *mem = malloc(sizeof *mem * (nn * (2 * (size_t)m + 4) + 2 * (size_t)m));
    if (!mem)
        return cx_fail(err, CX_ENOMEM, "L-BFGS: out of memory for %d variables", n);
    double *S = mem, *Y = S + nn * m, *g = Y + nn * m, *dir = g + nn, *xt = dir + nn,
           *gt = xt + nn, *rho = gt + nn, *alpha = rho + m;

    cx_lbfgs_info local = {0};
    double f = fn(ctx, x, g);
    local.evals = 1;
    if (!isfinite(f)) {
        free(mem);
        return cx_fail(err, CX_EDIVERGED, "L-BFGS: objective is not finite at the start");
    }
    int count = 0, newest = -1; /* pairs in the ring, index of the newest */
    local.stop = CX_LBFGS_MAXITER;
    double gmax = max_abs(g, n);
    if (gmax <= o->gtol)
        local.stop = CX_LBFGS_GTOL;
    while (local.stop == CX_LBFGS_MAXITER && local.iters < o->max_iter) {
        /* Two-loop recursion: dir = -H g. */
        for (int i = 0; i < n; i++)
            dir[i] = -g[i];
        for (int j = 0; j < count; j++) {
            int k = (newest - j + m) % m;
            alpha[k] = rho[k] * dot(S + k * nn, dir, n);
            const double *yk = Y + k * nn;
            for (int i = 0; i < n; i++)
                dir[i] -= alpha[k] * yk[i];
        }
        if (count > 0) {
            const double *yk = Y + newest * nn;
            double gamma = 1.0 / (rho[newest] * dot(yk, yk, n));
            for (int i = 0; i < n; i++)
                dir[i] *= gamma;
        }
        for (int j = count - 1; j >= 0; j--) {
            int k = (newest - j + m) % m;
            double beta = rho[k] * dot(Y + k * nn, dir, n);
            const double *sk = S + k * nn;
            for (int i = 0; i < n; i++)
                dir[i] += (alpha[k] - beta) * sk[i];
        }
        double d0 = dot(g, dir, n);
        if (!(d0 < 0.0)) {
            /* Not a descent direction (rounding): restart from steepest descent. */
            count = 0;
            for (int i = 0; i < n; i++)
                dir[i] = -g[i];
            d0 = -dot(g, g, n);
        }
        /* Unit step once curvature is known; before that, a step of length 1 along -g. */
        double a0 = count > 0 ? 1.0 : 1.0 / sqrt(-d0);

        line ls = {fn, ctx, n, x, dir, f, d0, o->c1, o->c2, xt, gt, 0, o->max_ls};
        ls_point best;
        int ok = search(&ls, a0, &best);
        local.evals += ls.evals;
        if (!ok) {
            if (best.a <= 0.0) {
                if (count > 0) {
                    count = 0; /* a stale model may have misled the search; retry once plainly */
                    local.iters++;
                    continue;
                }
                local.stop = CX_LBFGS_LINESEARCH;
                break;
            }
            /* Take the best decrease found; its gradient must be evaluated again. */
            for (int i = 0; i < n; i++)
                xt[i] = x[i] + best.a * dir[i];
            best.f = fn(ctx, xt, gt);
            local.evals++;
            if (!isfinite(best.f) || best.f >= f) {
                local.stop = CX_LBFGS_LINESEARCH;
                break;
            }
        }
        /* New pair s = xt - x, y = gt - g, kept only with positive curvature. */
        int slot = (newest + 1) % m;
        double *sk = S + slot * nn, *yk = Y + slot * nn;
        double sy = 0.0, yy = 0.0;
        for (int i = 0; i < n; i++) {
            sk[i] = xt[i] - x[i];
            yk[i] = gt[i] - g[i];
            sy += sk[i] * yk[i];
            yy += yk[i] * yk[i];
        }
        if (sy > DBL_EPSILON * yy && yy > 0.0) {
            rho[slot] = 1.0 / sy;
            newest = slot;
            if (count < m)
                count++;
        }
        memcpy(x, xt, sizeof *x * nn);
        memcpy(g, gt, sizeof *g * nn);
        double f_prev = f;
        f = best.f;
        local.iters++;
        gmax = max_abs(g, n);
        if (gmax <= o->gtol)
            local.stop = CX_LBFGS_GTOL;
        else if (f_prev - f <= o->ftol * fmax(fmax(fabs(f_prev), fabs(f)), 1.0))
            local.stop = CX_LBFGS_FTOL;
    }
    local.f = f;
    local.gmax = max_abs(g, n);
    if (info)
        *info = local;
    free(mem);
    return CX_OK;
}
