/* L_TSC and its gradient through the normalisation. */
#include "lib/model/tsc_loss.h"

#include <math.h>

double cx_tsc_loss(const float *z, const int32_t *y, int B, int D, const cx_tsc_bank *k,
                   float dloss, float *dz, double *work)
{
    int Q = k->Q, C = k->C, n = Q + C;
    double *lg = work, *q = work + n, *dq = q + D, total = 0;
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * D;
        double nn = 0;
        for (int d = 0; d < D; d++)
            nn += (double)zi[d] * zi[d];
        double norm = fmax(sqrt(nn), 1e-12);
        for (int d = 0; d < D; d++)
            q[d] = zi[d] / norm;
        /* Column 0 (the sample against itself) is the constant 1 / T: q . q = 1. */
        double self = 1.0 / k->T, m = self;
        for (int j = 0; j < n; j++) {
            const float *v = j < Q ? k->queue + (size_t)j * D : k->targets + (size_t)(j - Q) * D;
            double a = 0;
            for (int d = 0; d < D; d++)
                a += q[d] * v[d];
            lg[j] = a / k->T;
            if (lg[j] > m)
                m = lg[j];
        }
        double Z = exp(self - m);
        for (int j = 0; j < n; j++)
            Z += exp(lg[j] - m);
        double lse = m + log(Z);
        int ti = Q + k->assign[y[i]], npos = 0;
        for (int j = 0; j < Q; j++)
            npos += k->qlabel[j] == y[i];
        double ni = 2.0 + npos, a_self = 1.0 / ni + 1.0, a_pos = 1.0 / ni, a_t = k->tw / ni;
        double li = -a_self * (self - lse) - a_t * (lg[ti] - lse);
        for (int j = 0; j < Q; j++)
            if (k->qlabel[j] == y[i])
                li -= a_pos * (lg[j] - lse);
        total += li;
        if (!dz)
            continue;
        /* dloss_i / dlogit_j = A p_j - a_j with A = sum of the a's; the self column carries no
         * gradient (q . q is constant under the normalisation). */
        double A = a_self + a_t + a_pos * npos;
        for (int d = 0; d < D; d++)
            dq[d] = 0;
        for (int j = 0; j < n; j++) {
            double g = A * exp(lg[j] - lse);
            if (j == ti)
                g -= a_t;
            else if (j < Q && k->qlabel[j] == y[i])
                g -= a_pos;
            g /= k->T;
            const float *v = j < Q ? k->queue + (size_t)j * D : k->targets + (size_t)(j - Q) * D;
            for (int d = 0; d < D; d++)
                dq[d] += g * v[d];
        }
        double qg = 0;
        for (int d = 0; d < D; d++)
            qg += q[d] * dq[d];
        double s = (double)dloss / B / norm;
        for (int d = 0; d < D; d++)
            dz[(size_t)i * D + d] = (float)(s * (dq[d] - q[d] * qg));
    }
    return total / B;
}
