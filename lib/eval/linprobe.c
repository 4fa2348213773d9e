/* Linear probe. The objective runs over row blocks, each thread on its own: logits by sgemm,
 * softmax and row losses (double log-sum-exp), the weight gradient by a second sgemm into the
 * thread's own slot; slots and row losses are summed in a fixed order. Parameters stay in
 * double for L-BFGS and go to float for the products. */
#include "lib/eval/linprobe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/base/rng.h"
#include "lib/eval/internal.h"
#include "lib/eval/score.h"

/* Stream tag of the validation split ("probe"). */
#define TAG_PROBE_SPLIT 0x70726f6265ULL

void cx_probe_defaults(cx_probe_opts *o)
{
    o->grid = 45;
    o->log10_min = -6.0;
    o->log10_max = 5.0;
    o->lambda = 1e-4;
    o->val_frac = 0.2;
    o->seed = 0;
    o->normalize = 1;
    o->chunk = CX_EVAL_CHUNK_DEFAULT;
    cx_lbfgs_defaults(&o->lbfgs);
    o->lbfgs.max_iter = 1000;
    o->lbfgs.gtol = 1e-5;
}

void cx_probe_info_free(cx_probe_info *info)
{
    if (!info)
        return;
    free(info->grid_lambda);
    free(info->grid_val_acc);
    free(info->val_rows);
    memset(info, 0, sizeof *info);
}

/* Buffers of one objective; sized once, reused by every evaluation. Threads own row blocks
 * (single-threaded sgemm each) and their own gradient slots, summed in thread order. */
typedef struct {
    const float *x;
    const int32_t *y;
    int N, C, D, block, nth;
    double lambda;
    float *wf;      /* (C, D) */
    float *z;       /* (nth, block, C): logits, then d loss / d logits */
    float *gw;      /* (nth, C, D) */
    double *gb;     /* (nth, C) */
    double *loss;   /* (N) */
    int *used;      /* (nth): whether thread t took a block in this evaluation */
} objective;

static void objective_free(objective *o)
{
    free(o->wf);
    free(o->z);
    free(o->gw);
    free(o->gb);
    free(o->loss);
    free(o->used);
    o->wf = o->z = o->gw = NULL;
    o->gb = o->loss = NULL;
    o->used = NULL;
}

static cx_status objective_init(objective *o, const float *x, const int32_t *y, int N, int C,
                                int D, int block, cx_err *err)
{
    memset(o, 0, sizeof *o);
    o->x = x;
    o->y = y;
    o->N = N;
    o->C = C;
    o->D = D;
    o->nth = cx_eval_max_threads();
    o->block = block < 1 ? CX_EVAL_CHUNK_DEFAULT : block;
    if (o->block > N)
        o->block = N > 0 ? N : 1;
    size_t nth = (size_t)o->nth;
    o->wf = malloc(sizeof *o->wf * (size_t)C * D);
    o->z = malloc(sizeof *o->z * nth * o->block * C);
    o->gw = malloc(sizeof *o->gw * nth * C * D);
    o->gb = malloc(sizeof *o->gb * nth * C);
    o->loss = malloc(sizeof *o->loss * (size_t)(N > 0 ? N : 1));
    o->used = malloc(sizeof *o->used * nth);
    if (!o->wf || !o->z || !o->gw || !o->gb || !o->loss || !o->used) {
        objective_free(o);
        return cx_fail(err, CX_ENOMEM, "linear probe: out of memory for %d classes x %d features",
                       C, D);
    }
    return CX_OK;
}

static double objective_eval(void *ctx, const double *theta, double *g)
{
    objective *o = ctx;
    int C = o->C, D = o->D, N = o->N;
    size_t nw = (size_t)C * D;
    const double *b = theta + nw;
    for (size_t i = 0; i < nw; i++)
        o->wf[i] = (float)theta[i];
    double invn = 1.0 / N;
    int blocks = (N + o->block - 1) / o->block;
    memset(o->used, 0, sizeof *o->used * (size_t)o->nth);
    if (g)
        memset(o->gb, 0, sizeof *o->gb * (size_t)o->nth * C);
    int bad = 0;
    cx_eval_blas_serial();
#pragma omp parallel for schedule(static) reduction(| : bad)
    for (int bk = 0; bk < blocks; bk++) {
        int tid = cx_eval_thread_id();
        int r0 = bk * o->block, rows = N - r0 < o->block ? N - r0 : o->block;
        const float *xc = o->x + (size_t)r0 * D;
        float *z = o->z + (size_t)tid * o->block * C;
        cx_sgemm(0, 1, rows, C, D, 1.0f, xc, D, o->wf, D, 0.0f, z, C);
        for (int i = 0; i < rows; i++) {
            float *zi = z + (size_t)i * C;
            int yi = o->y[r0 + i];
            double m = -INFINITY;
            for (int c = 0; c < C; c++)
                m = fmax(m, (double)zi[c] + b[c]);
            double s = 0.0;
            for (int c = 0; c < C; c++)
                s += exp((double)zi[c] + b[c] - m);
            double lse = m + log(s);
            double li = lse - ((double)zi[yi] + b[yi]);
            o->loss[r0 + i] = li;
            bad |= !isfinite(li);
            for (int c = 0; c < C; c++)
                zi[c] = (float)(exp((double)zi[c] + b[c] - lse) * invn);
            zi[yi] -= (float)invn;
        }
        if (g) {
            double *gb = o->gb + (size_t)tid * C;
            for (int i = 0; i < rows; i++) {
                const float *zi = z + (size_t)i * C;
                for (int c = 0; c < C; c++)
                    gb[c] += zi[c];
            }
            float *gw = o->gw + (size_t)tid * nw;
            cx_sgemm(1, 0, C, D, rows, 1.0f, z, C, xc, D, o->used[tid] ? 1.0f : 0.0f, gw, D);
        }
        o->used[tid] = 1;
    }
    cx_eval_blas_restore();
    if (bad)
        return INFINITY;
    double f = 0.0, reg = 0.0;
    for (int i = 0; i < N; i++)
        f += o->loss[i];
    for (size_t i = 0; i < nw; i++)
        reg += theta[i] * theta[i];
    f = f * invn + 0.5 * o->lambda * reg;
    if (g) {
        for (size_t i = 0; i < nw; i++)
            g[i] = o->lambda * theta[i];
        memset(g + nw, 0, sizeof *g * (size_t)C);
        for (int t = 0; t < o->nth; t++) {
            if (!o->used[t])
                continue;
            const float *gw = o->gw + (size_t)t * nw;
            const double *gb = o->gb + (size_t)t * C;
            for (size_t i = 0; i < nw; i++)
                g[i] += gw[i];
            for (int c = 0; c < C; c++)
                g[nw + c] += gb[c];
        }
    }
    return f;
}

cx_status cx_logreg_objective(const float *x, const int32_t *y, int N, int C, int D,
                              double lambda, const double *theta, double *f, double *grad,
                              cx_err *err)
{
    if (N < 1 || C < 1 || D < 1)
        return cx_fail(err, CX_EUSAGE, "logistic regression: bad shape (N %d, C %d, D %d)", N, C,
                       D);
    cx_status st = cx_eval_check_labels(y, N, C, "logistic regression: labels", err);
    if (st)
        return st;
    objective o;
    if ((st = objective_init(&o, x, y, N, C, D, CX_EVAL_CHUNK_DEFAULT, err)))
        return st;
    o.lambda = lambda;
    *f = objective_eval(&o, theta, grad);
    objective_free(&o);
    return CX_OK;
}

/* Class-mean accuracy of theta on x (n, D), y; scratch as in o (the first thread's block). */
static double class_mean_accuracy(objective *o, const double *theta, const float *x,
                                  const int32_t *y, int n, int64_t *hits, int64_t *count)
{
    int C = o->C, D = o->D;
    size_t nw = (size_t)C * D;
    for (size_t i = 0; i < nw; i++)
        o->wf[i] = (float)theta[i];
    memset(hits, 0, sizeof *hits * (size_t)C);
    memset(count, 0, sizeof *count * (size_t)C);
    for (int r0 = 0; r0 < n; r0 += o->block) {
        int rows = n - r0 < o->block ? n - r0 : o->block;
        cx_sgemm(0, 1, rows, C, D, 1.0f, x + (size_t)r0 * D, D, o->wf, D, 0.0f, o->z, C);
        for (int i = 0; i < rows; i++) {
            const float *zi = o->z + (size_t)i * C;
            int best = 0;
            double bv = -INFINITY;
            for (int c = 0; c < C; c++) {
                double v = (double)zi[c] + theta[nw + c];
                if (v > bv) {
                    bv = v;
                    best = c;
                }
            }
            int yi = y[r0 + i];
            count[yi]++;
            hits[yi] += best == yi;
        }
    }
    double sum = 0.0;
    int k = 0;
    for (int c = 0; c < C; c++)
        if (count[c] > 0) {
            sum += (double)hits[c] / (double)count[c];
            k++;
        }
    return k ? sum / k : NAN;
}

/* Split indices 0..N-1 by class into val (first round(frac n_c) of a seeded shuffle, at most
 * n_c - 1) and train; both lists ascending. */
static void stratified_split(const int32_t *y, int N, int C, double frac, uint64_t seed,
                             uint32_t *order, int64_t *start, unsigned char *is_val)
{
    memset(start, 0, sizeof *start * (size_t)(C + 1));
    for (int i = 0; i < N; i++)
        start[y[i] + 1]++;
    for (int c = 0; c < C; c++)
        start[c + 1] += start[c];
    int64_t *fill = start + C + 1; /* C more slots given by the caller */
    memcpy(fill, start, sizeof *fill * (size_t)C);
    for (int i = 0; i < N; i++)
        order[fill[y[i]]++] = (uint32_t)i;
    memset(is_val, 0, (size_t)N);
    for (int c = 0; c < C; c++) {
        int64_t n = start[c + 1] - start[c];
        int64_t nv = (int64_t)floor(frac * (double)n + 0.5);
        if (nv > n - 1)
            nv = n - 1;
        if (nv <= 0)
            continue;
        cx_rng r;
        cx_rng_seed(&r, seed, cx_rng_stream(TAG_PROBE_SPLIT, (uint64_t)c, 0));
        cx_rng_shuffle(&r, order + start[c], (size_t)n);
        for (int64_t k = 0; k < nv; k++)
            is_val[order[start[c] + k]] = 1;
    }
}

static cx_status fit(objective *o, double lambda, double *theta, const cx_lbfgs_opts *lo,
                     cx_lbfgs_info *info, cx_err *err)
{
    o->lambda = lambda;
    cx_status st = cx_lbfgs_minimize(objective_eval, o, theta, o->C * o->D + o->C, lo, info, err);
    if (st)
        return cx_err_prefix(err, st, "linear probe (lambda %g)", lambda);
    return CX_OK;
}

cx_status cx_eval_linear_probe(cx_eval_classifier *clf, const float *x, const int32_t *y, int N,
                               int C, int D, const cx_probe_opts *opts, cx_probe_info *info,
                               cx_err *err)
{
    memset(clf, 0, sizeof *clf);
    if (info)
        memset(info, 0, sizeof *info);
    cx_probe_opts def;
    if (!opts) {
        cx_probe_defaults(&def);
        opts = &def;
    }
    if (C < 1 || D < 1 || N < 1)
        return cx_fail(err, CX_EUSAGE, "linear probe: bad shape (N %d, C %d, D %d)", N, C, D);
    if (opts->grid < 1 || !(opts->log10_min <= opts->log10_max) || !isfinite(opts->log10_min) ||
        !isfinite(opts->log10_max) || (opts->grid > 1 && !(opts->val_frac > 0.0 && opts->val_frac < 1.0)) ||
        (opts->grid == 1 && !(opts->lambda >= 0.0 && isfinite(opts->lambda))))
        return cx_fail(err, CX_EUSAGE,
                       "linear probe: invalid options (grid %d, log10 range [%g, %g], val_frac %g, "
                       "lambda %g)",
                       opts->grid, opts->log10_min, opts->log10_max, opts->val_frac, opts->lambda);
    if ((size_t)C * D + C > (size_t)1 << 30)
        return cx_fail(err, CX_EUSAGE, "linear probe: %d x %d parameters are too many", C, D);
    cx_status st = cx_eval_check_labels(y, N, C, "linear probe: training labels", err);
    if (st)
        return st;
    for (long i = 0; i < (long)N * D; i++)
        if (!isfinite(x[i]))
            return cx_fail(err, CX_EDATA, "linear probe: training vector %ld is not finite",
                           i / D);

    int G = opts->grid;
    size_t np = (size_t)C * D + C;
    float *xn = NULL, *xtr = NULL, *xva = NULL;
    int32_t *ytr = NULL, *yva = NULL;
    uint32_t *order = malloc(sizeof *order * (size_t)N);
    int64_t *start = malloc(sizeof *start * (size_t)(2 * C + 1));
    int64_t *hits = malloc(sizeof *hits * (size_t)C * 2);
    unsigned char *is_val = malloc((size_t)N);
    double *theta = calloc(np, sizeof *theta);
    double *best = malloc(sizeof *best * np);
    double *grid_lambda = malloc(sizeof *grid_lambda * (size_t)G);
    double *grid_acc = malloc(sizeof *grid_acc * (size_t)G);
    objective o = {0};
    cx_lbfgs_info fit_info = {0};
    if (!order || !start || !hits || !is_val || !theta || !best || !grid_lambda || !grid_acc) {
        st = cx_fail(err, CX_ENOMEM, "linear probe: out of memory");
        goto fail;
    }
    const float *xs = x;
    if (opts->normalize) {
        xn = malloc(sizeof *xn * (size_t)N * D);
        if (!xn) {
            st = cx_fail(err, CX_ENOMEM, "linear probe: out of memory for %d x %d features", N, D);
            goto fail;
        }
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++)
            cx_eval_normalize_row(xn + (size_t)i * D, x + (size_t)i * D, D);
        xs = xn;
    }
    double lambda = opts->lambda, val_acc = NAN;
    int n_tr = N, n_va = 0;
    if (G > 1) {
        stratified_split(y, N, C, opts->val_frac, opts->seed, order, start, is_val);
        for (int i = 0; i < N; i++)
            n_va += is_val[i];
        n_tr = N - n_va;
        if (n_va == 0) {
            st = cx_fail(err, CX_EDATA,
                         "linear probe: %d training vectors leave none for validation "
                         "(val_frac %g); use a single lambda",
                         N, opts->val_frac);
            goto fail;
        }
        xtr = malloc(sizeof *xtr * (size_t)n_tr * D);
        xva = malloc(sizeof *xva * (size_t)n_va * D);
        ytr = malloc(sizeof *ytr * (size_t)n_tr);
        yva = malloc(sizeof *yva * (size_t)n_va);
        if (!xtr || !xva || !ytr || !yva) {
            st = cx_fail(err, CX_ENOMEM, "linear probe: out of memory for the validation split");
            goto fail;
        }
        for (int i = 0, a = 0, v = 0; i < N; i++) {
            if (is_val[i]) {
                memcpy(xva + (size_t)v * D, xs + (size_t)i * D, sizeof *xs * (size_t)D);
                yva[v++] = y[i];
            } else {
                memcpy(xtr + (size_t)a * D, xs + (size_t)i * D, sizeof *xs * (size_t)D);
                ytr[a++] = y[i];
            }
        }
        if ((st = objective_init(&o, xtr, ytr, n_tr, C, D, opts->chunk, err)))
            goto fail;
        /* Strongest first: each fit starts from the previous (smoother) solution. */
        double best_acc = -1.0;
        for (int g = G - 1; g >= 0; g--) {
            double lg = opts->log10_min + (opts->log10_max - opts->log10_min) * g / (G - 1);
            grid_lambda[g] = pow(10.0, lg);
            if ((st = fit(&o, grid_lambda[g], theta, &opts->lbfgs, NULL, err)))
                goto fail;
            grid_acc[g] = class_mean_accuracy(&o, theta, xva, yva, n_va, hits, hits + C);
            if (grid_acc[g] > best_acc) {
                best_acc = grid_acc[g];
                lambda = grid_lambda[g];
                memcpy(best, theta, sizeof *best * np);
            }
        }
        val_acc = best_acc;
        memcpy(theta, best, sizeof *theta * np);
        objective_free(&o);
    } else {
        grid_lambda[0] = lambda;
        grid_acc[0] = NAN;
    }
    if ((st = objective_init(&o, xs, y, N, C, D, opts->chunk, err)) ||
        (st = fit(&o, lambda, theta, &opts->lbfgs, &fit_info, err)))
        goto fail;

    clf->kind = CX_CLF_LINEAR;
    clf->C = C;
    clf->D = D;
    clf->normalize = opts->normalize != 0;
    clf->scale = 1.0f;
    clf->w = malloc(sizeof *clf->w * (size_t)C * D);
    clf->b = malloc(sizeof *clf->b * (size_t)C);
    if (!clf->w || !clf->b) {
        cx_eval_classifier_free(clf);
        st = cx_fail(err, CX_ENOMEM, "linear probe: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < (size_t)C * D; i++)
        clf->w[i] = (float)theta[i];
    for (int c = 0; c < C; c++)
        clf->b[c] = (float)theta[(size_t)C * D + c];
    if (info) {
        info->lambda = lambda;
        info->val_acc = val_acc;
        info->n_train = n_tr;
        info->n_val = n_va;
        info->grid = G;
        info->grid_lambda = grid_lambda;
        info->grid_val_acc = grid_acc;
        info->fit = fit_info;
        grid_lambda = grid_acc = NULL;
        if (n_va > 0) {
            if (!(info->val_rows = malloc(sizeof *info->val_rows * (size_t)n_va))) {
                cx_eval_classifier_free(clf);
                cx_probe_info_free(info);
                st = cx_fail(err, CX_ENOMEM, "linear probe: out of memory");
                goto fail;
            }
            for (int i = 0, v = 0; i < N; i++)
                if (is_val[i])
                    info->val_rows[v++] = i;
        }
    }
fail:
    objective_free(&o);
    free(xn);
    free(xtr);
    free(xva);
    free(ytr);
    free(yva);
    free(order);
    free(start);
    free(hits);
    free(is_val);
    free(theta);
    free(best);
    free(grid_lambda);
    free(grid_acc);
    return st;
}
