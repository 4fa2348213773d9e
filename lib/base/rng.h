/* Seeded pseudo-random numbers: an explicit state passed by the caller, never global.
 * xoshiro256** seeded through splitmix64; streams let each purpose (shuffle, init, sampling)
 * and each epoch or step draw from its own independent sequence, so runs resume exactly. */
#ifndef CX_BASE_RNG_H
#define CX_BASE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
    double spare;   /* second normal deviate of the last polar-method pair */
    int has_spare;
} cx_rng;

/* Seed from a user seed and a stream number; distinct (seed, stream) pairs give independent streams. */
void cx_rng_seed(cx_rng *rng, uint64_t seed, uint64_t stream);

/* A stream number from a purpose tag and up to two counters (epoch, step, rank ...). */
uint64_t cx_rng_stream(uint64_t tag, uint64_t a, uint64_t b);

uint64_t cx_rng_next(cx_rng *rng);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint32_t cx_rng_below(cx_rng *rng, uint32_t n);
/* Uniform in [0, 1) with 53 random bits. */
double cx_rng_uniform(cx_rng *rng);
/* Standard normal deviate (Marsaglia polar method). */
double cx_rng_normal(cx_rng *rng);
/* Fisher-Yates shuffle in place. */
void cx_rng_shuffle(cx_rng *rng, uint32_t *items, size_t n);
/* out[0..n) = a uniformly random permutation of 0..n-1. */
void cx_rng_permutation(cx_rng *rng, uint32_t *out, size_t n);

/* Weighted sampling without replacement: draws up to k distinct indices of 0..n-1, each draw
 * proportional to weight among those not yet drawn (the law of torch.multinomial without
 * replacement). Indices with weight <= 0 (or not finite) are never drawn. Writes the draws to
 * out[0..k) in draw order and returns how many were drawn (fewer than k when fewer indices have
 * positive weight). keys is caller-owned scratch of n doubles, so the call never allocates. */
size_t cx_rng_sample_weighted(cx_rng *rng, const double *weights, size_t n, size_t k,
                              uint32_t *out, double *keys);

#endif
