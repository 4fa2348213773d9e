/* A small string -> int map (open addressing, FNV-1a) for class names and caption words.
 * Keys are copied into the map's own storage. */
#ifndef CX_BASE_STRMAP_H
#define CX_BASE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char **keys; /* (cap) owned, NULL for empty slots */
    int *values; /* (cap) */
    size_t cap;  /* power of two */
    size_t count;
} cx_strmap;

/* 0 on success, -1 when out of memory. */
int cx_strmap_init(cx_strmap *m, size_t expected);
void cx_strmap_free(cx_strmap *m);
/* The value of key[0..n), or -1 when absent. */
int cx_strmap_get(const cx_strmap *m, const char *key, size_t n);
/* Insert key[0..n) -> value unless present. Returns the value now stored (the old one when the
 * key was present), or -2 when out of memory. */
int cx_strmap_put(cx_strmap *m, const char *key, size_t n, int value);

#endif
