/* Multi-layer perceptron on the ops of lib/ops.h. */
#include "lib/model/mlp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops.h"

static const float layernorm_eps = 1e-5f;

cx_status cx_mlp_declare(cx_mlp *m, cx_params *p, const char *prefix, int in_dim,
                         const int64_t *hidden, int nhidden, int out_dim, cx_act act,
                         cx_norm norm, unsigned flags, cx_err *err)
{
    memset(m, 0, sizeof *m);
    if (nhidden < 0 || nhidden + 1 > CX_MLP_MAX_LAYERS)
        return cx_fail(err, CX_EUSAGE, "%s: at most %d hidden layers", prefix, CX_MLP_MAX_LAYERS - 1);
    m->nlayers = nhidden + 1;
    m->act = act;
    m->norm = norm;
    m->dims[0] = in_dim;
    for (int i = 0; i < nhidden; i++) {
        if (hidden[i] < 1 || hidden[i] > (1 << 20))
            return cx_fail(err, CX_EUSAGE, "%s: hidden size %lld is out of range", prefix,
                           (long long)hidden[i]);
        m->dims[i + 1] = (int)hidden[i];
    }
    m->dims[m->nlayers] = out_dim;
    char name[CX_PARAM_NAME_MAX];
    for (int i = 0; i < m->nlayers; i++) {
        snprintf(name, sizeof name, "%s.fc%d.weight", prefix, i);
        m->w[i] = cx_params_declare(p, name, 2, (int[]){m->dims[i + 1], m->dims[i]}, flags, err);
        snprintf(name, sizeof name, "%s.fc%d.bias", prefix, i);
        m->b[i] = cx_params_declare(p, name, 1, (int[]){m->dims[i + 1]},
                                    flags | CX_PARAM_NO_DECAY, err);
        if (m->w[i] < 0 || m->b[i] < 0) /* err holds the last failure's message */
            return cx_params_failure(m->b[i] < 0 ? m->b[i] : m->w[i]);
        m->gain[i] = m->shift[i] = -1;
        if (norm == CX_NORM_LAYER && i + 1 < m->nlayers) {
            snprintf(name, sizeof name, "%s.ln%d.weight", prefix, i);
            m->gain[i] = cx_params_declare(p, name, 1, (int[]){m->dims[i + 1]},
                                           flags | CX_PARAM_NO_DECAY, err);
            snprintf(name, sizeof name, "%s.ln%d.bias", prefix, i);
            m->shift[i] = cx_params_declare(p, name, 1, (int[]){m->dims[i + 1]},
                                            flags | CX_PARAM_NO_DECAY, err);
            if (m->gain[i] < 0 || m->shift[i] < 0)
                return cx_params_failure(m->shift[i] < 0 ? m->shift[i] : m->gain[i]);
        }
    }
    return CX_OK;
}

cx_status cx_mlp_alloc(cx_mlp *m, int max_batch, cx_err *err)
{
    m->max_batch = max_batch;
    int widest = m->dims[0];
    for (int i = 0; i < m->nlayers; i++) {
        size_t rows = (size_t)max_batch, d = (size_t)m->dims[i + 1];
        if (m->dims[i + 1] > widest)
            widest = m->dims[i + 1];
        m->z[i] = malloc(sizeof(float) * rows * d);
        if (!m->z[i])
            goto fail;
        if (i + 1 < m->nlayers) {
            if (!(m->a[i] = malloc(sizeof(float) * rows * d)))
                goto fail;
            if (m->norm == CX_NORM_LAYER &&
                (!(m->n[i] = malloc(sizeof(float) * rows * d)) ||
                 !(m->mean[i] = malloc(sizeof(float) * rows)) ||
                 !(m->rstd[i] = malloc(sizeof(float) * rows))))
                goto fail;
        }
    }
    if (!(m->grad_buf = malloc(sizeof(float) * (size_t)max_batch * (size_t)widest * 2)))
        goto fail;
    return CX_OK;
fail: /* every jump here is a failed allocation */
    cx_mlp_free(m);
    return cx_fail(err, CX_ENOMEM, "out of memory for MLP activations (batch %d)", max_batch);
}

void cx_mlp_init_params(const cx_mlp *m, cx_params *p, cx_rng *rng)
{
    for (int i = 0; i < m->nlayers; i++) {
        double bound = 1.0 / sqrt((double)m->dims[i]);
        float *w = cx_param_value(p, m->w[i]), *b = cx_param_value(p, m->b[i]);
        size_t nw = (size_t)m->dims[i + 1] * (size_t)m->dims[i];
        for (size_t k = 0; k < nw; k++)
            w[k] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
        for (int k = 0; k < m->dims[i + 1]; k++)
            b[k] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
        if (m->gain[i] >= 0) {
            float *g = cx_param_value(p, m->gain[i]), *s = cx_param_value(p, m->shift[i]);
            for (int k = 0; k < m->dims[i + 1]; k++) {
                g[k] = 1.0f;
                s[k] = 0.0f;
            }
        }
    }
}

const float *cx_mlp_forward(cx_mlp *m, const cx_params *p, const float *in, int B)
{
    const float *x = in;
    for (int i = 0; i < m->nlayers; i++) {
        int d = m->dims[i + 1];
        cx_linear_forward(m->z[i], x, cx_param_value(p, m->w[i]), cx_param_value(p, m->b[i]), B,
                          m->dims[i], d);
        if (i + 1 == m->nlayers)
            return m->z[i];
        const float *pre = m->z[i];
        if (m->gain[i] >= 0) {
            cx_layernorm_forward(m->n[i], m->mean[i], m->rstd[i], m->z[i],
                                 cx_param_value(p, m->gain[i]), cx_param_value(p, m->shift[i]), B,
                                 d, layernorm_eps);
            pre = m->n[i];
        }
        size_t count = (size_t)B * (size_t)d;
        if (m->act == CX_ACT_RELU)
            cx_relu_forward(m->a[i], pre, count);
        else
            cx_gelu_forward(m->a[i], pre, count);
        x = m->a[i];
    }
    return x;
}

void cx_mlp_backward(cx_mlp *m, cx_params *p, const float *in, const float *dout, float *din,
                     int B)
{
    /* Two scratch buffers: each gradient is written into the one its source does not occupy. */
    int widest = m->dims[0];
    for (int i = 1; i <= m->nlayers; i++)
        if (m->dims[i] > widest)
            widest = m->dims[i];
    float *bufs[2] = {m->grad_buf, m->grad_buf + (size_t)m->max_batch * (size_t)widest};
    const float *dz = dout;
    for (int i = m->nlayers - 1; i >= 0; i--) {
        const float *x = i == 0 ? in : m->a[i - 1];
        float *dx = i == 0 ? din : (dz == bufs[0] ? bufs[1] : bufs[0]);
        cx_linear_backward(dx, cx_param_grad(p, m->w[i]), cx_param_grad(p, m->b[i]), dz, x,
                           cx_param_value(p, m->w[i]), B, m->dims[i], m->dims[i + 1]);
        if (i == 0)
            break;
        /* Back through layer i-1's activation (in place) and norm into dz for layer i-1. */
        int j = i - 1, d = m->dims[i];
        size_t count = (size_t)B * (size_t)d;
        if (m->act == CX_ACT_RELU)
            cx_relu_backward(dx, dx, m->a[j], count);
        else
            cx_gelu_backward(dx, dx, m->gain[j] >= 0 ? m->n[j] : m->z[j], count);
        if (m->gain[j] >= 0) {
            float *dpre = dx == bufs[0] ? bufs[1] : bufs[0];
            cx_layernorm_backward(dpre, cx_param_grad(p, m->gain[j]), cx_param_grad(p, m->shift[j]),
                                  dx, m->z[j], m->mean[j], m->rstd[j], cx_param_value(p, m->gain[j]),
                                  B, d);
            dz = dpre;
        } else {
            dz = dx;
        }
    }
}

void cx_mlp_free(cx_mlp *m)
{
    for (int i = 0; i < CX_MLP_MAX_LAYERS; i++) {
        free(m->z[i]);
        free(m->n[i]);
        free(m->a[i]);
        free(m->mean[i]);
        free(m->rstd[i]);
        m->z[i] = m->n[i] = m->a[i] = m->mean[i] = m->rstd[i] = NULL;
    }
    free(m->grad_buf);
    m->grad_buf = NULL;
}
