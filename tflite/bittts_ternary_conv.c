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
  size_t fast_scratch; /* bittts_conv_i8_fast_scratch_size, 0 when it overflows */
} Geometry;

/* The int8 SIMD path widens the activations of at most kChunk output frames
 * (their window of input frames) at a time, so its scratch stays small for
 * long inputs (the text graph's 64 frames: each row is decoded 4 times). */
enum { kChunk = 16 };

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
  {
    /* Up to 3 bytes to align, the int16 lanes of a row pair with 8 bytes
     * before and 20 after (2 * row + 28 bytes, see conv_i8_wide), then the
     * window of a chunk of frames widened to int16: 2 bytes per activation.
     * row <= CONV_MAX_ROW, so 2 * row + 32 cannot overflow. */
    const size_t chunk = g->out_length < kChunk ? g->out_length : kChunk;
    size_t frames, widened;
    g->fast_scratch = 0;
    if (s->input_channels % 4 == 0 && multiply(chunk - 1, s->stride, &frames) &&
        frames <= SIZE_MAX - span && multiply(frames + span, s->input_channels, &widened) &&
        widened <= (SIZE_MAX - 2 * g->row - 32) / 2)
      g->fast_scratch = 2 * g->row + 32 + 2 * widened;
  }
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

size_t bittts_conv_i8_fast_scratch_size(const bittts_conv_shape *shape) {
  Geometry g;
  if (geometry(shape, &g) != BITTTS_CONV_OK) return 0;
  return g.fast_scratch ? g.fast_scratch : g.scratch;
}

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

static bittts_conv_status check_buffers(const Buffers *b, const Geometry *g, size_t scratch_used) {
  size_t in_bytes, out_bytes, bias_bytes, scratch_bytes;
  if (b->input == NULL || b->packed == NULL || b->scratch == NULL || b->output == NULL ||
      (b->bias == NULL && b->bias_len != 0))
    return BITTTS_CONV_ERR_NULL;
  if (b->input_len != g->input_size || b->output_len != g->output_size ||
      bittts_check_sizes(b->packed_len, g->weights) != BITTTS_OK ||
      b->scratch_len < g->scratch || (b->bias != NULL && b->bias_len != g->cout))
    return BITTTS_CONV_ERR_SIZE;
  /* A scratch longer than needed is used only up to scratch_used (g->scratch,
   * or the int8 SIMD path's g->fast_scratch). */
  in_bytes = b->input_len * b->element, out_bytes = b->output_len * b->element;
  bias_bytes = b->bias_len * b->bias_element, scratch_bytes = scratch_used * b->element;
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

/* The decode tables of the int8 path, indexed by the packed byte's bits as
 * uint8 (0..255: bytes 0..121, then -128..-1), so a byte needs no offset,
 * no range check and no multiply-by-5 address: trits 0..3 (one 4-byte copy),
 * trit 4 and the sum of the 5. The 13 bytes outside -121..121 read as five
 * zeros. Generated from the format's definition (byte = sum_k t_k 3^k) and
 * checked against BITTTS_TRIT_TABLE by tests/c/test_ternary_conv.c. With the
 * 243-row table a byte took 17 instructions on Cortex-M7 (offset, clamp,
 * times 5) before the row's trits were summed again. 1.5 KB of flash. */
static const int8_t kTrits0To3[256][4] = {
    {0,0,0,0},{1,0,0,0},{-1,1,0,0},{0,1,0,0},{1,1,0,0},{-1,-1,1,0},{0,-1,1,0},{1,-1,1,0},
    {-1,0,1,0},{0,0,1,0},{1,0,1,0},{-1,1,1,0},{0,1,1,0},{1,1,1,0},{-1,-1,-1,1},{0,-1,-1,1},
    {1,-1,-1,1},{-1,0,-1,1},{0,0,-1,1},{1,0,-1,1},{-1,1,-1,1},{0,1,-1,1},{1,1,-1,1},{-1,-1,0,1},
    {0,-1,0,1},{1,-1,0,1},{-1,0,0,1},{0,0,0,1},{1,0,0,1},{-1,1,0,1},{0,1,0,1},{1,1,0,1},
    {-1,-1,1,1},{0,-1,1,1},{1,-1,1,1},{-1,0,1,1},{0,0,1,1},{1,0,1,1},{-1,1,1,1},{0,1,1,1},
    {1,1,1,1},{-1,-1,-1,-1},{0,-1,-1,-1},{1,-1,-1,-1},{-1,0,-1,-1},{0,0,-1,-1},{1,0,-1,-1},
    {-1,1,-1,-1},{0,1,-1,-1},{1,1,-1,-1},{-1,-1,0,-1},{0,-1,0,-1},{1,-1,0,-1},{-1,0,0,-1},
    {0,0,0,-1},{1,0,0,-1},{-1,1,0,-1},{0,1,0,-1},{1,1,0,-1},{-1,-1,1,-1},{0,-1,1,-1},{1,-1,1,-1},
    {-1,0,1,-1},{0,0,1,-1},{1,0,1,-1},{-1,1,1,-1},{0,1,1,-1},{1,1,1,-1},{-1,-1,-1,0},{0,-1,-1,0},
    {1,-1,-1,0},{-1,0,-1,0},{0,0,-1,0},{1,0,-1,0},{-1,1,-1,0},{0,1,-1,0},{1,1,-1,0},{-1,-1,0,0},
    {0,-1,0,0},{1,-1,0,0},{-1,0,0,0},{0,0,0,0},{1,0,0,0},{-1,1,0,0},{0,1,0,0},{1,1,0,0},
    {-1,-1,1,0},{0,-1,1,0},{1,-1,1,0},{-1,0,1,0},{0,0,1,0},{1,0,1,0},{-1,1,1,0},{0,1,1,0},
    {1,1,1,0},{-1,-1,-1,1},{0,-1,-1,1},{1,-1,-1,1},{-1,0,-1,1},{0,0,-1,1},{1,0,-1,1},{-1,1,-1,1},
    {0,1,-1,1},{1,1,-1,1},{-1,-1,0,1},{0,-1,0,1},{1,-1,0,1},{-1,0,0,1},{0,0,0,1},{1,0,0,1},
    {-1,1,0,1},{0,1,0,1},{1,1,0,1},{-1,-1,1,1},{0,-1,1,1},{1,-1,1,1},{-1,0,1,1},{0,0,1,1},
    {1,0,1,1},{-1,1,1,1},{0,1,1,1},{1,1,1,1},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},
    {0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{0,0,0,0},{-1,-1,-1,-1},
    {0,-1,-1,-1},{1,-1,-1,-1},{-1,0,-1,-1},{0,0,-1,-1},{1,0,-1,-1},{-1,1,-1,-1},{0,1,-1,-1},
    {1,1,-1,-1},{-1,-1,0,-1},{0,-1,0,-1},{1,-1,0,-1},{-1,0,0,-1},{0,0,0,-1},{1,0,0,-1},
    {-1,1,0,-1},{0,1,0,-1},{1,1,0,-1},{-1,-1,1,-1},{0,-1,1,-1},{1,-1,1,-1},{-1,0,1,-1},{0,0,1,-1},
    {1,0,1,-1},{-1,1,1,-1},{0,1,1,-1},{1,1,1,-1},{-1,-1,-1,0},{0,-1,-1,0},{1,-1,-1,0},{-1,0,-1,0},
    {0,0,-1,0},{1,0,-1,0},{-1,1,-1,0},{0,1,-1,0},{1,1,-1,0},{-1,-1,0,0},{0,-1,0,0},{1,-1,0,0},
    {-1,0,0,0},{0,0,0,0},{1,0,0,0},{-1,1,0,0},{0,1,0,0},{1,1,0,0},{-1,-1,1,0},{0,-1,1,0},
    {1,-1,1,0},{-1,0,1,0},{0,0,1,0},{1,0,1,0},{-1,1,1,0},{0,1,1,0},{1,1,1,0},{-1,-1,-1,1},
    {0,-1,-1,1},{1,-1,-1,1},{-1,0,-1,1},{0,0,-1,1},{1,0,-1,1},{-1,1,-1,1},{0,1,-1,1},{1,1,-1,1},
    {-1,-1,0,1},{0,-1,0,1},{1,-1,0,1},{-1,0,0,1},{0,0,0,1},{1,0,0,1},{-1,1,0,1},{0,1,0,1},
    {1,1,0,1},{-1,-1,1,1},{0,-1,1,1},{1,-1,1,1},{-1,0,1,1},{0,0,1,1},{1,0,1,1},{-1,1,1,1},
    {0,1,1,1},{1,1,1,1},{-1,-1,-1,-1},{0,-1,-1,-1},{1,-1,-1,-1},{-1,0,-1,-1},{0,0,-1,-1},
    {1,0,-1,-1},{-1,1,-1,-1},{0,1,-1,-1},{1,1,-1,-1},{-1,-1,0,-1},{0,-1,0,-1},{1,-1,0,-1},
    {-1,0,0,-1},{0,0,0,-1},{1,0,0,-1},{-1,1,0,-1},{0,1,0,-1},{1,1,0,-1},{-1,-1,1,-1},{0,-1,1,-1},
    {1,-1,1,-1},{-1,0,1,-1},{0,0,1,-1},{1,0,1,-1},{-1,1,1,-1},{0,1,1,-1},{1,1,1,-1},{-1,-1,-1,0},
    {0,-1,-1,0},{1,-1,-1,0},{-1,0,-1,0},{0,0,-1,0},{1,0,-1,0},{-1,1,-1,0},{0,1,-1,0},{1,1,-1,0},
    {-1,-1,0,0},{0,-1,0,0},{1,-1,0,0},{-1,0,0,0}};
static const int8_t kTrit4[256] = {
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,0,0,0,0,0,0,0,0,-1,-1,-1,-1,
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,
    -1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,-1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0};
static const int8_t kTritSum[256] = {
    0,1,0,1,2,-1,0,1,0,1,2,1,2,3,-2,-1,0,-1,0,1,0,1,2,-1,0,1,0,1,2,1,2,3,0,1,2,1,2,3,2,3,4,-3,-2,
    -1,-2,-1,0,-1,0,1,-2,-1,0,-1,0,1,0,1,2,-1,0,1,0,1,2,1,2,3,-2,-1,0,-1,0,1,0,1,2,-1,0,1,0,1,2,1,
    2,3,0,1,2,1,2,3,2,3,4,-1,0,1,0,1,2,1,2,3,0,1,2,1,2,3,2,3,4,1,2,3,2,3,4,3,4,5,0,0,0,0,0,0,0,0,
    0,0,0,0,0,-5,-4,-3,-4,-3,-2,-3,-2,-1,-4,-3,-2,-3,-2,-1,-2,-1,0,-3,-2,-1,-2,-1,0,-1,0,1,-4,-3,
    -2,-3,-2,-1,-2,-1,0,-3,-2,-1,-2,-1,0,-1,0,1,-2,-1,0,-1,0,1,0,1,2,-3,-2,-1,-2,-1,0,-1,0,1,-2,
    -1,0,-1,0,1,0,1,2,-1,0,1,0,1,2,1,2,3,-4,-3,-2,-3,-2,-1,-2,-1,0,-3,-2,-1,-2,-1,0,-1,0,1,-2,-1,
    0,-1,0,1,0,1,2,-3,-2,-1,-2,-1,0,-1,0,1,-2,-1,0,-1};

/* Row o of the kernel (K * Cin trits from weight o * row on) decoded into the
 * scratch, starting at trit (o * row) % 5 of it, and *sum (unless sum is
 * NULL) set to the sum of its trits (the whole bytes' sums from the table,
 * less the up to 4 + 4 trits of the neighbouring rows). Calling bittts_decode_i8 here had scanned every
 * row's bytes again (its own all-or-nothing check) on top of the
 * whole-kernel scan. */
static const int8_t *decode_row(const int8_t *packed, size_t first, size_t count,
                                int8_t *scratch, int32_t *sum) {
  const size_t byte = first / kTrits, skip = first % kTrits;
  const size_t bytes = (skip + count + kTrits - 1) / kTrits;
  const uint8_t *p = (const uint8_t *)(packed + byte), *const p_end = p + bytes;
  int8_t *out = scratch;
  int32_t total = 0;
  size_t i;
  if (sum == NULL) { /* the windowed path needs no sum: 8 instead of 10 per byte */
    for (; p != p_end; ++p, out += kTrits) {
      memcpy(out, kTrits0To3[*p], 4);
      out[4] = kTrit4[*p];
    }
    return scratch + skip;
  }
  for (; p != p_end; ++p, out += kTrits) {
    const unsigned u = *p;
    memcpy(out, kTrits0To3[u], 4);
    out[4] = kTrit4[u];
    total += kTritSum[u];
  }
  for (i = 0; i < skip; ++i) total -= scratch[i];
  for (i = skip + count; i < bytes * kTrits; ++i) total -= scratch[i];
  *sum = total;
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
  if ((status = check_buffers(&b, &g, g.scratch)) != BITTTS_CONV_OK) return status;
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

/* --- int8 inner products.
 *
 * With T_out = 4 (the streaming frames graph) each decoded row is used for
 * only 4 frames, so the per-row costs (decode, trit sum) weigh as much as the
 * multiply-adds. Where the DSP extension exists (Cortex-M4/M7: ACLE's
 * __ARM_FEATURE_DSP) 4 trits and 4 activations come in one 32-bit load each,
 * are widened to two pairs of int16 by SXTB16 (bytes 0, 2 and, after an
 * 8-bit rotation, 1, 3) and multiplied-accumulated two at a time by SMLAD;
 * the widened trits are shared by the 4 frames. Elsewhere (and with
 * -DBITTTS_CONV_NO_ACLE, which the tests use to run the plain path on ARM
 * too) the loops are plain C. Both paths sum exactly in int32 (CONV_MAX_ROW
 * bounds every partial sum, SMLAD included), so the bits never depend on
 * the path. Loads past the last whole group of 4 never happen: the tails go
 * one element at a time. */
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(BITTTS_CONV_NO_ACLE)
#include <arm_acle.h>
#define BITTTS_CONV_SIMD 1
#else
#define BITTTS_CONV_SIMD 0
#endif

#if BITTTS_CONV_SIMD
/* 4 bytes from any alignment: Cortex-M4/M7 load them with one LDR. */
static uint32_t load4(const int8_t *p) {
  uint32_t v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Bytes 0 and 2 of v as two int16 (SXTB16), and bytes 1 and 3. GCC 12's
 * arm_acle.h has no __ror, and it does not fold a shift into SXTB16's
 * rotation: the odd bytes cost an extra instruction each time (45 instead of
 * 31 instructions per 16 multiply-adds in dot4_i8 on Cortex-M7), so GCC and
 * Clang get SXTB16's own ROR #8 through inline assembly. */
static int32_t even_bytes(uint32_t v) { return (int32_t)__sxtb16((int32_t)v); }
#if defined(__GNUC__)
static int32_t odd_bytes(uint32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}
#else
static int32_t odd_bytes(uint32_t v) { return (int32_t)__sxtb16((int32_t)(v >> 8)); }
#endif

/* acc + x[0] * w[0] + .. + x[3] * w[3] for the bytes of x, w already widened
 * to (w0, w2) and (w1, w3). */
static int32_t mac4(uint32_t x, int32_t w02, int32_t w13, int32_t acc) {
  acc = __smlad(even_bytes(x), w02, acc);
  return __smlad(odd_bytes(x), w13, acc);
}
#endif

/* acc[f] += sum_{c < n} w[c] * x_f[c] for the 4 frames x_f = x0 + f * step:
 * the path for a scratch without room for the widened window (or Cin not a
 * multiple of 4). 27 instructions per 16 multiply-adds on Cortex-M7 (GCC
 * 12 -O2: 3 of them reloads of spilled offsets), against 44 for the plain C
 * loop (11 per channel and 4 frames). */
static void dot4_i8(const int8_t *x0, size_t step, const int8_t *w, size_t n,
                    int32_t acc[kBlock]) {
  const size_t step2 = 2 * step, step3 = 3 * step;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  const int8_t *const w_end = w + n;
#if BITTTS_CONV_SIMD
  const int8_t *const w_end4 = w + (n & ~(size_t)3);
  while (w != w_end4) {
    const uint32_t wv = load4(w);
    const int32_t w02 = even_bytes(wv), w13 = odd_bytes(wv);
    a0 = mac4(load4(x0), w02, w13, a0);
    a1 = mac4(load4(x0 + step), w02, w13, a1);
    a2 = mac4(load4(x0 + step2), w02, w13, a2);
    a3 = mac4(load4(x0 + step3), w02, w13, a3);
    w += 4, x0 += 4;
  }
#endif
  for (; w != w_end; ++w, ++x0) {
    const int32_t wc = *w;
    a0 += wc * x0[0];
    a1 += wc * x0[step];
    a2 += wc * x0[step2];
    a3 += wc * x0[step3];
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* sum_{c < n} w[c] * x[c]. */
static int32_t dot1_i8(const int8_t *x, const int8_t *w, size_t n) {
  int32_t a = 0;
  size_t c = 0;
#if BITTTS_CONV_SIMD
  for (; c + 4 <= n; c += 4) {
    const uint32_t wv = load4(w + c);
    a = mac4(load4(x + c), even_bytes(wv), odd_bytes(wv), a);
  }
#endif
  for (; c < n; ++c) a += w[c] * x[c];
  return a;
}

static int8_t requantize(int32_t acc, const bittts_conv_quant *q);

#if BITTTS_CONV_SIMD
/* The windowed path computes two output rows at once. A row's trits go
 * into one int16 lane each, widened to tA + 2^14 * tB with the trit tB of
 * a second row at the same position (|lane| <= 16385 fits), so one SMLAD
 * on a pair of activations (x0, x1) adds x0*tA0 + x1*tA1 + 2^14 * (x0*tB0 +
 * x1*tB1): 4 multiply-adds instead of 2. The field of row A stays exact as
 * long as its partial sum fits 14 bits signed: with |x + input_offset| <=
 * 255, 32 positions give |sum| <= 8160 < 2^13, so every 32 positions
 * (kLaneChunk) the accumulator is split: lo = its low 14 bits sign-extended
 * (row A's partial sum exactly: it is congruent modulo 2^14 and inside
 * -2^13..2^13-1), (acc - lo) / 2^14 row B's (|acc| < 2^28, no wrap). Row
 * totals stay exact in int32 (CONV_MAX_ROW), so the bits are those of the
 * plain path. On Cortex-M7, per 16 multiply-adds at 4 frames: 7.5
 * instructions in the loop instead of 17 (tests/c/cortex_m/bench_conv.c).
 *
 * The two rows must start at the same trit of a packed byte, so that one
 * decoded byte of each lands on the same 5 lanes: rows o and o + 5 when K *
 * Cin is not a multiple of 5 (their starts differ by 5 * K * Cin trits),
 * rows o and o + 1 when it is; a row without a partner (the last ones of
 * Cout) goes alone, its B field 0. */
enum { kLaneChunk = 32, kShortRow = 512 };

/* The decoded lanes of a packed byte (indexed by its bits as uint8): trits
 * 0..4 as int16 in lanes 0..4 of three words (lane 5 zero), the low row's
 * (t) and the high row's (2^14 * t). Bytes outside -121..121 read as zeros.
 * Built by the preprocessor from the format's definition, byte + 121 =
 * sum_k (t_k + 1) 3^k. 6 KB of flash: a byte pair then costs 2 loads of
 * 3 words, 3 SADD16 and 3 stores (16 instructions per byte pair on
 * Cortex-M7 against 2 x 11 for the int8 decode plus 2 SXTB16 per 4 trits
 * and frame block in the multiply loop). */
#define BITTTS_LV(u) ((u) < 128 ? (int)(u) : (int)(u)-256)
#define BITTTS_LD(u, p) \
  (BITTTS_LV(u) >= -121 && BITTTS_LV(u) <= 121 ? (BITTTS_LV(u) + 121) / (p) % 3 - 1 : 0)
#define BITTTS_LL(u, p, s) ((uint32_t)(BITTTS_LD(u, p) * (s)) & 0xFFFFu)
#define BITTTS_LE(u, s)                                           \
  {BITTTS_LL(u, 1, s) | BITTTS_LL(u, 3, s) << 16,                 \
   BITTTS_LL(u, 9, s) | BITTTS_LL(u, 27, s) << 16, BITTTS_LL(u, 81, s)}
#define BITTTS_LE4(u, s) \
  BITTTS_LE((u), s), BITTTS_LE((u) + 1, s), BITTTS_LE((u) + 2, s), BITTTS_LE((u) + 3, s)
#define BITTTS_LE16(u, s) \
  BITTTS_LE4((u), s), BITTTS_LE4((u) + 4, s), BITTTS_LE4((u) + 8, s), BITTTS_LE4((u) + 12, s)
#define BITTTS_LE64(u, s)                                                     \
  BITTTS_LE16((u), s), BITTTS_LE16((u) + 16, s), BITTTS_LE16((u) + 32, s), \
      BITTTS_LE16((u) + 48, s)
static const uint32_t kLanesLow[256][3] = {BITTTS_LE64(0, 1), BITTTS_LE64(64, 1),
                                           BITTTS_LE64(128, 1), BITTTS_LE64(192, 1)};
static const uint32_t kLanesHigh[256][3] = {BITTTS_LE64(0, 16384), BITTTS_LE64(64, 16384),
                                            BITTTS_LE64(128, 16384), BITTTS_LE64(192, 16384)};
#undef BITTTS_LE64
#undef BITTTS_LE16
#undef BITTTS_LE4
#undef BITTTS_LE
#undef BITTTS_LL
#undef BITTTS_LD
#undef BITTTS_LV

static void store4(void *p, uint32_t v) { memcpy(p, &v, sizeof v); }

/* The activations of a chunk's input frames plus the input offset, widened
 * once per chunk to int16 pairs in channel order ((x0, x1), (x2, x3)), the
 * lanes' order; padding frames 0, which is what TFLite adds for them. Needs
 * Cin % 4 == 0, so that every group of 4 stays inside one frame and every
 * tap starts a group. */
static void widen_window(const int8_t *x, size_t input_length, size_t cin, size_t first_frame,
                         size_t pad, size_t frames, int32_t offset, uint32_t *e) {
  const int32_t offset2 = (int32_t)(((uint32_t)offset & 0xFFFFu) * 0x10001u);
  size_t f, c;
  for (f = 0; f < frames; ++f, e += cin / 2) {
    const size_t frame = first_frame + f;
    if (frame < pad || frame - pad >= input_length) {
      memset(e, 0, cin / 2 * sizeof *e);
      continue;
    }
    {
      const int8_t *xf = x + (frame - pad) * cin;
      for (c = 0; c < cin; c += 4) {
        const uint32_t v = load4(xf + c);
        const uint32_t even = (uint32_t)even_bytes(v), odd = (uint32_t)odd_bytes(v);
        e[c / 2] = (uint32_t)__sadd16((int32_t)((even & 0xFFFFu) | odd << 16), offset2);
        e[c / 2 + 1] = (uint32_t)__sadd16((int32_t)(even >> 16 | (odd & 0xFFFF0000u)), offset2);
      }
    }
  }
}

/* Rows o (low lanes) and o + d (high lanes, when `high` is not NULL: its
 * packed bytes from the one holding its first trit) decoded into lanes
 * starting at row16 (4-byte aligned, with 8 bytes before it for the first
 * byte's trits of the row before, and 2 * count + 18 after for the last
 * byte's and the third word's spare lane). */
static void decode_lanes(const int8_t *packed, size_t first, size_t count, const int8_t *high,
                         uint8_t *row16) {
  const size_t skip = first % kTrits, bytes = (skip + count + kTrits - 1) / kTrits;
  const uint8_t *a = (const uint8_t *)packed + first / kTrits, *const a_end = a + bytes;
  const uint8_t *b = (const uint8_t *)high;
  uint8_t *out = row16 - 2 * skip;
  if (b == NULL) {
    for (; a != a_end; ++a, out += 2 * kTrits) {
      const uint32_t *la = kLanesLow[*a];
      store4(out, la[0]), store4(out + 4, la[1]), store4(out + 8, la[2]);
    }
    return;
  }
  for (; a != a_end; ++a, ++b, out += 2 * kTrits) {
    const uint32_t *la = kLanesLow[*a], *lb = kLanesHigh[*b];
    store4(out, (uint32_t)__sadd16((int32_t)la[0], (int32_t)lb[0]));
    store4(out + 4, (uint32_t)__sadd16((int32_t)la[1], (int32_t)lb[1]));
    store4(out + 8, (uint32_t)__sadd16((int32_t)la[2], (int32_t)lb[2]));
  }
}

/* The multiply loop over lanes [w, stop) against the 4 frames' widened
 * activations, accumulating into a0..a3. */
#if defined(__GNUC__)
/* One LDRD of lanes per 4 positions, one per frame: 15 instructions per 32
 * multiply-adds (GCC 12 spills in the C loop below). */
#define BITTTS_PAIR_LOOP(a0, a1, a2, a3, e0, e1, e2, e3, w, stop)               \
  do {                                                                          \
    int32_t w0_, w1_, x0_, x1_;                                                 \
    __asm__("1:\n\t"                                                            \
            "ldrd %[w0], %[w1], [%[w]], #8\n\t"                                  \
            "ldrd %[x0], %[x1], [%[e0]], #8\n\t"                                 \
            "smlad %[a0], %[x0], %[w0], %[a0]\n\t"                               \
            "smlad %[a0], %[x1], %[w1], %[a0]\n\t"                               \
            "ldrd %[x0], %[x1], [%[e1]], #8\n\t"                                 \
            "smlad %[a1], %[x0], %[w0], %[a1]\n\t"                               \
            "smlad %[a1], %[x1], %[w1], %[a1]\n\t"                               \
            "ldrd %[x0], %[x1], [%[e2]], #8\n\t"                                 \
            "smlad %[a2], %[x0], %[w0], %[a2]\n\t"                               \
            "smlad %[a2], %[x1], %[w1], %[a2]\n\t"                               \
            "ldrd %[x0], %[x1], [%[e3]], #8\n\t"                                 \
            "smlad %[a3], %[x0], %[w0], %[a3]\n\t"                               \
            "smlad %[a3], %[x1], %[w1], %[a3]\n\t"                               \
            "cmp %[w], %[end]\n\t"                                               \
            "bne 1b"                                                            \
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),       \
              [e0] "+r"(e0), [e1] "+r"(e1), [e2] "+r"(e2), [e3] "+r"(e3),       \
              [w] "+r"(w), [w0] "=&r"(w0_), [w1] "=&r"(w1_), [x0] "=&r"(x0_),   \
              [x1] "=&r"(x1_)                                                   \
            : [end] "r"(stop)                                                   \
            : "cc", "memory");                                                  \
  } while (0)
#else
#define BITTTS_PAIR_LOOP(a0, a1, a2, a3, e0, e1, e2, e3, w, stop)                \
  for (; w != stop; w += 2, e0 += 2, e1 += 2, e2 += 2, e3 += 2) {                \
    a0 = __smlad((int32_t)e0[0], (int32_t)w[0], a0);                             \
    a0 = __smlad((int32_t)e0[1], (int32_t)w[1], a0);                             \
    a1 = __smlad((int32_t)e1[0], (int32_t)w[0], a1);                             \
    a1 = __smlad((int32_t)e1[1], (int32_t)w[1], a1);                             \
    a2 = __smlad((int32_t)e2[0], (int32_t)w[0], a2);                             \
    a2 = __smlad((int32_t)e2[1], (int32_t)w[1], a2);                             \
    a3 = __smlad((int32_t)e3[0], (int32_t)w[0], a3);                             \
    a3 = __smlad((int32_t)e3[1], (int32_t)w[1], a3);                             \
  }
#endif

/* Row A's low 14 bits sign-extended (arithmetic shifts of negative values:
 * GCC and Clang, the compilers with ACLE here, define them as such). */
static int32_t low14(int32_t a) { return (int32_t)((uint32_t)a << 18) >> 18; }

/* sa[f] += row A's sum over n positions (a multiple of 4) of lanes w against
 * frame f's widened activations e[f], sb[f] += row B's. */
static void dot4_pair(const uint32_t *const e[kBlock], const uint32_t *w, size_t n,
                      int32_t sa[kBlock], int32_t sb[kBlock]) {
  const uint32_t *e0 = e[0], *e1 = e[1], *e2 = e[2], *e3 = e[3];
  const uint32_t *const w_end = w + n / 2;
  int32_t s0 = sa[0], s1 = sa[1], s2 = sa[2], s3 = sa[3];
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, lo;
  if (n <= kShortRow) {
    /* Row B's field keeps accumulating in place: only row A's chunk sum
     * leaves (2 instructions a frame fewer per chunk); exact while |row
     * B's sum| <= 255 * n < 2^17, so that 2^14 times it fits int32. */
    while (w != w_end) {
      const uint32_t *const stop =
          (size_t)(w_end - w) > kLaneChunk / 2 ? w + kLaneChunk / 2 : w_end;
      BITTTS_PAIR_LOOP(a0, a1, a2, a3, e0, e1, e2, e3, w, stop);
      lo = low14(a0), s0 += lo, a0 -= lo;
      lo = low14(a1), s1 += lo, a1 -= lo;
      lo = low14(a2), s2 += lo, a2 -= lo;
      lo = low14(a3), s3 += lo, a3 -= lo;
    }
    sb[0] += a0 >> 14, sb[1] += a1 >> 14, sb[2] += a2 >> 14, sb[3] += a3 >> 14;
  } else {
    int32_t h0 = sb[0], h1 = sb[1], h2 = sb[2], h3 = sb[3];
    while (w != w_end) {
      const uint32_t *const stop =
          (size_t)(w_end - w) > kLaneChunk / 2 ? w + kLaneChunk / 2 : w_end;
      a0 = a1 = a2 = a3 = 0;
      BITTTS_PAIR_LOOP(a0, a1, a2, a3, e0, e1, e2, e3, w, stop);
      lo = low14(a0), s0 += lo, h0 += (a0 - lo) >> 14;
      lo = low14(a1), s1 += lo, h1 += (a1 - lo) >> 14;
      lo = low14(a2), s2 += lo, h2 += (a2 - lo) >> 14;
      lo = low14(a3), s3 += lo, h3 += (a3 - lo) >> 14;
    }
    sb[0] = h0, sb[1] = h1, sb[2] = h2, sb[3] = h3;
  }
  sa[0] = s0, sa[1] = s1, sa[2] = s2, sa[3] = s3;
}

/* bittts_conv_multiply_by_quantized_multiplier and requantize's clamp for a
 * multiplier >= 0 (quant_is_valid), without branches: the rounding doubling
 * high multiply is floor((x * m + 2^30) / 2^31) (equal to gemmlowp's nudge
 * of 2^30 or 1 - 2^30 and division toward zero: for a product p < 0,
 * -floor((-p - 1 + 2^30) / 2^31) = floor((p + 2^30) / 2^31)), and the
 * rounding divide by 2^e adds 1 to floor(h / 2^e) exactly when (h mod 2^e) +
 * 2^(e-1) - (h < 0) reaches 2^e (gemmlowp's remainder > threshold; e = 0
 * has no rounding: mask, half and sign all 0). Checked against the generic
 * function on edge cases and random operands by tests/c/test_ternary_conv.c's
 * streaming rounds on Cortex-M and a host harness over 2^32 random triples.
 * ~17 instead of ~30 instructions per output on Cortex-M7. */
typedef struct {
  int32_t multiplier, offset, act_min, act_max;
  uint32_t left, right, mask, half;
} FastQuant;

static void fast_quant(const bittts_conv_quant *q, FastQuant *f) {
  f->multiplier = q->multiplier, f->offset = q->output_offset;
  f->act_min = q->act_min, f->act_max = q->act_max;
  f->left = q->shift > 0 ? (uint32_t)q->shift : 0u;
  f->right = q->shift > 0 ? 0u : (uint32_t)-q->shift;
  f->mask = (uint32_t)(((uint64_t)1 << f->right) - 1u);
  f->half = f->mask - (f->mask >> 1);
}

/* y[i * stride] for the first count of acc[] plus add. A left shift
 * (shift > 0) and a rounding right shift (shift < 0) never come together,
 * so each gets its own loop with its parameters in registers (one call per
 * output reloaded all of them: 30 instructions an output on Cortex-M7). */
static void requantize_block(const int32_t acc[kBlock], size_t count, uint32_t add,
                             const FastQuant *fq, int8_t *y, size_t stride) {
  const int32_t m = fq->multiplier, lo = fq->act_min, hi = fq->act_max;
  const uint32_t offset = (uint32_t)fq->offset;
  size_t i;
  if (fq->right == 0) {
    const uint32_t left = fq->left;
    for (i = 0; i < count; ++i) {
      const int32_t x = (int32_t)(((uint32_t)acc[i] + add) << left);
      int32_t v = (int32_t)((uint32_t)(int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31) +
                            offset);
      v = v < lo ? lo : v;
      y[i * stride] = (int8_t)(v > hi ? hi : v);
    }
    return;
  }
  {
    const uint32_t right = fq->right, mask = fq->mask, half = fq->half;
    for (i = 0; i < count; ++i) {
      const int32_t x = (int32_t)((uint32_t)acc[i] + add);
      const int32_t h = (int32_t)(((int64_t)x * m + ((int64_t)1 << 30)) >> 31);
      const uint32_t frac = ((uint32_t)h & mask) + half - ((uint32_t)h >> 31);
      int32_t v = (int32_t)((uint32_t)((h >> right) + (int32_t)(frac >> right)) + offset);
      v = v < lo ? lo : v;
      y[i * stride] = (int8_t)(v > hi ? hi : v);
    }
  }
}

/* All of bittts_conv_i8's output past the checks, through the windowed path. */
static void conv_i8_wide(const bittts_conv_shape *shape, const Geometry *g,
                         const bittts_conv_quant *quant, const int8_t *input,
                         const int8_t *packed, const int32_t *bias, int8_t *scratch,
                         int8_t *output) {
  const size_t cin = shape->input_channels, cout = shape->output_channels;
  const size_t span = (shape->kernel_size - 1) * shape->dilation + 1, words = cin / 2;
  const size_t step = shape->stride * words, tap = shape->dilation * words;
  /* Partner distance: rows o and o + d start at the same trit of a byte. */
  const size_t d = g->row % kTrits ? kTrits : 1;
  /* Layout (fast_scratch): up to 3 bytes to a 4-byte boundary, 8 bytes, the
   * lanes of a row pair (2 * row + 20 bytes), the window. */
  const size_t misalign = (size_t)((uintptr_t)scratch % 4u);
  uint8_t *const row16 = (uint8_t *)scratch + (misalign ? 4 - misalign : 0) + 8;
  uint32_t *const e = (uint32_t *)(void *)(row16 + 2 * g->row + 20);
  const uint32_t *const w = (const uint32_t *)(const void *)row16;
  FastQuant fq;
  size_t n, t0, o, t, k, i;
  fast_quant(quant, &fq);
  for (n = 0; n < shape->batches; ++n) {
    const int8_t *x = input + n * shape->input_length * cin;
    for (t0 = 0; t0 < g->out_length; t0 += kChunk) {
      const size_t frames_out = g->out_length - t0 < kChunk ? g->out_length - t0 : kChunk;
      widen_window(x, shape->input_length, cin, t0 * shape->stride, g->pad,
                   (frames_out - 1) * shape->stride + span, quant->input_offset, e);
      for (o = 0; o < cout; ++o) {
        const int pair = o + d < cout;
        const uint32_t add = bias ? (uint32_t)bias[o] : 0u;
        const uint32_t add_b = bias && pair ? (uint32_t)bias[o + d] : 0u;
        int8_t *y = output + (n * g->out_length + t0) * cout + o;
        if (o % (2 * d) >= d) continue; /* done with row o - d */
        decode_lanes(packed, o * g->row, g->row,
                     pair ? packed + (o + d) * g->row / kTrits : NULL, row16);
        for (t = 0; t < frames_out; t += kBlock) {
          /* Past the last frame the first one is read again (inside the
           * window), its sums dropped. */
          const size_t count = frames_out - t < kBlock ? frames_out - t : kBlock;
          const uint32_t *et[kBlock];
          int32_t sa[kBlock] = {0, 0, 0, 0}, sb[kBlock] = {0, 0, 0, 0};
          for (i = 0; i < kBlock; ++i) et[i] = e + (i < count ? t + i : t) * step;
          if (shape->dilation == 1) {
            dot4_pair(et, w, g->row, sa, sb);
          } else {
            for (k = 0; k < shape->kernel_size; ++k) {
              const uint32_t *ek[kBlock];
              for (i = 0; i < kBlock; ++i) ek[i] = et[i] + k * tap;
              dot4_pair(ek, w + k * words, cin, sa, sb);
            }
          }
          requantize_block(sa, count, add, &fq, y + t * cout, cout);
          if (pair) requantize_block(sb, count, add_b, &fq, y + t * cout + d, cout);
        }
      }
    }
  }
}
#endif

/* sum trit * x over the kBlock interior frames whose first tap reads x0: one
 * run of K * Cin when the taps are adjacent frames (dilation 1), else one run
 * of Cin per tap. */
static void sum_block_i8(const bittts_conv_shape *s, const int8_t *x0, const int8_t *w,
                         int32_t acc[kBlock]) {
  const size_t cin = s->input_channels, step = s->stride * cin;
  size_t k;
  acc[0] = acc[1] = acc[2] = acc[3] = 0;
  if (s->dilation == 1) {
    dot4_i8(x0, step, w, s->kernel_size * cin, acc);
    return;
  }
  for (k = 0; k < s->kernel_size; ++k) dot4_i8(x0 + k * s->dilation * cin, step, w + k * cin, cin, acc);
}

/* The same for one interior frame. */
static int32_t sum_one_i8(const bittts_conv_shape *s, const int8_t *x0, const int8_t *w) {
  const size_t cin = s->input_channels;
  int32_t acc = 0;
  size_t k;
  if (s->dilation == 1) return dot1_i8(x0, w, s->kernel_size * cin);
  for (k = 0; k < s->kernel_size; ++k) acc += dot1_i8(x0 + k * s->dilation * cin, w + k * cin, cin);
  return acc;
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

/* Both int8 entry points: every check but the byte scan, which `scan` asks for. */
static bittts_conv_status conv_i8(const bittts_conv_shape *shape, const bittts_conv_quant *quant,
                                  const int8_t *input, size_t input_len,
                                  const int8_t *packed, size_t packed_len,
                                  const int32_t *bias, size_t bias_len,
                                  int8_t *scratch, size_t scratch_len,
                                  int8_t *output, size_t output_len, size_t *bad_offset,
                                  int scan) {
  Geometry g;
  Buffers b;
  size_t o, n, t, k, first, end;
  const size_t cin = shape ? shape->input_channels : 0, cout = shape ? shape->output_channels : 0;
  int wide;
  bittts_conv_status status = geometry(shape, &g);
  if (status != BITTTS_CONV_OK) return status;
  if (quant == NULL) return BITTTS_CONV_ERR_NULL;
  b.input = input, b.input_len = input_len, b.element = 1;
  b.packed = packed, b.packed_len = packed_len;
  b.bias = bias, b.bias_len = bias_len, b.bias_element = sizeof(int32_t);
  b.scratch = scratch, b.scratch_len = scratch_len;
  b.output = output, b.output_len = output_len;
  wide = BITTTS_CONV_SIMD && g.fast_scratch != 0 && scratch_len >= g.fast_scratch;
  if ((status = check_buffers(&b, &g, wide ? g.fast_scratch : g.scratch)) != BITTTS_CONV_OK)
    return status;
  if (!quant_is_valid(quant)) return BITTTS_CONV_ERR_PARAM;
  if (scan && (status = scan_packed(packed, packed_len, bad_offset)) != BITTTS_CONV_OK)
    return status;
#if BITTTS_CONV_SIMD
  if (wide) {
    conv_i8_wide(shape, &g, quant, input, packed, bias, scratch, output);
    return BITTTS_CONV_OK;
  }
#endif
  interior(shape, &g, &first, &end);
  for (o = 0; o < cout; ++o) {
    int32_t row_sum, offset_sum, acc[kBlock];
    const int8_t *w = decode_row(packed, o * g.row, g.row, scratch, &row_sum);
    const int32_t add = bias ? bias[o] : 0;
    offset_sum = quant->input_offset * row_sum;
    for (n = 0; n < shape->batches; ++n) {
      const int8_t *x = input + n * shape->input_length * cin;
      int8_t *y = output + n * g.out_length * cout + o;
      for (t = 0; t < g.out_length;) {
        size_t count = 1;
        /* Every tap inside: sum trit * (x + offset) is sum trit * x plus
         * offset times the row's trit sum, exactly (no int32 overflow:
         * CONV_MAX_ROW). */
        if (t >= first && t + kBlock <= end) {
          sum_block_i8(shape, x + (t * shape->stride - g.pad) * cin, w, acc);
          for (k = 0; k < kBlock; ++k) acc[k] += offset_sum;
          count = kBlock;
        } else if (t >= first && t < end) {
          acc[0] = sum_one_i8(shape, x + (t * shape->stride - g.pad) * cin, w) + offset_sum;
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

bittts_conv_status bittts_conv_i8(const bittts_conv_shape *shape, const bittts_conv_quant *quant,
                                  const int8_t *input, size_t input_len,
                                  const int8_t *packed, size_t packed_len,
                                  const int32_t *bias, size_t bias_len,
                                  int8_t *scratch, size_t scratch_len,
                                  int8_t *output, size_t output_len, size_t *bad_offset) {
  return conv_i8(shape, quant, input, input_len, packed, packed_len, bias, bias_len, scratch,
                 scratch_len, output, output_len, bad_offset, 1);
}

bittts_conv_status bittts_conv_i8_trusted(const bittts_conv_shape *shape,
                                          const bittts_conv_quant *quant,
                                          const int8_t *input, size_t input_len,
                                          const int8_t *packed, size_t packed_len,
                                          const int32_t *bias, size_t bias_len,
                                          int8_t *scratch, size_t scratch_len,
                                          int8_t *output, size_t output_len) {
  return conv_i8(shape, quant, input, input_len, packed, packed_len, bias, bias_len, scratch,
                 scratch_len, output, output_len, NULL, 0);
}

int bittts_conv_simd(void) { return BITTTS_CONV_SIMD; }

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
