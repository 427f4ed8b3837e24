/* Unit tests of the C decoders (format version 2, balanced ternary) against an
 * independent reference: trits enumerated and encoded by the definition
 * sum_k t_k 3^k, on random tensors whose sizes are and are not multiples of 5.
 * Canary words around every output buffer catch writes out of bounds; `make
 * test` also builds this file with AddressSanitizer to catch reads out of
 * bounds. The seed is printed; BITTTS_TEST_SEED=<seed> replays a run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../tflite/bittts_spec.h"
#include "../../tflite/bittts_ternary.h"

#include "test_harness.h"

typedef bittts_status (*f32_decoder)(const int8_t *, size_t, float, float *, size_t,
                                     size_t *);
static const struct {
  const char *name;
  f32_decoder fn;
} kF32Decoders[] = {
    {"f32", bittts_decode_f32},
    {"lut", bittts_decode_f32_lut},
    {"mulshift", bittts_decode_f32_mulshift},
    {"naive", bittts_decode_f32_naive},
};
enum { kNumF32 = sizeof kF32Decoders / sizeof *kF32Decoders };

/* Reference encoder: byte g is sum_k trit[5g+k] * 3^k, padding trits are 0. */
static void encode_reference(const int *trits, size_t n, int8_t *packed) {
  size_t g, k, groups = (n + 4) / 5;
  for (g = 0; g < groups; ++g) {
    int value = 0, power = 1;
    for (k = 0; k < 5; ++k, power *= 3) {
      size_t i = g * 5 + k;
      value += (i < n ? trits[i] : 0) * power;
    }
    packed[g] = (int8_t)value;
  }
}

#define CANARY 0x5Au

static int float_canary_intact(const float *word) {
  uint8_t guard[sizeof(float)];
  memset(guard, CANARY, sizeof guard);
  return !memcmp(word, guard, sizeof guard);
}

static void test_round_trip(size_t n) {
  size_t i, d, nbytes = bittts_packed_size(n), bad = 0;
  int *trits = malloc((n + 1) * sizeof *trits);
  int8_t *packed = malloc(nbytes + 1);
  float *f32 = malloc((n + 2) * sizeof *f32);
  float *table = malloc(BITTTS_F32_TABLE_SIZE * sizeof *table);
  int8_t *i8 = malloc(n + 2);
  const float scale = 0.037f;
  for (i = 0; i < n; ++i) trits[i] = (int)(rng() % 3) - 1;
  encode_reference(trits, n, packed);
  bittts_fill_f32_table(scale, table);
  for (d = 0; d <= kNumF32; ++d) {
    const char *name = d < kNumF32 ? kF32Decoders[d].name : "with_table";
    bittts_status status;
    memset(f32, CANARY, (n + 2) * sizeof *f32);
    /* outputs start one element in so both neighbours are canaries */
    status = d < kNumF32
                 ? kF32Decoders[d].fn(packed, nbytes, scale, f32 + 1, n, &bad)
                 : bittts_decode_f32_with_table(packed, nbytes, table, f32 + 1, n, &bad);
    CHECK(status == BITTTS_OK, "%s n=%zu status %d", name, n, (int)status);
    for (i = 0; i < n; ++i) {
      if (f32[i + 1] != (float)trits[i] * scale) {
        CHECK(0, "%s n=%zu weight %zu: trit %d, decoded %g", name, n, i, trits[i], f32[i + 1]);
        break;
      }
    }
    CHECK(float_canary_intact(&f32[0]) && float_canary_intact(&f32[n + 1]),
          "%s canary n=%zu", name, n);
  }
  memset(i8, CANARY, n + 2);
  CHECK(bittts_decode_i8(packed, nbytes, i8 + 1, n, &bad) == BITTTS_OK, "i8 n=%zu", n);
  for (i = 0; i < n; ++i) {
    if (i8[i + 1] != trits[i]) {
      CHECK(0, "i8 n=%zu weight %zu: trit %d, decoded %d", n, i, trits[i], i8[i + 1]);
      break;
    }
  }
  CHECK((uint8_t)i8[0] == CANARY && (uint8_t)i8[n + 1] == CANARY, "i8 canary n=%zu", n);
  free(trits); free(packed); free(f32); free(table); free(i8);
}

/* All 3^5 trit patterns, enumerated: each byte value must decode to exactly
 * the pattern whose definition gives that value, and each value is hit once. */
static void test_every_valid_byte(void) {
  int hits[256] = {0};
  int t[5], d;
  for (t[0] = -1; t[0] <= 1; ++t[0])
  for (t[1] = -1; t[1] <= 1; ++t[1])
  for (t[2] = -1; t[2] <= 1; ++t[2])
  for (t[3] = -1; t[3] <= 1; ++t[3])
  for (t[4] = -1; t[4] <= 1; ++t[4]) {
    int value = t[0] + 3 * t[1] + 9 * t[2] + 27 * t[3] + 81 * t[4], k;
    int8_t byte = (int8_t)value, negated = (int8_t)-value;
    float out[5], out_neg[5];
    int8_t out_i8[5];
    hits[value + 128]++;
    for (d = 0; d < kNumF32; ++d) {
      CHECK(kF32Decoders[d].fn(&byte, 1, 1.0f, out, 5, NULL) == BITTTS_OK, "%s byte %d",
            kF32Decoders[d].name, value);
      CHECK(kF32Decoders[d].fn(&negated, 1, 1.0f, out_neg, 5, NULL) == BITTTS_OK,
            "%s byte %d", kF32Decoders[d].name, -value);
      for (k = 0; k < 5; ++k) {
        CHECK(out[k] == (float)t[k], "%s byte %d weight %d: %g, expected %d",
              kF32Decoders[d].name, value, k, out[k], t[k]);
        CHECK(out_neg[k] == (float)-t[k], "%s byte %d (negated) weight %d",
              kF32Decoders[d].name, -value, k);
      }
    }
    CHECK(bittts_decode_i8(&byte, 1, out_i8, 5, NULL) == BITTTS_OK, "i8 byte %d", value);
    for (k = 0; k < 5; ++k)
      CHECK(out_i8[k] == t[k], "i8 byte %d weight %d: %d", value, k, out_i8[k]);
  }
  for (d = -128; d <= 127; ++d) {
    int valid = d >= BITTTS_MIN_INDEX && d <= BITTTS_MAX_INDEX;
    CHECK(hits[d + 128] == valid, "byte %d produced by %d patterns", d, hits[d + 128]);
  }
}

static void test_invalid_bytes_are_rejected(void) {
  int value, d, invalid = 0;
  for (value = -128; value <= 127; ++value) {
    int8_t packed[4] = {0, 121, 0, -121};
    float out[19];
    int8_t out_i8[19];
    size_t bad, i;
    if (value >= BITTTS_MIN_INDEX && value <= BITTTS_MAX_INDEX) continue;
    ++invalid;
    packed[2] = (int8_t)value;
    for (d = 0; d < kNumF32; ++d) {
      bad = 99;
      memset(out, CANARY, sizeof out);
      CHECK(kF32Decoders[d].fn(packed, 4, 1.0f, out + 1, 17, &bad) == BITTTS_ERR_INDEX &&
                bad == 2,
            "byte %d: %s status/offset %zu", value, kF32Decoders[d].name, bad);
      for (i = 1; i <= 17; ++i)
        if (out[i] != 0.0f) break;
      CHECK(i == 18, "byte %d: %s output not cleared at %zu", value, kF32Decoders[d].name, i - 1);
      CHECK(float_canary_intact(&out[0]) && float_canary_intact(&out[18]),
            "byte %d: %s canary", value, kF32Decoders[d].name);
      CHECK(kF32Decoders[d].fn(packed, 4, 1.0f, out, 17, NULL) == BITTTS_ERR_INDEX,
            "byte %d: %s without bad_offset", value, kF32Decoders[d].name);
    }
    bad = 99;
    memset(out_i8, CANARY, sizeof out_i8);
    CHECK(bittts_decode_i8(packed, 4, out_i8 + 1, 17, &bad) == BITTTS_ERR_INDEX && bad == 2,
          "byte %d: i8 status/offset %zu", value, bad);
    for (i = 1; i <= 17; ++i) CHECK(out_i8[i] == 0, "byte %d: i8 output not cleared", value);
    CHECK((uint8_t)out_i8[0] == CANARY && (uint8_t)out_i8[18] == CANARY, "i8 canary");
    /* the first bad byte is reported, also when it is the last one */
    packed[2] = 0;
    packed[3] = (int8_t)value;
    bad = 99;
    CHECK(bittts_decode_f32(packed, 4, 1.0f, out, 16, &bad) == BITTTS_ERR_INDEX && bad == 3,
          "byte %d last: offset %zu", value, bad);
  }
  CHECK(invalid == 13, "%d invalid byte values, expected 13", invalid);
}

/* A wrong size is refused before anything is written: the output buffer is
 * sized for what the caller claims, and a packed tensor holding more or
 * fewer weights than that must not be decoded into it. */
static void test_size_mismatch(void) {
  int8_t packed[4] = {121, -121, 13, 0};
  float out[18];
  int8_t out_i8[18];
  size_t n, len, i;
  int d;
  for (len = 0; len <= 4; ++len) {
    for (n = 0; n <= 16; ++n) {
      int ok = bittts_packed_size(n) == len;
      for (d = 0; d < kNumF32; ++d) {
        memset(out, CANARY, sizeof out);
        CHECK((kF32Decoders[d].fn(packed, len, 1.0f, out + 1, n, NULL) == BITTTS_OK) == ok,
              "%s: %zu bytes for %zu weights", kF32Decoders[d].name, len, n);
        if (!ok)
          for (i = 0; i < 18; ++i)
            if (!float_canary_intact(&out[i])) {
              CHECK(0, "%s wrote on a size error", kF32Decoders[d].name);
              break;
            }
        CHECK(float_canary_intact(&out[0]) && float_canary_intact(&out[n + 1]), "%s canary",
              kF32Decoders[d].name);
      }
      memset(out_i8, CANARY, sizeof out_i8);
      CHECK((bittts_decode_i8(packed, len, out_i8 + 1, n, NULL) == BITTTS_OK) == ok,
            "i8: %zu bytes for %zu weights", len, n);
      if (!ok)
        for (i = 0; i < 18; ++i) CHECK((uint8_t)out_i8[i] == CANARY, "i8 wrote on a size error");
    }
  }
  /* Weight counts whose float buffer would pass SIZE_MAX bytes, with the
   * packed length that matches them: refused as a size error before a byte is
   * read (the sanitizer build would report the read past `packed`). */
  for (d = 0; d < kNumF32; ++d) {
    size_t huge[2] = {(size_t)-1, (size_t)-1 / 4 + 1};
    for (i = 0; i < 2; ++i) {
      memset(out, CANARY, sizeof out);
      CHECK(kF32Decoders[d].fn(packed, bittts_packed_size(huge[i]), 1.0f, out, huge[i], NULL) ==
                BITTTS_ERR_SIZE,
            "%s: %zu weights", kF32Decoders[d].name, huge[i]);
      CHECK(float_canary_intact(&out[0]), "%s wrote for %zu weights", kF32Decoders[d].name,
            huge[i]);
    }
  }
  CHECK(bittts_packed_size(0) == 0 && bittts_packed_size(1) == 1 && bittts_packed_size(5) == 1 &&
            bittts_packed_size(6) == 2 && bittts_packed_size(1000001) == 200001,
        "packed sizes");
}

static void test_null_pointers(void) {
  int8_t packed[3] = {121, 121, 121};
  float out[15], table[BITTTS_F32_TABLE_SIZE];
  int8_t out_i8[15];
  int d;
  bittts_fill_f32_table(1.0f, table);
  for (d = 0; d < kNumF32; ++d) {
    CHECK(kF32Decoders[d].fn(NULL, 3, 1.0f, out, 15, NULL) == BITTTS_ERR_NULL, "%s null packed",
          kF32Decoders[d].name);
    CHECK(kF32Decoders[d].fn(packed, 3, 1.0f, NULL, 15, NULL) == BITTTS_ERR_NULL, "%s null out",
          kF32Decoders[d].name);
    CHECK(kF32Decoders[d].fn(NULL, 0, 1.0f, NULL, 0, NULL) == BITTTS_OK, "%s empty tensor",
          kF32Decoders[d].name);
  }
  CHECK(bittts_decode_i8(NULL, 3, out_i8, 15, NULL) == BITTTS_ERR_NULL, "i8 null packed");
  CHECK(bittts_decode_i8(packed, 3, NULL, 15, NULL) == BITTTS_ERR_NULL, "i8 null out");
  CHECK(bittts_decode_i8(NULL, 0, NULL, 0, NULL) == BITTTS_OK, "i8 empty tensor");
  CHECK(bittts_decode_f32_with_table(packed, 3, NULL, out, 15, NULL) == BITTTS_ERR_NULL,
        "null table");
  CHECK(bittts_decode_f32_with_table(NULL, 3, table, out, 15, NULL) == BITTTS_ERR_NULL,
        "with_table null packed");
  CHECK(bittts_decode_f32_with_table(packed, 3, table, NULL, 15, NULL) == BITTTS_ERR_NULL,
        "with_table null out");
}

static void test_constants(void) {
  CHECK(bittts_format_version() == 2, "format version %d", bittts_format_version());
  CHECK(bittts_min_index() == -121 && bittts_max_index() == 121, "index range");
  CHECK(strcmp(bittts_status_message(BITTTS_ERR_INDEX), "packed byte outside -121..121") == 0,
        "message '%s'", bittts_status_message(BITTTS_ERR_INDEX));
}

int main(void) {
  size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 24, 25, 26, 99, 1000, 1003, 65537};
  size_t i;
  int round;
  seed_rng("test_ternary_decode", getenv("BITTTS_TEST_SEED"));
  for (i = 0; i < sizeof sizes / sizeof *sizes; ++i) test_round_trip(sizes[i]);
  for (round = 0; round < 200; ++round) test_round_trip(1 + rng() % 4000);
  test_every_valid_byte();
  test_invalid_bytes_are_rejected();
  test_size_mismatch();
  test_null_pointers();
  test_constants();
  printf("%d passed, %d failed\n", checks - failures, failures);
  return failures != 0;
}
