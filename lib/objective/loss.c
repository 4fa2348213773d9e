/* The supervised classification losses (methods.md section 4) on logits over all classes or a
 * subset of them, with their gradients, in one pass over the rows and, for LADE, one over the
 * columns. Everything is accumulated in double; the caller's dlogits is the only large buffer.
 *
 * What is computed, with n'_c = max(n_c, 1) (a class with no training sample counts as one, so
 * priors, logarithms and weights stay finite), N' = sum_c n'_c, pi_c = n'_c / N', c(k) =
 * classes[k] (or k) the class of column k, and per row i the adjusted logits v_i:
 *   CE, CBW, EFFNUM, GRW   v = z
 *   BALANCED_SOFTMAX, LADE v = z + log pi_c(k)
 *   LOGIT_ADJUST           v = z + tau log pi_c(k)
 *   LDAM                   v = z - scale m_c(y) e_y
 * and lp_i = log softmax(v_i)[y_i], p_i = exp(lp_i):
 *   l_i = -lp_i (focal: -(1 - p_i)^gamma lp_i), loss = sum_i w_i l_i / sum_i w_i,
 * the convention of torch's F.cross_entropy(weight=) with w_i = w_c(y_i), the class weight of
 * CBW, EFFNUM or GRW, or with DRW active the effective-number weight, else 1. As the weights
 * enter as a ratio, their normalisations (N / C, sum C) do not change the loss; they are kept
 * so the weights have the published scale. A batch whose weights sum to 0 has loss 0 and zero
 * gradients (only GRW weights can underflow to 0, for an extreme p).
 *
 * LADE adds lambda * L_LADE, the regulariser of the public LADE code restricted to the classes
 * present in the batch (the released code also sums the absent classes, whose first term is
 * 0/(0 + 1e-8) = 0 and whose second term is not: an artefact of padding). For each column k
 * whose class c = c(k) labels at least one sample of the batch, with S_k those samples:
 *   first_k  = mean_{i in S_k} z_ik
 *   second_k = logsumexp_i (z_ik - log pi_c + log(1/C)) - log B   (over all B rows)
 *   est_k    = first_k - second_k - 0.1 second_k^2
 *   L_LADE   = -sum_k pi_c est_k
 * C is the total number of classes and pi the prior over all of them, so on a subset the term
 * equals the full-set term exactly (every present class is a column of the subset); only the CE
 * part is over the subset's columns. DRW weights the CE part only. */
#include "config.h"
#include "lib/objective/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops_internal.h"

/* The 0.1 of ReMINE's penalty on the second term, fixed in the LADE code. */
#define LADE_REMINE 0.1

struct cx_loss {
    cx_loss_config cfg;
    int C, max_batch;
    double *prior;      /* (C) pi_c from max(n_c, 1) */
    double *offset;     /* (C) logit offset per class (balanced softmax, LA, LADE) or NULL */
    double *class_w;    /* (C) CBW, EFFNUM or GRW weights, or NULL */
    double *drw_w;      /* (C) effective-number weights when drw_epoch > 0, or NULL */
    double *margin;     /* (C) LDAM margins m_c, or NULL */
    float *tau_log_prior; /* (C) tau log pi_c, for post-hoc adjustment */
    /* Scratch, sized at create. */
    double *col_off;    /* (C) offset of each column */
    double *row_w;      /* (max_batch) weight of each row */
    double *row_loss;   /* (max_batch) w_i l_i */
    int32_t *col_n;     /* (C) LADE: samples of each column's class in the batch */
    double *col_first;  /* (C) LADE: sum of z_ik over those samples, then -pi_c est_k */
    double *col_max;    /* (C) LADE: column max of z, then the column's logsumexp */
    double *col_coef;   /* (C) LADE: column sum of exp(z - max), then lambda pi_c (1 + 0.2
                           second_k), the factor of q_ik in the gradient */
};

static int is_weighted(cx_loss_kind k)
{
    return k == CX_LOSS_CBW || k == CX_LOSS_EFFNUM || k == CX_LOSS_GRW;
}

static const char *kind_name(cx_loss_kind k)
{
    static const char *const names[] = {"ce",  "focal", "balanced-softmax", "logit-adjust", "cbw",
                                        "effnum", "grw", "ldam", "lade"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static cx_status check_config(const cx_loss_config *c, cx_err *err)
{
    if ((unsigned)c->kind > CX_LOSS_LADE)
        return cx_fail(err, CX_EUSAGE, "loss: unknown kind %d", (int)c->kind);
    if (!(c->focal_gamma >= 0.0) || !isfinite(c->focal_gamma))
        return cx_fail(err, CX_EUSAGE, "focal.gamma: %g is not a finite value >= 0",
                       c->focal_gamma);
    if (!isfinite(c->la_tau))
        return cx_fail(err, CX_EUSAGE, "logit_adjust.tau: %g is not finite", c->la_tau);
    if (!(c->effnum_beta >= 0.0 && c->effnum_beta < 1.0))
        return cx_fail(err, CX_EUSAGE, "effnum.beta: %g is outside [0, 1)", c->effnum_beta);
    if (!(c->grw_p >= 0.0) || !isfinite(c->grw_p))
        return cx_fail(err, CX_EUSAGE, "grw.p: %g is not a finite value >= 0", c->grw_p);
    if (!(c->ldam_max_margin > 0.0) || !isfinite(c->ldam_max_margin))
        return cx_fail(err, CX_EUSAGE, "ldam.max_margin: %g is not a finite value > 0",
                       c->ldam_max_margin);
    if (!(c->lade_lambda >= 0.0) || !isfinite(c->lade_lambda))
        return cx_fail(err, CX_EUSAGE, "lade.lambda: %g is not a finite value >= 0",
                       c->lade_lambda);
    if (c->drw_epoch < 0)
        return cx_fail(err, CX_EUSAGE, "drw.epoch: %d is negative (0 turns it off)",
                       c->drw_epoch);
    if (c->drw_epoch > 0 && is_weighted(c->kind))
        return cx_fail(err, CX_EUSAGE,
                       "drw.epoch: loss %s is already class-weighted; use drw with another loss "
                       "or set drw.epoch: 0",
                       kind_name(c->kind));
    return CX_OK;
}

/* (1 - beta) / (1 - beta^n) for n >= 1, normalised to sum C; 1 - beta^n through expm1 so a
 * beta near 1 keeps its digits. */
static void effnum_weights(double *w, const double *n, int C, double beta)
{
    double s = 0.0;
    for (int c = 0; c < C; c++) {
        double den = beta > 0.0 ? -expm1(n[c] * log(beta)) : 1.0;
        w[c] = (1.0 - beta) / den;
        s += w[c];
    }
    for (int c = 0; c < C; c++)
        w[c] *= C / s;
}

void cx_loss_free(cx_loss *l)
{
    if (!l)
        return;
    free(l->prior);
    free(l->offset);
    free(l->class_w);
    free(l->drw_w);
    free(l->margin);
    free(l->tau_log_prior);
    free(l->col_off);
    free(l->row_w);
    free(l->row_loss);
    free(l->col_n);
    free(l->col_first);
    free(l->col_max);
    free(l->col_coef);
    free(l);
}

cx_status cx_loss_create(cx_loss **out, const cx_loss_config *cfg, const int64_t *counts, int C,
                         int max_batch, cx_err *err)
{
    *out = NULL;
    cx_status st = check_config(cfg, err);
    if (st != CX_OK)
        return st;
    if (C < 1)
        return cx_fail(err, CX_EUSAGE, "loss: %d classes (at least 1 needed)", C);
    if (max_batch < 1)
        return cx_fail(err, CX_EUSAGE, "loss: batch of %d samples (at least 1 needed)",
                       max_batch);
    for (int c = 0; c < C; c++)
        if (counts[c] < 0)
            return cx_fail(err, CX_EDATA, "loss: class %d has a negative count %lld", c,
                           (long long)counts[c]);

    cx_loss *l = calloc(1, sizeof *l);
    if (!l)
        return cx_fail(err, CX_ENOMEM, "loss: out of memory");
    l->cfg = *cfg;
    l->C = C;
    l->max_batch = max_batch;
    size_t nc = (size_t)C, nb = (size_t)max_batch;
    cx_loss_kind kind = cfg->kind;
    int drw = cfg->drw_epoch > 0;
    l->prior = malloc(sizeof(double) * nc);
    l->tau_log_prior = malloc(sizeof(float) * nc);
    l->col_off = malloc(sizeof(double) * nc);
    l->row_w = malloc(sizeof(double) * nb);
    l->row_loss = malloc(sizeof(double) * nb);
    int ok = l->prior && l->tau_log_prior && l->col_off && l->row_w && l->row_loss;
    if (kind == CX_LOSS_BALANCED_SOFTMAX || kind == CX_LOSS_LOGIT_ADJUST || kind == CX_LOSS_LADE)
        ok = ok && (l->offset = malloc(sizeof(double) * nc));
    if (is_weighted(kind))
        ok = ok && (l->class_w = malloc(sizeof(double) * nc));
    if (drw)
        ok = ok && (l->drw_w = malloc(sizeof(double) * nc));
    if (kind == CX_LOSS_LDAM)
        ok = ok && (l->margin = malloc(sizeof(double) * nc));
    if (kind == CX_LOSS_LADE)
        ok = ok && (l->col_n = malloc(sizeof(int32_t) * nc)) &&
             (l->col_first = malloc(sizeof(double) * nc)) &&
             (l->col_max = malloc(sizeof(double) * nc)) &&
             (l->col_coef = malloc(sizeof(double) * nc));
    if (!ok) {
        cx_loss_free(l);
        return cx_fail(err, CX_ENOMEM, "loss: out of memory for %d classes and batch %d", C,
                       max_batch);
    }

    /* Effective counts n'_c = max(n_c, 1), kept in prior[] until the priors are made. */
    double *n = l->prior, total = 0.0;
    for (int c = 0; c < C; c++) {
        n[c] = counts[c] > 0 ? (double)counts[c] : 1.0;
        total += n[c];
    }
    if (kind == CX_LOSS_CBW)
        for (int c = 0; c < C; c++)
            l->class_w[c] = total / ((double)C * n[c]);
    if (kind == CX_LOSS_EFFNUM)
        effnum_weights(l->class_w, n, C, cfg->effnum_beta);
    if (drw)
        effnum_weights(l->drw_w, n, C, cfg->effnum_beta);
    if (kind == CX_LOSS_LDAM) {
        /* n^-1/4 is largest for the smallest count: the rarest class gets max_margin. */
        double top = 0.0;
        for (int c = 0; c < C; c++)
            top = fmax(top, pow(n[c], -0.25));
        for (int c = 0; c < C; c++)
            l->margin[c] = cfg->ldam_max_margin * pow(n[c], -0.25) / top;
    }
    for (int c = 0; c < C; c++)
        l->prior[c] = n[c] / total;
    if (kind == CX_LOSS_GRW) {
        /* C pi^-p / sum pi^-p in the log domain: pi^-p overflows for tiny priors and large p. */
        double top = -INFINITY, s = 0.0;
        for (int c = 0; c < C; c++)
            top = fmax(top, -cfg->grw_p * log(l->prior[c]));
        for (int c = 0; c < C; c++) {
            l->class_w[c] = exp(-cfg->grw_p * log(l->prior[c]) - top);
            s += l->class_w[c];
        }
        for (int c = 0; c < C; c++)
            l->class_w[c] *= C / s;
    }
    for (int c = 0; c < C; c++) {
        double lp = log(l->prior[c]);
        l->tau_log_prior[c] = (float)(cfg->la_tau * lp);
        if (l->offset)
            l->offset[c] = kind == CX_LOSS_LOGIT_ADJUST ? cfg->la_tau * lp : lp;
    }
    *out = l;
    return CX_OK;
}

const float *cx_loss_log_prior(const cx_loss *l)
{
    return l->tau_log_prior;
}

/* exp(t) for t <= 0, vectorisable: libm's exp is a scalar call, and the rows' exponentials
 * were a third of a small supervised run over 1,000 classes. Range reduction t = k ln2 + r,
 * |r| <= ln2 / 2 (ln2 split in two, the high part with 32 significant bits so k ln2_hi is
 * exact), then the degree-13 Taylor polynomial of exp(r), whose truncation error is below
 * 1e-17: within a few ulp of the exact value. Below -708 the result is held at exp(-708), about
 * 3e-308, instead of underflowing, which no row sum (at least 1) can notice; NaN stays NaN, so
 * a diverged row is still reported. Contraction is off (-std=c11): the same bits on every
 * vector unit. */
#pragma omp declare simd
static inline double exp_nonpos(double t)
{
    t = t < -708.0 ? -708.0 : t;
    /* k = round(t / ln2) in the low bits of 1.5 * 2^52 + k, which also gives 2^k's exponent. */
    union {
        double d;
        uint64_t u;
    } kb = {.d = t * 1.4426950408889634074 + 0x1.8p52};
    double k = kb.d - 0x1.8p52;
    double r = t - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    union {
        uint64_t u;
        double d;
    } two_k = {.u = (kb.u + 1023u) << 52};
    return p * two_k.d;
}

/* The widest vector unit the machine has, chosen at load time, as the optimiser does. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CX_LOSS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CX_LOSS_CLONES
#endif

/* The row's max and sum of exponentials in 8 lanes written with GCC's vector types: each lane
 * is taken in column order, then the lanes in order, and the compiler lowers a vector to what
 * the unit has (one AVX-512 register, two AVX2 ones, four SSE2 ones) with the same operations
 * per element, so every clone gives the same bits (the max is exact in any order anyway). A
 * loop over an array of lanes did not vectorise: GCC keeps floating-point selects as branches. */
enum { ROW_LANES = 8 };
/* The helpers below taking and returning vectors are always inlined, so the ABI GCC warns
 * about for AVX-512 vector arguments is never used. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef uint64_t v8u __attribute__((vector_size(64)));

/* a where mask is set, else b (a macro: GCC 12 fails on vector arguments of an inline
 * function compiled for SSE2). */
#define V8D_SELECT(mask, a, b) ((v8d)(((v8l)(a) & (mask)) | ((v8l)(b) & ~(mask))))

/* exp_nonpos in each lane, the same operations in the same order. */
static inline __attribute__((always_inline)) v8d exp_nonpos8(v8d t)
{
    const v8d zero = {0};
    v8d floor_t = zero - 708.0; /* t < -708 is false for NaN: NaN stays NaN */
    t = V8D_SELECT(t < -708.0, floor_t, t);
    v8d kb = t * 1.4426950408889634074 + 0x1.8p52;
    v8d k = kb - 0x1.8p52;
    v8d r = t - k * 6.93147180369123816490e-01 - k * 1.90821492927058770002e-10;
    v8d p = zero + 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    v8d two_k = (v8d)(((v8u)kb + 1023u) << 52);
    return p * two_k;
}

/* v_j = z_j + off_j, or z_j when off is NULL; called with off NULL and not, so each loop is
 * compiled without the test. */
#define ROW_V(z, off, j) ((off) ? (double)(z)[j] + (off)[j] : (double)(z)[j])

static inline __attribute__((always_inline)) v8d row_v8(const float *z, const double *off,
                                                        int j)
{
    v8f zf;
    memcpy(&zf, z + j, sizeof zf);
    v8d v; /* element by element: GCC 12's __builtin_convertvector fails here for SSE2 */
    for (int l = 0; l < ROW_LANES; l++)
        v[l] = (double)zf[l];
    if (off) {
        v8d o;
        memcpy(&o, off + j, sizeof o);
        v = v + o;
    }
    return v;
}

/* max(vy, max_{j != y} v_j). NaN off y never wins a comparison, as in a sequential scan; NaN
 * at y makes the max NaN. */
static inline __attribute__((always_inline)) double
row_max_body(const float *z, const double *off, int32_t y, double vy, int K)
{
    const v8l lane_index = {0, 1, 2, 3, 4, 5, 6, 7};
    const v8d zero = {0}, neg_inf = zero - INFINITY;
    v8d lane = neg_inf;
    int j = 0;
    for (; j + ROW_LANES <= K; j += ROW_LANES) {
        v8d x = row_v8(z, off, j);
        x = V8D_SELECT(lane_index + j == (int64_t)y, neg_inf, x);
        lane = V8D_SELECT(x > lane, x, lane);
    }
    for (; j < K; j++) {
        double x = j == y ? -INFINITY : ROW_V(z, off, j);
        lane[j % ROW_LANES] = x > lane[j % ROW_LANES] ? x : lane[j % ROW_LANES];
    }
    double mx = vy;
    for (int l = 0; l < ROW_LANES; l++)
        mx = lane[l] > mx ? lane[l] : mx;
    return mx;
}

/* d_j = (float)exp(v_j - mx) (v_y = vy); returns the sum of the exponentials in double. */
static inline __attribute__((always_inline)) double
row_exp_body(float *d, const float *z, const double *off, int32_t y, double vy, double mx,
             int K)
{
    const v8l lane_index = {0, 1, 2, 3, 4, 5, 6, 7};
    const v8d zero = {0}, vy8 = zero + vy;
    v8d lane = zero;
    int j = 0;
    for (; j + ROW_LANES <= K; j += ROW_LANES) {
        v8d v = V8D_SELECT(lane_index + j == (int64_t)y, vy8, row_v8(z, off, j));
        v8d e = exp_nonpos8(v - mx);
        v8f ef;
        for (int l = 0; l < ROW_LANES; l++)
            ef[l] = (float)e[l]; /* exp(v - mx) <= 1: no overflow */
        memcpy(d + j, &ef, sizeof ef);
        lane += e;
    }
    for (; j < K; j++) {
        double v = j == y ? vy : ROW_V(z, off, j);
        double e = exp_nonpos(v - mx);
        d[j] = (float)e;
        lane[j % ROW_LANES] += e;
    }
    double s = 0.0;
    for (int l = 0; l < ROW_LANES; l++)
        s += lane[l];
    return s;
}

/* The row's max and sum of exp(v - max), returned through mx. */
CX_LOSS_CLONES
static double row_softmax_sum(float *d, const float *z, const double *off, int32_t y,
                              double vy, double *mx, int K)
{
    if (off) {
        *mx = row_max_body(z, off, y, vy, K);
        return row_exp_body(d, z, off, y, vy, *mx, K);
    }
    *mx = row_max_body(z, NULL, y, vy, K);
    return row_exp_body(d, z, NULL, y, vy, *mx, K);
}

/* One row: writes the row's gradient (k_i (p - onehot(y)) with k_i = w_i / W * -dl/dlp) to
 * d and returns l_i. v = z + off (off may be NULL) with margin subtracted at y. */
static double loss_row(float *d, const float *z, const double *off, int32_t y, double margin,
                       int K, cx_loss_kind kind, double gamma, double wscale)
{
    double vy = (double)z[y] + (off ? off[y] : 0.0) - margin;
    double mx;
    double s = row_softmax_sum(d, z, off, y, vy, &mx, K);
    double lse = mx + log(s);
    double lp = vy - lse;
    double l, k; /* l_i and -dl/dlp */
    if (kind == CX_LOSS_FOCAL) {
        /* l = -(1-p)^g lp; dl/dlp = (1-p)^g (g p lp / (1-p) - 1), where lp / (1-p) -> -1 as
         * p -> 1 (q = 1 - p from expm1 keeps its digits there). */
        double p = exp(lp), q = -expm1(lp);
        double qg = pow(q, gamma); /* pow(0, 0) = 1: gamma 0 is CE */
        double ratio = q > 0.0 ? lp / q : -1.0;
        double t = p > 0.0 ? gamma * p * ratio : 0.0;
        l = -qg * lp;
        k = qg * (1.0 - t);
    } else {
        l = -lp;
        k = 1.0;
    }
    k *= wscale;
    double ks = k / s;
    for (int j = 0; j < K; j++)
        d[j] = (float)(ks * (double)d[j]);
    /* k (p - 1) from expm1, exact near p = 1 where p - 1 is small. */
    d[y] = (float)(k * expm1(lp));
    return l;
}

/* The LADE regulariser's value, and its gradient times lambda added to dlogits. */
static double lade_term(cx_loss *l, const float *logits, const int32_t *targets,
                        const int32_t *classes, int B, int K, float *dlogits)
{
    double lambda = l->cfg.lade_lambda;
    double logC = log((double)l->C), logB = log((double)B);
    for (int k = 0; k < K; k++) {
        l->col_n[k] = 0;
        l->col_first[k] = 0.0;
        l->col_max[k] = -INFINITY;
    }
    for (int i = 0; i < B; i++) {
        int32_t y = targets[i];
        l->col_n[y]++;
        l->col_first[y] += logits[(size_t)i * K + y];
    }
    /* Columns in blocks, each block over the rows in order: the same bits on any thread count. */
    int nblk = (K + CX_OPS_COL_BLOCK - 1) / CX_OPS_COL_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)B * K >= CX_OPS_PAR_ELEMS_DEAR)
    for (int blk = 0; blk < nblk; blk++) {
        int k0 = blk * CX_OPS_COL_BLOCK, k1 = k0 + CX_OPS_COL_BLOCK < K ? k0 + CX_OPS_COL_BLOCK : K;
        double *mx = l->col_max, *sum = l->col_coef;
        for (int i = 0; i < B; i++)
            for (int k = k0; k < k1; k++)
                if (l->col_n[k] > 0 && logits[(size_t)i * K + k] > mx[k])
                    mx[k] = logits[(size_t)i * K + k];
        for (int k = k0; k < k1; k++)
            sum[k] = 0.0;
        for (int i = 0; i < B; i++)
            for (int k = k0; k < k1; k++)
                if (l->col_n[k] > 0)
                    sum[k] += exp((double)logits[(size_t)i * K + k] - mx[k]);
        /* second_k = mx + log(sum) + a_k - log B with a_k = -log pi_c - log C; the column
         * softmax q_ik does not depend on a_k. */
        for (int k = k0; k < k1; k++) {
            if (l->col_n[k] == 0)
                continue;
            int32_t c = classes ? classes[k] : k;
            double pi = l->prior[c];
            double lse = mx[k] + log(sum[k]);
            double second = lse - log(pi) - logC - logB;
            double first = l->col_first[k] / l->col_n[k];
            /* Keep est_k in col_first and the factor of q in col_max (the max is folded into
             * lse, which is all the gradient pass needs). */
            l->col_first[k] = -pi * (first - second - LADE_REMINE * second * second);
            sum[k] = lambda * pi * (1.0 + 2.0 * LADE_REMINE * second);
            mx[k] = lse;
        }
        for (int i = 0; i < B; i++) {
            float *d = dlogits + (size_t)i * K;
            for (int k = k0; k < k1; k++) {
                if (l->col_n[k] == 0)
                    continue;
                int32_t c = classes ? classes[k] : k;
                double q = exp((double)logits[(size_t)i * K + k] - mx[k]);
                /* d(lambda L)/dz_ik = lambda pi ((1 + 0.2 second) q_ik - [y_i = k] / n_k) */
                double g = sum[k] * q;
                if (targets[i] == k)
                    g -= lambda * l->prior[c] / l->col_n[k];
                d[k] = (float)((double)d[k] + g);
            }
        }
    }
    double v = 0.0;
    for (int k = 0; k < K; k++)
        if (l->col_n[k] > 0)
            v += l->col_first[k];
    return v;
}

double cx_loss_compute(cx_loss *l, const float *logits, const int32_t *targets,
                       const int32_t *classes, int B, int K, float scale, int epoch,
                       float *dlogits)
{
    /* Calls outside the contract get NaN (which a trainer reports as divergence) instead of
     * reads or writes out of bounds. */
    if (B < 0 || B > l->max_batch || K < 1 || K > l->C || (!classes && K != l->C))
        return NAN;
    for (int k = 0; k < K && classes; k++)
        if (classes[k] < 0 || classes[k] >= l->C)
            return NAN;
    for (int i = 0; i < B; i++)
        if (targets[i] < 0 || targets[i] >= K)
            return NAN;
    if (B == 0)
        return 0.0;

    const cx_loss_config *cfg = &l->cfg;
    cx_loss_kind kind = cfg->kind;
    const double *cw = l->class_w;
    if (!cw && l->drw_w && epoch + 1 >= cfg->drw_epoch)
        cw = l->drw_w;
    double wsum = 0.0;
    for (int i = 0; i < B; i++) {
        l->row_w[i] = cw ? cw[classes ? classes[targets[i]] : targets[i]] : 1.0;
        wsum += l->row_w[i];
    }
    const double *off = NULL;
    if (l->offset) {
        for (int k = 0; k < K; k++)
            l->col_off[k] = l->offset[classes ? classes[k] : k];
        off = l->col_off;
    }
    double gamma = kind == CX_LOSS_FOCAL ? cfg->focal_gamma : 0.0;

#pragma omp parallel for schedule(static) if ((size_t)B * K >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * K;
        float *d = dlogits + (size_t)i * K;
        int32_t y = targets[i];
        double w = l->row_w[i];
        double margin = 0.0;
        if (l->margin)
            margin = (double)scale * l->margin[classes ? classes[y] : y];
        double li = loss_row(d, z, off, y, margin, K, kind, gamma, wsum != 0.0 ? w / wsum : 0.0);
        /* A zero weight masks the sample, even if its loss is infinite. */
        l->row_loss[i] = w != 0.0 ? w * li : 0.0;
    }
    double s = 0.0;
    for (int i = 0; i < B; i++)
        s += l->row_loss[i];
    double loss = wsum != 0.0 ? s / wsum : 0.0;
    if (kind == CX_LOSS_LADE)
        loss += cfg->lade_lambda * lade_term(l, logits, targets, classes, B, K, dlogits);
    return loss;
}
