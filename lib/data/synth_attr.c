/* Informative attributes of clipx synth: the vocabulary, each concept's attributes, a sample's
 * draw and what its caption names (see synth_attr.h). */
#include "lib/data/synth_attr.h"

#include <stdlib.h>
#include <string.h>

enum { SLOTS = CX_SYNTH_ATTR_PER_CLASS };

static const char *const scope_names[] = {"superclass", "global"};

int cx_attr_scope_parse(const char *name)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, scope_names[i]) == 0)
            return i;
    return -1;
}

const char *cx_attr_scope_name(cx_attr_scope s)
{
    return (unsigned)s < 2 ? scope_names[s] : "?";
}

void cx_synth_attrs_free(cx_synth_attrs *a)
{
    for (int i = 0; a->words && i < a->nwords; i++)
        free(a->words[i]);
    free(a->words);
    free(a->dir);
    free(a->of);
    memset(a, 0, sizeof *a);
}

/* Concept c's slots from its pools: an evaluated class from its superclass's shared pool (the
 * one pool with the global scope), an open-world concept slot by slot from that pool
 * (open_share) or from its open-only one, all distinct. */
static void assign(cx_synth_attrs *a, cx_rng *r, int c, int super)
{
    int *slot = a->of + (size_t)c * SLOTS;
    const int pool = a->pool, p = a->scope == CX_ATTR_SCOPE_GLOBAL ? 0 : super;
    const int shared = p * pool, open_only = a->npools * pool + p * pool;
    for (int k = 0; k < SLOTS; k++) {
        int base = shared;
        if (c >= a->C && !(cx_rng_uniform(r) < a->open_share))
            base = open_only;
        int w, dup;
        do { /* each pool holds at least SLOTS words, so a free one always exists */
            w = base + (int)cx_rng_below(r, (uint32_t)pool);
            dup = 0;
            for (int j = 0; j < k; j++)
                dup |= slot[j] == w;
        } while (dup);
        slot[k] = w;
    }
}

cx_status cx_synth_attrs_build(cx_synth_attrs *a, double info, double open_share, double sd,
                               cx_attr_scope scope, int named_max, int C, int CK, int S, int L,
                               const int *super_of, uint64_t seed,
                               uint64_t tag, cx_synth_word_fn new_word, void *word_ctx,
                               cx_err *err)
{
    memset(a, 0, sizeof *a);
    a->info = info;
    a->open_share = open_share;
    a->sd = sd;
    a->scope = scope;
    a->named_max = named_max < 0 ? 0 : named_max > SLOTS ? SLOTS : named_max;
    a->C = C;
    a->CK = CK;
    a->S = S;
    a->L = L;
    const int global = scope == CX_ATTR_SCOPE_GLOBAL;
    a->npools = global ? 1 : S;
    a->pool = global ? CX_SYNTH_ATTR_GLOBAL_POOL : CX_SYNTH_ATTR_POOL;
    a->nwords = 2 * a->npools * a->pool;
    a->words = calloc((size_t)a->nwords, sizeof *a->words);
    a->dir = malloc((size_t)a->nwords * (size_t)L * sizeof *a->dir);
    a->of = malloc((size_t)CK * SLOTS * sizeof *a->of);
    if (!a->words || !a->dir || !a->of)
        goto oom;
    cx_rng r;
    cx_rng_seed(&r, seed, cx_rng_stream(tag, 0, 0));
    for (int i = 0; i < a->nwords; i++)
        if (!(a->words[i] = new_word(word_ctx, &r)))
            goto oom;
    cx_rng_seed(&r, seed, cx_rng_stream(tag, 1, 0));
    for (size_t i = 0; i < (size_t)a->nwords * (size_t)L; i++)
        a->dir[i] = (float)(sd * cx_rng_normal(&r));
    cx_rng_seed(&r, seed, cx_rng_stream(tag, 2, 0));
    for (int c = 0; c < CK; c++)
        assign(a, &r, c, super_of[c]);
    return CX_OK;
oom:
    cx_synth_attrs_free(a);
    return cx_fail(err, CX_ENOMEM, "out of memory");
}

unsigned cx_synth_attrs_draw(const cx_synth_attrs *a, cx_rng *r, int c, float *z)
{
    unsigned present = 0;
    const size_t L = (size_t)a->L;
    for (int k = 0; k < SLOTS; k++) {
        if (!(cx_rng_uniform(r) < a->info))
            continue;
        present |= 1u << k;
        const float *d = a->dir + (size_t)a->of[(size_t)c * SLOTS + k] * L;
        for (size_t l = 0; l < L; l++)
            z[l] += d[l];
    }
    return present;
}

int cx_synth_attrs_named(const cx_synth_attrs *a, cx_rng *r, int c, unsigned present, int *out)
{
    int have = 0;
    for (int k = 0; k < SLOTS; k++)
        have += (present >> k) & 1u;
    int want = have < a->named_max ? have : a->named_max, n = 0;
    /* Selection sampling: every subset of size want equally likely, kept in slot order. */
    for (int k = 0; k < SLOTS && n < want; k++) {
        if (!((present >> k) & 1u))
            continue;
        if (have <= want - n || cx_rng_uniform(r) * have < want - n)
            out[n++] = a->of[(size_t)c * SLOTS + k];
        have--;
    }
    return n;
}

void cx_synth_attrs_line(const cx_synth_attrs *a, int c, unsigned present, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < SLOTS; k++) {
        if (!((present >> k) & 1u))
            continue;
        const char *w = a->words[a->of[(size_t)c * SLOTS + k]];
        size_t len = strlen(w);
        if (n + len + 2 > cap)
            break;
        if (n)
            buf[n++] = ' ';
        memcpy(buf + n, w, len + 1);
        n += len;
    }
}

void cx_synth_attrs_json(const cx_synth_attrs *a, cx_json *j, const cx_synth_attrs_split *splits,
                         int nsplits)
{
    cx_json_begin_object(j);
    cx_json_key(j, "attr_info");
    cx_json_number(j, a->info);
    cx_json_key(j, "open_share");
    cx_json_number(j, a->open_share);
    cx_json_key(j, "pattern_sd");
    cx_json_number(j, a->sd);
    if (a->scope != CX_ATTR_SCOPE_SUPERCLASS) { /* written only when set: older files keep their bytes */
        cx_json_key(j, "scope");
        cx_json_string(j, cx_attr_scope_name(a->scope));
    }
    cx_json_key(j, "pool");
    cx_json_int(j, a->pool);
    cx_json_key(j, "per_concept");
    cx_json_int(j, SLOTS);
    cx_json_key(j, "named_max");
    cx_json_int(j, a->named_max);
    /* Words [0, shared_words) are the superclasses' shared pools (word i in superclass
     * i / pool; all in one with the global scope), the rest their open-only pools. */
    cx_json_key(j, "shared_words");
    cx_json_int(j, (long long)a->npools * a->pool);
    cx_json_key(j, "words");
    cx_json_begin_array(j);
    for (int i = 0; i < a->nwords; i++)
        cx_json_string(j, a->words[i]);
    cx_json_end_array(j);
    cx_json_key(j, "splits");
    cx_json_begin_object(j);
    for (int s = 0; s < nsplits; s++) {
        const cx_synth_attrs_split *p = splits + s;
        double n = p->samples > 0 ? (double)p->samples : 1.0;
        cx_json_key(j, p->split);
        cx_json_begin_object(j);
        cx_json_key(j, "file");
        cx_json_string(j, p->file);
        cx_json_key(j, "samples");
        cx_json_int(j, (long long)p->samples);
        cx_json_key(j, "present_per_sample");
        cx_json_number(j, (double)p->present / n);
        cx_json_key(j, "named_per_caption");
        cx_json_number(j, (double)p->named / n);
        cx_json_end_object(j);
    }
    cx_json_end_object(j);
    cx_json_end_object(j);
}

void cx_synth_attrs_json_concept(const cx_synth_attrs *a, cx_json *j, int c)
{
    cx_json_begin_array(j);
    for (int k = 0; k < SLOTS; k++)
        cx_json_string(j, a->words[a->of[(size_t)c * SLOTS + k]]);
    cx_json_end_array(j);
}
