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

/* libm's erff and expf are scalar calls, and GELU over a transformer's MLP activations took a
 * fifth of a training step through them. These inline versions vectorise under omp simd:
 * exp by range reduction to [-ln2/2, ln2/2] and a degree-7 Taylor polynomial (relative error
 * below 1e-8 before rounding), erf by Abramowitz and Stegun 7.1.26 (absolute error below
 * 1.5e-7), so GELU and its derivative are within 2e-7 of the exact erf forms. */
#pragma omp declare simd
static inline float exp_neg(float x)
{
    /* x <= 0; below -87 the result is 0 to float precision. */
    /* x < -87 clamped in the integer domain: a float select may trap, so GCC keeps it a
     * branch below AVX-512; for x <= 0 a larger signed bit pattern is a more negative x. */
    union {
        float f;
        int32_t i;
    } c = {.f = x};
    c.i = c.i > (int32_t)0xC2AE0000 ? (int32_t)0xC2AE0000 : c.i; /* -87.0f */
    x = c.f;
    /* Round to nearest by the 1.5 * 2^23 trick (|x log2 e| < 2^22): roundf is a libm call
     * below SSE4.1 and kept the loops scalar. */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } two_k = {.i = ((int32_t)k + 127) << 23};
    return p * two_k.f;
}

/* Phi(x), the normal CDF, through erf(|x| / sqrt 2). */
#pragma omp declare simd
static inline float normal_cdf(float x, float e /* exp(-x^2 / 2) */)
{
    float z = fabsf(x) * (float)GELU_RSQRT2;
    float t = 1.0f / (1.0f + 0.3275911f * z);
    float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
                 t * (-1.453152027f + t * 1.061405429f))));
    float erf_abs = 1.0f - poly * e;
    return 0.5f * (1.0f + copysignf(erf_abs, x));
}

/* The widest vector unit the machine has, chosen once at load time (as the optimiser does);
 * contraction is off (-std=c11), so every clone gives the same bits. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CX_GELU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CX_GELU_CLONES
#endif

CX_GELU_CLONES
void cx_gelu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (parallel : n >= CX_OPS_PAR_ELEMS_DEAR)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        out[i] = x * normal_cdf(x, exp_neg(-0.5f * x * x));
    }
}

CX_GELU_CLONES
void cx_gelu_backward(float *din, const float *dout, const float *in, size_t n)
{
    /* d/dx x Phi(x) = Phi(x) + x phi(x); one exponential serves both. */
#pragma omp parallel for simd schedule(static) if (parallel : n >= CX_OPS_PAR_ELEMS_DEAR)
    for (size_t i = 0; i < n; i++) {
        float x = in[i];
        float e = exp_neg(-0.5f * x * x);
        din[i] = dout[i] * (normal_cdf(x, e) + x * (float)GELU_RSQRT2PI * e);
    }
}
