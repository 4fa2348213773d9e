/* L_TSC's fixed targets and the class-to-target matching (the TSC module of the CFR authors'
 * code): C unit targets spread as far apart as C points can be (a regular simplex), class
 * centroids tracked as a moving average of the batches' unit embeddings, and the one-to-one
 * matching of classes to targets of largest total cosine (the Hungarian method). */
#ifndef CX_MODEL_TSC_TARGETS_H
#define CX_MODEL_TSC_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* The regular simplex of C unit vectors in the first C coordinates of D (pairwise cosine
 * -1/(C-1)) into out (C, D). Returns 0, or -1 when C < 2 or C > D. */
int cx_tsc_simplex(int C, int D, float *out);

/* Moves the centroid of every class present in the batch: c <- normalize(m c + (1 - m) u) with u
 * the normalised mean of the batch's unit embeddings q (B, D) of that class; a class not seen
 * before (seen[c] == 0) takes u itself. cent (C, D), seen (C) caller-owned; work D doubles. */
void cx_tsc_centroids_update(float *cent, int32_t *seen, const float *q, const int32_t *y,
                             int B, int C, int D, double m, double *work);

/* Doubles and ints of scratch cx_tsc_assign needs. */
#define CX_TSC_ASSIGN_DWORK(C) ((size_t)(C) * (size_t)(C) + 3 * ((size_t)(C) + 1))
#define CX_TSC_ASSIGN_IWORK(C) (3 * ((size_t)(C) + 1))

/* assign (C): the target of every class, a permutation maximising sum_c cent_c . t_assign[c];
 * classes never seen keep their own index's place in the search (their cost row is 0). */
void cx_tsc_assign(const float *cent, const int32_t *seen, const float *targets, int C, int D,
                   int32_t *assign, double *dwork, int32_t *iwork);

#endif
