/* Prompt tuning's class embeddings: learned context through a frozen text tower. */
#include "lib/model/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "lib/model/tokenizer.h"
#include "lib/ops/ops.h"

int cx_prompt_name_words(const int32_t *name, int T)
{
    int first = T > 0 && name[0] == CX_TOKEN_SOT ? 1 : 0, n = 0;
    for (int i = first; i < T && name[i] != CX_TOKEN_EOT && name[i] != CX_TOKEN_PAD; i++)
        n++;
    return n;
}

cx_status cx_prompt_init(cx_prompt *pr, const cx_seq_tower *text, const int32_t *names, int C,
                         int M, int per_class, cx_err *err)
{
    memset(pr, 0, sizeof *pr);
    pr->C = C;
    pr->M = M;
    pr->per_class = per_class;
    pr->W = text->width;
    pr->T = text->tokens;
    pr->D = text->out_dim;
    int T = pr->T;
    for (int c = 0; c < C; c++) {
        int k = cx_prompt_name_words(names + (size_t)c * T, T);
        if (M + k + 2 > T)
            return cx_fail(err, CX_EUSAGE,
                           "prompt.n_ctx: %d context tokens and the %d words of class %d need "
                           "%d tokens with SOT and EOT; the text tower holds %d "
                           "(model.text.max_tokens)", M, k, c, M + k + 2, T);
    }
    /* The tower's shape and parameter indices, with buffers of its own for C sequences. */
    pr->tower = *text;
    cx_seq_tower *t = &pr->tower;
    t->patches = t->pe = t->dpe = t->tok_out = t->dtok = t->mean = t->rstd = NULL;
    t->pooled = t->dpooled = t->out = NULL;
    t->lengths = NULL;
    t->tf.xs = t->tf.saved = t->tf.scratch = t->tf.dbuf = NULL;
    t->tf.scratch_owned = 1;
    t->blocks_out = NULL;
    cx_status st = cx_seq_tower_alloc(t, C, NULL, err);
    if (st) {
        memset(pr, 0, sizeof *pr);
        return st;
    }
    pr->tokens = malloc(sizeof *pr->tokens * (size_t)C * T);
    pr->emb = malloc(sizeof *pr->emb * (size_t)C * pr->D);
    pr->norms = malloc(sizeof *pr->norms * (size_t)C);
    pr->dg = malloc(sizeof *pr->dg * (size_t)C * pr->D);
    if (!pr->tokens || !pr->emb || !pr->norms || !pr->dg) {
        cx_prompt_free(pr);
        return cx_fail(err, CX_ENOMEM, "out of memory for the prompts of %d classes", C);
    }
    for (int c = 0; c < C; c++) {
        const int32_t *nm = names + (size_t)c * T;
        int32_t *row = pr->tokens + (size_t)c * T;
        int k = cx_prompt_name_words(nm, T), off = nm[0] == CX_TOKEN_SOT ? 1 : 0;
        for (int i = 0; i < T; i++)
            row[i] = CX_TOKEN_PAD;
        row[0] = CX_TOKEN_SOT;
        for (int m = 0; m < M; m++)
            row[1 + m] = CX_TOKEN_UNK; /* replaced by the context in the forward */
        for (int i = 0; i < k; i++)
            row[1 + M + i] = nm[off + i];
        row[1 + M + k] = CX_TOKEN_EOT;
    }
    return CX_OK;
}

size_t cx_prompt_ctx_floats(const cx_prompt *pr)
{
    return (size_t)(pr->per_class ? pr->C : 1) * (size_t)pr->M * (size_t)pr->W;
}

const float *cx_prompt_forward(cx_prompt *pr, const cx_params *tp, const float *ctx)
{
    const float *g = cx_seq_tower_forward_ctx(&pr->tower, tp, pr->tokens, pr->C, ctx, 1, pr->M,
                                              pr->per_class);
    cx_l2norm_forward(pr->emb, pr->norms, g, pr->C, pr->D, 1e-12f);
    return pr->emb;
}

void cx_prompt_backward(cx_prompt *pr, cx_params *tp, const float *demb, float *dctx)
{
    cx_l2norm_backward(pr->dg, demb, pr->emb, pr->norms, pr->C, pr->D, 1e-12f);
    const float *dx = cx_seq_tower_backward_input(&pr->tower, tp, pr->dg);
    size_t W = (size_t)pr->W, T = (size_t)pr->T, M = (size_t)pr->M;
    for (int c = 0; c < pr->C; c++) {
        const float *src = dx + ((size_t)c * T + 1) * W;
        float *dst = dctx + (pr->per_class ? (size_t)c * M * W : 0);
        for (size_t i = 0; i < M * W; i++)
            dst[i] += src[i];
    }
}

void cx_prompt_free(cx_prompt *pr)
{
    cx_seq_tower_free(&pr->tower);
    free(pr->tokens);
    free(pr->emb);
    free(pr->norms);
    free(pr->dg);
    memset(pr, 0, sizeof *pr);
}
