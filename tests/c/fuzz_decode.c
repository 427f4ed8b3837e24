/* libFuzzer target: every packed-index decoder of tflite/bittts_ternary.c on
 * the same input, against each other and against a reference written here
 * from the format's definition (balanced base-3 digits by repeated division).
 *
 * Input layout (all of it optional: a short input means zeros):
 *   byte 0      mode: bit 0 folds every packed byte into the valid range
 *               (so most runs get past the index scan), bit 1 then plants one
 *               invalid byte at the position given by byte 5, bits 2..3 pick
 *               the weight count's error (0: exact, 1: +delta, 2: -delta,
 *               3: a count from bytes 6..7 below 5 * len + 64), bit 4
 *               passes NULL pointers
 *   bytes 1..4  the scale's float32 bits (NaN, infinities, -0 included)
 *   byte 5      where the planted invalid byte goes (byte 7: which one)
 *   bytes 6..7  a weight count (mode 3) or a delta (modes 1, 2); byte 6
 *               also sets how many weights the last byte holds
 *   bytes 8..   the packed indices
 *
 * Every buffer is a heap block of exactly the size the call is given, so
 * AddressSanitizer reports any read or write outside it. A disagreement
 * calls abort(), which libFuzzer records as a crash with its input. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"

#define FAIL(...)                         \
  do {                                    \
    fprintf(stderr, "fuzz_decode: ");     \
    fprintf(stderr, __VA_ARGS__);         \
    fprintf(stderr, "\n");                \
    abort();                              \
  } while (0)

/* How the inputs ended, printed at exit for tools/fuzz_kernels.py. */
static unsigned long g_status_count[4];
__attribute__((destructor)) static void print_depth(void) {
  if (g_status_count[0] + g_status_count[1] + g_status_count[2] + g_status_count[3])
    fprintf(stderr, "fuzz_decode depth: decoded %lu, invalid byte %lu, size mismatch %lu, "
            "NULL %lu\n", g_status_count[BITTTS_OK], g_status_count[BITTTS_ERR_INDEX],
            g_status_count[BITTTS_ERR_SIZE], g_status_count[BITTTS_ERR_NULL]);
}

typedef bittts_status (*f32_decoder)(const int8_t *, size_t, float, float *, size_t, size_t *);

/* bittts_decode_f32_with_table with a table filled for the call, kept in a
 * heap block of exactly BITTTS_F32_TABLE_SIZE floats. */
static float *g_table;
static bittts_status decode_with_table(const int8_t *packed, size_t len, float scale,
                                       float *out, size_t n, size_t *bad) {
  bittts_fill_f32_table(scale, g_table);
  return bittts_decode_f32_with_table(packed, len, g_table, out, n, bad);
}

static const struct {
  const char *name;
  f32_decoder fn;
} kDecoders[] = {
    {"f32", bittts_decode_f32},
    {"lut", bittts_decode_f32_lut},
    {"with_table", decode_with_table},
    {"mulshift", bittts_decode_f32_mulshift},
    {"naive", bittts_decode_f32_naive},
};
enum { kNumDecoders = sizeof kDecoders / sizeof *kDecoders };

/* Reference: weight k of a valid byte is digit k of the unsigned base-3
 * number byte + 121, minus one. Returns 0 for a byte outside -121..121. */
static int reference_trits(int8_t byte, int trits[5]) {
  int value = (int)byte, k;
  if (value < -121 || value > 121) return 0;
  value += 121;
  for (k = 0; k < 5; ++k) {
    trits[k] = value % 3 - 1;
    value /= 3;
  }
  return 1;
}

/* The 13 bytes outside -121..121. */
static const int8_t kInvalid[13] = {-128, -127, -126, -125, -124, -123, -122,
                                    122,  123,  124,  125,  126,  127};

/* Equal bits, or both NaN: a NaN's sign and payload are unspecified by IEEE
 * 754 for a product, and compilers turn -1.0f * scale into a sign flip. */
static int same_floats(const float *a, const float *b, size_t n) {
  size_t i;
  for (i = 0; i < n; ++i)
    if (memcmp(&a[i], &b[i], sizeof *a) != 0 && !(a[i] != a[i] && b[i] != b[i])) return 0;
  return 1;
}

static uint16_t read_u16(const uint8_t *data) { return (uint16_t)(data[0] | data[1] << 8); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t header[8] = {0};
  const uint8_t *body;
  size_t len, n, expected_n, i, first_bad = (size_t)-1;
  int8_t *packed;
  float scale, *ref_f32;
  int8_t *ref_i8;
  unsigned char *canary;
  int mode, d, null_pointers;
  bittts_status expected;

  if (g_table == NULL) g_table = malloc(BITTTS_F32_TABLE_SIZE * sizeof *g_table);
  memcpy(header, data, size < sizeof header ? size : sizeof header);
  body = size > sizeof header ? data + sizeof header : NULL;
  len = size > sizeof header ? size - sizeof header : 0;
  mode = header[0];
  memcpy(&scale, header + 1, sizeof scale);
  null_pointers = (mode >> 4) & 1;

  /* The packed bytes, exactly len of them. */
  packed = len ? malloc(len) : NULL;
  for (i = 0; i < len; ++i) {
    int8_t byte = (int8_t)body[i];
    if (mode & 1) byte = (int8_t)(body[i] % 243 - 121);
    packed[i] = byte;
  }
  if ((mode & 3) == 3 && len) packed[header[5] % len] = kInvalid[header[7] % 13];
  for (i = 0; i < len; ++i) {
    int trits[5];
    if (!reference_trits(packed[i], trits)) {
      first_bad = i;
      break;
    }
  }

  /* The weight count: exact for len bytes, or off. */
  expected_n = len * 5 - (len ? header[6] % 5 : 0);
  switch ((mode >> 2) & 3) {
    case 0: n = expected_n; break;
    case 1: n = expected_n + 1 + read_u16(header + 6) % 64; break;
    case 2: {
      size_t delta = read_u16(header + 6) % 64 + 1;
      n = expected_n > delta ? expected_n - delta : 0;
      break;
    }
    default: n = read_u16(header + 6) % (5 * len + 64); break;
  }
  if (null_pointers) {
    expected = (len || n) ? BITTTS_ERR_NULL : BITTTS_OK;
  } else if (bittts_packed_size(n) != len) {
    expected = BITTTS_ERR_SIZE;
  } else {
    expected = first_bad != (size_t)-1 ? BITTTS_ERR_INDEX : BITTTS_OK;
  }
  ++g_status_count[expected];
  if (bittts_check_sizes(len, n) != (bittts_packed_size(n) == len ? BITTTS_OK : BITTTS_ERR_SIZE))
    FAIL("check_sizes disagrees with packed_size for %zu bytes, %zu weights", len, n);
  if (bittts_packed_size(n) != n / 5 + (n % 5 != 0)) FAIL("packed_size(%zu)", n);

  /* The reference output (all zeros when a byte is invalid). */
  ref_f32 = calloc(n ? n : 1, sizeof *ref_f32);
  ref_i8 = calloc(n ? n : 1, 1);
  canary = malloc(n ? n * sizeof(float) : 1);
  memset(canary, 0xA5, n * sizeof(float));
  for (i = 0; expected == BITTTS_OK && i < n; ++i) {
    int trits[5];
    reference_trits(packed[i / 5], trits);
    ref_i8[i] = (int8_t)trits[i % 5];
    ref_f32[i] = (float)trits[i % 5] * scale;
  }

  for (d = 0; d <= kNumDecoders; ++d) {
    const char *name = d < kNumDecoders ? kDecoders[d].name : "i8";
    size_t out_bytes = d < kNumDecoders ? n * sizeof(float) : n;
    /* Exactly the bytes the call may write; never NULL unless planted. */
    unsigned char *out = malloc(out_bytes ? out_bytes : 1);
    size_t bad = (size_t)-7;
    bittts_status status;
    memset(out, 0xA5, out_bytes);
    if (d < kNumDecoders) {
      status = kDecoders[d].fn(null_pointers ? NULL : packed, len, scale,
                               null_pointers ? NULL : (float *)out, n, &bad);
    } else {
      status = bittts_decode_i8(null_pointers ? NULL : packed, len,
                                null_pointers ? NULL : (int8_t *)out, n, &bad);
    }
    if (status != expected)
      FAIL("%s: status %d, expected %d (%zu bytes, %zu weights)", name, (int)status,
           (int)expected, len, n);
    if (status == BITTTS_OK) {
      if (d < kNumDecoders ? !same_floats((const float *)out, ref_f32, n)
                           : memcmp(out, ref_i8, out_bytes) != 0)
        FAIL("%s: output differs from the reference (%zu weights, scale %a)", name, n,
             (double)scale);
    } else if (status == BITTTS_ERR_INDEX) {
      /* ref_f32 and ref_i8 are all zeros here */
      if (bad != first_bad) FAIL("%s: bad offset %zu, expected %zu", name, bad, first_bad);
      if (memcmp(out, d < kNumDecoders ? (const void *)ref_f32 : (const void *)ref_i8, out_bytes))
        FAIL("%s: output not cleared after an invalid byte", name);
    } else {
      if (bad != (size_t)-7) FAIL("%s: bad offset written on status %d", name, (int)status);
      if (memcmp(out, canary, out_bytes))
        FAIL("%s: output written on status %d", name, (int)status);
    }
    free(out);
  }
  free(ref_f32);
  free(ref_i8);
  free(canary);
  free(packed);
  return 0;
}
