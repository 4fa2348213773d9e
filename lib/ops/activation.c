/* Elementwise activations: ReLU and exact (erf) GELU. Each element is independent, so the
 * results do not depend on threading; loops are plain so the compiler vectorises them. */
#include "config.h"
#include "lib/ops/ops.h"

#include <math.h>

#include "lib/ops/ops_internal.h"

void cx_relu_forward(float *out, const float *in, size_t n)
{
    /* `x < 0 ? 0 : x` keeps NaN (as torch.relu does), so a diverged input is not hidden. */
#pragma omp parallel for simd schedule(static) if (parallel : n >= CX_OPS_PAR_ELEMS)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] < 0.0f ? 0.0f : in[i];
}

void cx_relu_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n >= CX_OPS_PAR_ELEMS)
    for (size_t i = 0; i < n; i++) {
        float g = dout[i]; /* loaded unconditionally, so the select vectorises */
        din[i] = out[i] > 0.0f ? g : 0.0f;
    }
}

#define GELU_RSQRT2 0.70710678118654752440
#define GELU_RSQRT2PI 0.39894228040143267794 /* 1 / sqrt(2 pi) */

void cx_gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= CX_OPS_PAR_ELEMS_DEAR)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)GELU_RSQRT2));
    }
}

void cx_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
    /* d/dx x Phi(x) = Phi(x) + x phi(x). */
#pragma omp parallel for schedule(static) if (n >= CX_OPS_PAR_ELEMS_DEAR)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)GELU_RSQRT2));
        float pdf = (float)GELU_RSQRT2PI * expf(-0.5f * x * x);
        din[i] = dout[i] * (cdf + x * pdf);
    }
}
