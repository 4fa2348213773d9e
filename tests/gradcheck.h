/* Finite-difference gradient checker for ops, losses and whole models (test code only).
 *
 * How to use it:
 *   1. Write a scalar function `double f(void *ctx)` that runs the forward pass from the
 *      CURRENT values of the checked variables and returns one number. For an op with a tensor
 *      output, reduce the output with a fixed random projection (gc_proj below):
 *      f = gc_proj_dot(&proj, out). For a loss, return the loss itself (times a constant if
 *      you want to exercise dloss != 1).
 *   2. Compute the analytic gradient of that same scalar once, before the check: run backward
 *      with dout = proj.r (gc_proj_dout) or dloss = the constant, into zeroed gradient buffers.
 *   3. Describe each variable to check (input or parameter) with a gc_var and call gc_check.
 *
 * What it does: for each variable, a random subset of at most opts.max_coords coordinates
 * (all of them when there are fewer) is drawn from opts.seed; each coordinate x is set to
 * x + h and x - h (rounded to float; the true step is used), f is evaluated at both, and the
 * central difference (f+ - f-) / (x+ - x-) is compared with the analytic value a:
 *     |a - n| <= atol + rtol * max(|a|, |n|).
 * The variable is restored bit for bit after each coordinate. f must be deterministic.
 *
 * Non-differentiable points (ReLU at 0, the eps clamp of a norm) are skipped two ways:
 *   - skip(ctx, var, i, h) returning nonzero skips coordinate i of variable var before any
 *     evaluation (use it when the kink is known: |input| < h for ReLU); skip may be NULL;
 *   - automatically, when the central difference fails but the two one-sided differences
 *     disagree with each other beyond the tolerance while one of them matches a: a kink lies
 *     within h of x (this catches ReLU kinks deep inside a model).
 * Skipped coordinates are counted; more than opts.max_skip_frac of the drawn coordinates
 * skipped is itself a failure, so a check cannot pass by skipping everything.
 */
#ifndef CX_TESTS_GRADCHECK_H
#define CX_TESTS_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

/* One tensor whose gradient is checked. x is perturbed in place and restored; grad is the
 * analytic gradient of f with respect to x, same shape. Both are owned by the caller. */
typedef struct {
    const char *name; /* for messages, e.g. "dw" */
    float *x;         /* (n) */
    const float *grad; /* (n) */
    size_t n;
} gc_var;

typedef struct {
    double h;            /* step; 1e-2 suits float ops with O(1) values */
    double rtol, atol;   /* tolerance, see above */
    size_t max_coords;   /* per variable; 0 = all coordinates */
    uint64_t seed;       /* picks the coordinate subset */
    double max_skip_frac; /* fail when more than this fraction was skipped */
} gc_opts;

/* h 1e-2, rtol 2e-2, atol 1e-3, 64 coordinates, seed 1, at most 20% skipped. */
gc_opts gc_opts_default(void);

typedef struct {
    size_t checked;   /* coordinates compared */
    size_t skipped;   /* coordinates skipped (by skip() or as kinks) */
    double worst;     /* largest |a - n| / (atol + rtol max(|a|, |n|)) seen; <= 1 passes */
    char msg[512];    /* first failure: variable, index, analytic, numeric; "" on success */
} gc_report;

typedef double (*gc_fn)(void *ctx);
typedef int (*gc_skip_fn)(void *ctx, int var, size_t i, double h);

/* Returns 0 when every checked coordinate passes and the skip budget holds, -1 otherwise
 * (rep->msg says why). rep may not be NULL. */
int gc_check(gc_fn f, gc_skip_fn skip, void *ctx, const gc_var *vars, int nvars,
             const gc_opts *opts, gc_report *rep);

/* A fixed random projection of an op's output: r (n) holds float values (so dout = r is exact
 * and the analytic gradient is that of exactly the scalar gc_proj_dot computes). */
typedef struct {
    float *r; /* (n), owned */
    size_t n;
} gc_proj;

/* r_i ~ N(0, 1) from seed. Returns 0, or -1 when out of memory. */
int gc_proj_init(gc_proj *p, size_t n, uint64_t seed);
void gc_proj_free(gc_proj *p);
/* sum_i r_i out_i, accumulated in double in index order. */
double gc_proj_dot(const gc_proj *p, const float *out);
/* dout (n) = r. */
void gc_proj_dout(const gc_proj *p, float *dout);

/* Fill x (n) with N(0, sd) values from seed (test inputs). */
void gc_fill_normal(float *x, size_t n, uint64_t seed, double sd);

/* Zeroed buffers of n values (at least one), and one of N(0, sd) values from seed; a failed
 * allocation fails the test. The caller frees them. */
float *gc_fbuf(size_t n);
double *gc_dbuf(size_t n);
float *gc_frand(size_t n, uint64_t seed, double sd);

/* |got - want| <= atol + rtol |want| elementwise, failing the test at the first offender. */
void gc_assert_close(const float *got, const double *want, size_t n, double rtol, double atol,
                     const char *what);
/* Fail the test unless gc_check passed (rc 0) and checked something. */
void gc_assert_passed(int rc, const gc_report *rep, const char *what);

/* x (n) = NaN: an output buffer whose old contents must not matter. */
void gc_fill_nan(float *x, size_t n);

/* FNV-1a hash of bytes, to compare outputs bit for bit across runs. */
uint64_t gc_hash_bytes(const void *p, size_t bytes);

/* The naive reference of 2x2 stride-2 max pooling (the ops tests and the CNN tower's): the first
 * maximum wins; idx (may be NULL) as cx_maxpool2d's. Input in double. */
void gc_naive_maxpool2x2(double *out, int32_t *idx, const double *in, int B, int C, int H, int W);

#endif
