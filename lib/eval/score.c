/* Chunked scoring. One OpenMP region walks the row blocks with a static schedule; each thread
 * normalises its block, multiplies it with a single-threaded sgemm into its own score buffer
 * and reduces every row to top-k and a confidence. Counts are accumulated afterwards in row
 * order, so the result does not depend on which thread did what. */
#include "lib/eval/score.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/eval/internal.h"

/* Per-thread scratch for one block of up to `block` rows. */
typedef struct {
    int block, nth;
    float *xs;       /* (nth, block, D): normalised inputs, or NULL when used as they are */
    float *s;        /* (nth, block, C): scores, or NULL when the caller gives the buffer */
    float *sims;     /* (nth, block, n_ref): KNN similarities */
    float *nb_sim;   /* (nth, k): KNN neighbour similarities, best first */
    int32_t *nb_idx; /* (nth, k): KNN neighbour indices */
    double *csum;    /* (nth, C): KNN similarity sums per class, kept zeroed */
    float *votes;    /* (nth, block): KNN votes of each row's top-1 class */
} workspace;

static void ws_free(workspace *ws)
{
    free(ws->xs);
    free(ws->s);
    free(ws->sims);
    free(ws->nb_sim);
    free(ws->nb_idx);
    free(ws->csum);
    free(ws->votes);
    memset(ws, 0, sizeof *ws);
}

static cx_status ws_alloc(workspace *ws, const cx_eval_classifier *clf, int block, int N,
                          int with_scores, cx_err *err)
{
    memset(ws, 0, sizeof *ws);
    int nth = cx_eval_max_threads();
    if (block > N)
        block = N > 0 ? N : 1;
    if (clf->kind == CX_CLF_KNN) {
        long cap = CX_EVAL_KNN_SIMS_MAX / ((long)nth * clf->n_ref);
        if (cap < 1)
            cap = 1;
        if (block > cap)
            block = (int)cap;
    }
    ws->block = block;
    ws->nth = nth;
    size_t rows = (size_t)nth * block;
    int ok = 1;
    if (clf->normalize) {
        ws->xs = malloc(sizeof *ws->xs * rows * clf->D);
        ok &= ws->xs != NULL;
    }
    if (with_scores) {
        ws->s = malloc(sizeof *ws->s * rows * clf->C);
        ok &= ws->s != NULL;
    }
    if (clf->kind == CX_CLF_KNN) {
        ws->sims = malloc(sizeof *ws->sims * rows * clf->n_ref);
        ws->nb_sim = malloc(sizeof *ws->nb_sim * (size_t)nth * clf->k);
        ws->nb_idx = malloc(sizeof *ws->nb_idx * (size_t)nth * clf->k);
        ws->csum = calloc((size_t)nth * clf->C, sizeof *ws->csum);
        ws->votes = malloc(sizeof *ws->votes * rows);
        ok &= ws->sims && ws->nb_sim && ws->nb_idx && ws->csum && ws->votes;
    }
    if (!ok) {
        ws_free(ws);
        return cx_fail(err, CX_ENOMEM, "scoring: out of memory for blocks of %d rows", block);
    }
    return CX_OK;
}

static cx_status check_classifier(const cx_eval_classifier *clf, cx_err *err)
{
    if (!clf || clf->C < 1 || clf->D < 1)
        return cx_fail(err, CX_EUSAGE, "scoring: the classifier is empty");
    if (clf->kind == CX_CLF_LINEAR && !clf->w)
        return cx_fail(err, CX_EUSAGE, "scoring: linear classifier without weights");
    if (clf->kind == CX_CLF_KNN &&
        (!clf->ref || !clf->ref_labels || clf->n_ref < 1 || clf->k < 1 || clf->k > clf->n_ref ||
         clf->k > CX_KNN_K_MAX))
        return cx_fail(err, CX_EUSAGE, "scoring: kNN classifier without a valid reference set");
    return CX_OK;
}

/* KNN scores of one row from its similarities to the reference set; csum (C) is zeroed
 * scratch and is left zeroed. Returns 0 when a similarity is not finite. */
static int knn_row(const cx_eval_classifier *clf, const float *sim, float *score, float *nb_sim,
                   int32_t *nb_idx, double *csum, float *votes_top)
{
    int k = clf->k, filled = 0;
    for (int j = 0; j < clf->n_ref; j++) {
        float v = sim[j];
        if (!isfinite(v))
            return 0;
        /* Strictly better only: an equal similarity keeps the earlier (smaller) index. */
        if (filled == k && !(v > nb_sim[k - 1]))
            continue;
        int p = filled < k ? filled++ : k - 1;
        while (p > 0 && nb_sim[p - 1] < v) {
            nb_sim[p] = nb_sim[p - 1];
            nb_idx[p] = nb_idx[p - 1];
            p--;
        }
        nb_sim[p] = v;
        nb_idx[p] = j;
    }
    memset(score, 0, sizeof *score * (size_t)clf->C);
    for (int t = 0; t < k; t++) {
        int c = clf->ref_labels[nb_idx[t]];
        score[c] += 1.0f;
        csum[c] += nb_sim[t];
    }
    float best_votes = 0.0f;
    for (int t = 0; t < k; t++) {
        int c = clf->ref_labels[nb_idx[t]];
        if (isnan(csum[c]))
            continue; /* this class is done */
        float votes = score[c];
        score[c] = (float)(votes + (csum[c] + k) / (2.0 * k + 1.0));
        csum[c] = NAN;
        if (votes > best_votes)
            best_votes = votes;
    }
    for (int t = 0; t < k; t++)
        csum[clf->ref_labels[nb_idx[t]]] = 0.0; /* clean for the next row */
    *votes_top = best_votes;
    return 1;
}

/* Scores of the rows of one block (x: rows x D) into s (rows x C), without the bias, on the
 * calling thread only (OpenBLAS must be single-threaded). Returns the first row whose kNN
 * similarities are not finite, or -1. */
static int score_block(const cx_eval_classifier *clf, const workspace *ws, int tid,
                       const float *x, int rows, float *s)
{
    int D = clf->D, C = clf->C;
    const float *a = x;
    if (clf->normalize) {
        float *xs = ws->xs + (size_t)tid * ws->block * D;
        for (int i = 0; i < rows; i++)
            cx_eval_normalize_row(xs + (size_t)i * D, x + (size_t)i * D, D);
        a = xs;
    }
    if (clf->kind == CX_CLF_LINEAR) {
        cx_sgemm(0, 1, rows, C, D, clf->scale, a, D, clf->w, D, 0.0f, s, C);
        return -1;
    }
    float *sims = ws->sims + (size_t)tid * ws->block * clf->n_ref;
    cx_sgemm(0, 1, rows, clf->n_ref, D, 1.0f, a, D, clf->ref, D, 0.0f, sims, clf->n_ref);
    for (int i = 0; i < rows; i++)
        if (!knn_row(clf, sims + (size_t)i * clf->n_ref, s + (size_t)i * C,
                     ws->nb_sim + (size_t)tid * clf->k, ws->nb_idx + (size_t)tid * clf->k,
                     ws->csum + (size_t)tid * C, ws->votes + (size_t)tid * ws->block + i))
            return i;
    return -1;
}

cx_status cx_eval_logits(const cx_eval_classifier *clf, const float *x, int n, float *out,
                         cx_err *err)
{
    cx_status st = check_classifier(clf, err);
    if (st)
        return st;
    if (n < 0)
        return cx_fail(err, CX_EUSAGE, "scoring: %d rows", n);
    workspace ws;
    if ((st = ws_alloc(&ws, clf, CX_EVAL_CHUNK_DEFAULT, n, 0, err)))
        return st;
    int C = clf->C, blocks = (n + ws.block - 1) / ws.block;
    const float *b = clf->kind == CX_CLF_LINEAR ? clf->b : NULL;
    int first_bad = INT_MAX;
    cx_eval_blas_serial();
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * ws.block, rows = n - r0 < ws.block ? n - r0 : ws.block;
        float *s = out + (size_t)r0 * C;
        int bad = score_block(clf, &ws, cx_eval_thread_id(), x + (size_t)r0 * clf->D, rows, s);
        if (bad >= 0)
            rows = bad; /* rows after a bad one were not scored */
        for (int i = 0; i < rows; i++) {
            float *si = s + (size_t)i * C;
            int ok = 1;
            for (int c = 0; c < C; c++) {
                if (b)
                    si[c] += b[c];
                ok &= isfinite(si[c]) != 0;
            }
            if (!ok) {
                bad = i;
                break;
            }
        }
        if (bad >= 0)
            first_bad = r0 + bad < first_bad ? r0 + bad : first_bad;
    }
    cx_eval_blas_restore();
    ws_free(&ws);
    if (first_bad != INT_MAX)
        return cx_fail(err, CX_EDATA, "scoring: row %d: score is not finite (input not finite?)",
                       first_bad);
    return CX_OK;
}

void cx_eval_pred_free(cx_eval_pred *p)
{
    if (!p)
        return;
    free(p->pred);
    free(p->topk);
    free(p->conf);
    free(p->confusion);
    free(p->topk_hits);
    memset(p, 0, sizeof *p);
}

/* sum_c e^(s[c] - m) for finite s[c] <= m, to about 3e-7 relative. libm's expf does not
 * vectorise without -ffast-math and was a third of the scoring time, so e^x = 2^k 2^f with
 * k = round(x log2 e), |f| <= 1/2 and 2^f by its Taylor series in f ln 2, on 8 lanes (GCC and
 * Clang vector extensions: two SSE2 halves by default, one AVX2 register where the CPU has
 * it, chosen at load time; no FMA either way, so every lane computes the same bits). x below
 * -87 counts as -87: e^-87 is far below the 1 that the maximum contributes. Lane l sums the
 * elements c = l mod 8 and the lanes are summed in one fixed order, so the result is the
 * same on every thread and every CPU. */
#if defined(__GNUC__)
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define V8(x) {x, x, x, x, x, x, x, x}

#if !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CX_SCORE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CX_SCORE_CLONES
#endif

/* Static and inlined: the vector ABI GCC warns about never crosses a call. */
#pragma GCC diagnostic ignored "-Wpsabi"
static inline v8f exp8_nonpos(v8f x)
{
    const v8f lo = V8(-87.0f), log2e = V8(1.44269504f), magic = V8(12582912.0f),
              ln2 = V8(0.693147181f);
    v8i below = x < lo;
    x = (v8f)(((v8i)x & ~below) | ((v8i)lo & below));
    v8f t = x * log2e;
    v8f k = (t + magic) - magic; /* round to nearest: 1.5 * 2^23 */
    v8f f = (t - k) * ln2;
    v8f p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 +
                                       f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
    v8i bits = (__builtin_convertvector(k, v8i) + 127) << 23; /* 2^k from exponent bits */
    return p * (v8f)bits;
}

CX_SCORE_CLONES
static float softmax_sum(const float *s, int C, float m)
{
    v8f a = V8(0.0f), mv = V8(0.0f);
    mv += m;
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        v8f x;
        memcpy(&x, s + c, sizeof x);
        a += exp8_nonpos(x - mv);
    }
    if (c < C) {
        /* The tail: padding lanes hold m (e^0) and are masked out. */
        v8f x = mv, keep = V8(0.0f);
        for (int j = 0; c + j < C; j++) {
            x[j] = s[c + j];
            keep[j] = 1.0f;
        }
        a += exp8_nonpos(x - mv) * keep;
    }
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* Lane-wise maximum (the operands are finite where it matters). */
static inline v8f max8v(v8f a, v8f b)
{
    v8i gt = a > b;
    return (v8f)(((v8i)a & gt) | ((v8i)b & ~gt));
}

static inline float hmax8(v8f m)
{
    float best = m[0];
    for (int w = 1; w < 8; w++)
        best = m[w] > best ? m[w] : best;
    return best;
}

/* Whether all of s[0..n) are finite (n a multiple of 8), and their maximum (meaningful only
 * then): x - x is NaN exactly for inf and NaN, and one NaN makes the sum NaN. */
CX_SCORE_CLONES
static int block_max(const float *s, int n, float *mx)
{
    v8f m, z = V8(0.0f);
    memcpy(&m, s, sizeof m);
    z += m - m;
    for (int j = 8; j < n; j += 8) {
        v8f x;
        memcpy(&x, s + j, sizeof x);
        z += x - x;
        m = max8v(x, m);
    }
    float zs = ((z[0] + z[1]) + (z[2] + z[3])) + ((z[4] + z[5]) + (z[6] + z[7]));
    if (zs != 0.0f)
        return 0;
    *mx = hmax8(m);
    return 1;
}

/* The maximum of the finite s[0..8). */
CX_SCORE_CLONES
static float max_of8(const float *s)
{
    v8f x;
    memcpy(&x, s, sizeof x);
    return hmax8(x);
}
#else
static float softmax_sum(const float *s, int C, float m)
{
    float lane[8] = {0};
    for (int c = 0; c < C; c++)
        lane[c % 8] += expf(s[c] - m);
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

static int block_max(const float *s, int n, float *mx)
{
    float best = s[0];
    for (int w = 0; w < n; w++) {
        if (!isfinite(s[w]))
            return 0;
        best = s[w] > best ? s[w] : best;
    }
    *mx = best;
    return 1;
}

static float max_of8(const float *s)
{
    float best = s[0];
    for (int w = 1; w < 8; w++)
        best = s[w] > best ? s[w] : best;
    return best;
}
#endif

/* The running top K (scores ts, classes top, best first) after v = score of class c, when v
 * is finite and the list is not full or v beats its last entry. Strictly better only: equal
 * scores keep the smaller class index first. */
static inline void topk_insert(float *ts, int32_t *top, int *filled, int K, float v, int c)
{
    int p = *filled < K ? (*filled)++ : K - 1;
    while (p > 0 && ts[p - 1] < v) {
        ts[p] = ts[p - 1];
        top[p] = top[p - 1];
        p--;
    }
    ts[p] = v;
    top[p] = c;
}

/* Rows of thousands of classes are scanned in chunks of SCAN_CHUNK: once the top K is full,
 * a chunk whose maximum does not beat its last entry changes nothing (the element-wise scan
 * would skip each of its scores), so only its finiteness is checked; inside a chunk that
 * does, blocks of 8 are skipped the same way. The list only grows stricter, so the same
 * scores enter it in the same order as in a scan of every element. */
enum { SCAN_CHUNK = 64 };

/* Bias, top-K and confidence of one row. Returns 0 when a score is not finite. */
static int finish_row(const cx_eval_classifier *clf, float *s, int K, int32_t *top, float *conf,
                      float knn_votes)
{
    int C = clf->C;
    const float *b = clf->kind == CX_CLF_LINEAR ? clf->b : NULL;
    float ts[CX_EVAL_TOPK];
    int filled = 0;
    if (b)
        for (int c = 0; c < C; c++)
            s[c] += b[c];
    int c = 0;
    while (c < C) {
        float bm;
        if (filled == K && c % SCAN_CHUNK == 0 && c + SCAN_CHUNK <= C) {
            if (!block_max(s + c, SCAN_CHUNK, &bm))
                return 0;
            if (bm > ts[K - 1])
                for (int e = c + SCAN_CHUNK; c < e; c += 8) {
                    if (!(max_of8(s + c) > ts[K - 1]))
                        continue;
                    for (int j = c; j < c + 8; j++)
                        if (s[j] > ts[K - 1])
                            topk_insert(ts, top, &filled, K, s[j], j);
                }
            else
                c += SCAN_CHUNK;
            continue;
        }
        if (filled == K && c % 8 == 0 && c + 8 <= C) {
            if (!block_max(s + c, 8, &bm))
                return 0;
            if (!(bm > ts[K - 1])) {
                c += 8;
                continue;
            }
        }
        float v = s[c];
        if (!isfinite(v))
            return 0;
        if (filled < K || v > ts[K - 1])
            topk_insert(ts, top, &filled, K, v, c);
        c++;
    }
    if (clf->kind == CX_CLF_KNN) {
        *conf = knn_votes / (float)clf->k;
        return 1;
    }
    float sum = softmax_sum(s, C, ts[0]);
    *conf = 1.0f / sum;
    return 1;
}

/* Rows per block. sgemm packs the classifier's weights again for every block, a cost of 1 /
 * rows of the product's; past 4,096 classes a block of scores no longer fits any cache
 * anyway, so the blocks grow to 1,024 rows (8,142 classes: 32 MB of scores per thread). */
static int score_block_rows(int chunk, int C)
{
    if (chunk > 0)
        return chunk;
    return C > 4096 ? 1024 : CX_EVAL_CHUNK_DEFAULT;
}

cx_status cx_eval_score(const cx_eval_classifier *clf, const float *x, const int32_t *y, int N,
                        int chunk, cx_eval_pred *out, cx_err *err)
{
    memset(out, 0, sizeof *out);
    cx_status st = check_classifier(clf, err);
    if (st)
        return st;
    if (N < 0)
        return cx_fail(err, CX_EUSAGE, "scoring: %d test vectors", N);
    if ((st = cx_eval_check_labels(y, N, clf->C, "test labels", err)))
        return st;
    int C = clf->C, K = C < CX_EVAL_TOPK ? C : CX_EVAL_TOPK;
    out->N = N;
    out->C = C;
    out->K = K;
    size_t n1 = (size_t)(N > 0 ? N : 1);
    out->pred = malloc(sizeof *out->pred * n1);
    out->topk = malloc(sizeof *out->topk * n1 * K);
    out->conf = malloc(sizeof *out->conf * n1);
    out->confusion = calloc((size_t)C * C, sizeof *out->confusion);
    out->topk_hits = calloc((size_t)C, sizeof *out->topk_hits);
    if (!out->pred || !out->topk || !out->conf || !out->confusion || !out->topk_hits) {
        cx_eval_pred_free(out);
        return cx_fail(err, CX_ENOMEM, "scoring: out of memory for %d test vectors", N);
    }
    workspace ws;
    if ((st = ws_alloc(&ws, clf, score_block_rows(chunk, clf->C), N, 1, err))) {
        cx_eval_pred_free(out);
        return st;
    }
    int blocks = (N + ws.block - 1) / ws.block;
    int first_bad = INT_MAX;
    cx_eval_blas_serial();
#pragma omp parallel for schedule(static) reduction(min : first_bad)
    for (int bk = 0; bk < blocks; bk++) {
        int tid = cx_eval_thread_id();
        int r0 = bk * ws.block, rows = N - r0 < ws.block ? N - r0 : ws.block;
        float *s = ws.s + (size_t)tid * ws.block * C;
        const float *votes = ws.votes ? ws.votes + (size_t)tid * ws.block : NULL;
        int bad = score_block(clf, &ws, tid, x + (size_t)r0 * clf->D, rows, s);
        if (bad >= 0) {
            first_bad = r0 + bad < first_bad ? r0 + bad : first_bad;
            continue;
        }
        for (int i = 0; i < rows; i++) {
            int r = r0 + i;
            if (!finish_row(clf, s + (size_t)i * C, K, out->topk + (size_t)r * K, out->conf + r,
                            votes ? votes[i] : 0.0f)) {
                first_bad = r < first_bad ? r : first_bad;
                break;
            }
        }
    }
    cx_eval_blas_restore();
    ws_free(&ws);
    if (first_bad != INT_MAX) {
        cx_eval_pred_free(out);
        return cx_fail(err, CX_EDATA,
                       "scoring: test vector %d: score is not finite (input not finite?)",
                       first_bad);
    }
    for (int r = 0; r < N; r++) {
        const int32_t *top = out->topk + (size_t)r * K;
        out->pred[r] = top[0];
        out->confusion[(size_t)y[r] * C + top[0]]++;
        for (int t = 0; t < K; t++)
            if (top[t] == y[r]) {
                out->topk_hits[y[r]]++;
                break;
            }
    }
    return CX_OK;
}
