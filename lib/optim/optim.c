/* AdamW and SGD updates, gradient norm and clipping. */
#include "lib/optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { NORM_BLOCK = 4096 };

int cx_optim_slots(const cx_optim_config *cfg)
{
    if (cfg->kind == CX_OPTIM_ADAMW)
        return 2;
    return cfg->momentum != 0.0 ? 1 : 0;
}

cx_status cx_optim_init(cx_optim *o, const cx_optim_config *cfg, const cx_params *p, cx_err *err)
{
    o->cfg = *cfg;
    o->step = 0;
    o->nblocks = (p->total + NORM_BLOCK - 1) / NORM_BLOCK;
    o->block_sums = calloc(o->nblocks ? o->nblocks : 1, sizeof *o->block_sums);
    if (!o->block_sums)
        return cx_fail(err, CX_ENOMEM, "optimiser: out of memory");
    if (p->nslots < cx_optim_slots(cfg)) {
        free(o->block_sums);
        o->block_sums = NULL;
        return cx_fail(err, CX_EUSAGE, "optimiser: parameters have %d state slots, %d needed",
                       p->nslots, cx_optim_slots(cfg));
    }
    return CX_OK;
}

void cx_optim_free(cx_optim *o)
{
    free(o->block_sums);
    o->block_sums = NULL;
}

double cx_optim_grad_norm(cx_optim *o, const cx_params *p)
{
    /* Frozen tensors hold no useful gradient: mask them out by walking tensors per block. */
    long nb = (long)o->nblocks;
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        size_t lo = (size_t)b * NORM_BLOCK, hi = lo + NORM_BLOCK;
        if (hi > p->total)
            hi = p->total;
        double s = 0.0;
        for (int t = 0; t < p->count; t++) {
            const cx_param_info *in = &p->info[t];
            if (in->flags & CX_PARAM_FROZEN)
                continue;
            size_t a = in->offset > lo ? in->offset : lo;
            size_t e = in->offset + in->size < hi ? in->offset + in->size : hi;
            for (size_t i = a; i < e; i++)
                s += (double)p->grad[i] * (double)p->grad[i];
        }
        o->block_sums[b] = s;
    }
    double total = 0.0;
    for (size_t b = 0; b < o->nblocks; b++)
        total += o->block_sums[b];
    return sqrt(total);
}

double cx_optim_clip_grad(cx_optim *o, cx_params *p, double max_norm)
{
    double norm = cx_optim_grad_norm(o, p);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        long n = (long)p->total;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < n; i++)
            p->grad[i] *= c;
    }
    return norm;
}

/* The optimiser is a fifth of a W1 step when scalar: compile it for the widest vector unit the
 * machine has (chosen once at load time) and keep the loop vectorisable. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define CX_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CX_VECTOR_CLONES
#endif

CX_VECTOR_CLONES
static void adamw_tensor(float *restrict w, float *restrict g, float *restrict m,
                         float *restrict v, size_t n, float decay_mult, float b1, float b2,
                         float step_size, float bc2_sqrt, float eps, int zero_grad)
{
    const float one_b1 = 1.0f - b1, one_b2 = 1.0f - b2;
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : len > 32768)
    for (long i = 0; i < len; i++) {
        float gi = g[i];
        if (zero_grad)
            g[i] = 0.0f;
        float mi = m[i] * b1 + gi * one_b1;
        float vi = v[i] * b2 + gi * gi * one_b2;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        w[i] = w[i] * decay_mult - step_size * (mi / denom);
    }
}

CX_VECTOR_CLONES
static void sgd_tensor(float *restrict w, float *restrict g, float *restrict buf, size_t n,
                       float lr, float wd, float momentum, int nesterov, int first, int zero_grad)
{
    long len = (long)n;
#pragma omp parallel for simd schedule(static) if (parallel : len > 32768)
    for (long i = 0; i < len; i++) {
        float d = g[i];
        if (zero_grad)
            g[i] = 0.0f;
        if (wd != 0.0f)
            d += wd * w[i];
        if (buf) {
            float b = first ? d : buf[i] * momentum + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        w[i] -= lr * d;
    }
}

static void step_range(cx_optim *o, cx_params *p, double lr, size_t lo, size_t hi, int zero_grad)
{
    const cx_optim_config *c = &o->cfg;
    o->step++;
    double bc1 = 1.0 - pow(c->beta1, (double)o->step);
    double bc2 = 1.0 - pow(c->beta2, (double)o->step);
    for (int t = 0; t < p->count; t++) {
        const cx_param_info *in = &p->info[t];
        size_t a = in->offset > lo ? in->offset : lo;
        size_t e = in->offset + in->size < hi ? in->offset + in->size : hi;
        if (a >= e)
            continue;
        if (in->flags & CX_PARAM_FROZEN) {
            /* A NO_STATE tensor's gradient is never written (its tower runs no backward): it
             * is still the zero of the allocation, and a frozen image tower is most of a
             * head-on-features run's parameters, so it is not swept every step. */
            if (zero_grad && !(in->flags & CX_PARAM_NO_STATE))
                memset(p->grad + a, 0, sizeof(float) * (e - a));
            continue;
        }
        /* Elements [a, e) of tensor t; its state slots sit at the same offsets. */
        size_t at = a - in->offset;
        double wd = in->flags & CX_PARAM_NO_DECAY ? 0.0 : c->wd;
        if (c->kind == CX_OPTIM_ADAMW) {
            adamw_tensor(p->value + a, p->grad + a, cx_param_state(p, 0, t) + at,
                         cx_param_state(p, 1, t) + at, e - a, (float)(1.0 - lr * wd),
                         (float)c->beta1, (float)c->beta2, (float)(lr / bc1), (float)sqrt(bc2),
                         (float)c->eps, zero_grad);
        } else {
            float *buf = c->momentum != 0.0 ? cx_param_state(p, 0, t) + at : NULL;
            sgd_tensor(p->value + a, p->grad + a, buf, e - a, (float)lr, (float)wd,
                       (float)c->momentum, c->nesterov, o->step == 1, zero_grad);
        }
    }
}

void cx_optim_step_range(cx_optim *o, cx_params *p, double lr, size_t lo, size_t hi)
{
    step_range(o, p, lr, lo, hi, 0);
}

void cx_optim_step_range_zero(cx_optim *o, cx_params *p, double lr, size_t lo, size_t hi)
{
    step_range(o, p, lr, lo, hi, 1);
}

void cx_optim_step(cx_optim *o, cx_params *p, double lr)
{
    cx_optim_step_range(o, p, lr, 0, p->total);
}
