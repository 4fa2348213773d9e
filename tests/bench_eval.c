/* Evaluation benchmark (not a test; `make bench-eval`): zero-shot classification of random
 * features, 1,000 classes x 50,000 test vectors of dimension 512 by default, timing each phase
 * of `clipx eval`'s library path: zero-shot weights, chunked scoring, the report (every
 * metric), NC1 and coherences, and the JSON / TSV serialisation. bench.md's target: the total
 * under 1 s of wall time on 2 cores. Data generation is not timed. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/blas.h"
#include "lib/base/clock.h"
#include "lib/base/rng.h"
#include "lib/base/threads.h"
#include "lib/eval/classifier.h"
#include "lib/eval/collapse.h"
#include "lib/eval/report.h"
#include "lib/eval/score.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: bench_eval [--threads N] [--classes C] [--n N] [--dim D] "
                "[--templates T] [--no-nc1] [--repeat R]\n");
}

static int fail(const char *what, const cx_err *err)
{
    fprintf(stderr, "bench_eval: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = 2, C = 1000, N = 50000, D = 512, T = 7, nc1 = 1, repeat = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int *dst = !strcmp(a, "--threads")     ? &threads
                   : !strcmp(a, "--classes")   ? &C
                   : !strcmp(a, "--n")         ? &N
                   : !strcmp(a, "--dim")       ? &D
                   : !strcmp(a, "--templates") ? &T
                   : !strcmp(a, "--repeat")    ? &repeat
                                               : NULL;
        if (!strcmp(a, "--no-nc1")) {
            nc1 = 0;
        } else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (dst && i + 1 < argc) {
            *dst = atoi(argv[++i]);
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (C < 2 || N < 1 || D < 1 || T < 1 || repeat < 1) {
        usage(stderr);
        return 2;
    }
    threads = cx_threads_set(threads);

    /* Class directions, templates around them, test vectors around their class's direction
     * with enough noise that accuracy is far from 0 and from 1. */
    float *emb = malloc(sizeof *emb * (size_t)T * C * D);
    float *x = malloc(sizeof *x * (size_t)N * D);
    int32_t *y = malloc(sizeof *y * (size_t)N);
    int64_t *train = malloc(sizeof *train * (size_t)C);
    float *dir = malloc(sizeof *dir * (size_t)C * D);
    if (!emb || !x || !y || !train || !dir) {
        fprintf(stderr, "bench_eval: out of memory\n");
        return 1;
    }
    cx_rng r;
    cx_rng_seed(&r, 1, 0);
    double sd = 1.0 / sqrt((double)D);
    for (size_t i = 0; i < (size_t)C * D; i++)
        dir[i] = (float)(sd * cx_rng_normal(&r));
    for (int t = 0; t < T; t++)
        for (size_t i = 0; i < (size_t)C * D; i++)
            emb[(size_t)t * C * D + i] = dir[i] + (float)(0.5 * sd * cx_rng_normal(&r));
    for (int i = 0; i < N; i++) {
        y[i] = i % C;
        for (int d = 0; d < D; d++)
            x[(size_t)i * D + d] = dir[(size_t)y[i] * D + d] + (float)(5.0 * sd * cx_rng_normal(&r));
    }
    /* Training counts of an exponential profile, rho = 100 over 1,000 down to 10. */
    for (int c = 0; c < C; c++)
        train[c] = (int64_t)floor(1000.0 * pow(100.0, -(double)c / (C - 1)));

    /* The floor, side by side: the bare N x C x D product as one threaded sgemm, without
     * normalisation, top-k, confidences or metrics. */
    float *logits = malloc(sizeof *logits * (size_t)N * C);
    if (!logits) {
        fprintf(stderr, "bench_eval: out of memory\n");
        return 1;
    }
    double floor_s = INFINITY;
    for (int rep = 0; rep < repeat; rep++) {
        double t0 = cx_clock_seconds();
        cx_sgemm(0, 1, N, C, D, 1.0f, x, D, dir, D, 0.0f, logits, C);
        floor_s = fmin(floor_s, cx_clock_seconds() - t0);
    }
    free(logits);

    double best[6] = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
    cx_err err;
    double top1 = 0, nc1v = 0;
    for (int rep = 0; rep < repeat; rep++) {
        cx_eval_classifier clf;
        cx_eval_pred pred;
        cx_eval_report rep_;
        cx_collapse col;
        double t0 = cx_clock_seconds();
        if (cx_eval_zeroshot(&clf, emb, T, C, D, CX_EVAL_COSINE_SCALE, &err))
            return fail("zero-shot weights", &err);
        double t1 = cx_clock_seconds();
        if (cx_eval_score(&clf, x, y, N, 0, &pred, &err))
            return fail("scoring", &err);
        double t2 = cx_clock_seconds();
        if (cx_eval_report_build(&rep_, &pred, y, train, NULL, NULL, &err))
            return fail("report", &err);
        double t3 = cx_clock_seconds();
        if (cx_collapse_compute(&col, x, y, N, C, D, clf.w, nc1, &err) ||
            cx_eval_report_attach_collapse(&rep_, &col, &err))
            return fail("collapse", &err);
        double t4 = cx_clock_seconds();
        char *buf = NULL;
        size_t len = 0;
        FILE *fp = open_memstream(&buf, &len);
        cx_json j;
        cx_json_init(&j, fp, 0);
        cx_eval_report_json(&rep_, &j);
        if (cx_eval_write_per_class_tsv(&rep_, fp, "memory", &err) ||
            cx_eval_write_confusion_tsv(&rep_, fp, "memory", &err))
            return fail("writers", &err);
        fclose(fp);
        free(buf);
        double t5 = cx_clock_seconds();
        double ph[6] = {t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0};
        for (int k = 0; k < 6; k++)
            best[k] = fmin(best[k], ph[k]);
        top1 = rep_.top1;
        nc1v = rep_.nc1;
        cx_collapse_free(&col);
        cx_eval_report_free(&rep_);
        cx_eval_pred_free(&pred);
        cx_eval_classifier_free(&clf);
    }
    printf("eval zero-shot C=%d N=%d D=%d T=%d threads=%d nc1=%s (best of %d): total %.3f s "
           "[weights %.3f, scoring %.3f, metrics %.3f, collapse %.3f, writers %.3f] "
           "top1 %.4f nc1 %.4g; bare sgemm %.3f s (%.0f GFLOP/s), total / sgemm %.2f\n",
           C, N, D, T, threads, nc1 ? "yes" : "no", repeat, best[5], best[0], best[1], best[2],
           best[3], best[4], top1, nc1v, floor_s, 2.0 * N * C * D / floor_s * 1e-9,
           best[5] / floor_s);
    free(emb);
    free(x);
    free(y);
    free(train);
    free(dir);
    return 0;
}
