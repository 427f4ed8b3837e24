/* BitTTSTernaryConv's arithmetic: see bittts_ternary_conv.h. The rounding
 * helpers are written from TFLite's documented definitions of
 * QuantizeMultiplier and MultiplyByQuantizedMultiplier (gemmlowp's
 * SaturatingRoundingDoublingHighMul and RoundingDivideByPOT); the pytest
 * tests/test_ternary_conv.py checks the int8 path bit for bit against the
 * tflite-micro wheel's CONV_2D. */
#include "bittts_ternary_conv.h"

#include <float.h>
#include <string.h>

#include "bittts_spec.h"
#include "bittts_ternary.h"

enum { kTrits = BITTTS_TRITS_PER_BYTE };

/* The accumulator bound (spec.py CONV_MAX_ROW) in C: K * Cin products of at
 * most 255 in magnitude, plus the input offset times the row's trit sum. */
typedef char bittts_conv_row_fits_int32[(long long)BITTTS_CONV_MAX_ROW * 255 < 2147483647LL ? 1
                                                                                          : -1];

/* --- Shapes. */

typedef struct {
  size_t out_length, pad, row, weights, input_size, output_size, scratch, cout;
} Geometry;

static int multiply(size_t a, size_t b, size_t *product) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *product = a * b;
  return 1;
}

static bittts_conv_status geometry(const bittts_conv_shape *s, Geometry *g) {
  size_t span, per_batch;
  if (s == NULL) return BITTTS_CONV_ERR_NULL;
  if (s->stride < 1 || s->dilation < 1 ||
      (s->padding != BITTTS_CONV_PADDING_VALID && s->padding != BITTTS_CONV_PADDING_SAME))
    return BITTTS_CONV_ERR_PARAM;
  if (s->batches < 1 || s->input_length < 1 || s->input_channels < 1 ||
      s->output_channels < 1 || s->kernel_size < 1)
    return BITTTS_CONV_ERR_SIZE;
  /* span: the frames one output reads, (K - 1) * dilation + 1; T + span must
   * not overflow either (the tap positions below stay under it). */
  if (!multiply(s->kernel_size - 1, s->dilation, &span) || span > SIZE_MAX - 1 ||
      span + 1 > SIZE_MAX - s->input_length)
    return BITTTS_CONV_ERR_SIZE;
  span += 1;
  if (!multiply(s->kernel_size, s->input_channels, &g->row) || g->row > BITTTS_CONV_MAX_ROW)
    return BITTTS_CONV_ERR_SIZE;
  if (s->padding == BITTTS_CONV_PADDING_VALID) {
    if (s->input_length < span) return BITTTS_CONV_ERR_SIZE;
    g->out_length = (s->input_length - span) / s->stride + 1;
    g->pad = 0;
  } else {
    /* TFLite: T_out = ceil(T / stride), total padding (T_out - 1) * stride +
     * span - T when positive, half of it (rounded down) before frame 0. */
    size_t reach;
    g->out_length = (s->input_length - 1) / s->stride + 1;
    reach = (g->out_length - 1) * s->stride + span; /* <= T - 1 + span */
    g->pad = reach > s->input_length ? (reach - s->input_length) / 2 : 0;
  }
  if (!multiply(s->output_channels, g->row, &g->weights) ||
      !multiply(s->input_length, s->input_channels, &per_batch) ||
      !multiply(per_batch, s->batches, &g->input_size) ||
      !multiply(g->out_length, s->output_channels, &per_batch) ||
      !multiply(per_batch, s->batches, &g->output_size) ||
      g->input_size > SIZE_MAX / sizeof(float) || g->output_size > SIZE_MAX / sizeof(float))
    return BITTTS_CONV_ERR_SIZE;
  g->scratch = (g->row + kTrits - 1 + kTrits - 1) / kTrits * kTrits;
  g->cout = s->output_channels;
  return BITTTS_CONV_OK;
}

bittts_conv_status bittts_conv_check_shape(const bittts_conv_shape *shape) {
  Geometry g;
  return geometry(shape, &g);
}

#define GEOMETRY_FIELD(function, field)                          \
  size_t function(const bittts_conv_shape *shape) {              \
    Geometry g;                                                  \
    return geometry(shape, &g) == BITTTS_CONV_OK ? g.field : 0; \
  }
GEOMETRY_FIELD(bittts_conv_output_length, out_length)
GEOMETRY_FIELD(bittts_conv_input_size, input_size)
GEOMETRY_FIELD(bittts_conv_output_size, output_size)
GEOMETRY_FIELD(bittts_conv_weight_count, weights)
GEOMETRY_FIELD(bittts_conv_pad_before, pad)
GEOMETRY_FIELD(bittts_conv_scratch_size, scratch)
#undef GEOMETRY_FIELD

/* --- Checks shared by both paths, all before anything is written. */

static int overlaps(const void *a, size_t a_bytes, const void *b, size_t b_bytes) {
  uintptr_t a0 = (uintptr_t)a, b0 = (uintptr_t)b;
  return a != NULL && b != NULL && a_bytes && b_bytes && a0 < b0 + b_bytes &&
         b0 < a0 + a_bytes;
}

/* Every byte, no early exit: the OR of the out-of-range flags compiles to a
 * vector compare; the offset is looked up only when one is set. */
static bittts_conv_status scan_packed(const int8_t *packed, size_t len, size_t *bad_offset) {
  size_t i;
  int bad = 0;
  for (i = 0; i < len; ++i)
    bad |= (packed[i] < BITTTS_MIN_INDEX) | (packed[i] > BITTTS_MAX_INDEX);
  if (!bad) return BITTTS_CONV_OK;
  for (i = 0; i < len; ++i) {
    if (packed[i] < BITTTS_MIN_INDEX || packed[i] > BITTTS_MAX_INDEX) {
      if (bad_offset) *bad_offset = i;
      break;
    }
  }
  return BITTTS_CONV_ERR_INDEX;
}

/* Lengths in elements of `element` bytes (the scratch's too), the bias's
 * of bias_element; lengths above what the geometry allows are refused before
 * their byte counts are formed. */
typedef struct {
  const void *input;
  size_t input_len, element;
  const int8_t *packed;
  size_t packed_len;
  const void *bias;
  size_t bias_len, bias_element;
  void *scratch;
  size_t scratch_len;
  void *output;
  size_t output_len;
} Buffers;

static bittts_conv_status check_buffers(const Buffers *b, const Geometry *g) {
  size_t in_bytes, out_bytes, bias_bytes, scratch_bytes;
  if (b->input == NULL || b->packed == NULL || b->scratch == NULL || b->output == NULL ||
      (b->bias == NULL && b->bias_len != 0))
    return BITTTS_CONV_ERR_NULL;
  if (b->input_len != g->input_size || b->output_len != g->output_size ||
      bittts_check_sizes(b->packed_len, g->weights) != BITTTS_OK ||
      b->scratch_len < g->scratch || (b->bias != NULL && b->bias_len != g->cout))
    return BITTTS_CONV_ERR_SIZE;
  /* A scratch longer than needed is used only up to g->scratch. */
  in_bytes = b->input_len * b->element, out_bytes = b->output_len * b->element;
  bias_bytes = b->bias_len * b->bias_element, scratch_bytes = g->scratch * b->element;
  if (overlaps(b->output, out_bytes, b->input, in_bytes) ||
      overlaps(b->output, out_bytes, b->packed, b->packed_len) ||
      overlaps(b->output, out_bytes, b->bias, bias_bytes) ||
      overlaps(b->output, out_bytes, b->scratch, scratch_bytes) ||
      overlaps(b->scratch, scratch_bytes, b->input, in_bytes) ||
      overlaps(b->scratch, scratch_bytes, b->packed, b->packed_len) ||
      overlaps(b->scratch, scratch_bytes, b->bias, bias_bytes))
    return BITTTS_CONV_ERR_OVERLAP;
  return BITTTS_CONV_OK;
}

/* Row o of the kernel (K * Cin trits from weight o * row on) decoded by the
 * division-free table decode of the packed bytes it lies in; the row starts
 * at trit (o * row) % 5 of the scratch. The bytes were scanned already, so
 * the decode cannot fail. */
static const int8_t *decode_row(const int8_t *packed, size_t first, size_t count,
                                int8_t *scratch) {
  const size_t byte = first / kTrits, skip = first % kTrits;
  const size_t bytes = (skip + count + kTrits - 1) / kTrits;
  (void)bittts_decode_i8(packed + byte, bytes, scratch, bytes * kTrits, NULL);
  return scratch + skip;
}

/* The float path's row: trit * 1.0f, the static-table decode's exact -1, 0,
 * 1. Multiplying by these floats costs what multiplying by decoded weights
 * does; converting an int8 trit per multiply-add took 8.1 instead of 6.2
 * instructions per MAC on Cortex-M4 (tests/c/cortex_m/bench_conv.c). */
static const float *decode_row_f32(const int8_t *packed, size_t first, size_t count,
                                   float *scratch) {
  const size_t byte = first / kTrits, skip = first % kTrits;
  const size_t bytes = (skip + count + kTrits - 1) / kTrits;
  (void)bittts_decode_f32_lut(packed + byte, bytes, 1.0f, scratch, bytes * kTrits, NULL);
  return scratch + skip;
}

/* The frames of output t whose taps all fall inside 0..T-1 are
 * [interior_first, interior_end); the others go through the checked loop. */
static void interior(const bittts_conv_shape *s, const Geometry *g, size_t *first,
                     size_t *end) {
  const size_t span = (s->kernel_size - 1) * s->dilation + 1;
  *first = (g->pad + s->stride - 1) / s->stride;
  *end = s->input_length + g->pad >= span
             ? (s->input_length + g->pad - span) / s->stride + 1
             : 0;
  if (*end > g->out_length) *end = g->out_length;
  if (*first > *end) *first = *end;
}

/* --- Float32. */

static float clamp_f32(float v, float lo, float hi) {
  /* NaN stays NaN, as TFLite's min(max(v, lo), hi). */
  return v < lo ? lo : (v > hi ? hi : v);
}

/* Interior frames go kBlock at a time: each weight is loaded once for all of
 * them and their sums are independent chains (one chain waits out the add
 * latency on every term). Every sum still runs over taps, then channels, in
 * order, so the bits are those of one frame at a time. */
enum { kBlock = 4 };

/* The kBlock frames whose first tap reads x0 (all taps inside the input). */
static void sum_block_f32(const bittts_conv_shape *s, const float *x0, const float *w,
                          float acc[kBlock]) {
  const size_t cin = s->input_channels, step = s->stride * cin;
  const float *x1 = x0 + step, *x2 = x1 + step, *x3 = x2 + step;
  float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
  size_t k, c;
  for (k = 0; k < s->kernel_size; ++k) {
    const size_t at = k * s->dilation * cin;
    const float *wk = w + k * cin;
    for (c = 0; c < cin; ++c) {
      const float wc = wk[c];
      a0 += wc * x0[at + c];
      a1 += wc * x1[at + c];
      a2 += wc * x2[at + c];
      a3 += wc * x3[at + c];
    }
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* One frame, each tap checked against the padding (TFLite skips those). */
static float sum_frame_f32(const bittts_conv_shape *s, const Geometry *g, const float *x,
                           const float *w, size_t t) {
  const size_t cin = s->input_channels;
  float acc = 0.0f;
  size_t k, c;
  for (k = 0; k < s->kernel_size; ++k) {
    const size_t frame = t * s->stride + k * s->dilation;
    if (frame < g->pad || frame - g->pad >= s->input_length) continue;
    {
      const float *xk = x + (frame - g->pad) * cin, *wk = w + k * cin;
      for (c = 0; c < cin; ++c) acc += wk[c] * xk[c];
    }
  }
  return acc;
}

bittts_conv_status bittts_conv_f32(const bittts_conv_shape *shape,
                                   const float *input, size_t input_len,
                                   const int8_t *packed, size_t packed_len, float beta,
                                   const float *bias, size_t bias_len,
                                   float act_min, float act_max,
                                   float *scratch, size_t scratch_len,
                                   float *output, size_t output_len, size_t *bad_offset) {
  Geometry g;
  Buffers b;
  size_t o, n, t, k, first, end;
  const size_t cin = shape ? shape->input_channels : 0, cout = shape ? shape->output_channels : 0;
  bittts_conv_status status = geometry(shape, &g);
  if (status != BITTTS_CONV_OK) return status;
  b.input = input, b.input_len = input_len, b.element = sizeof(float);
  b.packed = packed, b.packed_len = packed_len;
  b.bias = bias, b.bias_len = bias_len, b.bias_element = sizeof(float);
  b.scratch = scratch, b.scratch_len = scratch_len;
  b.output = output, b.output_len = output_len;
  if ((status = check_buffers(&b, &g)) != BITTTS_CONV_OK) return status;
  /* beta - beta is 0 exactly for finite beta, NaN for infinities and NaN. */
  if (!(beta - beta == 0.0f) || !(act_min <= act_max)) return BITTTS_CONV_ERR_PARAM;
  if ((status = scan_packed(packed, packed_len, bad_offset)) != BITTTS_CONV_OK) return status;
  interior(shape, &g, &first, &end);
  for (o = 0; o < cout; ++o) {
    const float *w = decode_row_f32(packed, o * g.row, g.row, scratch);
    const float add = bias ? bias[o] : 0.0f;
    for (n = 0; n < shape->batches; ++n) {
      const float *x = input + n * shape->input_length * cin;
      float *y = output + n * g.out_length * cout + o;
      for (t = 0; t < g.out_length;) {
        if (t >= first && t + kBlock <= end) {
          float acc[kBlock];
          sum_block_f32(shape, x + (t * shape->stride - g.pad) * cin, w, acc);
          for (k = 0; k < kBlock; ++k, ++t)
            y[t * cout] = clamp_f32(beta * acc[k] + add, act_min, act_max);
        } else {
          y[t * cout] = clamp_f32(beta * sum_frame_f32(shape, &g, x, w, t) + add, act_min,
                                  act_max);
          ++t;
        }
      }
    }
  }
  return BITTTS_CONV_OK;
}

/* --- int8: TFLite's fixed-point requantization. */

/* int32 from its two's complement bits, without implementation-defined
 * conversion: what TFLite's int32 arithmetic gives where it wraps. */
static int32_t from_bits(uint32_t u) {
  return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

/* x / 2^e rounded down (an arithmetic shift, spelled without shifting a
 * negative number). */
static int32_t floor_shift(int32_t x, int e) {
  return x >= 0 ? x >> e : -(int32_t)((uint32_t)(~x) >> e) - 1;
}

/* gemmlowp's SaturatingRoundingDoublingHighMul: the high 32 bits of 2 * a * b,
 * rounded to nearest with a nudge of 2^30 (1 - 2^30 for a negative product)
 * before a division by 2^31 that truncates toward zero. */
static int32_t doubling_high_mul(int32_t a, int32_t b) {
  int64_t product;
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  product = (int64_t)a * b;
  product += product >= 0 ? (int64_t)1 << 30 : 1 - ((int64_t)1 << 30);
  return (int32_t)(product / ((int64_t)1 << 31));
}

/* gemmlowp's RoundingDivideByPOT: x / 2^e to nearest, ties away from zero. */
static int32_t rounding_divide_pow2(int32_t x, int e) {
  const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0);
  return floor_shift(x, e) + (remainder > threshold);
}

int32_t bittts_conv_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                     int32_t shift) {
  if (shift < -31 || shift > 30) return 0;
  if (shift > 0) x = from_bits((uint32_t)x << shift);
  return rounding_divide_pow2(doubling_high_mul(x, multiplier), shift > 0 ? 0 : (int)-shift);
}

bittts_conv_status bittts_conv_quantize_multiplier(double real, int32_t *multiplier,
                                                   int32_t *shift) {
  double q = real;
  int exponent = 0;
  int64_t fixed;
  if (multiplier == NULL || shift == NULL) return BITTTS_CONV_ERR_NULL;
  if (!(real >= 0.0) || real - real != 0.0) return BITTTS_CONV_ERR_PARAM;
  if (real == 0.0) {
    *multiplier = 0, *shift = 0;
    return BITTTS_CONV_OK;
  }
  /* frexp without libm: q in [0.5, 1), real = q * 2^exponent. Scaling by two
   * is exact, subnormals included. */
  while (q >= 1.0) q *= 0.5, ++exponent;
  while (q < 0.5) q *= 2.0, --exponent;
  /* q * 2^31 < 2^31 has its last bit at 2^-22 or above, so adding one half is
   * exact and truncation rounds half away from zero, as TfLiteRound. */
  fixed = (int64_t)(q * 2147483648.0 + 0.5);
  if (fixed == (int64_t)1 << 31) fixed /= 2, ++exponent;
  if (exponent < -31) fixed = 0, exponent = 0; /* flushed to zero, as TFLite */
  if (exponent > 30) return BITTTS_CONV_ERR_PARAM;
  *multiplier = (int32_t)fixed;
  *shift = exponent;
  return BITTTS_CONV_OK;
}

/* sum trit * x over the kBlock interior frames whose first tap reads x0. */
static void sum_block_i8(const bittts_conv_shape *s, const int8_t *x0, const int8_t *w,
                         int32_t acc[kBlock]) {
  const size_t cin = s->input_channels, step = s->stride * cin;
  const int8_t *x1 = x0 + step, *x2 = x1 + step, *x3 = x2 + step;
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t k, c;
  for (k = 0; k < s->kernel_size; ++k) {
    const size_t at = k * s->dilation * cin;
    const int8_t *wk = w + k * cin;
    for (c = 0; c < cin; ++c) {
      const int32_t wc = wk[c];
      a0 += wc * x0[at + c];
      a1 += wc * x1[at + c];
      a2 += wc * x2[at + c];
      a3 += wc * x3[at + c];
    }
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* One frame, sum trit * (x + offset) over the taps inside the input: TFLite
 * skips the taps in the padding (they add nothing, not trit * offset). */
static int32_t sum_frame_i8(const bittts_conv_shape *s, const Geometry *g, const int8_t *x,
                            const int8_t *w, size_t t, int32_t offset) {
  const size_t cin = s->input_channels;
  int32_t acc = 0;
  size_t k, c;
  for (k = 0; k < s->kernel_size; ++k) {
    const size_t frame = t * s->stride + k * s->dilation;
    if (frame < g->pad || frame - g->pad >= s->input_length) continue;
    {
      const int8_t *xk = x + (frame - g->pad) * cin, *wk = w + k * cin;
      for (c = 0; c < cin; ++c) acc += wk[c] * (xk[c] + offset);
    }
  }
  return acc;
}

static int quant_is_valid(const bittts_conv_quant *q) {
  return q->input_offset >= -127 && q->input_offset <= 128 && q->output_offset >= -128 &&
         q->output_offset <= 127 && q->multiplier >= 0 && q->shift >= -31 && q->shift <= 30 &&
         q->act_min >= -128 && q->act_min <= q->act_max && q->act_max <= 127;
}

static int8_t requantize(int32_t acc, const bittts_conv_quant *q) {
  int32_t v = bittts_conv_multiply_by_quantized_multiplier(acc, q->multiplier, q->shift);
  /* The offset is added in int32 as TFLite does, wrapping where it would. */
  v = from_bits((uint32_t)v + (uint32_t)q->output_offset);
  v = v < q->act_min ? q->act_min : (v > q->act_max ? q->act_max : v);
  return (int8_t)v;
}

bittts_conv_status bittts_conv_i8(const bittts_conv_shape *shape, const bittts_conv_quant *quant,
                                  const int8_t *input, size_t input_len,
                                  const int8_t *packed, size_t packed_len,
                                  const int32_t *bias, size_t bias_len,
                                  int8_t *scratch, size_t scratch_len,
                                  int8_t *output, size_t output_len, size_t *bad_offset) {
  Geometry g;
  Buffers b;
  size_t o, n, t, k, c, first, end;
  const size_t cin = shape ? shape->input_channels : 0, cout = shape ? shape->output_channels : 0;
  bittts_conv_status status = geometry(shape, &g);
  if (status != BITTTS_CONV_OK) return status;
  if (quant == NULL) return BITTTS_CONV_ERR_NULL;
  b.input = input, b.input_len = input_len, b.element = 1;
  b.packed = packed, b.packed_len = packed_len;
  b.bias = bias, b.bias_len = bias_len, b.bias_element = sizeof(int32_t);
  b.scratch = scratch, b.scratch_len = scratch_len;
  b.output = output, b.output_len = output_len;
  if ((status = check_buffers(&b, &g)) != BITTTS_CONV_OK) return status;
  if (!quant_is_valid(quant)) return BITTTS_CONV_ERR_PARAM;
  if ((status = scan_packed(packed, packed_len, bad_offset)) != BITTTS_CONV_OK) return status;
  interior(shape, &g, &first, &end);
  for (o = 0; o < cout; ++o) {
    const int8_t *w = decode_row(packed, o * g.row, g.row, scratch);
    const int32_t add = bias ? bias[o] : 0;
    int32_t row_sum = 0, acc[kBlock];
    for (c = 0; c < g.row; ++c) row_sum += w[c];
    for (n = 0; n < shape->batches; ++n) {
      const int8_t *x = input + n * shape->input_length * cin;
      int8_t *y = output + n * g.out_length * cout + o;
      for (t = 0; t < g.out_length;) {
        size_t count = 1;
        if (t >= first && t + kBlock <= end) {
          /* Every tap inside: sum trit * (x + offset) is sum trit * x plus
           * offset times the row's trit sum, exactly (no int32 overflow:
           * CONV_MAX_ROW). */
          sum_block_i8(shape, x + (t * shape->stride - g.pad) * cin, w, acc);
          for (k = 0; k < kBlock; ++k) acc[k] += quant->input_offset * row_sum;
          count = kBlock;
        } else {
          acc[0] = sum_frame_i8(shape, &g, x, w, t, quant->input_offset);
        }
        for (k = 0; k < count; ++k, ++t) {
          /* TFLite adds the bias in int32; it wraps where TFLite's would. */
          y[t * cout] = requantize(from_bits((uint32_t)acc[k] + (uint32_t)add), quant);
        }
      }
    }
  }
  return BITTTS_CONV_OK;
}

/* --- Activation ranges. */

bittts_conv_status bittts_conv_activation_range_f32(int activation, float *act_min,
                                                    float *act_max) {
  float lo, hi;
  if (act_min == NULL || act_max == NULL) return BITTTS_CONV_ERR_NULL;
  switch (activation) {
    case BITTTS_CONV_ACT_NONE: lo = -FLT_MAX, hi = FLT_MAX; break;
    case BITTTS_CONV_ACT_RELU: lo = 0.0f, hi = FLT_MAX; break;
    case BITTTS_CONV_ACT_RELU_N1_TO_1: lo = -1.0f, hi = 1.0f; break;
    case BITTTS_CONV_ACT_RELU6: lo = 0.0f, hi = 6.0f; break;
    default: return BITTTS_CONV_ERR_PARAM;
  }
  *act_min = lo, *act_max = hi;
  return BITTTS_CONV_OK;
}

/* zero_point + round(bound / scale) (the quotient in float, ties away from
 * zero), saturated to the int8 range. */
static int32_t quantize_bound(float bound, float scale, int32_t zero_point) {
  const float q = bound / scale;
  double r;
  if (q >= 512.0f) return 127;
  if (q <= -512.0f) return -128;
  r = q >= 0.0f ? (double)(int32_t)((double)q + 0.5) : -(double)(int32_t)(0.5 - (double)q);
  r += zero_point;
  return r > 127.0 ? 127 : (r < -128.0 ? -128 : (int32_t)r);
}

bittts_conv_status bittts_conv_activation_range_i8(int activation, float output_scale,
                                                   int32_t output_zero_point, int32_t *act_min,
                                                   int32_t *act_max) {
  int32_t lo = -128, hi = 127;
  if (act_min == NULL || act_max == NULL) return BITTTS_CONV_ERR_NULL;
  if (!(output_scale > 0.0f) || output_scale - output_scale != 0.0f ||
      output_zero_point < -128 || output_zero_point > 127)
    return BITTTS_CONV_ERR_PARAM;
  switch (activation) {
    case BITTTS_CONV_ACT_NONE: break;
    case BITTTS_CONV_ACT_RELU: lo = quantize_bound(0.0f, output_scale, output_zero_point); break;
    case BITTTS_CONV_ACT_RELU_N1_TO_1:
      lo = quantize_bound(-1.0f, output_scale, output_zero_point);
      hi = quantize_bound(1.0f, output_scale, output_zero_point);
      break;
    case BITTTS_CONV_ACT_RELU6:
      lo = quantize_bound(0.0f, output_scale, output_zero_point);
      hi = quantize_bound(6.0f, output_scale, output_zero_point);
      break;
    default: return BITTTS_CONV_ERR_PARAM;
  }
  *act_min = lo, *act_max = hi;
  return BITTTS_CONV_OK;
}

/* --- Options. */

static uint32_t read_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void write_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static int options_are_valid(uint32_t kernel_size, uint32_t stride, uint32_t dilation,
                             uint32_t padding, uint32_t activation) {
  return kernel_size >= 1 && kernel_size <= BITTTS_CONV_MAX_OPTION && stride >= 1 &&
         stride <= BITTTS_CONV_MAX_OPTION && dilation >= 1 &&
         dilation <= BITTTS_CONV_MAX_OPTION &&
         (padding == BITTTS_CONV_PADDING_SAME || padding == BITTTS_CONV_PADDING_VALID) &&
         activation <= BITTTS_CONV_ACT_RELU6;
}

enum { kVectorBytes = 4 * BITTTS_CONV_OPTION_COUNT };

bittts_conv_status bittts_conv_parse_options(const uint8_t *data, size_t len,
                                             bittts_conv_options *options) {
  uint32_t v[BITTTS_CONV_OPTION_COUNT];
  int i;
  if (data == NULL || options == NULL) return BITTTS_CONV_ERR_NULL;
  /* [count][values...][root offset back to values][type byte][root width 1] */
  if (len != BITTTS_CONV_OPTIONS_BYTES || data[len - 1] != 1 ||
      data[len - 2] != BITTTS_CONV_OPTIONS_TYPE_BYTE || data[len - 3] != kVectorBytes ||
      read_u32(data) != BITTTS_CONV_OPTION_COUNT)
    return BITTTS_CONV_ERR_SIZE;
  for (i = 0; i < BITTTS_CONV_OPTION_COUNT; ++i) v[i] = read_u32(data + 4 + 4 * i);
  if (!options_are_valid(v[BITTTS_CONV_OPTION_KERNEL_SIZE], v[BITTTS_CONV_OPTION_STRIDE],
                         v[BITTTS_CONV_OPTION_DILATION], v[BITTTS_CONV_OPTION_PADDING],
                         v[BITTTS_CONV_OPTION_ACTIVATION]))
    return BITTTS_CONV_ERR_PARAM;
  options->kernel_size = v[BITTTS_CONV_OPTION_KERNEL_SIZE];
  options->stride = v[BITTTS_CONV_OPTION_STRIDE];
  options->dilation = v[BITTTS_CONV_OPTION_DILATION];
  options->padding = (int)v[BITTTS_CONV_OPTION_PADDING];
  options->activation = (int)v[BITTTS_CONV_OPTION_ACTIVATION];
  return BITTTS_CONV_OK;
}

bittts_conv_status bittts_conv_write_options(const bittts_conv_options *options, uint8_t *data,
                                             size_t len) {
  uint32_t v[BITTTS_CONV_OPTION_COUNT];
  int i;
  if (data == NULL || options == NULL) return BITTTS_CONV_ERR_NULL;
  if (len < BITTTS_CONV_OPTIONS_BYTES) return BITTTS_CONV_ERR_SIZE;
  if (options->kernel_size > BITTTS_CONV_MAX_OPTION || options->stride > BITTTS_CONV_MAX_OPTION ||
      options->dilation > BITTTS_CONV_MAX_OPTION || options->padding < 0 ||
      options->activation < 0)
    return BITTTS_CONV_ERR_PARAM;
  v[BITTTS_CONV_OPTION_KERNEL_SIZE] = (uint32_t)options->kernel_size;
  v[BITTTS_CONV_OPTION_STRIDE] = (uint32_t)options->stride;
  v[BITTTS_CONV_OPTION_DILATION] = (uint32_t)options->dilation;
  v[BITTTS_CONV_OPTION_PADDING] = (uint32_t)options->padding;
  v[BITTTS_CONV_OPTION_ACTIVATION] = (uint32_t)options->activation;
  if (!options_are_valid(v[0], v[1], v[2], v[3], v[4])) return BITTTS_CONV_ERR_PARAM;
  write_u32(data, BITTTS_CONV_OPTION_COUNT);
  for (i = 0; i < BITTTS_CONV_OPTION_COUNT; ++i) write_u32(data + 4 + 4 * i, v[i]);
  data[kVectorBytes + 4] = kVectorBytes;
  data[kVectorBytes + 5] = BITTTS_CONV_OPTIONS_TYPE_BYTE;
  data[kVectorBytes + 6] = 1;
  return BITTTS_CONV_OK;
}

const char *bittts_conv_status_message(bittts_conv_status status) {
  switch (status) {
    case BITTTS_CONV_OK: return "ok";
    case BITTTS_CONV_ERR_NULL: return "null buffer";
    case BITTTS_CONV_ERR_SIZE: return "a dimension or buffer length does not fit the shape";
    case BITTTS_CONV_ERR_INDEX: return "packed byte outside " BITTTS_INDEX_RANGE_TEXT;
    case BITTTS_CONV_ERR_PARAM:
      return "stride, dilation, padding, activation, scale or quantization out of range";
    case BITTTS_CONV_ERR_OVERLAP: return "the output or the scratch overlaps another buffer";
  }
  return "unknown status";
}
