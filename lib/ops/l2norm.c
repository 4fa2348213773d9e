/* Row-wise L2 normalisation as torch.nn.functional.normalize: in / max(||in||, eps). The
 * squared norm and the projection <dout, out> are summed in double. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/ops/ops_internal.h"

void cx_l2norm_forward(float *out, float *norm, const float *in, int B, int D, float eps)
{
    if (B <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * D >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < B; i++) {
        const float *x = in + (size_t)i * D;
        float *o = out + (size_t)i * D;
        double ss = 0.0;
        for (int j = 0; j < D; j++)
            ss += (double)x[j] * x[j];
        double n = sqrt(ss);
        float nf = (float)(n > eps ? n : (double)eps);
        norm[i] = nf;
#pragma omp simd
        for (int j = 0; j < D; j++)
            o[j] = x[j] / nf;
    }
}

void cx_l2norm_backward(float *din, const float *dout, const float *out, const float *norm,
                        int B, int D, float eps)
{
    if (B <= 0 || D <= 0)
        return;
#pragma omp parallel for schedule(static) if ((size_t)B * D >= CX_OPS_PAR_ELEMS_DEAR)
    for (int i = 0; i < B; i++) {
        const float *d = dout + (size_t)i * D;
        const float *y = out + (size_t)i * D;
        float *o = din + (size_t)i * D;
        float nf = norm[i];
        if (!(nf > eps)) {
            /* The norm was clamped to eps, a constant: only the division flows back. */
#pragma omp simd
            for (int j = 0; j < D; j++)
                o[j] = d[j] / eps;
            continue;
        }
        double p = 0.0;
        for (int j = 0; j < D; j++)
            p += (double)d[j] * y[j];
        float pf = (float)p;
#pragma omp simd
        for (int j = 0; j < D; j++)
            o[j] = (d[j] - y[j] * pf) / nf;
    }
}
