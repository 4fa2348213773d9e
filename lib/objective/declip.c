/* DeCLIP's NNS queue and loss (see declip.h). */
#include "lib/objective/declip.h"

#include <math.h>
#include <string.h>

#include "lib/base/blas.h"

void cx_declip_nearest(int32_t *nn, float *sims, const float *q, int n, const float *queue,
                       int filled, int D)
{
    cx_sgemm(0, 1, n, filled, D, 1.0f, q, D, queue, D, 0.0f, sims, filled);
    for (int i = 0; i < n; i++) {
        const float *r = sims + (size_t)i * (size_t)filled;
        int best = 0;
        for (int j = 1; j < filled; j++)
            if (r[j] > r[best])
                best = j;
        nn[i] = best;
    }
}

void cx_declip_enqueue(float *queue, int Q, int *pos, int *filled, const float *x, int n, int D)
{
    int first = n > Q ? n - Q : 0;
    for (int i = first; i < n; i++) {
        memcpy(queue + (size_t)*pos * (size_t)D, x + (size_t)i * (size_t)D, sizeof(float) * (size_t)D);
        *pos = (*pos + 1) % Q;
        if (*filled < Q)
            (*filled)++;
    }
}

double cx_declip_nns_loss(float *dimg, float *dtheta, float *logits, float *prob,
                          const float *img, const float *nn, float scale, int B, int D,
                          float dloss)
{
    cx_sgemm(0, 1, B, B, D, scale, img, D, nn, D, 0.0f, logits, B);
    double loss = 0.0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * (size_t)B;
        float *p = prob + (size_t)i * (size_t)B;
        float mx = z[0];
        for (int j = 1; j < B; j++)
            mx = z[j] > mx ? z[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < B; j++)
            sum += (double)(p[j] = expf(z[j] - mx));
        for (int j = 0; j < B; j++)
            p[j] = (float)((double)p[j] / sum);
        loss += (double)mx + log(sum) - (double)z[i];
    }
    loss /= (double)B;
    /* G = dloss (P - I) / B: the gradient of L in the logits. */
    double dth = 0.0;
    for (int i = 0; i < B; i++) {
        float *g = prob + (size_t)i * (size_t)B;
        const float *z = logits + (size_t)i * (size_t)B;
        g[i] -= 1.0f;
        for (int j = 0; j < B; j++) {
            g[j] *= dloss / (float)B;
            dth += (double)g[j] * (double)z[j];
        }
    }
    if (dtheta)
        *dtheta += (float)dth;
    if (dimg)
        cx_sgemm(0, 0, B, D, B, scale, prob, B, nn, D, 0.0f, dimg, D);
    return loss;
}
