/* Text tower: embedding bag (mean) and projection. */
#include "lib/model/text_tower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"

cx_status cx_text_tower_declare(cx_text_tower *t, cx_params *p, const char *prefix,
                                int vocab_size, int token_dim, int max_tokens,
                                const int64_t *hidden, int nhidden, int out_dim, cx_act act,
                                unsigned flags, cx_err *err)
{
    memset(t, 0, sizeof *t);
    t->vocab_size = vocab_size;
    t->token_dim = token_dim;
    t->max_tokens = max_tokens;
    char name[CX_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.embed.weight", prefix);
    t->table = cx_params_declare(p, name, 2, (int[]){vocab_size, token_dim}, flags, err);
    if (t->table < 0)
        return cx_params_failure(t->table);
    char proj[CX_PARAM_NAME_MAX];
    snprintf(proj, sizeof proj, "%s.proj", prefix);
    return cx_mlp_declare(&t->proj, p, proj, token_dim, hidden, nhidden, out_dim, act,
                          CX_NORM_NONE, flags, err);
}

cx_status cx_text_tower_alloc(cx_text_tower *t, int max_batch, cx_err *err)
{
    size_t n = (size_t)max_batch * (size_t)t->token_dim;
    t->bag = malloc(sizeof(float) * n);
    t->dbag = malloc(sizeof(float) * n);
    if (!t->bag || !t->dbag) {
        cx_text_tower_free(t);
        return cx_fail(err, CX_ENOMEM, "out of memory for the text tower (batch %d)", max_batch);
    }
    return cx_mlp_alloc(&t->proj, max_batch, err);
}

void cx_text_tower_init_params(const cx_text_tower *t, cx_params *p, cx_rng *rng)
{
    float *table = cx_param_value(p, t->table);
    size_t n = (size_t)t->vocab_size * (size_t)t->token_dim;
    for (size_t i = 0; i < n; i++)
        table[i] = (float)cx_rng_normal(rng);
    memset(table + (size_t)CX_TOKEN_PAD * (size_t)t->token_dim, 0, sizeof(float) * (size_t)t->token_dim);
    cx_mlp_init_params(&t->proj, p, rng);
}

const float *cx_text_tower_forward(cx_text_tower *t, const cx_params *p, const int32_t *tokens,
                                   int B)
{
    cx_embag_mean_forward(t->bag, tokens, cx_param_value(p, t->table), B, t->max_tokens,
                          t->token_dim, CX_TOKEN_PAD);
    return cx_mlp_forward(&t->proj, p, t->bag, B);
}

void cx_text_tower_backward(cx_text_tower *t, cx_params *p, const int32_t *tokens,
                            const float *dout, int B)
{
    cx_mlp_backward(&t->proj, p, t->bag, dout, t->dbag, B);
    cx_embag_mean_backward(cx_param_grad(p, t->table), t->dbag, tokens, B, t->max_tokens,
                           t->token_dim, CX_TOKEN_PAD);
}

void cx_text_tower_free(cx_text_tower *t)
{
    free(t->bag);
    free(t->dbag);
    t->bag = t->dbag = NULL;
    cx_mlp_free(&t->proj);
}
