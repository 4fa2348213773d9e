/* Text tower: the mean of a caption's token embeddings (padding ignored), then a linear or MLP
 * projection into the shared embedding space. */
#ifndef CX_MODEL_TEXT_TOWER_H
#define CX_MODEL_TEXT_TOWER_H

#include <stdint.h>

#include "lib/model/mlp.h"

typedef struct {
    int vocab_size, token_dim, max_tokens;
    int table;      /* parameter index: PREFIX.embed.weight (vocab_size, token_dim) */
    cx_mlp proj;    /* token_dim -> hidden... -> out_dim */
    float *bag;     /* (max_batch, token_dim) mean embeddings, owned */
    float *dbag;    /* (max_batch, token_dim) their gradient, owned */
} cx_text_tower;

cx_status cx_text_tower_declare(cx_text_tower *t, cx_params *p, const char *prefix,
                                int vocab_size, int token_dim, int max_tokens,
                                const int64_t *hidden, int nhidden, int out_dim, cx_act act,
                                unsigned flags, cx_err *err);
cx_status cx_text_tower_alloc(cx_text_tower *t, int max_batch, cx_err *err);
/* Embeddings N(0, 1) with the padding row zero (torch.nn.EmbeddingBag), projection as cx_mlp. */
void cx_text_tower_init_params(const cx_text_tower *t, cx_params *p, cx_rng *rng);
/* tokens (B, max_tokens) -> (B, out_dim), a buffer of t. */
const float *cx_text_tower_forward(cx_text_tower *t, const cx_params *p, const int32_t *tokens,
                                   int B);
/* Adds the gradients of the projection and the embedding table. */
void cx_text_tower_backward(cx_text_tower *t, cx_params *p, const int32_t *tokens,
                            const float *dout, int B);
void cx_text_tower_free(cx_text_tower *t);

#endif
