/* Neural-collapse statistics of features and the coherence of class means and classifier
 * weights (methods.md section 7). */
#ifndef CX_EVAL_COLLAPSE_H
#define CX_EVAL_COLLAPSE_H

#include <stdint.h>

#include "lib/base/err.h"

typedef struct {
    int C;
    int n_present;    /* classes with at least one feature vector */
    int rank;         /* rank of Sigma_B kept by its pseudo-inverse (0 when NC1 was skipped) */
    /* NC1_c = tr(Sigma_W^c Sigma_B^+) on the unnormalised features h, with mu_c the class
     * means, mu_G = the mean of the present classes' mu_c (unweighted), Sigma_W^c = sum over
     * class c of (h_i - mu_c)(h_i - mu_c)^T / N, Sigma_B = M^T M / C' over the C' present
     * classes, M = [mu_c - mu_G]. nc1 = the mean of NC1_c over present classes (Papyan et
     * al.'s tr(Sigma_W Sigma_B^+) / C). NaN when skipped or with fewer than 2 classes. */
    double nc1;
    double *nc1_class;               /* (C), owned; NaN for absent classes; NULL if skipped */
    /* Coherence of V (rows row-normalised): G = V V^T + 1/(n-1) with its diagonal zeroed,
     * cos_all_c = sum_j |G_cj| / (n-1), cos_nearest_c = max_j |G_cj|; the scalars are means over
     * classes. "means": V = M over the present classes; "weights": V = W over all classes. */
    double means_cos_all, means_cos_nearest;
    double *means_cos_all_class;     /* (C), owned; NaN for absent classes */
    double *means_cos_nearest_class; /* (C), owned */
    double weights_cos_all, weights_cos_nearest; /* NaN without weights */
    double *weights_cos_all_class;     /* (C), owned, or NULL without weights */
    double *weights_cos_nearest_class; /* (C), owned, or NULL */
} cx_collapse;

/* h (N, D) features with labels y (N) in [0, C); w (C, D) classifier weights or NULL.
 * With want_nc1 == 0 only the coherences are computed (cheap: C^2 D). NC1 costs an
 * eigen-decomposition of size min(C', D) (single-threaded: ~0.15 s for 512) plus an
 * N x D x rank product (threaded like lib/eval/score.h; same bits on any thread count).
 * On failure out is left empty; CX_EDATA names a bad label or a non-finite feature. */
cx_status cx_collapse_compute(cx_collapse *out, const float *h, const int32_t *y, int N, int C,
                              int D, const float *w, int want_nc1, cx_err *err);

/* Safe on a zeroed or freed value. */
void cx_collapse_free(cx_collapse *c);

/* Coherence of the n rows of v (n, D) as above, into cos_all (n) and cos_nearest (n); every
 * value NaN when n < 2. A zero row has cosine 0 with every other row. */
cx_status cx_coherence(const float *v, int n, int D, double *cos_all, double *cos_nearest,
                       cx_err *err);

#endif
