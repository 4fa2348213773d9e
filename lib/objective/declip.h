/* DeCLIP's nearest-neighbour supervision (methods.md section 6): a FIFO queue of unit caption
 * embeddings, the nearest queued neighbour of each caption by cosine, and the image-to-NN
 * cross-entropy. The multi-view term is four cx_infonce_forward calls (lib/train/declip_step.c). */
#ifndef CX_OBJECTIVE_DECLIP_H
#define CX_OBJECTIVE_DECLIP_H

#include <stdint.h>

/* nn[i] = the row of queue (Q, D) among its first `filled` rows with the largest dot product
 * with q[i] (n, D) (unit rows: the most cosine-similar; the lowest row on a tie). sims is
 * (n, filled) scratch. filled >= 1. */
void cx_declip_nearest(int32_t *nn, float *sims, const float *q, int n, const float *queue,
                       int filled, int D);

/* Write the n unit rows of x (n, D) into the ring queue (Q, D) at *pos, advancing it modulo Q
 * and raising *filled up to Q. With n > Q only the last Q rows stay. */
void cx_declip_enqueue(float *queue, int Q, int *pos, int *filled, const float *x, int n, int D);

/* L = 1/B sum_i [logsumexp_j(s img_i . nn_j) - s img_i . nn_i]: each image's caption is the
 * nearest queued neighbour of its own caption, the batch's other neighbours the negatives;
 * the neighbours are constants (no gradient). dimg (B, D) = dloss dL/dimg (overwritten;
 * skipped when NULL); *dtheta += dloss dL/dtheta through s = exp(theta) (skipped when NULL).
 * logits and prob are (B, B) scratch. Returns L. */
double cx_declip_nns_loss(float *dimg, float *dtheta, float *logits, float *prob,
                          const float *img, const float *nn, float scale, int B, int D,
                          float dloss);

#endif
