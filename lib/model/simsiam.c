/* SimSiam's projector, predictor and negative-cosine loss (see simsiam.h). */
#include "lib/model/simsiam.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/ops/ops.h"

static const float bn_eps = 1e-5f, bn_momentum = 0.1f; /* torch.nn.BatchNorm1d's */

cx_status cx_simsiam_declare(cx_simsiam *s, cx_params *p, const char *prefix, int E, cx_err *err)
{
    memset(s, 0, sizeof *s);
    s->E = E;
    s->P = E / 4 > 0 ? E / 4 : 1;
    const int in[CX_SIMSIAM_LAYERS] = {E, E, E, E, s->P};
    const int out[CX_SIMSIAM_LAYERS] = {E, E, E, s->P, E};
    char name[CX_PARAM_NAME_MAX];
    for (int k = 0; k < CX_SIMSIAM_LAYERS; k++) {
        s->in[k] = in[k];
        s->out[k] = out[k];
        snprintf(name, sizeof name, "%s.fc%d.weight", prefix, k);
        if ((s->w[k] = cx_params_declare(p, name, 2, (int[]){out[k], in[k]}, 0, err)) < 0)
            return cx_params_failure(s->w[k]);
        snprintf(name, sizeof name, "%s.fc%d.bias", prefix, k);
        if ((s->b[k] = cx_params_declare(p, name, 1, (int[]){out[k]}, CX_PARAM_NO_DECAY, err)) < 0)
            return cx_params_failure(s->b[k]);
    }
    const unsigned stat = CX_PARAM_FROZEN | CX_PARAM_NO_STATE;
    for (int k = 0; k < CX_SIMSIAM_BNS; k++) {
        int shape[1] = {out[k]};
        snprintf(name, sizeof name, "%s.bn%d.weight", prefix, k);
        if ((s->gamma[k] = cx_params_declare(p, name, 1, shape, CX_PARAM_NO_DECAY, err)) < 0)
            return cx_params_failure(s->gamma[k]);
        snprintf(name, sizeof name, "%s.bn%d.bias", prefix, k);
        if ((s->beta[k] = cx_params_declare(p, name, 1, shape, CX_PARAM_NO_DECAY, err)) < 0)
            return cx_params_failure(s->beta[k]);
        snprintf(name, sizeof name, "%s.bn%d.running_mean", prefix, k);
        if ((s->rmean[k] = cx_params_declare(p, name, 1, shape, stat, err)) < 0)
            return cx_params_failure(s->rmean[k]);
        snprintf(name, sizeof name, "%s.bn%d.running_var", prefix, k);
        if ((s->rvar[k] = cx_params_declare(p, name, 1, shape, stat, err)) < 0)
            return cx_params_failure(s->rvar[k]);
    }
    return CX_OK;
}

void cx_simsiam_init_params(const cx_simsiam *s, cx_params *p, cx_rng *rng)
{
    for (int k = 0; k < CX_SIMSIAM_LAYERS; k++) {
        double bound = 1.0 / sqrt((double)s->in[k]);
        float *w = cx_param_value(p, s->w[k]), *b = cx_param_value(p, s->b[k]);
        for (size_t i = 0; i < (size_t)s->out[k] * (size_t)s->in[k]; i++)
            w[i] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
        for (int i = 0; i < s->out[k]; i++)
            b[i] = (float)((2.0 * cx_rng_uniform(rng) - 1.0) * bound);
    }
    for (int k = 0; k < CX_SIMSIAM_BNS; k++)
        for (int i = 0; i < s->out[k]; i++) {
            cx_param_value(p, s->gamma[k])[i] = 1.0f;
            cx_param_value(p, s->beta[k])[i] = 0.0f;
            cx_param_value(p, s->rmean[k])[i] = 0.0f;
            cx_param_value(p, s->rvar[k])[i] = 1.0f;
        }
}

cx_status cx_simsiam_alloc(cx_simsiam *s, int max_batch, cx_err *err)
{
    s->max_batch = max_batch;
    size_t B = (size_t)max_batch;
    int ok = 1;
    for (int v = 0; v < 2; v++) {
        for (int k = 0; k < CX_SIMSIAM_LAYERS; k++)
            ok &= (s->pre[v][k] = malloc(sizeof(float) * B * (size_t)s->out[k])) != NULL;
        for (int k = 0; k < CX_SIMSIAM_BNS; k++) {
            ok &= (s->act[v][k] = malloc(sizeof(float) * B * (size_t)s->out[k])) != NULL;
            ok &= (s->mean[v][k] = malloc(sizeof(float) * (size_t)s->out[k])) != NULL;
            ok &= (s->rstd[v][k] = malloc(sizeof(float) * (size_t)s->out[k])) != NULL;
        }
    }
    ok &= (s->g1 = malloc(sizeof(float) * B * (size_t)s->E)) != NULL;
    ok &= (s->g2 = malloc(sizeof(float) * B * (size_t)s->E)) != NULL;
    if (!ok) {
        cx_simsiam_free(s);
        return cx_fail(err, CX_ENOMEM, "out of memory for the SimSiam head (batch %d)", max_batch);
    }
    return CX_OK;
}

void cx_simsiam_free(cx_simsiam *s)
{
    for (int v = 0; v < 2; v++) {
        for (int k = 0; k < CX_SIMSIAM_LAYERS; k++) {
            free(s->pre[v][k]);
            s->pre[v][k] = NULL;
        }
        for (int k = 0; k < CX_SIMSIAM_BNS; k++) {
            free(s->act[v][k]);
            free(s->mean[v][k]);
            free(s->rstd[v][k]);
            s->act[v][k] = s->mean[v][k] = s->rstd[v][k] = NULL;
        }
    }
    free(s->g1);
    free(s->g2);
    s->g1 = s->g2 = NULL;
}

/* View v: layers 0..4 on x (B, E); pre[v][4] is p, act[v][2] is z. */
static void forward(cx_simsiam *s, cx_params *p, int v, const float *x, int B)
{
    const float *in = x;
    for (int k = 0; k < CX_SIMSIAM_LAYERS; k++) {
        cx_linear_forward(s->pre[v][k], in, cx_param_value(p, s->w[k]), cx_param_value(p, s->b[k]),
                          B, s->in[k], s->out[k]);
        if (k == CX_SIMSIAM_LAYERS - 1)
            break;
        cx_batchnorm_forward_train(s->act[v][k], s->mean[v][k], s->rstd[v][k],
                                   cx_param_value(p, s->rmean[k]), cx_param_value(p, s->rvar[k]),
                                   s->pre[v][k], cx_param_value(p, s->gamma[k]),
                                   cx_param_value(p, s->beta[k]), B, s->out[k], bn_eps,
                                   bn_momentum);
        if (k != 2) /* z (after the projector's last BN) has no ReLU */
            cx_relu_forward(s->act[v][k], s->act[v][k], (size_t)B * (size_t)s->out[k]);
        in = s->act[v][k];
    }
}

/* Mean over rows of cos(a_i, t_i); ga (B, E) = scale * d/da of that mean. */
static double mean_cos(float *ga, const float *a, const float *t, int B, int E, float scale)
{
    double sum = 0;
    for (int i = 0; i < B; i++) {
        const float *ai = a + (size_t)i * E, *ti = t + (size_t)i * E;
        double aa = 0, tt = 0, at = 0;
        for (int j = 0; j < E; j++) {
            aa += (double)ai[j] * ai[j];
            tt += (double)ti[j] * ti[j];
            at += (double)ai[j] * ti[j];
        }
        double na = sqrt(aa) > 1e-8 ? sqrt(aa) : 1e-8, nt = sqrt(tt) > 1e-8 ? sqrt(tt) : 1e-8;
        double c = at / (na * nt);
        sum += c;
        for (int j = 0; j < E; j++)
            ga[(size_t)i * E + j] =
                (float)(scale * (ti[j] / (na * nt) - c * ai[j] / (na * na)) / B);
    }
    return sum / B;
}

/* Back from dp (B, E) of view v, through the predictor into z (the only path into z: the
 * other view's z is a constant) and the projector, into dx (added; skipped when NULL).
 * dp is overwritten. */
static void backward(cx_simsiam *s, cx_params *p, int v, const float *x, float *dp, float *dx,
                     int B)
{
    /* Widths are at most E, so g1 and g2 hold any layer's (B, width); they alternate. */
    float *cur = dp;
    for (int k = CX_SIMSIAM_LAYERS - 1; k >= 0; k--) {
        const float *in = k ? s->act[v][k - 1] : x;
        float *din = cur == s->g1 ? s->g2 : s->g1;
        if (k == 0 && !dx)
            din = NULL;
        cx_linear_backward(din, cx_param_grad(p, s->w[k]), cx_param_grad(p, s->b[k]), cur, in,
                           cx_param_value(p, s->w[k]), B, s->in[k], s->out[k]);
        if (k == 0) {
            for (size_t i = 0; dx && i < (size_t)B * (size_t)s->E; i++)
                dx[i] += din[i];
            break;
        }
        int j = k - 1; /* the BN (and ReLU) before layer k */
        if (j != 2)
            cx_relu_backward(din, din, s->act[v][j], (size_t)B * (size_t)s->out[j]);
        cx_batchnorm_backward(din, cx_param_grad(p, s->gamma[j]), cx_param_grad(p, s->beta[j]),
                              din, s->pre[v][j], s->mean[v][j], s->rstd[v][j],
                              cx_param_value(p, s->gamma[j]), B, s->out[j]);
        cur = din;
    }
}

double cx_simsiam_loss(cx_simsiam *s, cx_params *p, const float *f, float *df, int B, float w)
{
    return cx_simsiam_loss_to(s, p, f, df, B, w, NULL);
}

double cx_simsiam_loss_to(cx_simsiam *s, cx_params *p, const float *f, float *df, int B, float w,
                          const float *targets)
{
    const int E = s->E;
    const size_t half = (size_t)B * (size_t)E;
    forward(s, p, 0, f, B);
    forward(s, p, 1, f + half, B);
    /* dp1 = -1/2 d cos(p1, z2), dp2 = -1/2 d cos(p2, z1): written over the outputs p, which
     * the loss no longer needs once both are taken. */
    float *dp1 = s->g1, *dp2 = s->g2;
    const float *z1 = targets ? targets : s->act[0][2];
    const float *z2 = targets ? targets + half : s->act[1][2];
    double c1 = mean_cos(dp1, s->pre[0][4], z2, B, E, -0.5f * w);
    double c2 = mean_cos(dp2, s->pre[1][4], z1, B, E, -0.5f * w);
    memcpy(s->pre[0][4], dp1, sizeof(float) * half);
    memcpy(s->pre[1][4], dp2, sizeof(float) * half);
    backward(s, p, 0, f, s->pre[0][4], df, B);
    backward(s, p, 1, f + half, s->pre[1][4], df ? df + half : NULL, B);
    return -0.5 * (c1 + c2);
}
