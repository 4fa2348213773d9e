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

/* Scratch of cx_declip_loss for B pairs per view, D dimensions, a queue of up to Q rows. */
typedef struct {
    float *img, *txt;           /* (2B, D) unit features */
    float *img_norm, *txt_norm; /* (2B) */
    float *tmp_img, *tmp_txt;   /* (B, D) */
    float *logits, *p_row, *p_col, *scratch; /* (B, B) */
    float *nn;                  /* (B, D) the neighbours of one caption view */
    int32_t *nn_idx;            /* (B) */
    float *sims;                /* (B, Q) */
} cx_declip_work;

/* Allocate (0) or fail (-1, everything freed). */
int cx_declip_work_alloc(cx_declip_work *w, int B, int D, int Q);
void cx_declip_work_free(cx_declip_work *w);

/* The DeCLIP loss on the towers' outputs f (image, 2B rows: view 0 then view 1) and g
 * (captions, 2B rows: the originals then their EDA view), unnormalised:
 *   L = w_mv L_MV + w_nns L_NNS,
 *   L_MV = 1/4 sum_{a,b in 0,1} CLIP(image view a, caption view b) (symmetric InfoNCE),
 *   L_NNS = 1/2 sum_{v in 0,1} nns_loss(image view v, NN(caption view v))
 * with logit scale `scale`, NN from the first `filled` rows of queue (no NNS term when
 * filled is 0). df, dg (2B, D) get dL/df, dL/dg (overwritten; each skipped when NULL);
 * *dtheta += dL/dtheta (skipped when NULL). w->txt then holds the unit captions (the
 * originals first, to enqueue). Returns L. */
double cx_declip_loss(cx_declip_work *w, float *df, float *dg, float *dtheta, const float *f,
                      const float *g, float scale, const float *queue, int filled, int B, int D,
                      double w_mv, double w_nns);

#endif
