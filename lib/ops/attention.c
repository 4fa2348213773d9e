/* Multi-head scaled dot-product self-attention on a fused QKV matrix.
 *
 * At the shapes of the small CLIPs here (17 tokens, heads of 32) one head's products are about
 * 20 kFLOP; a cblas call per sample and head costs more in dispatch than the arithmetic, so
 * each (sample, head) is one task of plain vectorised loops, tasks threaded with a static
 * schedule. A task writes only its own rows of probs/ctx and its own head's columns of dqkv,
 * and sums in a fixed order, so results do not depend on the thread count. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>
#include <string.h>

#include "lib/ops/ops_internal.h"

/* Keys query i may see: j < visible(i). */
static inline int visible(int i, int len, int causal)
{
    int n = causal && i + 1 < len ? i + 1 : len;
    return n < 0 ? 0 : n;
}

static inline int seq_len(const int32_t *lengths, int b, int T)
{
    if (!lengths)
        return T;
    int n = lengths[b];
    return n < 0 ? 0 : n > T ? T : n;
}

/* Head-width loops of 32 are two AVX-512 vectors but eight SSE2 ones: compile for the widest
 * unit the machine has, chosen once at load time (one clone per machine, so a machine's bits
 * are fixed; the simd reductions sum in the clone's vector width). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CX_ATTN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CX_ATTN_CLONES
#endif

CX_ATTN_CLONES
void cx_attention_forward(float *ctx, float *probs, const float *qkv, const int32_t *lengths,
                          int B, int T, int H, int Dh, int causal)
{
    if (B <= 0 || T <= 0 || H <= 0 || Dh <= 0)
        return;
    const int D = H * Dh;
    const size_t row = (size_t)3 * D;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int tasks = B * H;
#pragma omp parallel for schedule(static) if ((size_t)tasks * T * T * Dh >= CX_OPS_PAR_ELEMS)
    for (int task = 0; task < tasks; task++) {
        int b = task / H, h = task % H;
        int len = seq_len(lengths, b, T);
        const float *base = qkv + (size_t)b * T * row + (size_t)h * Dh;
        float *P = probs + (size_t)task * T * T;
        for (int i = 0; i < T; i++) {
            const float *q = base + (size_t)i * row;
            float *p = P + (size_t)i * T;
            float *o = ctx + ((size_t)b * T + i) * D + (size_t)h * Dh;
            int n = visible(i, len, causal);
            float mx = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *k = base + (size_t)j * row + D;
                float s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int d = 0; d < Dh; d++)
                    s += q[d] * k[d];
                p[j] = s * scale;
                mx = p[j] > mx ? p[j] : mx;
            }
            float sum = 0.0f;
            for (int j = 0; j < n; j++) {
                p[j] = expf(p[j] - mx);
                sum += p[j];
            }
            float inv = n > 0 ? 1.0f / sum : 0.0f;
            for (int j = 0; j < n; j++)
                p[j] *= inv;
            for (int j = n; j < T; j++)
                p[j] = 0.0f;
            memset(o, 0, sizeof *o * (size_t)Dh);
            for (int j = 0; j < n; j++) {
                const float *v = base + (size_t)j * row + 2 * (size_t)D;
                float pj = p[j];
#pragma omp simd
                for (int d = 0; d < Dh; d++)
                    o[d] += pj * v[d];
            }
        }
    }
}

CX_ATTN_CLONES
void cx_attention_backward(float *dqkv, float *dscores, const float *dctx, const float *probs,
                           const float *qkv, const int32_t *lengths, int B, int T, int H, int Dh,
                           int causal)
{
    if (B <= 0 || T <= 0 || H <= 0 || Dh <= 0)
        return;
    const int D = H * Dh;
    const size_t row = (size_t)3 * D;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int tasks = B * H;
#pragma omp parallel for schedule(static) if ((size_t)tasks * T * T * Dh >= CX_OPS_PAR_ELEMS)
    for (int task = 0; task < tasks; task++) {
        int b = task / H, h = task % H;
        int len = seq_len(lengths, b, T);
        const float *base = qkv + (size_t)b * T * row + (size_t)h * Dh;
        float *dbase = dqkv + (size_t)b * T * row + (size_t)h * Dh;
        const float *P = probs + (size_t)task * T * T;
        float *G = dscores + (size_t)task * T * T;
        for (int i = 0; i < T; i++)
            for (int part = 0; part < 3; part++)
                memset(dbase + (size_t)i * row + (size_t)part * D, 0, sizeof(float) * (size_t)Dh);
        /* dV_j = sum_i P_ij dO_i; dS_ij = P_ij (dO_i . V_j - sum_k P_ik dO_i . V_k). */
        for (int i = 0; i < T; i++) {
            const float *dO = dctx + ((size_t)b * T + i) * D + (size_t)h * Dh;
            const float *p = P + (size_t)i * T;
            float *g = G + (size_t)i * T;
            int n = visible(i, len, causal);
            float dot = 0.0f;
            for (int j = 0; j < n; j++) {
                const float *v = base + (size_t)j * row + 2 * (size_t)D;
                float *dv = dbase + (size_t)j * row + 2 * (size_t)D;
                float s = 0.0f, pj = p[j];
#pragma omp simd reduction(+ : s)
                for (int d = 0; d < Dh; d++) {
                    s += dO[d] * v[d];
                    dv[d] += pj * dO[d];
                }
                g[j] = s;
                dot += pj * s;
            }
            for (int j = 0; j < n; j++)
                g[j] = p[j] * (g[j] - dot) * scale;
            /* dQ_i = sum_j dS_ij K_j; dK_j += dS_ij Q_i (the scale is folded into dS). */
            const float *q = base + (size_t)i * row;
            float *dq = dbase + (size_t)i * row;
            for (int j = 0; j < n; j++) {
                const float *k = base + (size_t)j * row + D;
                float *dk = dbase + (size_t)j * row + D;
                float gj = g[j];
#pragma omp simd
                for (int d = 0; d < Dh; d++) {
                    dq[d] += gj * k[d];
                    dk[d] += gj * q[d];
                }
            }
        }
    }
}
