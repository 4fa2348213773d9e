/* sgemm at W1's and W2's own shapes, or with --dino at those of experiments/dino-bench.yaml (not
 * a test; scripts/bench.sh, bench_w2.sh and bench_dino.sh run it): every
 * matrix product of one training step, with the transposes and accumulations clipx's ops use,
 * timed in step order R times. The compute floor is the batch over the sum of each product's
 * best time: the samples/s the workload would reach if a step were nothing but its matrix
 * products, each at the rate measured at its shape (the best of R, since on a shared machine a
 * slow sample is other work). W2's attention is one small product per sample and head: those
 * B * H independent products are timed as one batch spread over the threads (one sgemm per
 * product, each thread on its own output), as a step can run them, not one after another on
 * one thread. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_thread_num(void) { return 0; }
#endif

#include "lib/base/blas.h"
#include "lib/base/threads.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

typedef struct {
    const char *what;
    int ta, tb, m, n, k;
    float beta;
    int count; /* calls per step (0 means 1): W2's attention is one product per sample and head */
} product;

/* One W1 step at batch B: per linear layer (in K, out N) the forward out = in W^T (+ bias, so
 * beta 1), the input gradient din = dout W (not for the first layer) and dW += dout^T in. */
static int w1_products(product *p, int B, int clip)
{
    static const int layers[][2] = {{784, 1024}, {1024, 1024}, {1024, 256}};
    int n = 0;
    for (int l = 0; l < 3; l++) {
        int K = layers[l][0], N = layers[l][1];
        p[n++] = (product){"image fwd", 0, 1, B, N, K, 1.0f, 0};
        if (l > 0)
            p[n++] = (product){"image dx", 0, 0, B, K, N, 0.0f, 0};
        p[n++] = (product){"image dW", 1, 0, N, K, B, 1.0f, 0};
    }
    if (!clip) {
        p[n++] = (product){"head fwd", 0, 1, B, 10, 256, 1.0f, 0};
        p[n++] = (product){"head dx", 0, 0, B, 256, 10, 0.0f, 0};
        p[n++] = (product){"head dW", 1, 0, 10, 256, B, 1.0f, 0};
        return n;
    }
    /* Text tower's linear 256 -> 256 over the batch's captions (its input gradient feeds the
     * embedding gradient), then InfoNCE's logits and their two gradients. */
    p[n++] = (product){"text fwd", 0, 1, B, 256, 256, 1.0f, 0};
    p[n++] = (product){"text dx", 0, 0, B, 256, 256, 0.0f, 0};
    p[n++] = (product){"text dW", 1, 0, 256, 256, B, 1.0f, 0};
    p[n++] = (product){"logits", 0, 1, B, B, 256, 0.0f, 0};
    p[n++] = (product){"dimage", 0, 0, B, 256, B, 0.0f, 0};
    p[n++] = (product){"dtext", 1, 0, B, 256, B, 0.0f, 0};
    return n;
}

/* One pre-norm block's linear products over R = batch * tokens rows (width D, MLP M): QKV,
 * output projection, MLP up and down, each forward, input gradient and weight gradient. */
static int block_products(product *p, int n, const char *tower, int R, int D, int M)
{
    static const int mult[][2] = {{1, 3}, {1, 1}, {1, 4}, {4, 1}};
    (void)tower;
    for (int l = 0; l < 4; l++) {
        int K = D * mult[l][0], N = (l == 2 ? M : l == 3 ? D : D * mult[l][1]);
        if (l == 3)
            K = M;
        p[n++] = (product){"blk fwd", 0, 1, R, N, K, 1.0f, 0};
        p[n++] = (product){"blk dx", 0, 0, R, K, N, 0.0f, 0};
        p[n++] = (product){"blk dW", 1, 0, N, K, R, 1.0f, 0};
    }
    return n;
}

/* Per (sample, head) attention over T tokens of head width h: S = Q K^T, O = P V, and in the
 * backward dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q, each called B * H times. */
static int attention_products(product *p, int n, int T, int h, int calls)
{
    p[n++] = (product){"attn QK^T", 0, 1, T, T, h, 0.0f, calls};
    p[n++] = (product){"attn PV", 0, 0, T, h, T, 0.0f, calls};
    p[n++] = (product){"attn dP", 0, 1, T, T, h, 0.0f, calls};
    p[n++] = (product){"attn dV", 1, 0, T, h, T, 0.0f, calls};
    p[n++] = (product){"attn dQ", 0, 0, T, h, T, 0.0f, calls};
    p[n++] = (product){"attn dK", 1, 0, T, h, T, 0.0f, calls};
    return n;
}

/* One W2 step (../shared/bench.md) at batch B: ViT patch 7 on 28 x 28 (16 patches + CLS),
 * width 128, 4 blocks of 4 heads, MLP 512; text 16 tokens, 2 blocks; projections 128 -> 128
 * without bias; InfoNCE's logits and their two gradients. */
static int w2_products(product *p, int B)
{
    int n = 0, D = 128, M = 512, H = 4;
    p[n++] = (product){"patch fwd", 0, 1, B * 16, D, 49, 1.0f, 0};
    p[n++] = (product){"patch dW", 1, 0, D, 49, B * 16, 1.0f, 0};
    for (int l = 0; l < 4; l++) {
        n = block_products(p, n, "image", B * 17, D, M);
        n = attention_products(p, n, 17, D / H, B * H);
    }
    for (int l = 0; l < 2; l++) {
        n = block_products(p, n, "text", B * 16, D, M);
        n = attention_products(p, n, 16, D / H, B * H);
    }
    for (int t = 0; t < 2; t++) {
        p[n++] = (product){"proj fwd", 0, 1, B, D, D, 0.0f, 0};
        p[n++] = (product){"proj dx", 0, 0, B, D, D, 0.0f, 0};
        p[n++] = (product){"proj dW", 1, 0, D, D, B, 1.0f, 0};
    }
    p[n++] = (product){"logits", 0, 1, B, B, D, 0.0f, 0};
    p[n++] = (product){"dimage", 0, 0, B, D, B, 0.0f, 0};
    p[n++] = (product){"dtext", 1, 0, B, D, B, 0.0f, 0};
    return n;
}

/* One DINO step of experiments/dino-bench.yaml at batch B: both views in one pass, R = 2B rows;
 * W1's image tower then the head 256-2048-2048-256, forward for the teacher and the student;
 * the cosine scores against K of the prototypes (dimension 256) for each, their two gradients
 * for the student; the student's backward through the head (its input gradient too: the tower
 * trains) and the tower (no input gradient for the first layer). */
static int dino_products(product *p, int B, int K)
{
    static const int layers[][2] = {{784, 1024}, {1024, 1024}, {1024, 256},
                                    {256, 2048}, {2048, 2048}, {2048, 256}};
    const int R = 2 * B, L = 6, D = 256;
    int n = 0;
    for (int side = 0; side < 2; side++) {
        for (int l = 0; l < L; l++)
            p[n++] = (product){side ? "student" : "teacher", 0, 1, R, layers[l][1], layers[l][0],
                               1.0f, 0};
        p[n++] = (product){side ? "s scores" : "t scores", 0, 1, R, K, D, 0.0f, 0};
    }
    p[n++] = (product){"dscores x", 0, 0, R, D, K, 0.0f, 0};
    p[n++] = (product){"dscores W", 1, 0, K, D, R, 0.0f, 0};
    for (int l = L - 1; l >= 0; l--) {
        int in = layers[l][0], out = layers[l][1];
        if (l > 0)
            p[n++] = (product){"dx", 0, 0, R, in, out, 0.0f, 0};
        p[n++] = (product){"dW", 1, 0, out, in, R, 1.0f, 0};
    }
    return n;
}

static float *filled(size_t n, unsigned seed)
{
    float *x = malloc(n * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    return x;
}

int main(int argc, char **argv)
{
    int threads = 2, B = 256, repeat = 30, dino_k = 0;
    for (int i = 1; i < argc; i++) {
        int *dst = !strcmp(argv[i], "--threads")  ? &threads
                   : !strcmp(argv[i], "--batch")  ? &B
                   : !strcmp(argv[i], "--repeat") ? &repeat
                   : !strcmp(argv[i], "--dino")   ? &dino_k
                                                  : NULL;
        if (!dst || i + 1 >= argc || (*dst = atoi(argv[++i])) < 1) {
            fprintf(stderr, "usage: bench_sgemm [--threads N] [--batch B] [--repeat R] "
                            "[--dino K]\n");
            return 2;
        }
    }
    cx_threads_set(threads);
    const char *core = cx_blas_core_name();
    printf("core %s threads %d batch %d\n", core ? core : "unknown", threads, B);
    /* --dino K: the DINO step alone (K prototypes a step), instead of W1 and W2. */
    for (int clip = dino_k ? 3 : 0; clip <= (dino_k ? 3 : 2); clip++) {
        product p[160];
        int np = clip == 3   ? dino_products(p, B, dino_k)
                 : clip == 2 ? w2_products(p, B)
                             : w1_products(p, B, clip);
        /* Each product its own operands, as in a step: a step's weights and activations
         * (about 12 MB) do not all stay in cache, and the floor must not pretend they do. */
        float *a[160], *b[160], *c[160];
        for (int j = 0; j < np; j++) {
            a[j] = filled((size_t)p[j].m * p[j].k, 3u * j + 1);
            b[j] = filled((size_t)p[j].k * p[j].n, 3u * j + 2);
            c[j] = filled((size_t)p[j].m * p[j].n * (p[j].count ? threads : 1), 3u * j + 3);
        }
        double best[160], flops = 0;
        for (int j = 0; j < np; j++) {
            best[j] = 1e30;
            flops += 2.0 * p[j].m * p[j].n * p[j].k * (p[j].count ? p[j].count : 1);
        }
        for (int r = 0; r < repeat + 2; r++) {
            for (int j = 0; j < np; j++) {
                int lda = p[j].ta ? p[j].m : p[j].k, ldb = p[j].tb ? p[j].k : p[j].n;
                double t0 = now();
                if (p[j].count) {
                    const product *q = &p[j];
                    float *qa = a[j], *qb = b[j], *qc = c[j];
                    cx_blas_serial_begin();
#pragma omp parallel for schedule(static)
                    for (int i = 0; i < q->count; i++)
                        cx_sgemm(q->ta, q->tb, q->m, q->n, q->k, 1.0f, qa, lda, qb, ldb, q->beta,
                                 qc + (size_t)omp_get_thread_num() * q->m * q->n, q->n);
                    cx_blas_serial_end(threads);
                } else {
                    cx_sgemm(p[j].ta, p[j].tb, p[j].m, p[j].n, p[j].k, 1.0f, a[j], lda, b[j], ldb,
                             p[j].beta, c[j], p[j].n);
                }
                double t = now() - t0;
                if (r >= 2 && t < best[j])
                    best[j] = t;
            }
        }
        /* The first two steps warmed the caches and the thread pool. */
        double best_step = 0;
        for (int j = 0; j < np; j++)
            best_step += best[j]; /* a batched product's time is its whole batch's */
        const char *name = clip == 3 ? "dino" : clip == 2 ? "w2" : clip ? "clip" : "sl";
        for (int j = 0; j < np; j++)
            printf("%s %-9s %c%c m %4d n %4d k %4d  %6.1f GFLOP/s\n", name, p[j].what,
                   p[j].ta ? 'T' : 'N', p[j].tb ? 'T' : 'N', p[j].m, p[j].n, p[j].k,
                   2.0 * p[j].m * p[j].n * p[j].k * (p[j].count ? p[j].count : 1) / best[j] / 1e9);
        printf("%s step_mflop_per_sample %.2f step_gflops %.1f floor_samples_per_s %.0f\n", name,
               flops / B / 1e6, flops / best_step / 1e9, B / best_step);
        for (int j = 0; j < np; j++) {
            free(a[j]);
            free(b[j]);
            free(c[j]);
        }
    }
    return 0;
}
