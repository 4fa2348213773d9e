/* sgemm at W1's own shapes (not a test; scripts/bench.sh runs it): every matrix product of one
 * W1 training step, with the transposes and accumulations clipx's ops use, timed in step order
 * R times. The compute floor is the batch over the sum of each product's best time: the
 * samples/s W1 would reach if a step were nothing but its matrix products, each at the rate
 * measured at its shape (the best of R, since on a shared machine a slow sample is other work). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
} product;

/* One W1 step at batch B: per linear layer (in K, out N) the forward out = in W^T (+ bias, so
 * beta 1), the input gradient din = dout W (not for the first layer) and dW += dout^T in. */
static int w1_products(product *p, int B, int clip)
{
    static const int layers[][2] = {{784, 1024}, {1024, 1024}, {1024, 256}};
    int n = 0;
    for (int l = 0; l < 3; l++) {
        int K = layers[l][0], N = layers[l][1];
        p[n++] = (product){"image fwd", 0, 1, B, N, K, 1.0f};
        if (l > 0)
            p[n++] = (product){"image dx", 0, 0, B, K, N, 0.0f};
        p[n++] = (product){"image dW", 1, 0, N, K, B, 1.0f};
    }
    if (!clip) {
        p[n++] = (product){"head fwd", 0, 1, B, 10, 256, 1.0f};
        p[n++] = (product){"head dx", 0, 0, B, 256, 10, 0.0f};
        p[n++] = (product){"head dW", 1, 0, 10, 256, B, 1.0f};
        return n;
    }
    /* Text tower's linear 256 -> 256 over the batch's captions (its input gradient feeds the
     * embedding gradient), then InfoNCE's logits and their two gradients. */
    p[n++] = (product){"text fwd", 0, 1, B, 256, 256, 1.0f};
    p[n++] = (product){"text dx", 0, 0, B, 256, 256, 0.0f};
    p[n++] = (product){"text dW", 1, 0, 256, 256, B, 1.0f};
    p[n++] = (product){"logits", 0, 1, B, B, 256, 0.0f};
    p[n++] = (product){"dimage", 0, 0, B, 256, B, 0.0f};
    p[n++] = (product){"dtext", 1, 0, B, 256, B, 0.0f};
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
    int threads = 2, B = 256, repeat = 30;
    for (int i = 1; i < argc; i++) {
        int *dst = !strcmp(argv[i], "--threads")  ? &threads
                   : !strcmp(argv[i], "--batch")  ? &B
                   : !strcmp(argv[i], "--repeat") ? &repeat
                                                  : NULL;
        if (!dst || i + 1 >= argc || (*dst = atoi(argv[++i])) < 1) {
            fprintf(stderr, "usage: bench_sgemm [--threads N] [--batch B] [--repeat R]\n");
            return 2;
        }
    }
    cx_threads_set(threads);
    const char *core = cx_blas_core_name();
    printf("core %s threads %d batch %d\n", core ? core : "unknown", threads, B);
    for (int clip = 0; clip <= 1; clip++) {
        product p[32];
        int np = w1_products(p, B, clip);
        /* Each product its own operands, as in a step: a step's weights and activations
         * (about 12 MB) do not all stay in cache, and the floor must not pretend they do. */
        float *a[32], *b[32], *c[32];
        for (int j = 0; j < np; j++) {
            a[j] = filled((size_t)p[j].m * p[j].k, 3u * j + 1);
            b[j] = filled((size_t)p[j].k * p[j].n, 3u * j + 2);
            c[j] = filled((size_t)p[j].m * p[j].n, 3u * j + 3);
        }
        double best[32], flops = 0;
        for (int j = 0; j < np; j++) {
            best[j] = 1e30;
            flops += 2.0 * p[j].m * p[j].n * p[j].k;
        }
        for (int r = 0; r < repeat + 2; r++) {
            for (int j = 0; j < np; j++) {
                int lda = p[j].ta ? p[j].m : p[j].k, ldb = p[j].tb ? p[j].k : p[j].n;
                double t0 = now();
                cx_sgemm(p[j].ta, p[j].tb, p[j].m, p[j].n, p[j].k, 1.0f, a[j], lda, b[j], ldb,
                         p[j].beta, c[j], p[j].n);
                double t = now() - t0;
                if (r >= 2 && t < best[j])
                    best[j] = t;
            }
        }
        /* The first two steps warmed the caches and the thread pool. */
        double best_step = 0;
        for (int j = 0; j < np; j++)
            best_step += best[j];
        const char *name = clip ? "clip" : "sl";
        for (int j = 0; j < np; j++)
            printf("%s %-9s %c%c m %4d n %4d k %4d  %6.1f GFLOP/s\n", name, p[j].what,
                   p[j].ta ? 'T' : 'N', p[j].tb ? 'T' : 'N', p[j].m, p[j].n, p[j].k,
                   2.0 * p[j].m * p[j].n * p[j].k / best[j] / 1e9);
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
