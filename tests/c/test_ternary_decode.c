/* Unit tests of the C decoder against an independent base-3 reference, on
 * random tensors whose sizes are and are not multiples of 5. Canary words
 * around every output buffer catch writes out of bounds; `make test` also
 * builds this file with AddressSanitizer to catch reads out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tflite/bittts_spec.h"
#include "../../tflite/bittts_ternary.h"

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

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;
static unsigned rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state >> 11);
}

/* Reference encoder: digit k of byte g is trit 5g+k plus one, little-endian. */
static void encode_reference(const int *trits, size_t n, uint8_t *packed) {
  size_t g, k, groups = (n + 4) / 5;
  for (g = 0; g < groups; ++g) {
    unsigned value = 0, power = 1;
    for (k = 0; k < 5; ++k, power *= 3) {
      size_t i = g * 5 + k;
      value += (unsigned)((i < n ? trits[i] : 0) + 1) * power;
    }
    packed[g] = (uint8_t)value;
  }
}

#define CANARY 0x5Au

static void test_round_trip(size_t n) {
  size_t i, nbytes = bittts_packed_size(n), bad = 0;
  int *trits = malloc((n + 1) * sizeof *trits);
  uint8_t *packed = malloc(nbytes + 1);
  float *f32 = malloc((n + 2) * sizeof *f32);
  float *naive = malloc((n + 2) * sizeof *naive);
  int8_t *i8 = malloc(n + 2);
  const float scale = 0.037f;
  for (i = 0; i < n; ++i) trits[i] = (int)(rng() % 3) - 1;
  encode_reference(trits, n, packed);
  memset(f32, CANARY, (n + 2) * sizeof *f32);
  memset(naive, CANARY, (n + 2) * sizeof *naive);
  memset(i8, CANARY, n + 2);
  /* outputs start one element in so both neighbours are canaries */
  CHECK(bittts_decode_f32(packed, nbytes, scale, f32 + 1, n, &bad) == BITTTS_OK, "f32 n=%zu", n);
  CHECK(bittts_decode_f32_naive(packed, nbytes, scale, naive + 1, n, &bad) == BITTTS_OK, "naive n=%zu", n);
  CHECK(bittts_decode_i8(packed, nbytes, i8 + 1, n, &bad) == BITTTS_OK, "i8 n=%zu", n);
  for (i = 0; i < n; ++i) {
    if (f32[i + 1] != (float)trits[i] * scale || naive[i + 1] != (float)trits[i] * scale ||
        i8[i + 1] != trits[i]) {
      CHECK(0, "n=%zu weight %zu: trit %d, f32 %g, naive %g, i8 %d", n, i,
            trits[i], f32[i + 1], naive[i + 1], i8[i + 1]);
      break;
    }
  }
  {
    uint8_t guard[sizeof(float)];
    memset(guard, CANARY, sizeof guard);
    CHECK(!memcmp(&f32[0], guard, 4) && !memcmp(&f32[n + 1], guard, 4), "f32 canary n=%zu", n);
    CHECK(!memcmp(&naive[0], guard, 4) && !memcmp(&naive[n + 1], guard, 4), "naive canary n=%zu", n);
    CHECK((uint8_t)i8[0] == CANARY && (uint8_t)i8[n + 1] == CANARY, "i8 canary n=%zu", n);
  }
  free(trits); free(packed); free(f32); free(naive); free(i8);
}

static void test_every_index_matches_table(void) {
  unsigned index;
  for (index = 0; index <= BITTTS_MAX_INDEX; ++index) {
    uint8_t byte = (uint8_t)index;
    float out[5];
    unsigned k, value = index;
    CHECK(bittts_decode_f32(&byte, 1, 1.0f, out, 5, NULL) == BITTTS_OK, "index %u", index);
    for (k = 0; k < 5; ++k, value /= 3)
      CHECK(out[k] == (float)((int)(value % 3) - 1), "index %u trit %u", index, k);
  }
}

static void test_invalid_index_is_rejected(void) {
  unsigned byte_value;
  for (byte_value = BITTTS_MAX_INDEX + 1; byte_value <= 255; ++byte_value) {
    uint8_t packed[4] = {0, 121, 0, 0};
    float out[17];
    int8_t out_i8[17];
    size_t bad = 99;
    packed[2] = (uint8_t)byte_value;
    memset(out, CANARY, sizeof out);
    CHECK(bittts_decode_f32(packed, 4, 1.0f, out, 17, &bad) == BITTTS_ERR_INDEX && bad == 2,
          "byte %u: f32 status/offset %zu", byte_value, bad);
    CHECK(out[5] == 0.0f && out[16] == 0.0f, "byte %u: f32 output not cleared", byte_value);
    bad = 99;
    CHECK(bittts_decode_f32_naive(packed, 4, 1.0f, out, 17, &bad) == BITTTS_ERR_INDEX && bad == 2,
          "byte %u: naive status", byte_value);
    bad = 99;
    CHECK(bittts_decode_i8(packed, 4, out_i8, 17, &bad) == BITTTS_ERR_INDEX && bad == 2,
          "byte %u: i8 status", byte_value);
  }
}

static void test_size_mismatch_and_null(void) {
  uint8_t packed[3] = {121, 121, 121};
  float out[16];
  int8_t out_i8[16];
  CHECK(bittts_decode_f32(packed, 3, 1.0f, out, 16, NULL) == BITTTS_ERR_SIZE, "16 weights need 4 bytes");
  CHECK(bittts_decode_f32(packed, 3, 1.0f, out, 10, NULL) == BITTTS_ERR_SIZE, "10 weights need 2 bytes");
  CHECK(bittts_decode_i8(packed, 2, out_i8, 11, NULL) == BITTTS_ERR_SIZE, "11 weights need 3 bytes");
  CHECK(bittts_decode_f32_naive(packed, 3, 1.0f, out, 16, NULL) == BITTTS_ERR_SIZE, "naive size");
  CHECK(bittts_decode_f32(NULL, 3, 1.0f, out, 15, NULL) == BITTTS_ERR_NULL, "null packed");
  CHECK(bittts_decode_f32(packed, 3, 1.0f, NULL, 15, NULL) == BITTTS_ERR_NULL, "null out");
  CHECK(bittts_decode_f32(NULL, 0, 1.0f, NULL, 0, NULL) == BITTTS_OK, "empty tensor");
  CHECK(bittts_decode_f32_with_table(packed, 3, NULL, out, 15, NULL) == BITTTS_ERR_NULL, "null table");
  CHECK(bittts_packed_size(0) == 0 && bittts_packed_size(1) == 1 && bittts_packed_size(5) == 1 &&
        bittts_packed_size(6) == 2, "packed sizes");
}

int main(void) {
  size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 24, 25, 26, 99, 1000, 1003, 65537};
  size_t i;
  int round;
  for (i = 0; i < sizeof sizes / sizeof *sizes; ++i) test_round_trip(sizes[i]);
  for (round = 0; round < 200; ++round) test_round_trip(1 + rng() % 4000);
  test_every_index_matches_table();
  test_invalid_index_is_rejected();
  test_size_mismatch_and_null();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
