/* CoOp prompt tuning (methods.md section 9): class embeddings from learned context vectors
 * through a frozen transformer text tower. Class c's sequence is SOT, V_1 .. V_M, the words of
 * its name, EOT; the V_m are input embeddings (one shared set, or one set per class), the
 * tower's parameters stay fixed. Forward gives the unit class embeddings; backward takes their
 * gradient down through the tower to the context. Buffers are sized once, so neither
 * allocates. */
#ifndef CX_MODEL_PROMPT_H
#define CX_MODEL_PROMPT_H

#include <stdint.h>

#include "lib/base/err.h"
#include "lib/model/params.h"
#include "lib/model/seq_tower.h"

typedef struct {
    cx_seq_tower tower;  /* the text tower's shape with its own buffers for C sequences */
    int C, M, per_class; /* classes, context vectors, one set per class (1) or shared (0) */
    int W, T, D;         /* token width, max_tokens, embedding size */
    int32_t *tokens;     /* (C, T) owned: SOT, M placeholders, the name's words, EOT, padding */
    float *emb, *norms;  /* (C, D) unit class embeddings of the last forward, (C) their norms */
    float *dg;           /* (C, D) */
} cx_prompt;

/* Words (tokens between SOT and EOT) of a tokenized name (T ids as cx_tokenize writes). */
int cx_prompt_name_words(const int32_t *name, int T);

/* From text (the run's transformer text tower, declared; its buffers are not used) and names
 * (C, T): each class's name as cx_tokenize writes it (SOT, words, EOT, padding). CX_EUSAGE
 * naming prompt.n_ctx and the class index when M context vectors and a name do not fit T. */
cx_status cx_prompt_init(cx_prompt *pr, const cx_seq_tower *text, const int32_t *names, int C,
                         int M, int per_class, cx_err *err);
/* Context floats: (per_class ? C : 1) * M * W. */
size_t cx_prompt_ctx_floats(const cx_prompt *pr);
/* Unit class embeddings (C, D) of the context ctx through the tower of tp; a buffer of pr. */
const float *cx_prompt_forward(cx_prompt *pr, const cx_params *tp, const float *ctx);
/* demb (C, D), the gradient of the last forward's unit embeddings: dctx (as ctx) is added.
 * The tower's parameter gradients in tp are written too (the caller zeroes them). */
void cx_prompt_backward(cx_prompt *pr, cx_params *tp, const float *demb, float *dctx);
void cx_prompt_free(cx_prompt *pr);

#endif
