/* Augmentations: the torchvision-style image boxes and resampling, vector noise and dropout,
 * and EDA on captions, each operation drawing from its own (seed, op, view, step, sample) stream. */
#include "lib/data/augment.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Operation tags: one stream each, so turning one operation on leaves the others' draws. */
enum { OP_CROP = 0xA1, OP_FLIP, OP_NOISE, OP_ERASE, OP_DROPOUT, OP_EDA_SR, OP_EDA_RS, OP_EDA_RD };

int cx_aug_active(const cx_aug_config *a)
{
    return a && (a->crop || a->flip || a->erase_p > 0 || a->noise > 0 || a->dropout > 0);
}

int cx_aug_text_active(const cx_aug_config *a)
{
    return a && (a->eda_sr > 0 || a->eda_rs > 0 || a->eda_rd > 0);
}

void cx_aug_rng(cx_rng *r, uint64_t seed, uint32_t op, uint32_t view, uint64_t step,
                uint64_t sample)
{
    cx_rng_seed(r, seed, cx_rng_stream(((uint64_t)op << 32) | view, step, sample));
}

/* Python's round(): halves to even (the default rounding mode of nearbyint). */
static int round_even(double v)
{
    return (int)nearbyint(v);
}

static double uniform_in(cx_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * cx_rng_uniform(r);
}

void cx_aug_crop_box(cx_rng *r, int H, int W, const double scale[2], const double ratio[2],
                     int *top, int *left, int *h, int *w)
{
    double area = (double)H * W;
    double lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform_in(r, scale[0], scale[1]);
        double aspect = exp(uniform_in(r, lr0, lr1));
        int cw = round_even(sqrt(target * aspect));
        int ch = round_even(sqrt(target / aspect));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *top = (int)cx_rng_below(r, (uint32_t)(H - ch + 1));
            *left = (int)cx_rng_below(r, (uint32_t)(W - cw + 1));
            *h = ch;
            *w = cw;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int cw = W, ch = H;
    if (in_ratio < ratio[0]) {
        ch = round_even(cw / ratio[0]);
    } else if (in_ratio > ratio[1]) {
        cw = round_even(ch * ratio[1]);
    }
    if (ch < 1)
        ch = 1;
    if (cw < 1)
        cw = 1;
    *top = (H - ch) / 2;
    *left = (W - cw) / 2;
    *h = ch;
    *w = cw;
}

/* Source index and weight along one axis, as PyTorch's area_pixel_compute_source_index with
 * align_corners=False (float arithmetic, negative coordinates clamped to 0). */
static void src_index(int dst, float scale, int in_size, int *i0, int *i1, float *l1)
{
    float s = scale * ((float)dst + 0.5f) - 0.5f;
    if (s < 0)
        s = 0;
    int i = (int)s;
    if (i > in_size - 1)
        i = in_size - 1;
    *i0 = i;
    *i1 = i + 1 < in_size ? i + 1 : i;
    *l1 = s - (float)i;
}

void cx_aug_resized_crop(float *out, const float *in, int C, int H, int W, int top, int left,
                         int h, int w)
{
    float sy = (float)h / (float)H, sx = (float)w / (float)W;
    for (int c = 0; c < C; c++) {
        const float *src = in + (size_t)c * H * W;
        float *dst = out + (size_t)c * H * W;
        for (int y = 0; y < H; y++) {
            int y0, y1;
            float ly;
            src_index(y, sy, h, &y0, &y1, &ly);
            const float *r0 = src + (size_t)(top + y0) * W + left;
            const float *r1 = src + (size_t)(top + y1) * W + left;
            for (int x = 0; x < W; x++) {
                int x0, x1;
                float lx;
                src_index(x, sx, w, &x0, &x1, &lx);
                float a = (1 - lx) * r0[x0] + lx * r0[x1];
                float b = (1 - lx) * r1[x0] + lx * r1[x1];
                dst[(size_t)y * W + x] = (1 - ly) * a + ly * b;
            }
        }
    }
}

void cx_aug_hflip(float *x, int C, int H, int W)
{
    for (size_t r = 0; r < (size_t)C * H; r++) {
        float *row = x + r * W;
        for (int i = 0, j = W - 1; i < j; i++, j--) {
            float t = row[i];
            row[i] = row[j];
            row[j] = t;
        }
    }
}

int cx_aug_erase_box(cx_rng *r, int H, int W, const double scale[2], const double ratio[2],
                     int *top, int *left, int *h, int *w)
{
    double area = (double)H * W;
    double lr0 = log(ratio[0]), lr1 = log(ratio[1]);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * uniform_in(r, scale[0], scale[1]);
        double aspect = exp(uniform_in(r, lr0, lr1));
        int eh = round_even(sqrt(target * aspect));
        int ew = round_even(sqrt(target / aspect));
        if (!(eh < H && ew < W))
            continue;
        *top = (int)cx_rng_below(r, (uint32_t)(H - eh + 1));
        *left = (int)cx_rng_below(r, (uint32_t)(W - ew + 1));
        *h = eh;
        *w = ew;
        return 1;
    }
    return 0;
}

void cx_aug_erase(float *x, int C, int H, int W, int top, int left, int h, int w)
{
    for (int c = 0; c < C; c++)
        for (int y = top; y < top + h; y++)
            memset(x + ((size_t)c * H + y) * W + left, 0, sizeof *x * (size_t)w);
}

void cx_aug_sample_view(const cx_aug_config *a, const cx_aug_shape *shape, uint64_t seed,
                        uint64_t step, uint64_t sample, uint32_t view, const float *in,
                        float *out)
{
    cx_rng r;
    size_t d = shape->d;
    int image = shape->h > 0 && shape->w > 0;
    int C = shape->c, H = shape->h, W = shape->w;
    if (image && a->crop) {
        int top, left, h, w;
        cx_aug_rng(&r, seed, OP_CROP, view, step, sample);
        cx_aug_crop_box(&r, H, W, a->crop_scale, a->crop_ratio, &top, &left, &h, &w);
        cx_aug_resized_crop(out, in, C, H, W, top, left, h, w);
    } else {
        memcpy(out, in, sizeof *out * d);
    }
    if (image && a->flip) {
        cx_aug_rng(&r, seed, OP_FLIP, view, step, sample);
        if (cx_rng_uniform(&r) < 0.5)
            cx_aug_hflip(out, C, H, W);
    }
    if (a->noise > 0) {
        cx_aug_rng(&r, seed, OP_NOISE, view, step, sample);
        for (size_t i = 0; i < d; i++)
            out[i] += (float)(a->noise * cx_rng_normal(&r));
    }
    if (image && a->erase_p > 0) {
        cx_aug_rng(&r, seed, OP_ERASE, view, step, sample);
        int top, left, h, w;
        if (cx_rng_uniform(&r) < a->erase_p &&
            cx_aug_erase_box(&r, H, W, a->erase_scale, a->erase_ratio, &top, &left, &h, &w))
            cx_aug_erase(out, C, H, W, top, left, h, w);
    }
    if (!image && a->dropout > 0) {
        cx_aug_rng(&r, seed, OP_DROPOUT, view, step, sample);
        float keep = (float)(1.0 / (1.0 - a->dropout));
        for (size_t i = 0; i < d; i++)
            out[i] = cx_rng_uniform(&r) < a->dropout ? 0.0f : out[i] * keep;
    }
}

void cx_aug_batch_view(const cx_aug_config *a, const cx_aug_shape *shape, uint64_t seed,
                       uint64_t step, const uint64_t *samples, size_t n, uint32_t view,
                       const float *in, float *out)
{
    size_t d = shape->d;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        cx_aug_sample_view(a, shape, seed, step, samples[i], view, in + i * d, out + i * d);
}

/* ---- synonyms ------------------------------------------------------------------------------ */

void cx_aug_synonyms_init(cx_aug_synonyms *s)
{
    memset(s, 0, sizeof *s);
}

void cx_aug_synonyms_free(cx_aug_synonyms *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->phrases[i]);
    free(s->phrases);
    free(s->group);
    free(s->first);
    cx_strmap_free(&s->by_text);
    memset(s, 0, sizeof *s);
}

/* phrase lower-cased with single spaces between words into a new string (NULL: no word). */
static char *normalise(const char *p, int *words)
{
    size_t n = strlen(p);
    char *o = malloc(n + 1);
    if (!o)
        return NULL;
    size_t k = 0;
    *words = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && isspace((unsigned char)p[i]))
            i++;
        if (i >= n)
            break;
        if (k)
            o[k++] = ' ';
        while (i < n && !isspace((unsigned char)p[i]))
            o[k++] = (char)tolower((unsigned char)p[i++]);
        (*words)++;
    }
    o[k] = '\0';
    return o;
}

cx_status cx_aug_synonyms_add(cx_aug_synonyms *s, const char *const *phrases, size_t n,
                              cx_err *err)
{
    if (!s->by_text.keys && cx_strmap_init(&s->by_text, 64) != 0)
        return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
    if (!s->first && !(s->first = calloc(1, sizeof *s->first)))
        return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
    if (s->count + n > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < s->count + n)
            cap *= 2;
        char **np = realloc(s->phrases, sizeof *np * cap);
        if (np)
            s->phrases = np;
        int *ng = np ? realloc(s->group, sizeof *ng * cap) : NULL;
        if (ng)
            s->group = ng;
        if (!np || !ng)
            return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
        s->cap = cap;
    }
    int *nf = realloc(s->first, sizeof *nf * (size_t)(s->ngroups + 2));
    if (!nf)
        return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
    s->first = nf;
    /* Collect the group's new distinct phrases first: a group of fewer than two is dropped
     * before anything enters the map, so its phrases stay free for a later group. */
    size_t start = s->count, m = 0;
    int max_words = s->max_words;
    for (size_t i = 0; i < n; i++) {
        int words;
        char *p = normalise(phrases[i], &words);
        if (!p) {
            for (size_t j = 0; j < m; j++)
                free(s->phrases[start + j]);
            return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
        }
        int dup = !words || cx_strmap_get(&s->by_text, p, strlen(p)) >= 0;
        for (size_t j = 0; j < m && !dup; j++)
            dup = strcmp(s->phrases[start + j], p) == 0;
        if (dup) {
            free(p);
            continue;
        }
        s->phrases[start + m++] = p;
        if (words > max_words)
            max_words = words;
    }
    if (m < 2) {
        for (size_t j = 0; j < m; j++)
            free(s->phrases[start + j]);
        return CX_OK;
    }
    for (size_t j = 0; j < m; j++) {
        const char *p = s->phrases[start + j];
        if (cx_strmap_put(&s->by_text, p, strlen(p), (int)(start + j)) < 0) {
            for (size_t k = j; k < m; k++)
                free(s->phrases[start + k]);
            s->count = start + j; /* the mapped ones stay, as a partial group */
            for (size_t k = start; k < s->count; k++)
                s->group[k] = -1;
            return cx_fail(err, CX_ENOMEM, "out of memory for synonyms");
        }
        s->group[start + j] = s->ngroups;
    }
    s->count = start + m;
    s->first[s->ngroups] = (int)start;
    s->first[s->ngroups + 1] = (int)s->count;
    s->ngroups++;
    s->max_words = max_words;
    return CX_OK;
}

cx_status cx_aug_synonyms_add_file(cx_aug_synonyms *s, const char *path, cx_err *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return cx_fail(err, CX_EIO, "%s: cannot open the synonyms file", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    cx_status st = CX_OK;
    enum { MAXP = 256 };
    const char *parts[MAXP];
    while (!st && (len = getline(&line, &cap, fp)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)len)) {
            st = cx_fail(err, CX_EDATA, "%s: line %ld: holds a NUL byte", path, lineno);
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        const char *q = line;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!*q || *q == '#')
            continue;
        size_t np = 0;
        char *tok = line;
        for (;;) {
            char *bar = strchr(tok, '|');
            if (bar)
                *bar = '\0';
            if (np == MAXP) {
                st = cx_fail(err, CX_EDATA, "%s: line %ld: more than %d synonyms in one group",
                             path, lineno, MAXP);
                break;
            }
            parts[np++] = tok;
            if (!bar)
                break;
            tok = bar + 1;
        }
        if (!st && np < 2)
            st = cx_fail(err, CX_EDATA, "%s: line %ld: a group needs at least two phrases "
                         "separated by '|'", path, lineno);
        if (!st)
            st = cx_aug_synonyms_add(s, parts, np, err);
    }
    if (!st && ferror(fp))
        st = cx_fail(err, CX_EIO, "%s: read error", path);
    free(line);
    fclose(fp);
    return st;
}

/* ---- EDA ----------------------------------------------------------------------------------- */

typedef struct {
    const char *p;
    size_t n;
} word;

/* The phrase index of words w[i..i+k) (k words), or -1. */
static int lookup(const cx_aug_synonyms *syn, const word *w, int i, int k)
{
    char buf[512];
    size_t pos = 0;
    for (int j = i; j < i + k; j++) {
        if (pos + w[j].n + 2 > sizeof buf)
            return -1;
        if (j > i)
            buf[pos++] = ' ';
        for (size_t c = 0; c < w[j].n; c++)
            buf[pos++] = (char)tolower((unsigned char)w[j].p[c]);
    }
    int idx = cx_strmap_get(&syn->by_text, buf, pos);
    return idx >= 0 && syn->group[idx] >= 0 ? idx : -1;
}

size_t cx_aug_text_view(const cx_aug_config *a, const cx_aug_synonyms *syn, uint64_t seed,
                        uint64_t step, uint64_t sample, uint32_t view, const char *in, char *out,
                        size_t cap)
{
    word w[CX_AUG_TEXT_MAX_WORDS], v[CX_AUG_TEXT_MAX_WORDS];
    int n = 0;
    for (const char *p = in; *p && n < CX_AUG_TEXT_MAX_WORDS;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            p++;
        w[n].p = s;
        w[n].n = (size_t)(p - s);
        n++;
    }
    cx_rng r;
    /* Synonym replacement: a replaced phrase becomes one unit for swap and deletion. */
    int m = 0;
    if (a->eda_sr > 0 && syn && syn->ngroups > 0) {
        cx_aug_rng(&r, seed, OP_EDA_SR, view, step, sample);
        for (int i = 0; i < n;) {
            int k = syn->max_words < n - i ? syn->max_words : n - i, idx = -1;
            for (; k >= 1; k--)
                if ((idx = lookup(syn, w, i, k)) >= 0)
                    break;
            if (idx >= 0 && cx_rng_uniform(&r) < a->eda_sr) {
                int g = syn->group[idx], lo = syn->first[g], hi = syn->first[g + 1];
                int pick = lo + (int)cx_rng_below(&r, (uint32_t)(hi - lo - 1));
                if (pick >= idx)
                    pick++;
                v[m].p = syn->phrases[pick];
                v[m].n = strlen(syn->phrases[pick]);
                m++;
                i += k;
            } else {
                for (int j = 0; j < (idx >= 0 ? k : 1); j++)
                    v[m++] = w[i + j];
                i += idx >= 0 ? k : 1;
            }
        }
    } else {
        memcpy(v, w, sizeof *w * (size_t)n);
        m = n;
    }
    if (a->eda_rs > 0 && m > 1) {
        cx_aug_rng(&r, seed, OP_EDA_RS, view, step, sample);
        for (int i = 0; i < m; i++)
            if (cx_rng_uniform(&r) < a->eda_rs) {
                int j = (int)cx_rng_below(&r, (uint32_t)(m - 1));
                if (j >= i)
                    j++;
                word t = v[i];
                v[i] = v[j];
                v[j] = t;
            }
    }
    unsigned char keep[CX_AUG_TEXT_MAX_WORDS];
    memset(keep, 1, sizeof keep);
    if (a->eda_rd > 0 && m > 0) {
        cx_aug_rng(&r, seed, OP_EDA_RD, view, step, sample);
        int kept = 0;
        for (int i = 0; i < m; i++) {
            keep[i] = !(cx_rng_uniform(&r) < a->eda_rd);
            kept += keep[i];
        }
        if (!kept)
            keep[cx_rng_below(&r, (uint32_t)m)] = 1;
    }
    size_t pos = 0;
    int first = 1;
    for (int i = 0; i < m; i++) {
        if (!keep[i])
            continue;
        size_t need = v[i].n + (first ? 0 : 1);
        if (pos + need + 1 > cap)
            break;
        if (!first)
            out[pos++] = ' ';
        memcpy(out + pos, v[i].p, v[i].n);
        pos += v[i].n;
        first = 0;
    }
    if (cap)
        out[pos] = '\0';
    return pos;
}
