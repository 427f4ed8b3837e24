/* What every C unit test shares: CHECK counts checks and failures and prints
 * each failure with its file and line; rng() is a xorshift64 generator whose
 * state each test seeds (from its command line or the clock) and prints, so a
 * failure replays. Static and inline: each test program includes it once. */
#ifndef BITTTS_TEST_HARNESS_H_
#define BITTTS_TEST_HARNESS_H_

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int failures = 0, checks = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    ++checks;                                              \
    if (!(cond)) {                                         \
      ++failures;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static unsigned long long rng_state;
static inline unsigned rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state >> 11);
}
static inline int rng_range(int lo, int hi) {
  return lo + (int)(rng() % (unsigned)(hi - lo + 1));
}
static inline float rng_float(float lo, float hi) {
  return lo + (hi - lo) * (float)(rng() & 0xFFFFFF) / (float)0x1000000;
}

/* Seeds rng() from seed_text (a number; NULL: the clock) and prints the
 * seed with how to replay it, under the program's name. */
static inline void seed_rng(const char *program, const char *seed_text) {
  const unsigned long long seed =
      seed_text ? strtoull(seed_text, NULL, 0) : (unsigned long long)time(NULL) * 2654435761ull;
  rng_state = seed ? seed : 1;
  printf("%s: seed %llu (replay with BITTTS_TEST_SEED=%llu)\n", program, seed, seed);
}

#endif /* BITTTS_TEST_HARNESS_H_ */
