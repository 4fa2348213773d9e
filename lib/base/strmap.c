/* String -> int map with linear probing; grows at half load. */
#include "lib/base/strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

int cx_strmap_init(cx_strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    size_t cap = 16;
    while (cap < 2 * expected + 2)
        cap *= 2;
    m->keys = calloc(cap, sizeof *m->keys);
    m->values = calloc(cap, sizeof *m->values);
    if (!m->keys || !m->values) {
        cx_strmap_free(m);
        return -1;
    }
    m->cap = cap;
    return 0;
}

void cx_strmap_free(cx_strmap *m)
{
    for (size_t i = 0; m->keys && i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static size_t slot(const cx_strmap *m, const char *key, size_t n)
{
    size_t i = (size_t)hash(key, n) & (m->cap - 1);
    while (m->keys[i] && !(strlen(m->keys[i]) == n && memcmp(m->keys[i], key, n) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

int cx_strmap_get(const cx_strmap *m, const char *key, size_t n)
{
    if (!m->cap)
        return -1;
    size_t i = slot(m, key, n);
    return m->keys[i] ? m->values[i] : -1;
}

static int rehash(cx_strmap *m)
{
    cx_strmap bigger;
    if (cx_strmap_init(&bigger, m->cap))
        return -1;
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = slot(&bigger, m->keys[i], strlen(m->keys[i]));
            bigger.keys[j] = m->keys[i];
            bigger.values[j] = m->values[i];
            m->keys[i] = NULL;
        }
    bigger.count = m->count;
    cx_strmap_free(m);
    *m = bigger;
    return 0;
}

int cx_strmap_put(cx_strmap *m, const char *key, size_t n, int value)
{
    if (!m->cap && cx_strmap_init(m, 8))
        return -2;
    size_t i = slot(m, key, n);
    if (m->keys[i])
        return m->values[i];
    if (2 * (m->count + 1) > m->cap) {
        if (rehash(m))
            return -2;
        i = slot(m, key, n);
    }
    char *k = malloc(n + 1);
    if (!k)
        return -2;
    memcpy(k, key, n);
    k[n] = '\0';
    m->keys[i] = k;
    m->values[i] = value;
    m->count++;
    return value;
}
