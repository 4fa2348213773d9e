/* Long-tailed (and other) subsets of a training split: per-class target sizes from a profile
 * (methods.md section 1), then a seeded choice of which samples each class keeps. */
#ifndef CX_DATA_SUBSAMPLE_H
#define CX_DATA_SUBSAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/err.h"

typedef enum {
    CX_PROFILE_EXP,      /* n_i = floor(n_max rho^(-i/(C-1))) */
    CX_PROFILE_PARETO,   /* n_i = max(n_min, floor(n_max (i+1)^(-alpha))) */
    CX_PROFILE_STEP,     /* floor(mu C) classes keep n_max, the rest floor(n_max / rho) */
    CX_PROFILE_UNIFORM,  /* every class the same size */
    CX_PROFILE_MATCH,    /* per-class counts of a frequency file */
    CX_PROFILE_SCALE,    /* a fraction or a total of the data, class proportions kept */
    CX_PROFILE_TRIM_TAIL /* the k rarest classes capped at `cap` */
} cx_profile;

/* "exp", "pareto", ...; -1 for an unknown name. */
int cx_profile_parse(const char *name);
const char *cx_profile_name(cx_profile p);

typedef struct {
    cx_profile profile;
    double rho;            /* exp, pareto, step: imbalance ratio n_max / n_min (default 100) */
    double alpha;          /* pareto: exponent; 0 derives it from rho as ln(rho) / ln(C) */
    double mu;             /* step: fraction of classes that keep n_max (default 0.5) */
    int64_t n_max;         /* exp, pareto, step, uniform: the largest class's size; 0: the largest
                              available class (uniform: the smallest, so the result is balanced) */
    int64_t n_min;         /* pareto: the smallest size (default 1) */
    int64_t n;             /* scale: samples to keep; uniform: total split evenly (0: unset) */
    double frac;           /* scale: fraction to keep when n is 0 */
    const int64_t *counts; /* match: per-class counts (C), e.g. from cx_freq_read */
    int tail_k;            /* trim-tail: how many of the rarest classes are capped */
    int64_t cap;           /* trim-tail: their cap */
    const uint32_t *order; /* exp, pareto, step: order[i] is the class that gets the i-th size
                              (a permutation of the evaluated classes); NULL: class order */
} cx_subsample_opts;

void cx_subsample_defaults(cx_subsample_opts *o);

/* The size at position i = 0..C-1 of profile p (exp, pareto, step or uniform) for a head class
 * of size head, before any truncation: head rho^(-i/(C-1)), head (i+1)^(-alpha), head or
 * head / rho, head. synth's weights (head 1) and subsample's sizes (head n_max,
 * truncated) both come from it. */
double cx_profile_size(cx_profile p, double head, int i, int C, double rho, double alpha,
                       double mu);

/* Profile sizes by position i = 0..C-1 (before capping at what each class has). */
void cx_profile_exp(int64_t n_max, double rho, int C, int64_t *sizes);
void cx_profile_pareto(int64_t n_max, double alpha, int64_t n_min, int C, int64_t *sizes);
void cx_profile_step(int64_t n_max, double rho, double mu, int C, int64_t *sizes);
/* The Zipf exponent that gives an imbalance ratio rho over C classes: ln(rho) / ln(C). */
double cx_profile_pareto_alpha(double rho, int C);

/* Largest-remainder apportionment: sizes proportional to weights w (C, >= 0, not all 0)
 * summing to exactly total, every class with w > 0 at least min_each (when total allows;
 * the excess comes from the largest classes). Deterministic; ties go to lower indices. */
void cx_apportion(const double *w, int C, int64_t total, int64_t min_each, int64_t *sizes);

/* Target count of every class from the available counts avail (C). Classes >= C_eval are
 * open-world concepts: every profile but match and scale keeps all their samples (match and
 * scale treat them like any class). A class never gets more than it has. Errors (CX_EUSAGE)
 * name the field of o at fault, most at the start of the message: "tail_k: 5 is out of ...". */
cx_status cx_subsample_targets(const cx_subsample_opts *o, const int64_t *avail, int C, int C_eval,
                               int64_t *target, cx_err *err);

/* Choose target[c] of the candidates of each class c, where labels[0..n) are the candidates'
 * labels. Within a class, a partial Fisher-Yates shuffle on the RNG stream (seed, class) picks
 * the kept candidates, so a class's choice does not depend on the other classes. *kept (owned,
 * ascending) receives *nkept candidate positions in [0, n). */
cx_status cx_subsample_select(const int32_t *labels, size_t n, int C, const int64_t *target,
                              uint64_t seed, uint32_t **kept, size_t *nkept, cx_err *err);

#endif
