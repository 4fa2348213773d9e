/* One CFR step on a linear image projection: forward, CE through the frozen classifier, L_con,
 * backward to W and b, SGD. */
#include "lib/model/cfr_step.h"

#include <math.h>
#include <stddef.h>

double cx_cfr_step(const cx_cfr_step_shape *s, const float *x, const int32_t *y, float *W, float *b,
                   const float *Wc, const float *bc, const float *pos, const float *neg,
                   const cx_cfr_tsc_batch *tb, float *dW, float *db, double *work, float *fwork)
{
    int B = s->B, Di = s->Din, Do = s->Dout, C = s->C;
    double cw = cx_cfr_weight(s->epoch, s->epochs);
    float *z = fwork, *dz = fwork + (size_t)B * Do, *dc = dz + (size_t)B * Do;
    float *zn = dc + (size_t)B * Do; /* what the classifier scores: z, or z / ||z|| */
    double *pr = work, *cwork = work + (size_t)B * C;
    for (int i = 0; i < B; i++)
        for (int o = 0; o < Do; o++) {
            double a = b[o];
            for (int d = 0; d < Di; d++)
                a += (double)W[(size_t)o * Di + d] * x[(size_t)i * Di + d];
            z[(size_t)i * Do + o] = (float)a;
        }
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * Do;
        double nn = 0;
        for (int o = 0; o < Do; o++)
            nn += (double)zi[o] * zi[o];
        double inv = s->normalize ? 1.0 / fmax(sqrt(nn), 1e-12) : 1.0;
        for (int o = 0; o < Do; o++)
            zn[(size_t)i * Do + o] = (float)(zi[o] * inv);
    }
    /* CE, mean over the batch: dlogits = (softmax - onehot) / B. */
    double ce = 0;
    for (int i = 0; i < B; i++) {
        double *l = pr + (size_t)i * C, m = -INFINITY, Z = 0;
        for (int c = 0; c < C; c++) {
            double a = bc[c];
            for (int o = 0; o < Do; o++)
                a += (double)Wc[(size_t)c * Do + o] * zn[(size_t)i * Do + o];
            l[c] = a;
            if (a > m)
                m = a;
        }
        for (int c = 0; c < C; c++)
            Z += exp(l[c] - m);
        ce += log(Z) + m - l[y[i]];
        for (int c = 0; c < C; c++)
            l[c] = (exp(l[c] - m) / Z - (c == y[i])) / B;
    }
    ce /= B;
    double con = cx_cfr_con(z, pos, neg, B, s->P, s->K, Do, s->tau, s->form,
                            (float)(cw * s->lambda), dc, cwork);
    for (int i = 0; i < B; i++) {
        float *g = dz + (size_t)i * Do;
        const float *zi = z + (size_t)i * Do, *u = zn + (size_t)i * Do;
        double ug = 0, nn = 0;
        if (s->normalize)
            for (int o = 0; o < Do; o++) {
                double a = 0;
                for (int c = 0; c < C; c++)
                    a += pr[(size_t)i * C + c] * Wc[(size_t)c * Do + o];
                ug += u[o] * a;
                nn += (double)zi[o] * zi[o];
            }
        double inv = 1.0 / fmax(sqrt(nn), 1e-12);
        for (int o = 0; o < Do; o++) {
            double a = 0;
            for (int c = 0; c < C; c++)
                a += pr[(size_t)i * C + c] * Wc[(size_t)c * Do + o];
            /* Through the normalisation: (g - z^ (z^ . g)) / ||z||. */
            if (s->normalize)
                a = (a - u[o] * ug) * inv;
            g[o] = (float)(cw * a + dc[(size_t)i * Do + o]);
        }
    }
    /* L_TSC on the training batch, its own forward through the same W, b. */
    int Bt = s->tsc > 0 ? s->Bt : 0;
    float *zt = zn + (size_t)B * Do, *dzt = zt + (size_t)Bt * Do;
    double tsc = 0;
    if (Bt) {
        for (int i = 0; i < Bt; i++)
            for (int o = 0; o < Do; o++) {
                double a = b[o];
                for (int d = 0; d < Di; d++)
                    a += (double)W[(size_t)o * Di + d] * tb->xt[(size_t)i * Di + d];
                zt[(size_t)i * Do + o] = (float)a;
            }
        tsc = cx_tsc_loss(zt, tb->yt, Bt, Do, tb->bank, (float)s->tsc, dzt,
                          cwork + CX_CFR_CON_WORK(s->P, s->K, Do));
    }
    for (int o = 0; o < Do; o++) {
        double gb = 0;
        for (int i = 0; i < B; i++)
            gb += dz[(size_t)i * Do + o];
        for (int i = 0; i < Bt; i++)
            gb += dzt[(size_t)i * Do + o];
        for (int d = 0; d < Di; d++) {
            double g = 0;
            for (int i = 0; i < B; i++)
                g += (double)dz[(size_t)i * Do + o] * x[(size_t)i * Di + d];
            for (int i = 0; i < Bt; i++)
                g += (double)dzt[(size_t)i * Do + o] * tb->xt[(size_t)i * Di + d];
            if (dW)
                dW[(size_t)o * Di + d] = (float)g;
            W[(size_t)o * Di + d] = (float)(W[(size_t)o * Di + d] - s->lr * g);
        }
        if (db)
            db[o] = (float)gb;
        b[o] = (float)(b[o] - s->lr * gb);
    }
    double loss = cw * ce + cw * s->lambda * con;
    return Bt ? loss + s->tsc * tsc : loss;
}
