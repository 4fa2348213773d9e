/* DINO's projection head: an MLP with GELU and an L2 normalisation of its output. */
#include "config.h"

#include "lib/model/dino_head.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

cx_status cx_dino_head_declare(cx_dino_head *h, cx_params *p, const char *prefix, int in_dim,
                               int hidden, int bottleneck, unsigned flags, cx_err *err)
{
    memset(h, 0, sizeof *h);
    if (in_dim < 1 || hidden < 1 || bottleneck < 1)
        return cx_fail(err, CX_EUSAGE, "%s: dino head dimensions must be positive", prefix);
    const int64_t hid[2] = {hidden, hidden};
    h->out_dim = bottleneck;
    return cx_mlp_declare(&h->mlp, p, prefix, in_dim, hid, 2, bottleneck, CX_ACT_GELU,
                          CX_NORM_NONE, flags, err);
}

cx_status cx_dino_head_alloc(cx_dino_head *h, int max_batch, cx_err *err)
{
    cx_status st = cx_mlp_alloc(&h->mlp, max_batch, err);
    if (st != CX_OK)
        return st;
    size_t n = (size_t)max_batch * (size_t)h->out_dim;
    h->out = malloc(n * sizeof *h->out);
    h->dz = malloc(n * sizeof *h->dz);
    h->norms = malloc((size_t)max_batch * sizeof *h->norms);
    if (!h->out || !h->dz || !h->norms)
        return cx_fail(err, CX_ENOMEM, "out of memory for the dino head (batch %d)", max_batch);
    h->max_batch = max_batch;
    return CX_OK;
}

void cx_dino_head_init_params(const cx_dino_head *h, cx_params *p, cx_rng *rng)
{
    cx_mlp_init_params(&h->mlp, p, rng);
}

const float *cx_dino_head_forward(cx_dino_head *h, const cx_params *p, const float *in, int B)
{
    const float *z = cx_mlp_forward(&h->mlp, p, in, B);
    const int D = h->out_dim;
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * D;
        double ss = 0;
        for (int j = 0; j < D; j++)
            ss += (double)zi[j] * zi[j];
        float nrm = (float)sqrt(ss);
        if (nrm < CX_DINO_HEAD_NORM_EPS)
            nrm = CX_DINO_HEAD_NORM_EPS;
        h->norms[i] = nrm;
        for (int j = 0; j < D; j++)
            h->out[(size_t)i * D + j] = zi[j] / nrm;
    }
    return h->out;
}

void cx_dino_head_backward(cx_dino_head *h, cx_params *p, const float *in, const float *dout,
                           float *din, int B)
{
    /* y = z / |z|: dz = (dy - y (y . dy)) / |z| (the clamp's branch has a zero projection term,
     * negligible at eps; torch differs there only for an all-zero row). */
    const int D = h->out_dim;
    for (int i = 0; i < B; i++) {
        const float *yi = h->out + (size_t)i * D, *gi = dout + (size_t)i * D;
        double dot = 0;
        for (int j = 0; j < D; j++)
            dot += (double)yi[j] * gi[j];
        for (int j = 0; j < D; j++)
            h->dz[(size_t)i * D + j] = (float)((gi[j] - yi[j] * dot) / h->norms[i]);
    }
    cx_mlp_backward(&h->mlp, p, in, h->dz, din, B);
}

void cx_dino_head_free(cx_dino_head *h)
{
    cx_mlp_free(&h->mlp);
    free(h->out), free(h->norms), free(h->dz);
    h->out = h->norms = h->dz = NULL;
}
