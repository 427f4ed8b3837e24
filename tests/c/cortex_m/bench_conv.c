/* Instructions of the fused ternary convolution on Cortex-M, measured in QEMU
 * with `-icount shift=0` (the CMSDK timer then counts instructions; see
 * bench_decode.c), against what the graph did before: the whole kernel
 * decoded (bittts_decode_i8 / _f32) and then convolved by a loop in the order
 * of TFLM's reference CONV_2D. QEMU models neither pipelines nor wait states:
 * instruction counts, not cycles. The int8 outputs must agree bit for bit,
 * the float32 ones within 1e-5 of the peak.
 *
 * A 128 -> 128 conv with 5 taps, 32 frames, SAME padding (the model's decoder
 * convs): 2,621,440 multiply-adds. Prints "conv <name> <macs> <instructions>
 * <decoded kernel bytes>".
 *
 * Then the streaming calls the C engine makes for the frames graph (every
 * invoke: 4 new frames, 4 output frames, VALID): 128 -> 128 with 5 taps on 8
 * frames, and the pointwise 128 -> 384 and 384 -> 128 that dominate the
 * graph, each through bittts_conv_i8 (scans the packed bytes) and
 * bittts_conv_i8_trusted (the engine's), checked bit for bit against the
 * decode-then-reference loop. Prints "stream <name> <macs> <instructions>". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../../../tflite/bittts_spec.h"
#include "../../../tflite/bittts_ternary.h"
#include "../../../tflite/bittts_ternary_conv.h"
#include "../../../firmware_stub/board/mps2_timer.h"

enum { kT = 32, kCin = 128, kCout = 128, kK = 5, kWeights = kCout * kK * kCin };
enum { kPad = (kK - 1) / 2 };

static int8_t packed[(kWeights + 4) / 5];
static int8_t x8[kT * kCin], y8[kT * kCout], ref8[kT * kCout], codes[kWeights];
static float xf[kT * kCin], yf[kT * kCout], reff[kT * kCout], weights[kWeights];
static int32_t bias32[kCout];
static float biasf[kCout];
/* bittts_conv_i8_fast_scratch_size: the int16 lanes of a row pair with 32
 * bytes of alignment and margins, the window of 16 output frames widened to
 * int16. */
static int8_t scratch[2 * kK * kCin + 32 + 2 * (16 + kK - 1) * kCin];
static float scratchf[kK * kCin + 8];
static const float kBeta = 0.0371f;
static bittts_conv_quant quant;

/* The streaming cases' buffers: up to 8 frames of 384 channels, 384 x 128
 * trits or 128 x 640. */
enum { kStreamX = 8 * 384, kStreamY = 4 * 384, kStreamW = 128 * 640 };
static int8_t sx[kStreamX], sy[kStreamY], sref[kStreamY], spacked[(kStreamW + 4) / 5];
static int8_t scodes[kStreamW], sscratch[2 * 640 + 32 + 2 * 8 * 384];

/* TFLM's reference CONV_2D order (output frame, output channel, tap, input
 * channel), skipping taps in the padding, on the decoded int8 codes. */
static void reference_i8(void) {
  int t, o, k, c;
  for (t = 0; t < kT; ++t)
    for (o = 0; o < kCout; ++o) {
      int32_t acc = 0, v;
      for (k = 0; k < kK; ++k) {
        const int frame = t + k - kPad;
        if (frame < 0 || frame >= kT) continue;
        for (c = 0; c < kCin; ++c)
          acc += codes[(o * kK + k) * kCin + c] * (x8[frame * kCin + c] + quant.input_offset);
      }
      acc += bias32[o];
      v = bittts_conv_multiply_by_quantized_multiplier(acc, quant.multiplier, quant.shift);
      v += quant.output_offset;
      v = v < quant.act_min ? quant.act_min : (v > quant.act_max ? quant.act_max : v);
      ref8[t * kCout + o] = (int8_t)v;
    }
}

static void reference_f32(void) {
  int t, o, k, c;
  for (t = 0; t < kT; ++t)
    for (o = 0; o < kCout; ++o) {
      float acc = 0.0f;
      for (k = 0; k < kK; ++k) {
        const int frame = t + k - kPad;
        if (frame < 0 || frame >= kT) continue;
        for (c = 0; c < kCin; ++c) acc += weights[(o * kK + k) * kCin + c] * xf[frame * kCin + c];
      }
      reff[t * kCout + o] = acc + biasf[o];
    }
}

static const bittts_conv_shape kShape = {1, kT, kCin, kCout, kK, 1, 1, BITTTS_CONV_PADDING_SAME};

enum { kFusedI8, kDecodeI8, kFusedF32, kDecodeF32, kCount };
static const char *const kNames[kCount] = {"i8_fused", "i8_decode_then_reference",
                                           "f32_fused", "f32_decode_then_reference"};
static const unsigned kDecodedBytes[kCount] = {0, kWeights, 0, 4 * kWeights};

static int run(int which) {
  switch (which) {
    case kFusedI8:
      return bittts_conv_i8(&kShape, &quant, x8, sizeof x8, packed, sizeof packed, bias32,
                            kCout, scratch, sizeof scratch, y8, sizeof y8, NULL);
    case kDecodeI8:
      if (bittts_decode_i8(packed, sizeof packed, codes, kWeights, NULL) != 0) return 1;
      reference_i8();
      return 0;
    case kFusedF32:
      return bittts_conv_f32(&kShape, xf, kT * kCin, packed, sizeof packed, kBeta, biasf, kCout,
                             -3.4e38f, 3.4e38f, scratchf, kK * kCin + 8, yf, kT * kCout, NULL);
    case kDecodeF32:
      if (bittts_decode_f32(packed, sizeof packed, kBeta, weights, kWeights, NULL) != 0) return 1;
      reference_f32();
      return 0;
  }
  return 1;
}

/* One streaming call (VALID, stride and dilation 1): instructions of the
 * checked and the trusted entry point; 1 on a wrong output. */
static int stream(const char *name, size_t t_in, size_t k, size_t cin, size_t cout,
                  unsigned long long *state) {
  const bittts_conv_shape shape = {1, t_in, cin, cout, k, 1, 1, BITTTS_CONV_PADDING_VALID};
  const size_t t_out = t_in - k + 1, weights = cout * k * cin, bytes = (weights + 4) / 5;
  size_t i, t, o, j, c;
  int failures = 0, trusted;
  memset(spacked, 0, sizeof spacked);
  for (i = 0; i < weights; ++i) {
    int trit, power = 1, e;
    *state ^= *state << 13; *state ^= *state >> 7; *state ^= *state << 17;
    trit = (int)((*state >> 20) % 3u) - 1;
    for (e = 0; e < (int)(i % 5); ++e) power *= 3;
    spacked[i / 5] = (int8_t)(spacked[i / 5] + trit * power);
  }
  for (i = 0; i < t_in * cin; ++i) {
    *state ^= *state << 13; *state ^= *state >> 7; *state ^= *state << 17;
    sx[i] = (int8_t)(*state >> 40);
  }
  if (bittts_decode_i8(spacked, bytes, scodes, weights, NULL) != 0) return 1;
  for (t = 0; t < t_out; ++t)
    for (o = 0; o < cout; ++o) {
      int32_t acc = 0, v;
      for (j = 0; j < k; ++j)
        for (c = 0; c < cin; ++c)
          acc += scodes[(o * k + j) * cin + c] * (sx[(t + j) * cin + c] + quant.input_offset);
      acc += bias32[o % kCout];
      v = bittts_conv_multiply_by_quantized_multiplier(acc, quant.multiplier, quant.shift);
      v += quant.output_offset;
      v = v < quant.act_min ? quant.act_min : (v > quant.act_max ? quant.act_max : v);
      sref[t * cout + o] = (int8_t)v;
    }
  for (trusted = 0; trusted < 2; ++trusted) {
    uint32_t start, elapsed;
    int status;
    static int32_t sbias[384];
    for (o = 0; o < cout; ++o) sbias[o] = bias32[o % kCout];
    memset(sy, 0, sizeof sy);
    start = mps2_ticks();
    status = trusted ? bittts_conv_i8_trusted(&shape, &quant, sx, t_in * cin, spacked, bytes,
                                              sbias, cout, sscratch, sizeof sscratch, sy,
                                              t_out * cout)
                     : bittts_conv_i8(&shape, &quant, sx, t_in * cin, spacked, bytes, sbias,
                                      cout, sscratch, sizeof sscratch, sy, t_out * cout, NULL);
    elapsed = start - mps2_ticks();
    printf("stream %s%s %u %u\n", name, trusted ? "_trusted" : "", (unsigned)(t_out * weights),
           (unsigned)elapsed);
    if (status != 0 || memcmp(sy, sref, t_out * cout) != 0) {
      printf("error: stream %s%s differs\n", name, trusted ? "_trusted" : "");
      ++failures;
    }
  }
  return failures;
}

int main(void) {
  unsigned long long state = 0x9E3779B97F4A7C15ull;
  uint32_t start, calibration;
  int i, which, failures = 0;
  float peak = 0.0f, worst = 0.0f;
  memset(packed, 0, sizeof packed);
  for (i = 0; i < kWeights; ++i) {
    int trit, power = 1, k;
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    trit = (int)((state >> 20) % 3u) - 1;
    for (k = 0; k < i % 5; ++k) power *= 3;
    packed[i / 5] = (int8_t)(packed[i / 5] + trit * power);
  }
  for (i = 0; i < kT * kCin; ++i) {
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    x8[i] = (int8_t)(state >> 40);
    xf[i] = (float)x8[i] / 32.0f;
  }
  for (i = 0; i < kCout; ++i) bias32[i] = (int32_t)(i * 37 % 2001) - 1000, biasf[i] = 0.01f * i;
  quant.input_offset = 3, quant.output_offset = -7, quant.act_min = -128, quant.act_max = 127;
  bittts_conv_quantize_multiplier(0.02 * 0.0371 / 0.05, &quant.multiplier, &quant.shift);
  calibration = mps2_timer_start();
  printf("calibration %u %u\n", MPS2_CALIBRATION_INSTRUCTIONS, (unsigned)calibration);
  for (which = 0; which < kCount; ++which) {
    uint32_t elapsed;
    start = mps2_ticks();
    if (run(which) != 0) ++failures;
    elapsed = start - mps2_ticks();
    printf("conv %s %u %u %u\n", kNames[which], (unsigned)(kT * kK * kCin * kCout),
           (unsigned)elapsed, kDecodedBytes[which]);
  }
  if (memcmp(y8, ref8, sizeof y8) != 0) {
    printf("error: int8 outputs differ\n");
    ++failures;
  }
  for (i = 0; i < kT * kCout; ++i) {
    peak = fabsf(reff[i]) > peak ? fabsf(reff[i]) : peak;
    worst = fabsf(reff[i] - yf[i]) > worst ? fabsf(reff[i] - yf[i]) : worst;
  }
  printf("float32 largest difference %g of peak %g\n", (double)worst, (double)peak);
  if (worst > 1e-5f * peak) ++failures;
  printf("simd %d\n", bittts_conv_simd());
  failures += stream("i8_k5_128x128_t4", 8, 5, 128, 128, &state);
  failures += stream("i8_k1_128x384_t4", 4, 1, 128, 384, &state);
  failures += stream("i8_k1_384x128_t4", 4, 1, 384, 128, &state);
  return failures != 0;
}
