/* The simplex targets, the centroids' moving average and the Hungarian matching. */
#include "lib/model/tsc_targets.h"

#include <math.h>

int cx_tsc_simplex(int C, int D, float *out)
{
    if (C < 2 || C > D)
        return -1;
    /* sqrt(C / (C - 1)) (e_c - 1/C): unit norm, zero sum. */
    double s = sqrt((double)C / (C - 1));
    for (int c = 0; c < C; c++)
        for (int d = 0; d < D; d++)
            out[(size_t)c * D + d] = d < C ? (float)(s * ((d == c) - 1.0 / C)) : 0.0f;
    return 0;
}

static void normalize(double *v, int D)
{
    double nn = 0;
    for (int d = 0; d < D; d++)
        nn += v[d] * v[d];
    double inv = 1.0 / fmax(sqrt(nn), 1e-12);
    for (int d = 0; d < D; d++)
        v[d] *= inv;
}

void cx_tsc_centroids_update(float *cent, int32_t *seen, const float *q, const int32_t *y,
                             int B, int C, int D, double m, double *u)
{
    for (int c = 0; c < C; c++) {
        int cnt = 0;
        for (int d = 0; d < D; d++)
            u[d] = 0;
        for (int i = 0; i < B; i++)
            if (y[i] == c) {
                cnt++;
                for (int d = 0; d < D; d++)
                    u[d] += q[(size_t)i * D + d];
            }
        if (!cnt)
            continue;
        normalize(u, D);
        float *ct = cent + (size_t)c * D;
        if (seen[c])
            for (int d = 0; d < D; d++)
                u[d] = m * ct[d] + (1 - m) * u[d];
        normalize(u, D);
        for (int d = 0; d < D; d++)
            ct[d] = (float)u[d];
        seen[c] = 1;
    }
}

void cx_tsc_assign(const float *cent, const int32_t *seen, const float *targets, int C, int D,
                   int32_t *assign, double *dw, int32_t *iw)
{
    /* Minimise the cost -cos; rows (classes) and columns (targets) 1-based, column 0 the
     * virtual start (the potentials' method, O(C^3)). */
    double *cost = dw, *u = dw + (size_t)C * C, *v = u + C + 1, *minv = v + C + 1;
    int32_t *p = iw, *way = iw + C + 1, *used = way + C + 1;
    for (int c = 0; c < C; c++)
        for (int t = 0; t < C; t++) {
            double a = 0;
            if (seen[c])
                for (int d = 0; d < D; d++)
                    a += (double)cent[(size_t)c * D + d] * targets[(size_t)t * D + d];
            cost[(size_t)c * C + t] = -a;
        }
    for (int j = 0; j <= C; j++)
        u[j] = v[j] = 0, p[j] = 0, way[j] = 0;
    for (int i = 1; i <= C; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= C; j++)
            minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= C; j++)
                if (!used[j]) {
                    double cur = cost[(size_t)(i0 - 1) * C + (j - 1)] - u[i0] - v[j];
                    if (cur < minv[j])
                        minv[j] = cur, way[j] = j0;
                    if (minv[j] < delta)
                        delta = minv[j], j1 = j;
                }
            for (int j = 0; j <= C; j++)
                if (used[j])
                    u[p[j]] += delta, v[j] -= delta;
                else
                    minv[j] -= delta;
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; j <= C; j++)
        assign[p[j] - 1] = j - 1;
}
