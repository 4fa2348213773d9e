/* xoshiro256** generator, splitmix64 seeding, and the sampling routines built on it. */
#include "lib/base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void cx_rng_seed(cx_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ splitmix64(&stream);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    rng->spare = 0.0;
    rng->has_spare = 0;
}

uint64_t cx_rng_stream(uint64_t tag, uint64_t a, uint64_t b)
{
    uint64_t x = tag;
    uint64_t h = splitmix64(&x);
    x = h ^ a;
    h = splitmix64(&x);
    x = h ^ b;
    return splitmix64(&x);
}

uint64_t cx_rng_next(cx_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t cx_rng_below(cx_rng *rng, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased without division in the common case. */
    uint64_t m = (uint64_t)(uint32_t)(cx_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(cx_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double cx_rng_uniform(cx_rng *rng)
{
    return (double)(cx_rng_next(rng) >> 11) * 0x1.0p-53;
}

double cx_rng_normal(cx_rng *rng)
{
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * cx_rng_uniform(rng) - 1.0;
        v = 2.0 * cx_rng_uniform(rng) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double f = sqrt(-2.0 * log(s) / s);
    rng->spare = v * f;
    rng->has_spare = 1;
    return u * f;
}

void cx_rng_shuffle(cx_rng *rng, uint32_t *items, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = cx_rng_below(rng, (uint32_t)i);
        uint32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

void cx_rng_permutation(cx_rng *rng, uint32_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint32_t)i;
    cx_rng_shuffle(rng, out, n);
}

/* Min-heap on keys (ties broken by index) holding the k largest keys seen so far. */
static int key_less(const double *keys, uint32_t a, uint32_t b)
{
    return keys[a] < keys[b] || (keys[a] == keys[b] && a > b);
}

static void sift_down(uint32_t *heap, size_t n, size_t i, const double *keys)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && key_less(keys, heap[l], heap[m]))
            m = l;
        if (r < n && key_less(keys, heap[r], heap[m]))
            m = r;
        if (m == i)
            return;
        uint32_t t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
    }
}

static void sift_up(uint32_t *heap, size_t i, const double *keys)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!key_less(keys, heap[i], heap[p]))
            return;
        uint32_t t = heap[i];
        heap[i] = heap[p];
        heap[p] = t;
        i = p;
    }
}

size_t cx_rng_sample_weighted(cx_rng *rng, const double *weights, size_t n, size_t k,
                              uint32_t *out, double *keys)
{
    /* Efraimidis-Spirakis: key = log(u) / w; the k largest keys, in decreasing order, are
     * distributed as k successive draws proportional to weight without replacement. */
    size_t size = 0;
    if (k == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        double w = weights[i];
        if (!(w > 0.0) || !isfinite(w))
            continue;
        double u;
        do
            u = cx_rng_uniform(rng);
        while (u == 0.0);
        keys[i] = log(u) / w;
        if (size < k) {
            out[size] = (uint32_t)i;
            sift_up(out, size, keys);
            size++;
        } else if (key_less(keys, out[0], (uint32_t)i)) {
            out[0] = (uint32_t)i;
            sift_down(out, size, 0, keys);
        }
    }
    /* Heap sort: repeatedly move the smallest to the end, leaving keys in decreasing order. */
    for (size_t end = size; end > 1; end--) {
        uint32_t t = out[0];
        out[0] = out[end - 1];
        out[end - 1] = t;
        sift_down(out, end - 1, 0, keys);
    }
    return size;
}
