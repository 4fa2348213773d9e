/* Parameter store: declaration, single allocations, lookup. */
#include "lib/model/params.h"

#include <stdlib.h>
#include <string.h>

enum { ALIGN_FLOATS = 16 }; /* 64 bytes: a cache line, and aligned for any vector width */

void cx_params_init(cx_params *p)
{
    memset(p, 0, sizeof *p);
}

int cx_params_declare(cx_params *p, const char *name, int ndim, const int *shape, unsigned flags,
                      cx_err *err)
{
    if (p->value)
        return -(int)cx_fail(err, CX_EUSAGE, "parameter %s: declared after allocation", name);
    if (strlen(name) >= CX_PARAM_NAME_MAX || ndim < 1 || ndim > CX_PARAM_MAX_DIMS)
        return -(int)cx_fail(err, CX_EUSAGE, "parameter %s: bad name or rank", name);
    if (cx_params_find(p, name) >= 0)
        return -(int)cx_fail(err, CX_EUSAGE, "parameter %s: declared twice", name);
    size_t size = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 1) {
            return -(int)cx_fail(err, CX_EUSAGE, "parameter %s: dimension %d is %d", name, d,
                                 shape[d]);
        }
        size *= (size_t)shape[d];
    }
    if (p->count == p->cap) {
        int ncap = p->cap ? 2 * p->cap : 16;
        cx_param_info *ni = realloc(p->info, sizeof *ni * (size_t)ncap);
        if (!ni) {
            return -(int)cx_fail(err, CX_ENOMEM, "parameter %s: out of memory", name);
        }
        p->info = ni;
        p->cap = ncap;
    }
    cx_param_info *t = &p->info[p->count];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof *shape * (size_t)ndim);
    t->size = size;
    t->flags = flags;
    t->offset = p->total;
    p->total += (size + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return p->count++;
}

static float *alloc_floats(size_t n)
{
    if (n == 0)
        n = ALIGN_FLOATS;
    void *mem = NULL;
    if (posix_memalign(&mem, ALIGN_FLOATS * sizeof(float), n * sizeof(float)) != 0)
        return NULL;
    memset(mem, 0, n * sizeof(float));
    return mem;
}

cx_status cx_params_alloc(cx_params *p, int nslots, cx_err *err)
{
    if (p->value)
        return cx_fail(err, CX_EUSAGE, "parameters allocated twice");
    p->value = alloc_floats(p->total);
    p->grad = alloc_floats(p->total);
    p->state = nslots > 0 ? alloc_floats((size_t)nslots * p->total) : NULL;
    p->nslots = nslots;
    if (!p->value || !p->grad || (nslots > 0 && !p->state)) {
        free(p->value);
        free(p->grad);
        free(p->state);
        p->value = p->grad = p->state = NULL;
        return cx_fail(err, CX_ENOMEM, "out of memory for %zu parameters", p->total);
    }
    return CX_OK;
}

int cx_params_find(const cx_params *p, const char *name)
{
    for (int i = 0; i < p->count; i++)
        if (strcmp(p->info[i].name, name) == 0)
            return i;
    return -1;
}

void cx_params_zero_grad(cx_params *p)
{
    if (p->grad)
        memset(p->grad, 0, sizeof(float) * p->total);
}

size_t cx_params_trainable(const cx_params *p)
{
    size_t n = 0;
    for (int i = 0; i < p->count; i++)
        if (!(p->info[i].flags & CX_PARAM_FROZEN))
            n += p->info[i].size;
    return n;
}

void cx_params_free(cx_params *p)
{
    free(p->info);
    free(p->value);
    free(p->grad);
    free(p->state);
    cx_params_init(p);
}
