/* Instructions per weight of the ternary decoders on Cortex-M, measured in
 * QEMU. Run with `-icount shift=0`: every instruction then advances the
 * virtual clock by 1 ns, so the CMSDK APB timer of the MPS2 boards counts
 * instructions (one tick per 40 at its 25 MHz; calibrated below on a loop
 * of known length, not assumed). QEMU does not model pipelines or memory
 * wait states: these are instruction counts, not cycles.
 *
 * Prints one line per decoder: "decoder <name> <weights> <instructions>". */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../../tflite/bittts_spec.h"
#include "../../../tflite/bittts_ternary.h"
#include "../../../firmware_stub/board/mps2_timer.h"

enum { kWeights = 40000, kRepeats = 3 };

static int8_t packed[(kWeights + 4) / 5];
static uint8_t packed2[(kWeights + 3) / 4];
static float out_f32[kWeights], reference[kWeights];
static int8_t out_i8[kWeights];
static float table[BITTTS_F32_TABLE_SIZE];
static float scale = 0.0371f;

/* The plain 2-bit format for comparison: 4 weights a byte, code c in 0..2
 * for trit c - 1 (3 unused), lowest bits first. */
static void unpack2_f32(const uint8_t *in, size_t n, float s, float *out) {
  const float levels[4] = {-s, 0.0f * s, s, 0.0f};
  size_t g, full = n / 4, k;
  for (g = 0; g < full; ++g) {
    const unsigned b = in[g];
    out[4 * g] = levels[b & 3u];
    out[4 * g + 1] = levels[(b >> 2) & 3u];
    out[4 * g + 2] = levels[(b >> 4) & 3u];
    out[4 * g + 3] = levels[b >> 6];
  }
  for (k = 0; k < n - 4 * full; ++k) out[4 * full + k] = levels[(in[full] >> (2 * k)) & 3u];
}

static void unpack2_i8(const uint8_t *in, size_t n, int8_t *out) {
  size_t g, full = n / 4, k;
  for (g = 0; g < full; ++g) {
    const unsigned b = in[g];
    out[4 * g] = (int8_t)((int)(b & 3u) - 1);
    out[4 * g + 1] = (int8_t)((int)((b >> 2) & 3u) - 1);
    out[4 * g + 2] = (int8_t)((int)((b >> 4) & 3u) - 1);
    out[4 * g + 3] = (int8_t)((int)(b >> 6) - 1);
  }
  for (k = 0; k < n - 4 * full; ++k) out[4 * full + k] = (int8_t)((int)((in[full] >> (2 * k)) & 3u) - 1);
}

enum {
  kLut, kWithTable, kMulshift, kNaive, kUnpack2F32, kCopyF32, kI8, kUnpack2I8, kCount
};
static const char *const kNames[kCount] = {
    "f32_static_table",    "f32_table_prefilled", "f32_mulshift", "f32_naive",
    "f32_2bit_unpack",     "f32_memcpy",          "i8_table",     "i8_2bit_unpack"};

static int run(int which) {
  switch (which) {
    case kLut:
      return bittts_decode_f32_lut(packed, sizeof packed, scale, out_f32, kWeights, NULL);
    case kWithTable:
      return bittts_decode_f32_with_table(packed, sizeof packed, table, out_f32, kWeights, NULL);
    case kMulshift:
      return bittts_decode_f32_mulshift(packed, sizeof packed, scale, out_f32, kWeights, NULL);
    case kNaive:
      return bittts_decode_f32_naive(packed, sizeof packed, scale, out_f32, kWeights, NULL);
    case kUnpack2F32: unpack2_f32(packed2, kWeights, scale, out_f32); return 0;
    case kCopyF32: memcpy(out_f32, reference, sizeof reference); return 0;
    case kI8: return bittts_decode_i8(packed, sizeof packed, out_i8, kWeights, NULL);
    case kUnpack2I8: unpack2_i8(packed2, kWeights, out_i8); return 0;
  }
  return 1;
}

int main(void) {
  unsigned long long state = 0x9E3779B97F4A7C15ull;
  uint32_t start, calibration;
  int i, which, r, failures = 0;
  /* Random trits packed both ways; the float reference is trit * scale. */
  memset(packed, 0, sizeof packed);
  memset(packed2, 0, sizeof packed2);
  for (i = 0; i < kWeights; ++i) {
    int trit, power = 1, k;
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    trit = (int)((state >> 20) % 3u) - 1;
    for (k = 0; k < i % 5; ++k) power *= 3;
    packed[i / 5] = (int8_t)(packed[i / 5] + trit * power);
    packed2[i / 4] = (uint8_t)(packed2[i / 4] | (unsigned)(trit + 1) << (2 * (i % 4)));
    reference[i] = (float)trit * scale;
  }
  bittts_fill_f32_table(scale, table);
  calibration = mps2_timer_start();
  printf("calibration %u %u\n", MPS2_CALIBRATION_INSTRUCTIONS, (unsigned)calibration);
  for (which = 0; which < kCount; ++which) {
    uint32_t best = 0xFFFFFFFFu;
    for (r = 0; r < kRepeats; ++r) {
      uint32_t elapsed;
      memset(out_f32, 0, sizeof out_f32);
      memset(out_i8, 0, sizeof out_i8);
      start = mps2_ticks();
      if (run(which) != 0) ++failures;
      elapsed = start - mps2_ticks();
      best = elapsed < best ? elapsed : best;
    }
    for (i = 0; i < kWeights; ++i) {
      const int ok = which >= kI8 ? (float)out_i8[i] * scale == reference[i]
                                  : out_f32[i] == reference[i];
      if (!ok) {
        printf("error %s weight %d\n", kNames[which], i);
        ++failures;
        break;
      }
    }
    printf("decoder %s %d %u\n", kNames[which], kWeights, (unsigned)best);
  }
  return failures != 0;
}
