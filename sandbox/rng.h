/* rng.h: the sandbox's own pseudo-random numbers (splitmix64). The generated world must be the same
 * for a seed on every machine and libc, which rand() does not promise; splitmix64 is tiny, fast and
 * passes BigCrush, which is more than fake addresses need. Internal to sandbox/. */
#ifndef HS_SANDBOX_RNG_H
#define HS_SANDBOX_RNG_H

#include <stdbool.h>
#include <stdint.h>

struct sb_rng {
    uint64_t s;
};

/* A stateless 64-bit mix (splitmix64's finaliser): per-id values that must not depend on the order
 * in which things were generated, such as a model's measurement details. */
static inline uint64_t sb_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static inline void sb_rng_init(struct sb_rng *r, uint64_t seed)
{
    r->s = seed;
}

static inline uint64_t sb_rng_next(struct sb_rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) for n > 0 (Lemire's multiply-shift; the bias is below 2^-32). */
static inline uint32_t sb_rng_below(struct sb_rng *r, uint32_t n)
{
    return (uint32_t)(((sb_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform integer in [lo, hi]. */
static inline int sb_rng_range(struct sb_rng *r, int lo, int hi)
{
    return lo + (int)sb_rng_below(r, (uint32_t)(hi - lo + 1));
}

/* Uniform in [0, 1). */
static inline double sb_rng_unit(struct sb_rng *r)
{
    return (double)(sb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline double sb_rng_uniform(struct sb_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * sb_rng_unit(r);
}

static inline bool sb_rng_chance(struct sb_rng *r, double p)
{
    return sb_rng_unit(r) < p;
}

#endif
